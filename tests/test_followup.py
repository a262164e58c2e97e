"""Tests of kqi.followup: the difference-in-differences verdicts, controls and the order states."""

from __future__ import annotations

import dataclasses
import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kqi.config import Config, FollowupConfig
from kqi.errors import ConfigError
from kqi.followup import (
    FOLLOWUP_COLUMNS,
    ORDER_STATE_COLUMNS,
    FollowupError,
    _combine,
    _control_pairs,
    advance_orders,
    did_test,
    programme_markdown,
    programme_table,
    verify_orders,
)
from kqi.geo import haversine_m, site_isd

D0 = date(2026, 11, 2)
BEFORE = (D0, D0 + timedelta(6))
AFTER = (D0 + timedelta(7), D0 + timedelta(13))
CFG = Config()


# --------------------------------------------------------------------------------------------
# plain-Python references
# --------------------------------------------------------------------------------------------

def ref_did(  # noqa: PLR0917 - the four (good, tests) pairs
    g0: int, n0: int, g1: int, n1: int, G0: int, N0: int, G1: int, N1: int,
) -> tuple[float, float]:
    """Raw difference in differences and the Price-Bonett adjusted Wald p-value, by hand."""
    effect = (g1 / n1 - g0 / n0) - (G1 / N1 - G0 / N0)
    est = 0.0
    var = 0.0
    for sign, y, n in ((-1, g0, n0), (1, g1, n1), (1, G0, N0), (-1, G1, N1)):
        p = (y + 0.5) / (n + 1)
        est += sign * p
        var += p * (1 - p) / (n + 1)
    z = est / math.sqrt(var)
    phi = 0.5 * (1 + math.erf(abs(z) / math.sqrt(2)))
    return effect, 2 * (1 - phi)


def ref_wilson_low(g: int, n: int, z: float) -> float:
    p = g / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 0.0 if g == 0 else centre - half


def ref_verdict(counts: tuple[int, ...], threshold: float, cfg: Config) -> str:
    """The verdict rule as docs/followup.md states it."""
    g0, n0, g1, n1, _, N0, _, N1 = counts
    if n1 < cfg.followup.min_tests_after or n0 == 0 or N0 == 0 or N1 == 0:
        return "insufficient_data"
    effect, p = ref_did(*counts)
    if effect < 0 and p < cfg.followup.alpha and g1 / n1 < g0 / n0:
        return "worse"
    if (ref_wilson_low(g1, n1, cfg.kqi.confidence_z) > threshold and effect > 0
            and p < cfg.followup.alpha):
        return "recovered"
    return "not_recovered"


# --------------------------------------------------------------------------------------------
# a small synthetic network
# --------------------------------------------------------------------------------------------

def grid(n: int = 7, spacing_m: float = 500.0) -> pl.DataFrame:
    """n x n cells, one per site, ``spacing_m`` apart; cell ids C<row><col>."""
    dlat = spacing_m / 111_195.0
    dlon = dlat / math.cos(math.radians(30.0))
    ids = [f"C{i}{j}" for i in range(n) for j in range(n)]
    return pl.DataFrame({
        "cell_id": ids, "site_id": [f"S{c[1:]}" for c in ids],
        "lat": [30.0 + i * dlat for i in range(n) for _ in range(n)],
        "lon": [104.0 + j * dlon for _ in range(n) for j in range(n)],
        "vendor": ["ZTE" if i < n // 2 else "Nokia" for i in range(n) for _ in range(n)],
        "region": ["north" if j < n // 2 else "south" for _ in range(n) for j in range(n)],
    })


def day_counts(cells: pl.DataFrame, rates: dict[str, tuple[float, float]],
               default: tuple[float, float], *, tests: int = 100, service: str = "browsing",
               tests_after: dict[str, int] | None = None) -> pl.DataFrame:
    """7 days before and 7 after; ``rates`` = {cell: (before, after)} good-rates per day."""
    rows = []
    for c in cells["cell_id"]:
        r0, r1 = rates.get(c, default)
        for d in range(14):
            n = tests if d < 7 else (tests_after or {}).get(c, tests * 7) // 7
            if d >= 7 and tests_after and c in tests_after and d == 13:
                n += tests_after[c] % 7
            rate = r0 if d < 7 else r1
            rows.append((c, service, D0 + timedelta(d), n, round(rate * n)))
    return pl.DataFrame(rows, schema=["cell_id", "service", "day", "tests", "good_tests"],
                        orient="row")


def orders_for(cells_ids: list[str], *, services: str = "browsing", runs_open: int = 1,
               status: str = "open", cause: str = "interference") -> pl.DataFrame:
    return pl.DataFrame({
        "order_id": [f"WO-20261102-{c}" for c in cells_ids],
        "cell_id": cells_ids, "opened": [D0] * len(cells_ids),
        "cause_at_open": [cause] * len(cells_ids),
        "poor_services_at_open": [services] * len(cells_ids),
        "before_first": [BEFORE[0]] * len(cells_ids), "before_last": [BEFORE[1]] * len(cells_ids),
        "runs_open": [runs_open] * len(cells_ids), "status": [status] * len(cells_ids),
    })


def cfg_with(**followup: object) -> Config:
    return dataclasses.replace(CFG, followup=dataclasses.replace(FollowupConfig(), **followup))


@pytest.fixture(scope="module")
def cells() -> pl.DataFrame:
    return grid()


@pytest.fixture(scope="module")
def isd(cells: pl.DataFrame) -> pl.DataFrame:
    return site_isd(cells, CFG)


def one(fu: pl.DataFrame, cell: str) -> dict:
    return fu.filter(pl.col("cell_id") == cell).row(0, named=True)


# --------------------------------------------------------------------------------------------
# the statistic
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("counts", [
    (75, 100, 95, 100, 950, 1000, 950, 1000),
    (24, 30, 30, 30, 900, 1000, 905, 1000),
    (0, 40, 40, 40, 0, 500, 500, 500),      # saturated rates: the adjusted variance stays > 0
    (525, 700, 540, 700, 6650, 7000, 6300, 7000),
])
def test_did_matches_reference(counts: tuple[int, ...]) -> None:
    effect, z, p = did_test(*(np.array([c]) for c in counts))
    ref_effect, ref_p = ref_did(*counts)
    assert effect[0] == pytest.approx(ref_effect, abs=1e-12)
    assert p[0] == pytest.approx(ref_p, abs=1e-12)
    assert math.isfinite(z[0])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), st.integers(1, 400), st.integers(1, 5000),
                          st.integers(1, 5000), st.floats(0, 1), st.floats(0, 1),
                          st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=20))
def test_did_property(rows: list[tuple]) -> None:
    counts = [(round(a * n0), n0, round(b * n1), n1, round(c * N0), N0, round(d * N1), N1)
              for n0, n1, N0, N1, a, b, c, d in rows]
    arrs = [np.array(col) for col in zip(*counts, strict=True)]
    effect, _, p = did_test(*arrs)
    for i, c in enumerate(counts):
        ref_effect, ref_p = ref_did(*c)
        assert effect[i] == pytest.approx(ref_effect, abs=1e-12)
        assert p[i] == pytest.approx(ref_p, abs=1e-9)
        assert 0.0 <= p[i] <= 1.0


def test_no_change_anywhere_is_not_significant() -> None:
    _, z, p = did_test(*(np.array([v]) for v in (80, 100, 80, 100, 900, 1000, 900, 1000)))
    assert z[0] == pytest.approx(0.0, abs=1e-12)
    assert p[0] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# verdicts on hand-made cases, against the reference
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("before", "after", "network_after", "expected"), [
    (0.75, 0.95, 0.95, "recovered"),       # fixed, network flat
    (0.75, 0.75, 0.95, "not_recovered"),   # untouched
    (0.75, 0.60, 0.95, "worse"),
    (0.75, 0.82, 0.95, "not_recovered"),   # better, but not surely above 80 %
    (0.75, 0.90, 0.99, "recovered"),
])
def test_verdicts_match_reference(  # noqa: PLR0917 - fixtures and parameters
    cells: pl.DataFrame, isd: pl.DataFrame, before: float, after: float, network_after: float,
    expected: str,
) -> None:
    dc = day_counts(cells, {"C33": (before, after)}, (0.95, network_after))
    fu = verify_orders(orders_for(["C33"]), dc, cells, isd, AFTER, CFG)
    row = one(fu, "C33")
    assert row["control_basis"] == "12 neighbours"
    # the 12 controls have 700 tests per period each
    G0, G1 = (round(row[f"control_rate_{w}"] * 8400) for w in ("before", "after"))
    counts = (row["good_tests_before"], row["tests_before"], row["good_tests_after"],
              row["tests_after"], G0, 8400, G1, 8400)
    assert row["verdict"] == ref_verdict(counts, 0.80, CFG) == expected
    ref_effect, ref_p = ref_did(*counts)
    assert row["effect"] == pytest.approx(ref_effect, abs=1e-6)
    assert row["p_value"] == pytest.approx(ref_p, abs=1e-6)
    assert row["control_delta"] == pytest.approx(G1 / 8400 - G0 / 8400, abs=1e-6)
    assert row["status"] == {"recovered": "closed", "worse": "escalated"}.get(expected, "open")


def test_network_wide_drop_is_not_recovery(cells: pl.DataFrame, isd: pl.DataFrame) -> None:
    # every cell loses 5 points, the treated cell stays where it was: relative to its controls
    # it "improved", but it is still poor
    dc = day_counts(cells, {"C33": (0.78, 0.78)}, (0.95, 0.90))
    row = one(verify_orders(orders_for(["C33"]), dc, cells, isd, AFTER, CFG), "C33")
    assert row["control_delta"] == pytest.approx(-0.05)
    assert row["effect"] == pytest.approx(0.05)
    assert row["p_value"] < CFG.followup.alpha
    assert row["verdict"] == "not_recovered"
    assert row["status"] == "open"


def test_holiday_improvement_does_not_close_an_unfixed_order(cells: pl.DataFrame,
                                                           isd: pl.DataFrame) -> None:
    # a network-wide lift of 10 points carries the unfixed cell above its threshold too: a plain
    # before/after comparison would close it, the difference in differences does not
    dc = day_counts(cells, {"C33": (0.75, 0.85)}, (0.85, 0.95))
    row = one(verify_orders(orders_for(["C33"]), dc, cells, isd, AFTER, CFG), "C33")
    assert row["good_rate_after"] > 0.80
    assert ref_wilson_low(row["good_tests_after"], row["tests_after"], 1.96) > 0.80
    assert row["effect"] == pytest.approx(0.0)
    assert row["verdict"] == "not_recovered"
    assert row["status"] == "open"


def test_cluster_of_treated_cells_are_not_each_others_controls(cells: pl.DataFrame,
                                                              isd: pl.DataFrame) -> None:
    cluster = ["C22", "C23", "C32", "C33", "C34", "C43"]
    # fixed together: all jump by 20 points; if they served as each other's controls the
    # controls' delta would absorb the fix
    dc = day_counts(cells, dict.fromkeys(cluster, (0.75, 0.95)), (0.95, 0.95))
    orders = orders_for(cluster)
    fu = verify_orders(orders, dc, cells, isd, AFTER, CFG)
    assert fu["verdict"].to_list() == ["recovered"] * len(cluster)
    assert fu["control_delta"].to_list() == [0.0] * len(cluster)
    pairs = _control_pairs(orders, cells, isd, orders["cell_id"].unique(), CFG)
    assert pairs.height > 0
    assert not set(pairs["control_id"]) & set(cluster)


def test_insufficient_data_below_minimum(cells: pl.DataFrame, isd: pl.DataFrame) -> None:
    n = CFG.followup.min_tests_after
    for tests_after, expected in ((n - 1, "insufficient_data"), (n, "recovered")):
        dc = day_counts(cells, {"C33": (0.75, 1.0)}, (0.95, 0.95),
                        tests_after={"C33": tests_after})
        for status in ("open", "escalated"):
            fu = verify_orders(orders_for(["C33"], status=status, runs_open=5), dc, cells, isd,
                               AFTER, CFG)
            row = one(fu, "C33")
            assert row["tests_after"] == tests_after
            assert row["verdict"] == expected
            assert row["status"] == (status if expected == "insufficient_data" else "closed")


def test_sparse_neighbours_fall_back_to_network(cells: pl.DataFrame, isd: pl.DataFrame) -> None:
    dc = day_counts(cells, {"C33": (0.75, 0.95)}, (0.95, 0.95))
    cfg = cfg_with(min_control_tests=10**6)
    row = one(verify_orders(orders_for(["C33"]), dc, cells, isd, AFTER, cfg), "C33")
    assert row["control_basis"] == "network"
    assert row["controls"] == cells.height - 1
    # a cell not in the cells table has no neighbours at all
    dc2 = pl.concat([dc, day_counts(pl.DataFrame({"cell_id": ["X1"]}), {}, (0.75, 0.95))])
    row = one(verify_orders(orders_for(["X1"]), dc2, cells, isd, AFTER, CFG), "X1")
    assert row["control_basis"] == "network"
    assert row["verdict"] == "recovered"


def test_controls_need_tests_in_both_periods(cells: pl.DataFrame, isd: pl.DataFrame) -> None:
    dc = day_counts(cells, {"C33": (0.75, 0.95)}, (0.95, 0.95))
    # the nearest ring loses its after tests: controls come from farther out
    ring = ["C23", "C43", "C32", "C34"]
    dc = dc.filter(~(pl.col("cell_id").is_in(ring) & (pl.col("day") >= AFTER[0])))
    orders = orders_for(["C33"])
    row = one(verify_orders(orders, dc, cells, isd, AFTER, CFG), "C33")
    assert row["controls"] == 12
    pairs = _control_pairs(orders, cells, isd, orders["cell_id"].unique(), CFG)
    assert pairs.filter(pl.col("rank") < 4)["control_id"].sort().to_list() == sorted(ring)


def test_controls_are_the_nearest_within_radius() -> None:
    """Against a brute-force haversine reference on a synthetic city's cell positions."""
    import tempfile

    from kqi.synth import make_city

    with tempfile.TemporaryDirectory() as tmp:
        cells = make_city(tmp, n_cells=200, days=1).cells_df.select("cell_id", "site_id", "lat",
                                                                     "lon")
    isd = site_isd(cells, CFG)
    treated = cells["cell_id"].gather([0, 1, 50, 120]).to_list()
    orders = orders_for(treated)
    pairs = _control_pairs(orders, cells, isd, orders["cell_id"].unique(), CFG)
    pos = {c: (la, lo) for c, la, lo in cells.select("cell_id", "lat", "lon").iter_rows()}
    isd_of = dict(isd.select("cell_id", "isd_m").iter_rows())
    for cell in treated:
        radius = CFG.followup.control_radius_isd * max(isd_of[cell], CFG.diagnosis.isd_floor_m)
        ref = sorted(
            (float(haversine_m(*pos[cell], *pos[c])), c) for c in sorted(pos)
            if c not in treated)
        ref_ids = [c for d, c in ref if d <= radius]
        got = pairs.filter(pl.col("order_id") == f"WO-20261102-{cell}").sort("rank")
        assert got["control_id"].to_list() == ref_ids


def test_multi_service_order_reports_the_deciding_service(cells: pl.DataFrame,
                                                          isd: pl.DataFrame) -> None:
    dc = pl.concat([
        day_counts(cells, {"C33": (0.75, 0.95)}, (0.95, 0.95), service="browsing"),
        day_counts(cells, {"C33": (0.85, 0.70)}, (0.95, 0.95), service="video"),
    ])
    row = one(verify_orders(orders_for(["C33"], services="browsing;video"), dc, cells, isd,
                            AFTER, CFG), "C33")
    assert (row["verdict"], row["service"], row["status"]) == ("worse", "video", "escalated")
    cfg = cfg_with(escalate_on_worse=False)
    row = one(verify_orders(orders_for(["C33"], services="browsing;video"), dc, cells, isd,
                            AFTER, cfg), "C33")
    assert (row["verdict"], row["status"]) == ("worse", "open")


def test_escalation_after_runs_and_escalated_stays(cells: pl.DataFrame, isd: pl.DataFrame) -> None:
    dc = day_counts(cells, {"C33": (0.75, 0.75)}, (0.95, 0.95))
    n = CFG.followup.escalate_after_runs
    status = {}
    for runs_open, prev in ((n - 2, "open"), (n - 1, "open"), (1, "escalated")):
        fu = verify_orders(orders_for(["C33"], runs_open=runs_open, status=prev), dc, cells, isd,
                           AFTER, CFG)
        status[(runs_open, prev)] = one(fu, "C33")["status"]
    assert status == {(n - 2, "open"): "open", (n - 1, "open"): "escalated",
                      (1, "escalated"): "escalated"}


def test_output_columns_rounding_and_bytes(cells: pl.DataFrame, isd: pl.DataFrame) -> None:
    dc = day_counts(cells, {"C33": (0.7512, 0.9333), "C11": (0.61, 0.7)}, (0.9471, 0.9413))
    orders = orders_for(["C33", "C11"])
    comp = pl.DataFrame({"cell_id": ["C33", "C33"], "complaints": [2, 3]})
    a = verify_orders(orders, dc, cells, isd, AFTER, CFG, complaints_before=comp,
                      complaints_after=comp.head(0))
    b = verify_orders(orders.reverse(), dc.sample(fraction=1.0, seed=3, shuffle=True), cells,
                      None, AFTER, CFG, complaints_before=comp, complaints_after=comp.head(0))
    assert list(a.schema.items()) == list(FOLLOWUP_COLUMNS.items())
    assert a["order_id"].to_list() == sorted(a["order_id"])
    assert a.write_csv() == b.write_csv()
    assert one(a, "C33")["complaints_before"] == 5
    assert one(a, "C33")["complaints_after"] == 0
    for c, t in FOLLOWUP_COLUMNS.items():
        if t == pl.Float64():
            vals = a[c].drop_nulls().to_list()
            assert all(round(v, 6) == v for v in vals)
    no_comp = verify_orders(orders, dc, cells, isd, AFTER, CFG)
    assert no_comp["complaints_before"].null_count() == 2


def test_bad_inputs_raise_domain_errors(cells: pl.DataFrame, isd: pl.DataFrame) -> None:
    dc = day_counts(cells, {}, (0.9, 0.9))
    with pytest.raises(FollowupError, match="unknown service"):
        verify_orders(orders_for(["C33"], services="browsing;voice"), dc, cells, isd, AFTER, CFG)
    with pytest.raises(FollowupError, match="only open or escalated"):
        verify_orders(orders_for(["C33"], status="closed"), dc, cells, isd, AFTER, CFG)
    with pytest.raises(FollowupError, match="missing column"):
        verify_orders(orders_for(["C33"]).drop("runs_open"), dc, cells, isd, AFTER, CFG)
    with pytest.raises(ConfigError, match="alpha"):
        verify_orders(orders_for(["C33"]), dc, cells, isd, AFTER, cfg_with(alpha=0.0))
    assert verify_orders(orders_for([]), dc, cells, isd, AFTER, CFG).height == 0


# --------------------------------------------------------------------------------------------
# the combination rule
# --------------------------------------------------------------------------------------------

_V = st.sampled_from(["recovered", "not_recovered", "worse", "insufficient_data"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["browsing", "video", "gaming"]),
                       st.tuples(_V, st.integers(-50, 50), st.integers(0, 100),
                                 st.integers(0, 500)), min_size=1, max_size=3))
def test_combination_rule(services: dict[str, tuple[str, int, int, int]]) -> None:
    per = pl.DataFrame([
        {"order_id": "WO-1", "service": s, "verdict": v, "effect": e / 100, "p_value": p / 100,
         "n0": 100, "g0": 80, "n1": n1, "g1": 0, "controls": 12, "control_basis": "12 neighbours",
         "G0": 1, "N0": 2, "G1": 1, "N1": 2, "control_delta": 0.0}
        for s, (v, e, p, n1) in services.items()])
    got = _combine(per).row(0, named=True)
    verdicts = [v for v, *_ in services.values()]
    if "worse" in verdicts:
        expected = "worse"
    elif "insufficient_data" in verdicts:
        expected = "insufficient_data"
    elif all(v == "recovered" for v in verdicts):
        expected = "recovered"
    else:
        expected = "not_recovered"
    assert got["verdict"] == expected
    order = ["browsing", "video", "gaming"]
    cands = [s for s in order if s in services and services[s][0] == expected]

    def key(s: str) -> float:
        _, e, p, n1 = services[s]
        if expected in ("worse", "not_recovered"):
            return e
        if expected == "recovered":
            return -p
        return n1

    assert got["service"] == min(cands, key=lambda s: (key(s), order.index(s)))


# --------------------------------------------------------------------------------------------
# the state machine
# --------------------------------------------------------------------------------------------

def poor(cells_: list[str], run: int, *, cause: str = "interference",
         services: str = "browsing") -> pl.DataFrame:
    first = D0 + timedelta(7 * run)
    return pl.DataFrame({"cell_id": cells_, "primary_cause": [cause] * len(cells_),
                         "poor_services": [services] * len(cells_),
                         "first_day": [first] * len(cells_),
                         "last_day": [first + timedelta(6)] * len(cells_)},
                        schema={"cell_id": pl.String, "primary_cause": pl.String,
                                "poor_services": pl.String, "first_day": pl.Date,
                                "last_day": pl.Date})


def fu_rows(state: pl.DataFrame, verdicts: dict[str, tuple[str, str]]) -> pl.DataFrame:
    """A follow-up frame for the open orders of ``state``: {cell: (verdict, status)}."""
    ids = dict(state.select("cell_id", "order_id").iter_rows())
    return pl.DataFrame({"order_id": [ids[c] for c in verdicts],
                         "verdict": [v for v, _ in verdicts.values()],
                         "status": [s for _, s in verdicts.values()]})


def run_day(run: int) -> date:
    return D0 + timedelta(7 * run)


def state_of(state: pl.DataFrame, cell: str) -> dict:
    return state.filter(pl.col("cell_id") == cell).row(0, named=True)


def test_new_persisting_escalated_by_runs() -> None:
    s1 = advance_orders(None, None, poor(["A", "B"], 0), run_day(0), "r0", CFG)
    assert list(s1.schema.items()) == list(ORDER_STATE_COLUMNS.items())
    a = state_of(s1, "A")
    assert a["order_id"] == "WO-20261102-A"
    assert (a["status"], a["order_status"], a["runs_poor"], a["runs_open"]) == ("open", "new", 1, 1)
    assert (a["before_first"], a["before_last"]) == (run_day(0), run_day(0) + timedelta(6))
    s2 = advance_orders(s1, fu_rows(s1, {"A": ("not_recovered", "open")}), poor(["A"], 1),
                        run_day(1), "r1", CFG)
    a = state_of(s2, "A")
    assert (a["order_status"], a["runs_poor"], a["runs_open"], a["poor_streak"]) == (
        "persisting", 2, 2, 2)
    assert a["order_id"] == "WO-20261102-A"
    b = state_of(s2, "B")   # no longer poor, follow-up did not speak: stays open, not listed
    assert (b["status"], b["order_status"], b["runs_open"], b["poor_streak"]) == (
        "open", None, 2, 0)
    # third run poor in a row escalates, even without a follow-up verdict
    s3 = advance_orders(s2, None, poor(["A"], 2), run_day(2), "r2", CFG)
    a = state_of(s3, "A")
    assert (a["status"], a["order_status"], a["runs_poor"]) == ("escalated", "escalated", 3)
    # escalated stays escalated while poor
    s4 = advance_orders(s3, fu_rows(s3, {"A": ("not_recovered", "escalated")}), poor(["A"], 3),
                        run_day(3), "r3", CFG)
    assert state_of(s4, "A")["order_status"] == "escalated"
    assert state_of(s4, "A")["opened"] == run_day(0)


def test_escalation_by_followup() -> None:
    s1 = advance_orders(None, None, poor(["A"], 0), run_day(0), "r0", CFG)
    s2 = advance_orders(s1, fu_rows(s1, {"A": ("worse", "escalated")}), poor(["A"], 1),
                        run_day(1), "r1", CFG)
    a = state_of(s2, "A")
    assert (a["status"], a["order_status"], a["last_verdict"]) == ("escalated", "escalated", "worse")


def test_recovered_closed_reopened_keeps_id() -> None:
    s1 = advance_orders(None, None, poor(["A"], 0, cause="high_load"), run_day(0), "r0", CFG)
    s2 = advance_orders(s1, fu_rows(s1, {"A": ("recovered", "closed")}), poor([], 1),
                        run_day(1), "r1", CFG)
    a = state_of(s2, "A")
    assert (a["status"], a["closed_run"], a["order_status"]) == ("closed", "r1", None)
    s3 = advance_orders(s2, None, poor([], 2), run_day(2), "r2", CFG)   # carried along
    assert state_of(s3, "A") == a
    s4 = advance_orders(s3, None, poor(["A"], 3, cause="interference", services="video"),
                        run_day(3), "r3", CFG)
    a4 = state_of(s4, "A")
    assert a4["order_id"] == "WO-20261102-A"
    assert (a4["status"], a4["order_status"], a4["times_reopened"]) == ("open", "reopened", 1)
    assert (a4["opened"], a4["first_seen"], a4["opened_run"]) == (run_day(3), run_day(0), "r0")
    assert (a4["before_first"], a4["before_last"]) == (run_day(3), run_day(3) + timedelta(6))
    assert (a4["cause_at_open"], a4["poor_services_at_open"]) == ("interference", "video")
    assert (a4["runs_open"], a4["runs_poor"], a4["closed_run"]) == (1, 2, None)
    assert s4.height == 1


def test_ids_stable_and_deterministic() -> None:
    p = poor(["B", "A", "C"], 0)
    s1 = advance_orders(None, None, p, run_day(0), "r0", CFG)
    assert s1.equals(advance_orders(None, None, p.reverse(), run_day(0), "r0", CFG))
    assert s1["order_id"].to_list() == ["WO-20261102-A", "WO-20261102-B", "WO-20261102-C"]
    s = s1
    for run in range(1, 5):
        s = advance_orders(s, None, poor(["A", "B", "C", "D"], run), run_day(run), f"r{run}", CFG)
    ids = dict(s.select("cell_id", "order_id").iter_rows())
    assert ids == {"A": "WO-20261102-A", "B": "WO-20261102-B", "C": "WO-20261102-C",
                   "D": "WO-20261109-D"}


def test_state_machine_rejects_bad_state() -> None:
    s1 = advance_orders(None, None, poor(["A"], 0), run_day(0), "r0", CFG)
    with pytest.raises(FollowupError, match="more than once"):
        advance_orders(pl.concat([s1, s1]), None, poor([], 1), run_day(1), "r1", CFG)
    with pytest.raises(FollowupError, match="last_day"):
        advance_orders(None, None, poor(["A"], 0).drop("last_day"), run_day(0), "r0", CFG)


# --------------------------------------------------------------------------------------------
# the loop end to end and the programme table
# --------------------------------------------------------------------------------------------

def test_loop_and_programme_table(cells: pl.DataFrame, isd: pl.DataFrame) -> None:
    s1 = advance_orders(None, None, poor(["C33", "C11", "C55"], 0), run_day(0), "r0", CFG)
    dc = day_counts(cells, {"C33": (0.75, 0.95), "C11": (0.75, 0.75), "C55": (0.75, 0.60)},
                    (0.95, 0.95))
    open_orders = s1.filter(pl.col("status").is_in(["open", "escalated"]))
    fu = verify_orders(open_orders, dc, cells, isd, AFTER, CFG)
    assert dict(fu.select("cell_id", "verdict").iter_rows()) == {
        "C11": "not_recovered", "C33": "recovered", "C55": "worse"}
    s2 = advance_orders(s1, fu, poor(["C11", "C55", "C66"], 1), run_day(1), "r1", CFG)
    assert dict(s2.select("cell_id", "order_status").iter_rows()) == {
        "C11": "persisting", "C33": None, "C55": "escalated", "C66": "new"}
    table = programme_table(fu, s2, cells)
    assert table["orders"] == {"opened": 1, "reopened": 0, "persisting": 1, "escalated": 1,
                               "verified": 3, "closed_recovered": 1, "open": 3, "closed": 1}
    assert table["verdicts"] == {"recovered": 1, "not_recovered": 1, "worse": 1,
                                 "insufficient_data": 0}
    (cause,) = table["by_cause"]
    assert cause["name"] == "interference"
    assert cause["good_rate_before"] == pytest.approx(0.75)
    assert cause["good_rate_after"] == pytest.approx((0.95 + 0.75 + 0.60) / 3)
    assert {r["name"] for r in table["by_vendor"]} == {"ZTE", "Nokia"}
    assert "| interference | 3 | 1 | 1 | 1 | 0 |" in programme_markdown(table)
    # the headline row: every order followed up, pooled as each group is
    overall = table["all"]
    assert (overall["orders"], overall["orders_with_tests"]) == (3, 3)
    assert overall["good_rate_before"] == pytest.approx(0.75)
    assert overall["good_rate_after"] == pytest.approx((0.95 + 0.75 + 0.60) / 3)
    assert "| all followed up | 3 | 1 | 1 | 1 | 0 | 75.00 % | 76.67 % |" in programme_markdown(table)
    empty = programme_table(None, s1, None)
    assert empty["orders"]["opened"] == 3
    assert empty["by_cause"] == []
    assert "all" not in empty


def test_contract_columns_lead_the_follow_up_frame() -> None:
    from kqi.followup import CONTRACT_COLUMNS, FOLLOWUP_COLUMNS

    assert tuple(FOLLOWUP_COLUMNS)[:len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS
