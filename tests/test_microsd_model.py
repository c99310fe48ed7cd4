"""The committed MicroSD weights (data/models/microsd): a standard diffusers pipeline, offline.

These check the promises of the model card on the files in the repository, not on a toy
training run (tests/test_train.py does that): size, plain ``from_pretrained`` with no network
and no safety checker, CLIP token ids, cross-attention at two resolutions, the capture, and
determinism.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from stablesemantics.capture import capture_cross_attention
from stablesemantics.models import MICROSD
from stablesemantics.paths import MODEL_DIR
from stablesemantics.prompts import load_clip_tokenizer

MODEL = MODEL_DIR / MICROSD


@pytest.fixture(scope="module")
def pipe():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        loaded = StableDiffusionPipeline.from_pretrained(MODEL, safety_checker=None, requires_safety_checker=False)
    loaded.set_progress_bar_config(disable=True)
    return loaded


def test_weights_are_small_safetensors_with_a_card():
    files = [p for p in MODEL.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 30 * 2**20
    weights = {p.parent.name for p in files if p.suffix == ".safetensors"}
    assert weights == {"unet", "vae", "text_encoder"}
    assert not any(p.suffix in (".bin", ".pt", ".ckpt") for p in files)
    assert "## Measured" in (MODEL / "README.md").read_text()
    training = json.loads((MODEL / "training.json").read_text())
    assert training["config"]["seed"] == 0 and training["kept_step"] in [
        h["step"] for h in training["localisation_history"]
    ]


def test_loads_offline_as_a_standard_pipeline(pipe):
    assert type(pipe) is StableDiffusionPipeline and pipe.safety_checker is None
    assert pipe.text_encoder.config.vocab_size == 49408
    text = "a small red car on a street next to a green tree"
    clip_ids = load_clip_tokenizer()(text).input_ids
    assert pipe.tokenizer(text).input_ids == clip_ids  # the real CLIP token ids


def test_cross_attention_at_two_resolutions_and_capture_is_deterministic(pipe):
    assert sum("CrossAttn" in b for b in pipe.unet.config.down_block_types) >= 2

    def run():
        with capture_cross_attention(pipe) as cap:
            image = pipe(
                "a red car on a street",
                num_inference_steps=3,
                generator=torch.Generator().manual_seed(4),
                output_type="np",
            ).images
        return image, cap.maps

    image, maps = run()
    latent = pipe.unet.config.sample_size
    assert image.shape == (1, latent * pipe.vae_scale_factor, latent * pipe.vae_scale_factor, 3)
    assert maps.shape == (1, 77, latent, latent) and torch.isfinite(maps).all()
    again, maps_again = run()
    assert np.array_equal(image, again) and torch.equal(maps, maps_again)
