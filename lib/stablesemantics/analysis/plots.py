"""Small matplotlib helpers for looking at images and their per-chunk attention maps.

A map is a 2-D array at the capture resolution (often much coarser than the image).
It is upsampled bilinearly to the image size, min-max normalised per map (so maps are
compared by *where* they put their mass, not by their scale) and drawn over the image.

Example:
    >>> import numpy as np
    >>> from stablesemantics.analysis import plot_image_maps
    >>> image = np.zeros((32, 32, 3), np.uint8)
    >>> maps = np.random.default_rng(0).random((2, 4, 4))
    >>> fig = plot_image_maps(image, maps, ["a red car", "a tree"])
    >>> len(fig.axes)
    3
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

from stablesemantics.store.schema import open_store


def upsample_map(amap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D map to `size` = (height, width) with bilinear interpolation (float32).

    >>> upsample_map(np.ones((4, 4)), (32, 16)).shape
    (32, 16)
    """
    a = np.asarray(amap, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"a map must be 2-D (h, w), got shape {a.shape}")
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive (height, width), got {size}")
    if a.shape == (h, w):
        return a.copy()
    return np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)


def overlay_map(
    ax: Axes,
    image: np.ndarray,
    amap: np.ndarray | None = None,
    *,
    title: str | None = None,
    alpha: float = 0.55,
    cmap: str = "jet",
    wrap: int = 22,
) -> Axes:
    """Draw `image` on `ax` and, if given, the normalised, upsampled `amap` over it."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image must be (H, W, 3), got shape {img.shape}")
    ax.imshow(img)
    if amap is not None:
        # here, not at the top: importing the capture package loads torch, which the analyses
        # (and their memory budget) do not need
        from stablesemantics.capture.maps import minmax_scale_maps

        heat = minmax_scale_maps(upsample_map(amap, img.shape[:2]), display=True)
        ax.imshow(heat, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0, interpolation="nearest")
    if title:
        ax.set_title(textwrap.fill(title, wrap), fontsize=8)
    ax.set_axis_off()
    return ax


def plot_image_maps(
    image: np.ndarray,
    maps: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[str],
    *,
    title: str | None = None,
    panel: float = 1.8,
) -> Figure:
    """One row: the image, then each map over it, titled with its label (e.g. the noun chunk)."""
    maps = list(maps)
    if len(maps) != len(labels):
        raise ValueError(f"got {len(maps)} maps but {len(labels)} labels")
    fig, axes = plt.subplots(1, 1 + len(maps), figsize=(panel * (1 + len(maps)), panel * 1.25), squeeze=False)
    overlay_map(axes[0, 0], image, title=title or "image")
    for ax, amap, label in zip(axes[0, 1:], maps, labels):
        overlay_map(ax, image, amap, title=label)
    fig.tight_layout()
    return fig


def _read(store: Any, name: str) -> np.ndarray:
    return np.asarray(store[name][...])


def plot_store_grid(
    store: Any,
    image_ids: Sequence[int] | None = None,
    *,
    max_images: int = 6,
    max_chunks: int = 4,
    panel: float = 1.6,
) -> Figure:
    """A grid from a generation store: one row per image (prompt as title), then its chunk maps.

    `store` is an opened store (`stablesemantics.store.open_store(path)`, a zarr group) or
    anything indexable by the schema's array names. Only images marked done are shown;
    by default the first `max_images` of them. Each row shows up to `max_chunks` maps.
    """
    if isinstance(store, (str, Path)):
        store = open_store(store)
    if max_images < 1 or max_chunks < 1:
        raise ValueError("max_images and max_chunks must be >= 1")
    n_images = int(store["images"].shape[0])
    done = _read(store, "done").astype(bool) if "done" in store else np.ones(n_images, bool)
    if image_ids is None:
        image_ids = [int(i) for i in np.flatnonzero(done)[:max_images]]
    else:
        image_ids = [int(i) for i in image_ids]
        bad = [i for i in image_ids if not 0 <= i < n_images]
        if bad:
            raise ValueError(f"image ids {bad} out of range [0, {n_images})")
    if not image_ids:
        raise ValueError("the store has no finished images to plot")

    map_image = _read(store, "map_image")
    map_chunk = _read(store, "map_chunk")
    prompts = _read(store, "prompt") if "prompt" in store else None
    seeds = _read(store, "seed") if "seed" in store else None
    maps_arr = store["maps"]

    fig, axes = plt.subplots(
        len(image_ids), 1 + max_chunks, figsize=(panel * (1 + max_chunks), panel * 1.3 * len(image_ids)), squeeze=False
    )
    for row, i in enumerate(image_ids):
        image = np.asarray(store["images"][i])
        title = str(prompts[i]) if prompts is not None else f"image {i}"
        if seeds is not None:
            title += f" (seed {int(seeds[i])})"
        overlay_map(axes[row, 0], image, title=title, wrap=30)
        rows = np.flatnonzero(map_image == i)[:max_chunks]
        for col in range(max_chunks):
            ax = axes[row, 1 + col]
            if col < len(rows):
                r = int(rows[col])
                overlay_map(ax, image, np.asarray(maps_arr[r], dtype=np.float32), title=str(map_chunk[r]))
            else:
                ax.set_axis_off()
    fig.tight_layout()
    return fig


def plot_map_grid(
    maps: dict[Any, np.ndarray],
    ncols: int = 8,
    width: float = 1.6,
    titles: dict | None = None,
    cmap: str = "magma",
    shared_scale: bool = False,
    suptitle: str | None = None,
):
    """A grid of (h, w) maps with their keys (or ``titles``) as titles; returns the Figure."""
    import matplotlib.pyplot as plt

    keys = list(maps)
    n = max(len(keys), 1)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, width * nrows + (0.4 if suptitle else 0)), squeeze=False
    )
    vmax = max((float(np.nanmax(m)) for m in maps.values()), default=1.0) if shared_scale else None
    for ax in axes.ravel():
        ax.axis("off")
    for ax, k in zip(axes.ravel(), keys):
        ax.imshow(maps[k], cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
        t = titles.get(k, k) if titles else k
        ax.set_title(" / ".join(t) if isinstance(t, tuple) else str(t), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig
