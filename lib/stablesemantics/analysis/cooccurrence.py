"""Co-occurrence of labels over prompts: counts, PMI and rank correlation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from stablesemantics.analysis.streaming import _codes


def cooccurrence_counts(units: Sequence[int], labels: Sequence[Any]) -> tuple[pd.DataFrame, int]:
    """How many units (prompts, images) contain both labels: a symmetric DataFrame whose
    diagonal is the number of units containing each label, and the number of units.

    ``units[r]`` and ``labels[r]`` describe one occurrence (e.g. one map: its prompt id and
    label); repeats within a unit count once; ``None`` labels are skipped.

    >>> c, n = cooccurrence_counts([0, 0, 1, 1, 1, 2], ["a", "b", "a", "b", "c", "a"])
    >>> n, int(c.loc["a", "b"]), int(c.loc["a", "a"])
    (3, 2, 3)
    """
    from scipy import sparse

    units = np.asarray(units)
    codes, names = _codes(labels, len(units))
    ucodes, uniq = pd.factorize(units)
    L = max(len(names), 1)
    # each (unit, label) once: the distinct pairs are few (a unit repeats its labels), so the sparse
    # matrix is built from them, not from every occurrence (ten million maps: 16 bytes each, briefly)
    pairs = np.unique(ucodes[codes >= 0] * L + codes[codes >= 0])
    x = sparse.csr_matrix((np.ones(len(pairs), np.float32), (pairs // L, pairs % L)), shape=(len(uniq), len(names)))
    c = np.asarray((x.T @ x).todense(), dtype=np.int64)
    return pd.DataFrame(c, index=names, columns=names), int(len(uniq))


def pmi(counts: pd.DataFrame, n: int, *, normalized: bool = False, min_count: int = 1) -> pd.DataFrame:
    """Pointwise mutual information ``log2 P(a,b) / (P(a) P(b))`` from :func:`cooccurrence_counts`;
    ``normalized`` divides by ``-log2 P(a,b)`` (NPMI in [-1, 1]). Pairs seen fewer than
    ``min_count`` times (and the diagonal) are ``NaN``.

    >>> c, n = cooccurrence_counts([0, 0, 1, 2], ["a", "b", "a", "b"])
    >>> round(float(pmi(c, n).loc["a", "b"]), 3)
    -0.415
    """
    c = counts.to_numpy(dtype=np.float64)
    p = np.diag(c) / n
    pab = c / n
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log2(pab / np.outer(p, p))
        if normalized:
            out = out / -np.log2(pab)
    out[c < max(min_count, 1)] = np.nan
    np.fill_diagonal(out, np.nan)
    return pd.DataFrame(out, index=counts.index, columns=counts.columns)


def rank_correlation(
    a: pd.DataFrame, b: pd.DataFrame, labels: Sequence[str] | None = None, diagonal: bool = False
) -> dict[str, float]:
    """Spearman and Pearson correlation between the upper triangles of two square matrices
    over their shared labels (or ``labels``), NaN entries skipped."""
    from scipy import stats

    shared = [x for x in (labels if labels is not None else a.index) if x in a.index and x in b.index]
    A = a.loc[shared, shared].to_numpy(dtype=np.float64)
    B = b.loc[shared, shared].to_numpy(dtype=np.float64)
    iu = np.triu_indices(len(shared), 0 if diagonal else 1)
    x, y = A[iu], B[iu]
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return {"spearman": float("nan"), "pearson": float("nan"), "n_pairs": int(ok.sum()), "n_labels": len(shared)}
    return {
        "spearman": float(stats.spearmanr(x[ok], y[ok])[0]),
        "pearson": float(stats.pearsonr(x[ok], y[ok])[0]),
        "n_pairs": int(ok.sum()),
        "n_labels": len(shared),
    }
