"""Map utilities shared by capture, evaluation and plots: bitwise equal to the code they replaced."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stablesemantics.capture import minmax_scale_maps, resize_maps


def _capture_resize_before(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The capture's resize before the two were merged (antialiased, channels of one batch)."""
    flat = maps.reshape(1, -1, *maps.shape[-2:])
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*maps.shape[:-2], *size)


def _evaluate_resize_before(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The evaluations' resize before the two were merged (no antialiasing, a batch of one-channel maps)."""
    t = torch.as_tensor(np.asarray(maps, np.float32))[:, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


def _metric_scale_before(maps: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps, np.float64)
    lo = maps.min(axis=(-1, -2), keepdims=True)
    hi = maps.max(axis=(-1, -2), keepdims=True)
    return (maps - lo) / np.maximum(hi - lo, 1e-12)


def _plot_scale_before(amap: np.ndarray) -> np.ndarray:
    """``analysis.plots.normalize_map`` before it was folded into ``minmax_scale_maps(display=True)``."""
    a = np.asarray(amap, dtype=np.float32)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo <= 0:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


@pytest.mark.parametrize("size", [(16, 16), (9, 7), (4, 4), (3, 5), (64, 48)])
def test_resize_maps_is_bitwise_the_capture_resize(size):
    x = torch.rand(2, 77, 8, 8, generator=torch.Generator().manual_seed(0))
    got = resize_maps(x, size)
    assert torch.equal(got, _capture_resize_before(x, size))
    assert torch.equal(resize_maps(x[0, :5], size), _capture_resize_before(x[0, :5], size))


@pytest.mark.parametrize("size", [(32, 32), (64, 48), (9, 7), (4, 4)])
@pytest.mark.parametrize("n", [1, 5, 8, 40])  # 8 or more: PyTorch's kernel vectorises over channels
def test_resize_maps_without_antialias_is_bitwise_the_evaluation_resize(size, n):
    maps = np.random.default_rng(n).random((n, 8, 8)).astype(np.float32)
    got = resize_maps(torch.from_numpy(maps), size, antialias=False).numpy()
    want = _evaluate_resize_before(maps, size)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want)
    odd = maps[:, :5, :7]  # not contiguous, odd grid
    assert np.array_equal(
        resize_maps(torch.from_numpy(odd), size, antialias=False).numpy(), _evaluate_resize_before(odd, size)
    )


def test_resize_maps_same_size_is_the_input_and_equals_the_identity_interpolation():
    maps = np.random.default_rng(1).random((3, 6, 5)).astype(np.float32)
    x = torch.from_numpy(maps)
    assert resize_maps(x, (6, 5), antialias=False) is x
    assert np.array_equal(x.numpy(), _evaluate_resize_before(maps, (6, 5)))


def test_minmax_scale_maps_is_bitwise_the_metric_scaling():
    rng = np.random.default_rng(2)
    maps = np.concatenate([rng.random((4, 8, 8)), np.full((1, 8, 8), 0.3), 1e-14 * rng.random((1, 8, 8))])
    for m in (maps, maps.astype(np.float32), maps.astype(np.float16)):
        got = minmax_scale_maps(m)
        assert got.dtype == np.float64 and np.array_equal(got, _metric_scale_before(m))


def test_minmax_scale_maps_display_is_bitwise_the_plot_scaling():
    rng = np.random.default_rng(3)
    maps = [
        rng.random((8, 8)),
        rng.normal(size=(5, 7)) * 1e30,
        np.full((4, 4), 5.0),
        np.array([[np.nan, 1.0], [2.0, 3.0]]),
        np.full((2, 2), np.nan),
        np.array([[0.0, np.inf], [1.0, 2.0]]),
        np.array([[1e-39, 3e-39], [2e-39, 0.0]]),
        rng.random((3, 3)).astype(np.float16),
    ]
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):  # the all-NaN map
        for m in maps:
            got, want = minmax_scale_maps(m, display=True), _plot_scale_before(m)
            assert got.dtype == want.dtype == np.float32
            assert np.array_equal(got, want, equal_nan=True)
        stack = rng.random((3, 6, 6))
        assert np.array_equal(minmax_scale_maps(stack, display=True), np.stack([_plot_scale_before(m) for m in stack]))
