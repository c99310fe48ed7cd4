"""The captioning benchmark's rows (chapter 07)."""

from __future__ import annotations

import pytest

from stablesemantics import world
from stablesemantics.evaluate.caption_benchmark import (
    CHANCE,
    GENERATED,
    RENDERS,
    benchmark_captions,
    caption_score_rows,
    mismatched,
)


@pytest.mark.parametrize(
    ("captions", "expected"),
    [
        ([], []),
        (["a"], ["a"]),
        (["a", "b"], ["b", "a"]),
        (["a", "b", "c"], ["b", "c", "a"]),
        (["a", "b", "c", "d", "e"], ["c", "d", "e", "a", "b"]),
    ],
)
def test_mismatched_rotates_by_half(captions, expected):
    assert mismatched(captions) == expected


def test_benchmark_captions_has_the_three_rows():
    got = benchmark_captions(["g1", "g2"], ["r1", "r2"])
    assert got == {GENERATED: ["g1", "g2"], RENDERS: ["r1", "r2"], CHANCE: ["r2", "r1"]}


def test_caption_score_rows_of_perfect_captions():
    scenes = world.render_scenes(2, seed=0)
    prompts = [s.caption for s in scenes]
    rows = caption_score_rows({"same": prompts}, prompts, scenes, "echo")
    assert len(rows) == 1 and rows[0]["captioner"] == "echo" and rows[0]["images"] == "same"
    assert rows[0]["BLEU-1"] == pytest.approx(1.0) and rows[0]["class recall"] == 1.0
