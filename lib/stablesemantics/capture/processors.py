"""The attention processor that records cross-attention probabilities while computing the layer's output."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from diffusers.models.attention_processor import (
    Attention,
    AttnProcessor,
    AttnProcessor2_0,
    AttnProcessorNPU,
    SlicedAttnProcessor,
    XFormersAttnProcessor,
    XLAFlashAttnProcessor2_0,
)

from stablesemantics.capture.config import LayerInfo

if TYPE_CHECKING:  # the capture owns its processors; only the type is needed here
    from stablesemantics.capture.capture import CrossAttentionCapture

# Processors whose cross-attention is plain softmax(q k^T * scale) v, differing only in the kernel:
# replacing them by the explicit computation changes nothing but rounding. Anything else (IP-Adapter,
# custom diffusion, fused projections, ...) computes something else, so capturing refuses it.
_PLAIN_PROCESSORS = (
    AttnProcessor,
    AttnProcessor2_0,
    AttnProcessorNPU,
    SlicedAttnProcessor,
    XFormersAttnProcessor,
    XLAFlashAttnProcessor2_0,
)


class _CaptureProcessor:
    """Cross-attention with explicit softmax, structured exactly like diffusers' ``AttnProcessor2_0``.

    Copied from ``diffusers.models.attention_processor.AttnProcessor2_0.__call__`` with one change:
    ``F.scaled_dot_product_attention`` is replaced by ``attn.get_attention_scores`` (diffusers' own
    explicit softmax, upcasting included) and a ``bmm``, so that the probabilities can be handed to
    the capture. Everything else (norms, projections, residual, rescaling) is diffusers' code.

    Calls that are not captured (self-attention, layers or steps filtered out) go to the layer's
    original processor, so they keep its fused kernel.
    """

    def __init__(self, capture: CrossAttentionCapture, layer: LayerInfo, original: Any) -> None:
        self.capture = capture
        self.layer = layer
        self.original = original

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        n_queries = hidden_states.shape[1] if hidden_states.ndim == 3 else math.prod(hidden_states.shape[2:])
        grid = self.capture._grid(n_queries) if encoder_hidden_states is not None else None
        if grid is None:
            if temb is not None:  # not every processor takes temb (SlicedAttnProcessor does not)
                kwargs["temb"] = temb
            return self.original(
                attn,
                hidden_states,
                encoder_hidden_states=encoder_hidden_states,
                attention_mask=attention_mask,
                **kwargs,
            )

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)

        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)

        batch_size, sequence_length, _ = encoder_hidden_states.shape
        if attention_mask is not None:
            # (batch * heads, 1 or n_queries, n_tokens): broadcast over queries by get_attention_scores
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)

        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)

        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        # The one change from AttnProcessor2_0: softmax(q k^T * scale) explicitly instead of SDPA,
        # with diffusers' own numerics (upcasting included), so the probabilities can be kept.
        bh = batch_size * attn.heads
        probs = attn.get_attention_scores(
            query.reshape(bh, -1, head_dim), key.reshape(bh, -1, head_dim), attention_mask
        )
        hidden_states = torch.bmm(probs, value.reshape(bh, -1, head_dim))
        self.capture._add(probs, self.layer, grid)

        hidden_states = hidden_states.view(batch_size, attn.heads, -1, head_dim)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)

        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)

        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        hidden_states = hidden_states / attn.rescale_output_factor
        return hidden_states
