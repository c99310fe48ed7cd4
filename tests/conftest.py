"""Shared fixtures: one tiny random Stable Diffusion pipeline per test session; benchmark scripts as modules."""

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


@contextmanager
def benchmark_module(name: str) -> Iterator[ModuleType]:
    """Import ``benchmarks/<name>.py`` (not a package) as a module for the duration of a test module."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
