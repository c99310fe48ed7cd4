"""Keypoint pairs from MicroWorld scenes: which parts correspond, which pairs to score, mirrored scenes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stablesemantics.world.scene import Scene
from stablesemantics.world.sprites import CLASSES

#: A pair of objects: (source scene, source object, target scene, target object), indices into a scene list.
ObjectPair = tuple[int, int, int, int]


def shared_parts(source_class: str, target_class: str) -> tuple[str, ...]:
    """The parts that correspond between two classes: all parts of one class, the parts of the same
    name within a supercategory (a dog's and a cat's head, eye, ear, tail), none across supercategories.

    >>> shared_parts("dog", "cat"), shared_parts("dog", "car")
    (('head', 'eye', 'ear', 'tail'), ())
    """
    a, b = CLASSES[source_class], CLASSES[target_class]
    if a.name == b.name:
        return a.parts
    if a.supercategory != b.supercategory:
        return ()
    return tuple(p for p in a.parts if p in b.parts)


def mirrored_scene(scene: Scene) -> Scene:
    """The scene mirrored left–right: image and masks flipped, boxes, centres and keypoints mirrored,
    every object's ``flip`` toggled (relations and caption are kept as they were)."""
    size = scene.image.shape[1]
    objects = []
    for o in scene.objects:
        x0, y0, x1, y1 = o.box
        kps = {k: (size - x, y, v) for k, (x, y, v) in o.keypoints.items()}
        objects.append(
            dataclasses.replace(
                o,
                box=(size - x1, y0, size - x0, y1),
                flip=not o.flip,
                keypoints=kps,
                centre=(size - o.centre[0], o.centre[1]),
            )
        )
    return dataclasses.replace(
        scene,
        image=scene.image[:, ::-1].copy(),
        objects=objects,
        instance_mask=scene.instance_mask[:, ::-1].copy(),
        class_mask=scene.class_mask[:, ::-1].copy(),
    )


def candidate_objects(scenes: list[Scene], min_visible: int = 3, min_side: int = 12) -> list[tuple[int, int]]:
    """``(scene, object)`` of every object with at least ``min_visible`` visible keypoints and a box
    whose larger side is at least ``min_side`` pixels."""
    out = []
    for i, s in enumerate(scenes):
        for j, o in enumerate(s.objects):
            side = max(o.box[2] - o.box[0], o.box[3] - o.box[1])
            if side >= min_side and sum(v for *_, v in o.keypoints.values()) >= min_visible:
                out.append((i, j))
    return out


def sample_pairs(
    scenes: list[Scene],
    n_pairs: int,
    kind: str = "same class",
    seed: int = 0,
    flipped_share: float = 0.5,
    min_shared: int = 2,
    min_visible: int = 3,
    min_side: int = 12,
) -> list[ObjectPair]:
    """Pairs of objects from different scenes: ``kind`` ``"same class"`` or ``"cross class"`` (the same
    supercategory, at least ``min_shared`` parts of the same name). About ``flipped_share`` of the
    pairs have one object mirrored relative to the other (``flip`` differs), the rest not; within
    each group the pairs are drawn at random without replacement (fewer if there are not enough).
    """
    if kind not in ("same class", "cross class"):
        raise ValueError(f"kind must be 'same class' or 'cross class', got {kind!r}")
    objs = candidate_objects(scenes, min_visible, min_side)
    groups: dict[bool, list[ObjectPair]] = {True: [], False: []}
    for a, (si, oi) in enumerate(objs):
        for sj, oj in objs[a + 1 :]:
            if si == sj:
                continue
            o, p = scenes[si].objects[oi], scenes[sj].objects[oj]
            same = o.cls == p.cls
            if (kind == "same class") != same or len(shared_parts(o.cls, p.cls)) < min_shared:
                continue
            groups[o.flip != p.flip].append((si, oi, sj, oj))
    rng = np.random.default_rng(seed)
    n_flipped = int(round(n_pairs * flipped_share))
    chosen: list[ObjectPair] = []
    for flipped, n in ((True, n_flipped), (False, n_pairs - n_flipped)):
        pool = groups[flipped]
        take = rng.choice(len(pool), size=min(n, len(pool)), replace=False) if pool else []
        chosen.extend(pool[int(k)] for k in sorted(take))
    return chosen


@dataclass
class KeypointQueries:
    """Images and one row per query: a visible source keypoint and its true target keypoint.

    ``table`` columns: ``pair``, ``kind``, ``flipped``, ``source_class``, ``target_class``, ``part``,
    ``source_image``, ``target_image`` (rows of ``images``), ``source_x``, ``source_y``,
    ``target_x``, ``target_y``, ``target_visible``, and the boxes ``source_x0`` … ``target_y1``.
    """

    images: np.ndarray
    table: pd.DataFrame

    def scored(self) -> KeypointQueries:
        """Only the queries whose target keypoint is visible (the ones PCK counts)."""
        return KeypointQueries(self.images, self.table[self.table.target_visible].reset_index(drop=True))


def keypoint_queries(
    scenes: list[Scene], pairs: list[ObjectPair], kind: str | list[str] = "same class"
) -> KeypointQueries:
    """Every visible keypoint of each pair's source object whose part corresponds in the target object.

    ``kind`` labels the pairs (one label for all, or one per pair).
    """
    kinds = [kind] * len(pairs) if isinstance(kind, str) else list(kind)
    if len(kinds) != len(pairs):
        raise ValueError(f"{len(kinds)} kinds for {len(pairs)} pairs")
    used = sorted({p[0] for p in pairs} | {p[2] for p in pairs})
    row_of = {s: k for k, s in enumerate(used)}
    rows = []
    for n, (si, oi, sj, oj) in enumerate(pairs):
        o, p = scenes[si].objects[oi], scenes[sj].objects[oj]
        for part in shared_parts(o.cls, p.cls):
            sx, sy, sv = o.keypoints[part]
            tx, ty, tv = p.keypoints[part]
            if not sv:
                continue
            rows.append(
                {
                    "pair": n,
                    "kind": kinds[n],
                    "flipped": o.flip != p.flip,
                    "source_class": o.cls,
                    "target_class": p.cls,
                    "part": part,
                    "source_image": row_of[si],
                    "target_image": row_of[sj],
                    "source_x": sx,
                    "source_y": sy,
                    "target_x": tx,
                    "target_y": ty,
                    "target_visible": bool(tv),
                    **{f"source_{k}": v for k, v in zip(("x0", "y0", "x1", "y1"), o.box)},
                    **{f"target_{k}": v for k, v in zip(("x0", "y0", "x1", "y1"), p.box)},
                }
            )
    images = np.stack([scenes[s].image for s in used]) if used else np.zeros((0, 1, 1, 3), np.uint8)
    return KeypointQueries(images, pd.DataFrame(rows))
