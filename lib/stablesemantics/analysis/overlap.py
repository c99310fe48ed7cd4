"""Overlap of the maps of two chunks of one image, against the same label pair in other images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stablesemantics.analysis.distributed import stream
from stablesemantics.analysis.spatial import SpatialStats, _SpatialAcc
from stablesemantics.analysis.streaming import _codes


def map_statistics(
    source: Any,
    labels: np.ndarray,
    map_image: np.ndarray,
    contexts: np.ndarray | None = None,
    *,
    groups: np.ndarray | None = None,
    baseline: str = "min",
    block: int | None = None,
    seed: int = 0,
    scheduler: Any = None,
) -> tuple[SpatialStats, OverlapStats]:
    """:func:`spatial_statistics` and :func:`map_overlaps` in a single pass over the maps (each
    block is read and normalised once); ``scheduler``: see :func:`~stablesemantics.analysis.distributed.stream`."""
    sp, ov = _SpatialAcc(labels, contexts), _OverlapAcc(labels, map_image, groups, seed)
    n = stream(source, [sp, ov], baseline=baseline, block=block, whole_images=True, scheduler=scheduler)
    return sp.result(n), ov.result(n)


def _pairs_within(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs (i < j) of rows that share a group value; ``groups`` must be sorted."""
    n = len(groups)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    sizes = np.diff(np.r_[starts, n])
    pos = np.arange(n) - np.repeat(starts, sizes)
    partners = np.repeat(sizes, sizes) - pos - 1
    left = np.repeat(np.arange(n), partners)
    offs = np.arange(len(left)) - np.repeat(np.cumsum(partners) - partners, partners) + 1
    return left, left + offs


def _dilate(m: np.ndarray) -> np.ndarray:
    """4-neighbour dilation of boolean masks (n, h, w)."""
    d = m.copy()
    d[:, 1:] |= m[:, :-1]
    d[:, :-1] |= m[:, 1:]
    d[:, :, 1:] |= m[:, :, :-1]
    d[:, :, :-1] |= m[:, :, 1:]
    return d


def _pack(m: np.ndarray) -> np.ndarray:
    """Boolean rows (n, k) as bit rows of 64-bit words (n, ceil(k / 64)), zero-padded."""
    bits = np.packbits(m, axis=1)
    pad = -bits.shape[1] % 8
    if pad:
        bits = np.pad(bits, ((0, 0), (0, pad)))
    return np.ascontiguousarray(bits).view(np.uint64)


def _block_masks(p: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Each map's above-uniform mask and its 4-neighbour dilation, as bit rows (computed once per map).

    Maps up to 64 pixels wide keep one 64-bit word per image row (bit ``x`` = column ``x``), and
    dilate by shifting words; wider maps are packed whole after dilating the boolean masks.
    """
    m = p > 1.0 / (h * w)
    if w > 64:
        return _pack(m), _pack(_dilate(m.reshape(-1, h, w)).reshape(len(m), -1))
    packed = np.packbits(m.reshape(-1, h, w), axis=2, bitorder="little")
    words = np.zeros((len(m), h, 8), np.uint8)  # one little-endian 64-bit word per image row
    words[:, :, : packed.shape[2]] = packed
    rows = words.view("<u8").reshape(len(m), h).astype(np.uint64, copy=False)
    one = np.uint64(1)
    grown = rows | (rows << one) | (rows >> one)
    if w < 64:
        grown &= np.uint64((1 << w) - 1)
    grown[:, 1:] |= rows[:, :-1]
    grown[:, :-1] |= rows[:, 1:]
    return rows, grown


def _pair_metrics(
    p: np.ndarray, masks: tuple[np.ndarray, np.ndarray], left: np.ndarray, right: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overlap (histogram intersection), IoU of the above-uniform masks and whether they touch, for
    the map pairs ``(left[i], right[i])`` of block ``p`` (n, h*w); masks from :func:`_block_masks`.
    One compiled loop (:mod:`~stablesemantics.analysis.pair_kernel`)."""
    from stablesemantics.analysis.pair_kernel import pair_metrics_kernel

    n = len(left)
    overlap, iou, touch = np.empty(n), np.empty(n), np.empty(n)
    if n:
        bits, dilated = masks
        pair_metrics_kernel(
            np.ascontiguousarray(p, dtype=np.float32),
            np.ascontiguousarray(bits),
            np.ascontiguousarray(dilated),
            np.ascontiguousarray(left, dtype=np.int64),
            np.ascontiguousarray(right, dtype=np.int64),
            overlap,
            iou,
            touch,
        )
    return overlap, iou, touch


@dataclass
class OverlapStats:
    """Result of :func:`map_overlaps`: one row per unordered label pair ``(a, b)`` (a < b) with
    ``n`` (image pairs), mean ``overlap`` (histogram intersection of the normalised maps, in
    [0, 1]), ``iou`` (of the above-uniform masks), ``touch`` (share of pairs whose masks
    touch or overlap), and the same three for the *chance* pairing (``chance_*``: map of
    ``a`` from one image with map of ``b`` from another image — and another prompt, given
    ``groups`` — of the same block) with ``n_chance``."""

    pairs: pd.DataFrame
    n_maps_read: int = 0

    def pair(self, a: str, b: str) -> pd.Series | None:
        """The row of the pair ``(a, b)`` in either order, or ``None``."""
        key = (min(a, b), max(a, b))
        try:
            return self.pairs.loc[key]
        except KeyError:
            return None

    def matrix(self, column: str = "overlap") -> pd.DataFrame:
        """``column`` as a symmetric label x label DataFrame (NaN where no pair was seen)."""
        labs = sorted(set(self.pairs.index.get_level_values(0)) | set(self.pairs.index.get_level_values(1)))
        m = pd.DataFrame(np.nan, index=labs, columns=labs)
        for (a, b), v in self.pairs[column].items():
            m.loc[a, b] = m.loc[b, a] = v
        return m


class _OverlapAcc:
    """Running sums for :func:`map_overlaps`."""

    COLS = ["n", "overlap", "iou", "touch", "n_chance", "chance_overlap", "chance_iou", "chance_touch"]

    def __init__(
        self, labels: np.ndarray, map_image: np.ndarray, groups: np.ndarray | None = None, seed: int = 0
    ) -> None:
        self.map_image = np.asarray(map_image)
        self.groups = self.map_image if groups is None else np.asarray(groups)
        if len(self.map_image) != len(labels) or len(self.groups) != len(labels):
            raise ValueError(f"map_image / groups must have one entry per label ({len(labels)})")
        self.codes, self.names = _codes(labels, len(labels))
        self.seed = seed
        self.acc: list[pd.DataFrame] = []

    @property
    def wanted(self) -> np.ndarray:
        return self.codes >= 0

    def add(self, start: int, p: np.ndarray, mass: np.ndarray, h: int, w: int) -> None:
        self.apply(self.compute(start, p, mass, h, w))

    def apply(self, part: pd.DataFrame | None) -> None:
        """Add a block's :meth:`compute` result (blocks in row order)."""
        if part is not None:
            self.acc.append(part)

    def compute(self, start: int, p: np.ndarray, mass: np.ndarray, h: int, w: int) -> pd.DataFrame | None:
        """The pair sums of block ``p`` (rows from ``start``), without touching the accumulator."""
        L = max(len(self.names), 1)
        sl = slice(start, start + len(p))
        img = self.map_image[sl]
        c = np.where(mass > 0, self.codes[sl], -1)
        idx = np.flatnonzero(c >= 0)
        if len(idx) < 2:
            return None
        left, right = _pairs_within(img[idx])
        left, right = idx[left], idx[right]
        la, lb = c[left], c[right]
        diff = la != lb
        left, right, la, lb = left[diff], right[diff], la[diff], lb[diff]
        if not len(left):
            return None
        swap = la > lb  # unordered pair (a < b): left holds label a
        left, right = np.where(swap, right, left), np.where(swap, left, right)
        typ = np.minimum(la, lb) * L + np.maximum(la, lb)
        masks = _block_masks(p, h, w)
        ov, iou, touch = _pair_metrics(p, masks, left, right)
        # chance: shuffle the pairs of each type, then pair each left map with the right map of
        # the next pair of the same type, unless both come from the same group (prompt)
        rng = np.random.default_rng([self.seed, start])  # per block: any split of the blocks draws the same
        order = np.lexsort((rng.random(len(typ)), typ))
        ts = typ[order]
        gstart = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
        gsize = np.diff(np.r_[gstart, len(ts)])
        first = np.repeat(gstart, gsize)
        size = np.repeat(gsize, gsize)
        nxt = first + (np.arange(len(ts)) - first + 1) % size
        valid = size > 1
        cl, cr = left[order][valid], right[order[nxt]][valid]
        grp = self.groups[sl]
        other = (img[cl] != img[cr]) & (grp[cl] != grp[cr])
        cl, cr = cl[other], cr[other]
        cov, ciou, ctouch = _pair_metrics(p, masks, cl, cr) if len(cl) else (np.zeros(0),) * 3
        ctyp = ts[valid][other]
        s = (
            pd.DataFrame({"typ": typ, "overlap": ov, "iou": np.nan_to_num(iou), "touch": touch, "k": 1})
            .groupby("typ")
            .sum()
        )
        cs = (
            pd.DataFrame(
                {
                    "typ": ctyp,
                    "chance_overlap": cov,
                    "chance_iou": np.nan_to_num(ciou),
                    "chance_touch": ctouch,
                    "n_chance": 1,
                }
            )
            .groupby("typ")
            .sum()
        )
        return s.join(cs, how="outer").fillna(0)

    def merge(self, other: _OverlapAcc) -> None:
        """Append the sums of ``other`` (the same labels, later blocks)."""
        self.acc.extend(other.acc)

    def result(self, n_read: int) -> OverlapStats:
        cols = self.COLS
        if not self.acc:
            empty = pd.DataFrame(columns=cols, index=pd.MultiIndex.from_tuples([], names=["a", "b"]))
            return OverlapStats(empty, n_read)
        L = max(len(self.names), 1)
        tot = pd.concat(self.acc).groupby(level=0).sum()
        out = pd.DataFrame(index=tot.index)
        out["n"] = tot["k"].astype(np.int64)
        for k in ("overlap", "iou", "touch"):
            out[k] = tot[k] / tot["k"].where(tot["k"] > 0)
        out["n_chance"] = tot["n_chance"].astype(np.int64)
        for k in ("overlap", "iou", "touch"):
            out["chance_" + k] = tot["chance_" + k] / tot["n_chance"].where(tot["n_chance"] > 0)
        out = out[out["n"] > 0]
        a = [self.names[int(t) // L] for t in out.index]
        b = [self.names[int(t) % L] for t in out.index]
        out.index = pd.MultiIndex.from_arrays([a, b], names=["a", "b"])
        return OverlapStats(out[cols].sort_values("n", ascending=False), n_read)


def map_overlaps(
    source: Any,
    labels: np.ndarray,
    map_image: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    baseline: str = "min",
    block: int | None = None,
    seed: int = 0,
    scheduler: Any = None,
) -> OverlapStats:
    """How much the maps of two chunks of the same image overlap, per unordered pair of
    labels, streaming (see :class:`OverlapStats`). ``source``: a store or whole-image blocks
    ``(first_row, maps)``; ``map_image[r]``: the image of map ``r`` (sorted); pairs of the same
    label are skipped. Chance pairs are drawn within a block (a shard of a store), never
    from the same image nor from the same ``groups`` value (pass prompt ids: the seeds of one
    prompt share its layout); ``seed`` and the block fix their shuffle. ``scheduler``: a
    dask.distributed cluster to spread the blocks over (:func:`~stablesemantics.analysis.distributed.stream`)."""
    acc = _OverlapAcc(labels, map_image, groups, seed)
    n = stream(source, [acc], baseline=baseline, block=block, whole_images=True, scheduler=scheduler)
    return acc.result(n)
