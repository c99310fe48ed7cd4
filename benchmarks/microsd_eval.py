"""Evaluate MicroSD against MicroWorld's ground truth.

a) prompt fidelity: the reference segmenter looks for the prompted classes (recall) and
   their colours in images generated from 1–2-object captions;
b) attention localisation with exact truth: rendered scenes are noised to an intermediate
   timestep and denoised with their captions while maps are captured; each object
   phrase's map vs the object's mask (mIoU at the best global threshold), next to the
   baselines (uniform map, centre prior, the same architecture with random weights), by
   timestep (strength) and by layer resolution;
c) on generated images: chunk maps vs the reference segmenter's masks;
d) speed: 64×64 images, 25 steps, batch 16, on this machine's CPU threads (median of 3 runs).

Writes benchmarks/results/microsd_eval.json and .md. Run:
    python benchmarks/microsd_eval.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from transformers import CLIPTextModel

from stablesemantics import world
from stablesemantics.capture import CaptureConfig, capture_cross_attention, chunk_maps
from stablesemantics.models import load_pipeline
from stablesemantics.prompts import token_indices_for_spans
from stablesemantics.evaluate import best_threshold_miou, centre_prior, grid_ceiling_maps, load_segmenter, predict_classes, rendered_scene_maps, resize_maps
from stablesemantics.images import images_to_tensor, tensor_to_images

RESULTS = Path(__file__).resolve().parent / "results"


def random_weights_copy(pipe, seed: int = 0):
    """The same pipeline with the UNet and text encoder re-initialised at random (VAE kept)."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(pipe.unet.config)
    text_encoder = CLIPTextModel(pipe.text_encoder.config)
    parts = {**pipe.components, "unet": unet, "text_encoder": text_encoder, "requires_safety_checker": False}
    rand = StableDiffusionPipeline(**parts)
    rand.set_progress_bar_config(disable=True)
    return rand


def _shade_table() -> tuple[list[str], np.ndarray]:
    """Every shade a MicroWorld colour is painted in: main, dark (×0.62) and light roles, times brightness."""
    names, rows = [], []
    for name, rgb in world.COLOURS.items():
        for b in (0.88, 1.0, 1.08):
            main = np.clip(np.asarray(rgb, float) * b, 0, 255)
            for shade in (main, main * 0.62, main + 0.45 * (255 - main)):
                names.append(name)
                rows.append(shade)
    return names, np.asarray(rows)


SHADE_NAMES, SHADES = _shade_table()


def object_colour(image: np.ndarray, mask: np.ndarray) -> str | None:
    """The named colour most of the object's pixels are closest to (a shade of it), by majority vote."""
    if not mask.sum():
        return None
    pixels = image[mask].astype(float)
    nearest = np.argmin(((pixels[:, None] - SHADES[None]) ** 2).sum(2), 1)
    votes: dict[str, int] = {}
    for k in nearest:
        votes[SHADE_NAMES[k]] = votes.get(SHADE_NAMES[k], 0) + 1
    return max(votes, key=votes.get)


def fidelity(images, scenes, predicted, min_pixels: int) -> dict:
    """Per-object recall of the prompted class and colour accuracy of recalled objects."""
    found = colour_ok = n = 0
    for image, scene, pred in zip(images, scenes, predicted):
        for obj in scene.objects:
            n += 1
            mask = pred == world.CLASS_INDEX[obj.cls] + 1
            if mask.sum() >= min_pixels:
                found += 1
                colour_ok += object_colour(image, mask) == obj.colour
    return {"objects": n, "recall": found / n, "colour_accuracy": colour_ok / max(found, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="microsd")
    parser.add_argument("--quick", action="store_true", help="few scenes, for a smoke check")
    parser.add_argument("--seed", type=int, default=10_000, help="held-out scene seed (training uses others)")
    parser.add_argument("--n-scenes", type=int, default=160, help="scenes for b) and prompts for a), c)")
    parser.add_argument("--parts", default="abcd", help="which of a, b, c, d to run (results merge into the JSON)")
    args = parser.parse_args()
    pipe = load_pipeline(args.model, device="cpu")
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    name = "microsd_eval_quick" if args.quick else "microsd_eval"
    previous = RESULTS / f"{name}.json"
    out: dict = json.loads(previous.read_text()) if previous.exists() else {}
    out |= {"model": args.model, "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}

    if "b" in args.parts:
        localisation(pipe, size, args, out)
    if "a" in args.parts or "c" in args.parts:
        generated(pipe, size, args, out)
    if "d" in args.parts:
        out["d_speed_images_per_s"] = speed(pipe, size)
        out["d_speed_images_per_s_no_guidance"] = speed(pipe, size, guidance_scale=1.0)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=1))
    if all(k in out for k in ("a_fidelity", "b_localisation", "c_generated_maps_vs_segmenter", "d_speed_images_per_s")):
        table = markdown(out)
        (RESULTS / f"{name}.md").write_text(table)
        print(table)


def localisation(pipe, size: int, args, out: dict) -> None:
    """b) maps on noised-and-denoised rendered scenes vs exact masks, with baselines."""
    n_loc = 16 if args.quick else args.n_scenes
    scenes = world.render_scenes(n_loc, seed=args.seed, config=world.WorldConfig(size=size))
    rand = random_weights_copy(pipe)
    by_strength = {}
    for strength in (0.15, 0.3, 0.5, 0.7):
        om = rendered_scene_maps(pipe, scenes, strength=strength, seed=args.seed)
        rm = rendered_scene_maps(rand, scenes, strength=strength, seed=args.seed)
        by_strength[strength] = {"microsd": best_threshold_miou(om.maps, om.masks)[0], "random_weights": best_threshold_miou(rm.maps, rm.masks)[0]}
    main_strength = max(by_strength, key=lambda s: by_strength[s]["microsd"])
    om = rendered_scene_maps(pipe, scenes, strength=main_strength, seed=args.seed)
    uniform = float(np.mean(om.masks.reshape(len(om.masks), -1).mean(1)))  # IoU of the whole image with the mask
    centre = np.broadcast_to(centre_prior(om.masks.shape[1:]), om.masks.shape)
    by_resolution = {}
    for res in (1, 2, 4):
        rm = rendered_scene_maps(pipe, scenes, strength=main_strength, seed=args.seed, capture=CaptureConfig(resolutions=(res,)))
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



def own_vs_other_mass(pairs: list) -> dict:
    """Does a phrase's map point at its own object or at the other one? For two-object images
    where both objects were found, the share of each map's mass inside its own object's mask
    and inside the other object's, and the mean area of a mask (the share a uniform map gets)."""
    own, other, area = [], [], []
    for (map_a, mask_a), (map_b, mask_b) in pairs:
        for m, mine, theirs in ((map_a, mask_a, mask_b), (map_b, mask_b, mask_a)):
            total = max(float(m.sum()), 1e-12)
            own.append(float((m * mine).sum()) / total)
            other.append(float((m * theirs).sum()) / total)
            area.append(float(mine.mean()))
    if not own:
        return {"maps": 0}
    return {"maps": len(own), "mass_in_own_mask": float(np.mean(own)), "mass_in_other_mask": float(np.mean(other)),
            "own_larger": float(np.mean(np.asarray(own) > np.asarray(other))), "mask_area": float(np.mean(area))}


def generate_images(pipe, scenes, first_seed: int, guidance_scale: float) -> np.ndarray:
    """Images for the scenes' captions, 25 steps, one seed per prompt (``first_seed + i``), as uint8."""
    gens = [torch.Generator().manual_seed(first_seed + i) for i in range(len(scenes))]
    images = pipe([s.caption for s in scenes], num_inference_steps=25, guidance_scale=guidance_scale, generator=gens, output_type="np").images
    return (images * 255).round().astype(np.uint8)


def generated(pipe, size: int, args, out: dict) -> None:
    """a) prompt fidelity and c) maps vs the reference segmenter, on generated images."""
    n_gen = 16 if args.quick else args.n_scenes
    seg = load_segmenter()
    gen_scenes = world.render_scenes(n_gen, seed=args.seed + 1, config=world.WorldConfig(size=size, min_objects=1, max_objects=2))
    min_pixels = 12
    images, maps, masks, pairs = [], [], [], []
    for start in range(0, n_gen, 16):
        part = gen_scenes[start : start + 16]
        with capture_cross_attention(pipe) as cap:
            batch = generate_images(pipe, part, start, 7.5)
        images.append(batch)
        pred = predict_classes(seg, batch)
        for i, scene in enumerate(part):
            spans = token_indices_for_spans(scene.caption, scene.object_spans, pipe.tokenizer)
            found = []
            for k, obj in enumerate(scene.objects):
                mask = pred[i] == world.CLASS_INDEX[obj.cls] + 1
                if spans[k].indices and mask.sum() > 0:  # any pixels; c) also scores only objects a) counts as found
                    m = chunk_maps(cap.maps[i].float(), [spans[k].indices]).numpy()
                    maps.append(resize_maps(m, (size, size))[0])
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
    out["a_fidelity"]["reference_on_vae_round_trip"] = fidelity(trip, gen_scenes, predict_classes(seg, trip), min_pixels)
    out["a_fidelity"]["by_guidance_scale"] = {"7.5": {k: out["a_fidelity"][k] for k in ("recall", "colour_accuracy")}}
    for scale in (3.0, 12.0):  # is the default guidance the limit? the same prompts and seeds, other scales
        other = np.concatenate([generate_images(pipe, gen_scenes[i : i + 16], i, scale) for i in range(0, n_gen, 16)])
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



def generated_map_scores(maps: np.ndarray, masks: np.ndarray, latent: tuple[int, int]) -> dict:
    """c) chunk maps vs segmenter masks at the best global threshold, with baselines and the latent-grid ceiling."""
    centre = np.broadcast_to(centre_prior(masks.shape[1:]), masks.shape)
    return {
        "objects": len(masks),
        "miou": best_threshold_miou(maps, masks)[0],
        "baselines": {"uniform": float(masks.reshape(len(masks), -1).mean(1).mean()),
                      "centre_prior": best_threshold_miou(centre, masks)[0]},
        "latent_grid_ceiling": best_threshold_miou(grid_ceiling_maps(masks, latent), masks)[0],
        "latent_grid": f"{latent[0]}×{latent[1]}",
        "median_mask_pixels": float(np.median(masks.reshape(len(masks), -1).sum(1))),
    }


@torch.no_grad()
def vae_round_trip(pipe, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Images encoded and decoded by the pipeline's autoencoder: the best a generated image can be."""
    out = []
    for i in range(0, len(images), batch):
        x = images_to_tensor(images[i : i + batch])
        out.append(tensor_to_images(pipe.vae.decode(pipe.vae.encode(x).latent_dist.mean).sample))
    return np.concatenate(out)


def speed(pipe, size: int, repeats: int = 3, guidance_scale: float = 7.5) -> float:
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
        pipe(prompts, num_inference_steps=25, guidance_scale=guidance_scale, generator=torch.Generator().manual_seed(0), output_type="np")
        rates.append(16 / (time.perf_counter() - t0))
    print(f"d) images/s per run (guidance {guidance_scale}): {[round(r, 2) for r in rates]}", flush=True)
    return float(np.median(rates))


def c_rows(c: dict) -> list[str]:
    """Table rows for c): every object with any segmenter pixels, and the objects a) counts as found."""
    rows = []
    for label, part in (("objects with any segmenter pixels", c), (f"found objects (≥ {c.get('min_pixels', 12)} px)", c.get("found_objects_only"))):
        if part is None:
            continue
        base = ", ".join(f"{k}: {v:.3f}" for k, v in part.get("baselines", {}).items())
        if "latent_grid_ceiling" in part:
            base += f"; perfect {part.get('latent_grid', 'latent-grid')} map: {part['latent_grid_ceiling']:.3f}"
        rows.append(f"| c) generated maps vs segmenter mIoU, {label} (n = {part['objects']}) | {part['miou']:.3f} | ≥ 0.4 | {base} |")
    swap = c.get("own_vs_other_object", {})
    if swap.get("maps"):
        rows.append(
            f"| c) share of a map's mass in its own object's mask vs the other object's (two-object images, n = {swap['maps']} maps) "
            f"| {swap['mass_in_own_mask']:.3f} vs {swap['mass_in_other_mask']:.3f} | | own larger for {swap['own_larger']:.0%} of maps; "
            f"a uniform map: {swap['mask_area']:.3f} |"
        )
    return rows


def markdown(out: dict) -> str:
    b, a = out["b_localisation"], out["a_fidelity"]

    def refs(key: str) -> str:  # the reference segmenter on the scenes themselves, and after the autoencoder
        where = {"reference_on_real_renders": "real renders", "reference_on_vae_round_trip": "renders through the VAE"}
        return ", ".join(f"{name}: {a[k][key]:.3f}" for k, name in where.items() if k in a)

    lines = [
        "| metric | MicroSD | goal | baselines |",
        "|---|---|---|---|",
        f"| a) per-object recall (1–2 objects) | {a['recall']:.3f} | ≥ 0.85 | {refs('recall')} |",
        f"| a) colour accuracy | {a['colour_accuracy']:.3f} | ≥ 0.75 | {refs('colour_accuracy')} |",
        f"| b) localisation mIoU (strength {b['strength']}) | {b['miou']:.3f} | ≥ 0.5 and +0.25 over baselines | "
        + ", ".join(f"{k}: {v:.3f}" for k, v in b["baselines"].items())
        + " |",
        f"| b) ceiling: true masks pooled to the {b.get('latent_grid', '16×16')} latent grid | {b['latent_grid_ceiling']:.3f} | | what a perfect map of that size scores |",
        *c_rows(out["c_generated_maps_vs_segmenter"]),
        f"| d) images/s (64², 25 steps, batch 16, guidance 7.5) | {out['d_speed_images_per_s']:.2f} | ≥ 4 | {out['threads']} thread{'s' if out['threads'] != 1 else ''} |",
        *([f"| d) the same without guidance (UNet batch 16, not 32) | {out['d_speed_images_per_s_no_guidance']:.2f} | | not the setting of a) and c) |"]
          if "d_speed_images_per_s_no_guidance" in out else []),
        "",
        *(["| guidance scale | a) recall | a) colour accuracy |", "|---|---|---|",
            *[f"| {g} | {v['recall']:.3f} | {v['colour_accuracy']:.3f} |" for g, v in sorted(a["by_guidance_scale"].items(), key=lambda kv: float(kv[0]))], ""]
          if "by_guidance_scale" in a else []),
        "| strength | MicroSD mIoU | random weights |",
        "|---|---|---|",
        *[f"| {s} | {v['microsd']:.3f} | {v['random_weights']:.3f} |" for s, v in b["by_strength"].items()],
        "",
        "| layer resolution (÷ latent) | mIoU |",
        "|---|---|",
        *[f"| {r} | {v:.3f} |" for r, v in b["by_resolution"].items()],
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
