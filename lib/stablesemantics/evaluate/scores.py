"""Scores of masks against the truth: object and class IoU, confusion matrices, method comparisons."""

from __future__ import annotations

import numpy as np

from stablesemantics import world
from stablesemantics.evaluate.masks import (
    ADAPTIVE_THRESHOLDS,
    BINARISATIONS,
    binarise_maps,
    refine_masks,
    resolve_refinement,
)
from stablesemantics.evaluate.metrics import centre_prior


def object_ious(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """IoU of each pair ``(pred[i], truth[i])`` of ``(n, H, W)`` masks (1.0 where both are empty).

    >>> p = np.zeros((2, 2, 2), bool); p[0, 0] = True
    >>> t = np.zeros((2, 2, 2), bool); t[0, :, 0] = True
    >>> object_ious(p, t).tolist()
    [0.3333333333333333, 1.0]
    """
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {truth.shape}")
    inter = (pred & truth).sum((-1, -2))
    union = (pred | truth).sum((-1, -2))
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def class_ious(pred: np.ndarray, truth: np.ndarray, classes) -> dict[str, float]:
    """Per-class IoU of object masks, pooled over the dataset: Σ intersections / Σ unions per class.

    This is how semantic-segmentation benchmarks (VOC, DiffuMask) count: a class's IoU is one
    ratio over all its pixels, so large objects weigh more than in a mean of per-object IoUs.
    Classes come back in order of first appearance.

    >>> p = np.zeros((3, 1, 4), bool); p[0, 0, :2] = True; p[1, 0, :1] = True; p[2, 0, :] = True
    >>> t = np.zeros((3, 1, 4), bool); t[0, 0, :1] = True; t[1, 0, :1] = True; t[2, 0, :2] = True
    >>> class_ious(p, t, ["cat", "cat", "dog"])  # cat: (1 + 1) / (2 + 1); dog: 2 / 4
    {'cat': 0.6666666666666666, 'dog': 0.5}
    """
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape or len(classes) != len(pred):
        raise ValueError("pred, truth and classes must describe the same objects")
    inter = (pred & truth).sum((-1, -2))
    union = (pred | truth).sum((-1, -2))
    labels = np.asarray(list(classes))
    out = {}
    for c in dict.fromkeys(labels.tolist()):
        sel = labels == c
        u = union[sel].sum()
        out[c] = 1.0 if u == 0 else float(inter[sel].sum() / u)
    return out


def mask_scores(pred: np.ndarray, truth: np.ndarray, classes) -> dict[str, float]:
    """The two summaries used in the book for object masks.

    ``object_miou``: mean over objects of each object's IoU; ``class_miou``: mean over classes of
    the pooled per-class IoU (:func:`class_ious`), the VOC-style number.
    """
    per_class = class_ious(pred, truth, classes)
    return {
        "object_miou": float(np.mean(object_ious(pred, truth))) if len(pred) else float("nan"),
        "class_miou": float(np.mean(list(per_class.values()))) if per_class else float("nan"),
    }


def confusion_matrix(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` pixel counts, rows = true class, columns = predicted class.

    >>> confusion_matrix(np.array([[0, 1], [1, 1]]), np.array([[0, 0], [1, 1]]), 2).tolist()
    [[1, 1], [0, 2]]
    """
    pred, truth = np.asarray(pred).ravel().astype(np.int64), np.asarray(truth).ravel().astype(np.int64)
    if pred.shape != truth.shape:
        raise ValueError("pred and truth must have the same number of pixels")
    if pred.size and (min(pred.min(), truth.min()) < 0 or max(pred.max(), truth.max()) >= n_classes):
        raise ValueError(f"class ids must lie in [0, {n_classes})")
    return np.bincount(truth * n_classes + pred, minlength=n_classes**2).reshape(n_classes, n_classes)


def ious_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU ``TP / (TP + FP + FN)`` from a confusion matrix; NaN for a class that is
    neither in the truth nor predicted (it is left out of the mean, as in VOC).

    >>> ious_from_confusion(np.array([[1, 1], [0, 2]])).tolist()
    [0.5, 0.6666666666666666]
    """
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def semantic_scores(pred: np.ndarray, truth: np.ndarray, names=None) -> dict:
    """Semantic-segmentation scores of class-id maps (0 = background, i + 1 = ``world.CLASSES``[i]).

    Returns ``{"miou": ..., "miou_objects": ..., "pixel_accuracy": ..., "per_class": {name: IoU}}``:
    ``miou`` averages the classes present (background included, as in VOC's 21 classes),
    ``miou_objects`` leaves the background out.
    """
    names = ["background", *world.CLASSES] if names is None else list(names)
    cm = confusion_matrix(pred, truth, len(names))
    ious = ious_from_confusion(cm)
    present = ~np.isnan(ious)
    return {
        "miou": float(np.nanmean(ious)) if present.any() else float("nan"),
        "miou_objects": float(np.nanmean(ious[1:])) if present[1:].any() else float("nan"),
        "pixel_accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "per_class": {n: float(v) for n, v, p in zip(names, ious, present) if p},
    }


# ----------------------------------------------------------------------------- method comparison


def evaluate_mask_methods(
    maps: np.ndarray,
    masks: np.ndarray,
    classes,
    images: np.ndarray,
    methods=BINARISATIONS,
    refinements=("none", "auto"),
    threshold: float = 0.5,
    thresholds=ADAPTIVE_THRESHOLDS,
):
    """mIoU of every (binarisation, refinement) pair on object maps with their true masks.

    ``images`` holds the image of each map (``(n, H, W, 3)`` uint8, repeated for maps of the same
    image). Returns a DataFrame indexed by ``(method, refinement)`` with ``object_miou``,
    ``class_miou`` and one column per class (pooled IoU), plus the mean threshold used.
    """
    import pandas as pd

    rows = []
    for method in methods:
        binary, used = binarise_maps(maps, method, threshold, thresholds, images)
        for ref in refinements:
            ref_name = resolve_refinement(ref)
            pred = refine_masks(binary, images, ref_name)
            rows.append(
                {
                    "method": method,
                    "refinement": ref_name,
                    **mask_scores(pred, masks, classes),
                    "mean_threshold": float(np.mean(used)) if len(used) else float("nan"),
                    **class_ious(pred, masks, classes),
                }
            )
    return pd.DataFrame(rows).set_index(["method", "refinement"])


def baseline_scores(
    masks: np.ndarray, classes, method: str = "otsu", threshold: float = 0.5, sigma: float = 0.25
) -> dict[str, dict[str, float]]:
    """Scores of maps that ignore the image: ``uniform`` (the whole image is the object: the only
    mask a constant map gives) and ``centre prior`` (a centred Gaussian, binarised by ``method``)."""
    masks = np.asarray(masks, bool)
    n, h, w = masks.shape
    whole = np.ones_like(masks)
    prior = np.broadcast_to(centre_prior((h, w), sigma), (n, h, w))
    prior_masks = binarise_maps(prior, method if method != "adaptive" else "otsu", threshold)[0]
    return {"uniform": mask_scores(whole, masks, classes), "centre prior": mask_scores(prior_masks, masks, classes)}
