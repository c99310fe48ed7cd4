"""Chapter 05's grids: the global* oracle and the sweep settings, with answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stablesemantics.capture import CaptureConfig
from stablesemantics.evaluate import evaluate_mask_methods
from stablesemantics.evaluate.method_grid import mask_methods_with_oracle, oracle_row, sweep_groups, sweep_settings


def _maps_and_masks():
    maps = np.array([[[0, 1], [0, 1]], [[0, 0.52], [1, 1]], [[1, 0], [0, 0]]], float)
    masks = np.array([[[0, 1], [0, 1]], [[0, 0], [1, 1]], [[0, 1], [0, 0]]], bool)
    return maps, masks, ["cat", "dog", "dog"]


def test_oracle_row_by_hand():
    # thresholds 0.05, 0.10, ..., 0.95: up to 0.50 map 1 keeps its 0.52 pixel (IoU 2/3); from 0.55 on
    # maps 0 and 1 are exact; map 2 always marks the wrong pixel (IoU 0). Best: 0.55, mIoU 2/3.
    maps, masks, classes = _maps_and_masks()
    row = oracle_row(maps, masks, classes)
    assert row["method"] == "global*" and row["refinement"] == "none"
    assert row["mean_threshold"] == pytest.approx(0.55)
    assert row["object_miou"] == pytest.approx(2 / 3)
    assert row["cat"] == 1.0 and row["dog"] == pytest.approx(2 / 4)  # dog: (2 + 0) / (2 + 2) pooled
    assert row["class_miou"] == pytest.approx(0.75)


def test_mask_methods_with_oracle_appends_the_oracle_row():
    maps, masks, classes = _maps_and_masks()
    images = np.zeros((3, 2, 2, 3), np.uint8)
    table = mask_methods_with_oracle(maps, masks, classes, images, refinements=["none"], threshold=0.5)
    fair = evaluate_mask_methods(maps, masks, classes, images, refinements=["none"], threshold=0.5)
    pd.testing.assert_frame_equal(table.iloc[:-1], fair, check_like=True)
    assert table.index[-1] == ("global*", "none")
    assert table.loc[("global*", "none"), "class_miou"] == pytest.approx(0.75)


def test_sweep_settings_and_groups():
    levels = [("down", 1), ("down", 2), ("mid", 2), ("up", 2), ("up", 1)]

    def window(w):
        if w[0] >= 0.5:
            raise ValueError("keeps no step")
        return (900, 500)

    configs, skipped = sweep_settings(levels, 400, [100, 700], [[0.0, 0.5], [0.5, 1.0]], window)
    assert list(configs) == ["all", "1 (latent)", "1/2", "down", "mid", "up", "t=100", "t=700", "steps t 900→500"]
    assert configs["all"] == (CaptureConfig(), 400)
    assert configs["1/2"] == (CaptureConfig(resolutions=(2,)), 400)
    assert configs["mid"] == (CaptureConfig(blocks=("mid",)), 400)
    assert configs["t=700"] == (CaptureConfig(), 700)
    assert configs["steps t 900→500"] == CaptureConfig(t_range=(0.0, 0.5))
    assert skipped == ["window 0.5–1.0 skipped: keeps no step"]
    assert sweep_groups(configs, 400, [100, 700], 0.6) == {
        "resolution (t=400)": ["1 (latent)", "1/2"],
        "UNet part (t=400)": ["down", "mid", "up"],
        "timestep, one call": ["t=100", "t=700"],
        "img2img steps (strength 0.6)": ["steps t 900→500"],
    }
