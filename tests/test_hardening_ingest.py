"""Issue 12, classes 3 and 6: no silent loss of rows, and unusable Parquet types named.

Row accounting must match the physical rows whatever one field holds; a Parquet column whose type
cannot hold its canonical kind stops the run with one line naming file and column (exit 2).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kqi.ingest import Ingest
from kqi.ingest._text import MAX_FIELD_CHARS

from kqi.config import Config
from kqi.errors import InputError

HEADER = "cell_id,site_id,cell_name,lat,lon,azimuth"
ROWS = 100


def _cells(tmp_path: Path, at: int, field: str) -> Path:
    lines = [HEADER] + [f"C{k},S{k // 3},name {k},31.{k:03d},121.0,{k % 360}" for k in range(ROWS)]
    parts = lines[at + 1].split(",")
    parts[2] = field
    lines[at + 1] = ",".join(parts)
    p = tmp_path / "cells.csv"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


BIG = MAX_FIELD_CHARS + 1


@pytest.mark.parametrize(("field", "at", "rejected"), [
    ("x" * (5 << 20), 2, 1),                 # the case: 5 MB in row 3 of 100
    ("x" * (5 << 20), 99, 1),                # in the last row
    ("x" * (5 << 20), 0, 1),                 # in the first row
    ('"' + "x" * BIG + '"', 40, 1),          # quoted
    ('"' + "y\n" * (BIG // 2 + 1) + '"', 40, 1),  # quoted, over many lines
    ("x" * (200 << 10), 10, 0),              # over csv's 128 KiB default, under the limit
    ("x" * MAX_FIELD_CHARS, 10, 0),          # exactly at the limit
    ('"' + "x" * (300 << 10), 5, 1),         # an unterminated quote: its line only
    ('"unclosed', 50, 1),
    ('"a""b"', 7, 0),
])
def test_one_bad_field_rejects_one_row(tmp_path: Path, field: str, at: int, rejected: int) -> None:
    ing = Ingest(Config(), None)
    df = ing.cells(_cells(tmp_path, at, field))
    rep = ing.reports["cells"]
    assert rep.rows_read == ROWS
    assert rep.rows_rejected == rejected
    assert df.height == ROWS - rejected
    if rejected:
        rej = ing.rejects["cells"]
        assert rej["line"].to_list() == [at + 2]
        assert (rej["cell_name"].str.len_chars().max() or 0) <= 1000  # a bounded part is kept


def _parquet_cells(tmp_path: Path, column: str, values: pa.Array) -> Path:
    n = len(values)
    t = pa.table({"cell_id": [f"C{k}" for k in range(n)], "site_id": ["S"] * n,
                  "lat": [31.0] * n, "lon": [121.0] * n, "azimuth": [0.0] * n,
                  "vendor": ["ZTE"] * n})
    t = t.set_column(t.schema.get_field_index(column), column, values)
    p = tmp_path / f"cells_{column}.parquet"
    pq.write_table(t, p)
    return p


N = 4
BAD_TYPES = [
    ("cell_id", pa.array([[k] for k in range(N)])),
    ("cell_id", pa.array([{"a": k} for k in range(N)])),
    ("cell_id", pa.array([[("a", k)] for k in range(N)], type=pa.map_(pa.string(), pa.int64()))),
    ("cell_id", pa.array([True, False] * (N // 2))),
    ("cell_id", pa.array([b"x"] * N, type=pa.binary())),
    ("lat", pa.array([True] * N)),
    ("lat", pa.array([[31.0]] * N)),
    ("lat", pa.array([{"v": 31.0}] * N)),
    ("lon", pa.array([1] * N, type=pa.duration("s"))),
    ("azimuth", pa.array([False] * N)),
    ("vendor", pa.array([["ZTE"]] * N)),
    ("site_id", pa.array([{"s": 1}] * N)),
]


@pytest.mark.parametrize(("column", "values"), BAD_TYPES,
                         ids=[f"{c}-{v.type}" for c, v in BAD_TYPES])
def test_unusable_parquet_types_are_named(tmp_path: Path, column: str, values: pa.Array) -> None:
    p = _parquet_cells(tmp_path, column, values)
    with pytest.raises(InputError) as err:
        Ingest(Config(), None).cells(p)
    msg = str(err.value)
    assert p.name in msg
    assert f"column '{column}'" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(("column", "values"), [
    ("cell_id", pa.array([4926720 + k for k in range(N)])),       # ECIs as integers
    ("cell_id", pa.array([4926720.0 + k for k in range(N)])),     # ... as a spreadsheet's floats
    ("lat", pa.array([31] * N, type=pa.int32())),
    ("lat", pa.array(["31.5"] * N)),
    ("vendor", pa.array([None] * N, type=pa.null())),
    ("vendor", pa.array(["ZTE"] * N).dictionary_encode()),
])
def test_usable_parquet_types_are_read(tmp_path: Path, column: str, values: pa.Array) -> None:
    df = Ingest(Config(), None).cells(_parquet_cells(tmp_path, column, values))
    assert df.height == N
    assert isinstance(df, pl.DataFrame)


@pytest.mark.parametrize(("field", "rejected"), [("x" * (200 << 10), 0), ("x" * (2 << 20), 1)])
def test_a_long_field_in_the_detection_sample(tmp_path: Path, field: str, rejected: int) -> None:
    """A field over csv's default 128 KiB limit in the first rows (the ones detection reads) is
    read as the same field further down: kept under MAX_FIELD_CHARS, its row rejected over it;
    never an internal error."""
    import csv

    before = csv.field_size_limit(131_072)  # a fresh process's limit
    try:
        ing = Ingest(Config(), None)
        df = ing.cells(_cells(tmp_path, 0, field))
    finally:
        csv.field_size_limit(before)
    assert ing.reports["cells"].rows_rejected == rejected
    assert df.height == ROWS - rejected
