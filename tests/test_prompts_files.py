"""Tests of stablesemantics.prompts.files: prompt files (.txt, .csv, .tsv, .json, .parquet), bad rows reported with
their line numbers and skipped."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from stablesemantics.prompts import (
    PromptFileError,
    SkippedRow,
    SkippedRowsWarning,
    read_prompt_file,
    read_prompts,
)


def test_txt_lines_and_bad_bytes(tmp_path: Path):
    p = tmp_path / "p.txt"
    p.write_bytes(b"\xef\xbb\xbfa red car\r\n\r\n  a dog  \nbad \xff\xfe bytes\n# hashtag art\ra cat\n\n")
    f = read_prompt_file(p)
    assert f.prompts == ("a red car", "a dog", "# hashtag art", "a cat")
    assert f.lines == (1, 3, 5, 6)
    assert f.skipped == (SkippedRow(4, "not valid UTF-8"),) and f.unit == "line"
    with pytest.warns(
        SkippedRowsWarning, match=r"p\.txt: skipped 1 line\(s\) without a prompt: line 4 \(not valid UTF-8\)"
    ):
        assert read_prompts(p) == list(f.prompts)
    # a prompt holding a line separator other than \n stays one prompt, and line numbers stay those of an editor
    (tmp_path / "u.txt").write_text("a cat\u2028on a mat\nsecond\n", encoding="utf-8")
    u = read_prompt_file(tmp_path / "u.txt")
    assert u.prompts == ("a cat\u2028on a mat", "second") and u.lines == (1, 2)


def test_csv_rows_with_line_numbers(tmp_path: Path):
    p = tmp_path / "p.csv"
    p.write_text(
        'id,prompt\n1,"a cat, sleeping"\n2,\n\n3,"a dog\non two lines"\n4,a fox,oops\n5\n6,   \n7,a bird\n',
        encoding="utf-8",
    )
    f = read_prompt_file(p)
    assert f.prompts == ("a cat, sleeping", "a dog\non two lines", "a bird")
    assert f.lines == (2, 5, 10)
    assert [(r.line, r.reason.split(",")[0].split(" (")[0]) for r in f.skipped] == [
        (3, "empty prompt"),
        (7, "3 fields"),
        (8, "1 fields"),
        (9, "empty prompt"),
    ]
    with pytest.warns(SkippedRowsWarning) as record:
        assert read_prompts(p) == list(f.prompts)
    (message,) = [str(w.message) for w in record]
    assert "skipped 4 line(s)" in message and "line 7 (3 fields, the header has 2" in message


def test_tsv_named_column_and_bad_bytes(tmp_path: Path):
    p = tmp_path / "p.tsv"
    p.write_bytes(b"caption\tsource\na red car, 4k\tweb\nbad \xff\tweb\na tree\tweb\n")
    f = read_prompt_file(p, column="caption")
    assert f.prompts == ("a red car, 4k", "a tree") and f.lines == (2, 4)
    assert f.skipped == (SkippedRow(3, "not valid UTF-8"),)
    with pytest.raises(PromptFileError, match="no 'prompt' column"):
        read_prompt_file(p)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty file"):  # PromptFileError is a ValueError
        read_prompt_file(tmp_path / "empty.csv")


def test_json_items(tmp_path: Path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps(["a cat", {"prompt": "a tree", "id": 3}, 7, {"text": "x"}, "  ", {"prompt": None}]))
    f = read_prompt_file(p)
    assert f.prompts == ("a cat", "a tree") and f.lines == (1, 2) and f.unit == "item"
    assert [(r.line, r.reason) for r in f.skipped] == [
        (3, "not text (int)"),
        (4, "an object without 'prompt'"),
        (5, "empty prompt"),
        (6, "missing value"),
    ]
    (tmp_path / "bad.json").write_text(json.dumps({"prompt": "a cat"}))
    with pytest.raises(PromptFileError, match="list"):
        read_prompt_file(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text('["a cat",')
    with pytest.raises(PromptFileError, match="not valid JSON"):
        read_prompt_file(tmp_path / "broken.json")


def test_parquet(tmp_path: Path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    p = tmp_path / "p.parquet"
    table = pa.table({"id": [1, 2, 3, 4, 5], "prompt": ["a red car", None, "", "a dog", "a cat"]})
    pq.write_table(table, p, row_group_size=2)  # several batches: row numbers run on across them
    f = read_prompt_file(p)
    assert f.prompts == ("a red car", "a dog", "a cat") and f.lines == (1, 4, 5) and f.unit == "row"
    assert f.skipped == (SkippedRow(2, "missing value"), SkippedRow(3, "empty prompt"))
    with pytest.warns(SkippedRowsWarning, match="row 2 \\(missing value\\); row 3 \\(empty prompt\\)"):
        read_prompts(p)
    with pytest.raises(PromptFileError, match="no 'caption' column"):
        read_prompt_file(p, column="caption")
    b = tmp_path / "b.parquet"
    pq.write_table(pa.table({"prompt": pa.array([b"a cat", b"bad \xff"], type=pa.binary())}), b)
    assert read_prompt_file(b).skipped == (SkippedRow(2, "not valid UTF-8"),)
    (tmp_path / "not.parquet").write_text("a cat\n")
    with pytest.raises(PromptFileError, match="not a readable Parquet file"):
        read_prompt_file(tmp_path / "not.parquet")


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path: Path, monkeypatch):
    p = tmp_path / "p.parquet"
    p.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(PromptFileError, match="needs pyarrow"):
        read_prompt_file(p)


def test_missing_file_and_message_limit(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        read_prompt_file(tmp_path / "missing.txt")
    p = tmp_path / "many.csv"
    p.write_text("prompt\n" + " \n" * 12 + "a dog\n")
    f = read_prompt_file(p)
    assert f.prompts == ("a dog",) and [r.line for r in f.skipped] == list(range(2, 14))
    assert f.skipped_message(limit=3).endswith("line 4 (empty prompt); and 9 more")
    (tmp_path / "ok.txt").write_text("a cat\n")
    assert read_prompt_file(tmp_path / "ok.txt").skipped_message() == ""
