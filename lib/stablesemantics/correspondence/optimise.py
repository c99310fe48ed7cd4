"""Hedlin et al.'s optimisation: a conditioning whose token attends to one point of a source image."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from stablesemantics.correspondence.attention import encode_pixels, noise_latents, pixels_of, token_attention
from stablesemantics.correspondence.config import CorrespondenceConfig
from stablesemantics.correspondence.geometry import (
    crop_boxes,
    crop_images,
    gaussian_maps,
    inside_crops,
    points_to_crop,
)


@dataclass
class OptimisedEmbeddings:
    """The result of :func:`optimise_embeddings`.

    ``embeddings`` ``(n_points, restarts, n_tokens, dim)``; ``losses`` ``(steps, n_points)`` the
    MSE of each point's attention map against its Gaussian (mean over restarts) at every step;
    ``seconds`` the wall time of the optimisation.
    """

    embeddings: torch.Tensor
    losses: np.ndarray
    seconds: float


@dataclass
class _CropBank:
    """Encoded crops of the source images: ``latents[image, crop, flipped]`` and the crop boxes."""

    latents: torch.Tensor  # (n_images, n_crops, 2, c, h, w)
    boxes: torch.Tensor  # (n_images, n_crops, 3)


def _crop_bank(pipe, pixels: torch.Tensor, config: CorrespondenceConfig, gen: torch.Generator) -> _CropBank:
    size = pixels.shape[-1]
    k = config.train_crops
    boxes = torch.stack([crop_boxes(k, size, config.crop_fraction, gen) for _ in range(len(pixels))])
    flat_boxes = boxes.reshape(-1, 3).repeat_interleave(2, 0)
    flips = torch.tensor([False, True]).repeat(len(pixels) * k)
    crops = crop_images(pixels.repeat_interleave(2 * k, 0), flat_boxes, flips)
    latents = encode_pixels(pipe, crops)
    return _CropBank(latents.view(len(pixels), k, 2, *latents.shape[1:]), boxes)


def optimise_embeddings(
    pipe,
    images: np.ndarray,
    points: np.ndarray,
    image_index: np.ndarray,
    config: CorrespondenceConfig | None = None,
) -> OptimisedEmbeddings:
    """Optimise ``config.restarts`` conditionings per point so that their token attends to the point.

    ``images`` ``(n_images, S, S, 3)`` uint8 are the source images; ``points`` ``(n_points, 2)`` are
    ``(x, y)`` pixel coordinates in image ``image_index[i]``. Each conditioning (the encoder
    hidden states, ``n_tokens × dim``, initialised ``randn · init_scale``) is trained with Adam to
    make the attention of token ``config.token`` (the layers of ``config.capture``, on the image
    noised to ``config.timestep``) match a Gaussian of width ``sigma`` at the point, MSE as the
    paper. Each step sees a random crop of the source (mirrored with probability ``flip_prob``,
    the point moved with it) drawn from ``train_crops`` crops encoded once, among those that hold
    the point. Points × restarts are optimised together in UNet batches of ``batch_size``; each
    item has its own loss and Adam state, so batching changes nothing but speed.
    """
    config = config or CorrespondenceConfig()
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(config.seed)
    pixels = pixels_of(images)
    size = pixels.shape[-1]
    points_t = torch.from_numpy(np.array(points, dtype=np.float32)).reshape(-1, 2)
    image_index_t = torch.from_numpy(np.array(image_index, dtype=np.int64)).reshape(-1)
    bank = _crop_bank(pipe, pixels, config, gen)
    allowed = inside_crops(points_t, bank.boxes[image_index_t])  # the crops that hold each point
    allowed[~allowed.any(1)] = True
    dim = pipe.unet.config.cross_attention_dim
    n_tokens = pipe.tokenizer.model_max_length
    item_point = torch.arange(len(points_t)).repeat_interleave(config.restarts)
    init = torch.randn((len(item_point), n_tokens, dim), generator=gen) * config.init_scale
    embeddings = torch.empty_like(init)
    losses = torch.zeros((config.steps, len(item_point)))
    for lo in range(0, len(item_point), config.batch_size):
        sl = slice(lo, lo + config.batch_size)
        embeddings[sl], losses[:, sl] = _optimise_batch(
            pipe, bank, init[sl], item_point[sl], points_t, image_index_t, allowed, config, gen, size
        )
    per_point = losses.view(config.steps, len(points_t), config.restarts).mean(2).numpy()
    return OptimisedEmbeddings(
        embeddings.view(len(points_t), config.restarts, n_tokens, dim), per_point, time.perf_counter() - start
    )


def map_loss(maps: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Per-map loss ``(n,)`` of attention maps against Gaussian targets, both ``(n, S, S)``.

    ``"mse"``: the paper's mean squared error against the peak-1 Gaussian. ``"kl"``: KL divergence
    from the Gaussian to the map, both normalised to sum 1: scale-free, so "attend nowhere" (the
    flat minimum the MSE falls into when the learning rate is high) is no minimum.

    >>> g = gaussian_maps(torch.tensor([[8.0, 8.0]]), 16, 2.0)
    >>> float(map_loss(g, g, "mse")), round(float(map_loss(g, g, "kl")), 6)
    (0.0, 0.0)
    """
    if kind == "mse":
        return ((maps - target) ** 2).mean((1, 2))
    if kind == "kl":
        p = target.flatten(1) / target.flatten(1).sum(1, keepdim=True)
        log_q = torch.log(maps.flatten(1).clamp_min(1e-12)) - torch.log(maps.flatten(1).sum(1, keepdim=True))
        return (p * (torch.log(p.clamp_min(1e-12)) - log_q)).sum(1)
    raise ValueError(f"loss must be 'mse' or 'kl', got {kind!r}")


def _optimise_batch(pipe, bank: _CropBank, init, item_point, points, image_index, allowed, config, gen, size):
    """Adam on one UNet batch of conditionings; returns them and their loss at every step."""
    device = pipe.device
    emb = init.clone().to(device).requires_grad_(True)
    optimiser = torch.optim.Adam([emb], lr=config.lr)
    losses = torch.zeros((config.steps, len(item_point)))
    img = image_index[item_point]
    for step in range(config.steps):
        weights = allowed[item_point].float()
        crop = torch.multinomial(weights, 1, generator=gen)[:, 0]
        flip = torch.rand(len(item_point), generator=gen) < config.flip_prob
        latents = bank.latents[img, crop, flip.long()].to(device)
        target_xy = points_to_crop(points[item_point], bank.boxes[img, crop], size, flip)
        target = gaussian_maps(target_xy, size, config.sigma * size).to(device)
        noisy, t = noise_latents(pipe, latents, config.timestep, gen)
        maps = token_attention(pipe.unet, noisy, t, emb, config.capture, config.token, size)
        item_loss = map_loss(maps, target, config.loss)
        # the sum keeps every item's gradient what it would be alone; only the embedding's gradient is
        # computed (the UNet's weights are not touched)
        (grad,) = torch.autograd.grad(item_loss.sum(), [emb])
        emb.grad = grad
        optimiser.step()
        losses[step] = item_loss.detach().cpu()
    return emb.detach().cpu(), losses
