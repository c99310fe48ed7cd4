"""Sprite primitives (ellipses, rectangles, polygons in a sprite frame), part colours and the class spec."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# fixed part colours
BLACK = (28, 28, 28)
GLASS = (170, 220, 245)
WOOD = (110, 70, 40)
LEAF = (40, 140, 50)
CREAM = (240, 230, 205)
WHITE = (250, 250, 250)
BEAK = (250, 160, 20)
LIGHT_YELLOW = (255, 238, 140)
STEEL = (110, 110, 115)
DARK_STEEL = (70, 70, 75)


# Sprite frame: u in [-aspect, aspect] (right = +u = "front"), v in [-1, 1] (down).
# A primitive is (kind, params, colour); colour is "main" | "dark" | "light" | an RGB
# tuple | None (None erases: removes the pixels from the object drawn so far).


def ellipse(cx, cy, rx, ry, col="main", vmax=math.inf):
    return ("ellipse", (cx, cy, rx, ry, vmax), col)


def rect(x0, y0, x1, y1, col="main"):
    return ("rect", (x0, y0, x1, y1), col)


def polygon(points, col="main"):
    pts = np.asarray(points, dtype=np.float64)
    # half-planes a*u + b*v + c >= 0 inside, whatever the winding order
    nxt = np.roll(pts, -1, axis=0)
    a = -(nxt[:, 1] - pts[:, 1])
    b = nxt[:, 0] - pts[:, 0]
    c = -(a * pts[:, 0] + b * pts[:, 1])
    centroid = pts.mean(0)
    sign = np.sign(a * centroid[0] + b * centroid[1] + c)
    sign[sign == 0] = 1
    return ("poly", tuple(zip(a * sign, b * sign, c * sign)), col)


def sun_rays():
    rays = []
    for k in range(8):
        ang = k * math.pi / 4
        d = math.radians(20)
        p0 = (0.5 * math.cos(ang - d), 0.5 * math.sin(ang - d))
        p1 = (1.0 * math.cos(ang), 1.0 * math.sin(ang))
        p2 = (0.5 * math.cos(ang + d), 0.5 * math.sin(ang + d))
        rays.append(polygon([p0, p1, p2]))
    return rays


def petals():
    out = []
    for k in range(5):
        ang = -math.pi / 2 + k * 2 * math.pi / 5
        out.append(ellipse(0.25 * math.cos(ang), -0.55 + 0.25 * math.sin(ang), 0.2, 0.2))
    return out


@dataclass(frozen=True)
class ClassSpec:
    """One object class of MicroWorld.

    ``places`` are unnormalised affinities place -> weight (the sampler draws a class
    given the place proportionally to them); ``vertical`` is the (lo, hi) range of the
    uniform draw of ``t``, the object's position in its feasible vertical range
    (0 = touching the top of the image, 1 = touching the bottom).
    """

    name: str
    supercategory: str
    parts: tuple[str, ...]
    synonyms: tuple[str, ...]
    places: dict[str, float]
    vertical: tuple[float, float]
    aspect: float = 1.0  # frame half-width / half-height
    symmetric: bool = False  # symmetric classes are never flipped
    primitives: tuple = field(default=(), repr=False)
    keypoints: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)
    surface: tuple[float, float, float] | None = None  # (v, u0, u1) where things can sit


def class_spec(
    name, supercategory, synonyms, places, vertical, aspect, primitives, keypoints, symmetric=False, surface=None
) -> ClassSpec:
    return ClassSpec(
        name=name,
        supercategory=supercategory,
        parts=tuple(keypoints),
        synonyms=tuple(synonyms),
        places=dict(places),
        vertical=vertical,
        aspect=aspect,
        symmetric=symmetric,
        primitives=tuple(primitives),
        keypoints=dict(keypoints),
        surface=surface,
    )
