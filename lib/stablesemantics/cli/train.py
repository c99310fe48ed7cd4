"""``stablesemantics train microsd | segmenter``: train the embedded models (``make model`` runs both).

Their options are the fields of :class:`~stablesemantics.training.TrainConfig` and of
:class:`~stablesemantics.training.SegmenterTraining` (with the reference recipe,
:data:`~stablesemantics.training.REFERENCE_TRAINING`, as defaults). Both resume from their
checkpoints when run again after an interruption.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from stablesemantics.cli.options import config_options
from stablesemantics.evaluate.segmenter import REFERENCE_DIR
from stablesemantics.training.config import TrainConfig
from stablesemantics.training.microsd import train
from stablesemantics.training.segmenter import REFERENCE_TRAINING, SegmenterTraining, train_reference_segmenter

app = typer.Typer(
    name="train",
    help="Train the embedded models: MicroSD, then the reference segmenter.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@app.command("microsd")
@config_options(TrainConfig)
def microsd(config: TrainConfig) -> None:
    """Train MicroSD on MicroWorld (hours on a CPU; rerun the same command to resume)."""
    try:
        out = train(config)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"model written to {out}" if out else "stopped before the end; run the same command again to resume")


@app.command("segmenter")
@config_options(SegmenterTraining, defaults=REFERENCE_TRAINING)
def segmenter(
    config: SegmenterTraining,
    out: Annotated[Path, typer.Option(help="Where the segmenter is written.")] = REFERENCE_DIR,
    ckpt_dir: Annotated[
        Path | None, typer.Option(help="Where checkpoints go (default: the project's cache folder).")
    ] = None,
) -> None:
    """Train the MicroWorld reference segmenter and print its held-out scores."""
    try:
        report = train_reference_segmenter(config, out, ckpt_dir)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(json.dumps(report, indent=1))
