"""The captioning benchmark's three rows: generated images, renders (upper reference), chance.

A captioner's scores on generated images mean little alone, so chapter 07 scores three sets of
captions against the same prompts: the captions of the generated images; those of the renders of
the prompts' scenes (a perfect image: the upper reference); and the renders' captions paired with
*other* prompts (an image that ignores its prompt: chance). The chance pairing rotates the
captions by half their number, so no caption meets its own prompt (with two or more).

>>> mismatched(["a", "b", "c", "d"])
['c', 'd', 'a', 'b']
"""

from __future__ import annotations

from collections.abc import Sequence

from stablesemantics.evaluate.captions import caption_scores, class_recall

#: The rows of :func:`benchmark_captions`, in order.
GENERATED, RENDERS, CHANCE = "generated", "renders (upper reference)", "renders, mismatched (chance)"


def mismatched(captions: Sequence[str]) -> list[str]:
    """``captions`` rotated by half their number (at least one): caption ``i`` moves to position
    ``i - n // 2``, so each lands next to another image's prompt."""
    shift = max(1, len(captions) // 2)
    return list(captions[shift:]) + list(captions[:shift])


def benchmark_captions(generated: Sequence[str], renders: Sequence[str]) -> dict[str, list[str]]:
    """The three caption sets, keyed by row name: generated, renders, renders mismatched."""
    return {GENERATED: list(generated), RENDERS: list(renders), CHANCE: mismatched(renders)}


def caption_score_rows(
    captions: dict[str, Sequence[str]], prompts: Sequence[str], scenes: Sequence, captioner: str
) -> list[dict]:
    """One row per caption set: BLEU-1..4 and CIDEr against ``prompts``
    (:func:`~stablesemantics.evaluate.captions.caption_scores`) and the class recall against the
    prompts' ``scenes``, labelled with the ``captioner`` name and the set's name (``images``)."""
    rows = []
    for name, caps in captions.items():
        sc = caption_scores(caps, prompts)
        rows.append({"captioner": captioner, "images": name, **sc, "class recall": class_recall(caps, scenes)})
    return rows
