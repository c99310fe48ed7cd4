"""Denoisers of every model family and their inputs, for ``benchmarks/capture_families.py``."""
