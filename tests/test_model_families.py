"""Every model family: loading (tiny random pipelines, saved directories, specs), family facts, token
segments, and the UNet families' capture (SD 2.x, SDXL) against the slow reference of ``capture_reference``."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from capture_reference import ATOL, HEIGHT, PROMPTS, WIDTH, Reference, run
from diffusers import (
    EulerDiscreteScheduler,
    FluxPipeline,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)
from safetensors.torch import save_file

from stablesemantics.capture import capture_cross_attention
from stablesemantics.generate import generate
from stablesemantics.models import load_pipeline
from stablesemantics.models.families import attention_grid, describe_text, pipeline_family, token_segments
from stablesemantics.models.spec import parse_model_spec
from stablesemantics.models.tiny import tiny_random_sdxl
from stablesemantics.prompts import TokenAlignmentError, noun_chunks
from stablesemantics.prompts.segments import segment_chunk_indices
from stablesemantics.prompts.t5_tokenizer import load_tiny_t5_tokenizer

CLASSES = {
    "tiny-random": (StableDiffusionPipeline, "sd1"),
    "tiny-random-sd2": (StableDiffusionPipeline, "sd2"),
    "tiny-random-sdxl": (StableDiffusionXLPipeline, "sdxl"),
    "tiny-random-sd3": (StableDiffusion3Pipeline, "sd3"),
    "tiny-random-flux": (FluxPipeline, "flux"),
}


@pytest.fixture(scope="module")
def pipes():
    return {name: load_pipeline(name, device="cpu", dtype=torch.float32) for name in CLASSES}


def test_tiny_pipelines_load_by_name_with_their_family(pipes):
    for name, (cls, family) in CLASSES.items():
        assert type(pipes[name]) is cls and pipeline_family(pipes[name]) == family
    assert pipes["tiny-random-sd2"].scheduler.config.prediction_type == "v_prediction"
    assert attention_grid(pipes["tiny-random-sd3"], 64, 48) == (16, 12)
    assert attention_grid(pipes["tiny-random-flux"], 64, 48) == (16, 12)
    assert describe_text(pipes["tiny-random-sd3"])["text_encoders"] == [
        "CLIPTextModelWithProjection",
        "CLIPTextModelWithProjection",
        "T5EncoderModel",
    ]


def test_a_saved_pipeline_loads_with_the_class_its_model_index_names(pipes, tmp_path):
    for name in ("tiny-random-sdxl", "tiny-random-flux"):
        pipes[name].save_pretrained(tmp_path / name)
        loaded = load_pipeline(tmp_path / name, device="cpu")
        assert type(loaded) is type(pipes[name])
        ours = dict(pipes[name].components)
        for key, module in loaded.components.items():
            if isinstance(module, torch.nn.Module):
                for (k, a), b in zip(module.state_dict().items(), ours[key].state_dict().values()):
                    torch.testing.assert_close(a, b, atol=0, rtol=0, msg=k)


def test_the_tiny_t5_tokenizer_round_trips(tmp_path):
    tok = load_tiny_t5_tokenizer()
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("a red car on a street")["input_ids"] == tok("a red car on a street")["input_ids"]


def test_a_spec_replaces_the_unet_and_the_scheduler(tmp_path):
    base = tmp_path / "base"
    tiny_random_sdxl().save_pretrained(base)
    unet_file = tmp_path / "unet.safetensors"
    other = tiny_random_sdxl(seed=7).unet
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, unet_file)
    spec = f"{base}?unet={unet_file}&scheduler=euler-trailing&guidance=0&steps=4"
    assert parse_model_spec(spec).guidance == 0.0 and parse_model_spec(spec).steps == 4
    pipe = load_pipeline(spec, device="cpu")
    assert isinstance(pipe.scheduler, EulerDiscreteScheduler)
    assert pipe.scheduler.config.timestep_spacing == "trailing"
    for (k, a), b in zip(pipe.unet.state_dict().items(), other.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=k)
    out = pipe("a red car", num_inference_steps=4, guidance_scale=0.0, height=32, width=32, output_type="np")
    assert out.images.shape == (1, 32, 32, 3)
    # generate with the spec: its settings run quietly, others are named in a warning
    settings = dict(model=spec, height=32, width=32, batch_size=1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        generate(["a red car"], 1, tmp_path / "ok.zarr", steps=4, guidance=0.0, **settings)
    with pytest.warns(UserWarning, match=r"made for 4 steps; this run uses 2 and guidance 0; this run uses 7\.5"):
        generate(["a red car"], 1, tmp_path / "off.zarr", steps=2, guidance=7.5, **settings)
    with pytest.raises(ValueError, match="unknown scheduler"):
        parse_model_spec("x?scheduler=nope")
    with pytest.raises(ValueError, match="only the keys"):
        parse_model_spec("x?colour=red")


def test_token_segments_of_each_family(pipes):
    text = "a red car on a street"
    chunks = noun_chunks(text)
    clip = [s.indices for s in segment_chunk_indices(text, chunks, token_segments(pipes["tiny-random"]))]
    assert clip == [(2, 3), (6,)]
    # SDXL: both CLIP tokenizers give the same positions (their padding differs: "!" vs the end token)
    sdxl = token_segments(pipes["tiny-random-sdxl"])
    assert sdxl[0].twins and [s.indices for s in segment_chunk_indices(text, chunks, sdxl)] == clip
    # SD3: CLIP positions, then T5 positions shifted by 77
    sd3 = segment_chunk_indices(text, chunks, token_segments(pipes["tiny-random-sd3"], 16))
    assert sd3[0].indices[:2] == (2, 3) and min(sd3[0].indices[2:]) >= 77
    flux = segment_chunk_indices(text, chunks, token_segments(pipes["tiny-random-flux"], 16))
    assert all(i < 16 for s in flux for i in s.indices)
    # a twin that tokenises differently is an error, not silently mixed maps
    bad = copy.deepcopy(sdxl[0])
    object.__setattr__(bad, "twins", (load_tiny_t5_tokenizer(),))
    with pytest.raises(TokenAlignmentError, match="disagree"):
        segment_chunk_indices(text, chunks, [bad])


# --------------------------------------------------------------------------- UNet families: golden


@pytest.mark.parametrize("name", ["tiny-random-sd2", "tiny-random-sdxl"])
@pytest.mark.parametrize("guidance", [7.5, 1.0])
def test_unet_family_capture_matches_slow_reference(pipes, name, guidance):
    pipe = pipes[name]
    with Reference(pipe.unet) as ref:
        ref_images = run(pipe, guidance=guidance)
    plain = run(pipe, guidance=guidance)
    with capture_cross_attention(pipe) as cap:
        images = run(pipe, guidance=guidance)
    np.testing.assert_allclose(images, plain, atol=ATOL)
    np.testing.assert_allclose(ref_images, plain, atol=ATOL)
    assert cap.maps.shape == (2, 77, HEIGHT // 2, WIDTH // 2)
    torch.testing.assert_close(cap.maps, ref.maps("cond" if guidance > 1 else "all"), atol=ATOL, rtol=0)
    torch.testing.assert_close(cap.maps.sum(dim=1), torch.ones(2, HEIGHT // 2, WIDTH // 2), atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["tiny-random-sd2", "tiny-random-sdxl"])
def test_unet_family_batch_equals_single_runs(pipes, name):
    pipe, seeds = pipes[name], (3, 4)
    with capture_cross_attention(pipe) as cap:
        images = run(pipe, PROMPTS, seeds, steps=2)
        maps = cap.maps.clone()
    for i, prompt in enumerate(PROMPTS):
        with capture_cross_attention(pipe) as cap:
            alone = run(pipe, [prompt], seeds[i : i + 1], steps=2)
        np.testing.assert_allclose(images[i : i + 1], alone, atol=ATOL)
        torch.testing.assert_close(maps[i : i + 1], cap.maps, atol=ATOL, rtol=0)
