"""Benchmark: what capturing cross-attention maps costs, against plain generation and against DAAM.

One run, one pipeline per setup, the same prompt, seed and number of steps for every mode:

* ``plain``: the pipeline as it is;
* ``ours``:  ``with capture_cross_attention(pipe) as cap`` (default ``CaptureConfig``: every
  cross-attention layer), then the map of one word (``chunk_maps``);
* ``daam``:  ``with daam.trace(pipe) as tc`` (DAAM 0.2.0), then
  ``tc.compute_global_heat_map().compute_word_heat_map(word)``.

The time of a mode includes getting the word's map out (both tools' post-processing). Modes are
run in rotating order (repeat ``r`` starts with mode ``r mod 3``) and the median of the repeats is
used. Overhead = (median time of the mode - median plain time) / median plain time, as in the
architecture page (``book/architecture.md``, "Performance targets"); "N x faster than DAAM" = DAAM's
overhead / our overhead.

On the CPU both the wall clock and the process CPU time are recorded, with torch limited to
``--threads`` threads (1 by default): on a shared machine the wall clock also measures the other
jobs, while the CPU time of a one-thread process is the work it did.

Setups (``--setups``):

* ``tiny-cpu``: ``load_pipeline("tiny-random")`` (float32, CPU) at 96x96 (a 48x48 latent). DAAM
  derives the latent size from ``unet.config.sample_size * vae_scale_factor`` (here 32 * 2 = 64,
  which it maps to an assumed 96x96 latent) instead of from the input, and keeps a layer only if
  ``int(sqrt(96*96 / n_queries))`` is a power of two other than 8; at 96x96 the tiny UNet's two
  levels (48x48 and 24x24) give 2 and 4, so DAAM keeps all its layers. (At 64x64, for example, the
  factors are 3 and 6 and DAAM finds no map at all: "No heat maps found".) Our capture works at
  any size.
* ``tiny-sdxl-cpu``: ``load_pipeline("tiny-random-sdxl")`` (two CLIP text encoders, pooled
  embeddings and time ids as added conditioning), same size and steps: DAAM 0.2.0 traces SDXL
  pipelines too, so this is the SDXL row of the DAAM comparison (no memory measurement).
* ``sd15-cpu``: an SD-1.5-shaped UNet with random weights, built from its config (no download):
  block_out_channels (320, 640, 1280, 1280), cross_attention_dim 768, attention_head_dim 8,
  sample_size 64; a 1-layer CLIP text encoder of width 768, the real CLIP tokenizer
  (``load_clip_tokenizer``), a small 4-level VAE (scale factor 8, never run: ``output_type="latent"``).
  512x512 (64x64 latent), 1 step, float32, CPU.
* ``sd15-cuda``: the same at float16 on the GPU, 20 steps (selected automatically when
  ``torch.cuda.is_available()``).

``--quick`` is a smoke check: fewer steps and repeats, and an SD-1.5-*shaped* UNet with a tenth
of the channels at 128x128 instead of the real width at 512x512.

Memory (goal: flat in the number of steps): on the CPU, every (mode, steps) setting runs in a
fresh subprocess (with ``MALLOC_MMAP_THRESHOLD_=65536``, so that freed tensors go back to the
system instead of staying in glibc's arenas): build the pipeline, one 2-step warm-up call in the same mode, reset the
kernel's peak-RSS mark (``/proc/self/clear_refs``), run the measured call, read ``VmHWM``. The
number reported is the peak RSS during the call minus the RSS just before it. On the GPU:
``torch.cuda.max_memory_allocated`` during the call minus ``memory_allocated`` before it.

Maps: our map and DAAM's for the same token of the same prompt/seed (the two tools cannot be
installed at once, so they come from two calls with identical inputs), compared by Pearson
correlation after resizing DAAM's map to ours (bilinear, antialiased). Twice: ours with the default
config (all layers), and ours restricted to DAAM's layer set (``blocks=("down", "up")``).

DAAM compatibility with diffusers 0.42: DAAM 0.2.0 runs unmodified (its processor's
``__call__(attn, hidden_states, encoder_hidden_states, attention_mask)`` still matches what
``Attention.forward`` passes; its pipeline hooks wrap ``check_inputs`` and ``run_safety_checker``,
which still exist). The only shim is cosmetic: the ``FutureWarning`` of the deprecated
``torch.cuda.amp.autocast`` that DAAM calls is silenced (see ``daam_compat.daam_shims``). No file in
site-packages is changed. If DAAM cannot be imported or fails, the error is written into the
results instead of its numbers.

Usage::

    nice -n 10 python benchmarks/capture.py --quick      # smoke check (~2 min of CPU time)
    nice -n 10 python benchmarks/capture.py              # full: tiny + SD-1.5-shaped (+ CUDA if present),
                                                         # ~8 min of CPU time (one thread)
    python benchmarks/capture.py --setups tiny-cpu       # one setup
    python benchmarks/capture.py --render benchmarks/results/capture.json   # re-summarize, no measuring

Writes ``benchmarks/results/capture.json`` and ``capture.md`` (``--out``, ``--name``).

This file is the command line; the benchmark's parts live in ``benchmarks/_capture/`` (a helper
package, not a benchmark of its own): ``pipelines`` (the setups), ``calls`` (one timed call),
``stats``, ``memory``, ``measure`` (one setup), ``daam_compat`` and ``report``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

# Names marked F401 are re-exported: tests/test_benchmarks_capture.py checks the benchmark's arithmetic
# through this module.
from _capture.common import FLAT_TOL_FRAC, FLAT_TOL_MB, GOAL_DAAM_FASTER, GOAL_RATIO_CPU, GOAL_RATIO_GPU
from _capture.daam_compat import DAAM_NOTES, daam_layer_config, daam_shims, import_daam  # noqa: F401
from _capture.measure import bench_setup
from _capture.memory import memory_child
from _capture.pipelines import Setup, make_setups  # noqa: F401
from _capture.report import goals_table, machine_info, strict_jsonable, write_results  # noqa: F401
from _capture.stats import apply_summary, faster_than_daam, paired, summarize_memory, summarize_times  # noqa: F401

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke check: fewer steps/repeats, narrow SD UNet")
    parser.add_argument(
        "--setups",
        default=None,
        help="comma-separated: tiny-cpu, tiny-sdxl-cpu, sd15-cpu, sd15-cuda (default: all available)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default 1)")
    parser.add_argument("--repeats", type=int, default=None, help="override the repeats of every setup")
    parser.add_argument("--no-memory", action="store_true", help="skip the 10-vs-50-steps memory measurement")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder (default benchmarks/results)")
    parser.add_argument("--name", default="capture", help="base name of the .json/.md files (default capture)")
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="JSON",
        help="measure nothing: recompute the summaries of a results JSON from its raw times "
        "and rewrite it and its markdown (to --out/--name)",
    )
    parser.add_argument("--_memory-child", dest="memory_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.render is not None:
        data = json.loads(args.render.read_text())
        for result in data["setups"]:
            apply_summary(result)
        data["goals"] = goals_table(data)
        note = "Summaries recomputed from the stored raw times with --render (no new measurement)."
        if note not in data.setdefault("notes", []):
            data["notes"].append(note)
        write_results(data, args.out, args.name)
        return 0

    if args.memory_child is not None:
        daam_shims()
        print(json.dumps(memory_child(json.loads(args.memory_child))), flush=True)
        return 0

    torch.set_num_threads(args.threads)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_start = time.perf_counter()
    trace, daam_error, shims = import_daam()
    setups = make_setups(args.quick, args.setups.split(",") if args.setups else None)
    if args.repeats is not None:
        setups = [replace(s, repeats=args.repeats) for s in setups]
    if args.no_memory:
        setups = [replace(s, memory_steps=()) for s in setups]

    data: dict[str, Any] = {
        "benchmark": "capture",
        "mode": "quick" if args.quick else "full",
        "command": "python benchmarks/capture.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "started": started,
        "machine": machine_info(args.threads),
        "daam": {"error": daam_error, "shims": shims, "notes": DAAM_NOTES},
        "goals_reference": {
            "ratio_cpu": GOAL_RATIO_CPU,
            "ratio_gpu": GOAL_RATIO_GPU,
            "faster_than_daam": GOAL_DAAM_FASTER,
            "flat_memory": {"tol_mb": FLAT_TOL_MB, "tol_frac": FLAT_TOL_FRAC},
        },
        "setups": [],
        "notes": [],
    }
    if not torch.cuda.is_available():
        data["notes"].append("No GPU on this machine: the fp16 SD-1.5-size measurement (goal <= 1.05) was not run.")
    if any(s.device == "cpu" and s.builder == "sd15" for s in setups):
        data["notes"].append(
            "Peak memory at 10 vs 50 steps is measured on the tiny pipeline on the CPU (50 steps of "
            "an SD-1.5-size UNet on the CPU would take too long), and on the GPU at SD-1.5 size."
        )
    for setup in setups:
        data["setups"].append(bench_setup(setup, args.threads, trace, daam_error))
    data["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    data["elapsed_s"] = time.perf_counter() - t_start
    data["goals"] = goals_table(data)

    write_results(data, args.out, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
