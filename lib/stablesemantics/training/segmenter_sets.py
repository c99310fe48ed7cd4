"""DiffuMask's comparison: the same segmenter trained on different training sets, scored on one test set.

Chapter 06 trains the same :class:`~stablesemantics.evaluate.segmenter.SmallSegmenter` with the
same :class:`~stablesemantics.training.segmenter.SegmenterTraining` on real pairs, synthetic
pairs and both, and on growing prefixes of the synthetic pairs (the learning curve); each
segmenter is scored on the same held-out scenes
(:func:`~stablesemantics.evaluate.diffumask.evaluate_segmenter`).

>>> curve_sizes([24, 48, 500, 0], n_synthetic=192, n_available=192)
[24, 48, 192]
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from stablesemantics.evaluate.diffumask import evaluate_segmenter
from stablesemantics.training.segmenter import SegmenterTraining, train_segmenter


def train_and_score(
    cfg: SegmenterTraining,
    images: np.ndarray,
    masks: np.ndarray,
    test_images: np.ndarray,
    test_masks: np.ndarray,
    device=None,
) -> dict:
    """Train a segmenter on ``(images, masks)`` and return its scores on the test pairs
    (``miou``, ``miou_objects``, ``pixel_accuracy``, ``per_class``: see ``semantic_scores``)."""
    model = train_segmenter(cfg, images=images, masks=masks, device=device)
    return evaluate_segmenter(model, test_images, test_masks)


def train_and_score_sets(
    cfg: SegmenterTraining,
    sets: dict[str, tuple[np.ndarray, np.ndarray]],
    test_images: np.ndarray,
    test_masks: np.ndarray,
    device=None,
) -> dict[str, dict]:
    """:func:`train_and_score` on each named training set, in order; each result also holds
    ``n_images`` and the wall-clock ``seconds`` of its training and scoring."""
    results = {}
    for name, (x, y) in sets.items():
        t0 = time.time()
        results[name] = train_and_score(cfg, x, y, test_images, test_masks, device) | {
            "n_images": len(x),
            "seconds": time.time() - t0,
        }
    return results


def results_table(results: dict[str, dict]) -> pd.DataFrame:
    """DiffuMask's table: one row per training set (images, mIoU, mIoU over objects, pixel
    accuracy, then the IoU of each class), indexed by ``training set``."""
    rows = []
    for name, r in results.items():
        rows.append(
            {
                "training set": name,
                "images": r["n_images"],
                "mIoU": r["miou"],
                "mIoU (objects)": r["miou_objects"],
                "pixel acc.": r["pixel_accuracy"],
                **r["per_class"],
            }
        )
    return pd.DataFrame(rows).set_index("training set")


def curve_sizes(curve: Sequence[int], n_synthetic: int, n_available: int) -> list[int]:
    """Sizes of the learning curve: the requested ``curve`` sizes strictly between 0 and
    ``n_synthetic``, and ``n_available`` (the whole synthetic set), sorted."""
    return sorted({int(n) for n in curve if 0 < int(n) < n_synthetic} | {n_available})


def synthetic_curve(
    cfg: SegmenterTraining,
    images: np.ndarray,
    masks: np.ndarray,
    sizes: Sequence[int],
    full_miou: float,
    test_images: np.ndarray,
    test_masks: np.ndarray,
    device=None,
) -> dict[int, float]:
    """Test mIoU of a segmenter trained on the first ``n`` pairs, for each ``n`` of ``sizes``; the
    whole set (``n == len(images)``) is not retrained: its score is ``full_miou``."""
    scores = {}
    for n in sizes:
        if n == len(images):
            scores[n] = full_miou
        else:
            scores[n] = train_and_score(cfg, images[:n], masks[:n], test_images, test_masks, device)["miou"]
    return scores
