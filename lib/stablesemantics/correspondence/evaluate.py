"""Run the method and the baselines on keypoint queries; tables and headline numbers."""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from stablesemantics.correspondence.boxes import box_centre, same_place_in_box
from stablesemantics.correspondence.config import CorrespondenceConfig, DiftConfig
from stablesemantics.correspondence.dift import dift_features, nearest_neighbour_points
from stablesemantics.correspondence.optimise import optimise_embeddings
from stablesemantics.correspondence.pairs import KeypointQueries
from stablesemantics.correspondence.scoring import ALPHAS, pck_table
from stablesemantics.correspondence.transfer import predict_points, transfer_maps

#: Method names, as columns ``<name>_x`` / ``<name>_y`` of the predictions.
PROMPT_METHODS = ("prompt (argmax)", "prompt (soft-argmax)")
BASELINES = ("DIFT", "same place in box", "box centre")


@dataclass
class CorrespondenceRun:
    """Predictions of every method for the scored queries (target visible), and what the method left.

    ``predictions``: the query table with ``<method>_x``, ``<method>_y`` columns; ``maps``
    ``(n_queries, S, S)`` the optimised conditionings' attention in the target image (empty when
    the method did not run); ``losses`` ``(steps, n_queries)``; ``seconds`` per stage.
    """

    predictions: pd.DataFrame
    methods: list[str]
    maps: torch.Tensor
    losses: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def seconds_per_point(self) -> float:
        """Wall seconds of the method (optimisation + transfer) per query point."""
        n = max(len(self.predictions), 1)
        return (self.seconds.get("optimise", np.nan) + self.seconds.get("transfer", np.nan)) / n


def _put(table: pd.DataFrame, name: str, xy: np.ndarray) -> None:
    table[f"{name}_x"] = np.asarray(xy, np.float64)[:, 0]
    table[f"{name}_y"] = np.asarray(xy, np.float64)[:, 1]


def _boxes(table: pd.DataFrame, who: str) -> np.ndarray:
    return table[[f"{who}_x0", f"{who}_y0", f"{who}_x1", f"{who}_y1"]].to_numpy(float)


def run_correspondence(
    pipe,
    queries: KeypointQueries,
    config: CorrespondenceConfig | None = None,
    dift: DiftConfig | None = None,
    prompt_method: bool = True,
) -> CorrespondenceRun:
    """Every method on the scored queries: the prompt optimisation (argmax and soft-argmax of its
    target map), DIFT (when ``dift`` is given), the same place in the box and the box centre."""
    config = config or CorrespondenceConfig()
    q = queries.scored()
    table = q.table.copy()
    size = q.images.shape[1]
    src = table[["source_x", "source_y"]].to_numpy(np.float32)
    methods: list[str] = []
    seconds: dict[str, float] = {}
    maps, losses = torch.zeros((0, size, size)), np.zeros((0, 0))
    if prompt_method and len(table):
        opt = optimise_embeddings(pipe, q.images, src, table.source_image.to_numpy(), config)
        seconds["optimise"], losses = opt.seconds, opt.losses
        start = time.perf_counter()
        maps = transfer_maps(pipe, q.images, opt.embeddings, table.target_image.to_numpy(), config)
        seconds["transfer"] = time.perf_counter() - start
        for name, xy in zip(PROMPT_METHODS, predict_points(maps, config.soft_beta).values()):
            _put(table, name, xy)
        methods += list(PROMPT_METHODS)
    if dift is not None and len(table):
        start = time.perf_counter()
        feats = dift_features(pipe, q.images, dift)
        xy = nearest_neighbour_points(feats, feats, src, table.source_image, table.target_image, size)
        seconds["dift"] = time.perf_counter() - start
        _put(table, "DIFT", xy)
        methods.append("DIFT")
    _put(table, "same place in box", same_place_in_box(src, _boxes(table, "source"), _boxes(table, "target")))
    _put(table, "box centre", box_centre(_boxes(table, "target")))
    methods += ["same place in box", "box centre"]
    return CorrespondenceRun(table, methods, maps, losses, seconds)


def dift_sweep(
    pipe,
    queries: KeypointQueries,
    up_blocks: list[int],
    timesteps: list[int],
    base: DiftConfig | None = None,
    alphas: tuple[float, ...] = ALPHAS,
) -> pd.DataFrame:
    """PCK of DIFT for every (up block, timestep): rows ``(up_block, timestep)``."""
    base = base or DiftConfig()
    q = queries.scored()
    table = q.table.copy()
    size = q.images.shape[1]
    src = table[["source_x", "source_y"]].to_numpy(np.float32)
    rows = {}
    for block in up_blocks:
        for t in timesteps:
            feats = dift_features(pipe, q.images, dataclasses.replace(base, up_block=block, timestep=t))
            _put(
                table, "DIFT", nearest_neighbour_points(feats, feats, src, table.source_image, table.target_image, size)
            )
            rows[(block, t)] = pck_table(table, ["DIFT"], alphas=alphas).iloc[0]
    return pd.DataFrame(rows).T.rename_axis(["up_block", "timestep"]).astype({"n": int})


def prompt_sweep(
    pipe,
    queries: KeypointQueries,
    base: CorrespondenceConfig,
    variations: dict[str, list],
    alphas: tuple[float, ...] = ALPHAS,
) -> pd.DataFrame:
    """PCK of the prompt method (argmax) when one knob of ``base`` varies at a time: rows ``(knob, value)``.

    ``variations`` maps a :class:`CorrespondenceConfig` field to the values to try, e.g.
    ``{"timestep": [50, 141, 300], "steps": [10, 30]}``; a value that is a list becomes a tuple
    (``{"resolutions": [[1], [1, 2]]}``).
    """
    rows = {}
    for knob, values in variations.items():
        for value in values:
            value = tuple(value) if isinstance(value, list) else value
            run = run_correspondence(pipe, queries, dataclasses.replace(base, **{knob: value}))
            row = pck_table(run.predictions, [PROMPT_METHODS[0]], alphas=alphas).iloc[0]
            rows[(knob, str(value))] = {**row.to_dict(), "seconds per point": run.seconds_per_point}
    return pd.DataFrame(rows).T.rename_axis(["knob", "value"])


def headline_numbers(run: CorrespondenceRun, alphas: tuple[float, ...] = ALPHAS) -> dict[str, float | int | None]:
    """Flat numbers for the JSON and the book: PCK of every method at every α, overall and by pair kind
    and flip (keys like ``prompt_argmax_pck010_flipped``), counts, seconds per point."""

    def key(method: str) -> str:
        return re.sub(r"[^a-z0-9]+", "_", method.lower()).strip("_")

    out: dict[str, float | int | None] = {}
    p = run.predictions
    groups = {
        "all": p,
        "same": p[p.kind == "same class"],
        "cross": p[p.kind == "cross class"],
        "same_flipped": p[(p.kind == "same class") & p.flipped],
        "same_unflipped": p[(p.kind == "same class") & ~p.flipped],
    }
    for name, frame in groups.items():
        out[f"n_{name}"] = int(len(frame))
        if not len(frame):
            continue
        table = pck_table(frame, run.methods, alphas=alphas)
        for m in run.methods:
            for a in alphas:
                out[f"{key(m)}_pck{int(round(a * 100)):03d}_{name}"] = float(table.loc[m, f"PCK@{a:g}"])
    out["seconds_per_point"] = float(run.seconds_per_point) if run.maps.numel() else None
    # the first goal: does the method (argmax) beat every baseline on flipped same-class pairs?
    method = key(PROMPT_METHODS[0])
    if f"{method}_pck010_same_flipped" in out:
        mine = out[f"{method}_pck010_same_flipped"]
        others = [out[f"{key(b)}_pck010_same_flipped"] for b in run.methods if b not in PROMPT_METHODS]
        out["beats_box_on_flipped"] = bool(mine > out[f"{key(BASELINES[1])}_pck010_same_flipped"])
        out["beats_every_baseline_on_flipped"] = bool(all(mine > o for o in others))
    return out
