"""The pair metrics of map overlaps as one compiled loop (numba): no gathered copies of the maps.

For each pair ``(left[i], right[i])`` of rows of a block of distributions ``p`` (n, h*w), in one
pass over the two rows: the histogram intersection ``sum(min(p[a], p[b]))`` (accumulated in float64),
and from the bit masks of :func:`~stablesemantics.analysis.overlap._block_masks` the IoU of the
above-uniform masks and whether the masks touch. NumPy would gather both rows of every pair into new
arrays first; this reads them in place, about four times faster on 32x32 maps, and releases the GIL,
so the streaming threads run it at once. Compiled on first use and cached beside this file.
"""

from __future__ import annotations

import numba
import numpy as np

_M1, _M2, _M4 = np.uint64(0x5555555555555555), np.uint64(0x3333333333333333), np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@numba.njit(cache=True, nogil=True, inline="always")
def _popcount(x: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return (x * _H01) >> np.uint64(56)


@numba.njit(cache=True, nogil=True, fastmath=True)
def pair_metrics_kernel(p, bits, dilated, left, right, overlap, iou, touch):  # pragma: no cover - compiled
    """Fill ``overlap``, ``iou`` (NaN when both masks are empty) and ``touch`` (1.0 or 0.0) per pair."""
    k, words = p.shape[1], bits.shape[1]
    for i in range(len(left)):
        a, b = left[i], right[i]
        s = 0.0
        for j in range(k):
            s += np.float64(min(p[a, j], p[b, j]))
        overlap[i] = s
        inter = np.uint64(0)
        union = np.uint64(0)
        t = False
        for j in range(words):
            wa, wb = bits[a, j], bits[b, j]
            inter += _popcount(wa & wb)
            union += _popcount(wa | wb)
            if dilated[a, j] & wb:
                t = True
        iou[i] = inter / union if union > 0 else np.nan
        touch[i] = 1.0 if t else 0.0
