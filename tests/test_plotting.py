"""Plotting helpers: shapes, normalisation, and a grid drawn from a real (tiny) store."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from stablesemantics.analysis import overlay_map, plot_image_maps, plot_store_grid, upsample_map
from stablesemantics.capture import minmax_scale_maps
from stablesemantics.store import StoreLayout, StoreWriter, create_store


def test_display_scaling_range_and_constant():
    m = minmax_scale_maps(np.array([[2.0, 4.0], [3.0, 6.0]]), display=True)
    assert m.dtype == np.float32 and m.min() == 0.0 and m.max() == 1.0
    assert not minmax_scale_maps(np.full((3, 3), 5.0), display=True).any()
    nan = np.array([[np.nan, 1.0], [2.0, 3.0]])
    assert minmax_scale_maps(nan, display=True)[1].tolist() == [0.5, 1.0]  # NaN ignored for min and max


def test_upsample_map_keeps_mass_where_it_was():
    m = np.zeros((4, 4), np.float32)
    m[0, 3] = 1.0  # top right
    up = upsample_map(m, (32, 16))
    assert up.shape == (32, 16)
    y, x = np.unravel_index(np.argmax(up), up.shape)
    assert y < 8 and x >= 8
    with pytest.raises(ValueError, match="positive"):
        upsample_map(m, (0, 4))


def test_plot_image_maps_one_panel_per_map():
    image = np.zeros((16, 16, 3), np.uint8)
    fig = plot_image_maps(image, np.random.default_rng(0).random((3, 2, 2)), ["a", "b", "c"])
    assert len(fig.axes) == 4
    plt.close(fig)
    with pytest.raises(ValueError, match="labels"):
        plot_image_maps(image, np.zeros((2, 2, 2)), ["a"])
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="image"):
        overlay_map(ax, np.zeros((4, 4)))
    plt.close(fig)


def test_plot_store_grid_from_store(tmp_path):
    layout = StoreLayout(
        image_size=(8, 8),
        map_size=(2, 2),
        batch_size=2,
        prompt_id=[0, 1],
        prompt=["a cat", "a dog on a mat"],
        caption=["a cat", "a dog on a mat"],
        seed=[0, 0],
        noun_chunks=["[]", "[]"],
        map_image=[0, 1, 1],
        map_chunk=["a cat", "a dog", "a mat"],
        map_lemma=["cat", "dog", "mat"],
        map_token_indices=["[2]", "[2]", "[5]"],
    )
    path = create_store(tmp_path / "s.zarr", layout, {"model": "none"})
    StoreWriter(path).write(0, np.full((2, 8, 8, 3), 128, np.uint8), np.random.default_rng(0).random((3, 2, 2)))
    fig = plot_store_grid(path, max_images=2, max_chunks=3)
    assert len(fig.axes) == 2 * 4
    titles = [ax.get_title() for ax in fig.axes]
    assert "a mat" in titles and any(t.startswith("a dog on a mat") for t in titles)
    plt.close(fig)
    with pytest.raises(ValueError, match="out of range"):
        plot_store_grid(path, image_ids=[5])
