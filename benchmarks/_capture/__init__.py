"""The parts of ``benchmarks/capture.py`` (the capture benchmark); a helper package, not a benchmark.

``benchmarks/capture.py`` puts ``benchmarks/`` on the import path by being run from it; tests load it
with ``tests/conftest.py``'s ``benchmark_module``, which does the same.
"""
