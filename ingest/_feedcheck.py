"""Is this file the feed it was given as? The check a wrong ``--kpis`` / ``--tests`` needs.

A feed whose required columns are all present can still be the wrong file: an app-tests file has
the ``ts`` and ``cell_id`` a KPI feed needs, and read as KPIs it would run with every cause "not
judged". So a KPI feed, whose measures are all optional, must have at least one of them; and when
a feed cannot be read, the message says which feed its columns look like (the columns only that
feed has), so the user sees the swapped option at once:
``app_tests.csv: none of the cell KPI columns (prb_util_dl, ...); its columns look like app tests: --tests?``
"""

from __future__ import annotations

from collections.abc import Iterable

from kqi.schema import FEEDS

from ._sources import resolve_columns

#: the command-line option that gives each feed
FEED_OPTIONS: dict[str, str] = {
    "cells": "--cells", "app_tests": "--tests", "app_tests_agg": "--tests", "cell_kpis": "--kpis",
    "complaints": "--complaints", "subscribers": "--subscribers", "samples": "--samples",
}

#: each feed in words, as a user names the file
FEED_WORDS: dict[str, str] = {
    "cells": "a cell list", "app_tests": "app tests", "app_tests_agg": "pre-aggregated app tests",
    "cell_kpis": "cell KPIs", "complaints": "complaints", "subscribers": "subscriber counts",
    "samples": "drive-test samples",
}

#: feeds whose measure columns are all optional, and what a file needs at least one of. A
#: per-test feed is checked per service once read (kqi.flagging.check_kqi_columns: a service's
#: tests without the KQIs its verdict needs stop the run), so only the KPIs are here
MEASURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "cell_kpis": ("cell KPI columns", tuple(c.name for c in FEEDS["cell_kpis"].columns
                                            if c.name not in ("ts", "cell_id"))),
}

#: the two forms of the tests feed are one option: neither is "another feed" to the other
_SAME = {"app_tests": "app_tests_agg", "app_tests_agg": "app_tests"}


def _distinctive(feed: str) -> tuple[str, ...]:
    """The columns of ``feed`` that no other feed has (what makes a file look like it)."""
    others = {c.name for name, f in FEEDS.items() if name not in (feed, _SAME.get(feed))
              for c in f.columns}
    return tuple(c.name for c in FEEDS[feed].columns if c.name not in others)


_DISTINCTIVE: dict[str, tuple[str, ...]] = {name: _distinctive(name) for name in FEEDS}


def looks_like(columns: Iterable[str], feed: str) -> str | None:
    """The other feed ``columns`` look like, or ``None``.

    A feed is a look-alike when the file has at least two of the columns only that feed has (or
    all of them, when it has one: ``subscribers``); the feed with the largest share wins.
    """
    cols = list(columns)
    best: tuple[float, int, str] | None = None
    for name, marks in _DISTINCTIVE.items():
        if name in (feed, _SAME.get(feed)) or not marks:
            continue
        mapping, _ = resolve_columns(FEEDS[name], cols, {})
        hits = sum(1 for c in marks if c in mapping)
        if hits >= 2 or (hits and hits == len(marks)):
            score = (hits / len(marks), hits, name)
            if best is None or score[:2] > best[:2]:
                best = score
    return None if best is None else best[2]


def lookalike_hint(columns: Iterable[str], feed: str) -> str:
    """``"; its columns look like app tests: --tests?"``, or ``""`` when they look like no feed."""
    other = looks_like(columns, feed)
    if other is None:
        return ""
    return f"; its columns look like {FEED_WORDS[other]}: {FEED_OPTIONS[other]}?"


def missing_measures(feed: str, mapped: Iterable[str]) -> str | None:
    """The problem of a feed that has none of its measure columns, or ``None`` when it has one."""
    if feed not in MEASURES:
        return None
    what, names = MEASURES[feed]
    have = set(mapped)
    if any(c in have for c in names):
        return None
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    return f"none of the {what} ({shown})"
