"""Flagging kernels against the plain-Python references (tests/reference.py) and a DuckDB oracle.

Kept small enough to run fast with ``NUMBA_DISABLE_JIT=1`` (one CI job does).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest
import reference as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kqi import _kernels
from kqi.config import Config, KqiConfig, Targets
from kqi.diagnosis import KPI_AGGREGATES
from kqi.flagging import KqiAccumulator, flag_counts, verdicts

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TARGETS = Targets()
DAY0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
BATCH_SCHEMA = {
    "ts": pl.Datetime("us", "UTC"), "cell_code": pl.Int32, "service_code": pl.Int8,
    "success": pl.Int8, **dict.fromkeys(ref.KQIS, pl.Float64), "good": pl.Int8,
}


def kqi_value(name: str) -> st.SearchStrategy[float | None]:
    """Missing, NaN, exactly at / one ulp around the target, or anywhere in a plausible range."""
    t = getattr(TARGETS, name)
    return st.one_of(
        st.none(), st.just(math.nan),
        st.sampled_from([0.0, t, math.nextafter(t, math.inf), math.nextafter(t, -math.inf)]),
        st.floats(0.0, 3.0 * t, allow_nan=False),
    )


ROW = st.fixed_dictionaries({
    "ts": st.integers(0, 5 * 86_400 - 1).map(lambda s: DAY0 + dt.timedelta(seconds=s)),
    "cell_code": st.integers(0, 5),
    "service_code": st.integers(0, 2),
    "success": st.sampled_from([None, 0, 1, 1, 1]),
    **{name: kqi_value(name) for name in ref.KQIS},
    "good": st.sampled_from([None, 0, 1]),
})


def batch_of(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=BATCH_SCHEMA)


def config_with(**kqi: object) -> Config:
    return dataclasses.replace(Config(), kqi=dataclasses.replace(KqiConfig(), **kqi))


def cell_ids(n: int) -> pl.Series:
    # ids whose sort order differs from code order, to check the output's sort
    return pl.Series("cell_id", [f"c{(7 * i) % 11:02d}-{i}" for i in range(n)])


def duckdb_cell_kqi(batch: pl.DataFrame, ids: pl.Series, config: Config) -> pl.DataFrame:
    """The same job in SQL: verdict, count, flag (the outside oracle)."""
    k = config.kqi
    t = k.targets
    th = k.thresholds
    con = duckdb.connect()
    con.register("tests", batch.to_arrow())
    con.register("names", pl.DataFrame({
        "cell_code": pl.int_range(ids.len(), eager=True, dtype=pl.Int32),
        "cell_id": ids}).to_arrow())
    sql = f"""
    WITH v AS (
      SELECT cell_code, service_code,
        CASE WHEN {k.use_source_good} AND good IS NOT NULL THEN good = 1
             WHEN success = 0 THEN false
             WHEN service_code = 0 THEN coalesce(page_load_ms <= {t.page_load_ms!r}, false)
             WHEN service_code = 1 THEN coalesce(initial_buffer_ms <= {t.initial_buffer_ms!r}
                                                 AND stall_ratio <= {t.stall_ratio!r}, false)
             ELSE coalesce(rtt_ms <= {t.rtt_ms!r} AND jitter_ms <= {t.jitter_ms!r}
                           AND loss_pct <= {t.loss_pct!r}, false)
        END AS good_test
      FROM tests
    ), c AS (
      SELECT cell_code, service_code, count(*) AS tests,
             sum(CASE WHEN good_test THEN 1 ELSE 0 END)::BIGINT AS good_tests
      FROM v GROUP BY ALL
    )
    SELECT n.cell_id,
           ['browsing', 'video', 'gaming'][service_code + 1] AS service,
           tests, good_tests,
           good_tests::DOUBLE / tests AS good_rate,
           tests >= {k.min_tests} AND good_tests::DOUBLE / tests
             <= [{th.browsing!r}::DOUBLE, {th.video!r}, {th.gaming!r}][service_code + 1] AS poor
    FROM c JOIN names n USING (cell_code)
    ORDER BY cell_id, service
    """
    return pl.from_arrow(con.sql(sql).to_arrow_table())  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Per-test verdicts
# --------------------------------------------------------------------------------------------

@SETTINGS
@given(rows=st.lists(ROW, max_size=40), use_good=st.booleans())
def test_verdicts_match_reference(rows: list[dict], use_good: bool) -> None:
    cfg = config_with(use_source_good=use_good)
    got = verdicts(batch_of(rows), cfg)
    assert got.dtype == np.int8
    assert got.tolist() == [ref.verdict(r, cfg) for r in rows]


@SETTINGS
@given(rows=st.lists(ROW, min_size=1, max_size=40), start=st.integers(0, 39))
def test_verdicts_of_a_sliced_batch(rows: list[dict], start: int) -> None:
    """A slice starts its validity bitmaps mid-byte: the wrapper must re-pack them."""
    cfg = Config()
    part = batch_of(rows).slice(min(start, len(rows)))
    assert verdicts(part, cfg).tolist() == [ref.verdict(r, cfg) for r in rows[start:]]


def test_default_targets_are_inclusive_and_missing_kqi_fails() -> None:
    rows = [
        {"service_code": 0, "success": 1, "page_load_ms": 3000.0},                # at target
        {"service_code": 0, "success": 1, "page_load_ms": 3000.0000001},          # above
        {"service_code": 0, "success": 0, "page_load_ms": 10.0},                  # failed
        {"service_code": 0, "success": None, "page_load_ms": 10.0},               # default 1
        {"service_code": 1, "success": 1, "initial_buffer_ms": 2000.0, "stall_ratio": 0.02},
        {"service_code": 1, "success": 1, "initial_buffer_ms": 100.0},            # stall missing
        {"service_code": 2, "success": 1, "rtt_ms": 100.0, "jitter_ms": 30.0, "loss_pct": 1.0},
        {"service_code": 2, "success": 1, "rtt_ms": 50.0, "jitter_ms": math.nan, "loss_pct": 0.0},
        {"service_code": 2, "success": 1, "rtt_ms": 50.0, "jitter_ms": 5.0, "loss_pct": 1.01},
    ]
    full = [{"ts": DAY0, "cell_code": 0, "good": None, **dict.fromkeys(ref.KQIS), **r}
            for r in rows]
    assert verdicts(batch_of(full)).tolist() == [1, 0, 0, 1, 1, 0, 1, 0, 0]


def test_source_good_column_used_only_when_configured() -> None:
    rows = [{"ts": DAY0, "cell_code": 0, "service_code": 0, "success": 1,
             **dict.fromkeys(ref.KQIS), "page_load_ms": 100.0, "good": g} for g in (0, 1, None)]
    assert verdicts(batch_of(rows)).tolist() == [1, 1, 1]
    assert verdicts(batch_of(rows), config_with(use_source_good=True)).tolist() == [0, 1, 1]


def test_targets_come_from_config() -> None:
    rows = [{"ts": DAY0, "cell_code": 0, "service_code": 0, "success": 1,
             **dict.fromkeys(ref.KQIS), "page_load_ms": 2500.0, "good": None}]
    strict = config_with(targets=Targets(page_load_ms=2000.0))
    assert verdicts(batch_of(rows)).tolist() == [1]
    assert verdicts(batch_of(rows), strict).tolist() == [0]


def test_missing_optional_columns_count_as_null() -> None:
    batch = pl.DataFrame({"cell_code": [0, 0], "service_code": [0, 1],
                          "page_load_ms": [10.0, 10.0]},
                         schema={"cell_code": pl.Int32, "service_code": pl.Int8,
                                 "page_load_ms": pl.Float64})
    assert verdicts(batch).tolist() == [1, 0]


# --------------------------------------------------------------------------------------------
# Counting: whole window and per day, in batches split anywhere
# --------------------------------------------------------------------------------------------

@SETTINGS
@given(rows=st.lists(ROW, max_size=80), cuts=st.lists(st.integers(0, 80), max_size=4),
       use_good=st.booleans(), min_tests=st.integers(1, 4), on_upper=st.booleans())
def test_accumulator_matches_reference_and_duckdb(rows: list[dict], cuts: list[int],
                                                  use_good: bool, min_tests: int,
                                                  on_upper: bool) -> None:
    cfg = config_with(use_source_good=use_good, min_tests=min_tests, flag_on_upper_bound=on_upper)
    batch = batch_of(rows)
    ids = cell_ids(6)
    acc = KqiAccumulator(2, cfg)  # smaller than the code space: must grow
    bounds = sorted({0, len(rows), *(min(c, len(rows)) for c in cuts)})
    for lo, hi in itertools.pairwise(bounds):
        acc.add(batch.slice(lo, hi - lo))
    got = acc.cell_kqi(ids)

    want = ref.cell_kqi(rows, ids.to_list(), cfg)
    assert got.select("cell_id", "service", "tests", "good_tests", "poor").to_dicts() == [
        {k: r[k] for k in ("cell_id", "service", "tests", "good_tests", "poor")} for r in want]
    assert got["good_rate"].to_list() == [r["good_rate"] for r in want]
    for col in ("rate_low", "rate_high", "confidence"):
        np.testing.assert_allclose(got[col].to_numpy(), [r[col] for r in want],
                                   rtol=1e-12, atol=1e-15)

    if not on_upper:  # the contract's rule, computed by DuckDB
        oracle = duckdb_cell_kqi(batch, ids, cfg)
        assert got.select(oracle.columns).to_dicts() == oracle.to_dicts()

    daily = acc.daily(ids)
    want_daily = ref.daily_counts(rows, cfg)
    assert sorted(
        (r["cell_id"], r["service"], r["day"], r["tests"], r["good_tests"])
        for r in daily.to_dicts()) == sorted(
        (ids[c], ref.SERVICES[s], d, n, g) for (c, s, d), (n, g) in want_daily.items())
    assert daily.get_column("tests").sum() == len(rows)


def test_rate_exactly_at_threshold_is_poor() -> None:
    """24/30 = 0.80 (browsing), 27/30 = 0.90 (video), 45/50 = 0.90 (gaming): all poor."""
    cases = [(0, 30, 24, True), (0, 30, 25, False), (1, 30, 27, True), (1, 30, 28, False),
             (2, 50, 45, True), (2, 29, 0, False)]  # 29 tests: below min_tests, never judged
    f = flag_counts(np.array([c[1] for c in cases]), np.array([c[2] for c in cases]),
                    np.array([c[0] for c in cases]))
    assert f["poor"].tolist() == [c[3] for c in cases]
    assert f["confidence"][0] == 0.5
    assert f["good_rate"][0] == 0.8


def test_threshold_rates_through_batches_match_duckdb() -> None:
    """Cells at exactly 0.80 / 0.90 good-rate with 30 tests, fed in uneven batches, are poor."""
    def row(cell: int, svc: int, good: bool) -> dict:
        kq = dict.fromkeys(ref.KQIS, 0.0)
        if not good:
            kq[ref.RULES[svc][-1]] = 1e9
        return {"ts": DAY0, "cell_code": cell, "service_code": svc, "success": 1, **kq,
                "good": None}

    rows = ([row(0, 0, i < 24) for i in range(30)] + [row(1, 1, i < 27) for i in range(30)]
            + [row(2, 2, i < 27) for i in range(30)] + [row(3, 0, i < 25) for i in range(30)]
            + [row(4, 2, i < 23) for i in range(29)])
    batch = batch_of(rows[::-1])
    acc = KqiAccumulator(0, Config())
    for lo, hi in itertools.pairwise([0, 7, 8, 100, len(rows)]):
        acc.add(batch.slice(lo, hi - lo))
    ids = cell_ids(5)
    got = acc.cell_kqi(ids)
    assert dict(zip(got["cell_id"], got["poor"], strict=True)) == {
        ids[0]: True, ids[1]: True, ids[2]: True, ids[3]: False, ids[4]: False}
    oracle = duckdb_cell_kqi(batch, ids, Config())
    assert got.select(oracle.columns).to_dicts() == oracle.to_dicts()


@SETTINGS
@given(tests=st.integers(1, 400), frac=st.floats(0, 1), svc=st.integers(0, 2),
       min_tests=st.integers(1, 60), on_upper=st.booleans(),
       z=st.sampled_from([1.0, 1.645, 1.96, 2.576]))
def test_flag_kernel_matches_reference(  # noqa: PLR0917 - hypothesis passes them by name
        tests: int, frac: float, svc: int, min_tests: int, on_upper: bool, z: float) -> None:
    good = round(frac * tests)
    cfg = config_with(min_tests=min_tests, flag_on_upper_bound=on_upper, confidence_z=z)
    f = flag_counts(np.array([tests]), np.array([good]), np.array([svc]), cfg)
    want = ref.flag(tests, good, svc, cfg)
    assert bool(f["poor"][0]) == want["poor"]
    assert f["good_rate"][0] == want["good_rate"]
    for col in ("rate_low", "rate_high", "confidence"):
        assert f[col][0] == pytest.approx(want[col], rel=1e-12, abs=1e-15)
    assert 0.0 <= f["rate_low"][0] <= want["good_rate"] <= f["rate_high"][0] <= 1.0
    assert 0.5 <= f["confidence"][0] <= 1.0


@SETTINGS
@given(tests=st.integers(1, 500), frac=st.floats(0, 1), svc=st.integers(0, 2),
       z=st.sampled_from([1.0, 1.645, 1.96, 2.576]))
def test_confidence_agrees_with_the_wilson_interval(tests: int, frac: float, svc: int,
                                                    z: float) -> None:
    """With flag_on_upper_bound, a poor cell is one the score test puts below t at level z."""
    good = round(frac * tests)
    cfg = config_with(min_tests=1, flag_on_upper_bound=True, confidence_z=z)
    f = flag_counts(np.array([tests]), np.array([good]), np.array([svc]), cfg)
    if f["poor"][0]:
        assert f["confidence"][0] >= ref.phi(z) - 1e-9
    elif f["good_rate"][0] <= cfg.kqi.thresholds.for_service(ref.SERVICES[svc]):
        assert f["confidence"][0] <= ref.phi(z) + 1e-9


def test_upper_bound_option_needs_evidence() -> None:
    """A 0.70 browsing rate on 30 tests is poor by the rule but not surely below 0.80."""
    tests, good, svc = np.array([30, 300]), np.array([21, 210]), np.array([0, 0])
    assert flag_counts(tests, good, svc)["poor"].tolist() == [True, True]
    strict = flag_counts(tests, good, svc, config_with(flag_on_upper_bound=True))
    assert strict["poor"].tolist() == [False, True]
    assert strict["confidence"][1] > 0.975 > strict["confidence"][0]


def test_single_test_cells_and_services_without_tests() -> None:
    rows = [{"ts": DAY0, "cell_code": 3, "service_code": 2, "success": 1,
             **dict.fromkeys(ref.KQIS), "rtt_ms": 10.0, "jitter_ms": 1.0, "loss_pct": 0.0,
             "good": None}]
    acc = KqiAccumulator(5, config_with(min_tests=1))
    acc.add(batch_of(rows))
    out = acc.cell_kqi(cell_ids(5))
    assert out.select("cell_id", "service", "tests", "good_tests", "poor").rows() == [
        ("c10-3", "gaming", 1, 1, False)]


def test_aggregated_batches_and_periods() -> None:
    agg = pl.DataFrame({
        "cell_code": [0, 0, 1, 1], "service_code": [0, 0, 1, 1],
        "tests": [20, 20, 5, 0], "good_tests": [16, 15, 5, 0],
        "period": ["2024-05-01", "2024-05-02", "2024-05", None],
    }, schema={"cell_code": pl.Int32, "service_code": pl.Int8, "tests": pl.Int64,
               "good_tests": pl.Int64, "period": pl.String})
    acc = KqiAccumulator(2, Config())
    acc.add(agg)
    out = acc.cell_kqi(cell_ids(2))
    assert out.select("cell_id", "service", "tests", "good_tests", "poor").rows() == [
        ("c00-0", "browsing", 40, 31, True), ("c07-1", "video", 5, 5, False)]
    assert acc.daily(cell_ids(2)).rows() == [
        ("c00-0", "browsing", dt.date(2024, 5, 1), 20, 16),
        ("c00-0", "browsing", dt.date(2024, 5, 2), 20, 15)]


def test_days_grow_both_ways_and_use_the_configured_zone() -> None:
    def row(day: int, hour: int) -> dict:
        return {"ts": DAY0 + dt.timedelta(days=day, hours=hour), "cell_code": 0,
                "service_code": 0, "success": 1, **dict.fromkeys(ref.KQIS),
                "page_load_ms": 1.0, "good": None}

    acc = KqiAccumulator(1, Config())
    for d in (5, 1, 9):
        acc.add(batch_of([row(d, 20)]))
    assert acc.daily(cell_ids(1))["day"].to_list() == [
        dt.date(2024, 5, 2), dt.date(2024, 5, 6), dt.date(2024, 5, 10)]
    shanghai = dataclasses.replace(Config(), ingest=dataclasses.replace(
        Config().ingest, timezone="Asia/Shanghai"))
    acc = KqiAccumulator(1, shanghai)
    acc.add(batch_of([row(0, 20)]))  # 20:00 UTC is 04:00 the next day in UTC+8
    assert acc.daily(cell_ids(1))["day"].to_list() == [dt.date(2024, 5, 2)]


def test_accumulator_without_daily_counts() -> None:
    acc = KqiAccumulator(1, Config(), daily=False)
    acc.add(batch_of([{"ts": DAY0, "cell_code": 0, "service_code": 0, "success": 1,
                       **dict.fromkeys(ref.KQIS), "good": None}]))
    assert acc.daily(cell_ids(1)).height == 0
    assert acc.cell_kqi(cell_ids(1))["tests"].to_list() == [1]


@pytest.mark.parametrize(("column", "value"), [("cell_code", -1), ("service_code", 3)])
def test_out_of_range_codes_are_refused(column: str, value: int) -> None:
    row = {"ts": DAY0, "cell_code": 0, "service_code": 0, "success": 1,
           **dict.fromkeys(ref.KQIS), "good": None, column: value}
    with pytest.raises(ValueError, match="code"):
        KqiAccumulator(1, Config()).add(batch_of([row]))


def test_aggregated_counts_must_be_consistent() -> None:
    agg = pl.DataFrame({"cell_code": [0], "service_code": [0], "tests": [3], "good_tests": [4]},
                       schema={"cell_code": pl.Int32, "service_code": pl.Int8,
                               "tests": pl.Int64, "good_tests": pl.Int64})
    with pytest.raises(ValueError, match="good_tests"):
        KqiAccumulator(1, Config()).add(agg)


def test_code_range_and_stream_sum_kernels() -> None:
    assert _kernels._code_range(np.array([], dtype=np.int32)) == (0, -1)
    assert _kernels._code_range(np.array([4, -2, 9, 0], dtype=np.int32)) == (-2, 9)
    x = np.arange(11, dtype=np.float64)
    x.flags.writeable = False  # kernels must take read-only (zero-copy Arrow) arrays
    assert _kernels._stream_sum(x) == 55.0


def _hour_traffic_reference(code: np.ndarray, hour: np.ndarray, prb: np.ndarray,
                            users: np.ndarray, n_codes: int) -> tuple[np.ndarray, ...]:
    """What kqi.diagnosis._hour_traffic computes, with numpy: one traffic measure per cell (PRB,
    or RRC users for a cell without any PRB figure), then per code x hour the rows, the rows
    with a figure and their exact sum (``math.fsum``); per code the index of its first row."""
    key = code * 24 + hour
    has_prb = np.bincount(code[~np.isnan(prb)], minlength=n_codes) > 0
    traffic = np.where(has_prb[code], prb, users)
    valid = ~np.isnan(traffic)
    size = n_codes * 24
    first = np.full(n_codes, -1, dtype=np.int64)
    seen, at = np.unique(code, return_index=True)
    first[seen] = at
    total = np.zeros(size)
    for j in np.unique(key[valid]):
        total[j] = math.fsum(traffic[valid & (key == j)])  # the exact sum, correctly rounded
    return (np.bincount(key, minlength=size), np.bincount(key[valid], minlength=size), total,
            first)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 23),
                          st.one_of(st.none(), st.floats(0, 100)),
                          st.one_of(st.none(), st.floats(0, 1e4))), max_size=300),
       st.integers(1, 50))
def test_hour_traffic_kernel_matches_reference(rows: list[tuple], block_rows: int) -> None:
    """kqi.diagnosis._hour_traffic (its kernel over the rows a block at a time) equals the
    numpy computation: the counts to the bit, the mean traffic within an ulp (compensated sums
    of non-negative figures: the exact sum correctly rounded)."""
    from kqi.diagnosis import BUSY_TRAFFIC, _hour_traffic

    code = np.array([r[0] for r in rows], dtype=np.int64)
    hour = np.array([r[1] for r in rows], dtype=np.int64)
    prb = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=np.float64)
    users = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=np.float64)
    k = pl.DataFrame({"code": code, "hour": hour, BUSY_TRAFFIC[0]: [r[2] for r in rows],
                      BUSY_TRAFFIC[1]: [r[3] for r in rows]},
                     schema={"code": pl.Int64, "hour": pl.Int64, BUSY_TRAFFIC[0]: pl.Float64,
                             BUSY_TRAFFIC[1]: pl.Float64})
    got = _hour_traffic(k, block_rows=block_rows)
    n_codes = int(code.max()) + 1 if code.size else 0
    want_rows, want_valid, want_total, want_first = _hour_traffic_reference(
        code, hour, prb, users, n_codes)
    np.testing.assert_array_equal(got.rows.ravel(), want_rows)
    np.testing.assert_array_equal(got.n_valid.ravel(), want_valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_allclose(got.mean.ravel(), want_total / want_valid, rtol=3e-16)
    np.testing.assert_array_equal(got.first_row, want_first)


@pytest.mark.parametrize(("code", "hour", "problem"), [
    ([0, None, 1], [1, 2, 3], "must not be missing"),
    ([0, 1, 1], [1, None, 3], "must not be missing"),
    ([0, -1, 1], [1, 2, 3], "must not be negative"),
    ([0, 1, 1], [1, 24, 3], "0..23"),
])
def test_hour_traffic_wrapper_refuses_what_the_kernel_would_write_outside_of(
        code: list, hour: list, problem: str) -> None:
    """The kernel indexes by code and hour unchecked: the wrapper refuses a missing, negative or
    out-of-range one (a null cast to int64 would be INT64_MIN: a write outside the outputs)."""
    from kqi.diagnosis import BUSY_TRAFFIC, _hour_traffic

    k = pl.DataFrame({"code": code, "hour": hour, BUSY_TRAFFIC[0]: [50.0, 60.0, 70.0],
                      BUSY_TRAFFIC[1]: [1.0, 2.0, 3.0]},
                     schema_overrides={"code": pl.Int64, "hour": pl.Int64})
    with pytest.raises(ValueError, match=problem):
        _hour_traffic(k)


def _kpi_figures_reference(k: pl.DataFrame, code: np.ndarray, n_codes: int, busy: np.ndarray,
                           quiet: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each KPI_AGGREGATES figure per code in plain Python: the values in the window and not
    missing; a mean or sum from the exact sum (math.fsum), a minimum, or a quantile from the sorted
    values by linear interpolation between the closest ranks; NaN for a code without values."""
    rows = np.bincount(code, minlength=n_codes)
    out = {}
    for a in KPI_AGGREGATES:
        col = k[a.source].to_list()
        fig = np.full(n_codes, np.nan)
        for c in range(n_codes):
            vals = [v for i, v in enumerate(col) if code[i] == c and v is not None
                    and not math.isnan(v) and {"all": True, "busy": busy[i], "quiet": quiet[i]}[a.window]]
            if not vals:
                continue
            if a.how in ("mean", "sum"):
                total = math.fsum(vals)  # the exact sum, correctly rounded
                fig[c] = total / len(vals) if a.how == "mean" else total
            elif a.how == "min":
                fig[c] = min(vals)
            else:
                s = sorted(vals)
                at = (len(s) - 1) * a.q
                lo = int(at)
                fig[c] = s[lo] if lo + 1 >= len(s) or s[lo] == s[lo + 1] else (
                    (at - lo) * (s[lo + 1] - s[lo]) + s[lo])
        out[a.name] = fig
    return rows, out


#: the source columns of the evidence figures
_KPI_SOURCES = list(dict.fromkeys(a.source for a in KPI_AGGREGATES))
_KPI_VALUE = st.one_of(st.none(), st.just(math.nan), st.floats(-150, 150, allow_nan=False),
                       st.sampled_from([0.0, 1.0, 2.5]))  # repeated values: ties in the ranks


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 23),
                          st.lists(_KPI_VALUE, min_size=len(_KPI_SOURCES), max_size=len(_KPI_SOURCES))), max_size=120),
       st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_kpi_figure_kernels_match_reference(rows: list[tuple], block_rows: int, seed: int) -> None:
    """The evidence figures of kqi.diagnosis._kpi_aggregates (its two kernels, the rows read a
    block at a time) equal the plain per-code computation, whatever the blocks: the exact sums
    and minima, the quantiles within their last ulp."""
    from kqi.diagnosis import _kpi_aggregates

    sources = _KPI_SOURCES
    n_codes = 6  # code 5 has no rows: NaN figures, 0 rows
    code = np.array([r[0] for r in rows], dtype=np.int64)
    hour = np.array([r[1] for r in rows], dtype=np.int64)
    rng = np.random.default_rng(seed)  # which (code, hour) are busy, which quiet
    busy_at, quiet_at = rng.random(n_codes * 24) < 0.3, rng.random(n_codes * 24) < 0.3
    k = pl.DataFrame({"code": code, "hour": hour, **{c: [r[2][j] for r in rows]
                                                     for j, c in enumerate(sources)}},
                     schema={"code": pl.Int64, "hour": pl.Int64, **dict.fromkeys(sources, pl.Float64)})
    got_rows, got = _kpi_aggregates(k, n_codes, busy_at, quiet_at, block_rows=block_rows)
    key = code * 24 + hour
    want_rows, want = _kpi_figures_reference(k, code, n_codes, busy_at[key], quiet_at[key])
    np.testing.assert_array_equal(got_rows, want_rows)
    for a in KPI_AGGREGATES:
        if a.how == "min":
            np.testing.assert_array_equal(got[a.name].to_numpy(), want[a.name], err_msg=a.name)
        elif a.how == "quantile":
            # the interpolation may be one fused multiply-add (fastmath's "contract"): within
            # an ulp of its terms (values up to 150: ulp 2.8e-14)
            np.testing.assert_allclose(got[a.name].to_numpy(), want[a.name], rtol=1e-15, atol=1e-13,
                                       err_msg=a.name)
        else:
            # a compensated sum is the exact one correctly rounded but under extreme
            # cancellation (then within n * eps**2 * sum|x|: < 1e-24 here)
            np.testing.assert_allclose(got[a.name].to_numpy(), want[a.name], rtol=3e-16, atol=1e-24,
                                       err_msg=a.name)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kpi_figures_do_not_depend_on_row_order(seed: int) -> None:
    """A feed sorted another way, read in other blocks, gives the same figures to the bit (the
    sums are compensated; polars' group-by, before the kernels, gave that too)."""
    from kqi.diagnosis import _kpi_aggregates

    rng = np.random.default_rng(seed)
    n = 20_000
    busy_at, quiet_at = rng.random(50 * 24) < 0.3, rng.random(50 * 24) < 0.2
    k = pl.DataFrame({"code": rng.integers(0, 50, n), "hour": rng.integers(0, 24, n),
                      **{c: np.where(rng.random(n) < 0.05, np.nan, rng.normal(-100, 15, n))
                         for c in _KPI_SOURCES}}).fill_nan(None)
    rows_a, a = _kpi_aggregates(k, 50, busy_at, quiet_at)
    rows_b, b = _kpi_aggregates(k[rng.permutation(n)], 50, busy_at, quiet_at, block_rows=777)
    np.testing.assert_array_equal(rows_a, rows_b)
    for name in a:
        assert a[name].equals(b[name]), name


@pytest.mark.parametrize("threads", [1, 3, 5])
def test_evidence_figures_do_not_depend_on_the_threads(monkeypatch: pytest.MonkeyPatch,
                                                        threads: int) -> None:
    """The kernels' workers split the cell codes (kqi.diagnosis._CodeWorkers): the hour traffic
    and the figures are the same to the bit on one thread and on several."""
    from kqi import diagnosis

    rng = np.random.default_rng(5)
    n = 30_000
    k = pl.DataFrame({"code": rng.integers(0, 97, n), "hour": rng.integers(0, 24, n),
                      **{c: np.where(rng.random(n) < 0.05, np.nan, rng.normal(-100, 15, n))
                         for c in _KPI_SOURCES}}).fill_nan(None)
    busy_at, quiet_at = rng.random(97 * 24) < 0.3, rng.random(97 * 24) < 0.2
    monkeypatch.setattr(pl, "thread_pool_size", lambda: 1)
    one = diagnosis._hour_traffic(k, block_rows=4096), diagnosis._kpi_aggregates(
        k, 97, busy_at, quiet_at, block_rows=4096)
    monkeypatch.setattr(pl, "thread_pool_size", lambda: threads)
    assert diagnosis._CodeWorkers(97)._ranges[-1] == (97 * (threads - 1) // threads, 97)
    many = diagnosis._hour_traffic(k, block_rows=4096), diagnosis._kpi_aggregates(
        k, 97, busy_at, quiet_at, block_rows=4096)
    for a, b in zip(one[0], many[0], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one[1][0], many[1][0])
    for name, fig in one[1][1].items():
        assert fig.equals(many[1][1][name]), name


@SETTINGS
@given(st.lists(st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, -0.0, 1.0, 2.0])),
                min_size=1, max_size=200), st.data())
def test_select_kernel_is_the_kth_smallest(values: list[float], data: st.DataObject) -> None:
    """kqi._diag_kernels._select: the k-th smallest, and the array split around it."""
    from kqi._diag_kernels import _select

    a = np.array(values)
    k = data.draw(st.integers(0, a.size - 1))
    got = _select(a, k)
    assert got == sorted(values)[k]
    assert sorted(a.tolist()) == sorted(values)  # rearranged, nothing lost
    assert (a[:k] <= got).all()
    assert (a[k + 1:] >= got).all()


def test_kpi_quantile_is_polars_linear_quantile() -> None:
    """The quantile figures mean what polars' quantile(q, "linear") gives (the engine that
    computed them before the kernels, and what the Spark engine's figures are checked against)."""
    from kqi.diagnosis import _kpi_aggregates

    rng = np.random.default_rng(7)
    n = 5000
    busy_at, quiet_at = rng.random(40 * 24) < 0.3, rng.random(40 * 24) < 0.2
    k = pl.DataFrame({"code": rng.integers(0, 40, n), "hour": rng.integers(0, 24, n),
                      **{c: np.where(rng.random(n) < 0.1, np.nan, rng.normal(50, 20, n).round(1))
                         for c in _KPI_SOURCES}}).fill_nan(None)
    _, got = _kpi_aggregates(k, 40, busy_at, quiet_at, block_rows=999)
    key = (k["code"] * 24 + k["hour"]).to_numpy()
    frame = k.with_columns(busy=busy_at[key], quiet=quiet_at[key])
    for a in KPI_AGGREGATES:
        if a.how != "quantile":
            continue
        v = pl.col(a.source) if a.window == "all" else pl.col(a.source).filter(pl.col(a.window))
        want = frame.group_by("code").agg(v.quantile(a.q, "linear")).sort("code")[a.source]
        np.testing.assert_allclose(got[a.name].to_numpy(), want.to_numpy(), rtol=1e-12, err_msg=a.name)


def _polars_figure(a: Any) -> pl.Expr:
    """A KPI_AGGREGATES figure as the polars group-by computed it before the kernels
    (dee2894's kqi.diagnosis._polars_aggregate)."""
    c = pl.col(a.source)
    if a.window != "all":
        c = c.filter(pl.col(a.window))
    e = {"mean": c.mean(), "quantile": c.quantile(a.q, "linear"), "min": c.min(),
         "sum": pl.when(c.count() > 0).then(c.sum())}[a.how]
    return e.alias(a.name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kpi_figures_are_the_polars_group_by(seed: int) -> None:
    """Every figure, nulls included, as the polars group-by gave it: means and sums with an
    infinite value, counts summed as Int64 (exact), cells without values in a window, codes
    with no rows."""
    from kqi.diagnosis import _kpi_aggregates

    rng = np.random.default_rng(seed)
    n, n_codes = 8000, 60
    quantile_sources = {a.source for a in KPI_AGGREGATES if a.how == "quantile"}
    cols: dict[str, Any] = {}
    for c in _KPI_SOURCES:
        if c == "alarm_count":
            cols[c] = pl.Series(c, rng.integers(0, 2**40, n)).scatter(
                rng.integers(0, n, 50), None)
            continue
        v = np.where(rng.random(n) < 0.08, np.nan, rng.normal(-80, 30, n))
        if c not in quantile_sources:  # an infinite value (polars' interpolation between two
            v[rng.integers(0, n, 3)] = np.inf  # infinite ranks is NaN: not asked of the kernel)
        cols[c] = v
    k = pl.DataFrame({"code": rng.integers(0, n_codes - 5, n), "hour": rng.integers(0, 24, n),
                      **cols}).with_columns(pl.col(c).fill_nan(None) for c in _KPI_SOURCES
                                            if c != "alarm_count")
    busy_at, quiet_at = rng.random(n_codes * 24) < 0.1, rng.random(n_codes * 24) < 0.05
    rows, got = _kpi_aggregates(k, n_codes, busy_at, quiet_at, block_rows=1000)
    key = (k["code"] * 24 + k["hour"]).to_numpy()
    want = k.with_columns(busy=busy_at[key], quiet=quiet_at[key]).group_by("code").agg(
        pl.len().alias("kpi_hours"), *[_polars_figure(a) for a in KPI_AGGREGATES]).sort("code")
    present = want["code"].to_numpy()
    assert np.flatnonzero(rows).tolist() == present.tolist()
    np.testing.assert_array_equal(rows[present], want["kpi_hours"].to_numpy())
    for a in KPI_AGGREGATES:
        g, w = got[a.name].gather(present), want[a.name]
        assert g.dtype == w.dtype, a.name
        assert g.is_null().to_list() == w.is_null().to_list(), a.name
        if g.dtype == pl.Int64:
            assert g.equals(w), a.name  # exact
        else:
            np.testing.assert_allclose(g.to_numpy(), w.to_numpy(), rtol=1e-12, err_msg=a.name)
    assert got["availability_mean"].is_infinite().any()  # the infinite values were read


def test_counts_beyond_float_precision_summed_exactly() -> None:
    """Alarm counts of 2**53 and more are not whole numbers a float holds: summed exactly."""
    from kqi.diagnosis import _kpi_aggregates

    k = pl.DataFrame({"code": [0, 0, 1, 1], "hour": [0, 1, 0, 1],
                      **{c: [1.0, 2.0, 3.0, 4.0] for c in _KPI_SOURCES if c != "alarm_count"},
                      "alarm_count": [2**53 + 1, 2, 2**52 + 1, 2**52 + 1]})
    flags = np.zeros(48, dtype=np.bool_)
    _, got = _kpi_aggregates(k, 2, flags, flags)
    assert got["alarm_count"].to_list() == [2**53 + 3, 2**53 + 2]
    _, got = _kpi_aggregates(k.with_columns(pl.col("alarm_count") // 4), 2, flags, flags)
    assert got["alarm_count"].to_list() == [(2**53 + 1) // 4, 2 * ((2**52 + 1) // 4)]


def test_evidence_does_not_depend_on_row_order_even_at_a_traffic_tie() -> None:
    """Two hours whose mean traffic is the same number, added up in other orders (0.1 + 0.2 +
    0.3 is not 0.3 + 0.2 + 0.1 in floats): the same busy hours, so the same evidence."""
    from kqi.diagnosis import extract_evidence

    ts, prb, ul = [], [], []
    for day in range(3):
        for h, p in ((0, 90.0), (1, 90.0), (2, 90.0), (3, (0.1, 0.2, 0.3)[day]),
                     (4, (0.3, 0.2, 0.1)[day])):
            ts.append(dt.datetime(2026, 1, 5 + day, h))
            prb.append(p)
            ul.append(-100.0 - 5 * (h == 3))
    kpis = pl.DataFrame({"ts": ts, "cell_id": "A-1", "prb_util_dl": prb, "ul_interference_dbm": ul})
    cells = pl.DataFrame({"cell_id": ["A-1"], "site_id": ["A"], "lat": [30.0], "lon": [104.0]})
    cfg = Config()
    a = extract_evidence(kpis, cells, cfg)
    b = extract_evidence(kpis.reverse(), cells, cfg)
    assert a.equals(b)


def test_kpi_figures_refuse_a_quantile_outside_0_to_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rank past a cell's values would be read outside them (no bounds check in a kernel)."""
    from kqi import diagnosis

    bad = tuple(dataclasses.replace(a, q=1.5) if a.how == "quantile" else a
                for a in diagnosis.KPI_AGGREGATES)
    monkeypatch.setattr(diagnosis, "KPI_AGGREGATES", bad)
    k = pl.DataFrame({"code": [0], "hour": [0], **{c: [1.0] for c in _KPI_SOURCES}})
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        diagnosis._kpi_aggregates(k, 1, np.zeros(24, dtype=np.bool_), np.zeros(24, dtype=np.bool_))


def test_kpi_figures_of_no_rows() -> None:
    from kqi.diagnosis import _kpi_aggregates

    k = pl.DataFrame({"code": [], "hour": [], **{c: [] for c in _KPI_SOURCES}},
                     schema={"code": pl.Int64, "hour": pl.Int64, **dict.fromkeys(_KPI_SOURCES, pl.Float64)})
    rows, got = _kpi_aggregates(k, 0, np.zeros(0, dtype=np.bool_), np.zeros(0, dtype=np.bool_))
    assert rows.size == 0
    assert all(s.len() == 0 for s in got.values())


@pytest.mark.parametrize(("change", "problem"), [
    ("code_dtype", "Int64"), ("code_range", "0..5"), ("hour_range", "0..23"),
    ("code_missing", "missing"), ("flags", "booleans"), ("column", "Float64 or Int64")])
def test_kpi_figures_wrapper_refuses_what_the_kernels_would_misread(change: str, problem: str) -> None:
    """The kernels index by code and hour unchecked and read float64 columns: the wrapper
    refuses codes of another type, missing or out of range, an hour outside the day, hour
    flags of another length and a non-float column."""
    from kqi.diagnosis import _kpi_aggregates

    k = pl.DataFrame({"code": [0, 1, 2], "hour": [0, 5, 23], **{c: [1.0, 2.0, 3.0] for c in _KPI_SOURCES}})
    busy_at = np.zeros(6 * 24, dtype=np.bool_)
    if change == "code_dtype":
        k = k.with_columns(pl.col("code").cast(pl.Int32))
    elif change == "code_range":
        k = k.with_columns(code=pl.Series([0, 1, 6]))
    elif change == "hour_range":
        k = k.with_columns(hour=pl.Series([0, 1, 24]))
    elif change == "code_missing":
        k = k.with_columns(code=pl.Series([0, None, 2], dtype=pl.Int64))
    elif change == "flags":
        busy_at = busy_at[:-1]
    else:
        k = k.with_columns(pl.col(_KPI_SOURCES[0]).cast(pl.String))
    with pytest.raises(ValueError, match=problem):
        _kpi_aggregates(k, 6, busy_at, np.zeros(6 * 24, dtype=np.bool_))


def test_aggregated_counts_grow_cells_and_days_mid_feed() -> None:
    """Aggregated rows whose codes and days outgrow the accumulator, batch after batch: the
    whole-window and the day counts (one kernel, _count_aggregated) are both grown and resumed,
    and equal the sums of the rows."""
    rows = [(0, 0, 10, 7, "2024-05-03"), (3, 1, 4, 4, "2024-05-01"), (5, 2, 6, 1, "2024-05-09"),
            (3, 1, 2, 1, "2024-05-01"), (0, 0, 1, 1, "2024-05-10"), (5, 2, 3, 3, None)]
    acc = KqiAccumulator(1, Config())
    for r in rows:  # one row a batch: every batch may grow the cells, the days or both
        acc.add(pl.DataFrame({"cell_code": [r[0]], "service_code": [r[1]], "tests": [r[2]],
                              "good_tests": [r[3]], "period": [r[4]]},
                             schema={"cell_code": pl.Int32, "service_code": pl.Int8,
                                     "tests": pl.Int64, "good_tests": pl.Int64,
                                     "period": pl.String}))
    ids = cell_ids(6)
    totals: dict[tuple[int, int], list[int]] = {}
    days: dict[tuple[int, int, dt.date], list[int]] = {}
    for c, s, t, g, p in rows:
        tot = totals.setdefault((c, s), [0, 0])
        tot[0] += t
        tot[1] += g
        if p is not None:
            day = days.setdefault((c, s, dt.date.fromisoformat(p)), [0, 0])
            day[0] += t
            day[1] += g
    services = ("browsing", "video", "gaming")
    got = {(r[0], r[1]): [r[2], r[3]] for r in
           acc.cell_kqi(ids).select("cell_id", "service", "tests", "good_tests").rows()}
    assert got == {(ids[c], services[s]): v for (c, s), v in totals.items()}
    got_days = {(r[0], r[1], r[2]): [r[3], r[4]] for r in acc.daily(ids).rows()}
    assert got_days == {(ids[c], services[s], d): v for (c, s, d), v in days.items()}
