"""Ground truth for a MicroWorld store: each map row's true object mask at the map size."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from stablesemantics.analysis.labels import store_scenes
from stablesemantics.store.blocks import map_table, open_group
from stablesemantics.world.sprites import CLASS_INDEX
from stablesemantics.world.vocabulary import PLACE_INDEX


def downsample_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average a (H, W) mask to ``size`` (exact box averaging; any sizes).

    >>> downsample_mask(np.eye(4), (2, 2)).tolist()
    [[0.5, 0.0], [0.0, 0.5]]
    """
    m = np.asarray(mask, dtype=np.float64)
    H, W = m.shape
    h, w = size
    if H % h == 0 and W % w == 0:
        return m.reshape(h, H // h, w, W // w).mean(axis=(1, 3))

    def weights(N: int, n: int) -> np.ndarray:  # (n, N): overlap of output bin i with input pixel j
        edges = np.arange(n + 1) * N / n
        j = np.arange(N)
        lo = np.maximum(edges[:-1, None], j[None, :])
        hi = np.minimum(edges[1:, None], j[None, :] + 1)
        wgt = np.clip(hi - lo, 0, None)
        return wgt / wgt.sum(1, keepdims=True)

    return weights(H, h) @ m @ weights(W, w).T


def truth_map_blocks(store: Any, labels: np.ndarray, *, block: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
    """Ground-truth "maps" of a world store, row for row with ``maps``.

    Row ``r`` is the visible mask of the object its label names in the scene of its image
    (area-averaged to the map size); a place label gets the background (pixels no object
    covers); a row whose label is ``None`` or names no object of the scene is all zeros (its
    statistics come out ``NaN`` and are skipped). Blocks hold whole images.
    """

    g = open_group(store)
    h, w = g["maps"].shape[1:]
    t = map_table(g, chunks=False)
    image, pid = t["image"].to_numpy(), t["prompt_id"].to_numpy()
    n = len(t)
    labels = np.asarray(labels, dtype=object)
    cache: dict[int, dict[str, np.ndarray]] = {}
    start = 0
    while start < n:
        stop = min(n, start + block)
        if stop < n:  # whole images
            stop = int(np.searchsorted(image, image[stop], side="left"))
            if stop <= start:
                stop = int(np.searchsorted(image, image[start], side="right"))
        here = set(np.unique(pid[start:stop]).tolist())
        cache = {p: v for p, v in cache.items() if p in here}
        need = sorted(p for p in here if p not in cache)
        for p, s in store_scenes(g, need).items():
            masks: dict[str, np.ndarray] = {}
            for o in s.objects:
                masks[o.cls] = downsample_mask(s.class_mask == CLASS_INDEX[o.cls] + 1, (h, w))
            masks[s.place] = downsample_mask(s.class_mask == 0, (h, w))
            cache[p] = masks
        out = np.zeros((stop - start, h, w), np.float32)
        for r in range(start, stop):
            lab = labels[r]
            if lab is not None and (lab in CLASS_INDEX or lab in PLACE_INDEX):
                m = cache[int(pid[r])].get(lab)
                if m is not None:
                    out[r - start] = m
        yield start, out
        start = stop
