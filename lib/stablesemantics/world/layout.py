"""Layout sampling (no pixels): which classes, where, how large, flipped or not."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stablesemantics.world.pairs import ON_PAIRS
from stablesemantics.world.primitives import ClassSpec
from stablesemantics.world.scene import WorldConfig
from stablesemantics.world.sprites import CLASSES
from stablesemantics.world.vocabulary import (
    _AFFINITY,
    _CLS_NAMES,
    _COLOUR_NAMES,
    _PAIR_W,
    PLACE_INDEX,
    PLACES,
    SIZE_PIXELS,
    SIZES,
)


@dataclass
class _Placed:
    cls: str
    colour: str
    size: str
    flip: bool
    cx: float
    cy: float
    scale: float  # pixels per frame unit (frame half-height)
    kx: float  # horizontal stretch jitter
    shear: float
    hx: float  # half extent in pixels (x)
    hy: float
    brightness: float
    on: int | None = None


def _draw_class(rng, place_i: int, present: list[int], cfg: WorldConfig) -> int | None:
    avail = _AFFINITY[:, place_i] > 0
    if present:
        avail = avail.copy()
        avail[present] = False
    if not avail.any():
        return None
    if present and rng.random() < cfg.p_partner:
        w = _PAIR_W[present].sum(0) * avail
        if w.sum() > 0:
            return _choice(rng, w)
    return _choice(rng, _AFFINITY[:, place_i] * avail)


def _choice(rng, w: np.ndarray) -> int:
    """Index drawn with probability proportional to ``w`` (faster than rng.choice(p=...))."""
    c = np.cumsum(w)
    return min(int(np.searchsorted(c, rng.random() * c[-1], side="right")), len(w) - 1)


def _frame(r: np.ndarray, spec: ClassSpec, size_i: int, H: int):
    """Frame geometry from three uniforms ``r``: size jitter, horizontal stretch, shear."""
    S = SIZE_PIXELS[SIZES[size_i]] * H / 64.0 * (0.9 + 0.2 * r[0])
    h = S if spec.aspect <= 1 else S / spec.aspect
    scale = h / 2.0
    kx = 0.92 + 0.16 * r[1]
    shear = -0.12 + 0.24 * r[2]
    hx = scale * (kx * spec.aspect + abs(shear))
    return scale, kx, shear, hx, scale


def _overlaps(box, placed: list[_Placed], skip: int | None, max_overlap: float) -> bool:
    x0, y0, x1, y1 = box
    a = (x1 - x0) * (y1 - y0)
    for j, p in enumerate(placed):
        if j == skip:
            continue
        ix = min(x1, p.cx + p.hx) - max(x0, p.cx - p.hx)
        iy = min(y1, p.cy + p.hy) - max(y0, p.cy - p.hy)
        if ix > 0 and iy > 0:
            b = 4 * p.hx * p.hy
            if ix * iy > max_overlap * min(a, b):
                return True
    return False


def _place(rng, ci: int, placed: list[_Placed], cfg: WorldConfig) -> _Placed | None:
    H = W = cfg.size
    name = _CLS_NAMES[ci]
    spec = CLASSES[name]
    r = rng.random(12).tolist()  # one call for all attributes: rng calls dominate the sampler's cost
    colour = _COLOUR_NAMES[min(int(r[0] * len(_COLOUR_NAMES)), len(_COLOUR_NAMES) - 1)]
    size_i = min(int(r[1] * 3), 2)
    flip = bool(not spec.symmetric and r[2] < 0.5)
    brightness = round(0.88 + 0.04 * min(int(r[3] * 6), 5), 2)  # 6 levels: palettes are cached
    supporters = [j for j, p in enumerate(placed) if (name, p.cls) in ON_PAIRS]
    if supporters and r[4] < cfg.p_on:
        j = supporters[min(int(r[5] * len(supporters)), len(supporters) - 1)]
        sp = placed[j]
        on_size = min(size_i, SIZES.index(sp.size))
        scale, kx, shear, hx, hy = _frame(r[6:9], spec, on_size, H)
        sv, su0, su1 = CLASSES[sp.cls].surface
        sign = -1.0 if sp.flip else 1.0
        xa = sp.cx + sp.scale * (sp.kx * sign * su0 + sp.shear * sv)
        xb = sp.cx + sp.scale * (sp.kx * sign * su1 + sp.shear * sv)
        surface_y = sp.cy + sp.scale * sv
        cy = surface_y - hy + 0.6
        cx = min(xa, xb) + abs(xb - xa) * r[9]
        cx = min(max(cx, hx), W - hx)
        box = (cx - hx, cy - hy, cx + hx, cy + hy)
        if cy - hy >= 0 and not _overlaps(box, placed, j, cfg.max_overlap):
            return _Placed(name, colour, SIZES[on_size], flip, cx, cy, scale, kx, shear, hx, hy, brightness, on=j)
    scale, kx, shear, hx, hy = _frame(r[6:9], spec, size_i, H)
    lo, hi = spec.vertical
    tries = rng.random((15, 2)).tolist()
    for ux, ut in tries:
        cx = hx + ux * (W - 2 * hx)
        t = lo + ut * (hi - lo)
        cy = hy + t * (H - 2 * hy)
        box = (cx - hx, cy - hy, cx + hx, cy + hy)
        if not _overlaps(box, placed, None, cfg.max_overlap):
            return _Placed(name, colour, SIZES[size_i], flip, cx, cy, scale, kx, shear, hx, hy, brightness)
    return None


def _sample_layout(rng: np.random.Generator, cfg: WorldConfig) -> tuple[str, list[_Placed]]:
    places = cfg.places or PLACES
    place = places[int(rng.integers(len(places)))]
    pi = PLACE_INDEX[place]
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    placed: list[_Placed] = []
    present: list[int] = []
    for _ in range(n + 2):  # a couple of spare attempts for objects that do not fit
        if len(placed) >= n:
            break
        ci = _draw_class(rng, pi, present, cfg)
        if ci is None:
            break
        p = _place(rng, ci, placed, cfg)
        if p is not None:
            placed.append(p)
            present.append(ci)
    return place, placed
