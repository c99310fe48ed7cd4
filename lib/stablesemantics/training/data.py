"""Training data: MicroWorld scene streams, batches with phrase token positions, cached latents."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderKL

from stablesemantics import world
from stablesemantics.images import images_to_tensor
from stablesemantics.prompts.align import token_indices_for_spans
from stablesemantics.prompts.clip_tokenizer import CLIP_MAX_LENGTH
from stablesemantics.training.config import TrainConfig


@dataclass
class Batch:
    images: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    input_ids: torch.Tensor  # (B, 77)
    token_weights: torch.Tensor  # (B, K, 77): 1/n on each of object k's tokens
    masks: torch.Tensor  # (B, K, H, W) float {0, 1}
    valid: torch.Tensor  # (B, K) bool
    captions: list[str]


#: rows per object with per-token grounding: the tokens of "small red dog" and then some
TOKENS_PER_PHRASE = 4


def make_batch(
    scenes: list[world.Scene], tokenizer, k_max: int, drop: np.ndarray | None = None, per_token: bool = False
) -> Batch:
    """Turn scenes into tensors; ``drop[i]`` replaces caption i by "" (CFG dropout).

    By default each object has one row of ``token_weights``: ``1/n`` on each of its phrase's ``n``
    tokens. With ``per_token`` each of its first :data:`TOKENS_PER_PHRASE` tokens has a row of its
    own (weight 1), all with the object's mask, so that a loss on the rows grounds every word.
    """
    if per_token:
        return _per_token(make_batch(scenes, tokenizer, k_max, drop))
    n = len(scenes)
    size = scenes[0].image.shape[0]
    images = images_to_tensor(np.stack([s.image for s in scenes]))
    captions = ["" if drop is not None and drop[i] else s.caption for i, s in enumerate(scenes)]
    ids = tokenizer(
        captions, padding="max_length", max_length=CLIP_MAX_LENGTH, truncation=True, return_tensors="pt"
    ).input_ids
    weights = torch.zeros(n, k_max, CLIP_MAX_LENGTH)
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


def _per_token(batch: Batch) -> Batch:
    """The same batch with one row per token of each object phrase."""
    n, k_max, length = batch.token_weights.shape
    weights = torch.zeros(n, k_max * TOKENS_PER_PHRASE, length)
    valid = torch.zeros(n, k_max * TOKENS_PER_PHRASE, dtype=torch.bool)
    for i, k in batch.valid.nonzero().tolist():
        tokens = batch.token_weights[i, k].nonzero().flatten().tolist()[:TOKENS_PER_PHRASE]
        for j, token in enumerate(tokens):
            weights[i, k * TOKENS_PER_PHRASE + j, token] = 1.0
            valid[i, k * TOKENS_PER_PHRASE + j] = True
    masks = batch.masks.repeat_interleave(TOKENS_PER_PHRASE, dim=1)
    return Batch(batch.images, batch.input_ids, weights, masks, valid, batch.captions)


def world_max_objects(scenes) -> int:
    return max(len(s.objects) for s in scenes)


def scene_stream(cfg: TrainConfig, stream_seed: int, step: int, n: int) -> list[world.Scene]:
    """Deterministic scenes for a given training step (resuming reproduces the data)."""
    rng = np.random.default_rng([cfg.seed, stream_seed, step])
    wc = world.WorldConfig(size=cfg.image_size, min_objects=cfg.min_objects, max_objects=cfg.max_objects)
    return [world.sample_scene(rng, wc) for _ in range(n)]


def _seed_step(cfg: TrainConfig, stage: int, step: int) -> None:
    """Seed torch's global RNG for one step of one stage, so a resumed run replays the same noise."""
    torch.manual_seed(int(np.random.default_rng([cfg.seed, 100 + stage, step]).integers(2**62)))


@torch.no_grad()
def latent_scaling(vae: AutoencoderKL, cfg: TrainConfig) -> float:
    scenes = scene_stream(cfg, 2, 0, 256)
    x = images_to_tensor(np.stack([s.image for s in scenes]))
    return float(1.0 / vae.encode(x).latent_dist.mean.std())


@dataclass
class LatentDataset:
    """Scenes rendered and encoded once: the VAE is frozen, so its encoder need not run every step."""

    mean: torch.Tensor  # (N, 4, h, w) scaled latent means
    std: torch.Tensor  # (N, 4, h, w) scaled latent standard deviations
    scenes: list  # the world.Scene of each row (captions, spans, masks)

    @classmethod
    @torch.no_grad()
    def build(cls, cfg: TrainConfig, vae: AutoencoderKL, scaling: float, log) -> LatentDataset:
        scenes, means, stds = [], [], []
        for start in range(0, cfg.dataset_scenes, 256):
            part = scene_stream(cfg, 0, start, min(256, cfg.dataset_scenes - start))
            x = images_to_tensor(np.stack([s.image for s in part]))
            dist = vae.encode(x).latent_dist
            means.append(dist.mean * scaling)
            stds.append(dist.std * scaling)
            scenes.extend(part)
        log({"stage": "dataset", "scenes": len(scenes)})
        return cls(torch.cat(means), torch.cat(stds), scenes)

    def batch(
        self, rows: np.ndarray, tokenizer, k_max: int, drop: np.ndarray, per_token: bool = False
    ) -> tuple[torch.Tensor, Batch]:
        idx = torch.from_numpy(rows)
        latents = self.mean[idx] + self.std[idx] * torch.randn_like(self.mean[idx])
        return latents, make_batch([self.scenes[i] for i in rows], tokenizer, k_max, drop, per_token)
