"""Maps to distributions with the ``"min"`` baseline, one compiled pass per map (numba).

Per row of a float32 block, in place: subtract the row's minimum, sum the rest in float64 (the
mass), and scale by ``float32(1 / mass)`` (0 for a map without mass): NumPy's
:func:`~stablesemantics.analysis.streaming._distributions_inplace` does the same in five passes over
the block. The values are NumPy's (the same float32 operations; the mass may differ in its last
bits, the order of the float64 sum being another). A row holding NaN becomes NaN with NaN mass, as
there. Releases the GIL, so the streaming threads run it at once.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"})
def _row_sum(row):  # pragma: no cover - compiled
    s = 0.0
    for j in range(row.size):
        s += np.float64(row[j])
    return s


@numba.njit(cache=True, nogil=True)
def min_normalise_inplace(m, mass):  # pragma: no cover - compiled
    """Normalise each row of ``m`` (n, k) float32 in place; ``mass`` (n,) float64 gets each row's mass."""
    n, k = m.shape
    for i in range(n):
        row = m[i]
        lo = row[0]
        nan = False
        for j in range(k):
            v = row[j]
            if v != v:
                nan = True
            elif v < lo:
                lo = v
        if nan:
            lo = np.float32(np.nan)
        for j in range(k):
            row[j] = row[j] - lo
        s = _row_sum(row)
        mass[i] = s
        f = np.float32(1.0 / s) if s > 0 else np.float32(0.0)
        for j in range(k):
            row[j] = row[j] * f
