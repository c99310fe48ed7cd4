"""Tests of the Zarr store: layout, validation, crash safety, xarray view, summary."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from stablesemantics.store import (
    SCHEMA_VERSION,
    StoreLayout,
    StoreWriter,
    create_store,
    open_store,
    store_summary,
    to_xarray,
)
from stablesemantics.store import atomic as st


def make_layout(n_images: int = 6, batch_size: int = 2, maps_per_image=(2, 1, 0, 3, 1, 2)) -> StoreLayout:
    map_image = [i for i in range(n_images) for _ in range(maps_per_image[i])]
    return StoreLayout(
        image_size=(8, 6),
        map_size=(4, 3),
        batch_size=batch_size,
        prompt_id=[i // 2 for i in range(n_images)],
        prompt=[f"Prompt {i // 2}!! --ar 1:1" for i in range(n_images)],
        caption=[f"prompt {i // 2}" for i in range(n_images)],
        seed=[i % 2 for i in range(n_images)],
        noun_chunks=[json.dumps([{"text": "x", "truncated": i == 2, "map": -1}]) for i in range(n_images)],
        map_image=map_image,
        map_chunk=[f"chunk {k}" for k in range(len(map_image))],
        map_lemma=["car" if k % 2 else "tree" for k in range(len(map_image))],
        map_token_indices=[json.dumps([k + 1]) for k in range(len(map_image))],
    )


def fake_batch(layout: StoreLayout, start: int, stop: int, writer: StoreWriter):
    rng = np.random.default_rng(start)
    images = rng.integers(0, 256, (stop - start, *layout.image_size, 3), dtype=np.uint8)
    rows = writer.map_rows(start, stop)
    maps = rng.random((rows.stop - rows.start, *layout.map_size)).astype(np.float32)
    return images, maps


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return create_store(tmp_path / "s.zarr", make_layout(), {"model": "fake", "steps": 2})


def test_create_layout_and_attrs(store_path: Path):
    g = open_store(store_path)
    assert g.attrs["schema_version"] == SCHEMA_VERSION
    assert g.attrs["model"] == "fake" and g.attrs["batch_size"] == 2
    assert g["images"].shape == (6, 8, 6, 3) and g["images"].dtype == np.uint8
    assert g["images"].chunks == (1, 8, 6, 3) and g["images"].shards[0] % 2 == 0
    assert g["maps"].shape == (9, 4, 3) and g["maps"].dtype == np.float16
    assert g["maps"].chunks == (9, 4, 3)  # small maps: a chunk holds many maps (here all nine)
    assert g["map_image"][:].tolist() == [0, 0, 1, 3, 3, 3, 4, 5, 5]
    assert g["map_lemma"][:].tolist()[:2] == ["tree", "car"]
    assert g["caption"][:].tolist()[0] == "prompt 0"
    assert not g["done"][:].any()
    root = json.loads((store_path / "zarr.json").read_text())
    assert "consolidated_metadata" in root  # one read opens the whole hierarchy
    assert not store_path.with_name("s.zarr.partial").exists()


def test_write_roundtrip_and_pending(store_path: Path):
    layout = make_layout()
    w = StoreWriter(store_path)
    assert w.batches() == [(0, 2), (2, 4), (4, 6)]
    images, maps = fake_batch(layout, 2, 4, w)
    w.write(2, images, maps)
    assert w.pending_batches() == [(0, 2), (4, 6)]
    g = open_store(store_path)
    assert np.array_equal(g["images"][2:4], images)
    assert np.array_equal(g["maps"][3:6], maps.astype(np.float16))
    assert g["done"][:].tolist() == [False, False, True, True, False, False]
    # a partly done batch is pending as a whole
    g2 = open_store(store_path, "r+")
    g2["done"][4] = True
    assert StoreWriter(store_path).pending_batches() == [(0, 2), (4, 6)]


def test_write_rejects_bad_shapes(store_path: Path):
    w = StoreWriter(store_path)
    with pytest.raises(ValueError, match="uint8"):
        w.write(0, np.zeros((2, 8, 6, 3), np.float32), np.zeros((3, 4, 3)))
    with pytest.raises(ValueError, match="shape"):
        w.write(0, np.zeros((2, 8, 6, 3), np.uint8), np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="outside"):
        w.write(5, np.zeros((2, 8, 6, 3), np.uint8), np.zeros((2, 4, 3)))


def test_create_refuses_existing_and_clears_stale_partial(tmp_path: Path):
    out = tmp_path / "s.zarr"
    stale = tmp_path / "s.zarr.partial"
    stale.mkdir()
    (stale / st._PARTIAL_MARKER).write_text("{}")  # made by the library: a killed creation
    (stale / "junk").write_text("half-created by a killed run")
    create_store(out, make_layout())
    assert not stale.exists()
    with pytest.raises(FileExistsError):
        create_store(out, make_layout())


@pytest.mark.filterwarnings("ignore:Consolidated metadata")
def test_open_store_errors(tmp_path: Path, store_path: Path):
    with pytest.raises(FileNotFoundError, match="no store"):
        open_store(tmp_path / "missing.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a Zarr v3 store"):
        open_store(tmp_path / "empty")
    zarr.create_group(str(tmp_path / "plain.zarr"), zarr_format=3)
    with pytest.raises(ValueError, match="not a StableSemantics store"):
        open_store(tmp_path / "plain.zarr")
    g = zarr.open_group(str(store_path), mode="r+")
    g.attrs["schema_version"] = 99
    zarr.consolidate_metadata(str(store_path))
    with pytest.raises(ValueError, match=f"has schema version 99, this library reads {SCHEMA_VERSION}"):
        open_store(store_path)
    with pytest.raises(ValueError, match="mode"):
        open_store(store_path, mode="w")


def test_layout_validation():
    with pytest.raises(ValueError, match="map_image must be sorted"):
        StoreLayout(
            image_size=(8, 8),
            map_size=(2, 2),
            batch_size=1,
            prompt_id=[0, 1],
            prompt=["a", "b"],
            caption=["a", "b"],
            seed=[0, 0],
            noun_chunks=["[]", "[]"],
            map_image=[1, 0],
            map_chunk=["a", "b"],
            map_lemma=["a", "b"],
            map_token_indices=["[1]", "[1]"],
        )
    with pytest.raises(ValueError, match="seed has 1 entries"):
        StoreLayout(
            image_size=(8, 8),
            map_size=(2, 2),
            batch_size=1,
            prompt_id=[0, 1],
            prompt=["a", "b"],
            caption=["a", "b"],
            seed=[0],
            noun_chunks=["[]", "[]"],
            map_image=[],
            map_chunk=[],
            map_lemma=[],
            map_token_indices=[],
        )
    with pytest.raises(ValueError, match="batch_size"):
        make_layout(batch_size=0)


def test_store_without_maps(tmp_path: Path):
    layout = make_layout(n_images=2, maps_per_image=(0, 0))
    path = create_store(tmp_path / "s.zarr", layout)
    w = StoreWriter(path)
    w.write(0, np.full((2, 8, 6, 3), 3, np.uint8), np.zeros((0, 4, 3)))
    ds = to_xarray(path)
    assert ds.sizes["map"] == 0 and bool(ds.done.all())
    assert store_summary(path)["n_maps"] == 0


def test_to_xarray_is_lazy_and_aligned(store_path: Path):
    layout = make_layout()
    w = StoreWriter(store_path)
    for s, e in w.batches():
        w.write(s, *fake_batch(layout, s, e, w))
    ds = to_xarray(store_path)
    assert dict(ds.sizes) == {"image": 6, "y": 8, "x": 6, "channel": 3, "map": 9, "map_y": 4, "map_x": 3}
    assert hasattr(ds.images.data, "dask") and hasattr(ds.maps.data, "dask")
    assert ds.attrs["model"] == "fake"
    g = open_store(store_path)
    assert np.array_equal(ds.images.values, g["images"][:])
    assert np.array_equal(ds.maps.values, g["maps"][:])
    cars = ds.maps.where(ds.map_lemma == "car", drop=True)
    assert cars.sizes["map"] == 4
    # join a map to its image's caption
    assert ds.caption.values[ds.map_image.values[5]] == "prompt 1"


def test_store_summary(store_path: Path):
    layout = make_layout()
    w = StoreWriter(store_path)
    w.write(0, *fake_batch(layout, 0, 2, w))
    s = store_summary(store_path)
    assert s["n_images"] == 6 and s["n_done"] == 2 and s["n_maps"] == 9 and s["n_maps_done"] == 3
    assert s["n_prompts"] == 3 and s["n_seeds"] == 2 and s["n_truncated_chunks"] == 1
    assert s["top_lemmas"][0] == ["tree", 5]
    json.dumps(s)


def test_atomic_store_leaves_no_temporaries(tmp_path: Path):
    store = st.AtomicLocalStore(tmp_path / "a")
    a = zarr.create_array(store, name="a", shape=(8,), dtype="int64", chunks=(1,), shards=(4,))
    a[:3] = 1
    a[2:6] = 2
    assert a[:].tolist() == [1, 1, 2, 2, 2, 2, 0, 0]
    assert not [p for p in (tmp_path / "a").rglob("*") if p.name.endswith(st._TMP_SUFFIX)]
    ro = store.with_read_only(True)
    assert ro.read_only and isinstance(ro, st.AtomicLocalStore)


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import numpy as np
    from stablesemantics.store import StoreWriter
    from stablesemantics.store import atomic as st

    path, mode = Path(sys.argv[1]), sys.argv[2]
    real = st._atomic_write_bytes

    def dying_write(p, data, **kw):
        if p.relative_to(path).parts[0] == "maps" and p.name != "zarr.json":
            if mode == "half":  # killed half-way through writing the temporary file
                tmp = p.parent / f".{p.name}.{'0' * 32}{st._TMP_SUFFIX}"
                with open(tmp, "wb") as f:
                    f.write(bytes(data)[: len(data) // 2])
            else:  # killed after the temporary file is complete, before the rename
                tmp = p.parent / f".{p.name}.{'1' * 32}{st._TMP_SUFFIX}"
                with open(tmp, "wb") as f:
                    f.write(bytes(data))
            os.kill(os.getpid(), signal.SIGKILL)
        return real(p, data, **kw)

    st._atomic_write_bytes = dying_write
    w = StoreWriter(path)
    rng = np.random.default_rng(9)
    images = rng.integers(0, 256, (2, 8, 6, 3), dtype=np.uint8)
    rows = w.map_rows(4, 6)
    w.write(4, images, np.full((rows.stop - rows.start, 4, 3), 7.0))
    """
)


@pytest.mark.parametrize("mode", ["half", "before_rename"])
def test_sigkill_during_shard_write_keeps_done_data(store_path: Path, tmp_path: Path, mode: str):
    layout = make_layout()
    w = StoreWriter(store_path)
    for s, e in [(0, 2), (2, 4)]:
        w.write(s, *fake_batch(layout, s, e, w))
    before = {k: open_store(store_path)[k][:] for k in ("images", "maps", "done")}
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(store_path), mode], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert any(p.name.endswith(st._TMP_SUFFIX) for p in store_path.rglob("*"))
    g = open_store(store_path)
    after_images = g["images"][:]
    # the maps shard (shared with done batches) is intact; done is unchanged
    assert np.array_equal(g["maps"][:], before["maps"])
    assert np.array_equal(g["done"][:], before["done"])
    assert np.array_equal(after_images[:4], before["images"][:4])
    # reopening for writing removes the stray temporary file and the batch can be redone
    w = StoreWriter(store_path)
    assert not any(p.name.endswith(st._TMP_SUFFIX) for p in store_path.rglob("*"))
    assert w.pending_batches() == [(4, 6)]
    w.write(4, *fake_batch(layout, 4, 6, w))
    assert open_store(store_path)["done"][:].all()


def test_remove_temporary_files_only_touches_temporaries(tmp_path: Path):
    (tmp_path / "c").mkdir()
    keep = [tmp_path / "zarr.json", tmp_path / "c" / "0", tmp_path / "c" / "notes.partial"]
    drop = [tmp_path / "c" / f".0.{'a' * 32}.sstmp", tmp_path / "c" / f"0.{'b' * 32}.partial"]
    for p in keep + drop:
        p.write_bytes(b"x")
    assert st.remove_temporary_files(tmp_path) == 2
    assert all(p.exists() for p in keep) and not any(p.exists() for p in drop)


@pytest.mark.parametrize("chunk_bytes, shard_bytes", [(2 * 4 * 3 * 2, 2 * 4 * 3 * 5), (2 * 4 * 3 * 3, 2 * 4 * 3 * 7)])
def test_fast_reader_reads_chunks_of_several_maps_like_zarr(tmp_path: Path, monkeypatch, chunk_bytes, shard_bytes):
    from stablesemantics.store import schema
    from stablesemantics.store.blocks import _ShardReader, read_maps

    monkeypatch.setattr(schema, "_MAP_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(schema, "_SHARD_BYTES", shard_bytes)
    layout = make_layout()
    assert layout.maps_per_chunk > 1 and layout.maps_per_shard % layout.maps_per_chunk == 0
    assert layout.maps_per_shard < layout.n_maps  # several shards, each of whole chunks
    path = create_store(tmp_path / "s.zarr", layout, {"model": "fake"})
    w = StoreWriter(path)
    for s, e in w.batches()[:-1]:  # the last batch stays unwritten: its rows read as fill values
        w.write(s, *fake_batch(layout, s, e, w))
    g = open_store(path)
    assert g["maps"].chunks[0] == layout.maps_per_chunk and _ShardReader(g["maps"]).fast
    for lo in range(layout.n_maps):
        for hi in range(lo + 1, layout.n_maps + 1):
            np.testing.assert_array_equal(read_maps(path, lo, hi), g["maps"][lo:hi])


def test_map_table_lemmas_are_a_categorical_read_chunk_by_chunk(tmp_path: Path, monkeypatch):
    from stablesemantics.store import map_table, schema

    monkeypatch.setattr(schema, "_INDEX_CHUNK", 4)  # the 9 lemmas span three chunks
    path = create_store(tmp_path / "s.zarr", make_layout(), {"model": "fake"})
    t = map_table(path)
    assert isinstance(t["lemma"].dtype, pd.CategoricalDtype)
    assert open_store(path)["map_lemma"].chunks == (4,)
    assert t["lemma"].astype(object).tolist() == make_layout().map_lemma
    assert t["lemma"].to_numpy(dtype=object).tolist() == list(make_layout().map_lemma)
    assert (t["lemma"] == "car").tolist() == [k % 2 == 1 for k in range(9)]
