"""Training a region model on random views of rendered MicroWorld regions (resumable).

Every step draws a batch of regions and, for each, DynRefer's random views: the tight view
(t = 0) plus ``n_random_views`` of the ten candidates t = 0.1 … 1.0. With probability
``view_dropout`` a random non-empty subset of those views is kept instead, so that the model
also learns to answer from one view or two: the chapter probes it with single views at a fixed
t, which a model that only ever saw three-view sets would meet out of its training
distribution.

The batch, views and dropout of step ``k`` come from ``numpy.random.default_rng([seed, k])``, the
model has no dropout and the learning rate is a function of the step, so a run resumed from a
checkpoint continues exactly as an uninterrupted one (checkpoints hold model, optimiser, step
and the losses so far).

>>> import numpy as np
>>> idx, present = sample_views(np.random.default_rng(0), batch=4, n_candidates=10, n_random=2, view_dropout=0.0)
>>> idx.shape, bool(present.all()), bool((idx[:, 0] == 0).all())
((4, 3), True, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stablesemantics.evaluate.captioner import Vocabulary
from stablesemantics.regions.data import TASKS, Regions
from stablesemantics.regions.model import RegionModel
from stablesemantics.regions.views import ViewBank
from stablesemantics.training.checkpoints import atomic_save, load_checkpoint

__all__ = [
    "RegionTraining",
    "TrainResult",
    "ViewInputs",
    "encode_captions",
    "sample_views",
    "train_region_model",
]


@dataclass
class RegionTraining:
    """Every default of the chapter's training."""

    steps: int = 1200
    batch: int = 64
    lr: float = 2e-3
    warmup: int = 50  # linear warm-up steps, then cosine decay to 5 % of lr
    weight_decay: float = 1e-4
    n_random_views: int = 2  # candidates drawn per region besides the tight view (DynRefer: two of ten)
    view_dropout: float = 0.5  # probability of keeping a random non-empty subset of the views
    caption_weight: float = 1.0  # weight of the caption loss against the four label losses
    seed: int = 0
    checkpoint: str | None = None  # path; saved every checkpoint_every steps and at the end
    checkpoint_every: int = 200
    log_every: int = 50
    threads: int | None = 1  # torch threads while training (1: on a shared small CPU, more threads cost time)
    device: str = "cpu"


@dataclass
class TrainResult:
    model: RegionModel
    losses: list[float] = field(default_factory=list)  # mean total loss per log interval
    log_steps: list[int] = field(default_factory=list)
    seconds: float = 0.0  # wall time of this call (a resumed run: only the part it ran)
    resumed_from: int = 0  # the step the run started at (0: fresh)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch threads (None: leave as is), restoring the previous number after."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sample_views(
    rng: np.random.Generator,
    batch: int,
    n_candidates: int,
    n_random: int,
    view_dropout: float,
) -> tuple[np.ndarray, np.ndarray]:
    """View indices ``(batch, 1 + n_random)`` into a bank whose index 0 is the tight view and
    1 … n_candidates the candidates, and which slots are kept ``(batch, 1 + n_random)`` bool."""
    idx = np.zeros((batch, 1 + n_random), np.int64)
    for b in range(batch):
        idx[b, 1:] = 1 + rng.choice(n_candidates, size=n_random, replace=False)
    present = np.ones_like(idx, bool)
    drop = rng.random(batch) < view_dropout
    for b in np.flatnonzero(drop):
        k = int(rng.integers(1, idx.shape[1] + 1))  # how many views to keep, 1 … all
        keep = rng.choice(idx.shape[1], size=k, replace=False)
        present[b] = False
        present[b, keep] = True
    return idx, present


def encode_captions(captions: list[str], vocab: Vocabulary, max_len: int) -> torch.Tensor:
    """Token ids ``(n, max_len)`` of the captions (``<bos> … <eos>`` padded)."""
    return torch.tensor([vocab.encode(c, max_len) for c in captions], dtype=torch.long)


class ViewInputs:
    """The model's prepared inputs for any (region, view) of a bank.

    Encoders whose ``prepare`` is costly and fixed (the frozen VAE) are prepared once for the
    whole bank; cheap ones (normalising pixels) per batch, to keep memory small.
    """

    def __init__(
        self,
        model: RegionModel,
        bank: ViewBank,
        cache: bool | None = None,
        chunk: int = 256,
    ):
        self.model, self.bank = model, bank
        self.cache = model.cfg.encoder == "vae" if cache is None else cache
        self.device = next(model.parameters()).device
        self.prepared = None
        if self.cache:
            parts = [
                self._prepare(
                    np.arange(s, min(s + chunk, len(bank)))[:, None].repeat(len(bank.ts), 1),
                    np.arange(len(bank.ts))[None].repeat(min(s + chunk, len(bank)) - s, 0),
                )
                for s in range(0, len(bank), chunk)
            ]
            self.prepared = torch.cat(parts) if parts else None

    def _prepare(self, regions: np.ndarray, views: np.ndarray) -> torch.Tensor:
        pixels = torch.from_numpy(self.bank.pixels[regions, views]).to(self.device)
        masks = torch.from_numpy(self.bank.masks[regions, views]).to(self.device).float() / 255
        return self.model.encoder.prepare(pixels, masks)

    def get(self, regions: np.ndarray, views: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepared views ``(B, n, …)`` for region ids ``(B,)`` and view ids ``(B, n)``, and their t."""
        regions, views = np.asarray(regions), np.asarray(views)
        ts = torch.as_tensor(self.bank.ts[views], dtype=torch.float32, device=self.device)
        if self.prepared is not None:
            return self.prepared[torch.as_tensor(regions)[:, None], torch.as_tensor(views)], ts
        return self._prepare(regions[:, None].repeat(views.shape[1], 1), views), ts


_RUN_ONLY = (
    "checkpoint",
    "checkpoint_every",
    "threads",
    "device",
)  # may change on resume


def _lr_at(step: int, cfg: RegionTraining) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def _loss(out: dict, labels: dict, captions: torch.Tensor, caption_weight: float) -> torch.Tensor:
    loss = sum(F.cross_entropy(out[task], labels[task]) for task in TASKS)
    cap = F.cross_entropy(
        out["caption"].reshape(-1, out["caption"].shape[-1]),
        captions[:, 1:].reshape(-1),
        ignore_index=0,
    )
    return loss + caption_weight * cap


def train_region_model(
    model: RegionModel,
    regions: Regions,
    bank: ViewBank,
    vocab: Vocabulary,
    cfg: RegionTraining,
    inputs: ViewInputs | None = None,
    stop_at: int | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``regions`` (views in ``bank``, row r = region r); resumes from
    ``cfg.checkpoint`` when it exists. ``bank.ts`` must be ``T_GRID`` (tight view first).

    ``stop_at`` ends the call after that step, saving a checkpoint, as an interruption would
    (a later call with the same config resumes there); the learning-rate schedule still runs to
    ``cfg.steps``.
    """
    if len(regions) != len(bank):
        raise ValueError(f"{len(regions)} regions but {len(bank)} rows in the view bank")
    if abs(float(bank.ts[0])) > 1e-9:
        raise ValueError("the bank's first view must be the tight view (t = 0)")
    t0 = time.time()
    device = torch.device(cfg.device)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    result = TrainResult(model=model)
    start, running = 0, []
    ckpt = load_checkpoint(Path(cfg.checkpoint)) if cfg.checkpoint else None
    if ckpt is not None:
        differ = sorted(k for k, v in asdict(cfg).items() if k not in _RUN_ONLY and ckpt["config"].get(k) != v)
        if differ:
            raise ValueError(
                f"{cfg.checkpoint} was written with other training settings ({differ}); "
                "remove it or use the same settings"
            )
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimiser"])
        start = result.resumed_from = int(ckpt["step"])
        result.losses, result.log_steps = list(ckpt["losses"]), list(ckpt["log_steps"])
        running = list(ckpt["running"])
    inputs = inputs or ViewInputs(model, bank)
    labels = {task: torch.as_tensor(regions.labels[task], device=device) for task in TASKS}
    captions = encode_captions(regions.captions, vocab, model.cfg.max_caption_len).to(device)
    n_cand = len(bank.ts) - 1

    def save(step: int) -> None:
        if cfg.checkpoint:
            atomic_save(
                {
                    "model": model.state_dict(),
                    "optimiser": opt.state_dict(),
                    "step": step,
                    "losses": result.losses,
                    "log_steps": result.log_steps,
                    "running": running,
                    "config": asdict(cfg),
                },
                Path(cfg.checkpoint),
            )

    with torch_threads(cfg.threads):
        end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
        for step in range(start, end):
            rng = np.random.default_rng([cfg.seed, step])
            rows = rng.integers(0, len(regions), cfg.batch)
            views, present = sample_views(rng, cfg.batch, n_cand, cfg.n_random_views, cfg.view_dropout)
            x, ts = inputs.get(rows, views)
            r = torch.as_tensor(rows, device=device)
            out = model(x, ts, torch.as_tensor(present, device=device), captions[r])
            loss = _loss(
                out,
                {k: v[r] for k, v in labels.items()},
                captions[r],
                cfg.caption_weight,
            )
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running.append(float(loss.detach()))
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                result.losses.append(float(np.mean(running)))
                result.log_steps.append(step + 1)
                running = []
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == end:
                save(step + 1)
    model.eval()
    result.seconds = time.time() - t0
    return result
