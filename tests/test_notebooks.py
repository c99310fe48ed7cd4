"""Every notebook runs end to end with its smoke parameters (notebooks/params/smoke.yaml).

Conventions checked here (see the README, "Notebooks"):
* each notebook has one cell tagged `parameters`, and is committed without outputs;
* each notebook has a section in every parameter set, naming only real parameters;
* parameters whose names start with `out_` are output paths, `out_json` among them:
  the notebook writes its headline numbers there as a JSON object;
* each notebook is listed in _toc.yml, so the book shows it.

Nothing is skipped: a notebook whose library module is missing fails its smoke run.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PARAM_SETS = ("default", "smoke", "colab")  # a section for every notebook
#: Colab parameter sets of other model families: notebook 01 and the analysis chapters on its store
FAMILY_SETS = ("colab-sdxl-lightning", "colab-flux-schnell")
#: tiny pipelines of the families beyond SD 1.x that notebook 01 must run with
FAMILY_MODELS = ("tiny-random-sdxl", "tiny-random-sd3", "tiny-random-flux")


from stablesemantics import book  # noqa: E402  (the runner behind `make book`)


def execute(notebook: str | Path, output: str | Path, parameters: dict) -> None:
    """Run ``notebook`` into ``output`` with papermill, as every test here does (this environment's
    kernel, the repository as working directory, ten minutes at most)."""
    pm.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(ROOT),
        progress_bar=False,
        execution_timeout=600,
    )


def _params(notebook: Path) -> dict:
    return pm.inspect_notebook(str(notebook))


def _check_headline(stem: str, headline: dict, params: dict) -> None:
    assert isinstance(headline, dict) and headline, "out_json must hold a non-empty JSON object"
    for key, value in headline.items():
        if isinstance(value, float):
            assert math.isfinite(value), f"{key} = {value} is not finite"
    if stem == "01_generate":
        n_expected = len(params["prompts"]) * params["n_seeds"]
        assert headline["n_images"] == n_expected
        assert headline["n_images_done"] == n_expected
        assert headline["n_seeds"] == params["n_seeds"]
        assert headline["n_maps"] >= n_expected, "every smoke prompt has at least one noun chunk"
        assert headline["image_size"] == [params["height"], params["width"]]
        assert 0 < headline["seconds_per_image"] < 120
        assert headline["model"] == params["model"]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/*.ipynb found"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(notebook):
    raw = json.loads(notebook.read_text())
    assert all("id" in c for c in raw["cells"]), "every cell needs an id (nbformat 4.5): normalise the notebook"
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged `parameters`"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"cells {dirty} have outputs: save notebooks without outputs"
    assert "out_json" in _params(notebook), "each notebook needs an `out_json` parameter"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_markdown_has_no_commented_lines(notebook):
    """A markdown line starting with '# ' is a top-level heading: one left over from a
    percent-format comment block turns a paragraph into a title. Only the first line of a
    cell may be a '# ' heading (the chapter title)."""
    nb = nbformat.read(notebook, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        stray = [line for line in lines[1:] if line == "#" or line.startswith("# ")]
        assert not stray, f"markdown cell {i} has comment-like lines {stray[:2]}"
        if i > 1:
            assert not lines[0].startswith("# "), f"markdown cell {i} opens with a top-level heading"


HIDDEN = {"remove-cell", "remove-input", "hide-input", "hide-cell"}
MAX_CODE_LINES = 20  # about 15; the parameters cell is exempt (it lists every parameter)
MAX_LINE = 100  # characters of a code line, so that nothing runs off the page


def _tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _sections(nb) -> list[str]:
    return [
        line[3:].strip()
        for c in nb.cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("## ")
    ]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_reads_as_a_chapter(notebook):
    """Project Pythia's chapter structure: the title and an Overview whose goals are the `##`
    sections, Prerequisites, the sections, then Summary and What's next at the end."""
    nb = nbformat.read(notebook, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "the first cell is the title"
    sections = _sections(nb)
    assert sections[:2] == ["Overview", "Prerequisites"], f"sections start {sections[:2]}"
    assert sections[-2:] == ["Summary", "What's next"], f"sections end {sections[-2:]}"
    overview = first.source.split("## Overview", 1)[-1].lower() if "## Overview" in first.source else ""
    assert overview, "the Overview sits in the title cell"
    for section in sections[2:-2]:
        goal = re.sub(r"^\d+\.\s*", "", section)  # "2. Map → mask: which ..." -> "Map → mask"
        goal = re.sub(r"\s*\(.*\)$", "", goal).split(":")[0].strip()
        assert goal.lower() in overview, f"the Overview does not name the section {section!r}"
    visible = [c for c in nb.cells if not _tags(c) & {"remove-cell"}]
    assert visible[-1].cell_type == "markdown", "a chapter ends on its summary, not on a code cell"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_cells_fit_the_page(notebook):
    """One visible parameters cell; the setup cell hidden, below the title; short code cells."""
    nb = nbformat.read(notebook, as_version=4)
    params = [i for i, c in enumerate(nb.cells) if "parameters" in _tags(c)]
    assert len(params) == 1 and not _tags(nb.cells[params[0]]) & HIDDEN, "one visible parameters cell"
    setup = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "REPO_URL" in c.source]
    assert len(setup) == 1, "one setup cell (the Colab install)"
    assert 0 < setup[0] < params[0] and _tags(nb.cells[setup[0]]) & HIDDEN, "setup: hidden, below the title"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        lines = cell.source.splitlines()
        assert i == params[0] or len(lines) <= MAX_CODE_LINES, f"code cell {i} has {len(lines)} lines"
        long = [line for line in lines if len(line) > MAX_LINE]
        assert not long, f"code cell {i} has lines over {MAX_LINE} characters: {long[:1]}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
@pytest.mark.parametrize("params_set", PARAM_SETS)
def test_params_sections_name_real_parameters(notebook, params_set):
    sections = yaml.safe_load((ROOT / "notebooks" / "params" / f"{params_set}.yaml").read_text())
    assert notebook.stem in sections, f"params/{params_set}.yaml has no section {notebook.stem!r}"
    unknown = set(sections[notebook.stem]) - set(_params(notebook))
    assert not unknown, f"params/{params_set}.yaml: {notebook.stem} has no parameters {sorted(unknown)}"


@pytest.mark.parametrize("params_set", FAMILY_SETS)
def test_family_params_sets_chain_notebook_01_to_the_analysis_chapters(params_set):
    sections = yaml.safe_load((ROOT / "notebooks" / "params" / f"{params_set}.yaml").read_text())
    assert list(sections) == ["01_generate", "02_semantics", "03_spatial", "04_cooccurrence"]
    for stem, section in sections.items():
        unknown = set(section) - set(_params(ROOT / "notebooks" / f"{stem}.ipynb"))
        assert not unknown, f"params/{params_set}.yaml: {stem} has no parameters {sorted(unknown)}"
        assert book.load_params(stem, params_set) == section
    store = sections["01_generate"]["out_store"]
    assert all(sections[s]["store"] == store for s in ("02_semantics", "03_spatial", "04_cooccurrence"))
    assert sections["01_generate"]["steps"] == 4 and sections["01_generate"]["guidance"] == 0.0
    assert (ROOT / "book" / "colab.md").read_text().count(params_set) >= 1, "book/colab.md shows how to run it"


@pytest.mark.parametrize("model", FAMILY_MODELS)
def test_notebook_01_runs_every_model_family(model, tmp_path, monkeypatch):
    """Notebook 01 (generate, store, maps, figures) with the tiny SDXL, SD3 and Flux pipelines."""
    import zarr

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    params = dict(book.load_params("01_generate", "smoke"))
    params.update(model=model, out_store=str(tmp_path / "s.zarr"), out_json=str(tmp_path / "h.json"))
    execute(str(ROOT / "notebooks" / "01_generate.ipynb"), str(tmp_path / "01.ipynb"), params)
    _check_headline("01_generate", json.loads((tmp_path / "h.json").read_text()), params)
    attrs = zarr.open_group(str(tmp_path / "s.zarr"), mode="r").attrs
    family = {"tiny-random-sdxl": "sdxl", "tiny-random-sd3": "sd3", "tiny-random-flux": "flux"}[model]
    assert attrs["model_family"] == family and attrs["model"] == model
    assert [s["name"] for s in attrs["token_segments"]] == {"sdxl": ["clip"], "sd3": ["clip", "t5"], "flux": ["t5"]}[
        family
    ]


def test_toc_lists_every_notebook():
    listed = {p.as_posix() for p in book.toc_notebooks()}
    missing = [nb.relative_to(ROOT).as_posix() for nb in NOTEBOOKS if nb.relative_to(ROOT).as_posix() not in listed]
    assert not missing, f"notebooks not in _toc.yml: {missing}"
    for entry in book.toc_files():
        assert (ROOT / f"{entry}.md").exists() or (ROOT / f"{entry}.ipynb").exists(), f"_toc.yml: no file {entry}"


def test_stage_puts_executed_notebooks_at_their_toc_paths(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    for nb in book.toc_notebooks():
        (executed / nb.name).write_text("{}")
    dest = book.stage(executed, tmp_path / "src")
    assert (dest / "_toc.yml").exists() and (dest / "book" / "intro.md").exists()
    assert (dest / "benchmarks" / "results" / "microsd_eval.md").exists()  # pages include the tables
    for page in (ROOT / "book").glob("*.md"):  # every table a page includes is staged
        for included in re.findall(r"```\{include\}\s+(\S+)", page.read_text()):
            assert (dest / "book" / included).resolve().exists(), f"{page.name} includes missing {included}"
    for nb in book.toc_notebooks():
        assert (dest / nb).read_text() == "{}"


def test_runner_executes_a_notebook_and_records_its_time(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "1")
    out = tmp_path / "executed"
    headline = tmp_path / "00.json"
    assert (
        book.main(
            ["run", "--params", "smoke", "--out", str(out), "00_microworld", "--", "-p", "out_json", str(headline)]
        )
        == 0
    )
    executed = nbformat.read(out / "00_microworld.ipynb", as_version=4)
    assert any(c.cell_type == "code" and c.outputs for c in executed.cells)
    timings = json.loads((out / "timings.json").read_text())
    assert list(timings) == ["00_microworld"] and timings["00_microworld"]["params"] == "smoke"
    assert timings["00_microworld"]["seconds"] > 0 and headline.exists()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_smoke_run(notebook, tmp_path, monkeypatch):
    for name, value in {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MPLBACKEND": "Agg",
        "JUPYTER_PREFER_ENV_PATH": "1",  # the kernel spec of this environment, not one in $HOME
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "TQDM_DISABLE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    defaults = _params(notebook)
    params = {name: spec["default"] for name, spec in defaults.items()}  # for the checks only
    params = {k: _literal(v) for k, v in params.items()}
    smoke = book.load_params(notebook.stem, "smoke")
    params.update(smoke)
    overrides = dict(smoke)
    for name in defaults:  # every output goes to tmp_path
        if name.startswith("out_") and params.get(name):
            overrides[name] = str(tmp_path / Path(str(params[name])).name)
    if params.get("make_store_if_missing") and params.get("store"):  # a store the notebook makes itself, too
        overrides["store"] = str(tmp_path / Path(str(params["store"])).name)
    output = tmp_path / notebook.name
    execute(str(notebook), str(output), overrides)
    executed = nbformat.read(output, as_version=4)
    assert any(c.cell_type == "code" and c.outputs for c in executed.cells), "the notebook produced no output"
    out_json = Path(overrides["out_json"])
    assert out_json.exists(), f"{notebook.name} did not write its headline JSON to out_json"
    _check_headline(notebook.stem, json.loads(out_json.read_text()), params)


def _literal(source: str):
    """papermill reports defaults as source text; evaluate simple literals, keep the rest as text."""
    import ast

    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return source


def test_glue_text_formats_numbers_and_missing_values():
    texts = book.glue_text("sx", {"r": 0.91234, "n": 12, "none": None, "nan": float("nan"), "name": "otsu", "ok": True})
    assert texts == {
        "sx_r": "0.912",
        "sx_n": "12",
        "sx_none": "n/a",
        "sx_nan": "n/a",
        "sx_name": "otsu",
        "sx_ok": "True",
    }


FREE_TEXT_PROMPTS = [
    "a cozy cabin in snowy mountains at dusk, 4k, trending on artstation",
    "portrait of an old fisherman with a pipe --ar 2:3",
    "a (red:1.3) vintage car parked near a diner",
    "two cats sleeping on a windowsill in the sun",
    "a lighthouse on a cliff during a storm, oil painting",
    "a bowl of ramen with chopsticks, studio lighting",
    "an astronaut riding a horse on the moon",
    "a cat and a dog playing in a garden with flowers",
]


@pytest.fixture(scope="module")
def free_text_store(tmp_path_factory):
    """A store of free-text prompts (no MicroWorld truth), as a Colab user would make one."""
    from stablesemantics.capture import CaptureConfig
    from stablesemantics.generate import generate

    out = tmp_path_factory.mktemp("free") / "free.zarr"
    return generate(
        FREE_TEXT_PROMPTS,
        2,
        out,
        model="tiny-random",
        steps=1,
        height=32,
        width=32,
        batch_size=16,
        capture=CaptureConfig(map_size=(8, 8)),
        progress=False,
    )


@pytest.mark.parametrize(
    ("stem", "scheduler"),
    [("02_semantics", None), ("03_spatial", None), ("04_cooccurrence", None), ("04_cooccurrence", "local")],
)
def test_analysis_notebook_runs_unchanged_on_a_free_text_store(stem, scheduler, free_text_store, tmp_path, monkeypatch):
    """Chapters 02-04 on a store of free-text prompts; chapter 04 also on a local dask cluster,
    with the numbers of the in-process run."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "1")
    params = dict(book.load_params(stem, "smoke"))
    params.update(store=str(free_text_store), make_store_if_missing=None, out_json=str(tmp_path / "h.json"))
    if scheduler is not None:
        params["scheduler"] = scheduler
    if "min_maps" in _params(ROOT / "notebooks" / f"{stem}.ipynb"):
        params["min_maps"] = 1
    execute(str(ROOT / "notebooks" / f"{stem}.ipynb"), str(tmp_path / f"{stem}.ipynb"), params)
    headline = json.loads((tmp_path / "h.json").read_text())
    assert headline.get("world_store") is False, "a free-text store has no MicroWorld truth"
    text = json.dumps(headline)
    assert "car" in text or "cat" in text, "the prompts' lemmas should appear in the headline numbers"
    if scheduler is not None:
        params.update(scheduler=None, out_json=str(tmp_path / "here.json"))
        execute(ROOT / "notebooks" / f"{stem}.ipynb", tmp_path / f"{stem}.here.ipynb", params)
        assert json.loads((tmp_path / "here.json").read_text()) == headline
