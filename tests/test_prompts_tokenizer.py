"""Tests of stablesemantics.prompts: the offline CLIP tokenizer (files, cache folder, token counts).

The tokenizer and its folder come from the ``tok`` and ``tok_dir`` fixtures (tests/conftest.py)."""

from __future__ import annotations

import gzip
import json

import pytest

from stablesemantics.prompts import clip_bpe_path, count_tokens, load_clip_tokenizer, prompt_too_long


def test_clip_tokenizer_matches_openai_clip(tok, tok_dir):
    assert tok("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (49406, 49407, 49407)
    assert len(tok) == 49408 and tok.model_max_length == 77
    padded = tok("a cat", padding="max_length", max_length=77)["input_ids"]
    assert len(padded) == 77 and padded[3:] == [49407] * 74
    # the files are written as the hub's openai/clip-vit-base-patch32 has them
    vocab = json.loads((tok_dir / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408 and vocab["<|startoftext|>"] == 49406 and vocab["a</w>"] == 320
    assert vocab["!"] == 0 and vocab["!</w>"] == 256
    merges = (tok_dir / "merges.txt").read_text(encoding="utf-8").splitlines()
    bpe_lines = gzip.open(clip_bpe_path()).read().decode("utf-8").split("\n")
    assert merges[0] == "#version: 0.2" and merges[1:] == bpe_lines[1:48895]
    # a second load from the folder (no conversion) gives the same tokenizer
    from transformers import CLIPTokenizerFast

    again = CLIPTokenizerFast.from_pretrained(str(tok_dir))
    text = "a hippopotamus, caf\u00e9 \U0001f436!"
    assert again(text)["input_ids"] == tok(text)["input_ids"]


def test_tokenizer_cache_folder(tmp_path, monkeypatch):
    from stablesemantics.paths import default_cache_dir

    monkeypatch.setenv("STABLESEMANTICS_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "vocab.json").write_text("{}")
    with pytest.raises(ValueError, match="did not write"):
        load_clip_tokenizer(tmp_path / "other")
    assert (tmp_path / "other" / "vocab.json").read_text() == "{}"


def test_count_tokens_and_too_long(tok):
    assert count_tokens("a photo of a cat", tok) == 7
    assert count_tokens("", tok) == 2
    long = "cat " * 75
    assert count_tokens(long, tok) == 77 and not prompt_too_long(long, tok)
    assert prompt_too_long(long + "cat", tok)
    assert prompt_too_long("a photo of a cat", tok, max_length=6)
