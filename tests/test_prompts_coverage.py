"""Tests of stablesemantics.prompts.coverage: the share of a collection's nouns that get a noun chunk.

The spaCy pipeline comes from the ``nlp`` fixture (tests/conftest.py)."""

from __future__ import annotations

import pytest

from stablesemantics.prompts import NounCoverage, clean_prompt, noun_coverage
from stablesemantics.prompts import coverage as coverage_module
from stablesemantics.prompts.coverage import covered_nouns
from stablesemantics.prompts.lemmas import load_lexicon
from stablesemantics.world.noisy_prompts import world_prompts

# Prompts as people write them, with the nouns spaCy's own chunks lose or hide.
PROMPTS = [
    "a penguin juggling three oranges",  # spaCy: one chunk rooted in "oranges"
    "a blue mailbox near snow",
    "portrait of a sailor, fog, soft lighting",
    "a medium black dog next to a big green ball in a meadow, digital art, 4k, octane render",
    "a big green dog on a street, octane render",  # spaCy: "a street, octane render"
    "an astronaut riding a horse on mars",
    "a bowl of pho on a wooden table",
]


def test_covered_nouns_needs_the_head_or_a_modifier_of_it(nlp):
    text = "a penguin juggling three oranges"
    doc = nlp(text)
    penguin, oranges = doc[1].i, doc[4].i
    lexicon = load_lexicon(nlp)
    assert covered_nouns(doc, [(0, len(text))], lexicon) == {oranges}  # spaCy's chunk: the penguin is hidden
    assert covered_nouns(doc, [(0, 9), (19, len(text))], lexicon) == {penguin, oranges}
    cup = nlp("a coffee cup")
    assert covered_nouns(cup, [(0, 12)], lexicon) == {1, 2}  # "coffee" modifies the head
    street = nlp("a street, octane render")
    assert covered_nouns(street, [(0, len(street.text))], lexicon) == {3, 4}  # the comma cuts "street" off
    assert covered_nouns(street, [], lexicon) == set()


def test_noun_coverage_of_prompts_as_people_write_them(nlp):
    cov = noun_coverage(PROMPTS, nlp)
    assert isinstance(cov, NounCoverage) and cov.n_prompts == len(PROMPTS)
    assert cov.n_nouns == 24  # 2 + 2 + 4 + 6 (dog ball meadow art octane render) + 4 + 3 + 3
    assert cov.n_covered == cov.n_nouns and cov.share == 1.0 and cov.missed == ()
    # spaCy's own chunks lose at least the penguin, the verbless prompt's dog and the street before a comma
    assert cov.n_covered_spacy <= cov.n_nouns - 3 and cov.share_spacy == cov.n_covered_spacy / cov.n_nouns
    # one at a time gives the same counts
    parts = [noun_coverage([p], nlp) for p in PROMPTS]
    assert sum(c.n_nouns for c in parts) == cov.n_nouns
    assert sum(c.n_covered_spacy for c in parts) == cov.n_covered_spacy


def test_noun_coverage_of_a_noisy_prompt_collection(nlp):
    """MicroWorld's noisy prompts (typos, weights, style tails, capitals) after cleaning, as chapter 02 shows them."""
    _, prompts = world_prompts(200, seed=0)
    cov = noun_coverage([clean_prompt(p).text for p in prompts], nlp)
    assert cov.n_nouns > 1000
    assert cov.share >= 0.99
    assert cov.share_spacy < cov.share


def test_noun_coverage_reports_missed_nouns(nlp, monkeypatch):
    assert noun_coverage(["a cat on a mat", "two dogs"], nlp).missed == ()
    monkeypatch.setattr(coverage_module, "_chunks_of_doc", lambda *args: [])  # a chunker that finds nothing
    cov = noun_coverage(["a cat on a mat", "run", "two dogs"], nlp, max_missed=2)
    assert (cov.n_nouns, cov.n_covered, cov.n_covered_spacy) == (3, 0, 3)
    assert cov.missed == ((0, "cat"), (0, "mat"))
    assert len(noun_coverage(["a cat on a mat", "run", "two dogs"], nlp).missed) == 3


def test_noun_coverage_edge_cases(nlp):
    empty = noun_coverage([], nlp)
    assert (empty.n_prompts, empty.n_nouns, empty.share, empty.share_spacy) == (0, 0, 1.0, 1.0)
    assert noun_coverage(["", "run quickly", ",,,"], nlp).n_nouns == 0
    caps = noun_coverage(["A PENGUIN JUGGLING THREE ORANGES"], nlp)
    assert (caps.n_nouns, caps.n_covered) == (2, 2)
    with pytest.raises(TypeError):
        noun_coverage(["a cat", None], nlp)  # type: ignore[list-item]
