"""One writer per store: an advisory lock that a killed writer never leaves stuck.

The lock is ``fcntl.flock`` on a file next to the store, ``<store>.lock`` (a sibling, so it
covers the creation of a new store as well as the writes into an existing one, and the store's
own files stay exactly what the schema says). The operating system drops an ``flock`` when the
process that holds it dies, however it dies (SIGKILL, OOM, a preempted machine), so a killed
writer never leaves the store locked: the file it leaves behind is only a file, and the next
writer takes it over. The holder writes its pid, host and start time into the file, so that a
second writer fails at once with an error that names them. A writer removes the file when it
finishes.

Limits: ``flock`` is advisory (only writers that take it are excluded: :func:`generate
<stablesemantics.generate.generate>` and :func:`~stablesemantics.store.create_store` do; a bare
:class:`~stablesemantics.store.StoreWriter` does not), is per host on some network file systems,
and does not exist on Windows (there no lock is taken). The lock is re-entrant within a process.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "s.zarr"
>>> with store_lock(out):
...     with store_lock(out):            # re-entrant in the same process
...         out.with_name("s.zarr.lock").exists()
True
>>> out.with_name("s.zarr.lock").exists()
False
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stablesemantics.store.errors import StoreLockedError, StoreWriteError, make_dirs

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer is the user's promise
    fcntl = None  # type: ignore[assignment]

_HELD: dict[Path, list[int]] = {}  # lock path -> [fd, depth] held by this process
_GUARD = threading.Lock()


def lock_path(store: str | os.PathLike) -> Path:
    """The lock file of ``store``: ``<store>.lock`` next to it."""
    store = Path(store).absolute()
    return store.with_name(store.name + ".lock")


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"pid {info['pid']} on host {info['host']} (since {info['since']})"
    except Exception:  # noqa: BLE001 - the holder may not have written its name yet
        return "another process (pid not yet recorded)"


def _acquire(path: Path, store: Path) -> int:
    make_dirs(path.parent)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreWriteError.from_os_error(e, path) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(
                f"store {store} is being written by {_holder(path)}; two runs may not write one store "
                f"at once (wait for it, or stop it: a killed writer releases {path.name} by itself)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:  # the holder may have removed the file between our open and our flock: then start again
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _release(path: Path, fd: int) -> None:
    try:
        path.unlink(missing_ok=True)  # while still locked: a waiting opener then sees a new inode and retries
    except OSError:
        pass
    os.close(fd)


@contextmanager
def store_lock(store: str | os.PathLike) -> Iterator[Path]:
    """Hold the writer lock of ``store`` (which may not exist yet) for the ``with`` block.

    Raises :class:`~stablesemantics.store.errors.StoreLockedError` at once, naming the store and
    the running writer's pid and host, if another process holds it, and
    :class:`~stablesemantics.store.errors.StoreWriteError` if the lock file cannot be made
    (the store's directory is not writable). Yields the lock file's path.
    """
    path = lock_path(store)
    if fcntl is None:  # pragma: no cover
        yield path
        return
    with _GUARD:
        held = _HELD.get(path)
        if held is not None:
            held[1] += 1
        else:
            fd = _acquire(path, Path(store))
            _HELD[path] = [fd, 1]
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(info).encode(), 0)
            except OSError:
                pass  # the name is a courtesy to the next writer; the lock itself holds
    try:
        yield path
    finally:
        with _GUARD:
            held = _HELD[path]
            held[1] -= 1
            if held[1] == 0:
                del _HELD[path]
                _release(path, held[0])
