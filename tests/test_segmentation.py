"""Map → mask, the metrics (against hand-computed cases), refinement, and the benchmark helpers."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from stablesemantics import evaluate, training, world
from stablesemantics.capture import minmax_scale_maps
from stablesemantics.cli import app
from stablesemantics.images import images_to_tensor, tensor_to_images

# ----------------------------------------------------------------------------- metrics by hand


def test_iou_hand_cases():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert evaluate.iou(a, b) == 1.0  # both empty
    a[0, :] = True  # 4 pixels
    b[:, 0] = True  # 4 pixels, 1 shared
    assert evaluate.iou(a, b) == pytest.approx(1 / 7)
    assert evaluate.iou(a, a) == 1.0
    assert evaluate.iou(a, ~a) == 0.0


def test_object_and_class_iou_hand_case():
    # three objects on 1x4 "images": cat 2 px predicted over 1 true (IoU 1/2), cat exact 1 px
    # (IoU 1), dog 4 px predicted over 2 true (IoU 1/2)
    pred = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]], [[1, 1, 1, 1]]], bool)
    truth = np.array([[[1, 0, 0, 0]], [[1, 0, 0, 0]], [[1, 1, 0, 0]]], bool)
    np.testing.assert_allclose(evaluate.object_ious(pred, truth), [0.5, 1.0, 0.5])
    per_class = evaluate.class_ious(pred, truth, ["cat", "cat", "dog"])
    assert per_class == pytest.approx({"cat": 2 / 3, "dog": 0.5})  # pooled: (1 + 1) / (2 + 1)
    scores = evaluate.mask_scores(pred, truth, ["cat", "cat", "dog"])
    assert scores["object_miou"] == pytest.approx(2 / 3)
    assert scores["class_miou"] == pytest.approx((2 / 3 + 0.5) / 2)


def test_confusion_and_semantic_miou_hand_case():
    truth = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    cm = evaluate.confusion_matrix(pred, truth, 4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    ious = evaluate.ious_from_confusion(cm)
    # class 0: tp 1, fp 1 (pred 0 where 2), fn 1 -> 1/3; class 1: 2 / 3; class 2: 1 / 2; class 3 absent
    np.testing.assert_allclose(ious[:3], [1 / 3, 2 / 3, 1 / 2])
    assert np.isnan(ious[3])
    scores = evaluate.semantic_scores(pred, truth, names=["bg", "a", "b", "c"])
    assert scores["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert scores["miou_objects"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert scores["pixel_accuracy"] == pytest.approx(4 / 6)
    assert set(scores["per_class"]) == {"bg", "a", "b"}
    with pytest.raises(ValueError):
        evaluate.confusion_matrix(np.array([5]), np.array([0]), 4)


def test_miou_by_threshold_matches_object_ious():
    rng = np.random.default_rng(0)
    maps = rng.random((5, 8, 8))
    masks = rng.random((5, 8, 8)) > 0.6
    got = evaluate.miou_by_threshold(maps, masks, np.array([0.5]))[0]
    want = evaluate.object_ious(minmax_scale_maps(maps) >= 0.5, masks).mean()
    assert got == pytest.approx(want)


# ----------------------------------------------------------------------------- map -> mask


def test_otsu_separates_two_modes():
    v = np.r_[np.full(40, 0.1), np.full(10, 0.85)]
    t = evaluate.otsu_threshold(v)
    assert 0.1 < t <= 0.85
    assert evaluate.otsu_threshold(np.full(10, 0.3)) == 0.5  # constant: no cut


def test_binarise_methods_on_a_blob():
    yy, xx = np.mgrid[:32, :32]
    blob = np.exp(-((yy - 12) ** 2 + (xx - 20) ** 2) / (2 * 4.0**2))
    truth = blob > 0.5
    maps = np.stack([blob, blob * 3 + 1])  # the scale and offset of a map do not matter
    for method in evaluate.BINARISATIONS:
        masks, used = evaluate.binarise_maps(maps, method, images=None, select_with="morph")
        assert masks.shape == maps.shape and used.shape == (2,)
        np.testing.assert_array_equal(masks[0], masks[1])
        assert evaluate.iou(masks[0], truth) > 0.3, method
    _, used = evaluate.binarise_maps(maps, "adaptive", select_with="morph")
    assert set(used) <= set(evaluate.ADAPTIVE_THRESHOLDS)
    with pytest.raises(ValueError):
        evaluate.binarise_maps(maps, "median")


def test_refinements_repair_a_noisy_square():
    image = np.full((32, 32, 3), 30, np.uint8)
    image[8:24, 8:24] = (220, 40, 40)
    truth = np.zeros((32, 32), bool)
    truth[8:24, 8:24] = True
    rng = np.random.default_rng(1)
    noisy = truth ^ (rng.random((32, 32)) < 0.08)
    morph = evaluate.refine_masks(noisy[None], method="morph")[0]
    assert evaluate.iou(morph, truth) > evaluate.iou(noisy, truth)
    assert evaluate.refine_masks(noisy[None], method="none")[0].tolist() == noisy.tolist()
    assert evaluate.resolve_refinement("auto") in ("crf", "morph")
    if evaluate.crf_available():
        crf = evaluate.refine_masks(noisy[None], image[None], method="crf")[0]
        assert evaluate.iou(crf, truth) > 0.95
    with pytest.raises(ValueError):
        evaluate.refine_masks(noisy[None], method="crf")  # the CRF needs the image


def test_synthetic_class_masks_resolve_overlaps():
    images = np.zeros((1, 8, 8, 3), np.uint8)
    a = np.zeros((8, 8))
    a[:, :5], a[:, :3] = 1.0, 2.0  # strongest on the left
    b = np.zeros((8, 8))
    b[:, 3:], b[:, 6:] = 1.0, 2.0  # strongest on the right
    out = evaluate.synthetic_class_masks(
        images, np.stack([a, b]), ["dog", "cat"], [0, 0], method="global", refinement="none", threshold=0.4
    )
    dog, cat = world.CLASS_INDEX["dog"] + 1, world.CLASS_INDEX["cat"] + 1
    assert out.shape == (1, 8, 8) and out.dtype == np.int16
    assert (out[0, :, :3] == dog).all() and (out[0, :, 6:] == cat).all()
    # overlap columns 3-4: dog's normalised map is 0.5 there, cat's 0.5 too -> the first wins
    assert set(np.unique(out)) <= {dog, cat}


def test_baselines_and_segmenter_masks():
    masks = np.zeros((2, 8, 8), bool)
    masks[0, 2:6, 2:6] = True
    masks[1, :, :4] = True
    base = evaluate.baseline_scores(masks, ["dog", "cat"])
    assert base["uniform"]["object_miou"] == pytest.approx((16 / 64 + 32 / 64) / 2)
    assert 0 < base["centre prior"]["object_miou"] <= 1
    class_masks = np.zeros((1, 8, 8), np.int16)
    class_masks[0, :2] = world.CLASS_INDEX["cat"] + 1
    obj = evaluate.segmenter_object_masks(class_masks, ["cat", "dog"], [0, 0])
    assert obj[0].sum() == 16 and obj[1].sum() == 0


# ----------------------------------------------------------------------------- pipelines (tiny random)


def test_levels_windows_and_random_weights(tiny_pipe):
    levels = evaluate.cross_attention_levels(tiny_pipe.unet)
    assert ("mid", 2) in levels and ("down", 1) in levels
    first, last = evaluate.window_timesteps(tiny_pipe, steps=10, strength=0.5, t_range=(0.0, 1.0))
    assert first > last and first <= 500
    rand = evaluate.random_weights_pipeline(tiny_pipe, seed=3)
    p0 = next(tiny_pipe.unet.parameters())
    p1 = next(rand.unet.parameters())
    assert p0.shape == p1.shape and not np.allclose(p0.detach().numpy(), p1.detach().numpy())
    assert rand.vae is tiny_pipe.vae


def test_benchmark_helpers_run_on_tiny_pipeline(tiny_pipe):
    from stablesemantics.capture import CaptureConfig

    scenes = world.render_scenes(2, seed=0, config=world.WorldConfig(size=32, max_objects=2))
    sweep = evaluate.localisation_sweep(
        tiny_pipe,
        scenes,
        {"all": CaptureConfig(), "up, t=300": (CaptureConfig(blocks=("up",)), 300)},
        strength=0.5,
        steps=2,
    )
    assert list(sweep.index) == ["all", "up, t=300"] and sweep["best_global_miou"].between(0, 1).all()
    assert sweep["timestep"].tolist()[1] == 300

    probe = evaluate.noised_scene_maps(tiny_pipe, scenes, timestep=500, capture=CaptureConfig(resolutions=(2,)))
    assert probe.maps.shape == probe.masks.shape and probe.maps.shape[1:] == (32, 32)
    assert probe.classes == [o.cls for s in scenes for o in s.objects]
    again = evaluate.noised_scene_maps(tiny_pipe, scenes, timestep=500, capture=CaptureConfig(resolutions=(2,)))
    np.testing.assert_allclose(probe.maps, again.maps, rtol=1e-5)  # same seed, same noise
    with pytest.raises(ValueError):
        evaluate.noised_scene_maps(tiny_pipe, scenes, capture=CaptureConfig(t_range=(0.0, 0.5)))

    om = evaluate.rendered_scene_maps(tiny_pipe, scenes, strength=0.5, steps=2)
    images = world.stack_images(scenes)[om.scene_index]
    table = evaluate.evaluate_mask_methods(om.maps, om.masks, om.classes, images, refinements=("none", "morph"))
    assert len(table) == 6 and table["object_miou"].between(0, 1).all()

    gen = evaluate.generated_object_maps(tiny_pipe, scenes, steps=2, guidance=2.0)
    assert gen.images.shape == (2, 32, 32, 3) and gen.images.dtype == np.uint8
    assert gen.maps.shape[1:] == (32, 32) and len(gen.classes) == len(gen.maps) == len(gen.image_index)
    masks = evaluate.synthetic_class_masks(gen.images, gen.maps, gen.classes, gen.image_index, refinement="morph")
    assert masks.shape == (2, 32, 32)

    small_images, small_masks = evaluate.resize_pairs(gen.images, masks, 16)
    assert small_images.shape == (2, 16, 16, 3) and small_masks.shape == (2, 16, 16)
    model = training.train_segmenter(
        training.SegmenterTraining(steps=2, batch=2, width=8, background_weight=0.2, flip=True, degrade=0.5),
        images=small_images,
        masks=small_masks,
    )
    scores = evaluate.evaluate_segmenter(model, small_images, small_masks)
    assert 0 <= scores["miou"] <= 1 and scores["per_class"]


def test_grid_ceiling_maps_are_exact_on_aligned_blocks_and_lossy_on_small_objects():
    masks = np.zeros((2, 16, 16), bool)
    masks[0, 4:12, 4:12] = True  # aligned with a 4x4 grid: pooling loses nothing
    masks[1, 5, 5] = True  # one pixel: a quarter of a 4x4 cell
    ceiling = evaluate.grid_ceiling_maps(masks, (4, 4))
    assert ceiling.shape == masks.shape
    best0, _ = evaluate.best_threshold_miou(ceiling[:1], masks[:1])
    assert best0 > 0.75  # bilinear upsampling blurs the block's edge a little
    best1, _ = evaluate.best_threshold_miou(ceiling[1:], masks[1:])
    assert best1 < 0.5  # a 16-pixel cell cannot outline one pixel


def test_degrade_images_blurs_the_chosen_share_and_keeps_the_range():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-1, 1, (8, 3, 16, 16))).float()  # white noise: all high frequencies
    assert torch.equal(training.degrade_images(x, np.random.default_rng(1), 0.0), x)
    y = training.degrade_images(x, np.random.default_rng(1), 1.0)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1

    def roughness(t):  # mean absolute difference of horizontal neighbours
        return (t[..., 1:] - t[..., :-1]).abs().mean(dim=(1, 2, 3))

    assert (roughness(y) < 0.7 * roughness(x)).all()  # every image was blurred
    half = training.degrade_images(x, np.random.default_rng(2), 0.5)
    changed = [(not torch.equal(half[i], x[i])) for i in range(len(x))]
    assert 0 < sum(changed) < len(x)


def test_tensor_to_images_inverts_images_to_tensor():
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    assert np.array_equal(tensor_to_images(images_to_tensor(images)), images)


def test_interrupted_segmenter_training_resumes_to_the_same_weights(tmp_path):
    cfg = training.SegmenterTraining(
        steps=6, batch=2, width=8, image_size=32, flip=True, degrade=0.5, background_weight=0.3
    )
    whole = training.train_segmenter(cfg)

    class Stop(Exception):
        pass

    def stop_at_five(record):
        if record["step"] == 5:
            raise Stop

    ckpt = tmp_path / "seg.pt"
    with pytest.raises(Stop):
        training.train_segmenter(cfg, ckpt=ckpt, ckpt_every=2, log_every=1, progress=stop_at_five)
    assert torch.load(ckpt, weights_only=False)["step"] == 4  # the last checkpoint before the stop
    resumed = training.train_segmenter(cfg, ckpt=ckpt, ckpt_every=2)
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    fresh = training.train_segmenter(training.SegmenterTraining(steps=6, batch=2, width=8, image_size=32, seed=1))
    assert not torch.equal(fresh.head.weight, whole.head.weight)  # the comparison can tell models apart

    with pytest.raises(ValueError, match="another configuration"):
        training.train_segmenter(training.SegmenterTraining(steps=7, batch=2, width=8, image_size=32), ckpt=ckpt)
    with pytest.raises(ValueError, match="rendered scenes"):
        training.train_segmenter(
            cfg, images=np.zeros((2, 32, 32, 3), np.uint8), masks=np.zeros((2, 32, 32), np.int16), ckpt=ckpt
        )


def test_reference_recipe_is_the_committed_segmenters():
    """``make model`` trains with the recipe the committed reference segmenter records."""
    recorded = json.loads((evaluate.REFERENCE_DIR / "metrics.json").read_text())["config"]
    assert dataclasses.asdict(training.REFERENCE_TRAINING) == recorded


def test_train_segmenter_command_writes_model_and_metrics(tmp_path):
    out, ckpt_dir = tmp_path / "seg", tmp_path / "ckpt"
    args = ["train", "segmenter", "--steps", "2", "--batch", "2", "--width", "8", "--image-size", "32", "--no-flip"]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--ckpt-dir", str(ckpt_dir)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    want = dataclasses.replace(training.REFERENCE_TRAINING, steps=2, batch=2, width=8, image_size=32, flip=False)
    assert metrics["config"] == dataclasses.asdict(want) and json.loads(result.output) == metrics
    assert (out / "model.safetensors").exists() and not (ckpt_dir / "segmenter.pt").exists()
    assert evaluate.load_segmenter(out).head.in_channels == 8
