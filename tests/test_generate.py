"""Tests of generate(): planning, errors, resume after SIGKILL, determinism across batches."""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from stablesemantics.capture import CaptureConfig
from stablesemantics.generate import (
    CONFIG_ATTR,
    RUN_ONLY,
    GenerationConfig,
    StoreMismatchError,
    generate,
    plan_generation,
)
from stablesemantics.prompts import load_clip_tokenizer
from stablesemantics.store import StoreWriter, open_store

PROMPTS = ["a red car on a street", "a small dog --ar 16:9", "two cats and a green tree"]
KW = dict(
    model="tiny-random",
    steps=2,
    guidance=7.5,
    height=32,
    width=32,
    batch_size=2,
    capture=CaptureConfig(map_size=(8, 8)),
    progress=False,
    device="cpu",
)
ARRAYS = (
    "images",
    "maps",
    "done",
    "map_image",
    "map_chunk",
    "map_lemma",
    "map_token_indices",
    "prompt_id",
    "prompt",
    "caption",
    "seed",
    "noun_chunks",
)


def read_all(path: Path) -> dict[str, np.ndarray]:
    g = open_store(path)
    return {k: g[k][:] for k in ARRAYS}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run: 3 prompts x 2 seeds in batches of 2."""
    return generate(PROMPTS, 2, tmp_path_factory.mktemp("ref") / "ref.zarr", **KW)


# --------------------------------------------------------------------------- planning


def test_plan_layout_prompt_major_with_dedupe():
    with pytest.warns(UserWarning, match="1 duplicate"):
        plan = plan_generation(
            ["A red car --ar 3:2", "a dog", "a  RED car"],
            [5, 9],
            load_clip_tokenizer(),
            image_size=(32, 32),
            map_size=(8, 8),
            batch_size=3,
        )
    lay = plan.layout
    assert plan.captions == ["A red car", "a dog"] and plan.prompt_ids == [0, 1]
    assert list(lay.seed) == [5, 9, 5, 9] and list(lay.prompt_id) == [0, 0, 1, 1]
    assert list(lay.prompt)[0] == "A red car --ar 3:2"
    assert list(lay.map_image) == [0, 1, 2, 3] and list(lay.map_lemma) == ["car", "car", "dog", "dog"]
    entries = json.loads(lay.noun_chunks[1])
    assert entries[0]["map"] == 1 and entries[0]["tokens"] == json.loads(lay.map_token_indices[1])
    assert plan.map_tokens[2] == [(2,)]


def test_plan_flags_truncated_chunks():
    long_prompt = "a cat " + "very " * 80 + "and a dog"
    with pytest.warns(UserWarning, match="longer than 77 tokens"):
        plan = plan_generation(
            [long_prompt], 1, load_clip_tokenizer(), image_size=(32, 32), map_size=(8, 8), batch_size=1
        )
    entries = json.loads(plan.layout.noun_chunks[0])
    assert [e["lemma"] for e in entries] == ["cat", "dog"]
    assert entries[0]["truncated"] is False and entries[0]["map"] == 0
    assert entries[1]["truncated"] is True and entries[1]["map"] == -1 and entries[1]["tokens"] == []
    assert list(plan.layout.map_lemma) == ["cat"] and plan.truncated_prompt_ids == [0]


# --------------------------------------------------------------------------- errors (no model run)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(prompts=[]), ValueError, "prompts is empty"),
        (dict(prompts="a cat"), TypeError, "prompts must be a sequence"),
        (dict(prompts=["a cat", 3]), TypeError, r"prompts\[1\]"),
        (dict(prompts=["a cat", "--ar 16:9 <lora:x:1>"]), ValueError, r"prompt 1 \('--ar 16:9 <lora:x:1>'\) is empty"),
        (dict(seeds="3"), TypeError, "seeds"),
        (dict(seeds=[1, 1]), ValueError, "distinct"),
        (dict(seeds=0), ValueError, "seeds must be >= 1"),
        (dict(steps="2"), TypeError, "steps must be an int"),
        (dict(steps=2.0), TypeError, "steps must be an int"),
        (dict(guidance="high"), TypeError, "guidance must be a number"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(height=32.0), TypeError, "height must be an int"),
        (dict(capture={"map_size": (8, 8)}), TypeError, "capture must be a CaptureConfig"),
        (dict(progress="no"), TypeError, "progress must be a bool"),
        (dict(dedupe=1), TypeError, "dedupe must be a bool"),
        (dict(stpes=2), TypeError, r"unknown generation setting\(s\) \['stpes'\]"),
        (dict(config={"steps": 2}), TypeError, "config must be a GenerationConfig"),
        (dict(out=3), TypeError, "out must be a str or a path"),
        (dict(model=3), TypeError, "model must be"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs, error, match):
    args = {**KW, "prompts": ["a cat"], "seeds": 1, "out": tmp_path / "x.zarr", **kwargs}
    with pytest.raises(error, match=match):
        generate(**args)
    assert not (tmp_path / "x.zarr").exists()


def test_unknown_model_is_load_pipelines_error(tmp_path: Path):
    from stablesemantics.models import ModelNotFoundError

    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(ModelNotFoundError, match="model_index.json"):
        generate(["a cat"], 1, tmp_path / "x.zarr", **{**KW, "model": str(tmp_path / "not-a-model")})
    assert not (tmp_path / "x.zarr").exists()


def test_refuses_store_with_other_settings(reference: Path, tmp_path: Path):
    before = read_all(reference)
    with pytest.raises(StoreMismatchError, match="steps: store has 2, this call 3"):
        generate(PROMPTS, 2, reference, **{**KW, "steps": 3})
    with pytest.raises(StoreMismatchError, match="plans other items"):
        generate(PROMPTS[:2], 2, reference, **KW)
    after = read_all(reference)
    assert all(np.array_equal(before[k], after[k]) for k in ARRAYS)
    (tmp_path / "junk").mkdir()
    with pytest.raises(ValueError, match="not a Zarr v3 store"):
        generate(PROMPTS, 2, tmp_path / "junk", **KW)


def test_defaults_are_generation_configs():
    assert GenerationConfig().model == "microsd" and GenerationConfig().steps == 20
    assert RUN_ONLY == {"progress", "device"}
    # generate() repeats no default: every setting is a GenerationConfig field, given by keyword
    params = inspect.signature(generate).parameters
    assert params["config"].default is None and params["settings"].kind is inspect.Parameter.VAR_KEYWORD


def test_store_records_the_whole_config(reference: Path):
    record = dict(open_store(reference).attrs)[CONFIG_ATTR]
    assert list(record) == [f.name for f in dataclasses.fields(GenerationConfig)]
    assert record["model"] == "tiny-random" and record["steps"] == 2 and record["height"] == record["width"] == 32
    assert record["capture"]["map_size"] == [8, 8] and record["dedupe"] is True and record["device"] == "cpu"


def test_resume_compares_the_recorded_config(reference: Path, tmp_path: Path):
    # dedupe was not in the old hand-kept list of settings; the recorded config names it
    with pytest.raises(StoreMismatchError, match="dedupe: store has True, this call False"):
        generate(PROMPTS, 2, reference, **{**KW, "dedupe": False})
    with pytest.raises(StoreMismatchError, match=r"capture: store has .*'t_range': \[0.0, 1.0\].*\[0.0, 0.5\]"):
        generate(PROMPTS, 2, reference, **{**KW, "capture": CaptureConfig(map_size=(8, 8), t_range=(0, 0.5))})
    # run-only settings may differ; a config object with overrides is the same call
    config = GenerationConfig(**{**KW, "steps": 5})
    ran = []
    generate(PROMPTS, 2, reference, config, steps=2, progress=True, _after_batch=lambda s, e: ran.append(s))
    assert ran == []
    # a store that records no config (an older library's) is not resumed
    old = tmp_path / "old.zarr"
    shutil.copytree(reference, old)
    g = open_store(old, "r+")
    g.attrs.update({CONFIG_ATTR: None})
    with pytest.raises(StoreMismatchError, match="records no generation_config"):
        generate(PROMPTS, 2, old, **KW)


# --------------------------------------------------------------------------- the store it makes


def test_reference_store(reference: Path):
    g = open_store(reference)
    assert g["images"].shape == (6, 32, 32, 3) and g["done"][:].all()
    assert g["maps"].shape[1:] == (8, 8) and g["maps"].shape[0] == len(g["map_image"][:]) >= 6
    attrs = dict(g.attrs)
    for key in (
        "schema_version",
        "model",
        "scheduler",
        "steps",
        "guidance",
        "capture",
        "created",
        "torch_version",
        "diffusers_version",
        "library_version",
        "seeds",
        "map_size",
    ):
        assert key in attrs, key
    assert attrs["steps"] == 2 and attrs["capture"]["map_size"] == [8, 8] and attrs["seeds"] == [0, 1]
    maps = g["maps"][:].astype(np.float32)
    assert np.isfinite(maps).all() and (maps >= 0).all() and (maps <= 1).all() and maps.max() > 0
    images = g["images"][:]
    assert images.std() > 0 and not np.array_equal(images[0], images[1])  # seeds differ
    # resuming a finished store changes nothing and runs no batch
    ran = []
    generate(PROMPTS, 2, reference, **KW, _after_batch=lambda s, e: ran.append((s, e)))
    assert ran == []


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from stablesemantics.store import atomic as st
    from stablesemantics.capture import CaptureConfig
    from stablesemantics.generate import generate

    out = Path(sys.argv[1])
    prompts, kw = {prompts!r}, {kw!r}
    real = st._atomic_write_bytes
    maps_writes = []

    def dying_write(p, data, **k):
        if out in p.parents and p.relative_to(out).parts[0] == "maps" and p.name != "zarr.json":
            maps_writes.append(p)
            if len(maps_writes) == 2:
                # batch 1's maps: the shard also holds batch 0's (done) maps. Die half-way.
                tmp = p.parent / f".{{p.name}}.{{'0' * 32}}{{st._TMP_SUFFIX}}"
                with open(tmp, "wb") as f:
                    f.write(bytes(data)[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
        return real(p, data, **k)

    st._atomic_write_bytes = dying_write
    generate(prompts, 2, out, capture=CaptureConfig(map_size=(8, 8)), **kw)
    """
)


@pytest.mark.slow
def test_sigkill_mid_write_then_rerun_equals_uninterrupted(reference: Path, tmp_path: Path):
    out = tmp_path / "killed.zarr"
    kw = {k: v for k, v in KW.items() if k != "capture"}
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(prompts=PROMPTS, kw=kw))
    proc = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert open_store(out)["done"][:].tolist() == [True, True, False, False, False, False]
    assert StoreWriter(out).pending_batches() == [(2, 4), (4, 6)]
    generate(PROMPTS, 2, out, **KW)
    ref, got = read_all(reference), read_all(out)
    for k in ARRAYS:
        assert ref[k].dtype == got[k].dtype and np.array_equal(ref[k], got[k]), k
    a, b = dict(open_store(reference).attrs), dict(open_store(out).attrs)
    a.pop("created"), b.pop("created")
    assert a == b


def test_crash_between_batches_resumes(reference: Path, tmp_path: Path):
    out = tmp_path / "crashed.zarr"

    def crash(start: int, stop: int) -> None:
        if start == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(PROMPTS, 2, out, **KW, _after_batch=crash)
    assert open_store(out)["done"][:].tolist() == [True] * 4 + [False] * 2
    ran = []
    generate(PROMPTS, 2, out, **KW, _after_batch=lambda s, e: ran.append((s, e)))
    assert ran == [(4, 6)]
    ref, got = read_all(reference), read_all(out)
    assert all(np.array_equal(ref[k], got[k]) for k in ARRAYS)


def test_image_depends_on_prompt_and_seed_not_batch(reference: Path, tmp_path: Path):
    """(prompt 2, seed 1) alone, and in a batch of 3 with other mates, vs in its reference batch."""
    ref = read_all(reference)
    alone = generate([PROMPTS[2]], [1], tmp_path / "alone.zarr", **{**KW, "batch_size": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mixed = generate([PROMPTS[1], PROMPTS[2]], [1, 0], tmp_path / "mixed.zarr", **{**KW, "batch_size": 3})
    i_ref = 5  # prompt 2 x seed 1
    rows_ref = ref["map_image"] == i_ref
    for path, i in ((alone, 0), (mixed, 2)):
        got = read_all(path)
        assert got["caption"][i] == ref["caption"][i_ref] and got["seed"][i] == 1
        diff = np.abs(got["images"][i].astype(int) - ref["images"][i_ref].astype(int))
        assert diff.max() <= 1, diff.max()
        rows = got["map_image"] == i
        assert got["map_chunk"][rows].tolist() == ref["map_chunk"][rows_ref].tolist()
        np.testing.assert_allclose(
            got["maps"][rows].astype(np.float32), ref["maps"][rows_ref].astype(np.float32), atol=1e-4, rtol=1e-3
        )


# --------------------------------------------------------------------------- extra root attributes


def test_attrs_are_merged_into_root_attributes(tiny_pipe, tmp_path: Path):
    kw = {**KW, "model": tiny_pipe}
    out = generate(["a red car"], 1, tmp_path / "a.zarr", attrs={"world": {"n": 1, "seed": 3}}, **kw)
    attrs = dict(open_store(out).attrs)
    assert attrs["world"] == {"n": 1, "seed": 3} and attrs["model"] and attrs["schema_version"] == 1
    with pytest.raises(ValueError, match="library's own"):
        generate(["a red car"], 1, tmp_path / "b.zarr", attrs={"steps": 1}, **kw)
    assert not (tmp_path / "b.zarr").exists()
    with pytest.raises(TypeError, match="JSON"):
        generate(["a red car"], 1, tmp_path / "c.zarr", attrs={"x": object()}, **kw)
