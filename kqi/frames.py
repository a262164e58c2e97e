"""Small polars helpers every stage uses, each rule written once."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

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
