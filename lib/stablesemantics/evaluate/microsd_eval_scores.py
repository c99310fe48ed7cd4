"""The scores and the table of the MicroSD evaluation (:mod:`stablesemantics.evaluate.microsd_eval`).

An object's colour read from its pixels, prompt fidelity (recall of the prompted classes and
their colours), how much of a phrase's map falls in its own object's mask, the map scores of
part c), and the markdown table of all parts.

>>> flat = np.zeros((4, 4, 3), np.uint8) + np.asarray(world.COLOURS["purple"], np.uint8)
>>> object_colour(flat, np.ones((4, 4), bool))
'purple'
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stablesemantics import world
from stablesemantics.evaluate.metrics import best_threshold_miou, centre_prior, grid_ceiling_maps


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


def fidelity(images: np.ndarray, scenes: Sequence[world.Scene], predicted: np.ndarray, min_pixels: int) -> dict:
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
    return {
        "maps": len(own),
        "mass_in_own_mask": float(np.mean(own)),
        "mass_in_other_mask": float(np.mean(other)),
        "own_larger": float(np.mean(np.asarray(own) > np.asarray(other))),
        "mask_area": float(np.mean(area)),
    }


def generated_map_scores(maps: np.ndarray, masks: np.ndarray, latent: tuple[int, int]) -> dict:
    """c) chunk maps vs segmenter masks at the best global threshold, with baselines and the latent-grid ceiling."""
    centre = np.broadcast_to(centre_prior(masks.shape[1:]), masks.shape)
    return {
        "objects": len(masks),
        "miou": best_threshold_miou(maps, masks)[0],
        "baselines": {
            "uniform": float(masks.reshape(len(masks), -1).mean(1).mean()),
            "centre_prior": best_threshold_miou(centre, masks)[0],
        },
        "latent_grid_ceiling": best_threshold_miou(grid_ceiling_maps(masks, latent), masks)[0],
        "latent_grid": f"{latent[0]}×{latent[1]}",
        "median_mask_pixels": float(np.median(masks.reshape(len(masks), -1).sum(1))),
    }


def c_rows(c: dict) -> list[str]:
    """Table rows for c): every object with any segmenter pixels, and the objects a) counts as found."""
    rows = []
    for label, part in (
        ("objects with any segmenter pixels", c),
        (f"found objects (≥ {c.get('min_pixels', 12)} px)", c.get("found_objects_only")),
    ):
        if part is None:
            continue
        base = ", ".join(f"{k}: {v:.3f}" for k, v in part.get("baselines", {}).items())
        if "latent_grid_ceiling" in part:
            base += f"; perfect {part.get('latent_grid', 'latent-grid')} map: {part['latent_grid_ceiling']:.3f}"
        rows.append(
            f"| c) generated maps vs segmenter mIoU, {label} (n = {part['objects']}) | {part['miou']:.3f} | ≥ 0.4 | {base} |"
        )
    swap = c.get("own_vs_other_object", {})
    if swap.get("maps"):
        rows.append(
            f"| c) share of a map's mass in its own object's mask vs the other object's (two-object images, n = {swap['maps']} maps) "
            f"| {swap['mass_in_own_mask']:.3f} vs {swap['mass_in_other_mask']:.3f} | | own larger for {swap['own_larger']:.0%} of maps; "
            f"a uniform map: {swap['mask_area']:.3f} |"
        )
    return rows


def markdown(out: dict) -> str:
    """The results table of every part: a), b), c), d), then the guidance, strength and resolution sweeps."""
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
        *(
            [
                f"| d) the same without guidance (UNet batch 16, not 32) | {out['d_speed_images_per_s_no_guidance']:.2f} | | not the setting of a) and c) |"
            ]
            if "d_speed_images_per_s_no_guidance" in out
            else []
        ),
        "",
        *(
            [
                "| guidance scale | a) recall | a) colour accuracy |",
                "|---|---|---|",
                *[
                    f"| {g} | {v['recall']:.3f} | {v['colour_accuracy']:.3f} |"
                    for g, v in sorted(a["by_guidance_scale"].items(), key=lambda kv: float(kv[0]))
                ],
                "",
            ]
            if "by_guidance_scale" in a
            else []
        ),
        "| strength | MicroSD mIoU | random weights |",
        "|---|---|---|",
        *[f"| {s} | {v['microsd']:.3f} | {v['random_weights']:.3f} |" for s, v in b["by_strength"].items()],
        "",
        "| layer resolution (÷ latent) | mIoU |",
        "|---|---|",
        *[f"| {r} | {v:.3f} |" for r, v in b["by_resolution"].items()],
    ]
    return "\n".join(lines) + "\n"
