"""Map utilities: resize token maps, scale maps to [0, 1], combine a chunk's tokens into one map."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def resize_maps(maps: torch.Tensor, size: tuple[int, int], *, antialias: bool = True) -> torch.Tensor:
    """Resize ``(..., h, w)`` maps to ``size``: bilinear, ``align_corners=False``; ``maps`` itself when
    it already has that size.

    ``antialias=True`` (the default, what the capture uses) only matters when shrinking: then each
    output pixel averages its footprint instead of sampling 2x2 pixels; when enlarging it is plain
    bilinear interpolation. The evaluations resize maps up to image size with ``antialias=False``.
    The operation is linear, so resizing a sum of maps equals summing the resized maps.

    >>> resize_maps(torch.ones(2, 3, 4), (6, 8)).shape
    torch.Size([2, 6, 8])
    """
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    lead = maps.shape[:-2]
    # Without antialiasing, PyTorch's CPU kernel vectorises over channels when there are 8 or more, which
    # can change the last bit; a batch of one-channel images resizes every map on its own, as the
    # evaluations always have. With antialiasing both layouts give the same numbers; the capture's is kept.
    flat = maps.reshape(1, -1, *maps.shape[-2:]) if antialias else maps.reshape(-1, 1, *maps.shape[-2:])
    out = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False, antialias=antialias)
    return out.reshape(*lead, *size)


def minmax_scale_maps(maps: np.ndarray, *, display: bool = False) -> np.ndarray:
    """Scale each map of ``(..., H, W)`` to [0, 1] by its own minimum and maximum.

    ``display=False`` (metrics, thresholds): float64, ``(m - min) / max(max - min, 1e-12)``, so a
    constant map becomes all zeros and a NaN makes its map NaN. ``display=True`` (plots): float32,
    NaNs ignored for the minimum and maximum, and a map whose range is zero or not finite becomes
    all zeros.

    >>> minmax_scale_maps(np.array([[[1.0, 3.0]], [[2.0, 2.0]]])).tolist()
    [[[0.0, 1.0]], [[0.0, 0.0]]]
    """
    if not display:
        maps = np.asarray(maps, np.float64)
        lo = maps.min(axis=(-1, -2), keepdims=True)
        hi = maps.max(axis=(-1, -2), keepdims=True)
        return (maps - lo) / np.maximum(hi - lo, 1e-12)
    a = np.asarray(maps, dtype=np.float32)
    lo = np.nanmin(a, axis=(-1, -2), keepdims=True)
    hi = np.nanmax(a, axis=(-1, -2), keepdims=True)
    span = hi.astype(np.float64) - lo.astype(np.float64)  # the range in float64, as Python floats had it
    ok = np.isfinite(lo) & np.isfinite(hi) & (span > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scaled = (a - lo) / span.astype(np.float32)
    return np.where(ok, scaled, np.float32(0))


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
