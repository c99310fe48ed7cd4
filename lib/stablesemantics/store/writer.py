"""Write a batch of images and maps into their planned rows, then mark them done."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stablesemantics.store.atomic import _quiet
from stablesemantics.store.errors import StoreWriteError
from stablesemantics.store.location import store_location
from stablesemantics.store.lock import assert_lock_held
from stablesemantics.store.schema import open_store


def map_rows(map_image: np.ndarray, start: int, stop: int) -> slice:
    """Rows of ``maps`` that belong to images ``[start, stop)`` (``map_image`` is sorted).

    >>> map_rows(np.array([0, 0, 1, 3]), 1, 3)
    slice(2, 3, None)
    """
    lo, hi = np.searchsorted(map_image, [start, stop], side="left")
    return slice(int(lo), int(hi))


class StoreWriter:
    """Fills ``images``, ``maps`` and ``done`` of an existing store, one batch at a time.

    Each array's shard is written whole (a file replaced atomically, one object ``PUT`` on object
    storage) and ``done`` goes last, so a writer killed at any moment, mid-upload included, leaves
    every batch either done with its image and maps, or not done.

    Example
    -------
    >>> w = StoreWriter("data/stores/x.zarr")          # doctest: +SKIP
    >>> w.pending_batches()                             # doctest: +SKIP
    [(0, 4), (4, 8)]
    >>> w.write(0, images_uint8, maps)                  # doctest: +SKIP
    """

    def __init__(self, path: str | Path) -> None:
        self.path = store_location(path)
        self.group = open_store(self.path, mode="r+")
        self.map_image = np.asarray(self.group["map_image"][:], dtype=np.int64)
        self.n_images = self.group["images"].shape[0]
        self.batch_size = int(self.group.attrs["batch_size"])

    @property
    def done(self) -> np.ndarray:
        """The ``done`` mask as read from disk now."""
        return np.asarray(self.group["done"][:], dtype=bool)

    def batches(self) -> list[tuple[int, int]]:
        """The fixed partition of image rows into batches ``[k*B, min((k+1)*B, n))``."""
        B, n = self.batch_size, self.n_images
        return [(s, min(s + B, n)) for s in range(0, n, B)]

    def pending_batches(self) -> list[tuple[int, int]]:
        """Batches with at least one image not done (a partly done batch is redone whole)."""
        done = self.done
        return [(s, e) for s, e in self.batches() if not done[s:e].all()]

    def map_rows(self, start: int, stop: int) -> slice:
        return map_rows(self.map_image, start, stop)

    @_quiet
    def write(self, start: int, images: np.ndarray, maps: np.ndarray) -> None:
        """Write images ``[start, start+len(images))`` and their maps, then mark them done."""
        images = np.asarray(images)
        stop = start + len(images)
        if images.dtype != np.uint8 or images.shape[1:] != self.group["images"].shape[1:]:
            raise ValueError(
                f"images must be uint8 {self.group['images'].shape[1:]}, got {images.dtype} {images.shape[1:]}"
            )
        if not 0 <= start < stop <= self.n_images:
            raise ValueError(f"image rows [{start}, {stop}) outside [0, {self.n_images})")
        rows = self.map_rows(start, stop)
        maps = np.asarray(maps)
        expected = (rows.stop - rows.start, *self.group["maps"].shape[1:])
        if maps.shape != expected:
            raise ValueError(f"maps for images [{start}, {stop}) must have shape {expected}, got {maps.shape}")
        assert_lock_held(self.path)
        try:
            self.group["images"][start:stop] = images
            if expected[0]:
                self.group["maps"][rows] = maps.astype(np.float16)
            self.group["done"][start:stop] = True  # last: done means image and maps are on disk
        except OSError as e:  # object storage: no permission, unreachable (local errors come wrapped)
            raise StoreWriteError.from_os_error(e, self.path) from e
