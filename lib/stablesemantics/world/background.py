"""Procedural backgrounds of the seven places."""

from __future__ import annotations

from functools import cache

import numpy as np

from stablesemantics.world.vocabulary import PLACES


class _Uniforms:
    """Uniform numbers drawn from the generator in one call and handed out one by one
    (a call to the generator costs more than the arithmetic it feeds)."""

    __slots__ = ("_u", "_i")

    def __init__(self, rng: np.random.Generator, n: int = 40):
        self._u = rng.random(n).tolist()
        self._i = 0

    def uniform(self, lo: float, hi: float) -> float:
        x = self._u[self._i]
        self._i += 1
        return lo + (hi - lo) * x

    def integers(self, lo: int, hi: int) -> int:
        return min(int(self.uniform(lo, hi)), hi - 1)

    def random(self) -> float:
        return self.uniform(0.0, 1.0)


def _vary(rng: _Uniforms, rgb, amount=14):
    return np.array([min(255.0, max(0.0, c + rng.uniform(-amount, amount))) for c in rgb])


@cache
def _ramp(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, max(n, 1))[:, None]


def _gradient(top, bottom, n):
    t = _ramp(n)
    return top + (bottom - top) * t


def _background(gen: np.random.Generator, place: str, H: int, W: int) -> tuple[np.ndarray, dict]:
    rng = _Uniforms(gen)
    rows = np.empty((H, 3))
    layout: dict = {}
    sky_top, sky_bottom = _vary(rng, (95, 155, 230)), _vary(rng, (185, 215, 245))
    extra = []  # (y0, y1, x0, x1, rgb) rectangles painted after the rows
    if place == "sky":
        rows[:] = _gradient(sky_top * 0.95, sky_bottom, H)
        layout["horizon"] = 1.0
    elif place in ("beach", "lake", "street", "field", "forest"):
        lo, hi = {
            "beach": (0.3, 0.42),
            "lake": (0.28, 0.4),
            "street": (0.35, 0.45),
            "field": (0.35, 0.5),
            "forest": (0.18, 0.3),
        }[place]
        h = int(round(rng.uniform(lo, hi) * H))
        layout["horizon"] = h / H
        rows[:h] = _gradient(sky_top, sky_bottom, h)
        if place == "beach":
            s = int(round(rng.uniform(0.58, 0.7) * H))
            layout["shore"] = s / H
            rows[h:s] = _gradient(_vary(rng, (30, 95, 175)), _vary(rng, (70, 150, 205)), s - h)
            rows[s:] = _gradient(_vary(rng, (238, 220, 165)), _vary(rng, (220, 195, 140)), H - s)
        elif place == "lake":
            shore = max(2, H // 24)
            rows[h : h + shore] = _vary(rng, (60, 120, 60))
            rows[h + shore :] = _gradient(_vary(rng, (60, 125, 195)), _vary(rng, (30, 80, 160)), H - h - shore)
        elif place == "street":
            r = int(round(rng.uniform(0.55, 0.65) * H))
            layout["road"] = r / H
            rows[h:r] = _gradient(_vary(rng, (175, 170, 165)), _vary(rng, (150, 148, 145)), r - h)
            rows[r:] = _vary(rng, (80, 80, 86), 8)
            ly = int(r + (H - r) * 0.55)
            dash = max(2, W // 10)
            for x0 in range(int(rng.integers(0, dash)), W, 2 * dash):
                extra.append((ly, ly + max(1, H // 40), x0, x0 + dash, (235, 225, 200)))
        elif place == "field":
            rows[h:] = _gradient(_vary(rng, (150, 200, 105)), _vary(rng, (95, 160, 65)), H - h)
        else:  # forest
            g = int(round(rng.uniform(0.6, 0.72) * H))
            layout["ground"] = g / H
            rows[h:g] = _gradient(_vary(rng, (40, 95, 50)), _vary(rng, (30, 75, 40)), g - h)
            rows[g:] = _gradient(_vary(rng, (105, 110, 60)), _vary(rng, (85, 90, 45)), H - g)
            trunk = _vary(rng, (60, 45, 30), 8)
            tw = max(1, W // 32)
            for x0 in [rng.integers(0, W - tw) for _ in range(5)]:
                extra.append((h + (g - h) // 3, g, int(x0), int(x0) + tw, trunk))
    elif place == "room":
        f = int(round(rng.uniform(0.55, 0.7) * H))
        layout["floor"] = f / H
        wall = _vary(rng, (222, 205, 175), 18)
        rows[:f] = _gradient(wall, wall * 0.92, f)
        rows[f:] = _gradient(_vary(rng, (165, 120, 80)), _vary(rng, (140, 100, 65)), H - f)
        extra.append((f, f + max(1, H // 40), 0, W, (110, 80, 55)))
        if rng.random() < 0.6:  # a window on the wall
            wx = int(rng.integers(W // 8, W // 2))
            ww, wh = W // 4, int(f * 0.4)
            wy = int(f * 0.15)
            extra.append((wy, wy + wh, wx, wx + ww, (235, 235, 235)))
            extra.append((wy + 1, wy + wh - 1, wx + 1, wx + ww - 1, (175, 210, 240)))
            layout["window"] = (wx, wy, wx + ww, wy + wh)
    else:
        raise ValueError(f"unknown place {place!r}; choose from {PLACES}")
    img = np.empty((H, W, 3), np.uint8)
    img[:] = rows.astype(np.uint8)[:, None, :]
    for y0, y1, x0, x1, rgb in extra:
        img[y0:y1, x0:x1] = np.asarray(rgb, np.uint8)
    return img, layout
