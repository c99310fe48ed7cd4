"""The regions chapter's headline numbers, and the first-n subsets its VAE variant trains on."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stablesemantics.regions.data import Regions
from stablesemantics.regions.evaluate import paper_finding
from stablesemantics.regions.headline import (
    headline_numbers,
    headline_view_sets,
    metric_key,
    sweep_points,
    sweep_value,
)
from stablesemantics.regions.views import ViewBank

COLUMNS = ["class", "colour", "size", "relation", "BLEU-4", "METEOR", "CIDEr"]


def _sweep() -> pd.DataFrame:
    ts = np.round(np.arange(11) / 10, 1)
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.random((len(ts), len(COLUMNS))), columns=COLUMNS, index=pd.Index(ts, name="t"))
    table["METEOR"] = np.nan  # not computed
    return table


def _view_sets() -> pd.DataFrame:
    rows = []
    for name, n, mean_t in [
        ("fixed (0, 0.5)", 2, 0.25),
        ("fixed (0, 0.5, 1)", 3, 0.5),
        ("fixed (0, 0.2, 0.4)", 3, 0.2),
        ("dynamic pHash (n=2)", 2, 0.05),
        ("dynamic pHash (n=3)", 3, 0.1),
    ]:
        rows.append({"views": name, "n": n, "mean t": mean_t, **{c: n / 10 + mean_t for c in COLUMNS}})
    return pd.DataFrame(rows).set_index("views")


def test_metric_keys_and_sweep_points():
    assert [metric_key(c) for c in [*COLUMNS, "mean t"]] == [
        "class", "colour", "size", "relation", "bleu4", "meteor", "cider", "mean_t"
    ]  # fmt: skip
    sweep = _sweep()
    points = sweep_points(sweep)
    assert list(points)[:3] == ["class_t0", "class_t05", "class_t1"] and len(points) == 3 * len(COLUMNS)
    assert points["cider_t05"] == sweep.loc[0.5, "CIDEr"] and np.isnan(points["meteor_t1"])
    assert sweep_value(sweep, 1.0, "colour") == sweep.loc[1.0, "colour"] and sweep_value(None, 0.0, "x") is None


def test_headline_rows_are_the_largest_fixed_set_and_the_largest_dynamic_choice():
    fixed, dynamic = headline_view_sets(_view_sets(), [2, 3])
    assert fixed.name == "fixed (0, 0.2, 0.4)"  # the last of the largest sets, as a stable sort keeps it
    assert dynamic.name == "dynamic pHash (n=3)"
    assert headline_view_sets(_view_sets(), [2])[1].name == "dynamic pHash (n=2)"


def test_headline_numbers_keep_the_chapter_order_and_values():
    sweep, view_sets = _sweep(), _view_sets()
    finding = paper_finding(sweep)
    numbers = headline_numbers(sweep, finding, view_sets, [2, 3], meteor=False)
    keys = list(numbers)
    assert keys[: 3 * len(COLUMNS)] == list(sweep_points(sweep))
    assert keys.index("best_t_class") == 3 * len(COLUMNS)
    tail = ["fixed_views", "dynamic_views", "meteor_computed", "class_fixed"]
    assert keys[keys.index("fixed_views") : keys.index("fixed_views") + 4] == tail
    assert keys[-1] == "mean_t_dynamic" and numbers["meteor_computed"] is False
    assert numbers["best_t_cider"] == finding["best_t"]["CIDEr"]
    assert numbers["caption_worse_at_t1"] == finding["caption_worse_at_t1"]
    assert numbers["cider_fixed"] == view_sets.loc["fixed (0, 0.2, 0.4)", "CIDEr"]
    assert numbers["mean_t_dynamic"] == 0.1 and numbers["dynamic_views"] == "dynamic pHash (n=3)"


def test_head_takes_the_first_regions_and_their_views():
    images = np.zeros((2, 8, 8, 3), np.uint8)
    regions = Regions(
        images,
        np.array([0, 0, 1]),
        np.arange(12, dtype=float).reshape(3, 4),
        {"class": np.array([1, 2, 3]), "size": np.array([0, 1, 2])},
        ["a", "b", "c"],
    )
    sub = regions.head(2)
    assert len(sub) == 2 and sub.images is images and sub.captions == ["a", "b"]
    assert sub.labels["class"].tolist() == [1, 2] and sub.boxes.tolist() == regions.boxes[:2].tolist()
    bank = ViewBank(np.ones((3, 2, 4, 4, 3), np.uint8), np.ones((3, 2, 4, 4), np.uint8), np.array([0.0, 1.0]))
    assert len(bank.head(2)) == 2 and bank.head(2).ts is bank.ts
