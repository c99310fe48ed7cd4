"""One setup measured: build, warm up, the timed repeats in rotating order, maps, memory."""

from __future__ import annotations

import gc
import time
from dataclasses import asdict
from typing import Any

import torch

from _capture.calls import run_once, token_index
from _capture.common import GUIDANCE, PROMPT, SEED, WORD, log
from _capture.daam_compat import daam_layer_config
from _capture.memory import memory_cpu, memory_cuda
from _capture.pipelines import Setup, build_pipeline
from _capture.stats import apply_summary, compare_maps, summarize_memory


def bench_setup(setup: Setup, threads: int, trace: Any, daam_error: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "setup": asdict(setup),
        "prompt": PROMPT,
        "word": WORD,
        "seed": SEED,
        "guidance_scale": GUIDANCE,
    }
    t0 = time.perf_counter()
    pipe = build_pipeline(setup.builder, setup.width_div, setup.device, setup.torch_dtype)
    result["build_s"] = time.perf_counter() - t0
    idx = token_index(pipe.tokenizer, PROMPT, WORD)
    result["token_index"] = idx
    result["latent"] = [setup.height // pipe.vae_scale_factor, setup.width // pipe.vae_scale_factor]
    result["unet_params_m"] = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    log(f"[{setup.name}] built in {result['build_s']:.0f}s ({result['unet_params_m']:.0f}M UNet parameters)")

    daam_err = daam_error
    if trace is not None:
        from daam.utils import compute_token_merge_indices  # optional dependency, present when trace is

        merge, _ = compute_token_merge_indices(pipe.tokenizer, PROMPT, WORD)
        result["daam_token_indices"] = merge
        if merge != [idx]:
            result["token_mismatch"] = f"DAAM merges tokens {merge} for {WORD!r}, ours uses [{idx}]"

    # Warm-up, untimed: ours restricted to DAAM's layer set (down + up blocks, no mid block); its
    # map is the like-for-like comparison with DAAM's.
    matched_cfg, matched_levels = daam_layer_config(pipe, tuple(result["latent"]))
    result["daam_layer_selection"] = {"config": asdict(matched_cfg), **matched_levels}
    try:
        warm = run_once(pipe, setup, "ours", setup.steps, idx, config=matched_cfg)
    except RuntimeError as err:  # no layer of this UNet is on a level DAAM keeps at this size
        result["daam_layer_selection"]["error"] = str(err)
        warm = run_once(pipe, setup, "ours", setup.steps, idx)
    result["warmup_s"] = warm["wall"]
    log(f"[{setup.name}] warm-up {warm['wall']:.1f}s wall, {warm['cpu']:.1f}s CPU")

    modes = ["plain", "ours"] + (["daam"] if trace is not None else [])
    times: dict[str, dict[str, list[float]]] = {m: {"wall": [], "cpu": [], "position": []} for m in modes}
    last: dict[str, dict[str, Any]] = {}
    for r in range(setup.repeats):
        k = r % len(modes)
        order = modes[k:] + modes[:k]
        for pos, mode in enumerate(order):
            if mode not in modes:  # DAAM failed earlier in this repeat
                continue
            try:
                res = run_once(pipe, setup, mode, setup.steps, idx, trace)
            except Exception as err:  # noqa: BLE001 -- DAAM failing is a result, not a crash
                if mode != "daam":
                    raise
                daam_err = f"DAAM failed during generation: {type(err).__name__}: {err}"
                log(f"[{setup.name}] {daam_err}")
                times.pop("daam", None)
                modes.remove("daam")
                continue
            times[mode]["wall"].append(res["wall"])
            times[mode]["cpu"].append(res["cpu"])
            times[mode]["position"].append(pos)
            last[mode] = res
            log(f"[{setup.name}] repeat {r} {mode:5s} {res['wall']:8.2f}s wall {res['cpu']:8.2f}s CPU")
    result["daam_error"] = daam_err
    result["times"] = times
    apply_summary(result)

    for mode in ("ours", "daam"):
        if mode in last:
            result[f"{mode}_info"] = {k: v for k, v in last[mode].items() if k not in ("wall", "cpu", "output", "map")}
    result["matched_info"] = {k: v for k, v in warm.items() if k not in ("wall", "cpu", "output", "map")}

    # Same inputs, so the outputs must agree up to the rounding of explicit softmax vs SDPA.
    ref = last["plain"]["output"]
    result["output_max_abs_diff_vs_plain"] = {
        "ours": float((last["ours"]["output"] - ref).abs().max()),
        "ours_daam_layers": float((warm["output"] - ref).abs().max()),
        **({"daam": float((last["daam"]["output"] - ref).abs().max())} if "daam" in last else {}),
    }
    result["output_finite"] = bool(torch.isfinite(ref).all())
    if "daam" in last:
        result["maps"] = {
            "ours_all_layers": compare_maps(last["ours"]["map"], last["daam"]["map"]),
            "ours_daam_layers": compare_maps(warm["map"], last["daam"]["map"]),
        }

    if setup.memory_steps:
        if setup.device == "cpu":
            rows = memory_cpu(setup, threads, trace is not None)
        else:
            rows = memory_cuda(pipe, setup, idx, trace)
        result["memory_rows"] = rows
        result["memory"] = summarize_memory(rows, setup)
    del pipe
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result
