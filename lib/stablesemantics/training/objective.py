"""The denoising objective: the target the UNet predicts and the weight of each timestep."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler


def denoising_target(sched: DDPMScheduler, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, kind: str):
    """The noise (``'epsilon'``) or the velocity ``√ᾱ·ε − √(1−ᾱ)·x₀`` (``'v_prediction'``)."""
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return sched.get_velocity(latents, noise, t)
    raise ValueError(f"prediction type must be 'epsilon' or 'v_prediction', got {kind!r}")


def min_snr_weights(sched: DDPMScheduler, t: torch.Tensor, gamma: float, kind: str) -> torch.Tensor | None:
    """Min-SNR-γ weights (Hang et al. 2023): ``min(SNR, γ) / SNR`` for ε, ``min(SNR, γ) / (SNR + 1)`` for v.

    ``None`` when ``gamma`` is 0 (plain MSE).

    >>> from stablesemantics.training.microsd_model import train_noise_scheduler
    >>> w = min_snr_weights(train_noise_scheduler(), torch.tensor([0, 500, 999]), 5.0, "epsilon")
    >>> [round(x, 3) for x in w.tolist()]
    [0.004, 1.0, 1.0]
    """
    if gamma <= 0:
        return None
    alpha_bar = sched.alphas_cumprod[t].float()
    snr = alpha_bar / (1 - alpha_bar)
    clipped = snr.clamp(max=gamma)
    return clipped / snr if kind == "epsilon" else clipped / (snr + 1)


def denoising_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Weighted mean over the batch of each sample's mean squared error (plain MSE without weights)."""
    if weights is None:
        return F.mse_loss(pred, target)
    per_sample = (pred.float() - target.float()).pow(2).mean(dim=tuple(range(1, pred.ndim)))
    return (weights * per_sample).mean()
