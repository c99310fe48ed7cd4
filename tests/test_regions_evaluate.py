"""Region labels from hand-made scenes, and the evaluation functions on inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from stablesemantics import world
from stablesemantics.regions.data import (
    RELATIONS,
    generated_regions,
    region_vocabulary,
    regions_from_scenes,
)
from stablesemantics.regions.evaluate import (
    accuracies,
    caption_metrics,
    evaluate_view_sets,
    fixed_view_sets,
    paper_finding,
    t_sweep,
)
from stablesemantics.regions.model import RegionModel, RegionModelConfig
from stablesemantics.regions.train import ViewInputs
from stablesemantics.regions.views import T_GRID, view_bank


def _obj(cls, colour, size, box, area=50, on=None):
    return world.SceneObject(
        cls=cls,
        colour=colour,
        size=size,
        box=box,
        flip=False,
        keypoints={},
        area=area,
        on=on,
    )


def _scene(objs, place="field"):
    z = np.zeros((64, 64), np.int16)
    return world.Scene(
        image=np.zeros((64, 64, 3), np.uint8),
        place=place,
        objects=objs,
        instance_mask=z,
        class_mask=z,
        relations=[],
        caption="",
        object_spans=[],
    )


def test_relations_and_captions_of_hand_made_scenes():
    scenes = [
        _scene(
            [
                _obj("dog", "red", "small", (0, 40, 10, 50)),
                _obj("tree", "green", "large", (30, 20, 60, 60)),
            ]
        ),
        _scene(
            [
                _obj("cup", "blue", "small", (20, 10, 28, 18), on=1),
                _obj("table", "brown", "large", (10, 18, 40, 40)),
                _obj("sun", "yellow", "medium", (50, 0, 60, 10), area=3),
            ]
        ),  # the sun is hidden: not a region
        _scene([_obj("car", "white", "medium", (10, 10, 30, 30))], place="street"),
    ]
    regs = regions_from_scenes(scenes, min_area=8)
    assert len(regs) == 5 and regs.image_index.tolist() == [0, 0, 1, 1, 2]
    assert [RELATIONS[i] for i in regs.labels["relation"]] == [
        "left of",
        "right of",
        "on",
        "below",
        "alone",
    ]
    assert regs.captions == [
        "a small red dog left of a tree",
        "a large green tree right of a dog",
        "a small blue cup on a table",
        "a large brown table below a cup",
        "a medium white car on a street",
    ]
    assert regs.boxes[1].tolist() == [30, 20, 60, 60]


def test_vocabulary_covers_every_caption():
    vocab = region_vocabulary()
    regs = regions_from_scenes(world.render_scenes(60, seed=3))
    for c in regs.captions:
        assert vocab.decode(vocab.encode(c, 16)) == c


def test_accuracies_ignore_unknown_truth():
    pred = {"class": np.array([1, 2, 3, 4]), "size": np.array([0, 0, 0, 0])}
    truth = {"class": np.array([1, 0, 3, -1]), "size": np.array([-1, -1, -1, -1])}
    acc = accuracies(pred, truth)
    assert acc["class"] == pytest.approx(2 / 3) and math.isnan(acc["size"])


def test_caption_metrics_known_answers():
    refs = [
        "a small red dog left of a tree",
        "a large blue car on a street",
        "a medium green bird above a cloud",
    ]
    perfect = caption_metrics(refs, refs, meteor=False)
    assert perfect["BLEU-4"] == pytest.approx(1.0, abs=1e-6) and perfect["CIDEr"] > 1.0
    assert math.isnan(perfect["METEOR"])  # not asked for
    wrong = caption_metrics(["zebra", "zebra", "zebra"], refs, meteor=False)
    assert wrong["BLEU-4"] == pytest.approx(0.0, abs=1e-6) and wrong["CIDEr"] == pytest.approx(0.0, abs=1e-6)
    unknown = caption_metrics(["x"], [""], meteor=False)
    assert all(math.isnan(v) for v in unknown.values())


def test_fixed_view_sets_index_the_grid():
    sets = fixed_view_sets(T_GRID, [0.0, 0.5, 1.0], 2)
    assert sets.tolist() == [[0, 5, 10], [0, 5, 10]]
    with pytest.raises(ValueError):
        fixed_view_sets(T_GRID, [0.55], 1)


def test_paper_finding_on_hand_made_sweeps():
    ts = [0.0, 0.2, 0.4, 0.5, 0.8, 1.0]
    holds = pd.DataFrame(
        {
            "colour": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
            "size": [0.8, 0.8, 0.7, 0.6, 0.5, 0.4],
            "CIDEr": [1.0, 1.2, 1.5, 1.4, 1.1, 0.9],
        },
        index=pd.Index(ts, name="t"),
    )
    f = paper_finding(holds)
    assert f["best_t"] == {
        "colour": 0.0,
        "size": 0.0,
        "CIDEr": 0.4,
    }  # ties: the smaller t
    assert f["attributes_best_at_small_t"] and f["caption_best_in_middle"] and f["caption_worse_at_t1"]
    fails = holds.assign(size=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], CIDEr=[1.0, 1.1, 1.2, 1.3, 1.4, 1.5])
    f = paper_finding(fails)
    assert f["best_t"]["size"] == 1.0 and not f["attributes_best_at_small_t"]
    assert not f["caption_best_in_middle"] and not f["caption_worse_at_t1"]


class _ColourFromT(RegionModel):
    """A stub whose colour head answers from the single view's t: right only at t = 0."""

    def region(self, views, ts, present):
        r = torch.zeros(ts.shape[0], self.cfg.dim)
        r[:, 0] = ts[:, 0]
        return r


def test_t_sweep_and_view_sets_tables_with_a_stub_model():
    scenes = world.render_scenes(6, seed=11, config=world.WorldConfig(size=32, max_objects=2))
    regs = regions_from_scenes(scenes, min_area=4)
    vocab = region_vocabulary()
    model = _ColourFromT(RegionModelConfig(view_size=16, width=8, dim=16, heads=2, vocab_size=len(vocab)))
    with torch.no_grad():  # colour logits from t alone: label 0 wins at t = 0, label 1 at t >= 0.5
        head = model.heads["colour"]
        head.weight.zero_()
        head.bias.zero_()
    truth = regs.labels["colour"]
    regs.labels["colour"] = np.zeros_like(truth)  # everything is colour 0 ...
    with torch.no_grad():
        head.bias[0] = 1.0  # ... the head says 0 at t = 0 ...
        head.weight[1, 0] = 10.0  # ... and 1 once 10·t > 1
    bank = view_bank(regs.images, regs.image_index, regs.boxes, size=16)
    inputs = ViewInputs(model, bank)
    sweep = t_sweep(model, inputs, regs, vocab, ts=[0.0, 0.5, 1.0], meteor=False)
    assert sweep.index.tolist() == [0.0, 0.5, 1.0]
    assert sweep["colour"].tolist() == [1.0, 0.0, 0.0]
    assert {"class", "size", "relation", "BLEU-4", "METEOR", "CIDEr"} <= set(sweep.columns)
    table = evaluate_view_sets(model, inputs, regs, vocab, fixed=[(0.0, 0.5)], dynamic=[2], meteor=False)
    assert table.index.tolist() == ["fixed (0, 0.5)", "dynamic pHash (n=2)"]
    assert table.loc["fixed (0, 0.5)", "mean t"] == 0.25 and table["n"].tolist() == [
        2,
        2,
    ]


class _FakePipe:
    """Stands in for a diffusers pipeline: 'generates' the render of each prompt's scene."""

    device = torch.device("cpu")

    def __init__(self, scenes):
        self.by_caption = {s.caption: s.image for s in scenes}

    def __call__(self, prompt, **kw):
        return type(
            "Out",
            (),
            {"images": np.stack([self.by_caption[p] for p in prompt]) / 255.0},
        )()


def test_generated_regions_take_boxes_from_the_class_masks():
    scenes = world.render_scenes(5, seed=2, config=world.WorldConfig(size=32, max_objects=2))
    truth_masks = np.stack([s.class_mask for s in scenes])
    regs = generated_regions(_FakePipe(scenes), scenes, lambda images: truth_masks, steps=1, min_area=4)
    assert regs.meta["n_prompted"] == sum(len(s.objects) for s in scenes)
    assert (regs.labels["relation"] == -1).all() and regs.captions == [""] * len(regs)
    for box, i, c in zip(regs.boxes, regs.image_index, regs.labels["class"]):
        ys, xs = np.nonzero(truth_masks[i] == c + 1)
        assert box[0] >= xs.min() and box[2] <= xs.max() + 1 and box[1] >= ys.min() and box[3] <= ys.max() + 1
    np.testing.assert_array_equal(regs.images, np.stack([s.image for s in scenes]))
