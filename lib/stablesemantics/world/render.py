"""The rasteriser: sprites to pixels, instance masks and keypoints."""

from __future__ import annotations

import math
from functools import cache, lru_cache

import numpy as np

from stablesemantics.world.layout import _Placed
from stablesemantics.world.primitives import ClassSpec
from stablesemantics.world.sprites import CLASSES
from stablesemantics.world.vocabulary import COLOURS, SIZE_PIXELS, SIZES

_ROLE_CODE = {"main": 0, "dark": 1, "light": 2}


@cache
def _compiled(name: str):
    """Per-class constants for the rasteriser: primitive list with numeric kind codes,
    palette slots (role code or fixed RGB) and keypoints as an array."""
    spec = CLASSES[name]
    prims = []
    roles = np.full(len(spec.primitives) + 1, -1, np.int64)  # -1 = fixed colour / background
    fixed = np.zeros((len(spec.primitives) + 1, 3), np.float64)
    for k, (kind, prm, col) in enumerate(spec.primitives, start=1):
        if kind == "ellipse":
            cx, cy, rx, ry, vmax = prm
            prims.append((0, (cx, cy, 1.0 / (rx * rx), 1.0 / (ry * ry), vmax), col is None))
        elif kind == "rect":
            prims.append((1, prm, col is None))
        else:
            prims.append((2, prm, col is None))
        if isinstance(col, str):
            roles[k] = _ROLE_CODE[col]
        elif col is not None:
            fixed[k] = col
    kp = np.array([spec.keypoints[q] for q in spec.parts], np.float64).reshape(-1, 2)
    return tuple(prims), roles, fixed, kp


@lru_cache(maxsize=16384)
def _palette(name: str, colour: str, brightness: float, outline: bool) -> np.ndarray:
    _, roles, fixed, _ = _compiled(name)
    main = np.clip(np.asarray(COLOURS[colour], np.float64) * brightness, 0, 255)
    role_rgb = np.stack(
        [main.astype(np.uint8), (main * 0.62).astype(np.uint8), (main + 0.45 * (255 - main)).astype(np.uint8)]
    ).astype(np.float64)
    pal = fixed.copy()
    sel = roles >= 0
    pal[sel] = role_rgb[roles[sel]]
    pal = pal.astype(np.uint8)
    if outline:
        pal = np.concatenate([pal, (pal * 0.55).astype(np.uint8)])
    return pal


_LABEL_RES = 128  # label-bitmap pixels per frame unit
_LABEL_PAD = 0.75  # frame units of empty margin around each bitmap (look-ups rarely need clipping)


def _analytic_labels(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Label image (index of the topmost primitive, 0 = empty) evaluated exactly at (u, v)."""
    prims = _compiled(name)[0]
    lab = np.zeros(np.broadcast_shapes(u.shape, v.shape), np.uint8)
    for k, (code, prm, erase) in enumerate(prims, start=1):
        if code == 0:
            cx, cy, irx2, iry2, vmax = prm
            m = (u - cx) ** 2 * irx2 + (v - cy) ** 2 * iry2 <= 1.0
            if vmax != math.inf:
                m &= v <= vmax
        elif code == 1:
            a, b, c, d = prm
            m = (u >= a) & (u <= c) & (v >= b) & (v <= d)
        else:
            m = np.ones(lab.shape, bool)
            for a, b, c in prm:
                m &= a * u + b * v + c >= 0
        np.copyto(lab, 0 if erase else k, where=m)
    return lab


@cache
def _label_bitmap(name: str) -> np.ndarray:
    """The class's label image sampled finely once (u in [-A-pad, A+pad], v in [-1-pad, 1+pad]),
    so rendering an object is one table look-up per pixel, whatever its number of primitives."""
    A = CLASSES[name].aspect
    nu = int(math.ceil(2 * (A + _LABEL_PAD) * _LABEL_RES))
    nv = int(math.ceil(2 * (1 + _LABEL_PAD) * _LABEL_RES))
    u = ((np.arange(nu) + 0.5) / _LABEL_RES - (A + _LABEL_PAD))[None, :]
    v = ((np.arange(nv) + 0.5) / _LABEL_RES - (1 + _LABEL_PAD))[:, None]
    lab = _analytic_labels(name, u, v)
    lab[0, :] = lab[-1, :] = 0  # clipped look-ups land on an empty border
    lab[:, 0] = lab[:, -1] = 0
    return lab


def _rasterise(spec: ClassSpec, p: _Placed, H: int, W: int, outline: bool):
    """Object mask and colour patch on the pixels of its frame box (clipped to image).

    Pixel centres are mapped into the sprite frame (inverse of scale, stretch, shear and
    flip) and looked up in the class's fine label bitmap (index of the topmost primitive);
    colours come from one palette look-up: ``patch = palette[labels]``.
    """
    x0 = max(0, int(math.floor(p.cx - p.hx)))
    x1 = min(W, int(math.ceil(p.cx + p.hx)))
    y0 = max(0, int(math.floor(p.cy - p.hy)))
    y1 = min(H, int(math.ceil(p.cy + p.hy)))
    h, w = y1 - y0, x1 - x0
    if h <= 0 or w <= 0:
        return x0, y0, np.zeros((0, 0), bool), np.zeros((0, 0, 3), np.uint8)
    bmp = _label_bitmap(spec.name)
    nv, nu = bmp.shape
    R = _LABEL_RES
    A = spec.aspect + _LABEL_PAD
    # v = (y + 0.5 - cy) / scale; bitmap row = (v + 1 + pad) R
    ry = np.arange(y0, y1) + (0.5 - p.cy)  # (h,) pixel offsets from the centre
    iv = (ry * (R / p.scale) + (1 + _LABEL_PAD) * R).astype(np.int64)
    # u = (x/scale - shear v) / kx, mirrored if flipped; bitmap column = (u + A) R
    su = (-R / p.kx) if p.flip else (R / p.kx)
    col_x = (np.arange(x0, x1) + (0.5 - p.cx)) * (su / p.scale) + A * R  # (w,)
    col_y = ry * (p.shear * su / p.scale)  # (h,)
    if (
        iv[0] < 0
        or iv[-1] >= nv
        or min(col_x[0], col_x[-1]) - max(col_y[0], col_y[-1]) < 0
        or max(col_x[0], col_x[-1]) - min(col_y[0], col_y[-1]) >= nu
    ):
        # tiny images: some look-ups fall outside the bitmap's margin
        np.clip(iv, 0, nv - 1, out=iv)
        iu = np.clip((col_x[None, :] - col_y[:, None]).astype(np.int64), 0, nu - 1)
        lab = bmp[iv[:, None], iu]
    else:
        # flat index = row * nu + column; the integer row offset can go inside the floor
        flat = (col_x[None, :] + (iv * nu - col_y)[:, None]).astype(np.int64)
        lab = bmp.ravel().take(flat)
    mask = lab > 0
    if outline:
        inner = mask.copy()
        inner[1:] &= mask[:-1]
        inner[:-1] &= mask[1:]
        inner[:, 1:] &= mask[:, :-1]
        inner[:, :-1] &= mask[:, 1:]
        inner[0] = inner[-1] = False
        inner[:, 0] = inner[:, -1] = False
        lab = lab + (mask & ~inner).astype(np.uint8) * np.uint8(len(spec.primitives) + 1)
    patch = _palette(spec.name, p.colour, p.brightness, outline)[lab]
    return x0, y0, mask, patch


def _keypoints_xy(spec: ClassSpec, p: _Placed) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of the class's keypoints (in ``spec.parts`` order) for a placement."""
    kp = _compiled(spec.name)[3]
    u = -kp[:, 0] if p.flip else kp[:, 0]
    v = kp[:, 1]
    return p.cx + p.scale * (p.kx * u + p.shear * v), p.cy + p.scale * v


def render_object(
    cls: str, colour: str = "red", size: str = "large", flip: bool = False, image_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Render one object, centred on a white canvas, without jitter.

    Returns (image (S,S,3) uint8, mask (S,S) bool).

    >>> img, m = render_object("car", "blue")
    >>> bool(m.any()), img.shape
    (True, (64, 64, 3))
    """
    if cls not in CLASSES:
        raise ValueError(f"unknown class {cls!r}; choose from {list(CLASSES)}")
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; choose from {list(COLOURS)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {SIZES}")
    spec = CLASSES[cls]
    S = SIZE_PIXELS[size] * image_size / 64.0
    h = S if spec.aspect <= 1 else S / spec.aspect
    scale = h / 2
    p = _Placed(
        cls, colour, size, flip, image_size / 2, image_size / 2, scale, 1.0, 0.0, scale * spec.aspect, scale, 1.0
    )
    img = np.full((image_size, image_size, 3), 255, np.uint8)
    x0, y0, m, patch = _rasterise(spec, p, image_size, image_size, True)
    full = np.zeros((image_size, image_size), bool)
    full[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]] = m
    img[full] = patch[m]
    return img, full
