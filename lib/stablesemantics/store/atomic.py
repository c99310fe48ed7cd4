"""Atomic writes: a Zarr store whose every file appears whole or not at all."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
import warnings
from pathlib import Path
from typing import Any

from zarr.storage import LocalStore

from stablesemantics.store.errors import StoreWriteError

_TMP_SUFFIX = ".sstmp"
#: marks a ``<store>.partial`` directory as made by this library (see ``create_store``)
_PARTIAL_MARKER = ".stablesemantics-partial"
# our temporary files, zarr's own LocalStore temporaries (``<key>.<uuid hex>.partial``), and the
# creation marker of a store whose creation was killed between its rename and the marker's removal
_TMP_PATTERNS = (
    re.compile(r"^\..+\.[0-9a-f]{32}\.sstmp$"),
    re.compile(r".*\.[0-9a-f]{32}\.partial$"),
    re.compile("^" + re.escape(_PARTIAL_MARKER) + "$"),
)


def _quiet(fn):
    """Silence zarr's note that consolidated metadata is not in the v3 spec (we know)."""

    def wrapped(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            return fn(*args, **kwargs)

    wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__ = fn.__name__, fn.__doc__, fn
    return wrapped


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
        try:
            _atomic_write_bytes(self.root / key, _buffer_bytes(value), exclusive=exclusive, fsync=self.fsync)
        except FileExistsError:
            raise
        except OSError as e:  # a full or read-only disk, no permission: one line naming the file
            raise StoreWriteError.from_os_error(e, self.root / key) from e

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
            try:
                p.unlink(missing_ok=True)
            except OSError as e:
                raise StoreWriteError.from_os_error(e, p) from e
            n += 1
    return n
