"""The compiled loops of the analysis pass give NumPy's numbers: float16 conversion, min normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from stablesemantics.analysis import streaming
from stablesemantics.analysis.normalise_kernel import min_normalise_inplace
from stablesemantics.store.halves import to_float32


def test_float16_conversion_is_astype_for_every_bit_pattern():
    every = np.arange(2**16, dtype=np.uint16).view(np.float16).reshape(64, 1024)
    got, want = to_float32(every), every.astype(np.float32)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # NaN payloads, -0.0 and subnormals too
    strided = every[:, ::2]  # not contiguous
    assert np.array_equal(to_float32(strided).view(np.uint32), strided.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("k", [1, 7, 1024, 4096])
def test_min_normalisation_in_one_pass_equals_numpys_five(k):
    rng = np.random.default_rng(k)
    m = (rng.random((50, k)) ** 3 * 0.01).astype(np.float16).astype(np.float32)
    m[3] = 0.0  # no mass
    m[4, 0] = np.nan  # a damaged map
    m[5] = 7.0  # constant
    m[6, -1] = np.inf
    got, mass = m.copy(), np.empty(len(m))
    min_normalise_inplace(got, mass)
    want = m.copy()
    want -= want.min(1, keepdims=True)
    want_mass = want.sum(1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        want *= np.where(want_mass > 0, 1.0 / want_mass, 0.0).astype(np.float32)[:, None]
    np.testing.assert_array_equal(got, want)  # NaN where NumPy gives NaN
    np.testing.assert_allclose(mass, want_mass, rtol=1e-12, equal_nan=True)
    p, s = streaming._distributions_inplace(m.copy(), "min")  # the streaming path takes the kernel
    np.testing.assert_array_equal(p, want)
