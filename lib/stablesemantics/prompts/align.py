"""Noun chunk → CLIP token positions, from character offsets verified by re-decoding."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from stablesemantics.prompts.chunks import NounChunk
from stablesemantics.prompts.clip_tokenizer import CLIP_MAX_LENGTH, _byte_decoder


class TokenAlignmentError(ValueError):
    """The tokens of a text could not be mapped back to its characters with certainty."""


@dataclass(frozen=True)
class SpanTokens:
    """Token positions of a character span in the padded sequence (BOS is position 0).

    ``truncated`` is True (and ``indices`` empty) when a token of the span falls at or after the
    EOS slot ``max_length - 1``: the text encoder never sees it. ``indices`` is also empty, with
    ``truncated`` False, for a span that covers no token (empty or whitespace only).
    """

    indices: tuple[int, ...]
    truncated: bool = False


# CLIP's pre-tokenisation: BPE never merges across these pieces.
_CLIP_PIECE_PATTERN = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"""
    r"""[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)


@functools.lru_cache(maxsize=1)
def _clip_piece_re():
    import regex

    return regex.compile(_CLIP_PIECE_PATTERN, regex.IGNORECASE)


def _token_bytes(tokenizer, ids: Sequence[int]) -> list[bytes]:
    """UTF-8 bytes each byte-level BPE token stands for (``</w>`` dropped)."""
    decoder = _byte_decoder()
    out = []
    for tok in tokenizer.convert_ids_to_tokens(list(ids)):
        tok = tok[:-4] if tok.endswith("</w>") else tok
        out.append(b"".join(bytes([decoder[c]]) if c in decoder else c.encode() for c in tok))
    return out


def _spans_from_offsets(text: str, tokenizer) -> list[tuple[int, int]] | None:
    """Offsets of a fast tokenizer, or None unless every token decodes to the text it points at."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids, offsets = enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]
    pieces = _token_bytes(tokenizer, ids)
    i, prev_end = 0, 0
    while i < len(ids):  # tokens sharing one offset (bytes of one character) are checked together
        start, end = offsets[i]
        j, buf = i, b""
        while j < len(ids) and offsets[j] == (start, end):
            buf += pieces[j]
            j += 1
        expected = unicodedata.normalize("NFC", text[start:end]).lower()
        if start < prev_end or end <= start or buf.decode("utf-8", "replace") != expected:
            return None
        prev_end, i = end, j
    return offsets


def _normalised_clusters(piece: str) -> tuple[str, list[tuple[int, int]]]:
    """``piece`` as the tokenizer normalises it (NFC, lower case), built cluster by cluster (a
    character and the combining marks after it), and for each normalised character the span in
    ``piece`` of the cluster it comes from ("e\u0301," -> "\u00e9," from (0, 2) and (2, 3))."""
    out, src, s = [], [], 0
    for i in range(1, len(piece) + 1):
        if i == len(piece) or not unicodedata.combining(piece[i]):
            norm = unicodedata.normalize("NFC", piece[s:i]).lower()
            out.append(norm)
            src += [(s, i)] * len(norm)
            s = i
    return "".join(out), src


def _spans_within_piece(piece: str, start: int, pieces: list[bytes]) -> list[tuple[int, int]]:
    """Char spans of a piece's tokens: through the normalised characters' clusters when the
    tokens spell the piece normalised cluster by cluster, else character for character when the
    lengths agree, else the whole piece for each token."""
    try:
        decoded = b"".join(pieces).decode("utf-8")
    except UnicodeDecodeError:
        decoded = None
    if decoded is not None and all(pieces):
        normalised, src = _normalised_clusters(piece)
        if normalised == decoded:
            char_of_byte = [i for i, ch in enumerate(decoded) for _ in ch.encode("utf-8")]
            spans, b = [], 0
            for p in pieces:
                first, last = src[char_of_byte[b]], src[char_of_byte[b + len(p) - 1]]
                spans.append((start + first[0], start + last[1]))
                b += len(p)
            return spans
    if decoded is None or len(decoded) != len(piece):
        return [(start, start + len(piece))] * len(pieces)
    byte_to_char = [i for i, ch in enumerate(decoded) for _ in ch.encode("utf-8")]
    spans, b = [], 0
    for p in pieces:
        if not p:
            spans.append((start, start + len(piece)))
            continue
        spans.append((start + byte_to_char[b], start + byte_to_char[b + len(p) - 1] + 1))
        b += len(p)
    return spans


def _spans_from_pieces(text: str, tokenizer, ids: list[int]) -> list[tuple[int, int]] | None:
    """Tokenise piece by piece (CLIP pre-tokens, else whitespace words); None if the pieces'
    tokens do not concatenate to the tokens of the whole text."""
    for finder in (_clip_piece_re().finditer, re.compile(r"\S+").finditer):
        matches = list(finder(text))
        piece_ids = (
            tokenizer([m.group(0) for m in matches], add_special_tokens=False, verbose=False)["input_ids"]
            if matches
            else []
        )
        if [i for p in piece_ids for i in p] != ids:
            continue
        spans: list[tuple[int, int]] = []
        for m, p in zip(matches, piece_ids):
            spans += _spans_within_piece(m.group(0), m.start(), _token_bytes(tokenizer, p))
        return spans
    return None


def token_char_spans(text: str, tokenizer, *, use_offsets: bool | None = None) -> list[tuple[int, int]]:
    """Character span in ``text`` of each token of ``tokenizer(text, add_special_tokens=False)``.

    Fast tokenizers' offsets are used when every token decodes back to the characters it points
    at (``use_offsets=None``: when the tokenizer is fast). Otherwise, or if that check fails, the
    text is tokenised piece by piece (CLIP pre-tokens, then whitespace words) and the result is
    accepted only if it equals the tokens of the whole text; a token then spans its characters,
    or its whole piece when the tokenizer's normalisation changed the piece's length.
    Raises ``TokenAlignmentError`` when neither works.

    Example:
        >>> from stablesemantics.prompts import load_clip_tokenizer
        >>> token_char_spans("a hippopotamus", load_clip_tokenizer())
        [(0, 1), (2, 7), (7, 12), (12, 14)]
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if use_offsets is None:
        use_offsets = bool(getattr(tokenizer, "is_fast", False))
    if use_offsets and (spans := _spans_from_offsets(text, tokenizer)) is not None:
        return spans
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    if (spans := _spans_from_pieces(text, tokenizer, ids)) is None:
        raise TokenAlignmentError(f"cannot map the tokens of {text!r} back to its characters")
    return spans


def _first_content_position(text: str, tokenizer, n_content: int) -> int:
    """Position of the first content token in the full sequence (1 for CLIP: after BOS)."""
    full = tokenizer(text, truncation=False, verbose=False)["input_ids"]
    content = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    for k in range(min(3, len(full) - n_content + 1)):
        if full[k : k + n_content] == content:
            return k
    raise TokenAlignmentError(f"cannot find the text's tokens in the encoded sequence of {text!r}")


def _check_span(span: Sequence[int], n: int) -> tuple[int, int]:
    try:
        start, end = (int(x) for x in span)
    except (TypeError, ValueError):
        raise TypeError(f"a span must be a (start, end) pair of ints, got {span!r}") from None
    if not 0 <= start <= end <= n:
        raise ValueError(f"span {span!r} is not inside a text of {n} characters")
    return start, end


def _group_indices(
    text: str, groups: Sequence[Sequence[Sequence[int]]], tokenizer, max_length: int
) -> list[SpanTokens]:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    checked = [[_check_span(s, len(text)) for s in spans] for spans in groups]
    tok_spans = token_char_spans(text, tokenizer)
    first = _first_content_position(text, tokenizer, len(tok_spans))
    out = []
    for spans in checked:
        positions = sorted({first + i for i, (a, b) in enumerate(tok_spans) for s, e in spans if a < e and b > s})
        if positions and positions[-1] >= max_length - 1:
            out.append(SpanTokens((), True))
        else:
            out.append(SpanTokens(tuple(positions), False))
    return out


def token_indices_for_spans(
    text: str, spans: Sequence[tuple[int, int]], tokenizer, max_length: int = CLIP_MAX_LENGTH
) -> list[SpanTokens]:
    """Token positions (in the padded sequence, BOS = 0) of each character span of ``text``.

    A token belongs to a span if its characters overlap it. Spans reaching the EOS slot
    (position ``max_length - 1``) or beyond come back ``truncated`` with no indices.

    Example:
        >>> from stablesemantics.prompts import load_clip_tokenizer
        >>> tok = load_clip_tokenizer()
        >>> token_indices_for_spans("a cat walks across the catwalk", [(2, 5), (23, 30)], tok)
        [SpanTokens(indices=(2,), truncated=False), SpanTokens(indices=(6,), truncated=False)]
    """
    return _group_indices(text, [[s] for s in spans], tokenizer, max_length)


def chunk_token_indices(
    text: str, chunks: Sequence[NounChunk], tokenizer, max_length: int = CLIP_MAX_LENGTH
) -> list[SpanTokens]:
    """Token positions of each noun chunk's content words (``chunk.word_spans``), one
    ``SpanTokens`` per chunk; a chunk with any word past the limit is ``truncated``.

    Example:
        >>> from stablesemantics.prompts import load_clip_tokenizer, noun_chunks
        >>> text = "a dog and a dog"
        >>> [s.indices for s in chunk_token_indices(text, noun_chunks(text), load_clip_tokenizer())]
        [(2,), (5,)]
    """
    return _group_indices(text, [c.word_spans for c in chunks], tokenizer, max_length)
