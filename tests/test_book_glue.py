"""The book's notebook plumbing: headline JSON, glue, the parameters cell of staged pages, Colab setup."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from stablesemantics.book import colab
from stablesemantics.book.glue import (
    clean_json,
    glue,
    glue_text,
    merge_injected_parameters,
    merge_injected_parameters_file,
    round_number,
    write_headline,
)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_round_number_rounds_to_four_digits_and_drops_missing_values():
    assert round_number(0.123456) == 0.1235
    assert round_number(np.float32(0.5)) == 0.5 and type(round_number(np.float32(0.5))) is float
    assert round_number(3) == 3.0
    assert round_number(None) is None
    assert round_number(float("nan")) is None
    assert round_number(np.inf) is None


def test_clean_json_makes_every_value_json_safe():
    table = pd.DataFrame(
        {"miou": [0.123456, np.nan], "n": [np.int64(3), np.int64(4)]},
        index=pd.MultiIndex.from_tuples([("otsu", "crf"), ("global", "none")]),
    )
    got = clean_json({"t": table, "x": (np.float64(1.23456), np.int32(2)), "ok": np.bool_(True), 5: "s"})
    assert got == {
        "t": {"otsu + crf": {"miou": 0.1235, "n": 3.0}, "global + none": {"miou": None, "n": 4.0}},
        "x": [1.2346, 2],
        "ok": True,
        "5": "s",
    }
    json.dumps(got, allow_nan=False)  # nothing left that JSON cannot hold
    assert list(clean_json(table, index_sep=" | ")) == ["otsu | crf", "global | none"]
    assert clean_json({"r": 0.123456789}, digits=None) == {"r": 0.123456789}


def test_clean_json_is_idempotent():
    once = clean_json({"a": [np.float64(2 / 3), np.nan], "b": {"c": np.float32(0.1)}})
    assert clean_json(once) == once


def test_write_headline_writes_indented_json_and_makes_the_folder(tmp_path):
    path = write_headline({"a": 1, "b": [0.5, None]}, tmp_path / "sub" / "h.json")
    assert path.read_text() == '{\n "a": 1,\n "b": [\n  0.5,\n  null\n ]\n}\n'


def test_glue_text_formats_numbers_and_missing_values():
    texts = glue_text("sx", {"r": 0.91234, "n": 12, "none": None, "nan": float("nan"), "name": "otsu", "ok": True})
    assert texts == {
        "sx_r": "0.912",
        "sx_n": "12",
        "sx_none": "n/a",
        "sx_nan": "n/a",
        "sx_name": "otsu",
        "sx_ok": "True",
    }
    assert glue_text("p", {"a": 0.456, "b": 0.456}, specs={"b": ".2f"}) == {"p_a": "0.456", "p_b": "0.46"}


def test_glue_is_a_no_op_without_myst_nb(monkeypatch):
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import myst_nb now raises ImportError
    glue("x", "1")
    assert glue_text("q", {"v": 1.0}) == {"q_v": "1.000"}


def test_runner_re_exports_glue_text():
    from stablesemantics.book import runner

    assert runner.glue_text is glue_text


def _notebook_with_injected_parameters() -> dict:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell(
            'model = "tiny-random"  # which model\nsteps = 20\nprompts = [\n    "a",\n    "b",\n]  # the prompts\n'
            'label = "→ x"  # non-ASCII before the comment',
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_code_cell(
            '# Parameters\nmodel = "microsd"\nprompts = ["c"]\nlabel = "y"\n',
            metadata={"tags": ["injected-parameters"]},
        ),
        nbformat.v4.new_code_cell("print(model)"),
    ]
    return json.loads(nbformat.writes(nb))


def test_merge_injected_parameters_shows_the_values_that_ran_once():
    nb = merge_injected_parameters(_notebook_with_injected_parameters())
    source = "".join(nb["cells"][1]["source"])
    assert source.splitlines() == [
        'model = "microsd"  # which model',
        "steps = 20",
        'prompts = ["c"]  # the prompts',
        'label = "y"  # non-ASCII before the comment',
    ]
    assert "remove-cell" in nb["cells"][2]["metadata"]["tags"]
    assert nb["cells"][1]["metadata"]["tags"] == ["parameters"]  # the visible cell stays visible
    again = merge_injected_parameters(json.loads(json.dumps(nb)))
    assert again == nb  # staging twice changes nothing more


def test_merge_injected_parameters_splits_long_lists():
    nb = _notebook_with_injected_parameters()
    long_prompts = [f"prompt number {i} with a few more words" for i in range(4)]
    nb["cells"][2]["source"] = f"# Parameters\nprompts = {json.dumps(long_prompts)}\n"
    source = "".join(merge_injected_parameters(nb)["cells"][1]["source"])
    lines = source.splitlines()
    start = lines.index("prompts = [")
    assert lines[start + 1 : start + 6] == [*(f'    "{p}",' for p in long_prompts), "]  # the prompts"]
    assert max(map(len, lines)) <= 100
    compile(source, "params", "exec")


def test_merge_injected_parameters_leaves_other_notebooks_alone(tmp_path):
    nb = _notebook_with_injected_parameters()
    del nb["cells"][2]
    assert merge_injected_parameters(json.loads(json.dumps(nb))) == nb
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(_notebook_with_injected_parameters()))
    merge_injected_parameters_file(path)
    nbformat.validate(nbformat.read(path, as_version=4))
    assert "remove-cell" in json.loads(path.read_text())["cells"][2]["metadata"]["tags"]
    placeholder = tmp_path / "empty.ipynb"
    placeholder.write_text("{}")
    merge_injected_parameters_file(placeholder)
    assert placeholder.read_text() == "{}"


# --------------------------------------------------------------------- Colab


def _config_url() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def test_repository_url_has_one_setting():
    assert colab.REPOSITORY_URL == _config_url()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_clones_the_configured_repository(notebook):
    nb = nbformat.read(notebook, as_version=4)
    urls = [u for c in nb.cells if c.cell_type == "code" for u in re.findall(r'REPO_URL = "([^"]+)"', c.source)]
    assert urls == [_config_url()], "one setup cell, whose REPO_URL is _config.yml's repository.url"


def test_setup_colab_does_nothing_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    assert not colab.in_colab()
    assert colab.setup_colab(run=lambda *a, **k: calls.append(a)) is None
    assert calls == []


def test_setup_colab_clones_installs_and_moves_into_the_clone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(sys, "path", ["stablesemantics/lib", *sys.path])
    calls = []

    def run(command, check):
        assert check
        calls.append(command)
        if command[:2] == ["git", "clone"]:
            Path(command[-1], "lib").mkdir(parents=True)

    root = colab.setup_colab("https://example.org/fork", run=run)
    assert root == tmp_path / "stablesemantics" and Path.cwd() == root
    assert calls[0] == ["git", "clone", "--depth", "1", "https://example.org/fork", "stablesemantics"]
    assert calls[1][-3:] == ["-q", "-e", "stablesemantics"]
    assert calls[2][-3:] == ["-q", "--no-deps", "open-clip-torch"]
    assert sys.path[0] == str(root / "lib") and "stablesemantics/lib" not in sys.path


def test_colab_commands_skip_an_existing_clone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stablesemantics").mkdir()
    assert [c[0] for c in colab.colab_commands()] == [sys.executable, sys.executable]
