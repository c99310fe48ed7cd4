"""One timed pipeline call in one mode (plain, ours, DAAM), returning its output and the word's map."""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np
import torch

from _capture.common import GUIDANCE, PROMPT, SEED, WORD
from _capture.pipelines import Setup
from stablesemantics.capture import CaptureConfig, capture_cross_attention, chunk_maps


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


def run_once(
    pipe: Any, setup: Setup, mode: str, steps: int, idx: int, trace: Any = None, config: CaptureConfig | None = None
) -> dict[str, Any]:
    """One generation in ``mode``; returns times, output and the word's map."""
    kwargs = dict(
        prompt=PROMPT,
        num_inference_steps=steps,
        height=setup.height,
        width=setup.width,
        guidance_scale=GUIDANCE,
        generator=torch.Generator("cpu").manual_seed(SEED),
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
        extra = {
            "n_layers": len(cap.layers),
            "map_shape": list(cap.maps.shape),
            "state_bytes": int(cap.maps.numel() * 4),
            "steps_kept": cap.steps_kept,
        }
    elif mode == "daam":
        with trace(pipe) as tc:
            out = pipe(**kwargs)
            heat_map = tc.compute_global_heat_map()
            word_map = heat_map.compute_word_heat_map(WORD).heatmap
            extra = {
                "n_layers": len(tc.layer_names),
                "factors": sorted(tc.all_heat_maps.factors()),
                "n_raw_maps": len(tc.all_heat_maps.ids_to_heatmaps),
                "map_shape": list(heat_map.heat_maps.shape),
            }
    else:
        raise ValueError(mode)
    _sync(setup.device)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    images = out.images
    images = torch.from_numpy(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    return {
        "wall": wall,
        "cpu": cpu,
        "output": images.detach().float().cpu(),
        "map": None if word_map is None else word_map.detach().float().cpu(),
        **extra,
    }
