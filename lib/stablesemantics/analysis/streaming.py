"""Streaming over map blocks: turn maps into distributions and feed running accumulators."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from stablesemantics.store.blocks import map_block_bounds, map_reader, open_group
from stablesemantics.store.halves import to_float32


def maps_to_distributions(maps: np.ndarray, baseline: str = "min") -> tuple[np.ndarray, np.ndarray]:
    """Each map as a distribution over its pixels: ``(p, mass)`` with ``p`` of shape (n, h*w)
    summing to 1 per row (0 where the map has no mass) and ``mass`` the total before normalising.

    ``baseline`` removes a per-map floor first: ``"min"`` (the map's minimum; attention is a
    softmax share, so a constant floor says nothing about where), ``"mean"`` (keeps only the
    above-average part), or ``"none"``. Negative values are clipped to 0.
    """
    m = np.array(maps, dtype=np.float32).reshape(len(maps), -1)  # a copy
    return _distributions_inplace(m, baseline)


def _codes(values: Any, n: int) -> tuple[np.ndarray, list]:
    """Integer codes (int32, -1 = skip) and the sorted code -> value list, for labels with ``None`` /
    NaN / ``""`` (skipped). ``values``: any sequence, or a pandas ``Categorical`` (or categorical
    ``Series``, as :func:`~stablesemantics.store.map_table` gives its lemmas), whose codes are used as
    they are: ten million labels then cost their 4-byte codes, not an array of Python objects.

    >>> _codes(["b", None, "a", "", "b"], 5)
    (array([ 1, -1,  0, -1,  1], dtype=int32), ['a', 'b'])
    """
    if values is None:
        return np.full(n, -1, np.int32), []
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        values = values.array
    if isinstance(values, pd.Categorical):
        if len(values) != n:
            raise ValueError(f"expected {n} labels, got {len(values)}")
        cats = np.asarray(values.categories, dtype=object)
        raw = np.asarray(values.codes)
    else:
        values = np.asarray(values, dtype=object)
        if len(values) != n:
            raise ValueError(f"expected {n} labels, got {len(values)}")
        raw, cats = pd.factorize(values, use_na_sentinel=True)
        cats = np.asarray(cats, dtype=object)
    keep = np.flatnonzero(pd.notna(cats) & (cats != ""))
    names = sorted(cats[keep].tolist())
    lookup = np.full(len(cats) + 1, -1, np.int32)  # the last entry: raw code -1
    lookup[keep] = np.searchsorted(np.asarray(names, dtype=object), cats[keep]).astype(np.int32)
    return lookup[raw], names


def _is_store(source: Any) -> bool:
    return isinstance(source, (str, os.PathLike)) or hasattr(source, "attrs")


def _tasks(source: Any, whole_images: bool, block: int | None, bounds: list | None):
    """``(tasks, load)``: for a store, its blocks' row ranges and a function that reads one (as stored,
    float16), so that the worker threads decode too; for an iterable of blocks, the blocks themselves."""
    if not _is_store(source):
        return iter(source), None
    g = open_group(source)
    if bounds is None:
        bounds = map_block_bounds(g, block=block, whole_images=whole_images)
    read = map_reader(g)
    return [(int(s), int(e)) for s, e in bounds], lambda s, e: (s, read(s, e))


def _distributions_of_rows(maps: np.ndarray, use: np.ndarray, baseline: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`maps_to_distributions` of the rows ``use`` of a block (others: zeros, mass 0), in place
    when the block is float32 (blocks handed to the streaming functions are theirs)."""
    b = len(maps)
    m = maps.reshape(b, -1)
    if m.dtype != np.float32:
        m = to_float32(m)
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
    if baseline == "min" and m.dtype == np.float32 and m.flags.c_contiguous and m.ndim == 2:
        from stablesemantics.analysis.normalise_kernel import min_normalise_inplace

        mass = np.empty(len(m))
        min_normalise_inplace(m, mass)  # the same float32 steps as below, in one pass per map
        return m, mass
    if baseline == "min":
        m -= m.min(1, keepdims=True)  # no value is below its row's minimum: nothing to clip
    else:
        if baseline == "mean":
            m -= m.mean(1, keepdims=True)
        elif baseline != "none":
            raise ValueError(f"baseline must be 'min', 'mean' or 'none', got {baseline!r}")
        np.maximum(m, 0, out=m)
    mass = m.sum(1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        m *= np.where(mass > 0, 1.0 / mass, 0.0).astype(np.float32)[:, None]
    return m, mass


#: threads that read and compute blocks at once in one process: the machine's cores, at most 8
#: (the numbers do not depend on it: blocks are computed apart and added in order); 1 works in the
#: calling thread
THREADS = max(1, min(8, os.cpu_count() or 1))


def _stream(
    source: Any,
    accs: list,
    *,
    baseline: str,
    block: int | None,
    whole_images: bool,
    bounds: list | None = None,
    threads: int | None = None,
) -> int:
    """One pass over the maps of ``source`` (only the blocks ``bounds`` of a store, if given), feeding
    every accumulator; returns rows read.

    Blocks are read (a store's: decoded), normalised and computed by ``threads`` worker threads
    (default :data:`THREADS`; NumPy, the decoder and the compiled loops release the GIL), and added
    to the accumulators in row order by this thread, so the result is bit for bit that of one thread.
    Meanwhile BLAS runs one thread per caller (its own threads would only wait on each other).
    At most ``threads + 1`` blocks are in flight.
    """
    if baseline not in ("min", "mean", "none"):
        raise ValueError(f"baseline must be 'min', 'mean' or 'none', got {baseline!r}")
    threads = THREADS if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    wanted = np.logical_or.reduce([a.wanted for a in accs])

    tasks, load = _tasks(source, whole_images, block, bounds)

    def work(task: tuple) -> tuple[int, list | None]:
        start, maps = load(*task) if load is not None else task
        b, h, w = maps.shape
        use = wanted[start : start + b]
        if not use.any():
            return b, None
        p, mass = _distributions_of_rows(maps, use, baseline)
        return b, [a.compute(start, p, mass, h, w) for a in accs]

    n_read = 0

    def apply(result: tuple[int, list | None]) -> None:
        nonlocal n_read
        b, parts = result
        n_read += b
        if parts is not None:
            for a, part in zip(accs, parts):
                a.apply(part)

    with _one_blas_thread():
        if threads == 1:
            for task in tasks:
                apply(work(task))
            return n_read
        pending: deque = deque()
        with ThreadPoolExecutor(threads, thread_name_prefix="stablesemantics-stream") as pool:
            try:
                for task in tasks:
                    pending.append(pool.submit(work, task))
                    while len(pending) > threads:
                        apply(pending.popleft().result())
                while pending:
                    apply(pending.popleft().result())
            finally:
                for f in pending:
                    f.cancel()
    return n_read


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS limited to one thread for the block: the per-block matrix products are small, and
    OpenBLAS's own threads spin while they wait (measured: twice the CPU time for the same pass)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; without it BLAS keeps its threads
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
