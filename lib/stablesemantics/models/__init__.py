"""Load a diffusion pipeline: the embedded MicroSD, a local directory, a hub id, or a tiny random one.
"""

from stablesemantics.models.components import (
    SD_NOISE_SCHEDULE,
    assemble_components,
    sd_scheduler,
    tiny_random_components,
)
from stablesemantics.models.load import (
    MICROSD,
    TINY_RANDOM,
    ModelNotFoundError,
    default_device,
    default_dtype,
    load_pipeline,
)

__all__ = [
    "MICROSD",
    "ModelNotFoundError",
    "SD_NOISE_SCHEDULE",
    "TINY_RANDOM",
    "assemble_components",
    "default_device",
    "default_dtype",
    "load_pipeline",
    "sd_scheduler",
    "tiny_random_components",
]
