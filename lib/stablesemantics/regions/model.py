"""A small DynRefer: encode each view, fuse the views with their t, read labels and a caption.

* **View encoder.** :class:`ConvViewEncoder` sees the view's pixels and the region's box mask
  inside the view (4 channels) — our stand-in for DynRefer's RoI-Align, so even a whole-image
  view says which region is meant. :class:`FrozenVAEViewEncoder` is the frozen-feature variant:
  the view's pixels go through MicroSD's own VAE encoder (weights frozen; the latent mean), the
  box mask is pooled to the latent grid and appended, and only a small convolutional head trains.
* **Fusion.** Each view becomes a token; its ``t`` enters as a sinusoidal embedding added to the
  token (DynRefer feeds the views' t to its fusion too). One Transformer layer mixes the tokens,
  a masked mean pools them: any number of views, in any order, gives one region vector.
* **Heads.** Linear heads for class, colour, size and relation, and a one-layer GRU caption
  decoder started from the region vector.

Every encoder splits into ``prepare`` (fixed, no gradient: may be cached for a whole view bank)
and ``forward`` (trained).

>>> import torch
>>> m = RegionModel(RegionModelConfig(view_size=16, vocab_size=30))
>>> x = m.encoder.prepare(torch.zeros(2, 3, 16, 16, 3, dtype=torch.uint8), torch.zeros(2, 3, 16, 16))
>>> out = m(x, ts=torch.zeros(2, 3), present=torch.ones(2, 3, dtype=torch.bool))
>>> out["class"].shape, out["relation"].shape
(torch.Size([2, 20]), torch.Size([2, 6]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stablesemantics.regions.data import TASKS

__all__ = [
    "CaptionDecoder",
    "ConvViewEncoder",
    "FrozenVAEViewEncoder",
    "RegionModel",
    "RegionModelConfig",
    "ViewFusion",
    "t_embedding",
]


@dataclass
class RegionModelConfig:
    """Sizes of a :class:`RegionModel` (every default of the chapter's model is here)."""

    view_size: int = 32  # views are view_size² pixels
    width: int = 16  # channels of the first convolution of the view encoder
    dim: int = 64  # token and region vector width
    heads: int = 4  # attention heads of the fusion layer
    vocab_size: int = 64  # caption vocabulary (data.region_vocabulary)
    max_caption_len: int = 12  # <bos> … <eos>
    encoder: str = "conv"  # "conv" (trained from scratch) or "vae" (MicroSD's VAE encoder, frozen)


def t_embedding(ts: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``(..., dim)`` of t in [0, 1] (frequencies 1 … 2^(dim/2 - 1) over π·t)."""
    half = dim // 2
    freqs = 2.0 ** torch.arange(half, dtype=torch.float32, device=ts.device)
    angles = math.pi * ts.float()[..., None] * freqs
    return torch.cat([torch.sin(angles), torch.cos(angles)], -1)


def _flatten_views(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    b, n = x.shape[:2]
    return x.reshape(b * n, *x.shape[2:]), (b, n)


class ConvViewEncoder(nn.Module):
    """Three stride-2 convolutions over RGB + box mask, then a linear map of the whole grid
    (flattened, not pooled: where the region sits relative to the rest is the point)."""

    def __init__(self, cfg: RegionModelConfig):
        super().__init__()
        w = cfg.width
        self.net = nn.Sequential(
            nn.Conv2d(4, w, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1),
            nn.SiLU(),
        )
        side = cfg.view_size // 8
        self.proj = nn.Linear(4 * w * side * side, cfg.dim)

    @torch.no_grad()
    def prepare(self, pixels: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``(B, n, S, S, 3)`` uint8 pixels and ``(B, n, S, S)`` masks in [0, 1] → ``(B, n, 4, S, S)``."""
        x = pixels.float().permute(0, 1, 4, 2, 3) / 127.5 - 1
        return torch.cat([x, masks.float()[:, :, None]], 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, (b, n) = _flatten_views(x)
        return self.proj(self.net(flat).flatten(1)).reshape(b, n, -1)


class FrozenVAEViewEncoder(nn.Module):
    """MicroSD's VAE encoder (frozen) as the view encoder; a small head on its latents + box mask.

    ``vae`` is a diffusers ``AutoencoderKL``; it is kept out of this module's parameters (and
    state dict), so only the head trains and checkpoints stay small.
    """

    def __init__(self, cfg: RegionModelConfig, vae: nn.Module):
        super().__init__()
        object.__setattr__(self, "vae", vae.eval().requires_grad_(False))  # not a submodule: frozen, not saved
        c = int(vae.config.latent_channels)
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)
        w = cfg.width
        self.net = nn.Sequential(
            nn.Conv2d(c + 1, 2 * w, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1),
            nn.SiLU(),
        )
        side = cfg.view_size // self.factor // 2
        self.proj = nn.Linear(4 * w * side * side, cfg.dim)

    @torch.no_grad()
    def prepare(self, pixels: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Latent means of the views, scaled as MicroSD scales them, with the pooled box mask."""
        flat, (b, n) = _flatten_views(pixels)
        x = flat.float().permute(0, 3, 1, 2) / 127.5 - 1
        vae_dtype = next(self.vae.parameters()).dtype
        lat = self.vae.encode(x.to(vae_dtype)).latent_dist.mean.float() * float(self.vae.config.scaling_factor)
        m = F.avg_pool2d(masks.float().reshape(b * n, 1, *masks.shape[-2:]), self.factor)
        return torch.cat([lat, m], 1).reshape(b, n, -1, *lat.shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, (b, n) = _flatten_views(x)
        return self.proj(self.net(flat).flatten(1)).reshape(b, n, -1)


class ViewFusion(nn.Module):
    """Tokens + t embeddings → one Transformer layer → masked mean over the present views."""

    def __init__(self, cfg: RegionModelConfig):
        super().__init__()
        self.dim = cfg.dim
        self.t_proj = nn.Linear(cfg.dim, cfg.dim)
        self.layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, 2 * cfg.dim, dropout=0.0, batch_first=True)
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, tokens: torch.Tensor, ts: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        x = tokens + self.t_proj(t_embedding(ts, self.dim))
        x = self.layer(x, src_key_padding_mask=~present)
        w = present.float()[..., None]
        return self.norm((x * w).sum(1) / w.sum(1).clamp_min(1.0))


class CaptionDecoder(nn.Module):
    """A one-layer GRU over word embeddings, its state started from the region vector."""

    def __init__(self, cfg: RegionModelConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.init = nn.Linear(cfg.dim, cfg.dim)
        self.gru = nn.GRU(cfg.dim, cfg.dim, batch_first=True)
        self.out = nn.Linear(cfg.dim, cfg.vocab_size)
        self.max_len = cfg.max_caption_len

    def forward(self, region: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits ``(B, L - 1, vocab)`` for ``tokens[:, 1:]`` given ``tokens[:, :-1]``."""
        h0 = torch.tanh(self.init(region))[None]
        y, _ = self.gru(self.embed(tokens[:, :-1]) + region[:, None], h0)
        return self.out(y)

    @torch.no_grad()
    def generate(self, region: torch.Tensor) -> torch.Tensor:
        """Greedy decoding: ``(B, max_len)`` token ids, starting with ``<bos>`` (id 1)."""
        b = region.shape[0]
        h = torch.tanh(self.init(region))[None]
        tok = torch.ones(b, 1, dtype=torch.long, device=region.device)
        out = [tok]
        for _ in range(self.max_len - 1):
            y, h = self.gru(self.embed(tok) + region[:, None], h)
            tok = self.out(y).argmax(-1)
            out.append(tok)
        return torch.cat(out, 1)


class RegionModel(nn.Module):
    """View encoder + fusion + heads (one per task of ``data.TASKS``) + caption decoder."""

    def __init__(self, cfg: RegionModelConfig, vae: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        if cfg.encoder == "conv":
            self.encoder: nn.Module = ConvViewEncoder(cfg)
        elif cfg.encoder == "vae":
            if vae is None:
                raise ValueError("encoder='vae' needs the VAE (e.g. load_pipeline('microsd').vae)")
            self.encoder = FrozenVAEViewEncoder(cfg, vae)
        else:
            raise ValueError(f"encoder must be 'conv' or 'vae', got {cfg.encoder!r}")
        self.fusion = ViewFusion(cfg)
        self.heads = nn.ModuleDict({task: nn.Linear(cfg.dim, len(names)) for task, names in TASKS.items()})
        self.decoder = CaptionDecoder(cfg)

    def region(self, views: torch.Tensor, ts: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Region vectors ``(B, dim)`` from prepared views ``(B, n, …)``, their t ``(B, n)`` and
        which of the n slots hold a view ``(B, n)`` bool."""
        return self.fusion(self.encoder(views), ts, present)

    def forward(
        self,
        views: torch.Tensor,
        ts: torch.Tensor,
        present: torch.Tensor,
        captions: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Logits per task; with ``captions`` (token ids ``(B, L)``) also the decoder's logits."""
        r = self.region(views, ts, present)
        out = {task: head(r) for task, head in self.heads.items()}
        if captions is not None:
            out["caption"] = self.decoder(r, captions)
        return out
