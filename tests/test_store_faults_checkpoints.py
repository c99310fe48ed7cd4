"""Training checkpoints load with ``weights_only=True``: tensors and plain types only, numpy state converted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stablesemantics.training.checkpoints import atomic_save, load_checkpoint


def test_numpy_values_are_stored_as_plain_types_and_the_rng_resumes(tmp_path: Path):
    rng = np.random.default_rng(7)
    rng.random(5)
    state = {
        "step": np.int64(4),
        "score": np.float64(0.25),
        "flag": np.bool_(True),
        "arr": np.arange(3),
        "rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "hist": [{"loss": np.float64(1.5)}],
    }
    atomic_save(state, tmp_path / "c.pt")
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["step"] == 4 and type(back["step"]) is int and back["score"] == 0.25 and back["flag"] is True
    assert torch.equal(back["arr"], torch.arange(3)) and back["hist"] == [{"loss": 1.5}]
    again = np.random.default_rng(0)
    again.bit_generator.state = back["rng"]
    assert np.array_equal(again.random(3), rng.random(3))
    assert load_checkpoint(tmp_path / "none.pt") is None


class _Anything:
    pass


def test_a_checkpoint_with_other_objects_is_refused(tmp_path: Path):
    torch.save({"obj": _Anything()}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="holds objects other than tensors"):
        load_checkpoint(tmp_path / "old.pt")
