"""Where a store lives: a local directory, or a URL on object storage (``s3://``, ``gs://``, any fsspec location).

The rest of :mod:`stablesemantics.store` reaches a store's files through :class:`StoreFiles`:
bytes by key (a path relative to the store's root, as zarr names them: ``maps/c/0/0/0``), read,
written whole, deleted. On a local disk a write goes to a temporary file that then replaces the
target (``os.replace``); on object storage a write is one ``PUT`` (or one multipart upload), which
the storage applies whole or not at all: a writer killed mid-upload leaves the previous object.
Object storage has no rename, so a new store there becomes a store by its last write, the root
``zarr.json`` (see :func:`~stablesemantics.store.create_store` and :class:`RootLast`).

Credentials and endpoints are fsspec's and the storage client's own: for S3, the ``AWS_*``
environment variables (``AWS_ENDPOINT_URL`` for an S3-compatible server), ``~/.aws``, or
fsspec's ``FSSPEC_S3_*`` variables. ``s3://`` needs ``s3fs`` (``pip install s3fs``).

>>> is_url("s3://bucket/runs/a.zarr"), is_url("data/stores/a.zarr")
(True, False)
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore, WrapperStore

from stablesemantics.store.atomic import AtomicLocalStore, _atomic_write_bytes
from stablesemantics.store.errors import StoreWriteError, check_writable

ROOT_KEY = "zarr.json"


def is_url(store: Any) -> bool:
    """Whether ``store`` names a location on object storage (a URL other than ``file://``)."""
    return isinstance(store, str) and "://" in store and not store.startswith("file://")


def store_location(store: str | os.PathLike) -> str | Path:
    """``store`` as this library holds it: a URL (``str``, no trailing slash) or a local ``Path``
    (a ``file://`` URL too).

    >>> store_location("s3://b/x.zarr/"), store_location("data/stores/x.zarr")
    ('s3://b/x.zarr', PosixPath('data/stores/x.zarr'))
    """
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"a store is a path or a URL, got {type(store).__name__}")
    if is_url(store):
        return str(store).rstrip("/")
    text = os.fspath(store)
    return Path(text.removeprefix("file://")) if isinstance(text, str) else Path(os.fsdecode(text))


def _remote_error(e: OSError, where: str) -> StoreWriteError:
    return StoreWriteError.from_os_error(e if e.filename is not None else OSError(e.errno, str(e), where), where)


class StoreFiles:
    """The files (objects) of one store, by key relative to the store's root.

    ``StoreFiles("data/stores/a.zarr")`` or ``StoreFiles("s3://bucket/a.zarr")``; ``label`` names the
    store in messages, ``name`` is its last path component.
    """

    def __init__(self, store: str | os.PathLike) -> None:
        self.where = store_location(store)
        self.remote = isinstance(self.where, str)
        if self.remote:
            import fsspec

            try:
                self.fs, self.root = fsspec.core.url_to_fs(self.where)
            except ImportError as e:
                raise ImportError(f"{self.where}: {e} (object storage needs its fsspec driver, e.g. s3fs)") from None
            self.root = self.root.rstrip("/")

    @property
    def label(self) -> str:
        return str(self.where)

    @property
    def name(self) -> str:
        return self.where.rstrip("/").rsplit("/", 1)[-1] if self.remote else self.where.name

    def _key(self, key: str) -> str:
        return f"{self.root}/{key}"

    def sibling(self, suffix: str) -> str:
        """The full fsspec path of the object next to the store named ``<store><suffix>`` (remote only)."""
        return self.root + suffix

    # --------------------------------------------------------------------- queries

    def exists(self, key: str = ROOT_KEY) -> bool:
        """Whether ``key`` exists (by default the root ``zarr.json``: a whole store is here)."""
        if not self.remote:
            return (self.where / key).exists()
        try:
            return bool(self.fs.exists(self._key(key)))
        except OSError as e:
            raise _remote_error(e, self.label) from e

    def read(self, key: str) -> bytes | None:
        """The bytes of ``key``, or ``None`` if there is no such file."""
        try:
            if not self.remote:
                return (self.where / key).read_bytes()
            return bytes(self.fs.cat_file(self._key(key)))
        except FileNotFoundError:
            return None

    def keys(self) -> list[str]:
        """Every key under the store's root (remote: listed; local: walked)."""
        if not self.remote:
            root = self.where
            return (
                sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
            )
        try:
            found = self.fs.find(self.root)
        except FileNotFoundError:
            return []
        n = len(self.root) + 1
        return sorted(p[n:] for p in found if p.startswith(self.root + "/"))

    def size(self) -> int:
        """Bytes of all files of the store."""
        if not self.remote:
            return sum(p.stat().st_size for p in self.where.rglob("*") if p.is_file())
        try:
            return int(self.fs.du(self.root))
        except FileNotFoundError:
            return 0

    # --------------------------------------------------------------------- changes

    def write(self, key: str, data: bytes, *, exclusive: bool = False) -> None:
        """Write ``key`` whole, atomically; ``exclusive``: fail (``FileExistsError``) if it exists."""
        if not self.remote:
            try:
                _atomic_write_bytes(self.where / key, data, exclusive=exclusive)
            except FileExistsError:
                raise
            except OSError as e:
                raise StoreWriteError.from_os_error(e, self.where / key) from e
            return
        try:
            self.fs.pipe_file(self._key(key), data, mode="create" if exclusive else "overwrite")
        except FileExistsError:
            raise
        except OSError as e:
            raise _remote_error(e, f"{self.label}/{key}") from e

    def delete(self, key: str) -> None:
        """Delete ``key`` (no error if it is not there)."""
        try:
            if not self.remote:
                (self.where / key).unlink(missing_ok=True)
            else:
                self.fs.rm_file(self._key(key))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StoreWriteError.from_os_error(e, f"{self.label}/{key}") from e

    def delete_all(self) -> None:
        """Delete every object under the store's root (remote only: a killed creation of ours)."""
        keys = [self._key(k) for k in self.keys()]
        try:
            if keys:
                self.fs.rm(keys)
        except OSError as e:
            raise _remote_error(e, self.label) from e

    def check_writable(self) -> None:
        """Raise :class:`~stablesemantics.store.StoreWriteError` unless files can be written here.

        Local: a probe file in the store's directory (or its parent, for a new store). Remote: a
        small probe object next to the store, written and deleted (bad credentials, a missing bucket
        or no permission fail here, in seconds, not after the model has loaded).
        """
        if not self.remote:
            check_writable(self.where if self.where.is_dir() else self.where.parent)
            return
        probe = self.sibling(f".write-probe-{uuid.uuid4().hex}")
        try:
            self.fs.pipe_file(probe, b"\0")
            self.fs.rm_file(probe)
        except OSError as e:
            raise _remote_error(e, self.label) from e

    # --------------------------------------------------------------------- zarr

    def zarr_store(self, read_only: bool = True) -> Store:
        """A zarr store over these files (atomic local writes; fsspec's store on object storage)."""
        if not self.remote:
            return AtomicLocalStore(self.where, read_only=read_only)
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(self.where, read_only=read_only)


class RootLast(WrapperStore):
    """A zarr store that holds back writes of the root ``zarr.json`` until :meth:`finish`.

    Used to build a new store on object storage, which has no rename: every array is written in
    place, and the root metadata (with the consolidated metadata of every array) goes last, in one
    ``PUT``. Until then no reader (zarr, xarray, this library) sees a group there.
    """

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._root: Buffer | None = None

    def _with_store(self, store: Store) -> RootLast:
        out = type(self)(store)
        out._root = self._root
        return out

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        if key != ROOT_KEY:
            return await super().get(key, prototype, byte_range)
        if self._root is None:
            return None
        if byte_range is not None:  # zarr reads metadata whole; a partial read of the held root is not needed
            raise NotImplementedError("RootLast holds the root zarr.json whole")
        return prototype.buffer.from_bytes(self._root.to_bytes())

    async def exists(self, key: str) -> bool:
        return self._root is not None if key == ROOT_KEY else await super().exists(key)

    async def set(self, key: str, value: Buffer) -> None:
        if key == ROOT_KEY:
            self._root = value
        else:
            await super().set(key, value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        if key == ROOT_KEY:
            if self._root is None:
                self._root = value
        else:
            await super().set_if_not_exists(key, value)

    def finish(self) -> None:
        """Write the held-back root ``zarr.json``: the store is complete from this write on."""
        if self._root is None:
            raise RuntimeError("no root metadata was written")
        sync(self._store.set(ROOT_KEY, self._root))


def raw_reader(array: Any):
    """A function ``key -> bytes | None`` that reads the raw files of ``array`` (keys relative to the array).

    Local stores are read straight from disk; any other zarr store through its own ``get``.
    """
    store = array.store
    if isinstance(store, LocalStore):
        base = Path(store.root) / array.path

        def read_local(key: str) -> bytes | None:
            try:
                return (base / key).read_bytes()
            except FileNotFoundError:
                return None

        return read_local
    prototype = default_buffer_prototype()

    def read_store(key: str) -> bytes | None:
        buf = sync(store.get(f"{array.path}/{key}", prototype=prototype))
        return None if buf is None else buf.to_bytes()

    return read_store
