"""The store's own errors: one line each, naming the path, so that a command line can print them as they are."""

from __future__ import annotations

import errno as _errno
import os
from pathlib import Path


class StoreWriteError(OSError):
    """The operating system refused a write into a store (read-only or full disk, no permission,
    a path under a regular file, ...).

    An ``OSError`` (``errno`` and ``filename`` are the cause's) whose message is one line: the path,
    the reason, and that the store is still whole (every file write is atomic, ``done`` is written
    last), so the same command resumes once the cause is fixed.

    >>> str(StoreWriteError.from_os_error(PermissionError(13, "Permission denied", "/x/s.zarr/maps/c/0/0/0")))
    'cannot write /x/s.zarr/maps/c/0/0/0: Permission denied (nothing written is lost: fix this and rerun; a begun store resumes)'
    """

    def __str__(self) -> str:
        return str(self.args[1]) if len(self.args) > 1 else super().__str__()

    @classmethod
    def from_os_error(cls, err: OSError, path: str | os.PathLike | None = None) -> StoreWriteError:
        """Wrap ``err`` (its ``filename`` if it has one, else ``path``, names the place)."""
        if isinstance(err, StoreWriteError):
            return err
        where = err.filename if err.filename is not None else (os.fspath(path) if path is not None else "the store")
        reason = err.strerror or str(err) or type(err).__name__
        msg = f"cannot write {where}: {reason} (nothing written is lost: fix this and rerun; a begun store resumes)"
        out = cls(err.errno if err.errno is not None else _errno.EIO, msg)
        out.filename = os.fspath(where)
        return out


class StoreLockedError(RuntimeError):
    """Another process is writing (or creating) the same store; see :func:`stablesemantics.store.store_lock`."""


def make_dirs(path: str | os.PathLike) -> None:
    """``mkdir -p path``, with a :class:`StoreWriteError` that says which ancestor is a file, not a directory."""
    path = Path(path)
    for p in (path, *path.parents):
        if os.path.lexists(p):
            if not p.is_dir():
                raise StoreWriteError.from_os_error(
                    NotADirectoryError(_errno.ENOTDIR, f"{p} is a file, not a directory", os.fspath(path))
                )
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreWriteError.from_os_error(e, path) from e


def check_writable(path: str | os.PathLike) -> None:
    """Raise :class:`StoreWriteError` unless a file can be created in directory ``path`` (made if missing).

    A real probe (create, write, fsync, delete a small file), not ``os.access``: that answers
    ``True`` for root on a read-only mount and knows nothing of full disks.

    >>> import tempfile; check_writable(tempfile.mkdtemp())
    """
    path = Path(path)
    probe = path / f".stablesemantics-write-probe-{os.getpid()}"
    make_dirs(path)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    except OSError as e:
        raise StoreWriteError.from_os_error(e, path) from e
