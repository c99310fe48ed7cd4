"""A slow, independent reference for joint-attention maps (SD3, Flux), and a tensor-memory meter.

``JointReference`` leaves the model's processors in place and intercepts every call of
``F.scaled_dot_product_attention`` inside a joint-attention layer: it materialises each head's full
softmax over the whole joint key set in float64 and keeps the image-query x text-key block of every
layer call. The text length comes from the transformer's ``txt_ids`` (Flux) or
``encoder_hidden_states`` (SD3), the token grid from the image size the test gives. Maps are
averaged afterwards, each head map resized on its own.

``PeakTensorBytes`` is a ``TorchDispatchMode`` that tracks the storages every op creates and reports
the peak of their live total: CPU tensor memory, independent of the allocator.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from stablesemantics.capture import joint_attention_layers


@dataclass
class JointRecord:
    layer: str
    call: int  # index of the transformer call
    probs: torch.Tensor  # (batch, heads, n_image, n_text) float64


class JointReference:
    """Record the full-softmax image->text probabilities of every joint-attention layer call."""

    def __init__(self, pipe, grid):
        self.transformer = pipe.transformer
        self.flux = "Flux" in type(pipe).__name__
        self.grid = grid
        self.records: list[JointRecord] = []
        self.call = -1
        self.text_length = None

    def __enter__(self):
        self.handles = [self.transformer.register_forward_pre_hook(self._hook, with_kwargs=True)]
        modules = dict(self.transformer.named_modules())
        for layer in joint_attention_layers(self.transformer):
            self.handles.append(modules[layer.name].register_forward_pre_hook(self._layer_hook(layer.name)))
            self.handles.append(modules[layer.name].register_forward_hook(self._layer_done))
        self.original_sdpa = F.scaled_dot_product_attention
        F.scaled_dot_product_attention = self._sdpa
        self.current = None
        return self

    def __exit__(self, *exc):
        F.scaled_dot_product_attention = self.original_sdpa
        for h in self.handles:
            h.remove()

    def _hook(self, module, args, kwargs):
        self.call += 1
        self.text_length = kwargs["txt_ids"].shape[0] if self.flux else kwargs["encoder_hidden_states"].shape[1]

    def _layer_hook(self, name):
        def hook(module, args):
            self.current = name

        return hook

    def _layer_done(self, module, args, out):
        self.current = None

    def _sdpa(self, query, key, value, *args, **kwargs):
        out = self.original_sdpa(query, key, value, *args, **kwargs)
        if self.current is None:
            return out
        n_all, n_text = key.shape[2], self.text_length
        if n_all == self.grid[0] * self.grid[1]:  # SD3.5's image-only attention: no text
            return out
        scores = query.double() @ key.double().transpose(-1, -2) / query.shape[-1] ** 0.5
        probs = scores.softmax(dim=-1)
        if self.flux:  # [text | image]
            block = probs[:, :, n_text:, :n_text]
        else:  # [image | text]
            block = probs[:, :, : n_all - n_text, n_all - n_text :]
        self.records.append(JointRecord(self.current, self.call, block.clone()))
        return out

    def maps(self, keep_call=lambda call: True, half="all", map_size=None):
        total, count = None, 0
        h, w = self.grid
        for rec in self.records:
            if not keep_call(rec.call):
                continue
            p = rec.probs
            b = p.shape[0]
            p = {"cond": p[b // 2 :], "all": p}[half]
            for head in range(p.shape[1]):
                m = p[:, head].transpose(1, 2).reshape(p.shape[0], p.shape[-1], h, w).float()
                if map_size is not None:
                    m = F.interpolate(m, size=map_size, mode="bilinear", align_corners=False, antialias=True)
                total = m if total is None else total + m
                count += 1
        return total / count


class PeakTensorBytes(TorchDispatchMode):
    """Peak live bytes of the storages created by the ops run under this mode."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}  # data pointer -> (weak ref, bytes)
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.live = {ptr: (r, n) for ptr, (r, n) in self.live.items() if not r.expired()}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                storage = t.untyped_storage()
                if storage.nbytes() and storage.data_ptr() not in self.live:
                    self.live[storage.data_ptr()] = (StorageWeakRef(storage), storage.nbytes())
        self.peak = max(self.peak, sum(n for _, n in self.live.values()))
        return out


@contextlib.contextmanager
def peak_bytes():
    meter = PeakTensorBytes()
    with meter:
        yield meter
