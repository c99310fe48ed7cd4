"""MicroSD training (`make model`, `stablesemantics train microsd`), run end to end at toy size: it
must write a standard diffusers pipeline with a model card, keep the checkpoint chosen by
localisation, and resume from its checkpoints instead of starting over."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file
from typer.testing import CliRunner

from stablesemantics.cli import app
from stablesemantics.paths import MICROSD_DIR
from stablesemantics.training import TrainConfig

# fmt: off
TOY = [
    "--image-size", "32", "--max-objects", "2",
    "--vae-channels", "8,16", "--vae-steps", "3", "--vae-batch", "4", "--vae-crop", "16",
    "--text-hidden", "32", "--text-layers", "1",
    "--unet-channels", "16,32,32", "--unet-steps", "3", "--batch", "4", "--warmup", "1",
    "--dataset-scenes", "16", "--eval-every", "2", "--eval-scenes", "4", "--eval-timesteps", "400",
    "--ckpt-every", "1",
]
# fmt: on

runner = CliRunner()


def train(*args: str, exit_code: int = 0) -> str:
    """``stablesemantics train microsd <TOY> <args>``; returns its output."""
    result = runner.invoke(app, ["train", "microsd", *TOY, *args])
    assert result.exit_code == exit_code, result.output
    return result.output


@pytest.fixture(autouse=True)
def _keep_threads(monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # leave the test runner's threads alone


def test_toy_training_writes_a_loadable_pipeline(tmp_path):
    out = tmp_path / "model"
    assert "model written to" in train("--out", str(out), "--ckpt-dir", str(tmp_path / "ckpt"))

    card = json.loads((out / "training.json").read_text())
    assert card["config"]["unet_channels"] == [16, 32, 32] and card["config"]["lr"] == 5e-4  # given, and defaults
    history = card["localisation_history"]
    assert [h["step"] for h in history] == [0, 2, 3]
    best = max(history, key=lambda h: np.mean(list(h["localisation"].values())))
    assert card["kept_step"] == best["step"], "the kept checkpoint is the best localisation, not the last"

    pipe = StableDiffusionPipeline.from_pretrained(out, safety_checker=None)
    assert pipe.unet.config.block_out_channels == [16, 32, 32] and pipe.vae_scale_factor == 2
    img = pipe(
        "a red ball",
        num_inference_steps=2,
        height=32,
        width=32,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images
    assert img.shape == (1, 32, 32, 3) and np.isfinite(img).all()


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    straight = tmp_path / "straight"
    train("--out", str(straight), "--ckpt-dir", str(tmp_path / "c1"))

    resumed = tmp_path / "resumed"
    runs = 0
    while not (resumed / "training.json").exists():  # each run stops after its first step
        runs += 1
        assert runs < 30, "training never finished"
        train("--max-minutes", "1e-9", "--out", str(resumed), "--ckpt-dir", str(tmp_path / "c2"))
    assert runs > 3, "the deadline did not interrupt the training"
    for part in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"):
        a, b = load_file(straight / part), load_file(resumed / part)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{part}:{k}")


def test_checkpoints_of_another_recipe_are_refused(tmp_path):
    ckpt = tmp_path / "ckpt"
    assert "stopped before the end" in train(
        "--max-minutes", "1e-9", "--out", str(tmp_path / "m"), "--ckpt-dir", str(ckpt)
    )
    output = train("--out", str(tmp_path / "m"), "--ckpt-dir", str(ckpt), "--lr", "0.001", exit_code=1)
    assert "error: the checkpoints in" in output and "another recipe (lr: 0.0005 there, 0.001 now)" in output
    # where the model goes and how long one run may last are not the recipe
    train("--max-minutes", "1e-9", "--threads", "1", "--out", str(tmp_path / "other"), "--ckpt-dir", str(ckpt))


#: fields added after a card was written take their default there (they were not levers yet)
NEWER_FIELDS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _recipe(config: dict) -> dict:
    mine = json.loads(json.dumps(NEWER_FIELDS | config))
    return {k: v for k, v in mine.items() if k not in ("out", "ckpt_dir", "init_from", "threads")}


def _cli_options(tokens: list[str]) -> dict:
    """``--name value`` and ``--flag`` options of ``stablesemantics train microsd`` as TrainConfig fields."""
    out, i = {}, 0
    while i < len(tokens):
        name = tokens[i][2:].replace("-", "_")
        default = getattr(TrainConfig(), name)
        if isinstance(default, bool):
            out[name], i = True, i + 1
        else:
            out[name], i = (type(default) if default is not None else str)(tokens[i + 1]), i + 2
    return out


def test_defaults_are_the_committed_models_recipe():
    """``make model`` trains the recipe of the committed model: ``stablesemantics train microsd`` with its
    defaults, then (for a continued model) the continuation the Makefile names, from those weights."""
    card = json.loads((MICROSD_DIR / "training.json").read_text())
    first = card.get("started_from", card)
    assert _recipe(first["config"]) == _recipe(dataclasses.asdict(TrainConfig()))
    if "started_from" in card:
        makefile = (MICROSD_DIR.parents[2] / "Makefile").read_text()
        options = re.search(r"^MICROSD_CONTINUE := (.*)$", makefile, re.M).group(1).split()
        continued = dataclasses.replace(TrainConfig(), **_cli_options(options))
        assert _recipe(card["config"]) == _recipe(dataclasses.asdict(continued))
