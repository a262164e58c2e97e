"""kqi on Apache Spark: the heavy aggregations as Spark jobs, the same results as the local engine.

For platform teams calling kqi from their own jobs, on Spark DataFrames (or paths and URIs Spark
reads)::

    import kqi.spark
    cell_kqi = kqi.spark.flag_cells(tests_df, config)                 # polars, one row per cell x service
    evidence = kqi.spark.kpi_evidence(kpis_df, cells, config)        # polars, one row per cell
    per_cell = kqi.spark.complaints_per_cell(complaints_df, config)  # Spark DataFrame
    counts = kqi.spark.day_counts(tests_df, config)                  # Spark DataFrame, not collected

The command line runs the same jobs with ``kqi run ... --engine spark [--spark-master URL]`` or
``[engine] name = "spark"`` in the config (docs/scale.md). This module imports without pyspark;
a function called without it fails with one line saying how to install it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kqi.errors import KqiError

if TYPE_CHECKING:
    import polars as pl
    from pyspark.sql import DataFrame, SparkSession

    from kqi.config import Config

__all__ = ["SparkUnavailableError", "complaints_per_cell", "day_counts", "flag_cells", "kpi_evidence",
           "session"]

INSTALL_HINT = "pip install 'kqi[spark]' (and a Java 17+ runtime)"


class SparkUnavailableError(KqiError, ImportError):
    """pyspark is not installed: the Spark engine cannot run."""


def require_pyspark() -> None:
    """Raise :class:`SparkUnavailableError` (one line) when pyspark cannot be imported."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailableError(f"the Spark engine needs pyspark: {INSTALL_HINT}") from None


def session(config: Config | str | Path | None = None) -> SparkSession:
    """The Spark session kqi uses: the active one, or one built from ``config.engine``."""
    from kqi.config import as_config

    require_pyspark()
    from ._session import get_session

    return get_session(as_config(config))


def flag_cells(df: DataFrame | str | Path, config: Config | str | Path | None = None, *,
               cells: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per cell x service good-rates and poor flags of an app-tests feed, counted on Spark.

    Parameters
    ----------
    df : pyspark.sql.DataFrame, str or Path
        Per-test rows in the contract's columns (aliases and ``[ingest.column_map]`` apply), or
        a path / URI Spark reads (a CSV or Parquet file, a folder of parts).
    config : Config, str or Path, optional
        Targets, thresholds, ingest options; a TOML path; defaults when None.
    cells : polars.DataFrame, optional
        A cells table (``cell_id``): rows naming other cells are rejected, as with ``kqi run``.

    Returns
    -------
    polars.DataFrame
        The ``cell_kqi`` table, equal to :func:`kqi.flag_cells` on the same rows.
    """
    from kqi.config import as_config

    require_pyspark()
    from kqi.flagging import KqiAccumulator, check_kqi_columns

    from ._feeds import count_tests
    from .engine import _CountsFeed

    cfg = as_config(config)
    spark = session(cfg)
    tc = count_tests(spark, df, cfg, cell_ids=None if cells is None else cells["cell_id"])
    feed = _CountsFeed(tc)
    acc = KqiAccumulator(len(tc.cell_ids), cfg, daily=False)
    for batch in feed.batches:
        acc.add(batch)
    check_kqi_columns(feed, acc, cfg)
    return acc.cell_kqi(tc.cell_ids)


def day_counts(df: DataFrame | str | Path, config: Config | str | Path | None = None) -> DataFrame:
    """Validated tests counted per ``cell_id, service, day`` (``tests``, ``good_tests``) as a
    Spark DataFrame, left on the cluster (for a platform's own tables). Rejected rows are not
    in it; :func:`flag_cells` counts and reports them."""
    from kqi.config import as_config

    require_pyspark()
    from pyspark.sql import functions as F

    from kqi.schema import SERVICES

    from ._feeds import judge_tests

    cfg = as_config(config)
    spark = session(cfg)
    j, _ = judge_tests(spark, df, cfg, None)
    names = F.element_at(F.array(*[F.lit(s) for s in SERVICES]), F.col("service_code") + 1)
    return (j.accepted()
            .groupBy("cell_id", names.alias("service"), "day")
            .agg(F.count(F.lit(1)).alias("tests"), F.sum("verdict").cast("long").alias("good_tests")))


def kpi_evidence(df: DataFrame | str | Path, cells: pl.DataFrame,
                 config: Config | str | Path | None = None) -> pl.DataFrame:
    """Per-cell KPI evidence (busy-hour figures, TA against the local ISD), computed on Spark.

    Parameters
    ----------
    df : pyspark.sql.DataFrame, str or Path
        Hourly ``cell_kpis`` rows, or a path / URI Spark reads.
    cells : polars.DataFrame
        The cells table (positions for the inter-site distance; rows of other cells rejected).
    config : Config, str or Path, optional

    Returns
    -------
    polars.DataFrame
        ``cell_id, kpi_hours`` and the evidence columns, equal (within floating rounding) to
        :func:`kqi.diagnosis.extract_evidence` on the same rows.
    """
    from kqi.config import as_config

    require_pyspark()
    from kqi.diagnosis import with_isd

    from ._feeds import kpi_evidence_job

    cfg = as_config(config)
    res = kpi_evidence_job(session(cfg), df, cfg, cell_ids=cells["cell_id"])
    return with_isd(res.evidence, cells, cfg)


def complaints_per_cell(df: DataFrame, config: Config | str | Path | None = None) -> DataFrame:
    """Network complaints per ``cell_id`` and ``service`` (``complaints``) of tickets that name
    their cell, on Spark; categories mapped by ``[complaints.categories]``. Tickets with only a
    position need the spatial linker (:func:`kqi.complaints.link_complaints`, local)."""
    from kqi.config import as_config

    require_pyspark()
    from ._feeds import complaints_per_cell as job

    cfg = as_config(config)
    session(cfg)
    return job(df, cfg)

