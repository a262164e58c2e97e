"""Cause diagnosis of poor cells: KPI evidence, rule scores, signature clusters, poor-quality areas.

The stage reads the hourly cell KPIs with numba kernels (no per-cell Python) into one
evidence row per cell: busy-hour UL interference, PRB utilisation and RRC users, weak-RSRP and
CQI>=7 shares, TA p90 against the local inter-site distance, availability and alarms. Rules turn
each cause's margin over its configured threshold into a score; the strongest cause is primary,
the others that hold are secondary. hdbscan then groups the poor cells by their standardized
evidence (signature clusters, named by the cause their centroid shows) and by place (areas).
See ``docs/diagnosis.md`` for every rule, score and evidence text.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from kqi import rules
from kqi.causes import BY_NAME, FALLBACK, NETWORK_MEDIANS, REGISTRY, RULE_CAUSES
from kqi.config import Config, check_diagnosis
from kqi.frames import column_or_null, polars_schema, poor_services_agg, with_columns_or_null
from kqi.phrases import phrase as _p
from kqi.progress import add_rows
from kqi.schema import CAUSES, DIAGNOSIS
from kqi.zones import local_hours

log = logging.getLogger(__name__)

#: evidence columns per cell, in DIAGNOSIS order
EVIDENCE_COLUMNS: tuple[str, ...] = (
    "ul_interference_dbm", "ul_quiet_dbm", "prb_util_busy", "prb_util_quiet", "prb_util_p90", "rrc_users_busy", "rsrp_weak_ratio",
    "cqi_good_ratio", "ta_p90_m", "isd_m", "ta_isd_ratio", "availability_min", "availability_mean",
    "alarm_count",
)

#: evidence the signature clusters are built on (one per cause dimension, plus CQI and users)
SIGNATURE_FEATURES: tuple[str, ...] = (
    "ul_rise_db", "prb_util_busy", "rrc_users_busy", "rsrp_weak_ratio", "cqi_good_ratio",
    "ta_isd_ratio", "availability_min", "alarm_count",
)

#: the centroid figures of the clusters table: the busy-hour UL level, then the features
CLUSTER_PROFILE: tuple[str, ...] = ("ul_interference_dbm", *SIGNATURE_FEATURES)

_KPI_FLOATS: tuple[str, ...] = (
    "prb_util_dl", "rrc_users_max", "ul_interference_dbm", "rsrp_weak_ratio", "cqi_good_ratio",
    "ta_p90_m", "availability",
)
_KPI_INTS: tuple[str, ...] = ("alarm_count",)

#: words of the sentences built here (kqi.phrases: the workbook in Chinese shows the Chinese)
_ALSO = _p(" | also ", " | 另有")
_CLUSTER = _p("signature cluster ", "特征簇 ")
_IS_NAMED = _p(" cells) is named ", " 个小区) 命名为 ")
_NO_RULE = _p("; no rule holds here", "；此处无规则成立")
_RULES_FIND = _p("; the rules find ", "；规则判定为 ")
_SCORE = _p(" (score ", " (得分 ")
_NOT_FOUND = _p(", which the rules do not find here: ", "，但规则在此未判出该原因：")
_AS_SECONDARY = _p(", which the rules find here only as a secondary cause (score ", "，规则在此仅判为次要原因 (得分 ")
_AGAINST = _p(", against ", "，对比 ")
_NO_CAUSE = _p(" cells) shows no cause beyond thresholds at its centroid, while the rules find ", " 个小区) 的中心未显示超出门限的原因，而规则判定为 ")
_BORDERLINE = _p(" here: check whether that evidence is borderline", "：请检查该证据是否处于临界")
_ESTIMATED = _p(" | cell position estimated from drive-test samples (not surveyed)", " | 小区位置由路测样本估算(未实测)")
_NO_KPIS = _p("no KPI data for this cell", "该小区无KPI数据")
# the network's reference (summary.json's diagnosis.network.basis)
_FLOOR_Q = _p("floor: ", "底噪：")
_QUANTILE_OF = _p(" quantile of ", " 分位数，取自 ")
_QUIET_UL = _p(" non-poor cells' quiet-hour UL interference = ", " 个非质差小区的闲时上行干扰 = ")
_LOAD = _p(" dBm; load: ", " dBm；负荷：")
_PER_PRB = _p(" dB per PRB point (median of ", " dB/PRB百分点 (中位数，取自 ")
_QUIET_PRB = _p(" cells), from a quiet-hour PRB of ", " 个小区)，闲时PRB为 ")
_FLOOR = _p("floor ", "底噪 ")
_NO_PRB = _p(" dBm; no PRB figures, so no load rise is subtracted", " dBm；无PRB指标，未扣除负荷抬升")
_NO_FLOOR = _p("no UL interference figures: no network floor", "无上行干扰指标：无全网底噪")
# the proposals' basis
_QUIET_FLOOR = _p("this network's quiet UL floor ", "本网闲时上行底噪 ")
_HEALTHY_UL = _p(" dBm (as the rules use it); healthy cells' busy-hour UL interference: median ",
                 " dBm (规则所用)；健康小区忙时上行干扰：中位数 ")
_DBM_P95 = _p(" dBm (p95 ", " dBm (p95 ")
_FLOOR_PLUS = _p("); proposed = floor + ", ")；建议值 = 底噪 + ")
_DB = _p(" dB", " dB")
_CELLS_IN = _p(" cells in '", " 个小区属于'")
_CLUSTERS_P10 = _p("' clusters: p10 ", "'特征簇：p10 ")
_HEALTHY_P95 = _p("; healthy cells: p95 ", "；健康小区：p95 ")
_MIDPOINT = _p("; proposed = midpoint", "；建议值 = 中点")
_BOUNDARY = _p("; cluster boundary ", "；特征簇边界 ")


@dataclass(frozen=True)
class KpiAggregate:
    """One per-cell evidence figure from the hourly KPIs: ``how`` of ``source`` over the cell's
    busy hours (``busy``) or its whole window. Both engines build their aggregation from
    :data:`KPI_AGGREGATES` (numba kernels here, :func:`_kpi_aggregates`; Spark SQL in
    :mod:`kqi.spark`), so a figure is defined once."""

    name: str
    source: str
    how: str          # mean | quantile | min | sum (sum: null when the KPI is never reported)
    window: str       # busy | quiet (the cell's own hours) | all (the whole window)
    q: float = 0.5    # quantile (linear interpolation between the closest ranks)


#: the evidence figures per cell, from the hourly KPIs (the ISD figures are added locally)
KPI_AGGREGATES: tuple[KpiAggregate, ...] = (
    KpiAggregate("ul_interference_dbm", "ul_interference_dbm", "mean", "busy"),
    KpiAggregate("ul_quiet_dbm", "ul_interference_dbm", "mean", "quiet"),
    KpiAggregate("prb_util_quiet", "prb_util_dl", "mean", "quiet"),
    KpiAggregate("prb_util_busy", "prb_util_dl", "mean", "busy"),
    KpiAggregate("prb_util_p90", "prb_util_dl", "quantile", "busy", q=0.9),
    KpiAggregate("rrc_users_busy", "rrc_users_max", "mean", "busy"),
    KpiAggregate("rsrp_weak_ratio", "rsrp_weak_ratio", "mean", "all"),
    KpiAggregate("cqi_good_ratio", "cqi_good_ratio", "mean", "busy"),
    KpiAggregate("ta_p90_m", "ta_p90_m", "quantile", "all", q=0.5),
    KpiAggregate("availability_min", "availability", "min", "all"),
    KpiAggregate("availability_mean", "availability", "mean", "all"),
    KpiAggregate("alarm_count", "alarm_count", "sum", "all"),
)
#: a cell's traffic, for picking its busy and quiet hours: PRB utilisation, or RRC users for a
#: cell that reports no PRB figure at all
BUSY_TRAFFIC: tuple[str, str] = ("prb_util_dl", "rrc_users_max")


#: rows per block of :func:`_kpi_aggregates`: a block's columns (null as NaN) stay in cache
_BLOCK_ROWS = 1 << 16


def _kpi_aggregates(k: pl.DataFrame, n_codes: int, busy_at: np.ndarray, quiet_at: np.ndarray,
                    *, block_rows: int = _BLOCK_ROWS) -> tuple[np.ndarray, dict[str, pl.Series]]:
    """Per cell code: its KPI rows and each :data:`KPI_AGGREGATES` figure (null where the cell
    has no value in the figure's window; Int64 for a sum of an Int64 column, else Float64),
    over ``k``'s rows: their ``code`` (0 <= code < n_codes), ``hour`` and Float64 or Int64
    source columns (null or NaN: missing). A row is in the busy (quiet) window when
    ``busy_at`` (``quiet_at``, booleans per ``code * 24 + hour``) holds.

    :func:`kqi._diag_kernels._kpi_accumulate` reads the rows a block at a time (each block's
    columns as arrays with null as NaN, no column copied whole; compensated sums: the same
    figures whatever the order of the rows), :func:`kqi._diag_kernels._kpi_quantiles` then
    picks the quantiles from the values it gathered."""
    from kqi import _diag_kernels as dk
    from kqi._numba import read_only

    _check_codes_and_hours(k, n_codes)
    for flags in (busy_at, quiet_at):
        if flags.dtype != np.bool_ or flags.shape != (n_codes * 24,):
            raise ValueError("busy and quiet hours must be booleans, one per code and hour")
    sources = list(dict.fromkeys(a.source for a in KPI_AGGREGATES))
    for name in sources:
        if k.schema.get(name) not in (pl.Float64, pl.Int64):
            raise ValueError(f"KPI column {name!r} must be Float64 or Int64")
    for a in KPI_AGGREGATES:  # a rank outside a cell's values would be read past them
        if a.how == "quantile" and not 0.0 <= a.q <= 1.0:
            raise ValueError(f"{a.name}: quantile {a.q} outside 0..1")
    n = k.height
    hows = {"mean": dk.HOW_MEAN, "quantile": dk.HOW_QUANTILE, "min": dk.HOW_MIN, "sum": dk.HOW_SUM}
    windows = {"all": dk.WINDOW_ALL, "busy": dk.WINDOW_BUSY, "quiet": dk.WINDOW_QUIET}
    quantiles = [j for j, a in enumerate(KPI_AGGREGATES) if a.how == "quantile"]
    spec = [read_only(np.array(v, dtype=dt)) for v, dt in (
        ([sources.index(a.source) for a in KPI_AGGREGATES], np.int64),
        ([hows[a.how] for a in KPI_AGGREGATES], np.int64),
        ([windows[a.window] for a in KPI_AGGREGATES], np.int64),
        ([quantiles.index(j) if j in quantiles else -1 for j in range(len(KPI_AGGREGATES))], np.int64),
        ([a.q for a in KPI_AGGREGATES], np.float64))]
    source, how, window, slot, q = spec
    rows = np.zeros(n_codes, dtype=np.int64)  # per code, for where its quantile values go
    for _, block in _blocks(k, block_rows):
        rows += np.bincount(_int64(block["code"]), minlength=n_codes)
    start = np.zeros(n_codes, dtype=np.int64)
    np.cumsum(rows[:-1], out=start[1:])
    count = np.zeros((n_codes, len(KPI_AGGREGATES)), dtype=np.int64)
    acc = np.zeros((n_codes, len(KPI_AGGREGATES)), dtype=np.float64)
    comp = np.zeros_like(acc)
    buf = np.empty((len(quantiles), n), dtype=np.float64)  # room for every row of each code
    busy_at, quiet_at, start = (read_only(a) for a in (busy_at, quiet_at, start))
    with _CodeWorkers(n_codes) as workers:
        for _, block in _blocks(k, block_rows):
            add_rows(block.height)  # the console's progress of the stage (kqi.progress)
            cols = tuple(_float64(block[c]) for c in sources)
            workers.run(dk._kpi_accumulate, _int64(block["code"]), _int64(block["hour"]),
                        busy_at, quiet_at, cols, source, how, window, slot, start, count, acc,
                        comp, buf)
        workers.run(dk._kpi_quantiles, how, slot, q, start, count, buf, acc)
    out: dict[str, pl.Series] = {}
    total = acc + comp  # the compensation stays finite: an infinite sum is kept as it is
    with np.errstate(invalid="ignore", divide="ignore"):
        for j, a in enumerate(KPI_AGGREGATES):
            has = count[:, j] > 0
            if k.schema[a.source] == pl.Int64:  # a count: summed exactly (see _int_sum)
                out[a.name] = _int_sum(k, a, acc[:, j], comp[:, j], has)
                continue
            if a.how == "mean":
                fig = total[:, j] / np.maximum(count[:, j], 1)
            elif a.how == "sum":
                fig = total[:, j]
            else:  # min, quantile
                fig = acc[:, j]
            # null where the cell has no value; NaN stays NaN (+inf and -inf in one mean)
            out[a.name] = _with_nulls(pl.Series(a.name, fig, dtype=pl.Float64), has)
    return rows, out


def _int_sum(k: pl.DataFrame, a: KpiAggregate, acc: np.ndarray, comp: np.ndarray,
             has: np.ndarray) -> pl.Series:
    """The figure ``a`` (a sum) of an Int64 column, exactly: the compensated float sum's two
    parts are whole numbers, each exact, while every value is below 2**53 in magnitude; a
    column with a larger value (no alarm count is) is summed by polars instead."""
    if a.how != "sum" or a.window != "all":  # pragma: no cover - KPI_AGGREGATES is fixed
        raise ValueError(f"{a.name}: an Int64 column is only summed, over the whole window")
    big = k[a.source].abs().max()
    if big is not None and int(big) >= 2**53:  # type: ignore[arg-type]
        exact = k.group_by("code").agg(pl.col(a.source).sum())
        ints = np.zeros(has.size, dtype=np.int64)
        ints[exact["code"].to_numpy()] = exact[a.source].to_numpy()
    else:
        ints = acc.astype(np.int64) + comp.astype(np.int64)
    return _with_nulls(pl.Series(a.name, ints, dtype=pl.Int64), has)


def _with_nulls(values: pl.Series, has: np.ndarray) -> pl.Series:
    """``values`` with null where ``has`` is False (not pyarrow's masked ``pa.array``: it
    imports pandas when pandas is installed, which a run's own process leaves to the helper)."""
    return values.scatter(np.flatnonzero(~has), None) if not has.all() else values


#: at most this many threads share a kernel's codes (each reads every row of a block)
_MAX_CODE_WORKERS = 8


class _CodeWorkers:
    """Runs a per-code kernel on worker threads, each given one contiguous range of the codes
    ``0..n_codes-1`` as its first two arguments (``codes_from``, ``codes_to``): disjoint parts
    of the outputs, each code's rows in row order, so the figures are the same on any number
    of threads. As many threads as polars may use (``POLARS_MAX_THREADS``; a busy machine is
    given fewer), at most :data:`_MAX_CODE_WORKERS`; one runs the kernel in the caller's
    thread. The kernels release the interpreter lock (``nogil``)."""

    def __init__(self, n_codes: int) -> None:
        n = max(1, min(pl.thread_pool_size(), _MAX_CODE_WORKERS, n_codes))
        self._ranges = [(n_codes * t // n, n_codes * (t + 1) // n) for t in range(n)]
        self._pool = ThreadPoolExecutor(n - 1, thread_name_prefix="kqi-evidence") if n > 1 else None

    def run(self, kernel: Callable[..., None], *args: Any) -> None:
        """``kernel(codes_from, codes_to, *args)`` for every range; returns when all have."""
        first, *rest = self._ranges
        futures = [self._pool.submit(kernel, lo, hi, *args) for lo, hi in rest] if self._pool else []
        try:
            kernel(*first, *args)
        finally:
            wait(futures)  # every worker done before any error is raised (the first one's)
        for f in futures:
            f.result()

    def __enter__(self) -> _CodeWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _blocks(k: pl.DataFrame, block_rows: int) -> Iterator[tuple[int, pl.DataFrame]]:
    """``k`` a block of ``block_rows`` rows at a time (zero-copy slices), each with the row
    it starts at."""
    for lo in range(0, k.height, block_rows):
        yield lo, k.slice(lo, block_rows)


def _int64(s: pl.Series) -> np.ndarray:
    """An Int64 column without nulls as a read-only int64 array (a view where polars allows)."""
    from kqi._numba import read_only

    return read_only(np.ascontiguousarray(s.to_numpy(), dtype=np.int64))


def _float64(s: pl.Series) -> np.ndarray:
    """A numeric column as a read-only float64 array, null as NaN (a copy where it has nulls)."""
    from kqi._numba import read_only

    return read_only(np.ascontiguousarray(s.cast(pl.Float64).to_numpy(), dtype=np.float64))


def _check_codes_and_hours(k: pl.DataFrame, n_codes: int | None = None) -> None:
    """Refuse what a kernel indexing by ``code * 24 + hour`` unchecked would misread: a missing
    code or hour (NaN as an integer), a negative code or one not below ``n_codes``, an hour
    outside 0..23."""
    if not k.height:
        return
    for c in ("code", "hour"):
        if k.schema.get(c) != pl.Int64:
            raise ValueError(f"{c} must be Int64")
    if k["code"].null_count() or k["hour"].null_count():
        raise ValueError("cell codes and hours must not be missing")
    if int(k["code"].min()) < 0:  # type: ignore[arg-type]
        raise ValueError("cell codes must not be negative")
    if n_codes is not None and int(k["code"].max()) >= n_codes:  # type: ignore[arg-type]
        raise ValueError(f"cell codes must lie in 0..{n_codes - 1}")
    if not 0 <= int(k["hour"].min()) <= int(k["hour"].max()) < 24:  # type: ignore[arg-type]
        raise ValueError("hours must lie in 0..23")


_DIAG_SCHEMA: dict[str, pl.DataType] = dict(polars_schema(DIAGNOSIS))


@dataclass
class Diagnosis:
    """Result of :func:`diagnose`.

    Attributes
    ----------
    table : pl.DataFrame
        One row per poor cell (poor in any service), ``kqi.schema.DIAGNOSIS`` columns, sorted by
        ``cell_id``.
    evidence : pl.DataFrame
        Evidence for every cell with KPIs: ``cell_id``, ``kpi_hours`` and the evidence columns.
    clusters : pl.DataFrame
        ``cluster_id, name, size, agreement`` and the centroid (median) of each signature feature.
    areas : pl.DataFrame
        ``area_id, n_cells, cell_ids`` (";"-joined), ``lat, lon`` (centroid), ``dominant_cause``.
    proposals : dict
        Network-calibrated thresholds proposed from the data (never applied automatically).
    network : dict
        The network's reference figures (:func:`network_relative`): UL floor, load slope, ...
    """

    table: pl.DataFrame
    evidence: pl.DataFrame
    clusters: pl.DataFrame
    areas: pl.DataFrame
    proposals: dict[str, dict[str, Any]] = field(default_factory=dict)
    network: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Figures for ``summary.json``: cause counts, clusters, areas and proposals."""
        counts = dict.fromkeys(CAUSES, 0)
        for cause, n in self.table.group_by("primary_cause").len().iter_rows():
            counts[str(cause)] = int(n)
        secondary = dict.fromkeys(RULE_CAUSES, 0)
        for cause in RULE_CAUSES:
            secondary[cause] = int(
                self.table["secondary_causes"].str.split(";").list.contains(cause).sum()
            )
        return {
            "poor_cells": self.table.height,
            "cause_counts": counts,
            "secondary_counts": secondary,
            "review": int(self.table["review"].sum()) if self.table.height else 0,
            "clusters": [_json_safe(r) for r in self.clusters.to_dicts()],
            "areas": self.areas.height,
            "cells_in_areas": int(self.areas["n_cells"].sum()) if self.areas.height else 0,
            "proposals": self.proposals,
            "network": self.network,
        }


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


# --------------------------------------------------------------------------------------------
# Evidence
# --------------------------------------------------------------------------------------------


def extract_evidence(kpis: pl.DataFrame, cells: pl.DataFrame, config: Config | None = None,
                     isd: pl.DataFrame | None = None) -> pl.DataFrame:
    """Summarize hourly KPIs into one evidence row per cell.

    Busy hours are ``config.diagnosis.busy_hours`` when set, otherwise each cell's
    ``busy_hour_count`` hours of the day with the highest mean PRB utilisation (RRC users where a
    cell reports no PRB). Busy-hour figures: UL interference (mean), PRB utilisation (mean, p90),
    RRC users (mean of the hourly maxima), CQI>=7 share (mean). Whole-window figures: weak-RSRP
    share (mean), TA p90 (median of the hourly p90), availability (min, mean), alarms (sum).

    Parameters
    ----------
    kpis : pl.DataFrame
        ``kqi.schema.CELL_KPIS`` columns (``ts`` and ``cell_id`` required; absent KPI columns are
        treated as missing).
    cells : pl.DataFrame
        ``kqi.schema.CELLS`` columns; used for the inter-site distance when ``isd`` is omitted.
    config : Config, optional
    isd : pl.DataFrame, optional
        ``cell_id, isd_m`` (from :func:`kqi.geo.site_isd`); computed from ``cells`` if omitted.

    Returns
    -------
    pl.DataFrame
        ``cell_id, kpi_hours`` and :data:`EVIDENCE_COLUMNS`, one row per cell with KPI rows,
        sorted by ``cell_id``.
    """
    cfg = config or Config()
    d = cfg.diagnosis
    check_diagnosis(d)
    for col in ("ts", "cell_id"):
        if col not in kpis.columns:
            raise ValueError(f"kpis has no '{col}' column")
    # local hours: a configured busy window (19-22) means the operator's clock, not UTC
    hour = pl.col("ts").dt.hour()
    ts_type = kpis.schema["ts"]
    if isinstance(ts_type, pl.Datetime) and ts_type.time_zone is not None:
        hour = pl.lit(local_hours(kpis.get_column("ts"), cfg.ingest.timezone))  # kqi/zones.py
    # dense integer codes: grouping and gathering by int is several times faster than by string
    code = (pl.col("cell_code").cast(pl.Int64) if "cell_code" in kpis.columns
            else pl.col("cell_id").cast(pl.String).rank("dense").cast(pl.Int64) - 1)
    k = kpis.select(
        code.alias("code"),
        pl.col("cell_id").cast(pl.String),
        hour.cast(pl.Int64).alias("hour"),
        *[column_or_null(kpis.columns, c, pl.Float64) for c in _KPI_FLOATS],
        *[column_or_null(kpis.columns, c, pl.Int64) for c in _KPI_INTS],
    )
    traffic = _hour_traffic(k)   # once for both lookups
    n_codes = traffic.first_row.size
    if k.height and int(np.count_nonzero(traffic.rows.any(axis=0))) == 1:
        # a daily feed (the contract allows one): every row sits at the same hour, so there are
        # no busy hours to pick; the daily figures are the evidence, stated as such in the log
        log.warning("cell KPIs hold one time of day only (a daily feed?): busy-hour evidence "
                    "uses every row")
        busy_at = np.ones(n_codes * 24, dtype=bool)
        quiet_at = busy_at
    else:
        quiet_at = _busy_lookup(traffic, d.quiet_hour_count, busiest=False)
        if d.busy_hours:
            busy_at = np.tile(np.isin(np.arange(24), list(d.busy_hours)), n_codes)
        else:
            busy_at = _busy_lookup(traffic, d.busy_hour_count)
    rows, figures = _kpi_aggregates(k, n_codes, busy_at, quiet_at)
    present = np.flatnonzero(rows)  # codes without a KPI row (a cell_code of the cells table)
    ev = pl.DataFrame([
        # each code's cell_id from its first row
        k["cell_id"].gather(traffic.first_row[present]),
        pl.Series("kpi_hours", rows[present], dtype=pl.Int64),
        *[figures[a.name].gather(present) for a in KPI_AGGREGATES],
    ])
    return with_isd(ev, cells, cfg, isd)


def with_isd(ev: pl.DataFrame, cells: pl.DataFrame, config: Config | None = None,
             isd: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per-cell KPI aggregates (:data:`KPI_AGGREGATES`, from either engine) plus the local
    inter-site distance and TA/ISD: the evidence table, sorted by ``cell_id``."""
    cfg = config or Config()
    d = cfg.diagnosis
    if isd is None:
        from kqi.geo import site_isd

        isd = site_isd(cells, cfg)
    isd_col = isd.select(
        pl.col("cell_id").cast(pl.String),
        pl.col("isd_m").cast(pl.Float64).fill_nan(None),
    ).unique("cell_id", keep="first")
    ev = ev.join(isd_col, on="cell_id", how="left").with_columns(
        # co-sited or very dense sites: an ISD of a few metres would make every TA "overshooting"
        pl.when(pl.col("isd_m").is_not_null())
        .then(pl.max_horizontal(pl.col("isd_m"), pl.lit(d.isd_floor_m))).alias("isd_m"),
    ).with_columns((pl.col("ta_p90_m") / pl.col("isd_m")).alias("ta_isd_ratio"))
    return ev.select("cell_id", "kpi_hours", *EVIDENCE_COLUMNS).sort("cell_id")


class HourTraffic(NamedTuple):
    """Per cell code x hour of the day (``n_codes x 24``): the rows, the rows with a traffic
    figure and their mean traffic; per code the index of its first row (-1 for none)."""

    rows: np.ndarray
    n_valid: np.ndarray
    mean: np.ndarray
    first_row: np.ndarray


def _hour_traffic(k: pl.DataFrame, *, block_rows: int = _BLOCK_ROWS) -> HourTraffic:
    """Each cell code's traffic per hour of the day (see :func:`_busy_lookup`), and its first
    row.

    One measure per cell: PRB, or RRC users for a cell that reports no PRB at all (mixing the
    two row by row would let an hour with a missing PRB figure rank by its user count). The
    counts and sums are :func:`kqi._diag_kernels._hour_traffic_block` over the rows, a block at
    a time (compensated sums: the same busy hours whatever the order of the rows)."""
    from kqi._diag_kernels import _hour_traffic_block

    n_codes = int(k["code"].max() or 0) + 1 if k.height else 0  # type: ignore[arg-type]
    # the kernel indexes its outputs by code and hour, unchecked: a missing one (NaN as an
    # integer) or one out of range would write outside them
    _check_codes_and_hours(k)
    size = n_codes * 24
    rows, n_prb, n_users = (np.zeros(size, dtype=np.int64) for _ in range(3))
    sum_prb, sum_users = np.zeros(size, dtype=np.float64), np.zeros(size, dtype=np.float64)
    comp = np.zeros((2, size), dtype=np.float64)  # the sums' compensations
    first_row = np.full(n_codes, -1, dtype=np.int64)
    with _CodeWorkers(n_codes) as workers:
        for lo, block in _blocks(k, block_rows):
            workers.run(_hour_traffic_block, _int64(block["code"]), _int64(block["hour"]),
                        *(_float64(block[c]) for c in BUSY_TRAFFIC), lo, rows, n_prb, sum_prb,
                        n_users, sum_users, comp, first_row)
    sum_prb, sum_users = sum_prb + comp[0], sum_users + comp[1]
    shape = (n_codes, 24)
    has_prb = n_prb.reshape(shape).any(axis=1, keepdims=True)
    n_valid = np.where(has_prb, n_prb.reshape(shape), n_users.reshape(shape))
    total = np.where(has_prb, sum_prb.reshape(shape), sum_users.reshape(shape))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n_valid
    return HourTraffic(rows.reshape(shape), n_valid, mean, first_row)


def _busy_lookup(traffic: HourTraffic, count: int,
                 busiest: bool = True) -> np.ndarray:
    """Boolean per ``code * 24 + hour``: the hour is one of the cell's ``count`` busiest (or,
    with ``busiest=False``, quietest), from its :func:`_hour_traffic`.

    Traffic is the mean PRB utilisation of that hour of the day over the window (RRC users
    for a cell without any PRB figure); ties go to the earlier hour, hours without traffic
    figures come last.
    """
    rows, n_valid, mean = traffic.rows, traffic.n_valid, traffic.mean
    n_codes = rows.shape[0]
    # sort key per hour: busiest first; hours with rows but no traffic figure next; absent last
    order_key = np.where(n_valid > 0, -mean if busiest else mean,
                         np.where(rows > 0, np.finfo(np.float64).max, np.inf))
    top = np.argsort(order_key, axis=1, kind="stable")[:, :count]  # stable: ties -> earlier hour
    lookup = np.zeros((n_codes, 24), dtype=bool)
    np.put_along_axis(lookup, top, True, axis=1)
    return lookup.ravel()


# --------------------------------------------------------------------------------------------
# The network's own reference: the quiet UL floor, the noise rise load brings, typical figures
# --------------------------------------------------------------------------------------------

#: columns :func:`network_relative` adds (the per-cell ones; ``net_<column>`` besides)
NETWORK_COLUMNS: tuple[str, ...] = ("ul_floor_dbm", "ul_over_floor_db", "ul_load_rise_db",
                                    "ul_rise_db")
#: the KPI figure each derived evidence figure comes from (what a feed lacking it lacks)
DERIVED_FROM: dict[str, str] = {
    **dict.fromkeys(NETWORK_COLUMNS, "ul_interference_dbm"),
    **{f"net_{c}": c for c in NETWORK_MEDIANS},
}


def network_relative(evidence: pl.DataFrame, poor_ids: pl.Series | list[str] | None = None,
                     config: Config | None = None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Add the figures that state each cell's evidence relative to its network.

    The reference is the cells that are not poor (``poor_ids``; every cell when none is given
    or none remains), so the poor cells, where the interferers are, cannot drag it:

    - **floor** (``ul_floor_dbm``): the ``floor_quantile`` (median) of the reference cells'
      quiet-hour UL interference (``ul_quiet_dbm``; none without quiet-hour figures: the
      rules are then the absolute ones alone);
    - **load slope** (dB per PRB point): the median over the reference cells whose busy and
      quiet PRB utilisation differ by at least ``load_slope_min_prb`` of (busy UL - quiet UL) /
      (busy PRB - quiet PRB), at least 0: how much noise rise load brings on this network;
    - per cell, ``ul_load_rise_db`` = slope x (busy PRB - the reference's median quiet PRB),
      at least 0 (a cell without PRB figures is taken at the reference's median busy PRB);
      ``ul_over_floor_db`` = busy-hour UL - floor; ``ul_rise_db`` = ``ul_over_floor_db`` -
      ``ul_load_rise_db``, the rise that the cell's load does not explain;
    - ``net_<column>``: the reference's median of each column a cause's text states
      (:data:`kqi.causes.NETWORK_MEDIANS`).

    Returns
    -------
    (pl.DataFrame, dict)
        ``evidence`` with those columns, and the baseline (``floor_dbm``, ``load_db_per_prb``,
        ``quiet_prb``, ``reference_cells``, ``slope_cells``, ``medians``, ``basis``) for
        ``summary.json``.
    """
    d = (config or Config()).diagnosis
    ev = with_columns_or_null(evidence, dict.fromkeys(
        ("ul_interference_dbm", "ul_quiet_dbm", "prb_util_busy", "prb_util_quiet",
         *NETWORK_MEDIANS), pl.Float64))
    ref = ev
    if poor_ids is not None:
        ids = pl.Series(poor_ids, dtype=pl.String) if isinstance(poor_ids, list) else poor_ids
        healthy = ev.filter(~pl.col("cell_id").is_in(ids.cast(pl.String).implode()))
        if healthy.height:
            ref = healthy
    col = pl.col
    quiet_ul = ref["ul_quiet_dbm"]
    floor = _q(quiet_ul, d.floor_quantile)
    quiet_prb = _q(ref["prb_util_quiet"], 0.5)
    busy_prb = _q(ref["prb_util_busy"], 0.5)
    spread = ref.filter((col("prb_util_busy") - col("prb_util_quiet")) >= d.load_slope_min_prb)
    slopes = spread.select((col("ul_interference_dbm") - col("ul_quiet_dbm"))
                            / (col("prb_util_busy") - col("prb_util_quiet"))).to_series()
    slope_med = _q(slopes, 0.5)
    slope = max(0.0, slope_med) if slope_med is not None else 0.0
    n_slope = int(slopes.drop_nulls().len())
    medians = {c: _q(ref[c], 0.5) for c in NETWORK_MEDIANS}
    f64 = pl.Float64
    load = (pl.lit(slope) * (pl.coalesce(col("prb_util_busy"), pl.lit(busy_prb, dtype=f64))
                             - pl.lit(quiet_prb, dtype=f64))).clip(lower_bound=0.0)
    if quiet_prb is None:
        load = pl.lit(0.0)
    out = ev.with_columns(
        pl.lit(floor, dtype=f64).alias("ul_floor_dbm"),
        (col("ul_interference_dbm") - pl.lit(floor, dtype=f64)).alias("ul_over_floor_db"),
        pl.when(pl.lit(floor, dtype=f64).is_not_null()).then(load).alias("ul_load_rise_db"),
        *[pl.lit(v, dtype=f64).alias(f"net_{c}") for c, v in medians.items()],
    ).with_columns((col("ul_over_floor_db") - col("ul_load_rise_db")).alias("ul_rise_db"))
    basis = (
        f"{_FLOOR_Q}{d.floor_quantile:g}{_QUANTILE_OF}{quiet_ul.drop_nulls().len()}{_QUIET_UL}"
        f"{floor:.1f}{_LOAD}{slope:.3f}{_PER_PRB}{n_slope}{_QUIET_PRB}{quiet_prb:.1f}%"
        if floor is not None and quiet_prb is not None else
        (f"{_FLOOR}{floor:.1f}{_NO_PRB}" if floor is not None else _NO_FLOOR))
    baseline = {
        "floor_dbm": None if floor is None else round(floor, 2),
        "load_db_per_prb": round(slope, 4),
        "quiet_prb": None if quiet_prb is None else round(quiet_prb, 2),
        "reference_cells": ref.height,
        "slope_cells": n_slope,
        "medians": {c: (None if v is None else round(v, 4)) for c, v in medians.items()},
        "basis": basis,
    }
    return out, baseline


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


def score_causes(evidence: pl.DataFrame, config: Config | None = None) -> pl.DataFrame:
    """Score each rule cause from its registry record (:mod:`kqi.causes`, built by
    :mod:`kqi.rules`).

    A cause *holds* when any of its tests holds (every condition of the test: strictly ``>``
    for "above", ``<`` for "below"; alarms count from ``alarm_count`` up). Its score is the
    best holding test's margin in units of the cause's scale (``interference_scale_db`` etc.),
    plus ``support_bonus`` when supporting evidence also holds (low CQI for interference, many
    RRC users for high load). Missing evidence never makes a cause hold.

    Parameters
    ----------
    evidence : pl.DataFrame
        Evidence columns (as from :func:`extract_evidence`); absent columns count as missing.
    config : Config, optional

    Returns
    -------
    pl.DataFrame
        ``evidence`` plus ``s_<cause>`` (Float64, null where the cause does not hold) for each of
        :data:`RULE_CAUSES`.
    """
    d = (config or Config()).diagnosis
    check_diagnosis(d)
    needed: dict[str, pl.DataType | type[pl.DataType]] = dict.fromkeys(
        (*EVIDENCE_COLUMNS, *(col for c in REGISTRY for col in c.columns)), pl.Float64)
    ev = with_columns_or_null(evidence, needed)
    return ev.with_columns(
        rules.cause_score(BY_NAME[c], d).alias(f"s_{c}") for c in RULE_CAUSES)


def classify(scored: pl.DataFrame, config: Config | None = None) -> pl.DataFrame:
    """Primary cause, secondary causes, score and evidence text from :func:`score_causes` output.

    The primary cause is the holding cause with the highest score (ties go to the earlier cause
    in ``kqi.schema.CAUSES``); the other holding causes are secondary, strongest first;
    ``unknown`` when none holds.

    Returns
    -------
    pl.DataFrame
        ``scored`` plus ``primary_cause``, ``secondary_causes`` (";"-joined), ``cause_score``
        (0 for unknown) and ``evidence``.
    """
    d = (config or Config()).diagnosis
    n_c = len(RULE_CAUSES)
    s = scored.select([f"s_{c}" for c in RULE_CAUSES]).to_numpy().astype(np.float64)
    s = s.reshape(scored.height, n_c)
    holds = np.isfinite(s)
    # stable sort on -score: ties keep CAUSES order; causes that do not hold sort last
    key = np.where(holds, -s, np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    ranked_holds = np.take_along_axis(holds, order, axis=1)
    names = np.asarray(RULE_CAUSES, dtype=object)
    rank_cols = {}
    for r in range(n_c):
        rank_cols[f"_r{r}"] = pl.Series(
            [str(names[o]) if h else None for h, o in zip(ranked_holds[:, r], order[:, r], strict=True)],
            dtype=pl.String)
    best = np.where(holds.any(axis=1), np.nanmax(np.where(holds, s, -np.inf), axis=1), 0.0)
    out = scored.with_columns(
        pl.Series("cause_score", best, dtype=pl.Float64), *[v.alias(k) for k, v in rank_cols.items()]
    )
    texts = {c: rules.text_expr(BY_NAME[c], d) for c in RULE_CAUSES}

    def text_of(rank_col: str) -> pl.Expr:
        expr: Any = pl.when(pl.lit(False)).then(pl.lit(None, dtype=pl.String))
        for cause in RULE_CAUSES:
            expr = expr.when(pl.col(rank_col) == cause).then(texts[cause])
        return expr.otherwise(pl.lit(None, dtype=pl.String))

    col = pl.col
    unknown_text = rules.text_expr(BY_NAME[FALLBACK], d)
    secondary_texts = [
        pl.when(col(f"_r{r}").is_not_null()).then(
            pl.concat_str(pl.lit(_ALSO), col(f"_r{r}"), pl.lit(": "), text_of(f"_r{r}")))
        .otherwise(pl.lit(""))
        for r in range(1, n_c)
    ]
    out = out.with_columns(
        col("_r0").fill_null(FALLBACK).alias("primary_cause"),
        pl.concat_str([col(f"_r{r}") for r in range(1, n_c)], separator=";", ignore_nulls=True)
        .alias("secondary_causes"),
        pl.when(col("_r0").is_null()).then(unknown_text)
        .otherwise(pl.concat_str(text_of("_r0"), *secondary_texts)).alias("evidence"),
    )
    return out.drop([f"_r{r}" for r in range(n_c)])


# --------------------------------------------------------------------------------------------
# Clusters, areas, proposals
# --------------------------------------------------------------------------------------------


def _feature_matrix(ev: pl.DataFrame) -> np.ndarray:
    """Signature features as float64 with NaN for missing; alarms log-scaled (heavy-tailed)."""
    x = ev.select(
        [pl.col(c).cast(pl.Float64) for c in SIGNATURE_FEATURES]
    ).fill_null(float("nan")).to_numpy().astype(np.float64)
    x = x.reshape(ev.height, len(SIGNATURE_FEATURES))
    j = SIGNATURE_FEATURES.index("alarm_count")
    x[:, j] = np.log1p(np.clip(x[:, j], 0.0, None))
    return x


def _signatures(poor: pl.DataFrame, reference: pl.DataFrame,
                cfg: Config) -> tuple[np.ndarray, pl.DataFrame]:
    """Cluster poor cells on standardized evidence; name each cluster by its centroid's cause."""
    from kqi.clustering.signatures import cluster_profiles, robust_standardize, signature_clusters

    if poor.height == 0:
        labels = np.empty(0, dtype=np.int32)
    else:
        z = robust_standardize(_feature_matrix(poor), _feature_matrix(reference))
        labels = signature_clusters(z, min_cluster_size=cfg.diagnosis.min_cluster_size,
                                    min_samples=cfg.diagnosis.signature_min_samples)
    # the centroid (median) of every figure a rule reads, so the name follows the same rules
    naming = [c for c in dict.fromkeys((*CLUSTER_PROFILE,
                                        *(x for r in REGISTRY for x in r.columns)))
              if c in poor.columns]
    raw = poor.select([pl.col(c).cast(pl.Float64) for c in naming]).fill_null(
        float("nan")).to_numpy().reshape(poor.height, len(naming))
    prof = cluster_profiles(raw, labels)
    full = pl.DataFrame(
        {c: prof[:, j] for j, c in enumerate(naming)}, schema=dict.fromkeys(naming, pl.Float64),
    ).with_columns(pl.all().fill_nan(None))
    centroid = full.select(CLUSTER_PROFILE)
    named = classify(score_causes(full, cfg), cfg)
    k = prof.shape[0]
    sizes = np.bincount(labels[labels >= 0], minlength=k) if k else np.zeros(0, dtype=np.int64)
    clusters = pl.DataFrame({
        "cluster_id": pl.Series(np.arange(k, dtype=np.int32)),
        "name": named["primary_cause"],
        "size": pl.Series(sizes.astype(np.int64)),
    }, schema={"cluster_id": pl.Int32, "name": pl.String, "size": pl.Int64}).hstack(centroid)
    return labels, clusters


def _areas(diag: pl.DataFrame, cells: pl.DataFrame, cfg: Config) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Poor cells grouped by place; returns (cell_id -> area_id, areas table)."""
    from kqi.clustering.spatial import spatial_clusters

    pos = diag.select("cell_id", "primary_cause").join(
        cells.select(pl.col("cell_id").cast(pl.String), pl.col("lat").cast(pl.Float64),
                     pl.col("lon").cast(pl.Float64)),
        on="cell_id", how="left",
    ).filter(pl.col("lat").is_finite() & pl.col("lon").is_finite()).sort("cell_id")
    labels = spatial_clusters(
        pos["lat"].to_numpy(), pos["lon"].to_numpy(),
        min_cluster_size=cfg.diagnosis.area_min_cluster_size, max_km=cfg.diagnosis.area_max_km,
    ) if pos.height else np.empty(0, dtype=np.int32)
    pos = pos.with_columns(pl.Series("area_id", labels, dtype=pl.Int32))
    members = pos.filter(pl.col("area_id") >= 0)
    cause_rank = pl.col("primary_cause").replace_strict(
        {c: i for i, c in enumerate(CAUSES)}, default=len(CAUSES), return_dtype=pl.Int32)
    dominant = (
        members.group_by("area_id", "primary_cause").agg(pl.len().alias("n"))
        .sort(["area_id", "n", cause_rank.alias("_o")], descending=[False, True, False])
        .group_by("area_id", maintain_order=True).first()
        .select("area_id", pl.col("primary_cause").alias("dominant_cause"))
    ) if members.height else pl.DataFrame(schema={"area_id": pl.Int32, "dominant_cause": pl.String})
    areas = (
        members.sort("cell_id").group_by("area_id", maintain_order=True).agg(
            pl.len().cast(pl.Int64).alias("n_cells"),
            pl.col("cell_id").str.join(";").alias("cell_ids"),
            pl.col("lat").mean(),
            pl.col("lon").mean(),
        )
        .join(dominant, on="area_id", how="left")
        .sort("area_id")
    ) if members.height else pl.DataFrame(schema={
        "area_id": pl.Int32, "n_cells": pl.Int64, "cell_ids": pl.String, "lat": pl.Float64,
        "lon": pl.Float64, "dominant_cause": pl.String})
    return pos.select("cell_id", "area_id"), areas


#: proposals from cluster boundaries: cause -> (config field, evidence column, "above"/"below"),
#: from the registry's proposal boundaries
_BOUNDARIES: dict[str, tuple[str, str, str]] = {
    c.name: (c.boundary.config_field, c.boundary.column, c.boundary.side)
    for c in REGISTRY if c.boundary is not None
}


def _q(values: pl.Series, q: float) -> float | None:
    v = values.drop_nulls()
    return None if v.len() == 0 else float(v.quantile(q, "linear"))  # type: ignore[arg-type]


def _proposals(evidence: pl.DataFrame, diag: pl.DataFrame, clusters: pl.DataFrame,
               cfg: Config) -> dict[str, dict[str, Any]]:
    """Thresholds calibrated on this network, with their basis; reported, never applied."""
    d = cfg.diagnosis
    poor_ids = diag["cell_id"]
    healthy = evidence.filter(~pl.col("cell_id").is_in(poor_ids.implode()))
    if healthy.height == 0:
        healthy = evidence
    out: dict[str, dict[str, Any]] = {}
    # the same floor the rules measure the rise against (network_relative)
    floor = _q(evidence["ul_floor_dbm"], 0.5) if "ul_floor_dbm" in evidence.columns else None
    if floor is not None:
        busy = _q(healthy["ul_interference_dbm"], 0.5)
        p95 = _q(healthy["ul_interference_dbm"], 0.95)
        proposed = round(floor + d.propose_interference_rise_db, 1)
        out["ul_interference_dbm"] = {
            "current": d.ul_interference_dbm,
            "proposed": proposed,
            "network_floor_dbm": round(floor, 1),
            "basis": (f"{_QUIET_FLOOR}{floor:.1f}{_HEALTHY_UL}{busy:.1f}{_DBM_P95}{p95:.1f}"
                      f"{_FLOOR_PLUS}{d.propose_interference_rise_db:g}{_DB}"),
        }
    for cause, (param, column, side) in _BOUNDARIES.items():
        ids = clusters.filter(pl.col("name") == cause)["cluster_id"]
        if ids.len() == 0:
            continue
        members = diag.filter(pl.col("cluster_id").is_in(ids.implode()))[column]
        inner = _q(members, 0.10 if side == "above" else 0.90)
        outer = _q(healthy[column], 0.95 if side == "above" else 0.05)
        if inner is None or outer is None:
            continue
        boundary = (inner + outer) / 2.0
        basis = (f"{members.len()}{_CELLS_IN}{cause}{_CLUSTERS_P10}{inner:.3g}{_HEALTHY_P95}"
                 f"{outer:.3g}{_MIDPOINT}")
        if param in out:  # interference: keep the floor-based figure, add the cluster view
            out[param]["cluster_boundary"] = round(boundary, 3)
            out[param]["basis"] += f"{_BOUNDARY}{boundary:.1f} ({basis})"
            continue
        out[param] = {"current": getattr(d, param), "proposed": round(boundary, 3), "basis": basis}
    return out


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


def _review_note(cfg: Config) -> pl.Expr:
    """Why a cell is marked for review, in words: its signature cluster is named after a cause
    the rules do not find here (with that cause's figures and thresholds), or find only as a
    secondary cause, or the cluster's centroid shows no cause while the rules find one."""
    d = cfg.diagnosis
    col = pl.col
    head = pl.concat_str(pl.lit(_CLUSTER), col("cluster_id").cast(pl.String),
                         pl.lit(" ("), col("_cluster_size").cast(pl.String),
                         pl.lit(_IS_NAMED), col("cluster_name"))
    secondary = col("secondary_causes").fill_null("").str.split(";").list.contains(
        col("cluster_name"))
    figures: Any = pl.when(pl.lit(False)).then(pl.lit(None, dtype=pl.String))
    score_of: Any = pl.when(pl.lit(False)).then(pl.lit(None, dtype=pl.Float64))
    for c in RULE_CAUSES:
        cause = BY_NAME[c]
        figures = figures.when(col("cluster_name") == c).then(
            rules.text_expr(cause, d, cause.review or cause.evidence))
        score_of = score_of.when(col("cluster_name") == c).then(
            col(f"s_{c}"))
    figures = figures.otherwise(pl.lit(""))
    score_of = score_of.otherwise(pl.lit(None, dtype=pl.Float64))
    primary_part = pl.when(col("primary_cause") == FALLBACK).then(
        pl.lit(_NO_RULE)).otherwise(
        pl.concat_str(pl.lit(_RULES_FIND), col("primary_cause"), pl.lit(_SCORE),
                      col("cause_score").round(2).cast(pl.String), pl.lit(")")))
    not_found = pl.concat_str(head, pl.lit(_NOT_FOUND), figures,
                              primary_part)
    as_secondary = pl.concat_str(
        head, pl.lit(_AS_SECONDARY),
        score_of.round(2).cast(pl.String), pl.lit(_AGAINST), col("primary_cause"),
        pl.lit(" "), col("cause_score").round(2).cast(pl.String), pl.lit(")"))
    no_cause = pl.concat_str(
        pl.lit(_CLUSTER), col("cluster_id").cast(pl.String), pl.lit(" ("),
        col("_cluster_size").cast(pl.String),
        pl.lit(_NO_CAUSE),
        col("primary_cause"), pl.lit(_BORDERLINE))
    return (pl.when(~col("review").fill_null(False)).then(pl.lit(""))
            .when(col("cluster_name") == FALLBACK).then(no_cause)
            .when(secondary).then(as_secondary)
            .otherwise(not_found))


def poor_cells(cell_kqi: pl.DataFrame) -> pl.DataFrame:
    """``cell_id, poor_services`` (";"-joined in browsing/video/gaming order) of every poor cell."""
    return (cell_kqi.filter(pl.col("poor")).with_columns(pl.col("cell_id").cast(pl.String))
            .group_by("cell_id").agg(poor_services_agg()).sort("cell_id"))


def _note_estimated(judged: pl.DataFrame, cells: pl.DataFrame) -> pl.DataFrame:
    """The evidence of a cell whose position was estimated from drive-test samples (a cells file
    from ``kqi samples``: ``estimated`` = 1) says so: its ISD and distances rest on it."""
    if "estimated" not in cells.columns or judged.height == 0:
        return judged
    est = cells.filter(pl.col("estimated") == 1).select(pl.col("cell_id").cast(pl.String))
    if est.height == 0:
        return judged
    flag = pl.col("cell_id").is_in(est["cell_id"].implode())
    return judged.with_columns(
        pl.when(flag).then(pl.col("evidence") + pl.lit(_ESTIMATED))
        .otherwise(pl.col("evidence")).alias("evidence"))


def diagnose(cell_kqi: pl.DataFrame, kpis: pl.DataFrame | None, cells: pl.DataFrame,
             config: Config | None = None, *, isd: pl.DataFrame | None = None,
             samples: pl.DataFrame | None = None,
             kpi_aggregates: pl.DataFrame | None = None) -> Diagnosis:
    """Diagnose every poor cell: evidence, rule causes, signature clusters, areas, proposals.

    Parameters
    ----------
    cell_kqi : pl.DataFrame
        ``kqi.schema.CELL_KQI`` rows; a cell is diagnosed when it is poor in any service.
    kpis : pl.DataFrame
        Hourly ``kqi.schema.CELL_KPIS`` rows.
    cells : pl.DataFrame
        ``kqi.schema.CELLS`` rows (positions for areas and the inter-site distance).
    config : Config, optional
        Thresholds in ``config.diagnosis``; defaults when omitted.
    isd : pl.DataFrame, optional
        ``cell_id, isd_m`` from :func:`kqi.geo.site_isd`; computed when omitted.
    samples : pl.DataFrame, optional
        ``cell_samples`` (:data:`kqi.schema.CELL_SAMPLES`, from :func:`kqi.samples.analyse_samples`):
        drive-test figures taken as evidence where the KPIs lack them, said so in the text
        (:func:`kqi.samples.fill_evidence`).
    kpi_aggregates : pl.DataFrame, optional
        The per-cell KPI aggregates (``cell_id, kpi_hours`` and :data:`KPI_AGGREGATES`) computed
        elsewhere (the Spark engine, :func:`kqi.spark.kpi_evidence`); ``kpis`` is then unused.

    Returns
    -------
    Diagnosis
        ``table`` (``kqi.schema.DIAGNOSIS``, one row per poor cell, sorted by ``cell_id``),
        ``evidence``, ``clusters``, ``areas``, ``proposals``.
    """
    cfg = config or Config()
    check_diagnosis(cfg.diagnosis)
    if kpi_aggregates is not None:
        kpi_evidence = with_isd(kpi_aggregates, cells, cfg, isd)
    elif kpis is None:
        raise ValueError("diagnose needs the hourly kpis or their per-cell kpi_aggregates")
    else:
        kpi_evidence = extract_evidence(kpis, cells, cfg, isd=isd)
    poor = poor_cells(cell_kqi)
    # the network's reference from the KPIs (the samples add no UL figure)
    kpi_evidence, baseline = network_relative(kpi_evidence, poor["cell_id"], cfg)
    evidence = kpi_evidence
    if samples is not None:
        from kqi.samples import fill_evidence

        evidence = fill_evidence(kpi_evidence, samples)
    judged = _note_estimated(classify(score_causes(evidence, cfg), cfg), cells)
    diag = poor.join(judged, on="cell_id", how="left").with_columns(
        pl.col("primary_cause").fill_null(FALLBACK),
        pl.col("secondary_causes").fill_null(""),
        pl.col("cause_score").fill_null(0.0),
        pl.col("evidence").fill_null(_NO_KPIS),
    ).sort("cell_id")

    with_kpis = diag.filter(pl.col("kpi_hours").is_not_null())
    labels, clusters = _signatures(with_kpis, kpi_evidence, cfg)
    with_kpis = with_kpis.with_columns(pl.Series("cluster_id", labels, dtype=pl.Int32))
    names = clusters.select("cluster_id", pl.col("name").alias("cluster_name"))
    diag = diag.join(with_kpis.select("cell_id", "cluster_id"), on="cell_id", how="left").join(
        names, on="cluster_id", how="left"
    ).with_columns(
        pl.col("cluster_id").fill_null(-1),
        (pl.col("cluster_name").is_not_null()
         & (pl.col("cluster_name") != pl.col("primary_cause"))).alias("review"),
    )
    diag = diag.join(clusters.select("cluster_id", pl.col("size").alias("_cluster_size")),
                     on="cluster_id", how="left")
    diag = diag.with_columns(_review_note(cfg).alias("review_note")).drop("_cluster_size")
    agreement = diag.filter(pl.col("cluster_id") >= 0).group_by("cluster_id").agg(
        (1.0 - pl.col("review").cast(pl.Float64).mean()).alias("agreement"))
    clusters = clusters.join(agreement, on="cluster_id", how="left").select(
        "cluster_id", "name", "size", "agreement", *CLUSTER_PROFILE).sort("cluster_id")

    area_of, areas = _areas(diag, cells, cfg)
    diag = diag.join(area_of, on="cell_id", how="left").with_columns(
        pl.col("area_id").fill_null(-1)).sort("cell_id")
    proposals = _proposals(kpi_evidence, diag, clusters, cfg)

    table = diag.select([pl.col(name).cast(dtype) for name, dtype in _DIAG_SCHEMA.items()])
    counts = table.group_by("primary_cause").len().sort("primary_cause").iter_rows()
    log.info("diagnosed %d poor cells: %s; %d signature clusters, %d areas", table.height,
             ", ".join(f"{c} {n}" for c, n in counts), clusters.height, areas.height)
    return Diagnosis(table=table, evidence=evidence, clusters=clusters, areas=areas,
                     proposals=proposals, network=baseline)
