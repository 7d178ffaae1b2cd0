"""Benchmarks: pytest-benchmark suites (``test_*.py``) and the ``python -m benchmarks`` CLI."""
