"""Tests of the cross-attention capture against a slow, independent reference (``capture_reference.py``):
the maps, classifier-free guidance, batches, and the selection of layers, resolutions, steps and map size.

The capture must agree with the reference to 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from capture_reference import ATOL, HEIGHT, PROMPTS, STEPS, WIDTH, Reference, generators, run

from stablesemantics.capture import CaptureConfig, capture_cross_attention


@pytest.fixture(scope="module")
def golden(tiny_pipe):
    """One reference run: 2 prompts, 3 steps, guidance 7.5, a 64x48 image."""
    with Reference(tiny_pipe.unet) as ref:
        images = run(tiny_pipe)
    assert ref.step == STEPS - 1
    return ref, images


# --------------------------------------------------------------------------- golden and CFG


def test_capture_matches_slow_reference(tiny_pipe, golden):
    ref, ref_images = golden
    plain = run(tiny_pipe)
    with capture_cross_attention(tiny_pipe) as cap:
        images = run(tiny_pipe)
    np.testing.assert_allclose(images, plain, atol=ATOL)  # capturing does not change the output
    np.testing.assert_allclose(ref_images, plain, atol=ATOL)
    assert cap.maps.shape == (2, 77, HEIGHT // 2, WIDTH // 2)
    assert cap.maps.dtype == torch.float32
    torch.testing.assert_close(cap.maps, ref.maps("cond"), atol=ATOL, rtol=0)
    # the conditional half is what is kept: the unconditional half gives clearly different maps
    assert (cap.maps - ref.maps("uncond")).abs().max() > 1e-4
    # 11 cross-attention layers with 34 heads in all, at two resolutions, 3 steps
    assert cap.n_contributions == 34 * STEPS == sum(r.probs.shape[1] for r in ref.records)
    assert {r.grid for r in ref.records} == {(32, 24), (16, 12)}
    assert cap.steps_kept == STEPS
    # a mean of softmax probabilities: sums to one over the tokens everywhere
    torch.testing.assert_close(cap.maps.sum(dim=1), torch.ones(2, 32, 24), atol=ATOL, rtol=0)


def test_no_guidance_keeps_the_whole_batch(tiny_pipe):
    with Reference(tiny_pipe.unet) as ref:
        ref_images = run(tiny_pipe, guidance=1.0)
    assert ref.records[0].probs.shape[0] == 2  # no CFG: the UNet batch is the images
    with capture_cross_attention(tiny_pipe) as cap:
        images = run(tiny_pipe, guidance=1.0)
    np.testing.assert_allclose(images, ref_images, atol=ATOL)
    assert cap.maps.shape[0] == 2
    torch.testing.assert_close(cap.maps, ref.maps("all"), atol=ATOL, rtol=0)


def test_batch_and_images_per_prompt_equal_single_runs(tiny_pipe):
    seeds = (11, 12, 13, 14)
    with capture_cross_attention(tiny_pipe) as cap:
        images = run(tiny_pipe, PROMPTS, seeds, steps=2, num_images_per_prompt=2)
        maps = cap.maps.clone()
    assert images.shape[0] == maps.shape[0] == 4
    for i, prompt in enumerate(PROMPTS):  # diffusers order: p1, p1, p2, p2
        with capture_cross_attention(tiny_pipe) as cap:
            alone = run(tiny_pipe, [prompt], seeds[2 * i : 2 * i + 2], steps=2, num_images_per_prompt=2)
        np.testing.assert_allclose(images[2 * i : 2 * i + 2], alone, atol=ATOL)
        torch.testing.assert_close(maps[2 * i : 2 * i + 2], cap.maps, atol=ATOL, rtol=0)
    assert (maps[0] - maps[2]).abs().max() > 1e-4  # different prompts, different maps


def test_prompt_embeds_give_the_same_maps(tiny_pipe):
    with capture_cross_attention(tiny_pipe) as cap:
        run(tiny_pipe, PROMPTS[:1], (3,), steps=2)
        from_text = cap.maps.clone()
    embeds, negative = tiny_pipe.encode_prompt(PROMPTS[0], "cpu", 1, True)
    with capture_cross_attention(tiny_pipe) as cap:
        tiny_pipe(
            prompt_embeds=embeds,
            negative_prompt_embeds=negative,
            num_inference_steps=2,
            height=HEIGHT,
            width=WIDTH,
            generator=generators((3,)),
            output_type="latent",
        )
    torch.testing.assert_close(cap.maps, from_text, atol=ATOL, rtol=0)


# --------------------------------------------------------------------------- selection


ALL = lambda r: True  # noqa: E731


@pytest.mark.parametrize(
    ("config", "keep"),
    [
        (CaptureConfig(resolutions=(1,)), lambda r: r.grid == r.latent),
        (CaptureConfig(resolutions=(2,)), lambda r: r.grid != r.latent),
        (CaptureConfig(resolutions=(1, 2, 4, 8)), ALL),
        (CaptureConfig(blocks=("mid",)), lambda r: r.name.startswith("mid_block")),
        (CaptureConfig(blocks=("down", "up")), lambda r: not r.name.startswith("mid_block")),
        (CaptureConfig(blocks=("up",), resolutions=(2,)), lambda r: r.name.startswith("up") and r.grid != r.latent),
        (CaptureConfig(t_range=(0.5, 1.0)), lambda r: r.step >= 1),
        (CaptureConfig(t_range=(0.0, 0.0)), lambda r: r.step == 0),
        (CaptureConfig(t_range=(0.4, 0.6), blocks=("down",)), lambda r: r.step == 1 and r.name.startswith("down")),
    ],
    ids=["res1", "res2", "res-all", "mid", "down-up", "up-res2", "t-late", "t-first", "t-mid-down"],
)
def test_layer_resolution_and_step_selection(tiny_pipe, golden, config, keep):
    ref, _ = golden
    with capture_cross_attention(tiny_pipe, config) as cap:
        run(tiny_pipe)
    expected = ref.maps("cond", keep=keep)
    torch.testing.assert_close(cap.maps, expected, atol=ATOL, rtol=0)
    assert cap.n_contributions == sum(r.probs.shape[1] for r in ref.records if keep(r))
    if keep is not ALL:  # a selection must change the result, or the test proves nothing
        assert (cap.maps - ref.maps("cond")).abs().max() > 1e-4


@pytest.mark.parametrize("map_size", [(8, 6), (40, 30), (5, 7)])
def test_map_size_resizes_every_layer(tiny_pipe, golden, map_size):
    ref, _ = golden
    with capture_cross_attention(tiny_pipe, CaptureConfig(map_size=map_size)) as cap:
        run(tiny_pipe)
    assert cap.maps.shape == (2, 77, *map_size)
    torch.testing.assert_close(cap.maps, ref.maps("cond", map_size=map_size), atol=ATOL, rtol=0)
