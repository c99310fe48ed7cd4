"""The analysis benchmark's synthetic store is a store of this library: zarr reads it, checksums and all,
and the measurement recovers the planted spatial prior."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import benchmark_module

from stablesemantics.store import verify_store
from stablesemantics.store.blocks import _ShardReader, open_group, read_maps


def test_synthetic_store_verifies_and_reads_alike_through_zarr_and_the_fast_reader(tmp_path: Path):
    with benchmark_module("analysis_scale") as bench:
        facts = bench.build_store(tmp_path / "s.zarr", 6000)  # reads 50 maps back through zarr itself
        result = bench.measure(tmp_path / "s.zarr")
    assert facts["n_maps"] == 6000 and facts["rows_per_shard"] < 6000  # more than one shard
    check = verify_store(tmp_path / "s.zarr")
    assert check.ok and check.checksums, check.problems[:3]
    g = open_group(tmp_path / "s.zarr")
    assert _ShardReader(g["maps"]).fast
    np.testing.assert_array_equal(read_maps(g, 4000, 4200), g["maps"][4000:4200])
    assert result["n_maps"] == 6000 and result["fast_reader"]
    assert result["recovered_vs_true_mean_y_r"] > 0.95
