"""Load a diffusion pipeline: the embedded MicroSD, a local directory, a hub id, a spec, or a tiny random one.

The pipeline class comes from the model's ``model_index.json`` (Stable Diffusion 1.x/2.x, SDXL, SD3,
Flux, ...); MicroSD and ``"tiny-random"`` are :class:`diffusers.StableDiffusionPipeline`, so the
capture and generation code is identical for the embedded model, a real checkpoint and the test
pipelines. Tiny random pipelines of the other families: :mod:`stablesemantics.models.tiny`; specs
(a base with another UNet and scheduler, e.g. SDXL-Lightning): :mod:`stablesemantics.models.spec`.

Example (offline, seconds on a CPU):

>>> pipe = load_pipeline("tiny-random", device="cpu")
>>> out = pipe("a red car", num_inference_steps=2, height=32, width=32, output_type="np")
>>> out.images.shape
(1, 32, 32, 3)
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import diffusers
import torch
from diffusers import (
    DiffusionPipeline,
    StableDiffusionPipeline,
)

from stablesemantics.models.components import tiny_random_components
from stablesemantics.models.families import denoiser
from stablesemantics.models.spec import apply_spec, parse_model_spec
from stablesemantics.models.tiny import TINY_PIPELINES
from stablesemantics.paths import MODEL_DIR

TINY_RANDOM = "tiny-random"
MICROSD = "microsd"


class ModelNotFoundError(FileNotFoundError):
    """A model name could be resolved neither to a local pipeline directory nor to a hub repository."""


def default_device() -> str:
    """``"cuda"`` if a CUDA GPU is available, else ``"mps"`` (Apple silicon), else ``"cpu"``."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


#: pipeline classes whose reference dtype is bfloat16: float16 overflows in their activations
BFLOAT16_FAMILIES = ("Flux", "StableDiffusion3")


def default_dtype(device: str | torch.device, pipeline_class: type | None = None) -> torch.dtype:
    """``float32`` off CUDA; on CUDA ``float16`` (half the memory, tensor cores), or ``bfloat16`` for
    Flux and SD3 pipelines where the GPU has it (their activations overflow float16's range).

    >>> default_dtype("cpu")
    torch.float32
    """
    if torch.device(device).type != "cuda":
        return torch.float32
    bf16 = pipeline_class is not None and pipeline_class.__name__.startswith(BFLOAT16_FAMILIES)
    return torch.bfloat16 if bf16 and torch.cuda.is_bf16_supported() else torch.float16


def load_pipeline(
    model: str | os.PathLike = MICROSD,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> DiffusionPipeline:
    """Load a diffusion pipeline by name, path, hub id or spec, ready to call.

    ``model`` is resolved in this order:

    1. ``"tiny-random"``: :func:`tiny_random_components` (tests, smoke runs); ``"tiny-random-sd2"``,
       ``"tiny-random-sdxl"``, ``"tiny-random-sd3"``, ``"tiny-random-flux"``: the tiny pipelines of
       :mod:`stablesemantics.models.tiny`;
    2. ``"microsd"``: the embedded MicroSD model in the repository's ``data/models/microsd``;
    3. a spec ``base?unet=...&scheduler=...`` (:mod:`stablesemantics.models.spec`): ``base`` loaded as
       here, then its UNet weights and scheduler replaced;
    4. a local directory holding a ``model_index.json`` (a saved diffusers pipeline);
    5. otherwise a Hugging Face hub id such as ``"stable-diffusion-v1-5/stable-diffusion-v1-5"``,
       ``"stabilityai/stable-diffusion-xl-base-1.0"`` or ``"black-forest-labs/FLUX.1-schnell"``, from
       the local cache or the hub.

    For 3 and 4 the pipeline class is the one ``model_index.json`` names (``_class_name``).

    ``device`` defaults to :func:`default_device`, ``dtype`` to :func:`default_dtype` of the device
    and pipeline class (float32 off CUDA; on CUDA float16, bfloat16 for Flux and SD3). The safety checker is off and the progress bar disabled.

    Raises :class:`ModelNotFoundError` (a ``FileNotFoundError``) naming the model when it cannot be
    found: MicroSD not built yet (run ``make model``), or a hub id that is neither cached nor reachable.

    Example:

    >>> pipe = load_pipeline("tiny-random", device="cpu")
    >>> pipe.device.type, pipe.unet.dtype
    ('cpu', torch.float32)
    """
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a str or a path, got {type(model).__name__}")
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str, a torch.device or None, got {type(device).__name__}")
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype or None, got {type(dtype).__name__}")
    device = torch.device(device if device is not None else default_device())
    name = os.fspath(model)
    if not name:
        raise ValueError("model must not be empty")

    spec = parse_model_spec(name)
    if spec is not None:
        pipe = apply_spec(load_pipeline(spec.base, device="cpu", dtype=dtype or default_dtype(device)), spec)
    elif name == TINY_RANDOM:
        pipe = StableDiffusionPipeline(**tiny_random_components(), requires_safety_checker=False)
    elif name in TINY_PIPELINES:
        pipe = TINY_PIPELINES[name]()
    else:
        if name == MICROSD:
            path = MODEL_DIR / MICROSD
            if not (path / "model_index.json").is_file():
                raise ModelNotFoundError(
                    f"the embedded MicroSD model is not built: {path} has no model_index.json; "
                    "run `make model` to train it (or pass model='tiny-random' or a hub id)"
                )
        else:
            path = Path(name).expanduser()
            if not path.is_dir() and _looks_like_path(name):
                raise ModelNotFoundError(f"model {name!r} looks like a local path but there is no such directory")
        if path.is_dir():
            if not (path / "model_index.json").is_file():
                raise ModelNotFoundError(
                    f"{name!r} is a directory but not a saved diffusers pipeline (no model_index.json)"
                )
            pipe = _from_pretrained(str(path), dtype, device)
        else:
            pipe = _from_pretrained(name, dtype, device)
    dtype = dtype or default_dtype(device, type(pipe))
    if denoiser(pipe).dtype != dtype:  # from_pretrained already loaded in dtype; the tiny ones are float32
        pipe = pipe.to(dtype=dtype)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _looks_like_path(name: str) -> bool:
    # Hub ids are "owner/name" (or a bare "name"); anything else with separators is meant as a path.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _dtype_kwarg() -> str:
    # diffusers renamed from_pretrained's `torch_dtype` to `dtype` (the old name warns, then goes away).
    try:
        from diffusers.utils import deprecation_utils

        return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"
    except ImportError:
        return "torch_dtype"


_DTYPE_KWARG = _dtype_kwarg()


def _pipeline_class(name: str) -> type:
    """The pipeline class that ``name``'s ``model_index.json`` names (local directory, cache or hub)."""
    class_name = DiffusionPipeline.load_config(name).get("_class_name")
    cls = getattr(diffusers, str(class_name), None)
    if not (isinstance(cls, type) and issubclass(cls, DiffusionPipeline)):
        raise ValueError(f"model {name!r}: its model_index.json names {class_name!r}, not a diffusers pipeline")
    return cls


def _from_pretrained(name: str, dtype: torch.dtype | None, device: torch.device) -> DiffusionPipeline:
    # Import lazily: the error classes moved between huggingface_hub versions.
    from huggingface_hub import errors as hf_errors

    not_found = tuple(
        getattr(hf_errors, cls)
        for cls in (
            "LocalEntryNotFoundError",
            "RepositoryNotFoundError",
            "RevisionNotFoundError",
            "EntryNotFoundError",
            "HFValidationError",
            "HfHubHTTPError",
            "OfflineModeIsEnabled",
        )
        if hasattr(hf_errors, cls)
    )
    try:
        cls = _pipeline_class(name)
        dtype = dtype or default_dtype(device, cls)
        if "safety_checker" in inspect.signature(cls.__init__).parameters:
            return cls.from_pretrained(
                name, **{_DTYPE_KWARG: dtype}, safety_checker=None, requires_safety_checker=False
            )
        return cls.from_pretrained(name, **{_DTYPE_KWARG: dtype})
    except (OSError, *not_found) as err:
        if os.path.isdir(name):
            raise  # a local pipeline that fails to load is a different problem: show it as it is
        raise ModelNotFoundError(
            f"model {name!r} could not be found: it is not 'tiny-random', 'microsd', a local directory "
            f"with a model_index.json, nor a diffusers pipeline repository in the local Hugging Face cache "
            f"or on the hub (offline, or no such id?). Underlying error: {type(err).__name__}: {err}"
        ) from err
