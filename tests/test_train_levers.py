"""MicroSD's training levers: warm start, a weight average, min-SNR-γ, v-prediction, per-token grounding.

Each is checked against what it must do (not only that it runs): a warm start begins at the
given weights, the average lags behind the trained weights, the weights follow the formula of
Hang et al., the v target is the one the scheduler samples with, per-token rows cover exactly the
phrase's tokens, and a warm-started, averaged run resumes bit for bit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from stablesemantics import world
from stablesemantics.prompts.clip_tokenizer import load_clip_tokenizer
from stablesemantics.training import TrainConfig, make_batch, train, train_noise_scheduler
from stablesemantics.training.config import check_config
from stablesemantics.training.data import TOKENS_PER_PHRASE
from stablesemantics.training.ema import WeightAverage
from stablesemantics.training.objective import denoising_loss, denoising_target, min_snr_weights

TOY = dict(
    image_size=32,
    max_objects=2,
    vae_channels=(8, 16),
    vae_steps=3,
    vae_batch=4,
    vae_crop=16,
    text_hidden=32,
    text_layers=1,
    unet_channels=(16, 32, 32),
    unet_steps=3,
    batch=4,
    warmup=1,
    dataset_scenes=16,
    eval_every=2,
    eval_scenes=4,
    eval_timesteps=(400,),
    ckpt_every=1,
)


@pytest.fixture(autouse=True)
def _keep_threads(monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    """A toy MicroSD trained from scratch: the start of the warm-start tests."""
    root = tmp_path_factory.mktemp("toy")
    torch.set_num_threads(torch.get_num_threads())
    return train(TrainConfig(out=str(root / "model"), ckpt_dir=str(root / "ckpt"), **TOY))


def test_min_snr_weights_follow_the_formula():
    sched = train_noise_scheduler()
    t = torch.tensor([0, 100, 400, 999])
    a = sched.alphas_cumprod[t]
    snr = a / (1 - a)
    eps = min_snr_weights(sched, t, 5.0, "epsilon")
    v = min_snr_weights(sched, t, 5.0, "v_prediction")
    torch.testing.assert_close(eps, torch.minimum(snr, torch.tensor(5.0)) / snr)
    torch.testing.assert_close(v, torch.minimum(snr, torch.tensor(5.0)) / (snr + 1))
    assert eps[0] < 0.1 and eps[-1] == 1.0, "low-noise steps are down-weighted, high-noise ones kept"
    assert min_snr_weights(sched, t, 0.0, "epsilon") is None


def test_weighted_loss_is_the_weighted_mean_of_per_sample_errors():
    pred, target = torch.zeros(2, 4, 3, 3), torch.ones(2, 4, 3, 3)
    target[1] *= 2
    assert denoising_loss(pred, target, None).item() == pytest.approx(2.5)
    assert denoising_loss(pred, target, torch.tensor([1.0, 0.0])).item() == pytest.approx(0.5)


def test_v_target_is_what_the_sampler_inverts():
    sched = train_noise_scheduler()
    x0, noise = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    t = torch.tensor([10, 500, 990])
    v = denoising_target(sched, x0, noise, t, "v_prediction")
    a = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(v, a.sqrt() * noise - (1 - a).sqrt() * x0)
    noisy = sched.add_noise(x0, noise, t)
    torch.testing.assert_close(a.sqrt() * noisy - (1 - a).sqrt() * v, x0, atol=1e-5, rtol=0)  # x0 back from v
    assert denoising_target(sched, x0, noise, t, "epsilon") is noise
    with pytest.raises(ValueError, match="prediction type"):
        denoising_target(sched, x0, noise, t, "sample")


def test_weight_average_lags_and_round_trips():
    net = torch.nn.Linear(3, 2)
    avg = WeightAverage({"net": net}, decay=0.99)
    start = avg.modules["net"].weight.clone()
    for _ in range(50):
        with torch.no_grad():
            net.weight.add_(0.1)
        avg.update({"net": net})
    moved = avg.modules["net"].weight - start
    assert (moved > 0).all() and (moved < net.weight - start).all(), "the average moves, less than the weights"
    again = WeightAverage({"net": torch.nn.Linear(3, 2)}, decay=0.99)
    again.load_state_dict(avg.state_dict())
    assert again.updates == 50 and torch.equal(again.modules["net"].weight, avg.modules["net"].weight)
    assert not any(p.requires_grad for p in avg.modules["net"].parameters())


def test_per_token_rows_cover_each_phrase_token_once():
    scenes = world.render_scenes(6, seed=3, config=world.WorldConfig(size=32, max_objects=2))
    tok = load_clip_tokenizer()
    phrase = make_batch(scenes, tok, k_max=2)
    token = make_batch(scenes, tok, k_max=2, per_token=True)
    assert token.token_weights.shape[1] == 2 * TOKENS_PER_PHRASE
    assert token.valid.sum() > phrase.valid.sum() > 0
    for i in range(len(scenes)):
        for k in range(2):
            rows = token.token_weights[i, k * TOKENS_PER_PHRASE : (k + 1) * TOKENS_PER_PHRASE]
            want = phrase.token_weights[i, k].nonzero().flatten().tolist()[:TOKENS_PER_PHRASE]
            if not phrase.valid[i, k]:  # no object, no visible pixel or no token: no rows
                want = []
            got = [r.nonzero().flatten().tolist() for r in rows if r.any()]
            assert got == [[t] for t in want]
            assert token.valid[i, k * TOKENS_PER_PHRASE : (k + 1) * TOKENS_PER_PHRASE].sum() == len(want)
            for r in range(len(want)):
                assert torch.equal(token.masks[i, k * TOKENS_PER_PHRASE + r], phrase.masks[i, k])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("prediction_type", "sample", "prediction_type"),
        ("ema_decay", 1.0, "ema_decay"),
        ("snr_gamma", -1.0, "snr_gamma"),
    ],
)
def test_bad_recipes_are_refused_by_name(field, value, message, tmp_path):
    cfg = TrainConfig(out=str(tmp_path / "m"), ckpt_dir=str(tmp_path / "c"), **TOY)
    setattr(cfg, field, value)
    with pytest.raises(ValueError, match=message):
        check_config(cfg)


def test_warm_start_begins_at_the_given_weights_and_keeps_the_autoencoder(toy_model, tmp_path):
    cfg = TrainConfig(
        out=str(tmp_path / "m"), ckpt_dir=str(tmp_path / "c"), init_from=str(toy_model), **(TOY | {"unet_steps": 2})
    )
    out = train(cfg)
    vae_a = load_file(toy_model / "vae/diffusion_pytorch_model.safetensors")
    vae_b = load_file(out / "vae/diffusion_pytorch_model.safetensors")
    assert all(torch.equal(vae_a[k], vae_b[k]) for k in vae_a), "the autoencoder is kept as it is"
    log = [json.loads(line) for line in (tmp_path / "c" / "log.jsonl").read_text().splitlines()]
    assert not any(r.get("stage") == "vae" and "recon" in r for r in log), "no autoencoder training"
    assert any("localisation_initial_weights" in r for r in log)
    card = json.loads((out / "training.json").read_text())
    assert card["started_from"]["kept_step"] == json.loads((toy_model / "training.json").read_text())["kept_step"]
    with pytest.raises(ValueError, match="architecture"):
        train(
            TrainConfig(
                out=str(tmp_path / "x"),
                ckpt_dir=str(tmp_path / "x"),
                init_from=str(toy_model),
                **(TOY | {"text_hidden": 48}),
            )
        )
    with pytest.raises(FileNotFoundError, match="not a pipeline directory"):
        train(TrainConfig(out=str(tmp_path / "y"), ckpt_dir=str(tmp_path / "y"), init_from=str(tmp_path), **TOY))


def test_every_lever_together_resumes_bit_for_bit_and_exports_v_prediction(toy_model, tmp_path):
    levers = dict(
        init_from=str(toy_model),
        ema_decay=0.9,
        snr_gamma=5.0,
        per_token_grounding=True,
        prediction_type="v_prediction",
        keep_last=True,
    )
    straight = train(TrainConfig(out=str(tmp_path / "a"), ckpt_dir=str(tmp_path / "ca"), **TOY, **levers))
    runs = 0
    resumed = tmp_path / "b"
    while not (resumed / "training.json").exists():
        runs += 1
        assert runs < 30
        train(TrainConfig(out=str(resumed), ckpt_dir=str(tmp_path / "cb"), max_minutes=1e-9, **TOY, **levers))
    assert runs > 2
    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        a, b = load_file(straight / part), load_file(resumed / part)
        assert all(torch.equal(a[k], b[k]) for k in a), part
    pipe = StableDiffusionPipeline.from_pretrained(straight, safety_checker=None)
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    img = pipe("a red ball", num_inference_steps=2, height=32, width=32, output_type="np").images
    assert np.isfinite(img).all()
    # the exported weights are the last average (keep_last), not the last trained weights
    assert json.loads((straight / "training.json").read_text())["kept_step"] == TOY["unet_steps"]
    last = torch.load(tmp_path / "ca" / "unet.pt", weights_only=True)
    kept = load_file(straight / "unet/diffusion_pytorch_model.safetensors")
    assert any(not torch.equal(kept[k], last["unet"][k]) for k in kept)
    assert all(torch.equal(kept[k], last["ema"]["unet"][k]) for k in kept)


def test_card_figures_follow_a_continued_run(toy_model, tmp_path):
    from stablesemantics.training.card import curves_figure, history_of

    assert (toy_model / "curves.png").stat().st_size > 1000 and (toy_model / "samples.png").stat().st_size > 1000
    first = json.loads((toy_model / "training.json").read_text())
    card = {
        "localisation_history": [
            {"step": 0, "localisation": {"400": 0.1}},
            {"step": 2, "localisation": {"400": 0.3}, "loss": 0.5},
        ]
    }
    card["started_from"] = first
    steps = [h["step"] for h in history_of(card)]
    last = first["localisation_history"][-1]["step"]
    assert steps == [h["step"] for h in first["localisation_history"]] + [last + 2]
    fig = curves_figure(card)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines[0].get_xdata()) == len(steps)
