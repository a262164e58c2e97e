"""Plain-Python references for the flagging kernels (kqi._kernels), written for clarity, not speed.

Rows are dicts with the batch columns (``cell_code``, ``service_code``, ``success``, the six KQIs,
``good``, ``ts``); ``None`` is a null. The rules are spelled out here as the data contract states
them, independently of the kernels' branch-free form.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from typing import Any

import polars as pl

from kqi.config import Config

SERVICES = ("browsing", "video", "gaming")
#: KQIs each service's rule needs (data contract, "Default test verdicts")
RULES: dict[int, tuple[str, ...]] = {
    0: ("page_load_ms",),
    1: ("initial_buffer_ms", "stall_ratio"),
    2: ("rtt_ms", "jitter_ms", "loss_pct"),
}
KQIS = ("page_load_ms", "initial_buffer_ms", "stall_ratio", "rtt_ms", "jitter_ms", "loss_pct")


def verdict(row: dict[str, Any], config: Config) -> int:
    """1 when the test is good, else 0."""
    k = config.kqi
    if k.use_source_good and row.get("good") is not None:
        return 1 if row["good"] != 0 else 0
    success = row.get("success")
    if success is not None and success == 0:
        return 0
    for name in RULES[row["service_code"]]:
        value = row.get(name)
        if value is None or math.isnan(value):
            return 0
        if not value <= getattr(k.targets, name):
            return 0
    return 1


def counts(rows: list[dict[str, Any]], config: Config) -> dict[tuple[int, int], list[int]]:
    """{(cell_code, service_code): [tests, good_tests]} for tests rows."""
    out: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        c = out[(r["cell_code"], r["service_code"])]
        c[0] += 1
        c[1] += verdict(r, config)
    return dict(out)


def daily_counts(rows: list[dict[str, Any]], config: Config
                 ) -> dict[tuple[int, int, dt.date], list[int]]:
    """{(cell_code, service_code, UTC day): [tests, good_tests]} for tests rows."""
    out: dict[tuple[int, int, dt.date], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        day = r["ts"].astimezone(dt.UTC).date()
        c = out[(r["cell_code"], r["service_code"], day)]
        c[0] += 1
        c[1] += verdict(r, config)
    return dict(out)


def phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def flag(tests: int, good: int, service_code: int, config: Config) -> dict[str, Any]:
    """good_rate, Wilson bounds, poor and confidence of one cell x service."""
    k = config.kqi
    t = k.thresholds.for_service(SERVICES[service_code])
    z = k.confidence_z
    rate = good / tests
    denom = 1 + z * z / tests
    centre = (rate + z * z / (2 * tests)) / denom
    half = z * math.sqrt(rate * (1 - rate) / tests + z * z / (4 * tests * tests)) / denom
    low = 0.0 if good == 0 else max(0.0, centre - half)
    high = 1.0 if good == tests else min(1.0, centre + half)
    poor = tests >= k.min_tests and rate <= t
    if k.flag_on_upper_bound:
        poor = poor and high <= t
    if rate == t:
        conf = 0.5
    elif t * (1 - t) <= 0:
        conf = 1.0
    else:
        conf = phi(abs(rate - t) * math.sqrt(tests / (t * (1 - t))))
    return {"good_rate": rate, "rate_low": low, "rate_high": high, "poor": poor,
            "confidence": conf}


def cell_kqi(rows: list[dict[str, Any]], cell_ids: list[str], config: Config
             ) -> list[dict[str, Any]]:
    """The cell_kqi rows, sorted by (cell_id, service name)."""
    out = []
    for (cell, svc), (tests, good) in counts(rows, config).items():
        rec = {"cell_id": cell_ids[cell], "service": SERVICES[svc], "tests": tests,
               "good_tests": good}
        rec.update(flag(tests, good, svc, config))
        out.append(rec)
    return sorted(out, key=lambda r: (r["cell_id"], r["service"]))


# ---- geometry (plain great-circle formulas, for the geo and linking kernels)

#: mean Earth radius, metres (IUGG), as in kqi._geo_kernels
R = 6_371_008.8


def ref_haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * R * math.asin(math.sqrt(min(h, 1.0)))


def ref_bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def good_expr(config: Config) -> pl.Expr:
    """The default test verdict as a plain polars expression over the feed's columns (service
    by name, success 0/1, the six KQIs); a null KQI is not good."""
    tg = config.kqi.targets
    ok = pl.col("success") == 1
    return (
        pl.when(pl.col("service") == "browsing").then(ok & (pl.col("page_load_ms") <= tg.page_load_ms))
        .when(pl.col("service") == "video").then(
            ok & (pl.col("initial_buffer_ms") <= tg.initial_buffer_ms) & (pl.col("stall_ratio") <= tg.stall_ratio))
        .otherwise(ok & (pl.col("rtt_ms") <= tg.rtt_ms) & (pl.col("jitter_ms") <= tg.jitter_ms)
                   & (pl.col("loss_pct") <= tg.loss_pct))
        .fill_null(False)
    )


def repeats(keys: list[tuple[int, int]], ok: list[bool], seen: set[tuple[int, int]]) -> list[bool]:
    """Per row: ``ok`` and its key already in ``seen`` (earlier chunks) or on an earlier ok row;
    ``seen`` gains the ok rows' keys (the one rule of a feed's duplicate-key check)."""
    out = []
    for key, good in zip(keys, ok, strict=True):
        if not good:
            out.append(False)
            continue
        out.append(key in seen)
        seen.add(key)
    return out


def ref_code_table(ids: list[str], queries: list[str | None]) -> list[int]:
    """cell_id -> cell_code as ``ingest._codes.CodeTable`` gives it: ids appended in order (codes
    0, 1, ...), a query's code or -1 when absent or null."""
    table: dict[str, int] = {}
    for i in ids:
        table.setdefault(i, len(table))
    return [-1 if q is None else table.get(q, -1) for q in queries]


def ref_judge_count(rows: list[dict[str, Any]], config: Config,
                    bounds: dict[str, tuple[float, float, bool]]
                    ) -> tuple[int, dict[tuple[int, int], list[int]]]:
    """What ``ingest._fused._judge_count`` decides, row by row: the first row whose judged value
    fails its check (finite, within ``lo..hi``, whole where ``whole``; NaN and None are missing)
    or whose cell or service code is missing (None), else ``len(rows)``; and the counts of the
    rows before it, by (cell_code, service_code). The kernel works in blocks: it stops at the
    start of the block holding that row, having counted the blocks before."""
    first_bad = len(rows)
    for i, r in enumerate(rows):
        failed = r["cell_code"] is None or r["service_code"] is None
        for name, (lo, hi, whole) in bounds.items():
            v = r.get(name)
            if v is None or math.isnan(v):
                continue
            if not (math.isfinite(v) and lo <= v <= hi and (not whole or v == math.floor(v))):
                failed = True
        if failed:
            first_bad = i
            break
    out: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows[:first_bad]:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        c = out[(r["cell_code"], r["service_code"])]
        c[0] += 1
        c[1] += verdict(clean, config)
    return first_bad, dict(out)
