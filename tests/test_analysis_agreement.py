"""Attention vs truth agreement (chapters 03 and 04) on tiny tables with answers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stablesemantics.analysis.agreement import (
    PAIR_COLUMNS,
    SPATIAL_TRUTH_KEYS,
    overlap_truth_agreement,
    pair_rows,
    spatial_truth_correlations,
    vertical_misplacement,
)
from stablesemantics.analysis.overlap import OverlapStats


def _summary(cy, cx, spread, labels=("a", "b", "c")) -> pd.DataFrame:
    return pd.DataFrame({"cy": cy, "cx": cx, "spread": spread}, index=list(labels))


def test_spatial_truth_correlations_by_hand():
    # deviations from the mean: attention cy (-1, 0, 1), truth cy (-1, 1, 0): r = 1 / 2
    attention = _summary([1, 2, 3, 9], [1, 2, 3, 9], [1, 2, 3, 9], labels=("a", "b", "c", "unused"))
    truth = _summary([1, 3, 2], [3, 2, 1], [2, 4, 6])
    prior = pd.Series([3.0, 2.0, 1.0], index=["a", "b", "c"])
    got = spatial_truth_correlations(attention, truth, prior, ["a", "b", "c"])
    expected = {
        "r_vertical": 0.5,
        "rho_vertical": 0.5,
        "r_horizontal": -1.0,
        "r_spread": 1.0,
        "r_vertical_prior": -1.0,
        "r_truth_vs_prior": -0.5,
    }
    assert list(got) == list(SPATIAL_TRUTH_KEYS)
    assert got == pytest.approx(expected)


def test_spatial_truth_correlations_are_nan_without_truth_or_with_too_few_labels():
    table = _summary([1, 2, 3], [1, 2, 3], [1, 2, 3])
    prior = table["cy"]
    for got in (
        spatial_truth_correlations(table, None, None, ["a", "b", "c"]),
        spatial_truth_correlations(table, table, prior, ["a", "b"]),
    ):
        assert set(got) == set(SPATIAL_TRUTH_KEYS) and all(math.isnan(v) for v in got.values())


def test_vertical_misplacement_by_hand():
    truth = pd.Series([0.0, 0.5, 1.0], index=["sun", "dog", "car"])
    attention = pd.Series([0.3, 0.5, 0.6], index=["sun", "dog", "car"])
    slope, worst = vertical_misplacement(attention, truth, top=2)
    # slope = sum(dt * da) / sum(dt^2) = (0.5 * 0.1667 + 0.5 * 0.1333) / 0.5 = 0.3
    assert slope == pytest.approx(0.3)
    assert list(worst.index) == ["car", "sun"] and worst.to_numpy() == pytest.approx([-0.4, 0.3])


def _stats(rows: dict) -> OverlapStats:
    index = pd.MultiIndex.from_tuples(list(rows))
    return OverlapStats(pd.DataFrame(list(rows.values()), index=index, columns=PAIR_COLUMNS))


def test_pair_rows_takes_pairs_in_either_order_and_leaves_unseen_pairs_empty():
    stats = _stats({("chair", "table"): [4, 0.3, 0.2, 0.5, 8, 0.1, 0.05, 0.25]})
    rows = pair_rows(stats, [["table", "chair"], ["sun", "sky"]])
    assert list(rows.index) == ["table + chair", "sun + sky"] and list(rows.columns) == PAIR_COLUMNS
    assert rows.loc["table + chair"].tolist() == [4, 0.3, 0.2, 0.5, 8, 0.1, 0.05, 0.25]
    assert rows.loc["sun + sky"].isna().all()


def test_overlap_truth_agreement_by_hand():
    attention = _stats(
        {
            ("a", "b"): [5, 0.1, 0, 0.1, 5, 0, 0, 0],
            ("a", "c"): [5, 0.2, 0, 0.5, 5, 0, 0, 0],
            ("b", "c"): [5, 0.3, 0, 0.9, 5, 0, 0, 0],
            ("c", "d"): [1, 0.9, 0, 0.0, 5, 0, 0, 0],
        }
    )
    truth = _stats(
        {
            ("a", "b"): [5, 0.3, 0, 0.2, 5, 0, 0, 0],
            ("a", "c"): [5, 0.2, 0, 0.6, 5, 0, 0, 0],
            ("b", "c"): [5, 0.1, 0, 0.4, 5, 0, 0, 0],
            ("c", "d"): [5, 0.0, 0, 0.0, 5, 0, 0, 0],
        }
    )
    joined, got = overlap_truth_agreement(attention.pairs, truth.pairs, min_count=2)
    assert [tuple(k) for k in joined.index] == [("a", "b"), ("a", "c"), ("b", "c")]  # (c, d): seen once
    assert "overlap (truth)" in joined.columns
    # overlap ranks (1, 2, 3) vs (3, 2, 1): rho = -1; touch ranks (1, 2, 3) vs (1, 3, 2): 1 - 6 * 2 / 24
    assert got == pytest.approx({"rho_overlap_vs_truth": -1.0, "rho_touch_vs_truth": 0.5, "n_overlap_pairs": 3})
    _, few = overlap_truth_agreement(attention.pairs, truth.pairs, min_count=6)
    assert few["n_overlap_pairs"] == 0 and np.isnan(few["rho_overlap_vs_truth"])
