"""Start a MicroSD training from a trained MicroSD instead of random weights."""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel

from stablesemantics.training.config import TrainConfig
from stablesemantics.training.microsd_model import build_text_encoder, build_unet, build_vae


def _same_shapes(kind: str, mine: dict, theirs: dict, path: Path) -> None:
    differ = sorted(
        k for k in mine.keys() | theirs.keys() if k not in mine or k not in theirs or mine[k].shape != theirs[k].shape
    )
    if differ:
        raise ValueError(
            f"the {kind} in {path} does not have the architecture of this recipe ({len(differ)} weights differ, "
            f"first {differ[0]!r}): use the channel and width options it was trained with"
        )


def load_start(cfg: TrainConfig) -> tuple[AutoencoderKL, float, dict, dict]:
    """The autoencoder (frozen), its latent scaling, and the UNet and text-encoder weights of ``cfg.init_from``.

    Raises ``FileNotFoundError`` when the directory is not a pipeline and ``ValueError`` when its
    networks do not have the shapes the recipe builds.
    """
    path = Path(str(cfg.init_from)).expanduser()
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"init_from: {path} is not a pipeline directory (no model_index.json)")
    vae = AutoencoderKL.from_pretrained(path / "vae")
    unet = UNet2DConditionModel.from_pretrained(path / "unet").state_dict()
    text = CLIPTextModel.from_pretrained(path / "text_encoder").state_dict()
    _same_shapes("autoencoder", build_vae(cfg).state_dict(), vae.state_dict(), path)
    _same_shapes("UNet", build_unet(cfg).state_dict(), unet, path)
    _same_shapes("text encoder", build_text_encoder(cfg).state_dict(), text, path)
    return vae.eval().requires_grad_(False), float(vae.config.scaling_factor), unet, text


def start_card(cfg: TrainConfig) -> dict | None:
    """The training record of the model a run started from (its ``training.json``), if any."""
    if cfg.init_from is None:
        return None
    card = Path(str(cfg.init_from)).expanduser() / "training.json"
    return json.loads(card.read_text()) if card.is_file() else {}
