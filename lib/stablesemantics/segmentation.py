"""Attention maps as segmentation: map → mask, IoU metrics, and a small reference segmenter.

The reference segmenter is a small fully convolutional network trained on MicroWorld
renders with their exact class masks. It plays the role real segmenters play for the
anchors: it finds the prompted classes in *generated* images (prompt fidelity) and gives
masks to compare attention maps with when there is no rendered ground truth.

Example::

    >>> import numpy as np
    >>> pred = np.zeros((4, 4), bool); pred[:2] = True
    >>> truth = np.zeros((4, 4), bool); truth[:, :2] = True
    >>> round(iou(pred, truth), 3)  # 4 shared pixels of 12 in the union
    0.333
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import world

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "data" / "models" / "reference_segmenter"


# ----------------------------------------------------------------------------- metrics


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {truth.shape}")
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def normalise_maps(maps: np.ndarray) -> np.ndarray:
    """Scale each map of ``(n, H, W)`` to [0, 1] by its own min and max."""
    maps = np.asarray(maps, np.float64)
    lo = maps.min(axis=(-1, -2), keepdims=True)
    hi = maps.max(axis=(-1, -2), keepdims=True)
    return (maps - lo) / np.maximum(hi - lo, 1e-12)


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(n, h, w)`` maps to ``size``."""
    t = torch.as_tensor(np.asarray(maps, np.float32))[:, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


def miou_by_threshold(maps: np.ndarray, masks: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """mIoU over the pairs (map i, mask i) for each global threshold of min-max normalised maps."""
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must have the same shape")
    norm = normalise_maps(maps)
    truth = masks.astype(bool)
    out = []
    for t in thresholds:
        pred = norm >= t
        inter = (pred & truth).sum((1, 2))
        union = (pred | truth).sum((1, 2))
        out.append(np.mean(np.where(union == 0, 1.0, inter / np.maximum(union, 1))))
    return np.asarray(out)


def best_threshold_miou(maps: np.ndarray, masks: np.ndarray, thresholds=None) -> tuple[float, float]:
    """Best mIoU over one global threshold shared by all maps, and that threshold."""
    thresholds = np.linspace(0.05, 0.95, 19) if thresholds is None else np.asarray(thresholds)
    scores = miou_by_threshold(maps, masks, thresholds)
    best = int(np.argmax(scores))
    return float(scores[best]), float(thresholds[best])


def centre_prior(shape: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """An isotropic Gaussian centred on the image (sigma as a fraction of the size)."""
    h, w = shape
    y = (np.arange(h) + 0.5) / h - 0.5
    x = (np.arange(w) + 0.5) / w - 0.5
    return np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))


# ----------------------------------------------------------------------------- reference segmenter


class SmallSegmenter(nn.Module):
    """A four-level encoder–decoder predicting one of ``n_classes`` (0 = background) per pixel."""

    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
            )

        w = width
        self.enc1, self.enc2, self.enc3 = block(3, w), block(w, 2 * w), block(2 * w, 2 * w)
        self.dec2, self.dec1 = block(4 * w, 2 * w), block(3 * w, w)
        self.head = nn.Conv2d(w, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0), e1], 1))
        return self.head(d1)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(n, H, W, 3) uint8 → (n, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


@dataclass
class SegmenterTraining:
    steps: int = 1500
    batch: int = 32
    lr: float = 2e-3
    seed: int = 0
    image_size: int = 64
    width: int = 32


def train_segmenter(cfg: SegmenterTraining = SegmenterTraining(), images=None, masks=None, log_every: int = 100, progress=None) -> SmallSegmenter:
    """Train a :class:`SmallSegmenter` on class masks.

    With ``images``/``masks`` given (arrays ``(n,H,W,3)`` uint8 and ``(n,H,W)`` class ids),
    batches are drawn from them; otherwise fresh MicroWorld scenes are rendered each step.
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = SmallSegmenter(len(world.CLASSES) + 1, cfg.width)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    wc = world.WorldConfig(size=cfg.image_size)
    t0 = time.time()
    for step in range(cfg.steps):
        if images is None:
            scenes = [world.sample_scene(rng, wc) for _ in range(cfg.batch)]
            x = np.stack([s.image for s in scenes])
            y = np.stack([s.class_mask for s in scenes])
        else:
            idx = rng.integers(0, len(images), cfg.batch)
            x, y = images[idx], masks[idx]
        logits = model(images_to_tensor(x))
        loss = F.cross_entropy(logits, torch.from_numpy(y.astype(np.int64)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None and (step + 1) % log_every == 0:
            progress({"step": step + 1, "loss": round(loss.item(), 4), "seconds": round(time.time() - t0, 1)})
    return model.eval()


@torch.no_grad()
def predict_classes(model: SmallSegmenter, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Per-pixel class ids (0 = background) for ``(n, H, W, 3)`` uint8 images."""
    out = [model(images_to_tensor(images[i : i + batch])).argmax(1).numpy() for i in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.int16)


def save_segmenter(model: SmallSegmenter, path: Path = REFERENCE_DIR) -> None:
    path.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(path / "model.safetensors"))
    (path / "classes.txt").write_text("\n".join(["background", *world.CLASSES]) + "\n")


def load_segmenter(path: Path = REFERENCE_DIR, width: int = 32) -> SmallSegmenter:
    """Load the reference segmenter; a clear error if it was never trained."""
    file = Path(path) / "model.safetensors"
    if not file.exists():
        raise FileNotFoundError(f"no reference segmenter at {path}; run `make model` to train it")
    from safetensors.torch import load_file

    classes = (Path(path) / "classes.txt").read_text().split()
    if classes[1:] != list(world.CLASSES):
        raise ValueError("the reference segmenter was trained on another MicroWorld class list; retrain it")
    model = SmallSegmenter(len(classes), width)
    model.load_state_dict(load_file(str(file)))
    return model.eval()


# ----------------------------------------------------------------------------- maps on rendered scenes


@dataclass
class ObjectMaps:
    """One attention map per object of a set of scenes, with the object's true mask."""

    maps: np.ndarray  # (n_objects, H, W) float, resized to the image size
    masks: np.ndarray  # (n_objects, H, W) bool: the object's visible pixels
    classes: list[str]
    scene_index: np.ndarray  # (n_objects,) which scene each object came from


def rendered_scene_maps(
    pipe,
    scenes: list,
    strength: float = 0.6,
    steps: int = 25,
    guidance: float = 1.0,
    capture=None,
    seed: int = 0,
    batch_size: int = 16,
) -> ObjectMaps:
    """Noise rendered scenes to an intermediate timestep, denoise them with their captions, capture maps.

    This is the setting with exact ground truth: the image content is known, so each object
    phrase's map can be compared with the object's mask. ``strength`` is the fraction of the
    schedule that is re-run (0.6 of 25 steps → the last 15, starting near t = 600 of 1000);
    the maps are summed over the steps that are run, as in generation.
    """
    from diffusers import StableDiffusionImg2ImgPipeline
    from PIL import Image

    from .attention import CaptureConfig, capture_cross_attention, chunk_maps
    from .prompts import token_indices_for_spans

    img2img = StableDiffusionImg2ImgPipeline(**{**pipe.components, "requires_safety_checker": False})
    img2img.set_progress_bar_config(disable=True)
    capture = capture or CaptureConfig()
    maps, masks, classes, where = [], [], [], []
    for start in range(0, len(scenes), batch_size):
        part = scenes[start : start + batch_size]
        gens = [torch.Generator(device=pipe.device).manual_seed(seed + start + i) for i in range(len(part))]
        with capture_cross_attention(img2img, capture) as cap:
            img2img(
                prompt=[s.caption for s in part],
                image=[Image.fromarray(s.image) for s in part],
                strength=strength,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=gens,
                output_type="latent",
            )
        token_maps = cap.maps.float().cpu()
        for i, scene in enumerate(part):
            spans = token_indices_for_spans(scene.caption, scene.object_spans, pipe.tokenizer)
            keep = [k for k, s in enumerate(spans) if s.indices and not s.truncated]
            if not keep:
                continue
            m = chunk_maps(token_maps[i], [spans[k].indices for k in keep]).numpy()
            maps.append(resize_maps(m, scene.image.shape[:2]))
            masks.extend(scene.instance_mask == k + 1 for k in keep)
            classes.extend(scene.objects[k].cls for k in keep)
            where.extend([start + i] * len(keep))
    return ObjectMaps(np.concatenate(maps), np.stack(masks), classes, np.asarray(where))
