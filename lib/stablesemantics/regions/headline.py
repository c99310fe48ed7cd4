"""The regions chapter's headline numbers, read from its tables (``notebooks/08_regions.ipynb``).

The chapter writes, besides its whole tables, flat numbers that the findings page and the
tests quote: each one-view score at t = 0, 0.5 and 1, each task's best t and DynRefer's
finding (:func:`~.evaluate.paper_finding`), and the scores of two multi-view rows, the largest
fixed set and the dynamic pHash choice with the most views. Keys are ``<metric>_<where>`` with
the metric written as :func:`metric_key` writes it (``BLEU-4`` → ``bleu4``).

>>> import pandas as pd
>>> sweep = pd.DataFrame({"class": [0.5, 0.75, 0.25]}, index=pd.Index([0.0, 0.5, 1.0], name="t"))
>>> {k: float(v) for k, v in sweep_points(sweep).items()}
{'class_t0': 0.5, 'class_t05': 0.75, 'class_t1': 0.25}
>>> float(sweep_value(sweep, 0.5, "class")), sweep_value(None, 0.5, "class")
(0.75, None)
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from stablesemantics.regions.data import TASKS
from stablesemantics.regions.evaluate import CAPTION_METRICS

__all__ = ["HEADLINE_TS", "headline_numbers", "headline_view_sets", "metric_key", "sweep_points", "sweep_value"]

#: The one-view points of the headline: key suffix -> t.
HEADLINE_TS: dict[str, float] = {"t0": 0.0, "t05": 0.5, "t1": 1.0}


def metric_key(column: str) -> str:
    """A table column as a headline key: lower case, no hyphens, spaces as underscores.

    >>> metric_key("BLEU-4"), metric_key("mean t")
    ('bleu4', 'mean_t')
    """
    return column.lower().replace("-", "").replace(" ", "_")


def sweep_points(sweep: pd.DataFrame, at: dict[str, float] = HEADLINE_TS) -> dict[str, float]:
    """Every column of a t sweep at the t values of ``at``: ``{<metric>_<suffix>: score}``."""
    return {f"{metric_key(c)}_{name}": sweep.loc[t, c] for c in sweep.columns for name, t in at.items()}


def sweep_value(sweep: pd.DataFrame | None, t: float, column: str):
    """``sweep.loc[t, column]``, or ``None`` when the sweep was not run (``sweep`` is ``None``)."""
    return sweep.loc[t, column] if sweep is not None else None


def headline_view_sets(view_sets: pd.DataFrame, dynamic_n: Sequence[int]) -> tuple[pd.Series, pd.Series]:
    """The two multi-view rows of the headline: the fixed set with the most views (the last of
    them on ties) and the dynamic pHash choice of ``max(dynamic_n)`` views."""
    fixed = view_sets[view_sets.index.str.startswith("fixed")].sort_values("n", kind="stable").iloc[-1]
    dynamic = view_sets.loc[f"dynamic pHash (n={max(dynamic_n)})"]
    return fixed, dynamic


def headline_numbers(
    sweep: pd.DataFrame, finding: dict, view_sets: pd.DataFrame, dynamic_n: Sequence[int], meteor: bool
) -> dict:
    """The flat headline numbers of the one-view sweep, its ``finding`` and the view sets, in the
    order the chapter writes them: the sweep's points, ``best_t_<metric>``, the finding's flags,
    the names of the two multi-view rows, whether METEOR was computed, and each task, caption
    metric and mean t of those rows (``<metric>_fixed``, ``<metric>_dynamic``)."""
    fixed, dynamic = headline_view_sets(view_sets, dynamic_n)
    return {
        **sweep_points(sweep),
        **{f"best_t_{metric_key(c)}": v for c, v in finding["best_t"].items()},
        **{k: v for k, v in finding.items() if k != "best_t"},
        "fixed_views": fixed.name,
        "dynamic_views": dynamic.name,
        "meteor_computed": meteor,
        **{
            f"{metric_key(c)}_{kind}": row[c]
            for kind, row in (("fixed", fixed), ("dynamic", dynamic))
            for c in [*TASKS, *CAPTION_METRICS, "mean t"]
        },
    }
