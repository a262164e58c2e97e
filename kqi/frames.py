"""Small polars helpers every stage uses, each rule written once."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl
import pyarrow as pa

from kqi.errors import KqiError
from kqi.schema import SERVICE_CODE

#: link methods that tie a complaint to a cell (kqi.complaints.link_complaints)
LINKED_METHODS: tuple[str, ...] = ("crm", "spatial")

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


def poor_services_agg() -> pl.Expr:
    """In a ``group_by("cell_id")`` of a cell x service table (``service``, ``poor``): the cell's
    poor services, ``;``-joined in browsing, video, gaming order (``""`` when none)."""
    poor = pl.col("poor").cast(pl.Boolean).fill_null(False)
    order = pl.col("service").replace_strict(SERVICE_CODE, default=len(SERVICE_CODE),
                                             return_dtype=pl.Int32)
    return (pl.col("service").cast(pl.String).filter(poor).sort_by(order.filter(poor))
            .str.join(";").alias("poor_services"))


def linked_network(links: pl.DataFrame) -> pl.DataFrame:
    """The network complaints a link ties to a cell (method crm or spatial, a cell_id)."""
    require_columns(links, ("cell_id", "network", "method"), "complaint links")
    return links.filter(pl.col("network") & pl.col("method").is_in(LINKED_METHODS)
                        & pl.col("cell_id").is_not_null())


def polars_schema(schema: pa.Schema) -> pl.Schema:
    """The polars dtypes of an Arrow schema (its columns in order).

    Through an empty table made from no batches: ``pa.Schema.empty_table()`` imports pandas
    (about 0.6 CPU-s of a run that otherwise may not need it)."""
    return pl.from_arrow(pa.Table.from_batches([], schema=schema)).schema  # type: ignore[union-attr]

