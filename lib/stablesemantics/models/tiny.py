"""Tiny random-weight pipelines of every family, built offline from configs: SD 2.x, SDXL, SD3, Flux.

Modelled on diffusers' own ``get_dummy_components`` (tests/pipelines/stable_diffusion_xl,
stable_diffusion_3, flux), with two differences that let the project's code run on them as on
real checkpoints: the CLIP text encoders have the real CLIP vocabulary (the tokenizer is the real
one, built offline from the shipped BPE; the second CLIP tokenizer of SDXL and SD3 pads with
``!`` as the real ones do), and the T5 encoder uses a tiny Unigram tokenizer trained here
(:func:`stablesemantics.prompts.t5_tokenizer.load_tiny_t5_tokenizer`), at least as wide as the
two CLIP encoders together (SD3 pads the CLIP features to the T5 width and would crop a wider
CLIP part without an error). Every VAE downsamples by 2, so a 64x48 image has a 32x24 latent.

Each builder reseeds the global torch RNG before every component: the same seed gives the same
weights. :data:`TINY_PIPELINES` maps the names that :func:`stablesemantics.models.load_pipeline`
accepts to a function returning the pipeline.

Example:

>>> pipe = TINY_PIPELINES["tiny-random-flux"]()
>>> type(pipe).__name__, pipe.transformer.config.num_single_layers
('FluxPipeline', 2)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from stablesemantics.models.components import SD_NOISE_SCHEDULE
from stablesemantics.prompts.clip_tokenizer import (
    CLIP_BOS_ID,
    CLIP_EOS_ID,
    CLIP_MAX_LENGTH,
    CLIP_PAD_ID,
    CLIP_VOCAB_SIZE,
    load_clip_tokenizer,
)
from stablesemantics.prompts.t5_tokenizer import T5_EOS_ID, T5_PAD_ID, load_tiny_t5_tokenizer

TINY_SD2 = "tiny-random-sd2"
TINY_SDXL = "tiny-random-sdxl"
TINY_SD3 = "tiny-random-sd3"
TINY_FLUX = "tiny-random-flux"


def _clip(seed: int, hidden: int = 32, *, projection: bool = False) -> torch.nn.Module:
    """A 2-layer CLIP text encoder with the real CLIP vocabulary (``projection``: the ``WithProjection`` kind)."""
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        hidden_size=hidden,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=CLIP_VOCAB_SIZE,
        max_position_embeddings=CLIP_MAX_LENGTH,
        bos_token_id=CLIP_BOS_ID,
        eos_token_id=CLIP_EOS_ID,
        pad_token_id=CLIP_PAD_ID,
        hidden_act="gelu",
        projection_dim=hidden,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()


def _t5(seed: int, width: int) -> torch.nn.Module:
    """A 2-layer T5 encoder of ``width`` over the tiny T5 tokenizer's vocabulary."""
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(load_tiny_t5_tokenizer()),
        d_model=width,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=T5_PAD_ID,
        eos_token_id=T5_EOS_ID,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config).eval()


def _second_clip_tokenizer() -> Any:
    """The CLIP tokenizer padding with ``!`` (id 0), as SDXL's and SD3's second tokenizers do."""
    tok = copy.deepcopy(load_clip_tokenizer())
    tok.pad_token = "!"
    return tok


def _vae(seed: int, *, flow: bool = False) -> torch.nn.Module:
    """A 2-level VAE (downsampling 2) with 4 latent channels; ``flow``: SD3/Flux style (shift, no quant convs)."""
    torch.manual_seed(seed)
    extra: dict[str, Any] = (
        {"use_quant_conv": False, "use_post_quant_conv": False, "shift_factor": 0.0609, "scaling_factor": 1.5035}
        if flow
        else {}
    )
    return AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        sample_size=64,
        **extra,
    ).eval()


def tiny_random_sd2(seed: int = 0) -> StableDiffusionPipeline:
    """SD 2.x-shaped: linear projections in the transformers, heads per level, v-prediction DDIM.

    >>> tiny_random_sd2().scheduler.config.prediction_type
    'v_prediction'
    """
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
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        norm_num_groups=8,
    ).eval()
    scheduler = DDIMScheduler(
        **SD_NOISE_SCHEDULE,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="v_prediction",
        timestep_spacing="trailing",
        rescale_betas_zero_snr=False,
    )
    return StableDiffusionPipeline(
        unet=unet,
        vae=_vae(seed),
        text_encoder=_clip(seed),
        tokenizer=load_clip_tokenizer(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )


def tiny_random_sdxl(seed: int = 0) -> StableDiffusionXLPipeline:
    """SDXL-shaped: two CLIP encoders (32 + 32 = 64 features), pooled text and time ids as added
    conditioning, two transformer layers per block at the second level, Euler scheduler.

    >>> tiny_random_sdxl().unet.config.cross_attention_dim
    64
    """
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64,
        norm_num_groups=8,
    ).eval()
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear", timestep_spacing="leading"
    )
    return StableDiffusionXLPipeline(
        unet=unet,
        vae=_vae(seed),
        scheduler=scheduler,
        text_encoder=_clip(seed),
        tokenizer=load_clip_tokenizer(),
        text_encoder_2=_clip(seed + 1, projection=True),
        tokenizer_2=_second_clip_tokenizer(),
        image_encoder=None,
        feature_extractor=None,
        add_watermarker=False,
    )


def tiny_random_sd3(seed: int = 0) -> StableDiffusion3Pipeline:
    """SD3-shaped (SD3.5 details included): 2 joint blocks of 4 heads, patch 2, RMS q/k norms, the first
    block with the extra image-only attention of SD3.5; CLIP-L, CLIP-G (32 each) and a 64-wide T5.

    >>> tiny_random_sd3().transformer.config.joint_attention_dim
    64
    """
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=64,
        pooled_projection_dim=64,
        out_channels=4,
        pos_embed_max_size=64,
        dual_attention_layers=(0,),
        qk_norm="rms_norm",
    ).eval()
    return StableDiffusion3Pipeline(
        transformer=transformer,
        vae=_vae(seed, flow=True),
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=_clip(seed, projection=True),
        tokenizer=load_clip_tokenizer(),
        text_encoder_2=_clip(seed + 1, projection=True),
        tokenizer_2=_second_clip_tokenizer(),
        text_encoder_3=_t5(seed, 64),
        tokenizer_3=load_tiny_t5_tokenizer(),
    )


def tiny_random_flux(seed: int = 0) -> FluxPipeline:
    """Flux-shaped: 2 double-stream and 2 single-stream blocks of 2 heads, RoPE, 2x2 latent packing
    (``in_channels`` = 4 x the VAE's 4 latent channels), no guidance embedding (schnell-like); CLIP
    gives the pooled vector, a 32-wide T5 the token sequence.

    >>> tiny_random_flux().transformer.config.in_channels
    16
    """
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=(4, 4, 8),
    ).eval()
    return FluxPipeline(
        transformer=transformer,
        vae=_vae(seed, flow=True),
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=_clip(seed),
        tokenizer=load_clip_tokenizer(),
        text_encoder_2=_t5(seed, 32),
        tokenizer_2=load_tiny_t5_tokenizer(),
        image_encoder=None,
        feature_extractor=None,
    )


#: Names of the tiny pipelines (for ``load_pipeline``) and their builders.
TINY_PIPELINES: dict[str, Callable[[], Any]] = {
    TINY_SD2: tiny_random_sd2,
    TINY_SDXL: tiny_random_sdxl,
    TINY_SD3: tiny_random_sd3,
    TINY_FLUX: tiny_random_flux,
}
