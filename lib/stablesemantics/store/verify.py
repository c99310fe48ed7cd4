"""Find damaged chunks in a store (``stablesemantics verify``) and clear them so that ``generate`` redoes them.

A store made by this library stores a crc32c checksum with every chunk of every array (zarr's
``crc32c`` codec after ``zstd``; stores made before it have none, and there only chunks that no
longer decompress to their size are found). :func:`verify_store` reads every shard file of
``images``, ``maps`` and ``done`` (the shard index, then each chunk's checksum) and every index
array, and names each damaged batch. :func:`clear_damage` prepares a store for the redo: a shard
whose index is unreadable (truncated, overwritten) is deleted, damaged chunks are cut out of their
shard (they then read as the fill value), and every batch that lost anything is marked not done,
so the next ``generate`` run makes it again. The index arrays (prompts, seeds, chunks) are written
once at creation and cannot be redone: damage there is reported as ``fatal``.

>>> check = verify_store("data/stores/x.zarr")          # doctest: +SKIP
>>> check.ok, check.damaged_batches                      # doctest: +SKIP
(False, [(4, 8)])
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import google_crc32c
import numpy as np
import zarr
from numcodecs import Zstd
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec

from stablesemantics.store.atomic import _quiet
from stablesemantics.store.errors import StoreWriteError
from stablesemantics.store.location import StoreFiles, store_location
from stablesemantics.store.schema import PER_IMAGE, PER_MAP, open_store

_EMPTY = 2**64 - 1
_SHARDED = ("images", "maps", "done")


@dataclass
class StoreCheck:
    """What :func:`verify_store` found. ``ok`` when nothing is damaged.

    ``checksums``: every chunk carries a crc32c (stores made since the checksum was added).
    ``problems``: one line per damaged place. ``damaged_batches``: image batches ``(start, stop)``
    to redo. ``bad_shards`` / ``bad_chunks``: shard files (relative to the store) whose index is
    unreadable, and ``{shard file: [chunk positions]}`` of damaged chunks in readable shards.
    ``fatal``: damage that no rerun repairs (metadata, index arrays).
    """

    path: Path | str
    checksums: bool = True
    problems: list[str] = field(default_factory=list)
    damaged_batches: list[tuple[int, int]] = field(default_factory=list)
    bad_shards: list[str] = field(default_factory=list)
    bad_chunks: dict[str, list[int]] = field(default_factory=dict)
    fatal: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.problems or self.fatal)


def _layout_ok(a: zarr.Array) -> bool:
    """Whether ``a`` is a sharded array tiled along its first axis only, as this library writes it."""
    codecs = a.metadata.codecs
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return False
    sc = codecs[0]
    inner, index = sc.codecs, sc.index_codecs
    return (
        tuple(sc.chunk_shape[1:]) == tuple(a.shape[1:]) == tuple(a.shards[1:])
        and len(inner) in (2, 3)
        and isinstance(inner[0], BytesCodec)
        and isinstance(inner[1], ZstdCodec)
        and (len(inner) == 2 or isinstance(inner[2], Crc32cCodec))
        and len(index) == 2
        and isinstance(index[0], BytesCodec)
        and isinstance(index[1], Crc32cCodec)
        and str(getattr(sc.index_location, "value", sc.index_location)) == "end"
    )


def _crc_ok(b: bytes) -> bool:
    return len(b) >= 4 and google_crc32c.value(b[:-4]) == int.from_bytes(b[-4:], "little")


def _scan(a: zarr.Array, files: StoreFiles, check: StoreCheck) -> list[tuple[int, int]]:
    """Damaged row ranges of sharded array ``a``, read shard file by shard file."""
    sc = a.metadata.codecs[0]
    has_crc = len(sc.codecs) == 3
    check.checksums &= has_crc
    c0, S, n = int(sc.chunk_shape[0]), int(a.shards[0]), int(a.shape[0])
    per_shard = S // c0
    chunk_bytes = math.prod(sc.chunk_shape) * np.dtype(a.dtype).itemsize
    n_index = 16 * per_shard + 4
    zstd = Zstd()
    bad: list[tuple[int, int]] = []
    for k in range(-(-n // S)):
        key = f"{a.path}/" + a.metadata.encode_chunk_key((k,) + (0,) * (len(a.shape) - 1))
        raw = files.read(key)
        if raw is None:
            continue  # never written: fill values
        lo, hi = k * S, min((k + 1) * S, n)
        if len(raw) < n_index or not _crc_ok(raw[len(raw) - n_index :]):
            check.problems.append(
                f"{a.path} rows {lo}..{hi - 1}: shard index unreadable (truncated or overwritten) in {key}"
            )
            check.bad_shards.append(key)
            bad.append((lo, hi))
            continue
        index = np.frombuffer(raw[len(raw) - n_index : len(raw) - 4], dtype="<u8").reshape(per_shard, 2)
        for j, (off, nb) in enumerate(index.tolist()):
            if off == _EMPTY:
                continue
            r0, r1 = lo + j * c0, min(lo + (j + 1) * c0, n)
            if off + nb > len(raw) - n_index:
                reason = "chunk runs past the end of its shard"
            elif has_crc:
                reason = None if _crc_ok(raw[off : off + nb]) else "crc32c mismatch"
            else:
                try:
                    reason = None if len(zstd.decode(raw[off : off + nb])) == chunk_bytes else "wrong decoded size"
                except Exception:  # noqa: BLE001 - any decoder failure is damage
                    reason = "does not decompress"
            if reason:
                check.problems.append(f"{a.path} rows {r0}..{r1 - 1}: {reason} in {key}")
                check.bad_chunks.setdefault(key, []).append(j)
                bad.append((r0, r1))
    return bad


def _scan_with_zarr(a: zarr.Array, check: StoreCheck, step: int) -> list[tuple[int, int]]:
    """Any other layout: read ``step`` rows at a time through zarr and record what fails."""
    check.checksums &= any(isinstance(c, Crc32cCodec) for c in getattr(a.metadata.codecs[0], "codecs", ()))
    bad = []
    for lo in range(0, a.shape[0], step):
        hi = min(lo + step, a.shape[0])
        try:
            a[lo:hi]
        except Exception as e:  # noqa: BLE001
            check.problems.append(f"{a.path} rows {lo}..{hi - 1}: unreadable ({type(e).__name__}: {e})")
            bad.append((lo, hi))
    return bad


@_quiet
def verify_store(path: str | os.PathLike) -> StoreCheck:
    """Read everything in the store at ``path`` and report what is damaged (see :class:`StoreCheck`)."""
    path = store_location(path)
    files = StoreFiles(path)
    check = StoreCheck(path)
    try:
        g = open_store(path, "r")
    except (ValueError, OSError) as e:
        check.fatal.append(f"store metadata unreadable: {e}")
        return check
    for name in PER_IMAGE + PER_MAP:
        try:
            g[name][:]
        except Exception as e:  # noqa: BLE001
            check.fatal.append(f"index array {name!r} is damaged ({type(e).__name__}: {e})")
    if check.fatal:
        return check
    n, B = int(g["images"].shape[0]), int(g.attrs["batch_size"])
    map_image = np.asarray(g["map_image"][:], dtype=np.int64)
    batches: set[int] = set()
    for name in _SHARDED:
        a = g[name]
        if _layout_ok(a):
            bad = _scan(a, files, check)
        else:
            bad = _scan_with_zarr(a, check, max(1, int(a.shards[0]) if a.shards else int(a.chunks[0])))
        for lo, hi in bad:
            images = map_image[lo:hi] if name == "maps" else np.arange(lo, hi)
            batches.update((np.unique(images) // B).tolist())
    check.damaged_batches = [(b * B, min((b + 1) * B, n)) for b in sorted(batches)]
    return check


@_quiet
def clear_damage(check: StoreCheck) -> list[tuple[int, int]]:
    """Delete unreadable shards, cut damaged chunks out of the others, mark the damaged batches not done.

    Returns the batches that a rerun of ``generate`` will redo. Raises ``ValueError`` for fatal damage.
    Only call it while holding the store's writer lock.
    """
    if check.fatal:
        raise ValueError(
            f"store {check.path} is damaged beyond repair ({'; '.join(check.fatal)}); delete it and generate it again"
        )
    files = StoreFiles(check.path)
    try:
        for key in check.bad_shards:
            files.delete(key)
        for key, chunks in check.bad_chunks.items():
            raw = files.read(key)
            if raw is not None:
                _cut_chunks(files, key, raw, chunks)
    except OSError as e:
        raise StoreWriteError.from_os_error(e, files.label) from e
    if check.damaged_batches:
        done = open_store(check.path, "r+")["done"]
        for s, e in check.damaged_batches:
            done[s:e] = False
    return list(check.damaged_batches)


def _cut_chunks(files: StoreFiles, key: str, raw: bytes, chunks: list[int]) -> None:
    """Rewrite shard ``key`` with the index entries of ``chunks`` set to empty (atomically)."""
    name = key.split("/c/")[0]
    a = open_store(files.where, "r")[name]
    per_shard = int(a.shards[0]) // int(a.metadata.codecs[0].chunk_shape[0])
    n_index = 16 * per_shard + 4
    index = np.frombuffer(raw[len(raw) - n_index : len(raw) - 4], dtype="<u8").reshape(per_shard, 2).copy()
    index[chunks] = _EMPTY
    ib = index.astype("<u8").tobytes()
    files.write(key, raw[: len(raw) - n_index] + ib + google_crc32c.value(ib).to_bytes(4, "little"))
