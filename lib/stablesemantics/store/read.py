"""Read a store: as xarray, and a summary for people (`stablesemantics inspect`)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from stablesemantics.store.atomic import _quiet
from stablesemantics.store.location import StoreFiles, store_location
from stablesemantics.store.schema import _STR_ARRAYS, PER_IMAGE, PER_MAP, open_store


def _strings(a: zarr.Array) -> np.ndarray:
    return np.asarray(a[:], dtype=object) if a.shape[0] else np.empty((0,), dtype=object)


@_quiet
def to_xarray(path: str | Path):
    """Open a store as an ``xarray.Dataset``; ``images`` and ``maps`` are lazy dask arrays.

    Dimensions: ``image``, ``y``, ``x``, ``channel`` (images), ``map``, ``map_y``,
    ``map_x`` (maps). Per-image variables (``prompt``, ``caption``, ``seed``, ``prompt_id``,
    ``noun_chunks``, ``done``) live on ``image``, per-map ones (``map_image``, ``map_chunk``,
    ``map_lemma``, ``map_token_indices``) on ``map``; the root attributes are ``ds.attrs``.

    Example
    -------
    >>> ds = to_xarray("data/stores/x.zarr")            # doctest: +SKIP
    >>> cars = ds.maps.where(ds.map_lemma == "car", drop=True).mean("map").compute()  # doctest: +SKIP
    """
    import dask.array as da
    import xarray as xr

    g = open_store(path, "r")
    data_vars: dict[str, Any] = {}
    for name, dims in (("images", ("image", "y", "x", "channel")), ("maps", ("map", "map_y", "map_x"))):
        a = g[name]
        chunks = a.shards or a.chunks
        data_vars[name] = (dims, da.from_array(a, chunks=chunks, name=False, asarray=True, lock=False))
    for names, dim in ((PER_IMAGE + ("done",), "image"), (PER_MAP, "map")):
        for name in names:
            a = g[name]
            data_vars[name] = ((dim,), _strings(a) if name in _STR_ARRAYS else np.asarray(a[:]))
    n, m = g["images"].shape[0], g["maps"].shape[0]
    coords = {"image": np.arange(n), "map": np.arange(m)}
    return xr.Dataset(data_vars, coords=coords, attrs=dict(g.attrs))


@_quiet
def store_summary(path: str | Path, top: int = 10) -> dict[str, Any]:
    """A small JSON-able summary of a store (what ``stablesemantics inspect`` prints).

    Keys: ``path``, ``schema_version``, ``model``, ``model_revision``, ``scheduler``,
    ``steps``, ``guidance``, ``image_size``, ``map_size``, ``created``, ``n_images``,
    ``n_done``, ``n_prompts``, ``n_seeds``, ``n_maps``, ``n_maps_done``,
    ``n_truncated_chunks``, ``top_lemmas`` (list of ``[lemma, n_maps]``), ``bytes``.

    Example
    -------
    >>> store_summary("data/stores/x.zarr")["n_done"]  # doctest: +SKIP
    8
    """
    path = store_location(path)
    g = open_store(path, "r")
    attrs = dict(g.attrs)
    done = np.asarray(g["done"][:], dtype=bool)
    map_image = np.asarray(g["map_image"][:], dtype=np.int64)
    lemmas = _strings(g["map_lemma"])
    n_truncated = 0
    for s in _strings(g["noun_chunks"]):
        n_truncated += sum(1 for c in json.loads(s) if c.get("truncated"))
    return {
        "path": str(path),
        "schema_version": attrs.get("schema_version"),
        "model": attrs.get("model"),
        "model_revision": attrs.get("model_revision"),
        "scheduler": attrs.get("scheduler"),
        "steps": attrs.get("steps"),
        "guidance": attrs.get("guidance"),
        "image_size": list(g["images"].shape[1:3]),
        "map_size": list(g["maps"].shape[1:3]),
        "created": attrs.get("created"),
        "n_images": int(done.size),
        "n_done": int(done.sum()),
        "n_prompts": int(len(set(np.asarray(g["prompt_id"][:]).tolist()))),
        "n_seeds": int(len(set(np.asarray(g["seed"][:]).tolist()))),
        "n_maps": int(map_image.size),
        "n_maps_done": int(done[map_image].sum()) if map_image.size else 0,
        "n_truncated_chunks": n_truncated,
        "top_lemmas": [[k, v] for k, v in Counter(lemmas.tolist()).most_common(top)],
        "bytes": StoreFiles(path).size(),
    }
