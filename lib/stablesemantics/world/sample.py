"""Scenes: sample, render, relations; scene i of a seed."""

from __future__ import annotations

import numpy as np

from stablesemantics.world.background import _background
from stablesemantics.world.captions import _caption, _pick
from stablesemantics.world.layout import _Placed, _sample_layout
from stablesemantics.world.render import _keypoints_xy, _rasterise
from stablesemantics.world.scene import Scene, SceneObject, WorldConfig
from stablesemantics.world.sprites import CLASS_INDEX, CLASSES
from stablesemantics.world.vocabulary import _SIZE_WORDS


def _relations(objs: list[SceneObject], H: int) -> list[tuple[int, str, int]]:
    rel = []
    thr = max(1.0, H / 16)
    for i, a in enumerate(objs):
        ax, ay = (a.box[0] + a.box[2]) / 2, (a.box[1] + a.box[3]) / 2
        for j, b in enumerate(objs):
            if i == j:
                continue
            bx, by = (b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2
            if bx - ax >= thr:
                rel.append((i, "left of", j))
            elif ax - bx >= thr:
                rel.append((i, "right of", j))
            if by - ay >= thr:
                rel.append((i, "above", j))
            elif ay - by >= thr:
                rel.append((i, "below", j))
            if a.on == j:
                rel.append((i, "on", j))
    return rel


_DR, _DC = (a.ravel()[None, :] for a in np.meshgrid(np.arange(3), np.arange(3), indexing="ij"))


def _render(rng, place: str, placed: list[_Placed], cfg: WorldConfig) -> Scene:
    H = W = cfg.size
    image, layout = _background(rng, place, H, W)
    inst = np.zeros((H, W), np.int16)
    clsm = np.zeros((H, W), np.int16)
    objs: list[SceneObject] = []
    for i, p in enumerate(placed):
        spec = CLASSES[p.cls]
        x0, y0, m, patch = _rasterise(spec, p, H, W, cfg.outline)
        if m.any():
            rows = np.flatnonzero(m.any(1))
            cols = np.flatnonzero(m.any(0))
            box = (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
            sl = (slice(y0, y0 + m.shape[0]), slice(x0, x0 + m.shape[1]))
            np.copyto(image[sl], patch, where=m[:, :, None])
            np.copyto(inst[sl], i + 1, where=m)
            np.copyto(clsm[sl], CLASS_INDEX[p.cls] + 1, where=m)
        else:
            box = (0, 0, 0, 0)
        noun = _pick(rng, spec.synonyms)
        phrase = f"{_pick(rng, _SIZE_WORDS[p.size])} {p.colour} {noun}"
        objs.append(
            SceneObject(
                cls=p.cls,
                colour=p.colour,
                size=p.size,
                box=box,
                flip=p.flip,
                keypoints={},
                supercategory=spec.supercategory,
                noun=noun,
                phrase=phrase,
                centre=(p.cx, p.cy),
                full_area=int(m.sum()),
                on=p.on,
            )
        )
    counts = np.bincount(inst.ravel(), minlength=len(objs) + 1)
    for i, o in enumerate(objs):
        o.area = int(counts[i + 1])
    if objs:
        # all keypoints of the scene at once
        kps = [_keypoints_xy(CLASSES[p.cls], p) for p in placed]
        xs = np.concatenate([k[0] for k in kps])
        ys = np.concatenate([k[1] for k in kps])
        owner = np.concatenate([np.full(len(k[0]), i + 1, np.int16) for i, k in enumerate(kps)])
        c = np.floor(xs).astype(np.int64)
        r = np.floor(ys).astype(np.int64)
        inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
        rc = np.minimum(np.maximum(r, 0), H - 1)
        cc = np.minimum(np.maximum(c, 0), W - 1)
        inst_pad = np.zeros((H + 2, W + 2), np.int16)
        inst_pad[1:-1, 1:-1] = inst
        # visible: not covered by a later object, and the object's own visible pixels touch
        # the keypoint (its pixel or the 3x3 block: parts can sit on the sprite's 1-px edge)
        near = (inst_pad[rc[:, None] + _DR, cc[:, None] + _DC] == owner[:, None]).any(1)
        vis = (inside & (inst[rc, cc] <= owner) & near).tolist()
        xs, ys = xs.tolist(), ys.tolist()
        k = 0
        for p, o in zip(placed, objs):
            parts = CLASSES[p.cls].parts
            o.keypoints = {part: (xs[k + j], ys[k + j], vis[k + j]) for j, part in enumerate(parts)}
            k += len(parts)
    caption, spans, place_span = _caption(rng, place, objs, H)
    return Scene(
        image=image,
        place=place,
        objects=objs,
        instance_mask=inst,
        class_mask=clsm,
        relations=_relations(objs, H),
        caption=caption,
        object_spans=spans,
        place_span=place_span,
        layout=layout,
    )


def sample_scene(rng: np.random.Generator, config: WorldConfig | None = None) -> Scene:
    """Sample and render one scene.

    >>> s = sample_scene(np.random.default_rng(3), WorldConfig(size=32, max_objects=2))
    >>> s.image.shape, 1 <= len(s.objects) <= 2
    ((32, 32, 3), True)
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    cfg = config if config is not None else WorldConfig()
    place, placed = _sample_layout(rng, cfg)
    return _render(rng, place, placed, cfg)


def scene_at(seed: int, index: int, config: WorldConfig | None = None) -> Scene:
    """Scene number ``index`` of the stream ``seed``: ``render_scenes(n, seed)[i] == scene_at(seed, i)``."""
    return sample_scene(np.random.default_rng([int(seed), int(index)]), config)


def render_scenes(n: int, seed: int = 0, config: WorldConfig | None = None, start: int = 0) -> list[Scene]:
    """Render scenes ``start .. start+n-1`` of the stream ``seed`` (each has its own RNG, so
    any slice can be regenerated independently).

    >>> [s.caption for s in render_scenes(2, seed=5)] == [s.caption for s in render_scenes(2, seed=5)]
    True
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [scene_at(seed, start + i, config) for i in range(n)]


def stack_images(scenes: list[Scene]) -> np.ndarray:
    """(n, H, W, 3) uint8 array of the scenes' images."""
    return np.stack([s.image for s in scenes])
