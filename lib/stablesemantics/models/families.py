"""What family a pipeline belongs to, and what the rest of the project needs to know about it.

Families: ``"sd1"`` and ``"sd2"`` (one CLIP encoder, UNet cross-attention), ``"sdxl"`` (two CLIP
encoders concatenated feature-wise, UNet cross-attention), ``"sd3"`` (MM-DiT joint attention over
``[image | CLIP 77 | T5 n]``), ``"flux"`` (joint attention over ``[T5 n | image]`` in double- and
single-stream blocks). For each: its denoiser (``pipe.unet`` or ``pipe.transformer``), its default
image size, the size of its finest attention grid (where maps are made) and its token segments
(which tokenizer gives which positions of the text the attention sees).

Example:

>>> from stablesemantics.models import load_pipeline
>>> pipe = load_pipeline("tiny-random", device="cpu")
>>> pipeline_family(pipe), attention_grid(pipe, 64, 48), [s.record()["name"] for s in token_segments(pipe)]
('sd1', (32, 24), ['clip'])
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from stablesemantics.prompts.segments import TokenSegment

FAMILIES: tuple[str, ...] = ("sd1", "sd2", "sdxl", "sd3", "flux")


def denoiser(pipe: Any) -> torch.nn.Module:
    """The pipeline's denoising network: ``pipe.unet`` or, for MM-DiTs, ``pipe.transformer``."""
    module = getattr(pipe, "unet", None)
    if module is None:
        module = getattr(pipe, "transformer", None)
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"{type(pipe).__name__} has neither a .unet nor a .transformer")
    return module


def pipeline_family(pipe: Any) -> str:
    """One of :data:`FAMILIES`, from the pipeline's components.

    SD 2.x is told from SD 1.x by its UNet's linear projections (``use_linear_projection``), which
    every SD 2.x checkpoint has and SD 1.x ones do not.
    """
    name = type(pipe).__name__
    if getattr(pipe, "transformer", None) is not None:
        if "Flux" in name:
            return "flux"
        if "StableDiffusion3" in name:
            return "sd3"
        raise ValueError(f"unsupported transformer pipeline {name}: supported are SD3 and Flux")
    unet = denoiser(pipe)
    if getattr(pipe, "text_encoder_2", None) is not None or "XL" in name:
        return "sdxl"
    return "sd2" if getattr(unet.config, "use_linear_projection", False) else "sd1"


def text_encoders(pipe: Any) -> list[str]:
    """Class names of the pipeline's text encoders, in order (``text_encoder``, ``_2``, ``_3``)."""
    names = ("text_encoder", "text_encoder_2", "text_encoder_3")
    return [type(enc).__name__ for n in names if (enc := getattr(pipe, n, None)) is not None]


def default_max_sequence_length(pipe: Any) -> int | None:
    """The T5 sequence length a call uses by default (SD3: 256, Flux: 512), or None without T5."""
    param = inspect.signature(type(pipe).__call__).parameters.get("max_sequence_length")
    return None if param is None else int(param.default)


def token_segments(pipe: Any, max_sequence_length: int | None = None) -> list[TokenSegment]:
    """The token segments of the text the pipeline's attention sees (see :mod:`stablesemantics.prompts.segments`).

    ``max_sequence_length`` is the T5 length of the call (default: the pipeline's default).
    """
    family = pipeline_family(pipe)
    t5_length = max_sequence_length or default_max_sequence_length(pipe)
    if family == "flux":
        return [TokenSegment("t5", pipe.tokenizer_2, 0, int(t5_length))]
    tok = pipe.tokenizer
    twins = tuple(t for t in (getattr(pipe, "tokenizer_2", None),) if t is not None)
    clip = TokenSegment("clip", tok, 0, int(tok.model_max_length), twins)
    if family == "sd3":
        return [clip, TokenSegment("t5", pipe.tokenizer_3, clip.length, int(t5_length))]
    return [clip]


def default_image_size(pipe: Any) -> int:
    """The side of the image the pipeline makes when no size is given (its ``default_sample_size`` in pixels)."""
    vsf = int(getattr(pipe, "vae_scale_factor", 8))
    if getattr(pipe, "unet", None) is not None:
        return int(pipe.unet.config.sample_size) * vsf
    return int(pipe.default_sample_size) * vsf


def attention_grid(pipe: Any, height: int, width: int) -> tuple[int, int]:
    """``(h, w)`` of the finest grid the attention runs on for an image of ``height`` x ``width``.

    UNets: the latent (``size // vae_scale_factor``). SD3: the latent in patches of ``patch_size``.
    Flux: the latent packed in 2x2 patches.
    """
    vsf = int(getattr(pipe, "vae_scale_factor", 8))
    family = pipeline_family(pipe)
    if family == "flux":
        return height // (vsf * 2), width // (vsf * 2)
    if family == "sd3":
        patch = int(pipe.transformer.config.patch_size)
        return height // vsf // patch, width // vsf // patch
    return height // vsf, width // vsf


def describe_text(pipe: Any, max_sequence_length: int | None = None) -> dict[str, Any]:
    """What a store records about the model's text side: family, text encoders and token segments."""
    return {
        "model_family": pipeline_family(pipe),
        "text_encoders": text_encoders(pipe),
        "token_segments": [s.record() for s in token_segments(pipe, max_sequence_length)],
    }
