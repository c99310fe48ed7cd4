"""Prompts x seeds -> a Zarr store of images and per-noun-chunk cross-attention maps.

:func:`generate` is the whole pipeline of the StableSemantics paper in one call:

1. clean the prompts (:func:`stablesemantics.prompts.clean_prompts`: Midjourney flags,
   weights, URLs, duplicates) and refuse prompts that are empty after cleaning;
2. find the noun chunks of each caption (spaCy) and their CLIP token positions; a chunk
   that falls past the 77-token window gets no map and is flagged ``truncated``;
3. plan every item (prompt, seed) and every map row up front and create the store
   (:mod:`stablesemantics.store`) with that layout;
4. run the items in a fixed partition of batches ``[k*B, (k+1)*B)``, each image with its
   own ``torch.Generator`` seeded by its seed (so an image depends on (prompt, seed) only,
   not on its batch mates), capture the cross-attention
   (:class:`stablesemantics.capture.CrossAttentionCapture`), average each chunk's token
   maps (:func:`stablesemantics.capture.chunk_maps`), and write images, maps, then
   ``done``.

Settings and their defaults are :class:`GenerationConfig`'s (default model ``"microsd"``); the
store records the whole config (root attribute ``generation_config``). Rerunning the same call
resumes: batches whose items are all done are skipped, a partly done batch is redone whole; a
store whose recorded config differs from the call's (progress bar and device aside) or whose
model has other weights is never overwritten.

On many processes (``accelerate launch -m stablesemantics generate ...``, or
:func:`generate_on_processes` from Python) each process writes whole shard files and the store
is the one a single process writes (:mod:`stablesemantics.generate.processes`).

Example (seconds on a CPU):

>>> import tempfile
>>> from stablesemantics.capture import CaptureConfig
>>> out = generate(["a red car on a street", "a small dog --ar 16:9"], seeds=2,
...                out=tempfile.mkdtemp() + "/demo.zarr", model="tiny-random", steps=2,
...                height=32, width=32, capture=CaptureConfig(map_size=(8, 8)), progress=False)
>>> from stablesemantics.store import store_summary
>>> s = store_summary(out)
>>> s["n_images"], s["n_done"], s["n_maps"]
(4, 4, 6)
"""

from stablesemantics.generate.cached import CACHE_ATTR, ensure_store, make_world_store
from stablesemantics.generate.config import RUN_ONLY, GenerationConfig
from stablesemantics.generate.launch import generate_on_processes
from stablesemantics.generate.plan import GenerationPlan, StoreMismatchError, plan_generation
from stablesemantics.generate.run import generate
from stablesemantics.generate.settings import CONFIG_ATTR

__all__ = [
    "CACHE_ATTR",
    "CONFIG_ATTR",
    "GenerationConfig",
    "GenerationPlan",
    "RUN_ONLY",
    "StoreMismatchError",
    "ensure_store",
    "generate",
    "generate_on_processes",
    "make_world_store",
    "plan_generation",
]
