"""Streaming over map blocks: turn maps into distributions and feed running accumulators."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from stablesemantics.store.blocks import iter_map_blocks


def maps_to_distributions(maps: np.ndarray, baseline: str = "min") -> tuple[np.ndarray, np.ndarray]:
    """Each map as a distribution over its pixels: ``(p, mass)`` with ``p`` of shape (n, h*w)
    summing to 1 per row (0 where the map has no mass) and ``mass`` the total before normalising.

    ``baseline`` removes a per-map floor first: ``"min"`` (the map's minimum; attention is a
    softmax share, so a constant floor says nothing about where), ``"mean"`` (keeps only the
    above-average part), or ``"none"``. Negative values are clipped to 0.
    """
    m = np.array(maps, dtype=np.float32).reshape(len(maps), -1)  # a copy
    return _distributions_inplace(m, baseline)


def _codes(values: np.ndarray | None, n: int) -> tuple[np.ndarray, list]:
    """Integer codes (-1 = skip) and the code -> value list, for labels with ``None`` / NaN."""
    if values is None:
        return np.full(n, -1, np.int64), []
    values = np.asarray(values, dtype=object)
    if len(values) != n:
        raise ValueError(f"expected {n} labels, got {len(values)}")
    ok = pd.notna(values) & (values != "")
    codes = np.full(n, -1, np.int64)
    c, uniq = pd.factorize(values[ok], sort=True)
    codes[ok] = c
    return codes, list(uniq)


def _blocks_of(source: Any, whole_images: bool = False, block: int | None = None, bounds: list | None = None):
    if isinstance(source, (str, os.PathLike)) or hasattr(source, "attrs"):
        return iter_map_blocks(source, block=block, whole_images=whole_images, bounds=bounds)
    return iter(source)


def _distributions_of_rows(maps: np.ndarray, use: np.ndarray, baseline: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`maps_to_distributions` of the rows ``use`` of a block (others: zeros, mass 0), in place
    when the block is float32 (blocks handed to the streaming functions are theirs)."""
    b = len(maps)
    m = maps.reshape(b, -1)
    if m.dtype != np.float32:
        m = m.astype(np.float32)
    if use.all():
        return _distributions_inplace(m, baseline)
    p = np.zeros_like(m)
    mass = np.zeros(b)
    idx = np.flatnonzero(use)
    if len(idx):
        p[idx], mass[idx] = _distributions_inplace(m[idx], baseline)
    return p, mass


def _distributions_inplace(m: np.ndarray, baseline: str) -> tuple[np.ndarray, np.ndarray]:
    if not len(m):
        return m, np.zeros(0)
    if baseline == "min":
        m -= m.min(1, keepdims=True)
    elif baseline == "mean":
        m -= m.mean(1, keepdims=True)
    elif baseline != "none":
        raise ValueError(f"baseline must be 'min', 'mean' or 'none', got {baseline!r}")
    np.maximum(m, 0, out=m)
    mass = m.sum(1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        m *= np.where(mass > 0, 1.0 / mass, 0.0).astype(np.float32)[:, None]
    return m, mass


def _stream(
    source: Any, accs: list, *, baseline: str, block: int | None, whole_images: bool, bounds: list | None = None
) -> int:
    """One pass over the maps of ``source`` (only the blocks ``bounds`` of a store, if given), feeding
    every accumulator; returns rows read."""
    if baseline not in ("min", "mean", "none"):
        raise ValueError(f"baseline must be 'min', 'mean' or 'none', got {baseline!r}")
    wanted = np.logical_or.reduce([a.wanted for a in accs])
    n_read = 0
    for start, maps in _blocks_of(source, whole_images=whole_images, block=block, bounds=bounds):
        b, h, w = maps.shape
        n_read += b
        use = wanted[start : start + b]
        if not use.any():
            continue
        p, mass = _distributions_of_rows(maps, use, baseline)
        for a in accs:
            a.add(start, p, mass, h, w)
    return n_read
