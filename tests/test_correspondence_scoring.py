"""Pairs, box baselines and PCK of the correspondence chapter on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from stablesemantics.correspondence import (
    best_and_worst,
    box_centre,
    headline_numbers,
    keypoint_queries,
    mirrored_scene,
    pck,
    pck_table,
    point_errors,
    reference_sizes,
    same_place_in_box,
    sample_pairs,
    shared_parts,
)
from stablesemantics.correspondence.evaluate import CorrespondenceRun
from stablesemantics.world import WorldConfig, render_scenes


@pytest.fixture(scope="module")
def scenes():
    return render_scenes(40, seed=3, config=WorldConfig(size=64, max_objects=3))


def test_pck_on_known_cases():
    true = np.zeros((4, 2))
    pred = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0], [11.0, 0.0]])  # distances 0, 5, 10, 11
    ref = np.full(4, 100.0)
    assert pck(pred, true, ref, 0.05) == 0.5
    assert pck(pred, true, ref, 0.1) == 0.75
    # a larger box makes the same errors correct
    assert pck(pred, true, np.full(4, 200.0), 0.05) == 0.75


def test_invisible_keypoints_are_not_scored():
    true = np.zeros((3, 2))
    pred = np.array([[0.0, 0.0], [50.0, 50.0], [50.0, 50.0]])
    ref = np.full(3, 20.0)
    assert pck(pred, true, ref, 0.1) == pytest.approx(1 / 3)
    assert pck(pred, true, ref, 0.1, visible=np.array([True, False, False])) == 1.0
    assert np.isnan(pck(pred, true, ref, 0.1, visible=np.zeros(3, bool)))
    table = pd.DataFrame(
        {
            "target_x": [0.0] * 3,
            "target_y": [0.0] * 3,
            "target_visible": [True, False, False],
            "target_x0": [0] * 3,
            "target_y0": [0] * 3,
            "target_x1": [20] * 3,
            "target_y1": [10] * 3,
            "m_x": pred[:, 0],
            "m_y": pred[:, 1],
        }
    )
    out = pck_table(table, ["m"])
    assert out.loc["m", "PCK@0.1"] == 1.0 and out.loc["m", "n"] == 1
    assert reference_sizes(table).tolist() == [20.0] * 3
    assert reference_sizes(table, "image", 64).tolist() == [64.0] * 3


def test_queries_skip_invisible_sources_and_flag_invisible_targets(scenes):
    pairs = sample_pairs(scenes, 6, "same class", seed=1)
    q = keypoint_queries(scenes, pairs)
    assert len(pairs) > 0 and len(q.table)
    for _, r in q.table.iterrows():
        si, oi, sj, oj = pairs[r.pair]
        assert scenes[si].objects[oi].keypoints[r.part][2]  # every query's source point is visible
        assert scenes[sj].objects[oj].keypoints[r.part][2] == r.target_visible
        assert r.flipped == (scenes[si].objects[oi].flip != scenes[sj].objects[oj].flip)
    assert q.scored().table.target_visible.all()


def test_pairs_balance_flips_and_cross_class_pairs_share_parts(scenes):
    pairs = sample_pairs(scenes, 8, "same class", seed=0, flipped_share=0.5)
    flips = [scenes[a].objects[b].flip != scenes[c].objects[d].flip for a, b, c, d in pairs]
    assert sum(flips) == len(pairs) - sum(flips)
    assert all(scenes[a].objects[b].cls == scenes[c].objects[d].cls and a != c for a, b, c, d in pairs)
    cross = sample_pairs(scenes, 4, "cross class", seed=0, min_shared=1)
    for a, b, c, d in cross:
        o, p = scenes[a].objects[b], scenes[c].objects[d]
        assert o.cls != p.cls and o.supercategory == p.supercategory and shared_parts(o.cls, p.cls)
    assert shared_parts("car", "bus") == ("front wheel", "back wheel", "window")
    assert shared_parts("cat", "cup") == ()


def test_a_mirrored_copy_maps_points_to_their_mirror(scenes):
    """Scene → its mirrored copy: the truth is the mirror of every point; the box baseline puts it on the
    wrong side (right only on the box's vertical axis), a mirror-aware prediction is always right."""
    scene = next(s for s in scenes if any(sum(v for *_, v in o.keypoints.values()) >= 4 for o in s.objects))
    k = next(i for i, o in enumerate(scene.objects) if sum(v for *_, v in o.keypoints.values()) >= 4)
    mirror = mirrored_scene(scene)
    assert np.array_equal(mirror.image, scene.image[:, ::-1])
    assert mirrored_scene(mirror).objects[k] == scene.objects[k]
    q = keypoint_queries([scene, mirror], [(0, k, 1, k)]).scored().table
    assert len(q) >= 4 and q.flipped.all()
    assert np.allclose(q.target_x, 64 - q.source_x) and np.allclose(q.target_y, q.source_y)
    src = q[["source_x", "source_y"]].to_numpy()
    boxes_s = q[["source_x0", "source_y0", "source_x1", "source_y1"]].to_numpy(float)
    boxes_t = q[["target_x0", "target_y0", "target_x1", "target_y1"]].to_numpy(float)
    same = same_place_in_box(src, boxes_s, boxes_t)
    # the box baseline keeps the box-relative x; the truth mirrors it about the box's vertical axis
    axis = (boxes_t[:, 0] + boxes_t[:, 2]) / 2
    assert np.allclose(2 * axis - same[:, 0], q.target_x) and np.allclose(same[:, 1], q.target_y)
    mirrored = np.stack([2 * axis - same[:, 0], same[:, 1]], 1)
    table = q.assign(
        same_x=same[:, 0],
        same_y=same[:, 1],
        mirror_x=mirrored[:, 0],
        mirror_y=mirrored[:, 1],
        centre_x=box_centre(boxes_t)[:, 0],
        centre_y=box_centre(boxes_t)[:, 1],
    )
    scores = pck_table(table, ["same", "mirror", "centre"])
    assert scores.loc["mirror", "PCK@0.05"] == 1.0
    far = np.abs(same[:, 0] - q.target_x) > 0.1 * reference_sizes(q)
    assert far.any() and scores.loc["same", "PCK@0.1"] <= 1 - far.mean() + 1e-9


def test_headline_numbers_split_by_kind_and_flip():
    rows = pd.DataFrame(
        {
            "kind": ["same class", "same class", "cross class"],
            "flipped": [True, False, False],
            "target_x": [10.0, 10.0, 10.0],
            "target_y": [10.0] * 3,
            "target_visible": [True] * 3,
            "target_x0": [0] * 3,
            "target_y0": [0] * 3,
            "target_x1": [20] * 3,
            "target_y1": [20] * 3,
            "box centre_x": [10.0, 30.0, 10.0],
            "box centre_y": [10.0] * 3,
        }
    )
    run = CorrespondenceRun(rows, ["box centre"], maps=torch.zeros(0), losses=np.zeros((0, 0)))
    h = headline_numbers(run)
    assert h["box_centre_pck010_all"] == pytest.approx(2 / 3)
    assert h["box_centre_pck005_same_flipped"] == 1.0 and h["box_centre_pck005_same_unflipped"] == 0.0
    assert h["n_cross"] == 1 and h["seconds_per_point"] is None


def test_point_errors_and_the_best_and_worst_queries():
    pred = pd.DataFrame(
        {"m_x": [0.0, 3.0, 1.0, 9.0, 0.0], "m_y": [0.0, 4.0, 0.0, 0.0, 1.0], "target_x": 0.0, "target_y": 0.0},
        index=[10, 11, 12, 13, 14],
    )
    errors = point_errors(pred, "m")
    assert errors.tolist() == [0.0, 5.0, 1.0, 9.0, 1.0]
    # two best (ties in table order), then the two worst in increasing error
    assert best_and_worst(errors, 4) == [10, 12, 11, 13]
    assert best_and_worst(errors, 5) == [10, 12, 11, 13]
    # at least one of each, even for n < 2; nothing for no queries
    assert best_and_worst(errors, 1) == [10, 13]
    assert best_and_worst(errors.iloc[:0], 4) == []
