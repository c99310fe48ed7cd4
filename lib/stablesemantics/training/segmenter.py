"""Train the reference segmenter on MicroWorld renders (resumable)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stablesemantics import world
from stablesemantics.evaluate.metrics import iou
from stablesemantics.evaluate.segmenter import REFERENCE_DIR, SmallSegmenter, predict_classes
from stablesemantics.images import images_to_tensor, tensor_to_images
from stablesemantics.paths import default_cache_dir
from stablesemantics.training.checkpoints import atomic_save, load_checkpoint


@dataclass
class SegmenterTraining:
    """How a :class:`SmallSegmenter` is trained (:func:`train_segmenter`).

    Attributes:
        steps: Training steps.
        batch: Scenes per step.
        lr: Peak learning rate (one-cycle schedule).
        seed: Seed of the scenes, the batches and the initial weights.
        image_size: Side of the rendered training scenes, in pixels.
        width: Channels of the segmenter's first level.
        background_weight: Loss weight of background pixels (< 1: objects are learnt sooner).
        flip: Random horizontal flips of the training batches.
        degrade: Share of each batch blurred as a small decoder blurs (robustness to decoder blur).
    """

    steps: int = 1500
    batch: int = 32
    lr: float = 2e-3
    seed: int = 0
    image_size: int = 64
    width: int = 32
    background_weight: float = 1.0
    flip: bool = False
    degrade: float = 0.0


#: The recipe of the reference segmenter in ``data/models/reference_segmenter`` (``make model``):
#: longer, narrower, background pixels weighted down, flips and half of each batch blurred.
REFERENCE_TRAINING = SegmenterTraining(steps=4000, width=16, background_weight=0.3, flip=True, degrade=0.5)


def degrade_images(x: torch.Tensor, rng: np.random.Generator, share: float) -> torch.Tensor:
    """Blur a random ``share`` of a batch of ``(n, 3, H, W)`` images as a small decoder blurs them.

    Each chosen image is area-downsampled by a random factor between 1.5 and 4 and brought back
    with bilinear interpolation, then its colours are scaled by up to ±15 % per channel. The
    reference segmenter trained on crisp renders alone misses most objects in generated images,
    which are blurred by the autoencoder; this augmentation uses no image of any model.
    """
    out = x.clone()
    h, w = x.shape[-2:]
    for i in np.flatnonzero(rng.random(len(x)) < share):
        factor = rng.uniform(1.5, 4.0)
        small = F.interpolate(x[i : i + 1], size=(max(2, round(h / factor)), max(2, round(w / factor))), mode="area")
        blurred = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        gain = torch.from_numpy(rng.uniform(0.85, 1.15, (1, 3, 1, 1))).float()
        out[i : i + 1] = ((blurred + 1) * gain - 1).clamp(-1, 1)
    return out


def train_segmenter(
    cfg: SegmenterTraining | None = None,
    images=None,
    masks=None,
    log_every: int = 100,
    progress=None,
    device=None,
    ckpt: Path | None = None,
    ckpt_every: int = 200,
) -> SmallSegmenter:
    """Train a :class:`SmallSegmenter` on class masks (``cfg``: default :class:`SegmenterTraining`'s).

    With ``images``/``masks`` given (arrays ``(n,H,W,3)`` uint8 and ``(n,H,W)`` class ids),
    batches are drawn from them; otherwise fresh MicroWorld scenes are rendered each step.
    ``device`` (default CPU) is where the model trains; it is returned there.

    With ``ckpt`` (a file path; rendered-scene training only), the model, optimiser, schedule
    and random state are saved there every ``ckpt_every`` steps, and a run started with a
    checkpoint present continues from it: an interrupted run, resumed, ends with the same
    weights as an uninterrupted one. A checkpoint of another configuration is refused.
    """
    if cfg is None:
        cfg = SegmenterTraining()
    if ckpt is not None and images is not None:
        raise ValueError("ckpt is for training on rendered scenes: a checkpoint does not record the images given")
    if ckpt_every < 1:
        raise ValueError(f"ckpt_every must be at least 1, got {ckpt_every}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = torch.device(device or "cpu")
    model = SmallSegmenter(len(world.CLASSES) + 1, cfg.width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    wc = world.WorldConfig(size=cfg.image_size)
    first = 0
    state = load_checkpoint(ckpt) if ckpt is not None else None
    if state is not None:
        if state["config"] != asdict(cfg):
            raise ValueError(
                f"the checkpoint {ckpt} was made with another configuration ({state['config']}); remove it to start afresh"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        first = state["step"]
    t0 = time.time()
    for step in range(first, cfg.steps):
        if images is None:
            scenes = [world.sample_scene(rng, wc) for _ in range(cfg.batch)]
            x = np.stack([s.image for s in scenes])
            y = np.stack([s.class_mask for s in scenes])
        else:
            idx = rng.integers(0, len(images), cfg.batch)
            x, y = images[idx], masks[idx]
        if cfg.flip:
            flip = rng.random(len(x)) < 0.5
            x = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
            y = np.where(flip[:, None, None], y[:, :, ::-1], y)
        batch = images_to_tensor(x)
        if cfg.degrade > 0:
            batch = degrade_images(batch, rng, cfg.degrade)
        logits = model(batch.to(device))
        weight = None
        if cfg.background_weight != 1.0:
            weight = torch.ones(logits.shape[1], device=device)
            weight[0] = cfg.background_weight
        loss = F.cross_entropy(logits, torch.from_numpy(y.astype(np.int64)).to(device), weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if ckpt is not None and ((step + 1) % ckpt_every == 0 or step + 1 == cfg.steps):
            atomic_save(
                {
                    "config": asdict(cfg),
                    "step": step + 1,
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                },
                ckpt,
            )
        if progress is not None and (step + 1) % log_every == 0:
            progress({"step": step + 1, "loss": round(loss.item(), 4), "seconds": round(time.time() - t0, 1)})
    return model.eval()


def save_segmenter(model: SmallSegmenter, path: Path = REFERENCE_DIR) -> None:
    path.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(path / "model.safetensors"), metadata={"width": str(model.head.in_channels)})
    (path / "classes.txt").write_text("\n".join(["background", *world.CLASSES]) + "\n")


def train_reference_segmenter(
    cfg: SegmenterTraining = REFERENCE_TRAINING, out: Path = REFERENCE_DIR, ckpt_dir: Path | None = None
) -> dict:
    """Train and save the reference segmenter; returns its held-out pixel accuracy and mIoU.

    Run with ``stablesemantics train segmenter`` (``make model`` does); the recipe is
    :data:`REFERENCE_TRAINING`. Background pixels are most of every scene, so their loss weight
    is lowered (``background_weight``): with equal weights a short run learns to answer
    "background" everywhere. Half of each batch is blurred (``degrade``, :func:`degrade_images`)
    so that the segmenter also reads blurred images such as a small model's decoder makes; the
    held-out metrics are reported on crisp renders and on blurred ones.

    Checkpoints go to ``ckpt_dir`` (default ``segmenter-train`` in the project's cache folder,
    :func:`stablesemantics.paths.default_cache_dir`): run the same command again after an
    interruption and it resumes; the checkpoint is removed once the model is saved.
    """
    t0 = time.time()
    ckpt = Path(ckpt_dir or default_cache_dir() / "segmenter-train") / "segmenter.pt"
    model = train_segmenter(cfg, log_every=50, progress=lambda r: print(r, flush=True), ckpt=ckpt)
    scenes = world.render_scenes(256, seed=777_777)
    truth = np.stack([s.class_mask for s in scenes])
    images = np.stack([s.image for s in scenes])
    pred = predict_classes(model, images)
    blurred = degrade_images(images_to_tensor(images), np.random.default_rng(1), 1.0)
    pred_blurred = predict_classes(model, tensor_to_images(blurred))

    def class_ious(p: np.ndarray) -> dict[str, float]:  # the classes present in the truth
        return {c: iou(p == i + 1, truth == i + 1) for i, c in enumerate(world.CLASSES) if (truth == i + 1).any()}

    per_class = class_ious(pred)
    report = {
        "config": asdict(cfg),
        "train_seconds": round(time.time() - t0),
        "heldout_pixel_accuracy": float((pred == truth).mean()),
        "heldout_class_miou": float(np.mean(list(per_class.values()))),
        "heldout_blurred_class_miou": float(np.mean(list(class_ious(pred_blurred).values()))),
        "heldout_class_iou": per_class,
    }
    save_segmenter(model, out)
    (Path(out) / "metrics.json").write_text(json.dumps(report, indent=1))
    ckpt.unlink(missing_ok=True)  # done: a new run starts afresh
    return report
