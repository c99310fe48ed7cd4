"""Generation on many processes: which process writes which batches, and when they wait.

``accelerate launch --num_processes N -m stablesemantics generate ...`` (or ``torchrun``, or any
launcher that sets ``WORLD_SIZE``/``RANK``) runs :func:`~stablesemantics.generate.generate` in N
processes. They share the work so that the store they write is the store one process writes:

- **one owner per shard file.** A sharded Zarr array keeps many chunks in one file, and
  writing a chunk rewrites its whole shard file, so two processes may never write into the
  same file. :func:`shard_groups` cuts the fixed batch partition into groups of consecutive
  batches that share no shard file of ``images``, ``done`` or ``maps``; process ``i`` takes
  groups ``i, i + N, i + 2N, ...``. Within a group the batches run in the order one process
  runs them, so every shard file ends with the same bytes as in a one-process run.
- **the main process sets up and holds the lock.** It takes the store's writer lock (a second
  run on the store fails at once), checks or creates the store (the first batch included)
  while the others load their model, then all start together; it keeps the lock until every
  process has finished.
- **killed anywhere, resumed by the same command.** Each batch is written as in one process
  (images and maps, then ``done``); the launcher stops every process when one dies; the
  rerun redoes the batches that are not done, whichever process had them.

A store with fewer shard groups than processes leaves processes idle (a warning says so): a
few-megabyte store is one or two groups. The images are the same as one process makes when
the processes compute as that one does (same device type; on a CPU the same number of
threads per process, which ``accelerate launch`` sets with ``--num_cpu_threads_per_process``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from stablesemantics.store.schema import StoreLayout
from stablesemantics.store.writer import map_rows


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of one run (one process: index 0 of 1)."""

    index: int = 0
    count: int = 1
    device: str | None = None
    state: Any = None  # accelerate's PartialState when launched on many processes

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def wait(self) -> None:
        """Wait until every process of the run gets here (nothing to wait for alone)."""
        if self.state is not None:
            self.state.wait_for_everyone()


def current_processes() -> Processes:
    """The processes of this run, from the launcher's environment (``WORLD_SIZE`` > 1: accelerate).

    Raises ``RuntimeError`` if launched on several processes without accelerate installed.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    try:
        from accelerate import PartialState
    except ImportError:  # pragma: no cover - accelerate is a dependency
        raise RuntimeError(
            f"launched on {os.environ['WORLD_SIZE']} processes (WORLD_SIZE) but accelerate is not installed: "
            "pip install accelerate"
        ) from None
    import torch

    # on a machine without CUDA, accelerate sees a multi-process launch only when told it is on the CPU
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes != int(os.environ["WORLD_SIZE"]):  # pragma: no cover - a launcher accelerate does not know
        raise RuntimeError(
            f"launched on {os.environ['WORLD_SIZE']} processes but accelerate sees {state.num_processes}: "
            "launch with `accelerate launch` or `torchrun`"
        )
    device = state.device
    return Processes(state.process_index, state.num_processes, "cpu" if device.type == "cpu" else str(device), state)


def shard_groups(layout: StoreLayout) -> list[list[tuple[int, int]]]:
    """The batches ``[k*B, (k+1)*B)`` in groups of consecutive batches that share no shard file.

    Two batches share a file when their images (and ``done`` flags, sharded alike) fall in one
    shard of ``images``, or their maps in one shard of ``maps`` (also across batches without
    maps between them): a group ends only where a shard of both arrays ends.

    >>> lay = StoreLayout(image_size=(8, 8), map_size=(2, 2), batch_size=1, prompt_id=[0, 1, 2],
    ...                   prompt=["a"] * 3, caption=["a"] * 3, seed=[0] * 3, noun_chunks=["[]"] * 3,
    ...                   map_image=[], map_chunk=[], map_lemma=[], map_token_indices=[])
    >>> shard_groups(lay)   # three tiny images share one images shard
    [[(0, 1), (1, 2), (2, 3)]]
    """
    B, n = layout.batch_size, layout.n_images
    ips, mps = layout.images_per_shard, layout.maps_per_shard
    map_image = np.asarray(layout.map_image, dtype=np.int64)
    m = len(map_image)
    groups: list[list[tuple[int, int]]] = []
    for start in range(0, n, B):
        first_row = map_rows(map_image, start, start).start  # the maps before this batch end here
        # a new group may start here when no shard file straddles the cut: images shards hold
        # whole batches, and the maps shard of the first row after the cut starts at that row
        cut = start % ips == 0 and (first_row % mps == 0 or first_row == m)
        if groups and not cut:
            groups[-1].append((start, min(start + B, n)))
        else:
            groups.append([(start, min(start + B, n))])
    return groups


def my_batches(groups: list[list[tuple[int, int]]], procs: Processes) -> set[tuple[int, int]]:
    """The batches process ``procs.index`` writes: its round-robin share of ``groups``
    (:func:`shard_groups` of the store's layout)."""
    return {b for group in groups[procs.index :: procs.count] for b in group}
