"""Localisation probe during training: held-out scenes, object maps vs true masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stablesemantics.evaluate.metrics import best_threshold_miou
from stablesemantics.training.data import make_batch, world_max_objects
from stablesemantics.training.grounding import attention_recorder, layer_object_maps
from stablesemantics.training.microsd_model import train_noise_scheduler


@torch.no_grad()
def evaluate_localisation(unet, text_encoder, vae, tokenizer, scenes, timesteps, scaling: float, seed: int = 0):
    """Quick localisation check used during training: one UNet call on noised true scenes.

    For each timestep, every object phrase's map (mean over heads, summed over layers,
    upsampled to the image) is compared with the object's mask at the best global threshold.
    """
    unet.eval()
    text_encoder.eval()
    batch = make_batch(scenes, tokenizer, k_max=world_max_objects(scenes))
    latents = vae.encode(batch.images).latent_dist.mean * scaling
    hw = tuple(latents.shape[-2:])
    cond = text_encoder(batch.input_ids)[0]
    sched = train_noise_scheduler()
    gen = torch.Generator().manual_seed(seed)
    result = {}
    for t in timesteps:
        noise = torch.randn(latents.shape, generator=gen)
        tt = torch.full((len(scenes),), t, dtype=torch.long)
        with attention_recorder(unet) as recorder:
            unet(sched.add_noise(latents, noise, tt), tt, cond)
        total = 0
        for layer, probs in recorder.layer_probs:
            m = layer_object_maps(layer.heads, probs, batch.token_weights, hw)
            total = total + F.interpolate(m, size=batch.masks.shape[-2:], mode="bilinear", align_corners=False)
        maps = total[batch.valid].numpy()
        masks = batch.masks[batch.valid].numpy()
        result[int(t)] = best_threshold_miou(maps, masks)[0]
    unet.train()
    text_encoder.train()
    return result
