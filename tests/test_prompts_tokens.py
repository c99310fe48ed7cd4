"""Tests of stablesemantics.prompts: the chunk -> token position mapping.

Token expectations are computed independently of the code under test: by decoding the tokens at
the returned positions with the tokenizer's own decoder, or by counting tokens of prompts built
from words that are known to be single CLIP tokens. ``tok`` and ``nlp`` are fixtures of
tests/conftest.py.
"""

from __future__ import annotations

import unicodedata

import pytest

from stablesemantics.prompts import (
    NounChunk,
    SpanTokens,
    TokenAlignmentError,
    chunk_token_indices,
    clean_prompt,
    count_tokens,
    noun_chunks,
    token_char_spans,
    token_indices_for_spans,
)


def decode_at(tok, text: str, indices) -> str:
    """The text of the tokens at ``indices`` of the full encoded ``text``, spaces removed."""
    ids = tok(text, truncation=False, verbose=False)["input_ids"]
    return tok.decode([ids[i] for i in indices]).replace(" ", "")


def words_of(text: str, spans) -> str:
    return "".join(unicodedata.normalize("NFC", text[s:e]).lower() for s, e in spans)


def check_chunks(tok, text, chunks, result):
    """Every chunk has indices, they are increasing, and they spell exactly its words."""
    assert len(result) == len(chunks)
    for c, r in zip(chunks, result):
        assert not r.truncated and r.indices
        assert list(r.indices) == sorted(set(r.indices)) and r.indices[0] >= 1
        assert decode_at(tok, text, r.indices) == words_of(text, c.word_spans), c


def test_word_split_into_several_tokens(tok, nlp):
    text = "a hippopotamus, in the river!"
    assert len(tok("hippopotamus", add_special_tokens=False)["input_ids"]) > 1
    chunks = noun_chunks(text, nlp)
    result = chunk_token_indices(text, chunks, tok)
    check_chunks(tok, text, chunks, result)
    hippo = result[0].indices
    assert len(hippo) > 1 and hippo == tuple(range(2, 2 + len(hippo)))


def test_same_word_twice_gets_different_positions(tok, nlp):
    text = "a dog and a dog"
    chunks = noun_chunks(text, nlp)
    assert [c.text for c in chunks] == ["a dog", "a dog"]
    result = chunk_token_indices(text, chunks, tok)
    assert result == [SpanTokens((2,), False), SpanTokens((5,), False)]
    check_chunks(tok, text, chunks, result)


def test_word_inside_another_word_is_not_matched(tok, nlp):
    # DAAM's string matching maps a word into any longer word that contains it.
    text = "a cat walks across the catwalk"
    chunks = noun_chunks(text, nlp)
    result = chunk_token_indices(text, chunks, tok)
    assert [r.indices for r in result] == [(2,), (6,)]
    check_chunks(tok, text, chunks, result)
    s_in_across = text.index("s", text.index("across"))
    assert token_indices_for_spans(text, [(s_in_across, s_in_across + 1)], tok)[0].indices == (4,)


def test_punctuation_and_possessive_tokens_are_left_out(tok, nlp):
    text = "a dog's bone, (red) apples; a cat."
    chunks = noun_chunks(text, nlp)
    result = chunk_token_indices(text, chunks, tok)
    check_chunks(tok, text, chunks, result)
    ids = tok(text)["input_ids"]
    chosen = {tok.convert_ids_to_tokens(ids[i]) for r in result for i in r.indices}
    assert not chosen & {"'s</w>", ",</w>", "(</w>", ")</w>", ";</w>", ".</w>"}


def test_emoji_and_non_ascii(tok, nlp):
    text = "A Caf\u00e9 \U0001f436 with a cr\u00e8me br\u00fbl\u00e9e"
    chunks = noun_chunks(text, nlp)
    assert [c.text for c in chunks] == ["A Caf\u00e9", "a cr\u00e8me br\u00fbl\u00e9e"]
    check_chunks(tok, text, chunks, chunk_token_indices(text, chunks, tok))
    dog = text.index("\U0001f436")
    (emoji,) = token_indices_for_spans(text, [(dog, dog + 1)], tok)
    assert decode_at(tok, text, emoji.indices) == "\U0001f436"


def test_offsets_refer_to_the_original_text(tok):
    # whitespace runs, tabs, upper case, a decomposed accent and a ligature change the
    # normalised text's length; spans must still be those of the original string.
    text = "A  BIG\tcafe\u0301 \ufb01sh   \u0130stanbul"
    for use_offsets in (True, False):
        spans = token_char_spans(text, tok, use_offsets=use_offsets)
        assert all(0 <= s < e <= len(text) for s, e in spans)
        assert all(s1 >= e0 or (s1, e1) == (s0, e0) for (s0, e0), (s1, e1) in zip(spans, spans[1:]))
    word = (text.index("cafe"), text.index("cafe") + 5)
    (cafe,) = token_indices_for_spans(text, [word], tok)
    assert decode_at(tok, text, cafe.indices) == "caf\u00e9"
    big = (3, 6)
    assert decode_at(tok, text, token_indices_for_spans(text, [big], tok)[0].indices) == "big"
    # "\u0130".lower() is two characters: without offsets the word's tokens share its span
    ist = (text.index("\u0130"), len(text))
    assert decode_at(tok, text, token_indices_for_spans(text, [ist], SlowLike(tok))[0].indices) == ("i\u0307stanbul")


class SlowLike:
    """A tokenizer without offsets (like transformers 4's slow CLIPTokenizer)."""

    is_fast = False

    def __init__(self, tok):
        self.tok = tok
        self.model_max_length = tok.model_max_length

    def __call__(self, text, **kwargs):
        if kwargs.get("return_offsets_mapping"):
            raise NotImplementedError("slow tokenizers have no offsets")
        return self.tok(text, **kwargs)

    def convert_ids_to_tokens(self, ids):
        return self.tok.convert_ids_to_tokens(ids)


@pytest.mark.parametrize(
    "text",
    [
        "a hippopotamus, in the river!",
        "A Caf\u00e9 \U0001f436 with a cr\u00e8me br\u00fbl\u00e9e",
        "a dog's   bone;(red) 3 apples",
        "\u65e5\u672c\u306e\u732b and a cat",
    ],
)
def test_tokenizers_without_offsets_give_the_same_positions(tok, text):
    spans = [(m.start(), m.end()) for m in __import__("re").finditer(r"\S+", text)]
    slow = SlowLike(tok)
    assert token_char_spans(text, slow) == token_char_spans(text, tok)
    assert token_indices_for_spans(text, spans, slow) == token_indices_for_spans(text, spans, tok)
    for span, r in zip(spans, token_indices_for_spans(text, spans, slow)):
        assert decode_at(tok, text, r.indices) == words_of(text, [span])


def test_wrong_offsets_are_detected(tok):
    class ShiftedOffsets:  # a fast tokenizer whose offsets are off by one character
        is_fast = True

        def __call__(self, text, **kwargs):
            out = dict(tok(text, **kwargs))
            if "offset_mapping" in out:
                out["offset_mapping"] = [(s + 1, e + 1) for s, e in out["offset_mapping"]]
            return out

        def convert_ids_to_tokens(self, ids):
            return tok.convert_ids_to_tokens(ids)

    text = "a dog and a cat"
    assert token_char_spans(text, ShiftedOffsets()) == [(0, 1), (2, 5), (6, 9), (10, 11), (12, 15)]
    assert token_indices_for_spans(text, [(12, 15)], ShiftedOffsets()) == [SpanTokens((5,), False)]


def test_misaligned_tokenizer_raises(tok):
    class Inconsistent(SlowLike):
        def __call__(self, text, **kwargs):  # a list of pieces tokenises differently
            out = dict(super().__call__(text, **kwargs))
            if isinstance(text, list):
                out["input_ids"] = [ids + [320] for ids in out["input_ids"]]
            return out

    with pytest.raises(TokenAlignmentError):
        token_indices_for_spans("a cat", [(2, 5)], Inconsistent(tok))


def test_truncated_spans_get_no_indices(tok):
    # "a red car," is 4 single tokens, so chunk k's words sit at 1 + 4k + 1 and 1 + 4k + 2.
    unit = "a red car, "
    assert count_tokens(unit, tok) == 2 + 4
    for prefix, n_prefix_tokens in (("", 0), ("big ", 1)):
        text = prefix + unit * 30
        spans = []
        for k in range(30):
            red = len(prefix) + k * len(unit) + 2
            spans.append((red, red + len("red car")))
        result = token_indices_for_spans(text, spans, tok)
        for k, r in enumerate(result):
            first = 1 + n_prefix_tokens + 4 * k + 1
            expected = (first, first + 1)
            if expected[-1] >= 76:
                assert r == SpanTokens((), True), k
            else:
                assert r == SpanTokens(expected, False), k
                assert decode_at(tok, text, r.indices) == "redcar"
        # with the "big " prefix chunk 18 straddles the EOS slot (75, 76): truncated, not partial
        if prefix:
            assert result[18] == SpanTokens((), True)
        # a bigger limit keeps them all
        wide = token_indices_for_spans(text, spans, tok, max_length=200)
        assert not any(r.truncated for r in wide)


def test_truncation_with_noun_chunks(tok, nlp):
    text = ", ".join(["a red car", "a blue bus", "a green tree", "a small dog"] * 6)
    chunks = noun_chunks(text, nlp)
    assert len(chunks) == 24
    result = chunk_token_indices(text, chunks, tok)
    assert result[0].indices and result[-1] == SpanTokens((), True)
    kept = [(c, r) for c, r in zip(chunks, result) if not r.truncated]
    assert 0 < len(kept) < 24 and all(r.truncated for r in result[len(kept) :])
    check_chunks(tok, text, [c for c, _ in kept], [r for _, r in kept])
    assert max(r.indices[-1] for _, r in kept) < 76


def test_empty_and_bad_spans(tok):
    assert chunk_token_indices("", [], tok) == []
    assert token_indices_for_spans("", [(0, 0)], tok) == [SpanTokens((), False)]
    assert token_indices_for_spans("a  cat", [(1, 2)], tok) == [SpanTokens((), False)]  # whitespace
    assert token_indices_for_spans("run quickly", [], tok) == []
    with pytest.raises(ValueError):
        token_indices_for_spans("a cat", [(3, 9)], tok)
    with pytest.raises(ValueError):
        token_indices_for_spans("a cat", [(3, 2)], tok)
    with pytest.raises(TypeError):
        token_indices_for_spans("a cat", [None], tok)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        token_indices_for_spans(None, [], tok)  # type: ignore[arg-type]
    chunk = NounChunk("cat", "cat", 2, 5, ((2, 5),))
    assert chunk_token_indices("a cat", [chunk], tok) == [SpanTokens((2,), False)]


def test_clean_then_chunks_then_tokens(tok, nlp):
    cleaned = clean_prompt("a ((red)) car:: on a street --ar 16:9 <lora:x:1>")
    chunks = noun_chunks(cleaned.text, nlp)
    assert [c.text for c in chunks] == ["a red car", "a street"]
    check_chunks(tok, cleaned.text, chunks, chunk_token_indices(cleaned.text, chunks, tok))
