"""Rendering speed, measured (used by benchmarks/world_speed.py)."""

from __future__ import annotations

from stablesemantics.world.sample import render_scenes
from stablesemantics.world.scene import WorldConfig


def measure_speed(n: int = 500, seed: int = 0, config: WorldConfig | None = None) -> float:
    """Scenes per second (wall clock) of :func:`render_scenes` in this process.

    >>> measure_speed(20) > 0
    True
    """
    import time

    render_scenes(5, seed=seed + 1, config=config)  # warm the caches
    t0 = time.perf_counter()
    render_scenes(n, seed=seed, config=config)
    return n / (time.perf_counter() - t0)
