"""Tests of stablesemantics.prompts: noun chunks (spaCy, with the corrections for prompt-speak).

The spaCy pipeline comes from the ``nlp`` fixture (tests/conftest.py)."""

from __future__ import annotations

import pytest

from stablesemantics.prompts import noun_chunks, noun_chunks_many


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
        ("a medium black dog", "dog"),
        ("a big green ball", "ball"),
        ("a meadow", "meadow"),
    ]
    assert [text[s:e] for s, e in chunks[0].word_spans] == ["medium", "black", "dog"]
    assert noun_chunks_many([text], nlp) == [chunks]


def test_noun_chunks_are_split_at_the_commas_of_a_style_tail(nlp):
    # spaCy's own chunk is "a street, octane render", rooted in "render"
    text = "a big green dog on a street, octane render"
    assert [c.root.lemma_ for c in nlp(text).noun_chunks] == ["dog", "render"]
    chunks = noun_chunks(text, nlp)
    assert [(c.text, c.lemma) for c in chunks] == [
        ("a big green dog", "dog"),
        ("a street", "street"),
        ("octane render", "render"),
    ]
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


@pytest.mark.parametrize(
    "text, heads",
    [
        # a participle after a noun: spaCy's one chunk "a penguin juggling three oranges" hides the penguin
        ("a penguin juggling three oranges", ["penguin", "orange"]),
        ("A penguin juggling three oranges, digital art", ["penguin", "orange", "art"]),
        ("a blue mailbox near snow", ["mailbox", "snow"]),
        ("a blue mailbox near snow, 4k", ["mailbox", "snow", "4k"]),
        # comma lists
        ("portrait of a sailor, fog, soft lighting", ["portrait", "sailor", "fog", "lighting"]),
        ("portrait of a sailor, fog, soft lighting, highly detailed", ["portrait", "sailor", "fog", "lighting"]),
        ("kitchen interior, wooden cabinets, marble countertop", ["interior", "cabinet", "countertop"]),
        # a hyphenated modifier and a compound stay in their noun's chunk
        ("a cat-shaped cloud over a city", ["cloud", "city"]),
        ("a coffee cup on a desk", ["cup", "desk"]),
        # spaCy tags the head an adjective ("kitten") and the colour a noun ("purple")
        ("a red car below a medium purple kitten in a meadow", ["car", "kitten", "meadow"]),
        # the noun before "(tree)" joins its chunk instead of making one of its own
        ("a small orange (lamp) next to a small red chair", ["lamp", "chair"]),
    ],
)
def test_every_noun_gets_a_chunk(nlp, text, heads):
    chunks = noun_chunks(text, nlp)
    assert [c.lemma for c in chunks] == heads
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert all(c.start <= s < e <= c.end for s, e in c.word_spans)
    spans = [(c.start, c.end) for c in chunks]
    assert all(e0 <= s1 for (_, e0), (s1, _) in zip(spans, spans[1:]))  # in order, never overlapping


def test_a_participle_belongs_to_no_chunk(nlp):
    text = "a penguin juggling three oranges"
    penguin, oranges = noun_chunks(text, nlp)
    assert (penguin.text, oranges.text) == ("a penguin", "three oranges")
    assert [text[s:e] for s, e in penguin.word_spans] == ["penguin"]
    assert [text[s:e] for s, e in oranges.word_spans] == ["three", "oranges"]


@pytest.mark.parametrize(
    "text, lemma",
    [
        ("an astronaut on mars", "mars"),  # not "mar"
        ("an astronaut riding a horse on Mars", "mars"),
        ("a bowl of pho", "pho"),
        ("a bowl of ramen", "ramen"),  # spaCy: "raman"
        ("a statue of hermes", "hermes"),  # spaCy: "herme"
        ("a map of wales", "wales"),
        ("a cat wearing goggles", "goggles"),  # spaCy: "goggle", not a known noun
        ("a photo of smartphones", "smartphone"),  # a new word, plural "s" after a consonant
        ("three dogs", "dog"),
        ("two men", "man"),
        ("teeth", "tooth"),
        ("the small red cars", "car"),
    ],
)
def test_lemmas_keep_names_and_foreign_words(nlp, text, lemma):
    assert noun_chunks(text, nlp)[-1].lemma == lemma
