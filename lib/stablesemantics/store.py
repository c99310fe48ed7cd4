"""The Zarr v3 store that holds one generation run: images, per-noun-chunk maps, metadata.

One store per run. Its whole layout (how many images and maps, which map belongs to which
image and noun chunk) is planned before the first image is generated, written once at
creation, and never changes; generation then only fills ``images``, ``maps`` and ``done``.

Schema (``SCHEMA_VERSION`` = 1):

===================== =================== ======= ================================================
array                 shape               dtype   notes
===================== =================== ======= ================================================
``images``            (n_images, H, W, 3) uint8   one chunk per image, shards of whole batches
``maps``              (n_maps, h, w)      float16 one chunk per map (image, noun chunk), sharded
``map_image``         (n_maps,)           int64   row in ``images``; sorted ascending
``map_chunk``         (n_maps,)           str     noun chunk text, e.g. "a small red car"
``map_lemma``         (n_maps,)           str     root lemma of the chunk, e.g. "car"
``map_token_indices`` (n_maps,)           str     JSON list of token positions (BOS = 0)
``prompt_id``         (n_images,)         int64   index of the prompt in the caller's list
``prompt``            (n_images,)         str     original prompt
``caption``           (n_images,)         str     cleaned prompt, what the model saw
``seed``              (n_images,)         int64   seed of the image's ``torch.Generator``
``noun_chunks``       (n_images,)         str     JSON list: every noun chunk of the caption with
                                                  span, tokens, ``truncated`` and ``map`` (its row
                                                  in ``maps`` or -1)
``done``              (n_images,)         bool    set only after the image and its maps are
                                                  written
===================== =================== ======= ================================================

Completion is the explicit ``done`` mask, never the presence of chunk files (Zarr does not
write chunks that equal the fill value, so a black image or an all-zero map has no file).

Crash safety. A run can be killed (SIGKILL, OOM, a preempted Colab) at any moment:

* every file write goes through :class:`AtomicLocalStore`: the bytes go to a temporary
  file in the same directory, which then replaces the target with ``os.replace`` (atomic
  on POSIX). This matters because a sharded array stores many chunks in one file and
  writing any part of a shard rewrites the *whole* shard file: a plain ``open(...,
  "wb")`` killed half-way would destroy chunks that were finished long ago. (zarr 3.1's
  ``LocalStore`` happens to do the same; we do not rely on an implementation detail.)
* a store is created in a sibling ``<name>.partial`` directory and renamed into place
  only once its layout and consolidated metadata are complete: a store that exists is
  never half-created.
* ``done`` is written last, so an item is done only when its image and maps are on disk.

Example
-------
>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> layout = StoreLayout(
...     image_size=(8, 8), map_size=(2, 2), batch_size=2,
...     prompt_id=[0, 0], prompt=["A cat!", "A cat!"], caption=["a cat", "a cat"],
...     seed=[0, 1], noun_chunks=["[]", "[]"],
...     map_image=[0, 1], map_chunk=["a cat"] * 2, map_lemma=["cat"] * 2,
...     map_token_indices=["[2]", "[2]"])
>>> path = create_store(Path(tempfile.mkdtemp()) / "x.zarr", layout, {"model": "none"})
>>> writer = StoreWriter(path)
>>> writer.write(0, np.zeros((2, 8, 8, 3), np.uint8), np.ones((2, 2, 2), np.float32))
>>> store_summary(path)["n_done"]
2
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

SCHEMA_VERSION = 1
"""Version of the store layout this library writes and reads."""

_TMP_SUFFIX = ".sstmp"
# our temporary files, and zarr's own LocalStore temporaries (``<key>.<uuid hex>.partial``)
_TMP_PATTERNS = (re.compile(r"^\..+\.[0-9a-f]{32}\.sstmp$"), re.compile(r".*\.[0-9a-f]{32}\.partial$"))
_SHARD_BYTES = 8 * 2**20  # target uncompressed shard size
_INDEX_CHUNK = 2**16  # elements per chunk of the 1-D index arrays

PER_IMAGE = ("prompt_id", "prompt", "caption", "seed", "noun_chunks")
PER_MAP = ("map_image", "map_chunk", "map_lemma", "map_token_indices")
_STR_ARRAYS = {"prompt", "caption", "noun_chunks", "map_chunk", "map_lemma", "map_token_indices"}


def _quiet(fn):
    """Silence zarr's note that consolidated metadata is not in the v3 spec (we know)."""

    def wrapped(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            return fn(*args, **kwargs)

    wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__ = fn.__name__, fn.__doc__, fn
    return wrapped


# --------------------------------------------------------------------------- atomic store


def _atomic_write_bytes(path: Path, data: Any, *, exclusive: bool = False, fsync: bool = True) -> int:
    """Write ``data`` to ``path`` so that readers (and a later run) see old or new, never half.

    The bytes go to a hidden temporary file in the same directory (same file system, so the
    rename is atomic), are flushed (and fsync'ed) and then ``os.replace`` the target. With
    ``exclusive`` the target must not exist (``FileExistsError``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}{_TMP_SUFFIX}"
    try:
        with open(tmp, "wb") as f:
            n = f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        if exclusive:
            os.link(tmp, path)  # raises FileExistsError instead of replacing
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def _buffer_bytes(value: Any) -> Any:
    as_buffer_like = getattr(value, "as_buffer_like", None)
    return as_buffer_like() if as_buffer_like is not None else value.to_bytes()


class AtomicLocalStore(LocalStore):
    """A zarr ``LocalStore`` whose every file write is atomic (temp file + ``os.replace``).

    Why: with sharding, writing one chunk rewrites its whole shard file, so a process
    killed during a non-atomic write would corrupt neighbouring chunks that were already
    complete. With this store a killed write leaves the previous file intact plus a stray
    temporary file, which :func:`remove_temporary_files` deletes on the next open.

    ``fsync=True`` (default) also flushes each file to disk before the rename, so a power
    loss leaves the old or the new file, not an empty one.

    Example
    -------
    >>> import tempfile, zarr
    >>> store = AtomicLocalStore(tempfile.mkdtemp())
    >>> a = zarr.create_array(store, name="a", shape=(4,), dtype="int64", chunks=(1,), shards=(4,))
    >>> a[:2] = 7
    >>> a[:].tolist()
    [7, 7, 0, 0]
    """

    supports_partial_writes = False

    def __init__(self, root: Path | str, *, read_only: bool = False, fsync: bool = True) -> None:
        super().__init__(root, read_only=read_only)
        self.fsync = fsync

    def with_read_only(self, read_only: bool = False) -> AtomicLocalStore:
        return type(self)(root=self.root, read_only=read_only, fsync=self.fsync)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalStore) and self.root == other.root

    __hash__ = None  # type: ignore[assignment]

    def _write(self, key: str, value: Any, exclusive: bool = False) -> None:
        self._check_writable()
        if not isinstance(key, str):
            raise TypeError(f"key must be str, got {type(key).__name__}")
        _atomic_write_bytes(self.root / key, _buffer_bytes(value), exclusive=exclusive, fsync=self.fsync)

    async def set(self, key: str, value: Any) -> None:  # noqa: D102
        if not self._is_open:
            await self._open()
        await asyncio.to_thread(self._write, key, value)

    async def _set(self, key: str, value: Any, exclusive: bool = False) -> None:
        if not self._is_open:
            await self._open()
        await asyncio.to_thread(self._write, key, value, exclusive)

    async def set_if_not_exists(self, key: str, value: Any) -> None:  # noqa: D102
        if not self._is_open:
            await self._open()
        try:
            await asyncio.to_thread(self._write, key, value, True)
        except FileExistsError:
            pass

    def set_sync(self, key: str, value: Any) -> None:  # noqa: D102
        self._ensure_open_sync()
        self._write(key, value)

    async def set_partial_values(self, key_start_values: Any) -> None:  # noqa: D102
        raise NotImplementedError("AtomicLocalStore writes whole files only")


def remove_temporary_files(root: str | Path) -> int:
    """Delete temporary files that killed writes left inside a store; returns how many.

    Only call it while no other process writes to the store.
    """
    n = 0
    for p in Path(root).rglob("*"):
        if p.is_file() and any(pat.match(p.name) for pat in _TMP_PATTERNS):
            p.unlink(missing_ok=True)
            n += 1
    return n


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
        self.maps_per_shard = max(1, min(_SHARD_BYTES // (2 * mh * mw), m))

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


def _jsonable(x: Any) -> Any:
    """Round-trip through JSON so attrs compare equal to what is read back (tuples -> lists)."""
    return json.loads(json.dumps(x, default=str))


@_quiet
def create_store(path: str | Path, layout: StoreLayout, attrs: dict[str, Any] | None = None) -> Path:
    """Create a store with the full ``layout``; ``images``/``maps``/``done`` stay empty.

    The store is built in ``<path>.partial`` and renamed to ``path`` only when complete,
    so ``path`` either does not exist or is a whole store. ``attrs`` (JSON-able) are added
    to the root attributes next to ``schema_version``. Raises ``FileExistsError`` if
    ``path`` exists. A stale ``<path>.partial`` from a killed creation is removed
    (one creator at a time).

    Example: see the module docstring.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; not overwriting it")
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    store = AtomicLocalStore(tmp)
    root_attrs = {"schema_version": SCHEMA_VERSION, **_jsonable(attrs or {})}
    root_attrs["schema_version"] = SCHEMA_VERSION
    root_attrs["batch_size"] = layout.batch_size
    g = zarr.create_group(store, zarr_format=3, attributes=root_attrs)
    n, m = layout.n_images, layout.n_maps
    (h, w), (mh, mw) = layout.image_size, layout.map_size
    B = layout.batch_size
    g.create_array("images", shape=(n, h, w, 3), dtype="uint8", chunks=(1, h, w, 3),
                   shards=(layout.images_per_shard, h, w, 3), fill_value=0,
                   dimension_names=("image", "y", "x", "channel"))
    g.create_array("maps", shape=(m, mh, mw), dtype="float16", chunks=(1, mh, mw),
                   shards=(layout.maps_per_shard, mh, mw), fill_value=0.0,
                   dimension_names=("map", "map_y", "map_x"))
    g.create_array("done", shape=(n,), dtype="bool", chunks=(B,),
                   shards=(layout.images_per_shard,), fill_value=False, dimension_names=("image",))
    for names, dim, size in ((PER_IMAGE, "image", n), (PER_MAP, "map", m)):
        for name in names:
            values = getattr(layout, name)
            if name in _STR_ARRAYS:
                data, dtype, fill = np.asarray(list(values), dtype=str).reshape(size), str, ""
            else:
                data, dtype, fill = np.asarray(values, dtype=np.int64).reshape(size), "int64", 0
            a = g.create_array(name, shape=(size,), dtype=dtype, chunks=(max(1, min(size, _INDEX_CHUNK)),),
                               fill_value=fill, dimension_names=(dim,))
            if size:
                a[:] = data
    zarr.consolidate_metadata(store)
    os.rename(tmp, path)  # atomic; the layout is complete
    return path


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


def map_rows(map_image: np.ndarray, start: int, stop: int) -> slice:
    """Rows of ``maps`` that belong to images ``[start, stop)`` (``map_image`` is sorted).

    >>> map_rows(np.array([0, 0, 1, 3]), 1, 3)
    slice(2, 3, None)
    """
    lo, hi = np.searchsorted(map_image, [start, stop], side="left")
    return slice(int(lo), int(hi))


class StoreWriter:
    """Fills ``images``, ``maps`` and ``done`` of an existing store, one batch at a time.

    Example
    -------
    >>> w = StoreWriter("data/stores/x.zarr")          # doctest: +SKIP
    >>> w.pending_batches()                             # doctest: +SKIP
    [(0, 4), (4, 8)]
    >>> w.write(0, images_uint8, maps)                  # doctest: +SKIP
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.group = open_store(self.path, mode="r+")
        self.map_image = np.asarray(self.group["map_image"][:], dtype=np.int64)
        self.n_images = self.group["images"].shape[0]
        self.batch_size = int(self.group.attrs["batch_size"])

    @property
    def done(self) -> np.ndarray:
        """The ``done`` mask as read from disk now."""
        return np.asarray(self.group["done"][:], dtype=bool)

    def batches(self) -> list[tuple[int, int]]:
        """The fixed partition of image rows into batches ``[k*B, min((k+1)*B, n))``."""
        B, n = self.batch_size, self.n_images
        return [(s, min(s + B, n)) for s in range(0, n, B)]

    def pending_batches(self) -> list[tuple[int, int]]:
        """Batches with at least one image not done (a partly done batch is redone whole)."""
        done = self.done
        return [(s, e) for s, e in self.batches() if not done[s:e].all()]

    def map_rows(self, start: int, stop: int) -> slice:
        return map_rows(self.map_image, start, stop)

    @_quiet
    def write(self, start: int, images: np.ndarray, maps: np.ndarray) -> None:
        """Write images ``[start, start+len(images))`` and their maps, then mark them done."""
        images = np.asarray(images)
        stop = start + len(images)
        if images.dtype != np.uint8 or images.shape[1:] != self.group["images"].shape[1:]:
            raise ValueError(f"images must be uint8 {self.group['images'].shape[1:]}, "
                             f"got {images.dtype} {images.shape[1:]}")
        if not 0 <= start < stop <= self.n_images:
            raise ValueError(f"image rows [{start}, {stop}) outside [0, {self.n_images})")
        rows = self.map_rows(start, stop)
        maps = np.asarray(maps)
        expected = (rows.stop - rows.start, *self.group["maps"].shape[1:])
        if maps.shape != expected:
            raise ValueError(f"maps for images [{start}, {stop}) must have shape {expected}, got {maps.shape}")
        self.group["images"][start:stop] = images
        if expected[0]:
            self.group["maps"][rows] = maps.astype(np.float16)
        self.group["done"][start:stop] = True  # last: done means image and maps are on disk


# --------------------------------------------------------------------------- read


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


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


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
    path = Path(path)
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
        "bytes": _dir_size(path),
    }
