"""Every family's denoiser at three sizes, with random weights built from configs (no download).

* ``tiny``: the denoiser of the tiny test pipeline (``load_pipeline("tiny-random-<family>")``);
* ``cpu``: the real architecture (real widths, depths and heads) at a 64x64 latent, the size of a
  512x512 image: what two CPU cores run in a few minutes; Flux keeps its real block width but only
  2 double- and 4 single-stream blocks (its 12B parameters in float32 need 48 GB);
* ``real``: the real architecture at its real size (SD-1.5 and SD-2 at 512 and 768, SDXL, SD3 and
  Flux at 1024x1024), for a GPU.

The configs are those of the public checkpoints' ``config.json`` files (stable-diffusion-v1-5,
stable-diffusion-2-1, stable-diffusion-xl-base-1.0, stable-diffusion-3-medium, FLUX.1-schnell).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers import FluxTransformer2DModel, SD3Transformer2DModel, UNet2DConditionModel

from stablesemantics.models import load_pipeline

SD_DOWN = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
SD_UP = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")
REAL_CONFIGS: dict[str, dict[str, Any]] = {
    "sd1": dict(
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=SD_DOWN,
        up_block_types=SD_UP,
        cross_attention_dim=768,
        attention_head_dim=8,
    ),
    "sd2": dict(
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=SD_DOWN,
        up_block_types=SD_UP,
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True,
    ),
    "sdxl": dict(
        block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10),
        cross_attention_dim=2048,
        attention_head_dim=(5, 10, 20),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    ),
    "sd3": dict(
        patch_size=2,
        in_channels=16,
        num_layers=24,
        attention_head_dim=64,
        num_attention_heads=24,
        joint_attention_dim=4096,
        caption_projection_dim=1536,
        pooled_projection_dim=2048,
        out_channels=16,
        pos_embed_max_size=192,
    ),
    "flux": dict(
        patch_size=1,
        in_channels=64,
        num_layers=19,
        num_single_layers=38,
        attention_head_dim=128,
        num_attention_heads=24,
        joint_attention_dim=4096,
        pooled_projection_dim=768,
        guidance_embeds=False,
        axes_dims_rope=(16, 56, 56),
    ),
}
#: latent side of the ``real`` setting (image side / 8)
REAL_LATENT = {"sd1": 64, "sd2": 96, "sdxl": 128, "sd3": 128, "flux": 128}
#: text tokens the denoiser attends to: 77 CLIP, SD3 77 CLIP + 256 T5, Flux 256 T5 (schnell)
REAL_TEXT = {"sd1": 77, "sd2": 77, "sdxl": 77, "sd3": 77 + 256, "flux": 256}
FAMILIES = tuple(REAL_CONFIGS)


@dataclass
class Shape:
    """One denoiser and what one step of it is called with."""

    family: str
    size: str
    denoiser: torch.nn.Module
    latent: int  # latent side
    text: int  # text tokens
    batch: int  # 2 with classifier-free guidance (UNets, SD3), 1 for Flux (guidance distilled)

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.denoiser.parameters())


def build(family: str, size: str, seed: int = 0) -> Shape:
    """The denoiser of ``family`` at ``size`` (``tiny``, ``cpu``, ``real``), float32 on the CPU."""
    batch = 1 if family == "flux" else 2
    if size == "tiny":
        name = "tiny-random" if family == "sd1" else f"tiny-random-{family}"
        pipe = load_pipeline(name, device="cpu")
        denoiser = pipe.transformer if family in ("sd3", "flux") else pipe.unet
        text = {"sd3": 77 + 16, "flux": 16}.get(family, 77)
        return Shape(family, size, denoiser.eval(), 16, text, batch)
    torch.manual_seed(seed)
    config = dict(REAL_CONFIGS[family])
    if family == "flux" and size == "cpu":
        config.update(num_layers=2, num_single_layers=4)
    if family == "sd3":
        denoiser = SD3Transformer2DModel(sample_size=REAL_LATENT[family], **config)
    elif family == "flux":
        denoiser = FluxTransformer2DModel(**config)
    else:
        denoiser = UNet2DConditionModel(sample_size=REAL_LATENT[family], layers_per_block=2, **config)
    latent = REAL_LATENT[family] if size == "real" else 64
    return Shape(family, size, denoiser.eval(), latent, REAL_TEXT[family], batch)


def step_inputs(shape: Shape, device: torch.device, dtype: torch.dtype, seed: int = 0) -> dict[str, Any]:
    """Random keyword arguments of one denoiser call (one sampling step), like the pipeline's."""
    g = torch.Generator().manual_seed(seed)
    cfg = shape.denoiser.config
    b, n, t = shape.batch, shape.latent, shape.text

    def rand(*dims: int) -> torch.Tensor:
        return torch.randn(*dims, generator=g).to(device, dtype)

    if shape.family == "flux":
        h = w = n // 2  # 2x2 latent patches packed into tokens
        img_ids = torch.stack(
            torch.meshgrid(torch.zeros(1), torch.arange(float(h)), torch.arange(float(w)), indexing="ij"), -1
        )
        return dict(
            hidden_states=rand(b, h * w, cfg.in_channels),
            encoder_hidden_states=rand(b, t, cfg.joint_attention_dim),
            pooled_projections=rand(b, cfg.pooled_projection_dim),
            timestep=torch.full((b,), 0.5, device=device, dtype=dtype),
            img_ids=img_ids.reshape(-1, 3).to(device, dtype),
            txt_ids=torch.zeros(t, 3, device=device, dtype=dtype),
            return_dict=False,
        )
    if shape.family == "sd3":
        return dict(
            hidden_states=rand(b, cfg.in_channels, n, n),
            encoder_hidden_states=rand(b, t, cfg.joint_attention_dim),
            pooled_projections=rand(b, cfg.pooled_projection_dim),
            timestep=torch.full((b,), 500.0, device=device, dtype=dtype),
            return_dict=False,
        )
    kwargs: dict[str, Any] = dict(
        sample=rand(b, cfg.in_channels, n, n),
        timestep=torch.full((b,), 500, device=device),
        encoder_hidden_states=rand(b, t, cfg.cross_attention_dim),
        return_dict=False,
    )
    if cfg.addition_embed_type == "text_time":
        pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        kwargs["added_cond_kwargs"] = {"text_embeds": rand(b, pooled), "time_ids": rand(b, 6)}
    return kwargs
