"""Which classes go together: co-occurrence weights and the "on" (thing, supporter) pairs."""

from __future__ import annotations

#: Pairs that like to appear together: symmetric weights used when the sampler draws a
#: "partner" of an object already in the scene.
PAIRS: dict[tuple[str, str], float] = {
    ("table", "chair"): 3,
    ("table", "cup"): 3,
    ("table", "lamp"): 2,
    ("table", "apple"): 2,
    ("dog", "ball"): 3,
    ("cat", "ball"): 1,
    ("dog", "cat"): 1,
    ("bird", "tree"): 2,
    ("sun", "cloud"): 2,
    ("plane", "cloud"): 2,
    ("moon", "cloud"): 1,
    ("boat", "fish"): 1,
    ("boat", "bird"): 1,
    ("car", "bus"): 2,
    ("car", "tree"): 1,
    ("flower", "tree"): 1,
    ("mushroom", "tree"): 2,
    ("apple", "tree"): 1,
    ("chair", "lamp"): 1,
    ("cup", "apple"): 1,
    ("dog", "tree"): 1,
}
#: (thing, supporter) pairs that may be placed "on" the supporter's surface.
ON_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("cup", "table"),
        ("apple", "table"),
        ("lamp", "table"),
        ("cat", "table"),
        ("ball", "table"),
        ("cat", "chair"),
        ("ball", "chair"),
        ("apple", "chair"),
    }
)
