"""Peak memory of one call: a fresh subprocess per (mode, steps) on the CPU, allocator stats on the GPU."""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from _capture.calls import run_once, token_index
from _capture.common import MB, PROMPT, WORD, log
from _capture.daam_compat import import_daam
from _capture.pipelines import Setup, build_pipeline

# The entry script: it runs a memory child when given ``--_memory-child``.
ENTRY = Path(__file__).resolve().parents[1] / "capture.py"


def _proc_status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def memory_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh process: peak RSS of one call in one mode (see the module docstring)."""
    torch.set_num_threads(spec["threads"])
    setup = Setup(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in spec["setup"].items()})
    trace = import_daam()[0] if spec["mode"] == "daam" else None
    pipe = build_pipeline(setup.builder, setup.width_div, setup.device, setup.torch_dtype)
    idx = token_index(pipe.tokenizer, PROMPT, WORD)
    run_once(pipe, setup, spec["mode"], 2, idx, trace)  # warm-up: lazy allocations, kernel caches
    gc.collect()
    rss_before = _proc_status_kb("VmRSS")
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:  # Linux >= 4.0: "5" resets the peak RSS (VmHWM) to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        method = "peak RSS (VmHWM, reset via /proc/self/clear_refs) during the call - RSS before it"
    except OSError:
        method = "high-water RSS (VmHWM, incl. warm-up: clear_refs unavailable) - RSS before the call"
    res = run_once(pipe, setup, spec["mode"], spec["steps"], idx, trace)
    hwm = _proc_status_kb("VmHWM")
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mode": spec["mode"],
        "steps": spec["steps"],
        "method": method,
        "rss_before_mb": rss_before / 1024 if rss_before else None,
        "peak_rss_mb": hwm / 1024 if hwm else None,
        "peak_over_before_mb": (hwm - rss_before) / 1024 if hwm and rss_before else None,
        "ru_maxrss_before_mb": maxrss_before / 1024,
        "ru_maxrss_after_mb": maxrss_after / 1024,
        "wall_s": res["wall"],
        "cpu_s": res["cpu"],
        **{k: res[k] for k in ("n_layers", "map_shape", "state_bytes") if k in res},
    }


def memory_cpu(setup: Setup, threads: int, daam_ok: bool) -> list[dict[str, Any]]:
    """One fresh subprocess per (steps, mode), all started at once (a peak RSS does not depend on
    how fast a process runs, and the timings are over by now)."""
    specs = [
        {"setup": asdict(setup), "mode": mode, "steps": steps, "threads": threads}
        for steps in setup.memory_steps
        for mode in setup.memory_modes
        if mode != "daam" or daam_ok
    ]
    # glibc otherwise keeps freed blocks below a dynamic threshold (up to 32 MB) in its arenas, so
    # the RSS would follow glibc's caching rather than the live tensors.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(ENTRY), "--_memory-child", json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for spec in specs
    ]
    rows = []
    for spec, proc in zip(specs, procs):
        stdout, stderr = proc.communicate()
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            rows.append(
                {
                    "mode": spec["mode"],
                    "steps": spec["steps"],
                    "error": f"child exited {proc.returncode}: {stderr.strip()[-800:]}",
                }
            )
        else:
            rows.append(json.loads(lines[-1]))
        log(f"  memory {setup.name} {spec['mode']:5s} {spec['steps']:3d} steps: {_fmt_mem(rows[-1])}")
    return rows


def memory_cuda(pipe: Any, setup: Setup, idx: int, trace: Any) -> list[dict[str, Any]]:
    rows = []
    for steps in setup.memory_steps:
        for mode in setup.memory_modes:
            if mode == "daam" and trace is None:
                continue
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            res = run_once(pipe, setup, mode, steps, idx, trace)
            peak = torch.cuda.max_memory_allocated()
            rows.append(
                {
                    "mode": mode,
                    "steps": steps,
                    "method": "torch.cuda.max_memory_allocated during the call - memory_allocated before it",
                    "allocated_before_mb": before / MB,
                    "peak_mb": peak / MB,
                    "peak_over_before_mb": (peak - before) / MB,
                    "wall_s": res["wall"],
                    **{k: res[k] for k in ("n_layers", "map_shape", "state_bytes") if k in res},
                }
            )
            log(f"  memory {setup.name} {mode:5s} {steps:3d} steps: {_fmt_mem(rows[-1])}")
    return rows


def _fmt_mem(row: dict[str, Any]) -> str:
    if "error" in row:
        return "ERROR " + row["error"][-200:]
    return f"peak over before {row['peak_over_before_mb']:.1f} MB"
