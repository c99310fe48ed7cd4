"""How many of the nouns of a prompt collection get a noun chunk of their own (the chunker's recall)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from stablesemantics.prompts.chunks import _SEPARATORS, _chunks_of_doc, _parse_form, breaks_phrase, is_noun, load_nlp
from stablesemantics.prompts.lemmas import Lexicon, load_lexicon


@dataclass(frozen=True)
class NounCoverage:
    """Nouns of a prompt collection and how many of them the noun chunks cover.

    ``n_covered`` counts the nouns covered by :func:`~stablesemantics.prompts.noun_chunks`,
    ``n_covered_spacy`` those covered by spaCy's own ``doc.noun_chunks`` (for comparison);
    ``missed`` lists ``(prompt index, noun)`` for the first nouns the noun chunks miss.
    """

    n_prompts: int
    n_nouns: int
    n_covered: int
    n_covered_spacy: int
    missed: tuple[tuple[int, str], ...] = ()

    @property
    def share(self) -> float:
        """Share of the nouns that the noun chunks cover (1.0 when there are no nouns)."""
        return self.n_covered / self.n_nouns if self.n_nouns else 1.0

    @property
    def share_spacy(self) -> float:
        """Share of the nouns that spaCy's own noun chunks cover (1.0 when there are no nouns)."""
        return self.n_covered_spacy / self.n_nouns if self.n_nouns else 1.0


def covered_nouns(doc, spans: Sequence[tuple[int, int]], lexicon: Lexicon | None = None) -> set[int]:
    """Indices of the tokens of ``doc`` that are nouns covered by a chunk, given the chunks'
    character ``spans``.

    A noun is covered by the chunk whose head it is (the chunk's last noun), or as a modifier of
    that head ("coffee" in "a coffee cup") when no separator or phrase break (``breaks_phrase``)
    stands between them: in spaCy's "a penguin juggling three oranges", rooted in *oranges*, the
    penguin is hidden, not covered.
    """
    covered: set[int] = set()
    for start, end in spans:
        tokens = [t for t in doc if start <= t.idx and t.idx + len(t.text) <= end]
        nouns = [t for t in tokens if is_noun(t, lexicon)]
        if not nouns:
            continue
        head = nouns[-1]
        for t in nouns:
            between = doc[t.i + 1 : head.i + 1]
            if not any(u.text in _SEPARATORS or breaks_phrase(u, lexicon) for u in between):
                covered.add(t.i)
    return covered


def noun_coverage(texts: Iterable[str], nlp=None, *, batch_size: int = 256, max_missed: int = 50) -> NounCoverage:
    """Count the nouns (and proper nouns) of ``texts`` and how many the noun chunks cover, both
    ours (:func:`~stablesemantics.prompts.noun_chunks`) and spaCy's own.

    Each text is parsed once, as ``noun_chunks`` parses it; nouns are the tokens ``is_noun``
    accepts (spaCy's nouns with a letter, and adjectives that can only be nouns).

    Example:
        >>> cov = noun_coverage(["a penguin juggling three oranges", "a cat on a mat"])
        >>> (cov.n_nouns, cov.n_covered, cov.n_covered_spacy, f"{cov.share:.0%}")
        (4, 4, 3, '100%')
    """
    texts = list(texts)
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"noun_coverage expects str items, got {type(t).__name__}")
    nlp = nlp if nlp is not None else load_nlp()
    lexicon = load_lexicon(nlp)
    n_nouns = n_covered = n_spacy = 0
    missed: list[tuple[int, str]] = []
    for k, (doc, text) in enumerate(zip(nlp.pipe((_parse_form(t) for t in texts), batch_size=batch_size), texts)):
        nouns = [t for t in doc if is_noun(t, lexicon)]
        ours = covered_nouns(doc, [(c.start, c.end) for c in _chunks_of_doc(doc, False, text, nlp)], lexicon)
        spacy = covered_nouns(doc, [(c.start_char, c.end_char) for c in doc.noun_chunks], lexicon)
        n_nouns += len(nouns)
        n_covered += sum(t.i in ours for t in nouns)
        n_spacy += sum(t.i in spacy for t in nouns)
        missed += [(k, text[t.idx : t.idx + len(t.text)]) for t in nouns if t.i not in ours][: max_missed - len(missed)]
    return NounCoverage(len(texts), n_nouns, n_covered, n_spacy, tuple(missed))
