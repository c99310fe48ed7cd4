"""The fixed inputs and goals of the capture benchmark, and its log."""

from __future__ import annotations

import sys

MODES = ("plain", "ours", "daam")
PROMPT = "a photo of a red car parked on a city street"
WORD = "car"
SEED = 1234
GUIDANCE = 7.5
MB = 1024.0 * 1024.0

# Goals from the architecture page's "Performance targets" (book/architecture.md) and the issue.
GOAL_RATIO_CPU = 1.10  # time with capture / plain time, CPU
GOAL_RATIO_GPU = 1.05  # same on the GPU at SD-1.5 size, fp16
GOAL_DAAM_FASTER = 3.0  # DAAM overhead / our overhead
# "Flat" memory: the peak at 50 steps exceeds the peak at 10 steps by at most this many MB or
# this fraction of the 10-step peak, whichever is larger (allocator noise).
FLAT_TOL_MB = 8.0
FLAT_TOL_FRAC = 0.05


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
