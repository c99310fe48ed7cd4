"""Train MicroSD: a small latent diffusion model on MicroWorld, saved in diffusers format.

MicroSD has exactly the parts of Stable Diffusion 1.x — ``AutoencoderKL``,
``CLIPTextModel`` with the real CLIP BPE tokenizer, ``UNet2DConditionModel`` with
cross-attention at several resolutions, a DDIM scheduler — so
``StableDiffusionPipeline.from_pretrained("data/models/microsd")`` loads it and every
line of the real-model path runs on it.

Training has two stages, each resumable from checkpoints kept outside the work tree:

1. the autoencoder (64×64 RGB → 16×16×4 latents), reconstruction + a small KL term;
2. the UNet and the text encoder jointly, epsilon prediction on scaled latents with
   10 % caption dropout (for classifier-free guidance), plus a *token grounding* loss.

Why a grounding loss. Large Stable Diffusion models learn cross-attention that lands on
the object a word names from billions of images. A 1.5M-parameter UNet trained for CPU
hours does not (see book/microsd.md: 0.2–0.3 mIoU, and maps can drift *away* from objects as the
denoiser learns to read the noisy image instead of the text). Following TokenCompose
(Wang et al., CVPR 2024), we add, for each object phrase of the caption, a loss that asks
its mean cross-attention map to put its mass inside the object's true mask:
``(1 - Σ_inside a)²`` per layer. This is a training objective, not a post-hoc edit: the
maps analysed in the book are still computed by the model at inference time, on prompts
and seeds it has never seen. Set ``grounding_weight=0`` to train without it. The checkpoint
kept is the one with the best localisation on held-out scenes, not the lowest loss.

Run ``stablesemantics train microsd --help`` (or ``make model``).
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
from stablesemantics.training.unet import lr_at, train_unet

__all__ = [
    "Batch",
    "CaptionerTraining",
    "DEFAULT_OUT",
    "LatentDataset",
    "attention_recorder",
    "REFERENCE_TRAINING",
    "SegmenterTraining",
    "TrainConfig",
    "atomic_save",
    "build_text_encoder",
    "build_unet",
    "build_vae",
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
    "save_segmenter",
    "scene_stream",
    "train",
    "train_captioner",
    "train_noise_scheduler",
    "train_reference_segmenter",
    "train_segmenter",
    "train_unet",
    "train_vae",
    "world_max_objects",
]
