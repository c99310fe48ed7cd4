"""Benchmark: which training lever buys MicroSD the most per CPU-hour, from where it stands.

Each lever is one short proxy run that continues the committed model (``init_from``) for the
same number of UNet steps with the same data, seed, learning-rate schedule and threads, with
one thing changed; ``continue`` changes nothing and is the reference. Every proxy model is then
scored by ``stablesemantics eval`` on held-out prompts and seeds (parts a, b, c; the committed
model is scored the same way as the ``start`` row).

Levers measured: ``ema`` (an average of the weights, decay 0.99: a horizon of ~100 of the proxy's
steps), ``min_snr`` (γ = 5), ``per_token`` (every word of an object's phrase grounded on its
mask, colour words included), ``v_prediction`` (switching the objective of a model trained for
ε, so it starts behind: a warm-start proxy cannot judge it fairly), ``all`` (ema + min_snr +
per_token). Architecture levers (a wider text encoder, UNet width) cannot continue the
committed weights and need a run from scratch; the proxy does not measure them.

Checkpoints and proxy models go under ``--root`` (outside the work tree); a lever whose scores
exist there is not rerun, so the benchmark resumes. Writes ``benchmarks/results/microsd_levers.json``
and ``.md``.

Usage::

    python benchmarks/microsd_levers.py --root ~/.cache/stablesemantics/levers [--steps 300] [--n-scenes 64]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from stablesemantics.evaluate.microsd_eval import MicroSDEvalConfig, evaluate_microsd
from stablesemantics.paths import MICROSD_DIR, REPO_ROOT
from stablesemantics.training import TrainConfig, train

RESULTS = REPO_ROOT / "benchmarks" / "results"

LEVERS: dict[str, dict] = {
    "continue": {},
    "ema": {"ema_decay": 0.99},
    "min_snr": {"snr_gamma": 5.0},
    "per_token": {"per_token_grounding": True},
    "v_prediction": {"prediction_type": "v_prediction"},
    "all": {"ema_decay": 0.99, "snr_gamma": 5.0, "per_token_grounding": True},
}


def proxy_config(root: Path, lever: str, steps: int, threads: int) -> TrainConfig:
    """The proxy run of one lever: the committed recipe continued for ``steps`` steps."""
    return TrainConfig(
        out=str(root / lever / "model"),
        ckpt_dir=str(root / lever / "ckpt"),
        init_from=str(MICROSD_DIR),
        unet_steps=steps,
        lr=2e-4,
        warmup=min(50, steps // 4),
        eval_every=steps,
        ckpt_every=50,
        threads=threads,
        **LEVERS[lever],
    )


def shared_recipe(steps: int) -> dict:
    """The recipe every proxy run shares (each row's ``config`` adds its lever), without the run's
    machine-local folders: it starts from the committed model."""
    recipe = dataclasses.asdict(proxy_config(Path("."), "continue", steps, threads=1))
    for key in ("out", "ckpt_dir", "threads"):
        recipe.pop(key)
    recipe["init_from"] = str(MICROSD_DIR.relative_to(REPO_ROOT))
    return json.loads(json.dumps(recipe))


def headline(scores: dict) -> dict:
    """The numbers of the issue's goals, from one ``stablesemantics eval`` result."""
    c = scores["c_generated_maps_vs_segmenter"]
    b = scores["b_localisation"]["by_strength"]
    return {
        "recall": scores["a_fidelity"]["recall"],
        "colour": scores["a_fidelity"]["colour_accuracy"],
        "loc_0.15": b["0.15"]["microsd"],
        "loc_0.3": b["0.3"]["microsd"],
        "maps_vs_seg_found": c["found_objects_only"]["miou"],
        "own_mass": c["own_vs_other_object"]["mass_in_own_mask"],
        "other_mass": c["own_vs_other_object"]["mass_in_other_mask"],
        "own_larger": c["own_vs_other_object"]["own_larger"],
    }


def score(model: str, folder: Path, n_scenes: int) -> dict:
    """Scores of one model (cached in ``folder``)."""
    done = folder / "microsd_eval.json"
    if not done.exists():
        evaluate_microsd(MicroSDEvalConfig(model=model, n_scenes=n_scenes, parts="bac", results_dir=str(folder)))
    return headline(json.loads(done.read_text()))


def table(rows: dict, steps: int) -> str:
    keys = list(next(iter(rows.values()))["scores"])
    out = [
        f"Proxy runs: the committed MicroSD continued for {steps} UNet steps (batch 32), one lever each.\n",
        "| lever | train min | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for name, row in rows.items():
        cells = " | ".join(f"{row['scores'][k]:.3f}" for k in keys)
        out.append(f"| {name} | {row.get('train_minutes', 0):.1f} | {cells} |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="checkpoints and proxy models (outside the work tree)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--n-scenes", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--levers", nargs="*", default=list(LEVERS), choices=list(LEVERS))
    args = parser.parse_args()
    root = args.root.expanduser()
    rows = {"start": {"scores": score(str(MICROSD_DIR), root / "start", args.n_scenes)}}
    for lever in args.levers:
        cfg = proxy_config(root, lever, args.steps, args.threads)
        t0 = time.time()
        train(cfg)
        minutes = (time.time() - t0) / 60
        rows[lever] = {
            "config": LEVERS[lever],
            "train_minutes": minutes,
            "scores": score(cfg.out, root / lever, args.n_scenes),
        }
        report = {"steps": args.steps, "n_scenes": args.n_scenes, "recipe": shared_recipe(args.steps), "rows": rows}
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "microsd_levers.json").write_text(json.dumps(report, indent=1, default=str))
        (RESULTS / "microsd_levers.md").write_text(table(rows, args.steps))
        print(table(rows, args.steps), flush=True)


if __name__ == "__main__":
    main()
