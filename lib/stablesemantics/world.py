"""MicroWorld: a procedural world of small scenes with exact ground truth.

Every scene is a background *place* (sky, beach, street, room, forest, field, lake)
with 1-4 objects drawn on it. Each object belongs to one of 20 classes (6
supercategories), is a procedural sprite made of a few primitives (ellipses,
rectangles, convex polygons), has named parts with keypoints, a main colour, a size,
a position, an optional horizontal flip and a little shape jitter. Rendering is
vectorised NumPy on the pixels of each object's bounding box only, so a 64x64 scene
takes well under a millisecond.

Ground truth per scene: instance and class masks (visible pixels after occlusion;
later objects are drawn on top), tight boxes, part keypoints with visibility,
attributes, pairwise relations, a clean caption with the character span of every
object's noun phrase, and the place.

The sampler follows explicit priors (place -> class, class -> vertical position,
class <-> class co-occurrence); :func:`true_priors` returns them as DataFrames so an
analysis can check what it rediscovers.

Example
-------
>>> import numpy as np
>>> from stablesemantics.world import sample_scene, render_scenes
>>> scene = sample_scene(np.random.default_rng(0))
>>> scene.image.shape, scene.image.dtype
((64, 64, 3), dtype('uint8'))
>>> s, e = scene.object_spans[0]
>>> scene.caption[s:e].endswith(scene.objects[0].noun)
True
>>> len(render_scenes(3, seed=1))
3
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

__all__ = [
    "ClassSpec",
    "CLASSES",
    "CLASS_INDEX",
    "SUPERCATEGORIES",
    "PLACES",
    "PLACE_INDEX",
    "PLACE_PHRASES",
    "COLOURS",
    "SIZES",
    "SIZE_PIXELS",
    "WorldConfig",
    "SceneObject",
    "Scene",
    "sample_scene",
    "render_scenes",
    "scene_at",
    "render_object",
    "noisy_prompt",
    "true_priors",
    "stack_images",
    "PAIRS",
    "ON_PAIRS",
    "STYLE_TAILS",
    "PROMPT_PREFIXES",
    "PROMPT_FLAGS",
    "PROMPT_TAGS",
    "class_table",
    "scene_statistics",
    "measure_speed",
    "plot_scenes",
    "plot_ground_truth",
    "plot_priors",
]

# --------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------

PLACES: tuple[str, ...] = ("sky", "beach", "street", "room", "forest", "field", "lake")
PLACE_INDEX: dict[str, int] = {p: i for i, p in enumerate(PLACES)}

#: Caption phrases per place; the first is the most frequent (p=0.7). The place noun is
#: the last word of each phrase.
PLACE_PHRASES: dict[str, tuple[str, ...]] = {
    "sky": ("in the sky",),
    "beach": ("on a beach", "on the shore"),
    "street": ("on a street", "on the road"),
    "room": ("in a room", "in the room"),
    "forest": ("in a forest", "in the woods"),
    "field": ("in a field", "in a meadow"),
    "lake": ("on a lake", "on the lake"),
}

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 165, 55),
    "blue": (35, 75, 215),
    "yellow": (245, 215, 35),
    "orange": (245, 135, 25),
    "purple": (135, 55, 185),
    "pink": (245, 125, 180),
    "brown": (125, 75, 35),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
    "gray": (145, 145, 150),
}
_COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

SIZES: tuple[str, ...] = ("small", "medium", "large")
#: Largest extent (width or height) of an object's frame, in pixels at 64x64; scaled
#: linearly with the image size and jittered by +-10 %.
SIZE_PIXELS: dict[str, float] = {"small": 14.0, "medium": 22.0, "large": 32.0}
_SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little"),
    "medium": ("medium",),
    "large": ("large", "big"),
}

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


# --------------------------------------------------------------------------------------
# Sprites
# --------------------------------------------------------------------------------------
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


def _spec(name, supercategory, synonyms, places, vertical, aspect, primitives, keypoints,
          symmetric=False, surface=None) -> ClassSpec:
    return ClassSpec(name=name, supercategory=supercategory, parts=tuple(keypoints),
                     synonyms=tuple(synonyms), places=dict(places), vertical=vertical,
                     aspect=aspect, symmetric=symmetric, primitives=tuple(primitives),
                     keypoints=dict(keypoints), surface=surface)


_SPECS = [
    # ---------------------------------------------------------------- animals
    _spec("dog", "animal", ("dog", "puppy"),
          {"street": 2, "room": 2, "field": 3, "beach": 2, "forest": 1}, (0.75, 1.0), 1.4,
          [_P([(-1.0, -0.15), (-1.4, -0.75), (-1.22, -0.82), (-0.8, -0.3)], "dark"),
           _E(-0.15, 0.05, 0.85, 0.38),
           _R(-0.85, 0.2, -0.55, 1.0), _R(0.35, 0.2, 0.65, 1.0),
           _E(0.75, -0.45, 0.42, 0.38),
           _E(1.12, -0.32, 0.28, 0.18, "light"),
           _E(1.32, -0.36, 0.09, 0.09, _BLACK),
           _P([(0.48, -0.78), (0.75, -0.8), (0.58, -0.15), (0.4, -0.3)], "dark"),
           _E(0.87, -0.56, 0.09, 0.09, _BLACK)],
          {"head": (0.72, -0.42), "nose": (1.32, -0.36), "eye": (0.87, -0.56),
           "ear": (0.55, -0.45), "tail": (-1.18, -0.6), "front leg": (0.5, 0.85),
           "back leg": (-0.7, 0.85)}),
    _spec("cat", "animal", ("cat", "kitten"),
          {"room": 4, "street": 1, "field": 1}, (0.7, 1.0), 0.9,
          [_P([(-0.45, 0.78), (-0.9, 0.2), (-0.75, 0.08), (-0.3, 0.6)], "dark"),
           _E(-0.1, 0.4, 0.6, 0.6),
           _E(0.3, -0.35, 0.42, 0.38),
           _P([(0.0, -0.55), (0.05, -1.0), (0.3, -0.68)]),
           _P([(0.35, -0.7), (0.62, -1.0), (0.68, -0.5)]),
           _E(0.47, -0.4, 0.1, 0.11, (235, 210, 50)),
           _E(0.25, 0.9, 0.22, 0.1, "light")],
          {"head": (0.25, -0.3), "ear": (0.55, -0.75), "eye": (0.47, -0.4),
           "tail": (-0.68, 0.4), "paw": (0.25, 0.9)}),
    _spec("bird", "animal", ("bird",),
          {"sky": 3, "beach": 1, "forest": 2, "field": 2, "lake": 2}, (0.05, 0.5), 1.3,
          [_P([(-0.55, -0.05), (-1.3, -0.45), (-1.3, 0.35)], "dark"),
           _R(-0.16, 0.5, 0.04, 1.0, _BEAK),
           _E(-0.1, 0.15, 0.7, 0.45),
           _E(0.6, -0.35, 0.38, 0.36),
           _P([(0.9, -0.5), (1.3, -0.3), (0.9, -0.12)], _BEAK),
           _E(0.7, -0.45, 0.1, 0.1, _BLACK),
           _P([(-0.5, 0.05), (0.3, 0.05), (-0.3, -0.9)], "dark")],
          {"beak": (1.05, -0.31), "eye": (0.7, -0.45), "head": (0.55, -0.25),
           "tail": (-1.1, -0.05), "wing": (-0.17, -0.25), "feet": (-0.06, 0.85)}),
    _spec("fish", "animal", ("fish",),
          {"lake": 3, "beach": 1}, (0.6, 1.0), 1.7,
          [_P([(-0.9, 0.0), (-1.7, -0.8), (-1.7, 0.8)], "dark"),
           _P([(-0.4, -0.5), (0.1, -1.0), (0.35, -0.5)], "dark"),
           _P([(-0.1, 0.5), (0.3, 0.5), (-0.25, 0.92)], "dark"),
           _E(0.05, 0.0, 1.05, 0.62),
           _E(0.65, -0.15, 0.13, 0.13, _BLACK)],
          {"eye": (0.65, -0.15), "mouth": (1.0, 0.08), "tail": (-1.45, 0.0),
           "fin": (0.0, -0.68), "belly": (0.0, 0.4)}),
    # ---------------------------------------------------------------- vehicles
    _spec("car", "vehicle", ("car", "automobile"),
          {"street": 5, "field": 0.5, "beach": 0.3}, (0.8, 1.0), 2.0,
          [_R(-2.0, -0.15, 2.0, 0.55),
           _P([(-1.15, -0.15), (-0.7, -0.95), (0.55, -0.95), (1.15, -0.15)]),
           _P([(-0.95, -0.2), (-0.6, -0.8), (0.45, -0.8), (0.9, -0.2)], _GLASS),
           _R(-0.12, -0.85, 0.05, -0.15),
           _R(1.8, -0.05, 2.0, 0.15, _LIGHT_YELLOW),
           _R(-2.0, -0.05, -1.85, 0.15, (200, 30, 30)),
           _E(-1.2, 0.55, 0.45, 0.45, _BLACK), _E(1.2, 0.55, 0.45, 0.45, _BLACK),
           _E(-1.2, 0.55, 0.17, 0.17, (185, 185, 190)),
           _E(1.2, 0.55, 0.17, 0.17, (185, 185, 190))],
          {"front wheel": (1.2, 0.55), "back wheel": (-1.2, 0.55), "window": (0.35, -0.5),
           "roof": (0.0, -0.9), "headlight": (1.9, 0.05), "taillight": (-1.93, 0.05)}),
    _spec("boat", "vehicle", ("boat", "ship"),
          {"lake": 5, "beach": 4}, (0.45, 0.8), 1.6,
          [_R(-0.12, -1.0, 0.08, 0.3, _WOOD),
           _P([(0.12, -0.95), (0.12, 0.15), (1.0, 0.15)], _WHITE),
           _P([(-0.17, -0.8), (-0.17, 0.15), (-0.8, 0.15)], (232, 232, 220)),
           _P([(-1.6, 0.25), (1.6, 0.25), (1.15, 1.0), (-1.15, 1.0)]),
           _R(-1.45, 0.42, 1.45, 0.52, "light")],
          {"bow": (1.45, 0.32), "stern": (-1.45, 0.32), "mast": (-0.03, -0.9),
           "sail": (0.4, -0.1), "keel": (0.0, 0.85)}),
    _spec("plane", "vehicle", ("plane", "airplane"),
          {"sky": 4, "beach": 0.5, "lake": 0.5, "field": 0.3}, (0.05, 0.4), 2.0,
          [_P([(-2.0, -0.95), (-1.65, -0.95), (-1.15, -0.1), (-1.97, -0.1)], "dark"),
           _E(0.0, 0.0, 2.0, 0.38),
           _E(1.45, -0.12, 0.3, 0.14, _GLASS),
           _P([(0.35, 0.05), (-0.2, 0.05), (-0.75, 0.95), (-0.35, 0.95)], "dark"),
           _E(-0.1, 0.42, 0.3, 0.14, (150, 150, 160))],
          {"nose": (1.85, 0.0), "cockpit": (1.45, -0.12), "tail": (-1.72, -0.6),
           "wing": (-0.45, 0.7), "engine": (-0.1, 0.42)}),
    _spec("bus", "vehicle", ("bus",),
          {"street": 4}, (0.75, 1.0), 1.9,
          [_R(-1.9, -0.9, 1.9, 0.6),
           _R(-1.7, -0.7, -0.9, -0.15, _GLASS), _R(-0.7, -0.7, 0.1, -0.15, _GLASS),
           _R(0.3, -0.7, 1.1, -0.15, _GLASS), _R(1.35, -0.7, 1.9, -0.15, _GLASS),
           _R(1.42, -0.05, 1.75, 0.6, "dark"),
           _E(-1.2, 0.6, 0.4, 0.4, _BLACK), _E(0.95, 0.6, 0.4, 0.4, _BLACK)],
          {"front wheel": (0.95, 0.6), "back wheel": (-1.2, 0.6), "window": (-0.3, -0.42),
           "windshield": (1.62, -0.42), "door": (1.58, 0.2)}),
    # ---------------------------------------------------------------- plants
    _spec("tree", "plant", ("tree",),
          {"forest": 5, "field": 3, "street": 1, "beach": 0.5, "lake": 1}, (0.45, 0.85), 0.75,
          [_R(-0.15, 0.1, 0.15, 1.0, _WOOD),
           _E(0.0, -0.4, 0.75, 0.6),
           _E(-0.25, -0.55, 0.2, 0.15, "light")],
          {"top": (0.0, -0.88), "crown": (0.15, -0.3), "trunk": (0.0, 0.6), "base": (0.0, 0.93)},
          symmetric=True),
    _spec("flower", "plant", ("flower",),
          {"field": 4, "forest": 1, "room": 1}, (0.75, 1.0), 0.6,
          [_R(-0.07, -0.3, 0.07, 1.0, _LEAF),
           _E(0.27, 0.45, 0.25, 0.1, _LEAF),
           *_petals(),
           _E(0.0, -0.55, 0.15, 0.15, (120, 70, 30))],
          {"blossom": (0.0, -0.55), "petal": (0.0, -0.82), "stem": (0.0, 0.2),
           "leaf": (0.3, 0.45)}),
    _spec("mushroom", "plant", ("mushroom",),
          {"forest": 4, "field": 1}, (0.75, 1.0), 1.0,
          [_R(-0.28, -0.05, 0.28, 1.0, _CREAM),
           _E(0.0, 0.05, 1.0, 0.95, "main", vmax=0.05),
           _E(-0.45, -0.35, 0.15, 0.12, _WHITE), _E(0.1, -0.62, 0.17, 0.13, _WHITE),
           _E(0.5, -0.28, 0.13, 0.11, _WHITE)],
          {"cap": (0.0, -0.4), "spot": (0.1, -0.62), "stem": (0.0, 0.55), "base": (0.0, 0.93)},
          symmetric=True),
    # ---------------------------------------------------------------- furniture
    _spec("table", "furniture", ("table", "desk"),
          {"room": 5, "beach": 0.5, "field": 0.5}, (0.7, 1.0), 1.5,
          [_R(-1.5, -0.6, 1.5, -0.3),
           _R(-1.3, -0.3, 1.3, -0.15, "dark"),
           _R(-1.3, -0.3, -1.05, 1.0, "dark"), _R(1.05, -0.3, 1.3, 1.0, "dark")],
          {"top": (0.0, -0.45), "left corner": (-1.42, -0.45), "right corner": (1.42, -0.45),
           "left leg": (-1.18, 0.8), "right leg": (1.18, 0.8)},
          symmetric=True, surface=(-0.6, -1.2, 1.2)),
    _spec("chair", "furniture", ("chair",),
          {"room": 5, "beach": 1, "street": 0.3}, (0.7, 1.0), 0.75,
          [_R(-0.75, -1.0, -0.45, 0.05),
           _R(-0.75, -1.0, 0.0, -0.78),
           _R(-0.75, -0.05, 0.75, 0.2),
           _R(-0.75, 0.2, -0.5, 1.0, "dark"), _R(0.5, 0.2, 0.75, 1.0, "dark")],
          {"backrest": (-0.6, -0.6), "seat": (0.1, 0.08), "front leg": (0.62, 0.85),
           "back leg": (-0.62, 0.85)},
          surface=(-0.05, -0.35, 0.65)),
    _spec("lamp", "furniture", ("lamp",),
          {"room": 4, "street": 1}, (0.6, 0.95), 0.7,
          [_R(-0.09, -0.4, 0.09, 0.85, _STEEL),
           _E(0.0, 0.88, 0.5, 0.12, _DARK_STEEL),
           _P([(-0.3, -1.0), (0.3, -1.0), (0.65, -0.35), (-0.65, -0.35)]),
           _E(0.0, -0.3, 0.16, 0.1, _LIGHT_YELLOW)],
          {"shade": (0.0, -0.68), "bulb": (0.0, -0.26), "pole": (0.0, 0.3), "base": (0.0, 0.88)},
          symmetric=True),
    # ---------------------------------------------------------------- household / food
    _spec("cup", "household", ("cup", "mug"),
          {"room": 4}, (0.55, 0.95), 1.0,
          [_E(0.55, 0.1, 0.42, 0.4),
           _E(0.55, 0.1, 0.2, 0.2, None),
           _P([(-0.75, -0.7), (0.5, -0.7), (0.4, 0.95), (-0.65, 0.95)]),
           _E(-0.125, -0.7, 0.625, 0.12, "dark")],
          {"rim": (-0.125, -0.7), "handle": (0.86, 0.1), "body": (-0.1, 0.2), "base": (-0.1, 0.85)}),
    _spec("ball", "household", ("ball",),
          {"beach": 3, "field": 2, "room": 2, "street": 0.5}, (0.7, 1.0), 1.0,
          [_E(0.0, 0.0, 1.0, 1.0),
           _E(0.0, 0.0, 0.97, 0.28, _WHITE),
           _E(-0.42, -0.55, 0.18, 0.14, "light")],
          {"top": (0.0, -0.7), "stripe": (0.55, 0.0), "highlight": (-0.42, -0.55),
           "bottom": (0.0, 0.7)},
          symmetric=True),
    _spec("apple", "household", ("apple",),
          {"room": 3, "field": 1, "forest": 0.5}, (0.6, 1.0), 1.0,
          [_E(-0.3, 0.15, 0.62, 0.8), _E(0.3, 0.15, 0.62, 0.8),
           _R(-0.05, -0.95, 0.07, -0.45, _WOOD),
           _P([(0.07, -0.7), (0.45, -0.95), (0.65, -0.75), (0.3, -0.6)], _LEAF),
           _E(-0.45, -0.1, 0.12, 0.2, "light")],
          {"stem": (0.01, -0.8), "leaf": (0.38, -0.77), "body": (0.1, 0.3), "bottom": (0.0, 0.85)}),
    # ---------------------------------------------------------------- sky things
    _spec("sun", "sky", ("sun",),
          {"sky": 3, "beach": 2, "field": 2, "lake": 2, "street": 0.5, "forest": 0.5},
          (0.0, 0.25), 1.0,
          [*_sun_rays(), _E(0.0, 0.0, 0.58, 0.58)],
          {"centre": (0.0, 0.0), "top ray": (0.0, -0.72), "right ray": (0.72, 0.0),
           "bottom ray": (0.0, 0.72), "left ray": (-0.72, 0.0)},
          symmetric=True),
    _spec("moon", "sky", ("moon",),
          {"sky": 2, "lake": 1, "field": 0.5, "street": 0.3, "forest": 0.3}, (0.0, 0.25), 1.0,
          [_E(0.0, 0.0, 1.0, 1.0), _E(0.5, -0.25, 0.85, 0.85, None)],
          {"upper tip": (-0.2, -0.88), "lower tip": (0.25, 0.88), "back": (-0.85, 0.1)}),
    _spec("cloud", "sky", ("cloud",),
          {"sky": 5, "beach": 1.5, "field": 1.5, "lake": 1.5, "street": 1, "forest": 0.5},
          (0.0, 0.35), 1.7,
          [_E(-0.95, 0.3, 0.7, 0.55), _E(0.1, -0.15, 0.85, 0.8), _E(1.0, 0.3, 0.65, 0.5),
           _R(-0.95, 0.2, 1.0, 0.85),
           _E(0.0, -0.45, 0.4, 0.22, "light")],
          {"left puff": (-1.2, 0.3), "top puff": (0.1, -0.6), "right puff": (1.25, 0.3),
           "bottom": (0.0, 0.7)},
          symmetric=True),
]

CLASSES: dict[str, ClassSpec] = {s.name: s for s in _SPECS}
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
SUPERCATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(s.supercategory for s in _SPECS))

#: Pairs that like to appear together: symmetric weights used when the sampler draws a
#: "partner" of an object already in the scene.
PAIRS: dict[tuple[str, str], float] = {
    ("table", "chair"): 3, ("table", "cup"): 3, ("table", "lamp"): 2, ("table", "apple"): 2,
    ("dog", "ball"): 3, ("cat", "ball"): 1, ("dog", "cat"): 1, ("bird", "tree"): 2,
    ("sun", "cloud"): 2, ("plane", "cloud"): 2, ("moon", "cloud"): 1, ("boat", "fish"): 1,
    ("boat", "bird"): 1, ("car", "bus"): 2, ("car", "tree"): 1, ("flower", "tree"): 1,
    ("mushroom", "tree"): 2, ("apple", "tree"): 1, ("chair", "lamp"): 1, ("cup", "apple"): 1,
    ("dog", "tree"): 1,
}
#: (thing, supporter) pairs that may be placed "on" the supporter's surface.
ON_PAIRS: frozenset[tuple[str, str]] = frozenset({
    ("cup", "table"), ("apple", "table"), ("lamp", "table"), ("cat", "table"),
    ("ball", "table"), ("cat", "chair"), ("ball", "chair"), ("apple", "chair"),
})

_N_CLS = len(CLASSES)
_CLS_NAMES: tuple[str, ...] = tuple(CLASSES)
_AFFINITY = np.array([[CLASSES[c].places.get(p, 0.0) for p in PLACES] for c in _CLS_NAMES])
_PAIR_W = np.zeros((_N_CLS, _N_CLS))
for (_a, _b), _w in PAIRS.items():
    _PAIR_W[CLASS_INDEX[_a], CLASS_INDEX[_b]] = _w
    _PAIR_W[CLASS_INDEX[_b], CLASS_INDEX[_a]] = _w


# --------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------


@dataclass
class WorldConfig:
    """How scenes are sampled and rendered.

    >>> WorldConfig(size=32, max_objects=2).size
    32
    """

    size: int = 64
    min_objects: int = 1
    max_objects: int = 4
    p_partner: float = 0.6  # probability that a 2nd+ object is drawn as a partner of one present
    p_on: float = 0.7  # probability that an ON_PAIRS thing is placed on a present supporter
    max_overlap: float = 0.2  # max intersection / smaller frame area between two objects
    outline: bool = True  # 1-px darker outline around every object (helps shape at 64 px)
    places: tuple[str, ...] | None = None  # restrict to these places (None = all, uniform)

    def __post_init__(self) -> None:
        if not isinstance(self.size, (int, np.integer)) or self.size < 16:
            raise ValueError(f"WorldConfig.size must be an int >= 16, got {self.size!r}")
        if not (1 <= self.min_objects <= self.max_objects <= 4):
            raise ValueError(
                f"need 1 <= min_objects <= max_objects <= 4, got {self.min_objects}, {self.max_objects}")
        if self.places is not None:
            bad = [p for p in self.places if p not in PLACE_INDEX]
            if bad or not self.places:
                raise ValueError(f"unknown places {bad}; choose from {PLACES}")


@dataclass
class SceneObject:
    """One object of a scene. ``box`` is the tight box (x0, y0, x1, y1), exclusive ends,
    of the whole object as drawn (before occlusion by later objects); keypoints are
    (x, y, visible) in pixel coordinates (pixel (r, c) covers [c, c+1) x [r, r+1))."""

    cls: str
    colour: str
    size: str
    box: tuple[int, int, int, int]
    flip: bool
    keypoints: dict[str, tuple[float, float, bool]]
    supercategory: str = ""
    noun: str = ""  # the word used for the class in the caption ("dog" or "puppy")
    phrase: str = ""  # noun phrase without article, e.g. "small red dog"
    centre: tuple[float, float] = (0.0, 0.0)  # frame centre (x, y) in pixels
    area: int = 0  # visible pixels
    full_area: int = 0  # pixels before occlusion
    on: int | None = None  # index of the object this one stands on


@dataclass
class Scene:
    image: np.ndarray
    place: str
    objects: list[SceneObject]
    instance_mask: np.ndarray
    class_mask: np.ndarray
    relations: list[tuple[int, str, int]]
    caption: str
    object_spans: list[tuple[int, int]]
    place_span: tuple[int, int] = (0, 0)  # span of the place noun in the caption
    layout: dict = field(default_factory=dict)  # background parameters (horizon etc.)


# --------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------


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


@lru_cache(maxsize=None)
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
        lo, hi = {"beach": (0.3, 0.42), "lake": (0.28, 0.4), "street": (0.35, 0.45),
                  "field": (0.35, 0.5), "forest": (0.18, 0.3)}[place]
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
            rows[h:h + shore] = _vary(rng, (60, 120, 60))
            rows[h + shore:] = _gradient(_vary(rng, (60, 125, 195)), _vary(rng, (30, 80, 160)),
                                         H - h - shore)
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


# --------------------------------------------------------------------------------------
# Layout sampling (no pixels)
# --------------------------------------------------------------------------------------


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
            return _Placed(name, colour, SIZES[on_size], flip, cx, cy, scale, kx, shear, hx, hy,
                           brightness, on=j)
    scale, kx, shear, hx, hy = _frame(r[6:9], spec, size_i, H)
    lo, hi = spec.vertical
    tries = rng.random((15, 2)).tolist()
    for ux, ut in tries:
        cx = hx + ux * (W - 2 * hx)
        t = lo + ut * (hi - lo)
        cy = hy + t * (H - 2 * hy)
        box = (cx - hx, cy - hy, cx + hx, cy + hy)
        if not _overlaps(box, placed, None, cfg.max_overlap):
            return _Placed(name, colour, SIZES[size_i], flip, cx, cy, scale, kx, shear, hx, hy,
                           brightness)
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


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


_ROLE_CODE = {"main": 0, "dark": 1, "light": 2}


@lru_cache(maxsize=None)
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
    role_rgb = np.stack([main.astype(np.uint8), (main * 0.62).astype(np.uint8),
                         (main + 0.45 * (255 - main)).astype(np.uint8)]).astype(np.float64)
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


@lru_cache(maxsize=None)
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
    if (iv[0] < 0 or iv[-1] >= nv or min(col_x[0], col_x[-1]) - max(col_y[0], col_y[-1]) < 0
            or max(col_x[0], col_x[-1]) - min(col_y[0], col_y[-1]) >= nu):
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


def render_object(cls: str, colour: str = "red", size: str = "large", flip: bool = False,
                  image_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
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
    p = _Placed(cls, colour, size, flip, image_size / 2, image_size / 2, scale, 1.0, 0.0,
                scale * spec.aspect, scale, 1.0)
    img = np.full((image_size, image_size, 3), 255, np.uint8)
    x0, y0, m, patch = _rasterise(spec, p, image_size, image_size, True)
    full = np.zeros((image_size, image_size), bool)
    full[y0:y0 + m.shape[0], x0:x0 + m.shape[1]] = m
    img[full] = patch[m]
    return img, full


# --------------------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------------------


def _pick(rng, options: tuple[str, ...]) -> str:
    if len(options) == 1 or rng.random() < 0.7:
        return options[0]
    return options[1 + int(rng.integers(len(options) - 1))]


def _connector(a: int, b: int, objs: list[SceneObject], H: int) -> str:
    oa, ob = objs[a], objs[b]
    if oa.on == b:
        return " on "
    ax0, ay0, ax1, ay1 = oa.box
    bx0, by0, bx1, by1 = ob.box
    if ay1 <= by0:
        return " above "
    if by1 <= ay0:
        return " below "
    gap = max(bx0 - ax1, ax0 - bx1)
    if gap <= 0.25 * H:
        return " next to "
    return " and "


def _caption(rng, place: str, objs: list[SceneObject], H: int):
    n = len(objs)
    order = list(range(n))
    for i, o in enumerate(objs):  # lead with a thing that sits on something: "a cup on a table"
        if o.on is not None:
            order = [i, o.on] + [k for k in range(n) if k not in (i, o.on)]
            break
    parts: list[str] = []
    spans: dict[int, tuple[int, int]] = {}
    pos = 0
    for k, i in enumerate(order):
        if k == 0:
            sep = ""
        elif k == 1:
            sep = _connector(order[0], i, objs, H)
            if sep == " and " and n > 2:  # "a, b and c" rather than "a and b and c"
                sep = ", "
        elif k == n - 1:
            sep = " and "
        else:
            sep = ", "
        text = sep + "a "
        parts.append(text)
        pos += len(text)
        spans[i] = (pos, pos + len(objs[i].phrase))
        parts.append(objs[i].phrase)
        pos += len(objs[i].phrase)
    phrase = _pick(rng, PLACE_PHRASES[place])
    parts.append(" " + phrase)
    caption = "".join(parts)
    noun = phrase.split()[-1]
    place_span = (len(caption) - len(noun), len(caption))
    return caption, [spans[i] for i in range(n)], place_span


# --------------------------------------------------------------------------------------
# Scenes
# --------------------------------------------------------------------------------------


def _relations(objs: list[SceneObject], H: int) -> list[tuple[int, str, int]]:
    rel = []
    thr = max(1.0, H / 16)
    for i, a in enumerate(objs):
        ax, ay = (a.box[0] + a.box[2]) / 2, (a.box[1] + a.box[3]) / 2
        for j, b in enumerate(objs):
            if i == j:
                continue
            bx, by = (b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2
            if bx - ax >= thr:
                rel.append((i, "left of", j))
            elif ax - bx >= thr:
                rel.append((i, "right of", j))
            if by - ay >= thr:
                rel.append((i, "above", j))
            elif ay - by >= thr:
                rel.append((i, "below", j))
            if a.on == j:
                rel.append((i, "on", j))
    return rel


_DR, _DC = (a.ravel()[None, :] for a in np.meshgrid(np.arange(3), np.arange(3), indexing="ij"))


def _render(rng, place: str, placed: list[_Placed], cfg: WorldConfig) -> Scene:
    H = W = cfg.size
    image, layout = _background(rng, place, H, W)
    inst = np.zeros((H, W), np.int16)
    clsm = np.zeros((H, W), np.int16)
    objs: list[SceneObject] = []
    for i, p in enumerate(placed):
        spec = CLASSES[p.cls]
        x0, y0, m, patch = _rasterise(spec, p, H, W, cfg.outline)
        if m.any():
            rows = np.flatnonzero(m.any(1))
            cols = np.flatnonzero(m.any(0))
            box = (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
            sl = (slice(y0, y0 + m.shape[0]), slice(x0, x0 + m.shape[1]))
            np.copyto(image[sl], patch, where=m[:, :, None])
            np.copyto(inst[sl], i + 1, where=m)
            np.copyto(clsm[sl], CLASS_INDEX[p.cls] + 1, where=m)
        else:
            box = (0, 0, 0, 0)
        noun = _pick(rng, spec.synonyms)
        phrase = f"{_pick(rng, _SIZE_WORDS[p.size])} {p.colour} {noun}"
        objs.append(SceneObject(cls=p.cls, colour=p.colour, size=p.size, box=box, flip=p.flip,
                                keypoints={}, supercategory=spec.supercategory, noun=noun,
                                phrase=phrase, centre=(p.cx, p.cy), full_area=int(m.sum()), on=p.on))
    counts = np.bincount(inst.ravel(), minlength=len(objs) + 1)
    for i, o in enumerate(objs):
        o.area = int(counts[i + 1])
    if objs:
        # all keypoints of the scene at once
        kps = [_keypoints_xy(CLASSES[p.cls], p) for p in placed]
        xs = np.concatenate([k[0] for k in kps])
        ys = np.concatenate([k[1] for k in kps])
        owner = np.concatenate([np.full(len(k[0]), i + 1, np.int16) for i, k in enumerate(kps)])
        c = np.floor(xs).astype(np.int64)
        r = np.floor(ys).astype(np.int64)
        inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
        rc = np.minimum(np.maximum(r, 0), H - 1)
        cc = np.minimum(np.maximum(c, 0), W - 1)
        inst_pad = np.zeros((H + 2, W + 2), np.int16)
        inst_pad[1:-1, 1:-1] = inst
        # visible: not covered by a later object, and the object's own visible pixels touch
        # the keypoint (its pixel or the 3x3 block: parts can sit on the sprite's 1-px edge)
        near = (inst_pad[rc[:, None] + _DR, cc[:, None] + _DC] == owner[:, None]).any(1)
        vis = (inside & (inst[rc, cc] <= owner) & near).tolist()
        xs, ys = xs.tolist(), ys.tolist()
        k = 0
        for p, o in zip(placed, objs):
            parts = CLASSES[p.cls].parts
            o.keypoints = {part: (xs[k + j], ys[k + j], vis[k + j]) for j, part in enumerate(parts)}
            k += len(parts)
    caption, spans, place_span = _caption(rng, place, objs, H)
    return Scene(image=image, place=place, objects=objs, instance_mask=inst, class_mask=clsm,
                 relations=_relations(objs, H), caption=caption, object_spans=spans,
                 place_span=place_span, layout=layout)


def sample_scene(rng: np.random.Generator, config: WorldConfig | None = None) -> Scene:
    """Sample and render one scene.

    >>> s = sample_scene(np.random.default_rng(3), WorldConfig(size=32, max_objects=2))
    >>> s.image.shape, 1 <= len(s.objects) <= 2
    ((32, 32, 3), True)
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    cfg = config if config is not None else WorldConfig()
    place, placed = _sample_layout(rng, cfg)
    return _render(rng, place, placed, cfg)


def scene_at(seed: int, index: int, config: WorldConfig | None = None) -> Scene:
    """Scene number ``index`` of the stream ``seed``: ``render_scenes(n, seed)[i] == scene_at(seed, i)``."""
    return sample_scene(np.random.default_rng([int(seed), int(index)]), config)


def render_scenes(n: int, seed: int = 0, config: WorldConfig | None = None, start: int = 0) -> list[Scene]:
    """Render scenes ``start .. start+n-1`` of the stream ``seed`` (each has its own RNG, so
    any slice can be regenerated independently).

    >>> [s.caption for s in render_scenes(2, seed=5)] == [s.caption for s in render_scenes(2, seed=5)]
    True
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [scene_at(seed, start + i, config) for i in range(n)]


def stack_images(scenes: list[Scene]) -> np.ndarray:
    """(n, H, W, 3) uint8 array of the scenes' images."""
    return np.stack([s.image for s in scenes])


# --------------------------------------------------------------------------------------
# Noisy "real-user" prompts
# --------------------------------------------------------------------------------------

_STYLE = ("4k", "8k", "trending on artstation", "highly detailed", "octane render",
          "unreal engine", "by greg rutkowski", "cinematic lighting", "sharp focus",
          "masterpiece", "best quality", "ultra realistic", "digital art", "photorealistic",
          "studio ghibli style", "hdr", "bokeh")
_PREFIX = ("a photo of ", "photo of ", "an illustration of ", "a painting of ",
           "masterpiece, best quality, ", "RAW photo, ", "")
_FLAGS = ("--ar 16:9", "--ar 3:2", "--v 5", "--v 6", "--q 2", "--stylize 750", "--no text",
          "--s 250", "--niji")
_LORAS = ("<lora:detail_tweaker:0.8>", "<lora:add_detail:0.5>", "<lyco:style:1.0>")
#: Public names of the noise vocabulary, for cleaners' tests.
STYLE_TAILS, PROMPT_PREFIXES, PROMPT_FLAGS, PROMPT_TAGS = _STYLE, _PREFIX, _FLAGS, _LORAS
_URLS = ("https://i.imgur.com/a1b2c3.png", "https://s.mj.run/xYz12AbC", "http://example.com/ref.jpg")


def _typo(rng, word: str) -> str:
    if len(word) < 4:
        return word
    k = int(rng.integers(1, len(word) - 2))
    kind = rng.integers(3)
    if kind == 0:  # swap
        return word[:k] + word[k + 1] + word[k] + word[k + 2:]
    if kind == 1:  # drop
        return word[:k] + word[k + 1:]
    return word[:k] + word[k] + word[k:]  # double


def noisy_prompt(scene: Scene, rng: np.random.Generator) -> str:
    """A variant of ``scene.caption`` shaped like a real user prompt: style tails,
    Midjourney flags, attention weights ``(car:1.2)`` / ``((car))``, LoRA tags, URLs,
    occasional typos, ALL CAPS, doubled commas and spaces. Always differs from the caption.

    >>> s = sample_scene(np.random.default_rng(0))
    >>> noisy_prompt(s, np.random.default_rng(1)) != s.caption
    True
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    text = scene.caption
    # weights on object nouns (right to left so spans stay valid)
    for (s, e), o in sorted(zip(scene.object_spans, scene.objects), key=lambda t: -t[0][0]):
        if rng.random() < 0.3:
            ns = e - len(o.noun)
            form = rng.integers(3)
            noun = text[ns:e]
            if form == 0:
                w = f"({noun}:{rng.choice([1.1, 1.2, 1.3, 1.4, 1.5, 0.8])})"
            elif form == 1:
                w = "(" * int(rng.integers(1, 4)) + noun + ")" * int(rng.integers(1, 4))
            else:
                w = f"[{noun}]"
            text = text[:ns] + w + text[e:]
    if rng.random() < 0.12:
        words = text.split(" ")
        k = int(rng.integers(len(words)))
        words[k] = _typo(rng, words[k])
        text = " ".join(words)
    if rng.random() < 0.5:
        text = _PREFIX[int(rng.integers(len(_PREFIX)))] + text
    if rng.random() < 0.75:
        k = int(rng.integers(1, 6))
        tail = [str(x) for x in rng.choice(_STYLE, size=k, replace=False)]
        sep = ", " if rng.random() < 0.8 else ",, "
        text = text + sep + sep.join(tail)
    if rng.random() < 0.15:
        text = text + " " + _LORAS[int(rng.integers(len(_LORAS)))]
    if rng.random() < 0.35:
        k = int(rng.integers(1, 4))
        text = text + " " + " ".join(str(f) for f in rng.choice(_FLAGS, size=k, replace=False))
    if rng.random() < 0.05:
        text = _URLS[int(rng.integers(len(_URLS)))] + " " + text
    if rng.random() < 0.1:
        text = text.upper()
    if rng.random() < 0.1:
        text = text.replace(" ", "  ", 1 + int(rng.integers(2)))
    if rng.random() < 0.1:
        text = text + ","
    if text == scene.caption:  # always give a cleaner something to do
        text = text + ", " + str(rng.choice(_STYLE))
    return text


# --------------------------------------------------------------------------------------
# True priors
# --------------------------------------------------------------------------------------


def _mean_y_exact(cfg: WorldConfig) -> dict[str, float]:
    """E[frame centre y / H] for a free (not "on") placement: y = hy + t (H - 2 hy), t ~ U(lo, hi),
    hy = h/2 independent of t, so E[y/H] = E[t] + E[hy/H] (1 - 2 E[t])."""
    out = {}
    mean_px = np.mean([SIZE_PIXELS[s] for s in SIZES]) / 64.0  # jitter U(0.9, 1.1) has mean 1
    for name, spec in CLASSES.items():
        et = 0.5 * (spec.vertical[0] + spec.vertical[1])
        hfrac = 1.0 if spec.aspect <= 1 else 1.0 / spec.aspect
        ehy = 0.5 * mean_px * hfrac
        out[name] = et + ehy * (1 - 2 * et)
    return out


@lru_cache(maxsize=8)
def _empirical(n: int, seed: int, cfg_key: tuple) -> dict[str, pd.DataFrame]:
    cfg = WorldConfig(*cfg_key)
    rng = np.random.default_rng(seed)
    present = np.zeros((n, _N_CLS), bool)
    place_of = np.zeros(n, int)
    ysum = np.zeros(_N_CLS)
    ycnt = np.zeros(_N_CLS)
    for k in range(n):
        place, placed = _sample_layout(rng, cfg)
        place_of[k] = PLACE_INDEX[place]
        for p in placed:
            ci = CLASS_INDEX[p.cls]
            present[k, ci] = True
            ysum[ci] += p.cy / cfg.size
            ycnt[ci] += 1
    names = list(_CLS_NAMES)
    pres = present.astype(np.float64)
    cooc = pd.DataFrame(pres.T @ pres / n, index=names, columns=names)
    cp = np.zeros((_N_CLS, len(PLACES)))
    for pi in range(len(PLACES)):
        sel = place_of == pi
        if sel.any():
            cp[:, pi] = pres[sel].mean(0)
    class_place_emp = pd.DataFrame(cp, index=names, columns=list(PLACES))
    with np.errstate(invalid="ignore", divide="ignore"):
        ymean = pd.Series(np.where(ycnt > 0, ysum / np.maximum(ycnt, 1), np.nan), index=names)
    return {"cooccurrence": cooc, "class_place_presence": class_place_emp, "mean_y": ymean}


def true_priors(config: WorldConfig | None = None, n_estimate: int = 20000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The world's priors as DataFrames (``df.attrs["source"]`` says exact or estimated).

    - ``"place"``: P(place), exact (uniform over the configured places).
    - ``"class_place"``: P(class | place) used for every free (non-partner) draw, exact;
      index = classes, columns = places, each column sums to 1.
    - ``"class_place_presence"``: P(class present in scene | place), estimated from
      ``n_estimate`` sampled layouts (partner draws and no-duplicate rule included).
    - ``"vertical"``: per class ``t_lo``, ``t_hi`` (exact uniform range of the vertical
      position), ``mean_y`` = exact E[frame centre y / H] for free placements, and
      ``mean_y_empirical`` estimated from layouts (includes "on" placements and rejections).
    - ``"cooccurrence"``: P(a and b both in a scene), estimated (diagonal = P(a present)).
    - ``"pair_weights"``: the partner weights the sampler uses, exact.

    >>> pri = true_priors(n_estimate=200)
    >>> bool(abs(pri["class_place"].sum(axis=0) - 1).max() < 1e-9)
    True
    """
    cfg = config if config is not None else WorldConfig()
    names = list(_CLS_NAMES)
    places = list(cfg.places or PLACES)
    cp = pd.DataFrame(_AFFINITY / _AFFINITY.sum(0, keepdims=True), index=names, columns=list(PLACES))
    cp = cp[places]
    cp.attrs["source"] = "exact: sampler weights P(class | place) for a free draw"
    place = pd.DataFrame({"p": np.full(len(places), 1.0 / len(places))}, index=places)
    place.attrs["source"] = "exact"
    key = (cfg.size, cfg.min_objects, cfg.max_objects, cfg.p_partner, cfg.p_on, cfg.max_overlap,
           cfg.outline, cfg.places)
    emp = _empirical(int(n_estimate), int(seed), key)
    exact_y = _mean_y_exact(cfg)
    vertical = pd.DataFrame({
        "t_lo": [CLASSES[c].vertical[0] for c in names],
        "t_hi": [CLASSES[c].vertical[1] for c in names],
        "mean_y": [exact_y[c] for c in names],
        "mean_y_empirical": emp["mean_y"].values,
    }, index=names)
    vertical.attrs["source"] = ("t_lo/t_hi/mean_y exact (free placements, ignoring pixel rounding); "
                                f"mean_y_empirical estimated from {n_estimate} layouts")
    cooc = emp["cooccurrence"].copy()
    cooc.attrs["source"] = f"estimated from {n_estimate} sampled layouts (seed {seed})"
    cpp = emp["class_place_presence"][places].copy()
    cpp.attrs["source"] = f"estimated from {n_estimate} sampled layouts (seed {seed})"
    pw = pd.DataFrame(_PAIR_W.copy(), index=names, columns=names)
    pw.attrs["source"] = "exact: partner weights"
    return {"place": place, "class_place": cp, "class_place_presence": cpp, "vertical": vertical,
            "cooccurrence": cooc, "pair_weights": pw}


# --------------------------------------------------------------------------------------
# Summaries and figures (used by notebooks/00_microworld.ipynb)
# --------------------------------------------------------------------------------------


def class_table() -> pd.DataFrame:
    """One row per class: supercategory, parts, caption synonyms, places it appears in.

    >>> class_table().loc["car", "supercategory"]
    'vehicle'
    """
    rows = []
    for name, spec in CLASSES.items():
        rows.append({"class": name, "supercategory": spec.supercategory,
                     "parts": ", ".join(spec.parts), "synonyms": ", ".join(spec.synonyms),
                     "places": ", ".join(p for p in PLACES if spec.places.get(p, 0) > 0),
                     "flips": not spec.symmetric})
    return pd.DataFrame(rows).set_index("class")


def scene_statistics(scenes: list[Scene]) -> dict[str, pd.DataFrame]:
    """What a set of rendered scenes shows, measured from their ground truth only:

    - ``"class_place"``: P(class | place) over object instances (columns sum to 1),
    - ``"vertical"``: per class the mean y of the visible mask's centroid in [0, 1] and a count,
    - ``"cooccurrence"``: P(a and b in the same scene) (diagonal: P(a present)),
    - ``"summary"``: one-row frame of scene-level numbers.

    >>> st = scene_statistics(render_scenes(20))
    >>> sorted(st)
    ['class_place', 'cooccurrence', 'summary', 'vertical']
    """
    if not scenes:
        raise ValueError("scene_statistics needs at least one scene")
    names = list(CLASSES)
    counts = np.zeros((_N_CLS, len(PLACES)))
    ysum = np.zeros(_N_CLS)
    ycnt = np.zeros(_N_CLS)
    pres = np.zeros((len(scenes), _N_CLS))
    vis_frac, n_obj, n_words = [], [], []
    for k, s in enumerate(scenes):
        H = s.image.shape[0]
        rows = np.arange(H, dtype=np.float64)
        row_counts = np.stack([(s.instance_mask == i + 1).sum(1) for i in range(len(s.objects))]) \
            if s.objects else np.zeros((0, H))
        for i, o in enumerate(s.objects):
            ci = CLASS_INDEX[o.cls]
            counts[ci, PLACE_INDEX[s.place]] += 1
            pres[k, ci] = 1
            if o.area > 0:
                ysum[ci] += (row_counts[i] @ (rows + 0.5)) / o.area / H
                ycnt[ci] += 1
            vis_frac.append(o.area / max(o.full_area, 1))
        n_obj.append(len(s.objects))
        n_words.append(len(s.caption.split()))
    with np.errstate(invalid="ignore", divide="ignore"):
        cp = counts / counts.sum(axis=0, keepdims=True)
        ymean = np.where(ycnt > 0, ysum / np.maximum(ycnt, 1), np.nan)
    summary = pd.DataFrame([{
        "n_scenes": len(scenes), "mean_objects": float(np.mean(n_obj)),
        "mean_visible_fraction": float(np.mean(vis_frac)) if vis_frac else float("nan"),
        "mean_caption_words": float(np.mean(n_words)), "max_caption_words": int(np.max(n_words)),
    }])
    return {
        "class_place": pd.DataFrame(np.nan_to_num(cp), index=names, columns=list(PLACES)),
        "vertical": pd.DataFrame({"mean_y": ymean, "n": ycnt.astype(int)}, index=names),
        "cooccurrence": pd.DataFrame(pres.T @ pres / len(scenes), index=names, columns=names),
        "summary": summary,
    }


def measure_speed(n: int = 500, seed: int = 0, config: WorldConfig | None = None) -> float:
    """Scenes per second (wall clock) of :func:`render_scenes` in this process.

    >>> measure_speed(20) > 0
    True
    """
    import time

    render_scenes(5, seed=seed + 1, config=config)  # warm the caches
    t0 = time.perf_counter()
    render_scenes(n, seed=seed, config=config)
    return n / (time.perf_counter() - t0)


def plot_scenes(scenes: list[Scene], ncols: int = 6, width: float = 2.4, captions: bool = True):
    """A grid of scenes with their (wrapped) captions; returns the matplotlib Figure."""
    import textwrap

    import matplotlib.pyplot as plt

    n = len(scenes)
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, width * nrows * (1.35 if captions else 1)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, s in zip(axes.ravel(), scenes):
        ax.imshow(s.image, interpolation="nearest")
        if captions:
            ax.set_title("\n".join(textwrap.wrap(s.caption, 28)), fontsize=7)
    fig.tight_layout()
    return fig


def plot_ground_truth(scenes: list[Scene], width: float = 3.0):
    """Per scene: the image, the instance mask, and boxes + keypoints (filled = visible,
    hollow = occluded) over the image. Returns the Figure."""
    import textwrap

    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(len(scenes), 3, figsize=(3 * width, width * len(scenes)), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for row, s in zip(axes, scenes):
        row[0].imshow(s.image, interpolation="nearest")
        row[0].set_title("\n".join(textwrap.wrap(s.caption, 45)), fontsize=7, loc="left")
        inst = np.zeros(s.image.shape, np.float64)
        for i in range(len(s.objects)):
            inst[s.instance_mask == i + 1] = cmap(i % 10)[:3]
        row[1].imshow(inst, interpolation="nearest")
        row[1].set_title("instance mask (visible pixels)", fontsize=8)
        row[2].imshow(s.image, interpolation="nearest")
        for i, o in enumerate(s.objects):
            c = cmap(i % 10)
            x0, y0, x1, y1 = o.box
            row[2].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=c, lw=1.5))
            row[2].text(x0, y0 - 1, o.cls, color=c, fontsize=7, va="bottom")
            for part, (x, y, vis) in o.keypoints.items():
                row[2].plot(x - 0.5, y - 0.5, "o", ms=4, mfc=c if vis else "none", mec="k", mew=0.6)
        row[2].set_title("boxes and part keypoints", fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_priors(priors: dict[str, pd.DataFrame], observed: dict[str, pd.DataFrame] | None = None):
    """Heatmap of P(class | place), bar plot of the vertical prior (true mean y, and the
    mean mask centroid of ``observed`` scenes if given), heatmap of the co-occurrence lift
    P(a, b) / (P(a) P(b)). Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(19, 6.2), gridspec_kw={"width_ratios": [0.8, 1.2, 1.25]})
    cp = priors["class_place"]
    im = axes[0].imshow(cp.values, cmap="viridis", aspect="auto")
    axes[0].set_xticks(range(cp.shape[1]), cp.columns, rotation=45, ha="right")
    axes[0].set_yticks(range(cp.shape[0]), cp.index)
    axes[0].set_title("P(class | place), exact sampler weights")
    fig.colorbar(im, ax=axes[0], fraction=0.05)

    v = priors["vertical"].sort_values("mean_y")
    ypos = np.arange(len(v))
    axes[1].barh(ypos - 0.2, v["mean_y"], height=0.4, label="true prior: E[frame centre y]")
    if observed is not None:
        ob = observed["vertical"].reindex(v.index)
        axes[1].barh(ypos + 0.2, ob["mean_y"], height=0.4, label="observed: mask centroid y")
    axes[1].set_yticks(ypos, v.index)
    axes[1].invert_yaxis()
    axes[1].set_xlim(0, 1)
    axes[1].set_xlabel("y / image height  (0 = top)")
    axes[1].set_title("vertical prior")
    axes[1].legend(fontsize=8, loc="lower right")

    co = priors["cooccurrence"]
    p = np.diag(co.values)
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = co.values / np.outer(p, p)
    lift = np.log2(np.where(np.isfinite(lift) & (lift > 0), lift, np.nan))
    np.fill_diagonal(lift, np.nan)
    im = axes[2].imshow(lift, cmap="RdBu_r", vmin=-3, vmax=3)
    axes[2].set_xticks(range(len(co)), co.index, rotation=90)
    axes[2].set_yticks(range(len(co)), co.index)
    axes[2].set_title("co-occurrence: log2 P(a,b) / (P(a) P(b))")
    fig.colorbar(im, ax=axes[2], fraction=0.05)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Prompts of a store made from MicroWorld (see stablesemantics.analysis.make_world_store)
# --------------------------------------------------------------------------------------


def world_prompts(n: int, seed: int = 0, config: WorldConfig | None = None) -> tuple[list[Scene], list[str]]:
    """Scenes ``0 .. n-1`` of the stream ``seed`` and one noisy "real-user" prompt for each.

    Deterministic: prompt ``i`` depends only on (``seed``, ``i``, ``config``), so a store whose
    ``prompt_id`` is the scene index can re-render the ground truth of any of its images with
    ``scene_at(seed, prompt_id, config)``.

    >>> scenes, prompts = world_prompts(3, seed=1)
    >>> len(prompts), prompts == world_prompts(3, seed=1)[1]
    (3, True)
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    scenes = render_scenes(n, seed=seed, config=config)
    prompts = [noisy_prompt(s, np.random.default_rng([int(seed), i, 1])) for i, s in enumerate(scenes)]
    return scenes, prompts
