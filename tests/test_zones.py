"""kqi.zones: polars' own zone conversions (both ways), one look-up per stretch."""

from __future__ import annotations

import datetime as dt
import itertools
import struct
import zoneinfo
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kqi import zones
from kqi.zones import STRETCH_US, local_days, local_hours, local_to_utc
from kqi.zones import replace_zone as _replace_zone

#: zones with DST both ways, half- and quarter-hour offsets, a 30-minute DST (Lord Howe),
#: midnight transitions (Sao Paulo, Havana), none (Shanghai), and a day skipped (Apia, 2011)
ZONES = ["Asia/Shanghai", "Europe/Dublin", "America/New_York", "Australia/Lord_Howe",
         "Asia/Kathmandu", "America/Sao_Paulo", "America/Havana", "Pacific/Apia",
         "Asia/Tehran", "Pacific/Chatham", "Europe/London", "UTC", "Etc/GMT-14"]


def local_date_days(ts: pl.Series, timezone: str) -> pl.Series:
    """The reference: polars' own calendar day in ``timezone`` (days since 1970-01-01)."""
    return ts.dt.convert_time_zone(timezone).dt.date().cast(pl.Int32)


def _transitions(zone: str) -> list[int]:
    """The zone's transition instants (epoch seconds) from its TZif file (the 64-bit block)."""
    path = next((Path(p) / zone for p in zoneinfo.TZPATH if (Path(p) / zone).is_file()), None)
    if path is None:
        return []
    data = path.read_bytes()
    if data[:4] != b"TZif":
        return []
    counts = struct.unpack(">6l", data[20:44])
    isutc, isstd, leap, timecnt, typecnt, charcnt = counts
    if data[4:5] in (b"2", b"3", b"4"):  # skip the 32-bit block to the 64-bit one
        skip = 44 + timecnt * 5 + typecnt * 6 + charcnt + leap * 8 + isstd + isutc
        counts = struct.unpack(">6l", data[skip + 20:skip + 44])
        timecnt = counts[3]
        return list(struct.unpack(f">{timecnt}q", data[skip + 44:skip + 44 + 8 * timecnt]))
    return list(struct.unpack(f">{timecnt}l", data[44:44 + 4 * timecnt]))


def _times_around(zone: str, n: int, seed: int) -> pl.Series:
    """n naive local times: near each of the zone's transitions since 1970 (within two hours,
    as wall-clock times on both sides) and anywhere in between, with nulls."""
    rng = np.random.default_rng(seed)
    tz = zoneinfo.ZoneInfo(zone)
    near = []
    for t in _transitions(zone):
        if 0 <= t < 4_102_444_800:
            for side in (-1, 1):
                wall = dt.datetime.fromtimestamp(t + side, tz).replace(tzinfo=None)
                near.append(int((wall - dt.datetime(1970, 1, 1)).total_seconds()) * 1_000_000)
    base = np.array(near or [1_700_000_000_000_000], dtype=np.int64)
    picks = base[rng.integers(0, len(base), n)] + rng.integers(-7_200_000_000, 7_200_000_000, n)
    s = pl.Series("ts", picks).cast(pl.Datetime("us"))
    return s.scatter(rng.integers(0, n, n // 50), None)


def _week_start(zone: str) -> int:
    """Three days before the zone's first transition after 2020-09 (microseconds, UTC)."""
    first = next((t for t in _transitions(zone) if t > 1_600_000_000), 1_700_000_000)
    return first * 1_000_000 - 3 * 86_400_000_000


@pytest.mark.parametrize("zone", ZONES)
def test_the_same_as_polars_near_every_transition(zone: str) -> None:
    s = _times_around(zone, 60_000, 1)
    assert local_to_utc(s, zone).equals(_replace_zone(s, zone))


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("seed", [2, 3])
def test_the_same_as_polars_on_a_week_of_times(zone: str, seed: int) -> None:
    # the fast path proper: a week of hourly-KPI-like and random times around a transition
    rng = np.random.default_rng(seed)
    start = _week_start(zone)
    hourly = start + rng.integers(0, 7 * 24, 20_000) * 3_600_000_000
    anywhere = start + rng.integers(0, 7 * 86_400_000_000, 20_000)
    s = pl.Series("ts", np.concatenate([hourly, anywhere])).cast(pl.Datetime("us"))
    got = local_to_utc(s, zone)
    assert got.equals(_replace_zone(s, zone))
    assert got.dtype == pl.Datetime("us", "UTC")


@pytest.mark.parametrize("zone", ["Europe/Dublin", "Australia/Lord_Howe", "America/Sao_Paulo"])
@pytest.mark.parametrize("minutes", [7, 60, 180])
def test_transitions_inside_a_stretch(zone: str, minutes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # stretches that do not end on the transitions (7 minutes) or hold a whole gap or ambiguous
    # hour (1 and 3 hours): those with a transition inside are the ones polars converts
    monkeypatch.setattr(zones, "STRETCH_US", minutes * 60_000_000)
    test_the_same_as_polars_on_a_week_of_times(zone, 4)
    test_local_days_the_same_as_polars(zone, 4)


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("seed", [5, 6])
def test_local_days_the_same_as_polars(zone: str, seed: int) -> None:
    # UTC instants around a transition and around local midnights, a week of them, with nulls
    rng = np.random.default_rng(seed)
    start = _week_start(zone)
    anywhere = start + rng.integers(0, 7 * 86_400_000_000, 30_000)
    near = (start + rng.integers(0, 7, 10_000) * 86_400_000_000
            + rng.integers(-14 * 3_600_000_000, 14 * 3_600_000_000, 10_000))
    # each local midnight of the fortnight and the microsecond before it
    tz = zoneinfo.ZoneInfo(zone)
    day0 = dt.datetime.fromtimestamp(start // 1_000_000, tz).date()
    midnights = [int(dt.datetime.combine(day0 + dt.timedelta(days=d), dt.time(), tz).timestamp())
                 * 1_000_000 for d in range(14)]
    edges = np.repeat(np.array(midnights, dtype=np.int64), 2) + np.tile([0, -1], 14)
    s = pl.Series("ts", np.concatenate([anywhere, near, edges])).cast(pl.Datetime("us", "UTC"))
    s = s.scatter(rng.integers(0, len(s) - len(edges), 400), None)
    got = local_days(s, zone)
    assert got.equals(local_date_days(s, zone))
    assert got.dtype == pl.Int32
    assert got.name == "ts"
    # and the local hour of the day, as the diagnosis's busy hours read it
    hours = local_hours(s, zone)
    assert hours.equals(s.dt.convert_time_zone(zone).dt.hour())
    assert hours.dtype == pl.Int8


def test_a_long_span_and_a_short_series_take_the_plain_path() -> None:
    long = pl.Series("ts", [dt.datetime(1975, 3, 30, 1, 30), dt.datetime(2150, 10, 26, 1, 30)] * 5000)
    assert local_to_utc(long, "Europe/Dublin").equals(_replace_zone(long, "Europe/Dublin"))
    short = pl.Series("ts", [dt.datetime(2026, 3, 29, 1, 30), None, dt.datetime(2026, 3, 29, 2, 30)])
    assert local_to_utc(short, "Europe/Berlin").to_list()[1:] == [None, None]  # 02:30 does not exist


def test_no_zone_has_two_transitions_in_one_stretch() -> None:
    # what the fast path relies on: a stretch whose first and last offsets agree has no
    # transition inside, as two transitions within one 15-minute stretch of local time would
    # undo each other unseen. Since 1970 no zone's transitions are within two days of each other
    # (an offset changes by a day at most, so their local times are more than a day apart)
    zones = sorted(zoneinfo.available_timezones())
    if not zones:
        pytest.skip("no time zone database on this machine")
    close = []
    for zone in zones:
        ts = [t for t in _transitions(zone) if t >= 0]
        close += [(zone, a) for a, b in itertools.pairwise(ts) if b - a < 2 * 86_400]
    assert not close
    assert STRETCH_US < 86_400 * 1_000_000
