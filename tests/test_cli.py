"""Tests of the command line (typer's CliRunner, tiny random pipeline)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from stablesemantics.capture import CaptureConfig
from stablesemantics.cli import app, parse_map_size, parse_seeds, read_prompts
from stablesemantics.cli.options import config_options, field_help
from stablesemantics.evaluate.microsd_eval import MicroSDEvalConfig
from stablesemantics.generate import GenerationConfig
from stablesemantics.store import open_store
from stablesemantics.training import REFERENCE_TRAINING, SegmenterTraining, TrainConfig

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
    args = [
        "generate",
        "--prompts",
        str(prompts),
        "--seeds",
        "0,3",
        "--model",
        "tiny-random",
        "--out",
        str(out),
        "--steps",
        "2",
        "--height",
        "32",
        "--width",
        "32",
        "--batch-size",
        "3",
        "--map-size",
        "8",
        "--device",
        "cpu",
        "--no-progress",
    ]
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
    result = runner.invoke(
        app, ["generate", "--prompts", str(empty), "--out", str(tmp_path / "x"), "--model", "tiny-random"]
    )
    assert result.exit_code == 1 and "prompts is empty" in result.output
    result = runner.invoke(app, [])
    assert "generate" in result.output and "inspect" in result.output


COMMANDS = {  # command -> the config whose fields are its options, and the instance holding their defaults
    ("generate",): (GenerationConfig, GenerationConfig()),
    ("train", "microsd"): (TrainConfig, TrainConfig()),
    ("train", "segmenter"): (SegmenterTraining, REFERENCE_TRAINING),
    ("eval",): (MicroSDEvalConfig, MicroSDEvalConfig()),
}


def _flat_fields(cls: type, defaults) -> dict[str, object]:
    out = {}
    for f in dataclasses.fields(cls):
        value = getattr(defaults, f.name)
        out |= _flat_fields(type(value), value) if dataclasses.is_dataclass(value) else {f.name: value}
    return out


@pytest.mark.parametrize(
    "command",
    [
        ("generate",),
        ("inspect",),
        ("train",),
        ("train", "microsd"),
        ("train", "segmenter"),
        ("eval",),
        ("book",),
        ("book", "run"),
        ("book", "stage"),
        ("book", "params"),
        ("book", "list"),
    ],
)
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: stablesemantics {' '.join(command)}")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_options_and_defaults_come_from_the_config(command):
    cls, defaults = COMMANDS[command]
    click_command = typer.main.get_command(app)
    for name in command:
        click_command = click_command.commands[name]
    params = {p.name: p for p in click_command.params}
    helps = {**field_help(CaptureConfig), **field_help(cls)}
    for name, value in _flat_fields(cls, defaults).items():
        param = params[name]
        assert param.opts[0] == "--" + name.replace("_", "-") and param.help == helps[name].replace("``", "")
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        assert param.default == shown, (name, param.default, value)
    result = runner.invoke(app, [*command, "--help"], terminal_width=400)
    assert result.exit_code == 0 and "[default: " in result.output


def test_every_config_field_has_help():
    for cls in (GenerationConfig, CaptureConfig, TrainConfig, SegmenterTraining, MicroSDEvalConfig):
        names = {f.name for f in dataclasses.fields(cls)}
        helps = field_help(cls)
        assert set(helps) == names and all(helps.values()), cls.__name__


@dataclasses.dataclass
class Inner:
    """Inner.

    Attributes:
        sizes: Sizes.
    """

    sizes: tuple[int, ...] | None = None


@dataclasses.dataclass
class Outer:
    """Outer.

    Attributes:
        steps: Steps.
        inner: Inner settings.
        fast: Go fast.
    """

    steps: int = 3
    inner: Inner = dataclasses.field(default_factory=Inner)
    fast: bool = False


def test_config_options_build_the_config():
    seen = []
    demo = typer.Typer()

    @demo.command()
    @config_options(Outer)
    def run(config: Outer, name: str = "x") -> None:
        seen.append((config, name))

    assert runner.invoke(demo, ["--sizes", "4, 8", "--fast", "--name", "y"]).exit_code == 0
    assert seen[-1] == (Outer(steps=3, inner=Inner(sizes=(4, 8)), fast=True), "y")
    assert runner.invoke(demo, []).exit_code == 0 and seen[-1] == (Outer(), "x")
    result = runner.invoke(demo, ["--sizes", "4,x"])
    assert result.exit_code == 2 and "Invalid value for --sizes" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["generate", "--prompts", "{p}", "--out", "{o}", "--map-size", "8x"],
            "Invalid value for --map-size: map size",
        ),
        (["generate", "--prompts", "{p}", "--out", "{o}", "--t-range", "0,2"], "t_range must satisfy"),
        (
            ["generate", "--prompts", "{p}", "--out", "{o}", "--blocks", "down,side"],
            "blocks must be a non-empty subset",
        ),
        (["train", "microsd", "--unet-channels", "32,x"], "Invalid value for --unet-channels"),
        (["train", "segmenter", "--steps", "many"], "Invalid value for '--steps'"),
        (["eval", "--n-scenes", "1.5"], "Invalid value for '--n-scenes'"),
    ],
)
def test_a_bad_parameter_is_a_one_line_error(tmp_path: Path, args, message):
    (tmp_path / "p.txt").write_text("a cat\n")
    args = [a.format(p=tmp_path / "p.txt", o=tmp_path / "x.zarr") for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert not (tmp_path / "x.zarr").exists()


def test_a_bad_value_found_later_is_a_one_line_error_with_code_1(tmp_path: Path):
    (tmp_path / "p.txt").write_text("a cat\n")
    result = runner.invoke(
        app,
        [
            "generate",
            "--prompts",
            str(tmp_path / "p.txt"),
            "--out",
            str(tmp_path / "x.zarr"),
            "--model",
            "tiny-random",
            "--steps",
            "0",
        ],
    )
    assert result.exit_code == 1 and result.output.strip() == "error: steps must be >= 1, got 0"
    result = runner.invoke(app, ["eval", "--parts", "xyz"])
    assert result.exit_code == 1 and result.output.strip() == "error: parts must be letters of 'abcd', got 'xyz'"
    result = runner.invoke(app, ["book", "params", "99_missing"])
    assert result.exit_code == 1 and result.output.strip() == "error: no notebook '99_missing' under notebooks/"


def test_book_commands():
    result = runner.invoke(app, ["book", "list"])
    assert result.exit_code == 0 and "notebooks/01_generate.ipynb" in result.output.splitlines()
    result = runner.invoke(app, ["book", "params", "01_generate", "smoke"])
    assert result.exit_code == 0 and "model: tiny-random" in result.output
    result = runner.invoke(app, ["book", "run", "--params", "nope", "01_generate"])
    assert result.exit_code == 1 and "no parameter set 'nope'" in result.output


def test_python_dash_m_runs_the_same_cli():
    for module in ("stablesemantics", "stablesemantics.book"):
        proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "book" in proc.stdout if module == "stablesemantics" else "stage" in proc.stdout
