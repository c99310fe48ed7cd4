"""Run the book's notebooks with papermill and stage the book sources.

Used by the Makefile (`make book`, `make notebook`) as `stablesemantics book ...`; also handy
on its own (`python -m stablesemantics.book` is the same command line, the typer `app` below):

    python -m stablesemantics.book list                          # notebooks named in _toc.yml
    python -m stablesemantics.book params 01_generate smoke      # that notebook's smoke parameters, as YAML
    python -m stablesemantics.book run --params smoke 01_generate
    python -m stablesemantics.book run --params smoke 01_generate -- -p steps 4   # after --: papermill options
    python -m stablesemantics.book stage                         # _build/src for `jupyter-book build`

Parameter files (notebooks/params/{default,smoke,colab}.yaml, and colab-<model>.yaml for
other model families) have one section per notebook, keyed by the notebook's file stem:

    01_generate:
      n_seeds: 2
      steps: 10

`run` records each notebook's wall time in <out>/timings.json. It writes the section to _build/params/<stem>.<set>.yaml and calls
`papermill <notebook> _build/notebooks/<stem>.ipynb -f <that file> --cwd <repo root>`,
printing the command so it can be copied and changed (add `-p name value` to override
one parameter). A notebook without a section runs with its own defaults.

`stage` assembles _build/src: _config.yml, _toc.yml, book/, the benchmark tables
(benchmarks/results/*.md, which book pages include) and MicroSD's card figures copied from the repository, and at every notebook path named in the toc the *executed* notebook from _build/notebooks.
The committed notebooks stay output-free, the book shows outputs, and because the staged
paths equal the repository paths the Colab launch buttons open the real notebooks/ files.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import click
import typer
import yaml
from typer.core import TyperCommand

from stablesemantics.book.glue import glue_text, merge_injected_parameters_file  # noqa: F401  (glue_text re-exported)
from stablesemantics.paths import REPO_ROOT

ROOT = REPO_ROOT
PARAMS_DIR = ROOT / "notebooks" / "params"
BUILD = ROOT / "_build"


def toc_files(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """All `file:` entries of a Jupyter Book toc, in order (without suffix).

    >>> "book/intro" in toc_files()
    True
    """
    toc = yaml.safe_load(toc_path.read_text())
    found: list[str] = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(str(node["file"]))
            for key in ("chapters", "parts", "sections"):
                if key in node:
                    walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return [Path(f).with_suffix("").as_posix() if f.endswith((".ipynb", ".md")) else f for f in found]


def toc_notebooks(toc_path: Path = ROOT / "_toc.yml") -> list[Path]:
    """The notebooks the toc names, as repository-relative paths (`notebooks/01_generate.ipynb`)."""
    out = []
    for entry in toc_files(toc_path):
        path = Path(entry + ".ipynb")
        if (ROOT / path).exists():
            out.append(path)
    return out


def load_params(stem: str, params_set: str) -> dict:
    """The parameters of notebook `stem` in notebooks/params/<params_set>.yaml ({} if it has no section).

    >>> load_params("01_generate", "smoke")["model"]
    'tiny-random'
    """
    path = PARAMS_DIR / f"{params_set}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PARAMS_DIR.glob("*.yaml"))
        raise ValueError(f"no parameter set {params_set!r} ({path} missing); known: {known}")
    sections = yaml.safe_load(path.read_text()) or {}
    if not isinstance(sections, dict):
        raise ValueError(f"{path} must map notebook stems to parameter dicts")
    params = sections.get(stem) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path}: section {stem!r} must be a mapping of parameter names to values")
    return params


def resolve_notebook(name: str) -> Path:
    """`01_generate`, `01_generate.ipynb` or `notebooks/01_generate.ipynb` -> repository-relative path."""
    for cand in (Path(name), Path("notebooks") / name, Path("notebooks") / f"{name}.ipynb"):
        if cand.suffix == ".ipynb" and (ROOT / cand).exists():
            return (ROOT / cand).resolve().relative_to(ROOT)
    raise ValueError(f"no notebook {name!r} under notebooks/")


def run_notebook(notebook: Path, params_set: str, out_dir: Path, extra: list[str] | None = None) -> Path:
    """Execute one notebook with papermill (kernel `python3`, working directory = repository root)."""
    stem = notebook.stem
    params_file = BUILD / "params" / f"{stem}.{params_set}.yaml"
    params_file.parent.mkdir(parents=True, exist_ok=True)
    params_file.write_text(yaml.safe_dump(load_params(stem, params_set), sort_keys=False))
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / notebook.name
    cmd = [
        sys.executable,
        "-m",
        "papermill",
        str(notebook),
        str(output.relative_to(ROOT) if output.is_relative_to(ROOT) else output),
        "-f",
        str(params_file.relative_to(ROOT)),
        "--cwd",
        ".",
        "-k",
        "python3",
        "--no-progress-bar",
        *(extra or []),
    ]
    print("+", shlex.join(["papermill", *cmd[3:]]), flush=True)
    # The kernel must draw with the inline backend so figures land in the notebook (and the
    # book). ipykernel picks it only when MPLBACKEND is unset; `make` sets MPLBACKEND=Agg for
    # everything else, so drop it here. The inline backend renders off-screen too.
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    if subprocess.run(cmd, cwd=ROOT, env=env).returncode != 0:
        raise SystemExit(f"{notebook} failed; the executed part, with the error, is in {output}")
    return output


def stage(executed_dir: Path, dest: Path) -> Path:
    """Assemble the book sources in `dest` with the executed notebooks at their toc paths."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "book", dest / "book", ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    # benchmark tables, so pages can {include} them instead of copying numbers by hand
    results = ROOT / "benchmarks" / "results"
    (dest / "benchmarks" / "results").mkdir(parents=True)
    for table in sorted(results.glob("*.md")):
        shutil.copy2(table, dest / "benchmarks" / "results" / table.name)
    # the MicroSD card's figures (training curves, sample grid), which the MicroSD page shows
    card = dest / "data" / "models" / "microsd"
    card.mkdir(parents=True)
    for figure in sorted((ROOT / "data" / "models" / "microsd").glob("*.png")):
        shutil.copy2(figure, card / figure.name)
    for nb in toc_notebooks():
        executed = executed_dir / nb.name
        if not executed.exists():
            raise FileNotFoundError(f"{executed} missing: run the notebooks first (make book)")
        (dest / nb).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(executed, dest / nb)
        merge_injected_parameters_file(dest / nb)  # the book shows one parameters cell: the values that ran
    return dest


app = typer.Typer(
    name="book",
    help="Run the book's notebooks with papermill and stage the book sources.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


class _PapermillArgs(TyperCommand):
    """A command whose arguments after ``--`` are kept whole for papermill (``ctx.meta["papermill"]``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            args, ctx.meta["papermill"] = args[: args.index("--")], args[args.index("--") + 1 :]
        return super().parse_args(ctx, args)


def _fail(err: Exception) -> NoReturn:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=1)


@app.command("list")
def list_notebooks() -> None:
    """Print the notebooks named in _toc.yml."""
    for nb in toc_notebooks():
        typer.echo(nb.as_posix())


@app.command()
def params(
    notebook: Annotated[str, typer.Argument(help="A notebook: 01_generate, 01_generate.ipynb or its path.")],
    params_set: Annotated[
        str,
        typer.Argument(
            help="Parameter set: a file stem of notebooks/params (default, smoke, colab, colab-flux-schnell, ...)."
        ),
    ] = "default",
) -> None:
    """Print one notebook's parameter section as YAML (a file for `papermill -f`)."""
    try:
        section = load_params(resolve_notebook(notebook).stem, params_set)
    except ValueError as e:
        _fail(e)
    typer.echo(yaml.safe_dump(section, sort_keys=False), nl=False)


@app.command(cls=_PapermillArgs)
def run(
    ctx: typer.Context,
    notebooks: Annotated[
        list[str] | None,
        typer.Argument(help="Notebooks (default: every one in _toc.yml); options after -- go to papermill."),
    ] = None,
    params: Annotated[
        str,
        typer.Option(
            help="Parameter set: a file stem of notebooks/params (default, smoke, colab, colab-flux-schnell, ...)."
        ),
    ] = "default",
    out: Annotated[Path, typer.Option(help="Folder of the executed notebooks.")] = BUILD / "notebooks",
) -> None:
    """Execute notebooks with papermill, recording each one's wall time in <out>/timings.json."""
    extra = ctx.meta.get("papermill", [])  # passed through to papermill
    try:
        selected = [resolve_notebook(n) for n in notebooks or []] or toc_notebooks()
        for nb in selected:
            load_params(nb.stem, params)
    except ValueError as e:
        _fail(e)
    if not selected:
        raise SystemExit("no notebooks to run")
    out = (out if out.is_absolute() else (Path.cwd() / out)).resolve()
    timings_file = out / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    for nb in selected:
        t0 = time.perf_counter()
        run_notebook(nb, params, out, extra)
        timings[nb.stem] = {"params": params, "seconds": round(time.perf_counter() - t0, 1)}
        timings_file.write_text(json.dumps(timings, indent=1))
        print(f"{nb.stem}: {timings[nb.stem]['seconds']:.0f} s (all timings: {timings_file})", flush=True)


@app.command("stage")
def stage_command(
    executed: Annotated[Path, typer.Option(help="Folder of the executed notebooks.")] = BUILD / "notebooks",
    dest: Annotated[Path, typer.Option(help="Where the book sources are assembled.")] = BUILD / "src",
) -> None:
    """Assemble _build/src for `jupyter-book build`."""
    try:
        typer.echo(stage(executed.resolve(), dest.resolve()))
    except FileNotFoundError as e:
        _fail(e)


def main(argv: list[str] | None = None) -> int:
    """Run the book's command line (``python -m stablesemantics.book``) on ``argv``; returns its exit code."""
    try:
        app(args=argv, prog_name="python -m stablesemantics.book")
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        raise
    return 0
