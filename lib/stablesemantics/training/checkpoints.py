"""Training checkpoints: written atomically, read back on resume.

Both trainings of the project (MicroSD in :mod:`stablesemantics.training`, the reference
segmenter in :mod:`stablesemantics.evaluate`) save their state with these, so that a
run killed at any moment leaves either the previous checkpoint or the new one, never half a
file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> Any | None:
    """The object saved at ``path``, or ``None`` if there is none (a fresh run)."""
    path = Path(path)
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None
