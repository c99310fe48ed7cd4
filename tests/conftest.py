"""Shared fixtures: one tiny random Stable Diffusion pipeline per test session; the CLIP tokenizer and spaCy
pipeline per test module; benchmark scripts as modules."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# The test machines have few cores shared by several processes; one thread per process avoids
# oversubscription, and the tiny models gain nothing from more.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_pipe():
    """A tiny random-weight ``StableDiffusionPipeline`` on the CPU in float32 (see ``tiny_random_components``).

    Shared by the whole session: tests must leave it as they found it (processors, scheduler config).
    """
    from stablesemantics.models import load_pipeline

    return load_pipeline("tiny-random", device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    """A fresh folder for the offline CLIP tokenizer's files (one per test module)."""
    return tmp_path_factory.mktemp("cache") / "clip-tokenizer"


@pytest.fixture(scope="module")
def tok(tok_dir):
    """The offline CLIP tokenizer (``load_clip_tokenizer``), written into ``tok_dir``."""
    from stablesemantics.prompts import load_clip_tokenizer

    return load_clip_tokenizer(tok_dir)


@pytest.fixture(scope="module")
def nlp():
    """spaCy's English pipeline as the prompts module loads it."""
    from stablesemantics.prompts import load_nlp

    return load_nlp()


@contextmanager
def benchmark_module(name: str) -> Iterator[ModuleType]:
    """Import ``benchmarks/<name>.py`` (not a package) as a module for the duration of a test module.

    ``benchmarks/`` is on the import path meanwhile, as when the script runs, so that it finds its helper
    packages (``benchmarks/_capture/``).
    """
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
        sys.path.remove(str(BENCHMARKS))
