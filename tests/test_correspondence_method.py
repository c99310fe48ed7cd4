"""The prompt-embedding optimisation (Hedlin et al.) and its transfer, on the tiny random pipeline."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from stablesemantics.correspondence import (
    CorrespondenceConfig,
    DiftConfig,
    crop_boxes,
    crop_images,
    dift_features,
    gaussian_maps,
    keypoint_queries,
    maps_from_crops,
    optimise_embeddings,
    points_to_crop,
    predict_points,
    run_correspondence,
    sample_pairs,
    token_attention,
    transfer_maps,
)
from stablesemantics.correspondence.optimise import map_loss
from stablesemantics.world import WorldConfig, render_scenes

# the tiny pipeline: 32-px images, 16x16 latents, cross-attention at factors 1 and 2
CONFIG = CorrespondenceConfig(
    resolutions=(1,),
    steps=25,
    lr=0.1,
    restarts=1,
    n_crops=2,
    train_crops=4,
    loss="kl",
    timestep=100,
    flip_prob=0.0,
    batch_size=8,
)


@pytest.fixture(scope="module")
def scenes():
    return render_scenes(30, seed=11, config=WorldConfig(size=32, max_objects=2))


def _image(scenes) -> np.ndarray:
    return scenes[0].image[None]


def test_crop_point_and_map_round_trip():
    gen = torch.Generator().manual_seed(0)
    boxes = crop_boxes(3, 32, 0.75, gen, corners_first=True)
    pts = torch.tensor([[12.0, 20.0]] * 3)
    # a Gaussian drawn at the point in each crop, put back on the image, peaks at the point
    in_crop = points_to_crop(pts, boxes, 32)
    placed, covered = maps_from_crops(gaussian_maps(in_crop, 32, 2.0), boxes, 32)
    assert covered.sum() > 0
    peak = predict_points(placed)["argmax"]
    assert np.abs(peak - pts.numpy()).max() <= 1.0
    # a mirrored crop mirrors the image content and the point
    img = torch.zeros(1, 1, 32, 32)
    img[0, 0, 20, 12] = 1.0
    box = torch.tensor([[0.0, 0.0, 32.0]])
    flipped = crop_images(img, box, torch.tensor([True]))
    assert flipped[0, 0, 20, 32 - 1 - 12] == pytest.approx(1.0)
    assert points_to_crop(torch.tensor([[12.5, 20.5]]), box, 32, torch.tensor([True])).tolist() == [[19.5, 20.5]]


def test_map_losses_are_zero_at_the_target_and_positive_elsewhere():
    g = gaussian_maps(torch.tensor([[8.0, 8.0], [4.0, 4.0]]), 16, 2.0)
    other = gaussian_maps(torch.tensor([[12.0, 3.0], [12.0, 12.0]]), 16, 2.0)
    for kind in ("mse", "kl"):
        assert map_loss(g, g, kind).abs().max() < 1e-6
        assert (map_loss(other, g, kind) > 1e-3).all()
    with pytest.raises(ValueError):
        map_loss(g, g, "l1")


def test_token_attention_has_gradients_in_the_conditioning(tiny_pipe):
    emb = torch.randn(2, 77, tiny_pipe.unet.config.cross_attention_dim, requires_grad=True)
    noisy = torch.randn(2, 4, 16, 16)
    maps = token_attention(tiny_pipe.unet, noisy, torch.tensor([100, 100]), emb, CONFIG.capture, 1, 32)
    assert maps.shape == (2, 32, 32) and (maps >= 0).all() and (maps <= 1).all()
    (grad,) = torch.autograd.grad(maps[:, 10, 10].sum(), [emb])
    assert grad.abs().sum() > 0
    # the capture is removed again: the UNet's processors are the plain ones
    assert all(type(p).__name__ == "AttnProcessor2_0" for p in tiny_pipe.unet.attn_processors.values())


def test_optimisation_lowers_the_loss_and_moves_the_peak_to_the_point(tiny_pipe, scenes):
    image = _image(scenes)
    points = np.array([[8.5, 9.5], [24.5, 22.5]], np.float32)
    start = optimise_embeddings(tiny_pipe, image, points, [0, 0], dataclasses.replace(CONFIG, steps=0))
    done = optimise_embeddings(tiny_pipe, image, points, [0, 0], CONFIG)
    assert done.losses.shape == (CONFIG.steps, 2)
    assert (done.losses[-5:].mean(0) < done.losses[:5].mean(0)).all()
    before = predict_points(transfer_maps(tiny_pipe, image, start.embeddings, [0, 0], CONFIG))["argmax"]
    after = predict_points(transfer_maps(tiny_pipe, image, done.embeddings, [0, 0], CONFIG))["argmax"]
    d_before = np.linalg.norm(before - points, axis=1)
    d_after = np.linalg.norm(after - points, axis=1)
    assert d_after.mean() < d_before.mean()
    assert d_after.max() <= 8.0  # within a few latent cells of the point (random weights)


def test_run_correspondence_gives_every_method_on_visible_queries(tiny_pipe, scenes):
    pairs = sample_pairs(scenes, 2, "same class", seed=0, min_side=6)
    queries = keypoint_queries(scenes, pairs)
    config = dataclasses.replace(CONFIG, steps=2)
    run = run_correspondence(tiny_pipe, queries, config, DiftConfig(up_block=0, ensemble=1))
    p = run.predictions
    assert len(p) == int(queries.table.target_visible.sum()) and p.target_visible.all()
    for m in run.methods:
        xy = p[[f"{m}_x", f"{m}_y"]].to_numpy()
        assert np.isfinite(xy).all() and (xy >= 0).all() and (xy <= 32).all()
    assert run.maps.shape == (len(p), 32, 32) and run.seconds_per_point > 0


def test_dift_features_have_the_block_resolution(tiny_pipe, scenes):
    feats = dift_features(tiny_pipe, np.stack([s.image for s in scenes[:2]]), DiftConfig(up_block=1, ensemble=1))
    assert feats.shape[0] == 2 and feats.shape[-1] == 16
    with pytest.raises(ValueError):
        dift_features(tiny_pipe, scenes[0].image[None], DiftConfig(up_block=9))
