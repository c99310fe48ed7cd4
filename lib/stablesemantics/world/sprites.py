"""The 20 object classes as procedural sprites: primitives, parts, keypoints and priors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# fixed part colours
_BLACK = (28, 28, 28)
_GLASS = (170, 220, 245)
_WOOD = (110, 70, 40)
_LEAF = (40, 140, 50)
_CREAM = (240, 230, 205)
_WHITE = (250, 250, 250)
_BEAK = (250, 160, 20)
_LIGHT_YELLOW = (255, 238, 140)
_STEEL = (110, 110, 115)
_DARK_STEEL = (70, 70, 75)


# Sprite frame: u in [-aspect, aspect] (right = +u = "front"), v in [-1, 1] (down).
# A primitive is (kind, params, colour); colour is "main" | "dark" | "light" | an RGB
# tuple | None (None erases: removes the pixels from the object drawn so far).


def _E(cx, cy, rx, ry, col="main", vmax=math.inf):
    return ("ellipse", (cx, cy, rx, ry, vmax), col)


def _R(x0, y0, x1, y1, col="main"):
    return ("rect", (x0, y0, x1, y1), col)


def _P(points, col="main"):
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


def _sun_rays():
    rays = []
    for k in range(8):
        ang = k * math.pi / 4
        d = math.radians(20)
        p0 = (0.5 * math.cos(ang - d), 0.5 * math.sin(ang - d))
        p1 = (1.0 * math.cos(ang), 1.0 * math.sin(ang))
        p2 = (0.5 * math.cos(ang + d), 0.5 * math.sin(ang + d))
        rays.append(_P([p0, p1, p2]))
    return rays


def _petals():
    out = []
    for k in range(5):
        ang = -math.pi / 2 + k * 2 * math.pi / 5
        out.append(_E(0.25 * math.cos(ang), -0.55 + 0.25 * math.sin(ang), 0.2, 0.2))
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


def _spec(
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


_SPECS = [
    # ---------------------------------------------------------------- animals
    _spec(
        "dog",
        "animal",
        ("dog", "puppy"),
        {"street": 2, "room": 2, "field": 3, "beach": 2, "forest": 1},
        (0.75, 1.0),
        1.4,
        [
            _P([(-1.0, -0.15), (-1.4, -0.75), (-1.22, -0.82), (-0.8, -0.3)], "dark"),
            _E(-0.15, 0.05, 0.85, 0.38),
            _R(-0.85, 0.2, -0.55, 1.0),
            _R(0.35, 0.2, 0.65, 1.0),
            _E(0.75, -0.45, 0.42, 0.38),
            _E(1.12, -0.32, 0.28, 0.18, "light"),
            _E(1.32, -0.36, 0.09, 0.09, _BLACK),
            _P([(0.48, -0.78), (0.75, -0.8), (0.58, -0.15), (0.4, -0.3)], "dark"),
            _E(0.87, -0.56, 0.09, 0.09, _BLACK),
        ],
        {
            "head": (0.72, -0.42),
            "nose": (1.32, -0.36),
            "eye": (0.87, -0.56),
            "ear": (0.55, -0.45),
            "tail": (-1.18, -0.6),
            "front leg": (0.5, 0.85),
            "back leg": (-0.7, 0.85),
        },
    ),
    _spec(
        "cat",
        "animal",
        ("cat", "kitten"),
        {"room": 4, "street": 1, "field": 1},
        (0.7, 1.0),
        0.9,
        [
            _P([(-0.45, 0.78), (-0.9, 0.2), (-0.75, 0.08), (-0.3, 0.6)], "dark"),
            _E(-0.1, 0.4, 0.6, 0.6),
            _E(0.3, -0.35, 0.42, 0.38),
            _P([(0.0, -0.55), (0.05, -1.0), (0.3, -0.68)]),
            _P([(0.35, -0.7), (0.62, -1.0), (0.68, -0.5)]),
            _E(0.47, -0.4, 0.1, 0.11, (235, 210, 50)),
            _E(0.25, 0.9, 0.22, 0.1, "light"),
        ],
        {"head": (0.25, -0.3), "ear": (0.55, -0.75), "eye": (0.47, -0.4), "tail": (-0.68, 0.4), "paw": (0.25, 0.9)},
    ),
    _spec(
        "bird",
        "animal",
        ("bird",),
        {"sky": 3, "beach": 1, "forest": 2, "field": 2, "lake": 2},
        (0.05, 0.5),
        1.3,
        [
            _P([(-0.55, -0.05), (-1.3, -0.45), (-1.3, 0.35)], "dark"),
            _R(-0.16, 0.5, 0.04, 1.0, _BEAK),
            _E(-0.1, 0.15, 0.7, 0.45),
            _E(0.6, -0.35, 0.38, 0.36),
            _P([(0.9, -0.5), (1.3, -0.3), (0.9, -0.12)], _BEAK),
            _E(0.7, -0.45, 0.1, 0.1, _BLACK),
            _P([(-0.5, 0.05), (0.3, 0.05), (-0.3, -0.9)], "dark"),
        ],
        {
            "beak": (1.05, -0.31),
            "eye": (0.7, -0.45),
            "head": (0.55, -0.25),
            "tail": (-1.1, -0.05),
            "wing": (-0.17, -0.25),
            "feet": (-0.06, 0.85),
        },
    ),
    _spec(
        "fish",
        "animal",
        ("fish",),
        {"lake": 3, "beach": 1},
        (0.6, 1.0),
        1.7,
        [
            _P([(-0.9, 0.0), (-1.7, -0.8), (-1.7, 0.8)], "dark"),
            _P([(-0.4, -0.5), (0.1, -1.0), (0.35, -0.5)], "dark"),
            _P([(-0.1, 0.5), (0.3, 0.5), (-0.25, 0.92)], "dark"),
            _E(0.05, 0.0, 1.05, 0.62),
            _E(0.65, -0.15, 0.13, 0.13, _BLACK),
        ],
        {"eye": (0.65, -0.15), "mouth": (1.0, 0.08), "tail": (-1.45, 0.0), "fin": (0.0, -0.68), "belly": (0.0, 0.4)},
    ),
    # ---------------------------------------------------------------- vehicles
    _spec(
        "car",
        "vehicle",
        ("car", "automobile"),
        {"street": 5, "field": 0.5, "beach": 0.3},
        (0.8, 1.0),
        2.0,
        [
            _R(-2.0, -0.15, 2.0, 0.55),
            _P([(-1.15, -0.15), (-0.7, -0.95), (0.55, -0.95), (1.15, -0.15)]),
            _P([(-0.95, -0.2), (-0.6, -0.8), (0.45, -0.8), (0.9, -0.2)], _GLASS),
            _R(-0.12, -0.85, 0.05, -0.15),
            _R(1.8, -0.05, 2.0, 0.15, _LIGHT_YELLOW),
            _R(-2.0, -0.05, -1.85, 0.15, (200, 30, 30)),
            _E(-1.2, 0.55, 0.45, 0.45, _BLACK),
            _E(1.2, 0.55, 0.45, 0.45, _BLACK),
            _E(-1.2, 0.55, 0.17, 0.17, (185, 185, 190)),
            _E(1.2, 0.55, 0.17, 0.17, (185, 185, 190)),
        ],
        {
            "front wheel": (1.2, 0.55),
            "back wheel": (-1.2, 0.55),
            "window": (0.35, -0.5),
            "roof": (0.0, -0.9),
            "headlight": (1.9, 0.05),
            "taillight": (-1.93, 0.05),
        },
    ),
    _spec(
        "boat",
        "vehicle",
        ("boat", "ship"),
        {"lake": 5, "beach": 4},
        (0.45, 0.8),
        1.6,
        [
            _R(-0.12, -1.0, 0.08, 0.3, _WOOD),
            _P([(0.12, -0.95), (0.12, 0.15), (1.0, 0.15)], _WHITE),
            _P([(-0.17, -0.8), (-0.17, 0.15), (-0.8, 0.15)], (232, 232, 220)),
            _P([(-1.6, 0.25), (1.6, 0.25), (1.15, 1.0), (-1.15, 1.0)]),
            _R(-1.45, 0.42, 1.45, 0.52, "light"),
        ],
        {"bow": (1.45, 0.32), "stern": (-1.45, 0.32), "mast": (-0.03, -0.9), "sail": (0.4, -0.1), "keel": (0.0, 0.85)},
    ),
    _spec(
        "plane",
        "vehicle",
        ("plane", "airplane"),
        {"sky": 4, "beach": 0.5, "lake": 0.5, "field": 0.3},
        (0.05, 0.4),
        2.0,
        [
            _P([(-2.0, -0.95), (-1.65, -0.95), (-1.15, -0.1), (-1.97, -0.1)], "dark"),
            _E(0.0, 0.0, 2.0, 0.38),
            _E(1.45, -0.12, 0.3, 0.14, _GLASS),
            _P([(0.35, 0.05), (-0.2, 0.05), (-0.75, 0.95), (-0.35, 0.95)], "dark"),
            _E(-0.1, 0.42, 0.3, 0.14, (150, 150, 160)),
        ],
        {
            "nose": (1.85, 0.0),
            "cockpit": (1.45, -0.12),
            "tail": (-1.72, -0.6),
            "wing": (-0.45, 0.7),
            "engine": (-0.1, 0.42),
        },
    ),
    _spec(
        "bus",
        "vehicle",
        ("bus",),
        {"street": 4},
        (0.75, 1.0),
        1.9,
        [
            _R(-1.9, -0.9, 1.9, 0.6),
            _R(-1.7, -0.7, -0.9, -0.15, _GLASS),
            _R(-0.7, -0.7, 0.1, -0.15, _GLASS),
            _R(0.3, -0.7, 1.1, -0.15, _GLASS),
            _R(1.35, -0.7, 1.9, -0.15, _GLASS),
            _R(1.42, -0.05, 1.75, 0.6, "dark"),
            _E(-1.2, 0.6, 0.4, 0.4, _BLACK),
            _E(0.95, 0.6, 0.4, 0.4, _BLACK),
        ],
        {
            "front wheel": (0.95, 0.6),
            "back wheel": (-1.2, 0.6),
            "window": (-0.3, -0.42),
            "windshield": (1.62, -0.42),
            "door": (1.58, 0.2),
        },
    ),
    # ---------------------------------------------------------------- plants
    _spec(
        "tree",
        "plant",
        ("tree",),
        {"forest": 5, "field": 3, "street": 1, "beach": 0.5, "lake": 1},
        (0.45, 0.85),
        0.75,
        [_R(-0.15, 0.1, 0.15, 1.0, _WOOD), _E(0.0, -0.4, 0.75, 0.6), _E(-0.25, -0.55, 0.2, 0.15, "light")],
        {"top": (0.0, -0.88), "crown": (0.15, -0.3), "trunk": (0.0, 0.6), "base": (0.0, 0.93)},
        symmetric=True,
    ),
    _spec(
        "flower",
        "plant",
        ("flower",),
        {"field": 4, "forest": 1, "room": 1},
        (0.75, 1.0),
        0.6,
        [
            _R(-0.07, -0.3, 0.07, 1.0, _LEAF),
            _E(0.27, 0.45, 0.25, 0.1, _LEAF),
            *_petals(),
            _E(0.0, -0.55, 0.15, 0.15, (120, 70, 30)),
        ],
        {"blossom": (0.0, -0.55), "petal": (0.0, -0.82), "stem": (0.0, 0.2), "leaf": (0.3, 0.45)},
    ),
    _spec(
        "mushroom",
        "plant",
        ("mushroom",),
        {"forest": 4, "field": 1},
        (0.75, 1.0),
        1.0,
        [
            _R(-0.28, -0.05, 0.28, 1.0, _CREAM),
            _E(0.0, 0.05, 1.0, 0.95, "main", vmax=0.05),
            _E(-0.45, -0.35, 0.15, 0.12, _WHITE),
            _E(0.1, -0.62, 0.17, 0.13, _WHITE),
            _E(0.5, -0.28, 0.13, 0.11, _WHITE),
        ],
        {"cap": (0.0, -0.4), "spot": (0.1, -0.62), "stem": (0.0, 0.55), "base": (0.0, 0.93)},
        symmetric=True,
    ),
    # ---------------------------------------------------------------- furniture
    _spec(
        "table",
        "furniture",
        ("table", "desk"),
        {"room": 5, "beach": 0.5, "field": 0.5},
        (0.7, 1.0),
        1.5,
        [
            _R(-1.5, -0.6, 1.5, -0.3),
            _R(-1.3, -0.3, 1.3, -0.15, "dark"),
            _R(-1.3, -0.3, -1.05, 1.0, "dark"),
            _R(1.05, -0.3, 1.3, 1.0, "dark"),
        ],
        {
            "top": (0.0, -0.45),
            "left corner": (-1.42, -0.45),
            "right corner": (1.42, -0.45),
            "left leg": (-1.18, 0.8),
            "right leg": (1.18, 0.8),
        },
        symmetric=True,
        surface=(-0.6, -1.2, 1.2),
    ),
    _spec(
        "chair",
        "furniture",
        ("chair",),
        {"room": 5, "beach": 1, "street": 0.3},
        (0.7, 1.0),
        0.75,
        [
            _R(-0.75, -1.0, -0.45, 0.05),
            _R(-0.75, -1.0, 0.0, -0.78),
            _R(-0.75, -0.05, 0.75, 0.2),
            _R(-0.75, 0.2, -0.5, 1.0, "dark"),
            _R(0.5, 0.2, 0.75, 1.0, "dark"),
        ],
        {"backrest": (-0.6, -0.6), "seat": (0.1, 0.08), "front leg": (0.62, 0.85), "back leg": (-0.62, 0.85)},
        surface=(-0.05, -0.35, 0.65),
    ),
    _spec(
        "lamp",
        "furniture",
        ("lamp",),
        {"room": 4, "street": 1},
        (0.6, 0.95),
        0.7,
        [
            _R(-0.09, -0.4, 0.09, 0.85, _STEEL),
            _E(0.0, 0.88, 0.5, 0.12, _DARK_STEEL),
            _P([(-0.3, -1.0), (0.3, -1.0), (0.65, -0.35), (-0.65, -0.35)]),
            _E(0.0, -0.3, 0.16, 0.1, _LIGHT_YELLOW),
        ],
        {"shade": (0.0, -0.68), "bulb": (0.0, -0.26), "pole": (0.0, 0.3), "base": (0.0, 0.88)},
        symmetric=True,
    ),
    # ---------------------------------------------------------------- household / food
    _spec(
        "cup",
        "household",
        ("cup", "mug"),
        {"room": 4},
        (0.55, 0.95),
        1.0,
        [
            _E(0.55, 0.1, 0.42, 0.4),
            _E(0.55, 0.1, 0.2, 0.2, None),
            _P([(-0.75, -0.7), (0.5, -0.7), (0.4, 0.95), (-0.65, 0.95)]),
            _E(-0.125, -0.7, 0.625, 0.12, "dark"),
        ],
        {"rim": (-0.125, -0.7), "handle": (0.86, 0.1), "body": (-0.1, 0.2), "base": (-0.1, 0.85)},
    ),
    _spec(
        "ball",
        "household",
        ("ball",),
        {"beach": 3, "field": 2, "room": 2, "street": 0.5},
        (0.7, 1.0),
        1.0,
        [_E(0.0, 0.0, 1.0, 1.0), _E(0.0, 0.0, 0.97, 0.28, _WHITE), _E(-0.42, -0.55, 0.18, 0.14, "light")],
        {"top": (0.0, -0.7), "stripe": (0.55, 0.0), "highlight": (-0.42, -0.55), "bottom": (0.0, 0.7)},
        symmetric=True,
    ),
    _spec(
        "apple",
        "household",
        ("apple",),
        {"room": 3, "field": 1, "forest": 0.5},
        (0.6, 1.0),
        1.0,
        [
            _E(-0.3, 0.15, 0.62, 0.8),
            _E(0.3, 0.15, 0.62, 0.8),
            _R(-0.05, -0.95, 0.07, -0.45, _WOOD),
            _P([(0.07, -0.7), (0.45, -0.95), (0.65, -0.75), (0.3, -0.6)], _LEAF),
            _E(-0.45, -0.1, 0.12, 0.2, "light"),
        ],
        {"stem": (0.01, -0.8), "leaf": (0.38, -0.77), "body": (0.1, 0.3), "bottom": (0.0, 0.85)},
    ),
    # ---------------------------------------------------------------- sky things
    _spec(
        "sun",
        "sky",
        ("sun",),
        {"sky": 3, "beach": 2, "field": 2, "lake": 2, "street": 0.5, "forest": 0.5},
        (0.0, 0.25),
        1.0,
        [*_sun_rays(), _E(0.0, 0.0, 0.58, 0.58)],
        {
            "centre": (0.0, 0.0),
            "top ray": (0.0, -0.72),
            "right ray": (0.72, 0.0),
            "bottom ray": (0.0, 0.72),
            "left ray": (-0.72, 0.0),
        },
        symmetric=True,
    ),
    _spec(
        "moon",
        "sky",
        ("moon",),
        {"sky": 2, "lake": 1, "field": 0.5, "street": 0.3, "forest": 0.3},
        (0.0, 0.25),
        1.0,
        [_E(0.0, 0.0, 1.0, 1.0), _E(0.5, -0.25, 0.85, 0.85, None)],
        {"upper tip": (-0.2, -0.88), "lower tip": (0.25, 0.88), "back": (-0.85, 0.1)},
    ),
    _spec(
        "cloud",
        "sky",
        ("cloud",),
        {"sky": 5, "beach": 1.5, "field": 1.5, "lake": 1.5, "street": 1, "forest": 0.5},
        (0.0, 0.35),
        1.7,
        [
            _E(-0.95, 0.3, 0.7, 0.55),
            _E(0.1, -0.15, 0.85, 0.8),
            _E(1.0, 0.3, 0.65, 0.5),
            _R(-0.95, 0.2, 1.0, 0.85),
            _E(0.0, -0.45, 0.4, 0.22, "light"),
        ],
        {"left puff": (-1.2, 0.3), "top puff": (0.1, -0.6), "right puff": (1.25, 0.3), "bottom": (0.0, 0.7)},
        symmetric=True,
    ),
]

CLASSES: dict[str, ClassSpec] = {s.name: s for s in _SPECS}
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
SUPERCATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(s.supercategory for s in _SPECS))

#: Pairs that like to appear together: symmetric weights used when the sampler draws a
#: "partner" of an object already in the scene.
PAIRS: dict[tuple[str, str], float] = {
    ("table", "chair"): 3,
    ("table", "cup"): 3,
    ("table", "lamp"): 2,
    ("table", "apple"): 2,
    ("dog", "ball"): 3,
    ("cat", "ball"): 1,
    ("dog", "cat"): 1,
    ("bird", "tree"): 2,
    ("sun", "cloud"): 2,
    ("plane", "cloud"): 2,
    ("moon", "cloud"): 1,
    ("boat", "fish"): 1,
    ("boat", "bird"): 1,
    ("car", "bus"): 2,
    ("car", "tree"): 1,
    ("flower", "tree"): 1,
    ("mushroom", "tree"): 2,
    ("apple", "tree"): 1,
    ("chair", "lamp"): 1,
    ("cup", "apple"): 1,
    ("dog", "tree"): 1,
}
#: (thing, supporter) pairs that may be placed "on" the supporter's surface.
ON_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("cup", "table"),
        ("apple", "table"),
        ("lamp", "table"),
        ("cat", "table"),
        ("ball", "table"),
        ("cat", "chair"),
        ("ball", "chair"),
        ("apple", "chair"),
    }
)
