"""The store's schema: its layout, creation and validation on open."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import socket
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from stablesemantics.store.atomic import _PARTIAL_MARKER, AtomicLocalStore, _quiet, remove_temporary_files
from stablesemantics.store.errors import StoreWriteError
from stablesemantics.store.location import RootLast, StoreFiles, store_location
from stablesemantics.store.lock import store_lock

SCHEMA_VERSION = 1
"""Version of the store layout this library writes and reads."""
_SHARD_BYTES = 8 * 2**20  # target uncompressed shard size
_MAP_CHUNK_BYTES = 2**17  # target uncompressed size of a chunk of maps (64 maps of 32x32 float16)
_INDEX_CHUNK = 2**16  # elements per chunk of the 1-D index arrays

PER_IMAGE = ("prompt_id", "prompt", "caption", "seed", "noun_chunks")
PER_MAP = ("map_image", "map_chunk", "map_lemma", "map_token_indices")
_STR_ARRAYS = {"prompt", "caption", "noun_chunks", "map_chunk", "map_lemma", "map_token_indices"}
# zarr's default compressor (zstd level 0, no frame checksum) followed by a crc32c of every chunk:
# the values are those of a store without it; each chunk's file bytes gain a 4-byte checksum
_COMPRESSORS = (ZstdCodec(level=0, checksum=False), Crc32cCodec())


# --------------------------------------------------------------------------- layout / create


@dataclass
class StoreLayout:
    """Everything about a store that is known before generation: sizes and index arrays.

    Per image (length ``n_images``): ``prompt_id``, ``prompt``, ``caption``, ``seed``,
    ``noun_chunks`` (a JSON string each). Per map (length ``n_maps``): ``map_image`` (sorted
    ascending), ``map_chunk``, ``map_lemma``, ``map_token_indices`` (a JSON string each).
    ``batch_size`` fixes the partition of images into batches ``[k*B, (k+1)*B)``; image
    shards hold whole batches so one batch never straddles two ``done`` chunks.

    Example
    -------
    >>> StoreLayout(image_size=(8, 8), map_size=(2, 2), batch_size=1, prompt_id=[0],
    ...             prompt=["a cat"], caption=["a cat"], seed=[0], noun_chunks=["[]"],
    ...             map_image=[], map_chunk=[], map_lemma=[], map_token_indices=[]).n_images
    1
    """

    image_size: tuple[int, int]
    map_size: tuple[int, int]
    batch_size: int
    prompt_id: Sequence[int]
    prompt: Sequence[str]
    caption: Sequence[str]
    seed: Sequence[int]
    noun_chunks: Sequence[str]
    map_image: Sequence[int]
    map_chunk: Sequence[str]
    map_lemma: Sequence[str]
    map_token_indices: Sequence[str]
    images_per_shard: int = field(init=False)
    maps_per_shard: int = field(init=False)
    maps_per_chunk: int = field(init=False)

    def __post_init__(self) -> None:
        self.image_size = _pair(self.image_size, "image_size")
        self.map_size = _pair(self.map_size, "map_size")
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        n = len(self.prompt_id)
        if n == 0:
            raise ValueError("a store needs at least one image")
        for name in PER_IMAGE:
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, expected n_images = {n}")
        m = len(self.map_image)
        for name in PER_MAP:
            if len(getattr(self, name)) != m:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, expected n_maps = {m}")
        mi = np.asarray(self.map_image, dtype=np.int64)
        if m and (mi.min() < 0 or mi.max() >= n or np.any(np.diff(mi) < 0)):
            raise ValueError("map_image must be sorted ascending with values in [0, n_images)")
        h, w = self.image_size
        per_batch = self.batch_size * h * w * 3
        self.images_per_shard = self.batch_size * max(1, min(_SHARD_BYTES // per_batch, -(-n // self.batch_size)))
        mh, mw = self.map_size
        per_shard = max(1, min(_SHARD_BYTES // (2 * mh * mw), m))
        # maps are read in blocks (the analyses stream them), so a chunk holds many maps: decoding
        # one 2 KB chunk per map would cost more than the analyses themselves
        self.maps_per_chunk = max(1, min(_MAP_CHUNK_BYTES // (2 * mh * mw), per_shard))
        self.maps_per_shard = self.maps_per_chunk * (per_shard // self.maps_per_chunk)

    @property
    def n_images(self) -> int:
        return len(self.prompt_id)

    @property
    def n_maps(self) -> int:
        return len(self.map_image)


def _pair(x: Any, name: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in x)
    except Exception:
        raise TypeError(f"{name} must be a pair of ints, got {x!r}") from None
    if a < 1 or b < 1:
        raise ValueError(f"{name} must be positive, got {x!r}")
    return a, b


def jsonable(x: Any) -> Any:
    """``x`` as the store's attributes hold it: a JSON round trip (tuples -> lists, other objects -> ``str``),
    so that attrs compare equal to what is read back.

    >>> jsonable({"size": (8, 8), "path": Path("a")})
    {'size': [8, 8], 'path': 'a'}
    """
    return json.loads(json.dumps(x, default=str))


@_quiet
def create_store(path: str | Path, layout: StoreLayout, attrs: dict[str, Any] | None = None) -> Path | str:
    """Create a store with the full ``layout``; ``images``/``maps``/``done`` stay empty.

    ``path`` is a local path or a URL on object storage (``s3://bucket/a.zarr``: see
    :mod:`stablesemantics.store.location`). Either way the store appears whole or not at all:

    * locally it is built in ``<path>.partial`` and renamed to ``path`` only when complete;
    * object storage has no rename: every array is written in place and the root ``zarr.json``
      (holding the consolidated metadata of every array) is written last, in one ``PUT``, which
      the storage applies whole or not at all. Without it no reader sees a store there.

    ``attrs`` (JSON-able) are added to the root attributes next to ``schema_version``. Raises
    ``FileExistsError`` if a store exists at ``path``. Creation holds the store's writer lock
    (:func:`~stablesemantics.store.store_lock`: a second creator fails at once with
    :class:`~stablesemantics.store.StoreLockedError`). What is being built is marked as the
    library's (a ``.stablesemantics-partial`` file or object written first, removed once the store is
    complete); a stale marked build from a killed creation is removed, an unmarked one (not ours:
    a local ``<path>.partial`` directory, objects under the URL) is never deleted:
    ``FileExistsError``. Operating-system and storage errors come as one-line
    :class:`~stablesemantics.store.StoreWriteError`. Returns the store's ``Path`` (a URL: ``str``).

    Example: see the module docstring.
    """
    where = store_location(path)
    if isinstance(where, str):
        return _create_remote(StoreFiles(where), layout, attrs)
    path = where
    with store_lock(path):
        if path.exists():
            raise FileExistsError(f"{path} already exists; not overwriting it")
        tmp = path.with_name(path.name + ".partial")
        _remove_stale_partial(tmp)
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            (tmp / _PARTIAL_MARKER).write_text(json.dumps(_creator()))
            _build(AtomicLocalStore(tmp), layout, attrs)
            os.rename(tmp, path)  # atomic; the layout is complete
            (path / _PARTIAL_MARKER).unlink()  # a stray one (killed just here) goes with the temporaries
        except OSError as e:
            raise StoreWriteError.from_os_error(e, tmp) from e
    return path


def _creator() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _create_remote(files: StoreFiles, layout: StoreLayout, attrs: dict[str, Any] | None) -> str:
    """:func:`create_store` on object storage: in place, root ``zarr.json`` last."""
    with store_lock(files.label):
        if files.exists():
            raise FileExistsError(f"{files.label} already exists; not overwriting it")
        existing = files.keys()
        if existing:
            if _PARTIAL_MARKER not in existing:
                raise FileExistsError(
                    f"{files.label} holds {len(existing)} object(s) but no store, and they were not made by "
                    f"stablesemantics (no {_PARTIAL_MARKER} marker); delete them yourself, or choose another `out`"
                )
            files.delete_all()  # a killed creation of ours: its objects are no store yet
        files.write(_PARTIAL_MARKER, json.dumps(_creator()).encode(), exclusive=True)
        try:
            store = RootLast(files.zarr_store(read_only=False))
            _build(store, layout, attrs)
            store.finish()  # the store exists from this write on
        except OSError as e:
            raise StoreWriteError.from_os_error(e, files.label) from e
        files.delete(_PARTIAL_MARKER)  # a stray one (killed just here) is removed when the store is opened to write
    return str(files.where)


def _remove_stale_partial(tmp: Path) -> None:
    """Delete ``tmp`` if it is a creation of ours that was killed (marked, or empty); refuse otherwise."""
    if not os.path.lexists(tmp):
        return
    if tmp.is_dir() and not tmp.is_symlink():
        if (tmp / _PARTIAL_MARKER).is_file():
            try:
                shutil.rmtree(tmp)
            except OSError as e:
                raise StoreWriteError.from_os_error(e, tmp) from e
            return
        if not any(tmp.iterdir()):  # killed between mkdir and marker: nothing to lose
            tmp.rmdir()
            return
    raise FileExistsError(
        f"{tmp} exists and was not made by stablesemantics (no {_PARTIAL_MARKER} marker); it is where "
        f"a new store is built before it is renamed to {tmp.name.removesuffix('.partial')}. "
        "Move or delete it yourself, or choose another `out`."
    )


def _build(store: Any, layout: StoreLayout, attrs: dict[str, Any] | None) -> None:
    """Write the whole layout of a new store into the (empty) zarr ``store``."""
    root_attrs = {"schema_version": SCHEMA_VERSION, **jsonable(attrs or {})}
    root_attrs["schema_version"] = SCHEMA_VERSION
    root_attrs["batch_size"] = layout.batch_size
    g = zarr.create_group(store, zarr_format=3, attributes=root_attrs)
    n, m = layout.n_images, layout.n_maps
    (h, w), (mh, mw) = layout.image_size, layout.map_size
    B = layout.batch_size
    g.create_array(
        "images",
        shape=(n, h, w, 3),
        dtype="uint8",
        chunks=(1, h, w, 3),
        shards=(layout.images_per_shard, h, w, 3),
        fill_value=0,
        dimension_names=("image", "y", "x", "channel"),
        compressors=_COMPRESSORS,
    )
    g.create_array(
        "maps",
        shape=(m, mh, mw),
        dtype="float16",
        chunks=(layout.maps_per_chunk, mh, mw),
        shards=(layout.maps_per_shard, mh, mw),
        fill_value=0.0,
        dimension_names=("map", "map_y", "map_x"),
        compressors=_COMPRESSORS,
    )
    g.create_array(
        "done",
        shape=(n,),
        dtype="bool",
        chunks=(B,),
        shards=(layout.images_per_shard,),
        fill_value=False,
        dimension_names=("image",),
        compressors=_COMPRESSORS,
    )
    for names, dim, size in ((PER_IMAGE, "image", n), (PER_MAP, "map", m)):
        for name in names:
            values = getattr(layout, name)
            if name in _STR_ARRAYS:
                data, dtype, fill = np.asarray(list(values), dtype=str).reshape(size), str, ""
            else:
                data, dtype, fill = np.asarray(values, dtype=np.int64).reshape(size), "int64", 0
            a = g.create_array(
                name,
                shape=(size,),
                dtype=dtype,
                chunks=(max(1, min(size, _INDEX_CHUNK)),),
                fill_value=fill,
                dimension_names=(dim,),
                compressors=_COMPRESSORS,
            )
            if size:
                a[:] = data
    with warnings.catch_warnings():  # the creation marker is no zarr object, and is removed after the rename
        warnings.filterwarnings("ignore", message=".*" + re.escape(_PARTIAL_MARKER) + ".*")
        zarr.consolidate_metadata(store)


def store_exists(path: str | Path) -> bool:
    """Whether a whole store (its root ``zarr.json``) is at ``path`` (a local path or a URL)."""
    return StoreFiles(path).exists()


def delete_store(path: str | Path) -> bool:
    """Delete the store at ``path`` (a path or a URL); ``False`` if there is none.

    Deletes only what this library made: a StableSemantics store (checked by opening it: anything
    else is a ``ValueError``), or on object storage the objects of a creation of ours that was
    killed (marked); holds the store's writer lock meanwhile (a running writer: ``StoreLockedError``).
    """
    where = store_location(path)
    files = StoreFiles(where)
    with store_lock(where):
        if not files.exists():
            if isinstance(where, str) and _PARTIAL_MARKER in files.keys():
                files.delete_all()
                return True
            if isinstance(where, Path) and where.exists():
                raise ValueError(f"{where} is not a Zarr v3 store (no zarr.json); not deleting it")
            return False
        open_store(where)  # a ValueError for anything that is not one of our stores
        if isinstance(where, str):
            files.delete_all()
        else:
            try:
                shutil.rmtree(where)
            except OSError as e:
                raise StoreWriteError.from_os_error(e, where) from e
    return True


# --------------------------------------------------------------------------- open / validate


@_quiet
def open_store(path: str | Path, mode: str = "r") -> zarr.Group:
    """Open a store and check that this library can read it.

    ``path`` is a local path or a URL on object storage. ``mode`` is ``"r"`` (read only) or
    ``"r+"`` (write into existing arrays; stray temporary files of killed writes are removed first). Raises ``FileNotFoundError`` if
    there is no store, ``ValueError`` if ``path`` is not a StableSemantics store or has a
    different schema version.

    Example
    -------
    >>> g = open_store("data/stores/x.zarr")           # doctest: +SKIP
    >>> g.attrs["model"], g["images"].shape             # doctest: +SKIP
    ('tiny-random', (8, 32, 32, 3))
    """
    if mode not in ("r", "r+"):
        raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
    path = store_location(path)
    files = StoreFiles(path)
    if isinstance(path, str):
        if not files.exists():
            begun = " (a creation was begun there and not finished: generate again to redo it)" if files.keys() else ""
            raise FileNotFoundError(f"no store at {path}{begun}")
        if mode == "r+":
            files.delete(_PARTIAL_MARKER)  # left by a creation killed after its last write
    else:
        if not path.exists():
            raise FileNotFoundError(f"no store at {path}")
        if not (path / "zarr.json").is_file():
            raise ValueError(f"{path} is not a Zarr v3 store (no zarr.json)")
        if mode == "r+":
            remove_temporary_files(path)
    store = files.zarr_store(read_only=(mode == "r"))
    try:
        g = zarr.open_group(store=store, mode=mode, zarr_format=3)
    except Exception as e:  # noqa: BLE001 - any zarr failure means the same thing here
        raise ValueError(f"{path} is not a Zarr v3 group: {e}") from e
    version = g.attrs.get("schema_version")
    if version is None:
        raise ValueError(f"{path} is not a StableSemantics store (no schema_version attribute)")
    if version != SCHEMA_VERSION:
        raise ValueError(f"store {path} has schema version {version}, this library reads {SCHEMA_VERSION}")
    missing = [k for k in ("images", "maps", "done", *PER_IMAGE, *PER_MAP) if k not in g]
    if missing:
        raise ValueError(f"store {path} lacks arrays {missing}")
    return g
