"""The token grounding loss: a phrase's cross-attention mass inside its object's mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

from stablesemantics.capture.capture import CrossAttentionCapture
from stablesemantics.capture.config import layer_grid
from stablesemantics.training.data import Batch


def attention_recorder(unet: UNet2DConditionModel) -> CrossAttentionCapture:
    """A capture on the bare UNet that keeps every cross-attention layer's probabilities, gradients included.

    Install it (``.install()`` or ``with``), call the UNet, read ``.layer_probs``; ``.reset()``
    before the next call. Self-attention keeps its fused kernel.
    """
    return CrossAttentionCapture(unet, keep_layer_probs=True)


def layer_object_maps(heads: int, probs: torch.Tensor, token_weights: torch.Tensor, latent_hw: tuple[int, int]):
    """Mean-over-heads attention of each object phrase at one layer: (B, K, h, w)."""
    b = token_weights.shape[0]
    nq = probs.shape[1]
    h, w, _ = layer_grid(latent_hw, nq)
    mean = probs.view(b, heads, nq, -1).mean(1)  # (B, Nq, 77)
    return torch.einsum("bqt,bkt->bkq", mean, token_weights).view(b, -1, h, w)


def grounding_loss(layer_probs: list, batch: Batch, latent_hw: tuple[int, int]) -> torch.Tensor:
    """TokenCompose-style token loss: each phrase's attention mass should lie inside its mask."""
    if not batch.valid.any():
        return torch.zeros(())
    losses = []
    for layer, probs in layer_probs:
        maps = layer_object_maps(layer.heads, probs, batch.token_weights, latent_hw)
        maps = maps / maps.sum((-1, -2), keepdim=True).clamp_min(1e-8)
        masks = F.adaptive_avg_pool2d(batch.masks, maps.shape[-2:])
        inside = (maps * masks).sum((-1, -2))
        losses.append(((1 - inside) ** 2)[batch.valid].mean())
    return torch.stack(losses).mean()
