"""generate() under faults: checks before the model loads, one writer, disk errors and damaged chunks
redone on resume, non-finite settings refused, diffusers' truncation note silenced; ``stablesemantics verify``."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_generate import ARRAYS, KW, PROMPTS, read_all
from test_store_faults import HOLD, _env, _flip
from typer.testing import CliRunner

from stablesemantics.cli import app
from stablesemantics.generate import generate
from stablesemantics.generate import run as run_module
from stablesemantics.store import StoreLockedError, StoreWriteError, verify_store
from stablesemantics.store import atomic as st


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    return generate(PROMPTS, 2, tmp_path_factory.mktemp("ref") / "ref.zarr", **KW)


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(run_module, "load_pipeline", refuse)


def test_unwritable_output_fails_before_the_model_loads(tmp_path: Path, no_model):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreWriteError, match="is a file, not a directory"):
        generate(PROMPTS, 2, tmp_path / "file" / "s.zarr", **KW)
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(PROMPTS))
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--prompts",
            str(prompts),
            "--out",
            str(tmp_path / "file" / "s.zarr"),
            "--model",
            "tiny-random",
            "--steps",
            "2",
            "--no-progress",
        ],
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.strip()] == [
        line for line in result.output.splitlines() if line.startswith("error: cannot write")
    ]


def test_second_run_on_a_store_fails_at_once(tmp_path: Path, no_model):
    out = tmp_path / "s.zarr"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match=f"pid {proc.pid}"):
            generate(PROMPTS, 2, out, **KW)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("guidance", [float("nan"), float("inf"), -float("inf"), -1.0])
def test_non_finite_or_negative_guidance_is_refused(tmp_path: Path, guidance: float, no_model):
    with pytest.raises(ValueError, match="guidance must be"):
        generate(PROMPTS, 2, tmp_path / "s.zarr", **{**KW, "guidance": guidance})
    with pytest.raises(TypeError, match="finite"):
        generate(PROMPTS, 2, tmp_path / "s.zarr", **KW, attrs={"x": float("nan")})
    assert not (tmp_path / "s.zarr").exists()


def test_disk_full_mid_run_then_rerun_equals_uninterrupted(reference: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "full.zarr"
    real = st._atomic_write_bytes

    def full_after_first_batch(p, data, **kw):
        if "images" in p.parts and (out / "done" / "c").exists():  # batch 0 is done: the disk fills up
            raise OSError(28, "No space left on device", str(p))
        return real(p, data, **kw)

    monkeypatch.setattr(st, "_atomic_write_bytes", full_after_first_batch)
    with pytest.raises(StoreWriteError, match=r"cannot write .*full\.zarr.*No space left on device"):
        generate(PROMPTS, 2, out, **KW)
    monkeypatch.setattr(st, "_atomic_write_bytes", real)
    assert verify_store(out).ok
    generate(PROMPTS, 2, out, **KW)
    ref, got = read_all(reference), read_all(out)
    assert all(np.array_equal(ref[k], got[k]) for k in ARRAYS)


def test_damaged_batch_is_named_by_verify_and_redone_by_generate(reference: Path, tmp_path: Path):
    out = tmp_path / "damaged.zarr"
    shutil.copytree(reference, out)
    _flip(next(p for p in (out / "images" / "c").rglob("*") if p.is_file()), 10)  # in image 0's chunk
    result = CliRunner().invoke(app, ["verify", str(out)])
    assert result.exit_code == 1 and "images rows 0..0: crc32c mismatch" in result.output
    assert "damaged batches (image rows): [(0, 2)]" in result.output
    ran = []
    with pytest.warns(UserWarning, match=r"is damaged; redoing batches \[\(0, 2\)\]"):
        generate(PROMPTS, 2, out, **KW, _after_batch=lambda s, e: ran.append((s, e)))
    assert ran == [(0, 2)]
    ref, got = read_all(reference), read_all(out)
    assert all(np.array_equal(ref[k], got[k]) for k in ARRAYS)
    assert CliRunner().invoke(app, ["verify", str(out)]).exit_code == 0


def test_truncation_note_of_diffusers_is_silenced(tmp_path: Path, capfd):
    long = "a red car " + "and a very long street " * 40
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generate([long], 1, tmp_path / "long.zarr", **{**KW, "batch_size": 1})
    err = capfd.readouterr().err
    assert "input was truncated" not in err
    assert any("longer than" in str(w.message) for w in caught)  # our own warning, once, by prompt id
