"""Clean real-user prompts: Midjourney and web-UI flags, weights, brackets, URLs; dedupe."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


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
