"""Tests of the cross-attention capture against a slow, independent reference.

The reference (``ReferenceProcessor``) computes every cross-attention head explicitly, stores
every probability tensor of every layer and step, learns each layer's grid from the input of its
``Transformer2DModel`` (not from the query count) and averages afterwards, resizing each head
map on its own. The capture must agree with it to 1e-5.
"""

from __future__ import annotations

import doctest
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from stablesemantics import capture as capture_package
from stablesemantics.capture import CaptureConfig, CrossAttentionCapture, capture_cross_attention, chunk_maps, layer_grid, resize_maps

PROMPTS = ["a red car on a street", "a small dog"]
HEIGHT, WIDTH = 64, 48  # latent 32 x 24 with the tiny VAE; cross-attention at 32x24 and 16x12
STEPS = 3
ATOL = 1e-5


def generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def run(pipe, prompts=PROMPTS, seeds=(0, 1), steps=STEPS, guidance=7.5, **kwargs):
    kwargs.setdefault("height", HEIGHT)
    kwargs.setdefault("width", WIDTH)
    return pipe(
        prompts,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=generators(seeds),
        output_type="np",
        **kwargs,
    ).images


def cross_attention_modules(unet):
    return {n: m for n, m in unet.named_modules() if isinstance(m, Attention) and m.is_cross_attention}


# --------------------------------------------------------------------------- slow reference


@dataclass
class Record:
    name: str
    step: int
    grid: tuple[int, int]  # (h, w) of the layer, from its Transformer2DModel input
    latent: tuple[int, int]
    probs: torch.Tensor  # (batch, heads, n_queries, n_tokens)


class ReferenceProcessor:
    """Explicit per-head softmax; stores every probability tensor (the slow DAAM-style way)."""

    def __init__(self, recorder: "Reference", name: str):
        self.recorder, self.name = recorder, name
        self.sdpa = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        if encoder_hidden_states is None:
            return self.sdpa(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        # the tiny UNet's cross-attention is the plain kind; the reference relies on it
        assert hidden_states.ndim == 3 and attention_mask is None and attn.group_norm is None
        assert attn.spatial_norm is None and not attn.residual_connection and attn.norm_cross is None
        b, n, _ = hidden_states.shape
        heads = attn.heads
        q = attn.to_q(hidden_states)
        k = attn.to_k(encoder_hidden_states)
        v = attn.to_v(encoder_hidden_states)
        d = q.shape[-1] // heads
        q, k, v = (x.view(b, -1, heads, d).permute(0, 2, 1, 3) for x in (q, k, v))
        scores = torch.einsum("bhnd,bhsd->bhns", q, k) / np.sqrt(d)
        probs = scores.softmax(dim=-1)
        out = torch.einsum("bhns,bhsd->bhnd", probs, v).permute(0, 2, 1, 3).reshape(b, n, heads * d)
        rec = self.recorder
        grid = rec.grids[self.name.split(".transformer_blocks.")[0]]
        rec.records.append(Record(self.name, rec.step, grid, rec.latent, probs.detach().clone()))
        return attn.to_out[1](attn.to_out[0](out))


class Reference:
    """Install ``ReferenceProcessor`` everywhere; keep the list of all records."""

    def __init__(self, unet):
        self.unet = unet
        self.records: list[Record] = []
        self.grids: dict[str, tuple[int, int]] = {}
        self.step = -1
        self.latent = None

    def __enter__(self):
        self.originals = {}
        self.handles = []
        modules = dict(self.unet.named_modules())
        for name, module in cross_attention_modules(self.unet).items():
            self.originals[name] = module.processor
            module.set_processor(ReferenceProcessor(self, name))
            parent = name.split(".transformer_blocks.")[0]
            self.handles.append(modules[parent].register_forward_pre_hook(self._grid_hook(parent)))
        self.handles.append(self.unet.register_forward_pre_hook(self._unet_hook))
        return self

    def _grid_hook(self, parent):
        def hook(module, args):
            self.grids[parent] = tuple(args[0].shape[-2:])

        return hook

    def _unet_hook(self, module, args):
        self.step += 1
        self.latent = tuple(args[0].shape[-2:])

    def __exit__(self, *exc):
        modules = dict(self.unet.named_modules())
        for name, proc in self.originals.items():
            modules[name].set_processor(proc)
        for h in self.handles:
            h.remove()

    def maps(self, half="cond", map_size=None, keep=lambda rec: True, n_steps=None):
        """Average of the resized head maps over the kept records.

        half: "cond" = second half of the batch, "uncond" = first half, "all" = whole batch.
        """
        total, count = None, 0
        for rec in self.records:
            if not keep(rec):
                continue
            p = rec.probs
            b = p.shape[0]
            p = {"cond": p[b // 2 :], "uncond": p[: b // 2], "all": p}[half]
            size = map_size or rec.latent
            for head in range(p.shape[1]):
                m = p[:, head].transpose(1, 2).reshape(p.shape[0], p.shape[-1], *rec.grid)
                m = F.interpolate(m, size=size, mode="bilinear", align_corners=False, antialias=True)
                total = m if total is None else total + m
                count += 1
        return total / count


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


def test_resize_is_plain_bilinear_when_enlarging():
    x = torch.rand(3, 5, 4, 3)
    plain = F.interpolate(x, size=(9, 7), mode="bilinear", align_corners=False)
    torch.testing.assert_close(resize_maps(x, (9, 7)), plain, atol=1e-6, rtol=0)
    assert resize_maps(x, (4, 3)) is x


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


# --------------------------------------------------------------------------- install / restore


def test_processors_and_hooks_are_restored_even_on_error(tiny_pipe):
    unet = tiny_pipe.unet
    before = {n: m.processor for n, m in unet.named_modules() if isinstance(m, Attention)}
    hooks_before = len(unet._forward_pre_hooks)
    with pytest.raises(KeyError):
        with capture_cross_attention(tiny_pipe) as cap:
            assert cap.installed
            assert all(not isinstance(p, AttnProcessor2_0) for p in
                       (m.processor for m in cross_attention_modules(unet).values()))
            raise KeyError("boom")
    after = {n: m.processor for n, m in unet.named_modules() if isinstance(m, Attention)}
    assert all(after[n] is p for n, p in before.items())
    assert len(unet._forward_pre_hooks) == hooks_before
    assert not cap.installed


def test_self_attention_keeps_its_processor(tiny_pipe):
    unet = tiny_pipe.unet
    self_attn = {n: m.processor for n, m in unet.named_modules() if isinstance(m, Attention) and not m.is_cross_attention}
    assert self_attn
    with capture_cross_attention(tiny_pipe, CaptureConfig(blocks=("up",))) as cap:
        modules = dict(unet.named_modules())
        assert all(modules[n].processor is p for n, p in self_attn.items())
        assert {layer.block for layer in cap.layers} == {"up"}
        assert isinstance(modules["mid_block.attentions.0.transformer_blocks.0.attn2"].processor, AttnProcessor2_0)


def test_refuses_unknown_processors_and_nesting(tiny_pipe):
    class Custom(AttnProcessor2_0):
        pass

    module = cross_attention_modules(tiny_pipe.unet)["mid_block.attentions.0.transformer_blocks.0.attn2"]
    original = module.processor
    # a subclass of a plain processor may compute anything: only the exact classes are trusted
    module.set_processor(Custom())
    try:
        with pytest.raises(ValueError, match="Custom"):
            CrossAttentionCapture(tiny_pipe).install()
    finally:
        module.set_processor(original)
    assert all(isinstance(m.processor, AttnProcessor2_0) for m in cross_attention_modules(tiny_pipe.unet).values())
    with capture_cross_attention(tiny_pipe):
        with pytest.raises(RuntimeError, match="already"):
            capture_cross_attention(tiny_pipe).install()
    assert all(isinstance(m.processor, AttnProcessor2_0) for m in cross_attention_modules(tiny_pipe.unet).values())


def test_maps_before_any_call_is_an_error(tiny_pipe):
    with capture_cross_attention(tiny_pipe) as cap:
        pass
    with pytest.raises(RuntimeError, match="no cross-attention was captured"):
        cap.maps


# --------------------------------------------------------------------------- config and helpers


def test_config_validation(tiny_pipe):
    assert CaptureConfig(blocks=["up"], resolutions=[1], map_size=[4, 4]).blocks == ("up",)
    with pytest.raises(ValueError, match="blocks"):
        CaptureConfig(blocks=("middle",))
    with pytest.raises(ValueError, match="blocks"):
        CaptureConfig(blocks=())
    with pytest.raises(TypeError, match="blocks"):
        CaptureConfig(blocks="up")
    with pytest.raises(ValueError, match="resolutions"):
        CaptureConfig(resolutions=(3,))
    with pytest.raises(ValueError, match="t_range"):
        CaptureConfig(t_range=(0.8, 0.2))
    with pytest.raises(ValueError, match="t_range"):
        CaptureConfig(t_range=(0.0, 1.5))
    with pytest.raises(TypeError, match="t_range"):
        CaptureConfig(t_range=("a", 1))
    with pytest.raises(ValueError, match="map_size"):
        CaptureConfig(map_size=(0, 4))
    with pytest.raises(TypeError, match="config"):
        CrossAttentionCapture(tiny_pipe, {"blocks": ("up",)})
    with pytest.raises(TypeError, match="pipe"):
        CrossAttentionCapture("not a pipeline")
    with pytest.raises(ValueError, match="t_range"):
        CrossAttentionCapture(tiny_pipe.unet, CaptureConfig(t_range=(0.5, 1.0)))


def test_keeps_step():
    config = CaptureConfig(t_range=(0.25, 0.75))
    assert [config.keeps_step(i, 5) for i in range(5)] == [False, True, True, True, False]
    assert CaptureConfig().keeps_step(0, 1)
    assert not CaptureConfig(t_range=(0.5, 1.0)).keeps_step(0, 1)


def test_layer_grid():
    assert layer_grid((9, 7), 63) == (9, 7, 1)
    assert layer_grid((9, 7), 20) == (5, 4, 2)
    assert layer_grid((9, 7), 6) == (3, 2, 4)
    assert layer_grid((64, 96), 8 * 12) == (8, 12, 8)
    with pytest.raises(ValueError, match="positions"):
        layer_grid((9, 7), 13)


def test_chunk_maps_is_the_mean_of_token_maps():
    maps = torch.rand(77, 4, 3)
    out = chunk_maps(maps, [[1, 2, 3], [5], (6, 7)])
    assert out.shape == (3, 4, 3)
    torch.testing.assert_close(out[0], maps[1:4].mean(0))
    torch.testing.assert_close(out[1], maps[5])
    torch.testing.assert_close(out[2], (maps[6] + maps[7]) / 2)
    batched = torch.rand(2, 77, 4, 3)
    torch.testing.assert_close(chunk_maps(batched, [[1, 2]])[1, 0], batched[1, 1:3].mean(0))
    assert chunk_maps(maps, []).shape == (0, 4, 3)
    with pytest.raises(ValueError, match="empty"):
        chunk_maps(maps, [[1], []])
    with pytest.raises(IndexError):
        chunk_maps(maps, [[77]])
    with pytest.raises(TypeError):
        chunk_maps(maps.numpy(), [[1]])
    with pytest.raises(TypeError):
        chunk_maps(maps, [1, 2])


def test_docstring_examples_run():
    result = doctest.testmod(capture_package, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
