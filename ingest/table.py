"""Reading a whole input file as it is, without a feed schema."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kqi.errors import InputError

from ._sources import open_source

#: records per chunk when reading a whole table
_CHUNK_ROWS = 1_000_000


def read_table(path: str | Path, encoding: str = "auto") -> pl.DataFrame:
    """Read a CSV (UTF-8, UTF-8 with BOM or GBK; delimiter sniffed) or Parquet file whole.

    CSV columns are all text (``String``), exactly as written; Parquet columns keep their types.
    Rows whose number of fields differs from the header's raise.

    Parameters
    ----------
    path
        The file.
    encoding
        ``"auto"`` (detect) or a codec name.

    Returns
    -------
    polars.DataFrame

    Raises
    ------
    kqi.errors.InputError
        The file is missing, undecodable, empty or has a malformed row.
    """
    src = open_source(path, encoding, _CHUNK_ROWS)
    try:
        parts = []
        for raw in src.chunks():
            if raw.malformed:
                bad = raw.malformed[0]
                raise InputError(path, bad.reason, line=bad.line)
            parts.append(raw.frame)
    finally:
        src.close()
    if not parts:
        return pl.DataFrame(schema=dict.fromkeys(src.columns, pl.String))
    return pl.concat(parts)
