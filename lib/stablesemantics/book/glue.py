"""A notebook's headline numbers: JSON-safe values, the JSON file, and glue for the book's text.

Every chapter ends by writing its measured numbers to ``out_json`` (for the tests and for
readers who rerun it) and by *gluing* some of them as text, so that sentences of the book
quote the numbers of the run they sit next to (``{glue:text}`s03_r_vertical```). This module
is the one place that does both, so no notebook defines its own rounding, cleaning or glue
fallback:

* :func:`round_number` — one headline number: ``None`` for missing or non-finite values,
  else a Python float rounded to 4 digits;
* :func:`clean_json` — any headline structure made JSON-safe (NaN → ``None``, numpy →
  Python, DataFrames → nested dicts, floats rounded);
* :func:`write_headline` — the JSON file at ``out_json``;
* :func:`glue` and :func:`glue_text` — MyST-NB's ``glue`` when it is installed, a no-op
  otherwise (plain Jupyter, Colab, papermill outside the book build);
* :func:`merge_injected_parameters` — for the book's staging step: papermill adds an
  ``injected-parameters`` cell after the notebook's ``parameters`` cell; the book should show
  one parameters cell, holding the values that ran.

>>> clean_json({"r": np.float64(0.123456), "n": np.int64(3), "missing": float("nan")})
{'r': 0.1235, 'n': 3, 'missing': None}
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Digits kept by :func:`round_number` and :func:`clean_json`.
DIGITS = 4


def round_number(x: Any, digits: int = DIGITS) -> float | None:
    """One headline number: ``None`` when missing or not finite, else ``round(float(x), digits)``.

    >>> round_number(2 / 3), round_number(None), round_number(float("inf"))
    (0.6667, None, None)
    """
    if x is None or not np.isfinite(x):
        return None
    return round(float(x), digits)


def clean_json(x: Any, digits: int | None = DIGITS, index_sep: str = " + ") -> Any:
    """``x`` made JSON-safe: NaN and infinities → ``None``, numpy scalars → Python, tuples →
    lists, DataFrames → ``{row label: {column: value}}`` (a tuple row label of a MultiIndex is
    joined with ``index_sep``), floats rounded to ``digits`` (``None``: not rounded).

    >>> df = pd.DataFrame({"miou": [0.51234]}, index=pd.MultiIndex.from_tuples([("otsu", "crf")]))
    >>> clean_json(df)
    {'otsu + crf': {'miou': 0.5123}}
    """
    if isinstance(x, pd.DataFrame):
        return {
            index_sep.join(map(str, k)) if isinstance(k, tuple) else str(k): clean_json(r.to_dict(), digits, index_sep)
            for k, r in x.iterrows()
        }
    if isinstance(x, dict):
        return {str(k): clean_json(v, digits, index_sep) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_json(v, digits, index_sep) for v in x]
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, (np.floating, float)):
        if not math.isfinite(float(x)):
            return None
        return float(x) if digits is None else round(float(x), digits)
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_headline(headline: dict, out_json: str | Path) -> Path:
    """Write ``headline`` (already JSON-safe, see :func:`clean_json`) to ``out_json`` as indented JSON."""
    path = Path(out_json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(headline, indent=1) + "\n")
    return path


def glue(name: str, value: Any, display: bool = False) -> None:
    """MyST-NB's ``glue(name, value, display)``; nothing outside a book build (no ``myst_nb``)."""
    try:
        from myst_nb import glue as myst_glue  # optional: installed with the book's dependencies
    except ImportError:
        return
    myst_glue(name, value, display=display)


def glue_text(prefix: str, values: dict, spec: str = ".3f", specs: dict[str, str] | None = None) -> dict[str, str]:
    """Glue each value as text under ``<prefix>_<key>`` for the book's cross-page references.

    Numbers are formatted with ``specs[key]`` or else ``spec``; ``None`` and NaN become "n/a",
    integers and booleans their ``str``. Outside a MyST-NB build (plain Jupyter, Colab,
    papermill without myst_nb) nothing is glued; the formatted texts are returned either way,
    so a notebook can print them.

    >>> glue_text("sx", {"r": 0.91234, "n": 12, "none": None, "slope": 0.456}, specs={"slope": ".2f"})
    {'sx_r': '0.912', 'sx_n': '12', 'sx_none': 'n/a', 'sx_slope': '0.46'}
    """
    texts = {}
    for key, value in values.items():
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            text = "n/a"
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            text = str(value)
        elif isinstance(value, int):
            text = str(value)
        else:
            text = format(value, (specs or {}).get(key, spec))
        texts[f"{prefix}_{key}"] = text
    for name, text in texts.items():
        glue(name, text, display=False)
    return texts


#: Longest assignment line of a merged parameters cell before a list value is split, one item a line.
PARAMETER_LINE = 100


def _value_text(source: str, node: ast.expr, name: str) -> str:
    """The source of ``node``; a list or tuple that would make ``name = value`` longer than
    :data:`PARAMETER_LINE` is written one item per line (papermill writes values on one line)."""
    text = ast.get_source_segment(source, node) or ""
    if len(name) + 3 + len(text) <= PARAMETER_LINE or not isinstance(node, (ast.List, ast.Tuple)) or not node.elts:
        return text
    items = [ast.get_source_segment(source, elt) or "" for elt in node.elts]
    opening, closing = ("[", "]") if isinstance(node, ast.List) else ("(", ")")
    return opening + "\n" + "".join(f"    {item},\n" for item in items) + closing


def _assignments(source: str) -> dict[str, tuple[int, int, int, str]]:
    """Top-level ``name = value`` statements of ``source``: name -> (first line, last line, end
    column, value text), lines counted from 0."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            text = _value_text(source, node.value, name)
            found[name] = (node.lineno - 1, node.end_lineno - 1, node.end_col_offset, text)
    return found


def merge_injected_parameters(nb: dict) -> dict:
    """Show one parameters cell in the book: the values papermill injected, in the original cell.

    papermill executes a notebook with a new cell tagged ``injected-parameters`` right after the
    cell tagged ``parameters``, so a rendered page would show both (the defaults, then the values
    that ran). Here every assignment of the original cell that the injected cell overrides gets the
    injected value (its trailing comment is kept), and the injected cell is tagged ``remove-cell``
    so that the book leaves it out while the executed notebook keeps it. ``nb`` is a notebook as a
    dict (``json.load`` or nbformat); it is changed in place and returned. A notebook without an
    injected cell is returned unchanged.

    Call it on each executed notebook when the book is staged.
    """
    cells = nb.get("cells", [])

    def tagged(tag: str) -> list[int]:
        return [i for i, c in enumerate(cells) if tag in c.get("metadata", {}).get("tags", [])]

    injected, original = tagged("injected-parameters"), tagged("parameters")
    if not injected or not original:
        return nb
    inj_cell, orig_cell = cells[injected[0]], cells[original[0]]
    inj_source = "".join(inj_cell["source"]) if isinstance(inj_cell["source"], list) else inj_cell["source"]
    source = "".join(orig_cell["source"]) if isinstance(orig_cell["source"], list) else orig_cell["source"]
    values = {name: text for name, (*_, text) in _assignments(inj_source).items()}
    lines = source.splitlines()
    # replace from the bottom so that line numbers above stay valid
    for name, (first, last, end, _) in sorted(_assignments(source).items(), key=lambda kv: -kv[1][0]):
        if name in values:
            rest = lines[last].encode()[end:].decode().rstrip()  # ast columns count UTF-8 bytes
            lines[first : last + 1] = [f"{name} = {values[name]}{rest}"]
    orig_cell["source"] = "\n".join(lines)
    tags = inj_cell.setdefault("metadata", {}).setdefault("tags", [])
    if "remove-cell" not in tags:
        tags.append("remove-cell")
    return nb


def merge_injected_parameters_file(path: str | Path) -> Path:
    """:func:`merge_injected_parameters` on a notebook file, rewritten in place when it changes."""
    path = Path(path)
    nb = json.loads(path.read_text())
    before = json.dumps(nb)
    if json.dumps(merge_injected_parameters(nb)) != before:  # untouched files stay byte for byte
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return path


def model_note(model: str) -> str:
    """A sentence on what the ``model`` parameter means for the numbers of a run, so that a chapter
    states it from the parameter instead of prose that another parameter set makes false.

    >>> model_note("tiny-random")
    "model 'tiny-random': a tiny pipeline with random weights; images are noise and numbers mean nothing"
    """
    if model == "tiny-random":
        return f"model {model!r}: a tiny pipeline with random weights; images are noise and numbers mean nothing"
    if model == "microsd":
        return f"model {model!r}: the embedded MicroSD, trained on MicroWorld scenes (data/models/microsd)"
    return f"model {model!r}: a diffusers checkpoint (local folder or hub id)"
