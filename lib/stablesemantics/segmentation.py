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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import world
from .checkpoints import atomic_save, load_checkpoint

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


def grid_ceiling_maps(masks: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """The best maps a ``grid``-sized attention map could be: each true mask averaged onto the
    grid (area pooling) and upsampled back like a captured map. Their mIoU at the best global
    threshold is the ceiling that the map resolution alone puts on localisation."""
    t = torch.as_tensor(np.asarray(masks, np.float32))[:, None]
    pooled = F.adaptive_avg_pool2d(t, grid)[:, 0].numpy()
    return resize_maps(pooled, masks.shape[1:])


def centre_prior(shape: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """An isotropic Gaussian centred on the image (sigma as a fraction of the size)."""
    h, w = shape
    y = (np.arange(h) + 0.5) / h - 0.5
    x = (np.arange(w) + 0.5) / w - 0.5
    return np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))


# ----------------------------------------------------------------------------- reference segmenter


class SmallSegmenter(nn.Module):
    """A three-level U-Net-style encoder–decoder predicting one of ``n_classes`` (0 = background) per pixel."""

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


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """(n, 3, H, W) float in [-1, 1] → (n, H, W, 3) uint8; the inverse of :func:`images_to_tensor`."""
    return ((x.detach().clamp(-1, 1).permute(0, 2, 3, 1).cpu() + 1) * 127.5).round().byte().numpy()


@dataclass
class SegmenterTraining:
    steps: int = 1500
    batch: int = 32
    lr: float = 2e-3
    seed: int = 0
    image_size: int = 64
    width: int = 32
    background_weight: float = 1.0  # loss weight of background pixels (< 1: objects learnt sooner)
    flip: bool = False  # random horizontal flips of the training batches
    degrade: float = 0.0  # share of each batch blurred by :func:`degrade_images` (robustness to decoder blur)


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
    cfg: SegmenterTraining = SegmenterTraining(),
    images=None,
    masks=None,
    log_every: int = 100,
    progress=None,
    device=None,
    ckpt: Path | None = None,
    ckpt_every: int = 200,
) -> SmallSegmenter:
    """Train a :class:`SmallSegmenter` on class masks.

    With ``images``/``masks`` given (arrays ``(n,H,W,3)`` uint8 and ``(n,H,W)`` class ids),
    batches are drawn from them; otherwise fresh MicroWorld scenes are rendered each step.
    ``device`` (default CPU) is where the model trains; it is returned there.

    With ``ckpt`` (a file path; rendered-scene training only), the model, optimiser, schedule
    and random state are saved there every ``ckpt_every`` steps, and a run started with a
    checkpoint present continues from it: an interrupted run, resumed, ends with the same
    weights as an uninterrupted one. A checkpoint of another configuration is refused.
    """
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
            raise ValueError(f"the checkpoint {ckpt} was made with another configuration ({state['config']}); remove it to start afresh")
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
            atomic_save({"config": asdict(cfg), "step": step + 1, "model": model.state_dict(), "opt": opt.state_dict(),
                         "sched": sched.state_dict(), "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}, ckpt)
        if progress is not None and (step + 1) % log_every == 0:
            progress({"step": step + 1, "loss": round(loss.item(), 4), "seconds": round(time.time() - t0, 1)})
    return model.eval()


@torch.no_grad()
def predict_classes(model: SmallSegmenter, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Per-pixel class ids (0 = background) for ``(n, H, W, 3)`` uint8 images."""
    device = next(model.parameters()).device
    out = [model(images_to_tensor(images[i : i + batch]).to(device)).argmax(1).cpu().numpy()
           for i in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.int16)


def save_segmenter(model: SmallSegmenter, path: Path = REFERENCE_DIR) -> None:
    path.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(path / "model.safetensors"), metadata={"width": str(model.head.in_channels)})
    (path / "classes.txt").write_text("\n".join(["background", *world.CLASSES]) + "\n")


def load_segmenter(path: Path = REFERENCE_DIR) -> SmallSegmenter:
    """Load the reference segmenter; a clear error if it was never trained."""
    file = Path(path) / "model.safetensors"
    if not file.exists():
        raise FileNotFoundError(f"no reference segmenter at {path}; run `make model` to train it")
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(file), "pt") as f:
        width = int(f.metadata()["width"])
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

    from .attention import CaptureConfig, capture_cross_attention

    img2img = StableDiffusionImg2ImgPipeline(**{**pipe.components, "requires_safety_checker": False})
    img2img.set_progress_bar_config(disable=True)
    capture = capture or CaptureConfig()
    out: tuple = ([], [], [], [])
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
        _object_maps(pipe, part, cap.maps.float().cpu(), start, out)
    return _collect(out)


def _phrase_maps(pipe, scene, token_maps: torch.Tensor, size: tuple[int, int]) -> tuple[list[int], np.ndarray]:
    """The objects of ``scene`` whose phrases align to tokens, and their maps resized to ``size``."""
    from .attention import chunk_maps
    from .prompts import token_indices_for_spans

    spans = token_indices_for_spans(scene.caption, scene.object_spans, pipe.tokenizer)
    keep = [k for k, s in enumerate(spans) if s.indices and not s.truncated]
    if not keep:
        return [], np.zeros((0, *size))
    return keep, resize_maps(chunk_maps(token_maps, [spans[k].indices for k in keep]).numpy(), size)


def _object_maps(pipe, part: list, token_maps: torch.Tensor, start: int, out: tuple) -> None:
    """Append each object phrase's map (resized to the image), true mask, class and scene index."""
    maps, masks, classes, where = out
    for i, scene in enumerate(part):
        keep, m = _phrase_maps(pipe, scene, token_maps[i], scene.image.shape[:2])
        if not keep:
            continue
        maps.append(m)
        masks.extend(scene.instance_mask == k + 1 for k in keep)
        classes.extend(scene.objects[k].cls for k in keep)
        where.extend([start + i] * len(keep))


def _collect(out: tuple) -> ObjectMaps:
    maps, masks, classes, where = out
    if not maps:
        raise ValueError("no object phrase of these scenes could be aligned to tokens")
    return ObjectMaps(np.concatenate(maps), np.stack(masks), classes, np.asarray(where))


@torch.no_grad()
def encode_scenes(pipe, scenes: list, batch_size: int = 16) -> torch.Tensor:
    """Scaled VAE latent means ``(n, 4, h, w)`` of rendered scenes (what the UNet denoises)."""
    out = []
    for start in range(0, len(scenes), batch_size):
        x = images_to_tensor(np.stack([s.image for s in scenes[start : start + batch_size]]))
        lat = pipe.vae.encode(x.to(pipe.device, pipe.vae.dtype)).latent_dist.mean
        out.append(lat * pipe.vae.config.scaling_factor)
    return torch.cat(out)


@torch.no_grad()
def noised_scene_maps(pipe, scenes: list, timestep: int = 400, capture=None, seed: int = 0,
                      batch_size: int = 16, latents: torch.Tensor | None = None) -> ObjectMaps:
    """The cheapest localisation probe: scenes noised to ``timestep``, ONE UNet call with their captions.

    Each scene's latent (``latents``, else :func:`encode_scenes`) gets Gaussian noise at
    ``timestep`` (0–1000, the scheduler's ``add_noise``) and the UNet predicts the noise once,
    conditioned on the caption (no guidance); the maps are that call's cross-attention
    (``capture`` selects layers; ``t_range`` does not apply to one call). The noise depends
    only on ``seed`` and the scene's batch, so settings compared on the same scenes see the
    same noisy latents. Fifteen times cheaper than a 15-step :func:`rendered_scene_maps`.
    """
    from .attention import CaptureConfig, CrossAttentionCapture

    capture = capture or CaptureConfig()
    if capture.t_range != (0.0, 1.0):
        raise ValueError("one UNet call has no step range: vary `timestep` instead of t_range")
    if latents is None:
        latents = encode_scenes(pipe, scenes, batch_size)
    device, dtype = pipe.device, pipe.unet.dtype
    out: tuple = ([], [], [], [])
    for start in range(0, len(scenes), batch_size):
        part = scenes[start : start + batch_size]
        lat = latents[start : start + len(part)].to(device, torch.float32)
        gen = torch.Generator().manual_seed(seed + start)
        noise = torch.randn(lat.shape, generator=gen).to(device)
        t = torch.full((len(part),), int(timestep), dtype=torch.long, device=device)
        noisy = pipe.scheduler.add_noise(lat, noise, t)
        ids = pipe.tokenizer([s.caption for s in part], padding="max_length", truncation=True,
                             max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids
        cond = pipe.text_encoder(ids.to(device))[0]
        with CrossAttentionCapture(pipe.unet, capture) as cap:
            pipe.unet(noisy.to(dtype), t, encoder_hidden_states=cond.to(dtype))
        _object_maps(pipe, part, cap.maps.float().cpu(), start, out)
    return _collect(out)


def train_reference_segmenter(steps: int = 4000, out: Path = REFERENCE_DIR, width: int = 16,
                              background_weight: float = 0.3, flip: bool = True, degrade: float = 0.5,
                              ckpt_dir: Path | None = None) -> dict:
    """Train and save the reference segmenter; returns its held-out pixel accuracy and mIoU.

    Run with ``python -m stablesemantics.segmentation`` (``make model`` does). Background
    pixels are most of every scene, so their loss weight is lowered (``background_weight``):
    with equal weights a short run learns to answer "background" everywhere. Half of each batch
    is blurred (``degrade``, :func:`degrade_images`) so that the segmenter also reads blurred
    images such as a small model's decoder makes; the held-out metrics are reported on crisp
    renders and on blurred ones.

    Checkpoints go to ``ckpt_dir`` (default ``segmenter-train`` in the project's cache folder,
    :func:`stablesemantics.prompts.default_cache_dir`): run the same command again after an
    interruption and it resumes; the checkpoint is removed once the model is saved.
    """
    import json

    from .prompts import default_cache_dir

    t0 = time.time()
    cfg = SegmenterTraining(steps=steps, width=width, background_weight=background_weight, flip=flip, degrade=degrade)
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



# ============================================================================= benchmark: map → mask
#
# The segmentation benchmark (notebooks 05 and 06). Maps are per-object attention maps
# (``ObjectMaps``) or any ``(n, H, W)`` float array; masks are boolean ``(n, H, W)``.
# Every map is min-max normalised on its own before a threshold is applied, so thresholds
# are fractions of the map's own range.

#: DiffuMask's sweep of binarisation thresholds (Wu et al. 2023, Fig. 3: the best threshold of a
#: class lies between about 0.35 and 0.55).
ADAPTIVE_THRESHOLDS: tuple[float, ...] = (0.35, 0.40, 0.45, 0.50, 0.55)
BINARISATIONS: tuple[str, ...] = ("global", "otsu", "adaptive")
REFINEMENTS: tuple[str, ...] = ("none", "morph", "crf")


def otsu_threshold(values: np.ndarray, bins: int = 64) -> float:
    """Otsu's threshold of values in [0, 1]: the cut that maximises the between-class variance.

    The mask is ``values >= threshold``. A constant input has no cut; 0.5 is returned.

    >>> v = np.array([0.1] * 6 + [0.2] * 2 + [0.8] * 3 + [0.9])
    >>> t = otsu_threshold(v)
    >>> 0.2 < t <= 0.8, int((v >= t).sum())
    (True, 4)
    """
    v = np.clip(np.asarray(values, np.float64).ravel(), 0.0, 1.0)
    hist, edges = np.histogram(v, bins=bins, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)[:-1].astype(np.float64)  # below the cut at edges[k + 1]
    w1 = v.size - w0
    s0 = np.cumsum(hist * centres)[:-1]
    mu0 = s0 / np.maximum(w0, 1)
    mu1 = (np.sum(hist * centres) - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    if not np.any(between > 0):
        return 0.5
    return float(edges[int(np.argmax(between)) + 1])


def crf_available() -> bool:
    """Whether the dense CRF (``pydensecrf2``, imported as ``pydensecrf``) can be used."""
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def dense_crf(image: np.ndarray, mask: np.ndarray, confidence: float = 0.7, iterations: int = 5,
              sxy_gaussian: float | None = None, sxy_bilateral: float | None = None, srgb: float = 13.0,
              compat_gaussian: float = 3.0, compat_bilateral: float = 10.0) -> np.ndarray:
    """Refine a binary mask of an image with a fully connected CRF (Krähenbühl & Koltun 2011).

    The unary term believes the mask with probability ``confidence``; the pairwise terms pull
    nearby pixels (Gaussian kernel) and nearby pixels of similar colour (bilateral kernel) to the
    same label. Kernel widths default to fractions of the image size (``sxy_gaussian`` = size/64,
    ``sxy_bilateral`` = size/8 pixels), so the same call suits 64-pixel and 512-pixel images.
    Needs ``pydensecrf2``; see :func:`crf_available` and :func:`refine_masks`.
    """
    import pydensecrf.densecrf as dcrf

    image = np.ascontiguousarray(np.asarray(image, np.uint8)[..., :3])
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    if image.shape[:2] != (h, w):
        raise ValueError(f"image {image.shape[:2]} and mask {(h, w)} sizes differ")
    size = max(h, w)
    sxy_gaussian = max(size / 64, 1.0) if sxy_gaussian is None else sxy_gaussian
    sxy_bilateral = max(size / 8, 1.0) if sxy_bilateral is None else sxy_bilateral
    prob = np.where(mask, confidence, 1.0 - confidence).astype(np.float32)
    unary = -np.log(np.stack([1.0 - prob, prob]).reshape(2, -1))
    crf = dcrf.DenseCRF2D(w, h, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary.astype(np.float32)))
    crf.addPairwiseGaussian(sxy=sxy_gaussian, compat=compat_gaussian)
    crf.addPairwiseBilateral(sxy=sxy_bilateral, srgb=srgb, rgbim=image, compat=compat_bilateral)
    q = np.asarray(crf.inference(iterations)).reshape(2, h, w)
    return q[1] > q[0]


def morphological_refine(mask: np.ndarray, radius: int | None = None, keep: float = 0.1) -> np.ndarray:
    """Refine a binary mask by shape alone: open, close, fill holes, drop small components.

    The fallback when the dense CRF is not installed. ``radius`` of the square structuring element
    defaults to about 1/32 of the image size; components smaller than ``keep`` times the largest
    one are removed (an object may still come out as several parts).

    >>> m = np.zeros((16, 16), bool); m[4:12, 4:12] = True; m[7, 7] = False; m[0, 15] = True
    >>> r = morphological_refine(m)
    >>> bool(r[7, 7]), bool(r[0, 15]), int(r.sum())
    (True, False, 64)
    """
    from scipy import ndimage

    mask = np.asarray(mask, bool)
    if not mask.any():
        return mask.copy()
    radius = max(1, round(max(mask.shape) / 32)) if radius is None else int(radius)
    structure = np.ones((2 * radius + 1, 2 * radius + 1), bool)
    out = ndimage.binary_opening(mask, structure)
    out = ndimage.binary_closing(out, structure, border_value=0) | out
    out = ndimage.binary_fill_holes(out)
    labels, n = ndimage.label(out)
    if n > 1:
        sizes = np.bincount(labels.ravel())[1:]
        out = np.isin(labels, 1 + np.flatnonzero(sizes >= keep * sizes.max()))
    return out


def resolve_refinement(method: str) -> str:
    """``"auto"`` → ``"crf"`` when the dense CRF is installed, else ``"morph"``; others unchanged."""
    if method not in (*REFINEMENTS, "auto"):
        raise ValueError(f"refinement must be one of {(*REFINEMENTS, 'auto')}, got {method!r}")
    if method == "auto":
        return "crf" if crf_available() else "morph"
    return method


def refine_masks(masks: np.ndarray, images: np.ndarray | None = None, method: str = "auto") -> np.ndarray:
    """Refine ``(n, H, W)`` binary masks: ``"crf"`` (needs ``images``), ``"morph"``, ``"none"`` or ``"auto"``.

    ``images`` is ``(n, H, W, 3)`` uint8, one per mask (several masks of one image: repeat it).
    ``"crf"`` raises ImportError when ``pydensecrf2`` is missing; ``"auto"`` falls back to ``"morph"``.
    """
    method = resolve_refinement(method)
    masks = np.asarray(masks, bool)
    if method == "none":
        return masks.copy()
    if method == "morph":
        return np.stack([morphological_refine(m) for m in masks]) if len(masks) else masks.copy()
    if images is None:
        raise ValueError("CRF refinement needs the images")
    if len(images) != len(masks):
        raise ValueError(f"{len(images)} images for {len(masks)} masks")
    return np.stack([dense_crf(im, m) for im, m in zip(images, masks)]) if len(masks) else masks.copy()


def binarise_maps(maps: np.ndarray, method: str = "otsu", threshold: float = 0.5,
                  thresholds=ADAPTIVE_THRESHOLDS, images: np.ndarray | None = None,
                  select_with: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Map → mask, for ``(n, H, W)`` maps: returns boolean masks and the threshold used for each.

    Methods (each map is min-max normalised first):

    * ``"global"``: one threshold for every map;
    * ``"otsu"``: each map's own Otsu threshold (:func:`otsu_threshold`);
    * ``"adaptive"``: DiffuMask's adaptive threshold. For each threshold of the sweep
      (``thresholds``, 0.35–0.55) the binary mask is refined (``select_with``: the CRF, which needs
      ``images``, else morphology) and the threshold whose mask agrees best (IoU) with its own
      refinement is kept: the cut that the image's colours (or the mask's shape) confirm. DiffuMask
      refines with AffinityNet's random walk; a dense CRF plays that role here.

    >>> maps = np.zeros((1, 4, 4)); maps[0, :2, :2] = 1.0; maps[0, 2:, 2:] = 0.4
    >>> int(binarise_maps(maps, "global", threshold=0.3)[0].sum()), int(binarise_maps(maps, "otsu")[0].sum())
    (8, 4)
    """
    if method not in BINARISATIONS:
        raise ValueError(f"method must be one of {BINARISATIONS}, got {method!r}")
    norm = normalise_maps(maps)
    n = len(norm)
    if method == "global":
        return norm >= threshold, np.full(n, float(threshold))
    if method == "otsu":
        used = np.array([otsu_threshold(m) for m in norm])
        return norm >= used[:, None, None], used
    thresholds = np.asarray(thresholds, np.float64)
    select_with = resolve_refinement(select_with)
    if select_with == "none":
        raise ValueError("the adaptive threshold needs a refinement to select with (crf, morph or auto)")
    if select_with == "crf" and images is None:
        select_with = "morph"
    scores = np.zeros((n, len(thresholds)))
    for j, t in enumerate(thresholds):
        cand = norm >= t
        refined = refine_masks(cand, images, select_with)
        inter = (cand & refined).sum((1, 2))
        union = (cand | refined).sum((1, 2))
        scores[:, j] = np.where(union == 0, 0.0, inter / np.maximum(union, 1))
    used = thresholds[np.argmax(scores, axis=1)]
    return norm >= used[:, None, None], used


def object_ious(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """IoU of each pair ``(pred[i], truth[i])`` of ``(n, H, W)`` masks (1.0 where both are empty).

    >>> p = np.zeros((2, 2, 2), bool); p[0, 0] = True
    >>> t = np.zeros((2, 2, 2), bool); t[0, :, 0] = True
    >>> object_ious(p, t).tolist()
    [0.3333333333333333, 1.0]
    """
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {truth.shape}")
    inter = (pred & truth).sum((-1, -2))
    union = (pred | truth).sum((-1, -2))
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def class_ious(pred: np.ndarray, truth: np.ndarray, classes) -> dict[str, float]:
    """Per-class IoU of object masks, pooled over the dataset: Σ intersections / Σ unions per class.

    This is how semantic-segmentation benchmarks (VOC, DiffuMask) count: a class's IoU is one
    ratio over all its pixels, so large objects weigh more than in a mean of per-object IoUs.
    Classes come back in order of first appearance.

    >>> p = np.zeros((3, 1, 4), bool); p[0, 0, :2] = True; p[1, 0, :1] = True; p[2, 0, :] = True
    >>> t = np.zeros((3, 1, 4), bool); t[0, 0, :1] = True; t[1, 0, :1] = True; t[2, 0, :2] = True
    >>> class_ious(p, t, ["cat", "cat", "dog"])  # cat: (1 + 1) / (2 + 1); dog: 2 / 4
    {'cat': 0.6666666666666666, 'dog': 0.5}
    """
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape or len(classes) != len(pred):
        raise ValueError("pred, truth and classes must describe the same objects")
    inter = (pred & truth).sum((-1, -2))
    union = (pred | truth).sum((-1, -2))
    labels = np.asarray(list(classes))
    out = {}
    for c in dict.fromkeys(labels.tolist()):
        sel = labels == c
        u = union[sel].sum()
        out[c] = 1.0 if u == 0 else float(inter[sel].sum() / u)
    return out


def mask_scores(pred: np.ndarray, truth: np.ndarray, classes) -> dict[str, float]:
    """The two summaries used in the book for object masks.

    ``object_miou``: mean over objects of each object's IoU; ``class_miou``: mean over classes of
    the pooled per-class IoU (:func:`class_ious`), the VOC-style number.
    """
    per_class = class_ious(pred, truth, classes)
    return {
        "object_miou": float(np.mean(object_ious(pred, truth))) if len(pred) else float("nan"),
        "class_miou": float(np.mean(list(per_class.values()))) if per_class else float("nan"),
    }


def confusion_matrix(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` pixel counts, rows = true class, columns = predicted class.

    >>> confusion_matrix(np.array([[0, 1], [1, 1]]), np.array([[0, 0], [1, 1]]), 2).tolist()
    [[1, 1], [0, 2]]
    """
    pred, truth = np.asarray(pred).ravel().astype(np.int64), np.asarray(truth).ravel().astype(np.int64)
    if pred.shape != truth.shape:
        raise ValueError("pred and truth must have the same number of pixels")
    if pred.size and (min(pred.min(), truth.min()) < 0 or max(pred.max(), truth.max()) >= n_classes):
        raise ValueError(f"class ids must lie in [0, {n_classes})")
    return np.bincount(truth * n_classes + pred, minlength=n_classes**2).reshape(n_classes, n_classes)


def ious_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU ``TP / (TP + FP + FN)`` from a confusion matrix; NaN for a class that is
    neither in the truth nor predicted (it is left out of the mean, as in VOC).

    >>> ious_from_confusion(np.array([[1, 1], [0, 2]])).tolist()
    [0.5, 0.6666666666666666]
    """
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def semantic_scores(pred: np.ndarray, truth: np.ndarray, names=None) -> dict:
    """Semantic-segmentation scores of class-id maps (0 = background, i + 1 = ``world.CLASSES``[i]).

    Returns ``{"miou": ..., "miou_objects": ..., "pixel_accuracy": ..., "per_class": {name: IoU}}``:
    ``miou`` averages the classes present (background included, as in VOC's 21 classes),
    ``miou_objects`` leaves the background out.
    """
    names = ["background", *world.CLASSES] if names is None else list(names)
    cm = confusion_matrix(pred, truth, len(names))
    ious = ious_from_confusion(cm)
    present = ~np.isnan(ious)
    return {
        "miou": float(np.nanmean(ious)) if present.any() else float("nan"),
        "miou_objects": float(np.nanmean(ious[1:])) if present[1:].any() else float("nan"),
        "pixel_accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "per_class": {n: float(v) for n, v, p in zip(names, ious, present) if p},
    }


# ----------------------------------------------------------------------------- method comparison


def evaluate_mask_methods(maps: np.ndarray, masks: np.ndarray, classes, images: np.ndarray,
                          methods=BINARISATIONS, refinements=("none", "auto"), threshold: float = 0.5,
                          thresholds=ADAPTIVE_THRESHOLDS):
    """mIoU of every (binarisation, refinement) pair on object maps with their true masks.

    ``images`` holds the image of each map (``(n, H, W, 3)`` uint8, repeated for maps of the same
    image). Returns a DataFrame indexed by ``(method, refinement)`` with ``object_miou``,
    ``class_miou`` and one column per class (pooled IoU), plus the mean threshold used.
    """
    import pandas as pd

    rows = []
    for method in methods:
        binary, used = binarise_maps(maps, method, threshold, thresholds, images)
        for ref in refinements:
            ref_name = resolve_refinement(ref)
            pred = refine_masks(binary, images, ref_name)
            rows.append({"method": method, "refinement": ref_name, **mask_scores(pred, masks, classes),
                         "mean_threshold": float(np.mean(used)) if len(used) else float("nan"),
                         **class_ious(pred, masks, classes)})
    return pd.DataFrame(rows).set_index(["method", "refinement"])


def baseline_scores(masks: np.ndarray, classes, method: str = "otsu", threshold: float = 0.5,
                    sigma: float = 0.25) -> dict[str, dict[str, float]]:
    """Scores of maps that ignore the image: ``uniform`` (the whole image is the object: the only
    mask a constant map gives) and ``centre prior`` (a centred Gaussian, binarised by ``method``)."""
    masks = np.asarray(masks, bool)
    n, h, w = masks.shape
    whole = np.ones_like(masks)
    prior = np.broadcast_to(centre_prior((h, w), sigma), (n, h, w))
    prior_masks = binarise_maps(prior, method if method != "adaptive" else "otsu", threshold)[0]
    return {"uniform": mask_scores(whole, masks, classes), "centre prior": mask_scores(prior_masks, masks, classes)}


# ----------------------------------------------------------------------------- layers, steps, models


def cross_attention_levels(unet) -> list[tuple[str, int]]:
    """The ``(block, factor)`` pairs at which ``unet`` has cross-attention, ``factor`` being the
    downsampling relative to the latent (1 = latent resolution), in down-mid-up order.

    >>> from stablesemantics.pipelines import load_pipeline
    >>> cross_attention_levels(load_pipeline("tiny-random", device="cpu").unet)
    [('down', 1), ('down', 2), ('mid', 2), ('up', 2), ('up', 1)]
    """
    from diffusers.models.attention_processor import Attention

    n_levels = len(unet.config.block_out_channels)
    found = []
    for name, module in unet.named_modules():
        if not (isinstance(module, Attention) and module.is_cross_attention):
            continue
        parts = name.split(".")
        if parts[0] == "down_blocks":
            level = ("down", 2 ** int(parts[1]))
        elif parts[0] == "up_blocks":
            level = ("up", 2 ** (n_levels - 1 - int(parts[1])))
        elif parts[0] == "mid_block":
            level = ("mid", 2 ** (n_levels - 1))
        else:
            continue
        if level not in found:
            found.append(level)
    return found


def window_timesteps(pipe, steps: int, strength: float, t_range: tuple[float, float]) -> tuple[int, int]:
    """The (first, last) scheduler timesteps that an img2img run of ``steps`` at ``strength`` keeps
    under ``CaptureConfig(t_range=t_range)`` (first = noisiest, on the 0–1000 training scale)."""
    from .attention import CaptureConfig

    sched = pipe.scheduler.__class__.from_config(pipe.scheduler.config)
    sched.set_timesteps(steps)
    n_run = min(int(steps * strength), steps)
    run = [int(t) for t in sched.timesteps[steps - n_run:]]
    cfg = CaptureConfig(t_range=tuple(t_range))
    kept = [t for i, t in enumerate(run) if cfg.keeps_step(i, len(run))]
    if not kept:
        raise ValueError(f"t_range {t_range} keeps no step of {len(run)}")
    return kept[0], kept[-1]


def random_weights_pipeline(pipe, seed: int = 0):
    """A copy of ``pipe`` whose UNet and text encoder are re-initialised at random (same architecture,
    same tokenizer, VAE and scheduler): the untrained-model baseline of the localisation numbers."""
    from diffusers import StableDiffusionPipeline

    torch.manual_seed(seed)
    unet = type(pipe.unet).from_config(pipe.unet.config)
    torch.manual_seed(seed)
    text_encoder = type(pipe.text_encoder)(pipe.text_encoder.config)
    comps = {**pipe.components, "unet": unet.to(pipe.device, pipe.unet.dtype).eval(),
             "text_encoder": text_encoder.to(pipe.device, pipe.text_encoder.dtype).eval()}
    out = StableDiffusionPipeline(**{k: v for k, v in comps.items() if k != "requires_safety_checker"},
                                  requires_safety_checker=False)
    out.set_progress_bar_config(disable=True)
    return out


def localisation_sweep(pipe, scenes: list, configs: dict, strength: float = 0.6, steps: int = 25,
                       guidance: float = 1.0, seed: int = 0, batch_size: int = 16, method: str = "otsu",
                       timestep: int | None = None):
    """Localisation of each capture setting on rendered scenes (same scenes, seeds and noise for all).

    ``configs`` maps a label to a :class:`~stablesemantics.attention.CaptureConfig`, or to a pair
    ``(CaptureConfig, timestep)``. A plain config runs :func:`rendered_scene_maps` (an img2img run
    at ``strength``) unless ``timestep`` is given; a pair, or any config when ``timestep`` is given,
    runs the one-call probe :func:`noised_scene_maps` at that timestep (the scenes are encoded
    once for all such settings). Capturing does not change the denoising, so the settings differ
    only in the layers and steps they read.

    Returns a DataFrame with one row per label: ``best_global_miou`` (object mIoU at the best
    single threshold, tuned on these maps: an upper bound for global thresholds), its threshold,
    the object and class mIoU of ``method``, and the timestep (``None`` for img2img runs).
    """
    import pandas as pd

    latents = None
    rows = []
    for label, setting in configs.items():
        capture, t = setting if isinstance(setting, tuple) else (setting, timestep)
        if t is None:
            om = rendered_scene_maps(pipe, scenes, strength=strength, steps=steps, guidance=guidance,
                                     capture=capture, seed=seed, batch_size=batch_size)
        else:
            if latents is None:
                latents = encode_scenes(pipe, scenes, batch_size)
            om = noised_scene_maps(pipe, scenes, int(t), capture, seed=seed, batch_size=batch_size, latents=latents)
        best, thr = best_threshold_miou(om.maps, om.masks)
        pred = binarise_maps(om.maps, method)[0]
        rows.append({"setting": label, "best_global_miou": best, "best_threshold": thr,
                     **{f"{method}_{k}": v for k, v in mask_scores(pred, om.masks, om.classes).items()},
                     "timestep": None if t is None else int(t), "n_objects": len(om.maps)})
    return pd.DataFrame(rows).set_index("setting")


# ----------------------------------------------------------------------------- generated images


@dataclass
class GeneratedMaps:
    """Generated images with one attention map per prompted object (no ground truth)."""

    images: np.ndarray  # (n_images, H, W, 3) uint8
    maps: np.ndarray  # (n_objects, H, W) float, resized to the image size
    classes: list[str]  # the class each object phrase names
    image_index: np.ndarray  # (n_objects,) which image each map belongs to
    prompts: list[str]


def generated_object_maps(pipe, scenes: list, steps: int = 20, guidance: float = 7.5, capture=None,
                          seed: int = 0, batch_size: int = 16, height: int | None = None,
                          width: int | None = None) -> GeneratedMaps:
    """Generate one image per scene caption and capture each object phrase's map.

    The scenes only supply prompts and the classes their phrases name (``object_spans``); nothing
    of the rendered image is used. Image ``i`` uses the generator seed ``seed + i``.
    """
    from .attention import CaptureConfig, capture_cross_attention

    capture = capture or CaptureConfig()
    size = scenes[0].image.shape[0] if scenes else 64
    height, width = height or size, width or size
    images, maps, classes, where = [], [], [], []
    for start in range(0, len(scenes), batch_size):
        part = scenes[start : start + batch_size]
        gens = [torch.Generator(device=pipe.device).manual_seed(seed + start + i) for i in range(len(part))]
        with capture_cross_attention(pipe, capture) as cap:
            out = pipe(prompt=[s.caption for s in part], num_inference_steps=steps, guidance_scale=guidance,
                       generator=gens, height=height, width=width, output_type="np")
        images.append((np.clip(out.images, 0, 1) * 255).round().astype(np.uint8))
        token_maps = cap.maps.float().cpu()
        for i, scene in enumerate(part):
            keep, m = _phrase_maps(pipe, scene, token_maps[i], (height, width))
            if not keep:
                continue
            maps.append(m)
            classes.extend(scene.objects[k].cls for k in keep)
            where.extend([start + i] * len(keep))
    return GeneratedMaps(np.concatenate(images), np.concatenate(maps) if maps else np.zeros((0, height, width)),
                         classes, np.asarray(where, np.int64), [s.caption for s in scenes])


def class_ids(classes) -> np.ndarray:
    """Class names → ids of the class masks (``world.CLASSES`` index + 1; 0 is the background)."""
    return np.asarray([world.CLASS_INDEX[c] + 1 for c in classes], np.int64)


def segmenter_object_masks(class_masks: np.ndarray, classes, image_index) -> np.ndarray:
    """Each object's mask from predicted class masks: the pixels of its image given its class."""
    return np.asarray(class_masks)[np.asarray(image_index)] == class_ids(classes)[:, None, None]


def synthetic_class_masks(images: np.ndarray, maps: np.ndarray, classes, image_index,
                          method: str = "adaptive", refinement: str = "auto", threshold: float = 0.5,
                          thresholds=ADAPTIVE_THRESHOLDS) -> np.ndarray:
    """DiffuMask's annotation step: class masks ``(n_images, H, W)`` int16 from object maps.

    Each object map is binarised (``method``) and refined (``refinement``) into the object's mask;
    where the masks of two objects overlap, the object whose normalised map is higher wins; the
    rest is background (0).
    """
    images = np.asarray(images)
    image_index = np.asarray(image_index)
    per_map_images = images[image_index]
    binary = binarise_maps(maps, method, threshold, thresholds, per_map_images)[0]
    binary = refine_masks(binary, per_map_images, refinement)
    score = np.where(binary, normalise_maps(maps), -1.0)
    out = np.zeros(images.shape[:3], np.int16)
    best = np.full(images.shape[:3], -1.0)
    ids = class_ids(classes)
    for k in range(len(maps)):
        i = image_index[k]
        win = score[k] > best[i]
        out[i][win] = ids[k]
        best[i][win] = score[k][win]
    return out


def resize_pairs(images: np.ndarray, masks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize ``(n, H, W, 3)`` images (area averaging) and ``(n, H, W)`` class masks (nearest) to ``size``²."""
    from .captioning import resize_images

    images, masks = np.asarray(images), np.asarray(masks)
    if images.shape[1:3] == (size, size):
        return images, masks
    m = torch.from_numpy(masks.astype(np.float32))[:, None]
    m = F.interpolate(m, size=(size, size), mode="nearest")[:, 0].numpy().astype(masks.dtype)
    return resize_images(images, size), m


def evaluate_segmenter(model: SmallSegmenter, images: np.ndarray, masks: np.ndarray) -> dict:
    """:func:`semantic_scores` of a segmenter's predictions on images with true class masks."""
    return semantic_scores(predict_classes(model, images), masks)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Train the MicroWorld reference segmenter.")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--background-weight", type=float, default=0.3)
    parser.add_argument("--no-flip", dest="flip", action="store_false")
    parser.add_argument("--degrade", type=float, default=0.5, help="share of each batch blurred")
    parser.add_argument("--out", type=Path, default=REFERENCE_DIR)
    parser.add_argument("--ckpt-dir", type=Path, default=None, help="where checkpoints go (default: the project's cache folder)")
    args = parser.parse_args()
    print(train_reference_segmenter(args.steps, args.out, args.width, args.background_weight, args.flip, args.degrade, args.ckpt_dir))
