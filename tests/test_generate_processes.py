"""generate() on many processes (accelerate launch): shards owned by one process each, a store
identical to one process's, a killed process resumed by the same command, one run per store."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import test_generate
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_store_faults import _env

from stablesemantics.capture import CaptureConfig
from stablesemantics.generate import GenerationConfig, generate
from stablesemantics.generate.launch import config_arguments, generate_on_processes, launch_command
from stablesemantics.generate.processes import Processes, my_batches, shard_groups
from stablesemantics.store import schema, store_lock
from stablesemantics.store.schema import StoreLayout
from stablesemantics.store.writer import map_rows

SHARD_BYTES = 4096  # small shards, so that a few dozen tiny images make several shard groups
PROMPTS = [f"a {c} {o} on a street" for c in ("red", "blue", "green", "white") for o in ("car", "dog", "cat")]
KW = {k: v for k, v in test_generate.KW.items() if k != "device"}  # each process takes the launcher's device
# Run by `accelerate launch`: generate() as above; "RANK:K" kills process RANK after its K-th batch.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import stablesemantics.store.schema as schema
    schema._SHARD_BYTES = {shard_bytes}
    from stablesemantics.capture import CaptureConfig
    from stablesemantics.generate import generate
    out, kill = sys.argv[1], sys.argv[2]
    written = [0]
    def after(start, stop):
        written[0] += 1
        rank, k = (int(x) for x in kill.split(":")) if kill else (-1, 0)
        if int(os.environ["RANK"]) == rank and written[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
    kw = {kw}
    kw["capture"] = CaptureConfig(map_size=(8, 8))
    generate({prompts}, 2, out, _after_batch=after, **kw)
    """
)


def _launch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``accelerate launch`` of the script above on 2 CPU processes of one thread each."""
    script = tmp_path / "gen.py"
    kw = {k: v for k, v in KW.items() if k != "capture"}
    script.write_text(SCRIPT.format(shard_bytes=SHARD_BYTES, kw=kw, prompts=PROMPTS))
    cmd = launch_command(2, cuda=False, threads=1) + [str(script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)


def _arrays_and_files(path: Path) -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
    g = schema.open_store(path)
    arrays = {k: g[k][:] for k in g.array_keys()}
    files = {
        str(p.relative_to(path)): p.read_bytes()
        for p in path.rglob("*")
        if p.is_file() and p.relative_to(path).parts[0] in ("images", "maps", "done")
    }
    return arrays, files


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, request) -> Path:
    """The store one process writes (one thread, as each launched process has)."""
    out = tmp_path_factory.mktemp("one") / "s.zarr"
    threads = torch.get_num_threads()
    mp = pytest.MonkeyPatch()
    mp.setattr(schema, "_SHARD_BYTES", SHARD_BYTES)
    torch.set_num_threads(1)
    try:
        generate(PROMPTS, 2, out, **KW)
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    return out


# --------------------------------------------------------------------------- who writes what


@st.composite
def layouts(draw) -> StoreLayout:
    n = draw(st.integers(1, 40))
    per_image = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    map_image = [i for i, k in enumerate(per_image) for _ in range(k)]
    m = len(map_image)
    mp = pytest.MonkeyPatch()
    mp.setattr(schema, "_SHARD_BYTES", draw(st.integers(1, 64)) * 256)  # shards of a few batches
    try:
        return _layout(draw, n, map_image, m)
    finally:
        mp.undo()


def _layout(draw, n: int, map_image: list[int], m: int) -> StoreLayout:
    return StoreLayout(
        image_size=draw(st.sampled_from([(8, 8), (32, 32), (64, 64)])),
        map_size=draw(st.sampled_from([(2, 2), (16, 16), (64, 64)])),
        batch_size=draw(st.integers(1, 6)),
        prompt_id=list(range(n)),
        prompt=["a"] * n,
        caption=["a"] * n,
        seed=[0] * n,
        noun_chunks=["[]"] * n,
        map_image=map_image,
        map_chunk=["a"] * m,
        map_lemma=["a"] * m,
        map_token_indices=["[]"] * m,
    )


@settings(max_examples=200, deadline=None)
@given(layouts(), st.integers(1, 4))
def test_shard_groups_cover_every_batch_and_share_no_file(layout, n_procs):
    groups = shard_groups(layout)
    B, n = layout.batch_size, layout.n_images
    assert [b for g in groups for b in g] == [(s, min(s + B, n)) for s in range(0, n, B)]
    map_image = np.asarray(layout.map_image, dtype=np.int64)

    def files(batch):
        rows = map_rows(map_image, *batch)
        images = {("images", i // layout.images_per_shard) for i in range(*batch)}
        return images | {("maps", r // layout.maps_per_shard) for r in range(rows.start, rows.stop)}

    owner = {}
    for k, group in enumerate(groups):
        for batch in group:
            for f in files(batch):
                assert owner.setdefault(f, k) == k, f"{f} written by groups {owner[f]} and {k}"
    shares = [my_batches(groups, Processes(i, n_procs)) for i in range(n_procs)]
    assert sum(len(s) for s in shares) == len(set().union(*shares)) == -(-n // B)


# --------------------------------------------------------------------------- launched on 2 processes


@pytest.mark.slow
def test_two_processes_write_the_store_one_process_writes(tmp_path: Path, one_process: Path):
    out = tmp_path / "s.zarr"
    run = _launch(tmp_path, str(out), "")
    assert run.returncode == 0, run.stderr[-3000:]
    arrays, files = _arrays_and_files(out)
    ref_arrays, ref_files = _arrays_and_files(one_process)
    assert arrays.keys() == ref_arrays.keys()
    for k in arrays:
        np.testing.assert_array_equal(arrays[k], ref_arrays[k], err_msg=k)
    assert len(files) > 4 and files == ref_files  # the same shard files, byte for byte
    assert len(shard_groups(_layout_of(out))) >= 2  # both processes had work
    assert not out.with_name("s.zarr.lock").exists()


def _layout_of(path: Path) -> StoreLayout:
    g = schema.open_store(path)
    mp = pytest.MonkeyPatch()
    mp.setattr(schema, "_SHARD_BYTES", SHARD_BYTES)
    try:
        return StoreLayout(
            image_size=g["images"].shape[1:3],
            map_size=g["maps"].shape[1:],
            batch_size=int(g.attrs["batch_size"]),
            **{k: g[k][:].tolist() for k in (*schema.PER_IMAGE, *schema.PER_MAP)},
        )
    finally:
        mp.undo()


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["1:1", "0:3"])
def test_a_killed_process_then_the_same_command_gives_the_same_store(tmp_path: Path, one_process: Path, kill: str):
    out = tmp_path / "s.zarr"
    killed = _launch(tmp_path, str(out), kill)
    assert killed.returncode != 0
    done = schema.open_store(out)["done"][:]
    assert 0 < done.sum() < len(done)  # stopped part-way
    again = _launch(tmp_path, str(out), "")
    assert again.returncode == 0, again.stderr[-3000:]
    arrays, files = _arrays_and_files(out)
    ref_arrays, ref_files = _arrays_and_files(one_process)
    for k in arrays:
        np.testing.assert_array_equal(arrays[k], ref_arrays[k], err_msg=k)
    assert files == ref_files


@pytest.mark.slow
def test_a_second_run_on_a_store_being_written_fails_at_once(tmp_path: Path, one_process: Path):
    out = tmp_path / "s.zarr"
    shutil.copytree(one_process, out)
    before, _ = _arrays_and_files(out)
    config = GenerationConfig(**KW | {"progress": False})
    with store_lock(out):  # this test process is the running writer
        with pytest.raises(RuntimeError, match=rf"store {out} is being written by pid {os.getpid()}"):
            generate_on_processes(PROMPTS, 2, out, config, processes=2)
    after, _ = _arrays_and_files(out)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_config_arguments_are_the_cli_options_of_the_same_config(monkeypatch, tmp_path: Path):
    from typer.testing import CliRunner

    from stablesemantics.cli import app

    cli_generate = importlib.import_module("stablesemantics.cli.generate")

    seen = []
    monkeypatch.setattr(cli_generate, "run_generate", lambda texts, seeds, out, config: seen.append(config))
    monkeypatch.setattr(cli_generate, "_print_summary", lambda path: None)
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat")
    base = GenerationConfig(**KW)
    configs = [
        base,
        replace(base, guidance=1.0, progress=True, dedupe=False, device="cpu", max_sequence_length=64),
        replace(base, capture=CaptureConfig(map_size=(8, 16), blocks=("up",), resolutions=(2, 4), t_range=(0.2, 0.9))),
    ]
    for config in configs:
        args = ["generate", "--prompts", str(prompts), "--out", str(tmp_path / "s.zarr"), *config_arguments(config)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert seen.pop() == config
    with pytest.raises(TypeError, match="not a loaded pipeline"):
        config_arguments(replace(base, model=object()))
