"""The statistics of the benchmark: overheads, the DAAM verdict, map agreement, memory flatness."""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from _capture.common import FLAT_TOL_FRAC, FLAT_TOL_MB, MB
from _capture.pipelines import Setup
from stablesemantics.capture import resize_maps


def _overhead(t: float | None, plain: float | None) -> float | None:
    if t is None or plain is None or plain <= 0:
        return None
    return (t - plain) / plain


def faster_than_daam(ours: float | None, daam: float | None, noise: float | None) -> dict[str, Any]:
    """DAAM overhead / our overhead, with what can honestly be said when overheads are tiny.

    ``noise`` is the relative spread of the plain times: overheads below it cannot be told apart
    from zero.
    """
    if ours is None or daam is None:
        return {"value": None, "verdict": "not measured"}
    noise = noise or 0.0
    if daam <= noise:
        return {
            "value": (daam / ours) if ours > 0 else None,
            "verdict": f"inconclusive: DAAM's overhead ({daam:+.1%}) is within the noise ({noise:.1%})",
        }
    if ours <= 0:
        return {"value": math.inf, "verdict": f"ours {ours:+.1%} (no measurable overhead) vs DAAM {daam:+.1%}"}
    value = daam / ours
    verdict = f"{value:.1f}x"
    if ours <= noise:
        verdict += f" (ours {ours:+.1%} is within the noise {noise:.1%}: a lower bound is {daam / noise:.1f}x)"
    return {"value": value, "verdict": verdict}


def summarize_times(times: dict[str, dict[str, list[float]]], goal_ratio: float) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "median": {},
        "overhead": {},
        "ratio": {},
        "noise": {},
        "faster_than_daam": {},
        "goal_ratio_met": {},
    }
    for clock in ("wall", "cpu"):
        med = {m: statistics.median(v[clock]) for m, v in times.items() if v[clock]}
        plain = med.get("plain")
        p = times.get("plain", {}).get(clock) or []
        noise = (max(p) - min(p)) / statistics.median(p) if len(p) > 1 else None
        summary["noise"][clock] = noise
        for m, t in med.items():
            summary["median"].setdefault(m, {})[clock] = t
            if m != "plain":
                summary["overhead"].setdefault(m, {})[clock] = _overhead(t, plain)
                summary["ratio"].setdefault(m, {})[clock] = t / plain if plain else None
        ours = summary["overhead"].get("ours", {}).get(clock)
        daam = summary["overhead"].get("daam", {}).get(clock)
        summary["faster_than_daam"][clock] = faster_than_daam(ours, daam, noise)
        r = summary["ratio"].get("ours", {}).get(clock)
        summary["goal_ratio_met"][clock] = None if r is None else bool(r <= goal_ratio)
    return summary


def paired(times: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Secondary estimates, less sensitive to slow drifts of the machine's load than medians of
    the modes taken separately: the median over repeats of (mode / plain of the same repeat) - 1
    (the modes of one repeat run back to back), and DAAM's median time / ours."""
    out: dict[str, Any] = {"paired_overhead": {}, "daam_over_ours": {}}
    plain = times.get("plain", {})
    for clock in ("wall", "cpu"):
        p = plain.get(clock) or []
        for mode in ("ours", "daam"):
            t = times.get(mode, {}).get(clock) or []
            if p and len(t) == len(p):
                out["paired_overhead"].setdefault(mode, {})[clock] = statistics.median(
                    [a / b - 1 for a, b in zip(t, p)]
                )
        o, d = times.get("ours", {}).get(clock), times.get("daam", {}).get(clock)
        if o and d:
            out["daam_over_ours"][clock] = statistics.median(d) / statistics.median(o)
    return out


def apply_summary(result: dict[str, Any]) -> None:
    """Put the summaries of ``result["times"]`` into ``result`` (wall clock only off the CPU)."""
    setup = result["setup"]
    result.update(summarize_times(result["times"], setup["goal_ratio"]))
    result.update(paired(result["times"]))
    if setup["device"] != "cpu":  # CPU time of a process that waits on a GPU says nothing
        for key in ("overhead", "ratio", "paired_overhead"):
            for m in result[key].values():
                m.pop("cpu", None)
        result["median"] = {m: {"wall": v["wall"]} for m, v in result["median"].items()}
        for key in ("faster_than_daam", "goal_ratio_met", "noise", "daam_over_ours"):
            result[key].pop("cpu", None)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.flatten().double()
    b = b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 0 else float("nan")


def compare_maps(ours: torch.Tensor, daam: torch.Tensor) -> dict[str, Any]:
    """Pearson r of the two maps of one token at our map size (DAAM's is resized to it), and after
    shrinking both to a quarter of that size (where the tools' different resampling -- DAAM: bicubic
    to 64x64 or 96x96 and a clamp; ours: antialiased bilinear to the latent size -- matters less)."""
    size = tuple(ours.shape[-2:])
    daam_r = resize_maps(daam[None], size)[0]
    coarse = (max(4, size[0] // 4), max(4, size[1] // 4))
    return {
        "ours_shape": list(ours.shape),
        "daam_shape": list(daam.shape),
        "compared_at": list(size),
        "pearson": pearson(ours, daam_r),
        "coarse_size": list(coarse),
        "pearson_coarse": pearson(resize_maps(ours[None], coarse), resize_maps(daam[None], coarse)),
        "ours_mean": float(ours.mean()),
        "daam_mean": float(daam_r.mean()),
        "daam_over_ours_mean": float(daam_r.mean() / ours.mean()) if float(ours.mean()) else None,
        "finite": bool(torch.isfinite(ours).all() and torch.isfinite(daam).all()),
    }


def summarize_memory(rows: list[dict[str, Any]], setup: Setup) -> dict[str, Any]:
    """Per mode: peak at the fewest vs the most steps, growth, and whether it is flat.

    A mode is flat when its growth exceeds the plain pipeline's (if positive) by at most
    ``max(FLAT_TOL_MB, FLAT_TOL_FRAC * its peak at the fewest steps)``.
    """
    out: dict[str, Any] = {}
    if len(setup.memory_steps) < 2:
        return out
    lo, hi = min(setup.memory_steps), max(setup.memory_steps)
    for mode in setup.memory_modes:
        a = next((r for r in rows if r["mode"] == mode and r["steps"] == lo and "error" not in r), None)
        b = next((r for r in rows if r["mode"] == mode and r["steps"] == hi and "error" not in r), None)
        if a is None or b is None or a.get("peak_over_before_mb") is None or b.get("peak_over_before_mb") is None:
            continue
        pa, pb = a["peak_over_before_mb"], b["peak_over_before_mb"]
        entry = {"steps": [lo, hi], "peak_mb": [pa, pb], "growth_mb": pb - pa, "ratio": pb / pa if pa > 0 else None}
        if mode == "ours" and "map_shape" in a and "n_layers" in a:
            per_call = math.prod(a["map_shape"]) * 4 / MB  # one layer's maps at the map size
            entry["growth_if_per_step_maps_kept_mb"] = (hi - lo) * a["n_layers"] * per_call
        out[mode] = entry
    plain_growth = max(out.get("plain", {}).get("growth_mb", 0.0), 0.0)
    for mode, entry in out.items():
        tol = max(FLAT_TOL_MB, FLAT_TOL_FRAC * entry["peak_mb"][0])
        allowed = tol + (0.0 if mode == "plain" else plain_growth)
        entry.update({"tolerance_mb": tol, "allowed_growth_mb": allowed, "flat": bool(entry["growth_mb"] <= allowed)})
    return out
