"""``stablesemantics verify STORE``: read every chunk of a store and name each damaged batch."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from stablesemantics.store.verify import verify_store


def verify(
    store: Annotated[str, typer.Argument(help="A store made by `stablesemantics generate` (a path or a URL).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check a store's checksums; exit 1 and name each damaged batch if any (rerun `generate` to redo them)."""
    check = verify_store(store)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "path": str(check.path),
                    "ok": check.ok,
                    "checksums": check.checksums,
                    "damaged_batches": check.damaged_batches,
                    "problems": check.problems,
                    "fatal": check.fatal,
                },
                indent=2,
            )
        )
    else:
        for line in check.fatal + check.problems:
            typer.echo(line)
        if not check.checksums:
            typer.echo(
                "note: this store has no chunk checksums (made by an earlier version); "
                "only chunks that no longer decompress can be found"
            )
        if check.fatal:
            typer.echo(f"store {store} is damaged beyond repair: delete it and generate it again")
        elif check.damaged_batches:
            typer.echo(
                f"damaged batches (image rows): {check.damaged_batches}; rerun the same "
                "`stablesemantics generate` command to redo them"
            )
        else:
            typer.echo(f"store {store} is intact")
    if not check.ok:
        raise typer.Exit(code=1)
