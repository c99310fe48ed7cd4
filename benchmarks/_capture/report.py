"""The report: machine facts, the goals table, the markdown page and the strict JSON file."""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import torch
import transformers

from _capture.common import FLAT_TOL_FRAC, FLAT_TOL_MB, GOAL_DAAM_FASTER, log
from _capture.daam_compat import daam_version


def machine_info(threads: int) -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "daam": daam_version(),
        "torch_threads_cpu": threads,
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "nice": os.nice(0) if hasattr(os, "nice") else None,
        "cuda": torch.cuda.is_available(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_gb"] = int(f.readline().split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    return info


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1%}"


def _x(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _yn(b: bool | None) -> str:
    return "n/a" if b is None else ("yes" if b else "**no**")


def goals_table(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the headline table (also stored in the JSON)."""
    rows = []
    for s in data["setups"]:
        name, gpu = s["setup"]["name"], s["setup"]["device"] != "cpu"
        clocks = ("wall",) if gpu else ("wall", "cpu")
        goal = s["setup"]["goal_ratio"]
        rows.append(
            {
                "measure": "time with capture / plain time",
                "setup": name,
                "measured": {c: s["ratio"].get("ours", {}).get(c) for c in clocks},
                "goal": f"<= {goal:.2f}",
                "met": {c: s["goal_ratio_met"].get(c) for c in clocks},
            }
        )
        mem = s.get("memory", {}).get("ours")
        if mem:
            rows.append(
                {
                    "measure": f"peak memory of the call, {mem['steps'][1]} vs {mem['steps'][0]} steps (ours)",
                    "setup": name,
                    "measured": {"memory": mem, "plain": s["memory"].get("plain")},
                    "goal": f"flat: growth <= plain's growth + max({FLAT_TOL_MB:g} MB, {FLAT_TOL_FRAC:.0%} of the peak)",
                    "met": {"memory": mem["flat"]},
                }
            )
        if s.get("daam_error"):
            rows.append(
                {
                    "measure": "N x faster than DAAM (DAAM overhead / ours)",
                    "setup": name,
                    "measured": {"error": s["daam_error"]},
                    "goal": f">= {GOAL_DAAM_FASTER:g}x",
                    "met": {c: None for c in clocks},
                }
            )
        else:
            f = s["faster_than_daam"]
            rows.append(
                {
                    "measure": "N x faster than DAAM (DAAM overhead / ours)",
                    "setup": name,
                    "measured": {c: f[c] for c in clocks},
                    "goal": f">= {GOAL_DAAM_FASTER:g}x",
                    "met": {
                        c: (
                            None
                            if f[c]["verdict"].startswith(("inconclusive", "not"))
                            else bool(f[c]["value"] is not None and f[c]["value"] >= GOAL_DAAM_FASTER)
                        )
                        for c in clocks
                    },
                }
            )
    return rows


def _measured_str(row: dict[str, Any]) -> str:
    m = row["measured"]
    if "error" in m:
        return f"DAAM did not run: {m['error']}"
    if "memory" in m:
        mem = m["memory"]
        s = (
            f"{mem['peak_mb'][0]:.1f} MB -> {mem['peak_mb'][1]:.1f} MB ({mem['growth_mb']:+.1f} MB"
            + (f", x{mem['ratio']:.2f}" if mem["ratio"] else "")
            + ")"
        )
        plain = m.get("plain")
        if plain:
            s += f"; plain: {plain['peak_mb'][0]:.1f} MB -> {plain['peak_mb'][1]:.1f} MB ({plain['growth_mb']:+.1f} MB)"
        if "growth_if_per_step_maps_kept_mb" in mem:
            s += f"; keeping per-step layer maps would add ~{mem['growth_if_per_step_maps_kept_mb']:.0f} MB"
        return s
    parts = []
    for clock, v in m.items():
        if isinstance(v, dict):
            parts.append(f"{clock}: {v['verdict']}")
        else:
            parts.append(f"{clock}: {_x(v)}")
    return "; ".join(parts)


def render_markdown(data: dict[str, Any]) -> str:
    mi = data["machine"]
    lines = [
        "# Cross-attention capture: overhead, memory, DAAM",
        "",
        f"Command: `{data['command']}` ({data['mode']} mode), {data['started']}, {data['elapsed_s']:.0f} s.",
        "",
        "## Goals",
        "",
        "| measure | setup | measured | goal | met |",
        "|---|---|---|---|---|",
    ]
    for row in data["goals"]:
        met = (
            ", ".join(f"{c}: {_yn(v)}" for c, v in row["met"].items())
            if len(row["met"]) > 1
            else _yn(next(iter(row["met"].values())))
        )
        lines.append(f"| {row['measure']} | {row['setup']} | {_measured_str(row)} | {row['goal']} | {met} |")
    lines += [
        "",
        'Overhead = (median time with the tool - median plain time) / median plain time; "N x faster" = '
        "DAAM's overhead / ours (book/architecture.md, Performance targets). *wall* is the wall clock; "
        "*cpu* the process CPU time, which on a shared machine is the steadier measure of the work done (torch runs "
        f"{mi['torch_threads_cpu']} thread(s) on the CPU). *noise* = (max - min) / median of the plain times; an "
        "overhead below it is not told apart from zero. *paired* = median over repeats of (mode / plain of the "
        "same repeat) - 1, a second estimate (the modes of a repeat run back to back); *DAAM / ours* = ratio of "
        "the median times, the direct comparison of the two tools.",
        "",
        "## Times",
        "",
        "| setup | steps | repeats | clock | plain (s) | ours (s) | DAAM (s) | ours overhead | DAAM overhead | noise "
        "| paired: ours / DAAM | DAAM / ours |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in data["setups"]:
        st = s["setup"]
        for clock in s["noise"]:
            med = s["median"]
            lines.append(
                f"| {st['name']} | {st['steps']} | {st['repeats']} | {clock} | "
                f"{med['plain'][clock]:.2f} | {med.get('ours', {}).get(clock, float('nan')):.2f} | "
                + (f"{med['daam'][clock]:.2f}" if "daam" in med else "n/a")
                + f" | {_pct(s['overhead'].get('ours', {}).get(clock))} | "
                f"{_pct(s['overhead'].get('daam', {}).get(clock))} | "
                + ("n/a" if s["noise"][clock] is None else f"{s['noise'][clock]:.1%}")
                + " | "
                + f"{_pct(s.get('paired_overhead', {}).get('ours', {}).get(clock))} / "
                + f"{_pct(s.get('paired_overhead', {}).get('daam', {}).get(clock))} | "
                + f"{_x(s.get('daam_over_ours', {}).get(clock))} |"
            )
    lines += ["", "Setups:", ""]
    for s in data["setups"]:
        st = s["setup"]
        lines.append(
            f"- **{st['name']}**: {st['description']}; {s['unet_params_m']:.0f}M UNet parameters; prompt "
            f'"{s["prompt"]}", guidance {s["guidance_scale"]}, seed {s["seed"]}. Max |output - plain|: '
            + ", ".join(f"{k} {v:.2g}" for k, v in s["output_max_abs_diff_vs_plain"].items())
            + ("" if s["output_finite"] else " (the random-weight output is not finite!)")
            + "."
        )
    lines += ["", "## Maps: ours vs DAAM for the same token", ""]
    any_maps = False
    for s in data["setups"]:
        if "maps" not in s:
            continue
        if not any_maps:
            lines += [
                "| setup | token | ours | layers | DAAM map | compared at | Pearson r | Pearson r, both shrunk to | "
                "DAAM mean / ours mean |",
                "|---|---|---|---|---|---|---:|---:|---:|",
            ]
            any_maps = True
        for key, label in (("ours_all_layers", "all cross-attn layers"), ("ours_daam_layers", "DAAM's layers")):
            c = s["maps"][key]
            n_layers = (s["ours_info"] if key == "ours_all_layers" else s["matched_info"]).get("n_layers")
            lines.append(
                f'| {s["setup"]["name"]} | "{s["word"]}" (position {s["token_index"]}) | {label} | {n_layers} | '
                f"{'x'.join(map(str, c['daam_shape']))} | {'x'.join(map(str, c['compared_at']))} | "
                f"{c['pearson']:.4f} | {c['pearson_coarse']:.4f} at {'x'.join(map(str, c['coarse_size']))} | "
                f"{_x(c['daam_over_ours_mean'])} |"
            )
    if any_maps:
        lines += [
            "",
            "The maps come from random weights, so they show no objects: r measures whether the two "
            "tools compute the same attention statistic, not segmentation quality. DAAM's map is a sum over "
            "steps, ours a mean (hence the mean ratio ~ steps). 'DAAM's layers' = our capture restricted to "
            "the layers DAAM keeps (down and up blocks; levels whose DAAM factor is 8 or not a power of two "
            "dropped): there the remaining difference is resampling (DAAM: bicubic to its fixed 64x64/96x96 "
            "+ clamp; ours: antialiased bilinear to the latent size), which matters less once both are "
            "shrunk (second r). 'All cross-attn layers' (our default) also has the mid block, which DAAM "
            "leaves out; its coarse 8x8 (SD) map weighs more once the maps are shrunk.",
        ]
    else:
        lines.append(
            "DAAM did not produce maps: "
            + "; ".join(f"{s['setup']['name']}: {s.get('daam_error')}" for s in data["setups"])
        )
    lines += ["", "## Memory", ""]
    mem_rows = [(s["setup"]["name"], r) for s in data["setups"] for r in s.get("memory_rows", [])]
    if mem_rows:
        lines += ["| setup | mode | steps | peak over before the call (MB) | method |", "|---|---|---:|---:|---|"]
        for name, r in mem_rows:
            if "error" in r:
                lines.append(f"| {name} | {r['mode']} | {r['steps']} | error | {r['error'][-200:]} |")
            else:
                lines.append(
                    f"| {name} | {r['mode']} | {r['steps']} | {r['peak_over_before_mb']:.1f} | {r['method']} |"
                )
    lines += ["", "## DAAM", ""]
    lines.append(
        f"- version {mi.get('daam')}; "
        + (f"import error: {data['daam']['error']}" if data["daam"]["error"] else "imported and run unmodified.")
    )
    for shim in data["daam"]["shims"]:
        lines.append(f"- shim: {shim}")
    for note in data["daam"]["notes"]:
        lines.append(f"- {note}")
    if data.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in data["notes"]]
    lines += ["", "## Machine", ""]
    for k, v in mi.items():
        lines.append(f"- {k}: {v}")
    return "\n".join(lines) + "\n"


def write_results(data: dict[str, Any], out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(strict_jsonable(data), indent=2, allow_nan=False) + "\n")
    md_path.write_text(render_markdown(data))
    log(render_markdown(data))
    log(f"wrote {json_path} and {md_path}")


def strict_jsonable(obj: Any) -> Any:
    """Strict JSON: tuples -> lists, numpy scalars -> Python, inf/nan -> "inf"/"nan" strings."""
    if isinstance(obj, dict):
        return {str(k): strict_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj
