"""Prompts x seeds -> a Zarr store of images and per-noun-chunk cross-attention maps.

:func:`generate` is the whole pipeline of the StableSemantics paper in one call:

1. clean the prompts (:func:`stablesemantics.prompts.clean_prompts`: Midjourney flags,
   weights, URLs, duplicates) and refuse prompts that are empty after cleaning;
2. find the noun chunks of each caption (spaCy) and their CLIP token positions; a chunk
   that falls past the 77-token window gets no map and is flagged ``truncated``;
3. plan every item (prompt, seed) and every map row up front and create the store
   (:mod:`stablesemantics.store`) with that layout;
4. run the items in a fixed partition of batches ``[k*B, (k+1)*B)``, each image with its
   own ``torch.Generator`` seeded by its seed (so an image depends on (prompt, seed) only,
   not on its batch mates), capture the cross-attention
   (:class:`stablesemantics.attention.CrossAttentionCapture`), average each chunk's token
   maps (:func:`stablesemantics.attention.chunk_maps`), and write images, maps, then
   ``done``.

Rerunning the same call resumes: batches whose items are all done are skipped, a partly
done batch is redone whole; a store made with other settings is never overwritten.

Example (seconds on a CPU):

>>> import tempfile
>>> from stablesemantics.attention import CaptureConfig
>>> out = generate(["a red car on a street", "a small dog --ar 16:9"], seeds=2,
...                out=tempfile.mkdtemp() + "/demo.zarr", model="tiny-random", steps=2,
...                height=32, width=32, capture=CaptureConfig(map_size=(8, 8)), progress=False)
>>> from stablesemantics.store import store_summary
>>> s = store_summary(out)
>>> s["n_images"], s["n_done"], s["n_maps"]
(4, 4, 6)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .attention import CaptureConfig, CrossAttentionCapture, chunk_maps
from .store import PER_IMAGE, PER_MAP, StoreLayout, StoreWriter, create_store, open_store

__all__ = ["generate", "plan_generation", "GenerationPlan", "RESUME_KEYS", "StoreMismatchError"]


class StoreMismatchError(ValueError):
    """An existing store at ``out`` was made with other settings or items; it is not overwritten."""

#: Root attributes that must be equal for a run to resume into an existing store.
RESUME_KEYS = (
    "model", "model_revision", "pipeline_class", "scheduler", "scheduler_config", "steps",
    "guidance", "height", "width", "capture", "batch_size", "dtype",
)


@dataclass
class GenerationPlan:
    """Items and map rows of a run, before any image is made (see :func:`plan_generation`).

    ``layout`` is what the store is created with; ``captions`` / ``prompt_ids`` are the
    deduplicated prompts; ``map_tokens[i]`` lists the token-position lists of image ``i``'s
    maps, in map-row order; ``truncated_prompt_ids`` the prompts longer than the
    tokenizer's window; ``cleaning`` the cleaning report as a dict.
    """

    layout: StoreLayout
    captions: list[str]
    prompt_ids: list[int]
    seeds: list[int]
    map_tokens: list[list[tuple[int, ...]]]
    truncated_prompt_ids: list[int]
    cleaning: dict[str, Any]


# --------------------------------------------------------------------------- checks


def _check_int(x: Any, name: str, minimum: int | None = 1) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    if minimum is not None and x < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {x}")
    return int(x)


def _check_prompts(prompts: Any) -> list[str]:
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        raise TypeError(f"prompts must be a sequence of str (e.g. a list), got {type(prompts).__name__}")
    out = list(prompts)
    for i, p in enumerate(out):
        if not isinstance(p, str):
            raise TypeError(f"prompts[{i}] must be a str, got {type(p).__name__}")
    if not out:
        raise ValueError("prompts is empty: give at least one prompt")
    return out


def _check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, bool):
        raise TypeError("seeds must be an int (how many: 0..n-1) or a sequence of ints, got bool")
    if isinstance(seeds, (int, np.integer)):
        n = _check_int(seeds, "seeds")
        return list(range(n))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray, range)):
        raise TypeError(f"seeds must be an int or a sequence of ints, got {type(seeds).__name__}")
    out = [_check_int(s, f"seeds[{i}]", minimum=0) for i, s in enumerate(seeds)]
    if not out:
        raise ValueError("seeds is empty: give at least one seed")
    if len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct, got {out}")
    if max(out) >= 2**63:
        raise ValueError("seeds must be < 2**63")
    return out


# --------------------------------------------------------------------------- planning


def plan_generation(
    prompts: Sequence[str],
    seeds: Sequence[int] | int,
    tokenizer: Any,
    *,
    image_size: tuple[int, int],
    map_size: tuple[int, int],
    batch_size: int,
    dedupe: bool = True,
) -> GenerationPlan:
    """Clean, dedupe, chunk and tokenise the prompts and lay out items and map rows.

    Items are prompt-major: image ``p * n_seeds + s`` is prompt ``p`` with seed ``s``.
    ``prompt_id`` is the prompt's index in ``prompts`` (the caller's list), so images can be
    joined back to the caller's metadata even when duplicates were dropped.

    Example
    -------
    >>> from stablesemantics.prompts import load_clip_tokenizer
    >>> plan = plan_generation(["A red car --ar 3:2", "a red car"], 2, load_clip_tokenizer(),
    ...                        image_size=(32, 32), map_size=(8, 8), batch_size=2)
    >>> plan.captions, plan.layout.n_images, plan.cleaning["n_duplicates"]
    (['A red car'], 2, 1)
    """
    from .prompts import chunk_token_indices, clean_prompt, clean_prompts, count_tokens, noun_chunks_many

    texts = _check_prompts(prompts)
    seed_list = _check_seeds(seeds)
    for i, t in enumerate(texts):
        if not clean_prompt(t).text.strip():
            raise ValueError(f"prompt {i} ({t!r}) is empty after cleaning")
    first_index: dict[str, int] = {}
    for i, t in enumerate(texts):
        first_index.setdefault(t, i)
    if dedupe:
        cleaned, report = clean_prompts(texts)
        cleaning = asdict(report) if hasattr(report, "__dataclass_fields__") else dict(vars(report))
        prompt_ids = [first_index[c.original] for c in cleaned]
        if cleaning.get("n_duplicates"):
            warnings.warn(f"{cleaning['n_duplicates']} duplicate prompt(s) dropped (after cleaning)", stacklevel=3)
    else:
        cleaned = [clean_prompt(t) for t in texts]
        cleaning = {"n_in": len(texts), "n_empty": 0, "n_duplicates": 0, "n_out": len(texts), "dedupe": False}
        prompt_ids = list(range(len(texts)))

    max_len = int(getattr(tokenizer, "model_max_length", 77) or 77)
    per_prompt_chunks: list[list[dict[str, Any]]] = []
    truncated_ids: list[int] = []
    all_chunks = noun_chunks_many([c.text for c in cleaned])
    for c, pid, chunks in zip(cleaned, prompt_ids, all_chunks):
        spans = chunk_token_indices(c.text, chunks, tokenizer, max_length=max_len) if chunks else []
        if count_tokens(c.text, tokenizer) > max_len:
            truncated_ids.append(pid)
        per_prompt_chunks.append([
            {"text": ch.text, "lemma": ch.lemma, "start": ch.start, "end": ch.end,
             "tokens": [int(i) for i in sp.indices], "truncated": bool(sp.truncated)}
            for ch, sp in zip(chunks, spans)
        ])
    if truncated_ids:
        warnings.warn(
            f"{len(truncated_ids)} prompt(s) are longer than {max_len} tokens (prompt ids "
            f"{truncated_ids[:10]}{'...' if len(truncated_ids) > 10 else ''}); the model sees only "
            "the first tokens and noun chunks past the window get no map (flagged 'truncated')",
            stacklevel=3,
        )

    per_image: dict[str, list[Any]] = {k: [] for k in PER_IMAGE}
    per_map: dict[str, list[Any]] = {k: [] for k in PER_MAP}
    map_tokens: list[list[tuple[int, ...]]] = []
    for c, pid, chunks in zip(cleaned, prompt_ids, per_prompt_chunks):
        for seed in seed_list:
            image = len(per_image["seed"])
            entries, tokens = [], []
            for ch in chunks:
                has_map = bool(ch["tokens"]) and not ch["truncated"]
                row = len(per_map["map_image"]) if has_map else -1
                if has_map:
                    per_map["map_image"].append(image)
                    per_map["map_chunk"].append(ch["text"])
                    per_map["map_lemma"].append(ch["lemma"])
                    per_map["map_token_indices"].append(json.dumps(ch["tokens"]))
                    tokens.append(tuple(ch["tokens"]))
                entries.append({**ch, "map": row})
            per_image["prompt_id"].append(pid)
            per_image["prompt"].append(c.original)
            per_image["caption"].append(c.text)
            per_image["seed"].append(seed)
            per_image["noun_chunks"].append(json.dumps(entries))
            map_tokens.append(tokens)
    layout = StoreLayout(image_size=image_size, map_size=map_size, batch_size=batch_size, **per_image, **per_map)
    return GenerationPlan(layout, [c.text for c in cleaned], prompt_ids, seed_list, map_tokens,
                          truncated_ids, cleaning)


# --------------------------------------------------------------------------- metadata


def _model_id(model: Any, pipe: Any) -> str:
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    name = getattr(pipe, "name_or_path", None) or getattr(getattr(pipe, "config", {}), "_name_or_path", None)
    return str(name) if name else f"<{type(pipe).__name__} object>"


def _model_revision(model_id: str) -> str | None:
    """Hub commit of a cached hub model, or a content hash of a local pipeline directory."""
    from .pipelines import MODEL_DIR

    path = MODEL_DIR / model_id if model_id == "microsd" else Path(model_id).expanduser()
    if (path / "model_index.json").is_file():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.parts))
        total = sum(p.stat().st_size for p in files)
        h = hashlib.sha256()
        for p in files:
            h.update(str(p.relative_to(path)).encode())
            if total <= 2**30:  # hash contents of small models (MicroSD); sizes only for big ones
                h.update(p.read_bytes())
            else:
                h.update(str(p.stat().st_size).encode())
        return "sha256:" + h.hexdigest()[:16]
    m = re.search(r"snapshots/([0-9a-f]{40})", model_id)
    if m:
        return m.group(1)
    if "/" in model_id and not os.path.exists(model_id):
        try:
            from huggingface_hub import snapshot_download

            local = snapshot_download(model_id, local_files_only=True)
            return Path(local).name
        except Exception:  # noqa: BLE001 - revision is informative only
            return None
    return None


def _versions() -> dict[str, str]:
    import diffusers
    import transformers
    import zarr

    out = {"torch_version": torch.__version__, "diffusers_version": diffusers.__version__,
           "transformers_version": transformers.__version__, "zarr_version": zarr.__version__,
           "numpy_version": np.__version__, "python_version": platform.python_version()}
    try:
        import spacy

        out["spacy_version"] = spacy.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def _settings(model: Any, pipe: Any, steps: int, guidance: float, height: int, width: int,
              capture: CaptureConfig, batch_size: int) -> dict[str, Any]:
    model_id = _model_id(model, pipe)
    sched_cfg = {k: v for k, v in dict(pipe.scheduler.config).items() if not k.startswith("_")}
    return _jsonable({
        "model": model_id,
        "model_revision": _model_revision(model_id),
        "pipeline_class": type(pipe).__name__,
        "scheduler": type(pipe.scheduler).__name__,
        "scheduler_config": sched_cfg,
        "steps": steps,
        "guidance": guidance,
        "height": height,
        "width": width,
        "capture": asdict(capture),
        "batch_size": batch_size,
        "dtype": str(pipe.unet.dtype).removeprefix("torch."),
    })


def _check_resumable(out: Path, settings: dict[str, Any], plan: GenerationPlan, device: str) -> None:
    g = open_store(out, "r")
    attrs = dict(g.attrs)
    diffs = [f"{k}: store has {attrs.get(k)!r}, this call {settings[k]!r}"
             for k in RESUME_KEYS if attrs.get(k) != settings[k]]
    if diffs:
        raise StoreMismatchError(f"store {out} was made with other settings; not overwriting it. "
                         "Use another `out` or delete the store. Differences:\n  " + "\n  ".join(diffs))
    layout = plan.layout
    for name in PER_IMAGE + PER_MAP:
        a = g[name]
        stored = np.asarray(a[:], dtype=object) if a.shape[0] else np.empty((0,), object)
        new = np.asarray(list(getattr(layout, name)), dtype=object)
        if stored.shape != new.shape or not all(x == y for x, y in zip(stored.tolist(), new.tolist())):
            what = "prompts or seeds" if name in ("prompt", "caption", "seed", "prompt_id") else \
                "noun chunks / token positions (another spaCy model or tokenizer?)"
            raise StoreMismatchError(f"store {out} plans other items: its {name!r} differs from this call's "
                             f"({what}); not overwriting it. Use another `out` or delete the store.")
    if attrs.get("device") != device:
        warnings.warn(f"store {out} was started on {attrs.get('device')!r}, resuming on {device!r}: "
                      "images may differ slightly from an uninterrupted run", stacklevel=3)
    old = {k: attrs.get(k) for k in ("torch_version", "diffusers_version")}
    new = {k: v for k, v in _versions().items() if k in old}
    if old != new:
        warnings.warn(f"store {out} was started with {old}, resuming with {new}", stacklevel=3)


# --------------------------------------------------------------------------- run


def _run_batch(pipe: Any, captions: list[str], seeds: list[int], map_tokens: list[list[tuple[int, ...]]],
               steps: int, guidance: float, height: int, width: int,
               capture: CaptureConfig) -> tuple[np.ndarray, np.ndarray]:
    generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    with CrossAttentionCapture(pipe, capture) as cap:
        out = pipe(prompt=captions, num_inference_steps=steps, guidance_scale=guidance, height=height,
                   width=width, generator=generators, output_type="np")
    images = np.asarray(out.images, dtype=np.float32)
    images = (images * 255).round().clip(0, 255).astype(np.uint8)  # as diffusers' numpy_to_pil
    token_maps = cap.maps
    maps = [chunk_maps(token_maps[i], toks).float().cpu().numpy() for i, toks in enumerate(map_tokens) if toks]
    h, w = token_maps.shape[-2:]
    return images, (np.concatenate(maps) if maps else np.zeros((0, h, w), np.float32))


def generate(
    prompts: Sequence[str],
    seeds: Sequence[int] | int,
    out: str | os.PathLike,
    model: Any = "tiny-random",
    steps: int = 20,
    guidance: float = 7.5,
    height: int | None = None,
    width: int | None = None,
    batch_size: int = 4,
    capture: CaptureConfig | None = None,
    progress: bool = True,
    *,
    dedupe: bool = True,
    device: str | None = None,
    attrs: dict[str, Any] | None = None,
    _after_batch: Callable[[int, int], None] | None = None,
) -> Path:
    """Generate every (prompt, seed) into the store ``out``, resuming if it exists.

    Parameters
    ----------
    prompts : raw prompts (cleaned here; empty-after-cleaning is an error; duplicates after
        cleaning are dropped with a warning unless ``dedupe=False``).
    seeds : ``n`` (seeds ``0..n-1``) or a list of distinct non-negative ints; every prompt is
        generated with every seed.
    out : path of the Zarr store (conventionally ``data/stores/<name>.zarr``).
    model : a name for :func:`stablesemantics.pipelines.load_pipeline` (``"microsd"``,
        ``"tiny-random"``, a directory, a hub id) or a loaded ``StableDiffusionPipeline``.
    steps, guidance : denoising steps and classifier-free guidance scale.
    height, width : image size; ``None`` = the model's default.
    batch_size : images per pipeline call; also fixes the batch partition of the store.
    capture : what to aggregate (:class:`~stablesemantics.attention.CaptureConfig`).
    progress : show a tqdm bar over images.
    dedupe : drop prompts that are duplicates after cleaning (``prompt_id`` keeps the link).
    attrs : extra JSON-able root attributes for a new store (e.g. where its prompts came
        from); they may not reuse a name the library writes. Ignored when resuming.
    device : device for a model given by name (default: CUDA if available).

    Returns the store path. An image depends only on (prompt, seed, settings): the same pair
    gives the same image in any batch (bit for bit with the same batch partition; within one
    uint8 level across different batch compositions, where matmul summation order differs).

    Example: see the module docstring.
    """
    texts = _check_prompts(prompts)
    seed_list = _check_seeds(seeds)
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a str or a path, got {type(out).__name__}")
    out = Path(out)
    steps = _check_int(steps, "steps")
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float, np.floating, np.integer)):
        raise TypeError(f"guidance must be a number, got {type(guidance).__name__}")
    guidance = float(guidance)
    height = None if height is None else _check_int(height, "height")
    width = None if width is None else _check_int(width, "width")
    batch_size = _check_int(batch_size, "batch_size")
    capture = CaptureConfig() if capture is None else capture
    if not isinstance(capture, CaptureConfig):
        raise TypeError(f"capture must be a CaptureConfig, got {type(capture).__name__}")
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__}")
    if not isinstance(dedupe, bool):
        raise TypeError(f"dedupe must be a bool, got {type(dedupe).__name__}")
    if attrs is not None:
        if not isinstance(attrs, dict) or not all(isinstance(k, str) for k in attrs):
            raise TypeError("attrs must be a dict with str keys or None")
        try:
            json.dumps(attrs)
        except (TypeError, ValueError) as e:
            raise TypeError(f"attrs must be JSON-able: {e}") from None

    from .prompts import clean_prompt

    for i, t in enumerate(texts):  # fail fast, before loading a model
        if not clean_prompt(t).text.strip():
            raise ValueError(f"prompt {i} ({t!r}) is empty after cleaning")

    if isinstance(model, (str, os.PathLike)):
        from .pipelines import load_pipeline

        pipe = load_pipeline(model, device=device)
    elif callable(model) and hasattr(model, "unet") and hasattr(model, "tokenizer"):
        pipe = model
    else:
        raise TypeError(f"model must be a model name / path or a StableDiffusionPipeline, got {type(model).__name__}")

    vsf = int(getattr(pipe, "vae_scale_factor", 8))
    default_size = int(pipe.unet.config.sample_size) * vsf
    height = height or default_size
    width = width or default_size
    map_size = tuple(capture.map_size) if capture.map_size is not None else (height // vsf, width // vsf)
    plan = plan_generation(texts, seed_list, pipe.tokenizer, image_size=(height, width), map_size=map_size,
                           batch_size=batch_size, dedupe=dedupe)
    settings = _settings(model, pipe, steps, guidance, height, width, capture, batch_size)
    device_type = torch.device(pipe.device).type
    layout = plan.layout

    def run(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return _run_batch(pipe, list(layout.caption[start:stop]), list(layout.seed[start:stop]),
                          plan.map_tokens[start:stop], steps, guidance, height, width, capture)

    first: tuple[int, int, np.ndarray, np.ndarray] | None = None
    if out.exists():
        _check_resumable(out, settings, plan, device_type)
    else:
        # Run the first batch before creating the store: bad settings (sizes the model cannot
        # make, a capture config it cannot honour) fail without leaving an empty store behind.
        stop = min(batch_size, layout.n_images)
        images, maps = run(0, stop)
        if tuple(maps.shape[1:]) != tuple(map_size):
            raise RuntimeError(f"capture returned {maps.shape[1:]} maps, expected {map_size}")
        store_attrs = {
            "library": "stablesemantics", "library_version": __version__, **settings,
            "image_size": [height, width], "map_size": list(map_size), "device": device_type,
            **_versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seeds": plan.seeds, "n_prompts": len(plan.captions), "n_seeds": len(plan.seeds),
            "cleaning": plan.cleaning, "truncated_prompt_ids": plan.truncated_prompt_ids,
            "map_rule": "mean over the chunk's tokens of the mean attention probability over "
                        "kept heads, layers and steps (conditional half under guidance)",
        }
        clash = sorted((set(store_attrs) | {"schema_version"}) & set(attrs or {}))
        if clash:
            raise ValueError(f"attrs may not set the library's own root attributes {clash}")
        create_store(out, layout, {**store_attrs, **(attrs or {})})
        first = (0, stop, images, maps)

    writer = StoreWriter(out)
    pending = writer.pending_batches()
    n_done = layout.n_images - sum(e - s for s, e in pending)
    from tqdm.auto import tqdm

    with tqdm(total=layout.n_images, initial=n_done, disable=not progress, unit="image",
              desc=f"generate {out.name}") as bar:
        for start, stop in pending:
            if first is not None and (start, stop) == first[:2]:
                images, maps = first[2], first[3]
            else:
                images, maps = run(start, stop)
            writer.write(start, images, maps)
            bar.update(stop - start)
            if _after_batch is not None:
                _after_batch(start, stop)
    return out
