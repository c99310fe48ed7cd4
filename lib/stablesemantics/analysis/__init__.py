"""Analyses of a store: semantic distribution, spatial priors, co-occurrence, and their truth.

Everything here reads a store made by :func:`stablesemantics.generate.generate` (any model,
any prompts) and is what the book's chapters 02-04 call:

* **semantics** — cleaning report, noun chunks per prompt, lemma frequencies and a Zipf
  fit, categories (MicroWorld's supercategories, or clusters of text embeddings for free
  text), MiniLM text embeddings and a 2-D projection;
* **spatial priors** — per map the centroid (vertical ``cy``, horizontal ``cx``) and the
  spread of its attention mass, per label the mean normalised map, per (place, label) the
  mean map ("layout per place");
* **co-occurrence** — counts and PMI of labels over prompts, and how much the maps of two
  chunks of the same image overlap (histogram intersection, IoU of above-uniform masks,
  whether those masks touch), against the same pair of labels in *different* images.

Maps are never all in memory: they stream in shard-sized blocks
(:func:`iter_map_blocks`), and every statistic is a running sum. Zarr's own reader pays a
fixed cost per chunk (the store keeps one chunk per map), which dominates at a million
maps, so :func:`read_maps` decodes whole shard files directly when the array has the
layout this library writes (sharding, little-endian bytes + zstd inside, crc32c index at
the end — the Zarr v3 sharding spec) and falls back to zarr for anything else; the tests
check both give identical arrays.

Truth. A store generated from MicroWorld prompts (:func:`make_world_store`) records in its
root attribute ``world`` how to re-render its scenes; its ``prompt_id`` is the scene index.
:func:`truth_map_blocks` then yields, for every map row, the ground-truth mask of the
object its chunk names (area-averaged to the map size), so the very same statistics run on
the truth and can be compared class by class.

Example
-------
>>> import numpy as np
>>> maps = np.zeros((2, 4, 4), np.float32); maps[0, 0, 0] = 1; maps[1, 3, :] = 1
>>> m = map_moments(maps)
>>> np.round(m["cy"], 3).tolist(), np.round(m["cx"], 3).tolist()
([0.125, 0.875], [0.125, 0.5])
"""

from stablesemantics.analysis.agreement import (
    overlap_truth_agreement,
    pair_rows,
    spatial_truth_correlations,
    vertical_misplacement,
)
from stablesemantics.analysis.cooccurrence import cooccurrence_counts, pmi, rank_correlation
from stablesemantics.analysis.labels import (
    PLACE_LEMMAS,
    WORLD_LEMMAS,
    is_world_store,
    map_contexts,
    map_labels,
    store_scenes,
    world_chunk_misses,
    world_chunk_recall,
    world_config,
    world_info,
    world_labels,
    world_objects,
)
from stablesemantics.analysis.overlap import OverlapStats, map_overlaps, map_statistics
from stablesemantics.analysis.plots import (
    overlay_map,
    plot_image_maps,
    plot_map_grid,
    plot_store_grid,
    upsample_map,
)
from stablesemantics.analysis.semantics import (
    chunk_table,
    cleaning_summary,
    cluster_embeddings,
    label_categories,
    lemma_counts,
    project_2d,
    prompt_table,
    text_embeddings,
    zipf_fit,
)
from stablesemantics.analysis.spatial import SpatialStats, map_moments, spatial_statistics
from stablesemantics.analysis.streaming import maps_to_distributions
from stablesemantics.analysis.truth import downsample_mask, truth_map_blocks

__all__ = [
    "OverlapStats",
    "PLACE_LEMMAS",
    "SpatialStats",
    "WORLD_LEMMAS",
    "chunk_table",
    "cleaning_summary",
    "cluster_embeddings",
    "cooccurrence_counts",
    "downsample_mask",
    "is_world_store",
    "label_categories",
    "lemma_counts",
    "map_contexts",
    "map_labels",
    "map_moments",
    "map_overlaps",
    "map_statistics",
    "maps_to_distributions",
    "overlap_truth_agreement",
    "overlay_map",
    "pair_rows",
    "plot_image_maps",
    "plot_map_grid",
    "plot_store_grid",
    "pmi",
    "project_2d",
    "prompt_table",
    "rank_correlation",
    "spatial_statistics",
    "spatial_truth_correlations",
    "store_scenes",
    "text_embeddings",
    "truth_map_blocks",
    "upsample_map",
    "vertical_misplacement",
    "world_chunk_misses",
    "world_chunk_recall",
    "world_config",
    "world_info",
    "world_labels",
    "world_objects",
    "zipf_fit",
]
