"""The data classes of a scene: world configuration, objects and scenes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stablesemantics.world.vocabulary import PLACE_INDEX, PLACES


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
            raise ValueError(f"need 1 <= min_objects <= max_objects <= 4, got {self.min_objects}, {self.max_objects}")
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


def world_config_from_dict(d: dict) -> Any:

    d = dict(d)
    if d.get("places") is not None:
        d["places"] = tuple(d["places"])
    return WorldConfig(**d)
