"""Benchmark suite: ``python -m benchmarks`` (``make bench``); see ``benchmarks/__main__.py``."""
