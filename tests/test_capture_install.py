"""Tests of installing the capture: processors and hooks restored, self-attention untouched, refusals."""

from __future__ import annotations

import pytest
from capture_reference import cross_attention_modules
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from stablesemantics.capture import CaptureConfig, CrossAttentionCapture, capture_cross_attention


def test_processors_and_hooks_are_restored_even_on_error(tiny_pipe):
    unet = tiny_pipe.unet
    before = {n: m.processor for n, m in unet.named_modules() if isinstance(m, Attention)}
    hooks_before = len(unet._forward_pre_hooks)
    with pytest.raises(KeyError):
        with capture_cross_attention(tiny_pipe) as cap:
            assert cap.installed
            assert all(
                not isinstance(p, AttnProcessor2_0)
                for p in (m.processor for m in cross_attention_modules(unet).values())
            )
            raise KeyError("boom")
    after = {n: m.processor for n, m in unet.named_modules() if isinstance(m, Attention)}
    assert all(after[n] is p for n, p in before.items())
    assert len(unet._forward_pre_hooks) == hooks_before
    assert not cap.installed


def test_self_attention_keeps_its_processor(tiny_pipe):
    unet = tiny_pipe.unet
    self_attn = {
        n: m.processor for n, m in unet.named_modules() if isinstance(m, Attention) and not m.is_cross_attention
    }
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
        cap.maps  # noqa: B018 -- reading the property is what raises
