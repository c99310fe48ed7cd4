"""DiffuMask's training-set comparison (chapter 06), with a stand-in segmenter whose predictions are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stablesemantics import world
from stablesemantics.training import SegmenterTraining, segmenter_sets
from stablesemantics.training.segmenter_sets import (
    curve_sizes,
    results_table,
    synthetic_curve,
    train_and_score,
    train_and_score_sets,
)


class _AllBackground(torch.nn.Module):
    """Predicts background (class 0 of 21) at every pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 21, *x.shape[2:])
        logits[:, 0] = 1.0
        return logits


@pytest.fixture
def trained(monkeypatch):
    calls = []

    def fake_train(cfg, images=None, masks=None, device=None):
        calls.append((cfg, len(images), len(masks), device))
        return _AllBackground()

    monkeypatch.setattr(segmenter_sets, "train_segmenter", fake_train)
    return calls


def _test_pairs():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    masks = np.zeros((2, 4, 4), np.int64)
    masks[0, :2, :2] = 3  # 4 of 32 pixels are class 3
    return images, masks


def test_train_and_score_by_hand(trained):
    test_images, test_masks = _test_pairs()
    cfg = SegmenterTraining(steps=1)
    scores = train_and_score(cfg, test_images, test_masks, test_images, test_masks, device="cpu")
    assert trained == [(cfg, 2, 2, "cpu")]
    # background: 28 right of 32 predicted; class 3: never predicted, IoU 0
    assert scores["pixel_accuracy"] == pytest.approx(28 / 32)
    assert scores["per_class"] == pytest.approx({"background": 28 / 32, list(world.CLASSES)[2]: 0.0})
    assert scores["miou"] == pytest.approx((28 / 32 + 0) / 2) and scores["miou_objects"] == 0.0


def test_sets_table_and_curve(trained):
    images, masks = _test_pairs()
    cfg = SegmenterTraining(steps=1)
    results = train_and_score_sets(cfg, {"real": (images, masks), "one": (images[:1], masks[:1])}, images, masks)
    assert list(results) == ["real", "one"] and results["one"]["n_images"] == 1 and results["real"]["seconds"] >= 0
    table = results_table(results)
    assert list(table.index) == ["real", "one"] and table.index.name == "training set"
    assert list(table.columns[:4]) == ["images", "mIoU", "mIoU (objects)", "pixel acc."]
    assert table.loc["one", "images"] == 1 and table.loc["real", "pixel acc."] == pytest.approx(28 / 32)
    assert curve_sizes([1, 2, 5, 0, -1], n_synthetic=2, n_available=2) == [1, 2]
    curve = synthetic_curve(cfg, images, masks, [1, 2], 0.123, images, masks)
    assert curve == pytest.approx({1: 28 / 64, 2: 0.123})  # the whole set is not retrained
    assert [c[1] for c in trained] == [2, 1, 1]
