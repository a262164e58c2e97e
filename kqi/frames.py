"""Small polars helpers every stage uses, each rule written once."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from kqi.errors import KqiError

#: a polars dtype as code writes it: an instance (``pl.Datetime("us", "UTC")``) or a class
#: (``pl.Float64``)
DType = pl.DataType | type[pl.DataType]


def column_or_null(columns: Iterable[str], name: str, dtype: DType) -> pl.Expr:
    """``name`` cast to ``dtype`` when the frame has it, else a typed null column of that name.

    Parameters
    ----------
    columns
        The frame's columns (``df.columns``).
    name
        Column wanted.
    dtype
        Its type in the result.
    """
    expr = pl.col(name).cast(dtype) if name in set(columns) else pl.lit(None, dtype=dtype)
    return expr.alias(name)


def with_columns_or_null(df: pl.DataFrame, wanted: dict[str, DType]) -> pl.DataFrame:
    """``df`` with every column of ``wanted`` present: cast when there, typed nulls when not."""
    return df.with_columns([column_or_null(df.columns, name, dtype) for name, dtype in wanted.items()])


def require_columns(df: pl.DataFrame, columns: Iterable[str], what: str,
                    error: type[KqiError] = KqiError) -> None:
    """Raise ``error`` naming ``what`` and every column of ``columns`` that ``df`` lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise error(f"{what}: missing column(s) {', '.join(missing)}")
