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
def create_store(path: str | Path, layout: StoreLayout, attrs: dict[str, Any] | None = None) -> Path:
    """Create a store with the full ``layout``; ``images``/``maps``/``done`` stay empty.

    The store is built in ``<path>.partial`` and renamed to ``path`` only when complete,
    so ``path`` either does not exist or is a whole store. ``attrs`` (JSON-able) are added
    to the root attributes next to ``schema_version``. Raises ``FileExistsError`` if
    ``path`` exists. Creation holds the store's writer lock (:func:`~stablesemantics.store.store_lock`:
    a second creator fails at once with :class:`~stablesemantics.store.StoreLockedError`). The
    ``.partial`` directory is marked as the library's (a ``.stablesemantics-partial`` file written
    first, removed once the store is in place); a stale marked one from a killed creation is
    removed, an unmarked one (not ours) is never deleted: ``FileExistsError``. Operating-system
    errors come as one-line :class:`~stablesemantics.store.StoreWriteError`.

    Example: see the module docstring.
    """
    path = Path(path)
    with store_lock(path):
        if path.exists():
            raise FileExistsError(f"{path} already exists; not overwriting it")
        tmp = path.with_name(path.name + ".partial")
        _remove_stale_partial(tmp)
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            (tmp / _PARTIAL_MARKER).write_text(json.dumps(info))
            _build(tmp, layout, attrs)
            os.rename(tmp, path)  # atomic; the layout is complete
            (path / _PARTIAL_MARKER).unlink()  # a stray one (killed just here) goes with the temporaries
        except OSError as e:
            raise StoreWriteError.from_os_error(e, tmp) from e
    return path


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


def _build(tmp: Path, layout: StoreLayout, attrs: dict[str, Any] | None) -> None:
    """Write the whole layout of a new store into directory ``tmp``."""
    store = AtomicLocalStore(tmp)
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


# --------------------------------------------------------------------------- open / validate


@_quiet
def open_store(path: str | Path, mode: str = "r") -> zarr.Group:
    """Open a store and check that this library can read it.

    ``mode`` is ``"r"`` (read only) or ``"r+"`` (write into existing arrays; stray
    temporary files of killed writes are removed first). Raises ``FileNotFoundError`` if
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
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no store at {path}")
    if not (path / "zarr.json").is_file():
        raise ValueError(f"{path} is not a Zarr v3 store (no zarr.json)")
    if mode == "r+":
        remove_temporary_files(path)
    store = AtomicLocalStore(path, read_only=(mode == "r"))
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
