"""Region-level recognition with dynamic multi-view context (DynRefer, Zhao et al. 2024), small.

A region (a box in an image) is seen through views ``box(t) = b + (I - b)·t`` that add more or
less of its surroundings (:mod:`.views`); when the task is unknown the views are picked by pHash
dissimilarity (:mod:`.select`). A small model fuses the views with their t and reads the
region's class, colour, size, relation and a short caption (:mod:`.model`); it trains on random
views of rendered MicroWorld regions with exact labels (:mod:`.data`, :mod:`.train`) and is scored
as a function of t (:mod:`.evaluate`), and its headline numbers are read from those tables
(:mod:`.headline`). The chapter is ``notebooks/08_regions.ipynb``.
"""

from stablesemantics.regions.data import (
    CLASS_NAMES,
    COLOUR_NAMES,
    RELATIONS,
    SIZE_NAMES,
    TASKS,
    Regions,
    generated_regions,
    region_caption,
    region_vocabulary,
    regions_from_scenes,
)
from stablesemantics.regions.evaluate import (
    CAPTION_METRICS,
    Predictions,
    accuracies,
    caption_metrics,
    evaluate_view_sets,
    fixed_view_sets,
    meteor_available,
    paper_finding,
    predict,
    start_meteor,
    t_sweep,
)
from stablesemantics.regions.headline import (
    HEADLINE_TS,
    headline_numbers,
    headline_view_sets,
    metric_key,
    sweep_points,
    sweep_value,
)
from stablesemantics.regions.model import (
    CaptionDecoder,
    ConvViewEncoder,
    FrozenVAEViewEncoder,
    RegionModel,
    RegionModelConfig,
    ViewFusion,
    t_embedding,
)
from stablesemantics.regions.select import (
    dynamic_view_sets,
    phash_bits,
    phash_scores,
    select_views,
)
from stablesemantics.regions.train import (
    RegionTraining,
    TrainResult,
    ViewInputs,
    encode_captions,
    sample_views,
    train_region_model,
)
from stablesemantics.regions.views import (
    CANDIDATE_TS,
    T_GRID,
    View,
    ViewBank,
    box_mask,
    render_view,
    view_bank,
    view_box,
)

__all__ = [
    "CANDIDATE_TS",
    "CAPTION_METRICS",
    "CLASS_NAMES",
    "HEADLINE_TS",
    "COLOUR_NAMES",
    "RELATIONS",
    "SIZE_NAMES",
    "TASKS",
    "T_GRID",
    "CaptionDecoder",
    "ConvViewEncoder",
    "FrozenVAEViewEncoder",
    "Predictions",
    "RegionModel",
    "RegionModelConfig",
    "RegionTraining",
    "Regions",
    "TrainResult",
    "View",
    "ViewBank",
    "ViewFusion",
    "ViewInputs",
    "accuracies",
    "box_mask",
    "caption_metrics",
    "dynamic_view_sets",
    "encode_captions",
    "evaluate_view_sets",
    "fixed_view_sets",
    "generated_regions",
    "headline_numbers",
    "headline_view_sets",
    "meteor_available",
    "metric_key",
    "paper_finding",
    "phash_bits",
    "phash_scores",
    "predict",
    "region_caption",
    "region_vocabulary",
    "regions_from_scenes",
    "render_view",
    "sample_views",
    "select_views",
    "start_meteor",
    "sweep_points",
    "sweep_value",
    "t_embedding",
    "t_sweep",
    "train_region_model",
    "view_bank",
    "view_box",
]
