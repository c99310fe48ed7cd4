"""Spatial statistics of maps: centroids, spread, mean map per label and per (place, label)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stablesemantics.analysis.distributed import stream
from stablesemantics.analysis.streaming import _codes, maps_to_distributions


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys = (np.arange(h, dtype=np.float64) + 0.5) / h
    xs = (np.arange(w, dtype=np.float64) + 0.5) / w
    return np.repeat(ys, w), np.tile(xs, h)


def map_moments(maps: np.ndarray, baseline: str = "min") -> dict[str, np.ndarray]:
    """Centroid and spread of each map's mass, in fractions of the image (0 = top / left).

    Returns ``cy``, ``cx`` (centroid), ``sy``, ``sx`` (standard deviations), ``spread``
    (``sqrt(sy**2 + sx**2)``) and ``mass``; ``NaN`` for maps without mass. Pixel ``(i, j)``
    has centre ``((i + .5) / h, (j + .5) / w)``.
    """
    maps = np.asarray(maps)
    n, h, w = maps.shape
    p, mass = maps_to_distributions(maps, baseline)
    return _moments(p, mass, h, w)


def _moments(p: np.ndarray, mass: np.ndarray, h: int, w: int) -> dict[str, np.ndarray]:
    ys, xs = _coords(h, w)
    c = np.stack([ys, xs, ys * ys, xs * xs], 1).astype(np.float32)
    mom = (p @ c).astype(np.float64)
    cy, cx = mom[:, 0], mom[:, 1]
    sy = np.sqrt(np.maximum(mom[:, 2] - cy * cy, 0))
    sx = np.sqrt(np.maximum(mom[:, 3] - cx * cx, 0))
    bad = ~(mass > 0)
    out = {"cy": cy, "cx": cx, "sy": sy, "sx": sx, "spread": np.sqrt(sy * sy + sx * sx), "mass": mass}
    for k in ("cy", "cx", "sy", "sx", "spread"):
        out[k][bad] = np.nan
    return out


def _group_sum(codes: np.ndarray, x: np.ndarray, n_groups: int) -> np.ndarray:
    """Row sums of ``x`` per group code (codes < 0 skipped): (n_groups, x.shape[1]) float64."""
    from scipy import sparse

    keep = codes >= 0
    if not keep.any() or n_groups == 0:
        return np.zeros((n_groups, x.shape[1]))
    idx = np.flatnonzero(keep)
    onehot = sparse.csr_matrix((np.ones(len(idx), np.float32), (codes[idx], idx)), shape=(n_groups, len(x)))
    return np.asarray(onehot @ x, dtype=np.float64)


@dataclass
class SpatialStats:
    """Result of :func:`spatial_statistics`.

    ``per_map``: one row per labelled map with mass: ``row``, ``label``, ``context``, ``cy``,
    ``cx``, ``sy``, ``sx``, ``spread``. ``mean_maps``: label -> mean normalised map (h, w),
    which sums to 1. ``context_maps``: (context, label) -> mean normalised map. ``counts`` /
    ``context_counts``: how many maps went into each.
    """

    per_map: pd.DataFrame
    mean_maps: dict[str, np.ndarray]
    counts: pd.Series
    context_maps: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    context_counts: pd.Series = field(default_factory=lambda: pd.Series(dtype=np.int64))
    n_maps_read: int = 0

    def summary(self) -> pd.DataFrame:
        """Per label: ``n``, mean and std of ``cy`` / ``cx``, mean ``sy``, ``sx``, ``spread``, and the
        centroid of the mean map (``mean_map_cy``, ``mean_map_cx``); sorted by ``cy``."""
        if self.per_map.empty:
            return pd.DataFrame(columns=["n", "cy", "cy_std", "cx", "cx_std", "sy", "sx", "spread"])
        # grouped by the categorical's codes: no copy of the frame, no string per map
        gb = self.per_map.groupby("label", observed=True, sort=True)
        s = pd.DataFrame(
            {
                "n": gb.size(),
                "cy": gb["cy"].mean(),
                "cy_std": gb["cy"].std(ddof=0),
                "cx": gb["cx"].mean(),
                "cx_std": gb["cx"].std(ddof=0),
                "sy": gb["sy"].mean(),
                "sx": gb["sx"].mean(),
                "spread": gb["spread"].mean(),
            }
        )
        s.index = pd.Index([str(k) for k in s.index], name="label", dtype=object)
        if self.mean_maps:
            labs = list(self.mean_maps)
            stack = np.stack([self.mean_maps[k] for k in labs])
            mm = map_moments(stack, baseline="none")
            s["mean_map_cy"] = pd.Series(mm["cy"], index=labs)
            s["mean_map_cx"] = pd.Series(mm["cx"], index=labs)
        return s.sort_values("cy")


_MOMENTS = ("cy", "cx", "sy", "sx", "spread")


class _SpatialAcc:
    """Running sums for :func:`spatial_statistics`.

    Memory: the label codes (4 bytes a map; with ``contexts`` their codes too) and the per-map
    moments of each block as float32 (20 bytes a map), moved block by block into the result's one
    array (untouched pages of a new array take no memory, and each block is freed once moved), so
    the moments never exist twice. Ten million maps: about 250 MB.
    """

    def __init__(self, labels: Any, contexts: np.ndarray | None) -> None:
        n = len(labels)
        self.codes, self.names = _codes(labels, n)
        self.cnames: list = []
        self.pair_codes: np.ndarray | None = None
        self.pair_uniq = np.zeros(0, np.int64)
        if contexts is not None:
            ccodes, self.cnames = _codes(contexts, n)
            L = max(len(self.names), 1)
            pair = np.where((self.codes >= 0) & (ccodes >= 0), ccodes.astype(np.int64) * L + self.codes, -1)
            self.pair_uniq, inv = np.unique(pair[pair >= 0], return_inverse=True)
            self.pair_codes = np.full(n, -1, np.int32)
            self.pair_codes[pair >= 0] = inv
            self.ccodes = ccodes
        self.sums = self.csums = None
        self.cnt = np.zeros(len(self.names), np.int64)
        self.ccnt = np.zeros(len(self.pair_uniq), np.int64)
        self.blocks: list[tuple[int, np.ndarray | None, np.ndarray]] = []  # (start, rows or None: all, moments)
        self.shape: tuple[int, int] | None = None

    @property
    def wanted(self) -> np.ndarray:
        return self.codes >= 0

    def _allocate(self, h: int, w: int) -> None:
        self.shape = (h, w)
        self.sums = np.zeros((len(self.names), h * w))
        self.csums = np.zeros((len(self.pair_uniq), h * w))

    def compute(self, start: int, p: np.ndarray, mass: np.ndarray, h: int, w: int) -> tuple | None:
        """What block ``p`` (rows from ``start``) adds, computed without touching the sums (threads
        compute blocks at once; :meth:`apply` adds them in block order, so the sums are those of one
        thread, to the last bit)."""
        sl = slice(start, start + len(p))
        good = (self.codes[sl] >= 0) & (mass > 0)
        if not good.any():
            return None
        gk = np.where(good, self.codes[sl], -1)
        sums = _group_sum(gk, p, len(self.names))
        cnt = np.bincount(gk[gk >= 0], minlength=len(self.names))
        csums = ccnt = None
        if self.pair_codes is not None and len(self.pair_uniq):
            pc = np.where(good, self.pair_codes[sl], -1)
            csums = _group_sum(pc, p, len(self.pair_uniq))
            ccnt = np.bincount(pc[pc >= 0], minlength=len(self.pair_uniq))
        if good.all():
            rows, mom = None, _moments(p, mass, h, w)
        else:
            rows = np.flatnonzero(good)
            mom = _moments(p[rows], mass[rows], h, w)
            rows += start
        moments = np.stack([mom[k] for k in _MOMENTS]).astype(np.float32)
        return (h, w), sums, cnt, csums, ccnt, (start, rows, moments)

    def apply(self, part: tuple | None) -> None:
        """Add a block's :meth:`compute` result (blocks in row order)."""
        if part is None:
            return
        shape, sums, cnt, csums, ccnt, block = part
        if self.sums is None:
            self._allocate(*shape)
        self.sums += sums
        self.cnt += cnt
        if csums is not None:
            self.csums += csums
            self.ccnt += ccnt
        self.blocks.append(block)

    def add(self, start: int, p: np.ndarray, mass: np.ndarray, h: int, w: int) -> None:
        self.apply(self.compute(start, p, mass, h, w))

    def merge(self, other: _SpatialAcc) -> None:
        """Add the sums of ``other`` (the same labels, other rows) to these."""
        if other.sums is None:
            return
        if self.sums is None:
            self._allocate(*other.shape)
        self.sums += other.sums
        self.csums += other.csums
        self.cnt += other.cnt
        self.ccnt += other.ccnt
        self.blocks.extend(other.blocks)

    def _per_map(self) -> pd.DataFrame:
        """One row per map with moments, in row order (the blocks' order); columns as
        :class:`SpatialStats` describes. Empties ``blocks``."""
        blocks, self.blocks = self.blocks, []
        total = sum(m.shape[1] for _, _, m in blocks)
        mom = np.empty((len(_MOMENTS), total), np.float32)
        rows = np.empty(total, np.int64)
        at = 0
        blocks.reverse()  # popped from the end, in row order
        while blocks:
            start, r, m = blocks.pop()
            k = m.shape[1]
            mom[:, at : at + k] = m
            rows[at : at + k] = np.arange(start, start + k) if r is None else r
            at += k
            del m  # freed here: the moments are never held twice
        per = pd.DataFrame(mom.T, columns=list(_MOMENTS), copy=False)
        per.insert(0, "row", rows)
        per.insert(1, "label", pd.Categorical.from_codes(self.codes[rows], categories=self.names))
        context = (
            pd.Categorical.from_codes(self.ccodes[rows], categories=self.cnames)
            if self.cnames
            else pd.Categorical.from_codes(np.full(len(rows), -1, np.int8), categories=["-"])
        )
        per.insert(2, "context", context)
        return per

    def result(self, n_read: int) -> SpatialStats:
        names, cnames = self.names, self.cnames
        if self.sums is None:
            return SpatialStats(
                pd.DataFrame(columns=["row", "label", "context", "cy", "cx", "sy", "sx", "spread"]),
                {},
                pd.Series(dtype=np.int64),
                n_maps_read=n_read,
            )
        h, w = self.shape
        L = max(len(names), 1)
        per = self._per_map()
        cnt = self.cnt
        mean_maps = {names[i]: (self.sums[i] / cnt[i]).reshape(h, w) for i in range(len(names)) if cnt[i] > 0}
        counts = pd.Series({names[i]: int(cnt[i]) for i in range(len(names)) if cnt[i] > 0}, dtype=np.int64)
        cmaps, ccounts = {}, {}
        for j, code in enumerate(self.pair_uniq):
            if self.ccnt[j] > 0:
                key = (cnames[int(code) // L], names[int(code) % L])
                cmaps[key] = (self.csums[j] / self.ccnt[j]).reshape(h, w)
                ccounts[key] = int(self.ccnt[j])
        return SpatialStats(
            per,
            mean_maps,
            counts.sort_values(ascending=False),
            cmaps,
            pd.Series(ccounts, dtype=np.int64),
            n_maps_read=n_read,
        )


def spatial_statistics(
    source: Any,
    labels: np.ndarray,
    contexts: np.ndarray | None = None,
    *,
    baseline: str = "min",
    block: int | None = None,
    scheduler: Any = None,
) -> SpatialStats:
    """Per-map centroids and spreads, and mean maps per label and per (context, label), in
    one streaming pass.

    ``source`` is a store (path or group; its ``maps`` are read in shard-sized blocks) or an
    iterable of ``(first_row, maps)`` blocks covering the rows in order (e.g.
    :func:`truth_map_blocks`; the blocks may be modified in place). ``labels[r]`` names map
    ``r`` (``None`` = skip it); ``contexts[r]`` optionally groups it further (e.g. the place of
    its image). ``baseline``: see :func:`maps_to_distributions`. ``scheduler``: a dask.distributed
    cluster to spread the blocks over (see :func:`~stablesemantics.analysis.distributed.stream`).
    """
    acc = _SpatialAcc(labels, contexts)
    n = stream(source, [acc], baseline=baseline, block=block, whole_images=False, scheduler=scheduler)
    return acc.result(n)
