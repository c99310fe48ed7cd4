"""MicroSD's training configuration: every default of a training run."""

from __future__ import annotations

import time
from dataclasses import dataclass

from stablesemantics.paths import MICROSD_DIR, default_cache_dir

DEFAULT_OUT = MICROSD_DIR


@dataclass
class TrainConfig:
    """Everything that defines a MicroSD training run (recorded in the model card).

    ``stablesemantics train microsd`` builds its options from these fields.

    Attributes:
        out: Where the trained pipeline is written (diffusers format).
        ckpt_dir: Where checkpoints go (outside the work tree); a rerun resumes from them.
        seed: Seed of the scenes, the initial weights and the noise.
        image_size: Side of the rendered training scenes, in pixels.
        min_objects: Fewest objects in a training scene.
        max_objects: Most objects in a training scene.
        vae_channels: Autoencoder channels per level.
        vae_steps: Autoencoder training steps.
        vae_batch: Autoencoder batch size.
        vae_lr: Autoencoder learning rate.
        vae_crop: Train the (fully convolutional) autoencoder on random crops of this side (4x cheaper steps).
        kl_weight: Weight of the autoencoder's KL term.
        text_hidden: Width of the text encoder.
        text_layers: Transformer layers of the text encoder.
        unet_channels: UNet channels per level.
        unet_steps: UNet + text encoder training steps.
        batch: UNet batch size.
        lr: UNet + text encoder peak learning rate.
        warmup: Learning-rate warm-up steps.
        caption_dropout: Share of captions dropped (for classifier-free guidance).
        grounding_weight: Weight of the token grounding loss (0 = none).
        dataset_scenes: Scenes rendered once and encoded once (latents cached in memory).
        init_from: A MicroSD pipeline directory to start from (None = random weights): its
            autoencoder is kept as it is (stage 1 is skipped) and its UNet and text encoder are the
            initial weights; the architecture fields must match it.
        ema_decay: Decay of an exponential moving average of the UNet and text-encoder weights
            (0 = none); when on, the probe, the kept checkpoint and the exported model use the average.
        snr_gamma: Min-SNR-γ loss weighting (Hang et al. 2023; 0 = plain MSE, 5 is their choice).
        prediction_type: What the UNet predicts: 'epsilon' or 'v_prediction' (the exported
            scheduler says which).
        per_token_grounding: Ground every token of an object's phrase (size and colour words too) on
            the object's mask, not only the phrase's mean map.
        keep_last: Export the last weights (the average, with ``ema_decay``) instead of the checkpoint
            with the best localisation on held-out scenes.
        eval_every: Measure localisation every this many steps (the best checkpoint is kept).
        eval_scenes: Held-out scenes of each localisation measurement.
        eval_timesteps: Timesteps at which localisation is measured.
        ckpt_every: Save a checkpoint every this many steps.
        max_minutes: Stop after this many minutes (None = run to the end); rerun to resume.
        export_only: Write the best checkpoint so far as the model and stop.
        threads: CPU threads torch may use.
    """

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
    vae_crop: int | None = 32
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
    dataset_scenes: int = 16384
    init_from: str | None = None
    ema_decay: float = 0.0
    snr_gamma: float = 0.0
    prediction_type: str = "epsilon"
    per_token_grounding: bool = False
    keep_last: bool = False
    # bookkeeping
    eval_every: int = 400
    eval_scenes: int = 48
    eval_timesteps: tuple[int, ...] = (300, 500)
    ckpt_every: int = 100
    max_minutes: float | None = None
    export_only: bool = False
    threads: int = 2


PREDICTION_TYPES = ("epsilon", "v_prediction")


def check_config(cfg: TrainConfig) -> None:
    """Refuse a recipe that cannot run, naming the field."""
    if cfg.prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {cfg.prediction_type!r}")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {cfg.ema_decay!r}")
    if not cfg.snr_gamma >= 0.0:
        raise ValueError(f"snr_gamma must be >= 0 (0 = off), got {cfg.snr_gamma!r}")


def _deadline(cfg: TrainConfig, start: float) -> bool:
    return cfg.max_minutes is not None and time.time() - start > cfg.max_minutes * 60
