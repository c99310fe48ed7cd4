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
hours does not (see DESIGN.md: 0.2–0.3 mIoU, and maps can drift *away* from objects as the
denoiser learns to read the noisy image instead of the text). Following TokenCompose
(Wang et al., CVPR 2024), we add, for each object phrase of the caption, a loss that asks
its mean cross-attention map to put its mass inside the object's true mask:
``(1 - Σ_inside a)²`` per layer. This is a training objective, not a post-hoc edit: the
maps analysed in the book are still computed by the model at inference time, on prompts
and seeds it has never seen. Set ``grounding_weight=0`` to train without it. The checkpoint
kept is the one with the best localisation on held-out scenes, not the lowest loss.

Run ``python -m stablesemantics.train --help`` (or ``make model``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from transformers import CLIPTextConfig, CLIPTextModel

from . import world
from .checkpoints import atomic_save, load_checkpoint
from .pipelines import SD_NOISE_SCHEDULE, assemble_components
from .prompts import default_cache_dir, load_clip_tokenizer, token_indices_for_spans
from .segmentation import best_threshold_miou

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "data" / "models" / "microsd"
MAX_TOKENS = 77


@dataclass
class TrainConfig:
    """Everything that defines a MicroSD training run (recorded in the model card)."""

    out: str = str(DEFAULT_OUT)
    ckpt_dir: str = str(default_cache_dir() / "microsd-train")
    seed: int = 0
    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 3
    # autoencoder
    vae_channels: tuple[int, ...] = (16, 32, 64)
    vae_steps: int = 2400
    vae_batch: int = 32
    vae_lr: float = 1e-3
    vae_crop: int | None = 32  # train the (fully convolutional) autoencoder on random crops: 4x cheaper steps
    kl_weight: float = 1e-6
    # text encoder + UNet
    text_hidden: int = 64
    text_layers: int = 2
    unet_channels: tuple[int, ...] = (32, 64, 64)
    unet_steps: int = 3200
    batch: int = 32
    lr: float = 5e-4
    warmup: int = 200
    caption_dropout: float = 0.1
    grounding_weight: float = 1.0
    dataset_scenes: int = 16384  # rendered once, encoded once (latents cached in memory)
    # bookkeeping
    eval_every: int = 400
    eval_scenes: int = 48
    eval_timesteps: tuple[int, ...] = (300, 500)
    ckpt_every: int = 100
    max_minutes: float | None = None
    export_only: bool = False  # write the best checkpoint so far as the model and stop
    threads: int = 2


# ----------------------------------------------------------------------------- models


def build_vae(cfg: TrainConfig) -> AutoencoderKL:
    n = len(cfg.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.vae_channels),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=cfg.image_size,
    )


def build_text_encoder(cfg: TrainConfig) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=49408,  # the real CLIP vocabulary: token ids are CLIP's own
        hidden_size=cfg.text_hidden,
        intermediate_size=4 * cfg.text_hidden,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        projection_dim=cfg.text_hidden,
    )
    return CLIPTextModel(config)


def build_unet(cfg: TrainConfig) -> UNet2DConditionModel:
    latent = cfg.image_size // 2 ** (len(cfg.vae_channels) - 1)
    return UNet2DConditionModel(
        sample_size=latent,
        in_channels=4,
        out_channels=4,
        block_out_channels=tuple(cfg.unet_channels),
        layers_per_block=1,
        # cross-attention at the latent resolution and at 1/2 (plus the mid block at 1/4)
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cfg.text_hidden,
        attention_head_dim=4,  # diffusers' legacy name: this is the number of heads
        norm_num_groups=16,
    )


def train_noise_scheduler() -> DDPMScheduler:
    """Stable Diffusion 1.x's noise schedule."""
    return DDPMScheduler(**SD_NOISE_SCHEDULE)


# ----------------------------------------------------------------------------- data


@dataclass
class Batch:
    images: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    input_ids: torch.Tensor  # (B, 77)
    token_weights: torch.Tensor  # (B, K, 77): 1/n on each of object k's tokens
    masks: torch.Tensor  # (B, K, H, W) float {0, 1}
    valid: torch.Tensor  # (B, K) bool
    captions: list[str]


def make_batch(scenes: list[world.Scene], tokenizer, k_max: int, drop: np.ndarray | None = None) -> Batch:
    """Turn scenes into tensors; ``drop[i]`` replaces caption i by "" (CFG dropout)."""
    n = len(scenes)
    size = scenes[0].image.shape[0]
    images = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float() / 127.5 - 1
    captions = ["" if drop is not None and drop[i] else s.caption for i, s in enumerate(scenes)]
    ids = tokenizer(captions, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt").input_ids
    weights = torch.zeros(n, k_max, MAX_TOKENS)
    masks = torch.zeros(n, k_max, size, size)
    valid = torch.zeros(n, k_max, dtype=torch.bool)
    for i, scene in enumerate(scenes):
        if not captions[i]:
            continue
        spans = token_indices_for_spans(scene.caption, scene.object_spans, tokenizer)
        for k, tokens in enumerate(spans[:k_max]):
            if tokens.truncated or not tokens.indices:
                continue
            weights[i, k, list(tokens.indices)] = 1.0 / len(tokens.indices)
            masks[i, k] = torch.from_numpy(scene.instance_mask == k + 1).float()
            valid[i, k] = masks[i, k].sum() > 0
    return Batch(images, ids, weights, masks, valid, captions)


# ----------------------------------------------------------------------------- attention


class RecordingProcessor(AttnProcessor):
    """Computes cross-attention explicitly (so it has gradients) and records the probabilities.

    Self-attention keeps the fused SDPA kernel. Each cross-attention call appends its
    ``(batch*heads, queries, 77)`` probabilities to ``sink``.
    """

    def __init__(self, sink: list[tuple[int, torch.Tensor]]):
        super().__init__()
        self.sink = sink
        self.fused = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        if encoder_hidden_states is None:
            return self.fused(attn, hidden_states, None, attention_mask, temb)
        scores = attn.get_attention_scores

        def recorded(query, key, mask=None):
            probs = scores(query, key, mask)
            self.sink.append((attn.heads, probs))
            return probs

        attn.get_attention_scores = recorded
        try:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        finally:
            del attn.get_attention_scores


def install_recorder(unet: UNet2DConditionModel) -> list[tuple[int, torch.Tensor]]:
    sink: list[tuple[int, torch.Tensor]] = []
    unet.set_attn_processor(RecordingProcessor(sink))
    return sink


def layer_object_maps(heads: int, probs: torch.Tensor, token_weights: torch.Tensor, latent_hw: tuple[int, int]):
    """Mean-over-heads attention of each object phrase at one layer: (B, K, h, w)."""
    b = token_weights.shape[0]
    nq = probs.shape[1]
    scale = round(math.sqrt(latent_hw[0] * latent_hw[1] / nq))
    h, w = latent_hw[0] // scale, latent_hw[1] // scale
    mean = probs.view(b, heads, nq, -1).mean(1)  # (B, Nq, 77)
    return torch.einsum("bqt,bkt->bkq", mean, token_weights).view(b, -1, h, w)


def grounding_loss(sink, batch: Batch, latent_hw: tuple[int, int]) -> torch.Tensor:
    """TokenCompose-style token loss: each phrase's attention mass should lie inside its mask."""
    if not batch.valid.any():
        return torch.zeros(())
    losses = []
    for heads, probs in sink:
        maps = layer_object_maps(heads, probs, batch.token_weights, latent_hw)
        maps = maps / maps.sum((-1, -2), keepdim=True).clamp_min(1e-8)
        masks = F.adaptive_avg_pool2d(batch.masks, maps.shape[-2:])
        inside = (maps * masks).sum((-1, -2))
        losses.append(((1 - inside) ** 2)[batch.valid].mean())
    return torch.stack(losses).mean()


@torch.no_grad()
def evaluate_localisation(unet, text_encoder, vae, tokenizer, scenes, timesteps, scaling: float, seed: int = 0):
    """Quick localisation check used during training: one UNet call on noised true scenes.

    For each timestep, every object phrase's map (mean over heads, summed over layers,
    upsampled to the image) is compared with the object's mask at the best global threshold.
    """
    unet.eval()
    text_encoder.eval()
    sink = install_recorder(unet)
    batch = make_batch(scenes, tokenizer, k_max=world_max_objects(scenes))
    latents = vae.encode(batch.images).latent_dist.mean * scaling
    hw = tuple(latents.shape[-2:])
    cond = text_encoder(batch.input_ids)[0]
    sched = train_noise_scheduler()
    gen = torch.Generator().manual_seed(seed)
    result = {}
    for t in timesteps:
        sink.clear()
        noise = torch.randn(latents.shape, generator=gen)
        tt = torch.full((len(scenes),), t, dtype=torch.long)
        unet(sched.add_noise(latents, noise, tt), tt, cond)
        total = 0
        for heads, probs in sink:
            m = layer_object_maps(heads, probs, batch.token_weights, hw)
            total = total + F.interpolate(m, size=batch.masks.shape[-2:], mode="bilinear", align_corners=False)
        maps = total[batch.valid].numpy()
        masks = batch.masks[batch.valid].numpy()
        result[int(t)] = best_threshold_miou(maps, masks)[0]
    unet.set_attn_processor(AttnProcessor2_0())
    unet.train()
    text_encoder.train()
    return result


def world_max_objects(scenes) -> int:
    return max(len(s.objects) for s in scenes)


# ----------------------------------------------------------------------------- checkpoints


# ----------------------------------------------------------------------------- stages


def scene_stream(cfg: TrainConfig, stream_seed: int, step: int, n: int) -> list[world.Scene]:
    """Deterministic scenes for a given training step (resuming reproduces the data)."""
    rng = np.random.default_rng([cfg.seed, stream_seed, step])
    wc = world.WorldConfig(size=cfg.image_size, min_objects=cfg.min_objects, max_objects=cfg.max_objects)
    return [world.sample_scene(rng, wc) for _ in range(n)]


def _seed_step(cfg: TrainConfig, stage: int, step: int) -> None:
    """Seed torch's global RNG for one step of one stage, so a resumed run replays the same noise."""
    torch.manual_seed(int(np.random.default_rng([cfg.seed, 100 + stage, step]).integers(2**62)))


def _deadline(cfg: TrainConfig, start: float) -> bool:
    return cfg.max_minutes is not None and time.time() - start > cfg.max_minutes * 60


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
        x = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float() / 127.5 - 1
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


@torch.no_grad()
def latent_scaling(vae: AutoencoderKL, cfg: TrainConfig) -> float:
    scenes = scene_stream(cfg, 2, 0, 256)
    x = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float() / 127.5 - 1
    return float(1.0 / vae.encode(x).latent_dist.mean.std())


@dataclass
class LatentDataset:
    """Scenes rendered and encoded once: the VAE is frozen, so its encoder need not run every step."""

    mean: torch.Tensor  # (N, 4, h, w) scaled latent means
    std: torch.Tensor  # (N, 4, h, w) scaled latent standard deviations
    scenes: list  # the world.Scene of each row (captions, spans, masks)

    @classmethod
    @torch.no_grad()
    def build(cls, cfg: TrainConfig, vae: AutoencoderKL, scaling: float, log) -> "LatentDataset":
        scenes, means, stds = [], [], []
        for start in range(0, cfg.dataset_scenes, 256):
            part = scene_stream(cfg, 0, start, min(256, cfg.dataset_scenes - start))
            x = torch.from_numpy(np.stack([s.image for s in part])).permute(0, 3, 1, 2).float() / 127.5 - 1
            dist = vae.encode(x).latent_dist
            means.append(dist.mean * scaling)
            stds.append(dist.std * scaling)
            scenes.extend(part)
        log({"stage": "dataset", "scenes": len(scenes)})
        return cls(torch.cat(means), torch.cat(stds), scenes)

    def batch(self, rows: np.ndarray, tokenizer, k_max: int, drop: np.ndarray) -> tuple[torch.Tensor, Batch]:
        idx = torch.from_numpy(rows)
        latents = self.mean[idx] + self.std[idx] * torch.randn_like(self.mean[idx])
        return latents, make_batch([self.scenes[i] for i in rows], tokenizer, k_max, drop)


def lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.unet_steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def train_unet(cfg: TrainConfig, vae: AutoencoderKL, scaling: float, ckpt_dir: Path, start: float, log) -> bool:
    """Returns True when the stage is complete, False when it stopped at the deadline."""
    tokenizer = load_clip_tokenizer()
    torch.manual_seed(cfg.seed + 1)
    unet, text_encoder = build_unet(cfg), build_text_encoder(cfg)
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
        step, history, best = state["step"], state["history"], state["best"]
    else:
        baseline = evaluate_localisation(unet, text_encoder, vae, tokenizer, eval_scenes, cfg.eval_timesteps, scaling)
        history.append({"step": 0, "localisation": baseline})
        log({"stage": "unet", "step": 0, "localisation_random_weights": baseline})

    def save():
        atomic_save(
            {
                "unet": unet.state_dict(),
                "text_encoder": text_encoder.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "history": history,
                "best": best,
            },
            path,
        )

    data = LatentDataset.build(cfg, vae, scaling, log)
    unet.train()
    text_encoder.train()
    sink = install_recorder(unet)
    t0 = time.time()
    while step < cfg.unet_steps:
        _seed_step(cfg, 2, step)
        rng = np.random.default_rng([cfg.seed, 3, step])
        drop = rng.random(cfg.batch) < cfg.caption_dropout
        latents, batch = data.batch(rng.integers(0, len(data.scenes), cfg.batch), tokenizer, cfg.max_objects, drop)
        noise = torch.randn_like(latents)
        t = torch.randint(0, sched.config.num_train_timesteps, (cfg.batch,))
        noisy = sched.add_noise(latents, noise, t)
        sink.clear()
        cond = text_encoder(batch.input_ids)[0]
        pred = unet(noisy, t, cond).sample
        diffusion = F.mse_loss(pred, noise)
        ground = grounding_loss(sink, batch, tuple(latents.shape[-2:])) if cfg.grounding_weight > 0 else torch.zeros(())
        loss = diffusion + cfg.grounding_weight * ground
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
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
            loc = evaluate_localisation(unet, text_encoder, vae, tokenizer, eval_scenes, cfg.eval_timesteps, scaling)
            sink = install_recorder(unet)
            score = float(np.mean(list(loc.values())))
            history.append({"step": step, "localisation": loc, "loss": diffusion.item()})
            log({"stage": "unet", "step": step, "localisation": loc})
            if best is None or score > best["score"]:
                best = {"step": step, "score": score}
                atomic_save({"unet": unet.state_dict(), "text_encoder": text_encoder.state_dict(), "step": step}, ckpt_dir / "best.pt")
        if step % cfg.ckpt_every == 0:
            save()
        if _deadline(cfg, start):
            save()
            return False
    save()
    return True


# ----------------------------------------------------------------------------- export


def export(cfg: TrainConfig, vae: AutoencoderKL, scaling: float, ckpt_dir: Path, seconds: float) -> Path:
    """Write the best checkpoint as a diffusers StableDiffusionPipeline directory + model card."""
    from diffusers import StableDiffusionPipeline

    best = load_checkpoint(ckpt_dir / "best.pt")
    state = load_checkpoint(ckpt_dir / "unet.pt")
    unet, text_encoder = build_unet(cfg), build_text_encoder(cfg)
    unet.load_state_dict(best["unet"])
    text_encoder.load_state_dict(best["text_encoder"])
    vae.register_to_config(scaling_factor=scaling)
    pipe = StableDiffusionPipeline(**assemble_components(unet, vae, text_encoder), requires_safety_checker=False)
    out = Path(cfg.out)
    pipe.save_pretrained(out, safe_serialization=True)
    meta = {
        "config": dataclasses.asdict(cfg) | {"out": "data/models/microsd", "ckpt_dir": "(outside the repository)"},
        "kept_step": best["step"],
        "localisation_history": state["history"],
        "train_seconds": round(seconds),
        "latent_scaling": scaling,
        "torch": torch.__version__,
    }
    (out / "training.json").write_text(json.dumps(meta, indent=1))
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

    if cfg.export_only:
        state = load_checkpoint(ckpt_dir / "vae.pt")
        if state is None or not (ckpt_dir / "best.pt").exists():
            raise FileNotFoundError(f"nothing to export in {ckpt_dir}: train first")
        vae = build_vae(cfg)
        vae.load_state_dict(state["model"])
        return export(cfg, vae.eval(), latent_scaling(vae, cfg), ckpt_dir, timing["seconds"])
    vae = train_vae(cfg, ckpt_dir / "vae.pt", start, log)
    if vae is None:
        bank_time()
        return None
    scaling = latent_scaling(vae, cfg)
    log({"stage": "vae", "latent_scaling": scaling})
    done = train_unet(cfg, vae, scaling, ckpt_dir, start, log)
    bank_time()
    if not done:
        return None
    return export(cfg, vae, scaling, ckpt_dir, timing["seconds"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for field in dataclasses.fields(TrainConfig):
        default = getattr(TrainConfig, field.name)
        if isinstance(default, tuple):
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=int, nargs="+", default=default)
        elif field.name == "max_minutes":
            parser.add_argument("--max-minutes", type=float, default=None)
        elif isinstance(default, bool):
            parser.add_argument(f"--{field.name.replace('_', '-')}", action="store_true")
        else:
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(default), default=default)
    args = vars(parser.parse_args(argv))
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()})
    out = train(cfg)
    print(f"model written to {out}" if out else "stopped before the end; run the same command again to resume")


if __name__ == "__main__":
    main()
