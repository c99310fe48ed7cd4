"""Image arrays ↔ tensors: the one conversion every model of the project uses."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(n, H, W, 3) uint8 → (n, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """(n, 3, H, W) float in [-1, 1] → (n, H, W, 3) uint8; the inverse of :func:`images_to_tensor`."""
    return ((x.detach().clamp(-1, 1).permute(0, 2, 3, 1).cpu() + 1) * 127.5).round().byte().numpy()


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """``(n, H, W, 3)`` uint8 → ``(n, size, size, 3)`` uint8 by area averaging (or bilinear upscaling)."""
    images = np.asarray(images)
    if images.shape[1:3] == (size, size):
        return images
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    mode = "area" if size <= min(images.shape[1:3]) else "bilinear"
    y = F.interpolate(x, size=(size, size), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
    return y.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def images_to_uint8(images: np.ndarray) -> np.ndarray:
    """A pipeline's ``output_type="np"`` images (float in [0, 1]) → uint8, rounded as diffusers' ``numpy_to_pil``."""
    return (np.asarray(images, dtype=np.float32) * 255).round().clip(0, 255).astype(np.uint8)
