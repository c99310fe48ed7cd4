"""MicroWorld's vocabulary: places, colours, sizes, and class tables derived from the sprites."""

from __future__ import annotations

import numpy as np

from stablesemantics.world.pairs import PAIRS
from stablesemantics.world.sprites import CLASS_INDEX, CLASSES

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

_N_CLS = len(CLASSES)
_CLS_NAMES: tuple[str, ...] = tuple(CLASSES)
_AFFINITY = np.array([[CLASSES[c].places.get(p, 0.0) for p in PLACES] for c in _CLS_NAMES])
_PAIR_W = np.zeros((_N_CLS, _N_CLS))
for (_a, _b), _w in PAIRS.items():
    _PAIR_W[CLASS_INDEX[_a], CLASS_INDEX[_b]] = _w
    _PAIR_W[CLASS_INDEX[_b], CLASS_INDEX[_a]] = _w
