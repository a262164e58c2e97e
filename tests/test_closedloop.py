"""The closed loop end to end: two weeks of the same synthetic network through `kqi run --history`,
verdicts scored against the planted truth, stable order ids, re-runs, refused windows, the
trailing window."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

import kqi
import kqi.schema
from kqi.config import Config, HistoryConfig
from kqi.errors import KqiError
from kqi.synth import City, make_followup

NET = {"n_cells": 500, "days": 7, "tests_per_cell_day": 20}


def weeks(root: Path, seed: int, **kw: object) -> tuple[City, City]:
    return (make_followup(root / "w0", seed=seed, week=0, **NET, **kw),  # type: ignore[arg-type]
            make_followup(root / "w1", seed=seed, week=1, **NET, **kw))  # type: ignore[arg-type]


def run_week(city: City, out: Path | None, history: Path, config: Config | None = None
             ) -> kqi.RunResult:
    return kqi.run(cells=city.cells, tests=city.tests, kpis=city.kpis, complaints=city.complaints,
                   subscribers=city.subscribers, out=out, history=history, config=config)


@pytest.fixture(scope="module")
def two_weeks(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("loop")
    w0, w1 = weeks(root, seed=7)
    hist = root / "history.duckdb"
    r0 = run_week(w0, root / "out0", hist)
    r1 = run_week(w1, root / "out1", hist)
    return root, w0, w1, hist, r0, r1


def scored(followup: pl.DataFrame, city: City) -> pl.DataFrame:
    assert city.followup_truth_df is not None
    truth = city.followup_truth_df.filter(pl.col("expected_verdict").fill_null("") != "")
    return truth.join(followup.select("cell_id", "verdict"), on="cell_id", how="left")


def test_orders_open_then_follow_up_in_the_next_week(two_weeks) -> None:
    root, _w0, _w1, _hist, r0, r1 = two_weeks
    wo0 = pl.read_csv(root / "out0" / "work_orders.csv")
    assert set(wo0["order_status"]) == {"new"}
    assert wo0.columns[:13] == [f.name for f in kqi.schema.WORK_ORDERS]
    assert {"order_id", "order_status", "first_seen", "runs_poor"} <= set(wo0.columns)
    fu = pl.read_csv(root / "out1" / "followup.csv")
    assert fu.columns[:16] == ["order_id", "cell_id", "opened", "cause_at_open", "good_rate_before",
                               "good_rate_after", "tests_after", "control_delta", "effect",
                               "p_value", "verdict", "status",
                               # where the cell is, for the reader
                               "cell_name", "site_id", "vendor", "region"]
    assert fu["vendor"].null_count() == 0
    # every order open after week 0 is followed up once
    assert sorted(fu["order_id"]) == sorted(wo0["order_id"])
    # a persisting cell keeps its order id; a new poor cell gets a new one
    wo1 = pl.read_csv(root / "out1" / "work_orders.csv")
    both = wo1.join(wo0.select("cell_id", pl.col("order_id").alias("id0")), on="cell_id")
    assert both.height > 0
    assert (both["order_id"] == both["id0"]).all()
    assert set(both["order_status"]) <= {"persisting", "escalated"}
    assert (both["runs_poor"] == 2).all()
    fresh = wo1.join(wo0, on="cell_id", how="anti")
    assert set(fresh["order_status"]) == {"new"}
    # recovered orders are closed, worse ones escalated
    assert set(fu.filter(pl.col("verdict") == "recovered")["status"]) == {"closed"}
    assert set(fu.filter(pl.col("verdict") == "worse")["status"]) == {"escalated"}
    prog = r1.summary["programme"]["orders"]
    assert prog["closed_recovered"] == fu.filter(pl.col("verdict") == "recovered").height
    assert "## Closed loop" in (root / "out1" / "summary.md").read_text(encoding="utf-8")
    assert r0.followup is None
    assert r1.trend is not None
    assert r1.trend["run_id"].n_unique() == 2


def test_verdicts_match_the_planted_truth(two_weeks) -> None:
    _root, _w0, w1, _hist, _r0, r1 = two_weeks
    s = scored(r1.followup, w1)
    assert s["verdict"].null_count() == 0        # every planted week-0 poor cell was followed up
    acc = (s["verdict"] == s["expected_verdict"]).mean()
    assert acc >= 0.97, s.filter(pl.col("verdict") != pl.col("expected_verdict"))
    assert set(s["expected_verdict"]) >= {"recovered", "not_recovered", "worse", "insufficient_data"}


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "shift"), [(2, 0.0), (11, -0.03), (13, 0.03)])
def test_verdict_accuracy_on_other_seeds_and_network_shifts(tmp_path: Path, seed: int,
                                                             shift: float) -> None:
    """A network-wide shift in week 2 (an app update, a holiday) must neither close unfixed
    orders nor keep fixed ones: the controls take it out."""
    w0, w1 = weeks(tmp_path, seed=seed, network_shift=shift)
    hist = tmp_path / "h.duckdb"
    run_week(w0, None, hist)
    r1 = run_week(w1, None, hist)
    assert r1.followup is not None
    s = scored(r1.followup, w1)
    acc = (s["verdict"] == s["expected_verdict"]).mean()
    assert acc >= 0.97, s.filter(pl.col("verdict") != pl.col("expected_verdict"))


def test_a_repeated_run_changes_nothing(two_weeks, tmp_path: Path) -> None:
    root, _w0, w1, hist, _r0, _r1 = two_weeks
    again = tmp_path / "again"
    run_week(w1, again, hist)
    first = sorted(p.relative_to(root / "out1") for p in (root / "out1").rglob("*") if p.is_file())
    assert sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file()) == first
    for name in first:   # every output, the workbook with its chart and the map included
        if name.name != "run_info.json":   # the run's own times
            assert (again / name).read_bytes() == (root / "out1" / name).read_bytes(), name
    from kqi.history import History

    with History.open(hist) as h:
        assert h.runs()["run_id"].to_list() == ["20261102-20261108", "20261109-20261115"]


def test_an_older_window_is_refused(two_weeks, tmp_path: Path) -> None:
    _root, w0, _w1, hist, _r0, _r1 = two_weeks
    with pytest.raises(KqiError, match="older than the newest recorded run"):
        run_week(w0, tmp_path / "old", hist)
    assert not (tmp_path / "old" / "manifest.json").exists()


def test_trailing_window_reads_stored_days(two_weeks, tmp_path: Path) -> None:
    """With window_days = 14 the week-2 run analyses both weeks from the stored day counts plus
    only the new tests, and gives what one run over both weeks' tests gives."""
    _root, w0, w1, _hist, _r0, _r1 = two_weeks
    hist = tmp_path / "h.duckdb"
    cfg = replace(Config(), history=HistoryConfig(window_days=14))
    run_week(w0, None, hist, cfg)
    trailing = run_week(w1, None, hist, cfg)
    both = pl.concat([pl.read_csv(w.tests, infer_schema=False) for w in (w0, w1)])
    whole = kqi.run(cells=w1.cells, tests=both, kpis=w1.kpis, out=None)
    cols = ["cell_id", "service", "tests", "good_tests", "good_rate", "poor"]
    assert trailing.cell_kqi.select(cols).equals(whole.cell_kqi.select(cols))
    # and only the new week's days are recorded for week 2
    from kqi.history import History

    with History.open(hist) as h:
        days = h.day_counts_of("20261109-20261115")["day"]
        assert str(days.min()) == "2026-11-09"


def test_demo_replaces_only_its_own_history(tmp_path: Path) -> None:
    from kqi.cli import main

    def demo(out: Path) -> int:
        try:
            main(["-q", "demo", "--out", str(out), "--cells", "60", "--days", "2"])
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    assert demo(tmp_path / "d") == 0
    assert demo(tmp_path / "d") == 0               # an earlier demo's history starts afresh
    other = tmp_path / "o"
    other.mkdir()
    import datetime as dt

    from kqi.history import History, RunRecord

    with History.open(other / "history.duckdb") as h:   # somebody's real history
        t0 = dt.datetime(2025, 3, 3, tzinfo=dt.UTC)
        h.record_run(RunRecord(window_start=t0, window_end=t0 + dt.timedelta(days=6),
                               run_id=History.run_id_for(t0, t0 + dt.timedelta(days=6))))
    before = (other / "history.duckdb").read_bytes()
    assert demo(other) == 2
    assert (other / "history.duckdb").read_bytes() == before
