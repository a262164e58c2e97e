"""Benchmarks: kqi against pandas, DuckDB and polars on the same app-test files.

Run ``python -m benchmarks.run --sizes 1e6,1e7`` (see docs/benchmarks.md).
"""
