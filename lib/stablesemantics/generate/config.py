"""A generation run's settings: :class:`GenerationConfig`, the one place their defaults live.

:func:`stablesemantics.generate.generate` takes its settings from it, ``stablesemantics
generate`` builds its options from its fields, and a store records it (root attribute
``generation_config``) so that a resumed run can be checked against the run that began it.

>>> GenerationConfig().model, GenerationConfig().steps
('microsd', 20)
>>> with_settings(None, model="tiny-random", steps=2).steps
2
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stablesemantics.capture.config import CaptureConfig
from stablesemantics.generate.plan import _check_int


@dataclass(frozen=True)
class GenerationConfig:
    """How images and maps are made: every setting of a generation run.

    Attributes:
        model: 'microsd', 'tiny-random', a pipeline directory or a hub id (from Python also a loaded pipeline).
        steps: Denoising steps.
        guidance: Classifier-free guidance scale: a finite number >= 0. At most 1 turns guidance off
            (diffusers' convention: the conditional prediction alone, so every value in [0, 1] makes
            the same images); a negative one is refused, as it would silently mean the same.
        height: Image height; None = the model's.
        width: Image width; None = the model's.
        batch_size: Images per pipeline call; it also fixes the store's batch partition.
        capture: What the maps aggregate (map size, UNet blocks, layer resolutions, part of the schedule).
        max_sequence_length: T5 tokens of SD3 and Flux pipelines (e.g. 256 for FLUX.1-schnell);
            None = the pipeline's default. Refused for pipelines without a T5 encoder.
        dedupe: Drop prompts that are duplicates after cleaning (prompt_id keeps the link).
        device: cuda, cpu, mps; None = the best available (for a model given by name).
        progress: Show a progress bar.
    """

    model: Any = "microsd"
    steps: int = 20
    guidance: float = 7.5
    height: int | None = None
    width: int | None = None
    batch_size: int = 4
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    max_sequence_length: int | None = None
    dedupe: bool = True
    device: str | None = None
    progress: bool = True


#: Settings that do not change what a run makes, so a store may be resumed with other values:
#: the progress bar, and the device (a resume on another device is allowed with a warning, as
#: images may then differ in the last bits). ``batch_size`` is not among them: it fixes the
#: store's batch partition, and an image is bit-identical only within the same partition.
RUN_ONLY = frozenset({"progress", "device"})

SETTINGS = tuple(f.name for f in dataclasses.fields(GenerationConfig))


def with_settings(config: GenerationConfig | None, **settings: Any) -> GenerationConfig:
    """``config`` (default: :class:`GenerationConfig`'s defaults) with some settings replaced.

    An unknown setting is a ``TypeError`` that lists the known ones.
    """
    if config is None:
        config = GenerationConfig()
    elif not isinstance(config, GenerationConfig):
        raise TypeError(f"config must be a GenerationConfig or None, got {type(config).__name__}")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise TypeError(f"unknown generation setting(s) {unknown}; the settings are {list(SETTINGS)}")
    return dataclasses.replace(config, **settings)


def check_config(config: GenerationConfig) -> GenerationConfig:
    """``config`` with every setting type-checked and normalised (ints, a float guidance, a capture).

    The model is checked when it is loaded. ``TypeError`` / ``ValueError`` name the setting.
    """
    steps = _check_int(config.steps, "steps")
    guidance = config.guidance
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float, np.floating, np.integer)):
        raise TypeError(f"guidance must be a number, got {type(guidance).__name__}")
    if not math.isfinite(float(guidance)):
        raise ValueError(f"guidance must be a finite number, got {float(guidance)}")
    if guidance < 0:
        raise ValueError(f"guidance must be >= 0, got {float(guidance)} (values up to 1 turn guidance off)")
    height = None if config.height is None else _check_int(config.height, "height")
    width = None if config.width is None else _check_int(config.width, "width")
    batch_size = _check_int(config.batch_size, "batch_size")
    max_seq = (
        None if config.max_sequence_length is None else _check_int(config.max_sequence_length, "max_sequence_length")
    )
    capture = CaptureConfig() if config.capture is None else config.capture
    if not isinstance(capture, CaptureConfig):
        raise TypeError(f"capture must be a CaptureConfig, got {type(capture).__name__}")
    if not isinstance(config.progress, bool):
        raise TypeError(f"progress must be a bool, got {type(config.progress).__name__}")
    if not isinstance(config.dedupe, bool):
        raise TypeError(f"dedupe must be a bool, got {type(config.dedupe).__name__}")
    return dataclasses.replace(
        config,
        steps=steps,
        guidance=float(guidance),
        height=height,
        width=width,
        batch_size=batch_size,
        capture=capture,
        max_sequence_length=max_seq,
    )
