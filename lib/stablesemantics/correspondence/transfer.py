"""Inference: where an optimised conditioning's token attends in a target image, and the predicted point."""

from __future__ import annotations

import numpy as np
import torch

from stablesemantics.correspondence.attention import encode_pixels, noise_latents, pixels_of, token_attention
from stablesemantics.correspondence.config import CorrespondenceConfig
from stablesemantics.correspondence.geometry import (
    argmax_points,
    crop_boxes,
    crop_images,
    maps_from_crops,
    soft_argmax_points,
)


@torch.no_grad()
def transfer_maps(
    pipe,
    images: np.ndarray,
    embeddings: torch.Tensor,
    image_index: np.ndarray,
    config: CorrespondenceConfig | None = None,
) -> torch.Tensor:
    """Attention maps ``(n_points, S, S)`` of optimised conditionings in their target images.

    ``embeddings`` ``(n_points, restarts, n_tokens, dim)`` from
    :func:`~stablesemantics.correspondence.optimise_embeddings`; point ``i`` is looked for in
    ``images[image_index[i]]``. Each image is seen through ``config.n_crops`` crops (the first
    four in the corners, the rest at seeded random places; the paper moves later crops around
    the running argmax instead), each crop noised to ``config.timestep``; every crop's map is put
    back in image coordinates and the maps are averaged where they overlap, then over restarts.
    """
    config = config or CorrespondenceConfig()
    gen = torch.Generator().manual_seed(config.seed + 1)
    pixels = pixels_of(images)
    size = pixels.shape[-1]
    index = np.asarray(image_index, dtype=np.int64).reshape(-1)
    n_points, restarts = embeddings.shape[:2]
    out = torch.zeros((n_points, size, size))
    for img in np.unique(index):
        rows = np.flatnonzero(index == img)
        boxes = crop_boxes(config.n_crops, size, config.crop_fraction, gen, corners_first=True)
        latents = encode_pixels(pipe, crop_images(pixels[img : img + 1].expand(config.n_crops, -1, -1, -1), boxes))
        cond = embeddings[torch.as_tensor(rows)].reshape(-1, *embeddings.shape[2:])  # (rows * restarts, T, D)
        total = torch.zeros((len(cond), size, size))
        count = torch.zeros((1, size, size))
        for k in range(config.n_crops):
            for lo in range(0, len(cond), config.batch_size):
                part = cond[lo : lo + config.batch_size].to(pipe.device)
                noisy, t = noise_latents(pipe, latents[k : k + 1].expand(len(part), -1, -1, -1), config.timestep, gen)
                maps = token_attention(pipe.unet, noisy, t, part, config.capture, config.token, size).float().cpu()
                placed, _ = maps_from_crops(maps, boxes[k : k + 1].expand(len(part), -1), size)
                total[lo : lo + len(part)] += placed
            count += maps_from_crops(torch.ones((1, size, size)), boxes[k : k + 1], size)[1]
        mean = total / count.clamp_min(1e-6)
        out[torch.as_tensor(rows)] = mean.view(len(rows), restarts, size, size).mean(1)
    return out


def predict_points(maps: torch.Tensor, soft_beta: float = 50.0) -> dict[str, np.ndarray]:
    """Predicted points from maps ``(n, S, S)``: ``{"argmax": (n, 2), "soft_argmax": (n, 2)}`` as ``(x, y)``.

    >>> m = torch.zeros(1, 8, 8); m[0, 2, 5] = 1.0
    >>> predict_points(m)["argmax"].tolist()
    [[5.5, 2.5]]
    """
    return {
        "argmax": argmax_points(maps).numpy(),
        "soft_argmax": soft_argmax_points(maps, soft_beta).numpy(),
    }
