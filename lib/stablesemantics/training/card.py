"""MicroSD's model card figures: training curves, and generated images beside true renders.

Written next to the weights by :func:`~stablesemantics.training.microsd.export` (``curves.png``,
``samples.png``; a pipeline directory's ``.png`` files are not part of the model's revision
hash) and shown by the model card (``README.md`` of the model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from stablesemantics import world
from stablesemantics.capture.run import seeded_generators

#: held-out scenes whose captions the sample grid shows (training streams use other seeds)
SAMPLE_SEED = 20_000


def history_of(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The localisation history of a card, continued runs after the runs they started from
    (steps counted from the first run's start)."""
    earlier = history_of(card["started_from"]) if card.get("started_from") else []
    offset = earlier[-1]["step"] if earlier else 0
    mine = card.get("localisation_history", [])
    if earlier:
        mine = mine[1:]  # its step 0 is the earlier run's last point
    return earlier + [h | {"step": h["step"] + offset} for h in mine]


def curves_figure(card: dict[str, Any]) -> Figure:
    """Held-out localisation (per probe timestep) and the diffusion loss at each probe, over steps."""
    history = history_of(card)
    fig, (ax_loc, ax_loss) = plt.subplots(1, 2, figsize=(9, 3.2))
    steps = [h["step"] for h in history]
    for t in history[0]["localisation"]:
        ax_loc.plot(steps, [h["localisation"][t] for h in history], marker="o", ms=3, label=f"t = {t}")
    ax_loc.set(xlabel="UNet step", ylabel="mIoU, held-out scenes", title="localisation (training probe)")
    ax_loc.legend()
    with_loss = [h for h in history if "loss" in h]
    ax_loss.plot([h["step"] for h in with_loss], [h["loss"] for h in with_loss], marker="o", ms=3)
    ax_loss.set(xlabel="UNet step", ylabel="denoising loss (one batch)", title="loss at each probe")
    if card.get("started_from"):
        start = history_of(card["started_from"])[-1]["step"]
        for ax in (ax_loc, ax_loss):
            ax.axvline(start, color="grey", ls="--", lw=1)
        ax_loc.annotate("continued", (start, ax_loc.get_ylim()[0]), fontsize=8, color="grey")
    fig.tight_layout()
    return fig


def samples_figure(pipe: Any, n: int = 8, steps: int = 25, guidance: float = 7.5) -> Figure:
    """True renders of ``n`` held-out scenes (top) and the model's images of their captions (bottom)."""
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    scenes = world.render_scenes(n, seed=SAMPLE_SEED, config=world.WorldConfig(size=size, max_objects=2))
    captions = [s.caption for s in scenes]
    images = pipe(
        captions,
        num_inference_steps=steps,
        guidance_scale=guidance,
        height=size,
        width=size,
        output_type="np",
        generator=seeded_generators(range(n)),
    ).images
    fig, axes = plt.subplots(2, n, figsize=(1.5 * n, 3.9))
    for i, (scene, image) in enumerate(zip(scenes, images)):
        axes[0, i].imshow(scene.image)
        axes[1, i].imshow(np.clip(image, 0, 1))
        axes[0, i].set_title("\n".join(_wrap(captions[i])), fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("MicroWorld", fontsize=8)
    axes[1, 0].set_ylabel("MicroSD", fontsize=8)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 22) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line]


def write_card_figures(model_dir: str | Path, pipe: Any) -> list[Path]:
    """``curves.png`` and ``samples.png`` in ``model_dir`` (which holds ``training.json``)."""
    model_dir = Path(model_dir)
    card = json.loads((model_dir / "training.json").read_text())
    written = []
    for name, fig in (("curves.png", curves_figure(card)), ("samples.png", samples_figure(pipe))):
        fig.savefig(model_dir / name, dpi=110)
        plt.close(fig)
        written.append(model_dir / name)
    return written
