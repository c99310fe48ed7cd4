"""DynRefer's dynamic choice of views when the task is unknown: greedy pHash dissimilarity.

The tight view (t = 0) is always kept. Each candidate view (t = 0.1 … 1.0) is scored by how
much its perceptual hash differs from the tight view's — the number of differing bits of the
two 64-bit pHashes (popcount of their XOR) — *divided by the candidate's t*, so that among
equally different views the one with less context wins. The ``n_views - 1`` best candidates are
taken greedily, best first (DynRefer's ``DynReferProcessor.select_regions``: the score is
computed once against the tight view; each pick zeroes the chosen candidate's score).

The hash is ``imagehash.phash`` (grey-scale 32×32, DCT, the 8×8 lowest frequencies against
their median).

>>> import numpy as np
>>> flat = np.full((32, 32, 3), 128, np.uint8)
>>> rng = np.random.default_rng(0)
>>> noisy = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
>>> select_views(flat, [flat, noisy, flat], ts=[0.1, 0.5, 0.9], n_views=2)
[1]
"""

from __future__ import annotations

from collections.abc import Sequence

import imagehash
import numpy as np
from PIL import Image

from stablesemantics.regions.views import ViewBank

__all__ = ["dynamic_view_sets", "phash_bits", "phash_scores", "select_views"]


def phash_bits(pixels: np.ndarray) -> np.ndarray:
    """The 64-bit perceptual hash of an ``(H, W, 3)`` uint8 image as a ``(64,)`` bool array."""
    return np.asarray(imagehash.phash(Image.fromarray(np.asarray(pixels, np.uint8))).hash, bool).ravel()


def phash_scores(base: np.ndarray, candidates: Sequence[np.ndarray], ts: Sequence[float]) -> np.ndarray:
    """DynRefer's score of each candidate: ``popcount(pHash(base) XOR pHash(candidate)) / t``."""
    ts = np.asarray(ts, np.float64)
    if len(ts) != len(candidates):
        raise ValueError(f"{len(candidates)} candidates for {len(ts)} values of t")
    if np.any(ts <= 0):
        raise ValueError("candidate views need t > 0 (the score divides by t)")
    b = phash_bits(base)
    distance = np.array([np.count_nonzero(b ^ phash_bits(c)) for c in candidates], np.float64)
    return distance / ts


def select_views(
    base: np.ndarray,
    candidates: Sequence[np.ndarray],
    ts: Sequence[float],
    n_views: int,
) -> list[int]:
    """Indices into ``candidates`` of the ``n_views - 1`` views DynRefer adds to the tight view ``base``.

    Greedy as in DynRefer: take the highest score, zero it, repeat. Ties go to the earlier
    candidate (smaller t, with candidates ordered by t).
    """
    if n_views < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views}")
    if n_views - 1 > len(candidates):
        raise ValueError(f"cannot pick {n_views - 1} of {len(candidates)} candidates")
    score = phash_scores(base, candidates, ts)
    chosen: list[int] = []
    for _ in range(n_views - 1):
        best = int(np.argmax(score))  # first maximum: ties go to the smaller index
        chosen.append(best)
        score[best] = -np.inf  # DynRefer sets it to 0; -inf also keeps zero-distance views last
    return chosen


def dynamic_view_sets(bank: ViewBank, n_views: int) -> np.ndarray:
    """For every region of ``bank``: bank indices of its tight view and the views pHash picks.

    ``bank.ts[0]`` must be 0 (the tight view); the rest are the candidates. Returns
    ``(n_regions, n_views)`` int64, the tight view first.
    """
    if abs(float(bank.ts[0])) > 1e-9:
        raise ValueError("the bank's first view must be the tight view (t = 0)")
    cand_ts = bank.ts[1:]
    out = np.zeros((len(bank), n_views), np.int64)
    for r in range(len(bank)):
        picks = select_views(bank.pixels[r, 0], list(bank.pixels[r, 1:]), cand_ts, n_views)
        out[r, 1:] = 1 + np.asarray(picks, np.int64)
    return out
