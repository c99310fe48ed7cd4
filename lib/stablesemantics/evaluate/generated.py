"""Per-phrase attention maps on generated images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stablesemantics.capture.config import CaptureConfig
from stablesemantics.capture.run import run_with_capture
from stablesemantics.evaluate.localisation import _phrase_maps
from stablesemantics.images import images_to_uint8


@dataclass
class GeneratedMaps:
    """Generated images with one attention map per prompted object (no ground truth)."""

    images: np.ndarray  # (n_images, H, W, 3) uint8
    maps: np.ndarray  # (n_objects, H, W) float, resized to the image size
    classes: list[str]  # the class each object phrase names
    image_index: np.ndarray  # (n_objects,) which image each map belongs to
    prompts: list[str]


def generated_object_maps(
    pipe,
    scenes: list,
    steps: int = 20,
    guidance: float = 7.5,
    capture=None,
    seed: int = 0,
    batch_size: int = 16,
    height: int | None = None,
    width: int | None = None,
) -> GeneratedMaps:
    """Generate one image per scene caption and capture each object phrase's map.

    The scenes only supply prompts and the classes their phrases name (``object_spans``); nothing
    of the rendered image is used. Image ``i`` uses the generator seed ``seed + i``.
    """

    capture = capture or CaptureConfig()
    size = scenes[0].image.shape[0] if scenes else 64
    height, width = height or size, width or size
    images, maps, classes, where = [], [], [], []
    for start in range(0, len(scenes), batch_size):
        part = scenes[start : start + batch_size]
        run = run_with_capture(
            pipe,
            capture=capture,
            seeds=[seed + start + i for i in range(len(part))],
            prompt=[s.caption for s in part],
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=height,
            width=width,
            output_type="np",
        )
        images.append(images_to_uint8(run.output.images))
        token_maps = run.maps
        for i, scene in enumerate(part):
            keep, m = _phrase_maps(pipe, scene, token_maps[i], (height, width))
            if not keep:
                continue
            maps.append(m)
            classes.extend(scene.objects[k].cls for k in keep)
            where.extend([start + i] * len(keep))
    return GeneratedMaps(
        np.concatenate(images),
        np.concatenate(maps) if maps else np.zeros((0, height, width)),
        classes,
        np.asarray(where, np.int64),
        [s.caption for s in scenes],
    )
