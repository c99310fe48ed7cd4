"""DAAM 0.2.0 as the benchmark uses it: importing it quietly, its version, the layers it keeps, notes on it."""

from __future__ import annotations

import math
import warnings
from importlib.metadata import version
from typing import Any

from stablesemantics.capture import CaptureConfig


def daam_shims() -> list[str]:
    """Make DAAM 0.2.0 quiet on current torch/diffusers; return what was done (for the report).

    DAAM's ``utils.auto_autocast`` calls ``torch.cuda.amp.autocast(...)``, deprecated in torch 2.4
    (a FutureWarning on every call; it still works, and it is disabled on CPU). The warning is
    filtered; DAAM's code is not changed.
    """
    warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.autocast.*", category=FutureWarning)
    return ["silenced torch's FutureWarning for DAAM's deprecated torch.cuda.amp.autocast (behaviour unchanged)"]


def import_daam() -> tuple[Any, str | None, list[str]]:
    """``(daam.trace or None, error or None, shims applied)``."""
    try:  # daam is optional: its absence or failure is a result of the benchmark
        shims = daam_shims()
        import daam  # noqa: F401
        from daam import trace
    except Exception as err:  # noqa: BLE001 -- any failure is reported, not raised
        return None, f"import daam failed: {type(err).__name__}: {err}", []
    return trace, None, shims


def daam_version() -> str | None:
    try:
        return version("daam")
    except Exception:  # noqa: BLE001
        return None


def daam_layer_config(pipe: Any, latent: tuple[int, int]) -> tuple[CaptureConfig, dict[str, Any]]:
    """Our ``CaptureConfig`` for exactly the layers DAAM 0.2.0 keeps on this pipeline at this latent size.

    DAAM hooks the cross-attention of the down and up blocks (not the mid block) and keeps a layer
    call when ``int(sqrt(latent_hw // n_queries))`` is 1, 2, 4, 16, 32 or 64 (its hook skips 8, its
    ``compute_global_heat_map`` drops what is not a power of two), where ``latent_hw`` is 4096 if
    ``unet.config.sample_size * vae_scale_factor`` is 512 or 1024, else 9216.
    """
    h = pipe.unet.config.sample_size * pipe.vae_scale_factor
    latent_hw = 4096 if h in (512, 1024) else 9216
    keep, levels = [], {}
    hh, ww, factor = latent[0], latent[1], 1
    while True:
        daam_factor = int(math.sqrt(latent_hw // (hh * ww)))
        levels[factor] = {
            "grid": [hh, ww],
            "daam_factor": daam_factor,
            "kept_by_daam": daam_factor in (0, 1, 2, 4, 16, 32, 64),
        }
        if levels[factor]["kept_by_daam"]:
            keep.append(factor)
        if hh == 1 and ww == 1:
            break
        hh, ww, factor = math.ceil(hh / 2), math.ceil(ww / 2), factor * 2
    info = {"daam_latent_hw": latent_hw, "levels": levels}
    return CaptureConfig(blocks=("down", "up"), resolutions=tuple(keep) or (1,)), info


DAAM_NOTES = [
    "What DAAM 0.2.0 computes (read from its source): it replaces the processor of `attn2` "
    "(cross-attention) in the down and up blocks only (the mid block only with save/load_heads); "
    "self-attention keeps diffusers' processor. Per layer and step it takes softmax(q k^T * scale) "
    "explicitly, drops the first (unconditional) half of the batch, unravels the maps token by token "
    "in a Python loop and adds every head's (77, h, w) map to a per-(factor, layer, head) running sum "
    "over the steps (so its memory is flat in steps, too). `compute_global_heat_map` resizes every "
    "(factor, layer, head) sum bicubically to 64x64 (96x96 unless sample_size*vae_scale_factor is "
    "512 or 1024), clamps at 0 and averages them; maps at factor 8 are skipped.",
    "So DAAM keeps only the conditional CFG half, like ours; its maps are sums over steps (ours are "
    "means), which only rescales them (`DAAM mean / ours mean` ~ number of steps).",
    "DAAM's assumptions about the latent: it does not read the latent size from the input; "
    "`factor = int(sqrt(latent_hw / n_queries))` with latent_hw fixed by the UNet config, and "
    "`_unravel_attn` assumes square maps (h = w = sqrt(n)). Non-square images fail, and sizes whose "
    "factors are not powers of two give no maps ('No heat maps found').",
    "DAAM and ours cannot be installed on the same pipeline at once (both replace the cross-attention "
    "processors), so its map and ours come from two calls with the same prompt, seed and steps; the "
    "outputs of the calls agree (max |output - plain| above).",
    "`trace(pipe)` creates ~/.cache/daam/heads (DAAM's head cache directory) as a side effect.",
]
