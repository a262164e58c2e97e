"""Validation on Spark, built from the same definitions as the local ingest.

Every check comes from data the local reader uses too: the feed's columns, kinds, required
flags, ranges and defaults (:mod:`kqi.schema`), the null tokens, flag words and timestamp forms
(:mod:`kqi.ingest._convert` and :mod:`kqi.schema`), the service aliases. A row's reason is its
first failing check in the local reader's order (columns in schema order, then the cell lookup,
then duplicates), with the same words, so a rejects file reads the same whichever engine wrote it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kqi.errors import InputError
from kqi.ingest._convert import (
    EPOCH_MS_FROM,
    FLAG_WORDS,
    FRACTION_FORMATS,
    ID_COLUMNS,
    NULL_TOKENS,
    OFFSET_FORMATS,
)
from kqi.io import CONTROL, NUMBER
from kqi.schema import (
    COMPACT_TIMESTAMP_FORMATS,
    PLAUSIBLE_YEARS,
    SERVICE_ALIASES,
    SERVICE_CODE,
    TIMESTAMP_FORMATS,
    Column,
    FeedSchema,
)

if TYPE_CHECKING:
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame
    from pyspark.sql.types import DataType

#: quoted values in reasons are cut to this many characters (as locally)
_VALUE_CHARS = 40
_SPECIAL_FLOATS = {"inf": "Infinity", "+inf": "Infinity", "-inf": "-Infinity",
                   "infinity": "Infinity", "+infinity": "Infinity", "-infinity": "-Infinity"}


def java_pattern(fmt: str) -> str:
    """A strptime form of :data:`kqi.schema.TIMESTAMP_FORMATS` as a Spark datetime pattern."""
    table = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss",
             "%.f": "[.SSSSSSSSS]", "%#z": "XXX"}
    out, i = [], 0
    while i < len(fmt):
        for k, v in table.items():
            if fmt.startswith(k, i):
                out.append(v)
                i += len(k)
                break
        else:
            ch = fmt[i]
            out.append(f"'{ch}'" if ch.isalpha() else ch)
            i += 1
    return "".join(out)


@dataclass
class Check:
    """Rows where ``fails`` holds get ``message`` (and the quoted ``value`` when given)."""

    fails: SparkColumn
    message: str
    value: SparkColumn | None = None

    def reason(self) -> SparkColumn:
        from pyspark.sql import functions as F

        if self.value is None:
            text = F.lit(self.message)
        else:
            quoted = F.coalesce(F.substring(self.value.cast("string"), 1, _VALUE_CHARS), F.lit(""))
            text = F.concat(F.lit(self.message + " '"), quoted, F.lit("'"))
        return F.when(self.fails, text)


@dataclass
class Converted:
    """Canonical columns of a feed as Spark columns, and the checks in the local order.

    Every intermediate (stripped text, parsed value) is a column of :attr:`frame` of its own
    (:meth:`define`), so the checks that read it do not repeat its work: an expression tree of
    nested parses would be evaluated once per reference.
    """

    frame: DataFrame
    values: dict[str, SparkColumn] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    _levels: dict[int, dict[str, SparkColumn]] = field(default_factory=dict)

    def define(self, name: str, expr: SparkColumn, level: int) -> SparkColumn:
        """Make ``expr`` column ``name`` of :attr:`frame` (level 1 reads the source columns,
        level n the columns of lower levels); return a reference to it. One projection per
        level (:meth:`materialize`): a column added at a time re-analyses the whole plan."""
        from pyspark.sql import functions as F

        self._levels.setdefault(level, {})[name] = expr
        return F.col(f"`{name}`")

    def materialize(self) -> None:
        for level in sorted(self._levels):
            self.frame = self.frame.withColumns(self._levels[level])
        self._levels = {}

    def reason(self) -> SparkColumn:
        """The first failing check's reason (null when the row passes)."""
        from pyspark.sql import functions as F

        if not self.checks:
            return F.lit(None).cast("string")
        return F.coalesce(*[c.reason() for c in self.checks])

    def fails(self) -> SparkColumn:
        from pyspark.sql import functions as F

        if not self.checks:
            return F.lit(False)
        out = F.coalesce(self.checks[0].fails, F.lit(False))
        for c in self.checks[1:]:
            out = out | F.coalesce(c.fails, F.lit(False))
        return out


def _src(name: str) -> SparkColumn:
    from pyspark.sql import functions as F

    return F.col(f"`{name}`")


#: text every rule of :func:`convert_string` leaves as it is (no white space, control
#: character or dot): it is returned unchanged without running them
PLAIN_TEXT = r"^[A-Za-z0-9_:/#@+-]+$"
#: what polars' ``str.strip_chars()`` strips (Unicode White_Space)
WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
              "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def strip_text(c: SparkColumn) -> SparkColumn:
    """Text stripped of surrounding (Unicode) white space; empty -> null."""
    from pyspark.sql import functions as F

    s = F.btrim(c.cast("string"), F.lit(WHITESPACE))
    return F.when(s != "", s)


def _is_null_token(text: SparkColumn) -> SparkColumn:
    from pyspark.sql import functions as F

    return F.lower(text).isin(list(NULL_TOKENS))


def convert_string(col: Column, raw: SparkColumn, dtype: DataType) -> SparkColumn:
    """As :func:`kqi.ingest._convert.convert_string`: stripped, control characters removed, line
    breaks as spaces, an id written as ``4926720.0`` read as ``4926720``."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType

    if isinstance(dtype, DoubleType | FloatType):
        s = F.when(raw == F.floor(raw), raw.cast("long").cast("string")).otherwise(raw.cast("string"))
        return strip_text(s)
    text = raw.cast("string")
    s = F.regexp_replace(strip_text(text), CONTROL, "")
    if col.name != "description":
        s = F.regexp_replace(s, r"[\t\r\n]+", " ")
    s = strip_text(s)
    if col.name in ID_COLUMNS:
        s = F.regexp_replace(s, r"^(\d+)\.0+$", "$1")
    # the common case in one cheap test: a value of plain characters (no space, control
    # character or dot) is its own converted text; only the others take the rules above
    return F.when(text.rlike(PLAIN_TEXT), text).otherwise(s)


def _numeric(col: Column, raw: SparkColumn, dtype: DataType, out: Converted) -> SparkColumn:
    """Float value of a numeric column with the local checks: not a number, not finite, range."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, NumericType

    if isinstance(dtype, NumericType | BooleanType):
        v = raw.cast("double")
        text = None
    else:
        text = out.define(f"_t_{col.name}", strip_text(raw), 1)
        lowered = F.lower(text)
        special = F.create_map(*[F.lit(x) for kv in _SPECIAL_FLOATS.items() for x in kv])
        v = (F.when(text.rlike(NUMBER), text.cast("double"))
             .when(lowered.isin(list(_SPECIAL_FLOATS)), special[lowered].cast("double")))
        bad = v.isNull() & text.isNotNull() & ~_is_null_token(text) & (lowered != "nan")
        if col.kind == "flag":
            words = F.create_map(*[F.lit(x) for kv in FLAG_WORDS.items() for x in kv])
            v = F.coalesce(v, words[lowered])
            bad = bad & words[lowered].isNull()
        out.checks.append(Check(bad, f"{col.name}: not a number", text))
        v = out.define(f"_n_{col.name}", v, 2)
        out.checks[-1] = Check(v.isNull() & text.isNotNull() & ~_is_null_token(text)
                               & (lowered != "nan"), f"{col.name}: not a number", text)
    v = out.define(f"_v_{col.name}", F.when(~F.isnan(v), v), 3)
    out.checks.append(Check(F.abs(v) == float("inf"), f"{col.name}: not a finite number", text))
    if col.lo is not None or col.hi is not None:
        cond = F.lit(False)
        if col.lo is not None:
            cond = cond | (v < float(col.lo))
        if col.hi is not None:
            cond = cond | (v > float(col.hi))
        out.checks.append(Check(cond, f"{col.name}: out of range [{_num(col.lo)}, {_num(col.hi)}]",
                                text if text is not None else _float_text(v)))
    return v


def _float_text(v: SparkColumn) -> SparkColumn:
    """A float as the local reader writes it in a reason (``3000.0``, not Spark's ``3000.0``/``1.0E20``
    for large values: close enough for the rare typed value out of range)."""
    return v.cast("string")


def _num(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else str(x)


def _timestamp(col: Column, raw: SparkColumn, dtype: DataType, out: Converted) -> SparkColumn:
    """UTC instant of a timestamp column: typed, epoch seconds or ms, or text in the schema's
    forms (naive text in the session time zone, which is ``config.ingest.timezone``)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, NumericType, TimestampNTZType, TimestampType

    if isinstance(dtype, TimestampType | TimestampNTZType | DateType):
        return raw.cast("timestamp")
    if isinstance(dtype, NumericType):
        v, ok = _epoch(raw.cast("double"))
        out.checks.append(Check(raw.isNotNull() & ~F.isnan(raw.cast("double")) & ~ok,
                                f"{col.name}: epoch value out of range", _float_text(raw.cast("double"))))
        return v
    text = out.define(f"_t_{col.name}", strip_text(raw), 1)
    tries = [F.try_to_timestamp(text, F.lit(java_pattern(f)))
             for f in (*TIMESTAMP_FORMATS, *FRACTION_FORMATS, *OFFSET_FORMATS)]
    digits = text.rlike(r"^\d+$")
    lo, hi = PLAUSIBLE_YEARS
    for width, fmt in COMPACT_TIMESTAMP_FORMATS.items():
        t = F.try_to_timestamp(text, F.lit(java_pattern(fmt)))
        tries.append(F.when(digits & (F.length(text) == width) & F.year(t).between(lo, hi), t))
    num = F.when(text.rlike(NUMBER), text.cast("double"))
    epoch, _ = _epoch(num)
    tries.append(epoch)
    v = out.define(f"_v_{col.name}", F.coalesce(*tries), 2)
    out.checks.append(Check(v.isNull() & text.isNotNull() & ~_is_null_token(text),
                            f"{col.name}: not a timestamp", text))
    return v


def _epoch(v: SparkColumn) -> tuple[SparkColumn, SparkColumn]:
    """Epoch seconds (milliseconds from 1e11) within the plausible years, as a timestamp."""
    import datetime as dt

    from pyspark.sql import functions as F

    lo, hi = PLAUSIBLE_YEARS
    lo_s = dt.datetime(lo, 1, 1, tzinfo=dt.UTC).timestamp()
    hi_s = dt.datetime(hi, 1, 1, tzinfo=dt.UTC).timestamp()
    ms = F.abs(v) >= EPOCH_MS_FROM
    secs = F.when(ms, v / 1e3).otherwise(v)
    ok = v.isNotNull() & ~F.isnan(v) & (F.abs(v) != float("inf")) & secs.between(lo_s, hi_s)
    micros = F.round(F.when(ms, v * 1e3).otherwise(v * 1e6), 0).cast("long")
    return F.when(ok, F.timestamp_micros(micros)), F.coalesce(ok, F.lit(False))


def _service(col: Column, raw: SparkColumn, out: Converted) -> SparkColumn:
    """``service_code`` from canonical names, then aliases (any case, stripped)."""
    from pyspark.sql import functions as F

    codes = {k: SERVICE_CODE[v] for k, v in SERVICE_ALIASES.items()}
    lut = F.create_map(*[F.lit(x) for kv in codes.items() for x in kv])
    r = raw.cast("string")
    # the stripped text only for a value that is not a service name as it is (coalesce and
    # the check's AND stop early), so the common row costs one map lookup
    code = out.define(f"_v_{col.name}", F.coalesce(lut[r], lut[F.lower(strip_text(r))])
                      .cast("tinyint"), 1)
    out.checks.append(Check(code.isNull() & strip_text(r).isNotNull(),
                            f"{col.name}: unknown service", r))
    return code


def check_types(name: str, frame: DataFrame, mapping: dict[str, str], schema: FeedSchema) -> None:
    """Refuse a mapped column whose Spark type cannot hold its kind (a list, a struct, binary, a
    bool where a number or a name is meant): one line naming the source and the column."""
    from pyspark.sql.types import (
        BooleanType,
        DateType,
        NullType,
        NumericType,
        StringType,
        TimestampNTZType,
        TimestampType,
    )

    types = {f.name: f.dataType for f in frame.schema.fields}
    for canon, src in mapping.items():
        kind = schema.column(canon).kind
        t = types[src]
        ok = isinstance(t, StringType | NullType) or (
            isinstance(t, NumericType) if kind in ("string", "service", "float", "int") else
            isinstance(t, NumericType | BooleanType) if kind == "flag" else
            isinstance(t, NumericType | TimestampType | TimestampNTZType | DateType))
        if not ok:
            raise InputError(name, f"column of type {t.simpleString()} cannot hold {kind} values "
                                   f"({canon})", column=src)


def convert(schema: FeedSchema, mapping: dict[str, str], frame: DataFrame, *,
            skip: tuple[str, ...] = ()) -> Converted:
    """Canonical columns of ``frame`` and the local reader's checks, column by column.

    ``skip`` names columns the caller converts itself (the app tests' cell id, resolved against
    the cells table after the other checks).
    """
    from pyspark.sql import functions as F

    types = {f.name: f.dataType for f in frame.schema.fields}
    out = Converted(frame)
    for col in schema.columns:
        src = mapping.get(col.name)
        if col.name in skip:
            continue
        if src is None:
            if col.kind == "service":
                out.values["service_code"] = F.lit(None).cast("tinyint")
            else:
                out.values[col.name] = F.lit(col.default).cast(_spark_type(col))
            continue
        raw, dtype = _src(src), types[src]
        if col.kind == "string":
            v = out.define(f"_v_{col.name}", convert_string(col, raw, dtype), 1)
        elif col.kind in ("float", "int", "flag"):
            v = _numeric(col, raw, dtype, out)
            if col.kind == "int":
                out.checks.append(Check(v.isNotNull() & (v != F.floor(v)),
                                        f"{col.name}: not a whole number", _float_text(v)))
                out.checks.append(Check(F.abs(v) >= 9.223372036854775807e18,
                                        f"{col.name}: too large", _float_text(v)))
            if col.kind == "flag":
                out.checks.append(Check(v.isNotNull() & (v != 0.0) & (v != 1.0),
                                        f"{col.name}: must be 0 or 1", _float_text(v)))
            if col.default is not None:
                v = F.coalesce(v, F.lit(float(col.default)))
            v = out.define(f"_c_{col.name}", v.cast(_spark_type(col)), 4)
        elif col.kind == "timestamp":
            v = _timestamp(col, raw, dtype, out)
        else:
            v = _service(col, raw, out)
        if col.required:
            out.checks.append(Check(v.isNull(), f"{col.name}: missing value"))
        out.values["service_code" if col.kind == "service" else col.name] = v
    out.materialize()
    return out


def _spark_type(col: Column) -> str:
    return {"string": "string", "float": "double", "int": "long", "flag": "tinyint",
            "timestamp": "timestamp", "service": "string"}[col.kind]


def field_text(name: str) -> str:
    """A source column name quoted for Spark SQL."""
    return "`" + re.sub("`", "``", name) + "`"
