"""Training: MicroSD (the embedded model), the reference segmenter, the small captioner, segmenters on synthetic pairs.

MicroSD's recipe and why it has a grounding loss: :mod:`stablesemantics.training.microsd`;
its defaults: :class:`TrainConfig`; the command: ``stablesemantics train microsd``.
Every training checkpoints atomically and resumes bit for bit (:mod:`stablesemantics.training.checkpoints`).
"""

from stablesemantics.training.autoencoder import random_crops, train_vae
from stablesemantics.training.captioner import CaptionerTraining, train_captioner
from stablesemantics.training.checkpoints import atomic_save, load_checkpoint
from stablesemantics.training.config import DEFAULT_OUT, TrainConfig
from stablesemantics.training.data import (
    Batch,
    LatentDataset,
    latent_scaling,
    make_batch,
    scene_stream,
    world_max_objects,
)
from stablesemantics.training.grounding import attention_recorder, grounding_loss, layer_object_maps
from stablesemantics.training.microsd import export, train
from stablesemantics.training.microsd_model import build_text_encoder, build_unet, build_vae, train_noise_scheduler
from stablesemantics.training.probe import evaluate_localisation
from stablesemantics.training.segmenter import (
    REFERENCE_TRAINING,
    SegmenterTraining,
    degrade_images,
    save_segmenter,
    train_reference_segmenter,
    train_segmenter,
)
from stablesemantics.training.segmenter_sets import (
    curve_sizes,
    results_table,
    synthetic_curve,
    train_and_score,
    train_and_score_sets,
)
from stablesemantics.training.unet import lr_at, train_unet

__all__ = [
    "Batch",
    "CaptionerTraining",
    "DEFAULT_OUT",
    "LatentDataset",
    "REFERENCE_TRAINING",
    "SegmenterTraining",
    "TrainConfig",
    "atomic_save",
    "attention_recorder",
    "build_text_encoder",
    "build_unet",
    "build_vae",
    "curve_sizes",
    "degrade_images",
    "evaluate_localisation",
    "export",
    "grounding_loss",
    "latent_scaling",
    "layer_object_maps",
    "load_checkpoint",
    "lr_at",
    "make_batch",
    "random_crops",
    "results_table",
    "save_segmenter",
    "scene_stream",
    "synthetic_curve",
    "train",
    "train_and_score",
    "train_and_score_sets",
    "train_captioner",
    "train_noise_scheduler",
    "train_reference_segmenter",
    "train_segmenter",
    "train_unet",
    "train_vae",
    "world_max_objects",
]
