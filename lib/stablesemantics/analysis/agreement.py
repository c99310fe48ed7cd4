"""How well statistics of attention maps agree with the same statistics of the truth.

Chapters 03 (spatial priors) and 04 (co-occurrence) compute every statistic twice on a
MicroWorld store: once on the attention maps and once on the true masks
(:func:`~stablesemantics.analysis.truth.truth_map_blocks`). The functions here compare the two,
class by class (spatial: correlations of the per-class means, a slope, the worst-placed classes)
or label pair by label pair (co-occurrence: rank correlations of overlap and touch rates).

>>> att = pd.DataFrame({"cy": [0.2, 0.5, 0.8], "cx": [0.5, 0.4, 0.6], "spread": [0.1, 0.2, 0.3]},
...                    index=["sun", "dog", "car"])
>>> round(spatial_truth_correlations(att, att, att["cy"], ["sun", "dog", "car"])["r_vertical"], 6)
1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from stablesemantics.analysis.overlap import OverlapStats

#: The keys of :func:`spatial_truth_correlations`.
SPATIAL_TRUTH_KEYS = ("r_vertical", "rho_vertical", "r_horizontal", "r_spread", "r_vertical_prior", "r_truth_vs_prior")

#: The columns of :func:`pair_rows`, as :class:`~stablesemantics.analysis.overlap.OverlapStats` has them.
PAIR_COLUMNS = ["n", "overlap", "iou", "touch", "n_chance", "chance_overlap", "chance_iou", "chance_touch"]


def spatial_truth_correlations(
    attention: pd.DataFrame,
    truth: pd.DataFrame | None,
    prior: pd.Series | None,
    labels: Sequence[str],
) -> dict[str, float]:
    """Six Pearson/Spearman correlations over ``labels`` between per-label summaries.

    ``attention`` and ``truth`` are per-label tables with columns ``cy`` (mean vertical centroid),
    ``cx`` and ``spread`` (:meth:`SpatialStats.summary`); ``prior`` is the world's expected
    vertical position per class (``true_priors()["vertical"]["mean_y"]``). Keys:
    ``r_vertical`` and ``rho_vertical`` (Pearson and Spearman, attention vs truth ``cy``),
    ``r_horizontal`` (``cx``), ``r_spread``, ``r_vertical_prior`` (attention ``cy`` vs the prior)
    and ``r_truth_vs_prior`` (truth ``cy`` vs the prior: a check of the truth pipeline). All NaN
    when there is no truth or fewer than 3 labels.
    """
    labels = list(labels)
    if truth is None or prior is None or len(labels) < 3:
        return {k: float("nan") for k in SPATIAL_TRUTH_KEYS}
    a_y, t_y = attention.loc[labels, "cy"], truth.loc[labels, "cy"]
    return {
        "r_vertical": float(np.corrcoef(a_y, t_y)[0, 1]),
        "rho_vertical": float(sps.spearmanr(a_y, t_y)[0]),
        "r_horizontal": float(np.corrcoef(attention.loc[labels, "cx"], truth.loc[labels, "cx"])[0, 1]),
        "r_spread": float(np.corrcoef(attention.loc[labels, "spread"], truth.loc[labels, "spread"])[0, 1]),
        "r_vertical_prior": float(np.corrcoef(a_y, prior.loc[labels])[0, 1]),
        "r_truth_vs_prior": float(np.corrcoef(t_y, prior.loc[labels])[0, 1]),
    }


def vertical_misplacement(attention_cy: pd.Series, truth_cy: pd.Series, top: int = 3) -> tuple[float, pd.Series]:
    """How attention's vertical positions deviate from the truth, over the labels of both series.

    Returns the least-squares slope of attention on truth (1: the same spread of positions;
    below 1: pulled towards the middle of the image) and the ``top`` labels furthest from their
    true mean position, as ``attention - truth`` (in image heights; + is lower), largest first.
    """
    slope = float(np.polyfit(truth_cy, attention_cy, 1)[0])
    error = (attention_cy - truth_cy).sort_values(key=np.abs, ascending=False)
    return slope, error.head(top)


def pair_rows(stats: OverlapStats, asked: Sequence[Sequence[str]]) -> pd.DataFrame:
    """One row per asked label pair ``(a, b)``, named ``"a + b"``, with the :data:`PAIR_COLUMNS` of
    ``stats`` (all NaN for a pair never seen in one image)."""
    rows = {}
    for a, b in asked:
        r = stats.pair(a, b)
        rows[f"{a} + {b}"] = r if r is not None else pd.Series(dtype=float)
    return pd.DataFrame(rows).T.reindex(columns=PAIR_COLUMNS)


def overlap_truth_agreement(
    attention_pairs: pd.DataFrame, truth_pairs: pd.DataFrame, min_count: int
) -> tuple[pd.DataFrame, dict[str, float | int]]:
    """Rank agreement of attention overlaps with true-mask overlaps, label pair by label pair.

    Joins the two ``OverlapStats.pairs`` tables on the pair (truth columns suffixed
    ``" (truth)"``), keeps pairs seen in at least ``min_count`` images of the attention side, and
    returns that table with ``rho_overlap_vs_truth`` and ``rho_touch_vs_truth`` (Spearman over the
    pairs; NaN with fewer than 3 pairs) and ``n_overlap_pairs``.
    """
    joined = attention_pairs.join(truth_pairs.add_suffix(" (truth)"), how="inner")
    joined = joined[joined["n"] >= min_count]
    out: dict[str, float | int] = {"rho_overlap_vs_truth": float("nan"), "rho_touch_vs_truth": float("nan")}
    if len(joined) >= 3:
        out["rho_overlap_vs_truth"] = float(sps.spearmanr(joined["overlap"], joined["overlap (truth)"])[0])
        out["rho_touch_vs_truth"] = float(sps.spearmanr(joined["touch"], joined["touch (truth)"])[0])
    out["n_overlap_pairs"] = int(len(joined))
    return joined, out
