"""The streaming analyses on a dask.distributed cluster: a store's blocks split between workers.

:func:`spatial_statistics`, :func:`map_overlaps` and :func:`map_statistics` take
``scheduler=``: ``None`` runs in this process; a ``distributed.Client``, a scheduler address
(``"tcp://host:8786"``) or ``"local"`` (a ``LocalCluster`` on this machine, closed afterwards)
spreads the work. The store's blocks (:func:`~stablesemantics.store.map_block_bounds`: the same
blocks as in process) are cut into contiguous parts; each worker opens the store itself (a
path or URL every worker can read), streams its part into fresh accumulators, and the parts are
merged in block order. The numbers equal the in-process ones: counts, per-map moments and pair
statistics exactly (every block is computed as in process, chance pairs drawn from a
per-block seed), mean maps to float64 rounding (sums added in another order).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np

from stablesemantics.analysis.streaming import _stream
from stablesemantics.store.blocks import map_block_bounds


def _part(source: Any, accs: list, bounds: list, baseline: str, whole_images: bool) -> tuple[list, int]:
    """One worker's part: fresh copies of the accumulators fed with the blocks ``bounds``."""
    mine = copy.deepcopy(accs)  # the scattered prototypes are shared by the worker's tasks
    n = _stream(source, mine, baseline=baseline, block=None, whole_images=whole_images, bounds=bounds)
    return mine, n


def _client(scheduler: Any) -> tuple[Any, Any]:
    """``(client, cluster to close or None)`` for a Client, an address or ``"local"``."""
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
        return Client(cluster), cluster
    if isinstance(scheduler, str):
        return Client(scheduler), None
    raise TypeError(
        f"scheduler must be None, 'local', an address or a distributed.Client, got {type(scheduler).__name__}"
    )


def stream(
    source: Any,
    accs: list,
    *,
    baseline: str,
    block: int | None,
    whole_images: bool,
    scheduler: Any = None,
    parts: int | None = None,
) -> int:
    """Feed ``accs`` with every map of ``source``, in this process or on a cluster; returns rows read.

    With a scheduler, ``source`` must be a store path or URL, ``accs`` fresh accumulators (they
    receive the merged result) and ``parts`` the number of tasks (default: twice the workers).
    """
    if scheduler is None:
        return _stream(source, accs, baseline=baseline, block=block, whole_images=whole_images)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"with a scheduler, source must be a store path or URL that the workers open, got {type(source).__name__}"
        )
    source = os.fspath(source)
    bounds = map_block_bounds(source, block=block, whole_images=whole_images)
    client, cluster = _client(scheduler)
    try:
        k = parts or max(1, 2 * len(client.scheduler_info()["workers"]))
        groups = [
            [tuple(map(int, b)) for b in g] for g in np.array_split(np.array(bounds, dtype=np.int64), k) if len(g)
        ]
        (prototypes,) = client.scatter([accs], broadcast=True)
        futures = [client.submit(_part, source, prototypes, g, baseline, whole_images, pure=False) for g in groups]
        results = client.gather(futures)
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
    for part_accs, _ in results:
        for acc, part in zip(accs, part_accs):
            acc.merge(part)
    return sum(n for _, n in results)
