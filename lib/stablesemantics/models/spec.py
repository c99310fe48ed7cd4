"""Model specs: a base pipeline with its UNet replaced from one safetensors file and another scheduler.

Few-step distilled models such as SDXL-Lightning ship only a UNet: the model is "SDXL base, with
this UNet, sampled by Euler with trailing timesteps, without guidance". A spec says that in one
string, so it travels as one ``model`` parameter (notebook parameters, the CLI, the store)::

    stabilityai/stable-diffusion-xl-base-1.0?unet=ByteDance/SDXL-Lightning/sdxl_lightning_4step_unet.safetensors&scheduler=euler-trailing&guidance=0&steps=4

``unet`` is a local file or ``owner/repo/path/in/repo.safetensors`` on the hub; ``scheduler`` one of
:data:`SCHEDULERS`; ``guidance`` and ``steps`` are the settings the model is made for (recorded in
the spec; a run still sets its own, e.g. ``colab-sdxl-lightning.yaml``, and
:func:`off_spec_settings` names any that differ, which ``generate`` turns into a warning).

Example:

>>> parse_model_spec("tiny-random-sdxl?unet=unet/model.safetensors&scheduler=euler-trailing&guidance=0")
ModelSpec(base='tiny-random-sdxl', unet='unet/model.safetensors', scheduler='euler-trailing', guidance=0.0, steps=None)
>>> parse_model_spec("stabilityai/stable-diffusion-xl-base-1.0") is None
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from diffusers import DDIMScheduler, EulerDiscreteScheduler

#: Scheduler names of a spec: the class and the config changes applied to the base's scheduler config.
SCHEDULERS: dict[str, tuple[type, dict[str, Any]]] = {
    "euler-trailing": (EulerDiscreteScheduler, {"timestep_spacing": "trailing"}),
    "euler": (EulerDiscreteScheduler, {}),
    "ddim-trailing": (DDIMScheduler, {"timestep_spacing": "trailing"}),
}
_KEYS = ("unet", "scheduler", "guidance", "steps")


@dataclass(frozen=True)
class ModelSpec:
    """A base pipeline and what replaces parts of it (see the module docstring)."""

    base: str
    unet: str | None = None
    scheduler: str | None = None
    guidance: float | None = None
    steps: int | None = None


def parse_model_spec(text: str) -> ModelSpec | None:
    """The spec in ``text`` (``base?key=value&...``), or None when ``text`` is a plain model name."""
    if "?" not in text:
        return None
    base, _, query = text.partition("?")
    items = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True))
    unknown = sorted(set(items) - set(_KEYS))
    if not base or unknown:
        raise ValueError(f"model spec {text!r}: needs a base before '?' and only the keys {_KEYS}, got {unknown}")
    scheduler = items.get("scheduler")
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ValueError(f"model spec {text!r}: unknown scheduler {scheduler!r}; known: {sorted(SCHEDULERS)}")
    guidance = float(items["guidance"]) if "guidance" in items else None
    steps = int(items["steps"]) if "steps" in items else None
    return ModelSpec(base, items.get("unet"), scheduler, guidance, steps)


def off_spec_settings(model: str, steps: int, guidance: float) -> str | None:
    """A sentence naming the run settings that differ from those ``model``'s spec is made for, or None.

    >>> off_spec_settings("base?scheduler=euler-trailing&guidance=0&steps=4", 25, 0.0)
    'model spec base?scheduler=euler-trailing&guidance=0&steps=4 is made for 4 steps; this run uses 25'
    >>> off_spec_settings("base?steps=4", 4, 7.5) is None  # the spec says nothing of guidance
    True
    """
    spec = parse_model_spec(model)
    if spec is None:
        return None
    off = []
    if spec.steps is not None and spec.steps != steps:
        off.append(f"{spec.steps} steps; this run uses {steps}")
    if spec.guidance is not None and spec.guidance != guidance:
        off.append(f"guidance {spec.guidance:g}; this run uses {guidance:g}")
    return f"model spec {model} is made for " + " and ".join(off) if off else None


def unet_file(ref: str) -> Path:
    """A local safetensors file, or ``owner/repo/path.safetensors`` fetched from the hub (or its cache)."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    parts = ref.split("/")
    if len(parts) < 3 or os.path.isabs(ref):
        raise FileNotFoundError(f"UNet file {ref!r} is neither a local file nor 'owner/repo/file' on the hub")
    from huggingface_hub import hf_hub_download  # only for hub specs

    return Path(hf_hub_download("/".join(parts[:2]), "/".join(parts[2:])))


def apply_spec(pipe: Any, spec: ModelSpec) -> Any:
    """Replace ``pipe``'s UNet weights (strictly: every tensor, same shapes) and scheduler as ``spec`` says."""
    if spec.unet is not None:
        from safetensors.torch import load_file  # a dependency of diffusers; needed only for specs

        state = load_file(str(unet_file(spec.unet)))
        pipe.unet.load_state_dict(state, strict=True)
    if spec.scheduler is not None:
        cls, changes = SCHEDULERS[spec.scheduler]
        pipe.scheduler = cls.from_config(pipe.scheduler.config, **changes)
    return pipe
