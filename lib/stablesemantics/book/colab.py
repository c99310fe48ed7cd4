"""Setting a notebook up on Colab: the repository's address and the one setup function.

A notebook opened in Colab starts without the library. Its hidden setup cell (below the
title) is therefore a few lines that clone the repository and put the clone's ``lib`` on
``sys.path``, then hand over to :func:`setup_colab`, which installs the dependencies and
moves into the clone, so that the notebooks' relative paths (``data/``, ``results/``) work.
Everywhere else (a checkout with the library installed, papermill, the book build) the cell
does nothing.

The repository's address has one setting, ``repository.url`` in ``_config.yml`` (the book's
launch buttons read it). :data:`REPOSITORY_URL` and each notebook's ``REPO_URL`` repeat it,
because neither an installed package nor a notebook opened in Colab can read that file; the
tests check that every copy equals ``_config.yml``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

#: The public repository: equal to ``repository.url`` in ``_config.yml`` (tested).
REPOSITORY_URL = "https://github.com/stablesemantics/stablesemantics"

#: Where the setup cell clones the repository, relative to Colab's working directory.
CLONE_DIR = "stablesemantics"


def in_colab() -> bool:
    """True inside a Google Colab kernel."""
    return "google.colab" in sys.modules


def colab_commands(repo_url: str = REPOSITORY_URL, clone_dir: str = CLONE_DIR) -> list[list[str]]:
    """The shell commands :func:`setup_colab` runs, in order.

    The clone is shallow and skipped when it exists. ``pip install -e`` installs the library's
    dependencies; Colab's own torch is kept (the package asks for ``torch>=2.1`` and pip leaves
    a satisfying torch alone). ``open-clip-torch`` is wanted only for its CLIP vocabulary and is
    installed without its dependencies, which would replace Colab's torchvision.
    """
    commands = []
    if not os.path.isdir(clone_dir):
        commands.append(["git", "clone", "--depth", "1", repo_url, clone_dir])
    commands.append([sys.executable, "-m", "pip", "install", "-q", "-e", clone_dir])
    commands.append([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "open-clip-torch"])
    return commands


def setup_colab(
    repo_url: str = REPOSITORY_URL,
    clone_dir: str = CLONE_DIR,
    *,
    force: bool = False,
    run: Callable[..., object] = subprocess.run,
) -> Path | None:
    """On Colab (or with ``force``): clone, install, and move into the clone; elsewhere nothing.

    Returns the clone's absolute path, or ``None`` when nothing was done. The clone's ``lib``
    goes first on ``sys.path``: an editable install made by a running kernel is seen by new
    kernels only. ``run`` runs each command (``subprocess.run``; tests pass a recorder).
    """
    if not (force or in_colab()):
        return None
    for command in colab_commands(repo_url, clone_dir):
        run(command, check=True)
    root = Path(clone_dir).resolve()
    os.chdir(root)
    lib = str(root / "lib")
    # the setup cell put the clone's lib on the path relative to the old working directory
    sys.path[:] = [p for p in sys.path if p not in (lib, f"{clone_dir}/lib")]
    sys.path.insert(0, lib)
    return root
