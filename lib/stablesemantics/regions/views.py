"""Views of a region with more or less context: DynRefer's ``box(t) = b + (I - b)·t``.

A *view* of a region with box ``b = (x0, y0, x1, y1)`` in an image ``I = (0, 0, W, H)`` is the
crop of the box interpolated from ``b`` (``t = 0``: the region alone) to ``I`` (``t = 1``: the
whole image), resized to a fixed square size. Every view records its ``t`` and where the region
lies inside it (a soft box mask: the fraction of each view pixel the region's box covers), which
plays the role of DynRefer's RoI-Align: with a whole-image view the model still knows which
region is meant.

Training and evaluation draw views from a fixed grid of ``t`` (``T_GRID``: 0 and DynRefer's ten
candidates 0.1 … 1.0), rendered once per region into a :class:`ViewBank`.

>>> import numpy as np
>>> view_box((16, 16, 32, 48), (64, 64), 0.5).tolist()
[8.0, 8.0, 48.0, 56.0]
>>> img = np.zeros((64, 64, 3), np.uint8); img[16:48, 16:32] = 255
>>> v = render_view(img, (16, 16, 32, 48), t=0.0, size=8)
>>> v.t, v.pixels.shape, int(v.pixels.min()), float(v.mask.min())
(0.0, (8, 8, 3), 255, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = [
    "CANDIDATE_TS",
    "T_GRID",
    "View",
    "ViewBank",
    "box_mask",
    "render_view",
    "view_bank",
    "view_box",
]

#: DynRefer's candidate interpolation coefficients: t = (i + 1) / 10 for i = 0 … 9.
CANDIDATE_TS: tuple[float, ...] = tuple(round((i + 1) / 10, 1) for i in range(10))
#: The tight view (t = 0) followed by the ten candidates: the t of every view this chapter uses.
T_GRID: tuple[float, ...] = (0.0, *CANDIDATE_TS)


def view_box(box: Sequence[float], image_hw: tuple[int, int], t: float) -> np.ndarray:
    """The view's box ``b + (I - b)·t`` as float ``(x0, y0, x1, y1)`` (exclusive ends).

    ``box`` is the region's box in pixels, ``image_hw`` the image's ``(H, W)``, ``t`` in [0, 1].
    """
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must lie in [0, 1], got {t}")
    b = np.asarray(box, np.float64)
    if b.shape != (4,) or b[2] <= b[0] or b[3] <= b[1]:
        raise ValueError(f"box must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {tuple(box)}")
    h, w = image_hw
    whole = np.array([0.0, 0.0, float(w), float(h)])
    return b + (whole - b) * float(t)


def _coverage(lo: float, hi: float, n: int) -> np.ndarray:
    """Fraction of each unit cell [k, k + 1), k = 0 … n - 1, that the interval [lo, hi) covers."""
    k = np.arange(n, dtype=np.float64)
    return np.clip(np.minimum(k + 1, hi) - np.maximum(k, lo), 0.0, 1.0)


def box_mask(box: Sequence[float], within: Sequence[float], size: int) -> np.ndarray:
    """Soft mask ``(size, size)`` of ``box`` inside the view box ``within`` resized to ``size``².

    Each pixel holds the fraction of its area that ``box`` covers (exact for axis-aligned boxes).
    """
    b = np.asarray(box, np.float64)
    v = np.asarray(within, np.float64)
    sx, sy = size / (v[2] - v[0]), size / (v[3] - v[1])
    cx = _coverage((b[0] - v[0]) * sx, (b[2] - v[0]) * sx, size)
    cy = _coverage((b[1] - v[1]) * sy, (b[3] - v[1]) * sy, size)
    return np.outer(cy, cx).astype(np.float32)


@dataclass
class View:
    """One view of a region: its pixels, where the region lies in it, its t and its box."""

    pixels: np.ndarray  # (size, size, 3) uint8
    mask: np.ndarray  # (size, size) float32 in [0, 1]: the region's box inside the view
    t: float
    box: np.ndarray  # (4,) float: the view's box in image pixels


def render_view(image: np.ndarray, box: Sequence[float], t: float, size: int) -> View:
    """Crop ``box(t)`` from ``image`` (``(H, W, 3)`` uint8) and resize it to ``size``² (bilinear,
    antialiased when shrinking; fractional box edges are kept, not rounded)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    vb = view_box(box, image.shape[:2], t)
    # Cut the enclosing whole pixels first: PIL's filter would otherwise read past the box edges.
    x0, y0 = int(np.floor(vb[0])), int(np.floor(vb[1]))
    x1, y1 = int(np.ceil(vb[2])), int(np.ceil(vb[3]))
    inner = (vb[0] - x0, vb[1] - y0, vb[2] - x0, vb[3] - y0)
    crop = Image.fromarray(image[y0:y1, x0:x1]).resize((size, size), Image.BILINEAR, box=inner)
    return View(pixels=np.asarray(crop), mask=box_mask(box, vb, size), t=float(t), box=vb)


@dataclass
class ViewBank:
    """Views of many regions at the same grid of ``t``: ``pixels[r, k]`` is region ``r`` at ``ts[k]``."""

    pixels: np.ndarray  # (n_regions, n_ts, size, size, 3) uint8
    masks: np.ndarray  # (n_regions, n_ts, size, size) uint8, the soft box mask × 255
    ts: np.ndarray  # (n_ts,) float

    def __len__(self) -> int:
        return len(self.pixels)

    def head(self, n: int) -> ViewBank:
        """The views of the first ``n`` regions (the same grid of ``t``)."""
        return ViewBank(self.pixels[:n], self.masks[:n], self.ts)

    @property
    def size(self) -> int:
        return int(self.pixels.shape[2])

    def t_index(self, t: float) -> int:
        """Index of ``t`` in the bank's grid (exact to 1e-6), or a ValueError."""
        hit = np.flatnonzero(np.abs(self.ts - t) < 1e-6)
        if not len(hit):
            raise ValueError(f"t = {t} is not in the bank's grid {self.ts.tolist()}")
        return int(hit[0])


def view_bank(
    images: np.ndarray,
    image_index: Sequence[int],
    boxes: np.ndarray,
    ts: Sequence[float] = T_GRID,
    size: int = 32,
) -> ViewBank:
    """Render every region (``boxes[r]`` in ``images[image_index[r]]``) at every ``t`` of ``ts``."""
    boxes = np.asarray(boxes, np.float64)
    n, k = len(boxes), len(ts)
    pixels = np.zeros((n, k, size, size, 3), np.uint8)
    masks = np.zeros((n, k, size, size), np.uint8)
    for r in range(n):
        for j, t in enumerate(ts):
            v = render_view(images[int(image_index[r])], boxes[r], float(t), size)
            pixels[r, j] = v.pixels
            masks[r, j] = np.round(v.mask * 255).astype(np.uint8)
    return ViewBank(pixels=pixels, masks=masks, ts=np.asarray(ts, np.float64))
