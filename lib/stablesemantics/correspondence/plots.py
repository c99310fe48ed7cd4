"""Figures of the correspondence chapter: transfers on image pairs, PCK bars."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch


def plot_transfers(
    images: np.ndarray, predictions: pd.DataFrame, maps: torch.Tensor, rows: list[int], method: str = "prompt (argmax)"
) -> plt.Figure:
    """One line per query row: the source image with its point, the target image with the method's
    map (when there is one), its predicted point (×) and the true point (○)."""
    fig, axes = plt.subplots(len(rows), 2, figsize=(4.0, 2.0 * len(rows)), squeeze=False)
    for line, r in zip(axes, rows):
        q = predictions.iloc[r]
        line[0].imshow(images[q.source_image])
        line[0].plot(q.source_x - 0.5, q.source_y - 0.5, "o", mfc="none", mec="w", mew=1.5)
        line[0].set_title(f"{q.source_class}: {q.part}", fontsize=7)
        line[1].imshow(images[q.target_image])
        if len(maps):
            line[1].imshow(maps[r].numpy(), alpha=0.55, cmap="magma")
        line[1].plot(q.target_x - 0.5, q.target_y - 0.5, "o", mfc="none", mec="lime", mew=1.5)
        line[1].plot(q[f"{method}_x"] - 0.5, q[f"{method}_y"] - 0.5, "x", color="cyan", mew=1.5)
        line[1].set_title(f"{q.target_class}{' (flipped)' if q.flipped else ''}", fontsize=7)
        for ax in line:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_pck_bars(table: pd.DataFrame, column: str = "PCK@0.1", title: str = "") -> plt.Figure:
    """Bars of ``column`` for a ``(group, method)`` PCK table: one group of bars per group, one bar per method."""
    wide = table[column].unstack("method") if isinstance(table.index, pd.MultiIndex) else table[[column]].T
    ax = wide.plot.bar(figsize=(1.2 + 0.9 * len(wide), 2.8), width=0.8, rot=0)
    ax.set_ylabel(column)
    ax.set_ylim(0, 1)
    ax.set_xlabel("")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="upper right")
    ax.figure.tight_layout()
    return ax.figure
