"""MicroSD's training configuration: every default of a training run."""

from __future__ import annotations

import time
from dataclasses import dataclass

from stablesemantics.paths import MICROSD_DIR, default_cache_dir

DEFAULT_OUT = MICROSD_DIR
MAX_TOKENS = 77


@dataclass
class TrainConfig:
    """Everything that defines a MicroSD training run (recorded in the model card)."""

    out: str = str(DEFAULT_OUT)
    ckpt_dir: str = str(default_cache_dir() / "microsd-train")
    seed: int = 0
    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 3
    # autoencoder
    vae_channels: tuple[int, ...] = (16, 32, 64)
    vae_steps: int = 2400
    vae_batch: int = 32
    vae_lr: float = 1e-3
    vae_crop: int | None = 32  # train the (fully convolutional) autoencoder on random crops: 4x cheaper steps
    kl_weight: float = 1e-6
    # text encoder + UNet
    text_hidden: int = 64
    text_layers: int = 2
    unet_channels: tuple[int, ...] = (32, 64, 64)
    unet_steps: int = 3200
    batch: int = 32
    lr: float = 5e-4
    warmup: int = 200
    caption_dropout: float = 0.1
    grounding_weight: float = 1.0
    dataset_scenes: int = 16384  # rendered once, encoded once (latents cached in memory)
    # bookkeeping
    eval_every: int = 400
    eval_scenes: int = 48
    eval_timesteps: tuple[int, ...] = (300, 500)
    ckpt_every: int = 100
    max_minutes: float | None = None
    export_only: bool = False  # write the best checkpoint so far as the model and stop
    threads: int = 2


def _deadline(cfg: TrainConfig, start: float) -> bool:
    return cfg.max_minutes is not None and time.time() - start > cfg.max_minutes * 60
