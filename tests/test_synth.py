"""The synthetic city: determinism, proportions, geometry, evidence, complaints, corrupt rows."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from reference import good_expr

from kqi import geo
from kqi.config import Config
from kqi.schema import APP_TESTS, CELL_KPIS, CELLS, COMPLAINTS, SERVICE_ALIASES
from kqi.synth import CASE_CAUSES, HOSTILE_STRINGS, City, make_city

TRUTH_SCHEMA = {"poor_services": pl.String, "cause": pl.String, "secondary": pl.String}
CFG = Config()


def read_truth(city: City) -> pl.DataFrame:
    return pl.read_csv(city.truth, schema_overrides=TRUTH_SCHEMA).fill_null("")


def read_text_csv(path: Path, encoding: str = "utf-8") -> pl.DataFrame:
    return pl.read_csv(io.StringIO(path.read_text(encoding=encoding)),
                       schema_overrides={"msisdn": pl.String, "cell_id": pl.String,
                                         "site_id": pl.String})


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> City:
    """The default city (1,600 cells, 7 days): the case's proportions need its size."""
    return make_city(tmp_path_factory.mktemp("city"))


@pytest.fixture(scope="module")
def tests_df(city: City) -> pl.DataFrame:
    return pl.read_csv(city.tests, schema_overrides={"cell_id": pl.String})


@pytest.fixture(scope="module")
def kpis_df(city: City) -> pl.DataFrame:
    return pl.read_csv(city.kpis)


def reference_good_rates(tests: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    """Plain polars verdicts per the data contract's default rules; null KQI = not good."""
    good = good_expr(cfg)
    th = {s: cfg.kqi.thresholds.for_service(s) for s in ("browsing", "video", "gaming")}
    return (
        tests.with_columns(good=good)
        .group_by("cell_id", "service")
        .agg(tests=pl.len(), good_rate=pl.col("good").mean())
        .with_columns(poor=(pl.col("tests") >= cfg.kqi.min_tests)
                      & (pl.col("good_rate") <= pl.col("service").replace_strict(th)))
    )


def busy_hour_view(kpis: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    """Per cell: the busy_hour_count hours of day with the most PRB use, averaged over days."""
    k = kpis.with_columns(h=pl.col("ts").str.slice(11, 2).cast(pl.Int32))
    hours = (k.group_by("cell_id", "h").agg(pl.col("prb_util_dl").mean())
             .sort(["cell_id", "prb_util_dl", "h"], descending=[False, True, False])
             .group_by("cell_id", maintain_order=True).head(cfg.diagnosis.busy_hour_count))
    busy = k.join(hours.select("cell_id", "h"), on=["cell_id", "h"]).group_by("cell_id").agg(
        ul=pl.col("ul_interference_dbm").mean(), prb=pl.col("prb_util_dl").mean(),
        rrc=pl.col("rrc_users_max").max(), cqi=pl.col("cqi_good_ratio").mean())
    whole = k.group_by("cell_id").agg(
        avail_min=pl.col("availability").min(), alarms=pl.col("alarm_count").sum(),
        weak=pl.col("rsrp_weak_ratio").mean(), ta=pl.col("ta_p90_m").median())
    return busy.join(whole, on="cell_id")


# ---------------------------------------------------------------- determinism and formats


@pytest.mark.parametrize("kw", [
    {"seed": 3, "n_cells": 240, "days": 2, "corrupt": True, "chinese_headers": True, "encoding": "gbk"},
    {"seed": 3, "n_cells": 240, "days": 2},
])
def test_same_arguments_give_identical_bytes(tmp_path: Path, kw: dict) -> None:
    a = make_city(tmp_path / "a", **kw)
    b = make_city(tmp_path / "b", **kw)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert len(names) == 8
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    c = make_city(tmp_path / "c", **{**kw, "seed": 4})
    assert c.cells.read_bytes() != a.cells.read_bytes()
    assert c.tests.read_bytes() != a.tests.read_bytes()
    assert a.truth_df.equals(b.truth_df)


def test_contract_columns_present(city: City, tests_df: pl.DataFrame, kpis_df: pl.DataFrame) -> None:
    cells = pl.read_csv(city.cells)
    # every contract column; "estimated" is written by kqi samples only
    assert cells.columns == [c for c in CELLS.names if c != "estimated"]
    assert tests_df.columns == [c for c in APP_TESTS.names if c != "good"]
    assert kpis_df.columns == list(CELL_KPIS.names)
    complaints = read_text_csv(city.complaints)
    assert complaints.columns == list(COMPLAINTS.names)
    subs = pl.read_csv(city.subscribers)
    assert subs.columns == ["cell_id", "subscribers"]
    assert (subs["subscribers"] > 0).all()
    truth = read_truth(city)
    assert truth.columns == ["cell_id", "poor_services", "cause", "secondary", "isd_class",
                             "isd_m", "complaints_rising"]
    assert pl.read_csv(city.complaint_truth).columns == ["complaint_id", "cell_id", "network"]
    assert pl.read_csv(city.expected_rejects).height == 0
    # every cell x hour, no duplicates
    assert kpis_df.height == cells.height * 7 * 24
    assert kpis_df.select("cell_id", "ts").is_unique().all()
    # ranges of the schema hold on the clean feeds
    for feed, df in ((CELL_KPIS, kpis_df), (APP_TESTS, tests_df), (CELLS, cells)):
        for col in feed.columns:
            if col.name in df.columns and col.kind == "float":
                s = df[col.name].drop_nulls()
                if col.lo is not None:
                    assert s.min() >= col.lo, col.name
                if col.hi is not None:
                    assert s.max() <= col.hi, col.name
    # some values are missing, as in real exports
    assert kpis_df["prb_util_dl"].null_count() > 0
    assert (tests_df["success"] == 0).sum() > 0


def test_chinese_headers_gbk(tmp_path: Path) -> None:
    city = make_city(tmp_path, n_cells=60, days=1, chinese_headers=True, encoding="gbk")
    raw = city.cells.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    cells = read_text_csv(city.cells, "gbk")
    assert cells.columns[:8] == ["小区ID", "基站ID", "小区名称", "纬度", "经度", "方位角", "波瓣宽度", "厂家"]
    # every Chinese header is an alias the schema accepts
    for feed, df in ((CELLS, cells), (COMPLAINTS, read_text_csv(city.complaints, "gbk"))):
        for header in df.columns:
            assert any(header.lower() in c.aliases for c in feed.columns), header
    assert "区" in "".join(cells["区域"].to_list())


def test_parquet_tests(tmp_path: Path) -> None:
    city = make_city(tmp_path, n_cells=80, days=2, tests_format="parquet", corrupt=True)
    assert city.tests.suffix == ".parquet"
    df = pl.read_parquet(city.tests)
    assert df.schema["ts"] == pl.Datetime("us", "UTC")
    rej = city.rejects_df.filter(pl.col("feed") == "app_tests")
    assert rej["reason"].to_list() == ["range", "unknown_cell", "service"]
    rows = [df.row(line - 1, named=True) for line in rej["line"]]
    assert rows[0]["stall_ratio"] == 1.7
    assert rows[1]["cell_id"] == "460-00-999999-9"
    assert rows[2]["service"] == "voice_call"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_cells"):
        make_city("/nonexistent-never-written", n_cells=0)
    with pytest.raises(ValueError, match="tests_format"):
        make_city("/nonexistent-never-written", tests_format="xlsx")  # type: ignore[arg-type]
    with pytest.raises(LookupError):
        make_city("/nonexistent-never-written", encoding="no-such-codec")


# ---------------------------------------------------------------- proportions and truth


def test_case_proportions(city: City) -> None:
    truth = read_truth(city)
    poor = truth.filter(pl.col("poor_services") != "")
    assert poor.height == 160  # 10 % of 1,600
    causes = dict(poor.group_by("cause").len().iter_rows())
    assert set(causes) == {*CASE_CAUSES, "unknown"}
    known = poor.height - causes["unknown"]
    assert 0.02 <= causes["unknown"] / poor.height <= 0.05
    for cause, n_case in CASE_CAUSES.items():
        assert abs(causes[cause] / known - n_case / 161) < 0.03, cause
        assert causes[cause] >= 1
    first = poor["poor_services"].str.split(";").list.first()
    assert (first == "browsing").mean() > 0.85
    assert {"video", "gaming"} <= set(poor["poor_services"].str.split(";").explode().to_list())
    # secondary conditions: on some poor cells only, never equal to the primary cause
    sec = truth.filter(pl.col("secondary") != "")
    assert 0 < sec.height < 0.3 * poor.height
    assert (sec["poor_services"] != "").all()
    assert (sec["secondary"] != sec["cause"]).all()
    # vendor split like the case (ZTE ~73 %, Nokia ~27 %), by region
    cells = pl.read_csv(city.cells)
    assert abs((cells["vendor"] == "Nokia").mean() - 0.27) < 0.03
    assert cells.group_by("region").agg(pl.col("vendor").n_unique())["vendor"].max() == 1


def test_good_rates_recover_planted_poor_cells(city: City, tests_df: pl.DataFrame) -> None:
    rates = reference_good_rates(tests_df, CFG)
    truth = read_truth(city)
    planted = {(c, s) for c, ps in truth.select("cell_id", "poor_services").iter_rows() if ps
               for s in ps.split(";")}
    flagged = set(rates.filter("poor").select("cell_id", "service").iter_rows())
    assert flagged == planted
    got = rates.join(truth, on="cell_id")
    healthy_b = got.filter((pl.col("service") == "browsing") & ~pl.col("poor") & (pl.col("tests") >= 30))
    poor_b = got.filter((pl.col("service") == "browsing") & pl.col("poor"))
    assert healthy_b["good_rate"].min() > 0.85
    assert poor_b["good_rate"].min() > 0.5
    assert poor_b["good_rate"].max() < 0.75
    # tests per cell are skewed: min_tests decides for some cells, and a few report no tests
    per_cell = rates.group_by("cell_id").agg(pl.col("tests").max())
    assert (per_cell["tests"] < CFG.kqi.min_tests).sum() > 50
    assert per_cell.height < truth.height
    shares = tests_df["service"].value_counts(normalize=True)
    share = dict(shares.iter_rows())
    assert 0.55 < share["browsing"] < 0.65
    assert 0.2 < share["video"] < 0.3


def test_daily_rhythm(tests_df: pl.DataFrame, kpis_df: pl.DataFrame) -> None:
    by_hour = tests_df.group_by(pl.col("ts").str.slice(11, 2).alias("h")).len()
    counts = dict(by_hour.iter_rows())
    assert counts["21"] > 4 * counts["04"]
    prb = dict(kpis_df.group_by(pl.col("ts").str.slice(11, 2).alias("h"))
               .agg(pl.col("prb_util_dl").mean()).iter_rows())
    assert max(prb, key=prb.get) in {"19", "20", "21", "22"}


def test_kpi_evidence_per_cause(city: City, kpis_df: pl.DataFrame) -> None:
    dc = CFG.diagnosis
    isd = geo.site_isd(pl.read_csv(city.cells), CFG).select("cell_id", "isd_m")
    v = (busy_hour_view(kpis_df, CFG).join(read_truth(city), on="cell_id")
         .join(isd, on="cell_id", suffix="_geo")
         .with_columns(ta_ratio=pl.col("ta") / pl.col("isd_m_geo")))

    def cells_with(cause: str, *, include_secondary: bool = False) -> pl.DataFrame:
        m = pl.col("cause") == cause
        if include_secondary:
            m = m | pl.col("secondary").str.contains(cause)
        return v.filter(m)

    plain = v.filter((pl.col("poor_services") == "") | (pl.col("cause") == "unknown"))
    # healthy and unknown cells show no evidence
    assert plain["ul"].max() < dc.ul_interference_dbm
    assert (plain["ul"] - (-116.0)).abs().max() < 2.5
    assert plain["prb"].max() < dc.prb_util_pct
    assert plain["rrc"].max() < dc.rrc_users
    assert plain["avail_min"].min() >= dc.availability_pct
    assert plain["alarms"].max() == 0
    assert plain["weak"].max() < dc.rsrp_weak_ratio
    assert plain["ta_ratio"].max() < dc.overshoot_isd_factor
    # each cause (primary or planted secondary) shows its evidence; interference as the rise
    # over the -116 dBm floor beyond what the cell's load brings (0.02 dB per PRB point)
    rise = pl.col("ul") + 116.0 - 0.02 * pl.col("prb")
    interf = cells_with("interference", include_secondary=True).with_columns(rise=rise)
    assert interf["rise"].min() > dc.interference_rise_db
    assert interf["cqi"].max() < dc.cqi_good_ratio
    primary = cells_with("interference").with_columns(rise=rise)
    assert primary["rise"].min() > dc.interference_rise_db + 4
    assert primary["ul"].min() > dc.ul_interference_dbm - 1
    hl = cells_with("high_load", include_secondary=True)
    assert hl["prb"].min() > dc.prb_util_pct
    assert hl["rrc"].min() > dc.rrc_users
    assert cells_with("high_load")["prb"].min() > dc.prb_util_pct + 8
    f = cells_with("fault")
    assert (f["avail_min"] < dc.availability_pct).all()
    assert (f["alarms"] >= dc.alarm_count).all()
    assert cells_with("weak_coverage", include_secondary=True)["weak"].min() > dc.rsrp_weak_ratio
    ov = cells_with("overshooting", include_secondary=True)
    assert ov["ta_ratio"].min() > dc.overshoot_isd_factor
    # primary strength at least one score unit (0.25 x ISD) beyond the factor
    assert cells_with("overshooting")["ta_ratio"].min() > dc.overshoot_isd_factor + 0.2
    # primary evidence dominates: no non-planted condition on a poor cell
    for cause, col, thr in (("interference", "ul", dc.ul_interference_dbm),
                            ("high_load", "prb", dc.prb_util_pct),
                            ("weak_coverage", "weak", dc.rsrp_weak_ratio),
                            ("overshooting", "ta_ratio", dc.overshoot_isd_factor)):
        others = v.filter((pl.col("cause") != cause) & ~pl.col("secondary").str.contains(cause))
        assert others[col].max() < thr, cause


def test_noise_floor_and_suburban_variants(tmp_path: Path) -> None:
    a = make_city(tmp_path / "nf", n_cells=300, days=2, noise_floor_dbm=-110.0)
    v = busy_hour_view(pl.read_csv(a.kpis), CFG).join(read_truth(a), on="cell_id")
    healthy = v.filter(pl.col("poor_services") == "")
    assert (healthy["ul"] - (-110.0)).abs().max() < 2.5
    assert v.filter(pl.col("cause") == "interference")["ul"].min() > CFG.diagnosis.ul_interference_dbm
    b = make_city(tmp_path / "sub", n_cells=600, days=1, suburban_share=0.7)
    assert abs((b.truth_df["isd_class"] == "suburban").mean() - 0.7) < 0.01


# ---------------------------------------------------------------- geometry


def test_geometry(city: City) -> None:
    cells = pl.read_csv(city.cells, schema_overrides={"site_id": pl.String})
    assert cells["cell_id"].is_unique().all()
    assert all(re.fullmatch(r"460-00-\d{6}-\d", c) for c in cells["cell_id"])
    assert cells["cell_id"].str.split("-").list.get(2).equals(cells["site_id"], check_names=False)
    assert set(cells["beamwidth"].unique()) <= {65.0, 90.0, 360.0}
    assert cells["azimuth"].min() >= 0
    assert cells["azimuth"].max() < 360
    assert cells["tech"].unique().to_list() == ["LTE"]
    assert all(re.search(r"[\u4e00-\u9fff]", n) and re.search(r"_\d$", n) for n in cells["cell_name"])
    per_site = cells.group_by("site_id").len()["len"]
    assert (per_site == 3).mean() > 0.85
    assert per_site.max() <= 3
    # three-sector sites point roughly 120 degrees apart
    three = cells.filter(pl.len().over("site_id") == 3).sort("cell_id")
    az = three["azimuth"].to_numpy().reshape(-1, 3)
    gaps = geo.angle_diff_deg(az[:, 0], az[:, 1])
    assert np.median(gaps) == pytest.approx(120, abs=10)

    isd = geo.site_isd(cells, CFG).join(read_truth(city).select("cell_id", "isd_class"), on="cell_id")
    med = dict(isd.group_by("isd_class").agg(pl.col("isd_m").median()).iter_rows())
    assert 300 < med["core"] < 600
    assert 1000 < med["suburban"] < 2000
    assert abs((isd["isd_class"] == "suburban").mean() - 0.35) < 0.01
    # the city is centred where it says
    assert cells["lat"].mean() == pytest.approx(30.66, abs=0.05)
    assert cells["lon"].mean() == pytest.approx(104.06, abs=0.05)


# ---------------------------------------------------------------- complaints


def test_complaints(city: City) -> None:
    comp = read_text_csv(city.complaints)
    ct = pl.read_csv(city.complaint_truth)
    assert comp.height == 7 * 40 == ct.height
    assert comp["complaint_id"].is_unique().all()
    assert comp["complaint_id"].equals(ct["complaint_id"])
    raw = city.complaints.read_text(encoding="utf-8")
    for h in HOSTILE_STRINGS:
        assert h in comp["description"].to_list(), h
        assert h in raw or h.replace('"', '""') in raw
    assert all(re.fullmatch(r"1[3-9]\d{9}", m) for m in comp["msisdn"])
    assert 0.08 < comp["cell_id"].is_not_null().mean() < 0.25
    assert comp.filter(pl.col("lat").is_null() & pl.col("cell_id").is_null()).height == 0
    assert 0.75 < ct["network"].mean() < 0.85
    cats = CFG.complaints.categories
    net = comp.join(ct.rename({"cell_id": "true_cell"}), on="complaint_id")
    assert all(cats.get(c, "") != "" for c in net.filter("network")["category"])
    assert all(cats.get(c, "") == "" for c in net.filter(~pl.col("network"))["category"])
    # CRM-resolved cell ids are the true ones
    crm = net.filter(pl.col("cell_id").is_not_null())
    assert (crm["cell_id"] == crm["true_cell"]).all()

    # positions: inside the true cell's beam, within 0.6 x its ISD
    cells = pl.read_csv(city.cells)
    isd = geo.site_isd(cells, CFG)
    p = (net.filter(pl.col("lat").is_not_null())
         .join(cells.rename({"cell_id": "true_cell", "lat": "clat", "lon": "clon"}), on="true_cell")
         .join(isd.rename({"cell_id": "true_cell"}).select("true_cell", "isd_m"), on="true_cell"))
    d = geo.haversine_m(p["clat"], p["clon"], p["lat"], p["lon"])
    assert (d <= 0.6 * p["isd_m"].to_numpy() + 2.0).all()
    off = geo.angle_diff_deg(geo.bearing_deg(p["clat"], p["clon"], p["lat"], p["lon"]), p["azimuth"])
    sector = p["beamwidth"].to_numpy() < 360
    assert (off[sector] <= p["beamwidth"].to_numpy()[sector] / 2 + 1.0).all()

    # poor cells draw many more network complaints; about 30 % of them are silent
    truth = read_truth(city)
    per_cell = ct.filter("network").group_by("cell_id").len()
    t = truth.join(per_cell, on="cell_id", how="left").with_columns(pl.col("len").fill_null(0))
    poor = t.filter(pl.col("poor_services") != "")
    healthy = t.filter(pl.col("poor_services") == "")
    assert poor["len"].mean() > 10 * healthy["len"].mean()
    silent = (poor["len"] == 0).mean()
    assert 0.15 < silent < 0.45


def test_complaints_rise_in_second_week(tmp_path: Path) -> None:
    city = make_city(tmp_path, n_cells=400, days=14)
    truth = city.truth_df
    rising = truth.filter("complaints_rising")["cell_id"].to_list()
    assert rising
    comp = read_text_csv(city.complaints).join(
        city.complaint_truth_df.rename({"cell_id": "true_cell"}), on="complaint_id")
    week = comp.with_columns(
        week2=pl.col("ts").str.to_datetime(_TS) >= datetime(2026, 11, 9))
    r = week.filter(pl.col("true_cell").is_in(rising) & pl.col("network"))
    assert r["week2"].sum() > 2 * (~r["week2"]).sum()
    assert not city.truth_df.filter(pl.col("poor_services") == "")["complaints_rising"].any()


_TS = "%Y-%m-%d %H:%M:%S"


# ---------------------------------------------------------------- corrupt rows


def _valid_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def reference_reject(feed: str, row: dict[str, str], cells: set[str], seen: set[str]) -> str | None:
    """Why a raw CSV row would be rejected (a plain reading of docs/data-contract.md), or None."""
    schema = APP_TESTS if feed == "app_tests" else COMPLAINTS
    try:
        datetime.strptime(row["ts"], _TS)
    except ValueError:
        return "timestamp"
    for col in schema.columns:
        v = row.get(col.name, "")
        if v == "" or col.kind not in ("float", "flag", "int"):
            continue
        if not _valid_number(v):
            return "number"
        x = float(v)
        if (col.lo is not None and x < col.lo) or (col.hi is not None and x > col.hi):
            return "range"
    if feed == "app_tests":
        if row["cell_id"] not in cells:
            return "unknown_cell"
        if row["service"].strip().lower() not in SERVICE_ALIASES:
            return "service"
        return None
    if (row["lat"] == "" or row["lon"] == "") and row["cell_id"] == "":
        return "position"
    if row["complaint_id"] in seen:
        return "duplicate"
    seen.add(row["complaint_id"])
    return None


def test_corrupt_rows_match_expected_rejects(tmp_path: Path) -> None:
    city = make_city(tmp_path, n_cells=200, days=2, corrupt=True)
    expected = pl.read_csv(city.expected_rejects)
    assert expected.equals(city.rejects_df)
    assert set(expected["reason"]) == {"number", "range", "unknown_cell", "service", "timestamp",
                                       "position", "duplicate"}
    cells = set(pl.read_csv(city.cells)["cell_id"])
    for feed, path in (("app_tests", city.tests), ("complaints", city.complaints)):
        found = []
        seen: set[str] = set()
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                why = reference_reject(feed, row, cells, seen)
                if why is not None:
                    # header is line 1; no field spans lines, so line = record number + 1
                    found.append((feed, reader.line_num, why))
        want = expected.filter(pl.col("feed") == feed).rows()
        assert found == [tuple(r) for r in want]


# ---------------------------------------------------------------- hard cities


def test_hard_character_draws_from_the_seed() -> None:
    from kqi.synth import CHARACTERS, draw_params

    hard = CHARACTERS["hard"]
    draws = [draw_params("hard", s) for s in range(11, 31)]
    floors = [d["floor_dbm"] for d in draws]
    assert hard.floor_dbm == (-118.0, -100.0)
    assert all(-118.0 <= f <= -100.0 for f in floors)
    assert max(floors) - min(floors) > 12  # seeds spread over the range, not one tuned city
    assert draw_params("hard", 11) == draw_params("hard", 11)
    assert draw_params("plain", 11)["floor_dbm"] == -116.0
    with pytest.raises(ValueError, match="character"):
        make_city("/nonexistent", character="tricky")


def test_hard_city_kpis(tmp_path: Path) -> None:
    from kqi.synth import draw_params

    c = make_city(tmp_path, seed=16, n_cells=400, days=3, character="hard")
    p = draw_params("hard", 16)
    assert c.character == "hard"
    assert c.params["floor_dbm"] == pytest.approx(p["floor_dbm"])
    k = pl.read_csv(c.kpis).with_columns(h=pl.col("ts").str.slice(11, 2).cast(pl.Int32))
    # busy hours differ by cell: some peak around midday, most in the evening
    peak = (k.group_by("cell_id", "h").agg(pl.col("prb_util_dl").mean())
            .sort(["cell_id", "prb_util_dl"], descending=[False, True])
            .group_by("cell_id", maintain_order=True).first())
    midday = peak.filter(pl.col("h").is_between(9, 16)).height / peak.height
    assert midday == pytest.approx(p["daytime_share"], abs=0.1)
    # whole KPI columns missing for some cells, never the planted cause's own
    per_cell = k.group_by("cell_id").agg(pl.col(c).null_count().alias(c) for c in
                                         ("cqi_good_ratio", "ta_p90_m", "rsrp_weak_ratio"))
    empty = per_cell.filter(pl.any_horizontal(pl.col("cqi_good_ratio", "ta_p90_m",
                                                     "rsrp_weak_ratio") == 72))
    assert empty.height > 0
    truth = c.truth_df
    over = truth.filter(pl.col("cause") == "overshooting")["cell_id"]
    assert per_cell.filter(pl.col("cell_id").is_in(over.implode()))["ta_p90_m"].max() < 72
    # load-induced noise rise: healthy cells' UL tracks their PRB hour by hour
    healthy = truth.filter(pl.col("poor_services") == "")["cell_id"]
    h = k.filter(pl.col("cell_id").is_in(healthy.implode())).drop_nulls(
        ["ul_interference_dbm", "prb_util_dl"])
    slope = np.polyfit(h["prb_util_dl"].to_numpy(), h["ul_interference_dbm"].to_numpy(), 1)[0]
    assert slope == pytest.approx(p["load_db_per_prb"], abs=0.01)


def test_cli_city_knows_every_character() -> None:
    from kqi.cli import city
    from kqi.synth import CHARACTERS

    opt = next(p for p in city.params if p.name == "character")
    assert list(opt.type.choices) == list(CHARACTERS)  # type: ignore[attr-defined]
