"""The capture: install recording processors on a UNet, keep a running sum of maps, restore the UNet."""

from __future__ import annotations

from typing import Any

import torch

from stablesemantics.capture.config import CaptureConfig, LayerInfo, cross_attention_layers, layer_grid
from stablesemantics.capture.maps import resize_maps
from stablesemantics.capture.processors import _PLAIN_PROCESSORS, _CaptureProcessor


def checked_config(config: CaptureConfig | None) -> CaptureConfig:
    """``config``, or the default configuration when it is ``None``; anything else is a ``TypeError``."""
    if config is None:
        return CaptureConfig()
    if not isinstance(config, CaptureConfig):
        raise TypeError(f"config must be a CaptureConfig or None, got {type(config).__name__}")
    return config


def split_denoiser(pipe: Any, attr: str, expected: str) -> tuple[Any, torch.nn.Module]:
    """``(pipeline or None, denoiser)`` from a pipeline (its ``attr``: ``unet``, ``transformer``) or a bare module."""
    denoiser = getattr(pipe, attr, None)
    if denoiser is None and isinstance(pipe, torch.nn.Module):
        denoiser, pipe = pipe, None
    if not isinstance(denoiser, torch.nn.Module):
        raise TypeError(f"pipe must be {expected}, got {type(pipe).__name__}")
    return pipe, denoiser


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

    >>> from stablesemantics.models import load_pipeline
    >>> pipe = load_pipeline("tiny-random", device="cpu")
    >>> config = CaptureConfig(map_size=(16, 16), resolutions=(2,))
    >>> with CrossAttentionCapture(pipe, config) as cap:
    ...     _ = pipe("a cat", num_inference_steps=2, num_images_per_prompt=2, height=32, width=32)
    >>> cap.maps.shape, cap.steps_kept
    (torch.Size([2, 77, 16, 16]), 2)
    """

    def __init__(self, pipe: Any, config: CaptureConfig | None = None, *, keep_layer_probs: bool = False) -> None:
        config = checked_config(config)
        pipe, unet = split_denoiser(pipe, "unet", "a diffusers pipeline with a .unet or a UNet module")
        if pipe is None and config.t_range != (0.0, 1.0):
            raise ValueError("t_range needs the step schedule: capture from the pipeline, not its bare UNet")
        self.config = config
        self.keep_layer_probs = keep_layer_probs
        self._pipe = pipe
        self._unet = unet
        self.layers: list[LayerInfo] = [layer for layer in cross_attention_layers(unet) if layer.block in config.blocks]
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
        self.layer_probs: list[tuple[LayerInfo, torch.Tensor]] = []

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
            self._check_processor(layer, modules[layer.name].processor)
        try:
            for layer in self.layers:
                module = modules[layer.name]
                self._originals[layer.name] = module.processor
                module.set_processor(self._capture_processor(layer, module.processor))
            self._hook = self._unet.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        except BaseException:
            self.remove()
            raise
        self.reset()
        return self

    def _check_processor(self, layer: LayerInfo, proc: Any) -> None:
        """Refuse a layer that is already captured or whose processor computes something else."""
        if isinstance(proc, _CaptureProcessor):
            raise RuntimeError(f"{layer.name} is already being captured (nested captures are not supported)")
        if type(proc) not in _PLAIN_PROCESSORS:  # exact classes: a subclass may compute anything
            raise ValueError(
                f"cannot capture {layer.name}: its processor {type(proc).__name__} is not plain "
                f"softmax attention (supported: {', '.join(p.__name__ for p in _PLAIN_PROCESSORS)})"
            )

    def _capture_processor(self, layer: LayerInfo, original: Any) -> Any:
        """The recording processor that replaces ``original`` on ``layer``."""
        return _CaptureProcessor(self, layer, original)

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
        self._start_call(t, (int(sample.shape[-2]), int(sample.shape[-1])))

    def _start_call(self, t: float, size: tuple[int, int]) -> None:
        """Book-keeping at every denoiser call: new pipeline call or not, guidance, grid size, step kept."""
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

    def _add(self, probs: torch.Tensor, layer: LayerInfo, grid: tuple[int, int, int]) -> None:
        """Add one layer's ``(batch * heads, n_queries, n_tokens)`` probabilities to the running sum.

        With ``keep_layer_probs`` the probabilities are kept as they are, gradients included, in
        :attr:`layer_probs` (what a training loss on attention needs), and no running sum is made.
        """
        if self.keep_layer_probs:
            self.layer_probs.append((layer, probs))
            return
        probs, heads = probs.detach(), layer.heads
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
        self._accumulate(resize_maps(summed, self.map_size), heads)

    def _accumulate(self, summed: torch.Tensor, heads: int) -> None:
        """Add head-summed maps ``(n_images, n_tokens, h, w)`` of ``heads`` heads to the running sum."""
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


def capture_cross_attention(pipe: Any, config: CaptureConfig | None = None) -> CrossAttentionCapture:
    """``with capture_cross_attention(pipe) as cap: pipe(...)`` then read ``cap.maps``.

    Same as :class:`CrossAttentionCapture`; see its documentation.

    >>> from stablesemantics.models import load_pipeline
    >>> pipe = load_pipeline("tiny-random", device="cpu")
    >>> with capture_cross_attention(pipe, CaptureConfig(blocks=("up",))) as cap:
    ...     _ = pipe("a cat", num_inference_steps=2, height=32, width=32, guidance_scale=1.0)
    >>> cap.maps.shape
    torch.Size([1, 77, 16, 16])
    """
    return CrossAttentionCapture(pipe, config)
