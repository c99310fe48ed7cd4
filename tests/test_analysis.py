"""Tests of stablesemantics.analysis on small synthetic stores whose answers are known."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stablesemantics import analysis, generate, store
from stablesemantics.analysis import labels as analysis_labels
from stablesemantics.store import StoreLayout, StoreWriter, create_store, open_store, store_summary
from stablesemantics.store import blocks as store_blocks
from stablesemantics.store import schema as store_schema
from stablesemantics.world import CLASS_INDEX, world_prompts


def build_store(
    path: Path,
    images: list[list[tuple[str, np.ndarray]]],
    *,
    attrs: dict | None = None,
    prompt_ids: list[int] | None = None,
    captions: list[str] | None = None,
    done: list[bool] | None = None,
    batch_size: int = 1,
) -> Path:
    """A store without a model: ``images[i]`` lists (lemma, map) of image i."""
    n = len(images)
    h, w = next(m.shape for im in images for _, m in im)
    map_image = [i for i, im in enumerate(images) for _ in im]
    lemmas = [lem for im in images for lem, _ in im]
    caps = captions or [" and ".join(f"a {lem}" for lem, _ in im) or "nothing" for im in images]
    chunks, row = [], 0
    for im in images:
        entries = []
        for lem, _ in im:
            entries.append(
                {"text": f"a {lem}", "lemma": lem, "start": 0, "end": 1, "tokens": [1], "truncated": False, "map": row}
            )
            row += 1
        chunks.append(json.dumps(entries))
    layout = StoreLayout(
        image_size=(8, 8),
        map_size=(h, w),
        batch_size=batch_size,
        prompt_id=prompt_ids if prompt_ids is not None else list(range(n)),
        prompt=caps,
        caption=caps,
        seed=[0] * n,
        noun_chunks=chunks,
        map_image=map_image,
        map_chunk=[f"a {x}" for x in lemmas],
        map_lemma=lemmas,
        map_token_indices=["[1]"] * len(lemmas),
    )
    create_store(path, layout, attrs or {})
    writer = StoreWriter(path)
    if done is None:  # one write: much faster than one per image
        maps = np.stack([m for im in images for _, m in im])
        writer.write(0, np.zeros((n, 8, 8, 3), np.uint8), maps)
        return path
    for i, im in enumerate(images):
        if done[i]:
            maps = np.stack([m for _, m in im]) if im else np.zeros((0, h, w), np.float32)
            writer.write(i, np.zeros((1, 8, 8, 3), np.uint8), maps)
    return path


def blob(h, w, y, x, value=1.0):
    m = np.zeros((h, w), np.float32)
    m[y, x] = value
    return m


@pytest.fixture
def small_shards(monkeypatch):
    """Shards of 5 maps of 4x4 (so a dozen maps span several shard files)."""
    monkeypatch.setattr(store_schema, "_SHARD_BYTES", 5 * 2 * 4 * 4)


# --------------------------------------------------------------------------- reading


def test_fast_shard_reader_equals_zarr(tmp_path, small_shards):
    rng = np.random.default_rng(0)
    images = [[("cat", rng.random((4, 4)).astype(np.float32)) for _ in range(k)] for k in (3, 1, 2, 4, 1, 2)]
    images[1][0] = ("dog", np.zeros((4, 4), np.float32))  # an all-zero map: zarr writes no chunk
    path = build_store(tmp_path / "s.zarr", images, done=[True, True, True, True, False, True])
    g = open_store(path)
    assert g["maps"].shards[0] == 5 and g["maps"].shape[0] == 13
    reader = store_blocks._ShardReader(g["maps"])
    assert reader.fast
    ref = g["maps"][:]
    np.testing.assert_array_equal(store.read_maps(path), ref)
    for s, e in [(0, 13), (3, 11), (4, 5), (12, 13), (7, 7)]:
        np.testing.assert_array_equal(reader.read(s, e), ref[s:e])
    slow = store_blocks._ShardReader(g["maps"])
    slow.root = None
    np.testing.assert_array_equal(slow.read(2, 12), ref[2:12])


def test_iter_map_blocks_covers_rows_and_keeps_images_whole(tmp_path, small_shards):
    rng = np.random.default_rng(1)
    sizes = (3, 1, 4, 2, 6, 1, 2)
    images = [[("cat", rng.random((4, 4)).astype(np.float32)) for _ in range(k)] for k in sizes]
    path = build_store(tmp_path / "s.zarr", images)
    ref = open_store(path)["maps"][:].astype(np.float32)
    map_image = np.repeat(np.arange(len(sizes)), sizes)
    for whole in (False, True):
        for block in (None, 3, 7, 100):
            got = list(store.iter_map_blocks(path, block=block, whole_images=whole))
            starts = [s for s, _ in got]
            assert starts == sorted(starts) and starts[0] == 0
            np.testing.assert_array_equal(np.concatenate([m for _, m in got]), ref)
            if whole:
                for s, m in got:
                    e = s + len(m)
                    assert s == 0 or map_image[s] != map_image[s - 1]
                    assert e == len(ref) or map_image[e] != map_image[e - 1]


# --------------------------------------------------------------------------- spatial


def test_map_moments_known_values():
    maps = np.zeros((3, 4, 4), np.float32)
    maps[0, 0, 0] = 1  # top-left pixel
    maps[1, :, 3] = 2  # right column
    mom = analysis.map_moments(maps)
    np.testing.assert_allclose(mom["cy"][:2], [0.125, 0.5])
    np.testing.assert_allclose(mom["cx"][:2], [0.125, 0.875])
    np.testing.assert_allclose(mom["sy"][1], np.std((np.arange(4) + 0.5) / 4), rtol=1e-6)
    assert mom["sx"][1] == pytest.approx(0, abs=1e-6)
    assert np.isnan(mom["cy"][2]) and mom["mass"][2] == 0  # no mass
    # the baseline: a constant floor does not move the centroid under "min"
    floored = maps[:1] + 0.5
    assert analysis.map_moments(floored)["cy"][0] == pytest.approx(0.125)
    assert analysis.map_moments(floored, baseline="none")["cy"][0] > 0.3


def test_spatial_statistics_per_label_and_context(tmp_path, small_shards):
    # "sun" always at the top row, "dog" always at the bottom row, x varies; "style" unlabelled
    images = []
    for i in range(6):
        x = i % 4
        images.append([("sun", blob(4, 4, 0, x)), ("dog", blob(4, 4, 3, 3 - x, 5.0)), ("style", blob(4, 4, 2, 2))])
    path = build_store(tmp_path / "s.zarr", images)
    t = store.map_table(path)
    labels = np.where(t["lemma"] == "style", None, t["lemma"]).astype(object)
    contexts = np.asarray(["beach" if img % 2 else "field" for img in t["image"]], dtype=object)
    st = analysis.spatial_statistics(path, labels, contexts)
    assert st.n_maps_read == 18
    s = st.summary()
    assert list(s.index) == ["sun", "dog"]  # sorted by cy
    assert s.loc["sun", "cy"] == pytest.approx(0.125) and s.loc["dog", "cy"] == pytest.approx(0.875)
    assert s.loc["sun", "n"] == 6 and s.loc["sun", "spread"] == pytest.approx(0, abs=1e-6)
    assert s.loc["sun", "mean_map_cy"] == pytest.approx(0.125)
    assert set(st.mean_maps) == {"sun", "dog"}
    np.testing.assert_allclose(st.mean_maps["sun"].sum(), 1, rtol=1e-6)
    np.testing.assert_allclose(st.mean_maps["sun"][0], [2 / 6, 2 / 6, 1 / 6, 1 / 6])
    assert set(st.context_maps) == {("beach", "sun"), ("beach", "dog"), ("field", "sun"), ("field", "dog")}
    assert st.context_counts[("beach", "dog")] == 3
    # the field images are 0, 2, 4: sun at x = 0, 2, 0
    np.testing.assert_allclose(st.context_maps[("field", "sun")][0], [2 / 3, 0, 1 / 3, 0])
    # a block iterable gives the same answer as the store
    st2 = analysis.spatial_statistics(store.iter_map_blocks(path, block=4), labels, contexts)
    pd.testing.assert_frame_equal(st.summary(), st2.summary())


def test_downsample_mask_preserves_mean():
    m = np.random.default_rng(0).random((10, 7)) > 0.5
    d = analysis.downsample_mask(m, (3, 4))
    assert d.shape == (3, 4)
    assert d.mean() == pytest.approx(m.mean())
    np.testing.assert_allclose(analysis.downsample_mask(m, (10, 7)), m)


# --------------------------------------------------------------------------- world stores


def world_store(path: Path, n: int = 12, seed: int = 3, map_size: int = 16, n_seeds: int = 2) -> Path:
    """A store as make_world_store lays it out, but with the true masks as maps (no model)."""
    scenes, prompts = world_prompts(n, seed=seed)
    images, pids = [], []
    for pid, s in enumerate(scenes):
        entries = []
        for o in s.objects:
            entries.append(
                (
                    o.noun,
                    analysis.downsample_mask(s.class_mask == CLASS_INDEX[o.cls] + 1, (map_size, map_size)).astype(
                        np.float32
                    ),
                )
            )
        entries.append(("masterpiece", np.ones((map_size, map_size), np.float32)))
        for _ in range(n_seeds):
            images.append(entries)
            pids.append(pid)
    info = {"generator": "stablesemantics.world.world_prompts", "n": n, "seed": seed, "config": {}}
    return build_store(path, images, attrs={"world": info}, prompt_ids=pids, captions=[prompts[p] for p in pids])


def test_world_store_truth_equals_maps_made_from_truth(tmp_path):
    path = world_store(tmp_path / "w.zarr")
    assert analysis.is_world_store(path) and not analysis.is_world_store(
        build_store(tmp_path / "o.zarr", [[("a", np.ones((2, 2)))]])
    )
    labels = analysis.map_labels(path)
    t = store.map_table(path)
    assert set(labels[t["lemma"] == "masterpiece"]) == {None}
    assert {x for x in labels if x} <= set(CLASS_INDEX)
    att = analysis.spatial_statistics(path, labels)
    truth = analysis.spatial_statistics(analysis.truth_map_blocks(path, labels, block=5), labels)
    a, b = att.summary(), truth.summary()
    pd.testing.assert_series_equal(a["cy"], b["cy"], rtol=1e-5)
    pd.testing.assert_series_equal(a["spread"], b["spread"], rtol=1e-5)
    # and the truth matches the world's own measurement of the mask centroids
    objs = analysis.world_objects(path)
    assert 2 * len(objs) == sum(x is not None for x in labels)  # one row per object; 2 images per prompt
    mean_cy = objs.groupby("cls")["cy"].mean()
    per_prompt = truth.per_map.assign(
        pid=t["prompt_id"].to_numpy()[truth.per_map["row"]], label=truth.per_map["label"].astype(str)
    )
    per_prompt = per_prompt.drop_duplicates(["pid", "label"]).groupby("label")["cy"].mean()
    pd.testing.assert_series_equal(
        per_prompt.sort_index(), mean_cy.sort_index(), check_names=False, check_dtype=False, atol=0.02
    )


def test_world_labels_and_categories():
    labs = analysis.world_labels(["puppy", "Kitten", "shore", "wood", "woods", "masterpiece", "desk"])
    assert labs.tolist() == ["dog", "cat", "beach", "forest", "forest", None, "table"]
    assert analysis.label_categories(["dog", "beach", None, "sun"]).tolist() == ["animal", "place", "other", "sky"]


def test_map_contexts_from_place_chunks():
    t = pd.DataFrame({"image": [0, 0, 1, 1, 2], "lemma": ["dog", "shore", "cat", "x", "meadow"]})
    assert analysis.map_contexts(t).tolist() == ["beach", "beach", None, None, "field"]
    no_place = pd.DataFrame({"image": [0, 1], "lemma": ["cabin", "fisherman"]})  # free text, no place named
    assert analysis.map_contexts(no_place).tolist() == [None, None]


def test_world_prompts_are_deterministic():
    s1, p1 = world_prompts(4, seed=2)
    s2, p2 = world_prompts(4, seed=2)
    assert p1 == p2 and [s.caption for s in s1] == [s.caption for s in s2]
    assert world_prompts(4, seed=3)[1] != p1


def test_make_world_store_records_how_to_rerender(tiny_pipe, tmp_path):
    from stablesemantics.capture import CaptureConfig

    path = generate.make_world_store(
        tmp_path / "w.zarr",
        3,
        2,
        world_seed=5,
        model=tiny_pipe,
        steps=1,
        height=32,
        width=32,
        batch_size=6,
        capture=CaptureConfig(map_size=(4, 4)),
        progress=False,
    )
    g = open_store(path)
    assert analysis.world_info(path)["seed"] == 5 and analysis.world_info(path)["n"] == 3
    assert g["prompt_id"][:].tolist() == [0, 0, 1, 1, 2, 2]
    assert list(g["prompt"][:][::2]) == world_prompts(3, seed=5)[1]
    scenes = analysis.store_scenes(path, [0, 2])
    assert scenes[2].caption == world_prompts(3, seed=5)[0][2].caption


# --------------------------------------------------------------------------- co-occurrence


def test_cooccurrence_and_pmi():
    units = [0, 0, 0, 1, 1, 2, 2, 3]
    labels = ["a", "b", "a", "a", "c", "b", "c", None]
    c, n = analysis.cooccurrence_counts(units, labels)
    assert n == 4
    assert c.loc["a", "a"] == 2 and c.loc["a", "b"] == 1 and c.loc["b", "c"] == 1 and c.loc["a", "c"] == 1
    p = analysis.pmi(c, n)
    assert p.loc["a", "b"] == pytest.approx(np.log2((1 / 4) / ((2 / 4) * (2 / 4))))
    assert np.isnan(p.loc["a", "a"])
    assert np.isnan(analysis.pmi(c, n, min_count=2).loc["a", "b"])
    npmi = analysis.pmi(c, n, normalized=True)
    assert -1 <= npmi.loc["a", "b"] <= 1


def test_rank_correlation():
    a = pd.DataFrame(np.arange(16).reshape(4, 4), index=list("wxyz"), columns=list("wxyz"))
    r = analysis.rank_correlation(a, a**2)
    assert r["spearman"] == pytest.approx(1) and r["n_pairs"] == 6
    assert analysis.rank_correlation(a, -a)["spearman"] == pytest.approx(-1)


def test_map_overlaps_known_geometry(tmp_path, small_shards):
    left = np.zeros((4, 4), np.float32)
    left[:, :2] = 1
    right = np.zeros((4, 4), np.float32)
    right[:, 2:] = 1
    corner = blob(4, 4, 0, 0)
    far = blob(4, 4, 3, 3)
    images = []
    for _ in range(3):
        images.append([("table", left), ("chair", right), ("sun", corner), ("sky", corner)])
    images.append([("sun", far), ("sky", corner), ("x", right)])
    path = build_store(tmp_path / "s.zarr", images)
    t = store.map_table(path)
    labels = np.where(t["lemma"] == "x", None, t["lemma"]).astype(object)
    ov = analysis.map_overlaps(path, labels, t["image"].to_numpy(), block=100)  # chance pairs come from one block
    tc = ov.pair("table", "chair")
    assert tc["n"] == 3 and tc["overlap"] == pytest.approx(0) and tc["touch"] == 1 and tc["iou"] == 0
    ss = ov.pair("sky", "sun")
    assert ss["n"] == 4 and ss["overlap"] == pytest.approx(3 / 4) and ss["touch"] == pytest.approx(3 / 4)
    assert ov.pair("chair", "table")["n"] == 3
    # chance pairs: other images' maps; for table/chair the geometry is the same in every image
    assert tc["n_chance"] > 0 and tc["chance_overlap"] == pytest.approx(0)
    # chance pairs are (sky of image k, sun of image k+1) cyclically: only the far sun misses
    assert ss["n_chance"] == 4 and ss["chance_overlap"] == pytest.approx(3 / 4)
    m = ov.matrix("overlap")
    assert m.loc["sun", "sky"] == m.loc["sky", "sun"] == pytest.approx(0.75)
    # the same through small blocks
    ov2 = analysis.map_overlaps(store.iter_map_blocks(path, block=3, whole_images=True), labels, t["image"].to_numpy())
    assert ov2.pair("sky", "sun")["overlap"] == pytest.approx(0.75)
    # images 0-2 as one prompt's seeds: no chance pairs among them
    image = t["image"].to_numpy()
    ov3 = analysis.map_overlaps(path, labels, image, groups=np.where(image < 3, 0, 1), block=100)
    assert ov3.pair("table", "chair")["n_chance"] == 0 and ov3.pair("table", "chair")["n"] == 3
    assert ov3.pair("sky", "sun")["n_chance"] <= 2


# --------------------------------------------------------------------------- semantics


def test_zipf_fit_and_lemma_counts():
    fit = analysis.zipf_fit([600 / r**1.5 for r in range(1, 100)])
    assert fit["exponent"] == pytest.approx(1.5) and fit["r2"] == pytest.approx(1)
    chunks = pd.DataFrame({"prompt_id": [0, 0, 1, 2], "lemma": ["cat", "cat", "cat", "dog"]})
    assert analysis.lemma_counts(chunks).to_dict() == {"cat": 2, "dog": 1}
    assert analysis.lemma_counts(chunks, by_prompt=False)["cat"] == 3


def test_cleaning_summary_counts_what_was_stripped():
    summary, table = analysis.cleaning_summary(["a cat --ar 16:9", "A CAT", "a (dog:1.2) <lora:x:1>", "a bird"])
    assert summary["n_in"] == 4 and summary["n_duplicates"] == 1 and summary["n_changed"] == 2
    kinds = table.set_index("kind")
    assert kinds.loc["flag", "fragments"] == 1 and "--ar 16:9" in kinds.loc["flag", "examples"]
    assert kinds.loc["lora", "prompts"] == 1


def test_prompt_and_chunk_tables(tmp_path):
    path = world_store(tmp_path / "w.zarr", n=4, n_seeds=3)
    pt = analysis.prompt_table(path)
    assert len(pt) == 4 and (pt["n_images"] == 3).all()
    ct = analysis.chunk_table(pt)
    assert len(ct) == pt["n_chunks"].sum() and ct["has_map"].all()


def test_text_embeddings_tfidf_and_projection():
    emb = analysis.text_embeddings(["a red car", "a blue car", "a small dog", "a big dog", "the sun"], model="tfidf")
    assert emb.shape[0] == 5
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, rtol=1e-5)
    assert analysis.project_2d(emb, "pca").shape == (5, 2)
    assert len(set(analysis.cluster_embeddings(emb, 2).tolist())) == 2


def test_map_statistics_one_pass_equals_two(tmp_path, small_shards):
    rng = np.random.default_rng(3)
    names = ["sun", "dog", "tree", None]
    images = [
        [(names[j], rng.random((4, 4)).astype(np.float32)) for j in rng.permutation(4)[: rng.integers(1, 5)]]
        for _ in range(9)
    ]
    images = [[(lab or "style", m) for lab, m in im] for im in images]
    path = build_store(tmp_path / "s.zarr", images)
    t = store.map_table(path)
    labels = np.where(t["lemma"] == "style", None, t["lemma"]).astype(object)
    sp, ov = analysis.map_statistics(path, labels, t["image"].to_numpy(), block=10)
    sp2 = analysis.spatial_statistics(path, labels)
    ov2 = analysis.map_overlaps(path, labels, t["image"].to_numpy(), block=10)
    pd.testing.assert_frame_equal(sp.summary(), sp2.summary())
    pd.testing.assert_frame_equal(ov.pairs, ov2.pairs)
    assert sp.n_maps_read == len(t)


def test_world_chunk_recall_and_ensure_store(tmp_path):
    path = world_store(tmp_path / "w.zarr", n=6, n_seeds=1)
    summary, per_class = analysis.world_chunk_recall(path)
    assert summary["recall"] == 1 and summary["precision"] == 1 and summary["place_recall"] == 0
    assert summary["n_prompts"] == 6 and (per_class["recall"] == 1).all()
    assert generate.ensure_store(path) == path  # an existing store is used as it is
    with pytest.raises(FileNotFoundError, match="make_store_if_missing"):
        generate.ensure_store(tmp_path / "missing.zarr")


def test_world_chunk_misses_say_which_objects_no_chunk_names_and_why(tmp_path, monkeypatch):
    path = world_store(tmp_path / "w.zarr", n=6, n_seeds=1)
    assert analysis.world_chunk_misses(path).empty  # every object is named
    prompts = analysis.prompt_table(path)
    chunks = analysis.chunk_table(prompts)
    first = analysis.world_objects(path).iloc[0]
    lost = (chunks["prompt_id"] == first["prompt_id"]) & (
        analysis.world_labels(chunks["lemma"].to_numpy()) == first["cls"]
    )
    assert lost.sum() == 1
    misses = analysis.world_chunk_misses(path, chunks[~lost])
    assert misses[["prompt_id", "cls", "kind"]].values.tolist() == [[first["prompt_id"], first["cls"], "parser"]]
    # the same object misspelt in the caption: a typo, not the parser's fault
    nouns = [w for w, c in analysis.WORLD_LEMMAS.items() if c == first["cls"]]
    row = prompts["prompt_id"] == first["prompt_id"]
    caption = prompts.loc[row, "caption"].iloc[0]
    for w in nouns:
        caption = re.sub(rf"\b{w}\b", "xqzt", caption)
    prompts.loc[row, "caption"] = caption
    monkeypatch.setattr(analysis_labels, "prompt_table", lambda store: prompts)
    assert analysis.world_chunk_misses(path, chunks[~lost])["kind"].tolist() == ["typo or unknown word"]


def test_ensure_store_rebuilds_its_own_stale_cache_and_never_a_users_store(tmp_path):
    spec = {
        "n_prompts": 3,
        "n_seeds": 1,
        "model": "tiny-random",
        "steps": 2,
        "height": 32,
        "width": 32,
        "map_size": [8, 8],
    }
    path = generate.ensure_store(tmp_path / "cache.zarr", spec)
    assert dict(store.open_group(path).attrs)[generate.CACHE_ATTR] is True
    first = store_summary(path)
    assert first["n_done"] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # up to date: checked, not rebuilt
        assert generate.ensure_store(path, spec) == path
    with pytest.warns(UserWarning, match="rebuilding"):
        generate.ensure_store(path, spec | {"steps": 3})  # as after new weights or settings
    assert dict(store.open_group(path).attrs)["steps"] == 3 and store_summary(path)["n_done"] == 3

    mine = generate.make_world_store(
        tmp_path / "mine.zarr", 3, 1, model="tiny-random", steps=2, height=32, width=32, progress=False
    )
    assert generate.ensure_store(mine, spec | {"steps": 3}) == mine  # not made by ensure_store: used as it is
    assert dict(store.open_group(mine).attrs)["steps"] == 2


@pytest.mark.parametrize("h, w", [(8, 8), (5, 7), (16, 24), (3, 64), (3, 70)])
def test_pair_metrics_on_bit_masks_equal_a_direct_computation(h, w):
    from scipy import ndimage

    from stablesemantics.analysis.overlap import _block_masks, _pair_metrics

    rng = np.random.default_rng(h * w)
    p = rng.random((30, h * w)).astype(np.float32) ** 4  # sparse-ish maps: many pixels below uniform
    p[3] = 0  # an empty map
    p /= np.maximum(p.sum(1, keepdims=True), 1e-12)
    left, right = rng.integers(0, 30, 200), rng.integers(0, 30, 200)
    ov, iou, touch = _pair_metrics(p, _block_masks(p, h, w), left, right)
    cross = ndimage.generate_binary_structure(2, 1)
    for k, (i, j) in enumerate(zip(left, right)):
        a, b = p[i] > 1 / (h * w), p[j] > 1 / (h * w)
        assert ov[k] == pytest.approx(np.minimum(p[i], p[j]).astype(np.float64).sum(), rel=1e-6, abs=1e-9)
        union = (a | b).sum()
        assert (np.isnan(iou[k]) and union == 0) or iou[k] == (a & b).sum() / union
        grown = ndimage.binary_dilation(a.reshape(h, w), structure=cross).reshape(-1)
        assert touch[k] == float((grown & b).any())
