"""Train the small captioner on MicroWorld renders and their clean captions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stablesemantics.evaluate.captioner import SmallCaptioner, Vocabulary, _device, _to_tensor, world_vocabulary


@dataclass
class CaptionerTraining:
    """Settings of :func:`train_captioner` (``image_size``: images are resized to it)."""

    steps: int = 1500
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0
    image_size: int = 32
    width: int = 32
    d_model: int = 128
    layers: int = 2
    max_len: int = 32
    device: str | None = None  # None: CUDA when available, else CPU


def train_captioner(
    cfg: CaptionerTraining,
    images: np.ndarray,
    captions: Sequence[str],
    vocab: Vocabulary | None = None,
    log_every: int = 100,
    progress=None,
) -> SmallCaptioner:
    """Train a :class:`SmallCaptioner` on ``(n, H, W, 3)`` uint8 images and their captions.

    AdamW with a one-cycle schedule, cross-entropy on the next word (padding ignored), random
    batches, no augmentation. ``vocab`` defaults to :func:`world_vocabulary`.
    """
    if len(images) != len(captions) or not len(images):
        raise ValueError(f"need as many captions as images (got {len(images)} images, {len(captions)} captions)")
    device = _device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    vocab = vocab or world_vocabulary()
    model = SmallCaptioner(vocab, cfg.image_size, cfg.width, cfg.d_model, cfg.layers, max_len=cfg.max_len).to(device)
    x_all = _to_tensor(images, cfg.image_size, "cpu")
    y_all = torch.tensor([vocab.encode(c, cfg.max_len) for c in captions], dtype=torch.long)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 1), pct_start=0.1)
    model.train()
    t0 = time.time()
    for step in range(cfg.steps):
        idx = torch.from_numpy(rng.integers(0, len(x_all), min(cfg.batch, len(x_all))))
        y = y_all[idx]
        y = y[:, : int((y != 0).sum(1).max())]  # drop the columns that are padding in the whole batch
        x, y = x_all[idx].to(device), y.to(device)
        logits = model(x, y[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[:, 1:].reshape(-1), ignore_index=0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress is not None and (step + 1) % log_every == 0:
            progress({"step": step + 1, "loss": round(loss.item(), 4), "seconds": round(time.time() - t0, 1)})
    return model.eval()
