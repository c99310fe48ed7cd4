"""The grids of chapter 05: every map → mask method with the tuned ``global*`` oracle, and the
capture settings of the localisation sweep.

``global*`` is the single global threshold chosen *on the maps being scored* (the best of
:func:`~stablesemantics.evaluate.metrics.best_threshold_miou`): an upper bound for any global
threshold, not a fair method, reported next to the fair ones so that their distance to it shows.

>>> configs, skipped = sweep_settings([("down", 1), ("mid", 2)], 400, [300], [(0.0, 1.0)], lambda w: (900, 100))
>>> list(configs)
['all', '1 (latent)', '1/2', 'down', 'mid', 't=300', 'steps t 900→100']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from stablesemantics.capture.config import CaptureConfig
from stablesemantics.capture.maps import minmax_scale_maps
from stablesemantics.evaluate.masks import ADAPTIVE_THRESHOLDS
from stablesemantics.evaluate.metrics import best_threshold_miou
from stablesemantics.evaluate.scores import class_ious, evaluate_mask_methods, mask_scores


def oracle_row(maps: np.ndarray, masks: np.ndarray, classes: Sequence[str]) -> dict:
    """The ``global*`` row: masks from the best global threshold of these very maps, scored.

    Keys: ``method`` ("global*"), ``refinement`` ("none"), ``object_miou``, ``class_miou``,
    ``mean_threshold`` (the chosen threshold) and one pooled IoU per class.
    """
    best, thr = best_threshold_miou(maps, masks)
    oracle = minmax_scale_maps(maps) >= thr
    return {
        "method": "global*",
        "refinement": "none",
        **mask_scores(oracle, masks, classes),
        "mean_threshold": thr,
        **class_ious(oracle, masks, classes),
    }


def mask_methods_with_oracle(
    maps: np.ndarray,
    masks: np.ndarray,
    classes: Sequence[str],
    images: np.ndarray,
    *,
    refinements: Sequence[str],
    threshold: float = 0.5,
    thresholds: Sequence[float] = ADAPTIVE_THRESHOLDS,
) -> pd.DataFrame:
    """:func:`~stablesemantics.evaluate.scores.evaluate_mask_methods` with the :func:`oracle_row`
    appended, indexed by ``(method, refinement)``."""
    table = evaluate_mask_methods(
        maps, masks, classes, images, refinements=refinements, threshold=threshold, thresholds=thresholds
    )
    oracle = pd.DataFrame([oracle_row(maps, masks, classes)]).set_index(["method", "refinement"])
    return pd.concat([table, oracle])


def sweep_settings(
    levels: Sequence[tuple[str, int]],
    probe_timestep: int,
    probe_timesteps: Sequence[int],
    windows: Sequence[Sequence[float]],
    window_timesteps: Callable[[tuple[float, float]], tuple[int, int]],
) -> tuple[dict, list[str]]:
    """The capture settings of the localisation sweep, for
    :func:`~stablesemantics.evaluate.sweep.localisation_sweep`, and the windows skipped.

    ``levels`` are the UNet's ``(block, factor)`` cross-attention levels
    (:func:`~stablesemantics.evaluate.sweep.cross_attention_levels`). Settings, in order: ``all``
    layers at ``probe_timestep``; each map resolution alone (``"1 (latent)"``, ``"1/2"`` …) and each
    UNet part alone (down, mid, up) at ``probe_timestep``; all layers at each of
    ``probe_timesteps`` (``"t=<t>"``); and each window ``(lo, hi)`` of the img2img steps
    (``"steps t <first>→<last>"``, a plain config, run as img2img). ``window_timesteps`` maps a
    window to its first and last timestep and raises ``ValueError`` when the window keeps no step
    (e.g. ``lambda w: window_timesteps(pipe, steps, strength, w)``); such a window is skipped and
    named in the returned messages.
    """
    configs: dict = {"all": (CaptureConfig(), probe_timestep)}
    for factor in sorted({f for _, f in levels}):
        configs[f"1/{factor}" if factor > 1 else "1 (latent)"] = (CaptureConfig(resolutions=(factor,)), probe_timestep)
    for block in [b for b in ("down", "mid", "up") if any(lb == b for lb, _ in levels)]:
        configs[block] = (CaptureConfig(blocks=(block,)), probe_timestep)
    for t in probe_timesteps:
        configs[f"t={t}"] = (CaptureConfig(), int(t))
    skipped = []
    for lo, hi in windows:
        try:
            a, b = window_timesteps((lo, hi))
        except ValueError as err:  # too few steps for this window
            skipped.append(f"window {lo}–{hi} skipped: {err}")
            continue
        configs[f"steps t {a}→{b}"] = CaptureConfig(t_range=(lo, hi))
    return configs, skipped


def sweep_groups(
    configs: dict, probe_timestep: int, probe_timesteps: Sequence[int], strength: float
) -> dict[str, list[str]]:
    """The settings of :func:`sweep_settings` in the four groups the chapter plots side by side."""
    return {
        f"resolution (t={probe_timestep})": [k for k in configs if k.startswith("1")],
        f"UNet part (t={probe_timestep})": [k for k in configs if k in ("down", "mid", "up")],
        "timestep, one call": [f"t={t}" for t in probe_timesteps],
        f"img2img steps (strength {strength})": [k for k in configs if k.startswith("steps ")],
    }
