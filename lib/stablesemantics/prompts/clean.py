"""Clean real-user prompts: Midjourney and web-UI flags, weights, brackets, prompt editing, URLs, HTML; dedupe."""

from __future__ import annotations

import html
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
    ``removed_kinds[i]`` its kind: ``"prefix"``, ``"url"``, ``"lora"``, ``"html"`` (a tag, or an
    entity replaced by its character), ``"flag"``, ``"editing"`` (web-UI prompt editing
    ``[from:to:when]``, one side kept), ``"alternation"`` (``[a|b]``, the first kept),
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
# A flag starts a word, or follows a separator without a space ("a cat,--ar 1:1").
_FLAG_RE = re.compile(r"(?<![^\s,;|])--(?P<name>[A-Za-z][\w-]*)")
_NEXT_FLAG_RE = re.compile(r"(?<![^\s,;|])--[A-Za-z]")
_NUMERIC_VALUE_RE = re.compile(r"\s+(?P<v>[-+]?\.?\d[\w.:/]*)")
_WORD_VALUE_RE = re.compile(r"\s+(?P<v>(?!--)\S+)")
# Flags whose value may be a word (``--style raw``, ``--sref 123 / --sref url``).
_WORD_VALUED_FLAGS = frozenset({"style", "sref", "cref", "p", "profile", "personalize", "sv"})
# An em/en dash typed (or autocorrected) in place of "--" before a Midjourney flag name.
_DASH_FLAG_RE = re.compile(
    r"(?<![^\s,;|])[\u2012-\u2015\u2212]{1,2}(?=(?:ar|aspect|v|version|no|q|quality|s|stylize|chaos|c|"
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
# The web UI's BREAK is a word of its own, punctuation around it or not ("a sky BREAK, a tree").
_KEYWORD_RE = re.compile(r"\bBREAK\b|<\|(?:startoftext|endoftext)\|>")
# A weight left without its brackets: "a cat:1.2, a dog", "a (dog:1.2 in a park". The colon follows a
# letter (so "16:9" and "10:30" stay); a space after the colon only before a separator or the end.
_STRAY_WEIGHT_RE = re.compile(rf"(?<=[^\W\d_])\s*:(?:{_NUM}(?![\w.:/])|\s+{_NUM}(?=\s*(?:[,;|)\]]|$)))")
_HTML_ENTITY_RE = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_HTML_BLOCK_TAGS = "br|p|div|li|ul|ol|hr|h[1-6]|tr|td|th|table|blockquote"
_HTML_TAGS = rf"{_HTML_BLOCK_TAGS}|a|b|i|u|s|em|strong|span|font|small|big|sub|sup|code|pre|center|mark|del|ins|strike|tt|q|img|wbr"
# Tags without attributes, or with at least one ``name=value`` ("<a cat>" is not a link).
_HTML_TAG_RE = re.compile(
    rf"<!--.*?-->|</?(?:{_HTML_TAGS})\s*/?>|<(?:{_HTML_TAGS})\s[^<>=]*=[^<>]*>", re.IGNORECASE | re.DOTALL
)
_HTML_BLOCK_RE = re.compile(rf"</?(?:{_HTML_BLOCK_TAGS})\b", re.IGNORECASE)
# Prompt editing ``[from:to:when]`` counts ``when`` < 1 as a share of the steps, else as a step number.
_DEFAULT_STEPS = 20  # the AUTOMATIC1111 web UI's default number of sampling steps
_WHEN_RE = re.compile(rf"\s*({_NUM})\s*")
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


def _unescape_html(s: str, log: list) -> str:
    """Replace HTML character references (``&amp;``, ``&#233;``) by their characters."""

    def fn(m: re.Match) -> str:
        if (ch := html.unescape(m.group(0))) != m.group(0):
            log.append((m.group(0), "html"))
        return ch

    return _HTML_ENTITY_RE.sub(fn, s)


def _html_tag(m: re.Match) -> str:
    """A separator for a tag that breaks lines or blocks (``<br>``, ``<p>``), a space for others."""
    return _separator(m) if _HTML_BLOCK_RE.match(m.group(0)) else " "


def _top_level_split(s: str, sep: str) -> list[str]:
    """``s`` split at ``sep`` where it is outside round and curly brackets."""
    parts, current, depth = [], [], 0
    for ch in s:
        depth += (ch in "({") - (ch in ")}" and depth > 0)
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    return [*parts, "".join(current)]


def _schedule_choice(inner: str) -> tuple[str, str] | None:
    """``(kept text, kind)`` for the inside of a square bracket that is web-UI prompt editing or
    alternation, else None.

    The AUTOMATIC1111 web UI renders ``[from:to:when]`` with *from* for the first ``when`` of the
    steps (a share if below 1, else a step number) and *to* after; ``[to:when]`` adds *to* at
    ``when``, ``[from::when]`` removes *from* there. The cleaned prompt keeps the side used for
    more of the steps (*from* at half or more; a step number counts against 20 steps, the web
    UI's default): ``[dog:cat:0.3]`` -> ``cat``, ``[fog::0.8]`` -> ``fog``. Alternation
    ``[a|b|c]`` switches word every step, starting with the first, which stays.
    """
    options = _top_level_split(inner, "|")
    if len(options) > 1:
        return options[0], "alternation"
    parts = _top_level_split(inner, ":")
    if len(parts) in (2, 3) and (m := _WHEN_RE.fullmatch(parts[-1])):
        when = float(m.group(1))
        before, after = (parts[0], parts[1]) if len(parts) == 3 else ("", parts[0])
        return (before if (when if when < 1 else when / _DEFAULT_STEPS) >= 0.5 else after), "editing"
    return None


def _resolve_schedules(s: str, log: list) -> str:
    """Replace prompt editing and alternation (``_schedule_choice``) by the words they keep,
    innermost square brackets first; other square brackets stay for ``_unwrap_brackets``."""
    stack: list[list[str]] = [[]]
    for i, ch in enumerate(s):
        escaped = i > 0 and s[i - 1] == "\\"
        if ch == "[" and not escaped:
            stack.append([])
        elif ch == "]" and not escaped and len(stack) > 1:
            inner = "".join(stack.pop())
            if (choice := _schedule_choice(inner)) is None:
                stack[-1].append(f"[{inner}]")
            else:
                log.append((f"[{inner}]", choice[1]))
                stack[-1].append(f" {choice[0]} ")
        else:
            stack[-1].append(ch)
    while len(stack) > 1:  # unclosed brackets stay as they were
        inner = "".join(stack.pop())
        stack[-1].append(f"[{inner}")
    return "".join(stack[0])


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
    s = re.sub(r"\\+(?=[()\[\]{}])", "", s)  # A1111 escaped brackets
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

    Handles, in order: HTML entities (``&amp;`` -> ``&``), unicode (NFKC, curly quotes and
    dashes to ASCII, invisible characters), a ``/imagine prompt:`` prefix, URLs,
    ``<lora:name:0.8>``-style tags, HTML tags, ``BREAK`` (punctuation around it or not) and CLIP's
    special tokens, Midjourney flags (``--ar 16:9``, ``--v 5``, ``--tile``; ``--no`` takes
    everything up to the next flag), web-UI prompt editing and alternation (``[from:to:when]``,
    ``[to:when]``, ``[from::when]``, ``[a|b]``: the side used for more of the steps stays, the
    first of an alternation; see ``_schedule_choice``), ``word::2`` weights, attention brackets
    (``(word:1.3)``, ``((word))``, ``[word]``, ``{word}``; a single plain ``(...)`` stays),
    unbalanced brackets, weights left without their brackets (``a cat:1.2``), repeated
    punctuation, stray commas and whitespace. The result may be empty.

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
    s = _unescape_html(text, log)
    s = _normalise_unicode(s, log)
    s = _sub(_IMAGINE_RE, s, "prefix", log, "")
    s = _sub(_URL_RE, s, "url", log)
    s = _sub(_LORA_RE, s, "lora", log)
    s = _sub(_HTML_TAG_RE, s, "html", log, _html_tag)
    s = _sub(_KEYWORD_RE, s, "keyword", log, _separator)
    s = _remove_flags(s, log)
    s = _resolve_schedules(s, log)
    s = _sub(_MJ_WEIGHT_RE, s, "weight", log, _separator)
    s = _unwrap_brackets(s, log)
    s = _remove_unbalanced(s, log)
    s = _sub(_STRAY_WEIGHT_RE, s, "weight", log)
    s = _remove_flags(s, log)  # flags that a bracket or a weight hid ("(--ar 16:9", "cat:1.2--ar")
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
