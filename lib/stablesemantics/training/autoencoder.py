"""Stage 1: train the autoencoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from stablesemantics.images import images_to_tensor
from stablesemantics.training.checkpoints import atomic_save, load_checkpoint
from stablesemantics.training.config import TrainConfig, _deadline
from stablesemantics.training.data import _seed_step, scene_stream
from stablesemantics.training.microsd_model import build_vae


def random_crops(x: torch.Tensor, size: int, rng: np.random.Generator) -> torch.Tensor:
    """One random ``size``×``size`` crop per image, at positions aligned to the latent grid."""
    if size >= x.shape[-1]:
        return x
    step = 4
    ys = rng.integers(0, (x.shape[-2] - size) // step + 1, len(x)) * step
    xs = rng.integers(0, (x.shape[-1] - size) // step + 1, len(x)) * step
    return torch.stack([img[:, y : y + size, x0 : x0 + size] for img, y, x0 in zip(x, ys, xs)])


def train_vae(cfg: TrainConfig, ckpt: Path, start: float, log) -> AutoencoderKL | None:
    torch.manual_seed(cfg.seed)
    vae = build_vae(cfg)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr)
    state = load_checkpoint(ckpt)
    step = 0
    if state is not None:
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
    while step < cfg.vae_steps:
        _seed_step(cfg, 1, step)  # the posterior samples
        scenes = scene_stream(cfg, 1, step, cfg.vae_batch)
        x = images_to_tensor(np.stack([s.image for s in scenes]))
        if cfg.vae_crop:
            x = random_crops(x, cfg.vae_crop, np.random.default_rng([cfg.seed, 4, step]))
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        rec = F.l1_loss(recon, x) + F.mse_loss(recon, x)
        loss = rec + cfg.kl_weight * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            log({"stage": "vae", "step": step, "recon": round(rec.item(), 5)})
        if step % cfg.ckpt_every == 0 or step == cfg.vae_steps:
            atomic_save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt)
        if _deadline(cfg, start):
            atomic_save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt)
            return None
    vae.eval().requires_grad_(False)
    return vae
