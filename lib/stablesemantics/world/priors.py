"""The world's true priors (place → class, class → height, co-occurrence) as DataFrames."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from stablesemantics.world.layout import _sample_layout
from stablesemantics.world.scene import WorldConfig
from stablesemantics.world.sprites import CLASS_INDEX, CLASSES
from stablesemantics.world.vocabulary import (
    _AFFINITY,
    _CLS_NAMES,
    _N_CLS,
    _PAIR_W,
    PLACE_INDEX,
    PLACES,
    SIZE_PIXELS,
    SIZES,
)


def _mean_y_exact(cfg: WorldConfig) -> dict[str, float]:
    """E[frame centre y / H] for a free (not "on") placement: y = hy + t (H - 2 hy), t ~ U(lo, hi),
    hy = h/2 independent of t, so E[y/H] = E[t] + E[hy/H] (1 - 2 E[t])."""
    out = {}
    mean_px = np.mean([SIZE_PIXELS[s] for s in SIZES]) / 64.0  # jitter U(0.9, 1.1) has mean 1
    for name, spec in CLASSES.items():
        et = 0.5 * (spec.vertical[0] + spec.vertical[1])
        hfrac = 1.0 if spec.aspect <= 1 else 1.0 / spec.aspect
        ehy = 0.5 * mean_px * hfrac
        out[name] = et + ehy * (1 - 2 * et)
    return out


@lru_cache(maxsize=8)
def _empirical(n: int, seed: int, cfg_key: tuple) -> dict[str, pd.DataFrame]:
    cfg = WorldConfig(*cfg_key)
    rng = np.random.default_rng(seed)
    present = np.zeros((n, _N_CLS), bool)
    place_of = np.zeros(n, int)
    ysum = np.zeros(_N_CLS)
    ycnt = np.zeros(_N_CLS)
    for k in range(n):
        place, placed = _sample_layout(rng, cfg)
        place_of[k] = PLACE_INDEX[place]
        for p in placed:
            ci = CLASS_INDEX[p.cls]
            present[k, ci] = True
            ysum[ci] += p.cy / cfg.size
            ycnt[ci] += 1
    names = list(_CLS_NAMES)
    pres = present.astype(np.float64)
    cooc = pd.DataFrame(pres.T @ pres / n, index=names, columns=names)
    cp = np.zeros((_N_CLS, len(PLACES)))
    for pi in range(len(PLACES)):
        sel = place_of == pi
        if sel.any():
            cp[:, pi] = pres[sel].mean(0)
    class_place_emp = pd.DataFrame(cp, index=names, columns=list(PLACES))
    with np.errstate(invalid="ignore", divide="ignore"):
        ymean = pd.Series(np.where(ycnt > 0, ysum / np.maximum(ycnt, 1), np.nan), index=names)
    return {"cooccurrence": cooc, "class_place_presence": class_place_emp, "mean_y": ymean}


def true_priors(config: WorldConfig | None = None, n_estimate: int = 20000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The world's priors as DataFrames (``df.attrs["source"]`` says exact or estimated).

    - ``"place"``: P(place), exact (uniform over the configured places).
    - ``"class_place"``: P(class | place) used for every free (non-partner) draw, exact;
      index = classes, columns = places, each column sums to 1.
    - ``"class_place_presence"``: P(class present in scene | place), estimated from
      ``n_estimate`` sampled layouts (partner draws and no-duplicate rule included).
    - ``"vertical"``: per class ``t_lo``, ``t_hi`` (exact uniform range of the vertical
      position), ``mean_y`` = exact E[frame centre y / H] for free placements, and
      ``mean_y_empirical`` estimated from layouts (includes "on" placements and rejections).
    - ``"cooccurrence"``: P(a and b both in a scene), estimated (diagonal = P(a present)).
    - ``"pair_weights"``: the partner weights the sampler uses, exact.

    >>> pri = true_priors(n_estimate=200)
    >>> bool(abs(pri["class_place"].sum(axis=0) - 1).max() < 1e-9)
    True
    """
    cfg = config if config is not None else WorldConfig()
    names = list(_CLS_NAMES)
    places = list(cfg.places or PLACES)
    cp = pd.DataFrame(_AFFINITY / _AFFINITY.sum(0, keepdims=True), index=names, columns=list(PLACES))
    cp = cp[places]
    cp.attrs["source"] = "exact: sampler weights P(class | place) for a free draw"
    place = pd.DataFrame({"p": np.full(len(places), 1.0 / len(places))}, index=places)
    place.attrs["source"] = "exact"
    key = (
        cfg.size,
        cfg.min_objects,
        cfg.max_objects,
        cfg.p_partner,
        cfg.p_on,
        cfg.max_overlap,
        cfg.outline,
        cfg.places,
    )
    emp = _empirical(int(n_estimate), int(seed), key)
    exact_y = _mean_y_exact(cfg)
    vertical = pd.DataFrame(
        {
            "t_lo": [CLASSES[c].vertical[0] for c in names],
            "t_hi": [CLASSES[c].vertical[1] for c in names],
            "mean_y": [exact_y[c] for c in names],
            "mean_y_empirical": emp["mean_y"].values,
        },
        index=names,
    )
    vertical.attrs["source"] = (
        "t_lo/t_hi/mean_y exact (free placements, ignoring pixel rounding); "
        f"mean_y_empirical estimated from {n_estimate} layouts"
    )
    cooc = emp["cooccurrence"].copy()
    cooc.attrs["source"] = f"estimated from {n_estimate} sampled layouts (seed {seed})"
    cpp = emp["class_place_presence"][places].copy()
    cpp.attrs["source"] = f"estimated from {n_estimate} sampled layouts (seed {seed})"
    pw = pd.DataFrame(_PAIR_W.copy(), index=names, columns=names)
    pw.attrs["source"] = "exact: partner weights"
    return {
        "place": place,
        "class_place": cp,
        "class_place_presence": cpp,
        "vertical": vertical,
        "cooccurrence": cooc,
        "pair_weights": pw,
    }
