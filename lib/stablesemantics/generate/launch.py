"""Start a generation on many processes from Python (a notebook): ``accelerate launch`` of the CLI.

:func:`generate_on_processes` writes the prompts to a temporary file and runs
``accelerate launch --num_processes N -m stablesemantics generate ...`` with the config spelled
as the CLI's options (:func:`config_arguments`); see :mod:`stablesemantics.generate.processes`
for how the processes share the store.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from stablesemantics.generate.config import GenerationConfig, check_config
from stablesemantics.store.location import store_location


def config_arguments(config: GenerationConfig) -> list[str]:
    """``config`` as ``stablesemantics generate`` options (its capture's fields too; unset ones left out).

    >>> from stablesemantics.capture import CaptureConfig
    >>> config_arguments(GenerationConfig(model="tiny-random", steps=2, capture=CaptureConfig(map_size=(8, 16))))[:6]
    ['--model', 'tiny-random', '--steps', '2', '--guidance', '7.5']
    """
    if not isinstance(config.model, (str, os.PathLike)):
        raise TypeError("a model to run on other processes must be a name, path or hub id, not a loaded pipeline")
    args: list[str] = []
    for owner in (config, config.capture):
        for f in dataclasses.fields(owner):
            value = getattr(owner, f.name)
            flag = "--" + f.name.replace("_", "-")
            if dataclasses.is_dataclass(value) or value is None:
                continue
            if isinstance(value, bool):
                args.append(flag if value else "--no-" + flag[2:])
            elif f.name == "map_size":
                args += [flag, f"{value[0]}x{value[1]}"]
            elif isinstance(value, (tuple, list)):
                args += [flag, ",".join(str(v) for v in value)]
            else:
                args += [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    return args


def launch_command(processes: int, *, cuda: bool | None = None, threads: int | None = None) -> list[str]:
    """The ``accelerate launch`` prefix for ``processes`` processes: one GPU each, or on a machine
    without CUDA ``threads`` CPU threads each (default: the cores split between them)."""
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 2:
        raise ValueError(f"processes must be an int of at least 2, got {processes!r}")
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate) if accelerate.exists() else "accelerate", "launch", "--multi_gpu"]
    cmd += ["--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no"]
    cmd += ["--dynamo_backend", "no"]
    if not cuda:  # accelerate's --cpu runs one process; --multi_gpu on a CPU machine runs N on the CPU
        threads = threads or max(1, (os.cpu_count() or 1) // processes)
        cmd += ["--num_cpu_threads_per_process", str(threads)]
    return cmd


def generate_on_processes(
    prompts: Sequence[str],
    seeds: Sequence[int] | int,
    out: str | os.PathLike,
    config: GenerationConfig,
    processes: int,
) -> Path | str:
    """:func:`~stablesemantics.generate.generate` on ``processes`` processes (``accelerate launch``).

    The store is the one a single process writes with the same threads per process; resuming,
    the lock and the checks are :func:`generate`'s. Raises ``RuntimeError`` with the end of the
    processes' output if the run fails.
    """
    config = check_config(config)
    out = store_location(out)
    seed_text = str(seeds) if isinstance(seeds, int) else ",".join(str(int(s)) for s in seeds)
    with tempfile.TemporaryDirectory(prefix="stablesemantics-prompts-") as tmp:
        prompts_file = Path(tmp) / "prompts.json"
        prompts_file.write_text(json.dumps(list(prompts)))
        cmd = launch_command(processes) + ["-m", "stablesemantics", "generate", "--prompts", str(prompts_file)]
        cmd += ["--out", str(out), "--seeds", seed_text, *config_arguments(config)]
        run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        errors = [line.split("error:", 1)[1].strip() for line in run.stderr.splitlines() if "error:" in line]
        raise RuntimeError(
            f"generation on {processes} processes failed (exit {run.returncode}): "
            + ("; ".join(errors) if errors else run.stderr[-2000:])
        )
    return out
