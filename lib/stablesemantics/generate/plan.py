"""Plan a generation run: check the inputs, clean prompts, find chunks and tokens, lay out every row."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from stablesemantics.prompts.align import chunk_token_indices
from stablesemantics.prompts.chunks import noun_chunks_many
from stablesemantics.prompts.clean import clean_prompt, clean_prompts
from stablesemantics.prompts.clip_tokenizer import CLIP_MAX_LENGTH, count_tokens
from stablesemantics.prompts.segments import TokenSegment, segment_chunk_indices, too_long_for_a_segment
from stablesemantics.store.schema import PER_IMAGE, PER_MAP, StoreLayout


class StoreMismatchError(ValueError):
    """An existing store at ``out`` was made with other settings or items; it is not overwritten."""


@dataclass
class GenerationPlan:
    """Items and map rows of a run, before any image is made (see :func:`plan_generation`).

    ``layout`` is what the store is created with; ``captions`` / ``prompt_ids`` are the
    deduplicated prompts; ``map_tokens[i]`` lists the token-position lists of image ``i``'s
    maps, in map-row order; ``truncated_prompt_ids`` the prompts longer than the
    tokenizer's window; ``cleaning`` the cleaning report as a dict.
    """

    layout: StoreLayout
    captions: list[str]
    prompt_ids: list[int]
    seeds: list[int]
    map_tokens: list[list[tuple[int, ...]]]
    truncated_prompt_ids: list[int]
    cleaning: dict[str, Any]


# --------------------------------------------------------------------------- checks


def _check_int(x: Any, name: str, minimum: int | None = 1) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    if minimum is not None and x < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {x}")
    return int(x)


def _check_prompts(prompts: Any) -> list[str]:
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        raise TypeError(f"prompts must be a sequence of str (e.g. a list), got {type(prompts).__name__}")
    out = list(prompts)
    for i, p in enumerate(out):
        if not isinstance(p, str):
            raise TypeError(f"prompts[{i}] must be a str, got {type(p).__name__}")
    if not out:
        raise ValueError("prompts is empty: give at least one prompt")
    return out


def _check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, bool):
        raise TypeError("seeds must be an int (how many: 0..n-1) or a sequence of ints, got bool")
    if isinstance(seeds, (int, np.integer)):
        n = _check_int(seeds, "seeds")
        return list(range(n))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray, range)):
        raise TypeError(f"seeds must be an int or a sequence of ints, got {type(seeds).__name__}")
    out = [_check_int(s, f"seeds[{i}]", minimum=0) for i, s in enumerate(seeds)]
    if not out:
        raise ValueError("seeds is empty: give at least one seed")
    if len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct, got {out}")
    if max(out) >= 2**63:
        raise ValueError("seeds must be < 2**63")
    return out


# --------------------------------------------------------------------------- planning


def plan_generation(
    prompts: Sequence[str],
    seeds: Sequence[int] | int,
    tokenizer: Any,
    *,
    image_size: tuple[int, int],
    map_size: tuple[int, int],
    batch_size: int,
    dedupe: bool = True,
) -> GenerationPlan:
    """Clean, dedupe, chunk and tokenise the prompts and lay out items and map rows.

    ``tokenizer`` is the CLIP tokenizer whose positions index the maps, or a list of
    :class:`~stablesemantics.prompts.segments.TokenSegment` (SDXL, SD3, Flux: see
    :func:`stablesemantics.models.families.token_segments`).

    Items are prompt-major: image ``p * n_seeds + s`` is prompt ``p`` with seed ``s``.
    ``prompt_id`` is the prompt's index in ``prompts`` (the caller's list), so images can be
    joined back to the caller's metadata even when duplicates were dropped.

    Example
    -------
    >>> from stablesemantics.prompts import load_clip_tokenizer
    >>> plan = plan_generation(["A red car --ar 3:2", "a red car"], 2, load_clip_tokenizer(),
    ...                        image_size=(32, 32), map_size=(8, 8), batch_size=2)
    >>> plan.captions, plan.layout.n_images, plan.cleaning["n_duplicates"]
    (['A red car'], 2, 1)
    """

    texts = _check_prompts(prompts)
    seed_list = _check_seeds(seeds)
    for i, t in enumerate(texts):
        if not clean_prompt(t).text.strip():
            raise ValueError(f"prompt {i} ({t!r}) is empty after cleaning")
    first_index: dict[str, int] = {}
    for i, t in enumerate(texts):
        first_index.setdefault(t, i)
    if dedupe:
        cleaned, report = clean_prompts(texts)
        cleaning = asdict(report) if hasattr(report, "__dataclass_fields__") else dict(vars(report))
        prompt_ids = [first_index[c.original] for c in cleaned]
        if cleaning.get("n_duplicates"):
            warnings.warn(f"{cleaning['n_duplicates']} duplicate prompt(s) dropped (after cleaning)", stacklevel=3)
    else:
        cleaned = [clean_prompt(t) for t in texts]
        cleaning = {"n_in": len(texts), "n_empty": 0, "n_duplicates": 0, "n_out": len(texts), "dedupe": False}
        prompt_ids = list(range(len(texts)))

    segments = list(tokenizer) if isinstance(tokenizer, (list, tuple)) else None
    if segments is not None and not all(isinstance(s, TokenSegment) for s in segments):
        raise TypeError("tokenizer must be a tokenizer or a list of TokenSegment")
    if segments is None:
        max_len = int(getattr(tokenizer, "model_max_length", CLIP_MAX_LENGTH) or CLIP_MAX_LENGTH)
    else:
        max_len = max(s.length for s in segments)
    per_prompt_chunks: list[list[dict[str, Any]]] = []
    truncated_ids: list[int] = []
    all_chunks = noun_chunks_many([c.text for c in cleaned])
    for c, pid, chunks in zip(cleaned, prompt_ids, all_chunks):
        if segments is None:
            spans = chunk_token_indices(c.text, chunks, tokenizer, max_length=max_len) if chunks else []
            too_long = count_tokens(c.text, tokenizer) > max_len
        else:
            spans = segment_chunk_indices(c.text, chunks, segments) if chunks else []
            too_long = too_long_for_a_segment(c.text, segments)
        if too_long:
            truncated_ids.append(pid)
        per_prompt_chunks.append(
            [
                {
                    "text": ch.text,
                    "lemma": ch.lemma,
                    "start": ch.start,
                    "end": ch.end,
                    "tokens": [int(i) for i in sp.indices],
                    "truncated": bool(sp.truncated),
                }
                for ch, sp in zip(chunks, spans)
            ]
        )
    if truncated_ids:
        warnings.warn(
            f"{len(truncated_ids)} prompt(s) are longer than {max_len} tokens (prompt ids "
            f"{truncated_ids[:10]}{'...' if len(truncated_ids) > 10 else ''}); the model sees only "
            "the first tokens and noun chunks past the window get no map (flagged 'truncated')",
            stacklevel=3,
        )

    per_image: dict[str, list[Any]] = {k: [] for k in PER_IMAGE}
    per_map: dict[str, list[Any]] = {k: [] for k in PER_MAP}
    map_tokens: list[list[tuple[int, ...]]] = []
    for c, pid, chunks in zip(cleaned, prompt_ids, per_prompt_chunks):
        for seed in seed_list:
            image = len(per_image["seed"])
            entries, tokens = [], []
            for ch in chunks:
                has_map = bool(ch["tokens"]) and not ch["truncated"]
                row = len(per_map["map_image"]) if has_map else -1
                if has_map:
                    per_map["map_image"].append(image)
                    per_map["map_chunk"].append(ch["text"])
                    per_map["map_lemma"].append(ch["lemma"])
                    per_map["map_token_indices"].append(json.dumps(ch["tokens"]))
                    tokens.append(tuple(ch["tokens"]))
                entries.append({**ch, "map": row})
            per_image["prompt_id"].append(pid)
            per_image["prompt"].append(c.original)
            per_image["caption"].append(c.text)
            per_image["seed"].append(seed)
            per_image["noun_chunks"].append(json.dumps(entries))
            map_tokens.append(tokens)
    layout = StoreLayout(image_size=image_size, map_size=map_size, batch_size=batch_size, **per_image, **per_map)
    return GenerationPlan(layout, [c.text for c in cleaned], prompt_ids, seed_list, map_tokens, truncated_ids, cleaning)
