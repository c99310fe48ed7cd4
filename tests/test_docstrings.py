"""Every example in the library's docstrings runs and prints what it says (doctest over each module).

The examples are the documentation a reader copies first; when a module moves or an API changes,
this is the test that notices the documentation did not follow.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import stablesemantics

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(stablesemantics.__path__, "stablesemantics.")
    if not m.name.endswith("__main__")
)


def test_the_package_has_modules():
    assert len(MODULES) > 40


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} docstring examples of {name} fail (run doctest on it)"
    )
