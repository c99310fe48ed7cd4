"""Which layers, steps and models localise: the localisation sweep."""

from __future__ import annotations

import torch

from stablesemantics.capture.config import CaptureConfig, cross_attention_layers
from stablesemantics.evaluate.localisation import encode_scenes, noised_scene_maps, rendered_scene_maps
from stablesemantics.evaluate.masks import binarise_maps
from stablesemantics.evaluate.metrics import best_threshold_miou
from stablesemantics.evaluate.scores import mask_scores


def cross_attention_levels(unet) -> list[tuple[str, int]]:
    """The ``(block, factor)`` pairs at which ``unet`` has cross-attention, ``factor`` being the
    downsampling relative to the latent (1 = latent resolution), in the UNet's module order (down
    blocks, up blocks, then the mid block). Layers are found as the capture finds them
    (:func:`~stablesemantics.capture.cross_attention_layers`).

    >>> from stablesemantics.models import load_pipeline
    >>> cross_attention_levels(load_pipeline("tiny-random", device="cpu").unet)
    [('down', 1), ('down', 2), ('up', 2), ('up', 1), ('mid', 2)]
    """
    n_levels = len(unet.config.block_out_channels)
    found = []
    for layer in cross_attention_layers(unet):
        if layer.block == "down":
            level = ("down", 2**layer.index)
        elif layer.block == "up":
            level = ("up", 2 ** (n_levels - 1 - layer.index))
        else:
            level = ("mid", 2 ** (n_levels - 1))
        if level not in found:
            found.append(level)
    return found


def window_timesteps(pipe, steps: int, strength: float, t_range: tuple[float, float]) -> tuple[int, int]:
    """The (first, last) scheduler timesteps that an img2img run of ``steps`` at ``strength`` keeps
    under ``CaptureConfig(t_range=t_range)`` (first = noisiest, on the 0–1000 training scale)."""

    sched = pipe.scheduler.__class__.from_config(pipe.scheduler.config)
    sched.set_timesteps(steps)
    n_run = min(int(steps * strength), steps)
    run = [int(t) for t in sched.timesteps[steps - n_run :]]
    cfg = CaptureConfig(t_range=tuple(t_range))
    kept = [t for i, t in enumerate(run) if cfg.keeps_step(i, len(run))]
    if not kept:
        raise ValueError(f"t_range {t_range} keeps no step of {len(run)}")
    return kept[0], kept[-1]


def random_weights_pipeline(pipe, seed: int = 0):
    """A copy of ``pipe`` whose UNet and text encoder are re-initialised at random (same architecture,
    same tokenizer, VAE and scheduler): the untrained-model baseline of the localisation numbers."""
    from diffusers import StableDiffusionPipeline

    torch.manual_seed(seed)
    unet = type(pipe.unet).from_config(pipe.unet.config)
    torch.manual_seed(seed)
    text_encoder = type(pipe.text_encoder)(pipe.text_encoder.config)
    comps = {
        **pipe.components,
        "unet": unet.to(pipe.device, pipe.unet.dtype).eval(),
        "text_encoder": text_encoder.to(pipe.device, pipe.text_encoder.dtype).eval(),
    }
    out = StableDiffusionPipeline(
        **{k: v for k, v in comps.items() if k != "requires_safety_checker"}, requires_safety_checker=False
    )
    out.set_progress_bar_config(disable=True)
    return out


def localisation_sweep(
    pipe,
    scenes: list,
    configs: dict,
    strength: float = 0.6,
    steps: int = 25,
    guidance: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    method: str = "otsu",
    timestep: int | None = None,
):
    """Localisation of each capture setting on rendered scenes (same scenes, seeds and noise for all).

    ``configs`` maps a label to a :class:`~stablesemantics.capture.CaptureConfig`, or to a pair
    ``(CaptureConfig, timestep)``. A plain config runs :func:`rendered_scene_maps` (an img2img run
    at ``strength``) unless ``timestep`` is given; a pair, or any config when ``timestep`` is given,
    runs the one-call probe :func:`noised_scene_maps` at that timestep (the scenes are encoded
    once for all such settings). Capturing does not change the denoising, so the settings differ
    only in the layers and steps they read.

    Returns a DataFrame with one row per label: ``best_global_miou`` (object mIoU at the best
    single threshold, tuned on these maps: an upper bound for global thresholds), its threshold,
    the object and class mIoU of ``method``, and the timestep (``None`` for img2img runs).
    """
    import pandas as pd

    latents = None
    rows = []
    for label, setting in configs.items():
        capture, t = setting if isinstance(setting, tuple) else (setting, timestep)
        if t is None:
            om = rendered_scene_maps(
                pipe,
                scenes,
                strength=strength,
                steps=steps,
                guidance=guidance,
                capture=capture,
                seed=seed,
                batch_size=batch_size,
            )
        else:
            if latents is None:
                latents = encode_scenes(pipe, scenes, batch_size)
            om = noised_scene_maps(pipe, scenes, int(t), capture, seed=seed, batch_size=batch_size, latents=latents)
        best, thr = best_threshold_miou(om.maps, om.masks)
        pred = binarise_maps(om.maps, method)[0]
        rows.append(
            {
                "setting": label,
                "best_global_miou": best,
                "best_threshold": thr,
                **{f"{method}_{k}": v for k, v in mask_scores(pred, om.masks, om.classes).items()},
                "timestep": None if t is None else int(t),
                "n_objects": len(om.maps),
            }
        )
    return pd.DataFrame(rows).set_index("setting")
