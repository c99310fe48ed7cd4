"""``stablesemantics generate`` and ``stablesemantics inspect``: make a store, and summarise one.

A prompts file is a text file with one prompt per line (blank lines skipped), a ``.json``
list of strings (or of objects with a ``"prompt"`` key), or a ``.csv`` / ``.tsv`` / ``.parquet``
with a ``prompt`` column (:func:`stablesemantics.prompts.files.read_prompts`; rows without a
prompt are skipped with a warning naming their lines). Rerunning the same ``generate``
command resumes an interrupted run. The options of ``generate`` are
:class:`~stablesemantics.generate.GenerationConfig`'s fields (the capture's too), with its defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from stablesemantics.cli.options import config_options
from stablesemantics.generate.config import GenerationConfig
from stablesemantics.generate.run import generate as run_generate
from stablesemantics.prompts.files import read_prompts
from stablesemantics.store.errors import StoreLockedError, StoreWriteError
from stablesemantics.store.read import store_summary


def parse_seeds(text: str) -> int | list[int]:
    """``"4"`` -> 4 (seeds 0..3); ``"0,5,7"`` -> [0, 5, 7].

    >>> parse_seeds("4"), parse_seeds("0, 5,7")
    (4, [0, 5, 7])
    """
    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        return int(text)
    except ValueError:
        raise typer.BadParameter(f"seeds must be a count like 4 or a list like 0,5,7, got {text!r}") from None


def parse_map_size(text: str | None) -> tuple[int, int] | None:
    """``"16"`` -> (16, 16); ``"16x24"`` -> (16, 24) (height x width); ``None`` -> latent size.

    >>> parse_map_size("16"), parse_map_size("16x24")
    ((16, 16), (16, 24))
    """
    if text is None:
        return None
    try:
        parts = [int(s) for s in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise typer.BadParameter(f"map size must be like 16 or 16x24, got {text!r}")
    return parts[0], parts[1]


@config_options(GenerationConfig, parsers={"map_size": (parse_map_size, "16|16x24")})
def generate(
    config: GenerationConfig,
    prompts: Annotated[
        Path,
        typer.Option(help="Prompts file: .txt (one per line), .json list, .csv/.tsv/.parquet ('prompt' column)."),
    ],
    out: Annotated[
        str,
        typer.Option(
            help="Output Zarr store, e.g. data/stores/demo.zarr or s3://bucket/demo.zarr (resumed if it exists)."
        ),
    ],
    seeds: Annotated[str, typer.Option(help="Seeds per prompt: a count (4 = seeds 0..3) or a list (0,5,7).")] = "4",
) -> None:
    """Generate images and per-noun-chunk attention maps for every prompt x seed."""
    try:
        texts = read_prompts(prompts)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--prompts") from None
    try:
        path = run_generate(texts, parse_seeds(seeds), out, config)
    except (ValueError, TypeError, FileNotFoundError, StoreWriteError, StoreLockedError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from None
    _print_summary(path)


def _print_summary(path: Path | str, top: int = 10) -> None:
    s = store_summary(path, top=top)
    lemmas = ", ".join(f"{k} ({v})" for k, v in s["top_lemmas"]) or "-"
    typer.echo(
        f"store     {s['path']}  (schema {s['schema_version']}, {s['bytes'] / 2**20:.1f} MiB)\n"
        f"model     {s['model']}  revision {s['model_revision']}  {s['scheduler']}, "
        f"{s['steps']} steps, guidance {s['guidance']}\n"
        f"images    {s['n_done']}/{s['n_images']} done  ({s['n_prompts']} prompts x {s['n_seeds']} seeds, "
        f"{s['image_size'][0]}x{s['image_size'][1]})\n"
        f"maps      {s['n_maps_done']}/{s['n_maps']} done  ({s['map_size'][0]}x{s['map_size'][1]}), "
        f"{s['n_truncated_chunks']} truncated chunk(s) without a map\n"
        f"lemmas    {lemmas}\n"
        f"created   {s['created']}"
    )


def inspect(
    store: Annotated[str, typer.Argument(help="A store made by `stablesemantics generate` (a path or a URL).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    top: Annotated[int, typer.Option(min=1, help="How many of the most frequent lemmas to list.")] = 10,
) -> None:
    """Summarise a store: schema, model, images done / total, maps, most frequent chunk lemmas."""
    try:
        s = store_summary(store, top=top)
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(json.dumps(s, indent=2))
    else:
        _print_summary(store, top=top)
