"""Prompts: clean real-user captions, find their noun chunks, map chunks to CLIP token positions.

The pipeline is ``read_prompts`` (files) -> ``clean_prompt`` -> ``noun_chunks`` -> ``chunk_token_indices``;
``noun_coverage`` measures how many nouns of a collection get a chunk. Positions refer
to the padded 77-token sequence that a Stable Diffusion text encoder sees (position 0 is BOS),
so they index the token axis of the captured cross-attention maps directly.

Example:
    >>> from stablesemantics.prompts import (clean_prompt, noun_chunks, load_clip_tokenizer,
    ...                                      chunk_token_indices)
    >>> p = clean_prompt("a ((red)) car on a street --ar 16:9")
    >>> p.text, p.removed
    ('a red car on a street', ('--ar 16:9', '((red))'))
    >>> chunks = noun_chunks(p.text)
    >>> [c.text for c in chunks]
    ['a red car', 'a street']
    >>> [s.indices for s in chunk_token_indices(p.text, chunks, load_clip_tokenizer())]
    [(2, 3), (6,)]
"""

from stablesemantics.prompts.align import (
    SpanTokens,
    TokenAlignmentError,
    chunk_token_indices,
    token_char_spans,
    token_indices_for_spans,
)
from stablesemantics.prompts.chunks import SPACY_MODEL, NounChunk, load_nlp, noun_chunks, noun_chunks_many
from stablesemantics.prompts.clean import CleanedPrompt, CleaningReport, clean_prompt, clean_prompts
from stablesemantics.prompts.clip_tokenizer import (
    CLIP_BOS_ID,
    CLIP_BPE_FILE,
    CLIP_EOS_ID,
    CLIP_MAX_LENGTH,
    CLIP_PAD_ID,
    CLIP_VOCAB_SIZE,
    clip_bpe_path,
    count_tokens,
    load_clip_tokenizer,
    prompt_too_long,
)
from stablesemantics.prompts.coverage import NounCoverage, noun_coverage
from stablesemantics.prompts.files import (
    PromptFile,
    PromptFileError,
    SkippedRow,
    SkippedRowsWarning,
    read_prompt_file,
    read_prompts,
)
from stablesemantics.prompts.segments import TokenSegment, segment_chunk_indices

__all__ = [
    "CLIP_BOS_ID",
    "CLIP_BPE_FILE",
    "CLIP_EOS_ID",
    "CLIP_MAX_LENGTH",
    "CLIP_PAD_ID",
    "CLIP_VOCAB_SIZE",
    "CleanedPrompt",
    "CleaningReport",
    "NounChunk",
    "NounCoverage",
    "PromptFile",
    "PromptFileError",
    "SPACY_MODEL",
    "SkippedRow",
    "SkippedRowsWarning",
    "SpanTokens",
    "TokenAlignmentError",
    "TokenSegment",
    "chunk_token_indices",
    "clean_prompt",
    "clean_prompts",
    "clip_bpe_path",
    "count_tokens",
    "load_clip_tokenizer",
    "load_nlp",
    "noun_chunks",
    "noun_chunks_many",
    "noun_coverage",
    "prompt_too_long",
    "read_prompt_file",
    "read_prompts",
    "segment_chunk_indices",
    "token_char_spans",
    "token_indices_for_spans",
]
