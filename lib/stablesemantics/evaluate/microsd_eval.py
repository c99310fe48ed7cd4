"""Evaluate MicroSD against MicroWorld's ground truth (``stablesemantics eval``).

a) prompt fidelity: the reference segmenter looks for the prompted classes (recall) and
   their colours in images generated from 1–2-object captions;
b) attention localisation with exact truth: rendered scenes are noised to an intermediate
   timestep and denoised with their captions while maps are captured; each object
   phrase's map vs the object's mask (mIoU at the best global threshold), next to the
   baselines (uniform map, centre prior, the same architecture with random weights), by
   timestep (strength) and by layer resolution;
c) on generated images: chunk maps vs the reference segmenter's masks;
d) speed: 64×64 images, 25 steps, batch 16, on this machine's CPU threads (median of 3 runs).

:func:`evaluate_microsd` writes ``microsd_eval.json`` and ``.md`` (``microsd_eval_quick.*``
with ``quick``) to ``benchmarks/results``; the scores and the table are in
:mod:`stablesemantics.evaluate.microsd_eval_scores`. Run ``stablesemantics eval [--quick]``
(or ``python benchmarks/microsd_eval.py``, the same command).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextModel

from stablesemantics import world
from stablesemantics.capture import CaptureConfig, chunk_maps, resize_maps, run_with_capture, seeded_generators
from stablesemantics.evaluate.localisation import rendered_scene_maps
from stablesemantics.evaluate.metrics import best_threshold_miou, centre_prior, grid_ceiling_maps
from stablesemantics.evaluate.microsd_eval_scores import fidelity, generated_map_scores, markdown, own_vs_other_mass
from stablesemantics.evaluate.segmenter import load_segmenter, predict_classes
from stablesemantics.images import images_to_tensor, images_to_uint8, tensor_to_images
from stablesemantics.models import load_pipeline
from stablesemantics.paths import REPO_ROOT
from stablesemantics.prompts import token_indices_for_spans

RESULTS = REPO_ROOT / "benchmarks" / "results"


@dataclass
class MicroSDEvalConfig:
    """What ``stablesemantics eval`` measures, and where it writes.

    Attributes:
        model: The model to evaluate: 'microsd', a pipeline directory or a hub id.
        quick: Few scenes, for a smoke check (results in microsd_eval_quick.json / .md).
        seed: Held-out scene seed (training uses others).
        n_scenes: Scenes for b) and prompts for a) and c).
        parts: Which of a, b, c, d to run (results merge into the JSON).
        results_dir: Folder of microsd_eval.json and .md.
    """

    model: str = "microsd"
    quick: bool = False
    seed: int = 10_000
    n_scenes: int = 160
    parts: str = "abcd"
    results_dir: str = str(RESULTS)


def evaluate_microsd(cfg: MicroSDEvalConfig) -> dict[str, Any]:
    """Run the parts ``cfg.parts`` and merge their results into ``<results_dir>/microsd_eval.json``.

    The markdown table (``.md``) is written, and printed, once every part has results. Returns
    the merged results.
    """
    unknown = sorted(set(cfg.parts) - set("abcd"))
    if unknown:
        raise ValueError(f"parts must be letters of 'abcd', got {cfg.parts!r}")
    pipe = load_pipeline(cfg.model, device="cpu")
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    name = "microsd_eval_quick" if cfg.quick else "microsd_eval"
    results = Path(cfg.results_dir)
    previous = results / f"{name}.json"
    out: dict = json.loads(previous.read_text()) if previous.exists() else {}
    out |= {
        "model": cfg.model,
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }

    if "b" in cfg.parts:
        localisation(pipe, size, cfg, out)
    if "a" in cfg.parts or "c" in cfg.parts:
        generated(pipe, size, cfg, out)
    if "d" in cfg.parts:
        out["d_speed_images_per_s"] = speed(pipe, size)
        out["d_speed_images_per_s_no_guidance"] = speed(pipe, size, guidance_scale=1.0)
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(out, indent=1))
    if all(k in out for k in ("a_fidelity", "b_localisation", "c_generated_maps_vs_segmenter", "d_speed_images_per_s")):
        table = markdown(out)
        (results / f"{name}.md").write_text(table)
        print(table)
    return out


def random_weights_copy(pipe: Any, seed: int = 0) -> Any:
    """The same pipeline with the UNet and text encoder re-initialised at random (VAE kept)."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(pipe.unet.config)
    text_encoder = CLIPTextModel(pipe.text_encoder.config)
    parts = {**pipe.components, "unet": unet, "text_encoder": text_encoder, "requires_safety_checker": False}
    rand = StableDiffusionPipeline(**parts)
    rand.set_progress_bar_config(disable=True)
    return rand


def localisation(pipe: Any, size: int, cfg: MicroSDEvalConfig, out: dict) -> None:
    """b) maps on noised-and-denoised rendered scenes vs exact masks, with baselines."""
    n_loc = 16 if cfg.quick else cfg.n_scenes
    scenes = world.render_scenes(n_loc, seed=cfg.seed, config=world.WorldConfig(size=size))
    rand = random_weights_copy(pipe)
    by_strength = {}
    for strength in (0.15, 0.3, 0.5, 0.7):
        om = rendered_scene_maps(pipe, scenes, strength=strength, seed=cfg.seed)
        rm = rendered_scene_maps(rand, scenes, strength=strength, seed=cfg.seed)
        by_strength[strength] = {
            "microsd": best_threshold_miou(om.maps, om.masks)[0],
            "random_weights": best_threshold_miou(rm.maps, rm.masks)[0],
        }
    main_strength = max(by_strength, key=lambda s: by_strength[s]["microsd"])
    om = rendered_scene_maps(pipe, scenes, strength=main_strength, seed=cfg.seed)
    uniform = float(np.mean(om.masks.reshape(len(om.masks), -1).mean(1)))  # IoU of the whole image with the mask
    centre = np.broadcast_to(centre_prior(om.masks.shape[1:]), om.masks.shape)
    by_resolution = {}
    for res in (1, 2, 4):
        rm = rendered_scene_maps(
            pipe, scenes, strength=main_strength, seed=cfg.seed, capture=CaptureConfig(resolutions=(res,))
        )
        by_resolution[res] = best_threshold_miou(rm.maps, rm.masks)[0]
    miou, thr = best_threshold_miou(om.maps, om.masks)
    latent = (pipe.unet.config.sample_size,) * 2
    ceiling = best_threshold_miou(grid_ceiling_maps(om.masks, latent), om.masks)[0]
    baselines = {
        "uniform": uniform,
        "centre_prior": best_threshold_miou(centre, om.masks)[0],
        "random_weights": by_strength[main_strength]["random_weights"],
    }
    out["b_localisation"] = {
        "objects": len(om.masks),
        "strength": main_strength,
        "miou": miou,
        "threshold": thr,
        "baselines": baselines,
        "margin_over_best_baseline": miou - max(baselines.values()),
        "by_strength": by_strength,
        "by_resolution": by_resolution,
        "latent_grid_ceiling": ceiling,
        "latent_grid": f"{latent[0]}×{latent[1]}",
    }
    print(json.dumps(out["b_localisation"], indent=1), flush=True)


def generate_images(
    pipe: Any, scenes: Sequence[world.Scene], first_seed: int, guidance_scale: float, *, capture: bool = False
) -> tuple[np.ndarray, torch.Tensor | None]:
    """Images for the scenes' captions, 25 steps, one seed per prompt (``first_seed + i``), as uint8.

    With ``capture``, also the token maps of every image (:func:`~stablesemantics.capture.run_with_capture`);
    without, the plain pipeline call (no capture cost) and ``None``.
    """
    seeds = [first_seed + i for i in range(len(scenes))]
    call = {
        "prompt": [s.caption for s in scenes],
        "num_inference_steps": 25,
        "guidance_scale": guidance_scale,
        "output_type": "np",
    }
    if capture:
        run = run_with_capture(pipe, seeds=seeds, **call)
        return images_to_uint8(run.output.images), run.maps
    return images_to_uint8(pipe(generator=seeded_generators(seeds), **call).images), None


def generated(pipe: Any, size: int, cfg: MicroSDEvalConfig, out: dict) -> None:
    """a) prompt fidelity and c) maps vs the reference segmenter, on generated images."""
    n_gen = 16 if cfg.quick else cfg.n_scenes
    seg = load_segmenter()
    gen_scenes = world.render_scenes(
        n_gen, seed=cfg.seed + 1, config=world.WorldConfig(size=size, min_objects=1, max_objects=2)
    )
    min_pixels = 12
    images, maps, masks, pairs = [], [], [], []
    for start in range(0, n_gen, 16):
        part = gen_scenes[start : start + 16]
        batch, token_maps = generate_images(pipe, part, start, 7.5, capture=True)
        images.append(batch)
        pred = predict_classes(seg, batch)
        for i, scene in enumerate(part):
            spans = token_indices_for_spans(scene.caption, scene.object_spans, pipe.tokenizer)
            found = []
            for k, obj in enumerate(scene.objects):
                mask = pred[i] == world.CLASS_INDEX[obj.cls] + 1
                if spans[k].indices and mask.sum() > 0:  # any pixels; c) also scores only objects a) counts as found
                    m = chunk_maps(token_maps[i], [spans[k].indices]).numpy()
                    maps.append(resize_maps(torch.from_numpy(m), (size, size), antialias=False)[0].numpy())
                    masks.append(mask)
                    if mask.sum() >= min_pixels:
                        found.append((maps[-1], mask))
            if len(found) == 2 and scene.objects[0].cls != scene.objects[1].cls:
                pairs.append(found)
    images = np.concatenate(images)
    predicted = predict_classes(seg, images)
    out["a_fidelity"] = fidelity(images, gen_scenes, predicted, min_pixels)
    real = np.stack([s.image for s in gen_scenes])
    out["a_fidelity"]["reference_on_real_renders"] = fidelity(real, gen_scenes, predict_classes(seg, real), min_pixels)
    trip = vae_round_trip(pipe, real)
    out["a_fidelity"]["reference_on_vae_round_trip"] = fidelity(
        trip, gen_scenes, predict_classes(seg, trip), min_pixels
    )
    out["a_fidelity"]["by_guidance_scale"] = {"7.5": {k: out["a_fidelity"][k] for k in ("recall", "colour_accuracy")}}
    for scale in (3.0, 12.0):  # is the default guidance the limit? the same prompts and seeds, other scales
        other = np.concatenate(
            [generate_images(pipe, gen_scenes[i : i + 16], i, scale)[0] for i in range(0, n_gen, 16)]
        )
        score = fidelity(other, gen_scenes, predict_classes(seg, other), min_pixels)
        out["a_fidelity"]["by_guidance_scale"][str(scale)] = {k: score[k] for k in ("recall", "colour_accuracy")}
    maps, masks = np.stack(maps), np.stack(masks)
    found = masks.reshape(len(masks), -1).sum(1) >= min_pixels
    latent = (pipe.unet.config.sample_size,) * 2
    out["c_generated_maps_vs_segmenter"] = {
        **generated_map_scores(maps, masks, latent),
        "found_objects_only": generated_map_scores(maps[found], masks[found], latent),
        "min_pixels": min_pixels,
        "own_vs_other_object": own_vs_other_mass(pairs),
    }
    print(json.dumps({k: out[k] for k in ("a_fidelity", "c_generated_maps_vs_segmenter")}, indent=1), flush=True)


@torch.no_grad()
def vae_round_trip(pipe: Any, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Images encoded and decoded by the pipeline's autoencoder: the best a generated image can be."""
    out = []
    for i in range(0, len(images), batch):
        x = images_to_tensor(images[i : i + batch])
        out.append(tensor_to_images(pipe.vae.decode(pipe.vae.encode(x).latent_dist.mean).sample))
    return np.concatenate(out)


def speed(pipe: Any, size: int, repeats: int = 3, guidance_scale: float = 7.5) -> float:
    """d) images per second: 25 steps, batch 16; the median of ``repeats`` runs.

    With classifier-free guidance (``guidance_scale`` > 1, the setting a) and c) are measured
    with) every step runs the UNet on a batch of 32; without it, on 16. One run is about five
    seconds, and on a shared machine single runs of the same command were seen to vary by a
    third: the median of several is the figure reported.
    """
    prompts = [s.caption for s in world.render_scenes(16, seed=5, config=world.WorldConfig(size=size))]
    pipe(prompts[:2], num_inference_steps=2, output_type="np")  # warm-up
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pipe(
            prompts,
            num_inference_steps=25,
            guidance_scale=guidance_scale,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        )
        rates.append(16 / (time.perf_counter() - t0))
    print(f"d) images/s per run (guidance {guidance_scale}): {[round(r, 2) for r in rates]}", flush=True)
    return float(np.median(rates))
