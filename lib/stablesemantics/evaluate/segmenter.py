"""The MicroWorld reference segmenter: the model, loading and prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stablesemantics import world
from stablesemantics.images import images_to_tensor
from stablesemantics.paths import REFERENCE_SEGMENTER_DIR

REFERENCE_DIR = REFERENCE_SEGMENTER_DIR


class SmallSegmenter(nn.Module):
    """A three-level U-Net-style encoder–decoder predicting one of ``n_classes`` (0 = background) per pixel."""

    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.GroupNorm(8, cout),
                nn.SiLU(),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.GroupNorm(8, cout),
                nn.SiLU(),
            )

        w = width
        self.enc1, self.enc2, self.enc3 = block(3, w), block(w, 2 * w), block(2 * w, 2 * w)
        self.dec2, self.dec1 = block(4 * w, 2 * w), block(3 * w, w)
        self.head = nn.Conv2d(w, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0), e1], 1))
        return self.head(d1)


@torch.no_grad()
def predict_classes(model: SmallSegmenter, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Per-pixel class ids (0 = background) for ``(n, H, W, 3)`` uint8 images."""
    device = next(model.parameters()).device
    out = [
        model(images_to_tensor(images[i : i + batch]).to(device)).argmax(1).cpu().numpy()
        for i in range(0, len(images), batch)
    ]
    return np.concatenate(out).astype(np.int16)


def load_segmenter(path: Path = REFERENCE_DIR) -> SmallSegmenter:
    """Load the reference segmenter; a clear error if it was never trained."""
    file = Path(path) / "model.safetensors"
    if not file.exists():
        raise FileNotFoundError(f"no reference segmenter at {path}; run `make model` to train it")
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(file), "pt") as f:
        width = int(f.metadata()["width"])
    classes = (Path(path) / "classes.txt").read_text().split()
    if classes[1:] != list(world.CLASSES):
        raise ValueError("the reference segmenter was trained on another MicroWorld class list; retrain it")
    model = SmallSegmenter(len(classes), width)
    model.load_state_dict(load_file(str(file)))
    return model.eval()
