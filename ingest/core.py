"""The ingest stage: every input feed read, validated and returned in canonical polars types.

Each feed is read in chunks. A chunk's columns are converted to canonical types and checked;
rows failing a check go to ``rejects/<feed>.csv`` with their line number and the first failing
check; the others are returned. ``rows_read = rows_accepted + rows_rejected`` for every feed.
"""

from __future__ import annotations

import datetime as _dt
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
from kqi.progress import add_rows
from kqi.schema import (
    APP_TESTS,
    APP_TESTS_AGG,
    CELL_KPIS,
    CELLS,
    COMPLAINTS,
    KQI_COLUMNS,
    PLAUSIBLE_YEARS,
    SERVICE_CODE_TYPE,
    SUBSCRIBERS,
    Column,
    FeedSchema,
)

from ._codes import CodeTable
from ._convert import (
    Checks,
    TimestampParser,
    _numeric,
    clean_numeric,
    convert_flag,
    convert_float,
    convert_int,
    convert_service,
    convert_string,
    full,
    is_percent,
    is_ratio,
    name_form,
)
from ._feedcheck import lookalike_hint, missing_measures
from ._fused import FusedCounter, fused_count
from ._fused_csv import CsvFusedCounter
from ._kernels import _first_rows
from ._rejects import RejectSink
from ._repeats import PairSet
from ._sources import (
    FrameSource,
    InMemory,
    ParquetSource,
    norm_header,
    open_source,
    resolve_columns,
    source_name,
)
from ._text import Coded, CsvSource, RawChunk, _prefetched
from ._verdict import Tally, feed_verdict
from .settings import feed_setting, read_options

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
    #: how the file was read: format, encoding, delimiter, decimal, line endings, sheet, the
    #: timestamp form and units, and which of them the config set
    detected: dict[str, Any] = field(default_factory=dict)
    #: the commonest reject reasons, with rows and two example values each
    reject_reasons: list[dict[str, Any]] = field(default_factory=list)

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
        self.src = source or open_source(path, cfg.encoding, cfg.batch_rows, feed=feed,
                                         options=read_options(cfg, feed))
        self.time_src: str | None = None
        if not ing.checksum:
            self.src.checksum = False
        #: canonical columns not read (proved valid from the file's metadata, and not needed)
        self.skip: set[str] = set()
        try:
            if not self.src.has_data():
                raise InputError(self.path, "no data rows (only a header)")
            cmap = {**cfg.column_map.get(schema.name, {}), **cfg.column_map.get(feed, {})}
            self.mapping, notes = resolve_columns(schema, self.src.columns, cmap)
            self.notes = [*(extra_notes or []), *notes]
            if "ts" in schema.names:
                self._resolve_time(cmap)
            self.fill = {c: v for c, v in feed_setting(cfg.fill, feed, schema.name).items()
                         if c not in self.mapping}
            for c, v in self.fill.items():
                self.notes.append(f"{c}: not in the file, filled with {v!r} ([ingest.fill.{feed}])")
            missing = [c for c in schema.required if c not in self.mapping and c not in self.fill]
            # the wrong file for this option (a tests file as --kpis) says what it looks like
            other = lookalike_hint(self.src.columns, schema.name)
            if missing:
                raise InputError(self.path, f"missing required column (found: {_short(self.src.columns)})"
                                 f"{other or _missing_hint(schema, missing[0], feed)}", column=missing[0])
            no_measures = missing_measures(schema.name, [*self.mapping, *self.fill])
            if no_measures:
                raise InputError(self.path, f"{no_measures}"
                                 f"{other or f'; map them in [ingest.column_map.{feed}]'}")
            used = list(dict.fromkeys([*self.mapping.values(), *([self.time_src] if self.time_src else [])]))
            if isinstance(self.src, ParquetSource | FrameSource):
                self.src.check_types(self.mapping, schema)
                self.src.select(used)
                reject_cols = used
            else:
                reject_cols = self.src.columns
                types = {src: _ARROW_KIND[schema.column(canon).kind] for canon, src in self.mapping.items()}
                if self.time_src is not None:  # the two halves are joined as text
                    types[self.mapping["ts"]] = types[self.time_src] = pa.string()
                elif "ts" in self.mapping and feed_setting(cfg.formats, feed, schema.name).get("ts"):
                    # a configured form is read by the parser from the text: pyarrow's own
                    # parse would read 2026-02-03 as 3 February under %Y-%d-%m
                    types[self.mapping["ts"]] = pa.string()
                self.src.set_types(types)
            private = [self.mapping["msisdn"]] if "msisdn" in self.mapping else []
            self.sink = RejectSink(feed, ing.rejects_dir, reject_cols, private)
        except BaseException:
            self.src.close()
            raise
        fmts = feed_setting(cfg.formats, feed, schema.name)
        ts_format = fmts.get("ts")
        if self.time_src is not None and ("date" in fmts or "time" in fmts):
            ts_format = f"{fmts.get('date', '%Y-%m-%d')} {fmts.get('time', '%H:%M:%S')}"
        self.ts_format_set = ts_format is not None
        self.parser = TimestampParser(cfg.timezone, ts_format,
                                      where=(str(self.path), feed, self.mapping.get("ts", "ts")))
        self.missing_values = {c: [str(v) for v in vals]
                               for c, vals in feed_setting(cfg.missing, feed, schema.name).items()}
        self.units = feed_setting(cfg.units, feed, schema.name)
        #: canonical column -> factor its values are multiplied by (decided on the first chunk)
        self.scale: dict[str, float] | None = None
        self.unit_notes: dict[str, str] = {}
        self.tally = Tally()
        self.raw_ids = False
        self.coded_clean: dict[str, Coded] = {}
        self.rows_read = 0
        self.rows_accepted = 0
        self.cells_hint: tuple[str | None, str | None] = (None, None)

    def _resolve_time(self, cmap: dict[str, str]) -> None:
        """ts from one column, from a date column and a time column, or from a date alone
        (a daily feed)."""
        date_src = self.mapping.pop("date", None)
        time_src = self.mapping.pop("time", None)
        explicit_ts = "ts" in cmap.values()
        ts_src = self.mapping.get("ts")
        if date_src is None and time_src is None and not explicit_ts:
            taken = set(self.mapping.values())
            dates = [c for c in self.src.columns if norm_header(c) in DATE_HEADERS and c not in taken]
            if ts_src is not None and norm_header(ts_src) in WEAK_TS_HEADERS and dates:
                date_src, time_src = dates[0], ts_src
            elif ts_src is None and dates:
                date_src = dates[0]
        if time_src is not None and date_src is None:
            date_src = ts_src
        if date_src is None:
            if time_src is not None:
                self.mapping["ts"] = time_src
            return
        self.mapping["ts"] = date_src
        if time_src is not None and time_src != date_src:
            self.time_src = time_src
            self.notes.append(f"ts: date column '{date_src}' and time column '{time_src}' joined")
        elif ts_src is None:
            self.notes.append(f"ts: from the date column '{date_src}' (daily rows)")

    def chunks(self) -> Iterator[RawChunk]:
        for raw in self.src.chunks():
            self.rows_read += raw.frame.height + len(raw.malformed)
            add_rows(raw.frame.height + len(raw.malformed))  # the console's progress (kqi.progress)
            self.sink.add_malformed(raw.malformed, self.src.delimiter)
            for m in raw.malformed:
                self.tally.add(m.reason.split(",")[0] if m.reason.startswith("row: has") else m.reason,
                               1, [])
            if raw.frame.height:
                yield raw

    def _raw(self, raw: RawChunk, canon: str, src: str | None) -> pl.Series | None:
        """A canonical column's source values: read, joined (ts from a date and a time), or
        filled from the config; values set as missing (``[ingest.missing]``) made null."""
        if src is None:
            if canon not in self.fill:
                return None
            value = self.fill[canon]
            if isinstance(value, str) and "{line}" in value:
                lines = pl.lit(pl.Series(raw.lines).cast(pl.String))
                parts = value.split("{line}")
                pieces: list[pl.Expr] = [pl.lit(parts[0])]
                for part in parts[1:]:
                    pieces += [lines, pl.lit(part)]
                r = pl.select(pl.concat_str(pieces)).to_series().alias(canon)
            else:
                r = full(raw.frame.height, value, pl.String if isinstance(value, str) else pl.Float64, canon)
        else:
            r = raw.column(src)
        if canon == "ts" and self.time_src is not None:
            r = self._join_time(r, raw.column(self.time_src))
        tokens = self.missing_values.get(canon)
        if tokens:
            if r.dtype.is_numeric():
                nums = [float(t) for t in tokens if _is_float(t)]
                r = r.set(r.cast(pl.Float64).is_in(nums).fill_null(False), None)
            else:
                r = r.cast(pl.String)
                r = r.set(r.str.strip_chars().is_in(tokens).fill_null(False), None)
        return r

    def _join_time(self, date: pl.Series, time_of_day: pl.Series) -> pl.Series:
        """``date + " " + time`` as text (typed spreadsheet cells written in ISO form first)."""
        if isinstance(date.dtype, pl.Datetime) or date.dtype == pl.Date:
            date = date.dt.strftime("%Y-%m-%d")
        if time_of_day.dtype == pl.Time or isinstance(time_of_day.dtype, pl.Datetime):
            time_of_day = time_of_day.dt.strftime("%H:%M:%S")
        elif isinstance(time_of_day.dtype, pl.Duration):
            secs = time_of_day.dt.total_seconds()
            time_of_day = pl.select(pl.format("{}:{}:{}", (pl.lit(secs) // 3600).cast(pl.Int64),
                                              (pl.lit(secs) % 3600 // 60).cast(pl.Int64).cast(pl.String).str.zfill(2),
                                              (pl.lit(secs) % 60).cast(pl.Int64).cast(pl.String).str.zfill(2))
                                    ).to_series()
        d = date.cast(pl.String).str.strip_chars()
        t = time_of_day.cast(pl.String).str.strip_chars()
        t = t.set(t == "", None)  # a date without its time is no timestamp
        # a 'time' column that holds whole timestamps (a date in it) is used as it is
        whole = t.str.contains(r"\d{4}|\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2}").fill_null(False)
        return pl.select(pl.when(pl.lit(whole)).then(pl.lit(t))
                         .otherwise(pl.concat_str([pl.lit(d), pl.lit(t)], separator=" "))
                         ).to_series().alias(date.name)

    def _timestamps(self, col: Column, r: pl.Series, raw: RawChunk, src: str | None,
                    checks: Checks) -> pl.Series:
        """Timestamps of a chunk. Times pyarrow's CSV reader typed are named by the form of
        the first one, and those in an implausible year (``13/02/26`` read as the year 13) are
        read again from their text, where the day/month rules apply."""
        if not (isinstance(r.dtype, pl.Datetime) and raw.text is not None and src is not None):
            return self.parser.convert(col, r, checks)
        odd = _outside_plausible_years(r)
        ok = r.set(odd, None) if odd.any() else r
        if self.parser.typed_form is None and isinstance(self.src, CsvSource):
            text = self.src.first_value(src)
            self.parser.typed_form = (name_form(text) if text else None) or "ISO 8601"
        v = self.parser.convert(col, ok, checks)
        if odd.any():
            idx = odd.arg_true().to_numpy()
            sub = Checks(len(idx))
            again = self.parser.convert(col, raw.text_rows(idx).get_column(src), sub)
            checks.add_at(sub, idx)
            v = v.scatter(idx, again)
        return v

    def _decide_units(self, raw: RawChunk) -> dict[str, float]:
        """The factor each percent / ratio column is read with, from the config or, for the KPI
        feed, from the first chunk's values (docs/input-formats.md, "Units")."""
        scale: dict[str, float] = {}
        for canon, src in self.mapping.items():
            col = self.schema.column(canon)
            if col.kind != "float" or not (is_percent(col) or is_ratio(col)):
                continue
            unit = self.units.get(canon)
            if unit is not None:
                f = 100.0 if is_percent(col) and unit == "fraction" else \
                    0.01 if is_ratio(col) and unit == "percent" else 1.0
                self.unit_notes[canon] = f"{unit} (set){' x100' if f == 100 else ' /100' if f == 0.01 else ''}"
                scale[canon] = f
                continue
            if self.schema.name not in UNIT_DETECTION_FEEDS:
                continue
            r = raw.column(src)
            v = (r.cast(pl.Float64) if r.dtype.is_numeric()
                 else _numeric(col, r, Checks(raw.frame.height), decimal=self.src.decimal))
            v = v.set(~v.is_finite(), None) if v.dtype.is_float() and not v.is_finite().all() else v
            lo_v, hi_v = v.min(), v.max()
            if not isinstance(lo_v, int | float) or not isinstance(hi_v, int | float) or lo_v < 0:
                continue
            hi = float(hi_v)
            if is_percent(col) and 0 < hi <= 1.0:
                scale[canon] = 100.0
                self.unit_notes[canon] = "fraction, detected (every value within 0-1): x100"
                log.warning("%s: column '%s' (%s) holds only values within 0-1: read as a fraction "
                            "(x100); set [ingest.units.%s] %s = \"percent\" if they are percents",
                            self.path, src, canon, self.feed, canon)
            elif is_ratio(col) and 1.0 < hi <= 100.0:
                scale[canon] = 0.01
                self.unit_notes[canon] = "percent, detected (values above 1, none above 100): /100"
                log.warning("%s: column '%s' (%s) holds values above 1 and none above 100: read as "
                            "percents (/100); set [ingest.units.%s] %s = \"fraction\" to refuse them",
                            self.path, src, canon, self.feed, canon)
        return scale

    def convert(self, raw: RawChunk) -> tuple[dict[str, pl.Series], Checks]:
        """Canonical columns of a chunk (absent optional ones null or defaulted), and the checks."""
        n = raw.frame.height
        checks = Checks(n)
        out: dict[str, pl.Series] = {}
        # string columns read dictionary-encoded, converted per distinct value (this chunk's)
        self.coded_clean = {}
        clean = clean_numeric(raw.frame, {src: self.schema.column(c) for c, src in self.mapping.items()})
        if self.scale is None:
            self.scale = self._decide_units(raw)
        decimal = self.src.decimal
        for col in self.schema.columns:
            src = self.mapping.get(col.name)
            if col.name in self.skip:
                out[col.name] = full(n, None, col.polars_type, col.name)
                continue
            if src is None and col.name not in self.fill:
                dtype = SERVICE_CODE_TYPE if col.kind == "service" else col.polars_type
                value = col.default if col.kind != "service" else None
                out["service_code" if col.kind == "service" else col.name] = full(n, value, dtype, col.name)
                continue
            if src is not None and src in raw.coded:
                if col.name == "cell_id" and self.raw_ids:
                    continue  # resolved from its distinct values by the caller
                if col.kind == "string" and col.name not in self.missing_values:
                    # converted once per distinct value (the caller may use them: cell codes)
                    c = raw.coded[src]
                    per_value = convert_string(col, c.values)
                    if col.name in FREE_TEXT:
                        per_value = scrub_series(per_value)
                    self.coded_clean[col.name] = Coded(per_value, c.index)
                    v = self.coded_clean[col.name].decode().alias(col.name)
                    if col.required:
                        checks.add(v.is_null(), f"{col.name}: missing value")
                    out[v.name] = v
                    continue
                if col.kind == "service":
                    v = _service_coded(col, raw.coded[src], checks)
                    checks.add(v.is_null(), f"{col.name}: missing value")
                    out[v.name] = v
                    continue
            r = self._raw(raw, col.name, src)
            assert r is not None
            plain = src is not None and src in clean and col.name not in self.missing_values
            if src is not None and (fixed := clean.get(src)) is not None:
                r = fixed  # NaN made null by the clean check
            if col.name == "cell_id" and self.raw_ids:
                # left as read: resolve_ids strips only the values that miss the code table
                out["cell_id"] = r if r.dtype == pl.String else convert_string(col, r)
                continue
            if col.kind == "string":
                v = convert_string(col, r)
                if col.name in FREE_TEXT:
                    v = scrub_series(v)  # a number typed into a name or category is masked
            elif col.kind == "float":
                scale = self.scale.get(col.name, 1.0)
                v = convert_float(col, r, checks, plain and scale == 1.0, decimal=decimal, scale=scale)
                if col.default is not None and v.null_count():
                    v = v.fill_null(float(col.default))
            elif col.kind == "int":
                v = convert_int(col, r, checks, plain, decimal=decimal)
            elif col.kind == "flag":
                v = convert_flag(col, r, checks, plain, decimal=decimal)
            elif col.kind == "timestamp":
                v = self._timestamps(col, r, raw, src, checks)
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
        for message, count, examples in checks.first_failures():
            self.tally.add(message, count, examples)
        idx = bad.arg_true()
        pos = idx.to_numpy()
        self.sink.add(raw.lines[pos], checks.reasons().gather(idx), self._rejected_rows(raw, pos))
        self.sink.flush()
        good = frame.filter(~bad)
        self.rows_accepted += good.height
        return good

    def _rejected_rows(self, raw: RawChunk, pos: np.ndarray) -> pl.DataFrame:
        """Rows ``pos`` of a chunk as written in the file, the columns not read (:attr:`skip`)
        too: read back for these rows only (:meth:`ParquetSource.column_text`)."""
        rows = raw.text_rows(pos)
        for canon in sorted(self.skip):
            src = self.mapping.get(canon)
            if src is not None and src not in rows.columns and isinstance(self.src, ParquetSource):
                rows = rows.with_columns(self.src.column_text(src, raw.lines[pos]))
        return rows

    def finish(self) -> FeedReport:
        if self.rows_read == 0:
            raise InputError(self.path, "no data rows")
        self.src.finish_hash()
        rejects = self.sink.close()
        self.src.close()
        detected = dict(self.src.detected)
        if "ts" in self.schema.names:
            forms = self.parser.detected()
            detected["timestamp"] = {
                "columns": [c for c in (self.mapping.get("ts"), self.time_src) if c] or
                           (["ts (filled)"] if "ts" in self.fill else []),
                "form": forms, "configured": self.ts_format_set,
                **({"order": self.parser.order} if self.parser.order else {}),
            }
        if self.unit_notes:
            detected["units"] = dict(sorted(self.unit_notes.items()))
        report = FeedReport(
            feed=self.feed, path=str(self.path), encoding=self.src.encoding, sha256=self.src.sha256,
            rows_read=self.rows_read, rows_accepted=self.rows_accepted, rows_rejected=self.sink.count,
            seconds=round(time.perf_counter() - self.t0, 3),
            rejects_path=None if rejects is None else str(rejects), notes=self.notes,
            detected=detected, reject_reasons=self.tally.top(),
        )
        if report.rows_read != report.rows_accepted + report.rows_rejected:  # pragma: no cover
            raise AssertionError(f"{self.feed}: row accounting does not close: {report}")
        self.ing.reports[self.feed] = report
        if self.ing.rejects_dir is None:
            self.ing.rejects[self.feed] = self.sink.frame
        log.info("%s: %d rows read, %d accepted, %d rejected (%.2fs)", self.feed, report.rows_read,
                 report.rows_accepted, report.rows_rejected, report.seconds)
        log.info("%s: read %s", self.feed, describe_detected(detected))
        if self.ing.verdicts:
            cells_name, cells_example = self.cells_hint
            err = feed_verdict(self.path, self.feed, report.rows_read, report.rows_rejected, self.tally,
                               max_share=self.ing.config.ingest.max_reject_share,
                               cells_name=cells_name, cells_example=cells_example)
            if err is not None:
                raise err
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


#: headers of a date column (ts of a daily feed, or the date half of a split ts)
DATE_HEADERS = frozenset({"date", "日期", "day", "datum", "fecha", "date_month_year"})
#: ts aliases that may hold a time of day only (joined to a date column when there is one)
WEAK_TS_HEADERS = frozenset({"time", "时间"})
#: feeds whose percent / ratio columns have their unit detected from the values (app tests'
#: loss_pct is not: packet loss in percent lies within 0-1 on a healthy network)
UNIT_DETECTION_FEEDS = frozenset({"cell_kpis"})


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _missing_hint(schema: FeedSchema, column: str, feed: str) -> str:
    if schema.name == "cells" and column == "azimuth":
        return ("; a cell list without azimuths (omni cells): set [ingest.fill.cells] azimuth = 0 "
                "and beamwidth = 360")
    return f"; map it in [ingest.column_map.{feed}] or give it in [ingest.fill.{feed}]"


def describe_detected(d: dict[str, Any]) -> str:
    """One line for the ``-v`` log: how a file was read."""
    parts = [str(d.get("format", "?"))]
    for key in ("encoding", "sheet", "delimiter", "decimal", "line_endings"):
        if key in d:
            parts.append(f"{key.replace('_', ' ')} {d[key]!r}" if key in ("delimiter", "decimal")
                         else f"{key.replace('_', ' ')} {d[key]}")
    if d.get("configured"):
        parts.append(f"set in the config: {', '.join(d['configured'])}")
    ts = d.get("timestamp")
    if ts:
        parts.append(f"ts from {' + '.join(ts['columns']) or '?'} as {ts['form'] or 'no value'}"
                     + (f" ({ts['order']})" if ts.get("order") else "")
                     + (" (set)" if ts.get("configured") else ""))
    for col, unit in (d.get("units") or {}).items():
        parts.append(f"{col}: {unit}")
    return "; ".join(parts)


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
                 batches: Iterator[pl.DataFrame], codes: _CodeMap | CodeTable) -> None:
        self.kind = kind
        self.path = path
        self.batches = batches
        self._codes = codes
        self.exhausted = False
        #: counts the whole feed into an accumulator in place, row group by row group, where
        #: the file allows it (:mod:`ingest._fused`); None: iterate :attr:`batches`
        self.fused: Callable[[Any], None] | None = None
        #: whether :attr:`fused` keeps an accumulator's daily counts too (else only the window's)
        self.fused_daily = False
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

    def count(self, acc: Any) -> None:
        """Count every test into ``acc`` (``kqi.flagging.KqiAccumulator``): in place, row group by
        row group (Parquet, where ``acc`` keeps no daily counts) or chunk by chunk (CSV, days
        too), where :attr:`fused` applies; else batch by batch. The same counts, rejects and
        report either way."""
        fused, self.fused = self.fused, None
        if fused is not None and (self.fused_daily or not acc.keeps_daily):
            self.batches = iter(())
            fused(acc)
            return
        for batch in self.batches:
            acc.add(batch)

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
    checksum
        Compute each input's SHA-256 for :attr:`FeedReport.sha256` (the manifest's); without
        it (nothing written that records it) the report's ``sha256`` is empty and no time is
        spent hashing.

    Attributes
    ----------
    reports : dict[str, FeedReport]
        Per feed read so far.
    rejects : dict[str, polars.DataFrame]
        Rejected rows per feed, only when ``rejects_dir`` is ``None``.
    """

    def __init__(self, config: Config, rejects_dir: Path | None, *, verdicts: bool = False,
                 checksum: bool = True) -> None:
        self.config = config
        self.verdicts = verdicts
        self.checksum = checksum
        self.rejects_dir = None if rejects_dir is None else Path(rejects_dir)
        self.reports: dict[str, FeedReport] = {}
        self.rejects: dict[str, pl.DataFrame] = {}
        tz = config.ingest.timezone
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"'ingest.timezone': unknown time zone '{tz}'") from None

    def _cells_hint(self, cells: pl.DataFrame) -> tuple[str | None, str | None]:
        """How a verdict names the cells file, and one of its ids."""
        rep = self.reports.get("cells")
        name = Path(rep.path).name if rep is not None else None
        example = str(cells.get_column("cell_id")[0]) if cells.height and "cell_id" in cells.columns else None
        return name, example

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

    def cell_kpis(self, path: str | Path | InMemory, cells: pl.DataFrame | None) -> pl.DataFrame:
        """Read hourly (or daily) cell counters.

        Rows naming a cell not in ``cells`` are rejected, and so is a second row for the same
        ``cell_id`` and ``ts``. ``cells=None`` checks no cell: codes are given in the order of
        each id's first row (a KPI export read on its own).

        Returns
        -------
        polars.DataFrame
            The ``CELL_KPIS`` columns and ``cell_code`` (Int32), in file order.
        """
        codes = _CodeMap(None if cells is None else _cell_ids(cells))
        run = _Run(self, "cell_kpis", CELL_KPIS, path)
        if cells is not None:
            run.cells_hint = self._cells_hint(cells)
        # cell_id read dictionary-encoded: cleaned and looked up once per distinct id
        if isinstance(run.src, CsvSource):
            run.src.set_dictionary([run.mapping["cell_id"]])
        # (cell_code, ts) pairs of the accepted rows: the key, once cell_id has its code
        seen = PairSet(len(codes.ids) if codes.fixed else None)

        def process(raw: RawChunk) -> pl.DataFrame:
            values, checks = run.convert(raw)
            frame = pl.DataFrame(values)
            cell_id = frame.get_column("cell_id")
            if not codes.fixed:
                codes.add(cell_id.filter(~checks.failing()))
            coded = run.coded_clean.get("cell_id")
            if coded is not None:
                code = _nullable(coded.spread(codes.lookup(coded.values).fill_null(-1).to_numpy(), -1),
                                 pl.Int32, "cell_code")
            else:
                code = codes.lookup(cell_id)
            checks.add(code.is_null() & cell_id.is_not_null(), "cell_id: not in the cells table", cell_id)
            # a passing row has its cell's code and a ts: equal pairs are equal (cell_id, ts) keys
            ok = ~checks.failing()
            repeat = seen.repeats(code.fill_null(-1).to_numpy(),
                                  frame.get_column("ts").to_physical().fill_null(0).to_numpy(), ok.to_numpy())
            checks.add(pl.Series(repeat), "ts: duplicate cell_id and ts")
            return run.split(raw, _blocks_aligned(frame.with_columns(code)), checks)

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
        run.cells_hint = self._cells_hint(cells)
        dups = _Duplicates(COMPLAINTS.key)
        counts = {"msisdn": 0, "unknown_cell": 0, "half_position": 0, "with_cell": 0}
        unknown_examples: list[str] = []

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
            counts["with_cell"] += int(cell_id.is_not_null().filter(ok).sum())
            if len(unknown_examples) < 2 and unknown.any():
                for v in cell_id.filter(unknown & ok).unique(maintain_order=True).head(2).to_list():
                    if v not in unknown_examples and len(unknown_examples) < 2:
                        unknown_examples.append(str(v))
            counts["half_position"] += int(half.filter(ok).sum())
            return run.split(raw, frame.drop("msisdn"), checks)

        schema = ({c.name: c.polars_type for c in COMPLAINTS.columns if c.name != "msisdn"}
                  | {"cell_code": pl.Int32})
        df = run.run_all(process, schema)
        rep = self.reports["complaints"]
        if counts["msisdn"]:
            rep.notes.append(f"msisdn: {counts['msisdn']} values dropped after validation")
        if counts["unknown_cell"] and counts["unknown_cell"] == counts["with_cell"]:
            name, example = run.cells_hint
            where = name or "the cells table"
            eg = ", ".join(repr(e) for e in unknown_examples)
            msg = (f"none of the {counts['with_cell']:,} complaints' cell ids is in {where} (e.g. {eg})"
                   + (f"; {where} ids look like {example!r}" if example else "")
                   + ": complaints are linked by position only")
            log.warning("%s: %s", run.path, msg)
            rep.notes.append(f"cell_id: {msg}")
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

    # -- samples --------------------------------------------------------------------------

    def samples(self, path: str | Path | InMemory) -> Any:
        """Read drive-test / MR samples: one file, a folder of files (read recursively, every
        file accounted for) or a table in memory; see :func:`kqi.ingest._samples.read_samples`.

        Returns
        -------
        kqi.ingest._samples.SamplesFeed
            ``.frame`` (SAMPLES columns, ``file_index``, ``line``), ``.files``, ``.report``.
        """
        from ._samples import read_samples

        return read_samples(self, path)

    # -- app tests ------------------------------------------------------------------------

    def app_tests(self, path: str | Path | InMemory, cells: pl.DataFrame | None = None, *,
                  days: bool = True) -> TestsFeed:
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
        days
            Whether the caller needs ``ts`` (per-day counts). Without it, a Parquet ``ts`` whose
            type and statistics prove every row passes its checks (a timestamp type, zone-aware
            or read in UTC, no null in any row group) is not decoded and the batches' ``ts`` is
            null; any other ``ts`` is read and checked as usual, so the same rows are rejected.
        """
        cfg = self.config.ingest
        codes = CodeTable(None if cells is None else _cell_ids(cells))
        src = open_source(path, cfg.encoding, cfg.batch_rows, feed="app_tests",
                          options=read_options(cfg, "app_tests"))
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
        if cells is not None:
            run.cells_hint = self._cells_hint(cells)
        if not days and not aggregated and isinstance(src, ParquetSource) and "ts" in run.mapping:
            ts_src = run.mapping["ts"]
            t = src.arrow_type(ts_src)
            if (pa.types.is_timestamp(t) and (t.tz is not None or cfg.timezone.upper() == "UTC")
                    and src.null_free(ts_src)):
                run.skip.add("ts")
                src.select([c for c in dict.fromkeys(run.mapping.values()) if c != ts_src])
        # cell_id and service are resolved once per distinct value, not once per row
        if hasattr(src, "set_dictionary"):
            src.set_dictionary([run.mapping["cell_id"], run.mapping["service"]])
        feed = TestsFeed("aggregated" if aggregated else "tests", run.path, iter(()), codes)
        feed.columns = frozenset(run.mapping)
        # each batch read and validated in a worker while the caller counts the one before
        feed.batches = _prefetched(self._test_batches(run, codes, feed, aggregated), 1, last=_LAST,
                                   name="kqi-ingest")
        if FusedCounter.applies(run, aggregated):
            feed.fused = lambda acc: self._fused_count(run, codes, feed, acc)
        elif CsvFusedCounter.applies(run, aggregated):
            feed.fused = lambda acc: self._fused_csv_count(run, codes, feed, acc)
            feed.fused_daily = True
        return feed

    def _test_batches(self, run: _Run, codes: _CodeMap | CodeTable, feed: TestsFeed, aggregated: bool
                      ) -> Iterator[pl.DataFrame]:
        limit = self.config.ingest.batch_rows
        dups = _Duplicates(("cell_id", "service_code", "period")) if aggregated else None
        try:
            for raw in run.chunks():
                out = self._test_chunk(run, codes, raw, dups, aggregated)
                for start in range(0, out.height, limit):
                    yield out.slice(start, limit)
            yield _LAST  # the report is made when the consumer asks past the last batch
            run.finish()
            feed.exhausted = True
        except BaseException:
            run.abort()
            raise


    @staticmethod
    def _test_chunk(run: _Run, codes: _CodeMap | CodeTable, raw: RawChunk, dups: _Duplicates | None,
                    aggregated: bool) -> pl.DataFrame:
        """One raw chunk of the app-test feed converted, checked, coded; its rejects written."""
        cols = AGG_BATCH_COLUMNS if aggregated else TEST_BATCH_COLUMNS
        values, checks = run.convert(raw)
        coded = raw.coded.get(run.mapping["cell_id"])
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
        return run.split(raw, frame.with_columns(code).select(cols), checks)

    def _fused_csv_count(self, run: _Run, codes: CodeTable, feed: TestsFeed, acc: Any) -> None:
        """The whole CSV feed counted into ``acc`` chunk by chunk (:mod:`ingest._fused_csv`)."""
        limit = self.config.ingest.batch_rows

        def ordinary(raw: RawChunk) -> None:
            out = self._test_chunk(run, codes, raw, None, False)
            for start in range(0, out.height, limit):
                acc.add(out.slice(start, limit))

        try:
            CsvFusedCounter(run, codes, ordinary, acc.config.kqi).count(acc)
            run.finish()
            feed.exhausted = True
        except BaseException:
            run.abort()
            raise

    def _fused_count(self, run: _Run, codes: CodeTable, feed: TestsFeed, acc: Any) -> None:
        """The whole feed counted into ``acc`` row group by row group (:mod:`ingest._fused`)."""
        try:
            fused_count(self, run, codes,
                        lambda raw: self._test_chunk(run, codes, raw, None, False), acc)
            run.finish()
            feed.exhausted = True
        except BaseException:
            run.abort()
            raise


#: what :meth:`Ingest._test_batches` yields after its last batch, before it finishes the feed
_LAST = pl.DataFrame()


def _resolve_ids(codes: _CodeMap | CodeTable, raw: Coded, checks: Checks) -> pl.Series:
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


#: per unit of a Datetime, its ticks in a second
_TICKS = {"ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _outside_plausible_years(r: pl.Series) -> pl.Series:
    """The present times of ``r`` (a Datetime series) outside :data:`PLAUSIBLE_YEARS`.

    A naive series whose first and last time lie within the years (the usual file) is answered
    from those two (two reductions instead of a calendar year for every value)."""
    lo, hi = PLAUSIBLE_YEARS
    dtype = r.dtype
    assert isinstance(dtype, pl.Datetime)
    if dtype.time_zone is None:
        first, last = r.to_physical().min(), r.to_physical().max()
        if first is None:
            return pl.repeat(False, len(r), eager=True)
        assert isinstance(first, int)
        assert isinstance(last, int)
        tick = _TICKS[dtype.time_unit or "us"]
        start = int(_dt.datetime(lo, 1, 1, tzinfo=_dt.UTC).timestamp()) * tick
        end = int(_dt.datetime(hi + 1, 1, 1, tzinfo=_dt.UTC).timestamp()) * tick
        if start <= first and last < end:
            return pl.repeat(False, len(r), eager=True)
    return (r.is_not_null() & ~r.dt.year().is_between(lo, hi)).fill_null(False)


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



def _blocks_aligned(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its single-chunk columns cut (zero-copy slices) where its other columns'
    chunks end, when those all end at the same rows.

    pyarrow's CSV reader gives a column per parse block, while the columns made from a chunk
    (``cell_id`` decoded, ``cell_code``) are one piece: polars then copies every column into one
    piece at the first expression over the frame (0.3 CPU-s for the 3.4 M-row KPI feed, in the
    ingest's last ``select`` and again in the diagnosis). Aligned, the pieces are used as they
    are."""
    lengths: list[int] | None = None
    for s in frame.get_columns():
        if s.n_chunks() > 1:
            own = [len(c) for c in s.get_chunks()]
            if lengths is None:
                lengths = own
            elif own != lengths:
                return frame  # pieces that do not line up: left to polars
    if lengths is None:
        return frame
    starts = np.cumsum([0, *lengths[:-1]]).tolist()

    def cut(s: pl.Series) -> pl.Series:
        if s.n_chunks() > 1:
            return s
        return pl.concat([s.slice(a, n) for a, n in zip(starts, lengths, strict=True)], rechunk=False)

    return pl.DataFrame([cut(s) for s in frame.get_columns()])


def _cell_ids(cells: pl.DataFrame) -> pl.Series:
    """The cells table's ids; codes are their row index, which ``cell_code`` must agree with."""
    if "cell_id" not in cells.columns:
        raise ValueError("cells must be the table returned by Ingest.cells (no cell_id column)")
    if "cell_code" in cells.columns and not cells.get_column("cell_code").equals(
            pl.int_range(cells.height, dtype=pl.Int32, eager=True).alias("cell_code")):
        raise ValueError("cells.cell_code must be the row index (0..n-1): pass the table from Ingest.cells")
    return cells.get_column("cell_id")


def site_ids(cell_id: pl.Series) -> tuple[pl.Series, pl.Series]:
    """The site of each cell id: ``ECI >> 8`` for a 28-bit ECI, ``A`` for ``A-B`` ids, else null;
    and whether the id is an ECI (the one rule, used for cells and for cells estimated from
    samples)."""
    cid = cell_id.cast(pl.String)
    eci = cid.cast(pl.Int64, strict=False)
    is_eci = (eci.is_not_null() & (eci >= 0) & (eci < (1 << ECI_BITS))).fill_null(False)
    pair = cid.str.extract(r"^(\d+)-\d+$", 1)
    site = pl.select(
        pl.when(pl.lit(is_eci)).then((pl.lit(eci) // (1 << ECI_CELL_BITS)).cast(pl.String))
        .otherwise(pl.lit(pair))
    ).to_series().alias("site_id")
    return site, is_eci.alias("is_eci")


def _derive_sites(df: pl.DataFrame, run: _Run) -> pl.DataFrame:
    """site_id from the cell_id: ``ECI >> 8`` for a 28-bit ECI, ``A`` for ``A-B`` ids."""
    site, is_eci = site_ids(df.get_column("cell_id"))
    eci = df.get_column("cell_id").cast(pl.Int64, strict=False)
    out = df.with_columns(site)
    n_eci = int(is_eci.sum())
    if n_eci:
        local = pl.select(pl.when(pl.lit(is_eci)).then(pl.lit(eci) % (1 << ECI_CELL_BITS))).to_series()
        out = out.with_columns(local.cast(pl.Int32).alias("cell_local"))
    run.notes.append(f"site_id derived from cell_id for {int(site.is_not_null().sum())} of {df.height} "
                     f"cells ({n_eci} 28-bit ECIs)")
    return out
