"""Regions with exact labels: MicroWorld objects, and objects found in generated images.

A region is a box in an image with four labels and a short caption:

* ``cls``, ``colour``, ``size``: the object's class, main colour and size word;
* ``relation``: how the object sits relative to its *partner*, the nearest other object
  (box centres): ``on`` when it stands on it, otherwise the dominant direction
  (``left of`` / ``right of`` / ``above`` / ``below``); ``alone`` when it is the only object;
* ``caption``: "a small red dog left of a tree", or "a small red dog in a field" when alone.

Class, colour and size can be read from the region itself; relation and the caption's tail need
the region's surroundings. That split is what the views' ``t`` is probed with.

>>> from stablesemantics import world
>>> scenes = world.render_scenes(4, seed=0)
>>> regs = regions_from_scenes(scenes)
>>> len(regs) == sum(o.area >= 8 for s in scenes for o in s.objects)
True
>>> regs.captions[0].startswith("a ")
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

from stablesemantics import world
from stablesemantics.evaluate.captioner import Vocabulary

__all__ = [
    "CLASS_NAMES",
    "COLOUR_NAMES",
    "RELATIONS",
    "SIZE_NAMES",
    "TASKS",
    "Regions",
    "generated_regions",
    "region_caption",
    "region_vocabulary",
    "regions_from_scenes",
]

CLASS_NAMES: tuple[str, ...] = tuple(world.CLASSES)
COLOUR_NAMES: tuple[str, ...] = tuple(world.COLOURS)
SIZE_NAMES: tuple[str, ...] = tuple(world.SIZES)
RELATIONS: tuple[str, ...] = ("alone", "left of", "right of", "above", "below", "on")
#: The classification tasks and their label names, in the order the model's heads use.
TASKS: dict[str, tuple[str, ...]] = {
    "class": CLASS_NAMES,
    "colour": COLOUR_NAMES,
    "size": SIZE_NAMES,
    "relation": RELATIONS,
}


@dataclass
class Regions:
    """Regions of a set of images with their labels (label ids index :data:`TASKS`)."""

    images: np.ndarray  # (n_images, H, W, 3) uint8
    image_index: np.ndarray  # (n,) int64: the image of each region
    boxes: np.ndarray  # (n, 4) float (x0, y0, x1, y1), exclusive ends
    labels: dict[str, np.ndarray]  # task -> (n,) int64; -1 where the truth is unknown
    captions: list[str]  # the reference caption of each region ("" where unknown)
    source: str = "render"
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.boxes)

    def head(self, n: int) -> Regions:
        """The first ``n`` regions (all images kept: ``image_index`` still points into them)."""
        return Regions(
            self.images,
            self.image_index[:n],
            self.boxes[:n],
            {k: v[:n] for k, v in self.labels.items()},
            self.captions[:n],
            source=self.source,
        )


def _centre(box: Sequence[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _relation(i: int, objs: list, keep: list[int]) -> tuple[str, int | None]:
    """Relation of object ``i`` to its partner among ``keep`` and the partner's index."""
    others = [j for j in keep if j != i]
    if not others:
        return "alone", None
    cx, cy = _centre(objs[i].box)
    j = min(
        others,
        key=lambda k: (
            np.hypot(_centre(objs[k].box)[0] - cx, _centre(objs[k].box)[1] - cy),
            k,
        ),
    )
    if objs[i].on == j:
        return "on", j
    dx = _centre(objs[j].box)[0] - cx
    dy = _centre(objs[j].box)[1] - cy
    if abs(dx) >= abs(dy):
        return ("left of" if dx > 0 else "right of"), j
    return ("above" if dy > 0 else "below"), j


def region_caption(size: str, colour: str, cls: str, relation: str, partner: str | None, place: str) -> str:
    """The reference caption of a region (canonical words, one per label).

    >>> region_caption("small", "red", "dog", "left of", "tree", "field")
    'a small red dog left of a tree'
    >>> region_caption("large", "blue", "car", "alone", None, "street")
    'a large blue car on a street'
    """
    head = f"a {size} {colour} {cls}"
    if relation == "alone" or partner is None:
        return f"{head} {world.PLACE_PHRASES[place][0]}"
    return f"{head} {relation} a {partner}"


def regions_from_scenes(scenes: Sequence, min_area: int = 8) -> Regions:
    """One region per object of the scenes with at least ``min_area`` visible pixels.

    Its box is the object's tight box; objects hidden below that area are left out, and they do
    not count as partners either (they cannot be seen).
    """
    image_index, boxes, captions = [], [], []
    labels: dict[str, list[int]] = {task: [] for task in TASKS}
    for s_i, scene in enumerate(scenes):
        objs = scene.objects
        keep = [i for i, o in enumerate(objs) if o.area >= min_area]
        for i in keep:
            o = objs[i]
            rel, j = _relation(i, objs, keep)
            image_index.append(s_i)
            boxes.append(o.box)
            labels["class"].append(CLASS_NAMES.index(o.cls))
            labels["colour"].append(COLOUR_NAMES.index(o.colour))
            labels["size"].append(SIZE_NAMES.index(o.size))
            labels["relation"].append(RELATIONS.index(rel))
            captions.append(
                region_caption(
                    o.size,
                    o.colour,
                    o.cls,
                    rel,
                    objs[j].cls if j is not None else None,
                    scene.place,
                )
            )
    images = np.stack([s.image for s in scenes]) if len(scenes) else np.zeros((0, 64, 64, 3), np.uint8)
    return Regions(
        images=images,
        image_index=np.asarray(image_index, np.int64),
        boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
        labels={k: np.asarray(v, np.int64) for k, v in labels.items()},
        captions=captions,
    )


def region_vocabulary() -> Vocabulary:
    """Every word a region caption can use (a fixed list: the vocabulary never depends on data)."""
    words = {"a", *CLASS_NAMES, *COLOUR_NAMES, *SIZE_NAMES}
    words.update(w for r in RELATIONS for w in r.split())
    words.update(w for phrases in world.PLACE_PHRASES.values() for w in phrases[0].split())
    return Vocabulary(["<pad>", "<bos>", "<eos>", "<unk>", *sorted(words)])


def _largest_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box of the largest 4-connected component of a boolean mask (None if empty)."""
    lab, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = np.bincount(lab.ravel())[1:]
    rows, cols = np.nonzero(lab == 1 + int(np.argmax(sizes)))
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def generated_regions(
    pipe,
    scenes: Sequence,
    class_masks_fn,
    steps: int = 20,
    guidance: float = 7.5,
    seed: int = 0,
    batch_size: int = 16,
    min_area: int = 8,
) -> Regions:
    """Generate one image per scene caption with ``pipe`` and find its prompted objects.

    ``class_masks_fn(images) -> (n, H, W)`` class ids (0 = background, class ``k`` = id ``k + 1``):
    the reference segmenter's prediction. A prompted object becomes a region when its class covers
    at least ``min_area`` pixels; its box is the largest component of those pixels. Class, colour
    and size come from the prompt; relation and caption are unknown (-1 and ""), because the model
    lays out the image its own way. ``meta`` records how many prompted objects were found.
    """
    images = []
    for start in range(0, len(scenes), batch_size):
        part = scenes[start : start + batch_size]
        gens = [torch.Generator(device=pipe.device).manual_seed(seed + start + i) for i in range(len(part))]
        out = pipe(
            prompt=[s.caption for s in part],
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=gens,
            height=part[0].image.shape[0],
            width=part[0].image.shape[1],
            output_type="np",
        )
        images.append((np.clip(out.images, 0, 1) * 255).round().astype(np.uint8))
    images = np.concatenate(images) if images else np.zeros((0, 64, 64, 3), np.uint8)
    masks = np.asarray(class_masks_fn(images)) if len(images) else np.zeros((0, 64, 64), np.int64)
    image_index, boxes = [], []
    labels: dict[str, list[int]] = {task: [] for task in TASKS}
    n_prompted = 0
    for i, scene in enumerate(scenes):
        seen = set()
        for o in scene.objects:
            n_prompted += 1
            if o.cls in seen:  # two prompted objects of one class cannot be told apart by class masks
                continue
            seen.add(o.cls)
            m = masks[i] == CLASS_NAMES.index(o.cls) + 1
            box = _largest_box(m) if m.sum() >= min_area else None
            if box is None:
                continue
            image_index.append(i)
            boxes.append(box)
            labels["class"].append(CLASS_NAMES.index(o.cls))
            labels["colour"].append(COLOUR_NAMES.index(o.colour))
            labels["size"].append(SIZE_NAMES.index(o.size))
            labels["relation"].append(-1)
    return Regions(
        images=images,
        image_index=np.asarray(image_index, np.int64),
        boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
        labels={k: np.asarray(v, np.int64) for k, v in labels.items()},
        captions=[""] * len(boxes),
        source="generated",
        meta={"n_prompted": n_prompted, "n_found": len(boxes)},
    )
