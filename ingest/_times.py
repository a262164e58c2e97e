"""The date and time forms ingest reads without being told, and how it tells day-first dates
from month-first ones.

Two kinds of forms:

* **unambiguous** ones (year first, or a month name): tried value by value, in the order below,
  the form that read the last values first (a file in one form costs one parse per value);
* **numeric day/month** forms (``01/02/2026``, ``01-02-26``, ``01.02.2026``): the order is
  decided once per file from its values: a value whose first number is over 12 proves
  day-first, one whose second is over 12 month-first. When no value decides, or values prove
  both, the file is refused with one line asking for ``[ingest.formats.<feed>]``.

Epoch seconds and milliseconds, ISO 8601 with an offset and the compact all-digit forms are read
as before (kqi.schema).
"""

from __future__ import annotations

import re

from kqi.schema import TIMESTAMP_FORMATS

#: times of day after a date (one space, or ``T`` after a year-first date)
TIME_FORMATS: tuple[str, ...] = ("%H:%M:%S", "%H:%M", "%H:%M:%S%.f", "%I:%M:%S %p", "%I:%M %p")
#: year-first dates
YEAR_FIRST: tuple[str, ...] = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d")
#: dates with a month name (English abbreviations: Jun, Sep ...)
MONTH_NAME: tuple[str, ...] = ("%d-%b-%y", "%d-%b-%Y", "%d %b %Y", "%d/%b/%Y", "%b %d %Y", "%b %d, %Y")
#: whole forms no generated combination covers
SPECIAL: tuple[str, ...] = ("%Y.%m.%d_%H.%M.%S",)  # G-NetTrack Pro logs: 2019.12.14_10.16.30


def _combined(dates: tuple[str, ...], seps: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for d in dates:
        out.extend(f"{d}{sep}{t}" for sep in seps for t in TIME_FORMATS)
        out.append(d)
    return out


#: every unambiguous form, in the order tried (the schema's common ones first)
UNAMBIGUOUS: tuple[str, ...] = tuple(dict.fromkeys([
    *TIMESTAMP_FORMATS, "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f",
    *_combined(YEAR_FIRST, (" ", "T")), *SPECIAL, *_combined(MONTH_NAME, (" ",)),
]))
#: forms with a month name: tried only on values holding letters
NAMED: frozenset[str] = frozenset(f for f in UNAMBIGUOUS if "%b" in f)

#: numeric dates, day first and month first (same separators, so a file's values compare)
DAY_FIRST: tuple[str, ...] = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y", "%d-%m-%y", "%d.%m.%y")
MONTH_FIRST: tuple[str, ...] = ("%m/%d/%Y", "%m-%d-%Y", "%m.%d.%Y", "%m/%d/%y", "%m-%d-%y", "%m.%d.%y")
#: a value of the numeric day/month kind
DAY_MONTH = re.compile(r"^\d{1,2}(?:/\d{1,2}/|-\d{1,2}-|\.\d{1,2}\.)\d{2,4}(?:[ T]|$)")


def with_times(date_format: str) -> list[str]:
    """A date form followed by each time of day, then alone."""
    return [*(f"{date_format} {t}" for t in TIME_FORMATS), date_format]


def describe(fmt: str) -> str:
    """A form as the report shows it."""
    return {"epoch_s": "epoch seconds", "epoch_ms": "epoch milliseconds"}.get(fmt, fmt)
