"""PCK: the share of predicted points within α × the target object's box size of the true point.

The threshold follows the SPair-71k convention: ``α · max(box width, box height)`` of the target
object's tight box (``reference="box"``); ``reference="image"`` uses the image side instead (the
PF-Willow convention uses the box too; CUB's uses the image in some papers). Only visible target
keypoints are counted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ALPHAS: tuple[float, ...] = (0.05, 0.1)


def pck(
    predicted: np.ndarray,
    true: np.ndarray,
    reference_size: np.ndarray,
    alpha: float,
    visible: np.ndarray | None = None,
) -> float:
    """Share of visible points with ``|predicted − true| ≤ alpha · reference_size`` (NaN if none is visible).

    >>> pck(np.array([[0.0, 0.0], [5.0, 0.0], [9.0, 9.0]]), np.zeros((3, 2)), np.array([100, 100, 100]), 0.05,
    ...     visible=np.array([True, True, False]))
    1.0
    """
    pred = np.asarray(predicted, np.float64).reshape(-1, 2)
    tru = np.asarray(true, np.float64).reshape(-1, 2)
    ref = np.broadcast_to(np.asarray(reference_size, np.float64), (len(pred),))
    keep = np.ones(len(pred), bool) if visible is None else np.asarray(visible, bool)
    if not keep.any():
        return float("nan")
    dist = np.linalg.norm(pred - tru, axis=1)
    return float((dist[keep] <= alpha * ref[keep]).mean())


def point_errors(predictions: pd.DataFrame, method: str) -> pd.Series:
    """Distance in pixels between each query's point predicted by ``method`` and its true target point.

    >>> point_errors(pd.DataFrame({"m_x": [3.0], "m_y": [4.0], "target_x": [0.0], "target_y": [0.0]}), "m").tolist()
    [5.0]
    """
    dx = predictions[f"{method}_x"] - predictions.target_x
    dy = predictions[f"{method}_y"] - predictions.target_y
    return (dx**2 + dy**2) ** 0.5


def best_and_worst(errors: pd.Series, n: int) -> list:
    """Index labels of the ``n // 2`` (at least one) smallest errors, then of as many largest ones,
    each in increasing order of error; ties keep the table's order (a stable sort).

    >>> best_and_worst(pd.Series([3.0, 1.0, 2.0, 5.0]), 2)
    [1, 3]
    """
    order = errors.sort_values(kind="stable").index.tolist()
    k = min(n, len(order)) // 2 or 1
    return order[:k] + order[-k:]


def reference_sizes(table: pd.DataFrame, reference: str = "box", image_size: int | None = None) -> np.ndarray:
    """The PCK reference length of each query: the larger side of the target box, or the image side."""
    if reference == "box":
        return np.maximum(table.target_x1 - table.target_x0, table.target_y1 - table.target_y0).to_numpy(float)
    if reference == "image":
        if image_size is None:
            raise ValueError("reference='image' needs image_size")
        return np.full(len(table), float(image_size))
    raise ValueError(f"reference must be 'box' or 'image', got {reference!r}")


def pck_table(
    predictions: pd.DataFrame,
    methods: list[str],
    by: str | list[str] | None = None,
    alphas: tuple[float, ...] = ALPHAS,
    reference: str = "box",
    image_size: int | None = None,
) -> pd.DataFrame:
    """PCK of each method (rows; columns ``PCK@α``, and ``n`` the visible queries), overall or per group.

    ``predictions`` holds the query table with columns ``<method>_x`` and ``<method>_y``; with
    ``by`` the rows are ``(group…, method)``.
    """

    def one(frame: pd.DataFrame) -> pd.DataFrame:
        ref = reference_sizes(frame, reference, image_size)
        true = frame[["target_x", "target_y"]].to_numpy(float)
        vis = frame.target_visible.to_numpy(bool)
        rows = {
            m: {
                **{f"PCK@{a:g}": pck(frame[[f"{m}_x", f"{m}_y"]].to_numpy(float), true, ref, a, vis) for a in alphas},
                "n": int(vis.sum()),
            }
            for m in methods
        }
        return pd.DataFrame(rows).T.rename_axis("method").astype({"n": int})

    if by is None:
        return one(predictions)
    parts = {k: one(g) for k, g in predictions.groupby(by, sort=True)}
    return pd.concat(parts, names=[*([by] if isinstance(by, str) else by), "method"])
