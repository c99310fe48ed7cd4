"""Labels of a store's maps: MicroWorld classes and places named by each chunk, and what the chunks miss."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from stablesemantics import world
from stablesemantics.analysis.semantics import chunk_table, prompt_table
from stablesemantics.store.blocks import map_table, open_group
from stablesemantics.world.sample import scene_at
from stablesemantics.world.scene import world_config_from_dict


def _world_lemmas() -> tuple[dict[str, str], dict[str, str]]:

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
            rows.append(
                {
                    "prompt_id": pid,
                    "cls": o.cls,
                    "supercategory": o.supercategory,
                    "place": s.place,
                    "cy": (ys.mean() + 0.5) / H if a else np.nan,
                    "cx": (xs.mean() + 0.5) / W if a else np.nan,
                    "area": a / (H * W),
                }
            )
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
    summary = {
        "recall": len(hit) / max(len(true_pairs), 1),
        "precision": len(hit) / max(len(found_pairs), 1),
        "place_recall": place_hits / max(len(scene_place), 1),
        "n_objects": len(true_pairs),
        "n_prompts": int(len(scene_place)),
    }
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
        rows.append(
            {
                "prompt_id": p,
                "cls": c,
                "caption": caption[p],
                "lemmas": lemmas.get(p, []),
                "kind": "parser" if named else "typo or unknown word",
            }
        )
    return pd.DataFrame(rows, columns=["prompt_id", "cls", "caption", "lemmas", "kind"])
