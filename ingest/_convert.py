"""Column conversion: raw values (text, or typed Parquet columns) to canonical polars types.

Every converter returns the converted :class:`polars.Series` and records, in a :class:`Checks`,
which rows fail and why. Checks are kept in the order they are added, so a row's reason is the
first check it fails. Work is vectorised; the slow branches (text booleans, other timestamp
formats) only touch the rows the fast branch could not convert.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from kqi.errors import InputError
from kqi.io import CONTROL
from kqi.schema import (
    COMPACT_TIMESTAMP_FORMATS,
    PLAUSIBLE_YEARS,
    SERVICE_ALIASES,
    SERVICE_CODE,
    Column,
)
from kqi.zones import local_to_utc

from ._kernels import _check_floats, _screen_floats
from ._times import DAY_FIRST, DAY_MONTH, MONTH_FIRST, NAMED, UNAMBIGUOUS, describe, with_times

#: configured forms that read epoch numbers
EPOCH_FORMATS = ("epoch_s", "epoch_ms")
#: text read as a missing value in numeric and timestamp columns (after lower-casing)
NULL_TOKENS: tuple[str, ...] = ("", "-", "--", "na", "n/a", "nan", "null", "none", "#n/a", "\\n", "空")
#: text accepted in 0/1 flag columns
FLAG_WORDS: dict[str, float] = {
    "true": 1.0, "t": 1.0, "yes": 1.0, "y": 1.0, "是": 1.0, "成功": 1.0,
    "false": 0.0, "f": 0.0, "no": 0.0, "n": 0.0, "否": 0.0, "失败": 0.0,
}
#: epoch values at or above this are milliseconds (1e11 s is in the year 5138)
EPOCH_MS_FROM = 1e11
#: besides the schema's forms: fractional seconds (naive), and ISO 8601 with a zone offset or Z
FRACTION_FORMATS: tuple[str, ...] = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f")
OFFSET_FORMATS: tuple[str, ...] = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z")
#: id columns where a spreadsheet's ``4926720.0`` means ``4926720``
ID_COLUMNS = frozenset({"cell_id", "site_id"})
_SERVICE_CODES: dict[str, int] = {k: SERVICE_CODE[v] for k, v in SERVICE_ALIASES.items()}
_VALUE_CHARS = 40
#: text columns that may hold line breaks
MULTILINE = frozenset({"description"})
_UNSAFE = CONTROL[:-1] + "\t\r\n]"

DATETIME = pl.Datetime("us", "UTC")


def full(n: int, value: object, dtype: pl.DataType | type[pl.DataType], name: str = "") -> pl.Series:
    """A constant series of length ``n``."""
    return pl.repeat(value, n, dtype=dtype, eager=True).alias(name)  # type: ignore[call-overload]


@dataclass
class _Check:
    mask: pl.Series
    message: str
    value: pl.Series | None


class Checks:
    """Failing-row masks in check order; turns them into one reason per row."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._items: list[_Check] = []

    def add(self, mask: pl.Series | None, message: str, value: pl.Series | None = None) -> None:
        """Record that rows where ``mask`` is true fail with ``message`` (``value`` quoted after it)."""
        if mask is None:
            return
        mask = mask.fill_null(False)
        if mask.any():
            self._items.append(_Check(mask, message, value))

    def failing(self) -> pl.Series:
        """Boolean mask of rows failing any check so far."""
        out = full(self.n, False, pl.Boolean) if not self._items else None
        for item in self._items:
            out = item.mask if out is None else out | item.mask
        assert out is not None
        return out

    def add_at(self, sub: Checks, idx: np.ndarray) -> None:
        """The checks ``sub`` made on rows ``idx`` of this chunk, as checks of the chunk."""
        for item in sub._items:
            mask = full(self.n, False, pl.Boolean).scatter(idx, item.mask)
            value = None
            if item.value is not None:
                value = full(self.n, None, pl.String).scatter(idx, item.value.cast(pl.String))
            self.add(mask, item.message, value)

    def first_failures(self) -> list[tuple[str, int, list[str]]]:
        """Per check, in order: its message, the rows it is the first failing check of, and the
        first two of their values (for the feed verdict)."""
        out: list[tuple[str, int, list[str]]] = []
        taken: pl.Series | None = None
        for item in self._items:
            m = item.mask if taken is None else item.mask & ~taken
            n = int(m.sum())
            if n:
                ex: list[str] = []
                if item.value is not None:
                    vals = item.value.filter(m).drop_nulls().cast(pl.String).unique(maintain_order=True)
                    ex = [str(v)[:_VALUE_CHARS] for v in vals.head(2).to_list()]
                out.append((item.message, n, ex))
            taken = item.mask if taken is None else taken | item.mask
        return out

    def reasons(self) -> pl.Series:
        """String reason per row (null where the row passes every check)."""
        reason = full(self.n, None, pl.String, "reason")
        if not self._items:
            return reason
        bad = self.failing()
        idx = bad.arg_true()
        sub = full(len(idx), None, pl.String, "reason")
        for item in self._items:
            m = item.mask.gather(idx)
            if item.value is not None:
                v = item.value.gather(idx).cast(pl.String).str.slice(0, _VALUE_CHARS)
                text = pl.select(
                    (pl.lit(item.message + " '") + pl.lit(v).fill_null("") + pl.lit("'")).alias("t")
                ).to_series()
            else:
                text = pl.Series("t", [item.message] * len(idx), dtype=pl.String)
            sub = pl.select(
                pl.when(pl.lit(sub).is_null() & pl.lit(m)).then(pl.lit(text)).otherwise(pl.lit(sub))
            ).to_series()
        return reason.scatter(idx, sub)


def _text(raw: pl.Series) -> pl.Series:
    """Stripped text, empty -> null."""
    s = raw if raw.dtype == pl.String else raw.cast(pl.String)
    s = s.str.strip_chars()
    return s.set(s == "", None) if (s == "").any() else s


def _is_null_token(s: pl.Series) -> pl.Series:
    return s.str.to_lowercase().is_in(NULL_TOKENS)


def _stats(src: str, col: Column, dtype: pl.DataType) -> list[pl.Expr]:
    """Reductions :func:`_passes_stats` needs for one column (computed for all in one select)."""
    c = pl.col(src)
    exprs = [c.null_count().alias(f"{src}\0n"), c.min().alias(f"{src}\0lo"), c.max().alias(f"{src}\0hi")]
    if dtype.is_float():
        exprs.append(c.sum().alias(f"{src}\0sum"))
        if col.kind in ("int", "flag"):
            exprs.append((c.floor() == c).all().alias(f"{src}\0whole"))
    return exprs


def _passes_stats(stats: dict[str, object], src: str, col: Column, n: int, dtype: pl.DataType) -> bool:
    """Whether every non-null value of the numeric column passes ``col``'s checks, from its stats."""
    if stats[f"{src}\0n"] == n:
        return True
    if dtype.is_float():
        # NaN or an infinity anywhere makes the sum non-finite (a finite sum that overflows
        # only sends the column down the careful path)
        total = stats[f"{src}\0sum"]
        if not isinstance(total, int | float) or not math.isfinite(total):
            return False
    lo, hi = stats[f"{src}\0lo"], stats[f"{src}\0hi"]
    if not isinstance(lo, int | float) or not isinstance(hi, int | float):
        return False
    if (col.lo is not None and lo < col.lo) or (col.hi is not None and hi > col.hi):
        return False
    if col.kind == "flag" and not (lo >= 0 and hi <= 1):
        return False
    if col.kind in ("int", "flag") and dtype.is_float():
        return bool(stats[f"{src}\0whole"])
    return True


def clean_numeric(frame: pl.DataFrame, columns: dict[str, Column]) -> dict[str, pl.Series | None]:
    """Source columns of ``frame`` already numeric and passing every value check.

    Typed columns (Parquet, typed CSV) are checked with a few reductions (null count, sum, min,
    max), all columns' in one parallel select; such a column then needs no per-row check masks
    at all, which is most of the cost of a clean batch. Float columns are checked by one kernel
    pass that counts NaN as missing (as :func:`convert_float` does).

    Returns
    -------
    dict
        Clean source column -> the column to use instead (the same values with every NaN made
        null), or None to use it as it is.
    """
    todo = {src: col for src, col in columns.items()
            if col.kind in ("float", "int", "flag") and frame.schema[src].is_numeric()}
    # floats: one pass of a kernel (polars' NaN-aware min/max cost more than the rest of a batch)
    floats = {src for src, col in todo.items() if frame.schema[src].is_float()}
    passed: dict[str, pl.Series | None] = {}
    for src in floats:
        ok, fixed = _float_passes(frame.get_column(src), todo[src])
        if ok:
            passed[src] = fixed
    todo = {src: col for src, col in todo.items() if src not in floats}
    if not todo:
        return passed
    stats = frame.select([e for src, col in todo.items() for e in _stats(src, col, frame.schema[src])]
                         ).row(0, named=True)
    passed.update({src: None for src, col in todo.items()
                   if _passes_stats(stats, src, col, frame.height, frame.schema[src])})
    return passed


def _float_passes(s: pl.Series, col: Column) -> tuple[bool, pl.Series | None]:
    """Whether every non-null, non-NaN value of the float series ``s`` is finite and passes
    ``col``'s checks; and, when it does and ``s`` holds a NaN, ``s`` as Float64 with its NaNs
    made null (the values buffer shared, only the validity bitmap new)."""
    n = len(s)
    if s.null_count() == n:
        return True, None
    arr = s.cast(pl.Float64).to_arrow()
    if isinstance(arr, pa.ChunkedArray):  # pragma: no cover - polars returns one array
        arr = arr.combine_chunks()
    off = arr.offset
    validity, data = arr.buffers()[:2]
    values = np.frombuffer(data, dtype=np.float64, count=off + n)
    valid = (np.frombuffer(validity, dtype=np.uint8, count=(off + n + 7) // 8) if validity is not None
             else _ALL_VALID[: (off + n + 7) // 8] if off + n <= 8 * len(_ALL_VALID)
             else np.full((off + n + 7) // 8, 0xFF, dtype=np.uint8))
    lo = -math.inf if col.lo is None else float(col.lo)
    hi = math.inf if col.hi is None else float(col.hi)
    if col.kind == "flag":
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    whole = col.kind in ("int", "flag")
    if _screen_floats(values, off, off + n, lo, hi, whole) == (False, False):
        return True, None  # every slot passes and none is a NaN: the exact pass is not needed
    out_valid = np.empty((n + 7) // 8, dtype=np.uint8)
    bad, nans = _check_floats(values, valid, off, off + n, lo, hi, whole, out_valid)
    if bad:
        return False, None
    if not nans:
        return True, None
    fixed = pa.Array.from_buffers(pa.float64(), n, [pa.py_buffer(out_valid), data.slice(off * 8, n * 8)])
    return True, pl.Series(s.name, fixed)


_ALL_VALID = np.full(1 << 18, 0xFF, dtype=np.uint8)
_ALL_VALID.flags.writeable = False


def is_percent(col: Column) -> bool:
    """A column the contract gives in percent (0-100)."""
    return col.unit.startswith("percent")


def is_ratio(col: Column) -> bool:
    """A column the contract gives as a share (0-1)."""
    return col.unit == "0-1"


def number_text(text: pl.Series, decimal: str) -> pl.Series:
    """Number text in the form ``cast(Float64)`` reads: a decimal comma made a point and
    thousands separators dropped (``1.234,5`` -> ``1234.5`` with ``decimal=","``;
    ``1,234.5`` -> ``1234.5`` with ``"."``). Other text is left as it is."""
    if decimal == ",":
        grouped = text.str.contains(r"^[+-]?\d{1,3}(\.\d{3})+(,\d*)?$")
        if grouped.any():
            text = pl.select(pl.when(pl.lit(grouped)).then(pl.lit(text).str.replace_all(".", "", literal=True))
                             .otherwise(pl.lit(text))).to_series().alias(text.name)
        return text.str.replace(",", ".", literal=True)
    if text.str.contains(",", literal=True).any():
        grouped = text.str.contains(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")
        if grouped.any():
            text = pl.select(pl.when(pl.lit(grouped)).then(pl.lit(text).str.replace_all(",", "", literal=True))
                             .otherwise(pl.lit(text))).to_series().alias(text.name)
    return text


def _numeric(col: Column, raw: pl.Series, checks: Checks, clean: bool = False, *,
             decimal: str = ".", scale: float = 1.0) -> pl.Series:
    """Float64 values of a numeric column; unparseable text fails, NaN means missing.

    ``decimal``: the file's decimal separator (text values). ``scale`` multiplies every value
    before the range check (a unit read as another: x100 for a fraction in a percent column).
    A text value with a trailing ``%`` in a percent column is that percent; in a ratio (0-1)
    column it is divided by 100.
    """
    if clean and scale == 1.0:
        return raw.cast(pl.Float64)
    pct_rows: pl.Series | None = None
    if raw.dtype.is_numeric() or raw.dtype == pl.Boolean:
        v = raw.cast(pl.Float64)
        text = None
    else:
        text = raw.cast(pl.String) if raw.dtype != pl.String else raw
        text = text.str.strip_chars()
        # a decimal comma file: one literal replace reads every plain value
        v = (text.str.replace(",", ".", literal=True) if decimal == "," else text).cast(pl.Float64, strict=False)
        bad = v.is_null() & text.is_not_null()
        if bad.any():
            # the careful work only on the values that did not read: null tokens, thousands
            # separators, a '%' sign
            idx = bad.arg_true()
            token = _is_null_token(text.gather(idx))
            if token.any():
                bad = bad.scatter(idx.filter(token), False)
                idx = idx.filter(~token)
        if bad.any():
            sub = number_text(text.gather(idx), decimal)
            if is_percent(col) or is_ratio(col):
                pct = sub.str.ends_with("%")
                if pct.any():
                    sub = sub.str.strip_suffix("%").str.strip_chars()
                    pct_rows = full(len(v), False, pl.Boolean).scatter(idx, pct)
            got = sub.cast(pl.Float64, strict=False)
            v = v.scatter(idx, got)
            bad = bad.scatter(idx, got.is_null())
            if col.kind == "flag" and bad.any():
                words = text.str.to_lowercase().replace_strict(FLAG_WORDS, default=None,
                                                               return_dtype=pl.Float64)
                v = v.fill_null(words)
                bad = bad & words.is_null()
            checks.add(bad, f"{col.name}: not a number", text)
    if v.is_nan().any():
        v = v.fill_nan(None)
    if pct_rows is not None:
        # '92.5%' says its unit: a percent as it is, a share /100; the other values are scaled
        own = v / 100.0 if is_ratio(col) else v
        v = pl.select(pl.when(pl.lit(pct_rows)).then(pl.lit(own)).otherwise(pl.lit(v) * scale)
                      ).to_series().alias(v.name)
    elif scale != 1.0:
        v = v * scale
    checks.add(v.is_infinite(), f"{col.name}: not a finite number", text)
    if col.lo is not None or col.hi is not None:
        lo = float("-inf") if col.lo is None else float(col.lo)
        hi = float("inf") if col.hi is None else float(col.hi)
        checks.add((v < lo) | (v > hi), f"{col.name}: out of range [{_num(col.lo)}, {_num(col.hi)}]",
                   text if text is not None else v)
    return v


def _num(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else str(x)


def convert_float(col: Column, raw: pl.Series, checks: Checks, clean: bool = False, *,
                  decimal: str = ".", scale: float = 1.0) -> pl.Series:
    return _numeric(col, raw, checks, clean, decimal=decimal, scale=scale).alias(col.name)


def convert_int(col: Column, raw: pl.Series, checks: Checks, clean: bool = False, *,
                decimal: str = ".") -> pl.Series:
    if raw.dtype.is_integer():
        v = raw.cast(pl.Int64)
        if not clean and (col.lo is not None or col.hi is not None):
            _numeric(col, raw, checks)
        return v.alias(col.name)
    f = _numeric(col, raw, checks, clean, decimal=decimal)
    if not clean:
        checks.add(f.is_not_null() & (f != f.floor()), f"{col.name}: not a whole number", f)
    v = f.cast(pl.Int64, strict=False)
    checks.add(v.is_null() & f.is_not_null(), f"{col.name}: too large", f)
    return v.alias(col.name)


def convert_flag(col: Column, raw: pl.Series, checks: Checks, clean: bool = False, *,
                 decimal: str = ".") -> pl.Series:
    if clean and raw.dtype == pl.Int8:
        f = raw
    else:
        f = _numeric(col, raw, checks, clean, decimal=decimal)
        if not clean:
            checks.add(f.is_not_null() & (f != 0.0) & (f != 1.0), f"{col.name}: must be 0 or 1", f)
    if col.default is not None and f.null_count():
        f = f.fill_null(col.default)
    return f.cast(pl.Int8, strict=False).alias(col.name)


def convert_string(col: Column, raw: pl.Series) -> pl.Series:
    if raw.dtype.is_float():
        # an ID written by a spreadsheet as 4926720.0 is the integer it stands for
        f = raw
        s = pl.select(
            pl.when(pl.lit(f) == pl.lit(f).floor())
            .then(pl.lit(f).cast(pl.Int64, strict=False).cast(pl.String))
            .otherwise(pl.lit(f).cast(pl.String))
        ).to_series()
        return _text(s).alias(col.name)
    s = _text(raw)
    if s.str.contains(_UNSAFE).any():
        # control characters (NUL, ESC ...) and bidi overrides never reach an output; a line break
        # in a name (a quoted newline) is a space: only descriptions keep their lines
        s = s.str.replace_all(CONTROL, "")
        if col.name not in MULTILINE:
            s = s.str.replace_all(r"[\t\r\n]+", " ")
        s = _text(s)
    if col.name in ID_COLUMNS and s.str.ends_with(".0").any():
        s = s.str.replace(r"^(\d+)\.0+$", "${1}")
    return s.alias(col.name)


def convert_service(col: Column, raw: pl.Series, checks: Checks) -> pl.Series:
    """``service_code`` (Int8) of a service column; English or Chinese names, any case."""
    r = raw if raw.dtype == pl.String else raw.cast(pl.String)
    # canonical names first (one cheap pass); aliases, case and spaces only for the rest
    code = pl.select(
        pl.when(pl.lit(r) == "browsing").then(pl.lit(0, pl.Int8))
        .when(pl.lit(r) == "video").then(pl.lit(1, pl.Int8))
        .when(pl.lit(r) == "gaming").then(pl.lit(2, pl.Int8))
    ).to_series()
    miss = code.is_null() & r.is_not_null()
    if miss.any():
        idx = miss.arg_true()
        s = _text(r.gather(idx))
        sub = s.str.to_lowercase().replace_strict(_SERVICE_CODES, default=None, return_dtype=pl.Int8)
        code = code.scatter(idx, sub)
        unknown = full(len(r), False, pl.Boolean).scatter(idx, sub.is_null() & s.is_not_null())
        checks.add(unknown, f"{col.name}: unknown service", r)
    return code.alias("service_code")


def _form_of(value: str, dates: list[str]) -> str:
    """The first form (a date of ``dates`` with or without a time) that reads ``value``."""
    for d in dates:
        for f in with_times(d):
            if pl.Series([value]).str.strptime(pl.Datetime("us"), f, strict=False).is_not_null().all():
                return f
    return dates[0]


def name_form(value: str) -> str | None:
    """The unambiguous form that reads ``value`` (to name what a typed reader parsed)."""
    s = pl.Series([value])
    for f in UNAMBIGUOUS:
        if s.str.strptime(pl.Datetime("us"), f, strict=False).is_not_null().all():
            return f
    return None


class TimestampParser:
    """Parses timestamps: the forms of :mod:`ingest._times`, epoch seconds (milliseconds when
    large), or one configured form.

    Naive times are in ``timezone`` and stored as UTC. The form that parsed the last batch is
    tried first, so a file in one form costs one parse per value. Numeric day/month dates are
    read day-first or month-first as the file's values decide (:meth:`_decide_order`); the forms
    that read the file are counted (:attr:`used`) for the report.

    Parameters
    ----------
    timezone
        Zone of naive times.
    fmt
        A configured strftime form (or ``epoch_s`` / ``epoch_ms``): only that form is read.
    where
        ``(path, feed, column)`` for the one-line error of an undecidable file.
    """

    def __init__(self, timezone: str, fmt: str | None = None,
                 where: tuple[str, str, str] = ("", "", "ts")) -> None:
        self.timezone = timezone
        self.fmt = fmt
        self.where = where
        self._formats = [fmt] if fmt is not None and fmt not in EPOCH_FORMATS else list(UNAMBIGUOUS)
        #: the numeric day/month forms once the file decided (None: not yet)
        self._order: list[str] | None = None
        self.order: str | None = None
        self.used: dict[str, int] = {}
        #: what to call values a typed reader (pyarrow's CSV parser) already read as times
        self.typed_form: str | None = None

    def _count(self, fmt: str, n: int) -> None:
        if n:
            self.used[fmt] = self.used.get(fmt, 0) + n

    def _localize(self, naive: pl.Series, checks: Checks, col: Column, text: pl.Series | None) -> pl.Series:
        if self.timezone == "UTC":
            return naive.dt.replace_time_zone("UTC")
        utc = local_to_utc(naive, self.timezone)
        checks.add(utc.is_null() & naive.is_not_null(),
                   f"{col.name}: time does not exist in {self.timezone}", text)
        return utc

    def convert(self, col: Column, raw: pl.Series, checks: Checks) -> pl.Series:
        dtype = raw.dtype
        if isinstance(dtype, pl.Datetime):
            self._count(self.typed_form or "datetime values", len(raw) - raw.null_count())
            if dtype.time_zone is None:
                out = self._localize(raw.cast(pl.Datetime("us")), checks, col, None)
            else:
                out = raw.dt.convert_time_zone("UTC")
            return out.cast(DATETIME).alias(col.name)
        if dtype == pl.Date:
            self._count("date values", len(raw) - raw.null_count())
            return self._localize(raw.cast(pl.Datetime("us")), checks, col, None).cast(DATETIME).alias(col.name)
        if dtype.is_numeric():
            if self.fmt is not None and self.fmt not in EPOCH_FORMATS:
                raw = raw.cast(pl.String)  # digits in a set form (20260105 with %Y%m%d)
            else:
                return self._epoch(raw.cast(pl.Float64), checks, col, None).alias(col.name)
        text = _text(raw)
        if self.fmt is not None:
            return self._configured(col, text, checks)
        n = len(text)
        naive = full(n, None, pl.Datetime("us"), col.name)
        todo = text.is_not_null()
        lettered: pl.Series | None = None
        for i, fmt in enumerate(list(self._formats)):
            if not todo.any():
                break
            if fmt in NAMED:
                if lettered is None:
                    lettered = text.str.contains("[A-Za-z]").fill_null(False)
                if not (todo & lettered).any():
                    continue
            hit_idx = self._try(text, todo, fmt, naive)
            if hit_idx is not None:
                naive = naive.scatter(hit_idx, self._last)
                todo = todo.scatter(hit_idx, False)
                self._count(fmt, len(hit_idx))
                if i:
                    self._formats.insert(0, self._formats.pop(i))
        if todo.any():
            day_month = todo & text.str.contains(DAY_MONTH.pattern).fill_null(False)
            if day_month.any():
                if self._order is None:
                    self._decide_order(text.filter(day_month))
                for fmt in self._order or []:
                    if not day_month.any():
                        break
                    hit_idx = self._try(text, day_month, fmt, naive)
                    if hit_idx is not None:
                        naive = naive.scatter(hit_idx, self._last)
                        todo = todo.scatter(hit_idx, False)
                        day_month = day_month.scatter(hit_idx, False)
                        self._count(fmt, len(hit_idx))
        out = self._localize(naive, checks, col, text)
        for fmt in OFFSET_FORMATS:
            if not todo.any():
                break
            idx = todo.arg_true()
            parsed = text.gather(idx).str.strptime(DATETIME, fmt, strict=False)
            hit = parsed.is_not_null()
            if hit.any():
                out = out.scatter(idx.filter(hit), parsed.filter(hit))
                todo = todo.scatter(idx.filter(hit), False)
                self._count("ISO 8601 with offset", int(hit.sum()))
        if todo.any():
            naive_compact = self._compact(text, todo)
            hit = naive_compact.is_not_null()
            if hit.any():
                local = self._localize(naive_compact, checks, col, text)
                out = out.zip_with(~hit, local)
                todo = todo & ~hit
                self._count("compact digits", int(hit.sum()))
        if todo.any():
            idx = todo.arg_true()
            sub = text.gather(idx)
            num = sub.cast(pl.Float64, strict=False)
            epoch = self._epoch(num, checks=None, col=col, text=None)
            ok = epoch.is_not_null()
            if ok.any():
                out = out.scatter(idx.filter(ok), epoch.filter(ok))
                todo = todo.scatter(idx.filter(ok), False)
            if todo.any():
                todo = todo & ~_is_null_token(text)
                checks.add(todo, f"{col.name}: not a timestamp", text)
        return out.cast(DATETIME).alias(col.name)

    def _try(self, text: pl.Series, todo: pl.Series, fmt: str, naive: pl.Series) -> pl.Series | None:
        """Rows of ``todo`` that ``fmt`` reads with a plausible year (their values in
        :attr:`_last`), or ``None``."""
        idx = todo.arg_true()
        parsed = text.gather(idx).str.strptime(pl.Datetime("us"), fmt, strict=False)
        lo, hi = PLAUSIBLE_YEARS
        hit = parsed.is_not_null() & parsed.dt.year().is_between(lo, hi).fill_null(False)
        if not hit.any():
            return None
        self._last = parsed.filter(hit)
        return idx.filter(hit)

    def _decide_order(self, values: pl.Series) -> None:
        """Day-first or month-first, from numeric day/month ``values``; one line asking for the
        form when they do not decide it (or prove both)."""
        uniq = values.unique(maintain_order=True).head(50_000)
        lo, hi = PLAUSIBLE_YEARS

        def reads(forms: tuple[str, ...]) -> tuple[pl.Series, list[str]]:
            got = full(len(uniq), False, pl.Boolean)
            chosen: list[str] = []
            for d in forms:
                for f in with_times(d):
                    p = uniq.str.strptime(pl.Datetime("us"), f, strict=False)
                    ok = (p.is_not_null() & p.dt.year().is_between(lo, hi)).fill_null(False)
                    if (ok & ~got).any():
                        got = got | ok
                        if d not in chosen:
                            chosen.append(d)
            return got, chosen

        day, day_forms = reads(DAY_FIRST)
        month, month_forms = reads(MONTH_FIRST)
        only_day, only_month = day & ~month, month & ~day
        path, feed, column = self.where
        if only_day.any() and only_month.any():
            raise InputError(path, f"dates in both day-first ('{uniq.filter(only_day)[0]}') and "
                             f"month-first ('{uniq.filter(only_month)[0]}') order; set "
                             f"[ingest.formats.{feed}] ts to the form of the file", column=column)
        if only_day.any() or only_month.any():
            forms, self.order = (day_forms, "day-first") if only_day.any() else (month_forms, "month-first")
            self._order = [f for d in forms for f in with_times(d)]
            return
        if not day.any():
            self._order = []  # nothing here is a date: rejected as not a timestamp
            return
        example = str(uniq.filter(day)[0])
        raise InputError(path, f"dates such as '{example}' read either day-first or month-first, "
                         f"and no value in the file tells which; set [ingest.formats.{feed}] ts = "
                         f"\"{_form_of(example, day_forms)}\" (day first) or "
                         f"\"{_form_of(example, month_forms)}\"", column=column)

    def _configured(self, col: Column, text: pl.Series, checks: Checks) -> pl.Series:
        """Values in the configured form only."""
        fmt = self.fmt
        assert fmt is not None
        if fmt in EPOCH_FORMATS:
            num = text.cast(pl.Float64, strict=False)
            scale = 1e3 if fmt == "epoch_s" else 1.0
            us = (num * scale * 1e3).round(0).cast(pl.Int64, strict=False)
            out = us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
            lo, hi = PLAUSIBLE_YEARS
            ok = out.is_not_null() & out.dt.year().is_between(lo, hi).fill_null(False)
            out = out.set(~ok, None) if (~ok).any() else out
            self._count(fmt, int(ok.sum()))
            checks.add(~ok & text.is_not_null() & ~_is_null_token(text),
                       f"{col.name}: not a timestamp in the set form {describe(fmt)}", text)
            return out.cast(DATETIME).alias(col.name)
        naive = text.str.strptime(pl.Datetime("us"), fmt, strict=False)
        self._count(fmt, len(naive) - naive.null_count())
        checks.add(naive.is_null() & text.is_not_null() & ~_is_null_token(text),
                   f"{col.name}: not a timestamp in the set form '{fmt}'", text)
        return self._localize(naive, checks, col, text).cast(DATETIME).alias(col.name)

    def detected(self) -> str | None:
        """The forms that read the file, commonest first (``None`` before any value)."""
        if not self.used:
            return None
        forms = sorted(self.used.items(), key=lambda kv: (-kv[1], kv[0]))
        return ", ".join(describe(f) for f, _ in forms)

    @staticmethod
    def _compact(text: pl.Series, todo: pl.Series) -> pl.Series:
        """Naive times from all-digit values of exactly 14, 12 or 8 digits with a plausible year."""
        n = len(text)
        naive = full(n, None, pl.Datetime("us"), text.name)
        digits = todo & text.str.contains(r"^\d+$").fill_null(False)
        if not digits.any():
            return naive
        lengths = text.str.len_bytes()
        for width, fmt in COMPACT_TIMESTAMP_FORMATS.items():
            sel = digits & (lengths == width)
            if not sel.any():
                continue
            idx = sel.arg_true()
            parsed = text.gather(idx).str.strptime(pl.Datetime("us"), fmt, strict=False)
            lo, hi = PLAUSIBLE_YEARS
            ok = parsed.is_not_null() & parsed.dt.year().is_between(lo, hi).fill_null(False)
            if ok.any():
                naive = naive.scatter(idx.filter(ok), parsed.filter(ok))
        return naive

    @staticmethod
    def _epoch(v: pl.Series, checks: Checks | None, col: Column, text: pl.Series | None) -> pl.Series:
        v = v.fill_nan(None)
        # seconds (milliseconds when large) within the plausible years; anything else is a
        # misread value, not a time
        lo, hi = PLAUSIBLE_YEARS
        lo_s = (dt.datetime(lo, 1, 1, tzinfo=dt.UTC)).timestamp()
        hi_s = (dt.datetime(hi, 1, 1, tzinfo=dt.UTC)).timestamp()
        secs = pl.select(pl.when(pl.lit(v).abs() >= EPOCH_MS_FROM).then(pl.lit(v) / 1e3)
                         .otherwise(pl.lit(v))).to_series()
        finite = v.is_not_null() & ~v.is_infinite() & secs.is_between(lo_s, hi_s).fill_null(False)
        us = pl.select(
            pl.when(pl.lit(finite) & (pl.lit(v).abs() >= EPOCH_MS_FROM)).then(pl.lit(v) * 1e3)
            .when(pl.lit(finite)).then(pl.lit(v) * 1e6)
            .otherwise(None)
            .round(0).cast(pl.Int64)
        ).to_series()
        if checks is not None:
            checks.add(v.is_not_null() & ~finite, f"{col.name}: epoch value out of range", v)
        return us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
