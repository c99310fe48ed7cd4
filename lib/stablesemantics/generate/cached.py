"""Stores that notebooks make for themselves from MicroWorld prompts: self-checking caches."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stablesemantics.capture.config import CaptureConfig
from stablesemantics.generate.plan import StoreMismatchError
from stablesemantics.generate.run import generate
from stablesemantics.store.blocks import open_group
from stablesemantics.store.location import StoreFiles, store_location
from stablesemantics.store.schema import delete_store
from stablesemantics.world.noisy_prompts import world_prompts
from stablesemantics.world.scene import WorldConfig, world_config_from_dict


def make_world_store(
    out: str | os.PathLike,
    n_prompts: int,
    seeds: int | Sequence[int],
    *,
    world_seed: int = 0,
    world_config: Any = None,
    attrs: dict | None = None,
    **generate_kwargs: Any,
) -> Path | str:
    """Generate a store from MicroWorld's noisy prompts, one prompt per scene, that records
    how to re-render its scenes (root attribute ``world``; ``prompt_id`` = scene index).

    ``generate_kwargs`` go to :func:`stablesemantics.generate.generate` (``model``, ``steps``,
    ``height``, ``capture``, ...); duplicates are kept (``dedupe=False``) so that prompt ids stay
    scene indices. Resumes like ``generate`` when ``out`` exists. ``attrs`` are extra root
    attributes.

    >>> make_world_store("data/stores/w.zarr", 24, 2, model="tiny-random", steps=2)  # doctest: +SKIP
    """

    cfg = world_config if world_config is not None else WorldConfig()
    if isinstance(cfg, dict):
        cfg = world_config_from_dict(cfg)
    _, prompts = world_prompts(int(n_prompts), seed=int(world_seed), config=cfg)
    info = {
        "generator": "stablesemantics.world.world_prompts",
        "n": int(n_prompts),
        "seed": int(world_seed),
        "config": json.loads(json.dumps(asdict(cfg))),
    }
    return generate(prompts, seeds, out, dedupe=False, attrs={"world": info, **(attrs or {})}, **generate_kwargs)


#: root attribute marking a store that :func:`ensure_store` made (a cache it may rebuild)
CACHE_ATTR = "made_by_ensure_store"


def ensure_store(path: str | os.PathLike, make_if_missing: dict | None = None) -> Path | str:
    """``path`` as a ``Path`` (a URL on object storage as a ``str``), with a store there.

    Without ``make_if_missing`` the store must exist and is used as it is. With it (a dict;
    keys: ``n_prompts``, ``n_seeds``, ``world_seed`` and any
    :class:`~stablesemantics.generate.GenerationConfig` setting; ``map_size`` becomes the capture's
    map size), a MicroWorld store is made there with :func:`make_world_store` when none is
    there, so that a notebook runs on its own (the book, smoke tests). A store this function
    made is a cache: on every call it is checked against the spec and the model as it is now
    (an interrupted one is completed), and rebuilt if either changed (for example after
    ``make model`` retrained MicroSD), so the book never reads maps of old weights. A store made
    any other way (notebook 01, your own) is never touched.
    """
    path = store_location(path)
    exists = StoreFiles(path).exists()
    if exists and (not make_if_missing or not dict(open_group(path).attrs).get(CACHE_ATTR)):
        return path
    if not make_if_missing:
        raise FileNotFoundError(
            f"no store at {path}: run notebooks/01_generate.ipynb first, or set "
            "make_store_if_missing to build a small MicroWorld store here"
        )
    spec = dict(make_if_missing)
    n_prompts, n_seeds = int(spec.pop("n_prompts")), spec.pop("n_seeds", 1)
    map_size = spec.pop("map_size", None)
    if map_size is not None:
        spec["capture"] = CaptureConfig(map_size=tuple(map_size))
    spec.setdefault("progress", False)

    try:
        return make_world_store(path, n_prompts, n_seeds, attrs={CACHE_ATTR: True}, **spec)
    except StoreMismatchError as err:  # a cache made with other settings, weights or prompts: rebuild it
        warnings.warn(f"rebuilding {path}, made by an earlier run with other settings: {err}", stacklevel=2)
        delete_store(path)
        return make_world_store(path, n_prompts, n_seeds, attrs={CACHE_ATTR: True}, **spec)
