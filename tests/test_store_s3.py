"""Stores on object storage, against a real S3 protocol server (moto's, on the loopback address, started
here): create, write, resume, inspect, verify and analyse an ``s3://`` store; completion without rename
(a killed creation is no store, and is redone); a writer killed mid-upload resumes to the same store; the
lease that keeps one writer per store, and that a killed writer does not leave stuck."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from s3_server import S3Server, s3_environment
from test_generate import ARRAYS, KW, PROMPTS, read_all
from test_store import make_layout
from test_store_faults import HOLD, _env
from typer.testing import CliRunner

from stablesemantics.analysis import map_overlaps, spatial_statistics
from stablesemantics.cli import app
from stablesemantics.generate import generate
from stablesemantics.store import (
    StoreLockedError,
    StoreWriter,
    create_store,
    map_table,
    open_store,
    read_maps,
    store_lock,
    store_summary,
    verify_store,
)
from stablesemantics.store import lock as lock_module
from stablesemantics.store.location import StoreFiles

LEASE = 1.5  # seconds: the lease of the writers this file starts and kills

WRITE = textwrap.dedent(
    """
    import sys
    from test_generate import KW, PROMPTS
    from stablesemantics.generate import generate
    generate(PROMPTS, 2, sys.argv[1], **KW)
    """
)


@pytest.fixture(scope="module")
def server():
    with S3Server() as s3, s3_environment(s3):
        yield s3


@pytest.fixture
def bucket(server) -> str:
    name = f"b{uuid.uuid4().hex[:12]}"
    StoreFiles(f"s3://{name}/x").fs.mkdir(name)
    return f"s3://{name}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The same run on a local disk, uninterrupted."""
    return generate(PROMPTS, 2, tmp_path_factory.mktemp("ref") / "ref.zarr", **KW)


def _env_for(server: S3Server) -> dict[str, str]:
    return {**_env(), **server.env(), "STABLESEMANTICS_LOCK_LEASE_S": str(LEASE)}


def _kill_when(server: S3Server, url: str, rule) -> int:
    """Start a writer of ``url`` in a subprocess, SIGKILL it while the upload ``rule`` picks is in flight."""
    with server.stall(rule) as stalled:
        proc = subprocess.Popen([sys.executable, "-c", WRITE, url], env=_env_for(server), stderr=subprocess.PIPE)
        try:
            assert stalled.wait(120), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no upload"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    return proc.pid


def _resume_after_lease(url: str, pid: int) -> str:
    """The killed writer's lease refuses a rerun at once (naming it), then lapses by itself."""
    with pytest.raises(StoreLockedError, match=f"pid {pid}"):
        generate(PROMPTS, 2, url, **KW)
    time.sleep(LEASE + 0.5)
    return generate(PROMPTS, 2, url, **KW)


def test_a_store_on_s3_is_the_local_store_byte_for_byte(server, bucket, reference):
    url = generate(PROMPTS, 2, f"{bucket}/runs/s.zarr", **KW)
    assert url == f"{bucket}/runs/s.zarr"
    got, want = read_all(url), read_all(reference)
    for k in ARRAYS:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    files, local = StoreFiles(url), StoreFiles(reference)
    shards = [k for k in local.keys() if k.split("/")[0] in ("images", "maps", "done") and "/c/" in k]
    assert shards and all(files.read(k) == local.read(k) for k in shards)  # the same shard files
    assert ".stablesemantics-partial" not in files.keys() and not files.fs.exists(files.sibling(".lock"))
    # read back: summary, fast block reader, analyses as on the local store
    assert store_summary(url)["n_done"] == 6 and store_summary(url)["bytes"] == files.size() > 0
    np.testing.assert_array_equal(read_maps(url), read_maps(reference))
    t, tl = map_table(url), map_table(reference)
    labels = t["lemma"].astype(str).to_numpy(object)
    s, sl = spatial_statistics(url, labels), spatial_statistics(reference, labels)
    pd.testing.assert_frame_equal(s.per_map, sl.per_map)
    assert s.mean_maps.keys() == sl.mean_maps.keys()
    assert all(np.array_equal(s.mean_maps[k], sl.mean_maps[k]) for k in s.mean_maps)
    o = map_overlaps(url, labels, t["image"].to_numpy())
    ol = map_overlaps(reference, tl["lemma"].astype(str).to_numpy(object), tl["image"].to_numpy())
    pd.testing.assert_frame_equal(o.pairs, ol.pairs)
    assert len(o.pairs) > 0
    # a rerun resumes (nothing to do) and changes nothing
    before = {k: files.read(k) for k in shards}
    generate(PROMPTS, 2, url, **KW)
    assert {k: files.read(k) for k in shards} == before


def test_command_line_inspects_and_verifies_an_s3_store(server, bucket):
    url = generate(PROMPTS, 2, f"{bucket}/c.zarr", **KW)
    runner = CliRunner()
    out = runner.invoke(app, ["inspect", url, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["path"] == url and json.loads(out.output)["n_done"] == 6
    ok = runner.invoke(app, ["verify", url])
    assert ok.exit_code == 0 and "intact" in ok.output
    files = StoreFiles(url)
    key = next(k for k in files.keys() if k.startswith("maps/c/"))
    raw = bytearray(files.read(key))
    raw[len(raw) // 3] ^= 0xFF
    files.write(key, bytes(raw))
    bad = runner.invoke(app, ["verify", url])
    assert bad.exit_code == 1 and "crc32c mismatch" in bad.output and "damaged batches" in bad.output


def test_damaged_chunks_on_s3_are_found_and_redone(server, bucket, reference):
    url = generate(PROMPTS, 2, f"{bucket}/d.zarr", **KW)
    files = StoreFiles(url)
    key = next(k for k in files.keys() if k.startswith("images/c/"))
    raw = bytearray(files.read(key))
    raw[40] ^= 0xFF  # inside the first image's chunk
    files.write(key, bytes(raw))
    check = verify_store(url)
    assert not check.ok and check.damaged_batches == [(0, 2)]
    with pytest.warns(UserWarning, match=r"redoing batches \[\(0, 2\)\]"):
        generate(PROMPTS, 2, url, **KW)
    assert verify_store(url).ok
    for k, v in read_all(reference).items():
        np.testing.assert_array_equal(read_all(url)[k], v, err_msg=k)


def test_a_creation_killed_mid_upload_leaves_no_store_and_is_redone(server, bucket, reference):
    url = f"{bucket}/k.zarr"
    pid = _kill_when(server, url, lambda m, p: m == "PUT" and p.endswith("/k.zarr/maps/zarr.json"))
    files = StoreFiles(url)
    assert files.keys() and ".stablesemantics-partial" in files.keys()  # begun, marked as ours
    with pytest.raises(FileNotFoundError, match="creation was begun there and not finished"):
        open_store(url)
    with pytest.raises(FileNotFoundError):  # nor does zarr see a group there: the root is written last
        zarr.open_group(files.zarr_store(), mode="r")
    _resume_after_lease(url, pid)
    got = read_all(url)
    for k, v in read_all(reference).items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)


@pytest.mark.parametrize("array", ["maps", "done"])
def test_a_writer_killed_mid_upload_resumes_to_the_same_store(server, bucket, reference, array):
    """The second upload of the batch's ``array`` shard (batch 2's) is in flight when the writer dies."""
    url = f"{bucket}/w.zarr"
    key = f"/w.zarr/{array}/c/0" + "/0" * (2 if array == "maps" else 0)
    seen = []

    def second_put(method: str, path: str) -> bool:
        if method == "PUT" and path.endswith(key):
            seen.append(path)
            return len(seen) == 2
        return False

    pid = _kill_when(server, url, second_put)
    done = open_store(url)["done"][:]
    assert done.tolist() == [True, True, False, False, False, False]  # batch 1 whole, batch 2 not done
    _resume_after_lease(url, pid)
    got = read_all(url)
    for k, v in read_all(reference).items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)
    assert verify_store(url).ok


def test_objects_that_are_not_ours_are_never_deleted(server, bucket):
    url = f"{bucket}/mine.zarr"
    files = StoreFiles(url)
    files.write("notes.txt", b"my own file")
    with pytest.raises(FileExistsError, match="not made by stablesemantics"):
        create_store(url, make_layout())
    assert files.keys() == ["notes.txt"]


def test_second_writer_fails_at_once_and_a_killed_writers_lease_lapses(server, bucket):
    url = f"{bucket}/l.zarr"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True, env=_env_for(server))
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match=rf"store {url} is being written by pid {proc.pid} on host"):
            with store_lock(url):
                pass
        with pytest.raises(StoreLockedError):
            create_store(url, make_layout())
        assert StoreFiles(url).keys() == []
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(LEASE + 0.5)
    assert create_store(url, make_layout()) == url  # the lapsed lease is taken over
    assert not StoreFiles(url).fs.exists(StoreFiles(url).sibling(".lock"))  # and given back


def _race(leases: list) -> list[str]:
    outcome, start = [], threading.Barrier(len(leases))

    def take(lease):
        start.wait()
        try:
            lease.acquire()
            outcome.append("held")
        except StoreLockedError:
            outcome.append("refused")

    threads = [threading.Thread(target=take, args=(le,)) for le in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for le in leases:
        le._stop.set()
    return sorted(outcome)


def test_of_writers_racing_for_a_new_or_a_lapsed_lease_exactly_one_wins(server, bucket):
    files = StoreFiles(f"{bucket}/r.zarr")
    for _ in range(3):
        assert _race([lock_module._Lease(files) for _ in range(4)]) == ["held"] + ["refused"] * 3
        lapsed = json.dumps({"pid": 1, "host": "h", "since": "s", "expires": time.time() - 1}).encode()
        files.fs.pipe_file(files.sibling(".lock"), lapsed)
        assert _race([lock_module._Lease(files) for _ in range(4)]) == ["held"] + ["refused"] * 3
        files.fs.rm_file(files.sibling(".lock"))


def test_a_writer_that_lost_its_lease_stops_writing(server, bucket, monkeypatch):
    url = create_store(f"{bucket}/lost.zarr", make_layout())
    files = StoreFiles(url)
    monkeypatch.setattr(lock_module, "LEASE_SECONDS", 0.6)
    with store_lock(url):
        writer = StoreWriter(url)
        # another writer took the lease over (this one was suspended past its expiry)
        files.fs.pipe_file(files.sibling(".lock"), json.dumps({"pid": 2, "expires": time.time() + 60}).encode())
        time.sleep(0.6)
        with pytest.raises(StoreLockedError, match="lost its lease"):
            writer.write(0, np.zeros((2, 8, 6, 3), np.uint8), np.zeros((3, 4, 3), np.float32))
    assert not open_store(url)["done"][:].any()
    assert files.fs.exists(files.sibling(".lock"))  # the new holder's lease is left alone


def test_notebooks_generate_into_and_analyse_an_s3_store(server, bucket, tmp_path, monkeypatch):
    """Chapter 01 with its store on S3 (``out_store`` a URL), then chapter 03 reading it (``store``)."""
    from test_notebooks import execute

    from stablesemantics import book

    root = Path(__file__).resolve().parents[1]
    for name, value in {"MPLBACKEND": "Agg", "JUPYTER_PREFER_ENV_PATH": "1", "TQDM_DISABLE": "1"}.items():
        monkeypatch.setenv(name, value)
    url = f"{bucket}/nb.zarr"
    runs = {
        "01_generate": {**book.load_params("01_generate", "smoke"), "out_store": url},
        "03_spatial": {**book.load_params("03_spatial", "smoke"), "store": url, "make_store_if_missing": None},
    }
    for stem, params in runs.items():
        params["out_json"] = str(tmp_path / f"{stem}.json")
        execute(root / "notebooks" / f"{stem}.ipynb", tmp_path / f"{stem}.ipynb", params)
    generated = json.loads((tmp_path / "01_generate.json").read_text())
    assert generated["store"] == url and generated["n_images_done"] == store_summary(url)["n_done"] > 0
    spatial = json.loads((tmp_path / "03_spatial.json").read_text())
    assert spatial["n_maps"] == store_summary(url)["n_maps"] > 0


def test_a_missing_bucket_fails_in_one_line_before_the_model_loads(server, monkeypatch):
    from stablesemantics.generate import run as run_module
    from stablesemantics.store import StoreWriteError

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(run_module, "load_pipeline", refuse)
    url = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x.zarr"
    with pytest.raises(
        StoreWriteError, match=r"^cannot write s3://no-such-bucket-\w+/x\.zarr: .*fix this and rerun"
    ) as e:
        generate(PROMPTS, 2, url, **KW)
    assert "\n" not in str(e.value)
    result = CliRunner().invoke(app, ["inspect", url])
    assert result.exit_code == 1 and result.output.startswith(f"error: no store at {url}")
