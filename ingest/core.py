"""The ingest stage: every input feed read, validated and returned in canonical polars types.

Each feed is read in chunks. A chunk's columns are converted to canonical types and checked;
rows failing a check go to ``rejects/<feed>.csv`` with their line number and the first failing
check; the others are returned. ``rows_read = rows_accepted + rows_rejected`` for every feed.
"""

from __future__ import annotations

import logging
import time
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa

from kqi.config import Config
from kqi.errors import ConfigError, InputError
from kqi.privacy import scrub_series
from kqi.schema import (
    APP_TESTS,
    APP_TESTS_AGG,
    CELL_KPIS,
    CELLS,
    COMPLAINTS,
    KQI_COLUMNS,
    SERVICE_CODE_TYPE,
    SUBSCRIBERS,
    Column,
    FeedSchema,
)

from ._convert import (
    Checks,
    TimestampParser,
    clean_numeric,
    convert_flag,
    convert_float,
    convert_int,
    convert_service,
    convert_string,
    full,
)
from ._kernels import _first_rows
from ._rejects import RejectSink
from ._sources import (
    FrameSource,
    InMemory,
    ParquetSource,
    open_source,
    resolve_columns,
    source_name,
)
from ._text import Coded, CsvSource, RawChunk, _prefetched

log = logging.getLogger(__name__)

#: text columns where a person may type a phone number: masked at ingest (kqi.privacy); ids,
#: timestamps and numbers are never touched (``description`` is scrubbed with the row's msisdn)
FREE_TEXT = frozenset({"cell_name", "vendor", "region", "category", "tech"})

#: a 28-bit E-UTRAN cell id: eNB id in the top 20 bits, the cell in the low 8
ECI_BITS = 28
ECI_CELL_BITS = 8
CELL_ID = APP_TESTS.column("cell_id")
_ARROW_KIND = {"string": pa.string(), "service": pa.string(), "float": pa.float64(), "int": pa.float64(),
               "flag": pa.float64(), "timestamp": pa.timestamp("us")}
#: columns of a "tests" batch, in order
TEST_BATCH_COLUMNS: tuple[str, ...] = ("ts", "cell_code", "service_code", "success", *KQI_COLUMNS, "good")
#: columns of an "aggregated" batch, in order
AGG_BATCH_COLUMNS: tuple[str, ...] = ("cell_code", "service_code", "tests", "good_tests", "period")
TEST_BATCH_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"), "cell_code": pl.Int32(), "service_code": pl.Int8(), "success": pl.Int8(),
    **{c: pl.Float64() for c in KQI_COLUMNS}, "good": pl.Int8(),
}
AGG_BATCH_SCHEMA: dict[str, pl.DataType] = {
    "cell_code": pl.Int32(), "service_code": pl.Int8(), "tests": pl.Int64(), "good_tests": pl.Int64(),
    "period": pl.String(),
}


@dataclass
class FeedReport:
    """What reading one feed did (for ``manifest.json``)."""

    feed: str
    path: str
    encoding: str
    sha256: str
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    seconds: float
    rejects_path: str | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, JSON-ready."""
        return asdict(self)


class _CodeMap:
    """cell_id -> cell_code, fixed (from the cells table) or growing (codes from the feed)."""

    def __init__(self, ids: pl.Series | None) -> None:
        self.fixed = ids is not None
        self._ids = (ids if ids is not None else pl.Series("cell_id", [], dtype=pl.String)).cast(pl.String)
        self._table = self._frame()

    def _frame(self) -> pl.DataFrame:
        return pl.DataFrame({"cell_id": self._ids,
                             "cell_code": pl.int_range(len(self._ids), dtype=pl.Int32, eager=True)})

    @property
    def ids(self) -> pl.Series:
        return self._ids.alias("cell_id")

    def add(self, ids: pl.Series) -> None:
        """Give codes to ids not seen before, in first-appearance order."""
        new = ids.drop_nulls().unique(maintain_order=True)
        new = new.filter(~new.is_in(self._ids.implode()))
        if len(new):
            self._ids = pl.concat([self._ids, new.alias("cell_id")])
            self._table = self._frame()

    def lookup(self, ids: pl.Series) -> pl.Series:
        """Int32 code per id; null for a null or unknown id."""
        joined = ids.alias("cell_id").to_frame().join(self._table, on="cell_id", how="left",
                                                     maintain_order="left")
        return joined.get_column("cell_code")


#: columns compared between a duplicate cell row and the kept one
_CELL_COMPARE = ("site_id", "lat", "lon", "azimuth", "beamwidth")


def _differing_columns(dups: pl.DataFrame, kept: pl.DataFrame) -> pl.Series:
    """Per duplicate row, the compared columns whose value differs from the kept row's
    ("lat, lon"), null when the row is an identical copy."""
    if dups.height == 0:
        return pl.Series("differs", [], dtype=pl.String)
    j = dups.select("cell_id", *_CELL_COMPARE).with_row_index("__i").join(
        kept.unique("cell_id", keep="first"), on="cell_id", how="left", suffix="__kept")
    names = [pl.when(~pl.col(c).eq_missing(pl.col(f"{c}__kept"))).then(pl.lit(c))
             for c in _CELL_COMPARE]
    out = j.sort("__i").select(pl.concat_list(names).list.drop_nulls().list.join(", ")
                               .alias("differs")).to_series()
    return out.replace("", None)


class _Duplicates:
    """Rows whose key was already accepted (in this chunk or an earlier one)."""

    def __init__(self, key: tuple[str, ...]) -> None:
        self.key = list(key)
        self._seen: pl.DataFrame | None = None

    def check(self, keys: pl.DataFrame, ok: pl.Series) -> pl.Series:
        k = keys.select(self.key).with_row_index("__i").filter(ok)
        first = k.select(pl.struct(self.key).is_first_distinct()).to_series()
        if self._seen is not None and k.height:
            seen_before = k.join(self._seen, on=self.key, how="semi", nulls_equal=True).get_column("__i")
            earlier = k.get_column("__i").is_in(seen_before)
            first = first & ~earlier
        dup_idx = k.get_column("__i").filter(~first)
        kept = k.filter(first).select(self.key)
        self._seen = kept if self._seen is None else pl.concat([self._seen, kept])
        mask = full(keys.height, False, pl.Boolean)
        return mask.scatter(dup_idx, True) if len(dup_idx) else mask


class _Run:
    """One feed being read: source, column mapping, converters, rejects and counts."""

    def __init__(self, ing: Ingest, feed: str, schema: FeedSchema, path: str | Path | InMemory, *,
                 source: CsvSource | ParquetSource | FrameSource | None = None,
                 extra_notes: list[str] | None = None) -> None:
        self.t0 = time.perf_counter()
        self.ing = ing
        self.feed = feed
        self.schema = schema
        self.path = Path(source_name(path, feed))
        cfg = ing.config.ingest
        self.src = source or open_source(path, cfg.encoding, cfg.batch_rows, feed=feed)
        try:
            if not self.src.has_data():
                raise InputError(self.path, "no data rows (only a header)")
            cmap = {**cfg.column_map.get(schema.name, {}), **cfg.column_map.get(feed, {})}
            self.mapping, notes = resolve_columns(schema, self.src.columns, cmap)
            self.notes = [*(extra_notes or []), *notes]
            missing = [c for c in schema.required if c not in self.mapping]
            if missing:
                raise InputError(self.path, f"missing required column (found: {_short(self.src.columns)})",
                                 column=missing[0])
            if isinstance(self.src, ParquetSource | FrameSource):
                self.src.check_types(self.mapping, schema)
                self.src.select(list(dict.fromkeys(self.mapping.values())))
                reject_cols = list(dict.fromkeys(self.mapping.values()))
            else:
                reject_cols = self.src.columns
                self.src.set_types({src: _ARROW_KIND[schema.column(canon).kind]
                                    for canon, src in self.mapping.items()})
            private = [self.mapping["msisdn"]] if "msisdn" in self.mapping else []
            self.sink = RejectSink(feed, ing.rejects_dir, reject_cols, private)
        except BaseException:
            self.src.close()
            raise
        self.parser = TimestampParser(ing.config.ingest.timezone)
        self.raw_ids = False
        self.rows_read = 0
        self.rows_accepted = 0

    def chunks(self) -> Iterator[RawChunk]:
        for raw in self.src.chunks():
            self.rows_read += raw.frame.height + len(raw.malformed)
            self.sink.add_malformed(raw.malformed, self.src.delimiter)
            if raw.frame.height:
                yield raw

    def convert(self, raw: RawChunk) -> tuple[dict[str, pl.Series], Checks]:
        """Canonical columns of a chunk (absent optional ones null or defaulted), and the checks."""
        n = raw.frame.height
        checks = Checks(n)
        out: dict[str, pl.Series] = {}
        clean = clean_numeric(raw.frame, {src: self.schema.column(c) for c, src in self.mapping.items()})
        for col in self.schema.columns:
            src = self.mapping.get(col.name)
            if src is None:
                dtype = SERVICE_CODE_TYPE if col.kind == "service" else col.polars_type
                value = col.default if col.kind != "service" else None
                out["service_code" if col.kind == "service" else col.name] = full(n, value, dtype, col.name)
                continue
            if src in raw.coded:
                if col.name == "cell_id" and self.raw_ids:
                    continue  # resolved from its distinct values by the caller
                if col.kind == "service":
                    v = _service_coded(col, raw.coded[src], checks)
                    checks.add(v.is_null(), f"{col.name}: missing value")
                    out[v.name] = v
                    continue
            r = raw.column(src)
            if col.name == "cell_id" and self.raw_ids:
                # left as read: resolve_ids strips only the values that miss the code table
                out["cell_id"] = r if r.dtype == pl.String else convert_string(col, r)
                continue
            if col.kind == "string":
                v = convert_string(col, r)
                if col.name in FREE_TEXT:
                    v = scrub_series(v)  # a number typed into a name or category is masked
            elif col.kind == "float":
                v = convert_float(col, r, checks, src in clean)
                if col.default is not None and v.null_count():
                    v = v.fill_null(float(col.default))
            elif col.kind == "int":
                v = convert_int(col, r, checks, src in clean)
            elif col.kind == "flag":
                v = convert_flag(col, r, checks, src in clean)
            elif col.kind == "timestamp":
                v = self.parser.convert(col, r, checks)
            else:
                v = convert_service(col, r, checks)
            if col.required:
                # after the parse checks: an unparseable value is reported as such, not as missing
                checks.add(v.is_null(), f"{col.name}: missing value")
            out[v.name] = v
        return out, checks

    def split(self, raw: RawChunk, frame: pl.DataFrame, checks: Checks) -> pl.DataFrame:
        """Send failing rows to the rejects; return the passing rows of ``frame``."""
        bad = checks.failing()
        if not bad.any():
            self.sink.flush()
            self.rows_accepted += frame.height
            return frame
        idx = bad.arg_true()
        pos = idx.to_numpy()
        self.sink.add(raw.lines[pos], checks.reasons().gather(idx), raw.text_rows(pos))
        self.sink.flush()
        good = frame.filter(~bad)
        self.rows_accepted += good.height
        return good

    def finish(self) -> FeedReport:
        if self.rows_read == 0:
            raise InputError(self.path, "no data rows")
        self.src.finish_hash()
        rejects = self.sink.close()
        self.src.close()
        report = FeedReport(
            feed=self.feed, path=str(self.path), encoding=self.src.encoding, sha256=self.src.sha256,
            rows_read=self.rows_read, rows_accepted=self.rows_accepted, rows_rejected=self.sink.count,
            seconds=round(time.perf_counter() - self.t0, 3),
            rejects_path=None if rejects is None else str(rejects), notes=self.notes,
        )
        if report.rows_read != report.rows_accepted + report.rows_rejected:  # pragma: no cover
            raise AssertionError(f"{self.feed}: row accounting does not close: {report}")
        self.ing.reports[self.feed] = report
        if self.ing.rejects_dir is None:
            self.ing.rejects[self.feed] = self.sink.frame
        log.info("%s: %d rows read, %d accepted, %d rejected (%.2fs)", self.feed, report.rows_read,
                 report.rows_accepted, report.rows_rejected, report.seconds)
        return report

    def abort(self) -> None:
        self.sink.abort()
        self.src.close()

    def run_all(self, process: Callable[[RawChunk], pl.DataFrame], schema: dict[str, Any]) -> pl.DataFrame:
        """Process every chunk and concatenate the accepted rows."""
        try:
            parts = [process(raw) for raw in self.chunks()]
            self.finish()
        except BaseException:
            self.abort()
            raise
        parts = [p for p in parts if p.height]
        return pl.concat(parts) if parts else pl.DataFrame(schema=schema)


def _short(columns: list[str]) -> str:
    shown = ", ".join(columns[:12])
    return shown + (", ..." if len(columns) > 12 else "")


class TestsFeed:
    """The app-perception feed, read lazily in bounded batches.

    Attributes
    ----------
    kind : {"tests", "aggregated"}
        Per-test records, or a pre-aggregated ``cell_id, service, tests, good_tests`` feed.
    batches : Iterator[polars.DataFrame]
        At most ``config.ingest.batch_rows`` rows each; columns :data:`TEST_BATCH_COLUMNS` or
        :data:`AGG_BATCH_COLUMNS`. Rejected rows are written as the batches are read.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, kind: Literal["tests", "aggregated"], path: Path,
                 batches: Iterator[pl.DataFrame], codes: _CodeMap) -> None:
        self.kind = kind
        self.path = path
        self.batches = batches
        self._codes = codes
        self.exhausted = False
        #: canonical columns the file has (after aliases and the column map)
        self.columns: frozenset[str] = frozenset()

    @property
    def cell_ids(self) -> pl.Series:
        """``cell_id`` strings indexed by ``cell_code``.

        With a cells table this is its ``cell_id`` column; without one, codes come from the feed
        in first-appearance order and the series is complete only once :attr:`batches` is done.
        """
        if not self._codes.fixed and not self.exhausted:
            raise RuntimeError("cell_ids is known only after the batches are exhausted")
        return self._codes.ids

    def collect(self) -> pl.DataFrame:
        """All remaining batches in one frame (convenience for small feeds and tests)."""
        parts = list(self.batches)
        if not parts:
            return pl.DataFrame(schema=TEST_BATCH_SCHEMA if self.kind == "tests" else AGG_BATCH_SCHEMA)
        return pl.concat(parts)


class Ingest:
    """Reads and validates the input feeds.

    Parameters
    ----------
    config
        The run's configuration (``config.ingest`` decides encoding, time zone, batch size and
        header mappings).
    rejects_dir
        Where ``<feed>.csv`` reject files go; ``None`` keeps rejected rows in memory only
        (:attr:`rejects`).

    Attributes
    ----------
    reports : dict[str, FeedReport]
        Per feed read so far.
    rejects : dict[str, polars.DataFrame]
        Rejected rows per feed, only when ``rejects_dir`` is ``None``.
    """

    def __init__(self, config: Config, rejects_dir: Path | None) -> None:
        self.config = config
        self.rejects_dir = None if rejects_dir is None else Path(rejects_dir)
        self.reports: dict[str, FeedReport] = {}
        self.rejects: dict[str, pl.DataFrame] = {}
        tz = config.ingest.timezone
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"'ingest.timezone': unknown time zone '{tz}'") from None

    # -- cells ----------------------------------------------------------------------------

    def cells(self, path: str | Path | InMemory) -> pl.DataFrame:
        """Read the engineering parameters.

        Returns
        -------
        polars.DataFrame
            The ``CELLS`` columns in canonical types (``beamwidth`` defaulted to its schema
            default), ``cell_local`` (Int32) when ``site_id`` was derived from integer ECIs, and
            ``cell_code`` (Int32, the row index), sorted by ``cell_id``.
        """
        run = _Run(self, "cells", CELLS, path)
        dups = _Duplicates(CELLS.key)
        kept: list[pl.DataFrame] = []
        conflicts = [0]

        def process(raw: RawChunk) -> pl.DataFrame:
            values, checks = run.convert(raw)
            frame = pl.DataFrame(values)
            passing = ~checks.failing()
            dup = dups.check(frame, passing)
            kept.append(frame.filter(passing & ~dup).select("cell_id", *_CELL_COMPARE))
            # a second row with other coordinates is often a newer export: say so, not just "dup"
            differs = _differing_columns(frame.filter(dup), pl.concat(kept))
            conflict = full(frame.height, False, pl.Boolean)
            if differs.len():
                conflict = conflict.scatter(dup.arg_true(), differs.is_not_null())
                conflicts[0] += int(differs.is_not_null().sum())
            named = full(frame.height, None, pl.String)
            if differs.len():
                named = named.scatter(dup.arg_true(), differs)
            checks.add(conflict, "cell_id: duplicate of an earlier row with different values "
                       "(the first row is kept); differs in", named)
            checks.add(dup & ~conflict, "cell_id: duplicate of an earlier row")
            return run.split(raw, frame, checks)

        df = run.run_all(process, {c.name: c.polars_type for c in CELLS.columns})
        if conflicts[0]:
            self.reports["cells"].notes.append(
                f"cell_id: {conflicts[0]} duplicate rows disagree with the first row of their cell "
                "(rejected; the first row is kept): check which export is current")
        if "site_id" not in run.mapping and self.config.ingest.derive_site_from_eci:
            df = _derive_sites(df, run)
        df = df.sort("cell_id").with_row_index("cell_code").with_columns(pl.col("cell_code").cast(pl.Int32))
        order = [*CELLS.names, *(["cell_local"] if "cell_local" in df.columns else []), "cell_code"]
        return df.select(order)

    # -- cell KPIs ------------------------------------------------------------------------

    def cell_kpis(self, path: str | Path | InMemory, cells: pl.DataFrame) -> pl.DataFrame:
        """Read hourly (or daily) cell counters.

        Rows naming a cell not in ``cells`` are rejected, and so is a second row for the same
        ``cell_id`` and ``ts``.

        Returns
        -------
        polars.DataFrame
            The ``CELL_KPIS`` columns and ``cell_code`` (Int32), in file order.
        """
        codes = _CodeMap(_cell_ids(cells))
        run = _Run(self, "cell_kpis", CELL_KPIS, path)
        dups = _Duplicates(CELL_KPIS.key)

        def process(raw: RawChunk) -> pl.DataFrame:
            values, checks = run.convert(raw)
            frame = pl.DataFrame(values)
            code = codes.lookup(frame.get_column("cell_id"))
            checks.add(code.is_null() & frame.get_column("cell_id").is_not_null(),
                       "cell_id: not in the cells table", frame.get_column("cell_id"))
            checks.add(dups.check(frame, ~checks.failing()), "ts: duplicate cell_id and ts")
            return run.split(raw, frame.with_columns(code), checks)

        schema = {c.name: c.polars_type for c in CELL_KPIS.columns} | {"cell_code": pl.Int32}
        return run.run_all(process, schema).select([*CELL_KPIS.names, "cell_code"])

    # -- complaints -----------------------------------------------------------------------

    def complaints(self, path: str | Path | InMemory, cells: pl.DataFrame) -> pl.DataFrame:
        """Read complaint tickets; ``msisdn`` is dropped here and never returned.

        A complaint needs a position (``lat`` and ``lon``) or a ``cell_id`` known in ``cells``.
        A ``cell_id`` not in ``cells`` is cleared (with a note) when the row has a position and
        rejected when it has none. A position with only one of ``lat``/``lon`` counts as none.

        Returns
        -------
        polars.DataFrame
            The ``COMPLAINTS`` columns except ``msisdn``, and ``cell_code`` (Int32, null when the
            complaint names no known cell), in file order.
        """
        codes = _CodeMap(_cell_ids(cells))
        run = _Run(self, "complaints", COMPLAINTS, path)
        dups = _Duplicates(COMPLAINTS.key)
        counts = {"msisdn": 0, "unknown_cell": 0, "half_position": 0}

        def process(raw: RawChunk) -> pl.DataFrame:
            values, checks = run.convert(raw)
            frame = pl.DataFrame(values)
            lat, lon = frame.get_column("lat"), frame.get_column("lon")
            has_pos = lat.is_not_null() & lon.is_not_null()
            half = lat.is_not_null() ^ lon.is_not_null()
            cell_id = frame.get_column("cell_id")
            code = codes.lookup(cell_id)
            unknown = cell_id.is_not_null() & code.is_null()
            checks.add(unknown & ~has_pos, "cell_id: not in the cells table and no position", cell_id)
            checks.add(cell_id.is_null() & ~has_pos, "lat/lon: no position and no cell_id")
            checks.add(dups.check(frame, ~checks.failing()), "complaint_id: duplicate of an earlier row")
            frame = frame.with_columns(
                code,
                pl.when(unknown).then(None).otherwise(pl.col("cell_id")).alias("cell_id"),
                pl.when(half).then(None).otherwise(pl.col("lat")).alias("lat"),
                pl.when(half).then(None).otherwise(pl.col("lon")).alias("lon"),
            )
            # a caller's number typed into the description must not outlive the msisdn column
            frame = frame.with_columns(scrub_series(frame.get_column("description"),
                                                    frame.get_column("msisdn")),
                                       _pseudonymous_ids(frame.get_column("complaint_id"),
                                                         raw.lines))
            ok = ~checks.failing()
            counts["msisdn"] += int(frame.get_column("msisdn").is_not_null().filter(ok).sum())
            counts["unknown_cell"] += int(unknown.filter(ok).sum())
            counts["half_position"] += int(half.filter(ok).sum())
            return run.split(raw, frame.drop("msisdn"), checks)

        schema = ({c.name: c.polars_type for c in COMPLAINTS.columns if c.name != "msisdn"}
                  | {"cell_code": pl.Int32})
        df = run.run_all(process, schema)
        rep = self.reports["complaints"]
        if counts["msisdn"]:
            rep.notes.append(f"msisdn: {counts['msisdn']} values dropped after validation")
        if counts["unknown_cell"]:
            rep.notes.append(f"cell_id: {counts['unknown_cell']} complaints named a cell not in the "
                             "cells table; cell_id cleared, position kept")
        if counts["half_position"]:
            rep.notes.append(f"lat/lon: {counts['half_position']} complaints had only one of lat/lon; "
                             "position cleared, cell_id kept")
        return df.select([c for c in COMPLAINTS.names if c != "msisdn"] + ["cell_code"])

    # -- subscribers ----------------------------------------------------------------------

    def subscribers(self, path: str | Path | InMemory) -> pl.DataFrame:
        """Read subscriber counts per cell (``cell_id, subscribers``) or per region
        (``region, subscribers``), for complaints per 10,000 subscribers.

        A file with both key columns is read per cell. Rows without the key or with a count that
        is not a number >= 0 are rejected like any feed's.

        Returns
        -------
        polars.DataFrame
            ``cell_id`` or ``region`` (String) and ``subscribers`` (Float64), summed per key and
            sorted by it.
        """
        run = _Run(self, "subscribers", SUBSCRIBERS, path)
        key = "cell_id" if "cell_id" in run.mapping else "region" if "region" in run.mapping else None
        if key is None:
            run.abort()
            raise InputError(run.path, f"needs a cell_id or a region column (found: "
                                       f"{_short(run.src.columns)})", column="cell_id")

        def process(raw: RawChunk) -> pl.DataFrame:
            values, checks = run.convert(raw)
            frame = pl.DataFrame(values).select(key, "subscribers")
            checks.add(frame.get_column(key).is_null(), f"{key}: missing value")
            return run.split(raw, frame, checks)

        df = run.run_all(process, {key: pl.String, "subscribers": pl.Float64})
        return df.group_by(key).agg(pl.col("subscribers").sum()).sort(key)

    # -- app tests ------------------------------------------------------------------------

    def app_tests(self, path: str | Path | InMemory, cells: pl.DataFrame | None = None) -> TestsFeed:
        """Open the app-perception feed (per-test or pre-aggregated) for batched reading.

        The file is opened and its header checked now (an unusable file raises here); rows are
        read, validated and rejected as :attr:`TestsFeed.batches` is iterated, and the feed's
        report appears in :attr:`reports` (as ``app_tests``) when the batches are exhausted.

        Parameters
        ----------
        path
            CSV or Parquet file.
        cells
            The cells table (from :meth:`cells`); rows naming other cells are rejected. ``None``
            assigns ``cell_code`` from the feed itself (first appearance) and checks no cell.
        """
        cfg = self.config.ingest
        codes = _CodeMap(None if cells is None else _cell_ids(cells))
        src = open_source(path, cfg.encoding, cfg.batch_rows, feed="app_tests")
        try:
            agg_map, _ = resolve_columns(
                APP_TESTS_AGG, src.columns,
                {**cfg.column_map.get("app_tests_agg", {}), **cfg.column_map.get("app_tests", {})})
            test_map, _ = resolve_columns(APP_TESTS, src.columns, cfg.column_map.get("app_tests", {}))
        except BaseException:
            src.close()
            raise
        aggregated = {"tests", "good_tests"} <= agg_map.keys() and "ts" not in test_map
        schema = APP_TESTS_AGG if aggregated else APP_TESTS
        run = _Run(self, "app_tests", schema, path, source=src,
                   extra_notes=["pre-aggregated feed (cell_id, service, tests, good_tests)"] if aggregated else [])
        run.raw_ids = True
        # cell_id and service are resolved once per distinct value, not once per row
        if hasattr(src, "set_dictionary"):
            src.set_dictionary([run.mapping["cell_id"], run.mapping["service"]])
        feed = TestsFeed("aggregated" if aggregated else "tests", run.path, iter(()), codes)
        feed.columns = frozenset(run.mapping)
        # each batch read and validated in a worker while the caller counts the one before
        feed.batches = _prefetched(self._test_batches(run, codes, feed, aggregated), 1, last=_LAST,
                                   name="kqi-ingest")
        return feed

    def _test_batches(self, run: _Run, codes: _CodeMap, feed: TestsFeed, aggregated: bool
                      ) -> Iterator[pl.DataFrame]:
        limit = self.config.ingest.batch_rows
        dups = _Duplicates(("cell_id", "service_code", "period")) if aggregated else None
        cols = AGG_BATCH_COLUMNS if aggregated else TEST_BATCH_COLUMNS
        try:
            id_src = run.mapping["cell_id"]
            for raw in run.chunks():
                values, checks = run.convert(raw)
                coded = raw.coded.get(id_src)
                if coded is not None and aggregated:
                    values["cell_id"] = coded.decode().alias("cell_id")  # the duplicate key
                frame = pl.DataFrame(values)
                if aggregated:
                    checks.add(frame.get_column("good_tests") > frame.get_column("tests"),
                               "good_tests: greater than tests", frame.get_column("good_tests"))
                if coded is None:
                    ids = frame.get_column("cell_id")
                    coded = Coded(ids, np.arange(len(ids), dtype=np.int32))
                code = _resolve_ids(codes, coded, checks)
                if dups is not None:
                    checks.add(dups.check(frame, ~checks.failing()),
                               "period: duplicate cell_id, service and period")
                out = run.split(raw, frame.with_columns(code).select(cols), checks)
                for start in range(0, out.height, limit):
                    yield out.slice(start, limit)
            yield _LAST  # the report is made when the consumer asks past the last batch
            run.finish()
            feed.exhausted = True
        except BaseException:
            run.abort()
            raise


#: what :meth:`Ingest._test_batches` yields after its last batch, before it finishes the feed
_LAST = pl.DataFrame()


def _resolve_ids(codes: _CodeMap, raw: Coded, checks: Checks) -> pl.Series:
    """cell_code of raw cell_id text; unknown ids are rejected (fixed codes) or coded (growing).

    The work is per distinct value (``raw.values``): exact matches cost one join of the values;
    only the misses are stripped, checked and looked up again; rows take their value's code
    through ``raw.index``. Growing codes are given in the order of each id's first passing row.
    """
    values = raw.values
    code = codes.lookup(values)
    miss = code.is_null()
    if miss.any() or (raw.index < 0).any():  # a miss, or a null row (no value to miss)
        idx = miss.arg_true()
        pos = idx.to_numpy()
        clean = convert_string(CELL_ID, values.gather(idx))
        missing = np.zeros(len(values), dtype=bool)
        missing[pos] = clean.is_null().to_numpy()
        checks.add(pl.Series(raw.spread(missing, True)), "cell_id: missing value")
        if not codes.fixed:
            ok = (~checks.failing()).to_numpy()
            first = _first_rows(raw.index, ok, len(values))[pos]
            has = (first < len(raw)) & clean.is_not_null().to_numpy()
            order = np.argsort(first[has], kind="stable")
            codes.add(clean.filter(pl.Series(has)).gather(order))
        sub = codes.lookup(clean)
        if codes.fixed:
            unknown = np.zeros(len(values), dtype=bool)
            unknown[pos] = (sub.is_null() & clean.is_not_null()).to_numpy()
            rows = raw.spread(unknown, False)
            if rows.any():
                checks.add(pl.Series(rows), "cell_id: not in the cells table", raw.decode())
        code = code.scatter(idx, sub)
    return _nullable(raw.spread(code.fill_null(-1).to_numpy(), -1), pl.Int32, "cell_code")


def _service_coded(col: Column, raw: Coded, checks: Checks) -> pl.Series:
    """``service_code`` of a dictionary-encoded service column: converted once per value."""
    per_value = Checks(len(raw.values))
    code = convert_service(col, raw.values, per_value)
    unknown = per_value.failing().to_numpy()
    if unknown.any():
        checks.add(pl.Series(raw.spread(unknown, False)), f"{col.name}: unknown service", raw.decode())
    return _nullable(raw.spread(code.fill_null(-1).to_numpy().astype(np.int8), -1), pl.Int8, "service_code")


def _pseudonymous_ids(ids: pl.Series, lines: np.ndarray) -> pl.Series:
    """Complaint ids with a phone number in them (a CRM that keys tickets by caller) masked, and
    made unique again by the ticket's line number: ``13812345678`` -> ``***78@L12``."""
    masked = scrub_series(ids)
    changed = (masked != ids).fill_null(False)
    if not changed.any():
        return ids
    idx = changed.arg_true()
    tagged = masked.gather(idx) + pl.Series([f"@L{n}" for n in lines[idx.to_numpy()]])
    return masked.scatter(idx, tagged).alias(ids.name)


def _nullable(codes: np.ndarray, dtype: pl.DataType | type[pl.DataType], name: str) -> pl.Series:
    """A code series from an array with -1 for null."""
    s = pl.Series(name, codes, dtype=dtype)
    return s.set(s < 0, None) if (codes < 0).any() else s



def _cell_ids(cells: pl.DataFrame) -> pl.Series:
    """The cells table's ids; codes are their row index, which ``cell_code`` must agree with."""
    if "cell_id" not in cells.columns:
        raise ValueError("cells must be the table returned by Ingest.cells (no cell_id column)")
    if "cell_code" in cells.columns and not cells.get_column("cell_code").equals(
            pl.int_range(cells.height, dtype=pl.Int32, eager=True).alias("cell_code")):
        raise ValueError("cells.cell_code must be the row index (0..n-1): pass the table from Ingest.cells")
    return cells.get_column("cell_id")


def _derive_sites(df: pl.DataFrame, run: _Run) -> pl.DataFrame:
    """site_id from the cell_id: ``ECI >> 8`` for a 28-bit ECI, ``A`` for ``A-B`` ids."""
    cid = df.get_column("cell_id")
    eci = cid.cast(pl.Int64, strict=False)
    is_eci = eci.is_not_null() & (eci >= 0) & (eci < (1 << ECI_BITS))
    pair = cid.str.extract(r"^(\d+)-\d+$", 1)
    site = pl.select(
        pl.when(pl.lit(is_eci)).then((pl.lit(eci) // (1 << ECI_CELL_BITS)).cast(pl.String))
        .otherwise(pl.lit(pair))
    ).to_series().alias("site_id")
    out = df.with_columns(site)
    n_eci = int(is_eci.sum())
    if n_eci:
        local = pl.select(pl.when(pl.lit(is_eci)).then(pl.lit(eci) % (1 << ECI_CELL_BITS))).to_series()
        out = out.with_columns(local.cast(pl.Int32).alias("cell_local"))
    run.notes.append(f"site_id derived from cell_id for {int(site.is_not_null().sum())} of {df.height} "
                     f"cells ({n_eci} 28-bit ECIs)")
    return out
