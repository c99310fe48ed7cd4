"""Tests of the capture's configuration and helpers: ``CaptureConfig``, ``layer_grid``, ``chunk_maps``,
``resize_maps`` and the package's docstring examples."""

from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F

from stablesemantics import capture as capture_package
from stablesemantics.capture import CaptureConfig, CrossAttentionCapture, chunk_maps, layer_grid, resize_maps


def test_config_validation(tiny_pipe):
    assert CaptureConfig(blocks=["up"], resolutions=[1], map_size=[4, 4]).blocks == ("up",)
    with pytest.raises(ValueError, match="blocks"):
        CaptureConfig(blocks=("middle",))
    with pytest.raises(ValueError, match="blocks"):
        CaptureConfig(blocks=())
    with pytest.raises(TypeError, match="blocks"):
        CaptureConfig(blocks="up")
    with pytest.raises(ValueError, match="resolutions"):
        CaptureConfig(resolutions=(3,))
    with pytest.raises(ValueError, match="t_range"):
        CaptureConfig(t_range=(0.8, 0.2))
    with pytest.raises(ValueError, match="t_range"):
        CaptureConfig(t_range=(0.0, 1.5))
    with pytest.raises(TypeError, match="t_range"):
        CaptureConfig(t_range=("a", 1))
    with pytest.raises(ValueError, match="map_size"):
        CaptureConfig(map_size=(0, 4))
    with pytest.raises(TypeError, match="config"):
        CrossAttentionCapture(tiny_pipe, {"blocks": ("up",)})
    with pytest.raises(TypeError, match="pipe"):
        CrossAttentionCapture("not a pipeline")
    with pytest.raises(ValueError, match="t_range"):
        CrossAttentionCapture(tiny_pipe.unet, CaptureConfig(t_range=(0.5, 1.0)))


def test_keeps_step():
    config = CaptureConfig(t_range=(0.25, 0.75))
    assert [config.keeps_step(i, 5) for i in range(5)] == [False, True, True, True, False]
    assert CaptureConfig().keeps_step(0, 1)
    assert not CaptureConfig(t_range=(0.5, 1.0)).keeps_step(0, 1)


def test_layer_grid():
    assert layer_grid((9, 7), 63) == (9, 7, 1)
    assert layer_grid((9, 7), 20) == (5, 4, 2)
    assert layer_grid((9, 7), 6) == (3, 2, 4)
    assert layer_grid((64, 96), 8 * 12) == (8, 12, 8)
    with pytest.raises(ValueError, match="positions"):
        layer_grid((9, 7), 13)


def test_chunk_maps_is_the_mean_of_token_maps():
    maps = torch.rand(77, 4, 3)
    out = chunk_maps(maps, [[1, 2, 3], [5], (6, 7)])
    assert out.shape == (3, 4, 3)
    torch.testing.assert_close(out[0], maps[1:4].mean(0))
    torch.testing.assert_close(out[1], maps[5])
    torch.testing.assert_close(out[2], (maps[6] + maps[7]) / 2)
    batched = torch.rand(2, 77, 4, 3)
    torch.testing.assert_close(chunk_maps(batched, [[1, 2]])[1, 0], batched[1, 1:3].mean(0))
    assert chunk_maps(maps, []).shape == (0, 4, 3)
    with pytest.raises(ValueError, match="empty"):
        chunk_maps(maps, [[1], []])
    with pytest.raises(IndexError):
        chunk_maps(maps, [[77]])
    with pytest.raises(TypeError):
        chunk_maps(maps.numpy(), [[1]])
    with pytest.raises(TypeError):
        chunk_maps(maps, [1, 2])


def test_resize_is_plain_bilinear_when_enlarging():
    x = torch.rand(3, 5, 4, 3)
    plain = F.interpolate(x, size=(9, 7), mode="bilinear", align_corners=False)
    torch.testing.assert_close(resize_maps(x, (9, 7)), plain, atol=1e-6, rtol=0)
    assert resize_maps(x, (4, 3)) is x


def test_docstring_examples_run():
    result = doctest.testmod(capture_package, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
