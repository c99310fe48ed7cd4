"""The DIFT baseline (Tang et al. 2023): nearest neighbour of UNet up-block features of noised images."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stablesemantics.correspondence.attention import encode_pixels, noise_latents, pixels_of
from stablesemantics.correspondence.config import DiftConfig


@torch.no_grad()
def dift_features(pipe, images: np.ndarray, config: DiftConfig | None = None, batch_size: int = 32) -> torch.Tensor:
    """Features ``(n, channels, h, w)``: the output of UNet up block ``config.up_block`` on each image.

    Each image is encoded, noised to ``config.timestep`` ``config.ensemble`` times (seeded) and run
    through the UNet with the prompt ``config.prompt``; the block's outputs (read with a forward
    hook) are averaged over the noise draws.
    """
    config = config or DiftConfig()
    blocks = pipe.unet.up_blocks
    if config.up_block >= len(blocks):
        raise ValueError(f"up_block {config.up_block} out of range: the UNet has {len(blocks)} up blocks")
    gen = torch.Generator().manual_seed(config.seed)
    latents = encode_pixels(pipe, pixels_of(images), batch_size)
    ids = pipe.tokenizer(
        [config.prompt],
        padding="max_length",
        truncation=True,
        max_length=pipe.tokenizer.model_max_length,
        return_tensors="pt",
    ).input_ids
    cond = pipe.text_encoder(ids.to(pipe.device))[0]
    kept: list[torch.Tensor] = []
    hook = blocks[config.up_block].register_forward_hook(lambda _m, _i, out: kept.append(out))
    try:
        total = None
        for _ in range(config.ensemble):
            feats = []
            for lo in range(0, len(latents), batch_size):
                lat = latents[lo : lo + batch_size].to(pipe.device)
                noisy, t = noise_latents(pipe, lat, config.timestep, gen)
                kept.clear()
                pipe.unet(noisy.to(pipe.unet.dtype), t, encoder_hidden_states=cond.expand(len(lat), -1, -1))
                feats.append(kept[-1].float().cpu())
            stacked = torch.cat(feats)
            total = stacked if total is None else total + stacked
    finally:
        hook.remove()
    return total / config.ensemble


def nearest_neighbour_points(
    source_features: torch.Tensor,
    target_features: torch.Tensor,
    points: np.ndarray,
    source_index: np.ndarray,
    target_index: np.ndarray,
    size: int,
) -> np.ndarray:
    """For each source point, the target pixel whose feature is most cosine-similar, ``(n, 2)`` as ``(x, y)``.

    The source feature is sampled bilinearly at the point; the target feature map is upsampled
    bilinearly to ``size × size`` (DIFT's practice) and the best pixel centre is returned.
    """
    pts = torch.from_numpy(np.array(points, dtype=np.float32)).reshape(-1, 2)
    src = source_features[torch.from_numpy(np.array(source_index, dtype=np.int64))]
    grid = (pts / size * 2 - 1).view(-1, 1, 1, 2)
    query = F.grid_sample(src, grid, mode="bilinear", align_corners=False)[:, :, 0, 0]  # (n, C)
    out = np.zeros((len(pts), 2), np.float32)
    tgt_index = np.asarray(target_index, dtype=np.int64)
    for img in np.unique(tgt_index):
        rows = np.flatnonzero(tgt_index == img)
        fmap = F.interpolate(target_features[img : img + 1], size=(size, size), mode="bilinear", align_corners=False)
        fmap = F.normalize(fmap[0].flatten(1), dim=0)  # (C, size*size)
        sim = F.normalize(query[torch.as_tensor(rows)], dim=1) @ fmap
        best = sim.argmax(1)
        out[rows, 0] = (best % size).float().numpy() + 0.5
        out[rows, 1] = (best // size).float().numpy() + 0.5
    return out
