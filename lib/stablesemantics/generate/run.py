"""Run a plan: batches of prompts × seeds through a pipeline under capture, written to the store."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stablesemantics import __version__
from stablesemantics.capture.config import CaptureConfig
from stablesemantics.capture.maps import chunk_maps
from stablesemantics.capture.run import run_with_capture
from stablesemantics.generate.config import GenerationConfig, check_config, with_settings
from stablesemantics.generate.plan import _check_prompts, _check_seeds, plan_generation
from stablesemantics.generate.processes import Processes, current_processes, my_batches, shard_groups
from stablesemantics.generate.settings import (
    CONFIG_ATTR,
    _check_resumable,
    _config_record,
    _model_facts,
    _model_id,
    _settings,
    _versions,
)
from stablesemantics.images import images_to_uint8
from stablesemantics.models.families import (
    attention_grid,
    default_image_size,
    default_max_sequence_length,
    describe_text,
    token_segments,
)
from stablesemantics.models.load import load_pipeline
from stablesemantics.models.spec import off_spec_settings
from stablesemantics.prompts.clean import clean_prompt
from stablesemantics.store.location import StoreFiles, store_location
from stablesemantics.store.lock import store_lock
from stablesemantics.store.schema import create_store
from stablesemantics.store.verify import clear_damage, verify_store
from stablesemantics.store.writer import StoreWriter

_TRUNCATION_NOTE = "The following part of your input was truncated"


class _DropTruncationNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TRUNCATION_NOTE)


@contextmanager
def _quiet_truncation(pipe: Any) -> Iterator[None]:
    """Drop diffusers' "input was truncated" warning, which prints the whole cut-off text (a
    100,000-character prompt whole): the plan already warns once, by prompt id."""
    loggers = {logging.getLogger(c.__module__) for c in type(pipe).__mro__ if c.__module__.startswith("diffusers")}
    note = _DropTruncationNote()
    for lg in loggers:
        lg.addFilter(note)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(note)


def _run_batch(
    pipe: Any,
    captions: list[str],
    seeds: list[int],
    map_tokens: list[list[tuple[int, ...]]],
    steps: int,
    guidance: float,
    height: int,
    width: int,
    capture: CaptureConfig,
    max_sequence_length: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    extra = {} if max_sequence_length is None else {"max_sequence_length": max_sequence_length}
    with _quiet_truncation(pipe):
        run = run_with_capture(
            pipe,
            capture=capture,
            seeds=seeds,
            prompt=captions,
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=height,
            width=width,
            output_type="np",
            **extra,
        )
    images = images_to_uint8(run.output.images)
    maps = [chunk_maps(run.maps[i], toks).numpy() for i, toks in enumerate(map_tokens) if toks]
    h, w = run.maps.shape[-2:]
    return images, (np.concatenate(maps) if maps else np.zeros((0, h, w), np.float32))


def generate(
    prompts: Sequence[str],
    seeds: Sequence[int] | int,
    out: str | os.PathLike,
    config: GenerationConfig | None = None,
    *,
    attrs: dict[str, Any] | None = None,
    verify: bool = True,
    _after_batch: Callable[[int, int], None] | None = None,
    **settings: Any,
) -> Path | str:
    """Generate every (prompt, seed) into the store ``out``, resuming if it exists.

    Parameters
    ----------
    prompts : raw prompts (cleaned here; empty-after-cleaning is an error; duplicates after
        cleaning are dropped with a warning unless ``dedupe=False``).
    seeds : ``n`` (seeds ``0..n-1``) or a list of distinct non-negative ints; every prompt is
        generated with every seed.
    out : path of the Zarr store (conventionally ``data/stores/<name>.zarr``), or a URL on object
        storage (``s3://bucket/<name>.zarr``: :mod:`stablesemantics.store.location`).
    config : the run's settings (:class:`~stablesemantics.generate.GenerationConfig`; default:
        its defaults, e.g. ``model="microsd"``, 20 steps).
    settings : settings that replace ``config``'s, by :class:`GenerationConfig` field name:
        ``model`` (a name for :func:`stablesemantics.models.load_pipeline` — ``"microsd"``,
        ``"tiny-random"``, a directory, a hub id — or a loaded ``StableDiffusionPipeline``),
        ``steps``, ``guidance``, ``height``, ``width`` (``None`` = the model's), ``batch_size``
        (images per pipeline call; also fixes the batch partition of the store), ``capture``
        (:class:`~stablesemantics.capture.CaptureConfig`), ``dedupe``, ``device`` (for a model
        given by name; default: CUDA if available), ``progress`` (a tqdm bar over images).
    attrs : extra JSON-able root attributes for a new store (e.g. where its prompts came
        from); they may not reuse a name the library writes. Ignored when resuming.
    verify : when resuming, first check every chunk of the store (its checksums, see
        :func:`stablesemantics.store.verify_store`) and redo the batches that fail, with a warning
        that names them. ``False`` skips the read (a very large store on a slow disk).

    Faults: the output is checked to be writable before the model is loaded; the run holds the
    store's writer lock (a second run on the same store fails at once with
    :class:`~stablesemantics.store.StoreLockedError`); operating-system errors while writing come as
    one-line :class:`~stablesemantics.store.StoreWriteError` and leave a store that resumes.

    The store records the whole config (root attribute ``generation_config``); a rerun resumes
    only when its config equals the recorded one, run-only settings (``progress``, ``device``:
    :data:`~stablesemantics.generate.config.RUN_ONLY`) aside, and its model is the same.

    Returns the store path (a URL as a ``str``). An image depends only on (prompt, seed, settings): the same pair
    gives the same image in any batch (bit for bit with the same batch partition; within one
    uint8 level across different batch compositions, where matmul summation order differs).

    Example: see the module docstring.
    """
    texts = _check_prompts(prompts)
    seed_list = _check_seeds(seeds)
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a str or a path, got {type(out).__name__}")
    out = store_location(out)
    config = check_config(with_settings(config, **settings))
    if attrs is not None:
        if not isinstance(attrs, dict) or not all(isinstance(k, str) for k in attrs):
            raise TypeError("attrs must be a dict with str keys or None")
        try:
            json.dumps(attrs, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"attrs must be JSON-able (finite numbers): {e}") from None

    for i, t in enumerate(texts):  # fail fast, before loading a model
        if not clean_prompt(t).text.strip():
            raise ValueError(f"prompt {i} ({t!r}) is empty after cleaning")

    StoreFiles(out).check_writable()  # before the model loads: OS and storage errors in seconds
    procs = current_processes()
    # Launched on many processes, the main one holds the lock for the whole run and the others
    # wait for it (see stablesemantics.generate.processes) before they write anything.
    with store_lock(out) if procs.is_main else nullcontext():
        return _generate_locked(texts, seed_list, out, config, attrs, verify, _after_batch, procs)


def _generate_locked(
    texts: list[str],
    seed_list: list[int],
    out: Path | str,
    config: GenerationConfig,
    attrs: dict[str, Any] | None,
    verify: bool,
    _after_batch: Callable[[int, int], None] | None,
    procs: Processes,
) -> Path | str:
    """:func:`generate` after its checks, holding the store's writer lock (its main process does)."""
    model = config.model
    if isinstance(model, (str, os.PathLike)):
        device = config.device
        if procs.count > 1 and device in (None, "cuda"):
            device = procs.device  # one accelerator per process
        pipe = load_pipeline(model, device=device)
        off_spec = off_spec_settings(os.fspath(model), config.steps, config.guidance)
        if off_spec is not None:
            warnings.warn(off_spec, UserWarning, stacklevel=3)
    elif callable(model) and (hasattr(model, "unet") or hasattr(model, "transformer")) and hasattr(model, "tokenizer"):
        pipe = model
    else:
        raise TypeError(f"model must be a model name / path or a diffusers pipeline, got {type(model).__name__}")

    default_size = default_image_size(pipe)
    config = dataclasses.replace(config, height=config.height or default_size, width=config.width or default_size)
    steps, guidance, height, width = config.steps, config.guidance, config.height, config.width
    batch_size, capture = config.batch_size, config.capture
    map_size = tuple(capture.map_size) if capture.map_size is not None else attention_grid(pipe, height, width)
    max_seq = config.max_sequence_length
    if max_seq is not None and default_max_sequence_length(pipe) is None:
        raise ValueError(
            f"max_sequence_length={max_seq} applies to pipelines with a T5 encoder (SD3, Flux); "
            f"{type(pipe).__name__} has none"
        )
    plan = plan_generation(
        texts,
        seed_list,
        token_segments(pipe, max_seq),
        image_size=(height, width),
        map_size=map_size,
        batch_size=batch_size,
        dedupe=config.dedupe,
    )
    model_id = _model_id(model, pipe)
    facts = _model_facts(model_id, pipe)
    root_settings = _settings(config, model_id, facts)
    device_type = torch.device(pipe.device).type
    record = _config_record(config, model_id, device_type)
    layout = plan.layout

    def run(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return _run_batch(
            pipe,
            list(layout.caption[start:stop]),
            list(layout.seed[start:stop]),
            plan.map_tokens[start:stop],
            steps,
            guidance,
            height,
            width,
            capture,
            max_seq,
        )

    first: tuple[int, int, np.ndarray, np.ndarray] | None = None
    if not procs.is_main:
        pass  # the main process checks or creates the store meanwhile
    elif out.exists() if isinstance(out, Path) else StoreFiles(out).exists():
        check = verify_store(out) if verify else None
        if check is not None and check.fatal:
            clear_damage(check)  # raises: nothing a rerun can redo
        _check_resumable(out, record, facts, plan)
        if check is not None and not check.ok:
            redo = clear_damage(check)
            warnings.warn(
                f"store {out} is damaged; redoing batches {redo}: "
                + "; ".join(check.problems[:5])
                + (" ..." if len(check.problems) > 5 else ""),
                stacklevel=3,
            )
    else:
        # Run the first batch before creating the store: bad settings (sizes the model cannot
        # make, a capture config it cannot honour) fail without leaving an empty store behind.
        stop = min(batch_size, layout.n_images)
        images, maps = run(0, stop)
        if tuple(maps.shape[1:]) != tuple(map_size):
            raise RuntimeError(f"capture returned {maps.shape[1:]} maps, expected {map_size}")
        store_attrs = {
            "library": "stablesemantics",
            "library_version": __version__,
            **root_settings,
            "image_size": [height, width],
            "map_size": list(map_size),
            "device": device_type,
            CONFIG_ATTR: record,
            **_versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seeds": plan.seeds,
            "n_prompts": len(plan.captions),
            "n_seeds": len(plan.seeds),
            "cleaning": plan.cleaning,
            "truncated_prompt_ids": plan.truncated_prompt_ids,
            "map_rule": "mean over the chunk's tokens of the mean attention probability over "
            "kept heads, layers and steps (conditional half under guidance)",
            **describe_text(pipe, max_seq),  # model_family, text_encoders, token_segments
        }
        clash = sorted((set(store_attrs) | {"schema_version"}) & set(attrs or {}))
        if clash:
            raise ValueError(f"attrs may not set the library's own root attributes {clash}")
        create_store(out, layout, {**store_attrs, **(attrs or {})})
        first = (0, stop, images, maps)
    procs.wait()  # the store exists, checked, before any other process writes

    writer = StoreWriter(out)
    pending = writer.pending_batches()
    n_done = layout.n_images - sum(e - s for s, e in pending)
    desc = f"generate {StoreFiles(out).name}"
    if procs.count > 1:
        groups = shard_groups(layout)
        mine = my_batches(groups, procs)
        pending = [b for b in pending if b in mine]
        n_done = sum(e - s for s, e in mine) - sum(e - s for s, e in pending)
        desc += f" (process {procs.index + 1} of {procs.count})"
        n_groups = len(groups)
        if procs.is_main and n_groups < procs.count:
            warnings.warn(
                f"store {out} has {n_groups} shard group(s) for {procs.count} processes: "
                f"{procs.count - n_groups} will have nothing to write",
                stacklevel=3,
            )
    from tqdm.auto import tqdm

    with tqdm(
        total=n_done + sum(e - s for s, e in pending),
        initial=n_done,
        disable=not config.progress,
        unit="image",
        desc=desc,
    ) as bar:
        for start, stop in pending:
            if first is not None and (start, stop) == first[:2]:
                images, maps = first[2], first[3]
            else:
                images, maps = run(start, stop)
            writer.write(start, images, maps)
            bar.update(stop - start)
            if _after_batch is not None:
                _after_batch(start, stop)
    procs.wait()  # the main process keeps the lock until every process has finished
    return out
