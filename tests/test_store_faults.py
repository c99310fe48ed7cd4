"""The store under faults: one writer (a lock a killed writer never leaves stuck), never deleting what the
library did not make, operating-system errors as one line, checksums that find flipped and truncated bytes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_store import fake_batch, make_layout

from stablesemantics.store import (
    StoreLockedError,
    StoreWriteError,
    StoreWriter,
    check_writable,
    clear_damage,
    create_store,
    lock_path,
    open_store,
    read_maps,
    store_lock,
    verify_store,
)
from stablesemantics.store import atomic as st

HOLD = textwrap.dedent(
    """
    import sys, time
    from stablesemantics.store import store_lock
    with store_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
    """
)
CREATE = textwrap.dedent(
    """
    import sys
    from test_store import make_layout
    from stablesemantics.store import StoreLockedError, create_store
    try:
        create_store(sys.argv[1], make_layout())
        print("created")
    except StoreLockedError as e:
        print("locked:", e)
    except FileExistsError as e:
        print("exists:", e)
    """
)


def _env() -> dict[str, str]:
    here = Path(__file__).parent
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent / "lib"), str(here)])}


def test_second_writer_fails_at_once_and_a_killed_writer_frees_the_lock(tmp_path: Path):
    out = tmp_path / "s.zarr"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match=rf"store {out} is being written by pid {proc.pid} on host"):
            with store_lock(out):
                pass
        with pytest.raises(StoreLockedError):
            create_store(out, make_layout())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert lock_path(out).exists()  # left by the killed writer, but no longer locked
    path = create_store(out, make_layout())
    assert open_store(path)["images"].shape[0] == 6
    assert not lock_path(out).exists() and not out.with_name("s.zarr.partial").exists()


def test_two_creators_at_once_leave_one_whole_store(tmp_path: Path):
    for attempt in range(1):  # the race lost about half of the tries before the lock
        out = tmp_path / f"s{attempt}.zarr"
        procs = [
            subprocess.Popen([sys.executable, "-c", CREATE, str(out)], stdout=subprocess.PIPE, text=True, env=_env())
            for _ in range(2)
        ]
        results = sorted(p.communicate(timeout=120)[0].split(":")[0].strip() for p in procs)
        assert results.count("created") == 1, results
        assert set(results) <= {"created", "locked", "exists"}
        assert open_store(out)["done"].shape == (6,)
        assert not out.with_name(out.name + ".partial").exists()
        assert not (out / st._PARTIAL_MARKER).exists()


def test_never_deletes_a_partial_directory_it_did_not_make(tmp_path: Path):
    out = tmp_path / "s.zarr"
    mine = out.with_name("s.zarr.partial")
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's own files")
    with pytest.raises(FileExistsError, match="was not made by stablesemantics"):
        create_store(out, make_layout())
    assert (mine / "notes.txt").read_text() == "the user's own files" and not out.exists()
    # an empty one (a creation killed between mkdir and marker) holds nothing to lose
    (mine / "notes.txt").unlink()
    create_store(out, make_layout())
    assert not mine.exists()


def test_stray_marker_of_a_creation_killed_after_its_rename_is_cleaned(tmp_path: Path):
    path = create_store(tmp_path / "s.zarr", make_layout())
    (path / st._PARTIAL_MARKER).write_text("{}")
    StoreWriter(path)  # opening for writing removes temporaries
    assert not (path / st._PARTIAL_MARKER).exists()


def _unwritable_dir(tmp_path: Path) -> Path:
    """A directory this process cannot write to: read-only by mode, or (as root, where modes do not
    stop writes) a path under a regular file."""
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        return d
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "sub"


def test_os_errors_are_one_line_store_write_errors(tmp_path: Path):
    bad = _unwritable_dir(tmp_path)
    for call in (lambda: check_writable(bad), lambda: create_store(bad / "s.zarr", make_layout())):
        with pytest.raises(StoreWriteError) as err:
            call()
        assert isinstance(err.value, OSError) and "\n" not in str(err.value) and str(bad) in str(err.value)
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreWriteError, match="is a file, not a directory"):
        create_store(tmp_path / "f" / "s.zarr", make_layout())


def test_disk_full_mid_write_keeps_the_store_valid_and_resumable(store_path: Path, monkeypatch):
    layout = make_layout()
    w = StoreWriter(store_path)
    w.write(0, *fake_batch(layout, 0, 2, w))
    real = st._atomic_write_bytes

    def full(p, data, **kw):
        raise OSError(28, "No space left on device", str(p))

    monkeypatch.setattr(st, "_atomic_write_bytes", full)
    with pytest.raises(StoreWriteError, match=r"cannot write .*s\.zarr.*: No space left on device") as err:
        w.write(2, *fake_batch(layout, 2, 4, w))
    assert err.value.errno == 28
    monkeypatch.setattr(st, "_atomic_write_bytes", real)
    assert verify_store(store_path).ok
    w = StoreWriter(store_path)
    assert w.pending_batches() == [(2, 4), (4, 6)]


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return create_store(tmp_path / "s.zarr", make_layout(), {"model": "fake"})


def _filled(store_path: Path) -> dict[str, np.ndarray]:
    layout = make_layout()
    w = StoreWriter(store_path)
    for s, e in w.batches():
        w.write(s, *fake_batch(layout, s, e, w))
    g = open_store(store_path)
    return {k: g[k][:] for k in ("images", "maps", "done")}


def _flip(path: Path, at: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_every_array_has_chunk_checksums(store_path: Path):
    for name in ("images", "maps", "done", "prompt", "map_image"):
        codecs = open_store(store_path)[name].metadata.to_dict()["codecs"]
        inner = codecs[0]["configuration"]["codecs"] if codecs[0]["name"] == "sharding_indexed" else codecs
        assert [c["name"] for c in inner][-2:] == ["zstd", "crc32c"], name
    assert verify_store(store_path).checksums


def test_verify_names_flipped_chunks_and_clear_damage_makes_them_redoable(store_path: Path):
    before = _filled(store_path)
    shard = store_path / "maps" / "c" / "0" / "0" / "0"
    _flip(shard, 3)  # inside the first stored chunk, which holds every map here (nine small maps)
    with pytest.raises(ValueError, match="checksum"):
        open_store(store_path)["maps"][:]
    with pytest.raises(ValueError, match="corrupt"):
        read_maps(store_path)  # the fast reader checks the checksum too
    check = verify_store(store_path)
    every = [(0, 2), (2, 4), (4, 6)]  # the batches with a map in the chunk
    assert not check.ok and check.damaged_batches == every and not check.fatal
    assert any("maps rows 0..8: crc32c mismatch" in p for p in check.problems)
    assert clear_damage(check) == every
    assert verify_store(store_path).ok
    w = StoreWriter(store_path)
    assert w.pending_batches() == every
    for s, e in every:  # each batch rewrites its rows of the chunk; together they make it whole again
        w.write(s, *fake_batch(make_layout(), s, e, w))
    g = open_store(store_path)
    for k, v in before.items():
        assert np.array_equal(g[k][:], v), k


def test_truncated_shard_is_found_deleted_and_redone(store_path: Path):
    before = _filled(store_path)
    shard = next(p for p in (store_path / "images" / "c").rglob("*") if p.is_file())
    shard.write_bytes(shard.read_bytes()[:100])
    check = verify_store(store_path)
    assert any("shard index unreadable" in p for p in check.problems)
    redo = clear_damage(check)
    assert redo == [(0, 2), (2, 4), (4, 6)]  # one images shard holds every batch here
    w = StoreWriter(store_path)
    assert w.pending_batches() == redo
    for s, e in redo:
        w.write(s, *fake_batch(make_layout(), s, e, w))
    g = open_store(store_path)
    assert all(np.array_equal(g[k][:], v) for k, v in before.items())


def test_damaged_index_array_is_fatal(store_path: Path):
    _filled(store_path)
    chunk = next(p for p in (store_path / "prompt").rglob("*") if p.is_file() and p.name != "zarr.json")
    _flip(chunk, 2)
    check = verify_store(store_path)
    assert check.fatal and "prompt" in check.fatal[0]
    with pytest.raises(ValueError, match="beyond repair"):
        clear_damage(check)
