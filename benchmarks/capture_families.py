"""Benchmark: what capturing attention maps costs in every model family (SD 1.x, SD 2.x, SDXL, SD3, Flux).

For each family and size (``benchmarks/_families/shapes.py``: the tiny test denoiser; the real
architecture at a 64x64 latent on the CPU; the real size on a GPU) one denoiser call (one sampling
step, latents only: no text encoder, no VAE) is timed plain and under the family's capture
(``CrossAttentionCapture`` for UNets, ``JointAttentionCapture`` for SD3 and Flux: the exact
text-key probabilities from the fused kernel's log-sum-exp), the maps read out included. The two
modes alternate within each repeat (repeat ``r`` starts with mode ``r mod 2``); the overhead is
the median of the per-repeat ratios ours / plain, and also the ratio of the medians. On the CPU
the process CPU time is reported beside the wall clock (steadier on a shared machine); torch runs
``--threads`` threads. Outputs with and without capture are compared (max |difference|).

DAAM does not run on a bare denoiser (it hooks the pipeline); its comparison for SD 1.x is in
``benchmarks/results/capture.md``.

Writes ``benchmarks/results/capture_families.json`` and ``.md`` (``capture_families_cuda.*`` with
``--device cuda``). Run::

    python benchmarks/capture_families.py                      # tiny + cpu sizes, every family
    python benchmarks/capture_families.py --sizes tiny --repeats 3   # a quick check
    python benchmarks/capture_families.py --device cuda        # real sizes on a GPU (goal <= 1.05)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _families.shapes import FAMILIES, Shape, build, step_inputs  # noqa: E402

from stablesemantics.capture import CrossAttentionCapture, JointAttentionCapture  # noqa: E402
from stablesemantics.paths import REPO_ROOT  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results"
GOAL = {"cpu": 1.10, "cuda": 1.05}


def _capture(shape: Shape) -> Any:
    if shape.family in ("sd3", "flux"):
        return JointAttentionCapture(shape.denoiser)
    return CrossAttentionCapture(shape.denoiser)


def _clock(device: torch.device) -> tuple[float, float]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


@torch.no_grad()
def _call(shape: Shape, inputs: dict, mode: str, device: torch.device) -> tuple[float, float, torch.Tensor]:
    w0, c0 = _clock(device)
    if mode == "plain":
        out = shape.denoiser(**inputs)[0]
    else:
        with _capture(shape) as cap:
            out = shape.denoiser(**inputs)[0]
            maps = cap.maps
        assert torch.isfinite(maps).all() and maps.shape[1] >= shape.text
    w1, c1 = _clock(device)
    return w1 - w0, c1 - c0, out.float().cpu()


def bench(shape: Shape, repeats: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Times of ``repeats`` interleaved plain/capture calls after one warm-up call of each."""
    shape.denoiser.to(device, dtype)
    inputs = step_inputs(shape, device, dtype)
    outs = {m: _call(shape, inputs, m, device)[2] for m in ("plain", "ours")}  # warm-up, outputs
    times: dict[str, dict[str, list[float]]] = {c: {"plain": [], "ours": []} for c in ("wall", "cpu")}
    for r in range(repeats):
        for mode in ("plain", "ours") if r % 2 == 0 else ("ours", "plain"):
            wall, cpu, _ = _call(shape, inputs, mode, device)
            times["wall"][mode].append(wall)
            times["cpu"][mode].append(cpu)
    row: dict[str, Any] = {
        "family": shape.family,
        "size": shape.size,
        "parameters_M": round(shape.parameters / 1e6, 1),
        "latent": shape.latent,
        "text_tokens": shape.text,
        "batch": shape.batch,
        "repeats": repeats,
        "max_abs_output_difference": float((outs["plain"] - outs["ours"]).abs().max()),
        "times": times,
    }
    for clock, t in times.items():
        plain, ours = statistics.median(t["plain"]), statistics.median(t["ours"])
        row[f"{clock}_plain_s"] = plain
        row[f"{clock}_ratio_of_medians"] = ours / plain
        row[f"{clock}_median_paired_ratio"] = statistics.median(o / p for o, p in zip(t["ours"], t["plain"]))
        row[f"{clock}_noise"] = (max(t["plain"]) - min(t["plain"])) / plain
    shape.denoiser.to("cpu")
    return row


def markdown(report: dict[str, Any]) -> str:
    goal = GOAL[report["device"]]
    lines = [
        "# Attention capture in every model family: time with capture / plain time\n",
        f"Command: `{report['command']}`, {report['created']}, {report['seconds']:.0f} s; {report['machine']}, "
        f"torch threads {report['threads']}, {report['dtype']}.\n",
        f"One denoiser call (one step, latents only) plain and under capture, {report['device']}; goal <= {goal} "
        "(book/architecture.md). *paired* = median over repeats of ours / plain of the same repeat; "
        "*medians* = median ours / median plain; *noise* = (max - min) / median of the plain times: "
        "a ratio within 1 ± noise is not told apart from 1.\n",
        "| family | size | params (M) | latent | text tokens | batch | plain (s) | paired | medians | noise "
        "| cpu paired | max abs diff | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["rows"]:
        met = "yes" if r["wall_median_paired_ratio"] <= goal or r["cpu_median_paired_ratio"] <= goal else "no"
        lines.append(
            f"| {r['family']} | {r['size']} | {r['parameters_M']} | {r['latent']}x{r['latent']} | {r['text_tokens']} "
            f"| {r['batch']} | {r['wall_plain_s']:.3f} | {r['wall_median_paired_ratio']:.3f} "
            f"| {r['wall_ratio_of_medians']:.3f} | {r['wall_noise']:.1%} | {r['cpu_median_paired_ratio']:.3f} "
            f"| {r['max_abs_output_difference']:.1e} | {met} |"
        )
    lines.append(
        "\nSizes: *tiny* = the test pipelines' denoisers; *cpu* = the real architecture at a 64x64 latent "
        "(a 512x512 image), Flux with 2 double- and 4 single-stream blocks of its real width; *real* = the "
        "real size (GPU). Random weights: the maps mean nothing, the cost is what is measured."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument(
        "--sizes", nargs="*", default=None, help="tiny, cpu, real (default: tiny cpu on the CPU, real on CUDA)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="default: 9 tiny, 3 cpu, 20 real")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    sizes = args.sizes or (["real"] if device.type == "cuda" else ["tiny", "cpu"])
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.set_num_threads(args.threads)
    start = time.time()
    rows = []
    for size in sizes:
        for family in args.families:
            repeats = args.repeats or {"tiny": 9, "cpu": 3, "real": 20}[size]
            row = bench(build(family, size), repeats, device, dtype)
            print(
                f"{family} {size}: paired {row['wall_median_paired_ratio']:.3f} (cpu {row['cpu_median_paired_ratio']:.3f})",
                flush=True,
            )
            rows.append(row)
    report = {
        "command": "python benchmarks/capture_families.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": time.time() - start,
        "device": device.type,
        "dtype": str(dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "machine": torch.cuda.get_device_name()
        if device.type == "cuda"
        else (platform.processor() or platform.machine()),
        "rows": rows,
    }
    name = "capture_families" + ("_cuda" if device.type == "cuda" else "")
    if args.sizes and set(args.sizes) == {"tiny"} and args.repeats and args.repeats < 5:
        name += "_quick"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=1))
    (RESULTS / f"{name}.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
