"""What a store records about its run (model, revision, versions, settings) and the resume check."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import warnings
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stablesemantics.generate.config import RUN_ONLY, GenerationConfig
from stablesemantics.generate.plan import GenerationPlan, StoreMismatchError
from stablesemantics.models.families import denoiser
from stablesemantics.paths import MODEL_DIR
from stablesemantics.store.schema import PER_IMAGE, PER_MAP, jsonable, open_store

#: Root attribute holding the run's whole generation config (:func:`_config_record`).
CONFIG_ATTR = "generation_config"

# --------------------------------------------------------------------------- metadata


def _model_id(model: Any, pipe: Any) -> str:
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    name = getattr(pipe, "name_or_path", None) or getattr(getattr(pipe, "config", {}), "_name_or_path", None)
    return str(name) if name else f"<{type(pipe).__name__} object>"


#: Files of a pipeline directory that do not change what it computes (cards, figures, training logs).
_NOT_MODEL_SUFFIXES = frozenset({".md", ".png", ".jpg", ".svg"})
_NOT_MODEL_FILES = frozenset({"training.json", "metrics.json"})


def _model_revision(model_id: str) -> str | None:
    """Hub commit of a cached hub model, or a content hash of a local pipeline directory.

    The hash covers what ``from_pretrained`` reads (configs, weights, tokenizer files), not the
    model card, figures or training logs: editing a card must not invalidate every store.
    """
    path = MODEL_DIR / model_id if model_id == "microsd" else Path(model_id).expanduser()
    if (path / "model_index.json").is_file():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and not any(s.startswith(".") for s in p.parts)
            and p.suffix not in _NOT_MODEL_SUFFIXES
            and p.name not in _NOT_MODEL_FILES
        )
        total = sum(p.stat().st_size for p in files)
        h = hashlib.sha256()
        for p in files:
            h.update(str(p.relative_to(path)).encode())
            if total <= 2**30:  # hash contents of small models (MicroSD); sizes only for big ones
                h.update(p.read_bytes())
            else:
                h.update(str(p.stat().st_size).encode())
        return "sha256:" + h.hexdigest()[:16]
    m = re.search(r"snapshots/([0-9a-f]{40})", model_id)
    if m:
        return m.group(1)
    if "/" in model_id and not os.path.exists(model_id):
        try:
            from huggingface_hub import snapshot_download

            local = snapshot_download(model_id, local_files_only=True)
            return Path(local).name
        except Exception:  # noqa: BLE001 - revision is informative only
            return None
    return None


def _versions() -> dict[str, str]:
    import diffusers
    import transformers
    import zarr

    out = {
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
        "transformers_version": transformers.__version__,
        "zarr_version": zarr.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
    }
    try:
        import spacy

        out["spacy_version"] = spacy.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def _model_facts(model_id: str, pipe: Any) -> dict[str, Any]:
    """What the model behind a name is: revision (or content hash), pipeline and scheduler classes, dtype."""
    sched_cfg = {k: v for k, v in dict(pipe.scheduler.config).items() if not k.startswith("_")}
    return jsonable(
        {
            "model_revision": _model_revision(model_id),
            "pipeline_class": type(pipe).__name__,
            "scheduler": type(pipe.scheduler).__name__,
            "scheduler_config": sched_cfg,
            "dtype": str(denoiser(pipe).dtype).removeprefix("torch."),
        }
    )


def _config_record(config: GenerationConfig, model_id: str, device: str) -> dict[str, Any]:
    """The run's whole :class:`GenerationConfig` as JSON (root attribute ``generation_config``).

    ``config`` is resolved: ``model`` is the model's id (a loaded pipeline's name), ``height`` and
    ``width`` are the sizes used, ``device`` the device type the run started on.
    """
    record = {f.name: getattr(config, f.name) for f in fields(config)}  # not asdict: it would copy a pipeline
    return jsonable(record | {"model": model_id, "capture": asdict(config.capture), "device": device})


def _settings(config: GenerationConfig, model_id: str, facts: dict[str, Any]) -> dict[str, Any]:
    """The flat root attributes that readers (``store_summary``, analyses) use: model, steps, sizes, capture."""
    return jsonable(
        {
            "model": model_id,
            "model_revision": facts["model_revision"],
            "pipeline_class": facts["pipeline_class"],
            "scheduler": facts["scheduler"],
            "scheduler_config": facts["scheduler_config"],
            "steps": config.steps,
            "guidance": config.guidance,
            "height": config.height,
            "width": config.width,
            "capture": asdict(config.capture),
            "batch_size": config.batch_size,
            "dtype": facts["dtype"],
        }
    )


def _check_resumable(out: Path, record: dict[str, Any], facts: dict[str, Any], plan: GenerationPlan) -> None:
    """Refuse to resume ``out`` unless its recorded config (run-only settings aside), model and items equal this call's."""
    g = open_store(out, "r")
    attrs = dict(g.attrs)
    recorded = attrs.get(CONFIG_ATTR)
    if not isinstance(recorded, dict):
        raise StoreMismatchError(
            f"store {out} records no {CONFIG_ATTR} (an earlier version of the library made "
            "it); not overwriting it. Use another `out` or delete the store."
        )
    diffs = [
        f"{k}: store has {recorded.get(k)!r}, this call {v!r}"
        for k, v in record.items()
        if k not in RUN_ONLY and recorded.get(k) != v
    ]
    diffs += [f"{k}: store has {attrs.get(k)!r}, this call {v!r}" for k, v in facts.items() if attrs.get(k) != v]
    if diffs:
        raise StoreMismatchError(
            f"store {out} was made with other settings; not overwriting it. "
            "Use another `out` or delete the store. Differences:\n  " + "\n  ".join(diffs)
        )
    layout = plan.layout
    for name in PER_IMAGE + PER_MAP:
        a = g[name]
        stored = np.asarray(a[:], dtype=object) if a.shape[0] else np.empty((0,), object)
        new = np.asarray(list(getattr(layout, name)), dtype=object)
        if stored.shape != new.shape or not all(x == y for x, y in zip(stored.tolist(), new.tolist())):
            what = (
                "prompts or seeds"
                if name in ("prompt", "caption", "seed", "prompt_id")
                else "noun chunks / token positions (another spaCy model or tokenizer?)"
            )
            raise StoreMismatchError(
                f"store {out} plans other items: its {name!r} differs from this call's "
                f"({what}); not overwriting it. Use another `out` or delete the store."
            )
    device = record["device"]
    if attrs.get("device") != device:
        warnings.warn(
            f"store {out} was started on {attrs.get('device')!r}, resuming on {device!r}: "
            "images may differ slightly from an uninterrupted run",
            stacklevel=3,
        )
    old = {k: attrs.get(k) for k in ("torch_version", "diffusers_version")}
    new = {k: v for k, v in _versions().items() if k in old}
    if old != new:
        warnings.warn(f"store {out} was started with {old}, resuming with {new}", stacklevel=3)
