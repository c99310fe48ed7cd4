"""Summaries of sampled scenes: class tables and statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stablesemantics.world.scene import Scene
from stablesemantics.world.sprites import CLASS_INDEX, CLASSES
from stablesemantics.world.vocabulary import _N_CLS, PLACE_INDEX, PLACES


def class_table() -> pd.DataFrame:
    """One row per class: supercategory, parts, caption synonyms, places it appears in.

    >>> class_table().loc["car", "supercategory"]
    'vehicle'
    """
    rows = []
    for name, spec in CLASSES.items():
        rows.append(
            {
                "class": name,
                "supercategory": spec.supercategory,
                "parts": ", ".join(spec.parts),
                "synonyms": ", ".join(spec.synonyms),
                "places": ", ".join(p for p in PLACES if spec.places.get(p, 0) > 0),
                "flips": not spec.symmetric,
            }
        )
    return pd.DataFrame(rows).set_index("class")


def scene_statistics(scenes: list[Scene]) -> dict[str, pd.DataFrame]:
    """What a set of rendered scenes shows, measured from their ground truth only:

    - ``"class_place"``: P(class | place) over object instances (columns sum to 1),
    - ``"vertical"``: per class the mean y of the visible mask's centroid in [0, 1] and a count,
    - ``"cooccurrence"``: P(a and b in the same scene) (diagonal: P(a present)),
    - ``"summary"``: one-row frame of scene-level numbers.

    >>> from stablesemantics.world import render_scenes
    >>> st = scene_statistics(render_scenes(20))
    >>> sorted(st)
    ['class_place', 'cooccurrence', 'summary', 'vertical']
    """
    if not scenes:
        raise ValueError("scene_statistics needs at least one scene")
    names = list(CLASSES)
    counts = np.zeros((_N_CLS, len(PLACES)))
    ysum = np.zeros(_N_CLS)
    ycnt = np.zeros(_N_CLS)
    pres = np.zeros((len(scenes), _N_CLS))
    vis_frac, n_obj, n_words = [], [], []
    for k, s in enumerate(scenes):
        H = s.image.shape[0]
        rows = np.arange(H, dtype=np.float64)
        row_counts = (
            np.stack([(s.instance_mask == i + 1).sum(1) for i in range(len(s.objects))])
            if s.objects
            else np.zeros((0, H))
        )
        for i, o in enumerate(s.objects):
            ci = CLASS_INDEX[o.cls]
            counts[ci, PLACE_INDEX[s.place]] += 1
            pres[k, ci] = 1
            if o.area > 0:
                ysum[ci] += (row_counts[i] @ (rows + 0.5)) / o.area / H
                ycnt[ci] += 1
            vis_frac.append(o.area / max(o.full_area, 1))
        n_obj.append(len(s.objects))
        n_words.append(len(s.caption.split()))
    with np.errstate(invalid="ignore", divide="ignore"):
        cp = counts / counts.sum(axis=0, keepdims=True)
        ymean = np.where(ycnt > 0, ysum / np.maximum(ycnt, 1), np.nan)
    summary = pd.DataFrame(
        [
            {
                "n_scenes": len(scenes),
                "mean_objects": float(np.mean(n_obj)),
                "mean_visible_fraction": float(np.mean(vis_frac)) if vis_frac else float("nan"),
                "mean_caption_words": float(np.mean(n_words)),
                "max_caption_words": int(np.max(n_words)),
            }
        ]
    )
    return {
        "class_place": pd.DataFrame(np.nan_to_num(cp), index=names, columns=list(PLACES)),
        "vertical": pd.DataFrame({"mean_y": ymean, "n": ycnt.astype(int)}, index=names),
        "cooccurrence": pd.DataFrame(pres.T @ pres / len(scenes), index=names, columns=names),
        "summary": summary,
    }
