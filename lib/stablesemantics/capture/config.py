"""What to capture: the capture's configuration (blocks, resolutions, steps, map size) and layer geometry."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.models.attention_processor import Attention

BLOCKS: tuple[str, ...] = ("down", "mid", "up")
_BLOCK_OF_PREFIX = {"down_blocks": "down", "mid_block": "mid", "up_blocks": "up"}


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

    @property
    def index(self) -> int:
        """Position of the layer's block among the UNet's down (or up) blocks; 0 for the mid block.

        >>> LayerInfo("up_blocks.2.attentions.0.transformer_blocks.0.attn2", "up", 8).index
        2
        """
        return 0 if self.block == "mid" else int(self.name.split(".")[1])


def cross_attention_layers(unet: torch.nn.Module) -> list[LayerInfo]:
    """The cross-attention layers of ``unet``'s down, mid and up blocks, in module order.

    A layer's UNet part comes from its module name (``down_blocks.*``, ``mid_block.*``,
    ``up_blocks.*``); cross-attention anywhere else is left out.
    """
    layers = []
    for name, module in unet.named_modules():
        if isinstance(module, Attention) and module.is_cross_attention:
            block = _BLOCK_OF_PREFIX.get(name.split(".")[0])
            if block is not None:
                layers.append(LayerInfo(name, block, module.heads))
    return layers


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
            raise ValueError(f"no UNet level of a {latent_size[0]}x{latent_size[1]} latent has {n_queries} positions")
        h, w, factor = math.ceil(h / 2), math.ceil(w / 2), factor * 2


def _as_tuple(value: Any, name: str) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(value)
    if isinstance(value, str):
        return (value,)
    raise TypeError(f"{name} must be a tuple or list, got {type(value).__name__}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
