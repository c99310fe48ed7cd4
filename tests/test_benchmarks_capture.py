"""The arithmetic of benchmarks/capture.py: overheads, the DAAM verdict, memory flatness, DAAM's layer set.

No pipeline is run (the benchmark itself takes minutes); these check that the numbers it reports
mean what its table says.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
from conftest import benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("capture") as module:
        yield module


def test_overheads_are_relative_to_the_median_plain_time(bench):
    times = {
        "plain": {"wall": [10.0, 12.0, 11.0], "cpu": [1.0, 1.0, 1.0]},
        "ours": {"wall": [11.0, 11.0, 13.0], "cpu": [1.02, 1.02, 1.02]},
        "daam": {"wall": [22.0, 22.0, 22.0], "cpu": [1.30, 1.30, 1.30]},
    }
    s = bench.summarize_times(times, goal_ratio=1.10)
    assert s["overhead"]["ours"]["wall"] == pytest.approx(0.0)
    assert s["overhead"]["daam"]["wall"] == pytest.approx(1.0)
    assert s["ratio"]["ours"]["cpu"] == pytest.approx(1.02)
    assert s["noise"]["wall"] == pytest.approx(2.0 / 11.0)
    assert s["goal_ratio_met"] == {"wall": True, "cpu": True}
    assert s["faster_than_daam"]["cpu"]["value"] == pytest.approx(15.0)
    p = bench.paired(times)
    assert p["paired_overhead"]["ours"]["wall"] == pytest.approx(0.10)  # median of +10%, -8.3%, +18.2%
    assert p["daam_over_ours"]["wall"] == pytest.approx(2.0)


def test_faster_than_daam_says_when_it_cannot_tell(bench):
    assert bench.faster_than_daam(0.02, 0.10, 0.01)["value"] == pytest.approx(5.0)
    assert bench.faster_than_daam(-0.01, 0.30, 0.05)["value"] == math.inf
    assert bench.faster_than_daam(0.01, 0.02, 0.05)["verdict"].startswith("inconclusive")
    assert "lower bound" in bench.faster_than_daam(0.03, 0.40, 0.05)["verdict"]
    assert bench.faster_than_daam(None, 0.4, 0.0)["value"] is None


def test_memory_flatness_is_judged_against_plain(bench):
    setup = bench.Setup(
        name="t",
        description="",
        builder="tiny",
        device="cpu",
        dtype="float32",
        height=8,
        width=8,
        steps=1,
        repeats=1,
        output_type="np",
        memory_steps=(10, 50),
    )
    rows = [
        {"mode": "plain", "steps": 10, "peak_over_before_mb": 20.0},
        {"mode": "plain", "steps": 50, "peak_over_before_mb": 21.0},
        {"mode": "ours", "steps": 10, "peak_over_before_mb": 22.0, "n_layers": 11, "map_shape": [1, 77, 48, 48]},
        {"mode": "ours", "steps": 50, "peak_over_before_mb": 150.0},
    ]
    mem = bench.summarize_memory(rows, setup)
    assert mem["plain"]["flat"] and not mem["ours"]["flat"]
    assert mem["ours"]["growth_if_per_step_maps_kept_mb"] == pytest.approx(40 * 11 * 77 * 48 * 48 * 4 / 2**20)
    rows[-1]["peak_over_before_mb"] = 25.0
    assert bench.summarize_memory(rows, setup)["ours"]["flat"]


def test_daam_layer_set(bench):
    sd = SimpleNamespace(unet=SimpleNamespace(config=SimpleNamespace(sample_size=64)), vae_scale_factor=8)
    config, info = bench.daam_layer_config(sd, (64, 64))
    assert info["daam_latent_hw"] == 4096
    assert config.blocks == ("down", "up")
    assert [f for f in (1, 2, 4, 8) if f in config.resolutions] == [1, 2, 4]  # DAAM skips factor 8
    tiny = SimpleNamespace(unet=SimpleNamespace(config=SimpleNamespace(sample_size=32)), vae_scale_factor=2)
    _, info = bench.daam_layer_config(tiny, (32, 32))  # a 64x64 image: factors 3 and 6, nothing kept
    assert not info["levels"][1]["kept_by_daam"] and not info["levels"][2]["kept_by_daam"]


def test_json_is_strict(bench):
    text = json.dumps(bench.strict_jsonable({"a": (1.0, math.inf), "b": float("nan")}), allow_nan=False)
    assert json.loads(text) == {"a": [1.0, "inf"], "b": "nan"}
