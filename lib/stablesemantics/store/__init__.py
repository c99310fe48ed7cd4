"""The Zarr v3 store that holds one generation run: images, per-noun-chunk maps, metadata.

One store per run. Its whole layout (how many images and maps, which map belongs to which
image and noun chunk) is planned before the first image is generated, written once at
creation, and never changes; generation then only fills ``images``, ``maps`` and ``done``.

Schema (``SCHEMA_VERSION`` = 1):

===================== =================== ======= ================================================
array                 shape               dtype   notes
===================== =================== ======= ================================================
``images``            (n_images, H, W, 3) uint8   one chunk per image, shards of whole batches
``maps``              (n_maps, h, w)      float16 one chunk per map (image, noun chunk), sharded
``map_image``         (n_maps,)           int64   row in ``images``; sorted ascending
``map_chunk``         (n_maps,)           str     noun chunk text, e.g. "a small red car"
``map_lemma``         (n_maps,)           str     root lemma of the chunk, e.g. "car"
``map_token_indices`` (n_maps,)           str     JSON list of token positions (BOS = 0)
``prompt_id``         (n_images,)         int64   index of the prompt in the caller's list
``prompt``            (n_images,)         str     original prompt
``caption``           (n_images,)         str     cleaned prompt, what the model saw
``seed``              (n_images,)         int64   seed of the image's ``torch.Generator``
``noun_chunks``       (n_images,)         str     JSON list: every noun chunk of the caption with
                                                  span, tokens, ``truncated`` and ``map`` (its row
                                                  in ``maps`` or -1)
``done``              (n_images,)         bool    set only after the image and its maps are
                                                  written
===================== =================== ======= ================================================

Completion is the explicit ``done`` mask, never the presence of chunk files (Zarr does not
write chunks that equal the fill value, so a black image or an all-zero map has no file).

Crash safety. A run can be killed (SIGKILL, OOM, a preempted Colab) at any moment:

* every file write goes through :class:`AtomicLocalStore`: the bytes go to a temporary
  file in the same directory, which then replaces the target with ``os.replace`` (atomic
  on POSIX). This matters because a sharded array stores many chunks in one file and
  writing any part of a shard rewrites the *whole* shard file: a plain ``open(...,
  "wb")`` killed half-way would destroy chunks that were finished long ago. (zarr 3.1's
  ``LocalStore`` happens to do the same; we do not rely on an implementation detail.)
* a store is created in a sibling ``<name>.partial`` directory and renamed into place
  only once its layout and consolidated metadata are complete: a store that exists is
  never half-created.
* ``done`` is written last, so an item is done only when its image and maps are on disk.

Object storage. A store may live at a URL (``s3://bucket/a.zarr``, any fsspec location; see
:mod:`stablesemantics.store.location`): create, write, resume, inspect, verify and every analysis
work the same there. Object storage has no rename and no ``flock``; each guarantee above is kept
another way: a shard write is one ``PUT``, applied whole or not at all (a writer killed mid-upload
leaves the previous object); a new store's root ``zarr.json`` is written last, so a killed creation
is no store; the writer lock is a lease object renewed by its holder (:mod:`~stablesemantics.store.lock`).

Faults.

* One writer at a time: :func:`generate <stablesemantics.generate.generate>` and
  :func:`create_store` hold the store's writer lock (:func:`store_lock`: ``fcntl.flock`` on
  ``<name>.lock`` next to the store, released by the operating system when the writer dies, so
  a killed writer never leaves it stuck). A second writer fails at once with
  :class:`StoreLockedError`, which names the store and the running writer's pid and host.
* The library deletes only what it made: a ``<name>.partial`` directory is marked by a
  ``.stablesemantics-partial`` file while a store is being built; an unmarked one (yours) is
  never removed (``FileExistsError``).
* Operating-system errors (a read-only or full disk, no permission, a path under a regular
  file) come as :class:`StoreWriteError` (an ``OSError``) with a one-line message naming the
  path; the store stays valid and the same run resumes once the cause is fixed.
* Checksums: every chunk of every array of a store made by this version ends with a crc32c
  (zarr's ``crc32c`` codec after ``zstd``), so flipped or truncated bytes are found, never read
  as values: :func:`verify_store` (``stablesemantics verify STORE``) names each damaged batch
  and ``generate`` redoes them when it resumes (:func:`clear_damage`). The values are those of
  a store without checksums, but each chunk's file bytes gain 4 bytes. Stores made before have
  no chunk checksums; their schema is unchanged (``SCHEMA_VERSION`` stays 1), this library reads
  and resumes them as they are, and there ``verify`` finds only chunks that no longer decompress.

Example
-------
>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> layout = StoreLayout(
...     image_size=(8, 8), map_size=(2, 2), batch_size=2,
...     prompt_id=[0, 0], prompt=["A cat!", "A cat!"], caption=["a cat", "a cat"],
...     seed=[0, 1], noun_chunks=["[]", "[]"],
...     map_image=[0, 1], map_chunk=["a cat"] * 2, map_lemma=["cat"] * 2,
...     map_token_indices=["[2]", "[2]"])
>>> path = create_store(Path(tempfile.mkdtemp()) / "x.zarr", layout, {"model": "none"})
>>> writer = StoreWriter(path)
>>> writer.write(0, np.zeros((2, 8, 8, 3), np.uint8), np.ones((2, 2, 2), np.float32))
>>> store_summary(path)["n_done"]
2
"""

from stablesemantics.store.atomic import AtomicLocalStore, remove_temporary_files
from stablesemantics.store.blocks import image_table, iter_map_blocks, map_table, open_group, read_maps
from stablesemantics.store.errors import StoreLockedError, StoreWriteError, check_writable
from stablesemantics.store.lock import lock_path, store_lock
from stablesemantics.store.read import store_summary, to_xarray
from stablesemantics.store.schema import (
    PER_IMAGE,
    PER_MAP,
    SCHEMA_VERSION,
    StoreLayout,
    create_store,
    delete_store,
    jsonable,
    open_store,
    store_exists,
)
from stablesemantics.store.verify import StoreCheck, clear_damage, verify_store
from stablesemantics.store.writer import StoreWriter, map_rows

__all__ = [
    "AtomicLocalStore",
    "PER_IMAGE",
    "PER_MAP",
    "SCHEMA_VERSION",
    "StoreCheck",
    "StoreLayout",
    "StoreLockedError",
    "StoreWriteError",
    "StoreWriter",
    "check_writable",
    "clear_damage",
    "create_store",
    "delete_store",
    "image_table",
    "iter_map_blocks",
    "jsonable",
    "lock_path",
    "map_rows",
    "map_table",
    "open_group",
    "open_store",
    "read_maps",
    "remove_temporary_files",
    "store_exists",
    "store_lock",
    "store_summary",
    "to_xarray",
    "verify_store",
]
