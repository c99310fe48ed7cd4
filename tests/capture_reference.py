"""The slow, independent reference the capture tests compare against, and the tiny pipeline call they share.

The reference (``ReferenceProcessor``) computes every cross-attention head explicitly, stores
every probability tensor of every layer and step, learns each layer's grid from the input of its
``Transformer2DModel`` (not from the query count) and averages afterwards, resizing each head
map on its own. The capture must agree with it to ``ATOL``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

PROMPTS = ["a red car on a street", "a small dog"]
HEIGHT, WIDTH = 64, 48  # latent 32 x 24 with the tiny VAE; cross-attention at 32x24 and 16x12
STEPS = 3
ATOL = 1e-5


def generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def run(pipe, prompts=PROMPTS, seeds=(0, 1), steps=STEPS, guidance=7.5, **kwargs):
    kwargs.setdefault("height", HEIGHT)
    kwargs.setdefault("width", WIDTH)
    return pipe(
        prompts,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=generators(seeds),
        output_type="np",
        **kwargs,
    ).images


def cross_attention_modules(unet):
    return {n: m for n, m in unet.named_modules() if isinstance(m, Attention) and m.is_cross_attention}


@dataclass
class Record:
    name: str
    step: int
    grid: tuple[int, int]  # (h, w) of the layer, from its Transformer2DModel input
    latent: tuple[int, int]
    probs: torch.Tensor  # (batch, heads, n_queries, n_tokens)


class ReferenceProcessor:
    """Explicit per-head softmax; stores every probability tensor (the slow DAAM-style way)."""

    def __init__(self, recorder: Reference, name: str):
        self.recorder, self.name = recorder, name
        self.sdpa = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        if encoder_hidden_states is None:
            return self.sdpa(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        # the tiny UNet's cross-attention is the plain kind; the reference relies on it
        assert hidden_states.ndim == 3 and attention_mask is None and attn.group_norm is None
        assert attn.spatial_norm is None and not attn.residual_connection and attn.norm_cross is None
        b, n, _ = hidden_states.shape
        heads = attn.heads
        q = attn.to_q(hidden_states)
        k = attn.to_k(encoder_hidden_states)
        v = attn.to_v(encoder_hidden_states)
        d = q.shape[-1] // heads
        q, k, v = (x.view(b, -1, heads, d).permute(0, 2, 1, 3) for x in (q, k, v))
        scores = torch.einsum("bhnd,bhsd->bhns", q, k) / np.sqrt(d)
        probs = scores.softmax(dim=-1)
        out = torch.einsum("bhns,bhsd->bhnd", probs, v).permute(0, 2, 1, 3).reshape(b, n, heads * d)
        rec = self.recorder
        grid = rec.grids[self.name.split(".transformer_blocks.")[0]]
        rec.records.append(Record(self.name, rec.step, grid, rec.latent, probs.detach().clone()))
        return attn.to_out[1](attn.to_out[0](out))


class Reference:
    """Install ``ReferenceProcessor`` everywhere; keep the list of all records."""

    def __init__(self, unet):
        self.unet = unet
        self.records: list[Record] = []
        self.grids: dict[str, tuple[int, int]] = {}
        self.step = -1
        self.latent = None

    def __enter__(self):
        self.originals = {}
        self.handles = []
        modules = dict(self.unet.named_modules())
        for name, module in cross_attention_modules(self.unet).items():
            self.originals[name] = module.processor
            module.set_processor(ReferenceProcessor(self, name))
            parent = name.split(".transformer_blocks.")[0]
            self.handles.append(modules[parent].register_forward_pre_hook(self._grid_hook(parent)))
        self.handles.append(self.unet.register_forward_pre_hook(self._unet_hook))
        return self

    def _grid_hook(self, parent):
        def hook(module, args):
            self.grids[parent] = tuple(args[0].shape[-2:])

        return hook

    def _unet_hook(self, module, args):
        self.step += 1
        self.latent = tuple(args[0].shape[-2:])

    def __exit__(self, *exc):
        modules = dict(self.unet.named_modules())
        for name, proc in self.originals.items():
            modules[name].set_processor(proc)
        for h in self.handles:
            h.remove()

    def maps(self, half="cond", map_size=None, keep=lambda rec: True, n_steps=None):
        """Average of the resized head maps over the kept records.

        half: "cond" = second half of the batch, "uncond" = first half, "all" = whole batch.
        """
        total, count = None, 0
        for rec in self.records:
            if not keep(rec):
                continue
            p = rec.probs
            b = p.shape[0]
            p = {"cond": p[b // 2 :], "uncond": p[: b // 2], "all": p}[half]
            size = map_size or rec.latent
            for head in range(p.shape[1]):
                m = p[:, head].transpose(1, 2).reshape(p.shape[0], p.shape[-1], *rec.grid)
                m = F.interpolate(m, size=size, mode="bilinear", align_corners=False, antialias=True)
                total = m if total is None else total + m
                count += 1
        return total / count
