"""Baselines that only read boxes: the same place in the target box, and the target box's centre."""

from __future__ import annotations

import numpy as np


def same_place_in_box(points: np.ndarray, source_boxes: np.ndarray, target_boxes: np.ndarray) -> np.ndarray:
    """Each source point at the same box-relative position in its target box, ``(n, 2)``.

    Boxes are ``(x0, y0, x1, y1)``. Right for unflipped pairs of the same shape; a flipped target
    mirrors the object, so this puts a point on the wrong side.

    >>> same_place_in_box(np.array([[2.0, 5.0]]), np.array([[0, 0, 10, 10]]), np.array([[20, 20, 40, 30]])).tolist()
    [[24.0, 25.0]]
    """
    p = np.asarray(points, np.float64).reshape(-1, 2)
    s = np.asarray(source_boxes, np.float64).reshape(-1, 4)
    t = np.asarray(target_boxes, np.float64).reshape(-1, 4)
    rel = (p - s[:, :2]) / np.maximum(s[:, 2:] - s[:, :2], 1e-9)
    return t[:, :2] + rel * (t[:, 2:] - t[:, :2])


def box_centre(target_boxes: np.ndarray) -> np.ndarray:
    """The centre of each target box, ``(n, 2)``.

    >>> box_centre(np.array([[20, 20, 40, 30]])).tolist()
    [[30.0, 25.0]]
    """
    t = np.asarray(target_boxes, np.float64).reshape(-1, 4)
    return (t[:, :2] + t[:, 2:]) / 2
