"""The region model's shapes and invariances, its training (loss falls) and exact resumption."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from stablesemantics import world
from stablesemantics.regions.data import region_vocabulary, regions_from_scenes
from stablesemantics.regions.model import RegionModel, RegionModelConfig, t_embedding
from stablesemantics.regions.train import (
    RegionTraining,
    ViewInputs,
    sample_views,
    train_region_model,
)
from stablesemantics.regions.views import view_bank

VOCAB = region_vocabulary()


def _tiny_vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )


def _cfg(**kw) -> RegionModelConfig:
    return RegionModelConfig(view_size=16, width=8, dim=32, heads=2, vocab_size=len(VOCAB), **kw)


def _inputs(model: RegionModel, b: int = 3, n: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (b, n, 16, 16, 3), generator=g, dtype=torch.uint8)
    masks = torch.rand((b, n, 16, 16), generator=g)
    return model.encoder.prepare(pixels, masks)


@pytest.mark.parametrize("encoder", ["conv", "vae"])
def test_output_shapes(encoder):
    torch.manual_seed(0)
    model = RegionModel(_cfg(encoder=encoder), vae=_tiny_vae() if encoder == "vae" else None)
    x = _inputs(model)
    caps = torch.ones(3, 12, dtype=torch.long)
    out = model(x, torch.tensor([[0.0, 0.5]] * 3), torch.ones(3, 2, dtype=torch.bool), caps)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "class": (3, 20),
        "colour": (3, 11),
        "size": (3, 3),
        "relation": (3, 6),
        "caption": (3, 11, len(VOCAB)),
    }
    gen = model.decoder.generate(model.region(x, torch.zeros(3, 2), torch.ones(3, 2, dtype=torch.bool)))
    assert gen.shape == (3, 12) and bool((gen[:, 0] == 1).all())


def test_vae_encoder_is_frozen_and_not_saved():
    vae = _tiny_vae()
    model = RegionModel(_cfg(encoder="vae"), vae=vae)
    assert not any(k.startswith("encoder.vae") for k in model.state_dict())
    assert all(not p.requires_grad for p in vae.parameters())
    assert _inputs(model).shape == (
        3,
        2,
        5,
        8,
        8,
    )  # 4 latent channels + the pooled box mask at 16 / 2


def test_vae_encoder_needs_a_vae():
    with pytest.raises(ValueError):
        RegionModel(_cfg(encoder="vae"))


def test_padded_view_slots_do_not_matter_and_t_does():
    torch.manual_seed(0)
    model = RegionModel(_cfg()).eval()
    x = _inputs(model, b=2, n=3)
    present = torch.tensor([[True, True, False], [True, False, False]])
    ts = torch.tensor([[0.0, 0.4, 0.9], [0.0, 0.2, 0.3]])
    r = model.region(x, ts, present)
    x2 = x.clone()
    x2[0, 2] = torch.randn_like(x2[0, 2])
    x2[1, 1:] = 0
    ts2 = ts.clone()
    ts2[0, 2] = 0.1
    torch.testing.assert_close(model.region(x2, ts2, present), r)
    ts3 = ts.clone()
    ts3[0, 1] = 1.0
    assert not torch.allclose(model.region(x, ts3, present)[0], r[0])


def test_t_embedding():
    e = t_embedding(torch.tensor([0.0, 0.5]), 8)
    assert e.shape == (2, 8)
    torch.testing.assert_close(e[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert e[1, 0] == pytest.approx(1.0)  # sin(π·0.5)


def test_sample_views_tight_first_distinct_candidates():
    idx, present = sample_views(
        np.random.default_rng(0),
        batch=200,
        n_candidates=10,
        n_random=2,
        view_dropout=0.0,
    )
    assert (idx[:, 0] == 0).all() and present.all()
    assert ((idx[:, 1:] >= 1) & (idx[:, 1:] <= 10)).all() and (idx[:, 1] != idx[:, 2]).all()
    assert len(np.unique(idx[:, 1:])) == 10  # every candidate gets drawn
    _, present = sample_views(
        np.random.default_rng(0),
        batch=200,
        n_candidates=10,
        n_random=2,
        view_dropout=1.0,
    )
    counts = present.sum(1)
    assert counts.min() == 1 and counts.max() == 3 and set(counts.tolist()) == {1, 2, 3}


@pytest.fixture(scope="module")
def tiny_data():
    scenes = world.render_scenes(24, seed=7, config=world.WorldConfig(size=32, max_objects=2))
    regions = regions_from_scenes(scenes, min_area=4)
    return regions, view_bank(regions.images, regions.image_index, regions.boxes, size=16)


def _train_cfg(**kw) -> RegionTraining:
    base = {
        "steps": 8,
        "batch": 8,
        "lr": 3e-3,
        "warmup": 2,
        "log_every": 2,
        "checkpoint_every": 4,
        "threads": 1,
    }
    return RegionTraining(**(base | kw))


def test_training_lowers_the_loss(tiny_data):
    regions, bank = tiny_data
    torch.manual_seed(0)
    model = RegionModel(_cfg())
    res = train_region_model(model, regions, bank, VOCAB, _train_cfg(steps=200, batch=16, log_every=20))
    assert len(res.losses) == 10 and res.log_steps[-1] == 200
    assert res.losses[-1] < 0.5 * res.losses[0]


def test_resumed_training_equals_uninterrupted(tiny_data, tmp_path):
    regions, bank = tiny_data
    torch.manual_seed(0)
    a = RegionModel(_cfg())
    init = {k: v.clone() for k, v in a.state_dict().items()}
    full = train_region_model(a, regions, bank, VOCAB, _train_cfg(steps=8))

    ckpt = tmp_path / "regions.pt"
    b = RegionModel(_cfg())
    b.load_state_dict(init)
    train_region_model(b, regions, bank, VOCAB, _train_cfg(steps=8, checkpoint=str(ckpt)), stop_at=5)
    c = RegionModel(_cfg())  # a new process would start from fresh weights: the checkpoint must restore them
    resumed = train_region_model(c, regions, bank, VOCAB, _train_cfg(steps=8, checkpoint=str(ckpt)))
    assert resumed.resumed_from == 5
    assert resumed.losses == full.losses
    for k, v in a.state_dict().items():
        torch.testing.assert_close(c.state_dict()[k], v, rtol=0, atol=0)
    changed = any(not torch.equal(init[k], v) for k, v in a.state_dict().items())
    assert changed


def test_resume_refuses_other_settings(tiny_data, tmp_path):
    regions, bank = tiny_data
    ckpt = tmp_path / "regions.pt"
    train_region_model(
        RegionModel(_cfg()),
        regions,
        bank,
        VOCAB,
        _train_cfg(checkpoint=str(ckpt)),
        stop_at=2,
    )
    with pytest.raises(ValueError, match="lr"):
        train_region_model(
            RegionModel(_cfg()),
            regions,
            bank,
            VOCAB,
            _train_cfg(checkpoint=str(ckpt), lr=1e-2),
        )


def test_cached_and_uncached_inputs_agree(tiny_data):
    _, bank = tiny_data
    model = RegionModel(_cfg(encoder="vae"), vae=_tiny_vae())
    cached, lazy = ViewInputs(model, bank), ViewInputs(model, bank, cache=False)
    rows, views = np.array([3, 0, 5]), np.array([[0, 4], [2, 10], [1, 1]])
    x1, t1 = cached.get(rows, views)
    x2, _ = lazy.get(rows, views)
    torch.testing.assert_close(x1, x2)
    torch.testing.assert_close(t1, torch.tensor([[0.0, 0.4], [0.2, 1.0], [0.1, 0.1]]))
