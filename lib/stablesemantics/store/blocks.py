"""Stream maps in shard-sized blocks, decoding whole shard files directly when the layout allows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from stablesemantics.store.halves import to_float32
from stablesemantics.store.location import raw_reader
from stablesemantics.store.schema import open_store

_U64_MAX = np.uint64(2**64 - 1)


def open_group(store: Any):
    """A store path (or an already open ``zarr.Group``) as a read-only group."""

    if isinstance(store, (str, os.PathLike)):
        return open_store(store, "r")
    if hasattr(store, "attrs") and hasattr(store, "__getitem__"):
        return store
    raise TypeError(f"store must be a path or a zarr.Group, got {type(store).__name__}")


def _strings(a) -> np.ndarray:
    return np.asarray(a[:], dtype=object) if a.shape[0] else np.empty((0,), dtype=object)


def _categorical(a) -> pd.Categorical:
    """A 1-D string array as a pandas ``Categorical``, read a chunk at a time: a few distinct
    values (lemmas) cost a small code per row instead of a Python string per row (10 million
    maps: about 40 MB instead of 1.4 GB). Categories in order of first appearance."""
    categories: dict[str, int] = {}
    codes = np.empty(a.shape[0], dtype=np.int32)
    step = int(a.chunks[0]) if a.shape[0] else 1
    for s in range(0, a.shape[0], step):
        values = np.asarray(a[s : s + step], dtype=object)
        local, uniques = pd.factorize(values)
        remap = np.array([categories.setdefault(str(u), len(categories)) for u in uniques], dtype=np.int32)
        codes[s : s + len(values)] = remap[local]
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(categories), dtype=object))


def map_table(store: Any, chunks: bool = True) -> pd.DataFrame:
    """One row per map (index = row in ``maps``): ``image``, ``prompt_id``, ``seed``,
    ``lemma`` (a categorical of strings), ``done`` (its image is done) and, with ``chunks``, the
    chunk text ``chunk``. Only the 1-D index arrays are read.
    """
    g = open_group(store)
    image = np.asarray(g["map_image"][:], dtype=np.int64)
    done = np.asarray(g["done"][:], dtype=bool)
    pid = np.asarray(g["prompt_id"][:], dtype=np.int64)
    seed = np.asarray(g["seed"][:], dtype=np.int64)
    cols: dict[str, Any] = {
        "image": image,
        "prompt_id": pid[image],
        "seed": seed[image],
        "lemma": _categorical(g["map_lemma"]),
        "done": done[image],
    }
    if chunks:
        cols["chunk"] = _strings(g["map_chunk"])
    return pd.DataFrame(cols, copy=False)  # the columns as read: no consolidated copy (10M maps: 240 MB)


def image_table(store: Any) -> pd.DataFrame:
    """One row per image: ``prompt_id``, ``seed``, ``prompt``, ``caption``, ``done``."""
    g = open_group(store)
    return pd.DataFrame(
        {
            "prompt_id": np.asarray(g["prompt_id"][:], dtype=np.int64),
            "seed": np.asarray(g["seed"][:], dtype=np.int64),
            "prompt": _strings(g["prompt"]),
            "caption": _strings(g["caption"]),
            "done": np.asarray(g["done"][:], dtype=bool),
        }
    )


class _ShardReader:
    """Reads rows of a sharded 3-D zarr array, decoding shard files directly when it can.

    The fast path needs: one sharding codec with chunks of whole rows (any number
    of rows per chunk that divides the rows of a shard), inner codecs
    exactly ``bytes`` (little endian) + ``zstd`` (+ ``crc32c``, checked here as zarr checks it),
    index codecs ``bytes`` + ``crc32c`` at the end. That is the layout :mod:`stablesemantics.store`
    writes (with the chunk checksum since it has one); anything else goes through zarr. Shard files
    are read straight from a local disk, through the zarr store's own ``get`` anywhere else (object
    storage: one ``GET`` per shard).
    """

    def __init__(self, array) -> None:
        self.array = array
        self.shape = tuple(array.shape)
        self.dtype = (
            np.dtype(str(array.dtype))
            if not hasattr(array.dtype, "to_native_dtype")
            else np.dtype(array.dtype.to_native_dtype())
        )
        self.rows_per_shard = int(array.shards[0]) if getattr(array, "shards", None) else int(array.chunks[0])
        self.reader = raw_reader(array) if self._fast_layout(array) else None
        self.rows_per_chunk = int(array.chunks[0]) if self.reader is not None else 1
        self.crc = self.reader is not None and len(array.metadata.codecs[0].codecs) == 3
        if self.reader is not None:
            from numcodecs import Zstd

            self._zstd = Zstd()
            fill = array.metadata.fill_value
            self.fill = np.asarray(fill if fill is not None else 0, dtype=self.dtype)

    @staticmethod
    def _fast_layout(a) -> bool:
        try:
            from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec

            codecs = a.metadata.codecs
            if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
                return False
            sc = codecs[0]
            inner, index = sc.codecs, sc.index_codecs
            ok = (
                tuple(sc.chunk_shape[1:]) == tuple(a.shape[1:])
                and int(a.shards[0]) % int(sc.chunk_shape[0]) == 0
                and len(inner) in (2, 3)
                and isinstance(inner[0], BytesCodec)
                and isinstance(inner[1], ZstdCodec)
                and (len(inner) == 2 or isinstance(inner[2], Crc32cCodec))
                and str(getattr(inner[0].endian, "value", inner[0].endian)) == "little"
                and len(index) == 2
                and isinstance(index[0], BytesCodec)
                and isinstance(index[1], Crc32cCodec)
                and str(getattr(sc.index_location, "value", sc.index_location)) == "end"
                and tuple(a.shards[1:]) == tuple(a.shape[1:])
                and len(a.shape) == 3
            )
            return bool(ok)
        except Exception:  # noqa: BLE001 - any surprise: use zarr's reader
            return False

    @property
    def fast(self) -> bool:
        return self.reader is not None

    def _where(self, k: int) -> str:
        return f"{self.array.path}/{self.array.metadata.encode_chunk_key((k, 0, 0))}"

    def _shard(self, k: int) -> tuple[bytes, np.ndarray] | None:
        raw = self.reader(self.array.metadata.encode_chunk_key((k, 0, 0)))
        if raw is None:
            return None
        import google_crc32c

        per_shard = self.rows_per_shard // self.rows_per_chunk
        n_index = 16 * per_shard
        ib = raw[len(raw) - n_index - 4 : len(raw) - 4]
        if google_crc32c.value(ib) != int(np.frombuffer(raw[-4:], dtype="<u4")[0]):
            raise ValueError(f"shard {self._where(k)} has a corrupt index (crc32c mismatch)")
        return raw, np.frombuffer(ib, dtype="<u8").reshape(per_shard, 2)

    def read(self, start: int, stop: int) -> np.ndarray:
        n = self.shape[0]
        start, stop = max(0, int(start)), min(n, int(stop))
        if stop <= start:
            return np.zeros((0, *self.shape[1:]), self.dtype)
        if not self.fast:
            return np.asarray(self.array[start:stop])
        out = np.empty((stop - start, *self.shape[1:]), self.dtype)
        S, C = self.rows_per_shard, self.rows_per_chunk
        item = int(np.prod(self.shape[1:]))
        flat = out.reshape(stop - start, item)
        dec = self._zstd.decode
        if self.crc:
            import google_crc32c

            crc = google_crc32c.value
        dt = "<" + self.dtype.str[1:]
        empty = int(_U64_MAX)
        for k in range(start // S, (stop - 1) // S + 1):
            lo, hi = max(start, k * S), min(stop, (k + 1) * S)
            shard = self._shard(k)
            if shard is None:
                out[lo - start : hi - start] = self.fill
                continue
            raw, index = shard
            buf = memoryview(raw)
            for j in range((lo - k * S) // C, (hi - 1 - k * S) // C + 1):
                off, nb = (int(v) for v in index[j])
                c0 = k * S + j * C  # the chunk's first row
                r0, r1 = max(lo, c0), min(hi, c0 + C)  # its rows wanted
                if off == empty:
                    flat[r0 - start : r1 - start] = self.fill
                    continue
                if self.crc:
                    if crc(raw[off : off + nb - 4]) != int.from_bytes(raw[off + nb - 4 : off + nb], "little"):
                        raise ValueError(
                            f"rows {c0}..{c0 + C - 1} of {self.array.path!r} are corrupt (crc32c mismatch in "
                            f"{self._where(k)}); "
                            "run `stablesemantics verify` on the store"
                        )
                    nb -= 4
                rows = np.frombuffer(dec(buf[off : off + nb]), dtype=dt, count=C * item).reshape(C, item)
                flat[r0 - start : r1 - start] = rows[r0 - c0 : r1 - c0]
        return out


def map_reader(store: Any):
    """A function ``(start, stop) -> maps`` reading rows of a store's ``maps`` as stored (float16),
    decoding shards directly when possible; made once, called per block (it is thread-safe)."""
    return _ShardReader(open_group(store)["maps"]).read


def read_maps(store: Any, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``[start, stop)`` of ``maps`` as stored (float16), decoding shards directly when possible.

    >>> read_maps("data/stores/x.zarr", 0, 8).shape     # doctest: +SKIP
    (8, 16, 16)
    """
    g = open_group(store)
    return map_reader(g)(start, g["maps"].shape[0] if stop is None else stop)


def block_bounds(
    n: int, rows_per_shard: int, block: int | None = None, map_image: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """Row ranges ``[first, stop)`` of :func:`iter_map_blocks`'s blocks over ``n`` rows.

    Blocks are shard-aligned (``block`` rows, default one shard, rounded up to whole shards when
    larger). With ``map_image`` (sorted image of each row) the maps of one image never straddle two
    blocks: a block ends before the first row of the image at its shard edge, and the rest of that
    image opens the next block (an image longer than a block makes one longer block).

    >>> block_bounds(10, 4)
    [(0, 4), (4, 8), (8, 10)]
    >>> block_bounds(10, 4, map_image=np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 3]))
    [(0, 2), (2, 7), (7, 10)]
    """
    S = int(rows_per_shard)
    B = S if block is None else max(1, int(block))
    if B > S:
        B = -(-B // S) * S
    bounds, first = [], 0
    for e in range(B, n, B):
        cut = e if map_image is None else max(int(np.searchsorted(map_image, map_image[e], side="left")), first)
        if cut > first:
            bounds.append((first, cut))
            first = cut
    if first < n:
        bounds.append((first, n))
    return bounds


def map_block_bounds(store: Any, *, block: int | None = None, whole_images: bool = False) -> list[tuple[int, int]]:
    """:func:`block_bounds` of a store's ``maps`` (what :func:`iter_map_blocks` yields, as row ranges)."""
    g = open_group(store)
    reader = _ShardReader(g["maps"])
    map_image = np.asarray(g["map_image"][:], dtype=np.int64) if whole_images else None
    return block_bounds(reader.shape[0], reader.rows_per_shard, block, map_image)


def iter_map_blocks(
    store: Any,
    *,
    block: int | None = None,
    whole_images: bool = False,
    prefetch: bool = True,
    bounds: list[tuple[int, int]] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_row, maps)`` over all rows of ``maps`` in blocks, as float32.

    Blocks are shard-aligned (``block`` defaults to the rows of one shard; it is rounded to
    whole shards when larger). With ``whole_images`` the maps of one image never straddle
    two blocks (see :func:`block_bounds`), which pairwise statistics need. ``bounds`` (some of
    :func:`map_block_bounds`' ranges) reads only those blocks: a worker's part of the store.
    ``prefetch`` reads the next block in a thread while the caller works.
    Peak memory: about three blocks.
    """
    g = open_group(store)
    reader = _ShardReader(g["maps"])
    if bounds is None:
        map_image = np.asarray(g["map_image"][:], dtype=np.int64) if whole_images else None
        bounds = block_bounds(reader.shape[0], reader.rows_per_shard, block, map_image)

    def load(b):
        return to_float32(reader.read(*b))  # in the reading thread, too

    pool = ThreadPoolExecutor(1) if prefetch and len(bounds) > 1 else None
    try:
        pending = pool.submit(load, bounds[0]) if pool and bounds else None
        for i, (s, e) in enumerate(bounds):
            data = pending.result() if pool else load((s, e))
            if pool and i + 1 < len(bounds):
                pending = pool.submit(load, bounds[i + 1])
            yield s, data
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
