"""Benchmark: how many MicroWorld scenes per second can be sampled and rendered.

Measures one process (wall clock and CPU time) and a pool of worker processes
(wall clock), at 64x64 and optionally other sizes, and writes
``benchmarks/results/world_speed.json`` and ``world_speed.md``.

Usage::

    python benchmarks/world_speed.py                 # 3 x 2000 scenes at 64 px, 2 workers
    python benchmarks/world_speed.py --n 500 --sizes 32 64 128 --workers 1 2

CPU time is reported next to wall time because on a shared machine the wall clock
also measures the other people's jobs; the load average at the start is recorded too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import numpy as np

from stablesemantics.world import WorldConfig, render_scenes

RESULTS = Path(__file__).resolve().parent / "results"


def _render_chunk(args: tuple[int, int, int, int]) -> int:
    n, seed, start, size = args
    return len(render_scenes(n, seed=seed, config=WorldConfig(size=size), start=start))


def time_single(n: int, size: int, repeats: int) -> dict:
    """Best-of-``repeats`` single-process rate (scenes/s) by wall clock and by CPU time."""
    cfg = WorldConfig(size=size)
    render_scenes(20, seed=123, config=cfg)  # warm caches (label bitmaps, palettes)
    walls, cpus = [], []
    for r in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        render_scenes(n, seed=r, config=cfg)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {
        "size": size,
        "n": n,
        "repeats": repeats,
        "scenes_per_s_wall": n / min(walls),
        "scenes_per_s_cpu": n / min(cpus),
        "ms_per_scene_wall": 1000 * min(walls) / n,
    }


def time_pool(n: int, size: int, workers: int) -> dict:
    """Throughput of ``workers`` processes rendering disjoint slices of one stream."""
    chunk = max(1, n // (4 * workers))
    jobs = [(min(chunk, n - s), 0, s, size) for s in range(0, n, chunk)]
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(workers) as pool:
        pool.map(_render_chunk, [(5, 1, 0, size)] * workers)  # warm up every worker
        t0 = time.perf_counter()
        done = sum(pool.map(_render_chunk, jobs))
        wall = time.perf_counter() - t0
    return {"size": size, "n": done, "workers": workers, "scenes_per_s_wall": done / wall}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="scenes per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64])
    ap.add_argument("--workers", type=int, nargs="+", default=[2])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    single = [time_single(args.n, s, args.repeats) for s in args.sizes]
    pools = [time_pool(args.n, s, w) for s in args.sizes for w in args.workers if w > 1]
    result = {
        "benchmark": "world_speed",
        "single_process": single,
        "pool": pools,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1min_at_start": load,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "processor": platform.processor() or platform.machine(),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "world_speed.json").write_text(json.dumps(result, indent=2))
    lines = [
        "| image size | processes | scenes/s (wall) | scenes/s (CPU time) | ms/scene (wall) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in single:
        lines.append(
            f"| {r['size']} | 1 | {r['scenes_per_s_wall']:.0f} | {r['scenes_per_s_cpu']:.0f} "
            f"| {r['ms_per_scene_wall']:.2f} |"
        )
    for r in pools:
        lines.append(
            f"| {r['size']} | {r['workers']} | {r['scenes_per_s_wall']:.0f} | | {1000 / r['scenes_per_s_wall']:.2f} |"
        )
    md = (
        "# MicroWorld rendering speed\n\n" + "\n".join(lines) + "\n\n"
        f"{os.cpu_count()} CPUs, 1-min load average {load:.1f} at start "
        "(a loaded machine lowers the wall-clock numbers).\n"
    )
    (args.out / "world_speed.md").write_text(md)
    print(md)
    return result


if __name__ == "__main__":
    main()
