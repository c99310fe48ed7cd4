"""Training checkpoints: written atomically, read back on resume without running pickled code.

Both trainings of the project (MicroSD in :mod:`stablesemantics.training`, the reference
segmenter in :mod:`stablesemantics.evaluate`) save their state with these, so that a
run killed at any moment leaves either the previous checkpoint or the new one, never half a
file.

A checkpoint holds only tensors and plain types (dicts, lists, tuples, str, int, float, bool,
None): :func:`atomic_save` turns numpy scalars into Python numbers (``float64``, integers and
booleans convert exactly) and other numpy values into tensors, and :func:`load_checkpoint`
reads with ``torch.load(weights_only=True)``, which refuses anything else, so opening a
checkpoint never executes code from the file. A numpy generator's state
(``rng.bit_generator.state``) is a dict of ints and strings and is stored as it is.

>>> import tempfile, pathlib, numpy as np
>>> p = pathlib.Path(tempfile.mkdtemp()) / "c.pt"
>>> atomic_save({"step": np.int64(3), "rng": np.random.default_rng(0).bit_generator.state}, p)
>>> load_checkpoint(p)["step"]
3
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _plain(obj: Any) -> Any:
    """``obj`` with numpy values replaced by Python numbers (exact ones) or tensors."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(v) for v in obj)
    if isinstance(obj, (np.float64, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (np.ndarray, np.generic)):
        return torch.from_numpy(np.array(obj))
    return obj


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` (tensors and plain types, see the module docstring) to a temporary file next to
    ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(_plain(obj), tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> Any | None:
    """The object saved at ``path`` (``weights_only=True``), or ``None`` if there is none (a fresh run).

    A checkpoint that holds other objects (written by an earlier version of the library) is refused
    with a ``ValueError``: delete it to start afresh.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"checkpoint {path} holds objects other than tensors and plain types (an earlier version of the "
            f"library wrote it); it is not loaded, as that could run code from the file. Delete it to start "
            f"afresh. ({str(e).splitlines()[0]})"
        ) from None
