"""Attention maps as segmentation: map → mask, IoU metrics, and a small reference segmenter.

The reference segmenter is a small fully convolutional network trained on MicroWorld
renders with their exact class masks. It plays the role real segmenters play for the
anchors: it finds the prompted classes in *generated* images (prompt fidelity) and gives
masks to compare attention maps with when there is no rendered ground truth.

Example::

    >>> import numpy as np
    >>> pred = np.zeros((4, 4), bool); pred[:2] = True
    >>> truth = np.zeros((4, 4), bool); truth[:, :2] = True
    >>> round(iou(pred, truth), 3)  # 4 shared pixels of 12 in the union
    0.333
"""

from stablesemantics.evaluate.caption_benchmark import benchmark_captions, caption_score_rows, mismatched
from stablesemantics.evaluate.captioner import (
    BOS,
    EOS,
    PAD,
    UNK,
    SmallCaptioner,
    Vocabulary,
    caption_images,
    tokenize,
    world_vocabulary,
)
from stablesemantics.evaluate.captions import (
    blip_captions,
    caption_scores,
    class_recall,
    load_blip,
    mentioned_classes,
    tiny_random_blip,
)
from stablesemantics.evaluate.diffumask import (
    class_ids,
    evaluate_segmenter,
    resize_pairs,
    segmenter_object_masks,
    synthetic_class_masks,
)
from stablesemantics.evaluate.generated import GeneratedMaps, generated_object_maps
from stablesemantics.evaluate.localisation import ObjectMaps, encode_scenes, noised_scene_maps, rendered_scene_maps
from stablesemantics.evaluate.masks import (
    ADAPTIVE_THRESHOLDS,
    BINARISATIONS,
    REFINEMENTS,
    binarise_maps,
    crf_available,
    dense_crf,
    morphological_refine,
    otsu_threshold,
    refine_masks,
    resolve_refinement,
)
from stablesemantics.evaluate.method_grid import mask_methods_with_oracle, oracle_row, sweep_groups, sweep_settings
from stablesemantics.evaluate.metrics import (
    best_threshold_miou,
    centre_prior,
    grid_ceiling_maps,
    iou,
    miou_by_threshold,
)
from stablesemantics.evaluate.microsd_eval import MicroSDEvalConfig, evaluate_microsd
from stablesemantics.evaluate.scores import (
    baseline_scores,
    class_ious,
    confusion_matrix,
    evaluate_mask_methods,
    ious_from_confusion,
    mask_scores,
    object_ious,
    semantic_scores,
)
from stablesemantics.evaluate.segmenter import REFERENCE_DIR, SmallSegmenter, load_segmenter, predict_classes
from stablesemantics.evaluate.sweep import (
    cross_attention_levels,
    localisation_sweep,
    random_weights_pipeline,
    window_timesteps,
)

__all__ = [
    "ADAPTIVE_THRESHOLDS",
    "BINARISATIONS",
    "BOS",
    "EOS",
    "GeneratedMaps",
    "MicroSDEvalConfig",
    "ObjectMaps",
    "PAD",
    "REFERENCE_DIR",
    "REFINEMENTS",
    "SmallCaptioner",
    "SmallSegmenter",
    "UNK",
    "Vocabulary",
    "baseline_scores",
    "benchmark_captions",
    "best_threshold_miou",
    "binarise_maps",
    "blip_captions",
    "caption_images",
    "caption_score_rows",
    "caption_scores",
    "centre_prior",
    "class_ids",
    "class_ious",
    "class_recall",
    "confusion_matrix",
    "crf_available",
    "cross_attention_levels",
    "dense_crf",
    "encode_scenes",
    "evaluate_mask_methods",
    "evaluate_microsd",
    "evaluate_segmenter",
    "generated_object_maps",
    "grid_ceiling_maps",
    "iou",
    "ious_from_confusion",
    "load_blip",
    "load_segmenter",
    "localisation_sweep",
    "mask_methods_with_oracle",
    "mask_scores",
    "mentioned_classes",
    "miou_by_threshold",
    "mismatched",
    "morphological_refine",
    "noised_scene_maps",
    "object_ious",
    "oracle_row",
    "otsu_threshold",
    "predict_classes",
    "random_weights_pipeline",
    "refine_masks",
    "rendered_scene_maps",
    "resize_pairs",
    "resolve_refinement",
    "segmenter_object_masks",
    "semantic_scores",
    "sweep_groups",
    "sweep_settings",
    "synthetic_class_masks",
    "tiny_random_blip",
    "tokenize",
    "window_timesteps",
    "world_vocabulary",
]
