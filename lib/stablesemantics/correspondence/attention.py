"""One token's cross-attention map of noised images under given conditionings, gradients included."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stablesemantics.capture.capture import CrossAttentionCapture
from stablesemantics.capture.config import CaptureConfig, layer_grid
from stablesemantics.images import images_to_tensor


@torch.no_grad()
def encode_pixels(pipe, pixels: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Scaled VAE latent means of images ``(n, 3, S, S)`` in [-1, 1] (what the UNet denoises)."""
    out = []
    for start in range(0, len(pixels), batch_size):
        x = pixels[start : start + batch_size].to(pipe.device, pipe.vae.dtype)
        out.append(pipe.vae.encode(x).latent_dist.mean.float() * pipe.vae.config.scaling_factor)
    return torch.cat(out)


def pixels_of(images: np.ndarray) -> torch.Tensor:
    """``(n, S, S, 3)`` uint8 images as ``(n, 3, S, S)`` float in [-1, 1], checking that they are square."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise ValueError(f"need square images (n, S, S, 3), got shape {images.shape}")
    return images_to_tensor(images)


def noise_latents(
    pipe, latents: torch.Tensor, timestep: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``latents`` with Gaussian noise at ``timestep`` (the scheduler's ``add_noise``), and the timestep tensor."""
    noise = torch.randn(latents.shape, generator=generator).to(latents.device)
    t = torch.full((latents.shape[0],), int(timestep), dtype=torch.long, device=latents.device)
    return pipe.scheduler.add_noise(latents, noise, t), t


def token_attention(
    unet: torch.nn.Module,
    noisy: torch.Tensor,
    t: torch.Tensor,
    conditioning: torch.Tensor,
    capture: CaptureConfig,
    token: int,
    size: int,
) -> torch.Tensor:
    """Attention of token ``token`` over the image, ``(batch, size, size)``, differentiable in ``conditioning``.

    One UNet call on ``noisy`` ``(batch, 4, h, w)`` with ``conditioning`` ``(batch, n_tokens, dim)``
    as encoder hidden states, through the project's capture (``keep_layer_probs``): each selected
    layer's probabilities are averaged over heads, the token's column is upsampled bilinearly to
    ``size × size``, and the layers are averaged.
    """
    latent_hw = (int(noisy.shape[-2]), int(noisy.shape[-1]))
    with CrossAttentionCapture(unet, capture, keep_layer_probs=True) as cap:
        unet(noisy.to(unet.dtype), t, encoder_hidden_states=conditioning.to(unet.dtype))
    if not cap.layer_probs:
        raise ValueError(f"no cross-attention layer matches {capture}")
    b = noisy.shape[0]
    maps = []
    for layer, probs in cap.layer_probs:
        n_queries = probs.shape[1]
        h, w, _ = layer_grid(latent_hw, n_queries)
        column = probs.view(b, layer.heads, n_queries, -1)[..., token].float().mean(1).view(b, 1, h, w)
        maps.append(F.interpolate(column, size=(size, size), mode="bilinear", align_corners=False)[:, 0])
    return torch.stack(maps).mean(0)
