"""Stage 2: train the UNet and the text encoder jointly, with the grounding loss."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL

from stablesemantics.prompts.clip_tokenizer import load_clip_tokenizer
from stablesemantics.training.checkpoints import atomic_save, load_checkpoint
from stablesemantics.training.config import TrainConfig, _deadline
from stablesemantics.training.data import LatentDataset, _seed_step, scene_stream
from stablesemantics.training.ema import WeightAverage
from stablesemantics.training.grounding import attention_recorder, grounding_loss
from stablesemantics.training.microsd_model import build_text_encoder, build_unet, train_noise_scheduler
from stablesemantics.training.objective import denoising_loss, denoising_target, min_snr_weights
from stablesemantics.training.probe import evaluate_localisation


def lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.unet_steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def train_unet(
    cfg: TrainConfig,
    vae: AutoencoderKL,
    scaling: float,
    ckpt_dir: Path,
    start: float,
    log,
    init: tuple[dict, dict] | None = None,
) -> bool:
    """Returns True when the stage is complete, False when it stopped at the deadline.

    ``init``: the UNet's and the text encoder's initial weights (random ones otherwise). The
    probe and ``best.pt`` use the weight average when ``cfg.ema_decay`` is on.
    """
    tokenizer = load_clip_tokenizer()
    torch.manual_seed(cfg.seed + 1)
    unet, text_encoder = build_unet(cfg), build_text_encoder(cfg)
    if init is not None:
        unet.load_state_dict(init[0])
        text_encoder.load_state_dict(init[1])
    trained = {"unet": unet, "text_encoder": text_encoder}
    ema = WeightAverage(trained, cfg.ema_decay) if cfg.ema_decay > 0 else None
    sampled = ema.modules if ema is not None else trained
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2)
    sched = train_noise_scheduler()
    eval_scenes = scene_stream(cfg, 99, 0, cfg.eval_scenes)
    path = ckpt_dir / "unet.pt"
    state = load_checkpoint(path)
    step, history, best = 0, [], None
    if state is not None:
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        opt.load_state_dict(state["opt"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        step, history, best = state["step"], state["history"], state["best"]
    else:
        baseline = evaluate_localisation(unet, text_encoder, vae, tokenizer, eval_scenes, cfg.eval_timesteps, scaling)
        history.append({"step": 0, "localisation": baseline})
        label = "localisation_random_weights" if init is None else "localisation_initial_weights"
        log({"stage": "unet", "step": 0, label: baseline})

    def save():
        atomic_save(
            {
                "unet": unet.state_dict(),
                "text_encoder": text_encoder.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "history": history,
                "best": best,
                **({"ema": ema.state_dict()} if ema is not None else {}),
            },
            path,
        )

    data = LatentDataset.build(cfg, vae, scaling, log)
    unet.train()
    text_encoder.train()
    recorder = attention_recorder(unet).install()
    t0 = time.time()
    while step < cfg.unet_steps:
        _seed_step(cfg, 2, step)
        rng = np.random.default_rng([cfg.seed, 3, step])
        drop = rng.random(cfg.batch) < cfg.caption_dropout
        rows = rng.integers(0, len(data.scenes), cfg.batch)
        latents, batch = data.batch(rows, tokenizer, cfg.max_objects, drop, cfg.per_token_grounding)
        noise = torch.randn_like(latents)
        t = torch.randint(0, sched.config.num_train_timesteps, (cfg.batch,))
        noisy = sched.add_noise(latents, noise, t)
        recorder.reset()
        cond = text_encoder(batch.input_ids)[0]
        pred = unet(noisy, t, cond).sample
        target = denoising_target(sched, latents, noise, t, cfg.prediction_type)
        diffusion = denoising_loss(pred, target, min_snr_weights(sched, t, cfg.snr_gamma, cfg.prediction_type))
        ground = (
            grounding_loss(recorder.layer_probs, batch, tuple(latents.shape[-2:]))
            if cfg.grounding_weight > 0
            else torch.zeros(())
        )
        loss = diffusion + cfg.grounding_weight * ground
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if ema is not None:
            ema.update(trained)
        step += 1
        if step % 25 == 0:
            log(
                {
                    "stage": "unet",
                    "step": step,
                    "loss": round(diffusion.item(), 5),
                    "grounding": round(ground.item(), 5),
                    "s_per_step": round((time.time() - t0) / 25, 3),
                }
            )
            t0 = time.time()
        if step % cfg.eval_every == 0 or step == cfg.unet_steps:
            recorder.remove()  # the probe installs its own capture
            loc = evaluate_localisation(
                sampled["unet"], sampled["text_encoder"], vae, tokenizer, eval_scenes, cfg.eval_timesteps, scaling
            )
            unet.train()
            text_encoder.train()
            recorder.install()
            score = float(np.mean(list(loc.values())))
            history.append({"step": step, "localisation": loc, "loss": diffusion.item()})
            log({"stage": "unet", "step": step, "localisation": loc})
            if best is None or score > best["score"] or (cfg.keep_last and step == cfg.unet_steps):
                best = {"step": step, "score": score}
                atomic_save(
                    {
                        "unet": sampled["unet"].state_dict(),
                        "text_encoder": sampled["text_encoder"].state_dict(),
                        "step": step,
                    },
                    ckpt_dir / "best.pt",
                )
        if step % cfg.ckpt_every == 0:
            save()
        if _deadline(cfg, start):
            recorder.remove()
            save()
            return False
    recorder.remove()
    save()
    return True
