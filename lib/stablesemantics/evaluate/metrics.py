"""Mask metrics: IoU, mIoU over thresholds, the grid ceiling and a centre prior."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stablesemantics.capture.maps import minmax_scale_maps, resize_maps


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {truth.shape}")
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def miou_by_threshold(maps: np.ndarray, masks: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """mIoU over the pairs (map i, mask i) for each global threshold of min-max normalised maps."""
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must have the same shape")
    norm = minmax_scale_maps(maps)
    truth = masks.astype(bool)
    out = []
    for t in thresholds:
        pred = norm >= t
        inter = (pred & truth).sum((1, 2))
        union = (pred | truth).sum((1, 2))
        out.append(np.mean(np.where(union == 0, 1.0, inter / np.maximum(union, 1))))
    return np.asarray(out)


def best_threshold_miou(maps: np.ndarray, masks: np.ndarray, thresholds=None) -> tuple[float, float]:
    """Best mIoU over one global threshold shared by all maps, and that threshold."""
    thresholds = np.linspace(0.05, 0.95, 19) if thresholds is None else np.asarray(thresholds)
    scores = miou_by_threshold(maps, masks, thresholds)
    best = int(np.argmax(scores))
    return float(scores[best]), float(thresholds[best])


def grid_ceiling_maps(masks: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """The best maps a ``grid``-sized attention map could be: each true mask averaged onto the
    grid (area pooling) and upsampled back like a captured map. Their mIoU at the best global
    threshold is the ceiling that the map resolution alone puts on localisation."""
    t = torch.as_tensor(np.asarray(masks, np.float32))[:, None]
    pooled = F.adaptive_avg_pool2d(t, grid)[:, 0]
    return resize_maps(pooled, tuple(masks.shape[1:]), antialias=False).numpy()


def centre_prior(shape: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """An isotropic Gaussian centred on the image (sigma as a fraction of the size)."""
    h, w = shape
    y = (np.arange(h) + 0.5) / h - 0.5
    x = (np.arange(w) + 0.5) / w - 0.5
    return np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
