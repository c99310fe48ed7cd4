"""The lemma of a noun chunk's root: spaCy's, unless it corrupts a name or a foreign word.

spaCy's English lemmatizer strips plural endings by rule and, when no rule gives a known noun,
keeps the first guess anyway: "ramen" becomes *raman*, "hermes" *herme*, "athens" *athen*. And a
name that looks like a plural of a known word loses its "s" ("mars" -> *mar*, "wales" ->
*wale*). The chunk's lemma is the class an attention map is filed under, so a wrong one merges
or splits classes.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

# Names written in lower case that spaCy takes for the plural of another known noun.
_NAMES_LIKE_PLURALS = frozenset(
    "mars wales marseilles philippines alps ares athens hermes naples achilles hercules versailles seychelles "
    "bahamas andes pyrenees rockies midas lagos tunis".split()
)


class Lexicon(NamedTuple):
    """Words known to a spaCy rule lemmatizer: its noun and adjective indexes (WordNet's lemmas)
    and the forms of its irregular noun plurals ("men", "teeth", "mice")."""

    nouns: frozenset[str]
    adjectives: frozenset[str]
    irregular_plurals: frozenset[str]


@functools.lru_cache(maxsize=8)
def load_lexicon(nlp) -> Lexicon | None:
    """The :class:`Lexicon` of the rule lemmatizer of ``nlp``, or None if it has none."""
    try:
        lookups = nlp.get_pipe("lemmatizer").lookups
        index = lookups.get_table("lemma_index")
        return Lexicon(
            frozenset(index["noun"]), frozenset(index["adj"]), frozenset(lookups.get_table("lemma_exc")["noun"])
        )
    except (KeyError, AttributeError, TypeError, ValueError):  # another pipeline, or no rule tables
        return None


def is_noun_only(word: str, lexicon: Lexicon | None) -> bool:
    """True if ``word`` is a known noun and no known adjective ("kitten", "marble", not "purple").

    spaCy's small model tags the head of "a medium purple kitten" as an adjective (and *purple*
    as a noun); a word that can only be a noun is still one.
    """
    word = word.lower()
    return lexicon is not None and word in lexicon.nouns and word not in lexicon.adjectives


def root_lemma(token, form: str, lexicon: Lexicon | None) -> str:
    """Lower-cased lemma of a chunk's root ``token``; ``form`` is its text in the prompt.

    A proper noun keeps its form; so does a noun whose spaCy lemma is not a known noun (a
    foreign or new word: "ramen", "pho", "emojis"), unless spaCy only took off a plural "s"
    after a consonant ("smartphones" -> *smartphone*); a listed name keeps its form ("mars").
    Other words get spaCy's lemma. Without a ``lexicon`` this is spaCy's lemma, lower-cased.

    Example:
        >>> from stablesemantics.prompts import load_nlp
        >>> nlp = load_nlp()
        >>> words = ("mars", "ramen", "dogs", "men", "smartphones")
        >>> [root_lemma(nlp(f"a photo of {w}")[-1], w, load_lexicon(nlp)) for w in words]
        ['mars', 'ramen', 'dog', 'man', 'smartphone']
    """
    lemma, form = token.lemma_.lower(), form.lower()
    if lexicon is None or lemma == form:
        return lemma
    if token.pos_ == "PROPN" or form in _NAMES_LIKE_PLURALS:
        return form
    if token.pos_ != "NOUN":
        return lemma
    if form in lexicon.irregular_plurals or lemma in lexicon.nouns:
        return lemma
    if form not in lexicon.nouns and form == lemma + "s" and len(form) > 2 and form[-2] not in "aiousx":
        return lemma
    return form
