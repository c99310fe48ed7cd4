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

>>> import torch
>>> from stablesemantics.models import load_pipeline
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

from stablesemantics.capture.capture import CrossAttentionCapture, capture_cross_attention
from stablesemantics.capture.config import BLOCKS, CaptureConfig, LayerInfo, cross_attention_layers, layer_grid
from stablesemantics.capture.joint import JointAttentionCapture, joint_attention_layers
from stablesemantics.capture.joint_processors import FluxAttnCaptureProcessor, JointAttnCaptureProcessor
from stablesemantics.capture.maps import chunk_maps, minmax_scale_maps, resize_maps
from stablesemantics.capture.run import CapturedRun, attention_capture, run_with_capture, seeded_generators

__all__ = [
    "BLOCKS",
    "CaptureConfig",
    "CapturedRun",
    "CrossAttentionCapture",
    "FluxAttnCaptureProcessor",
    "JointAttentionCapture",
    "JointAttnCaptureProcessor",
    "LayerInfo",
    "attention_capture",
    "capture_cross_attention",
    "chunk_maps",
    "cross_attention_layers",
    "joint_attention_layers",
    "layer_grid",
    "minmax_scale_maps",
    "resize_maps",
    "run_with_capture",
    "seeded_generators",
]
