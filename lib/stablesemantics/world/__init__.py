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

from stablesemantics.world.noisy_prompts import (
    PROMPT_FLAGS,
    PROMPT_PREFIXES,
    PROMPT_TAGS,
    STYLE_TAILS,
    noisy_prompt,
    world_prompts,
)
from stablesemantics.world.pairs import ON_PAIRS, PAIRS
from stablesemantics.world.plots import plot_ground_truth, plot_priors, plot_scenes
from stablesemantics.world.primitives import ClassSpec
from stablesemantics.world.priors import true_priors
from stablesemantics.world.render import render_object
from stablesemantics.world.sample import render_scenes, sample_scene, scene_at, stack_images
from stablesemantics.world.scene import Scene, SceneObject, WorldConfig, world_config_from_dict
from stablesemantics.world.speed import measure_speed
from stablesemantics.world.sprites import CLASS_INDEX, CLASSES, SUPERCATEGORIES
from stablesemantics.world.statistics import class_table, scene_statistics
from stablesemantics.world.vocabulary import COLOURS, PLACE_INDEX, PLACE_PHRASES, PLACES, SIZE_PIXELS, SIZES

__all__ = [
    "CLASSES",
    "CLASS_INDEX",
    "COLOURS",
    "ClassSpec",
    "ON_PAIRS",
    "PAIRS",
    "PLACES",
    "PLACE_INDEX",
    "PLACE_PHRASES",
    "PROMPT_FLAGS",
    "PROMPT_PREFIXES",
    "PROMPT_TAGS",
    "SIZES",
    "SIZE_PIXELS",
    "STYLE_TAILS",
    "SUPERCATEGORIES",
    "Scene",
    "SceneObject",
    "WorldConfig",
    "class_table",
    "measure_speed",
    "noisy_prompt",
    "plot_ground_truth",
    "plot_priors",
    "plot_scenes",
    "render_object",
    "render_scenes",
    "sample_scene",
    "scene_at",
    "scene_statistics",
    "stack_images",
    "true_priors",
    "world_config_from_dict",
    "world_prompts",
]
