"""The token grounding loss: a phrase's cross-attention mass inside its object's mask."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from stablesemantics.training.data import Batch

# ----------------------------------------------------------------------------- attention


class RecordingProcessor(AttnProcessor):
    """Computes cross-attention explicitly (so it has gradients) and records the probabilities.

    Self-attention keeps the fused SDPA kernel. Each cross-attention call appends its
    ``(batch*heads, queries, 77)`` probabilities to ``sink``.
    """

    def __init__(self, sink: list[tuple[int, torch.Tensor]]):
        super().__init__()
        self.sink = sink
        self.fused = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        if encoder_hidden_states is None:
            return self.fused(attn, hidden_states, None, attention_mask, temb)
        scores = attn.get_attention_scores

        def recorded(query, key, mask=None):
            probs = scores(query, key, mask)
            self.sink.append((attn.heads, probs))
            return probs

        attn.get_attention_scores = recorded
        try:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        finally:
            del attn.get_attention_scores


def install_recorder(unet: UNet2DConditionModel) -> list[tuple[int, torch.Tensor]]:
    sink: list[tuple[int, torch.Tensor]] = []
    unet.set_attn_processor(RecordingProcessor(sink))
    return sink


def layer_object_maps(heads: int, probs: torch.Tensor, token_weights: torch.Tensor, latent_hw: tuple[int, int]):
    """Mean-over-heads attention of each object phrase at one layer: (B, K, h, w)."""
    b = token_weights.shape[0]
    nq = probs.shape[1]
    scale = round(math.sqrt(latent_hw[0] * latent_hw[1] / nq))
    h, w = latent_hw[0] // scale, latent_hw[1] // scale
    mean = probs.view(b, heads, nq, -1).mean(1)  # (B, Nq, 77)
    return torch.einsum("bqt,bkt->bkq", mean, token_weights).view(b, -1, h, w)


def grounding_loss(sink, batch: Batch, latent_hw: tuple[int, int]) -> torch.Tensor:
    """TokenCompose-style token loss: each phrase's attention mass should lie inside its mask."""
    if not batch.valid.any():
        return torch.zeros(())
    losses = []
    for heads, probs in sink:
        maps = layer_object_maps(heads, probs, batch.token_weights, latent_hw)
        maps = maps / maps.sum((-1, -2), keepdim=True).clamp_min(1e-8)
        masks = F.adaptive_avg_pool2d(batch.masks, maps.shape[-2:])
        inside = (maps * masks).sum((-1, -2))
        losses.append(((1 - inside) ** 2)[batch.valid].mean())
    return torch.stack(losses).mean()
