"""Evaluate MicroSD against MicroWorld's ground truth: the same as ``stablesemantics eval``.

a) prompt fidelity, b) attention localisation with exact truth, c) maps on generated images vs
the reference segmenter, d) speed; the evaluation is :mod:`stablesemantics.evaluate.microsd_eval`.

Writes benchmarks/results/microsd_eval.json and .md. Run:
    python benchmarks/microsd_eval.py [--quick] [--parts abcd] [--n-scenes 160] [--model microsd]
"""

from __future__ import annotations

import sys

from stablesemantics.cli import app

if __name__ == "__main__":
    app(["eval", *sys.argv[1:]], prog_name="python benchmarks/microsd_eval.py")
