"""Tests of the command line (typer's CliRunner, tiny random pipeline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from stablesemantics.cli import app, parse_map_size, parse_seeds, read_prompts
from stablesemantics.store import open_store

runner = CliRunner()


def test_read_prompts_formats(tmp_path: Path):
    (tmp_path / "p.txt").write_text("a red car\n\n  a dog  \n# hashtag art\n")
    assert read_prompts(tmp_path / "p.txt") == ["a red car", "a dog", "# hashtag art"]
    (tmp_path / "p.json").write_text(json.dumps(["a cat", {"prompt": "a tree", "id": 3}]))
    assert read_prompts(tmp_path / "p.json") == ["a cat", "a tree"]
    (tmp_path / "p.csv").write_text('id,prompt\n1,"a cat, sleeping"\n2,\n3,a dog\n')
    assert read_prompts(tmp_path / "p.csv") == ["a cat, sleeping", "a dog"]
    (tmp_path / "bad.csv").write_text("id,text\n1,a cat\n")
    with pytest.raises(ValueError, match="'prompt' column"):
        read_prompts(tmp_path / "bad.csv")
    (tmp_path / "bad.json").write_text(json.dumps({"prompt": "a cat"}))
    with pytest.raises(ValueError, match="list"):
        read_prompts(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        read_prompts(tmp_path / "missing.txt")


def test_parsers():
    assert parse_seeds("3") == 3 and parse_seeds("0,4,9") == [0, 4, 9]
    assert parse_map_size("16") == (16, 16) and parse_map_size("8x12") == (8, 12) and parse_map_size(None) is None
    with pytest.raises(typer.BadParameter):
        parse_seeds("three")
    with pytest.raises(typer.BadParameter):
        parse_map_size("8x")


def test_generate_then_inspect(tmp_path: Path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red car on a street\na small dog --ar 16:9\n")
    out = tmp_path / "stores" / "demo.zarr"
    args = ["generate", "--prompts", str(prompts), "--seeds", "0,3", "--model", "tiny-random", "--out", str(out),
            "--steps", "2", "--height", "32", "--width", "32", "--batch-size", "3", "--map-size", "8",
            "--device", "cpu", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4/4 done" in result.output and "car (2)" in result.output
    g = open_store(out)
    assert g["images"].shape == (4, 32, 32, 3) and g["seed"][:].tolist() == [0, 3, 0, 3]
    assert g["maps"].shape[1:] == (8, 8) and g.attrs["batch_size"] == 3

    result = runner.invoke(app, ["inspect", str(out)])
    assert result.exit_code == 0, result.output
    assert "tiny-random" in result.output and "2 prompts x 2 seeds" in result.output

    result = runner.invoke(app, ["inspect", str(out), "--json", "--top", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["n_done"] == 4 and len(summary["top_lemmas"]) == 1

    # the same command again resumes (nothing to do); other settings are refused
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args[:-3], "--steps", "3", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 1 and "other settings" in result.output


def test_cli_errors(tmp_path: Path):
    result = runner.invoke(app, ["inspect", str(tmp_path / "missing.zarr")])
    assert result.exit_code == 1 and "no store" in result.output
    result = runner.invoke(app, ["generate", "--prompts", str(tmp_path / "none.txt"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "does not exist" in result.output
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    result = runner.invoke(app, ["generate", "--prompts", str(empty), "--out", str(tmp_path / "x"),
                                 "--model", "tiny-random"])
    assert result.exit_code == 1 and "prompts is empty" in result.output
    result = runner.invoke(app, [])
    assert "generate" in result.output and "inspect" in result.output
