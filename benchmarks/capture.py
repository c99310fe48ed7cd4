"""Benchmark: what capturing cross-attention maps costs, against plain generation and against DAAM.

One run, one pipeline per setup, the same prompt, seed and number of steps for every mode:

* ``plain``: the pipeline as it is;
* ``ours``:  ``with capture_cross_attention(pipe) as cap`` (default ``CaptureConfig``: every
  cross-attention layer), then the map of one word (``chunk_maps``);
* ``daam``:  ``with daam.trace(pipe) as tc`` (DAAM 0.2.0), then
  ``tc.compute_global_heat_map().compute_word_heat_map(word)``.

The time of a mode includes getting the word's map out (both tools' post-processing). Modes are
run in rotating order (repeat ``r`` starts with mode ``r mod 3``) and the median of the repeats is
used. Overhead = (median time of the mode - median plain time) / median plain time, as in
``DESIGN.md`` ("Performance targets"); "N x faster than DAAM" = DAAM's overhead / our overhead.

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
``torch.cuda.amp.autocast`` that DAAM calls is silenced (see ``_daam_shims``). No file in
site-packages is changed. If DAAM cannot be imported or fails, the error is written into the
results instead of its numbers.

Usage::

    nice -n 10 python benchmarks/capture.py --quick      # smoke check (~2 min of CPU time)
    nice -n 10 python benchmarks/capture.py              # full: tiny + SD-1.5-shaped (+ CUDA if present),
                                                         # ~8 min of CPU time (one thread)
    python benchmarks/capture.py --setups tiny-cpu       # one setup
    python benchmarks/capture.py --render benchmarks/results/capture.json   # re-summarize, no measuring

Writes ``benchmarks/results/capture.json`` and ``capture.md`` (``--out``, ``--name``).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stablesemantics.capture import CaptureConfig, capture_cross_attention, chunk_maps, resize_maps

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("plain", "ours", "daam")
PROMPT = "a photo of a red car parked on a city street"
WORD = "car"
SEED = 1234
GUIDANCE = 7.5
MB = 1024.0 * 1024.0

# Goals from DESIGN.md "Performance targets" and the issue.
GOAL_RATIO_CPU = 1.10  # time with capture / plain time, CPU
GOAL_RATIO_GPU = 1.05  # same on the GPU at SD-1.5 size, fp16
GOAL_DAAM_FASTER = 3.0  # DAAM overhead / our overhead
# "Flat" memory: the peak at 50 steps exceeds the peak at 10 steps by at most this many MB or
# this fraction of the 10-step peak, whichever is larger (allocator noise).
FLAT_TOL_MB = 8.0
FLAT_TOL_FRAC = 0.05


# ----------------------------------------------------------------------------------------------
# DAAM


def _daam_shims() -> list[str]:
    """Make DAAM 0.2.0 quiet on current torch/diffusers; return what was done (for the report).

    DAAM's ``utils.auto_autocast`` calls ``torch.cuda.amp.autocast(...)``, deprecated in torch 2.4
    (a FutureWarning on every call; it still works, and it is disabled on CPU). The warning is
    filtered; DAAM's code is not changed.
    """
    warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.autocast.*", category=FutureWarning)
    return ["silenced torch's FutureWarning for DAAM's deprecated torch.cuda.amp.autocast (behaviour unchanged)"]


def _import_daam() -> tuple[Any, str | None, list[str]]:
    """``(daam.trace or None, error or None, shims applied)``."""
    try:
        shims = _daam_shims()
        import daam  # noqa: F401
        from daam import trace
    except Exception as err:  # noqa: BLE001 -- any failure is reported, not raised
        return None, f"import daam failed: {type(err).__name__}: {err}", []
    return trace, None, shims


def _daam_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("daam")
    except Exception:  # noqa: BLE001
        return None


# ----------------------------------------------------------------------------------------------
# Pipelines


def sd15_components(width_div: int = 1, seed: int = 0) -> dict[str, Any]:
    """Components of an SD-1.5-shaped pipeline with random weights, built from configs (no download).

    UNet: SD-1.5's config (``width_div`` > 1 divides the channels, for smoke runs only). Text
    encoder: one CLIP layer of width 768 (cheap; only its output shape matters to the UNet).
    VAE: 4 small levels, so ``vae_scale_factor`` is 8 as in SD (512x512 -> 64x64 latent).
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from stablesemantics.models import assemble_components

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=tuple(c // width_div for c in (320, 640, 1280, 1280)),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768,
        attention_head_dim=8,  # SD-1.5: 8 heads per layer (diffusers' historical name)
        norm_num_groups=32,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=512,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=1,
            vocab_size=49408,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            projection_dim=768,
        )
    )
    return assemble_components(unet, vae, text_encoder)


def build_pipeline(builder: str, width_div: int, device: str, dtype: torch.dtype) -> Any:
    from diffusers import StableDiffusionPipeline

    from stablesemantics.models import load_pipeline

    if builder == "tiny":
        return load_pipeline("tiny-random", device=device, dtype=dtype)
    if builder == "sd15":
        pipe = StableDiffusionPipeline(**sd15_components(width_div), requires_safety_checker=False)
        pipe = pipe.to(device)
        if dtype != torch.float32:  # the components are built in float32
            pipe = pipe.to(dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    raise ValueError(f"unknown builder {builder!r}")


@dataclass
class Setup:
    name: str
    description: str
    builder: str  # "tiny" | "sd15"
    device: str
    dtype: str  # "float32" | "float16"
    height: int
    width: int
    steps: int
    repeats: int
    output_type: str
    width_div: int = 1
    memory_steps: tuple[int, ...] = ()
    memory_modes: tuple[str, ...] = ("plain", "ours")
    goal_ratio: float = GOAL_RATIO_CPU

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


def make_setups(quick: bool, names: list[str] | None) -> list[Setup]:
    cuda = torch.cuda.is_available()
    tiny = Setup(
        name="tiny-cpu",
        description="tiny random pipeline (stablesemantics 'tiny-random'), 96x96 image, 48x48 latent, float32",
        builder="tiny", device="cpu", dtype="float32", height=96, width=96,
        steps=2 if quick else 5, repeats=3 if quick else 6, output_type="np",
        memory_steps=(3, 6) if quick else (10, 50),
    )
    sd_cpu = Setup(
        name="sd15-cpu",
        description="SD-1.5-shaped UNet, random weights, 512x512 image, 64x64 latent, float32, output_type='latent'",
        builder="sd15", device="cpu", dtype="float32", height=512, width=512,
        steps=1, repeats=3, output_type="latent",
    )
    if quick:
        sd_cpu = replace(
            sd_cpu, name="sd15-cpu-narrow", width_div=10, height=128, width=128,
            description="SD-1.5-shaped UNet with 1/10 of the channels (smoke only), random weights, "
            "128x128 image, 16x16 latent, float32, output_type='latent'",
        )
    sd_cuda = Setup(
        name="sd15-cuda",
        description="SD-1.5-shaped UNet, random weights, 512x512 image, 64x64 latent, float16 on the GPU, "
        "output_type='latent'",
        builder="sd15", device="cuda", dtype="float16", height=512, width=512,
        steps=5 if quick else 20, repeats=3 if quick else 6, output_type="latent",
        memory_steps=(10, 50), memory_modes=("plain", "ours", "daam"), goal_ratio=GOAL_RATIO_GPU,
    )
    setups = {s.name: s for s in (tiny, sd_cpu)}
    if cuda:
        setups[sd_cuda.name] = sd_cuda
    if names is None:
        return list(setups.values())
    aliases = {"sd15-cpu": sd_cpu.name, "sd15-cpu-narrow": sd_cpu.name}
    out = []
    for n in names:
        key = aliases.get(n, n)
        if key not in setups:
            raise SystemExit(f"unknown or unavailable setup {n!r}; available: {', '.join(setups)}")
        out.append(setups[key])
    return out


def daam_layer_config(pipe: Any, latent: tuple[int, int]) -> tuple[CaptureConfig, dict[str, Any]]:
    """Our ``CaptureConfig`` for exactly the layers DAAM 0.2.0 keeps on this pipeline at this latent size.

    DAAM hooks the cross-attention of the down and up blocks (not the mid block) and keeps a layer
    call when ``int(sqrt(latent_hw // n_queries))`` is 1, 2, 4, 16, 32 or 64 (its hook skips 8, its
    ``compute_global_heat_map`` drops what is not a power of two), where ``latent_hw`` is 4096 if
    ``unet.config.sample_size * vae_scale_factor`` is 512 or 1024, else 9216.
    """
    h = pipe.unet.config.sample_size * pipe.vae_scale_factor
    latent_hw = 4096 if h in (512, 1024) else 9216
    keep, levels = [], {}
    hh, ww, factor = latent[0], latent[1], 1
    while True:
        daam_factor = int(math.sqrt(latent_hw // (hh * ww)))
        levels[factor] = {"grid": [hh, ww], "daam_factor": daam_factor,
                          "kept_by_daam": daam_factor in (0, 1, 2, 4, 16, 32, 64)}
        if levels[factor]["kept_by_daam"]:
            keep.append(factor)
        if hh == 1 and ww == 1:
            break
        hh, ww, factor = math.ceil(hh / 2), math.ceil(ww / 2), factor * 2
    info = {"daam_latent_hw": latent_hw, "levels": levels}
    return CaptureConfig(blocks=("down", "up"), resolutions=tuple(keep) or (1,)), info


# ----------------------------------------------------------------------------------------------
# One call


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def token_index(tokenizer: Any, prompt: str, word: str) -> int:
    """Position of ``word`` (one BPE token) in the 77-token sequence (BOS = 0)."""
    tokens = tokenizer.tokenize(prompt.lower())
    target = tokenizer.tokenize(word.lower())
    if len(target) != 1 or target[0] not in tokens:
        raise ValueError(f"{word!r} is not a single token of {prompt!r}: {target} vs {tokens}")
    return tokens.index(target[0]) + 1


def run_once(pipe: Any, setup: Setup, mode: str, steps: int, idx: int, trace: Any = None,
             config: CaptureConfig | None = None) -> dict[str, Any]:
    """One generation in ``mode``; returns times, output and the word's map."""
    kwargs = dict(
        prompt=PROMPT, num_inference_steps=steps, height=setup.height, width=setup.width,
        guidance_scale=GUIDANCE, generator=torch.Generator("cpu").manual_seed(SEED),
        output_type=setup.output_type,
    )
    word_map = None
    extra: dict[str, Any] = {}
    gc.collect()
    _sync(setup.device)
    w0, c0 = time.perf_counter(), time.process_time()
    if mode == "plain":
        out = pipe(**kwargs)
    elif mode == "ours":
        with capture_cross_attention(pipe, config) as cap:
            out = pipe(**kwargs)
        word_map = chunk_maps(cap.maps[0], [[idx]])[0]
        extra = {"n_layers": len(cap.layers), "map_shape": list(cap.maps.shape),
                 "state_bytes": int(cap.maps.numel() * 4), "steps_kept": cap.steps_kept}
    elif mode == "daam":
        with trace(pipe) as tc:
            out = pipe(**kwargs)
            heat_map = tc.compute_global_heat_map()
            word_map = heat_map.compute_word_heat_map(WORD).heatmap
            extra = {"n_layers": len(tc.layer_names), "factors": sorted(tc.all_heat_maps.factors()),
                     "n_raw_maps": len(tc.all_heat_maps.ids_to_heatmaps),
                     "map_shape": list(heat_map.heat_maps.shape)}
    else:
        raise ValueError(mode)
    _sync(setup.device)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    images = out.images
    images = torch.from_numpy(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    return {"wall": wall, "cpu": cpu, "output": images.detach().float().cpu(),
            "map": None if word_map is None else word_map.detach().float().cpu(), **extra}


# ----------------------------------------------------------------------------------------------
# Statistics


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
        return {"value": (daam / ours) if ours > 0 else None,
                "verdict": f"inconclusive: DAAM's overhead ({daam:+.1%}) is within the noise ({noise:.1%})"}
    if ours <= 0:
        return {"value": math.inf, "verdict": f"ours {ours:+.1%} (no measurable overhead) vs DAAM {daam:+.1%}"}
    value = daam / ours
    verdict = f"{value:.1f}x"
    if ours <= noise:
        verdict += f" (ours {ours:+.1%} is within the noise {noise:.1%}: a lower bound is {daam / noise:.1f}x)"
    return {"value": value, "verdict": verdict}


def summarize_times(times: dict[str, dict[str, list[float]]], goal_ratio: float) -> dict[str, Any]:
    summary: dict[str, Any] = {"median": {}, "overhead": {}, "ratio": {}, "noise": {}, "faster_than_daam": {},
                               "goal_ratio_met": {}}
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
                    [a / b - 1 for a, b in zip(t, p)])
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
        "ours_shape": list(ours.shape), "daam_shape": list(daam.shape), "compared_at": list(size),
        "pearson": pearson(ours, daam_r),
        "coarse_size": list(coarse),
        "pearson_coarse": pearson(resize_maps(ours[None], coarse), resize_maps(daam[None], coarse)),
        "ours_mean": float(ours.mean()), "daam_mean": float(daam_r.mean()),
        "daam_over_ours_mean": float(daam_r.mean() / ours.mean()) if float(ours.mean()) else None,
        "finite": bool(torch.isfinite(ours).all() and torch.isfinite(daam).all()),
    }


# ----------------------------------------------------------------------------------------------
# Memory


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
    import resource

    torch.set_num_threads(spec["threads"])
    setup = Setup(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in spec["setup"].items()})
    trace = _import_daam()[0] if spec["mode"] == "daam" else None
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
        "mode": spec["mode"], "steps": spec["steps"], "method": method,
        "rss_before_mb": rss_before / 1024 if rss_before else None,
        "peak_rss_mb": hwm / 1024 if hwm else None,
        "peak_over_before_mb": (hwm - rss_before) / 1024 if hwm and rss_before else None,
        "ru_maxrss_before_mb": maxrss_before / 1024, "ru_maxrss_after_mb": maxrss_after / 1024,
        "wall_s": res["wall"], "cpu_s": res["cpu"],
        **{k: res[k] for k in ("n_layers", "map_shape", "state_bytes") if k in res},
    }


def memory_cpu(setup: Setup, threads: int, daam_ok: bool) -> list[dict[str, Any]]:
    """One fresh subprocess per (steps, mode), all started at once (a peak RSS does not depend on
    how fast a process runs, and the timings are over by now)."""
    specs = [{"setup": asdict(setup), "mode": mode, "steps": steps, "threads": threads}
             for steps in setup.memory_steps for mode in setup.memory_modes if mode != "daam" or daam_ok]
    # glibc otherwise keeps freed blocks below a dynamic threshold (up to 32 MB) in its arenas, so
    # the RSS would follow glibc's caching rather than the live tensors.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    procs = [
        subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--_memory-child", json.dumps(spec)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for spec in specs
    ]
    rows = []
    for spec, proc in zip(specs, procs):
        stdout, stderr = proc.communicate()
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            rows.append({"mode": spec["mode"], "steps": spec["steps"],
                         "error": f"child exited {proc.returncode}: {stderr.strip()[-800:]}"})
        else:
            rows.append(json.loads(lines[-1]))
        _log(f"  memory {setup.name} {spec['mode']:5s} {spec['steps']:3d} steps: {_fmt_mem(rows[-1])}")
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
            rows.append({
                "mode": mode, "steps": steps,
                "method": "torch.cuda.max_memory_allocated during the call - memory_allocated before it",
                "allocated_before_mb": before / MB, "peak_mb": peak / MB, "peak_over_before_mb": (peak - before) / MB,
                "wall_s": res["wall"], **{k: res[k] for k in ("n_layers", "map_shape", "state_bytes") if k in res},
            })
            _log(f"  memory {setup.name} {mode:5s} {steps:3d} steps: {_fmt_mem(rows[-1])}")
    return rows


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


def _fmt_mem(row: dict[str, Any]) -> str:
    if "error" in row:
        return "ERROR " + row["error"][-200:]
    return f"peak over before {row['peak_over_before_mb']:.1f} MB"


# ----------------------------------------------------------------------------------------------
# One setup


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench_setup(setup: Setup, threads: int, trace: Any, daam_error: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {"setup": asdict(setup), "prompt": PROMPT, "word": WORD, "seed": SEED,
                              "guidance_scale": GUIDANCE}
    t0 = time.perf_counter()
    pipe = build_pipeline(setup.builder, setup.width_div, setup.device, setup.torch_dtype)
    result["build_s"] = time.perf_counter() - t0
    idx = token_index(pipe.tokenizer, PROMPT, WORD)
    result["token_index"] = idx
    result["latent"] = [setup.height // pipe.vae_scale_factor, setup.width // pipe.vae_scale_factor]
    result["unet_params_m"] = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    _log(f"[{setup.name}] built in {result['build_s']:.0f}s ({result['unet_params_m']:.0f}M UNet parameters)")

    daam_err = daam_error
    if trace is not None:
        from daam.utils import compute_token_merge_indices

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
    _log(f"[{setup.name}] warm-up {warm['wall']:.1f}s wall, {warm['cpu']:.1f}s CPU")

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
                _log(f"[{setup.name}] {daam_err}")
                times.pop("daam", None)
                modes.remove("daam")
                continue
            times[mode]["wall"].append(res["wall"])
            times[mode]["cpu"].append(res["cpu"])
            times[mode]["position"].append(pos)
            last[mode] = res
            _log(f"[{setup.name}] repeat {r} {mode:5s} {res['wall']:8.2f}s wall {res['cpu']:8.2f}s CPU")
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


# ----------------------------------------------------------------------------------------------
# Report


def machine_info(threads: int) -> dict[str, Any]:
    import diffusers
    import transformers

    info = {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
        "daam": _daam_version(), "torch_threads_cpu": threads,
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
        rows.append({
            "measure": "time with capture / plain time", "setup": name,
            "measured": {c: s["ratio"].get("ours", {}).get(c) for c in clocks},
            "goal": f"<= {goal:.2f}", "met": {c: s["goal_ratio_met"].get(c) for c in clocks},
        })
        mem = s.get("memory", {}).get("ours")
        if mem:
            rows.append({
                "measure": f"peak memory of the call, {mem['steps'][1]} vs {mem['steps'][0]} steps (ours)",
                "setup": name, "measured": {"memory": mem, "plain": s["memory"].get("plain")},
                "goal": f"flat: growth <= plain's growth + max({FLAT_TOL_MB:g} MB, {FLAT_TOL_FRAC:.0%} of the peak)",
                "met": {"memory": mem["flat"]},
            })
        if s.get("daam_error"):
            rows.append({"measure": "N x faster than DAAM (DAAM overhead / ours)", "setup": name,
                         "measured": {"error": s["daam_error"]}, "goal": f">= {GOAL_DAAM_FASTER:g}x",
                         "met": {c: None for c in clocks}})
        else:
            f = s["faster_than_daam"]
            rows.append({
                "measure": "N x faster than DAAM (DAAM overhead / ours)", "setup": name,
                "measured": {c: f[c] for c in clocks}, "goal": f">= {GOAL_DAAM_FASTER:g}x",
                "met": {c: (None if f[c]["verdict"].startswith(("inconclusive", "not")) else
                            bool(f[c]["value"] is not None and f[c]["value"] >= GOAL_DAAM_FASTER)) for c in clocks},
            })
    return rows


def _measured_str(row: dict[str, Any]) -> str:
    m = row["measured"]
    if "error" in m:
        return f"DAAM did not run: {m['error']}"
    if "memory" in m:
        mem = m["memory"]
        s = (f"{mem['peak_mb'][0]:.1f} MB -> {mem['peak_mb'][1]:.1f} MB ({mem['growth_mb']:+.1f} MB"
             + (f", x{mem['ratio']:.2f}" if mem["ratio"] else "") + ")")
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
        met = ", ".join(f"{c}: {_yn(v)}" for c, v in row["met"].items()) if len(row["met"]) > 1 else _yn(
            next(iter(row["met"].values())))
        lines.append(f"| {row['measure']} | {row['setup']} | {_measured_str(row)} | {row['goal']} | {met} |")
    lines += [
        "",
        "Overhead = (median time with the tool - median plain time) / median plain time; \"N x faster\" = "
        "DAAM's overhead / ours (DESIGN.md). *wall* is the wall clock; *cpu* the process CPU time, which on "
        "a shared machine is the steadier measure of the work done (torch runs "
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
                + ("n/a" if s["noise"][clock] is None else f"{s['noise'][clock]:.1%}") + " | "
                + f"{_pct(s.get('paired_overhead', {}).get('ours', {}).get(clock))} / "
                + f"{_pct(s.get('paired_overhead', {}).get('daam', {}).get(clock))} | "
                + f"{_x(s.get('daam_over_ours', {}).get(clock))} |"
            )
    lines += ["", "Setups:", ""]
    for s in data["setups"]:
        st = s["setup"]
        lines.append(
            f"- **{st['name']}**: {st['description']}; {s['unet_params_m']:.0f}M UNet parameters; prompt "
            f"\"{s['prompt']}\", guidance {s['guidance_scale']}, seed {s['seed']}. Max |output - plain|: "
            + ", ".join(f"{k} {v:.2g}" for k, v in s["output_max_abs_diff_vs_plain"].items())
            + ("" if s["output_finite"] else " (the random-weight output is not finite!)") + "."
        )
    lines += ["", "## Maps: ours vs DAAM for the same token", ""]
    any_maps = False
    for s in data["setups"]:
        if "maps" not in s:
            continue
        if not any_maps:
            lines += ["| setup | token | ours | layers | DAAM map | compared at | Pearson r | Pearson r, both shrunk to | "
                      "DAAM mean / ours mean |",
                      "|---|---|---|---|---|---|---:|---:|---:|"]
            any_maps = True
        for key, label in (("ours_all_layers", "all cross-attn layers"), ("ours_daam_layers", "DAAM's layers")):
            c = s["maps"][key]
            n_layers = (s["ours_info"] if key == "ours_all_layers" else s["matched_info"]).get("n_layers")
            lines.append(
                f"| {s['setup']['name']} | \"{s['word']}\" (position {s['token_index']}) | {label} | {n_layers} | "
                f"{'x'.join(map(str, c['daam_shape']))} | {'x'.join(map(str, c['compared_at']))} | "
                f"{c['pearson']:.4f} | {c['pearson_coarse']:.4f} at {'x'.join(map(str, c['coarse_size']))} | "
                f"{_x(c['daam_over_ours_mean'])} |"
            )
    if any_maps:
        lines += ["", "The maps come from random weights, so they show no objects: r measures whether the two "
                  "tools compute the same attention statistic, not segmentation quality. DAAM's map is a sum over "
                  "steps, ours a mean (hence the mean ratio ~ steps). 'DAAM's layers' = our capture restricted to "
                  "the layers DAAM keeps (down and up blocks; levels whose DAAM factor is 8 or not a power of two "
                  "dropped): there the remaining difference is resampling (DAAM: bicubic to its fixed 64x64/96x96 "
                  "+ clamp; ours: antialiased bilinear to the latent size), which matters less once both are "
                  "shrunk (second r). 'All cross-attn layers' (our default) also has the mid block, which DAAM "
                  "leaves out; its coarse 8x8 (SD) map weighs more once the maps are shrunk."]
    else:
        lines.append("DAAM did not produce maps: " + "; ".join(
            f"{s['setup']['name']}: {s.get('daam_error')}" for s in data["setups"]))
    lines += ["", "## Memory", ""]
    mem_rows = [(s["setup"]["name"], r) for s in data["setups"] for r in s.get("memory_rows", [])]
    if mem_rows:
        lines += ["| setup | mode | steps | peak over before the call (MB) | method |", "|---|---|---:|---:|---|"]
        for name, r in mem_rows:
            if "error" in r:
                lines.append(f"| {name} | {r['mode']} | {r['steps']} | error | {r['error'][-200:]} |")
            else:
                lines.append(f"| {name} | {r['mode']} | {r['steps']} | {r['peak_over_before_mb']:.1f} | {r['method']} |")
    lines += ["", "## DAAM", ""]
    lines.append(f"- version {mi.get('daam')}; " + (f"import error: {data['daam']['error']}" if data["daam"]["error"]
                                                   else "imported and run unmodified."))
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


DAAM_NOTES = [
    "What DAAM 0.2.0 computes (read from its source): it replaces the processor of `attn2` "
    "(cross-attention) in the down and up blocks only (the mid block only with save/load_heads); "
    "self-attention keeps diffusers' processor. Per layer and step it takes softmax(q k^T * scale) "
    "explicitly, drops the first (unconditional) half of the batch, unravels the maps token by token "
    "in a Python loop and adds every head's (77, h, w) map to a per-(factor, layer, head) running sum "
    "over the steps (so its memory is flat in steps, too). `compute_global_heat_map` resizes every "
    "(factor, layer, head) sum bicubically to 64x64 (96x96 unless sample_size*vae_scale_factor is "
    "512 or 1024), clamps at 0 and averages them; maps at factor 8 are skipped.",
    "So DAAM keeps only the conditional CFG half, like ours; its maps are sums over steps (ours are "
    "means), which only rescales them (`DAAM mean / ours mean` ~ number of steps).",
    "DAAM's assumptions about the latent: it does not read the latent size from the input; "
    "`factor = int(sqrt(latent_hw / n_queries))` with latent_hw fixed by the UNet config, and "
    "`_unravel_attn` assumes square maps (h = w = sqrt(n)). Non-square images fail, and sizes whose "
    "factors are not powers of two give no maps ('No heat maps found').",
    "DAAM and ours cannot be installed on the same pipeline at once (both replace the cross-attention "
    "processors), so its map and ours come from two calls with the same prompt, seed and steps; the "
    "outputs of the calls agree (max |output - plain| above).",
    "`trace(pipe)` creates ~/.cache/daam/heads (DAAM's head cache directory) as a side effect.",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke check: fewer steps/repeats, narrow SD UNet")
    parser.add_argument("--setups", default=None,
                        help="comma-separated: tiny-cpu, sd15-cpu, sd15-cuda (default: all available)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default 1)")
    parser.add_argument("--repeats", type=int, default=None, help="override the repeats of every setup")
    parser.add_argument("--no-memory", action="store_true", help="skip the 10-vs-50-steps memory measurement")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder (default benchmarks/results)")
    parser.add_argument("--name", default="capture", help="base name of the .json/.md files (default capture)")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="measure nothing: recompute the summaries of a results JSON from its raw times "
                        "and rewrite it and its markdown (to --out/--name)")
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
        _daam_shims()
        print(json.dumps(memory_child(json.loads(args.memory_child))), flush=True)
        return 0

    torch.set_num_threads(args.threads)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_start = time.perf_counter()
    trace, daam_error, shims = _import_daam()
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
        "goals_reference": {"ratio_cpu": GOAL_RATIO_CPU, "ratio_gpu": GOAL_RATIO_GPU,
                            "faster_than_daam": GOAL_DAAM_FASTER,
                            "flat_memory": {"tol_mb": FLAT_TOL_MB, "tol_frac": FLAT_TOL_FRAC}},
        "setups": [],
        "notes": [],
    }
    if not torch.cuda.is_available():
        data["notes"].append("No GPU on this machine: the fp16 SD-1.5-size measurement (goal <= 1.05) was not run.")
    if any(s.device == "cpu" and s.builder == "sd15" for s in setups):
        data["notes"].append("Peak memory at 10 vs 50 steps is measured on the tiny pipeline on the CPU (50 steps of "
                             "an SD-1.5-size UNet on the CPU would take too long), and on the GPU at SD-1.5 size.")
    for setup in setups:
        data["setups"].append(bench_setup(setup, args.threads, trace, daam_error))
    data["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    data["elapsed_s"] = time.perf_counter() - t_start
    data["goals"] = goals_table(data)

    write_results(data, args.out, args.name)
    return 0


def write_results(data: dict[str, Any], out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n")
    md_path.write_text(render_markdown(data))
    _log(render_markdown(data))
    _log(f"wrote {json_path} and {md_path}")


def _jsonable(obj: Any) -> Any:
    """Strict JSON: tuples -> lists, numpy scalars -> Python, inf/nan -> "inf"/"nan" strings."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


if __name__ == "__main__":
    sys.exit(main())
