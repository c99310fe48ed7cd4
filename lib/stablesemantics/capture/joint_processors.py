"""Processors that record joint-attention text probabilities (SD3, Flux) while computing the layer's output.

One class per attention kind, each a copy of the diffusers processor it replaces with one change:
the attention call returns each query row's log-sum-exp too (:func:`attention_with_lse`), from which
the image queries' probabilities on the text keys, softmaxed over the whole joint key set, are
handed to the capture (:func:`text_probabilities`); the image x image probabilities are never
formed. Parameter names are the originals' (Flux's attention module passes keyword arguments by
the processor's signature). Calls the capture does not keep go to the original processor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_flux import _get_qkv_projections

from stablesemantics.capture.config import LayerInfo
from stablesemantics.capture.lse import attention_with_lse

if TYPE_CHECKING:  # the capture owns its processors; only the type is needed here
    from stablesemantics.capture.joint import JointAttentionCapture


class JointAttnCaptureProcessor:
    """SD3's joint attention over ``[image | text]``, recording text probabilities.

    Copied from ``diffusers.models.attention_processor.JointAttnProcessor2_0.__call__``; the one
    change is ``F.scaled_dot_product_attention`` -> :func:`attention_with_lse` plus the hand-over.
    SD3.5's image-only attention (``encoder_hidden_states=None``) is not captured.
    """

    def __init__(self, capture: JointAttentionCapture, layer: LayerInfo, original: Any) -> None:
        self.capture = capture
        self.layer = layer
        self.original = original

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.FloatTensor,
        encoder_hidden_states: torch.FloatTensor = None,
        attention_mask: torch.FloatTensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.FloatTensor:
        if encoder_hidden_states is None or attention_mask is not None or not self.capture._keeps_call():
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        residual = hidden_states

        batch_size = hidden_states.shape[0]

        # `sample` projections.
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)

        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads

        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)

        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        # `context` projections.
        encoder_hidden_states_query_proj = attn.add_q_proj(encoder_hidden_states)
        encoder_hidden_states_key_proj = attn.add_k_proj(encoder_hidden_states)
        encoder_hidden_states_value_proj = attn.add_v_proj(encoder_hidden_states)

        encoder_hidden_states_query_proj = encoder_hidden_states_query_proj.view(
            batch_size, -1, attn.heads, head_dim
        ).transpose(1, 2)
        encoder_hidden_states_key_proj = encoder_hidden_states_key_proj.view(
            batch_size, -1, attn.heads, head_dim
        ).transpose(1, 2)
        encoder_hidden_states_value_proj = encoder_hidden_states_value_proj.view(
            batch_size, -1, attn.heads, head_dim
        ).transpose(1, 2)

        if attn.norm_added_q is not None:
            encoder_hidden_states_query_proj = attn.norm_added_q(encoder_hidden_states_query_proj)
        if attn.norm_added_k is not None:
            encoder_hidden_states_key_proj = attn.norm_added_k(encoder_hidden_states_key_proj)

        n_image = query.shape[2]
        query = torch.cat([query, encoder_hidden_states_query_proj], dim=2)
        key = torch.cat([key, encoder_hidden_states_key_proj], dim=2)
        value = torch.cat([value, encoder_hidden_states_value_proj], dim=2)

        # The one change: the kernel's log-sum-exp gives the text probabilities ([image | text] order).
        hidden_states, lse = attention_with_lse(query, key, value)
        self.capture._add_joint(query[:, :, :n_image], key[:, :, n_image:], lse[:, :, :n_image], self.layer)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)

        # Split the attention outputs.
        hidden_states, encoder_hidden_states = (
            hidden_states[:, : residual.shape[1]],
            hidden_states[:, residual.shape[1] :],
        )
        if not attn.context_pre_only:
            encoder_hidden_states = attn.to_add_out(encoder_hidden_states)

        # linear proj
        hidden_states = attn.to_out[0](hidden_states)
        # dropout
        hidden_states = attn.to_out[1](hidden_states)

        return hidden_states, encoder_hidden_states


class FluxAttnCaptureProcessor:
    """Flux's attention over ``[text | image]`` (RoPE applied), recording text probabilities.

    Copied from ``diffusers.models.transformers.transformer_flux.FluxAttnProcessor.__call__``; the one
    change is ``dispatch_attention_fn`` (the native backend: SDPA on ``(batch, heads, n, d)``) ->
    :func:`attention_with_lse` plus the hand-over. Double-stream blocks pass the text as
    ``encoder_hidden_states``; single-stream blocks pass the concatenation as ``hidden_states`` and
    ``encoder_hidden_states=None``, so the text length comes from the capture (the transformer's
    ``encoder_hidden_states``, read by its pre-hook).
    """

    def __init__(self, capture: JointAttentionCapture, layer: LayerInfo, original: Any) -> None:
        self.capture = capture
        self.layer = layer
        self.original = original

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if attention_mask is not None or not self.capture._keeps_call():
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
        query, key, value, encoder_query, encoder_key, encoder_value = _get_qkv_projections(
            attn, hidden_states, encoder_hidden_states
        )

        query = query.unflatten(-1, (-1, attn.head_dim))
        key = key.unflatten(-1, (-1, attn.head_dim))
        value = value.unflatten(-1, (-1, attn.head_dim))

        query = attn.norm_q(query)
        key = attn.norm_k(key)

        if attn.added_kv_proj_dim is not None:
            encoder_query = encoder_query.unflatten(-1, (-1, attn.head_dim))
            encoder_key = encoder_key.unflatten(-1, (-1, attn.head_dim))
            encoder_value = encoder_value.unflatten(-1, (-1, attn.head_dim))

            encoder_query = attn.norm_added_q(encoder_query)
            encoder_key = attn.norm_added_k(encoder_key)

            query = torch.cat([encoder_query, query], dim=1)
            key = torch.cat([encoder_key, key], dim=1)
            value = torch.cat([encoder_value, value], dim=1)

        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)

        # The one change: SDPA with the log-sum-exp, as the native backend calls it ([text | image] order).
        n_text = encoder_hidden_states.shape[1] if encoder_hidden_states is not None else self.capture.text_length
        query, key, value = (x.permute(0, 2, 1, 3) for x in (query, key, value))
        hidden_states, lse = attention_with_lse(query, key, value)
        self.capture._add_joint(query[:, :, n_text:], key[:, :, :n_text], lse[:, :, n_text:], self.layer)
        hidden_states = hidden_states.permute(0, 2, 1, 3)
        hidden_states = hidden_states.flatten(2, 3)
        hidden_states = hidden_states.to(query.dtype)

        if encoder_hidden_states is not None:
            encoder_hidden_states, hidden_states = hidden_states.split_with_sizes(
                [encoder_hidden_states.shape[1], hidden_states.shape[1] - encoder_hidden_states.shape[1]], dim=1
            )
            hidden_states = attn.to_out[0](hidden_states.contiguous())
            hidden_states = attn.to_out[1](hidden_states)
            encoder_hidden_states = attn.to_add_out(encoder_hidden_states.contiguous())

            return hidden_states, encoder_hidden_states
        else:
            return hidden_states
