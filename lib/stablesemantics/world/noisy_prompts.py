"""Noisy 'real-user' prompts from captions (style tails, flags, typos), and a store's prompts."""

from __future__ import annotations

import numpy as np

from stablesemantics.world.sample import render_scenes
from stablesemantics.world.scene import Scene, WorldConfig

# --------------------------------------------------------------------------------------
# Noisy "real-user" prompts
# --------------------------------------------------------------------------------------

_STYLE = (
    "4k",
    "8k",
    "trending on artstation",
    "highly detailed",
    "octane render",
    "unreal engine",
    "by greg rutkowski",
    "cinematic lighting",
    "sharp focus",
    "masterpiece",
    "best quality",
    "ultra realistic",
    "digital art",
    "photorealistic",
    "studio ghibli style",
    "hdr",
    "bokeh",
)
_PREFIX = (
    "a photo of ",
    "photo of ",
    "an illustration of ",
    "a painting of ",
    "masterpiece, best quality, ",
    "RAW photo, ",
    "",
)
_FLAGS = ("--ar 16:9", "--ar 3:2", "--v 5", "--v 6", "--q 2", "--stylize 750", "--no text", "--s 250", "--niji")
_LORAS = ("<lora:detail_tweaker:0.8>", "<lora:add_detail:0.5>", "<lyco:style:1.0>")
#: Public names of the noise vocabulary, for cleaners' tests.
STYLE_TAILS, PROMPT_PREFIXES, PROMPT_FLAGS, PROMPT_TAGS = _STYLE, _PREFIX, _FLAGS, _LORAS
_URLS = ("https://i.imgur.com/a1b2c3.png", "https://s.mj.run/xYz12AbC", "http://example.com/ref.jpg")


def _typo(rng, word: str) -> str:
    if len(word) < 4:
        return word
    k = int(rng.integers(1, len(word) - 2))
    kind = rng.integers(3)
    if kind == 0:  # swap
        return word[:k] + word[k + 1] + word[k] + word[k + 2 :]
    if kind == 1:  # drop
        return word[:k] + word[k + 1 :]
    return word[:k] + word[k] + word[k:]  # double


def noisy_prompt(scene: Scene, rng: np.random.Generator) -> str:
    """A variant of ``scene.caption`` shaped like a real user prompt: style tails,
    Midjourney flags, attention weights ``(car:1.2)`` / ``((car))``, LoRA tags, URLs,
    occasional typos, ALL CAPS, doubled commas and spaces. Always differs from the caption.

    >>> from stablesemantics.world import sample_scene
    >>> s = sample_scene(np.random.default_rng(0))
    >>> noisy_prompt(s, np.random.default_rng(1)) != s.caption
    True
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    text = scene.caption
    # weights on object nouns (right to left so spans stay valid)
    for (_s, e), o in sorted(zip(scene.object_spans, scene.objects), key=lambda t: -t[0][0]):
        if rng.random() < 0.3:
            ns = e - len(o.noun)
            form = rng.integers(3)
            noun = text[ns:e]
            if form == 0:
                w = f"({noun}:{rng.choice([1.1, 1.2, 1.3, 1.4, 1.5, 0.8])})"
            elif form == 1:
                w = "(" * int(rng.integers(1, 4)) + noun + ")" * int(rng.integers(1, 4))
            else:
                w = f"[{noun}]"
            text = text[:ns] + w + text[e:]
    if rng.random() < 0.12:
        words = text.split(" ")
        k = int(rng.integers(len(words)))
        words[k] = _typo(rng, words[k])
        text = " ".join(words)
    if rng.random() < 0.5:
        text = _PREFIX[int(rng.integers(len(_PREFIX)))] + text
    if rng.random() < 0.75:
        k = int(rng.integers(1, 6))
        tail = [str(x) for x in rng.choice(_STYLE, size=k, replace=False)]
        sep = ", " if rng.random() < 0.8 else ",, "
        text = text + sep + sep.join(tail)
    if rng.random() < 0.15:
        text = text + " " + _LORAS[int(rng.integers(len(_LORAS)))]
    if rng.random() < 0.35:
        k = int(rng.integers(1, 4))
        text = text + " " + " ".join(str(f) for f in rng.choice(_FLAGS, size=k, replace=False))
    if rng.random() < 0.05:
        text = _URLS[int(rng.integers(len(_URLS)))] + " " + text
    if rng.random() < 0.1:
        text = text.upper()
    if rng.random() < 0.1:
        text = text.replace(" ", "  ", 1 + int(rng.integers(2)))
    if rng.random() < 0.1:
        text = text + ","
    if text == scene.caption:  # always give a cleaner something to do
        text = text + ", " + str(rng.choice(_STYLE))
    return text


# --------------------------------------------------------------------------------------
# Prompts of a store made from MicroWorld (see stablesemantics.generate.make_world_store)
# --------------------------------------------------------------------------------------


def world_prompts(n: int, seed: int = 0, config: WorldConfig | None = None) -> tuple[list[Scene], list[str]]:
    """Scenes ``0 .. n-1`` of the stream ``seed`` and one noisy "real-user" prompt for each.

    Deterministic: prompt ``i`` depends only on (``seed``, ``i``, ``config``), so a store whose
    ``prompt_id`` is the scene index can re-render the ground truth of any of its images with
    ``scene_at(seed, prompt_id, config)``.

    >>> scenes, prompts = world_prompts(3, seed=1)
    >>> len(prompts), prompts == world_prompts(3, seed=1)[1]
    (3, True)
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    scenes = render_scenes(n, seed=seed, config=config)
    prompts = [noisy_prompt(s, np.random.default_rng([int(seed), i, 1])) for i, s in enumerate(scenes)]
    return scenes, prompts
