"""Tests of pipeline loading: the tiny random pipeline, local directories, hub ids, arguments."""

from __future__ import annotations

import doctest
import time

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline

from stablesemantics.models import (
    ModelNotFoundError,
    default_device,
    default_dtype,
    load_pipeline,
    tiny_random_components,
)
from stablesemantics.models import components as models_components
from stablesemantics.models import load as models_load


def generate(pipe, seed=0):
    return pipe(
        "a red car",
        num_inference_steps=2,
        height=32,
        width=32,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    ).images


def test_tiny_random_components_are_identical_every_call():
    a, b = tiny_random_components(), tiny_random_components()
    assert set(a) == {
        "unet",
        "vae",
        "text_encoder",
        "tokenizer",
        "scheduler",
        "safety_checker",
        "feature_extractor",
        "image_encoder",
    }
    for name in ("unet", "vae", "text_encoder"):
        sa, sb = a[name].state_dict(), b[name].state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    assert isinstance(a["scheduler"], DDIMScheduler)
    assert a["safety_checker"] is None
    other = tiny_random_components(seed=1)["unet"].state_dict()
    assert not all(torch.equal(other[k], a["unet"].state_dict()[k]) for k in other)


def test_tiny_pipeline_shapes(tiny_pipe):
    assert isinstance(tiny_pipe, StableDiffusionPipeline)
    assert tiny_pipe.vae_scale_factor == 2
    assert tiny_pipe.text_encoder.config.vocab_size == len(tiny_pipe.tokenizer) == 49408
    assert tiny_pipe.tokenizer.model_max_length == 77
    assert tiny_pipe.tokenizer("a car").input_ids[0] == tiny_pipe.text_encoder.config.bos_token_id
    # cross-attention at two resolutions (down, mid and up): layer and resolution selection is testable
    sizes = set()
    handles = [
        m.register_forward_pre_hook(lambda mod, args: sizes.add(tuple(args[0].shape[-2:])))
        for n, m in tiny_pipe.unet.named_modules()
        if type(m).__name__ == "Transformer2DModel"
    ]
    try:
        images = generate(tiny_pipe)
    finally:
        for h in handles:
            h.remove()
    assert sizes == {(16, 16), (8, 8)}
    assert images.shape == (1, 32, 32, 3) and np.isfinite(images).all()
    assert tiny_pipe._progress_bar_config.get("disable") is True


def test_save_and_load_gives_identical_outputs(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "pipe")
    loaded = load_pipeline(tmp_path / "pipe", device="cpu")
    assert loaded.unet.dtype == torch.float32 and loaded.device.type == "cpu"
    np.testing.assert_allclose(generate(loaded), generate(tiny_pipe), atol=1e-6)
    again = load_pipeline(str(tmp_path / "pipe"), device="cpu")  # a str path works too
    np.testing.assert_allclose(generate(again), generate(tiny_pipe), atol=1e-6)


def test_unknown_hub_id_fails_quickly_and_clearly(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(ModelNotFoundError, match=r"nobody-here/no-such-model.*could not be found.*hub"):
        load_pipeline("nobody-here/no-such-model", device="cpu")
    assert time.monotonic() - start < 20
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_pipeline("./no/such/dir", device="cpu")


def test_missing_microsd_says_how_to_build_it(monkeypatch, tmp_path):
    monkeypatch.setattr(models_load, "MODEL_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="make model"):
        load_pipeline("microsd", device="cpu")


def test_directory_without_model_index(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_pipeline(tmp_path, device="cpu")


def test_argument_types():
    with pytest.raises(TypeError, match="model"):
        load_pipeline(3)
    with pytest.raises(TypeError, match="device"):
        load_pipeline("tiny-random", device=0)
    with pytest.raises(TypeError, match="dtype"):
        load_pipeline("tiny-random", dtype="float16")
    with pytest.raises(ValueError, match="empty"):
        load_pipeline("")
    with pytest.raises(TypeError, match="seed"):
        tiny_random_components("0")


def test_default_device_and_dtype(monkeypatch):
    from diffusers import FluxPipeline, StableDiffusion3Pipeline, StableDiffusionXLPipeline

    assert default_dtype("cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert default_dtype("cuda", FluxPipeline) == torch.bfloat16  # float16 overflows in Flux
    assert default_dtype("cuda", StableDiffusion3Pipeline) == torch.bfloat16
    assert default_dtype("cuda", StableDiffusionXLPipeline) == torch.float16
    assert default_dtype("cpu", FluxPipeline) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a T4
    assert default_dtype("cuda", FluxPipeline) == torch.float16
    assert default_dtype(torch.device("cpu")) == torch.float32
    assert default_dtype("mps") == torch.float32
    if torch.cuda.is_available():
        assert default_device() == "cuda"
    else:
        assert default_device() in ("cpu", "mps")


def test_docstring_examples_run():
    for module in (models_load, models_components):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0
