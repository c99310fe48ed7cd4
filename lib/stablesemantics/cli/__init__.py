"""Command line: ``stablesemantics generate | inspect | verify | train | eval | book``.

Examples (from the repository root)::

    stablesemantics generate --prompts prompts.txt --seeds 4 --model tiny-random \\
        --out data/stores/demo.zarr --steps 2 --height 32 --width 32
    stablesemantics inspect data/stores/demo.zarr --json
    stablesemantics verify data/stores/demo.zarr        # checksums; names damaged batches
    stablesemantics train microsd --max-minutes 30      # then: stablesemantics train segmenter
    stablesemantics eval --quick
    stablesemantics book run --params smoke 01_generate

Every option that sets a config has its default in the config dataclass it comes from
(:class:`~stablesemantics.generate.GenerationConfig`, :class:`~stablesemantics.training.TrainConfig`,
:class:`~stablesemantics.training.SegmenterTraining`,
:class:`~stablesemantics.evaluate.microsd_eval.MicroSDEvalConfig`); :mod:`stablesemantics.cli.options`
builds the options from their fields. ``python -m stablesemantics`` is the same command.
"""

from __future__ import annotations

import typer

from stablesemantics.book.runner import app as book_app
from stablesemantics.cli.evaluate import evaluate
from stablesemantics.cli.generate import generate, inspect, parse_map_size, parse_seeds, read_prompts
from stablesemantics.cli.train import app as train_app
from stablesemantics.cli.verify import verify

app = typer.Typer(
    name="stablesemantics",
    help="Generate images with per-noun-chunk cross-attention maps into Zarr stores, inspect them, "
    "train and evaluate the embedded models, and run the book.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.command()(generate)
app.command()(inspect)
app.command()(verify)
app.add_typer(train_app, name="train")
app.command("eval")(evaluate)
app.add_typer(book_app, name="book")

__all__ = ["app", "parse_map_size", "parse_seeds", "read_prompts"]
