"""Run a pipeline (or a bare UNet) under cross-attention capture: the one way the project does it.

Generation (:mod:`stablesemantics.generate`), the evaluations on rendered and generated scenes
(:mod:`stablesemantics.evaluate`) and the training probes all call :func:`run_with_capture`, so
seeding, the pipeline call and reading the maps are written once.

Seeds. Each image gets its own ``torch.Generator`` seeded with its seed and living on the CPU,
so an image depends on its (prompt, seed, model) triple only: not on the batch it shares, and
not on the device's random number generator (a CUDA generator would draw other numbers).

Example (tiny random pipeline, offline):

>>> from stablesemantics.models import load_pipeline
>>> pipe = load_pipeline("tiny-random", device="cpu")
>>> run = run_with_capture(pipe, prompt=["a red car", "a dog"], seeds=[0, 1], num_inference_steps=2,
...                        height=32, width=32, output_type="np")
>>> run.output.images.shape, tuple(run.maps.shape)
((2, 32, 32, 3), (2, 77, 16, 16))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from stablesemantics.capture.capture import CrossAttentionCapture
from stablesemantics.capture.config import CaptureConfig
from stablesemantics.capture.joint import JointAttentionCapture


@dataclass
class CapturedRun:
    """What one call under capture gives: the call's own output and the mean token maps."""

    output: Any  # what the pipeline (or UNet) returned
    maps: torch.Tensor  # (n_images, n_tokens, h, w) float32 on the CPU


def seeded_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per image, seeded with that image's seed."""
    return [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]


def attention_capture(pipe: Any, config: CaptureConfig | None = None) -> CrossAttentionCapture:
    """The capture for ``pipe``'s family: :class:`JointAttentionCapture` for a pipeline with a
    ``.transformer`` (SD3, Flux), :class:`CrossAttentionCapture` for a UNet pipeline or a bare UNet."""
    if getattr(pipe, "transformer", None) is not None:
        return JointAttentionCapture(pipe, config)
    return CrossAttentionCapture(pipe, config)


def run_with_capture(
    pipe: Any,
    *args: Any,
    capture: CaptureConfig | None = None,
    seeds: Sequence[int] | None = None,
    **kwargs: Any,
) -> CapturedRun:
    """Call ``pipe(*args, **kwargs)`` under :func:`attention_capture` and return output and maps.

    ``pipe`` is a diffusers pipeline of any family (one map per output image, classifier-free
    guidance's unconditional half left out) or a bare ``UNet2DConditionModel`` (one map per batch item).
    ``seeds``, if given, become ``generator=`` (one CPU generator per image, see the module
    docstring); ``capture`` selects layers, steps and the map size (default: everything, at the
    latent size).
    """
    if seeds is not None:
        kwargs["generator"] = seeded_generators(seeds)
    with attention_capture(pipe, capture) as cap:
        output = pipe(*args, **kwargs)
    return CapturedRun(output, cap.maps.float().cpu())
