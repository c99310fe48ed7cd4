"""Tests of the cross-attention capture over calls: any latent size, memory flat in the number of steps,
and a new pipeline call starting new maps."""

from __future__ import annotations

import torch
from capture_reference import ATOL, PROMPTS, Reference, run

from stablesemantics.capture import capture_cross_attention


def test_odd_latent_sizes_with_a_bare_unet(tiny_pipe):
    """Any latent the UNet accepts, here 9x7 (grids 9x7 and 5x4); calls accumulate until reset."""
    unet = tiny_pipe.unet
    embeds, _ = tiny_pipe.encode_prompt(PROMPTS, "cpu", 1, False)
    latents = torch.randn(2, 4, 9, 7, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        with Reference(unet) as ref:
            expected = unet(latents, 500, encoder_hidden_states=embeds).sample
        with capture_cross_attention(unet) as cap:
            out = unet(latents, 500, encoder_hidden_states=embeds).sample
            first = cap.maps.clone()
            unet(latents, 500, encoder_hidden_states=embeds)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)
    assert {r.grid for r in ref.records} == {(9, 7), (5, 4)}
    assert first.shape == (2, 77, 9, 7)
    torch.testing.assert_close(first, ref.maps("all"), atol=ATOL, rtol=0)
    torch.testing.assert_close(cap.maps, first, atol=ATOL, rtol=0)  # same input twice: same mean
    assert cap.n_contributions == 2 * 34


def test_memory_does_not_grow_with_steps(tiny_pipe):
    def state(cap):
        """Every tensor the capture object holds, found by walking its attributes."""
        tensors, seen = [], set()

        def walk(obj, depth=0):
            if id(obj) in seen or depth > 4:
                return
            seen.add(id(obj))
            if isinstance(obj, torch.Tensor):
                tensors.append(obj)
            elif isinstance(obj, dict):
                for v in obj.values():
                    walk(v, depth + 1)
            elif isinstance(obj, (list, tuple, set)):
                for v in obj:
                    walk(v, depth + 1)
            elif hasattr(obj, "__dict__") and not isinstance(obj, torch.nn.Module):
                for k, v in vars(obj).items():
                    if k not in ("_pipe", "_unet"):  # the model is not the capture's state
                        walk(v, depth + 1)

        walk(cap)
        return len(tensors), sum(t.numel() * t.element_size() for t in tensors)

    results = {}
    for steps in (2, 6):
        with capture_cross_attention(tiny_pipe) as cap:
            run(tiny_pipe, PROMPTS[:1], (0,), steps=steps, height=32, width=32)
            results[steps] = (state(cap), cap.n_contributions)
    (state2, n2), (state6, n6) = results[2], results[6]
    assert n6 == 3 * n2
    assert state2 == state6 == (1, 1 * 77 * 16 * 16 * 4)  # one float32 running sum, nothing per step


def test_new_pipeline_call_starts_new_maps(tiny_pipe):
    with capture_cross_attention(tiny_pipe) as cap:
        run(tiny_pipe, PROMPTS, (0, 1), steps=3)
        run(tiny_pipe, PROMPTS[1:], (5,), steps=2)
        second = cap.maps.clone()
        run(tiny_pipe, PROMPTS[1:], (5,), steps=2)  # same schedule again
        again = cap.maps.clone()
    with capture_cross_attention(tiny_pipe) as cap:
        run(tiny_pipe, PROMPTS[1:], (5,), steps=2)
    assert second.shape[0] == 1
    torch.testing.assert_close(second, cap.maps, atol=ATOL, rtol=0)
    torch.testing.assert_close(again, cap.maps, atol=ATOL, rtol=0)
    assert cap.steps_kept == 2
