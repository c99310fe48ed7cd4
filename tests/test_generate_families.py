"""``generate`` end to end with the tiny SDXL, SD3 and Flux pipelines: images, chunk maps at the
attention grid, and the store's record of the family, text encoders and token segments."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stablesemantics.capture import chunk_maps, run_with_capture
from stablesemantics.generate import generate
from stablesemantics.models import load_pipeline
from stablesemantics.store import open_store

PROMPTS = ["a red car on a street", "a small dog"]


@pytest.mark.parametrize(
    ("name", "family", "grid", "segments"),
    [
        ("tiny-random-sdxl", "sdxl", (32, 24), [("clip", 0, 77)]),
        ("tiny-random-sd3", "sd3", (16, 12), [("clip", 0, 77), ("t5", 77, 256)]),
        ("tiny-random-flux", "flux", (16, 12), [("t5", 0, 512)]),
    ],
)
def test_generate_with_each_family(tmp_path, name, family, grid, segments):
    out = generate(
        PROMPTS,
        [0],
        tmp_path / "s.zarr",
        model=name,
        steps=2,
        height=64,
        width=48,
        batch_size=2,
        device="cpu",
        progress=False,
    )
    g = open_store(out, "r")
    attrs = dict(g.attrs)
    assert attrs["model_family"] == family
    assert [(s["name"], s["offset"], s["length"]) for s in attrs["token_segments"]] == segments
    assert attrs["text_encoders"]
    assert g["images"].shape == (2, 64, 48, 3) and g["maps"].shape[1:] == grid
    assert g["maps"].shape[0] == 3  # "a red car", "a street", "a small dog"
    tokens = [json.loads(t) for t in g["map_token_indices"][:]]
    n_text = max(s[1] + s[2] for s in segments)
    assert all(0 <= i < n_text for t in tokens for i in t)
    if family == "sd3":  # a chunk's map combines its CLIP and its T5 tokens
        assert all(min(t) < 77 <= max(t) for t in tokens)
    # the stored map is the chunk map of a direct capture of the same image
    pipe = load_pipeline(name, device="cpu", dtype=torch.float32)
    run = run_with_capture(
        pipe,
        prompt=PROMPTS[:1],
        seeds=[0],
        num_inference_steps=2,
        guidance_scale=7.5,
        height=64,
        width=48,
        output_type="np",
    )
    np.testing.assert_allclose(
        np.asarray(g["maps"][0], np.float32),
        chunk_maps(run.maps[0], [tokens[0]]).numpy()[0].astype(np.float16),
        rtol=0,
        atol=1e-3,
    )


def test_max_sequence_length_reaches_the_t5_encoder_and_the_store(tmp_path):
    settings = dict(steps=1, height=32, width=32, batch_size=2, device="cpu", progress=False)
    out = generate(PROMPTS, [0], tmp_path / "f.zarr", model="tiny-random-flux", max_sequence_length=16, **settings)
    g = open_store(out, "r")
    assert [(s["name"], s["length"]) for s in g.attrs["token_segments"]] == [("t5", 16)]
    assert g.attrs["generation_config"]["max_sequence_length"] == 16
    # the same image as a direct call with that T5 length (the encoder saw 16 tokens, not 512)
    pipe = load_pipeline("tiny-random-flux", device="cpu", dtype=torch.float32)
    direct = run_with_capture(
        pipe, prompt=PROMPTS[:1], seeds=[0], num_inference_steps=1, guidance_scale=7.5,
        height=32, width=32, output_type="np", max_sequence_length=16,
    )  # fmt: skip
    assert direct.maps.shape[1] == 16
    np.testing.assert_array_equal(g["images"][0], np.round(direct.output.images[0] * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="T5 encoder"):
        generate(PROMPTS, [0], tmp_path / "s.zarr", model="tiny-random", max_sequence_length=16, **settings)
    with pytest.raises(TypeError, match="max_sequence_length"):
        generate(PROMPTS, [0], tmp_path / "t.zarr", model="tiny-random-flux", max_sequence_length="16", **settings)
