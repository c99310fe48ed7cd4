"""Shared fixtures: one tiny random Stable Diffusion pipeline per test session."""

from __future__ import annotations

import pytest
import torch

# The test machines have few cores shared by several processes; one thread per process avoids
# oversubscription, and the tiny models gain nothing from more.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_pipe():
    """A tiny random-weight ``StableDiffusionPipeline`` on the CPU in float32 (see ``tiny_random_components``).

    Shared by the whole session: tests must leave it as they found it (processors, scheduler config).
    """
    from stablesemantics.pipelines import load_pipeline

    return load_pipeline("tiny-random", device="cpu", dtype=torch.float32)
