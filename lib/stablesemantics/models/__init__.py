"""Load a diffusion pipeline: the embedded MicroSD, a local directory, a hub id, a spec, or a tiny random one
of any family (SD 1.x/2.x, SDXL, SD3, Flux), and what the rest of the project needs to know about its family.
"""

from stablesemantics.models.components import (
    SD_NOISE_SCHEDULE,
    assemble_components,
    sd_scheduler,
    tiny_random_components,
)
from stablesemantics.models.families import (
    FAMILIES,
    attention_grid,
    default_image_size,
    denoiser,
    describe_text,
    pipeline_family,
    token_segments,
)
from stablesemantics.models.load import (
    MICROSD,
    TINY_RANDOM,
    ModelNotFoundError,
    default_device,
    default_dtype,
    load_pipeline,
)
from stablesemantics.models.spec import ModelSpec, parse_model_spec
from stablesemantics.models.tiny import TINY_PIPELINES

__all__ = [
    "FAMILIES",
    "MICROSD",
    "ModelNotFoundError",
    "ModelSpec",
    "SD_NOISE_SCHEDULE",
    "TINY_PIPELINES",
    "TINY_RANDOM",
    "assemble_components",
    "attention_grid",
    "default_device",
    "default_dtype",
    "default_image_size",
    "denoiser",
    "describe_text",
    "load_pipeline",
    "parse_model_spec",
    "pipeline_family",
    "sd_scheduler",
    "tiny_random_components",
    "token_segments",
]
