"""Joint attention with each query row's log-sum-exp: exact text-key probabilities without the full matrix.

In joint attention (SD3, Flux) an image query attends to image and text keys together, and a text
token's map is its probability under the softmax over *all* keys. Materialising that softmax costs
``n_image x n_image`` per head (about 2 GB per layer and step for Flux at 1024²). Fused attention
kernels return each query row's log-sum-exp ``lse = log sum_j exp(q k_j * scale)`` alongside the
output, so the text probabilities follow exactly as ``exp(q k_text * scale - lse)``: an
``n_image x n_text`` block, computed one head at a time.

:func:`attention_with_lse` calls the kernel that returns it (CPU: the flash kernel for CPU, which is
what ``F.scaled_dot_product_attention`` itself runs on CPU, so the output is bit-identical; CUDA: the
memory-efficient kernel) and otherwise falls back to ``F.scaled_dot_product_attention`` for the
output and a log-sum-exp computed over chunks of queries (:func:`chunked_lse`).

Example:

>>> import torch
>>> q, k, v = (torch.randn(1, 2, 10, 8) for _ in range(3))
>>> out, lse = attention_with_lse(q, k, v)
>>> p = text_probabilities(q[:, :, :6], k[:, :, 6:], lse[:, :, :6])   # image = first 6, text = last 4
>>> full = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)[:, :, :6, 6:].sum(dim=1)
>>> bool(torch.allclose(p, full, atol=1e-6))
True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend

#: Queries per chunk in :func:`chunked_lse` (the fallback): memory ``chunk x n_keys`` per head.
LSE_CHUNK = 1024


def attention_with_lse(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``F.scaled_dot_product_attention(query, key, value)`` (default scale, no mask) and each row's
    log-sum-exp (float32, ``(batch, heads, n_queries)``). Inputs are ``(batch, heads, n, head_dim)``."""
    if query.device.type == "cpu" and torch._fused_sdp_choice(query, key, value) == SDPBackend.FLASH_ATTENTION.value:
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value, 0.0, False)
        return out, lse
    if query.device.type == "cuda":
        try:
            out, lse, _, _ = torch.ops.aten._scaled_dot_product_efficient_attention(
                query, key, value, None, True, 0.0, False
            )
            return out, lse[..., : query.shape[-2]].float()
        except RuntimeError:  # kernel not built for this GPU or dtype: the fallback below is exact too
            pass
    out = F.scaled_dot_product_attention(query, key, value)
    return out, chunked_lse(query, key)


def chunked_lse(query: torch.Tensor, key: torch.Tensor, chunk: int = LSE_CHUNK) -> torch.Tensor:
    """Log-sum-exp of every query row of ``q k^T / sqrt(head_dim)`` in float32, ``chunk`` queries at a time."""
    scale = 1.0 / math.sqrt(query.shape[-1])
    k = key.float().transpose(-1, -2)
    parts = [
        torch.logsumexp(torch.matmul(query[..., i : i + chunk, :].float(), k) * scale, dim=-1)
        for i in range(0, query.shape[-2], chunk)
    ]
    return torch.cat(parts, dim=-1)


def text_probabilities(image_query: torch.Tensor, text_key: torch.Tensor, image_lse: torch.Tensor) -> torch.Tensor:
    """Head-summed probabilities ``(batch, n_image, n_text)`` (float32) of image queries on text keys.

    ``image_query`` ``(batch, heads, n_image, d)``, ``text_key`` ``(batch, heads, n_text, d)`` and
    ``image_lse`` ``(batch, heads, n_image)`` (the log-sum-exp over the whole joint key set). One head
    at a time, so the extra memory is two ``(batch, n_image, n_text)`` float32 blocks.
    """
    scale = 1.0 / math.sqrt(image_query.shape[-1])
    total = None
    for h in range(image_query.shape[1]):
        probs = torch.matmul(image_query[:, h].float(), text_key[:, h].float().transpose(-1, -2))
        probs.mul_(scale).sub_(image_lse[:, h].float().unsqueeze(-1)).exp_()  # in place: one block per head
        total = probs if total is None else total.add_(probs)
    return total
