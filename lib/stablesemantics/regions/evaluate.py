"""Scoring a region model as a function of its views: fixed t, fixed multi-view sets, pHash.

Label accuracies (class, colour, size, relation; regions whose truth is unknown, label -1, are
left out) and caption BLEU-4, METEOR and CIDEr-D (``pycocoevalcap``: BLEU and CIDEr through
:func:`stablesemantics.evaluate.caption_scores`, METEOR through its Java scorer when Java is
installed, otherwise "not computed", NaN).

A *view set* is, per region, a list of indices into its :class:`~.views.ViewBank` (the bank's
``ts`` give their t): one view at a fixed t, a fixed multi-view set such as (0, 0.5, 1), or the
views DynRefer's pHash rule picks (:func:`~.select.dynamic_view_sets`).

>>> import numpy as np
>>> accuracies({"class": np.array([1, 2, 3])}, {"class": np.array([1, 2, 0])})
{'class': 0.6666666666666666}
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from stablesemantics.evaluate.captioner import Vocabulary, tokenize
from stablesemantics.evaluate.captions import caption_scores
from stablesemantics.regions.data import TASKS, Regions
from stablesemantics.regions.model import RegionModel
from stablesemantics.regions.select import dynamic_view_sets
from stablesemantics.regions.train import ViewInputs

__all__ = [
    "CAPTION_METRICS",
    "Predictions",
    "accuracies",
    "caption_metrics",
    "evaluate_view_sets",
    "fixed_view_sets",
    "meteor_available",
    "paper_finding",
    "predict",
    "start_meteor",
    "t_sweep",
]

CAPTION_METRICS: tuple[str, ...] = ("BLEU-4", "METEOR", "CIDEr")
_METEOR = None  # one Java METEOR process per Python process (its start takes seconds)


@dataclass
class Predictions:
    labels: dict[str, np.ndarray]  # task -> (n,) predicted label ids
    captions: list[str]


@torch.no_grad()
def predict(
    model: RegionModel,
    inputs: ViewInputs,
    view_sets: np.ndarray,
    vocab: Vocabulary,
    batch: int = 256,
) -> Predictions:
    """Labels and greedy captions of every region from its views ``view_sets[r]`` (bank indices)."""
    view_sets = np.asarray(view_sets, np.int64)
    model.eval()
    labels: dict[str, list[np.ndarray]] = {task: [] for task in TASKS}
    captions: list[str] = []
    for s in range(0, len(view_sets), batch):
        rows = np.arange(s, min(s + batch, len(view_sets)))
        x, ts = inputs.get(rows, view_sets[rows])
        present = torch.ones(ts.shape, dtype=torch.bool, device=ts.device)
        r = model.region(x, ts, present)
        for task, head in model.heads.items():
            labels[task].append(head(r).argmax(-1).cpu().numpy())
        captions.extend(vocab.decode(ids[1:]) for ids in model.decoder.generate(r).cpu().tolist())
    return Predictions(
        {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in labels.items()},
        captions,
    )


def accuracies(predicted: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
    """Fraction correct per task over the regions whose truth is known (truth >= 0); NaN if none."""
    out = {}
    for task, y in truth.items():
        y = np.asarray(y)
        known = y >= 0
        out[task] = float(np.mean(np.asarray(predicted[task])[known] == y[known])) if known.any() else float("nan")
    return out


def meteor_available() -> bool:
    """Whether pycocoevalcap's METEOR can run (it needs a ``java`` on the PATH)."""
    return shutil.which("java") is not None


def start_meteor() -> bool:
    """Start pycocoevalcap's METEOR scorer in the background (its Java process loads its
    paraphrase tables for about 15 s; started early, that overlaps other work). Returns whether
    METEOR is available."""
    global _METEOR
    if _METEOR is None and meteor_available():
        from pycocoevalcap.meteor.meteor import (
            Meteor,  # optional heavy dependency (starts a JVM)
        )

        _METEOR = Meteor()
    return _METEOR is not None


def _meteor(candidates: Sequence[str], references: Sequence[str]) -> float:
    start_meteor()
    gts = {i: [" ".join(tokenize(r)) or "empty"] for i, r in enumerate(references)}
    res = {i: [" ".join(tokenize(c)) or "empty"] for i, c in enumerate(candidates)}
    score, _ = _METEOR.compute_score(gts, res)
    return float(score)


def caption_metrics(candidates: Sequence[str], references: Sequence[str], meteor: bool = True) -> dict[str, float]:
    """BLEU-4, METEOR and CIDEr-D of candidates against one reference each (NaN when not computed:
    no references, or METEOR asked for without Java)."""
    keep = [i for i, r in enumerate(references) if r]
    if not keep:
        return dict.fromkeys(CAPTION_METRICS, float("nan"))
    cands, refs = [candidates[i] for i in keep], [references[i] for i in keep]
    sc = caption_scores(cands, refs)
    m = _meteor(cands, refs) if meteor and meteor_available() else float("nan")
    return {"BLEU-4": sc["BLEU-4"], "METEOR": m, "CIDEr": sc["CIDEr"]}


def _scores(model, inputs, regions, view_sets, vocab, meteor) -> dict[str, float]:
    pred = predict(model, inputs, view_sets, vocab)
    return {
        **accuracies(pred.labels, regions.labels),
        **caption_metrics(pred.captions, regions.captions, meteor),
    }


def fixed_view_sets(bank_ts: Sequence[float], ts: Sequence[float], n_regions: int) -> np.ndarray:
    """``(n_regions, len(ts))`` bank indices of the views at ``ts`` (the same for every region)."""
    grid = np.asarray(bank_ts, np.float64)
    idx = []
    for t in ts:
        hit = np.flatnonzero(np.abs(grid - t) < 1e-6)
        if not len(hit):
            raise ValueError(f"t = {t} is not in the bank's grid {grid.tolist()}")
        idx.append(int(hit[0]))
    return np.tile(np.asarray(idx, np.int64), (n_regions, 1))


def t_sweep(
    model: RegionModel,
    inputs: ViewInputs,
    regions: Regions,
    vocab: Vocabulary,
    ts: Sequence[float] | None = None,
    meteor: bool = True,
) -> pd.DataFrame:
    """Scores with one view per region at each fixed t (default: every t of the bank); index t."""
    ts = list(inputs.bank.ts if ts is None else ts)
    rows = [
        {
            "t": round(float(t), 3),
            **_scores(
                model,
                inputs,
                regions,
                fixed_view_sets(inputs.bank.ts, [t], len(regions)),
                vocab,
                meteor,
            ),
        }
        for t in ts
    ]
    return pd.DataFrame(rows).set_index("t")


def evaluate_view_sets(
    model: RegionModel,
    inputs: ViewInputs,
    regions: Regions,
    vocab: Vocabulary,
    fixed: Sequence[Sequence[float]] = ((0.0, 0.5), (0.0, 0.5, 1.0)),
    dynamic: Sequence[int] = (2, 3),
    meteor: bool = True,
) -> pd.DataFrame:
    """Scores with fixed multi-view sets (the same t for every region) and with DynRefer's dynamic
    pHash choice of ``n`` views (the tight view plus ``n - 1`` candidates); one row per set, with
    the mean t of the views used."""
    rows = []
    for ts in fixed:
        sets = fixed_view_sets(inputs.bank.ts, ts, len(regions))
        rows.append(
            {
                "views": "fixed (" + ", ".join(f"{t:g}" for t in ts) + ")",
                "n": len(ts),
                "mean t": float(np.mean(ts)),
                **_scores(model, inputs, regions, sets, vocab, meteor),
            }
        )
    for n in dynamic:
        sets = dynamic_view_sets(inputs.bank, n)
        rows.append(
            {
                "views": f"dynamic pHash (n={n})",
                "n": n,
                "mean t": float(inputs.bank.ts[sets].mean()),
                **_scores(model, inputs, regions, sets, vocab, meteor),
            }
        )
    return pd.DataFrame(rows).set_index("views")


def paper_finding(
    sweep: pd.DataFrame,
    attributes: Sequence[str] = ("colour", "size"),
    caption_metric: str = "CIDEr",
    small_t: float = 0.2,
    middle: tuple[float, float] = (0.3, 0.6),
) -> dict:
    """DynRefer's finding, checked on a t sweep.

    * ``best_t``: the t of the highest score per column (the smallest such t on ties);
    * ``attributes_best_at_small_t``: each attribute's best t is at most ``small_t``;
    * ``caption_best_in_middle``: the caption metric's best t lies in ``middle``;
    * ``caption_worse_at_t1``: the caption metric at t = 1 is below its best.
    NaN columns (not computed) give ``None``.
    """
    ts = sweep.index.to_numpy(np.float64)
    best_t: dict[str, float | None] = {}
    for col in sweep.columns:
        v = sweep[col].to_numpy(np.float64)
        best_t[col] = None if not np.isfinite(v).any() else float(ts[int(np.nanargmax(v))])
    cap = sweep[caption_metric].to_numpy(np.float64)
    has_cap = bool(np.isfinite(cap).any())
    at1 = np.flatnonzero(np.abs(ts - 1.0) < 1e-6)
    return {
        "best_t": best_t,
        "attributes_best_at_small_t": all(best_t[a] is not None and best_t[a] <= small_t + 1e-9 for a in attributes),
        "caption_best_in_middle": (middle[0] - 1e-9 <= best_t[caption_metric] <= middle[1] + 1e-9) if has_cap else None,
        "caption_worse_at_t1": bool(cap[at1[0]] < np.nanmax(cap)) if has_cap and len(at1) else None,
    }
