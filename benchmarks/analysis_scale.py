"""Benchmark: spatial priors per class plus co-occurrence on a store of 1,000,000 maps.

Builds (once; reused when present) a synthetic store in the library's exact schema: 32x32
float16 maps, each a Gaussian blob whose vertical position depends on its class (20 classes
named and placed like MicroWorld's, so the answer is known), 2-5 classes per prompt, 4 seeds
per prompt. Its shard files are written directly (zstd chunks + crc32c index, the Zarr v3
sharding layout) because zarr's writer spends most of its time per chunk; a sample of maps
is read back through zarr to check them.

Then, in a fresh process (so peak memory is the analysis alone), times:

1. ``map_table`` + labels (the 1-D index arrays),
2. ``map_statistics``: in one pass over the maps, the spatial priors (centroid and spread of
   every map, mean map of every class) and the overlap of the maps of every pair of chunks of
   the same image (the map side of co-occurrence),
3. ``cooccurrence_counts`` + ``pmi`` over prompts,

and reports maps per second, wall and CPU time and the peak resident memory, in
``benchmarks/results/analysis_scale.json`` and ``analysis_scale.md``. Targets (issue): steps
2-4 in at most 5 minutes and 2 GB resident on 2 cores.

Usage::

    python benchmarks/analysis_scale.py                       # 1,000,000 maps, in process
    python benchmarks/analysis_scale.py --n-maps 1000000 10000000 --scheduler none local
    python benchmarks/analysis_scale.py --n-maps 50000 --out scratch/bench   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_STORE = Path.home() / ".cache" / "stablesemantics" / "bench" / "analysis_scale_{n}.zarr"
SIZE = 32


# --------------------------------------------------------------------------- the synthetic store


def _classes():
    from stablesemantics.world import true_priors

    v = true_priors(n_estimate=200)["vertical"]
    names = list(v.index)
    return names, v["mean_y"].to_numpy()


def _plan(n_maps: int, seed: int, n_seeds: int = 4):
    rng = np.random.default_rng(seed)
    names, _ = _classes()
    freq = 1.0 / np.arange(1, len(names) + 1) ** 0.7
    freq /= freq.sum()
    per_prompt = []
    total = 0
    while total < n_maps:
        k = int(rng.integers(2, 6))
        cls = rng.choice(len(names), size=k, replace=False, p=freq)
        per_prompt.append(cls)
        total += k * n_seeds
    classes, images, pids = [], [], []
    img = 0
    for pid, cls in enumerate(per_prompt):
        for _ in range(n_seeds):
            classes.append(cls)
            images.append(np.full(len(cls), img))
            pids.append(pid)
            img += 1
    cls = np.concatenate(classes)[:n_maps]
    map_image = np.concatenate(images)[:n_maps]
    n_images = int(map_image[-1]) + 1
    return cls, map_image, np.asarray(pids[:n_images]), names


def _maps(cls: np.ndarray, centre_y: np.ndarray, rng) -> np.ndarray:
    n = len(cls)
    cy = np.clip(centre_y[cls] + rng.normal(0, 0.06, n), 0.05, 0.95) * SIZE
    cx = rng.uniform(0.1, 0.9, n) * SIZE
    sig = rng.uniform(2.0, 5.0, n)
    ys = np.arange(SIZE) + 0.5
    gy = np.exp(-((ys[None, :] - cy[:, None]) ** 2) / (2 * sig[:, None] ** 2))
    gx = np.exp(-((ys[None, :] - cx[:, None]) ** 2) / (2 * sig[:, None] ** 2))
    m = gy[:, :, None] * gx[:, None, :]
    m = m / m.sum((1, 2), keepdims=True) * 0.8 + 0.2 / SIZE**2  # a floor, as softmax shares have
    return m.astype(np.float16)


def _encode_shard(block: np.ndarray, rows_per_shard: int, rows_per_chunk: int) -> bytes:
    """One shard file of ``maps`` as zarr writes it: chunks of ``rows_per_chunk`` maps (the last one
    padded with the fill value 0), each zstd-compressed then followed by its crc32c, then the index."""
    import google_crc32c
    from numcodecs import Zstd

    z = Zstd(level=0)
    per_shard = rows_per_shard // rows_per_chunk
    index = np.full((per_shard, 2), 2**64 - 1, dtype="<u8")
    parts, off = [], 0
    for j, s in enumerate(range(0, len(block), rows_per_chunk)):
        chunk = np.zeros((rows_per_chunk, *block.shape[1:]), dtype="<f2")
        chunk[: len(block[s : s + rows_per_chunk])] = block[s : s + rows_per_chunk]
        b = z.encode(chunk.tobytes())
        b += google_crc32c.value(b).to_bytes(4, "little")  # the store's chunk checksum (zstd, then crc32c)
        index[j] = (off, len(b))
        parts.append(b)
        off += len(b)
    ib = index.tobytes()
    crc = np.asarray([google_crc32c.value(ib)], dtype="<u4").tobytes()
    return b"".join(parts) + ib + crc


def build_store(path: Path, n_maps: int, seed: int = 0) -> dict:
    from stablesemantics.store import StoreLayout, create_store, open_store

    t0 = time.perf_counter()
    cls, map_image, pids, names = _plan(n_maps, seed)
    _, centre_y = _classes()
    n_images = len(pids)
    lemmas = np.asarray(names, dtype=object)[cls].tolist()
    layout = StoreLayout(
        image_size=(8, 8),
        map_size=(SIZE, SIZE),
        batch_size=4096,
        prompt_id=pids.tolist(),
        prompt=[f"prompt {p}" for p in pids],
        caption=[f"prompt {p}" for p in pids],
        seed=(np.arange(n_images) % 4).tolist(),
        noun_chunks=["[]"] * n_images,
        map_image=map_image.tolist(),
        map_chunk=[f"a {x}" for x in lemmas],
        map_lemma=lemmas,
        map_token_indices=["[1]"] * n_maps,
    )
    if path.exists():
        shutil.rmtree(path)
    create_store(path, layout, {"model": "synthetic", "synthetic": {"n_maps": n_maps, "seed": seed}})
    g = open_store(path, "r+")
    g["done"][:] = True
    a = g["maps"]
    S = int(a.shards[0])
    rng = np.random.default_rng(seed + 1)
    sample = {}
    check = set(np.random.default_rng(seed + 2).integers(0, n_maps, 50).tolist())
    for k, s in enumerate(range(0, n_maps, S)):
        e = min(n_maps, s + S)
        block = _maps(cls[s:e], centre_y, rng)
        for r in check:
            if s <= r < e:
                sample[r] = block[r - s]
        f = path / "maps" / a.metadata.encode_chunk_key((k, 0, 0))
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(_encode_shard(block, S, int(a.chunks[0])))
    g = open_store(path)
    for r, m in sample.items():  # read back through zarr itself
        np.testing.assert_array_equal(g["maps"][r], m)
    return {
        "n_maps": n_maps,
        "n_images": n_images,
        "n_prompts": int(pids.max()) + 1,
        "classes": len(names),
        "rows_per_shard": S,
        "rows_per_chunk": int(a.chunks[0]),
        "build_s": round(time.perf_counter() - t0, 1),
        "bytes": sum(p.stat().st_size for p in path.rglob("*") if p.is_file()),
    }


# --------------------------------------------------------------------------- the measurement


def measure(path: Path, scheduler: str | None = None) -> dict:
    """Runs in a fresh process; returns timings, rates and peak RSS (of this process: with a
    scheduler, the workers' memory is their own)."""
    from stablesemantics import analysis, store
    from stablesemantics.store.blocks import _ShardReader

    steps = {}

    def timed(name, fn):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        steps[name] = {"wall_s": round(time.perf_counter() - w0, 2), "cpu_s": round(time.process_time() - c0, 2)}
        return out

    t = timed("table", lambda: store.map_table(path, chunks=False))
    labels = t["lemma"]  # a categorical: its codes, not ten million Python objects
    st, ov = timed("maps", lambda: analysis.map_statistics(path, labels, t["image"].to_numpy(), scheduler=scheduler))
    c, n = timed("cooccurrence", lambda: analysis.cooccurrence_counts(t["prompt_id"].to_numpy(), labels))
    timed("pmi", lambda: analysis.pmi(c, n))
    n_maps = len(t)
    _, centre_y = _classes()
    names, _ = _classes()
    s = st.summary()
    truth = dict(zip(names, centre_y))
    r = float(np.corrcoef(s["cy"].to_numpy(), [truth[k] for k in s.index])[0, 1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    maps = store.open_group(path)["maps"]
    total = sum(v["wall_s"] for v in steps.values())
    return {
        "n_maps": n_maps,
        "steps": steps,
        "total_wall_s": round(total, 2),
        "total_cpu_s": round(sum(v["cpu_s"] for v in steps.values()), 2),
        "maps_per_s_maps_pass": round(n_maps / steps["maps"]["wall_s"]),
        "maps_per_s_maps_pass_cpu": round(n_maps / steps["maps"]["cpu_s"]),
        "maps_per_s_total": round(n_maps / total),
        "peak_rss_mb": round(peak / 2**20, 1),
        "n_maps_in_spatial": int(st.n_maps_read),
        "n_pairs": int(ov.pairs["n"].sum()),
        "recovered_vs_true_mean_y_r": round(r, 5),
        "fast_reader": bool(_ShardReader(maps).fast),
        "rows_per_chunk": int(maps.chunks[0]),
    }


def _run(n_maps: int, scheduler: str | None, store_arg: Path | None, rebuild: bool) -> dict:
    """Build (or reuse) the store of ``n_maps`` and measure it in a fresh process."""
    store = store_arg or Path(str(DEFAULT_STORE).format(n=n_maps))
    built = None
    meta = store / "zarr.json"
    if (
        rebuild
        or not meta.exists()
        or json.loads(meta.read_text())["attributes"].get("synthetic", {}).get("n_maps") != n_maps
    ):
        print(f"building {store} ...", flush=True)
        built = build_store(store, n_maps)
        print(json.dumps(built), flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cmd = [sys.executable, __file__, "--measure", str(store)] + (["--scheduler", scheduler] if scheduler else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["scheduler"] = scheduler or "in process"
    res["load_avg_1min_at_start"] = round(load, 2)
    res["store"] = built or {"n_maps": n_maps, "reused": True}
    print(json.dumps(res), flush=True)
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-maps", type=int, nargs="+", default=[1_000_000], help="one run per size")
    ap.add_argument(
        "--scheduler", nargs="+", default=["none"], help="per size, one run each: none (in process) or local"
    )
    ap.add_argument("--store", type=Path, default=None, help="where the synthetic store lives (one size only)")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: the child process
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, None if args.scheduler[0] == "none" else args.scheduler[0])))
        return {}
    if args.store is not None and len(args.n_maps) > 1:
        ap.error("--store names the store of one size")
    schedulers = [None if s == "none" else s for s in args.scheduler]
    # --rebuild builds each size's store once, before its first run
    runs = [_run(n, sch, args.store, args.rebuild and i == 0) for n in args.n_maps for i, sch in enumerate(schedulers)]
    limit_s, limit_mb = 300, 2048
    for r in runs:  # the targets, per 1M maps: 5 minutes and 2 GB
        r["met"] = bool(
            (r["total_wall_s"] - r["steps"]["table"]["wall_s"]) * 1e6 / r["n_maps"] <= limit_s
            and r["peak_rss_mb"] <= limit_mb
        )
    result = {
        "benchmark": "analysis_scale",
        "runs": runs,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "command": "python benchmarks/analysis_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "goal_maps_per_s": 100_000,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "analysis_scale.json").write_text(json.dumps(result, indent=1) + "\n")
    md = [
        "# Analysis at scale: spatial priors + co-occurrence",
        "",
        f"Synthetic stores of {SIZE}x{SIZE} float16 maps in the library's layout (zstd + crc32c chunks "
        f"of {runs[0]['rows_per_chunk']} maps, sharded); each measured in a fresh process on "
        f"{os.cpu_count()} CPUs. The map pass is one read of every map computing the spatial priors per "
        "class and the overlaps of the chunk pairs of every image (and their chance pairs).",
        "",
        "| maps | where | map table s | map pass: wall s | CPU s (this process) | maps/s (wall) "
        "| CPU µs per map | co-occurrence + PMI s | peak MB (this process) | load at start |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        s = r["steps"]
        md.append(
            f"| {r['n_maps']:,} | {r['scheduler']} | {s['table']['wall_s']} | {s['maps']['wall_s']} | "
            f"{s['maps']['cpu_s']} | {r['maps_per_s_maps_pass']:,} | {1e6 * s['maps']['cpu_s'] / r['n_maps']:.1f} | "
            f"{s['cooccurrence']['wall_s'] + s['pmi']['wall_s']:.2f} | {r['peak_rss_mb']} | "
            f"{r['load_avg_1min_at_start']} |"
        )
    md += [
        "",
        "Goal: 100,000 maps/s on 2 cores, at most 2 GB resident. With a scheduler (`local`: a dask "
        "`LocalCluster` of this machine's cores) the CPU time and memory of the workers are not in this "
        "process's columns; the wall time is the whole pass, scheduling included. Recovered vs true mean "
        "vertical position per class: r = "
        + ", ".join(str(r["recovered_vs_true_mean_y_r"]) for r in runs)
        + "; fast shard reader: "
        + ", ".join(str(r["fast_reader"]) for r in runs)
        + ".",
        "",
        f"Command: `{result['command'].strip()}`",
    ]
    (args.out / "analysis_scale.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return result


if __name__ == "__main__":
    main()
