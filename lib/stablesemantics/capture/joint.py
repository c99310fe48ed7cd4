"""Capture text-token maps from MM-DiT joint attention (SD3, Flux), aggregated on the fly.

What a map is. For every image and every text position (SD3: 77 CLIP positions then the T5
positions; Flux: the T5 positions), the mean over heads, joint-attention layers and kept steps of
the probability that the image's token-grid positions give to that text key, **softmaxed over the
whole joint key set** (image and text keys), as the model computes it. The maps over the text
tokens therefore sum to the share of attention that goes to text, not to 1; they are not
renormalised over real tokens, and padding positions (SD3 and Flux pass no attention mask) get
their share like any token.

Layers: SD3's joint blocks (``transformer_blocks.*.attn``; SD3.5's image-only ``attn2`` has no
text), Flux's double-stream (``transformer_blocks.*.attn``, block ``"joint"``) and single-stream
blocks (``single_transformer_blocks.*.attn``, block ``"single"``). :class:`CaptureConfig` ``blocks``
names UNet parts and is ignored here; a transformer has one resolution (``resolutions`` must be
None or contain 1).

Calls and steps. A forward pre-hook on ``pipe.transformer`` reads the timestep, the token grid
(SD3: the latent in patches; Flux: ``img_ids``) and the text length (``encoder_hidden_states``,
needed by Flux's single-stream blocks). Under SD3's batched guidance only the conditional half is
kept, as for UNets. Calls that repeat a step are not kept: Flux's true-CFG negative call (the
conditional call comes first) and SD3's skip-layer-guidance call.

Memory. Image x image probabilities are never formed (:mod:`stablesemantics.capture.lse`): the
extra memory of a layer call is a few ``(batch, n_image, n_text)`` float32 blocks.

Example:

>>> from stablesemantics.models import load_pipeline
>>> pipe = load_pipeline("tiny-random-flux", device="cpu")
>>> with JointAttentionCapture(pipe) as cap:
...     _ = pipe("a red car", num_inference_steps=2, height=32, width=32, max_sequence_length=16)
>>> cap.maps.shape, [layer.block for layer in cap.layers]
(torch.Size([1, 16, 8, 8]), ['joint', 'joint', 'single', 'single'])
"""

from __future__ import annotations

import re
from typing import Any

import torch
from diffusers.models.attention_processor import JointAttnProcessor2_0
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

from stablesemantics.capture.capture import CrossAttentionCapture, checked_config, split_denoiser
from stablesemantics.capture.config import CaptureConfig, LayerInfo
from stablesemantics.capture.joint_processors import FluxAttnCaptureProcessor, JointAttnCaptureProcessor
from stablesemantics.capture.lse import text_probabilities
from stablesemantics.capture.maps import resize_maps

# The processor each diffusers processor is replaced by (exact classes: a subclass may compute anything).
_CAPTURE_PROCESSOR_OF: dict[type, type] = {
    JointAttnProcessor2_0: JointAttnCaptureProcessor,
    FluxAttnProcessor: FluxAttnCaptureProcessor,
}
_LAYER_NAME = re.compile(r"^(transformer_blocks|single_transformer_blocks)\.\d+\.attn$")


def joint_attention_layers(transformer: torch.nn.Module) -> list[LayerInfo]:
    """The joint-attention layers of an SD3 or Flux transformer, in module order (block ``"joint"`` or ``"single"``)."""
    layers = []
    for name, module in transformer.named_modules():
        match = _LAYER_NAME.match(name)
        if match and hasattr(module, "processor"):
            block = "single" if match.group(1) == "single_transformer_blocks" else "joint"
            layers.append(LayerInfo(name, block, int(module.heads)))
    return layers


def _argument(args: tuple, kwargs: dict, name: str, position: int) -> Any:
    return kwargs[name] if name in kwargs else (args[position] if len(args) > position else None)


class JointAttentionCapture(CrossAttentionCapture):
    """Context manager recording mean text-token maps of every image an SD3 or Flux pipeline generates.

    Same interface as :class:`CrossAttentionCapture` (``maps``, ``n_contributions``, ``steps_kept``,
    ``layers``, ``reset``; a new pipeline call in the same ``with`` block starts new maps); see the
    module docstring for what differs. ``pipe`` is an SD3 or Flux pipeline or its bare transformer
    (then every call is kept, its whole batch conditional).
    """

    def __init__(self, pipe: Any, config: CaptureConfig | None = None) -> None:
        config = checked_config(config)
        pipe, transformer = split_denoiser(pipe, "transformer", "a pipeline with a .transformer or a transformer")
        if pipe is None and config.t_range != (0.0, 1.0):
            raise ValueError("t_range needs the step schedule: capture from the pipeline, not its bare transformer")
        if config.resolutions is not None and 1 not in config.resolutions:
            raise ValueError(
                f"a transformer attends at one resolution (1); resolutions={config.resolutions} keeps none"
            )
        self.config = config
        self.keep_layer_probs = False
        self._pipe = pipe
        self._unet = transformer  # the base class's name for the denoiser (install, remove)
        self.layers: list[LayerInfo] = joint_attention_layers(transformer)
        if not self.layers:
            raise ValueError(f"{type(transformer).__name__} has no joint-attention layer")
        self.text_length: int | None = None
        self._extra_call = False
        self._step_token: Any = None
        self._originals: dict[str, Any] = {}
        self._hook: Any = None
        self.reset()

    def _check_processor(self, layer: LayerInfo, proc: Any) -> None:
        if isinstance(proc, tuple(_CAPTURE_PROCESSOR_OF.values())):
            raise RuntimeError(f"{layer.name} is already being captured (nested captures are not supported)")
        if type(proc) not in _CAPTURE_PROCESSOR_OF:
            raise ValueError(
                f"cannot capture {layer.name}: its processor {type(proc).__name__} is not plain joint attention "
                f"(supported: {', '.join(p.__name__ for p in _CAPTURE_PROCESSOR_OF)})"
            )

    def _capture_processor(self, layer: LayerInfo, original: Any) -> Any:
        return _CAPTURE_PROCESSOR_OF[type(original)](self, layer, original)

    def _pre_hook(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        hidden_states = _argument(args, kwargs, "hidden_states", 0)
        text = _argument(args, kwargs, "encoder_hidden_states", 1)
        timestep = _argument(args, kwargs, "timestep", 3)
        token = getattr(self._pipe, "_current_timestep", None)
        # A second call within one step: Flux's true-CFG negative call (same step object as the
        # conditional call before it) or SD3's skip-layer guidance (it passes skip_layers).
        self._extra_call = kwargs.get("skip_layers") is not None or (token is not None and token is self._step_token)
        if self._extra_call:
            return
        self._step_token = token
        self.text_length = int(text.shape[1])
        img_ids = kwargs.get("img_ids")
        if img_ids is not None:  # Flux: packed latents (batch, h * w, channels); the grid is in the ids
            ids = img_ids[-hidden_states.shape[1] :] if img_ids.ndim == 2 else img_ids[0]
            grid = (int(ids[:, 1].max()) + 1, int(ids[:, 2].max()) + 1)
        else:  # SD3: latents (batch, channels, H, W) cut into patches
            patch = int(module.config.patch_size)
            grid = (int(hidden_states.shape[-2]) // patch, int(hidden_states.shape[-1]) // patch)
        t = float(timestep.flatten()[0]) if isinstance(timestep, torch.Tensor) else float(timestep)
        self._start_call(t, grid)

    def _keeps_call(self) -> bool:
        """Whether the layer call now running is to be captured."""
        return self._keep_step and not self._extra_call and self._latent_size is not None

    def _add_joint(
        self, image_query: torch.Tensor, text_key: torch.Tensor, image_lse: torch.Tensor, layer: LayerInfo
    ) -> None:
        """Add one layer's text probabilities (from ``(batch, heads, n, d)`` queries and keys) to the running sum."""
        batch, heads, n_image, _ = image_query.shape
        if self._cond_only:
            if batch % 2:
                raise RuntimeError(f"classifier-free guidance is on but the transformer batch ({batch}) is odd")
            image_query, text_key, image_lse = (
                image_query[batch // 2 :],
                text_key[batch // 2 :],
                image_lse[batch // 2 :],
            )
        h, w = self._latent_size
        if n_image != h * w:
            raise RuntimeError(f"{layer.name}: {n_image} image tokens, but the token grid is {h}x{w}")
        with torch.no_grad():
            probs = text_probabilities(image_query.detach(), text_key.detach(), image_lse.detach())
        maps = probs.transpose(1, 2).reshape(probs.shape[0], probs.shape[2], h, w)
        self._accumulate(resize_maps(maps, self.map_size), heads)
