"""Property tests (hypothesis) of the text path: any string cleans, chunks and aligns without crashing; every
token position of a chunk decodes to the chunk's content words; truncation is flagged exactly.

Token expectations come from the tokenizer's own encoding and decoder, not from the code under test. ``tok`` and
``nlp`` are module-scoped fixtures of tests/conftest.py.

Positions decode to exactly the chunk's words when the words are whole CLIP pieces (words between spaces and
punctuation: prompts as people write them). In an arbitrary string spaCy may cut a word where CLIP's byte-pair
tokens do not ("\U0001f1f8\U0001f1f9", two regional indicators, is two spaCy tokens and CLIP tokens that share
bytes of both): the shared token then belongs to both words, and decodes with a piece of the neighbour.
"""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from stablesemantics.prompts import CLIP_MAX_LENGTH, chunk_token_indices, clean_prompt, noun_chunks

FAST = settings(max_examples=100, deadline=None)

WORDS = (
    "a an the of on in with next to near above below and , ; . ! ? - ' \" ( ) [ ] { } | : :: 1.2 0.5 16:9 10 "
    "cat cats dog penguin juggling oranges mailbox snow portrait sailor fog soft lighting astronaut mars pho ramen "
    "red blue green medium purple kitten big small tiny juggling riding wearing sitting cat-shaped coffee cup "
    "masterpiece 8k 4k octane render BREAK --ar --v 5 --no <lora:x:0.8> <br> &amp; &quot; http://x.org/a.png "
    "Café crème brûlée İstanbul ﬁsh 🐶 A CAT ON A MAT hippopotamus dog's (red) [blue] {green} cat:1.2"
).split(" ")
ODD = "日本の猫 👨\u200d👩 e\u0301 \U0001f1f8\U0001f1f9 \t \u2028".split(" ")
# Prompt-like strings: words, web-UI syntax, punctuation and arbitrary characters, with or without spaces.
PROMPTS = st.lists(st.one_of(st.sampled_from(WORDS + ODD), st.text(min_size=1, max_size=4)), max_size=60).flatmap(
    lambda parts: st.sampled_from([" ", "", ", ", "  "]).map(lambda sep: sep.join(parts))
)
# Prompts as people write them: known words and lower-case words, separated by spaces or commas.
SPACED_PROMPTS = st.lists(
    st.one_of(st.sampled_from(WORDS), st.from_regex(r"[a-z]{1,10}", fullmatch=True)), max_size=60
).flatmap(lambda parts: st.sampled_from([" ", ", "]).map(lambda sep: sep.join(parts)))
ANY_TEXT = st.text(max_size=300)


def words_of(text: str, spans) -> str:
    """What the CLIP tokenizer's normaliser makes of the words (NFC, lower case), without spaces."""
    return "".join(unicodedata.normalize("NFC", text[s:e]).lower() for s, e in spans).replace(" ", "")


def decode_at(tok, ids, positions) -> str:
    return tok.decode([ids[i] for i in positions]).replace(" ", "")


def check_chunks(text, chunks):
    previous_end = 0
    for c in chunks:
        assert text[c.start : c.end] == c.text and c.start >= previous_end
        assert c.word_spans and all(c.start <= s < e <= c.end for s, e in c.word_spans)
        assert isinstance(c.lemma, str) and c.lemma
        previous_end = c.end


@FAST
@given(ANY_TEXT)
def test_cleaning_never_crashes(text):
    c = clean_prompt(text)
    assert c.original == text and len(c.removed) == len(c.removed_kinds)
    assert c.text == c.text.strip() and "  " not in c.text
    assert clean_prompt(c.text).text == c.text  # cleaning is idempotent


@FAST
@given(PROMPTS)
def test_cleaning_prompt_like_text(text):
    c = clean_prompt(text)
    assert clean_prompt(c.text).text == c.text
    assert "BREAK" not in c.text.replace("BREAKS", "").split()


@FAST
@given(st.one_of(ANY_TEXT, PROMPTS))
def test_chunking_never_crashes(nlp, text):
    check_chunks(text, noun_chunks(text, nlp))
    cleaned = clean_prompt(text).text
    check_chunks(cleaned, noun_chunks(cleaned, nlp))


def check_positions(tok, nlp, text, exact: bool):
    chunks = noun_chunks(text, nlp)
    ids = tok(text, truncation=False, verbose=False)["input_ids"]
    result = chunk_token_indices(text, chunks, tok)
    wide = chunk_token_indices(text, chunks, tok, max_length=len(ids) + 1)  # no limit
    assert len(result) == len(wide) == len(chunks)
    for chunk, r, w in zip(chunks, result, wide):
        assert not w.truncated and w.indices, chunk
        assert list(w.indices) == sorted(set(w.indices)) and w.indices[0] >= 1 and w.indices[-1] < len(ids) - 1
        if exact:
            assert decode_at(tok, ids, w.indices) == words_of(text, chunk.word_spans), chunk
        # truncated exactly when a token of the chunk reaches the EOS slot of the 77-token window
        assert r.truncated == (w.indices[-1] >= CLIP_MAX_LENGTH - 1)
        assert r.indices == (() if r.truncated else w.indices)


@FAST
@given(SPACED_PROMPTS, st.booleans())
def test_positions_decode_to_the_chunk_words_and_truncation_is_exact(tok, nlp, text, clean):
    check_positions(tok, nlp, clean_prompt(text).text if clean else text, exact=True)


@FAST
@given(st.one_of(PROMPTS, ANY_TEXT), st.booleans())
def test_alignment_of_any_string_never_crashes(tok, nlp, text, clean):
    check_positions(tok, nlp, clean_prompt(text).text if clean else text, exact=False)
