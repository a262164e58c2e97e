"""Per-test verdicts, per cell x service good-rates, poor-cell flags and the case table.

A test is *good* when it meets every KQI target of its service (``config.kqi.targets``); a cell's
good-rate for a service is good tests / tests; the cell is *poor* for the service when it has at
least ``config.kqi.min_tests`` tests and its good-rate is at or below the service threshold.

The feed is counted batch by batch into dense per cell x service arrays (memory bounded by
cells x services, plus cells x services x days for the daily counts), so a feed of any length runs
in the memory of one batch::

    acc = KqiAccumulator(n_cells, config)
    for batch in feed.batches:
        acc.add(batch)
    cell_kqi = acc.cell_kqi(feed.cell_ids)

Every output column is defined in :data:`kqi.schema.CELL_KQI`; ``rate_low``/``rate_high`` are the
Wilson score interval at ``config.kqi.confidence_z`` and ``confidence`` is how sure the flag's
side of the threshold is (see :func:`flag_counts`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from kqi import _kernels
from kqi._numba import read_only as _ro
from kqi.config import Config, KqiConfig, as_config
from kqi.errors import InputError
from kqi.frames import DType, polars_schema
from kqi.schema import CELL_KQI, SERVICE_KQIS, SERVICES
from kqi.summary import CaseCounts, RunSummary
from kqi.zones import local_days

log = logging.getLogger(__name__)

N_SERVICES = _kernels.N_SERVICES
_SERVICE_NAMES = pl.Series("service", SERVICES, dtype=pl.String)
#: each service code's place among the service names sorted as text (the output's order)
_SERVICE_RANK = np.argsort(np.argsort(np.array(SERVICES))).astype(np.int64)
#: the counting kernels' ``day`` when no day counts are kept: an empty array (read-only, as the
#: day rows are, so the kernels compile once)
_NO_DAYS = _ro(np.zeros(0, dtype=np.int64))
#: polars dtypes of kqi.schema.CELL_KQI, to pin the output's types
_CELL_KQI_SCHEMA = polars_schema(CELL_KQI)

__all__ = [
    "KqiAccumulator",
    "flag_cells",
    "flag_counts",
    "summarize",
    "verdicts",
]


# --------------------------------------------------------------------------------------------
# Arrow columns -> kernel arrays (zero-copy where the type already matches)
# --------------------------------------------------------------------------------------------


def _all_valid(n: int) -> np.ndarray:
    return np.full((n + 7) // 8, 0xFF, dtype=np.uint8)


def _values_and_validity(batch: pl.DataFrame, name: str, dtype: DType,
                         np_dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Values array and validity bitmap (bit offset 0) of ``batch[name]``, without copying values.

    A missing or all-null column gives zeros with an all-clear bitmap.
    """
    n = batch.height
    if name not in batch.columns or batch.schema[name] == pl.Null:
        return _ro(np.zeros(n, dtype=np_dtype)), _ro(np.zeros((n + 7) // 8, dtype=np.uint8))
    s = batch.get_column(name)
    if s.dtype != dtype:
        s = s.cast(dtype)
    arr = s.to_arrow()
    if isinstance(arr, pa.ChunkedArray):  # pragma: no cover - polars returns one array
        arr = arr.combine_chunks()
    off = arr.offset
    bufs = arr.buffers()
    values: np.ndarray = np.frombuffer(bufs[1], dtype=np_dtype, count=off + n)[off:]
    if arr.null_count == 0:
        valid = _all_valid(n)
    elif off % 8 == 0:
        valid = np.frombuffer(bufs[0], dtype=np.uint8, count=(off + n + 7) // 8)[off // 8:]
    else:
        # a bitmap that starts mid-byte: re-pack it from bit 0 (n/8 bytes, cheap)
        packed = pc.is_valid(arr)
        valid = np.frombuffer(packed.buffers()[1], dtype=np.uint8,
                              count=(packed.offset + n + 7) // 8)
        if packed.offset:  # pragma: no cover - pyarrow returns offset 0
            valid = np.packbits(np.asarray(packed), bitorder="little")
    return _ro(values), _ro(valid)


def _codes(batch: pl.DataFrame, name: str, dtype: DType, np_dtype: type) -> np.ndarray:
    s = batch.get_column(name)
    if s.null_count():
        raise ValueError(f"batch column '{name}' has nulls")
    if s.dtype != dtype:
        s = s.cast(dtype)
    return _ro(np.ascontiguousarray(s.to_numpy()))


def _verdict_args(batch: pl.DataFrame, kcfg: KqiConfig) -> tuple[Any, ...]:
    """The kernel arguments that decide a test's verdict, in kernel order."""
    args: list[Any] = list(_values_and_validity(batch, "success", pl.Int8, np.int8))
    for name in _kernels.TARGET_FIELDS:
        args.extend(_values_and_validity(batch, name, pl.Float64, np.float64))
    args.extend(_values_and_validity(batch, "good", pl.Int8, np.int8))
    use_good = bool(kcfg.use_source_good and "good" in batch.columns)
    args.extend([use_good, _ro(_kernels.target_array(kcfg))])
    return tuple(args)


def _local_days(ts: pl.Series, tz: str) -> pl.Series:
    """Calendar day (days since 1970-01-01, Int32) of each UTC timestamp in zone ``tz``."""
    if not isinstance(ts.dtype, pl.Datetime):
        raise ValueError(f"batch column 'ts' must be a datetime, not {ts.dtype}")
    if ts.dtype.time_zone is None:
        ts = ts.dt.replace_time_zone("UTC")
    return local_days(ts, tz)  # kqi/zones.py: integer division in UTC, stretches elsewhere


def _check_services(svc: np.ndarray) -> None:
    slo, shi = _kernels._code_range(svc)
    if slo < 0 or shi >= N_SERVICES:
        raise ValueError(f"service_code outside 0..{N_SERVICES - 1}")


def verdicts(batch: pl.DataFrame, config: Config | None = None) -> np.ndarray:
    """Per-test verdicts of a ``tests`` batch.

    Parameters
    ----------
    batch : pl.DataFrame
        ``service_code`` (0..2) and the verdict columns (``success``, the six KQIs, ``good``),
        as ingest produces them; missing optional columns count as all-null.
    config : Config, optional
        Targets and ``use_source_good``; defaults when None.

    Returns
    -------
    np.ndarray
        int8, 1 where the test is good, 0 where it is not.
    """
    kcfg = (config or Config()).kqi
    svc = _codes(batch, "service_code", pl.Int8, np.int8)
    _check_services(svc)
    out = np.empty(batch.height, dtype=np.int8)
    _kernels._verdicts(svc, *_verdict_args(batch, kcfg), out)
    return out


def flag_counts(tests: np.ndarray, good_tests: np.ndarray, service_code: np.ndarray,
                config: Config | None = None) -> dict[str, np.ndarray]:
    """Good-rate, Wilson bounds, poor flag and confidence for per cell x service counts.

    Parameters
    ----------
    tests, good_tests : np.ndarray
        Counts (int64), one entry per cell x service.
    service_code : np.ndarray
        Service of each entry (0 browsing, 1 video, 2 gaming): picks the threshold.
    config : Config, optional
        ``kqi.min_tests``, ``kqi.thresholds``, ``kqi.confidence_z``, ``kqi.flag_on_upper_bound``.

    Returns
    -------
    dict of np.ndarray
        ``good_rate``, ``rate_low``, ``rate_high`` (Wilson score interval), ``poor`` (bool) and
        ``confidence``: Phi(|rate - t| sqrt(n / (t (1 - t)))), the normal-approximation
        probability, under the score test at threshold ``t``, that the true good-rate lies on the
        same side of ``t`` as the observed one. 0.5 means a coin toss (rate at the threshold or
        very few tests); it reaches Phi(confidence_z) exactly when the Wilson interval excludes
        ``t``, so with ``flag_on_upper_bound`` a poor cell has confidence >= Phi(z) (to rounding).
    """
    kcfg = (config or Config()).kqi
    tests = np.ascontiguousarray(tests, dtype=np.int64)
    good_tests = np.ascontiguousarray(good_tests, dtype=np.int64)
    svc = np.ascontiguousarray(service_code, dtype=np.int64)
    if not tests.shape == good_tests.shape == svc.shape:
        raise ValueError("tests, good_tests and service_code must have one shape")
    if np.any(good_tests > tests) or np.any(good_tests < 0):
        raise ValueError("good_tests must lie in 0..tests")
    thresholds = np.array([kcfg.thresholds.for_service(s) for s in SERVICES], dtype=np.float64)
    if np.any(svc < 0) or np.any(svc >= N_SERVICES):
        raise ValueError(f"service_code outside 0..{N_SERVICES - 1}")
    n = tests.shape[0]
    # exact IEEE division here, not in the kernel (see _kernels._flag)
    rate = np.where(tests > 0, good_tests / np.maximum(tests, 1), 0.0)
    out = {
        "good_rate": rate, "rate_low": np.empty(n), "rate_high": np.empty(n),
        "poor": np.empty(n, dtype=np.bool_), "confidence": np.empty(n),
    }
    _kernels._flag(_ro(tests), _ro(rate), _ro(thresholds[svc]), kcfg.min_tests,
                   float(kcfg.confidence_z), bool(kcfg.flag_on_upper_bound),
                   out["rate_low"], out["rate_high"], out["poor"], out["confidence"])
    return out


# --------------------------------------------------------------------------------------------
# The accumulator
# --------------------------------------------------------------------------------------------

class KqiAccumulator:
    """Counts tests and good tests per cell x service, for the whole window and per day.

    Parameters
    ----------
    n_cells : int
        Size of the cell code space to start with; it grows when a batch carries larger codes
        (ingest without a cells table assigns codes as new cells appear).
    config : Config, optional
        Targets, thresholds, ``use_source_good``.
    daily : bool
        Also keep per-day counts (:meth:`daily`). Days are calendar days in
        ``config.ingest.timezone`` for test timestamps, and the ``period`` of aggregated rows
        when it reads as a date (other periods count only in the whole window).
    """

    def __init__(self, n_cells: int, config: Config | None = None, *, daily: bool = True) -> None:
        if n_cells < 0:
            raise ValueError("n_cells must be >= 0")
        self.config = config or Config()
        self._targets = _kernels.target_array(self.config.kqi)
        self._tests = np.zeros(max(n_cells, 0) * N_SERVICES, dtype=np.int64)
        self._good = np.zeros_like(self._tests)
        self._n_cells = n_cells
        self._keep_daily = daily
        self._day0 = 0
        self._dtests = np.zeros((0, self._tests.shape[0]), dtype=np.int64)
        self._dgood = np.zeros_like(self._dtests)
        self.rows = 0

    def _counted(self, count: Any, cell: np.ndarray, svc: np.ndarray) -> None:
        """Run a counting kernel ``count(start, n_cells, tests, good, day_tests, day_good) ->
        stop`` to the end.

        The kernel stops at a code outside the counters: a larger cell code grows them (ingest
        without a cells table discovers cells as it reads), anything else is an error. The
        counters are passed anew each time: growing them replaces the arrays.
        """
        start = 0
        while (start := count(start, self._n_cells, self._tests, self._good, self._dtests,
                              self._dgood)) < cell.shape[0]:
            if cell[start] < 0:
                raise ValueError(f"negative cell_code {int(cell[start])}")
            _check_services(svc[start:])
            lo, hi = _kernels._code_range(cell[start:])
            if lo < 0:
                raise ValueError(f"negative cell_code {lo}")
            self._ensure_cells(int(hi))

    @property
    def keeps_daily(self) -> bool:
        """Whether per-day counts are kept (then every batch must come through :meth:`add`)."""
        return self._keep_daily

    def arrays(self, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole-window counters (tests, good_tests: int64, index ``cell_code * 3 +
        service_code``), grown to hold ``n_cells`` codes, for a reader that counts in place
        (``kqi.ingest._fused``; it adds to :attr:`rows` itself)."""
        self._ensure_cells(n_cells - 1)
        return self._tests, self._good

    def counters(self, n_cells: int, days: tuple[int, int] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """The counters, grown to hold ``n_cells`` codes and, where daily counts are kept, the
        days ``days = (first, last)`` (days since 1970-01-01), for a reader that counts in place
        (``kqi.ingest._fused_csv``; it adds to :attr:`rows` itself): whole-window tests and good
        tests (int64, index ``cell_code * 3 + service_code``), the same per day (2-D, row ``day -
        day0``; no rows without daily counts), and ``day0``. Valid until the next call or
        batch (growing replaces the arrays)."""
        self._ensure_cells(n_cells - 1)
        if self._keep_daily and days is not None:
            self._ensure_days(*days)
        return self._tests, self._good, self._dtests, self._dgood, self._day0

    # -- growth ------------------------------------------------------------------------------
    def _ensure_cells(self, max_code: int) -> None:
        if max_code < self._n_cells:
            return
        # grow geometrically so that a feed discovering cells batch by batch copies O(n) in all
        new_n = max(max_code + 1, int(self._n_cells * 1.5) + 1)
        width = new_n * N_SERVICES
        old = self._tests.shape[0]
        for attr in ("_tests", "_good"):
            grown = np.zeros(width, dtype=np.int64)
            grown[:old] = getattr(self, attr)
            setattr(self, attr, grown)
        for attr in ("_dtests", "_dgood"):
            cur = getattr(self, attr)
            grown = np.zeros((cur.shape[0], width), dtype=np.int64)
            grown[:, :old] = cur
            setattr(self, attr, grown)
        self._n_cells = new_n

    def _ensure_days(self, lo: int, hi: int) -> None:
        n_days = self._dtests.shape[0]
        if n_days == 0:
            new_lo, new_hi = lo, hi
        else:
            new_lo, new_hi = min(lo, self._day0), max(hi, self._day0 + n_days - 1)
            if new_lo == self._day0 and new_hi == self._day0 + n_days - 1:
                return
        width = self._tests.shape[0]
        for attr in ("_dtests", "_dgood"):
            grown = np.zeros((new_hi - new_lo + 1, width), dtype=np.int64)
            if n_days:
                start = self._day0 - new_lo
                grown[start:start + n_days] = getattr(self, attr)
            setattr(self, attr, grown)
        self._day0 = new_lo

    def _day_rows(self, days: pl.Series) -> np.ndarray:
        """Days (days since epoch, nullable) -> row index into the day blocks, -1 = undated."""
        valid = days.drop_nulls()
        if valid.len() == 0:
            return _ro(np.full(days.len(), -1, dtype=np.int64))
        self._ensure_days(int(valid.min()), int(valid.max()))  # type: ignore[arg-type]
        return _ro((days.cast(pl.Int64) - self._day0).fill_null(-1).to_numpy())

    # -- adding batches ----------------------------------------------------------------------
    def add(self, batch: pl.DataFrame) -> None:
        """Count one batch: a ``tests`` batch or an ``aggregated`` one (told apart by columns)."""
        if batch.height == 0:
            return
        if "tests" in batch.columns and "good_tests" in batch.columns:
            self._add_aggregated(batch)
        else:
            self._add_tests(batch)
        self.rows += batch.height

    def _add_tests(self, batch: pl.DataFrame) -> None:
        cell = _codes(batch, "cell_code", pl.Int32, np.int32)
        svc = _codes(batch, "service_code", pl.Int8, np.int8)
        verdict = np.empty(batch.height, dtype=np.int8)
        # two passes (branch-free verdicts, then the scatter) beat one fused loop: see _kernels
        _kernels._verdicts(svc, *_verdict_args(batch, self.config.kqi), verdict)
        day = _NO_DAYS
        if self._keep_daily and "ts" in batch.columns:
            day = self._day_rows(_local_days(batch.get_column("ts"), self.config.ingest.timezone))
        self._counted(lambda start, n, t, g, dt, dg: _kernels._count_verdicts(
            cell, svc, verdict, day, start, n, t, g, dt, dg), cell, svc)

    def _add_aggregated(self, batch: pl.DataFrame) -> None:
        cell = _codes(batch, "cell_code", pl.Int32, np.int32)
        svc = _codes(batch, "service_code", pl.Int8, np.int8)
        tests = _codes(batch, "tests", pl.Int64, np.int64)
        good = _codes(batch, "good_tests", pl.Int64, np.int64)
        if np.any(tests < 0) or np.any(good < 0) or np.any(good > tests):
            raise ValueError("aggregated batch: good_tests must lie in 0..tests")
        day = _NO_DAYS
        if self._keep_daily and "period" in batch.columns:
            period = batch.get_column("period")
            if period.dtype == pl.Date:
                days = period
            elif isinstance(period.dtype, pl.Datetime):
                days = period.dt.date()
            else:
                days = period.cast(pl.String).str.strip_chars().str.to_date(
                    "%Y-%m-%d", strict=False)
            day = self._day_rows(days.cast(pl.Int32))
        self._counted(lambda start, n, t, g, dt, dg: _kernels._count_aggregated(
            cell, svc, tests, good, day, start, n, t, g, dt, dg), cell, svc)

    # -- results -----------------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        """Size of the cell code space counted so far."""
        return self._n_cells

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Whole-window (tests, good_tests), shape (n_cells, 3), read-only views."""
        t = self._tests.reshape(-1, N_SERVICES).view()
        g = self._good.reshape(-1, N_SERVICES).view()
        t.flags.writeable = False
        g.flags.writeable = False
        return t, g

    def _ids(self, cell_ids: pl.Series, codes: np.ndarray) -> pl.Series:
        if codes.size and int(codes.max()) >= cell_ids.len():
            raise ValueError(f"cell_ids has {cell_ids.len()} entries; codes reach {int(codes.max())}")
        return cell_ids.cast(pl.String).gather(codes)

    def cell_kqi(self, cell_ids: pl.Series) -> pl.DataFrame:
        """The ``cell_kqi`` table (:data:`kqi.schema.CELL_KQI`) for every cell x service with tests.

        Parameters
        ----------
        cell_ids : pl.Series
            ``cell_id`` of each cell code (position = code).

        Returns
        -------
        pl.DataFrame
            cell_id, service, tests, good_tests, good_rate, poor, rate_low, rate_high,
            confidence; sorted by cell_id, service.
        """
        keys = np.flatnonzero(self._tests > 0)
        if keys.size:
            # sorted by (cell_id, service name) through integer ranks: one sort of the ids, not
            # a string sort of every cell x service row
            ids = cell_ids.cast(pl.String)
            if int(keys[-1]) // N_SERVICES >= ids.len():
                raise ValueError(f"cell_ids has {ids.len()} entries; codes reach "
                                 f"{int(keys[-1]) // N_SERVICES}")
            id_rank = np.empty(ids.len(), dtype=np.int64)
            id_rank[ids.arg_sort().to_numpy()] = np.arange(ids.len(), dtype=np.int64)
            order = np.argsort(id_rank[keys // N_SERVICES] * N_SERVICES
                               + _SERVICE_RANK[keys % N_SERVICES], kind="stable")
            keys = keys[order]
        cells = keys // N_SERVICES
        svc = keys % N_SERVICES
        tests = self._tests[keys]
        good = self._good[keys]
        f = flag_counts(tests, good, svc, self.config)
        df = pl.DataFrame({
            "cell_id": self._ids(cell_ids, cells),
            "service": _SERVICE_NAMES.gather(svc),
            "tests": tests,
            "good_tests": good,
            "good_rate": f["good_rate"],
            "poor": f["poor"],
            "rate_low": f["rate_low"],
            "rate_high": f["rate_high"],
            "confidence": f["confidence"],
        }).cast(_CELL_KQI_SCHEMA)
        return df

    def daily(self, cell_ids: pl.Series) -> pl.DataFrame:
        """Per-day counts: cell_id, service, day (Date), tests, good_tests; days with tests only.

        Sorted by cell_id, service, day. Empty when the accumulator keeps no daily counts.
        """
        d_idx, keys = np.nonzero(self._dtests > 0)
        cells = keys // N_SERVICES
        svc = keys % N_SERVICES
        df = pl.DataFrame({
            "cell_id": self._ids(cell_ids, cells),
            "service": _SERVICE_NAMES.gather(svc),
            "day": pl.Series((d_idx + self._day0).astype(np.int32)).cast(pl.Date),
            "tests": self._dtests[d_idx, keys],
            "good_tests": self._dgood[d_idx, keys],
        }, schema={"cell_id": pl.String, "service": pl.String, "day": pl.Date,
                   "tests": pl.Int64, "good_tests": pl.Int64})
        return df.sort(["cell_id", "service", "day"])


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

def flag_cells(source: str | Path | pl.DataFrame | pl.LazyFrame | pa.Table,
               config: Config | str | Path | None = None) -> pl.DataFrame:
    """Per cell x service good-rates and poor flags of an app-tests feed.

    Parameters
    ----------
    source : str, Path, polars.DataFrame, polars.LazyFrame or pyarrow.Table
        A CSV or Parquet file of app tests (or the pre-aggregated feed) in the contract's columns,
        read through ingest exactly as ``kqi run`` reads it; or the same columns in memory (read
        through the same checks, so the same rows are rejected).
    config : Config, str or Path, optional
        Targets, thresholds and ingest options, or the path of a TOML file; defaults when None.

    Returns
    -------
    polars.DataFrame
        The ``cell_kqi`` table: cell_id, service, tests, good_tests, good_rate, poor, rate_low,
        rate_high, confidence; one row per cell x service with tests, sorted by cell_id, service.

    Raises
    ------
    kqi.InputError
        The feed cannot be used (missing file or column, no rows, a KQI column its services
        need is absent).

    Examples
    --------
    >>> import kqi
    >>> cell_kqi = kqi.flag_cells("app_tests.parquet")          # doctest: +SKIP
    >>> cell_kqi.filter("poor")                                   # doctest: +SKIP
    """
    from kqi import ingest

    config = as_config(config)
    if isinstance(source, str):
        source = Path(source)
    # no manifest is written and no day counted: no checksum, and no ts decoded where the
    # file proves it valid
    feed = ingest.Ingest(config, rejects_dir=None, checksum=False).app_tests(source, None,
                                                                            days=False)
    acc = KqiAccumulator(0, config, daily=False)
    feed.count(acc)  # in place, row group by row group, where the file allows it
    check_kqi_columns(feed, acc, config)
    return acc.cell_kqi(feed.cell_ids)


#: the KQI columns each service's verdict needs (see :class:`kqi.config.Targets`)
NEEDED_KQIS: dict[str, tuple[str, ...]] = SERVICE_KQIS


def check_kqi_columns(feed: Any, acc: KqiAccumulator, config: Config | None = None) -> None:
    """Refuse a per-test feed that has tests of a service but lacks a column its verdict needs.

    Without the column every such test would count as not good, and every cell would come out
    poor for that service: a wrong answer given with full confidence. Call after the batches.

    Raises
    ------
    kqi.errors.InputError
        Naming the file, the column and the service.
    """
    cfg = config or Config()
    if feed.kind != "tests" or (cfg.kqi.use_source_good and "good" in feed.columns):
        return
    tests, _ = acc.counts()
    per_service = tests.sum(axis=0) if tests.size else np.zeros(len(SERVICES), dtype=np.int64)
    for code, service in enumerate(SERVICES):
        if per_service[code] == 0:
            continue
        for col in NEEDED_KQIS[service]:
            if col not in feed.columns:
                raise InputError(
                    feed.path, f"no '{col}' column, so its {int(per_service[code])} {service} tests "
                    "cannot be judged (add it, map it under [ingest.column_map.app_tests], or set "
                    "kqi.use_source_good with a 'good' column)", column=col)


# --------------------------------------------------------------------------------------------
# The case table
# --------------------------------------------------------------------------------------------

def _case_counts(kqi_df: pl.DataFrame) -> CaseCounts:
    reporting = kqi_df.get_column("cell_id").n_unique()
    poor = kqi_df.filter(pl.col("poor"))
    n_poor = poor.get_column("cell_id").n_unique()
    per_service = {s: int(poor.filter(pl.col("service") == s).height) for s in SERVICES}
    return {
        "cells_reporting": int(reporting),
        "poor_cells": int(n_poor),
        "poor_share": round(n_poor / reporting, 6) if reporting else 0.0,
        "poor_by_service": per_service,
        "tests": int(kqi_df.get_column("tests").sum()),
    }


def summarize(cell_kqi: pl.DataFrame, cells: pl.DataFrame | None,
              config: Config | None = None) -> RunSummary:
    """The case table: cells reporting tests, poor cells per service and in all, poor share.

    Parameters
    ----------
    cell_kqi : pl.DataFrame
        The ``cell_kqi`` table.
    cells : pl.DataFrame, optional
        The cells table (``cell_id`` and, when present, ``vendor`` and ``region``) for the split
        by vendor and by region; cells missing from it count under ``"(unknown)"``.
    config : Config, optional
        Recorded rule (thresholds, min_tests).

    Returns
    -------
    dict
        ``cells_reporting``, ``poor_cells`` (distinct cells poor in at least one service),
        ``poor_share`` (poor_cells / cells_reporting), ``poor_by_service`` (a cell poor in two
        services counts in both), ``tests``, ``rule``, and ``by_vendor`` / ``by_region``:
        {name: the same counts}, names sorted.
    """
    kcfg = (config or Config()).kqi
    out: RunSummary = {**_case_counts(cell_kqi)}
    out["rule"] = {
        "min_tests": kcfg.min_tests,
        "thresholds": {s: kcfg.thresholds.for_service(s) for s in SERVICES},
        "flag_on_upper_bound": kcfg.flag_on_upper_bound,
    }
    for dim in ("vendor", "region"):
        if cells is None or dim not in cells.columns:
            continue
        lut = cells.select(pl.col("cell_id").cast(pl.String), pl.col(dim).cast(pl.String))
        joined = cell_kqi.join(lut.unique("cell_id", keep="first"), on="cell_id", how="left")
        joined = joined.with_columns(pl.col(dim).fill_null("(unknown)"))
        groups = sorted(joined.get_column(dim).unique().to_list())
        by = {g: _case_counts(joined.filter(pl.col(dim) == g)) for g in groups}
        if dim == "vendor":
            out["by_vendor"] = by
        else:
            out["by_region"] = by
    return out
