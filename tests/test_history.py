"""The run history (kqi/history.py): round trips, the run-order policy, refused files,
migrations, locking between two real processes, and the ``kqi history`` command."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from kqi import history as hmod
from kqi.cli import main
from kqi.history import SCHEMA_VERSION, History, HistoryError, RunRecord

RECORDED = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)
WEEK1 = dt.date(2026, 11, 2)
WEEK2 = dt.date(2026, 11, 9)


def window(first: dt.date, days: int = 7) -> tuple[dt.datetime, dt.datetime]:
    """First and last test time of a run whose tests span ``days`` days from ``first``."""
    start = dt.datetime.combine(first, dt.time(0, 3), tzinfo=dt.UTC)
    end = dt.datetime.combine(first + dt.timedelta(days=days - 1), dt.time(23, 58), tzinfo=dt.UTC)
    return start, end


def make_record(first: dt.date, *, days: int = 7, cells: tuple[str, ...] = ("c1", "c2", "c3"),
                poor: tuple[str, ...] = ("c1",), shift: int = 0) -> RunRecord:
    """A small run with rows in every table; ``shift`` changes the counts (a different run)."""
    start, end = window(first, days)
    services = ("browsing", "video")
    dc = pl.DataFrame([
        {"cell_id": c, "service": s, "day": first + dt.timedelta(days=d),
         "tests": 10 + i + d + shift, "good_tests": (6 if c in poor else 9) + d % 2}
        for i, c in enumerate(cells) for s in services for d in range(days)])
    kqi = (dc.group_by("cell_id", "service").agg(pl.col("tests").sum(), pl.col("good_tests").sum())
           .with_columns((pl.col("good_tests") / pl.col("tests")).alias("good_rate"))
           .with_columns(((pl.col("service") == "browsing") & pl.col("cell_id").is_in(poor))
                         .alias("poor"), pl.lit(0.5).alias("confidence"))
           .sort("cell_id", "service"))
    diag = pl.DataFrame({
        "cell_id": list(poor), "poor_services": ["browsing"] * len(poor),
        "primary_cause": ["interference"] * len(poor), "secondary_causes": ["high_load"] * len(poor),
        "evidence": ["UL interference -98 dBm"] * len(poor),
        "ul_interference_dbm": [-98.0 - shift] * len(poor), "prb_util_busy": [None] * len(poor),
        "cause_score": [1.4] * len(poor), "cluster_id": [2] * len(poor), "review": [False] * len(poor),
    }, schema_overrides={"prb_util_busy": pl.Float64})
    complaints = pl.DataFrame({"cell_id": list(poor), "complaints": [3 + shift] * len(poor)})
    hotspots = pl.DataFrame({
        "kind": ["volume", "volume", "spatial"], "rank": [1, 2, 1],
        "cell_id": [cells[0], cells[-1], None], "complaints": [5, 2, 7],
        "lat": [None, None, 31.25], "lon": [None, None, 121.5]})
    run_id = History.run_id_for(start, end)
    orders = pl.DataFrame({
        "order_id": [f"O-{c}" for c in poor], "cell_id": list(poor), "status": ["open"] * len(poor),
        "order_status": ["new"] * len(poor), "opened": [end.date()] * len(poor),
        "first_seen": [end.date()] * len(poor), "runs_poor": [1] * len(poor),
        "runs_open": [0] * len(poor), "cause_at_open": ["interference"] * len(poor),
        "poor_services_at_open": ["browsing"] * len(poor), "opened_run": [run_id] * len(poor),
        "closed_run": [None] * len(poor), "last_verdict": [None] * len(poor)},
        schema_overrides={"closed_run": pl.String, "last_verdict": pl.String})
    followup = pl.DataFrame({
        "order_id": ["O-c9"], "cell_id": ["c9"], "opened": [first - dt.timedelta(days=7)],
        "cause_at_open": ["high_load"], "good_rate_before": [0.7], "good_rate_after": [0.86],
        "tests_after": [420], "control_delta": [0.01], "effect": [0.15], "p_value": [0.003],
        "verdict": ["recovered"], "status": ["closed"],
        "controls_used": [12], "method": ["did"]})
    return RunRecord(window_start=start, window_end=end, inputs={"app_tests": "a" * 64},
                     config={"kqi": {"min_tests": 30}}, day_counts=dc, cell_kqi=kqi,
                     diagnosis=diag, complaints=complaints, hotspots=hotspots, orders=orders,
                     followup=followup, recorded_utc=RECORDED)


def dump(path: Path) -> dict[str, list[tuple]]:
    """Every table's rows, sorted (to compare two states of a file)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() "
                                            "ORDER BY table_name").fetchall()]
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        con.close()


@pytest.fixture
def hpath(tmp_path: Path) -> Path:
    return tmp_path / "history.duckdb"


# ------------------------------------------------------------------------------ round trip

def test_round_trip_every_table(hpath: Path) -> None:
    rec = make_record(WEEK1)
    with History.open(hpath) as h:
        assert h.plan(rec.window_start, rec.window_end) == "new"
        h.record_run(rec)
    with History.open(hpath, create=False) as h:  # a fresh connection reads what was committed
        rid = "20261102-20261108"
        runs = h.runs()
        assert runs["run_id"].to_list() == [rid]
        row = h.newest_run()
        assert row is not None
        assert (row["window_start"], row["window_end"]) == (rec.window_start, rec.window_end)
        assert (row["first_day"], row["last_day"]) == (WEEK1, dt.date(2026, 11, 8))
        assert row["inputs"] == {"app_tests": "a" * 64}
        assert row["config"] == {"kqi": {"min_tests": 30}}
        assert row["recorded_utc"] == RECORDED
        assert runs.row(0, named=True)["poor_cells"] == 1
        assert runs.row(0, named=True)["open_orders"] == 1

        assert_frame_equal(h.day_counts_of(rid).drop("run_id"),
                           rec.day_counts.sort("day", "cell_id", "service"), check_dtypes=False)
        assert_frame_equal(h.cell_kqi(rid).drop("run_id"), rec.cell_kqi.drop("confidence"),
                           check_dtypes=False)
        assert_frame_equal(h.diagnosis(rid).drop("run_id"),
                           rec.diagnosis.select("cell_id", "poor_services", "primary_cause",
                                                "secondary_causes", "evidence"))
        # numeric evidence in long form; ids (cluster_id), flags and nulls are not evidence
        ev = h.evidence_values(rid)
        assert ev.select("name", "value").rows() == [("cause_score", 1.4),
                                                      ("ul_interference_dbm", -98.0)]
        assert_frame_equal(h.complaints(rid).drop("run_id"), rec.complaints)
        hs = h.hotspots(rid)
        assert hs.select("kind", "rank", "key").rows() == [
            ("spatial", 1, "31.25,121.5"), ("volume", 1, "c1"), ("volume", 2, "c3")]
        assert hs.filter(pl.col("kind") == "volume")["complaints"].to_list() == [5, 2]
        assert hs.filter(pl.col("kind") == "spatial")["lat"].to_list() == [31.25]
        assert_frame_equal(h.order_rows(rid).select(rec.orders.columns), rec.orders, check_dtypes=False)
        fu = h.followup(rid)
        assert_frame_equal(fu.drop("run_id"), rec.followup, check_dtypes=False)
        assert fu.columns[-2:] == ["controls_used", "method"]   # extras kept, after the contract's
        assert_frame_equal(h.followup(), fu)


def test_empty_and_missing_frames_store_only_the_run(hpath: Path) -> None:
    start, end = window(WEEK1)
    with History.open(hpath) as h:
        h.record_run(RunRecord(window_start=start, window_end=end,
                               cell_kqi=make_record(WEEK1).cell_kqi.head(0)))
        assert h.runs().height == 1
        assert h.cell_kqi(h.runs()["run_id"][0]).height == 0
        assert h.orders().height == 0
        assert h.cell_dossier("c1")["timeline"].height == 0


def test_bad_frames_are_refused_and_nothing_is_stored(hpath: Path) -> None:
    rec = make_record(WEEK1)
    rec.orders = rec.orders.drop("status")
    with History.open(hpath) as h:
        with pytest.raises(HistoryError, match="orders lacks column"):
            h.record_run(rec)
        rec = make_record(WEEK1)
        rec.complaints = pl.concat([rec.complaints, rec.complaints])  # one cell twice
        with pytest.raises(HistoryError, match="cannot store complaints") as ei:
            h.record_run(rec)
        assert "\n" not in str(ei.value)
        assert h.runs().height == 0          # the transaction left no half run behind
        assert h.cell_kqi("20261102-20261108").height == 0
        rec = make_record(WEEK1)
        rec.run_id = "whatever"
        with pytest.raises(HistoryError, match="does not match its window"):
            h.record_run(rec)


# ------------------------------------------------------------------------------ run order

def test_replacing_the_newest_window_rewrites_it_identically(hpath: Path) -> None:
    with History.open(hpath) as h:
        h.record_run(make_record(WEEK1))
        h.record_run(make_record(WEEK2))
    first = dump(hpath)
    with History.open(hpath) as h:
        rec = make_record(WEEK2)
        assert h.plan(rec.window_start, rec.window_end) == "replace"
        h.record_run(rec)
    assert dump(hpath) == first  # same inputs, same stored result, no second copy
    with History.open(hpath) as h:
        # a re-run with other data (one cell fewer) leaves none of the old rows behind
        h.record_run(make_record(WEEK2, cells=("c1", "c2"), shift=5))
        assert h.runs()["run_id"].to_list() == ["20261102-20261108", "20261109-20261115"]
        assert h.runs()["seq"].to_list() == [1, 2]
        kqi = h.cell_kqi("20261109-20261115")
        assert sorted(set(kqi["cell_id"])) == ["c1", "c2"]
        assert h.complaints("20261109-20261115")["complaints"].to_list() == [8]
    after = dump(hpath)
    assert len(after["runs"]) == 2
    assert len(after["cell_kqi"]) == len(first["cell_kqi"]) - 2


def test_older_and_backward_windows_are_refused(hpath: Path) -> None:
    with History.open(hpath) as h:
        h.record_run(make_record(WEEK2))
    before = dump(hpath)
    expected = (f"{hpath}: this run's window 2026-11-02..2026-11-08 is older than the newest "
                "recorded run 2026-11-09..2026-11-15; kqi records runs in time order "
                "(docs/history.md)")
    with History.open(hpath) as h:
        old = make_record(WEEK1)
        with pytest.raises(HistoryError) as ei:
            h.plan(old.window_start, old.window_end)
        assert str(ei.value) == expected
        with pytest.raises(HistoryError, match="is older than the newest"):
            h.record_run(old)
        # overlapping backwards: starts later but ends before the newest run's end
        start, _ = window(dt.date(2026, 11, 10))
        _, end = window(dt.date(2026, 11, 10), days=3)
        with pytest.raises(HistoryError, match=r"2026-11-10\.\.2026-11-12 is older"):
            h.plan(start, end)
    assert dump(hpath) == before


def test_replacing_a_run_that_is_not_the_newest_is_refused(hpath: Path) -> None:
    with History.open(hpath) as h:
        h.record_run(make_record(WEEK1))
        h.record_run(make_record(WEEK2))
        with pytest.raises(HistoryError, match=r"2026-11-02\.\.2026-11-08 is older than the newest "
                                               r"recorded run 2026-11-09\.\.2026-11-15"):
            h.record_run(make_record(WEEK1, shift=1))
        assert h.runs().height == 2
        assert h.day_counts_of("20261102-20261108")["tests"].min() == 10  # untouched


def test_previous_runs_and_state_before_a_run(hpath: Path) -> None:
    w1, w2 = "20261102-20261108", "20261109-20261115"
    with History.open(hpath) as h:
        assert h.newest_run() is None
        assert h.previous_run_id(w1) is None
        h.record_run(make_record(WEEK1))
        rec2 = make_record(WEEK2, poor=("c1", "c2"))
        rec2.orders = rec2.orders.with_columns(
            pl.when(pl.col("cell_id") == "c1").then(pl.lit("persisting"))
            .otherwise(pl.col("order_status")).alias("order_status"))
        h.record_run(rec2)
        assert h.newest_run()["run_id"] == w2
        assert h.newest_run(exclude=w2)["run_id"] == w1
        assert h.previous_run_id(w2) == w1
        assert h.previous_run_id(w1) is None
        assert h.previous_run_id("20261116-20261122") == w2   # a run about to be recorded
        # the state a re-run of week 2 starts from is the one week 1 left
        before = h.orders_state(before_run=w2)
        assert before.select("order_id", "run_id").rows() == [("O-c1", w1)]
        now = h.orders_state()
        assert now.select("order_id", "order_status", "run_id").rows() == [
            ("O-c1", "persisting", w2), ("O-c2", "new", w2)]
        assert h.orders("open").height == 2
        assert h.orders("closed").height == 0
        with pytest.raises(HistoryError, match="unknown order status"):
            h.orders("shut")


def test_day_counts_newest_run_wins_a_day(hpath: Path) -> None:
    with History.open(hpath) as h:
        h.record_run(make_record(WEEK1))                                    # Nov 2..8
        h.record_run(make_record(dt.date(2026, 11, 8), days=3, cells=("c1",), shift=100))
        dc = h.day_counts(dt.date(2026, 11, 7), dt.date(2026, 11, 9))
        by_day = dc.group_by("day").agg(pl.col("run_id").unique(), pl.len()).sort("day")
        assert by_day["run_id"].to_list() == [["20261102-20261108"], ["20261108-20261110"],
                                              ["20261108-20261110"]]
        # the newer run holds Nov 8 for c1 only: c2 and c3 have no counts that day any more
        assert by_day["len"].to_list() == [6, 2, 2]
        assert dc.filter(pl.col("day") == dt.date(2026, 11, 8))["tests"].to_list() == [110, 110]
        # before the second run, Nov 8 is week 1's
        old = h.day_counts(dt.date(2026, 11, 8), dt.date(2026, 11, 8),
                           before_run="20261108-20261110")
        assert set(old["run_id"]) == {"20261102-20261108"}
        assert old.height == 6
        assert dc.columns == ["cell_id", "service", "day", "tests", "good_tests", "run_id"]


def test_cell_dossier(hpath: Path) -> None:
    with History.open(hpath) as h:
        h.record_run(make_record(WEEK1))
        h.record_run(make_record(WEEK2, poor=("c2",)))
        d = h.cell_dossier("c1")
        tl = d["timeline"]
        assert tl["run_id"].to_list() == ["20261102-20261108", "20261109-20261115"]
        assert tl["poor_services"].to_list() == ["browsing", ""]
        assert tl["primary_cause"].to_list() == ["interference", None]
        assert tl["complaints"].to_list() == [3, None]
        assert tl["order_id"].to_list() == ["O-c1", None]
        assert tl["good_rate_gaming"].null_count() == 2
        assert tl["good_rate_browsing"][0] == pytest.approx(45 / 91)
        assert set(d["evidence"]["name"]) == {"cause_score", "ul_interference_dbm"}
        assert d["kqi"].height == 4
        assert h.cell_dossier("nope")["timeline"].height == 0


# ------------------------------------------------------------------------------ refused files

def test_newer_schema_is_refused(hpath: Path) -> None:
    History.open(hpath).close()
    con = duckdb.connect(str(hpath))
    con.execute("UPDATE kqi_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(HistoryError) as ei:
        History.open(hpath)
    assert str(ei.value) == (f"{hpath}: written by a newer kqi (schema 99, this kqi reads up to "
                             f"{SCHEMA_VERSION}); upgrade kqi to use it")


def test_text_file_and_foreign_duckdb_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.duckdb"
    text.write_text("not a database\n", encoding="utf-8")
    with pytest.raises(HistoryError) as ei:
        History.open(text)
    assert str(ei.value) == f"{text}: not a kqi history file"
    assert text.read_text(encoding="utf-8") == "not a database\n"

    foreign = tmp_path / "other.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE sales (id INTEGER)")
    con.close()
    with pytest.raises(HistoryError, match=r"other\.duckdb: not a kqi history file$"):
        History.open(foreign)
    con = duckdb.connect(str(foreign))
    assert [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()] == ["sales"]
    con.close()

    with pytest.raises(HistoryError, match="no such history file"):
        History.open(tmp_path / "missing.duckdb", create=False)
    assert not (tmp_path / "missing.duckdb").exists()


def test_migration_from_schema_1(hpath: Path) -> None:
    con = duckdb.connect(str(hpath))
    hmod._initialise(con, schema_version=1)
    con.execute("INSERT INTO runs VALUES ('20261102-20261108', 1, TIMESTAMPTZ '2026-11-09 01:00:00+00', "
                "TIMESTAMPTZ '2026-11-02 00:03:00+00', TIMESTAMPTZ '2026-11-08 23:58:00+00', "
                "DATE '2026-11-02', DATE '2026-11-08', '{}', '{}', '0.0.9')")
    con.execute("INSERT INTO followup VALUES ('20261102-20261108', 'O-1', 'c1', DATE '2026-10-30', "
                "'fault', 0.5, 0.9, 300, 0.0, 0.4, 0.001, 'recovered', 'closed')")
    cols = [r[0] for r in con.execute("DESCRIBE followup").fetchall()]
    assert "extra" not in cols
    con.close()

    with History.open(hpath) as h:
        assert h.schema_version == SCHEMA_VERSION == 3
        fu = h.followup()
        assert fu.select("order_id", "verdict", "status").rows() == [("O-1", "recovered", "closed")]
        h.record_run(make_record(WEEK2))                         # the new schema is writable
        assert h.evidence_values("20261109-20261115").height == 2
        assert h.followup("20261109-20261115")["method"].to_list() == ["did"]
        meta = dict(h.con.execute("SELECT key, value FROM kqi_meta").fetchall())
    assert meta["created_by_version"] == "0.1.0"
    assert meta["migrated_by_version"] == "0.1.0"
    with History.open(hpath) as h:                                # opening again: no migration
        assert h.runs()["run_id"].to_list() == ["20261102-20261108", "20261109-20261115"]


# ------------------------------------------------------------------------------ locking

_HOLDER = """
import datetime as dt, sys, time
from kqi.history import History, RunRecord
with History.open(sys.argv[1], lock_wait_s=0) as h:
    h.record_run(RunRecord(window_start=dt.datetime(2026, 11, 2), window_end=dt.datetime(2026, 11, 8, 23)))
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_two_processes_wait_for_each_other(hpath: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(hpath), "2.0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "locked\n", child.stderr.read() if child.stderr else ""
        # a short wait gives up with one line naming the holder
        with pytest.raises(HistoryError) as ei:
            History.open(hpath, lock_wait_s=0.3)
        msg = str(ei.value)
        assert msg == (f"{hpath}: history is in use by another kqi run (held by PID {child.pid}); "
                       "try again when it finishes")
        # a long wait succeeds once the other run releases the file
        t0 = time.monotonic()
        with History.open(hpath, lock_wait_s=60) as h:
            waited = time.monotonic() - t0
            assert child.poll() is not None or child.wait(timeout=10) == 0
            h.record_run(make_record(WEEK2))
        assert waited > 0.2
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    with History.open(hpath, lock_wait_s=0) as h:   # readable afterwards, both runs kept
        assert h.runs()["run_id"].to_list() == ["20261102-20261108", "20261109-20261115"]


def test_second_history_in_one_process_waits_too(hpath: Path) -> None:
    with History.open(hpath), pytest.raises(HistoryError, match="in use by another kqi run"):
        History.open(hpath, lock_wait_s=0.1)
    History.open(hpath, lock_wait_s=0).close()   # released by the with block


# ------------------------------------------------------------------------------ command line

@pytest.fixture
def filled(hpath: Path) -> Path:
    with History.open(hpath) as h:
        h.record_run(make_record(WEEK1))
        h.record_run(make_record(WEEK2, poor=("c1", "c2")))
    return hpath


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_runs_orders_cell(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(["history", "--history", str(filled), "runs"], capsys)
    assert code == 0
    assert "20261102-20261108" in out
    assert "20261109-20261115" in out
    assert "poor_cells" in out

    code, out, _ = _cli(["history", "--history", str(filled), "runs", "--csv"], capsys)
    runs = pl.read_csv(out.encode())
    assert runs["run_id"].to_list() == ["20261102-20261108", "20261109-20261115"]
    assert runs["poor_cells"].to_list() == [1, 2]

    code, out, _ = _cli(["history", "--history", str(filled), "orders", "--status", "open",
                         "--csv"], capsys)
    assert code == 0
    assert pl.read_csv(out.encode())["order_id"].to_list() == ["O-c1", "O-c2"]
    code, out, _ = _cli(["history", "--history", str(filled), "orders", "--status", "closed"],
                        capsys)
    assert code == 0
    assert "O-c1" not in out
    # on the console, one state column: where the order stands, and its last run's word for it
    code, out, _ = _cli(["history", "--history", str(filled), "orders"], capsys)
    assert code == 0
    header = next(line for line in out.splitlines() if "order_id" in line)
    assert "order_state" in header
    assert "order_status" not in header
    assert " status " not in header.replace("┃", " ")
    assert "open (" in out

    code, out, _ = _cli(["history", "--history", str(filled), "cell", "c2", "--csv"], capsys)
    tl = pl.read_csv(out.encode())
    assert tl["run_id"].to_list() == ["20261102-20261108", "20261109-20261115"]
    assert tl["poor_services"].fill_null("").to_list() == ["", "browsing"]
    code, out, _ = _cli(["history", "--history", str(filled), "cell", "c2"], capsys)
    assert code == 0
    assert "interference" in out


def test_cli_errors_are_one_line(tmp_path: Path, filled: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.duckdb"
    code, _, err = _cli(["history", "--history", str(missing), "runs"], capsys)
    assert code == 2
    assert err == f"kqi: error: {missing}: no such history file\n"
    assert not missing.exists()

    code, _, err = _cli(["history", "--history", str(filled), "cell", "c404"], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert "cell 'c404' is in no recorded run" in err

    code, _, err = _cli(["history", "runs"], capsys)
    assert code == 2
    assert "--history" in err


@pytest.mark.parametrize("sub", ["runs", "orders", "cell"])
def test_cli_subcommand_help_needs_no_history(sub: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["history", sub, "--help"], capsys)
    assert (code, err) == (0, "")
    assert "Usage: kqi history" in out
