"""The pipelines the benchmark measures (tiny random, SD-1.5-shaped) and its setups."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from _capture.common import GOAL_RATIO_CPU, GOAL_RATIO_GPU
from stablesemantics.models import assemble_components, load_pipeline


def sd15_components(width_div: int = 1, seed: int = 0) -> dict[str, Any]:
    """Components of an SD-1.5-shaped pipeline with random weights, built from configs (no download).

    UNet: SD-1.5's config (``width_div`` > 1 divides the channels, for smoke runs only). Text
    encoder: one CLIP layer of width 768 (cheap; only its output shape matters to the UNet).
    VAE: 4 small levels, so ``vae_scale_factor`` is 8 as in SD (512x512 -> 64x64 latent).
    """
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=tuple(c // width_div for c in (320, 640, 1280, 1280)),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768,
        attention_head_dim=8,  # SD-1.5: 8 heads per layer (diffusers' historical name)
        norm_num_groups=32,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=512,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=1,
            vocab_size=49408,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            projection_dim=768,
        )
    )
    return assemble_components(unet, vae, text_encoder)


def build_pipeline(builder: str, width_div: int, device: str, dtype: torch.dtype) -> Any:
    if builder == "tiny":
        return load_pipeline("tiny-random", device=device, dtype=dtype)
    if builder == "tiny-sdxl":
        return load_pipeline("tiny-random-sdxl", device=device, dtype=dtype)
    if builder == "sd15":
        pipe = StableDiffusionPipeline(**sd15_components(width_div), requires_safety_checker=False)
        pipe = pipe.to(device)
        if dtype != torch.float32:  # the components are built in float32
            pipe = pipe.to(dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    raise ValueError(f"unknown builder {builder!r}")


@dataclass
class Setup:
    name: str
    description: str
    builder: str  # "tiny" | "tiny-sdxl" | "sd15"
    device: str
    dtype: str  # "float32" | "float16"
    height: int
    width: int
    steps: int
    repeats: int
    output_type: str
    width_div: int = 1
    memory_steps: tuple[int, ...] = ()
    memory_modes: tuple[str, ...] = ("plain", "ours")
    goal_ratio: float = GOAL_RATIO_CPU

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


def make_setups(quick: bool, names: list[str] | None) -> list[Setup]:
    cuda = torch.cuda.is_available()
    tiny = Setup(
        name="tiny-cpu",
        description="tiny random pipeline (stablesemantics 'tiny-random'), 96x96 image, 48x48 latent, float32",
        builder="tiny",
        device="cpu",
        dtype="float32",
        height=96,
        width=96,
        steps=2 if quick else 5,
        repeats=3 if quick else 6,
        output_type="np",
        memory_steps=(3, 6) if quick else (10, 50),
    )
    sd_cpu = Setup(
        name="sd15-cpu",
        description="SD-1.5-shaped UNet, random weights, 512x512 image, 64x64 latent, float32, output_type='latent'",
        builder="sd15",
        device="cpu",
        dtype="float32",
        height=512,
        width=512,
        steps=1,
        repeats=3,
        output_type="latent",
    )
    if quick:
        sd_cpu = replace(
            sd_cpu,
            name="sd15-cpu-narrow",
            width_div=10,
            height=128,
            width=128,
            description="SD-1.5-shaped UNet with 1/10 of the channels (smoke only), random weights, "
            "128x128 image, 16x16 latent, float32, output_type='latent'",
        )
    sd_cuda = Setup(
        name="sd15-cuda",
        description="SD-1.5-shaped UNet, random weights, 512x512 image, 64x64 latent, float16 on the GPU, "
        "output_type='latent'",
        builder="sd15",
        device="cuda",
        dtype="float16",
        height=512,
        width=512,
        steps=5 if quick else 20,
        repeats=3 if quick else 6,
        output_type="latent",
        memory_steps=(10, 50),
        memory_modes=("plain", "ours", "daam"),
        goal_ratio=GOAL_RATIO_GPU,
    )
    tiny_sdxl = replace(
        tiny,
        name="tiny-sdxl-cpu",
        description="tiny random SDXL pipeline (stablesemantics 'tiny-random-sdxl': two CLIP encoders, "
        "added time ids), 96x96 image, 48x48 latent, float32",
        builder="tiny-sdxl",
        memory_steps=(),
    )
    setups = {s.name: s for s in (tiny, tiny_sdxl, sd_cpu)}
    if cuda:
        setups[sd_cuda.name] = sd_cuda
    if names is None:
        return list(setups.values())
    aliases = {"sd15-cpu": sd_cpu.name, "sd15-cpu-narrow": sd_cpu.name}
    out = []
    for n in names:
        key = aliases.get(n, n)
        if key not in setups:
            raise SystemExit(f"unknown or unavailable setup {n!r}; available: {', '.join(setups)}")
        out.append(setups[key])
    return out
