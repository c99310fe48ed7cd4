"""An exponential moving average of model weights, for sampling (standard in diffusion training)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """Shadow copies of some modules whose weights follow the trained ones slowly.

    After each optimiser step, :meth:`update` moves every shadow parameter a fraction
    ``1 - d`` towards the trained one, with ``d = min(decay, (1 + n) / (10 + n))`` after ``n``
    updates (a short warm-up, so that early averages are not dominated by the initial weights).
    Buffers are copied as they are.

    >>> net = nn.Linear(2, 1)
    >>> avg = WeightAverage({"net": net}, decay=0.9)
    >>> with torch.no_grad():
    ...     _ = net.weight.add_(1.0)
    >>> avg.update({"net": net})
    >>> bool((avg.modules["net"].weight < net.weight).all())
    True
    """

    def __init__(self, modules: dict[str, nn.Module], decay: float, updates: int = 0) -> None:
        self.decay = decay
        self.updates = updates
        self.modules = {name: copy.deepcopy(m).eval().requires_grad_(False) for name, m in modules.items()}

    @torch.no_grad()
    def update(self, modules: dict[str, nn.Module]) -> None:
        """One step of the average towards ``modules`` (the same names as at construction)."""
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, module in modules.items():
            shadow = self.modules[name]
            torch._foreach_lerp_(list(shadow.parameters()), list(module.parameters()), 1.0 - d)
            for mine, theirs in zip(shadow.buffers(), module.buffers()):
                mine.copy_(theirs)
        self.updates += 1

    def state_dict(self) -> dict:
        """Tensors and plain types only (see :mod:`stablesemantics.training.checkpoints`)."""
        return {"updates": self.updates, **{name: m.state_dict() for name, m in self.modules.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]
        for name, m in self.modules.items():
            m.load_state_dict(state[name])
