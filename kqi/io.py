"""Writing outputs: atomically (temp file, then rename), deterministically, and safely.

Text cells that a spreadsheet would run as a formula (starting with = + - @, or a tab / carriage
return) are made inert by a leading apostrophe; numbers are left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_UMASK = os.umask(0)  # read once at import (os.umask can only be read by setting it)
os.umask(_UMASK)


def inert_text(value: str | None) -> str | None:
    """Return ``value`` made safe for CSV/Excel: formula-like text gets a leading apostrophe."""
    if value is None or value == "":
        return value
    if value.startswith(_FORMULA_START):
        return "'" + value
    return value


def make_inert(df: pl.DataFrame) -> pl.DataFrame:
    """Apply :func:`inert_text` to every string column of ``df``."""
    exprs = []
    for name, dtype in df.schema.items():
        if dtype == pl.String:
            col = pl.col(name)
            exprs.append(
                pl.when(col.str.contains(r"^[=+\-@\t\r]"))
                .then(pl.lit("'") + col)
                .otherwise(col)
                .alias(name)
            )
    return df.with_columns(exprs) if exprs else df


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; outputs are shared with colleagues and web servers: honour the umask
    os.chmod(tmp_path, 0o666 & ~_UMASK)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False,
                                       default=str) + "\n")


def write_csv(path: str | Path, df: pl.DataFrame, *, inert: bool = True) -> Path:
    """Write ``df`` as UTF-8 CSV atomically; string cells made formula-inert unless told not to."""
    out = make_inert(df) if inert else df
    with atomic_path(path) as tmp:
        out.write_csv(tmp, float_precision=6, datetime_format="%Y-%m-%d %H:%M:%S")
    return Path(path)


def write_parquet(path: str | Path, df: pl.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=True)
    return Path(path)
