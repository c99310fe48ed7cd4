"""Tests of stablesemantics.prompts: cleaning (flags, weights, LoRA tags, URLs, unicode) and deduplication."""

from __future__ import annotations

import pytest

from stablesemantics.prompts import CleanedPrompt, clean_prompt, clean_prompts


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
    c = clean_prompt("\u201ca dog\u201d \u2014 it\u2019s ca\u200bt-like in \uff26\uff35\uff2c\uff2c \ufb01ne")
    assert c.text == '"a dog" - it\'s cat-like in FULL fine'
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
    kept, report = clean_prompts(["A cat --ar 1:1", "a  CAT", "((a cat))", "--v 5", "", "a dog", "a dog::2"])
    assert [c.text for c in kept] == ["A cat", "a dog"]
    assert kept[0].original == "A cat --ar 1:1"
    assert (report.n_in, report.n_empty, report.n_duplicates, report.n_out) == (7, 2, 3, 2)
    assert report.removed_counts == {"flag": 2, "weight": 2}
    with pytest.raises(TypeError):
        clean_prompts("a cat")
    with pytest.raises(TypeError):
        clean_prompts(["a cat", 3])  # type: ignore[list-item]
