"""Train MicroSD: a small latent diffusion model on MicroWorld, saved in diffusers format.

MicroSD has exactly the parts of Stable Diffusion 1.x — ``AutoencoderKL``,
``CLIPTextModel`` with the real CLIP BPE tokenizer, ``UNet2DConditionModel`` with
cross-attention at several resolutions, a DDIM scheduler — so
``StableDiffusionPipeline.from_pretrained("data/models/microsd")`` loads it and every
line of the real-model path runs on it.

Training has two stages, each resumable from checkpoints kept outside the work tree:

1. the autoencoder (64×64 RGB → 16×16×4 latents), reconstruction + a small KL term;
2. the UNet and the text encoder jointly, epsilon prediction on scaled latents with
   10 % caption dropout (for classifier-free guidance), plus a *token grounding* loss.

Why a grounding loss. Large Stable Diffusion models learn cross-attention that lands on
the object a word names from billions of images. A 1.5M-parameter UNet trained for CPU
hours does not (see book/microsd.md: 0.2–0.3 mIoU, and maps can drift *away* from objects as the
denoiser learns to read the noisy image instead of the text). Following TokenCompose
(Wang et al., CVPR 2024), we add, for each object phrase of the caption, a loss that asks
its mean cross-attention map to put its mass inside the object's true mask:
``(1 - Σ_inside a)²`` per layer. This is a training objective, not a post-hoc edit: the
maps analysed in the book are still computed by the model at inference time, on prompts
and seeds it has never seen. Set ``grounding_weight=0`` to train without it. The checkpoint
kept is the one with the best localisation on held-out scenes, not the lowest loss.

Run ``stablesemantics train microsd --help`` (``make model`` runs it with the defaults of
:class:`~stablesemantics.training.config.TrainConfig`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from stablesemantics.models.components import assemble_components
from stablesemantics.training.autoencoder import train_vae
from stablesemantics.training.card import write_card_figures
from stablesemantics.training.checkpoints import atomic_save, load_checkpoint
from stablesemantics.training.config import TrainConfig, check_config
from stablesemantics.training.data import latent_scaling
from stablesemantics.training.microsd_model import build_text_encoder, build_unet, build_vae
from stablesemantics.training.unet import train_unet
from stablesemantics.training.warm_start import load_start, start_card


def export(cfg: TrainConfig, vae: AutoencoderKL, scaling: float, ckpt_dir: Path, seconds: float) -> Path:
    """Write the best checkpoint as a diffusers StableDiffusionPipeline directory + model card."""
    from diffusers import StableDiffusionPipeline

    best = load_checkpoint(ckpt_dir / "best.pt")
    state = load_checkpoint(ckpt_dir / "unet.pt")
    unet, text_encoder = build_unet(cfg), build_text_encoder(cfg)
    unet.load_state_dict(best["unet"])
    text_encoder.load_state_dict(best["text_encoder"])
    vae.register_to_config(scaling_factor=scaling)
    parts = assemble_components(unet, vae, text_encoder, prediction_type=cfg.prediction_type)
    pipe = StableDiffusionPipeline(**parts, requires_safety_checker=False)
    out = Path(cfg.out)
    pipe.save_pretrained(out, safe_serialization=True)
    meta = {
        "config": dataclasses.asdict(cfg)
        | {"out": "data/models/microsd", "ckpt_dir": "(outside the repository)", "export_only": False},
        "kept_step": best["step"],
        "localisation_history": state["history"],
        "train_seconds": round(seconds),
        "latent_scaling": scaling,
        "torch": torch.__version__,
    }
    started = start_card(cfg)
    if started is not None:
        meta["config"]["init_from"] = "(the model described in started_from)"
        meta["started_from"] = started
    (out / "training.json").write_text(json.dumps(meta, indent=1))
    pipe.set_progress_bar_config(disable=True)
    write_card_figures(out, pipe)
    return out


#: settings that do not change what is trained: where it goes, how long one run may last, threads
_RUN_SETTINGS = frozenset({"out", "ckpt_dir", "max_minutes", "export_only", "threads"})


def _check_same_recipe(cfg: TrainConfig, path: Path) -> None:
    """Record the recipe next to the checkpoints; refuse to resume checkpoints of another recipe."""
    mine = json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples as lists, as the file holds them
    if path.exists():
        theirs = json.loads(path.read_text())
        differ = sorted(k for k in mine if k not in _RUN_SETTINGS and k in theirs and mine[k] != theirs[k])
        if differ:
            raise ValueError(
                f"the checkpoints in {path.parent} were made with another recipe ("
                + ", ".join(f"{k}: {theirs[k]!r} there, {mine[k]!r} now" for k in differ)
                + "); use another --ckpt-dir or remove that folder to start afresh"
            )
    path.write_text(json.dumps(mine, indent=1))


def train(cfg: TrainConfig) -> Path | None:
    """Run (or resume) the whole training; returns the model dir, or None if stopped early."""
    check_config(cfg)
    torch.set_num_threads(cfg.threads)
    ckpt_dir = Path(cfg.ckpt_dir).expanduser()
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    _check_same_recipe(cfg, ckpt_dir / "config.json")
    start = time.time()
    timing = load_checkpoint(ckpt_dir / "timing.pt") or {"seconds": 0.0}
    logf = open(ckpt_dir / "log.jsonl", "a")

    banked_until = [start]

    def bank_time():  # wall time so far, kept in the checkpoint folder so a killed run loses little of it
        now = time.time()
        timing["seconds"] += now - banked_until[0]
        banked_until[0] = now
        atomic_save({"seconds": timing["seconds"]}, ckpt_dir / "timing.pt")

    def log(record):
        line = json.dumps(record)
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()
        bank_time()

    init = None
    if cfg.init_from is not None:
        vae, scaling, *weights = load_start(cfg)
        init = (weights[0], weights[1])
        log({"stage": "vae", "init_from": str(cfg.init_from), "latent_scaling": scaling})
    if cfg.export_only:
        if cfg.init_from is None:
            state = load_checkpoint(ckpt_dir / "vae.pt")
            if state is None:
                raise FileNotFoundError(f"nothing to export in {ckpt_dir}: train first")
            vae = build_vae(cfg)
            vae.load_state_dict(state["model"])
            vae, scaling = vae.eval(), latent_scaling(vae, cfg)
        if not (ckpt_dir / "best.pt").exists():
            raise FileNotFoundError(f"nothing to export in {ckpt_dir}: train first")
        return export(cfg, vae, scaling, ckpt_dir, timing["seconds"])
    if cfg.init_from is None:
        vae = train_vae(cfg, ckpt_dir / "vae.pt", start, log)
        if vae is None:
            bank_time()
            return None
        scaling = latent_scaling(vae, cfg)
        log({"stage": "vae", "latent_scaling": scaling})
    done = train_unet(cfg, vae, scaling, ckpt_dir, start, log, init)
    bank_time()
    if not done:
        return None
    return export(cfg, vae, scaling, ckpt_dir, timing["seconds"])
