"""Tests of MicroWorld: determinism, ground truth consistency, captions, priors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from stablesemantics import world as W
from stablesemantics.world import (
    CLASS_INDEX,
    CLASSES,
    COLOURS,
    PLACE_PHRASES,
    PLACES,
    SIZES,
    Scene,
    WorldConfig,
    noisy_prompt,
    render_object,
    render_scenes,
    sample_scene,
    scene_at,
    true_priors,
)
from stablesemantics.world import layout as world_layout
from stablesemantics.world import sample as world_sample


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return render_scenes(1000, seed=11)


@pytest.fixture(scope="module")
def priors() -> dict[str, pd.DataFrame]:
    return true_priors(n_estimate=3000)


# ----------------------------------------------------------------------------- vocabulary


def test_vocabulary_sizes():
    assert len(CLASSES) >= 16
    assert len({c.supercategory for c in CLASSES.values()}) >= 5
    assert len(COLOURS) >= 8
    assert len(PLACES) >= 5
    assert SIZES == ("small", "medium", "large")
    assert sorted(CLASS_INDEX.values()) == list(range(len(CLASSES)))
    for spec in CLASSES.values():
        assert len(spec.parts) >= 3, spec.name
        assert spec.synonyms[0] == spec.name
        assert all(" " not in w for w in spec.synonyms), spec.synonyms


# ----------------------------------------------------------------------------- determinism


def test_determinism_by_seed():
    a, b = render_scenes(6, seed=7), render_scenes(6, seed=7)
    for x, y in zip(a, b):
        assert np.array_equal(x.image, y.image)
        assert np.array_equal(x.instance_mask, y.instance_mask)
        assert x.caption == y.caption and x.object_spans == y.object_spans
    c = render_scenes(6, seed=8)
    assert any(not np.array_equal(x.image, z.image) for x, z in zip(a, c))
    # any scene of a stream can be regenerated on its own
    assert np.array_equal(scene_at(7, 4).image, a[4].image)
    assert render_scenes(2, seed=7, start=4)[0].caption == a[4].caption


def test_bad_input_raises():
    with pytest.raises(ValueError):
        WorldConfig(size=8)
    with pytest.raises(ValueError):
        WorldConfig(min_objects=3, max_objects=2)
    with pytest.raises(ValueError):
        WorldConfig(places=("moon base",))
    with pytest.raises(TypeError):
        sample_scene(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        render_object("unicorn")
    with pytest.raises(ValueError):
        render_object("car", colour="teal")


def test_image_size_parameter():
    s = sample_scene(np.random.default_rng(0), WorldConfig(size=32, max_objects=2))
    assert s.image.shape == (32, 32, 3) and s.image.dtype == np.uint8
    assert s.instance_mask.shape == (32, 32) and s.instance_mask.dtype == np.int16
    assert 1 <= len(s.objects) <= 2
    big = render_scenes(40, seed=1, config=WorldConfig(size=128))
    small = render_scenes(40, seed=1, config=WorldConfig(size=64))
    ext = lambda ss: np.mean([max(o.box[2] - o.box[0], o.box[3] - o.box[1]) for s in ss for o in s.objects])
    assert 1.6 < ext(big) / ext(small) < 2.4


# ----------------------------------------------------------------------------- ground truth


def test_masks_boxes_consistent(scenes):
    for s in scenes[:400]:
        H, W_ = s.instance_mask.shape
        ids = np.unique(s.instance_mask)
        assert set(ids.tolist()) <= set(range(len(s.objects) + 1))
        assert np.array_equal(s.class_mask == 0, s.instance_mask == 0)
        for i, o in enumerate(s.objects):
            m = s.instance_mask == i + 1
            assert m.sum() == o.area > 0, (s.caption, o.cls)
            assert o.area <= o.full_area
            assert np.all(s.class_mask[m] == CLASS_INDEX[o.cls] + 1)
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= W_ and 0 <= y0 < y1 <= H
            ys, xs = np.nonzero(m)
            assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
            if o.area == o.full_area:  # unoccluded: the box is tight
                assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)


def test_occlusion_later_on_top():
    # two overlapping objects forced with a hand-made placement list
    cfg = WorldConfig()
    rng = np.random.default_rng(0)
    mk = lambda cls, cx: world_layout._Placed(
        cls, "red", "large", False, cx, 32.0, 16.0, 1.0, 0.0, 16.0 * CLASSES[cls].aspect, 16.0, 1.0
    )
    s = world_sample._render(rng, "field", [mk("ball", 26.0), mk("sun", 38.0)], cfg)
    assert s.objects[0].area < s.objects[0].full_area  # the ball is partly hidden
    assert s.objects[1].area == s.objects[1].full_area  # the sun, drawn last, is not
    # the ball's right-hand keypoint ("stripe", u=0.55 -> x ~ 34.8) lies under the sun
    x, y, vis = s.objects[0].keypoints["stripe"]
    assert s.instance_mask[int(y), int(x)] == 2 and vis is False
    assert s.objects[0].keypoints["highlight"][2] is True  # the left side stays visible


def test_keypoints(scenes):
    n_vis = n_all = 0
    for s in scenes[:400]:
        for i, o in enumerate(s.objects):
            assert set(o.keypoints) == set(CLASSES[o.cls].parts)
            x0, y0, x1, y1 = o.box
            for part, (x, y, vis) in o.keypoints.items():
                # thin parts of tiny objects may fall between pixel centres and not render
                tol = 1 if vis else 3
                assert x0 - tol <= x <= x1 + tol and y0 - tol <= y <= y1 + tol, (o.cls, part)
                r, c = int(np.floor(y)), int(np.floor(x))
                if vis:
                    blk = s.instance_mask[max(0, r - 1) : r + 2, max(0, c - 1) : c + 2]
                    assert (blk == i + 1).any()
                    assert s.instance_mask[r, c] <= i + 1
                elif 0 <= r < 64 and 0 <= c < 64 and s.instance_mask[r, c] > i + 1:
                    pass  # hidden under a later object: correctly invisible
                n_vis += vis
                n_all += 1
    assert n_vis / n_all > 0.85
    # alone in the scene, almost every keypoint is visible
    solo = render_scenes(200, seed=5, config=WorldConfig(max_objects=1))
    vis = [v for s in solo for (_, _, v) in s.objects[0].keypoints.values()]
    assert np.mean(vis) > 0.97


def test_flip_mirrors_keypoints():
    img, m = render_object("car", "red", flip=False)
    img_f, m_f = render_object("car", "red", flip=True)
    assert np.array_equal(m[:, ::-1], m_f) or (m[:, ::-1] ^ m_f).sum() <= 0.02 * m.sum()


def test_every_class_in_every_colour():
    for cls in CLASSES:
        for colour, rgb in COLOURS.items():
            img, m = render_object(cls, colour, size="medium")
            assert m.sum() > 30, (cls, colour)
            main = np.all(img[m] == np.asarray(rgb, np.uint8), axis=-1).mean()
            assert main > 0.1, (cls, colour, main)


def test_classes_differ_in_shape():
    rendered = {c: render_object(c, "red", size="large") for c in CLASSES}
    names = list(rendered)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            (ia, ma), (ib, mb) = rendered[names[a]], rendered[names[b]]
            iou = (ma & mb).sum() / (ma | mb).sum()
            # silhouettes differ, and where they are alike (ball / apple) the drawn parts differ
            differ = np.any(ia != ib, axis=-1)[ma | mb].mean()
            assert iou < 0.85 and differ > 0.2, (names[a], names[b], iou, differ)


def test_sizes_are_large_and_ordered(scenes):
    ext = {s: [] for s in SIZES}
    for sc in scenes[:600]:
        for o in sc.objects:
            ext[o.size].append(max(o.box[2] - o.box[0], o.box[3] - o.box[1]))
    means = [np.mean(ext[s]) for s in SIZES]
    assert means[0] < means[1] < means[2]
    assert means[0] >= 10 and means[2] >= 24


def test_relations(scenes):
    for s in scenes[:300]:
        for i, rel, j in s.relations:
            a, b = s.objects[i].box, s.objects[j].box
            if rel == "left of":
                assert a[0] + a[2] < b[0] + b[2]
            elif rel == "right of":
                assert a[0] + a[2] > b[0] + b[2]
            elif rel == "above":
                assert a[1] + a[3] < b[1] + b[3]
            elif rel == "below":
                assert a[1] + a[3] > b[1] + b[3]
            else:
                assert rel == "on"
                # stands on the supporter's top surface (a table top, a chair seat)
                assert b[1] - 2 <= a[3] <= (b[1] + b[3]) / 2 + 2, (a, b)
                assert a[0] < b[2] and b[0] < a[2]
    assert any(r[1] == "on" for s in scenes for r in s.relations)


# ----------------------------------------------------------------------------- captions


def test_caption_spans(scenes):
    for s in scenes[:500]:
        assert s.caption == s.caption.strip() and "  " not in s.caption
        assert len(s.object_spans) == len(s.objects)
        spans = sorted(s.object_spans)
        for (_a0, a1), (b0, _b1) in zip(spans, spans[1:]):
            assert a1 < b0
        for (st, en), o in zip(s.object_spans, s.objects):
            text = s.caption[st:en]
            words = text.split()
            assert len(words) == 3, text
            assert words[1] == o.colour and words[2] == o.noun
            assert o.noun in CLASSES[o.cls].synonyms
            assert s.caption[st - 2 : st] == "a " and (st == 2 or s.caption[st - 3] in " ,")
            assert en == len(s.caption) or s.caption[en] in " ,"
            # each object mentioned exactly once
            assert len(re.findall(rf"\b{re.escape(text)}\b", s.caption)) == 1
        ps, pe = s.place_span
        noun = s.caption[ps:pe]
        assert any(ph.endswith(noun) for ph in PLACE_PHRASES[s.place]) and pe == len(s.caption)
        assert len(s.caption.split()) <= 40


def test_caption_token_length(scenes):
    prompts = pytest.importorskip("stablesemantics.prompts")
    try:
        tok = prompts.load_clip_tokenizer()
    except Exception as e:  # the tokenizer files may be unavailable
        pytest.skip(f"no CLIP tokenizer: {e}")
    longest = max(scenes[:300], key=lambda s: len(s.caption))
    assert len(tok(longest.caption).input_ids) < 60


def test_noisy_prompt_differs(scenes):
    rng = np.random.default_rng(0)
    noisy = [noisy_prompt(s, rng) for s in scenes[:300]]
    assert all(n != s.caption for n, s in zip(noisy, scenes))
    joined = "\n".join(noisy)
    assert "--" in joined and "(" in joined
    assert any(n.isupper() for n in noisy)
    assert any("trending on artstation" in n.lower() or "4k" in n.lower() for n in noisy)
    # the nouns survive (maybe wrapped in weights) in most prompts
    kept = np.mean([all(o.noun.lower() in n.lower() for o in s.objects) for n, s in zip(noisy, scenes)])
    assert kept > 0.75


# ----------------------------------------------------------------------------- priors


def test_priors_shapes(priors):
    cp = priors["class_place"]
    assert list(cp.index) == list(CLASSES) and list(cp.columns) == list(PLACES)
    assert np.allclose(cp.sum(axis=0), 1.0)
    assert set(priors) >= {"class_place", "vertical", "cooccurrence"}
    v = priors["vertical"]
    assert ((v["mean_y"] > 0) & (v["mean_y"] < 1)).all()
    co = priors["cooccurrence"]
    assert np.allclose(co.values, co.values.T)


def test_sampler_follows_place_prior(scenes, priors):
    cp = priors["class_place"]
    truth = cp.values
    counts = np.zeros_like(truth)
    for s in scenes:
        for o in s.objects:
            ci, pi = CLASS_INDEX[o.cls], PLACES.index(s.place)
            assert truth[ci, pi] > 0, (o.cls, s.place)  # impossible pairs never occur
            counts[ci, pi] += 1
    emp = counts / counts.sum(axis=0, keepdims=True)
    r = np.corrcoef(emp.ravel(), truth.ravel())[0, 1]
    assert r > 0.8, r


def test_vertical_prior_from_masks(scenes, priors):
    ys: dict[str, list[float]] = {c: [] for c in CLASSES}
    for s in scenes:
        for i, o in enumerate(s.objects):
            yy, _ = np.nonzero(s.instance_mask == i + 1)
            ys[o.cls].append(yy.mean() / s.image.shape[0])
    emp = pd.Series({c: np.mean(v) for c, v in ys.items() if len(v) >= 10})
    assert emp["sun"] < 0.35 and emp["dog"] > 0.6 and emp["sun"] + 0.3 < emp["dog"]
    truth = priors["vertical"]["mean_y"].loc[emp.index]
    assert np.corrcoef(emp.values, truth.values)[0, 1] > 0.9


def test_cooccurrence_prior(scenes, priors):
    pres = pd.DataFrame([{o.cls: 1 for o in s.objects} for s in scenes], columns=list(CLASSES)).fillna(0)
    # within a place, declared partner pairs co-occur more than chance, other pairs do not
    lifts: dict[bool, list[float]] = {True: [], False: []}
    for place in PLACES:
        sub = pres[[s.place == place for s in scenes]].values
        p = sub.mean(0)
        joint = sub.T @ sub / len(sub)
        for a in range(len(CLASSES)):
            for b in range(a + 1, len(CLASSES)):
                if p[a] > 0.05 and p[b] > 0.05:
                    pair = tuple(sorted((list(CLASSES)[a], list(CLASSES)[b])))
                    declared = any(tuple(sorted(k)) == pair for k in W.PAIRS)
                    lifts[declared].append(joint[a, b] / (p[a] * p[b]))
    assert len(lifts[True]) >= 5
    assert np.mean(lifts[True]) > 1.2 and np.mean(lifts[True]) > np.mean(lifts[False]) + 0.4
    emp = pres.T.dot(pres) / len(pres)
    r = np.corrcoef(emp.values.ravel(), priors["cooccurrence"].values.ravel())[0, 1]
    assert r > 0.9
