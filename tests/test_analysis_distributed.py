"""The streaming analyses on a dask.distributed cluster give the numbers of the in-process path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_analysis import build_store  # noqa: E402  (tests/ is on sys.path under pytest)

from stablesemantics import analysis, store
from stablesemantics.analysis.distributed import stream
from stablesemantics.store import schema as store_schema


@pytest.fixture(scope="module")
def random_store(tmp_path_factory):
    """60 images of 1-4 maps of 6 labels in 4 places, in shards of 7 maps (many blocks)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(store_schema, "_SHARD_BYTES", 7 * 2 * 6 * 6)
    rng = np.random.default_rng(1)
    names = ["cat", "dog", "sun", "sky", "tree", "car"]
    images = [
        [
            (names[int(k)], rng.random((6, 6)).astype(np.float32))
            for k in rng.choice(6, rng.integers(1, 5), replace=False)
        ]
        for _ in range(60)
    ]
    path = build_store(tmp_path_factory.mktemp("d") / "s.zarr", images, prompt_ids=[i // 3 for i in range(60)])
    mp.undo()
    return path


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as c:
        with distributed.Client(c) as client:
            yield client


def _inputs(path):
    t = store.map_table(path)
    labels = t["lemma"].to_numpy().astype(object)
    contexts = np.array(["room", "street", "sky", "park"], dtype=object)[t["image"].to_numpy() % 4]
    return t, labels, contexts


def test_map_statistics_on_a_cluster_equal_the_in_process_numbers(random_store, cluster):
    t, labels, contexts = _inputs(random_store)
    image, groups = t["image"].to_numpy(), t["prompt_id"].to_numpy()
    kwargs = dict(groups=groups, block=7, seed=3)
    sp1, ov1 = analysis.map_statistics(random_store, labels, image, contexts, **kwargs)
    sp2, ov2 = analysis.map_statistics(random_store, labels, image, contexts, scheduler=cluster, **kwargs)
    assert sp2.n_maps_read == sp1.n_maps_read == len(labels)
    pd.testing.assert_frame_equal(sp1.per_map, sp2.per_map)  # per-map moments: exactly
    pd.testing.assert_series_equal(sp1.counts, sp2.counts)
    assert sp1.mean_maps.keys() == sp2.mean_maps.keys() and len(sp1.context_maps) > 4
    for k in sp1.mean_maps:
        np.testing.assert_allclose(sp1.mean_maps[k], sp2.mean_maps[k], rtol=1e-12, atol=0)
    for k in sp1.context_maps:
        np.testing.assert_allclose(sp1.context_maps[k], sp2.context_maps[k], rtol=1e-12, atol=0)
    pd.testing.assert_frame_equal(ov1.pairs, ov2.pairs)  # pair statistics, chance pairs included: exactly
    assert (ov1.pairs["n_chance"] > 0).any()


def test_split_into_any_number_of_parts_gives_the_same_pairs(random_store, cluster):
    t, labels, _ = _inputs(random_store)
    one = analysis.map_overlaps(random_store, labels, t["image"].to_numpy(), block=7)
    for parts in (1, 3, 11):
        acc = analysis.overlap._OverlapAcc(labels, t["image"].to_numpy())
        n = stream(random_store, [acc], baseline="min", block=7, whole_images=True, scheduler=cluster, parts=parts)
        assert n == len(labels)
        pd.testing.assert_frame_equal(acc.result(n).pairs, one.pairs)
    spatial = analysis.spatial_statistics(random_store, labels, scheduler=cluster)
    assert spatial.n_maps_read == len(labels)


def test_a_scheduler_needs_a_store_path_and_a_known_kind(random_store):
    t, labels, _ = _inputs(random_store)
    with pytest.raises(TypeError, match="store path or URL"):
        analysis.spatial_statistics(store.iter_map_blocks(random_store), labels, scheduler="local")
    with pytest.raises(TypeError, match="scheduler must be"):
        analysis.spatial_statistics(random_store, labels, scheduler=3)


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_blocks_computed_on_threads_give_one_threads_numbers_bit_for_bit(random_store, threads, monkeypatch):
    """The in-process pass computes blocks on threads and adds them in order: nothing may differ."""
    from stablesemantics.analysis import streaming

    t, labels, contexts = _inputs(random_store)
    image, groups = t["image"].to_numpy(), t["prompt_id"].to_numpy()
    kwargs = dict(groups=groups, block=7, seed=3)
    monkeypatch.setattr(streaming, "THREADS", 1)
    sp1, ov1 = analysis.map_statistics(random_store, labels, image, contexts, **kwargs)
    monkeypatch.setattr(streaming, "THREADS", threads)
    sp2, ov2 = analysis.map_statistics(random_store, labels, image, contexts, **kwargs)
    pd.testing.assert_frame_equal(sp1.per_map, sp2.per_map)
    assert sp1.mean_maps.keys() == sp2.mean_maps.keys() and sp1.context_maps.keys() == sp2.context_maps.keys()
    assert all(np.array_equal(sp1.mean_maps[k], sp2.mean_maps[k]) for k in sp1.mean_maps)
    assert all(np.array_equal(sp1.context_maps[k], sp2.context_maps[k]) for k in sp1.context_maps)
    pd.testing.assert_frame_equal(ov1.pairs, ov2.pairs)
    assert len(sp1.per_map) == len(labels) and (ov1.pairs["n"] > 0).all()


def test_a_cluster_analyses_a_store_on_s3(random_store, cluster):
    """Workers open an ``s3://`` store themselves (the endpoint reaches them through the environment)."""
    import uuid

    from s3_server import S3Server, s3_environment

    from stablesemantics.store.location import StoreFiles

    t, labels, contexts = _inputs(random_store)
    image = t["image"].to_numpy()
    with S3Server() as s3, s3_environment(s3):
        bucket = f"b{uuid.uuid4().hex[:12]}"
        url = f"s3://{bucket}/copy.zarr"
        remote, local = StoreFiles(url), StoreFiles(random_store)
        remote.fs.mkdir(bucket)
        for key in local.keys():
            remote.write(key, local.read(key))
        cluster.run(lambda env: __import__("os").environ.update(env), s3.env())  # workers started before
        sp1, ov1 = analysis.map_statistics(random_store, labels, image, contexts, block=7)
        sp2, ov2 = analysis.map_statistics(url, labels, image, contexts, block=7, scheduler=cluster)
    pd.testing.assert_frame_equal(sp1.per_map, sp2.per_map)
    pd.testing.assert_frame_equal(ov1.pairs, ov2.pairs)
    for k in sp1.mean_maps:
        np.testing.assert_allclose(sp1.mean_maps[k], sp2.mean_maps[k], rtol=1e-12, atol=0)
