"""ingest.core._outside_plausible_years: the calendar-year rule, answered from the ends."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from kqi.ingest.core import _outside_plausible_years

from kqi.schema import PLAUSIBLE_YEARS

LO, HI = PLAUSIBLE_YEARS
EDGES = [dt.datetime(LO, 1, 1), dt.datetime(LO - 1, 12, 31, 23, 59, 59, 999000),
         dt.datetime(HI, 12, 31, 23, 59, 59, 999000), dt.datetime(HI + 1, 1, 1),
         dt.datetime(2026, 11, 2, 13), dt.datetime(13, 2, 26), None]


def _rule(s: pl.Series) -> list[bool]:
    return (s.is_not_null() & ~s.dt.year().is_between(LO, HI)).fill_null(False).to_list()


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
@pytest.mark.parametrize("zone", [None, "Asia/Shanghai"])
def test_the_year_rule_at_its_edges(unit: str, zone: str | None) -> None:
    for values in ([v for v in EDGES if v is None or unit != "ns" or 1700 < v.year < 2200],
                   [dt.datetime(2026, 11, 2), None, dt.datetime(2026, 11, 9)],  # the usual file
                   [dt.datetime(LO, 1, 1), dt.datetime(HI, 12, 31, 23, 59, 59, 999000)],
                   [EDGES[1], dt.datetime(2026, 1, 1)], [dt.datetime(2026, 1, 1), EDGES[3]],
                   [None, None], []):
        s = pl.Series("ts", values, dtype=pl.Datetime(unit))  # type: ignore[arg-type]
        if zone is not None:
            s = s.dt.replace_time_zone(zone)
        assert _outside_plausible_years(s).to_list() == _rule(s), values
