"""Token segments: where each text encoder's tokens sit in the text sequence the attention sees.

A Stable Diffusion 1.x/2.x or SDXL UNet attends to one 77-token CLIP sequence (SDXL concatenates
two CLIP encoders feature-wise, so both share the positions). SD3 attends to ``[CLIP 77 | T5 n]``
(its two CLIP encoders again share positions), Flux to ``[T5 n]``. A :class:`TokenSegment` says
which tokenizer gives the positions of one part, where the part starts and how long it is;
:func:`segment_chunk_indices` maps noun chunks to positions in the whole sequence.

A chunk's positions are the union of its positions in every segment (SD3: its CLIP tokens and
its T5 tokens, the latter shifted by 77), so its map, the mean over its tokens
(:func:`stablesemantics.capture.chunk_maps`), averages what the model reads of the chunk through
each encoder. A chunk past one encoder's window keeps its positions in the others; it is
``truncated`` only when no segment sees it.

Example:
    >>> from stablesemantics.prompts import load_clip_tokenizer, noun_chunks
    >>> from stablesemantics.prompts.t5_tokenizer import load_tiny_t5_tokenizer
    >>> text = "a red car"
    >>> segments = [TokenSegment("clip", load_clip_tokenizer(), 0, 77),
    ...             TokenSegment("t5", load_tiny_t5_tokenizer(), 77, 32)]
    >>> [s.indices for s in segment_chunk_indices(text, noun_chunks(text), segments)]
    [(2, 3, 79, 80, 81, 82)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stablesemantics.prompts.align import SpanTokens, TokenAlignmentError, chunk_token_indices
from stablesemantics.prompts.chunks import NounChunk
from stablesemantics.prompts.clip_tokenizer import count_tokens


@dataclass(frozen=True)
class TokenSegment:
    """One text encoder's part of the attention's text sequence.

    Attributes:
        name: what the part is (``"clip"``, ``"t5"``).
        tokenizer: the tokenizer whose positions index this part.
        offset: position of the part's first token (CLIP's BOS, T5's first word) in the whole sequence.
        length: how many tokens the encoder sees (77 for CLIP; the pipeline's ``max_sequence_length`` for T5).
        twins: other tokenizers feeding the same positions (SDXL's and SD3's second CLIP); their tokens
            must equal ``tokenizer``'s up to the end token (padding may differ), which is checked.
    """

    name: str
    tokenizer: Any = field(repr=False)
    offset: int
    length: int
    twins: tuple[Any, ...] = field(default=(), repr=False)

    def record(self) -> dict[str, Any]:
        """JSON-able description (what a store records): name, offset, length, tokenizer class."""
        return {
            "name": self.name,
            "offset": self.offset,
            "length": self.length,
            "tokenizer": type(self.tokenizer).__name__,
            "twins": [type(t).__name__ for t in self.twins],
        }


def n_text_tokens(segments: Sequence[TokenSegment]) -> int:
    """Length of the whole text sequence the segments make up."""
    return max(s.offset + s.length for s in segments)


def check_twin_tokens(text: str, segment: TokenSegment) -> None:
    """Raise :class:`TokenAlignmentError` unless every twin tokenizer gives ``segment.tokenizer``'s tokens.

    Compared without padding (SDXL's second CLIP tokenizer pads with ``!`` where the first pads with
    the end token; the positions of real tokens are what matters).
    """
    ref = segment.tokenizer(text, truncation=True, max_length=segment.length, verbose=False)["input_ids"]
    for twin in segment.twins:
        ids = twin(text, truncation=True, max_length=segment.length, verbose=False)["input_ids"]
        if ids != ref:
            raise TokenAlignmentError(
                f"the {segment.name} tokenizers disagree on {text!r}: {ref} vs {ids}; their maps would "
                "mix tokens at different positions"
            )


def segment_chunk_indices(text: str, chunks: Sequence[NounChunk], segments: Sequence[TokenSegment]) -> list[SpanTokens]:
    """Positions of each noun chunk in the whole text sequence: the union over segments (see the module docstring)."""
    if not segments:
        raise ValueError("segments must not be empty")
    per_segment = []
    for segment in segments:
        check_twin_tokens(text, segment)
        per_segment.append(chunk_token_indices(text, chunks, segment.tokenizer, max_length=segment.length))
    out = []
    for k in range(len(chunks)):
        seen = [(seg, spans[k]) for seg, spans in zip(segments, per_segment)]
        positions = sorted({seg.offset + i for seg, span in seen if not span.truncated for i in span.indices})
        truncated = not positions and any(span.truncated for _, span in seen)
        out.append(SpanTokens(tuple(positions), truncated))
    return out


def too_long_for_a_segment(text: str, segments: Sequence[TokenSegment]) -> bool:
    """True if some encoder truncates ``text`` (it does not fit in that segment's length)."""
    return any(count_tokens(text, s.tokenizer) > s.length for s in segments)
