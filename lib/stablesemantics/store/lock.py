"""One writer per store: an advisory lock that a killed writer never leaves stuck.

The lock is ``fcntl.flock`` on a file next to the store, ``<store>.lock`` (a sibling, so it
covers the creation of a new store as well as the writes into an existing one, and the store's
own files stay exactly what the schema says). The operating system drops an ``flock`` when the
process that holds it dies, however it dies (SIGKILL, OOM, a preempted machine), so a killed
writer never leaves the store locked: the file it leaves behind is only a file, and the next
writer takes it over. The holder writes its pid, host and start time into the file, so that a
second writer fails at once with an error that names them. A writer removes the file when it
finishes.

On object storage (a store URL such as ``s3://bucket/a.zarr``) there is no ``flock``: the lock is
a *lease*, an object ``<store>.lock`` made with a conditional write (``If-None-Match: *``: of two
writers that start together exactly one makes it), holding the same names and an expiry time,
renewed by the holder every third of :data:`LEASE_SECONDS` with ``If-Match`` on its own ETag. A
killed writer stops renewing, so its lease lapses by itself after at most ``LEASE_SECONDS``
(60 s; the environment variable ``STABLESEMANTICS_LOCK_LEASE_S`` sets it); the next writer takes
a lapsed lease over with ``If-Match`` on the lapsed lease's ETag (of two takers, one wins). A
holder that finds its lease taken (it was stopped for longer than the lease) stops writing:
:func:`assert_lock_held` raises. The expiry compares the writers' clocks: they must agree to
well within the lease time.

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
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stablesemantics.store.errors import StoreLockedError, StoreWriteError, make_dirs
from stablesemantics.store.location import StoreFiles, is_url

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer is the user's promise
    fcntl = None  # type: ignore[assignment]

_HELD: dict[Path, list[int]] = {}  # lock path -> [fd, depth] held by this process
_GUARD = threading.Lock()


LEASE_SECONDS = float(os.environ.get("STABLESEMANTICS_LOCK_LEASE_S", "60"))
"""How long a lease on object storage lasts without renewal (a killed writer's lapses after this)."""


def lock_path(store: str | os.PathLike) -> Path:
    """The lock file of a local ``store``: ``<store>.lock`` next to it."""
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
def store_lock(store: str | os.PathLike) -> Iterator[Path | str]:
    """Hold the writer lock of ``store`` (which may not exist yet) for the ``with`` block.

    Raises :class:`~stablesemantics.store.errors.StoreLockedError` at once, naming the store and
    the running writer's pid and host, if another process holds it, and
    :class:`~stablesemantics.store.errors.StoreWriteError` if the lock file cannot be made
    (the store's directory is not writable). Yields the lock file's path (a lease's URL on object
    storage).
    """
    if is_url(store):
        with _lease(StoreFiles(store)) as where:
            yield where
        return
    path = lock_path(store)
    if fcntl is None:  # pragma: no cover
        yield path
        return
    with _reentrant(_HELD, path, lambda: _take_file(path, Path(store)), lambda fd: _release(path, fd)):
        yield path


def _take_file(path: Path, store: Path) -> int:
    """Lock ``path`` and write the holder's names into it; the open descriptor."""
    fd = _acquire(path, store)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_info()).encode(), 0)
    except OSError:
        pass  # the name is a courtesy to the next writer; the lock itself holds
    return fd


@contextmanager
def _reentrant(table: dict, key: object, take, give_back) -> Iterator[object]:
    """Hold ``table[key]`` for the block: made by ``take()`` at this process's first entry, given back by
    ``give_back(held)`` at its last exit (the locks are re-entrant within a process)."""
    with _GUARD:
        held = table.get(key)
        if held is not None:
            held[1] += 1
        else:
            held = table[key] = [take(), 1]
    try:
        yield held[0]
    finally:
        with _GUARD:
            held[1] -= 1
            if held[1] == 0:
                del table[key]
                give_back(held[0])


# --------------------------------------------------------------------------- leases (object storage)

_LEASES: dict[str, list] = {}  # lease object -> [_Lease, depth] held by this process


def _info() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


class _Lease:
    """The lease of one store on object storage (see the module docstring)."""

    def __init__(self, files: StoreFiles) -> None:
        self.files, self.fs = files, files.fs
        self.key = files.sibling(".lock")
        self.url = files.label + ".lock"
        self.info = {**_info(), "token": uuid.uuid4().hex}
        self.etag: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({**self.info, "expires": time.time() + LEASE_SECONDS}).encode()

    def _put(self, **match) -> str:
        out = self.fs.pipe_file(self.key, self._body(), **match)
        etag = out.get("ETag") if isinstance(out, dict) else None
        return etag or self._etag()

    def _etag(self) -> str:
        return self.fs.info(self.key, refresh=True)["ETag"]

    def _refuse(self, holder: dict) -> StoreLockedError:
        left = max(0.0, float(holder.get("expires", 0)) - time.time())
        who = f"pid {holder.get('pid')} on host {holder.get('host')} (since {holder.get('since')})"
        return StoreLockedError(
            f"store {self.files.label} is being written by {who}; two runs may not write one store at once "
            f"(wait for it, or stop it: a stopped writer's lease {self.url} lapses by itself in {left:.0f} s)"
        )

    def acquire(self) -> None:
        for _ in range(5):  # the lease may vanish between our tries: then try again
            try:
                self.etag = self._put(mode="create")
                break
            except FileExistsError:
                pass
            except OSError as e:
                raise StoreWriteError.from_os_error(e, self.url) from e
            try:  # the ETag before the body: a takeover below overwrites only the version whose ETag it read
                etag = self._etag()
                raw = self.fs.cat_file(self.key)
            except FileNotFoundError:
                continue
            try:
                holder = json.loads(raw)
            except ValueError:
                holder = {}
            if float(holder.get("expires", 0)) > time.time():
                raise self._refuse(holder)
            try:  # a lapsed lease: take it over, unless another taker was first
                self.etag = self._put(IfMatch=etag)
                break
            except OSError:  # the precondition failed (or the lease vanished): another taker was first
                raise self._refuse(holder) from None
        else:
            raise StoreLockedError(f"store {self.files.label}: could not take its lease {self.url}")
        self._thread = threading.Thread(target=self._renew, name="stablesemantics-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 3):
            try:
                self.etag = self._put(IfMatch=self.etag)
            except OSError:
                self.lost = True  # taken over (we were stopped past the lease) or unreachable
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lost:
            return
        try:
            if self._etag() == self.etag:
                self.fs.rm_file(self.key)
        except OSError:
            pass  # it lapses by itself


@contextmanager
def _lease(files: StoreFiles) -> Iterator[str]:
    def take() -> _Lease:
        lease = _Lease(files)
        lease.acquire()
        return lease

    with _reentrant(_LEASES, files.sibling(".lock"), take, _Lease.release) as lease:
        yield lease.url


def assert_lock_held(store: str | os.PathLike) -> None:
    """Raise :class:`StoreLockedError` if this process held ``store``'s lease and lost it (no-op locally).

    A writer calls it before each write: a holder stopped for longer than the lease (a suspended
    machine) may have been taken over, and must not write beside the new holder.
    """
    if not is_url(store):
        return
    held = _LEASES.get(StoreFiles(store).sibling(".lock"))
    if held is not None and held[0].lost:
        raise StoreLockedError(
            f"store {store}: this writer lost its lease {held[0].url} (it was stopped longer than "
            f"{LEASE_SECONDS:.0f} s, or the storage was unreachable); another writer may hold it now"
        )
