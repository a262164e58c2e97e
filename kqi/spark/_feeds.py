"""The heavy aggregations as Spark jobs: validated app tests to per cell x service x day counts,
validated hourly KPIs to per-cell busy-hour evidence, complaints per cell.

Each job reads its feed once for the result (and once more only when there are rejected rows to
write). The rules are the local engine's, built from the same definitions: the verdict from
:data:`kqi.schema.SERVICE_KQIS` and ``config.kqi.targets``; validation from the feed schemas
(:mod:`kqi.spark._validate`); evidence from :data:`kqi.diagnosis.KPI_AGGREGATES` and
:data:`kqi.diagnosis.BUSY_TRAFFIC`. What is collected to the driver is small: one row per
cell x service x day, one row per cell, and the rejected rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from kqi.config import Config
from kqi.errors import InputError
from kqi.ingest._feedcheck import lookalike_hint, missing_measures
from kqi.ingest._rejects import RejectSink
from kqi.ingest._sources import resolve_columns
from kqi.ingest._verdict import Tally, feed_verdict
from kqi.ingest.core import FeedReport
from kqi.schema import APP_TESTS, APP_TESTS_AGG, CELL_KPIS, SERVICE_KQIS, SERVICES, FeedSchema

from ._read import SparkSource, open_source
from ._validate import Check, Converted, check_types, convert, convert_string

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

CELL_ID = APP_TESTS.column("cell_id")
#: rejected rows brought to the driver per step while the rejects file is written
_REJECT_BATCH = 100_000


def to_polars(df: DataFrame) -> pl.DataFrame:
    """Collect a (small) Spark result as a polars frame through Arrow."""
    if hasattr(df, "toArrow"):  # pyspark >= 4.0
        table = df.toArrow()
    else:  # pragma: no cover - pyspark 3.5
        table = pa.Table.from_batches(df._collect_as_arrow())  # type: ignore[operator,unused-ignore]
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    return out


def verdict(svc: Column, values: dict[str, Column], config: Config, *,
            use_good: bool) -> Column:
    """A test's verdict (1 good, 0 not) as a Spark expression: it succeeded and meets every
    target of its service (:data:`kqi.schema.SERVICE_KQIS`, ``config.kqi.targets``; a missing KQI
    fails); with ``use_good`` a present source ``good`` decides. The rule of
    :func:`kqi._kernels._verdicts`."""
    from pyspark.sql import functions as F

    targets = config.kqi.targets
    meets = F.lit(False)
    for code, service in enumerate(SERVICES):
        ok = F.lit(True)
        for kqi in SERVICE_KQIS[service]:
            ok = ok & F.coalesce(values[kqi] <= float(getattr(targets, kqi)), F.lit(False))
        meets = F.when(svc == code, ok).otherwise(meets)
    good = meets & ~F.coalesce(values["success"] == 0, F.lit(False))
    if use_good:
        good = F.when(values["good"].isNotNull(), values["good"] != 0).otherwise(good)
    return good.cast("int")


@dataclass
class Judged:
    """A feed after validation on Spark.

    ``frame`` holds the source columns, the intermediates, ``_file``, ``_line``, the canonical
    values as ``_k_<name>`` and ``_bad`` (the row fails a check): counting needs only the cheap
    boolean; the reason text is built for the rejected rows alone (:attr:`reason`).
    """

    source: SparkSource
    mapping: dict[str, str]
    frame: DataFrame
    reason: Column
    names: list[str]
    reject_columns: list[str]
    source_columns: list[str]

    def accepted(self) -> DataFrame:
        """The rows passing every check, in canonical columns."""
        from pyspark.sql import functions as F

        return self.frame.where(~F.col("_bad")).select(
            *[F.col(f"_k_{k}").alias(k) for k in self.names])


def _mapping(src: SparkSource, schema: FeedSchema, config: Config, feed: str) -> dict[str, str]:
    cmap = {**config.ingest.column_map.get(schema.name, {}), **config.ingest.column_map.get(feed, {})}
    mapping, notes = resolve_columns(schema, src.columns, cmap)
    src.notes.extend(notes)
    missing = [c for c in schema.required if c not in mapping]
    other = lookalike_hint(src.columns, schema.name)  # the wrong file for this option
    if missing:
        shown = ", ".join(src.columns[:12]) + (", ..." if len(src.columns) > 12 else "")
        raise InputError(src.name, f"missing required column (found: {shown}){other}", column=missing[0])
    no_measures = missing_measures(schema.name, mapping)
    if no_measures:
        raise InputError(src.name, f"{no_measures}{other or f'; map them in [ingest.column_map.{feed}]'}")
    if src.kind != "csv":
        check_types(src.name, src.frame, mapping, schema)
    return mapping


def _codes_frame(spark: SparkSession, cell_ids: pl.Series) -> DataFrame:
    """``_cid -> cell_code`` of the cells table (code = row index), for a broadcast join."""
    table = pa.table({"_cid": cell_ids.cast(pl.String).to_arrow(),
                      "cell_code": pa.array(range(len(cell_ids)), type=pa.int32())})
    if int(spark.version.split(".")[0]) >= 4:  # Arrow tables directly (pyspark >= 4.0)
        return spark.createDataFrame(table)
    return spark.createDataFrame(table.to_pylist(), "_cid string, cell_code int")  # pragma: no cover


def _judge(src: SparkSource, mapping: dict[str, str], conv: Converted, frame: DataFrame,
           extra: list[Any]) -> Judged:
    """Mark failing rows (a malformed line, or any check) and keep what the rejects need."""
    from pyspark.sql import functions as F

    checks = conv.checks + extra
    reasons = [c.reason() for c in checks]
    fails = Converted(frame, checks=checks).fails()
    if src.kind == "csv":
        reasons.insert(0, F.col("_malformed"))
        fails = F.col("_malformed").isNotNull() | fails
    reason = F.coalesce(*reasons) if reasons else F.lit(None).cast("string")
    source_cols = list(src.columns) if src.kind == "csv" else list(dict.fromkeys(mapping.values()))
    reject_cols = ["file", *source_cols] if src.multi_file else source_cols
    out = frame.withColumns({f"_k_{k}": v for k, v in conv.values.items()}).withColumn("_bad", fails)
    return Judged(src, mapping, out, reason, list(conv.values), reject_cols, source_cols)


def write_rejects(j: Judged, feed: str, rejects_dir: Path | None, private: list[str],
                  rejected: int, *, tally: Tally | None = None) -> RejectSink:
    """Bring the rejected rows to the driver in batches, in file and line order, and write them
    through the local reject sink (the same masking and formula-inert text)."""
    from pyspark.sql import functions as F

    sink = RejectSink(feed, rejects_dir, j.reject_columns, private)
    if rejected == 0:
        return sink
    src_cols = j.source_columns
    if j.source.kind == "csv":
        # a field the line has is text ("" when empty), one it lacks is missing (as locally)
        cols = [F.when(F.col("_fields") > i, F.coalesce(F.col(f"`{c}`"), F.lit("")))
                for i, c in enumerate(src_cols)]
    else:
        cols = [F.col(f"`{c}`").cast("string") for c in src_cols]
    bad = (j.frame.where(F.col("_bad"))
           .select("_file", "_line", j.reason.alias("_reason"), *cols)
           .orderBy("_file", "_line"))
    rows: list[Any] = []

    def flush() -> None:
        if not rows:
            return
        data: dict[str, list[Any]] = {"file": [r[0] for r in rows]}
        for i, c in enumerate(src_cols):
            data[c] = [r[3 + i] for r in rows]
        raw = pl.DataFrame({k: pl.Series(k, v, dtype=pl.String) for k, v in data.items()})
        lines = pl.Series([r[1] for r in rows], dtype=pl.Int64).fill_null(0).to_numpy()
        sink.add(lines, pl.Series("reason", [r[2] for r in rows], dtype=pl.String), raw)
        sink.flush()
        if tally is not None:  # per reason: rows and the first values (the feed's verdict)
            for r in rows:
                message, _, value = str(r[2]).partition(" '")
                tally.add(message, 1, [value[:-1]] if value else [])
        rows.clear()

    current = None
    for r in bad.toLocalIterator(prefetchPartitions=True):
        if r[0] != current or len(rows) >= _REJECT_BATCH:
            flush()  # one file's rows in line order, then the next file's
            current = r[0]
        rows.append(tuple(r))
    flush()
    if sink.count != rejected:  # pragma: no cover - the two jobs read the same rows
        raise AssertionError(f"{feed}: {sink.count} rejected rows written, {rejected} counted")
    return sink


def _report(ing: Any, feed: str, src: SparkSource, sink: RejectSink, *, read: int, rejected: int,
            t0: float, tally: Tally, config: Config) -> FeedReport:
    path = sink.close()
    # the local run's verdict (kqi run, not the library calls): a feed (nearly) all rejected
    # was read the wrong way
    err = feed_verdict(Path(src.name), feed, read, rejected, tally,
                       max_share=config.ingest.max_reject_share)
    if err is not None and getattr(ing, "verdicts", False):
        raise err
    report = FeedReport(feed=feed, path=src.name, encoding=src.encoding, sha256=src.sha256,
                        rows_read=read, rows_accepted=read - rejected, rows_rejected=rejected,
                        seconds=round(time.perf_counter() - t0, 3),
                        rejects_path=None if path is None else str(path),
                        notes=["engine: spark", *src.notes], reject_reasons=tally.top())
    if ing is not None:
        ing.reports[feed] = report
        if ing.rejects_dir is None:
            ing.rejects[feed] = sink.frame
    log.info("%s (spark): %d rows read, %d accepted, %d rejected (%.2fs)", feed, read,
             read - rejected, rejected, report.seconds)
    return report


# --------------------------------------------------------------------------------------------
# App tests -> per cell x service x day counts
# --------------------------------------------------------------------------------------------

@dataclass
class TestCounts:
    """What the tests job returns to the driver."""

    __test__ = False

    counts: pl.DataFrame          # cell_code, service_code, period (Date), tests, good_tests
    cell_ids: pl.Series           # cell_id by cell_code
    columns: frozenset[str]       # canonical columns the feed has
    path: Path
    report: FeedReport
    kind: str = "tests"


def judge_tests(spark: SparkSession, source: Any, config: Config,
                cell_ids: pl.Series | None) -> tuple[Judged, pl.Series | None]:
    """The app-tests feed validated on Spark, with ``day``, ``verdict`` and, given the cells
    table's ``cell_ids``, ``cell_code`` (rows of other cells rejected); without it every
    cell id is accepted (the codes are then given on the driver, from the counts)."""
    from pyspark.sql import functions as F

    src = open_source(spark, source, "app_tests", config.ingest.encoding)
    agg_map, _ = resolve_columns(APP_TESTS_AGG, src.columns,
                                 {**config.ingest.column_map.get("app_tests_agg", {}),
                                  **config.ingest.column_map.get("app_tests", {})})
    test_map, _ = resolve_columns(APP_TESTS, src.columns, config.ingest.column_map.get("app_tests", {}))
    if {"tests", "good_tests"} <= agg_map.keys() and "ts" not in test_map:
        raise InputError(src.name, "a pre-aggregated feed (tests, good_tests) is per cell and "
                                   "period already: run it with the local engine")
    mapping = _mapping(src, APP_TESTS, config, "app_tests")
    frame = src.frame
    dtype = {f.name: f.dataType for f in frame.schema.fields}[mapping["cell_id"]]
    frame = frame.withColumn("_cid", convert_string(CELL_ID, F.col(f"`{mapping['cell_id']}`"), dtype))
    extra = [Check(F.col("_cid").isNull(), "cell_id: missing value")]
    if cell_ids is not None:  # rows of other cells are rejected
        frame = frame.join(F.broadcast(_codes_frame(spark, cell_ids)), "_cid", "left")
        extra.append(Check(F.col("cell_code").isNull() & F.col("_cid").isNotNull(),
                           "cell_id: not in the cells table", F.col(f"`{mapping['cell_id']}`")))
    conv = convert(APP_TESTS, mapping, frame, skip=("cell_id",))
    conv.values["cell_id"] = F.col("_cid")
    if cell_ids is not None:
        conv.values["cell_code"] = F.col("cell_code")
    use_good = bool(config.kqi.use_source_good and "good" in mapping)
    conv.values["verdict"] = verdict(conv.values["service_code"], conv.values, config,
                                     use_good=use_good)
    conv.values["day"] = F.to_date(conv.values["ts"])
    return _judge(src, mapping, conv, conv.frame, extra), cell_ids


def count_tests(spark: SparkSession, source: Any, config: Config, *,
                cell_ids: pl.Series | None = None, ing: Any = None,
                rejects_dir: Path | None = None) -> TestCounts:
    """Validate the app tests on Spark and count tests and good tests per cell x service x day.

    Rejected rows are counted in the same aggregation (a key of -1) and, when there are any,
    written to ``rejects_dir/app_tests.csv``.
    """
    from pyspark.sql import functions as F

    t0 = time.perf_counter()
    j, ids = judge_tests(spark, source, config, cell_ids)
    ok = ~F.col("_bad")
    # one job: the accepted rows' counts and the rejected rows' number (service -1); the cell
    # is its code in the cells table, or (no table) its id, coded here from the sorted ids
    cell = F.col("_k_cell_code") if ids is not None else F.col("_k_cell_id")
    agg = j.frame.groupBy(
        F.when(ok, cell).alias("cell"),
        F.when(ok, F.col("_k_service_code")).otherwise(F.lit(-1)).cast("tinyint")
        .alias("service_code"),
        F.when(ok, F.col("_k_day")).alias("period"),
    ).agg(F.count(F.lit(1)).alias("tests"),
          F.sum(F.when(ok, F.col("_k_verdict"))).cast("long").alias("good_tests"))
    counts = to_polars(agg)
    bad = counts.filter(pl.col("service_code") < 0)
    rejected = int(bad["tests"].sum()) if bad.height else 0
    counts = counts.filter(pl.col("service_code") >= 0)
    if ids is None:
        ids = counts["cell"].cast(pl.String).unique().sort().alias("cell_id")
        code = pl.col("cell").cast(pl.String).replace_strict(ids, pl.int_range(ids.len(), eager=True))
        counts = counts.with_columns(code.alias("cell"))
    counts = counts.rename({"cell": "cell_code"}).with_columns(
        pl.col("cell_code").cast(pl.Int32), pl.col("service_code").cast(pl.Int8),
        pl.col("tests").cast(pl.Int64), pl.col("good_tests").cast(pl.Int64),
    ).sort("cell_code", "service_code", "period")
    read = int(counts["tests"].sum()) + rejected
    if read == 0:
        raise InputError(j.source.name, "no data rows")
    tally = Tally()
    sink = write_rejects(j, "app_tests", rejects_dir, [], rejected, tally=tally)
    report = _report(ing, "app_tests", j.source, sink, read=read, rejected=rejected, t0=t0,
                     tally=tally, config=config)
    return TestCounts(counts=counts, cell_ids=ids, columns=frozenset(j.mapping),
                      path=Path(j.source.name), report=report)


# --------------------------------------------------------------------------------------------
# Hourly KPIs -> per-cell evidence
# --------------------------------------------------------------------------------------------

@dataclass
class KpiResult:
    evidence: pl.DataFrame        # cell_id, kpi_hours and the KPI_AGGREGATES figures
    daily_users: pl.DataFrame     # cell_id, ts (the day), rrc_users_max (the day's maximum)
    report: FeedReport | None


def judge_kpis(spark: SparkSession, source: Any, config: Config,
               cell_ids: pl.Series | None) -> Judged:
    """The KPI feed validated on Spark as locally: ranges, the cells table, duplicate hours."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    src = open_source(spark, source, "cell_kpis", config.ingest.encoding)
    mapping = _mapping(src, CELL_KPIS, config, "cell_kpis")
    conv = convert(CELL_KPIS, mapping, src.frame)
    frame = conv.frame.withColumn("_cid", conv.values["cell_id"])
    extra: list[Check] = []
    if cell_ids is not None:
        frame = frame.join(F.broadcast(_codes_frame(spark, cell_ids)), "_cid", "left")
        extra.append(Check(F.col("cell_code").isNull() & F.col("_cid").isNotNull(),
                           "cell_id: not in the cells table", F.col("_cid")))
        conv.values["cell_code"] = F.col("cell_code")
    # a duplicate (cell_id, ts) among the rows passing so far: the first in file order is kept
    before = Converted(frame, checks=conv.checks + extra).fails()
    if src.kind == "csv":
        before = F.col("_malformed").isNotNull() | before
    frame = frame.withColumn("_pre_ok", ~before).withColumn("_ts", conv.values["ts"])
    w = Window.partitionBy("_pre_ok", "_cid", "_ts").orderBy("_file", "_line")
    frame = frame.withColumn("_rank", F.row_number().over(w))
    extra.append(Check(F.col("_pre_ok") & (F.col("_rank") > 1), "ts: duplicate cell_id and ts"))
    return _judge(src, mapping, conv, frame, extra)


def busy_flags(ok_rows: DataFrame, config: Config) -> DataFrame:
    """``busy`` and ``quiet`` per KPI row, as :func:`kqi.diagnosis.extract_evidence` picks them:
    each cell's ``busy_hour_count`` hours of the day with the highest mean traffic (or the
    configured ``busy_hours``) and its ``quiet_hour_count`` hours with the lowest; traffic is
    PRB, or RRC users for a cell without any PRB figure (:data:`kqi.diagnosis.BUSY_TRAFFIC`);
    ties to the earlier hour, hours without a traffic figure after the others; every row when
    the feed holds one time of day only (a daily feed)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from kqi.diagnosis import BUSY_TRAFFIC

    d = config.diagnosis
    rows = ok_rows.withColumn("_hour", F.hour("ts"))
    hours = rows.select(F.count_distinct("_hour").alias("n")).first()
    if hours is not None and hours["n"] == 1:
        log.warning("cell KPIs hold one time of day only (a daily feed?): busy-hour evidence "
                    "uses every row")
        return rows.withColumn("busy", F.lit(True)).withColumn("quiet", F.lit(True))
    prb, users = (F.col(c) for c in BUSY_TRAFFIC)
    has_prb = F.count(prb).over(Window.partitionBy("cell_id")) > 0
    traffic = F.when(has_prb, prb).otherwise(users)
    per_hour = (rows.withColumn("_traffic", traffic)
                .groupBy("cell_id", "_hour").agg(F.avg("_traffic").alias("_traffic")))
    t = F.col("_traffic")
    w_busy = Window.partitionBy("cell_id").orderBy(t.isNull(), t.desc(), "_hour")
    w_quiet = Window.partitionBy("cell_id").orderBy(t.isNull(), t.asc(), "_hour")
    ranked = per_hour.select(
        "cell_id", "_hour",
        (F.row_number().over(w_busy) <= d.busy_hour_count).alias("_top"),
        (F.row_number().over(w_quiet) <= d.quiet_hour_count).alias("quiet"))
    out = rows.join(ranked, ["cell_id", "_hour"], "left")
    busy = (F.col("_hour").isin(list(d.busy_hours)) if d.busy_hours
            else F.coalesce(F.col("_top"), F.lit(False)))
    return out.withColumn("busy", busy).withColumn("quiet", F.coalesce(F.col("quiet"), F.lit(False)))


def evidence_aggregates(busy_rows: DataFrame) -> DataFrame:
    """Per cell ``kpi_hours`` and :data:`kqi.diagnosis.KPI_AGGREGATES`, as Spark aggregates."""
    from pyspark.sql import functions as F

    from kqi.diagnosis import KPI_AGGREGATES

    aggs = []
    for a in KPI_AGGREGATES:
        c = F.col(a.source)
        if a.window != "all":
            c = F.when(F.col(a.window), c)
        if a.how == "mean":
            e = F.avg(c)
        elif a.how == "quantile":
            e = F.percentile(c.cast("double"), F.lit(a.q))
        elif a.how == "min":
            e = F.min(c)
        elif a.how == "sum":
            e = F.when(F.count(c) > 0, F.sum(c))
        else:  # pragma: no cover - KPI_AGGREGATES is fixed
            raise ValueError(a.how)
        aggs.append(e.alias(a.name))
    return busy_rows.groupBy("cell_id").agg(F.count(F.lit(1)).cast("long").alias("kpi_hours"), *aggs)


def kpi_evidence_job(spark: SparkSession, source: Any, config: Config, *,
                     cell_ids: pl.Series | None = None, ing: Any = None,
                     rejects_dir: Path | None = None) -> KpiResult:
    """Validate the hourly KPIs on Spark; per-cell evidence and per cell x day RRC maxima (the
    subscriber estimate's input) collected to the driver."""
    from pyspark.sql import functions as F

    t0 = time.perf_counter()
    j = judge_kpis(spark, source, config, cell_ids)
    ok_rows = j.accepted().cache()
    try:
        counted = j.frame.select(F.count(F.lit(1)).alias("n"),
                                 F.count(F.when(F.col("_bad"), 1)).alias("bad")).first()
        read, rejected = (int(counted["n"]), int(counted["bad"])) if counted is not None else (0, 0)
        if read == 0:
            raise InputError(j.source.name, "no data rows")
        evidence = to_polars(evidence_aggregates(busy_flags(ok_rows, config))).sort("cell_id")
        # the subscriber estimate's days are UTC days (kqi.complaints reads ts.dt.date())
        utc_day = F.date_from_unix_date(F.floor(F.unix_seconds("ts") / 86400).cast("int"))
        daily_users = to_polars(
            ok_rows.where(F.col("rrc_users_max").isNotNull())
            .groupBy("cell_id", utc_day.alias("day"))
            .agg(F.max("rrc_users_max").alias("rrc_users_max"))).sort("cell_id", "day")
        tally = Tally()
        sink = write_rejects(j, "cell_kpis", rejects_dir, [], rejected, tally=tally)
    finally:
        ok_rows.unpersist()
    report = _report(ing, "cell_kpis", j.source, sink, read=read, rejected=rejected, t0=t0,
                     tally=tally, config=config)
    evidence = evidence.with_columns(
        pl.col("kpi_hours").cast(pl.Int64),
        *[pl.col(c).cast(pl.Float64) for c in evidence.columns
          if c not in ("cell_id", "kpi_hours", "alarm_count")],
        pl.col("alarm_count").cast(pl.Int64))
    daily_users = daily_users.select(
        pl.col("cell_id").cast(pl.String),
        pl.col("day").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("ts"),
        pl.col("rrc_users_max").cast(pl.Float64))
    return KpiResult(evidence=evidence, daily_users=daily_users, report=report)


# --------------------------------------------------------------------------------------------
# Complaints per cell
# --------------------------------------------------------------------------------------------

def complaints_per_cell(df: DataFrame, config: Config) -> DataFrame:
    """Network complaints per cell and service from complaints that name their cell (the CRM
    resolved it): the category mapped by ``config.complaints.categories`` (lower-cased,
    stripped; unknown and ``""`` categories are not network complaints)."""
    from pyspark.sql import functions as F

    from ._validate import strip_text

    mapping, _ = resolve_columns(
        __import__("kqi.schema", fromlist=["COMPLAINTS"]).COMPLAINTS, df.columns,
        config.ingest.column_map.get("complaints", {}))
    for col in ("cell_id", "category"):
        if col not in mapping:
            raise InputError("<complaints DataFrame>", "missing column", column=col)
    cats = {k: v for k, v in config.complaints.categories.items() if v}
    lut = F.create_map(*[F.lit(x) for kv in cats.items() for x in kv])
    cell = convert_string(CELL_ID, F.col(f"`{mapping['cell_id']}`"),
                          {f.name: f.dataType for f in df.schema.fields}[mapping["cell_id"]])
    service = lut[F.lower(strip_text(F.col(f"`{mapping['category']}`")))]
    return (df.select(cell.alias("cell_id"), service.alias("service"))
            .where(F.col("cell_id").isNotNull() & F.col("service").isNotNull())
            .groupBy("cell_id", "service").agg(F.count(F.lit(1)).cast("long").alias("complaints")))
