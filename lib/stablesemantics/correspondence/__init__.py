"""Semantic correspondence by prompt-embedding optimisation (Hedlin et al. 2023), scored on MicroWorld's keypoints.

Optimise a conditioning (the text encoder's output, ``n_tokens × dim``) so that one token's
cross-attention peaks at a query point of a lightly noised source image (:mod:`.optimise`), then
read where that token attends in a target image, averaged over crops (:mod:`.transfer`). Baselines:
DIFT's nearest neighbour of UNet features (:mod:`.dift`), the same place in the box and the box
centre (:mod:`.boxes`). Pairs of MicroWorld objects with exact part keypoints (:mod:`.pairs`) are
scored with PCK relative to the target box (:mod:`.scoring`, :mod:`.evaluate`). The chapter is
``notebooks/09_correspondence.ipynb``.
"""

from stablesemantics.correspondence.attention import encode_pixels, noise_latents, token_attention
from stablesemantics.correspondence.boxes import box_centre, same_place_in_box
from stablesemantics.correspondence.config import CorrespondenceConfig, DiftConfig
from stablesemantics.correspondence.dift import dift_features, nearest_neighbour_points
from stablesemantics.correspondence.evaluate import (
    BASELINES,
    PROMPT_METHODS,
    CorrespondenceRun,
    dift_sweep,
    headline_numbers,
    prompt_sweep,
    run_correspondence,
)
from stablesemantics.correspondence.geometry import (
    argmax_points,
    crop_boxes,
    crop_images,
    gaussian_maps,
    maps_from_crops,
    points_to_crop,
    soft_argmax_points,
)
from stablesemantics.correspondence.optimise import OptimisedEmbeddings, optimise_embeddings
from stablesemantics.correspondence.pairs import (
    KeypointQueries,
    candidate_objects,
    keypoint_queries,
    mirrored_scene,
    sample_pairs,
    shared_parts,
)
from stablesemantics.correspondence.plots import plot_pck_bars, plot_transfers
from stablesemantics.correspondence.scoring import (
    ALPHAS,
    best_and_worst,
    pck,
    pck_table,
    point_errors,
    reference_sizes,
)
from stablesemantics.correspondence.transfer import predict_points, transfer_maps

__all__ = [
    "ALPHAS",
    "BASELINES",
    "PROMPT_METHODS",
    "CorrespondenceConfig",
    "CorrespondenceRun",
    "DiftConfig",
    "KeypointQueries",
    "OptimisedEmbeddings",
    "argmax_points",
    "best_and_worst",
    "box_centre",
    "candidate_objects",
    "crop_boxes",
    "crop_images",
    "dift_features",
    "dift_sweep",
    "encode_pixels",
    "gaussian_maps",
    "headline_numbers",
    "keypoint_queries",
    "maps_from_crops",
    "mirrored_scene",
    "nearest_neighbour_points",
    "noise_latents",
    "optimise_embeddings",
    "pck",
    "pck_table",
    "plot_pck_bars",
    "plot_transfers",
    "point_errors",
    "points_to_crop",
    "predict_points",
    "prompt_sweep",
    "reference_sizes",
    "run_correspondence",
    "same_place_in_box",
    "sample_pairs",
    "shared_parts",
    "soft_argmax_points",
    "token_attention",
    "transfer_maps",
]
