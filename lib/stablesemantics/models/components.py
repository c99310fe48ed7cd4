"""Stable Diffusion components from configs: the tiny random pipeline and the shared noise schedule."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel

from stablesemantics.prompts.clip_tokenizer import (
    CLIP_BOS_ID,
    CLIP_EOS_ID,
    CLIP_MAX_LENGTH,
    CLIP_PAD_ID,
    CLIP_VOCAB_SIZE,
    load_clip_tokenizer,
)


def tiny_random_components(seed: int = 0) -> dict[str, Any]:
    """Components of a tiny Stable Diffusion pipeline with random weights, built from configs.

    The diffusers ``get_dummy_components`` pattern: every line of the real code path runs, in
    well under a second per image on a CPU. Each component is built after ``torch.manual_seed(seed)``,
    so two calls with the same seed give identical weights (the global torch RNG is reseeded).

    Shapes: a UNet with two levels (32 and 64 channels) and cross-attention in every down, mid and
    up block, so cross-attention runs at two resolutions (factors 1 and 2 of the latent) with 2 and
    4 heads; a VAE with a downsampling factor of 2 (a 64x48 image has a 32x24 latent); a 5-layer
    CLIP text encoder with the real CLIP vocabulary, so the real (offline-built) CLIP tokenizer
    from :func:`stablesemantics.prompts.load_clip_tokenizer` works with it; a DDIM scheduler.

    Example:

    >>> from diffusers import StableDiffusionPipeline
    >>> pipe = StableDiffusionPipeline(**tiny_random_components(), requires_safety_checker=False)
    >>> pipe.vae_scale_factor
    2
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(2, 4),  # diffusers reads this as the number of heads per level
        norm_num_groups=8,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=5,
            vocab_size=CLIP_VOCAB_SIZE,  # the real CLIP vocabulary: the tokenizer is the real one
            max_position_embeddings=CLIP_MAX_LENGTH,
            bos_token_id=CLIP_BOS_ID,
            eos_token_id=CLIP_EOS_ID,
            pad_token_id=CLIP_PAD_ID,
            projection_dim=32,
        )
    )
    return assemble_components(unet, vae, text_encoder)


# Stable Diffusion 1.x's noise schedule, shared by sampling (DDIM) and training (DDPM).
SD_NOISE_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
}


def sd_scheduler(prediction_type: str = "epsilon") -> DDIMScheduler:
    """DDIM with Stable Diffusion 1.x's noise schedule (scaled-linear betas 0.00085–0.012)."""
    return DDIMScheduler(**SD_NOISE_SCHEDULE, set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type)


def assemble_components(unet: Any, vae: Any, text_encoder: Any, prediction_type: str = "epsilon") -> dict[str, Any]:
    """The keyword arguments of :class:`StableDiffusionPipeline` around three models: the real
    CLIP tokenizer (built offline), :func:`sd_scheduler`, and no safety checker."""

    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": load_clip_tokenizer(),
        "scheduler": sd_scheduler(prediction_type),
        "safety_checker": None,
        "feature_extractor": None,
        "image_encoder": None,
    }
