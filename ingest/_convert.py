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

from kqi.io import CONTROL
from kqi.schema import (
    COMPACT_TIMESTAMP_FORMATS,
    PLAUSIBLE_YEARS,
    SERVICE_ALIASES,
    SERVICE_CODE,
    TIMESTAMP_FORMATS,
    Column,
)

from ._kernels import _all_pass

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


def clean_numeric(frame: pl.DataFrame, columns: dict[str, Column]) -> set[str]:
    """Source columns of ``frame`` already numeric and passing every value check.

    Typed columns (Parquet, typed CSV) are checked with a few reductions (null count, sum, min,
    max), all columns' in one parallel select; such a column then needs no per-row check masks
    at all, which is most of the cost of a clean batch.
    """
    todo = {src: col for src, col in columns.items()
            if col.kind in ("float", "int", "flag") and frame.schema[src].is_numeric()}
    # floats: one pass of a kernel (polars' NaN-aware min/max cost more than the rest of a batch)
    floats = {src for src, col in todo.items() if frame.schema[src].is_float()}
    passed = {src for src in floats if _float_passes(frame.get_column(src), todo[src])}
    todo = {src: col for src, col in todo.items() if src not in floats}
    if not todo:
        return passed
    stats = frame.select([e for src, col in todo.items() for e in _stats(src, col, frame.schema[src])]
                         ).row(0, named=True)
    return passed | {src for src, col in todo.items()
                     if _passes_stats(stats, src, col, frame.height, frame.schema[src])}


def _float_passes(s: pl.Series, col: Column) -> bool:
    """Whether every non-null value of the float series ``s`` is finite and passes ``col``'s checks."""
    n = len(s)
    if s.null_count() == n:
        return True
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
    return bool(_all_pass(values, valid, off, off + n, lo, hi, col.kind in ("int", "flag")))


_ALL_VALID = np.full(1 << 18, 0xFF, dtype=np.uint8)
_ALL_VALID.flags.writeable = False


def _numeric(col: Column, raw: pl.Series, checks: Checks, clean: bool = False) -> pl.Series:
    """Float64 values of a numeric column; unparseable text fails, NaN means missing."""
    if clean:
        return raw.cast(pl.Float64)
    if raw.dtype.is_numeric() or raw.dtype == pl.Boolean:
        v = raw.cast(pl.Float64)
        text = None
    else:
        text = raw.cast(pl.String) if raw.dtype != pl.String else raw
        text = text.str.strip_chars()
        v = text.cast(pl.Float64, strict=False)
        bad = v.is_null() & text.is_not_null()
        if bad.any():
            bad = bad & ~_is_null_token(text)
            if col.kind == "flag" and bad.any():
                words = text.str.to_lowercase().replace_strict(FLAG_WORDS, default=None,
                                                               return_dtype=pl.Float64)
                v = v.fill_null(words)
                bad = bad & words.is_null()
            checks.add(bad, f"{col.name}: not a number", text)
    if v.is_nan().any():
        v = v.fill_nan(None)
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


def convert_float(col: Column, raw: pl.Series, checks: Checks, clean: bool = False) -> pl.Series:
    return _numeric(col, raw, checks, clean).alias(col.name)


def convert_int(col: Column, raw: pl.Series, checks: Checks, clean: bool = False) -> pl.Series:
    if raw.dtype.is_integer():
        v = raw.cast(pl.Int64)
        if not clean and (col.lo is not None or col.hi is not None):
            _numeric(col, raw, checks)
        return v.alias(col.name)
    f = _numeric(col, raw, checks, clean)
    if not clean:
        checks.add(f.is_not_null() & (f != f.floor()), f"{col.name}: not a whole number", f)
    v = f.cast(pl.Int64, strict=False)
    checks.add(v.is_null() & f.is_not_null(), f"{col.name}: too large", f)
    return v.alias(col.name)


def convert_flag(col: Column, raw: pl.Series, checks: Checks, clean: bool = False) -> pl.Series:
    if clean and raw.dtype == pl.Int8:
        f = raw
    else:
        f = _numeric(col, raw, checks, clean)
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


class TimestampParser:
    """Parses timestamps: the schema's text formats or epoch seconds (milliseconds when large).

    Naive times are in ``timezone`` and stored as UTC. The format that parsed the last batch is
    tried first, so a file in one format costs one parse per value.
    """

    def __init__(self, timezone: str) -> None:
        self.timezone = timezone
        self._formats = [*TIMESTAMP_FORMATS, *FRACTION_FORMATS]

    def _localize(self, naive: pl.Series, checks: Checks, col: Column, text: pl.Series | None) -> pl.Series:
        if self.timezone == "UTC":
            return naive.dt.replace_time_zone("UTC")
        local = naive.dt.replace_time_zone(self.timezone, ambiguous="earliest", non_existent="null")
        checks.add(local.is_null() & naive.is_not_null(),
                   f"{col.name}: time does not exist in {self.timezone}", text)
        return local.dt.convert_time_zone("UTC")

    def convert(self, col: Column, raw: pl.Series, checks: Checks) -> pl.Series:
        dtype = raw.dtype
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is None:
                out = self._localize(raw.cast(pl.Datetime("us")), checks, col, None)
            else:
                out = raw.dt.convert_time_zone("UTC")
            return out.cast(DATETIME).alias(col.name)
        if dtype == pl.Date:
            return self._localize(raw.cast(pl.Datetime("us")), checks, col, None).cast(DATETIME).alias(col.name)
        if dtype.is_numeric():
            return self._epoch(raw.cast(pl.Float64), checks, col, None).alias(col.name)
        text = _text(raw)
        n = len(text)
        naive = full(n, None, pl.Datetime("us"), col.name)
        todo = text.is_not_null()
        for i, fmt in enumerate(list(self._formats)):
            if not todo.any():
                break
            idx = todo.arg_true()
            parsed = text.gather(idx).str.strptime(pl.Datetime("us"), fmt, strict=False)
            hit = parsed.is_not_null()
            if hit.any():
                naive = naive.scatter(idx.filter(hit), parsed.filter(hit))
                todo = todo.scatter(idx.filter(hit), False)
                if i:
                    self._formats.insert(0, self._formats.pop(i))
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
        if todo.any():
            naive_compact = self._compact(text, todo)
            hit = naive_compact.is_not_null()
            if hit.any():
                local = self._localize(naive_compact, checks, col, text)
                out = out.zip_with(~hit, local)
                todo = todo & ~hit
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
