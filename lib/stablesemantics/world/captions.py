"""Clean captions with the character span of every object's noun phrase."""

from __future__ import annotations

from stablesemantics.world.scene import SceneObject
from stablesemantics.world.vocabulary import PLACE_PHRASES


def _pick(rng, options: tuple[str, ...]) -> str:
    if len(options) == 1 or rng.random() < 0.7:
        return options[0]
    return options[1 + int(rng.integers(len(options) - 1))]


def _connector(a: int, b: int, objs: list[SceneObject], H: int) -> str:
    oa, ob = objs[a], objs[b]
    if oa.on == b:
        return " on "
    ax0, ay0, ax1, ay1 = oa.box
    bx0, by0, bx1, by1 = ob.box
    if ay1 <= by0:
        return " above "
    if by1 <= ay0:
        return " below "
    gap = max(bx0 - ax1, ax0 - bx1)
    if gap <= 0.25 * H:
        return " next to "
    return " and "


def _caption(rng, place: str, objs: list[SceneObject], H: int):
    n = len(objs)
    order = list(range(n))
    for i, o in enumerate(objs):  # lead with a thing that sits on something: "a cup on a table"
        if o.on is not None:
            order = [i, o.on] + [k for k in range(n) if k not in (i, o.on)]
            break
    parts: list[str] = []
    spans: dict[int, tuple[int, int]] = {}
    pos = 0
    for k, i in enumerate(order):
        if k == 0:
            sep = ""
        elif k == 1:
            sep = _connector(order[0], i, objs, H)
            if sep == " and " and n > 2:  # "a, b and c" rather than "a and b and c"
                sep = ", "
        elif k == n - 1:
            sep = " and "
        else:
            sep = ", "
        text = sep + "a "
        parts.append(text)
        pos += len(text)
        spans[i] = (pos, pos + len(objs[i].phrase))
        parts.append(objs[i].phrase)
        pos += len(objs[i].phrase)
    phrase = _pick(rng, PLACE_PHRASES[place])
    parts.append(" " + phrase)
    caption = "".join(parts)
    noun = phrase.split()[-1]
    place_span = (len(caption) - len(noun), len(caption))
    return caption, [spans[i] for i in range(n)], place_span
