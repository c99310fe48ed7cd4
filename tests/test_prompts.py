"""Tests of stablesemantics.prompts: cleaning, noun chunks, the offline CLIP tokenizer and the
chunk -> token position mapping.

Token expectations are computed independently of the code under test: by decoding the tokens at
the returned positions with the tokenizer's own decoder, or by counting tokens of prompts built
from words that are known to be single CLIP tokens.
"""

from __future__ import annotations

import gzip
import json
import unicodedata

import pytest

from stablesemantics.prompts import CleanedPrompt, NounChunk, SpanTokens, TokenAlignmentError, chunk_token_indices, clean_prompt, clean_prompts, clip_bpe_path, count_tokens, load_clip_tokenizer, noun_chunks, noun_chunks_many, prompt_too_long, token_char_spans, token_indices_for_spans


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache") / "clip-tokenizer"


@pytest.fixture(scope="module")
def tok(tok_dir):
    return load_clip_tokenizer(tok_dir)


@pytest.fixture(scope="module")
def nlp():
    from stablesemantics.prompts import load_nlp

    return load_nlp()


def decode_at(tok, text: str, indices) -> str:
    """The text of the tokens at ``indices`` of the full encoded ``text``, spaces removed."""
    ids = tok(text, truncation=False, verbose=False)["input_ids"]
    return tok.decode([ids[i] for i in indices]).replace(" ", "")


def words_of(text: str, spans) -> str:
    return "".join(unicodedata.normalize("NFC", text[s:e]).lower() for s, e in spans)


# --------------------------------------------------------------------------- cleaning


@pytest.mark.parametrize(
    "raw, text, removed",
    [
        ("a castle --ar 16:9 --v 5.2 --s 750", "a castle", ("--ar 16:9", "--v 5.2", "--s 750")),
        ("a cat --no text, watermark --ar 1:1", "a cat", ("--no text, watermark", "--ar 1:1")),
        ("a cat --no text, blurry hands", "a cat", ("--no text, blurry hands",)),
        ("a fox --tile in the snow", "a fox in the snow", ("--tile",)),
        ("a fox --style raw --q .5", "a fox", ("--style raw", "--q .5")),
        ("a cat \u2014ar 3:2", "a cat", ("--ar 3:2",)),  # autocorrected em dash
        ("a cat --v 5, trending", "a cat, trending", ("--v 5",)),
    ],
)
def test_clean_flags(raw, text, removed):
    c = clean_prompt(raw)
    assert (c.text, c.removed) == (text, removed)
    assert set(c.removed_kinds) == {"flag"}


@pytest.mark.parametrize(
    "raw, text",
    [
        ("a (cat:1.3) on a mat", "a cat on a mat"),
        ("a ((cat)) on a mat", "a cat on a mat"),
        ("a (((cat))) on a mat", "a cat on a mat"),
        ("a [cat] on a {mat}", "a cat on a mat"),
        ("a (fluffy cat:0.8), [blue:1.2] eyes", "a fluffy cat, blue eyes"),
        ("a red car::2 a blue bus::-0.5", "a red car, a blue bus"),
        ("a red car::2", "a red car"),
        ("(((masterpiece:1.2))), a dog", "masterpiece, a dog"),
    ],
)
def test_clean_weights(raw, text):
    c = clean_prompt(raw)
    assert c.text == text
    assert c.removed_counts["weight"] >= 1


def test_clean_plain_parentheses_and_numbers_stay():
    plain = "a dog (golden retriever) running"
    assert clean_prompt(plain).text == plain
    assert clean_prompt("1,000 cats").text == "1,000 cats"
    assert clean_prompt("a dog - a cat").text == "a dog - a cat"


def test_clean_lora_url_and_report():
    c = clean_prompt("a cat <lora:cuteCat_v2:0.8> see https://example.com/x?a=1, <hypernet:h:1> ok")
    assert c.text == "a cat see, ok"
    assert c.removed == ("https://example.com/x?a=1", "<lora:cuteCat_v2:0.8>", "<hypernet:h:1>")
    assert c.removed_counts == {"url": 1, "lora": 2}
    assert clean_prompt("www.site.com/img.png a dog").text == "a dog"


def test_clean_punctuation_and_whitespace():
    c = clean_prompt(" , , a dog ,, ,  sleeping!!!   on a mat...  ,")
    assert c.text == "a dog, sleeping! on a mat."
    assert set(c.removed_kinds) == {"punctuation"}
    assert clean_prompt("a cat,a dog ;; a bird").text == "a cat, a dog; a bird"
    assert clean_prompt("a (cat").text == "a cat"  # unbalanced bracket
    assert clean_prompt("a cat | a dog").text == "a cat, a dog"


def test_clean_unicode():
    c = clean_prompt(
        "\u201ca dog\u201d \u2014 it\u2019s ca\u200bt-like in \uff26\uff35\uff2c\uff2c \ufb01ne"
    )
    assert c.text == "\"a dog\" - it's cat-like in FULL fine"
    assert c.removed_counts == {"control": 1}
    # emoji (with its zero-width joiners) and accents survive
    assert clean_prompt("a caf\u00e9 \U0001f468\u200d\U0001f469 with cr\u00e8me").text == (
        "a caf\u00e9 \U0001f468\u200d\U0001f469 with cr\u00e8me"
    )


def test_clean_misc_prefix_keywords_and_empty():
    assert clean_prompt("/imagine prompt: a fox --tile").text == "a fox"
    assert clean_prompt("a cat BREAK a dog <|endoftext|>").text == "a cat, a dog"
    for raw in ("", "   ", "--ar 16:9", ",,,", "<lora:x:1>"):
        assert clean_prompt(raw).text == ""
    c = clean_prompt("a plain caption")
    assert c == CleanedPrompt("a plain caption", "a plain caption", (), ())
    with pytest.raises(TypeError):
        clean_prompt(None)  # type: ignore[arg-type]


def test_clean_prompts_dedupes_after_cleaning():
    kept, report = clean_prompts(
        ["A cat --ar 1:1", "a  CAT", "((a cat))", "--v 5", "", "a dog", "a dog::2"]
    )
    assert [c.text for c in kept] == ["A cat", "a dog"]
    assert kept[0].original == "A cat --ar 1:1"
    assert (report.n_in, report.n_empty, report.n_duplicates, report.n_out) == (7, 2, 3, 2)
    assert report.removed_counts == {"flag": 2, "weight": 2}
    with pytest.raises(TypeError):
        clean_prompts("a cat")
    with pytest.raises(TypeError):
        clean_prompts(["a cat", 3])  # type: ignore[list-item]


# --------------------------------------------------------------------------- noun chunks


def test_noun_chunks_basic(nlp):
    text = "The small red cars on a street next to a green tree"
    chunks = noun_chunks(text, nlp)
    assert [(c.text, c.lemma) for c in chunks] == [
        ("The small red cars", "car"),
        ("a street", "street"),
        ("a green tree", "tree"),
    ]
    for c in chunks:
        assert text[c.start : c.end] == c.text
    assert [text[s:e] for s, e in chunks[0].word_spans] == ["small", "red", "cars"]


def test_noun_chunks_possessives_pronouns_and_none(nlp):
    text = "a girl holding her cat's toy, it is red"
    chunks = noun_chunks(text, nlp)
    assert "it" not in [c.text for c in chunks]
    (toy,) = [c for c in chunks if c.text == "her cat's toy"]
    assert toy.lemma == "toy" and [text[s:e] for s, e in toy.word_spans] == ["cat", "toy"]
    assert [c.text for c in noun_chunks(text, nlp, include_pronouns=True)][-1] == "it"
    assert noun_chunks("run quickly", nlp) == []
    assert noun_chunks("", nlp) == []
    with pytest.raises(TypeError):
        noun_chunks(b"a dog", nlp)  # type: ignore[arg-type]
    texts = ["a dog and a dog", "", "run quickly"]
    assert noun_chunks_many(texts, nlp) == [noun_chunks(t, nlp) for t in texts]


def test_noun_chunks_keep_the_first_noun_of_verbless_prompts(nlp):
    # spaCy parses "dog" here as an unclassified dependent and its own noun_chunks drop it
    text = "a medium black dog next to a big green ball in a meadow, digital art, 4k, octane render"
    assert "dog" not in [c.root.lemma_ for c in nlp(text).noun_chunks]
    chunks = noun_chunks(text, nlp)
    assert [(c.text, c.lemma) for c in chunks][:3] == [
        ("a medium black dog", "dog"), ("a big green ball", "ball"), ("a meadow", "meadow")]
    assert [text[s:e] for s, e in chunks[0].word_spans] == ["medium", "black", "dog"]
    assert noun_chunks_many([text], nlp) == [chunks]


def test_noun_chunks_are_split_at_the_commas_of_a_style_tail(nlp):
    # spaCy's own chunk is "a street, octane render", rooted in "render"
    text = "a big green dog on a street, octane render"
    assert [c.root.lemma_ for c in nlp(text).noun_chunks] == ["dog", "render"]
    chunks = noun_chunks(text, nlp)
    assert [(c.text, c.lemma) for c in chunks] == [
        ("a big green dog", "dog"), ("a street", "street"), ("octane render", "render")]
    for c in chunks:
        assert text[c.start : c.end] == c.text
    assert [text[s:e] for s, e in chunks[2].word_spans] == ["octane", "render"]


def test_noun_chunks_of_an_all_capitals_prompt_match_the_lower_case_ones(nlp):
    text = "A BIG BROWN CHAIR NEXT TO A MEDIUM GREEN TABLE IN A ROOM"
    chunks = noun_chunks(text, nlp)
    lower = noun_chunks(text.lower(), nlp)
    assert [c.lemma for c in chunks] == [c.lemma for c in lower] == ["chair", "table", "room"]
    assert [c.text for c in chunks] == ["A BIG BROWN CHAIR", "A MEDIUM GREEN TABLE", "A ROOM"]  # the original text
    assert [(c.start, c.end, c.word_spans) for c in chunks] == [(c.start, c.end, c.word_spans) for c in lower]


# --------------------------------------------------------------------------- tokenizer


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


# --------------------------------------------------------------------------- chunk -> tokens


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
    assert decode_at(tok, text, token_indices_for_spans(text, [ist], SlowLike(tok))[0].indices) == (
        "i\u0307stanbul"
    )


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
