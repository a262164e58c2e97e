"""Ingest stage: read and validate the input feeds into canonical polars DataFrames.

>>> from ingest import Ingest
>>> ing = Ingest(config, rejects_dir=out / "rejects")          # doctest: +SKIP
>>> cells = ing.cells("cells.csv")                              # doctest: +SKIP
>>> feed = ing.app_tests("tests.parquet", cells)                # doctest: +SKIP
>>> for batch in feed.batches: ...                              # doctest: +SKIP

See ``docs/input-formats.md`` for the accepted files, headers and the checks applied.
"""

from __future__ import annotations

from ._sources import norm_header, resolve_columns, source_name
from ._text import detect_encoding
from .core import (
    AGG_BATCH_COLUMNS,
    AGG_BATCH_SCHEMA,
    TEST_BATCH_COLUMNS,
    TEST_BATCH_SCHEMA,
    FeedReport,
    Ingest,
    TestsFeed,
)
from .table import read_table

__all__ = [
    "AGG_BATCH_COLUMNS",
    "AGG_BATCH_SCHEMA",
    "TEST_BATCH_COLUMNS",
    "TEST_BATCH_SCHEMA",
    "FeedReport",
    "Ingest",
    "TestsFeed",
    "detect_encoding",
    "norm_header",
    "read_table",
    "resolve_columns",
    "source_name",
]
