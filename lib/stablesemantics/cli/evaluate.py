"""``stablesemantics eval``: MicroSD against MicroWorld's ground truth (:mod:`stablesemantics.evaluate.microsd_eval`)."""

from __future__ import annotations

import typer

from stablesemantics.cli.options import config_options
from stablesemantics.evaluate.microsd_eval import MicroSDEvalConfig, evaluate_microsd


@config_options(MicroSDEvalConfig)
def evaluate(config: MicroSDEvalConfig) -> None:
    """Evaluate MicroSD: a) prompt fidelity, b) localisation, c) maps on generated images, d) speed.

    Results merge into benchmarks/results/microsd_eval.json; the table (.md) is written once
    every part has results.
    """
    try:
        evaluate_microsd(config)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from None
