"""Capture cross-attention maps from a diffusers Stable Diffusion UNet, aggregated on the fly.

What a map is. For every image and every text token (all 77 positions, BOS = 0), the map is the
mean cross-attention *probability* that the image's latent positions give to that token, averaged
over the heads, the cross-attention layers and the denoising steps that were kept, each layer's map
resized (bilinear) to one common map size. This is DAAM's word attribution (Tang et al. 2023),
with three differences that make it exact and cheap:

* **Conditional half only.** Under classifier-free guidance diffusers runs the UNet on
  ``[uncond, cond]``; only the second half attends to the prompt, so only it is kept. Without
  guidance (``guidance_scale <= 1``) the whole batch is conditional and all of it is kept.
* **Self-attention untouched.** Only cross-attention layers get a capturing processor; it computes
  ``softmax(q k^T * scale)`` explicitly (the same numerics as diffusers' ``AttnProcessor``), uses it
  for the layer output, and adds its head-sum to a running sum. Self-attention keeps its fused
  kernel (SDPA), so the overhead is small and the pipeline output does not change.
* **Running sum.** One float32 tensor ``(n_images, n_tokens, h, w)`` and a counter are the whole
  state: memory does not grow with the number of steps or layers.

Because resizing is linear, summing the heads before resizing gives the same result as resizing
every head map (what a slow reference does); the tests check this against such a reference.

Example (tiny random pipeline, offline, a second on a CPU):

>>> from stablesemantics.pipelines import load_pipeline
>>> pipe = load_pipeline("tiny-random", device="cpu")
>>> with capture_cross_attention(pipe) as cap:
...     out = pipe(["a red car", "a dog"], num_inference_steps=2, height=64, width=48,
...                output_type="np")
>>> cap.maps.shape                      # (images, tokens, latent h, latent w)
torch.Size([2, 77, 32, 24])
>>> bool(torch.allclose(cap.maps.sum(dim=1), torch.ones(2, 32, 24), atol=1e-5))  # probabilities
True
>>> chunk_maps(cap.maps[0], [[2, 3], [1]]).shape   # "red car" (tokens 2-3) and "a" (token 1)
torch.Size([2, 32, 24])
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import (
    Attention,
    AttnProcessor,
    AttnProcessor2_0,
    AttnProcessorNPU,
    SlicedAttnProcessor,
    XFormersAttnProcessor,
    XLAFlashAttnProcessor2_0,
)

__all__ = [
    "BLOCKS",
    "CaptureConfig",
    "CrossAttentionCapture",
    "LayerInfo",
    "capture_cross_attention",
    "chunk_maps",
    "layer_grid",
    "resize_maps",
]

BLOCKS: tuple[str, ...] = ("down", "mid", "up")
_BLOCK_OF_PREFIX = {"down_blocks": "down", "mid_block": "mid", "up_blocks": "up"}

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


@dataclass(frozen=True)
class CaptureConfig:
    """What to aggregate into the maps.

    Attributes:
        map_size: ``(h, w)`` of the output maps; ``None`` = the latent size (image size / 8 for SD).
        blocks: UNet parts whose cross-attention layers are used: any of ``"down"``, ``"mid"``, ``"up"``.
        resolutions: downsampling factors of the layers to use, relative to the latent (1 = latent
            resolution, 2, 4, 8 for SD); ``None`` = all.
        t_range: the part of the step schedule to use, as fractions of the schedule by step index:
            step ``i`` of ``n`` is kept when ``t_range[0] <= i / (n - 1) <= t_range[1]``
            (0 = the first, noisiest step; 1 = the last).

    Example:

    >>> CaptureConfig(map_size=(16, 16), blocks=("up",), resolutions=(2, 4), t_range=(0.0, 0.5))
    CaptureConfig(map_size=(16, 16), blocks=('up',), resolutions=(2, 4), t_range=(0.0, 0.5))
    """

    map_size: tuple[int, int] | None = None
    blocks: tuple[str, ...] = BLOCKS
    resolutions: tuple[int, ...] | None = None
    t_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.map_size is not None:
            size = _as_tuple(self.map_size, "map_size")
            if len(size) != 2 or not all(_is_int(v) and v > 0 for v in size):
                raise ValueError(f"map_size must be two positive ints (h, w) or None, got {self.map_size!r}")
            object.__setattr__(self, "map_size", (int(size[0]), int(size[1])))
        blocks = _as_tuple(self.blocks, "blocks")
        if isinstance(self.blocks, str):
            raise TypeError(f"blocks must be a sequence of names, not a str: use ({self.blocks!r},)")
        unknown = [b for b in blocks if b not in BLOCKS]
        if not blocks or unknown:
            raise ValueError(f"blocks must be a non-empty subset of {BLOCKS}, got {self.blocks!r}")
        object.__setattr__(self, "blocks", tuple(blocks))
        if self.resolutions is not None:
            res = _as_tuple(self.resolutions, "resolutions")
            if not res or not all(_is_int(r) and r > 0 and (r & (r - 1)) == 0 for r in res):
                raise ValueError(
                    f"resolutions must be None or non-empty powers of two (1, 2, 4, 8), got {self.resolutions!r}"
                )
            object.__setattr__(self, "resolutions", tuple(int(r) for r in res))
        t_range = _as_tuple(self.t_range, "t_range")
        if len(t_range) != 2 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in t_range):
            raise TypeError(f"t_range must be two numbers (start, end), got {self.t_range!r}")
        lo, hi = float(t_range[0]), float(t_range[1])
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"t_range must satisfy 0 <= start <= end <= 1, got {self.t_range!r}")
        object.__setattr__(self, "t_range", (lo, hi))

    def keeps_step(self, index: int, n_steps: int) -> bool:
        """Whether step ``index`` (0-based) of ``n_steps`` is inside :attr:`t_range`.

        >>> [CaptureConfig(t_range=(0.5, 1.0)).keeps_step(i, 3) for i in range(3)]
        [False, True, True]
        """
        frac = index / max(n_steps - 1, 1)
        eps = 1e-9
        return self.t_range[0] - eps <= frac <= self.t_range[1] + eps


@dataclass(frozen=True)
class LayerInfo:
    """A cross-attention layer of the UNet: its module name, UNet part and number of heads."""

    name: str
    block: str
    heads: int


def layer_grid(latent_size: tuple[int, int], n_queries: int) -> tuple[int, int, int]:
    """The ``(h, w, factor)`` of a layer with ``n_queries`` positions in a UNet fed a latent of ``latent_size``.

    The UNet's downsamplers (stride-2 convolutions with padding 1) map a size ``s`` to ``ceil(s / 2)``,
    so the grids are found by halving (rounding up) until ``h * w == n_queries``; this holds for
    non-square and odd sizes too.

    >>> layer_grid((9, 7), 20)
    (5, 4, 2)
    """
    h, w = latent_size
    factor = 1
    while True:
        if h * w == n_queries:
            return h, w, factor
        if h * w < n_queries or (h == 1 and w == 1):
            raise ValueError(
                f"no UNet level of a {latent_size[0]}x{latent_size[1]} latent has {n_queries} positions"
            )
        h, w, factor = math.ceil(h / 2), math.ceil(w / 2), factor * 2


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(..., h, w)`` maps to ``size`` the way the capture does: bilinear, ``align_corners=False``.

    ``antialias=True`` only matters when shrinking (then each output pixel averages its footprint
    instead of sampling 2x2 pixels); when enlarging it is plain bilinear interpolation. The
    operation is linear, so resizing a sum of maps equals summing the resized maps.

    >>> resize_maps(torch.ones(2, 3, 4), (6, 8)).shape
    torch.Size([2, 6, 8])
    """
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    lead = maps.shape[:-2]
    flat = maps.reshape(1, -1, *maps.shape[-2:])
    out = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*lead, *size)


class CrossAttentionCapture:
    """Context manager that records mean cross-attention maps of every image a pipeline generates.

    Installs a capturing processor on the cross-attention layers of ``pipe.unet`` (those in
    ``config.blocks``) and a forward pre-hook on the UNet (which learns the latent size, the step
    and whether classifier-free guidance is on); both are removed on exit, also on an exception.

    ``pipe`` is a diffusers Stable Diffusion pipeline or a bare ``UNet2DConditionModel``. With a
    pipeline, each UNet call is one step; guidance is read from ``pipe.do_classifier_free_guidance``
    at every call and the number of steps from the pipeline. A new pipeline call inside the same
    ``with`` block starts new maps (so one capture can serve a loop over batches: read
    :attr:`maps` after each call). With a bare UNet, every call is kept and accumulated (until
    :meth:`reset`), its whole batch is conditional, and ``t_range`` must be the default.

    Attributes after a call: :attr:`maps` ``(n_images, n_tokens, h, w)`` float32 (``n_tokens`` is 77
    for CLIP), in the order of the pipeline's output images (``len(prompts) * num_images_per_prompt``);
    :attr:`n_contributions` (heads x layers x steps averaged); :attr:`steps_kept`; :attr:`layers`.

    Example:

    >>> from stablesemantics.pipelines import load_pipeline
    >>> pipe = load_pipeline("tiny-random", device="cpu")
    >>> config = CaptureConfig(map_size=(16, 16), resolutions=(2,))
    >>> with CrossAttentionCapture(pipe, config) as cap:
    ...     _ = pipe("a cat", num_inference_steps=2, num_images_per_prompt=2, height=32, width=32)
    >>> cap.maps.shape, cap.steps_kept
    (torch.Size([2, 77, 16, 16]), 2)
    """

    def __init__(self, pipe: Any, config: CaptureConfig | None = None) -> None:
        if config is None:
            config = CaptureConfig()
        if not isinstance(config, CaptureConfig):
            raise TypeError(f"config must be a CaptureConfig or None, got {type(config).__name__}")
        unet = getattr(pipe, "unet", None)
        if unet is None and isinstance(pipe, torch.nn.Module):
            unet, pipe = pipe, None
        if not isinstance(unet, torch.nn.Module):
            raise TypeError(
                f"pipe must be a diffusers pipeline with a .unet or a UNet module, got {type(pipe).__name__}"
            )
        if pipe is None and config.t_range != (0.0, 1.0):
            raise ValueError("t_range needs the step schedule: capture from the pipeline, not its bare UNet")
        self.config = config
        self._pipe = pipe
        self._unet = unet
        self.layers: list[LayerInfo] = []
        for name, module in unet.named_modules():
            if isinstance(module, Attention) and module.is_cross_attention:
                block = _BLOCK_OF_PREFIX.get(name.split(".")[0])
                if block in config.blocks:
                    self.layers.append(LayerInfo(name, block, module.heads))
        if not self.layers:
            raise ValueError(f"the UNet has no cross-attention layer in blocks {config.blocks}")
        self._originals: dict[str, Any] = {}
        self._hook: Any = None
        self.reset()

    # -- state --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget what was captured (the processors stay installed)."""
        self._sum: torch.Tensor | None = None
        self._count = 0
        self._step = 0
        self._last_t: float | None = None
        self._run_steps: int | None = None
        self._keep_step = True
        self._cond_only = False
        self._latent_size: tuple[int, int] | None = None
        self.steps_kept = 0
        self.steps_seen = 0

    @property
    def installed(self) -> bool:
        return self._hook is not None

    @property
    def n_contributions(self) -> int:
        """How many head maps were averaged (heads x layers x steps kept)."""
        return self._count

    @property
    def latent_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the latent of the last UNet call."""
        return self._latent_size

    @property
    def map_size(self) -> tuple[int, int] | None:
        """``(h, w)`` of the maps: ``config.map_size`` or the latent size."""
        return self.config.map_size or self._latent_size

    @property
    def maps(self) -> torch.Tensor:
        """Mean attention maps ``(n_images, n_tokens, h, w)``, float32, on the UNet's device.

        At every position, a map summed over the tokens is 1 (a mean of softmax probabilities).
        """
        if self._sum is None or self._count == 0:
            raise RuntimeError(
                "no cross-attention was captured: call the pipeline inside the `with` block, and check that "
                f"the config ({self.config}) keeps at least one layer and step"
            )
        return self._sum / self._count

    # -- install / remove --------------------------------------------------------------------

    def install(self) -> CrossAttentionCapture:
        """Install the processors and the hook (``__enter__`` does this)."""
        if self.installed:
            raise RuntimeError("this capture is already installed")
        modules = dict(self._unet.named_modules())
        for layer in self.layers:
            proc = modules[layer.name].processor
            if isinstance(proc, _CaptureProcessor):
                raise RuntimeError(f"{layer.name} is already being captured (nested captures are not supported)")
            if type(proc) not in _PLAIN_PROCESSORS:  # exact classes: a subclass may compute anything
                raise ValueError(
                    f"cannot capture {layer.name}: its processor {type(proc).__name__} is not plain "
                    f"softmax attention (supported: {', '.join(p.__name__ for p in _PLAIN_PROCESSORS)})"
                )
        try:
            for layer in self.layers:
                module = modules[layer.name]
                self._originals[layer.name] = module.processor
                module.set_processor(_CaptureProcessor(self, layer, module.processor))
            self._hook = self._unet.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        except BaseException:
            self.remove()
            raise
        self.reset()
        return self

    def remove(self) -> None:
        """Restore the original processors and remove the hook (``__exit__`` does this)."""
        modules = dict(self._unet.named_modules())
        for name, proc in self._originals.items():
            modules[name].set_processor(proc)
        self._originals.clear()
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def __enter__(self) -> CrossAttentionCapture:
        return self.install()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    # -- during the call ---------------------------------------------------------------------

    def _pre_hook(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs.get("timestep")
        t = float(timestep.flatten()[0]) if isinstance(timestep, torch.Tensor) else float(timestep)
        pipe = self._pipe
        if pipe is not None:
            n_steps = getattr(pipe, "_num_timesteps", None)
            # Timesteps never increase within a call, so a larger t (or running past the schedule)
            # means a new pipeline call: its maps start afresh.
            if self._last_t is not None and (t > self._last_t or (n_steps is not None and self._step >= n_steps)):
                self.reset()
            self._run_steps = n_steps
            try:
                self._cond_only = bool(pipe.do_classifier_free_guidance)
            except AttributeError:  # the pipeline was never called: its UNet is used directly
                self._cond_only = False
        size = (int(sample.shape[-2]), int(sample.shape[-1]))
        if self._latent_size is not None and size != self._latent_size and self._sum is not None:
            if pipe is not None:
                self.reset()
            elif self.config.map_size is None:
                raise ValueError(
                    f"latent size changed from {self._latent_size} to {size} while accumulating; "
                    "set CaptureConfig.map_size or call reset()"
                )
        self._latent_size = size
        if pipe is not None and self._run_steps is not None:
            self._keep_step = self.config.keeps_step(self._step, self._run_steps)
        else:
            self._keep_step = True
        self.steps_seen += 1
        self.steps_kept += int(self._keep_step)
        self._step += 1
        self._last_t = t

    def _grid(self, n_queries: int) -> tuple[int, int, int] | None:
        """The layer's grid if this layer call is to be captured, else None."""
        if not self._keep_step or self._latent_size is None:
            return None
        h, w, factor = layer_grid(self._latent_size, n_queries)
        if self.config.resolutions is not None and factor not in self.config.resolutions:
            return None
        return h, w, factor

    def _add(self, probs: torch.Tensor, heads: int, grid: tuple[int, int, int]) -> None:
        """Add one layer's ``(batch * heads, n_queries, n_tokens)`` probabilities to the running sum."""
        bh, n_queries, n_tokens = probs.shape
        batch = bh // heads
        per_image = probs.view(batch, heads, n_queries, n_tokens)
        if self._cond_only:
            if batch % 2:
                raise RuntimeError(f"classifier-free guidance is on but the UNet batch ({batch}) is odd")
            per_image = per_image[batch // 2 :]
        summed = per_image.sum(dim=1, dtype=torch.float32)  # (n_images, n_queries, n_tokens)
        h, w, _ = grid
        summed = summed.transpose(1, 2).reshape(summed.shape[0], n_tokens, h, w)
        summed = resize_maps(summed, self.map_size)
        if self._sum is None:
            self._sum = torch.zeros_like(summed)
        elif self._sum.shape != summed.shape:
            raise RuntimeError(
                f"attention maps of shape {tuple(summed.shape)} do not match the running sum "
                f"{tuple(self._sum.shape)}: the batch, token count or map size changed within one pipeline "
                "call (or, with a bare UNet, since the last reset())"
            )
        self._sum += summed
        self._count += heads


class _CaptureProcessor:
    """Cross-attention with explicit softmax, structured exactly like diffusers' ``AttnProcessor2_0``.

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
                attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                attention_mask=attention_mask, **kwargs
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
        self.capture._add(probs.detach(), attn.heads, grid)

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


def capture_cross_attention(pipe: Any, config: CaptureConfig | None = None) -> CrossAttentionCapture:
    """``with capture_cross_attention(pipe) as cap: pipe(...)`` then read ``cap.maps``.

    Same as :class:`CrossAttentionCapture`; see its documentation.

    >>> from stablesemantics.pipelines import load_pipeline
    >>> pipe = load_pipeline("tiny-random", device="cpu")
    >>> with capture_cross_attention(pipe, CaptureConfig(blocks=("up",))) as cap:
    ...     _ = pipe("a cat", num_inference_steps=2, height=32, width=32, guidance_scale=1.0)
    >>> cap.maps.shape
    torch.Size([1, 77, 16, 16])
    """
    return CrossAttentionCapture(pipe, config)


def chunk_maps(token_maps: torch.Tensor, token_indices: Sequence[Sequence[int]]) -> torch.Tensor:
    """Maps of word chunks from token maps: a chunk's map is the MEAN of its tokens' maps.

    ``token_maps`` is ``(n_tokens, h, w)`` (one image) or ``(..., n_tokens, h, w)``; ``token_indices``
    holds one list of token positions per chunk (BOS is position 0). Returns ``(k, h, w)`` (or
    ``(..., k, h, w)``) for ``k`` chunks.

    Why the mean and not the sum: a chunk of three tokens would otherwise get about three times the
    attention mass of a one-token chunk, so maps of different chunks (and of the same noun written as
    one or several BPE tokens) would not be on a comparable scale; the mean keeps every chunk map a
    mean attention probability.

    >>> maps = torch.zeros(77, 2, 2); maps[1] = 1.0; maps[2] = 3.0
    >>> chunk_maps(maps, [[1, 2], [1]])[:, 0, 0]
    tensor([2., 1.])
    """
    if not isinstance(token_maps, torch.Tensor):
        raise TypeError(f"token_maps must be a torch.Tensor, got {type(token_maps).__name__}")
    if token_maps.ndim < 3:
        raise ValueError(f"token_maps must be (..., n_tokens, h, w), got shape {tuple(token_maps.shape)}")
    if isinstance(token_indices, (str, bytes)) or not isinstance(token_indices, Sequence):
        raise TypeError("token_indices must be a sequence of sequences of ints")
    n_tokens = token_maps.shape[-3]
    chunks = []
    for k, indices in enumerate(token_indices):
        if isinstance(indices, (str, bytes)) or not isinstance(indices, (Sequence, torch.Tensor)):
            raise TypeError(f"token_indices[{k}] must be a sequence of ints, got {type(indices).__name__}")
        idx = [int(i) for i in indices]
        if not idx:
            raise ValueError(f"token_indices[{k}] is empty: a chunk needs at least one token")
        if any(not 0 <= i < n_tokens for i in idx):
            raise IndexError(f"token_indices[{k}] = {idx} out of range for {n_tokens} tokens")
        index = torch.tensor(idx, device=token_maps.device)
        chunks.append(token_maps.index_select(-3, index).mean(dim=-3))
    if not chunks:
        return token_maps.new_zeros((*token_maps.shape[:-3], 0, *token_maps.shape[-2:]))
    return torch.stack(chunks, dim=-3)


def _as_tuple(value: Any, name: str) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(value)
    if isinstance(value, str):
        return (value,)
    raise TypeError(f"{name} must be a tuple or list, got {type(value).__name__}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
