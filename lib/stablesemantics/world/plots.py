"""Figures of scenes, their ground truth and the priors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from stablesemantics.world.scene import Scene


def plot_scenes(scenes: list[Scene], ncols: int = 6, width: float = 2.4, captions: bool = True):
    """A grid of scenes with their (wrapped) captions; returns the matplotlib Figure."""
    import textwrap

    import matplotlib.pyplot as plt

    n = len(scenes)
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, width * nrows * (1.35 if captions else 1)), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, s in zip(axes.ravel(), scenes):
        ax.imshow(s.image, interpolation="nearest")
        if captions:
            ax.set_title("\n".join(textwrap.wrap(s.caption, 28)), fontsize=7)
    fig.tight_layout()
    return fig


def plot_ground_truth(scenes: list[Scene], width: float = 3.0):
    """Per scene: the image, the instance mask, and boxes + keypoints (filled = visible,
    hollow = occluded) over the image. Returns the Figure."""
    import textwrap

    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(len(scenes), 3, figsize=(3 * width, width * len(scenes)), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for row, s in zip(axes, scenes):
        row[0].imshow(s.image, interpolation="nearest")
        row[0].set_title("\n".join(textwrap.wrap(s.caption, 45)), fontsize=7, loc="left")
        inst = np.zeros(s.image.shape, np.float64)
        for i in range(len(s.objects)):
            inst[s.instance_mask == i + 1] = cmap(i % 10)[:3]
        row[1].imshow(inst, interpolation="nearest")
        row[1].set_title("instance mask (visible pixels)", fontsize=8)
        row[2].imshow(s.image, interpolation="nearest")
        for i, o in enumerate(s.objects):
            c = cmap(i % 10)
            x0, y0, x1, y1 = o.box
            row[2].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=c, lw=1.5))
            row[2].text(x0, y0 - 1, o.cls, color=c, fontsize=7, va="bottom")
            for _part, (x, y, vis) in o.keypoints.items():
                row[2].plot(x - 0.5, y - 0.5, "o", ms=4, mfc=c if vis else "none", mec="k", mew=0.6)
        row[2].set_title("boxes and part keypoints", fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_priors(priors: dict[str, pd.DataFrame], observed: dict[str, pd.DataFrame] | None = None):
    """Heatmap of P(class | place), bar plot of the vertical prior (true mean y, and the
    mean mask centroid of ``observed`` scenes if given), heatmap of the co-occurrence lift
    P(a, b) / (P(a) P(b)). Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(19, 6.2), gridspec_kw={"width_ratios": [0.8, 1.2, 1.25]})
    cp = priors["class_place"]
    im = axes[0].imshow(cp.values, cmap="viridis", aspect="auto")
    axes[0].set_xticks(range(cp.shape[1]), cp.columns, rotation=45, ha="right")
    axes[0].set_yticks(range(cp.shape[0]), cp.index)
    axes[0].set_title("P(class | place), exact sampler weights")
    fig.colorbar(im, ax=axes[0], fraction=0.05)

    v = priors["vertical"].sort_values("mean_y")
    ypos = np.arange(len(v))
    axes[1].barh(ypos - 0.2, v["mean_y"], height=0.4, label="true prior: E[frame centre y]")
    if observed is not None:
        ob = observed["vertical"].reindex(v.index)
        axes[1].barh(ypos + 0.2, ob["mean_y"], height=0.4, label="observed: mask centroid y")
    axes[1].set_yticks(ypos, v.index)
    axes[1].invert_yaxis()
    axes[1].set_xlim(0, 1)
    axes[1].set_xlabel("y / image height  (0 = top)")
    axes[1].set_title("vertical prior")
    axes[1].legend(fontsize=8, loc="lower right")

    co = priors["cooccurrence"]
    p = np.diag(co.values)
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = co.values / np.outer(p, p)
    lift = np.log2(np.where(np.isfinite(lift) & (lift > 0), lift, np.nan))
    np.fill_diagonal(lift, np.nan)
    im = axes[2].imshow(lift, cmap="RdBu_r", vmin=-3, vmax=3)
    axes[2].set_xticks(range(len(co)), co.index, rotation=90)
    axes[2].set_yticks(range(len(co)), co.index)
    axes[2].set_title("co-occurrence: log2 P(a,b) / (P(a) P(b))")
    fig.colorbar(im, ax=axes[2], fraction=0.05)
    fig.tight_layout()
    return fig
