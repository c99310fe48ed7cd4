"""Joint-attention capture (SD3, Flux) against a slow full-softmax reference (``joint_reference.py``):
maps, guidance on and off, batches, Flux's single-stream blocks, and the memory of a layer call at
4,096 image tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from joint_reference import JointReference, peak_bytes

from stablesemantics.capture import CaptureConfig, JointAttentionCapture, attention_capture, run_with_capture
from stablesemantics.models import load_pipeline
from stablesemantics.models.tiny import tiny_random_flux

PROMPTS = ["a red car on a street", "a small dog"]
HEIGHT, WIDTH = 64, 48  # latent 32 x 24; token grid 16 x 12 (SD3: patch 2; Flux: 2x2 packing)
GRID = (16, 12)
ATOL = 1e-5
T5_LENGTH = 16


@pytest.fixture(scope="module", params=["tiny-random-sd3", "tiny-random-flux"])
def pipe(request):
    return load_pipeline(request.param, device="cpu", dtype=torch.float32)


def _run(pipe, prompts=PROMPTS, seeds=(0, 1), steps=2, guidance=True, **kwargs):
    flux = "Flux" in type(pipe).__name__
    if flux and guidance:  # Flux's guidance is true CFG: a second transformer call per step
        kwargs.update(true_cfg_scale=2.0, negative_prompt=["blurry"] * len(prompts))
    kwargs.setdefault("guidance_scale", 5.0 if guidance and not flux else 1.0)
    return pipe(
        prompts,
        num_inference_steps=steps,
        height=kwargs.pop("height", HEIGHT),
        width=kwargs.pop("width", WIDTH),
        max_sequence_length=T5_LENGTH,
        output_type="np",
        generator=[torch.Generator().manual_seed(s) for s in seeds],
        **kwargs,
    ).images


@pytest.mark.parametrize("guidance", [True, False])
def test_joint_capture_matches_full_softmax_reference(pipe, guidance):
    flux = "Flux" in type(pipe).__name__
    with JointReference(pipe, GRID) as ref:
        ref_images = _run(pipe, guidance=guidance)
    with attention_capture(pipe) as cap:
        images = _run(pipe, guidance=guidance)
    assert isinstance(cap, JointAttentionCapture)
    np.testing.assert_array_equal(images, ref_images)  # the capture's kernel is the one SDPA runs: same bits
    n_text = (77 if not flux else 0) + T5_LENGTH
    assert cap.maps.shape == (2, n_text, *GRID)
    if flux:  # true CFG: calls alternate conditional, negative; only the conditional ones count
        expected = ref.maps(keep_call=(lambda c: c % 2 == 0) if guidance else (lambda c: True))
    else:  # SD3: batched CFG, conditional second half
        expected = ref.maps(half="cond" if guidance else "all")
    torch.testing.assert_close(cap.maps, expected, atol=ATOL, rtol=0)
    layers = len(cap.layers)
    heads = pipe.transformer.config.num_attention_heads
    assert cap.n_contributions == layers * heads * 2 and cap.steps_kept == 2
    # probabilities over the joint key set: text gets a share of each query's mass, never more than all of it
    share = cap.maps.sum(dim=1)
    assert float(share.min()) > 0 and float(share.max()) < 1


def test_flux_single_stream_blocks_are_captured():
    pipe = load_pipeline("tiny-random-flux", device="cpu")
    with attention_capture(pipe) as cap:
        _run(pipe, guidance=False)
    assert [layer.block for layer in cap.layers] == ["joint", "joint", "single", "single"]
    with JointReference(pipe, GRID) as ref:
        _run(pipe, guidance=False)
    assert {r.layer.split(".")[0] for r in ref.records} == {"transformer_blocks", "single_transformer_blocks"}
    single_only = [r for r in ref.records if r.layer.startswith("single")]
    assert single_only and single_only[0].probs.shape[-1] == T5_LENGTH


def test_batch_equals_single_runs(pipe):
    seeds = (5, 6)
    with attention_capture(pipe) as cap:
        images = _run(pipe, PROMPTS, seeds)
        maps = cap.maps.clone()
    for i, prompt in enumerate(PROMPTS):
        with attention_capture(pipe) as cap:
            alone = _run(pipe, [prompt], seeds[i : i + 1])
        np.testing.assert_allclose(images[i : i + 1], alone, atol=ATOL)
        torch.testing.assert_close(maps[i : i + 1], cap.maps, atol=ATOL, rtol=0)


def test_map_size_and_capture_restored(pipe):
    before = {n: type(m.processor) for n, m in pipe.transformer.named_modules() if hasattr(m, "processor")}
    run = run_with_capture(
        pipe,
        PROMPTS[:1],
        seeds=[0],
        capture=CaptureConfig(map_size=(8, 6)),
        num_inference_steps=2,
        height=HEIGHT,
        width=WIDTH,
        max_sequence_length=T5_LENGTH,
        output_type="np",
    )
    assert run.maps.shape[-2:] == (8, 6)
    after = {n: type(m.processor) for n, m in pipe.transformer.named_modules() if hasattr(m, "processor")}
    assert before == after
    with pytest.raises(ValueError, match="one resolution"):
        JointAttentionCapture(pipe, CaptureConfig(resolutions=(2,)))


def test_memory_at_4096_image_tokens_grows_by_the_text_block_only():
    """One double- and one single-stream block at a 64x64 token grid (4,096 image tokens), 128 text tokens."""
    torch.manual_seed(0)
    pipe = tiny_random_flux()
    transformer = pipe.transformer
    transformer.transformer_blocks = transformer.transformer_blocks[:1]
    transformer.single_transformer_blocks = transformer.single_transformer_blocks[:1]
    n_text, side = 128, 64
    ids = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij"), -1).reshape(-1, 2)
    inputs = dict(
        hidden_states=torch.randn(1, side * side, 16),
        encoder_hidden_states=torch.randn(1, n_text, 32),
        pooled_projections=torch.randn(1, 32),
        timestep=torch.tensor([0.5]),
        img_ids=torch.cat([torch.zeros(side * side, 1), ids.float()], dim=1),
        txt_ids=torch.zeros(n_text, 3),
        return_dict=False,
    )
    with torch.no_grad():
        with peak_bytes() as plain:
            expected = transformer(**inputs)[0]
        with JointAttentionCapture(transformer) as cap, peak_bytes() as captured:
            out = transformer(**inputs)[0]
        with JointReference(pipe, (side, side)), peak_bytes() as materialised:
            transformer(**inputs)
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
    running_sum = cap.maps.numel() * 4  # (1, 128, 64, 64) float32 = 2 MiB
    growth = captured.peak - plain.peak
    block = side * side * n_text * 4  # one head's text block, 2 MiB
    full = (side * side + n_text) ** 2 * 4  # one head's full joint matrix, 68 MiB
    print(
        f"plain peak {plain.peak / 2**20:.1f} MiB, capture peak {captured.peak / 2**20:.1f} MiB, "
        f"growth {growth / 2**20:.1f} MiB (running sum {running_sum / 2**20:.1f} MiB), "
        f"full softmax reference peak {materialised.peak / 2**20:.1f} MiB"
    )
    assert growth <= running_sum + 3 * block + 2**20
    assert growth < full / 4
    assert materialised.peak - plain.peak > full  # the meter sees a full matrix when one is made
