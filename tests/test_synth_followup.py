"""The follow-up weeks of the synthetic city (kqi.synth.make_followup).

Good-rates are computed here straight from the written tests file with polars (the data
contract's default verdicts), never through kqi's own flagging, so the planted truth is checked
independently of the code it will score.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from reference import good_expr

from kqi.config import Config
from kqi.schema import CAUSES
from kqi.synth import EXPECTED_VERDICTS, MAX_NETWORK_SHIFT, OUTCOMES, City, make_city, make_followup

CFG = Config()
SERVICES = ("browsing", "video", "gaming")
START = date(2026, 11, 2)
MAKE_CITY_FILES = ("cells.csv", "app_tests.csv", "cell_kpis.csv", "complaints.csv",
                   "subscribers.csv", "truth.csv", "complaint_truth.csv", "expected_rejects.csv")
SHIFT = -0.03


def read_tests(city: City) -> pl.DataFrame:
    if city.tests.suffix == ".parquet":
        return pl.read_parquet(city.tests).with_columns(pl.col("ts").dt.replace_time_zone(None))
    return pl.read_csv(city.tests, schema_overrides={"cell_id": pl.String}, try_parse_dates=True)


def good_rates(city: City, cfg: Config = CFG) -> pl.DataFrame:
    """cell_id, service, tests, good_rate from the tests file (null KQI = not good)."""
    good = good_expr(cfg)
    return (read_tests(city).with_columns(good=good).group_by("cell_id", "service")
            .agg(tests=pl.len(), good_rate=pl.col("good").mean()))


def threshold(service: str, cfg: Config = CFG) -> float:
    return cfg.kqi.thresholds.for_service(service)


def week0_services(f: pl.DataFrame) -> pl.DataFrame:
    """One row per (cell, service) poor in week 0, with the cell's outcome."""
    return (f.with_columns(service=pl.col("poor_week0").str.split(";")).explode("service")
            .filter(pl.col("service").is_not_null() & (pl.col("service") != ""))
            .select("cell_id", "service", "outcome"))


@pytest.fixture(scope="module")
def w0(tmp_path_factory: pytest.TempPathFactory) -> City:
    return make_followup(tmp_path_factory.mktemp("w0"), week=0)


@pytest.fixture(scope="module")
def w1(tmp_path_factory: pytest.TempPathFactory) -> City:
    """Week 1 with a network-wide shift (an app update): rates move, the verdicts must not."""
    return make_followup(tmp_path_factory.mktemp("w1"), week=1, network_shift=SHIFT)


@pytest.fixture(scope="module")
def w1_flat(tmp_path_factory: pytest.TempPathFactory) -> City:
    return make_followup(tmp_path_factory.mktemp("w1flat"), week=1)


# ---------------------------------------------------------------- week 0 and the same network


@pytest.mark.parametrize("kw", [
    {},
    {"seed": 3, "n_cells": 240, "days": 2, "corrupt": True, "chinese_headers": True, "encoding": "gbk"},
    {"seed": 2, "n_cells": 300, "days": 3, "tests_format": "parquet", "corrupt": True},
])
def test_week0_equals_make_city(tmp_path: Path, kw: dict) -> None:
    city = make_city(tmp_path / "city", **kw)
    week0 = make_followup(tmp_path / "w0", week=0, network_shift=SHIFT, **kw)
    names = sorted(p.name for p in (tmp_path / "city").iterdir())
    assert len(names) == 8
    assert sorted(p.name for p in (tmp_path / "w0").iterdir()) == sorted([*names, "followup_truth.csv"])
    for name in names:
        assert (tmp_path / "city" / name).read_bytes() == (tmp_path / "w0" / name).read_bytes(), name
    assert (week0.week, city.week) == (0, 0)
    assert city.followup_truth_df is None
    # week 0's follow-up truth is the plan, with week 0's own poor services and causes
    f = week0.followup_truth_df
    assert f is not None
    assert f["poor_services"].to_list() == f["poor_week0"].to_list()
    assert f["poor_week0"].to_list() == city.truth_df["poor_services"].to_list()
    assert f["cause_week0"].to_list() == city.truth_df["cause"].to_list()


def test_cells_and_subscribers_identical_across_weeks(w0: City, w1: City, tmp_path: Path) -> None:
    assert w1.cells.read_bytes() == w0.cells.read_bytes()
    assert w1.subscribers.read_bytes() == w0.subscribers.read_bytes()
    assert w1.cells_df.equals(w0.cells_df)
    assert w1.truth_df.select("cell_id", "isd_class", "isd_m").equals(
        w0.truth_df.select("cell_id", "isd_class", "isd_m"))
    # ... and the same again two weeks on
    w2 = make_followup(tmp_path, week=2, network_shift=SHIFT)
    assert w2.cells.read_bytes() == w0.cells.read_bytes()
    assert w2.followup_truth_df is not None
    assert w2.followup_truth_df.equals(w1.followup_truth_df)  # the outcomes hold in every week >= 1


def test_days_are_contiguous(w0: City, w1: City, tmp_path: Path) -> None:
    def dates(city: City) -> dict[str, tuple[date, date]]:
        t = read_tests(city)["ts"]
        k = pl.read_csv(city.kpis, try_parse_dates=True)["ts"]
        c = pl.read_csv(city.complaints, try_parse_dates=True)["ts"]
        return {name: (s.min().date(), s.max().date()) for name, s in  # type: ignore[union-attr]
                (("tests", t), ("kpis", k), ("complaints", c))}

    d0, d1 = dates(w0), dates(w1)
    for feed in ("tests", "kpis"):
        assert d0[feed] == (START, START + timedelta(days=6)), feed
        assert d1[feed] == (START + timedelta(days=7), START + timedelta(days=13)), feed
    assert d0["complaints"][0] >= START
    assert d0["complaints"][1] < START + timedelta(days=7)
    assert START + timedelta(days=7) <= d1["complaints"][0] <= d1["complaints"][1] <= START + timedelta(days=13)
    # hourly KPIs: week 1's first hour is the hour after week 0's last
    k0 = pl.read_csv(w0.kpis, try_parse_dates=True)["ts"].max()
    k1 = pl.read_csv(w1.kpis, try_parse_dates=True)["ts"].min()
    assert k1 - k0 == timedelta(hours=1)  # type: ignore[operator]
    # week w starts days x w after start, for any days
    w3 = make_followup(tmp_path, seed=5, n_cells=200, days=2, week=3)
    t3 = read_tests(w3)["ts"]
    assert t3.min().date() == START + timedelta(days=6)  # type: ignore[union-attr]
    assert t3.max().date() == START + timedelta(days=7)  # type: ignore[union-attr]


# ---------------------------------------------------------------- the planted outcomes


def test_followup_truth_table(w0: City, w1: City) -> None:
    f = w1.followup_truth_df
    assert f is not None
    assert f.columns == ["cell_id", "poor_week0", "cause_week0", "outcome", "poor_services",
                         "cause", "expected_verdict"]
    on_disk = pl.read_csv(w1.followup_truth, infer_schema=False).fill_null("")
    assert on_disk.equals(f)
    assert set(f["outcome"]) == set(OUTCOMES)
    assert f["poor_week0"].to_list() == w0.truth_df["poor_services"].to_list()
    assert f["cause_week0"].to_list() == w0.truth_df["cause"].to_list()

    poor0 = f.filter(pl.col("poor_week0") != "")
    k = poor0.height
    n = dict(f.group_by("outcome").len().iter_rows())
    assert n["fixed"] == round(0.6 * k)
    assert n["worse"] == round(0.05 * k)
    assert n["sparse"] == round(0.03 * k) >= 1
    assert n["not_fixed"] == k - n["fixed"] - n["worse"] - n["sparse"]
    assert n["new_poor"] == round(0.02 * (f.height - k))
    assert set(poor0["outcome"]) == {"fixed", "not_fixed", "worse", "sparse"}
    # the verdict a verification must reach, for week 0's poor cells only
    assert (poor0["expected_verdict"] == poor0["outcome"].replace_strict(EXPECTED_VERDICTS)).all()
    assert (f.filter(pl.col("poor_week0") == "")["expected_verdict"] == "").all()

    # this week's state: fixed cells healthy, the others keep week 0's services and cause
    fixed = f.filter(pl.col("outcome") == "fixed")
    assert (fixed["poor_services"] == "").all()
    assert (fixed["cause"] == "").all()
    kept = f.filter(pl.col("outcome").is_in(["not_fixed", "worse", "sparse"]))
    assert kept["poor_services"].to_list() == kept["poor_week0"].to_list()
    assert kept["cause"].to_list() == kept["cause_week0"].to_list()
    new = f.filter(pl.col("outcome") == "new_poor")
    assert (new["poor_services"] != "").all()
    assert set(new["cause"]) == set(CAUSES)  # every cause, unknown included, at this size
    assert (f.filter(pl.col("outcome") == "healthy")["poor_services"] == "").all()

    # truth.csv: the week's poor cells that flagging can find (sparse ones cannot be judged)
    t = w1.truth_df.join(f, on="cell_id", suffix="_f")
    seen = t.filter(pl.col("outcome") != "sparse")
    assert seen["poor_services"].to_list() == seen["poor_services_f"].to_list()
    assert seen["cause"].to_list() == seen["cause_f"].to_list()
    assert (t.filter(pl.col("outcome") == "sparse")["poor_services"] == "").all()


def check_good_rates(week0: City, week1: City, cfg: Config = CFG) -> None:
    """The planted outcomes, read back from the two weeks' tests files."""
    f = week1.followup_truth_df
    assert f is not None
    r0, r1 = good_rates(week0, cfg), good_rates(week1, cfg)
    th = pl.col("service").replace_strict({s: threshold(s, cfg) for s in SERVICES})
    enough = max(cfg.kqi.min_tests, cfg.followup.min_tests_after)
    svc = (week0_services(f).join(r0, on=["cell_id", "service"], how="left")
           .join(r1, on=["cell_id", "service"], how="left", suffix="_1").with_columns(th=th))
    observed = svc.filter(pl.col("outcome") != "sparse")
    # every observed week-0 poor service has tests enough to verify it, before and after
    assert observed["tests"].min() >= 2 * enough  # type: ignore[operator]
    assert observed["tests_1"].null_count() == 0
    assert observed["tests_1"].min() >= 2 * enough  # type: ignore[operator]
    assert (svc["good_rate"] <= svc["th"]).all()  # week 0: all poor
    fixed = observed.filter(pl.col("outcome") == "fixed")
    assert fixed.height
    assert (fixed["good_rate_1"] > fixed["th"] + 0.02).all()
    stays = observed.filter(pl.col("outcome").is_in(["not_fixed", "worse"]))
    assert (stays["good_rate_1"] <= stays["th"] - 0.02).all()
    worse = observed.filter(pl.col("outcome") == "worse")
    assert worse.height
    assert (worse["good_rate_1"] < worse["good_rate"] - 0.12).all()
    not_fixed = observed.filter(pl.col("outcome") == "not_fixed")
    assert ((not_fixed["good_rate_1"] - not_fixed["good_rate"]).abs() < MAX_NETWORK_SHIFT + 0.02).all()

    # this week's poor cells as a flagging at the thresholds sees them = truth.csv, exactly
    judged = (r1.with_columns(th=th)
              .filter((pl.col("tests") >= cfg.kqi.min_tests) & (pl.col("good_rate") <= pl.col("th"))))
    truth = (week1.truth_df.with_columns(service=pl.col("poor_services").str.split(";"))
             .explode("service").filter(pl.col("service") != ""))
    assert set(judged.select("cell_id", "service").iter_rows()) == set(
        truth.select("cell_id", "service").iter_rows())
    new = truth.join(f, on="cell_id").filter(pl.col("outcome") == "new_poor")
    assert new.height == f.filter(pl.col("outcome") == "new_poor").height
    # sparse cells: fewer tests than a verdict needs, in every service
    few = min(cfg.kqi.min_tests, cfg.followup.min_tests_after)
    sparse = f.filter(pl.col("outcome") == "sparse").join(r1, on="cell_id", how="left")
    assert f.filter(pl.col("outcome") == "sparse").height >= 1
    assert (sparse["tests"].fill_null(0) < few).all()


def test_good_rates_follow_outcomes(w0: City, w1: City) -> None:
    check_good_rates(w0, w1)


@pytest.mark.parametrize(("seed", "shift", "config"), [
    (2, 0.0, CFG),
    (11, 0.04, CFG),
    (13, -MAX_NETWORK_SHIFT, dataclasses.replace(CFG, kqi=dataclasses.replace(CFG.kqi, min_tests=40))),
])
def test_good_rates_on_other_seeds(tmp_path: Path, seed: int, shift: float, config: Config) -> None:
    kw = {"seed": seed, "n_cells": 800, "config": config}
    check_good_rates(make_city(tmp_path / "w0", **kw),
                     make_followup(tmp_path / "w1", week=1, network_shift=shift, **kw), config)


def test_network_shift(w0: City, w1: City, w1_flat: City) -> None:
    f = w1.followup_truth_df
    assert f is not None
    r0, r1, flat = good_rates(w0), good_rates(w1), good_rates(w1_flat)
    # same draws but the shift: same test counts, rates moved by the shift
    assert r1.sort("cell_id", "service")["tests"].equals(flat.sort("cell_id", "service")["tests"])
    healthy = f.filter(pl.col("outcome") == "healthy").select("cell_id")
    j = (healthy.join(r0, on="cell_id").join(r1, on=["cell_id", "service"], suffix="_1")
         .join(flat, on=["cell_id", "service"], suffix="_flat")
         .filter((pl.col("tests") >= 100) & (pl.col("tests_1") >= 100)))
    assert j.height > 500
    d_flat = (j["good_rate_1"] - j["good_rate_flat"]).mean()
    d_week0 = (j["good_rate_1"] - j["good_rate"]).mean()
    assert abs(d_flat - SHIFT) < 0.003  # type: ignore[operator]
    assert abs(d_week0 - SHIFT) < 0.005  # type: ignore[operator]
    assert abs((j["good_rate_flat"] - j["good_rate"]).mean()) < 0.003  # type: ignore[arg-type]
    # healthy cells stay healthy despite the shift
    th = pl.col("service").replace_strict({s: threshold(s) for s in SERVICES})
    judged = healthy.join(r1, on="cell_id").filter(pl.col("tests") >= CFG.kqi.min_tests)
    assert (judged["good_rate"] > judged.select(th)["service"]).all()
    # fixed cells recover relative to the rest of the network: a difference in differences
    fixed = (week0_services(f).filter(pl.col("outcome") == "fixed")
             .join(r0, on=["cell_id", "service"]).join(r1, on=["cell_id", "service"], suffix="_1"))
    did = (fixed["good_rate_1"] - fixed["good_rate"]).mean() - d_week0  # type: ignore[operator]
    assert did > 0.2


def test_kpi_evidence_gone_on_fixed_cells(w1: City) -> None:
    f = w1.followup_truth_df
    assert f is not None
    busy = (pl.read_csv(w1.kpis).filter(pl.col("ts").str.slice(11, 2).cast(pl.Int32).is_between(19, 22))
            .group_by("cell_id").agg(prb=pl.col("prb_util_dl").mean(), ul=pl.col("ul_interference_dbm").mean(),
                                     alarms=pl.col("alarm_count").sum()))
    dc = CFG.diagnosis
    j = f.join(busy, on="cell_id")

    def of(outcome: str, cause: str) -> pl.DataFrame:
        return j.filter((pl.col("outcome") == outcome) & (pl.col("cause_week0") == cause))

    assert of("fixed", "high_load").height
    assert (of("fixed", "high_load")["prb"] < dc.prb_util_pct).all()
    assert (of("not_fixed", "high_load")["prb"] > dc.prb_util_pct).all()
    assert of("fixed", "interference").height
    assert (of("fixed", "interference")["ul"] < dc.ul_interference_dbm).all()
    assert (of("not_fixed", "interference")["ul"] > dc.ul_interference_dbm).all()
    # new poor cells carry their own cause's evidence
    new = j.filter(pl.col("outcome") == "new_poor")
    assert (new.filter(pl.col("cause") == "high_load")["prb"] > dc.prb_util_pct).all()
    assert (new.filter(pl.col("cause") == "interference")["ul"] > dc.ul_interference_dbm).all()
    assert (pl.read_csv(w1.kpis).join(new.filter(pl.col("cause") == "fault"), on="cell_id")
            ["alarm_count"].sum() > 0)


def test_complaints_follow_outcomes(w0: City, w1: City) -> None:
    f = w1.followup_truth_df
    assert f is not None

    def per_outcome(city: City) -> dict[str, float]:
        c = city.complaint_truth_df.filter(pl.col("network")).group_by("cell_id").len()
        return dict(f.join(c, on="cell_id", how="left").group_by("outcome")
                    .agg(pl.col("len").fill_null(0).mean()).iter_rows())

    c0, c1 = per_outcome(w0), per_outcome(w1)
    assert c1["fixed"] < 0.5 * c0["fixed"]
    assert c1["worse"] > c0["worse"]
    assert c1["new_poor"] > 3 * c0["new_poor"]
    assert c1["worse"] > c1["not_fixed"]
    # complaint ids stay unique across the weeks
    ids0 = set(w0.complaint_truth_df["complaint_id"])
    assert not ids0 & set(w1.complaint_truth_df["complaint_id"])


# ---------------------------------------------------------------- determinism and arguments


@pytest.mark.parametrize("kw", [
    {"seed": 3, "n_cells": 240, "days": 2, "corrupt": True, "chinese_headers": True, "encoding": "gbk"},
    {"seed": 3, "n_cells": 240, "days": 2, "tests_format": "parquet", "network_shift": 0.02},
])
def test_same_arguments_give_identical_bytes(tmp_path: Path, kw: dict) -> None:
    a = make_followup(tmp_path / "a", **kw)
    make_followup(tmp_path / "b", **kw)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert len(names) == 9
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    # another week draws other tests of the same network
    c = make_followup(tmp_path / "c", **{**kw, "week": 2})
    assert c.tests.read_bytes() != a.tests.read_bytes()
    assert c.cells.read_bytes() == a.cells.read_bytes()
    if kw.get("corrupt"):
        assert a.rejects_df.height == 10


def test_bad_arguments(tmp_path: Path) -> None:
    for kw in ({"week": -1}, {"fix_share": 1.2}, {"fix_share": 0.7, "worse_share": 0.2, "sparse_share": 0.2},
               {"network_shift": 0.1}, {"new_poor_share": -0.1}, {"tests_format": "xlsx"}):
        with pytest.raises(ValueError, match="must"):
            make_followup(tmp_path, n_cells=50, **kw)  # type: ignore[arg-type]
