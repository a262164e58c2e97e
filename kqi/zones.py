"""Time-zone conversions of whole columns with one zone look-up per 15-minute stretch.

polars converts between a zone's wall clock and UTC value by value (``replace_time_zone``,
``convert_time_zone`` then ``dt.date``): about 75 ns a value, a quarter of an hourly KPI file's
ingest and more than the verdicts of a test feed. A zone's offset only changes at its
transitions, and since 1970 no zone has two of them within days of each other
(``tests/test_zones.py`` checks every zone of the machine's database). So the offset is looked
up, by polars itself, at the first and the last microsecond of each 15-minute stretch between a
column's first and last time; a stretch whose two offsets agree has no transition inside, and its
values are shifted by that offset in one subtraction. Values in a stretch with a transition (a
gap or an ambiguous hour of local time, the instant of a change in UTC), and columns spanning
more than :data:`MAX_STRETCHES` stretches or shorter than :data:`MIN_ROWS`, are converted by
polars value by value: the results are polars' own, to the microsecond.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

#: the width of a stretch given one offset (microseconds)
STRETCH_US = 15 * 60 * 1_000_000
#: at most this many stretches between a column's first and last time are looked up (682 days)
MAX_STRETCHES = 1 << 16
#: shorter columns are converted by polars directly
MIN_ROWS = 4096

_US_PER_DAY = 86_400_000_000
_US_PER_HOUR = 3_600_000_000


#: zone names read as UTC itself: no look-up at all
UTC_NAMES = ("UTC", "Z", "ETC/UTC")


def _offsets(phys: pl.Series, offset_at: Callable[[pl.Series], pl.Series]) -> pl.Series | None:
    """Per value of ``phys`` (Int64 microseconds), the offset ``offset_at`` gives (Int64
    microseconds, for an Int64 series of instants) at both ends of the value's stretch; null where
    the two differ or the value is null. ``None`` when the column is too short or too long a
    span for stretches to pay."""
    if len(phys) < MIN_ROWS or phys.null_count() == len(phys):
        return None
    stretch = phys // STRETCH_US
    first, last = stretch.min(), stretch.max()
    assert isinstance(first, int)
    assert isinstance(last, int)
    if last - first >= min(MAX_STRETCHES, max(len(phys) // 4, 1024)):
        return None
    starts = pl.int_range(first, last + 1, dtype=pl.Int64, eager=True) * STRETCH_US
    k = len(starts)
    offsets = offset_at(pl.concat([starts, starts + (STRETCH_US - 1)]))
    begin, end = offsets.slice(0, k), offsets.slice(k, k)
    table = pl.select(pl.when(pl.lit(begin) == pl.lit(end)).then(pl.lit(begin))).to_series()
    return table.gather(stretch - first)


def _by_stretches(phys: pl.Series, exact: Callable[[pl.Series], pl.Series]) -> pl.Series:
    """``exact(phys)`` (an Int64 series of microseconds to another Int64 one, polars' own
    conversion), computed as ``phys`` plus the offset ``exact`` gives at each end of the value's
    stretch, and by ``exact`` itself for the values of a stretch with a transition."""
    offset = _offsets(phys, lambda instants: exact(instants) - instants)
    if offset is None:
        return exact(phys)
    out = phys + offset
    todo = offset.is_null() & phys.is_not_null()
    if todo.any():
        idx = todo.arg_true()
        out = out.scatter(idx, exact(phys.gather(idx)))
    return out


def replace_zone(naive: pl.Series, timezone: str) -> pl.Series:
    """polars' own conversion of naive wall-clock times in ``timezone`` to UTC (an ambiguous time
    the earlier, a time in a gap null)."""
    return (naive.cast(pl.Datetime("us"))
            .dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC"))


def local_to_utc(naive: pl.Series, timezone: str) -> pl.Series:
    """Naive wall-clock times in ``timezone`` as ``Datetime("us", "UTC")``: :func:`replace_zone`'s
    values, one zone look-up per stretch of local time."""
    naive = naive.cast(pl.Datetime("us"))
    utc = _by_stretches(naive.to_physical(),
                        lambda wall: replace_zone(wall.cast(pl.Datetime("us")), timezone).to_physical())
    return utc.cast(pl.Datetime("us", "UTC")).alias(naive.name)


def local_wall(ts: pl.Series, timezone: str) -> pl.Series:
    """The wall-clock time in ``timezone`` of each zoned time of ``ts`` (Int64 microseconds since
    1970-01-01 00:00 local): polars' ``convert_time_zone(timezone)`` values, one zone look-up per
    stretch of UTC time (none for UTC itself)."""
    phys = ts.dt.epoch("us")
    if timezone.upper() in UTC_NAMES:
        return phys

    def wall(instants: pl.Series) -> pl.Series:
        return (instants.cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(timezone)
                .dt.replace_time_zone(None).dt.epoch("us"))

    return _by_stretches(phys, wall).alias(ts.name)


def local_days(ts: pl.Series, timezone: str) -> pl.Series:
    """The calendar day in ``timezone`` (days since 1970-01-01, Int32) of each zoned time of
    ``ts``: polars' ``convert_time_zone(timezone).dt.date()``, from :func:`local_wall`."""
    return (local_wall(ts, timezone) // _US_PER_DAY).cast(pl.Int32)


def local_hours(ts: pl.Series, timezone: str) -> pl.Series:
    """The hour of the day in ``timezone`` (0-23, Int8) of each zoned time of ``ts``: polars'
    ``convert_time_zone(timezone).dt.hour()``, from :func:`local_wall`."""
    return ((local_wall(ts, timezone) // _US_PER_HOUR) % 24).cast(pl.Int8)
