"""Prompt files: ``.txt``, ``.csv`` / ``.tsv`` (a named column), ``.json`` and ``.parquet``; bad rows are
reported with their line numbers and skipped, never dropped silently."""

from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROMPT_FILE_SUFFIXES = (".txt", ".csv", ".tsv", ".json", ".parquet")
_MAX_LISTED = 10  # skipped rows named in a warning


class PromptFileError(ValueError):
    """A prompts file that cannot be read at all (no such column, not a list, no reader for it)."""


class SkippedRowsWarning(UserWarning):
    """``read_prompts`` skipped rows of a prompts file (listed with their line numbers)."""


@dataclass(frozen=True)
class SkippedRow:
    """A row of a prompts file that gave no prompt: where it is (``line``, 1-based: the file's line
    for text, CSV and TSV files, the row for Parquet, the item for JSON) and why."""

    line: int
    reason: str


@dataclass(frozen=True)
class PromptFile:
    """The prompts of a file, the ``line`` each came from, and the rows that were skipped.

    ``unit`` names what ``line`` counts: ``"line"``, ``"row"`` (Parquet) or ``"item"`` (JSON).
    """

    path: Path
    prompts: tuple[str, ...]
    lines: tuple[int, ...]
    skipped: tuple[SkippedRow, ...]
    unit: str = "line"

    def skipped_message(self, limit: int = _MAX_LISTED) -> str:
        """One line naming the skipped rows (the first ``limit``), or "" if none were skipped."""
        if not self.skipped:
            return ""
        listed = "; ".join(f"{self.unit} {r.line} ({r.reason})" for r in self.skipped[:limit])
        more = f"; and {len(self.skipped) - limit} more" if len(self.skipped) > limit else ""
        return f"{self.path}: skipped {len(self.skipped)} {self.unit}(s) without a prompt: {listed}{more}"


def _decode(path: Path) -> str:
    """The file's text; bytes that are not UTF-8 become lone surrogates, so the rows holding them
    can be found and skipped (``_bad_text``) while the rest of the file is read."""
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    return text[1:] if text.startswith("\ufeff") else text


def _bad_text(value: Any) -> str | None:
    """Why ``value`` is no prompt (missing, not text, not UTF-8, blank), or None if it is one."""
    if value is None:
        return "missing value"
    if not isinstance(value, str):
        return f"not text ({type(value).__name__})"
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        return "not valid UTF-8"
    if not value.strip():
        return "empty prompt"
    return None


def _read_txt(path: Path) -> tuple[list[str], list[int], list[SkippedRow]]:
    """One prompt per line, stripped; blank lines separate, they are not rows."""
    prompts, lines, skipped = [], [], []
    text = _decode(path).replace("\r\n", "\n").replace("\r", "\n")
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if (reason := _bad_text(line)) is not None:
            skipped.append(SkippedRow(n, reason))
        else:
            prompts.append(line.strip())
            lines.append(n)
    return prompts, lines, skipped


def _read_delimited(path: Path, column: str, delimiter: str) -> tuple[list[str], list[int], list[SkippedRow]]:
    """The ``column`` of a CSV / TSV file with a header row; a record's line is the line it starts on."""
    reader = csv.reader(io.StringIO(_decode(path), newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise PromptFileError(f"{path}: empty file, expected a header with a {column!r} column") from None
    except csv.Error as e:
        raise PromptFileError(f"{path}: line 1: {e}") from None
    if column not in header:
        raise PromptFileError(f"{path}: no {column!r} column; the header has {header}")
    k = header.index(column)
    prompts, lines, skipped = [], [], []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            skipped.append(SkippedRow(start, f"unreadable: {e}"))
            continue
        if not row:  # a blank line
            continue
        if len(row) != len(header):
            skipped.append(
                SkippedRow(start, f"{len(row)} fields, the header has {len(header)} (an unquoted separator?)")
            )
        elif (reason := _bad_text(row[k])) is not None:
            skipped.append(SkippedRow(start, reason))
        else:
            prompts.append(row[k])
            lines.append(start)
    return prompts, lines, skipped


def _read_json(path: Path, column: str) -> tuple[list[str], list[int], list[SkippedRow]]:
    """A JSON list of strings, or of objects holding the prompt under ``column``."""
    try:
        data = json.loads(_decode(path))
    except (json.JSONDecodeError, UnicodeError) as e:
        raise PromptFileError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(data, list):
        raise PromptFileError(f"{path}: a JSON prompts file must hold a list, not a {type(data).__name__}")
    prompts, lines, skipped = [], [], []
    for n, item in enumerate(data, start=1):
        value = item.get(column) if isinstance(item, dict) else item
        if isinstance(item, dict) and column not in item:
            skipped.append(SkippedRow(n, f"an object without {column!r}"))
        elif (reason := _bad_text(value)) is not None:
            skipped.append(SkippedRow(n, reason))
        else:
            prompts.append(value)
            lines.append(n)
    return prompts, lines, skipped


def _read_parquet(path: Path, column: str) -> tuple[list[str], list[int], list[SkippedRow]]:
    """The ``column`` (strings) of a Parquet file, read in batches."""
    try:  # optional dependency: only Parquet files need it
        import pyarrow.parquet as pq
    except ImportError:
        raise PromptFileError(f"{path}: reading .parquet prompt files needs pyarrow (pip install pyarrow)") from None
    try:
        f = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises its own error types for files that are not Parquet
        raise PromptFileError(f"{path}: not a readable Parquet file: {e}") from None
    if column not in f.schema_arrow.names:
        raise PromptFileError(f"{path}: no {column!r} column; the file has {f.schema_arrow.names}")
    prompts, lines, skipped = [], [], []
    n = 0
    for batch in f.iter_batches(columns=[column]):
        for value in batch.column(0).to_pylist():
            n += 1
            if isinstance(value, bytes):
                value = value.decode("utf-8", errors="surrogateescape")
            if (reason := _bad_text(value)) is not None:
                skipped.append(SkippedRow(n, reason))
            else:
                prompts.append(value)
                lines.append(n)
    return prompts, lines, skipped


def read_prompt_file(path: str | Path, column: str = "prompt") -> PromptFile:
    """Read the prompts of a file, keeping track of where each came from and what was skipped.

    By suffix: ``.csv`` / ``.tsv`` (comma / tab separated, a header row naming ``column``),
    ``.json`` (a list of strings, or of objects with a ``column`` key), ``.parquet`` (its
    ``column``; needs pyarrow); any other suffix is a text file with one prompt per line (lines
    stripped, blank lines ignored). Rows without a usable prompt (empty or missing value, bytes
    that are not UTF-8, a CSV row with more or fewer fields than its header, a JSON item that is
    not a string) are skipped and listed in ``skipped``. A file that cannot be read at all raises
    ``PromptFileError`` (a ``ValueError``), a missing one ``FileNotFoundError``.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "p.csv"
        >>> _ = p.write_text('id,prompt\\n1,"a cat, asleep"\\n2,\\n3,a dog,extra\\n4,a bird\\n')
        >>> f = read_prompt_file(p)
        >>> f.prompts, f.lines, [(r.line, r.reason) for r in f.skipped]
        (('a cat, asleep', 'a bird'), (2, 5), [(3, 'empty prompt'), (4, '3 fields, the header has 2 (an unquoted separator?)')])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompts file {path} does not exist")
    suffix = path.suffix.lower()
    unit = "line"
    if suffix in (".csv", ".tsv"):
        prompts, lines, skipped = _read_delimited(path, column, "," if suffix == ".csv" else "\t")
    elif suffix == ".json":
        (prompts, lines, skipped), unit = _read_json(path, column), "item"
    elif suffix == ".parquet":
        (prompts, lines, skipped), unit = _read_parquet(path, column), "row"
    else:
        prompts, lines, skipped = _read_txt(path)
    return PromptFile(path, tuple(prompts), tuple(lines), tuple(skipped), unit)


def read_prompts(path: str | Path, column: str = "prompt") -> list[str]:
    """The prompts of a file (:func:`read_prompt_file`); skipped rows are reported in a
    ``SkippedRowsWarning`` that names their lines.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "p.txt"
    >>> _ = p.write_text("a red car\\n\\n a dog \\n")
    >>> read_prompts(p)
    ['a red car', 'a dog']
    """
    f = read_prompt_file(path, column)
    if f.skipped:
        warnings.warn(f.skipped_message(), SkippedRowsWarning, stacklevel=2)
    return list(f.prompts)
