"""``python -m stablesemantics``: the command line (:mod:`stablesemantics.cli`)."""

from stablesemantics.cli import app

app(prog_name="stablesemantics")
