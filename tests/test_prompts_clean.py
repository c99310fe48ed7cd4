"""Tests of stablesemantics.prompts: cleaning (flags, weights, prompt editing, LoRA tags, URLs, HTML, unicode) and
deduplication. The spaCy pipeline comes from the ``nlp`` fixture (tests/conftest.py)."""

from __future__ import annotations

import pytest

from stablesemantics.prompts import CleanedPrompt, clean_prompt, clean_prompts, noun_chunks


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


@pytest.mark.parametrize(
    "raw, text",
    [
        ("a blue sky BREAK, a green tree", "a blue sky, a green tree"),
        ("a blue sky BREAK,a green tree", "a blue sky, a green tree"),
        ("(a cat)BREAK(a dog)", "(a cat), (a dog)"),
        ("BREAKFAST on a table", "BREAKFAST on a table"),  # only the word itself
    ],
)
def test_clean_break_next_to_punctuation(raw, text):
    c = clean_prompt(raw)
    assert c.text == text
    assert "BREAK" not in c.text.split()


@pytest.mark.parametrize(
    "raw, text, kind",
    [
        # [from:to:when]: the side used for more of the steps stays (from at half or more)
        ("a [dog:cat:0.3] in a park", "a cat in a park", "editing"),
        ("a [dog:cat:0.7] in a park", "a dog in a park", "editing"),
        ("a [dog:cat:0.5] in a park", "a dog in a park", "editing"),
        # a step number counts against the web UI's default of 20 steps
        ("a [dog:cat:15] in a park", "a dog in a park", "editing"),
        ("a [dog:cat:4] in a park", "a cat in a park", "editing"),
        # [to:when] adds, [from::when] removes
        ("a [red:0.2] car", "a red car", "editing"),
        ("a [red:0.9] car", "a car", "editing"),
        ("a [fog::0.8] forest", "a fog forest", "editing"),
        ("a [fog::0.2] forest", "a forest", "editing"),
        # alternation: the first option stays
        ("a [cow|horse] in a field", "a cow in a field", "alternation"),
        ("a [cow | horse | pig] in a field", "a cow in a field", "alternation"),
        # nesting and weights inside
        ("a [(fluffy cat:1.2):dog:0.6]", "a fluffy cat", "editing"),
        ("a [[red|blue] car:bus:0.2]", "a bus", "editing"),
    ],
)
def test_clean_prompt_editing_and_alternation(raw, text, kind):
    c = clean_prompt(raw)
    assert c.text == text
    assert kind in c.removed_kinds
    assert not set(c.text) & set("[]|:")


def test_clean_square_brackets_that_are_not_editing_are_unwrapped():
    assert clean_prompt("a [cat] on a [[mat]]").text == "a cat on a mat"
    assert clean_prompt("a [cat] on a [[mat]]").removed_counts == {"weight": 3}
    assert clean_prompt("a [cat:dog:later] x").text == "a cat:dog:later x"  # no number: not editing
    assert clean_prompt("a [unclosed cat").text == "a unclosed cat"


def test_clean_html_tags_and_entities():
    c = clean_prompt("a cat &amp; a dog<br>a <b>red</b> car, <i>caf&eacute;</i> &quot;x&quot; &#233;")
    assert c.text == 'a cat & a dog, a red car, café "x" é'
    assert set(c.removed_kinds) == {"html"}
    assert clean_prompt('<p>a dog</p><p>a cat</p> <a href="https://x.org">link</a>').text == "a dog, a cat, link"
    assert clean_prompt("a tree<!-- note --> in snow&nbsp;&nbsp;").text == "a tree in snow"
    assert clean_prompt("&lt;lora:cute:0.8&gt; a cat").text == "a cat"  # escaped web-UI syntax
    # not HTML: an unknown entity, "<" as text, a textual inversion token
    assert clean_prompt("fish &chips; a <3 heart").text == "fish &chips; a <3 heart"
    assert clean_prompt("a photo of <cat-toy> on a mat").text == "a photo of <cat-toy> on a mat"


@pytest.mark.parametrize(
    "raw, text",
    [
        ("a cat:1.2, a dog", "a cat, a dog"),
        ("a (dog:1.2 in a park", "a dog in a park"),
        ("a dog:1.2) in a park", "a dog in a park"),
        ("a cat: 1.2", "a cat"),
        ("a cat :0.5, a dog:.8", "a cat, a dog"),
        # not weights: times, ratios, a colon before words
        ("a clock at 10:30, ratio 16:9", "a clock at 10:30, ratio 16:9"),
        ("note: 5 cats on a mat", "note: 5 cats on a mat"),
    ],
)
def test_clean_weights_left_without_brackets(raw, text):
    assert clean_prompt(raw).text == text


def test_leftover_weights_reach_no_chunk(nlp):
    for raw in ("a cat:1.2, a dog", "a (dog:1.2 in a park", "a [cow|horse]:1.1 BREAK, a tree"):
        text = clean_prompt(raw).text
        for chunk in noun_chunks(text, nlp):
            assert not any(ch.isdigit() or ch in ":[]|()" for ch in chunk.text + chunk.lemma), (raw, chunk)


def test_a_flag_behind_a_bracket_is_removed_in_one_pass():
    # found by tests/test_prompts_properties.py: "(" hid the flag until the bracket was dropped
    for text, kept in [
        ("0\r(--ar", "0"),
        ("a cat (--ar 16:9", "a cat"),
        ("a cat [--v 5]", "a cat"),
        ("cat:1.2--ar", "cat"),
    ]:
        c = clean_prompt(text)
        assert c.text == kept and clean_prompt(c.text).text == kept and "flag" in c.removed_kinds
