"""Where things live: the repository (its embedded models, notebooks, book) and the cache.

The library is installed editable from a checkout (``pip install -e .``), so the
repository is found from the package's own location. A copy installed elsewhere (a wheel,
site-packages) finds it through ``$STABLESEMANTICS_ROOT`` or, failing that, by looking
upwards from the working directory for the project's ``_toc.yml`` and ``data/models``.
"""

from __future__ import annotations

import os
from pathlib import Path


def _is_repo(path: Path) -> bool:
    return (path / "_toc.yml").is_file() and (path / "data" / "models").is_dir()


def find_repo_root() -> Path:
    """The repository root (see the module docstring for how it is found).

    Raises ``FileNotFoundError`` naming ``$STABLESEMANTICS_ROOT`` when no checkout is found.
    """
    if env := os.environ.get("STABLESEMANTICS_ROOT"):
        return Path(env).resolve()
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for path in (start, *start.parents):
            if _is_repo(path):
                return path
    raise FileNotFoundError(
        "cannot find the StableSemantics checkout (its _toc.yml and data/models): "
        "run from inside it or set STABLESEMANTICS_ROOT"
    )


try:
    REPO_ROOT: Path = find_repo_root()
except FileNotFoundError:  # an install without a checkout: only the hub and tiny models work
    REPO_ROOT = Path.cwd()

#: Where the repository keeps its embedded models (``data/models``).
MODEL_DIR: Path = REPO_ROOT / "data" / "models"
#: The embedded MicroSD pipeline (diffusers layout).
MICROSD_DIR: Path = MODEL_DIR / "microsd"
#: The MicroWorld reference segmenter.
REFERENCE_SEGMENTER_DIR: Path = MODEL_DIR / "reference_segmenter"


def default_cache_dir() -> Path:
    """``$STABLESEMANTICS_CACHE`` or ``$XDG_CACHE_HOME/stablesemantics`` (``~/.cache/...``)."""
    if env := os.environ.get("STABLESEMANTICS_CACHE"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stablesemantics"
