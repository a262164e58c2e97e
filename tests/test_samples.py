"""The samples feed (drive-test / MR): reading and accounting, coverage bins, per-cell figures,
cells estimated from samples, `kqi samples`, `kqi run --samples`, and the real Cork folder."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from cli_helpers import exit_code
from kqi.ingest import Ingest

from kqi.config import Config, SamplesConfig, config_from_dict
from kqi.errors import ConfigError, InputError
from kqi.geo import angle_diff_deg, haversine_m
from kqi.samples import analyse_samples, grid_rows_cols, run_samples
from kqi.schema import CELLS
from kqi.synth import make_city
from kqi.synth_samples import eci_cells, make_samples

HEADER = ("Timestamp,Longitude,Latitude,Speed,Operatorname,CellID,NetworkMode,RSRP,RSRQ,SNR,CQI,"
          "RSSI,DL_bitrate,UL_bitrate,State,RAWCELLID")
CONTRACT_BINS = ["bin_id", "lat", "lon", "samples", "rsrp_median_dbm", "rsrp_weak_share",
                 "serving_cells"]
CONTRACT_CELLS = ["cell_id", "samples", "rsrp_weak_ratio", "cqi_good_ratio", "sinr_median_db",
                  "estimated"]


def _contract(cells: pl.DataFrame) -> pl.DataFrame:
    return cells.select([c for c in CELLS.names if c in cells.columns])


def _row(ts: str, lon: str, lat: str, mode: str, rsrp: str, *, cell: str, snr: str = "5.0",
         cqi: str = "9") -> str:
    return f"{ts},{lon},{lat},20,B,3,{mode},{rsrp},-11,{snr},{cqi},-70,1200,80,D,{cell}"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A G-NetTrack-style folder: a good log, corner rows, an empty log, a README, a hidden file."""
    root = tmp_path / "drive"
    (root / "day1").mkdir(parents=True)
    rows = [
        _row("2019.11.25_15.34.34", "-8.4990", "51.8937", "LTE", "-79", cell="124546051"),   # 2
        _row("2019.11.25_15.34.35", "-8.4991", "51.8938", "5G", "-115", cell="124546051"),   # 3 weak
        _row("2019.11.25_15.34.36", "-8.4992", "51.8939", "HSPA+", "-81", cell="838535",
             snr="-", cqi="-"),                                                         # 4 3G
        _row("2019.11.25_15.34.37", "-8.4993", "51.8940", "LTE", "-", cell="124546051"),     # 5 no RSRP
        _row("2019.11.25_15.34.38", "-8.4994", "51.8941", "LTE", "-200", cell="124546051"),  # 6 range
        _row("2019.11.25_15.34.39", "0.0", "0.0", "LTE", "-90", cell="124546052"),           # 7 no fix
        _row("2019.11.25_15.34.40", "-", "-", "LTE", "-90", cell="-"),                       # 8 nothing
        _row("2019.11.25_15.34.41", "-8.4995", "-", "LTE", "-95", cell="124546052"),         # 9 half
        _row("not a time", "-8.4996", "51.8943", "LTE", "-95", cell="124546052"),            # 10 ts
    ]
    (root / "day1" / "B_2019.11.25_15.34.34.csv").write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    (root / "day1" / "B_empty.csv").write_text(HEADER + "\n")
    (root / "README.md").write_text("not a log\n")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    return root


def test_folder_every_file_and_row_accounted(folder: Path) -> None:
    ing = Ingest(Config(), rejects_dir=None)
    feed = ing.samples(folder)
    rep = feed.report
    assert (rep.rows_read, rep.rows_accepted, rep.rows_rejected) == (9, 4, 5)
    by_file = {f["file"]: f for f in feed.files}
    assert by_file["README.md"]["skipped"] == "not a CSV or Parquet file"
    assert by_file[".DS_Store"]["skipped"] == "hidden file"
    assert by_file["day1/B_empty.csv"]["skipped"] == "no data rows"
    log = by_file["day1/B_2019.11.25_15.34.34.csv"]
    assert (log["rows_read"], log["rows_accepted"], log["rows_rejected"]) == (9, 4, 5)
    rejects = ing.rejects["samples"]
    assert rejects.columns[:3] == ["file", "line", "reason"]
    reasons = dict(zip(rejects["line"].to_list(), rejects["reason"].to_list(), strict=True))
    assert set(reasons) == {4, 5, 6, 8, 10}
    assert reasons[4].startswith("tech: not an LTE/NR sample")
    assert "'HSPA+'" in reasons[4]
    assert reasons[5] == "rsrp_dbm: missing value"
    assert reasons[6].startswith("rsrp_dbm: out of range [-156, -30] '-200'")
    assert reasons[8] == "lat/lon: no position and no serving cell"
    assert reasons[10].startswith("ts: not a timestamp")
    assert set(rejects["file"]) == {"day1/B_2019.11.25_15.34.34.csv"}
    acc = feed.frame.sort("line")
    assert acc["line"].to_list() == [2, 3, 7, 9]
    # the G-NetTrack time read as local time (UTC by default), RAWCELLID over CellID
    assert str(acc["ts"][0]) == "2019-11-25 15:34:34+00:00"
    assert acc["cell_id"].to_list() == ["124546051", "124546051", "124546052", "124546052"]
    # no GPS fix (0,0) and a half position: kept for the cell, position cleared
    assert acc["lat"].is_null().to_list() == [False, False, True, True]
    assert any("0,0 (no GPS fix)" in n for n in rep.notes)
    assert any("only one of lat/lon" in n for n in rep.notes)


def test_rejects_file_and_manifest_on_disk(folder: Path, tmp_path: Path) -> None:
    run = run_samples(folder, out=tmp_path / "out",
                      config=replace(Config(), output=replace(Config().output, map=False)))
    out = tmp_path / "out"
    rejects = pl.read_csv(out / "rejects" / "samples.csv", infer_schema_length=0)
    assert rejects.height == 5
    assert rejects.columns[:3] == ["file", "line", "reason"]
    manifest = json.loads((out / "manifest.json").read_text())
    f = manifest["feeds"]["samples"]
    assert f["rows_read"] == f["rows_accepted"] + f["rows_rejected"] == 9
    assert f["rejects_path"] == "rejects/samples.csv"
    assert len(f["files"]) == 4
    assert "seconds" not in f
    assert {"coverage_bins.csv", "cell_samples.csv", "rejects/samples.csv"} <= set(manifest["outputs"])
    assert run.summary["samples"]["samples"] == 4


def test_unusable_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "noradio.csv"
    bad.write_text("Timestamp,Longitude,Latitude,RAWCELLID\n2019.11.25_15.34.34,-8.4,51.8,1\n")
    with pytest.raises(InputError, match=r"noradio\.csv, column 'rsrp_dbm': missing required"):
        Ingest(Config(), None).samples(bad)
    nocell = tmp_path / "nocell.csv"
    nocell.write_text("Time,PCI,RSRP\n2022-10-04 15:52:22.917,17,-107.2\n")
    assert exit_code(["samples", "--samples", str(nocell), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "nocell.csv, column 'cell_id': needs a serving cell column" in err[0]
    assert exit_code(["samples", "--samples", str(tmp_path / "missing"), "--out",
                      str(tmp_path / "o")]) == 2
    assert "samples file not found" in capsys.readouterr().err
    only3g = tmp_path / "only3g"
    only3g.mkdir()
    (only3g / "a.csv").write_text(HEADER + "\n" + _row("2019.11.25_15.34.30", "-8.49", "51.89",
                                                      "UMTS", "-80", cell="838535") + "\n")
    assert exit_code(["samples", "--samples", str(only3g), "--out", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "1 of 1 rows rejected: tech: not an LTE/NR sample" in err[0]
    empty = tmp_path / "emptydir"
    empty.mkdir()
    with pytest.raises(InputError, match="no samples file"):
        Ingest(Config(), None).samples(empty)


def test_config_bin_size_validated() -> None:
    with pytest.raises(ConfigError, match=r"samples\.bin_m"):
        config_from_dict({"samples": {"bin_m": 1}})
    with pytest.raises(ConfigError, match=r"unknown setting 'samples\.bin'"):
        config_from_dict({"samples": {"bin": 100}})
    cfg = config_from_dict({"samples": {"bin_m": 100, "techs": ["LTE"]}})
    assert cfg.samples.bin_m == 100.0
    assert cfg.samples.techs == ("LTE",)


def test_grid_is_metric_and_anchored() -> None:
    s = SamplesConfig()
    lat = pl.Series([51.9000, 51.9000 + 49.0 / 111_195.0, 51.9000 + 51.0 / 111_195.0])
    lon = pl.Series([-8.4, -8.4, -8.4])
    df = pl.DataFrame({"lat": lat, "lon": lon})
    row, col = grid_rows_cols(pl.col("lat"), pl.col("lon"), s.bin_m)
    rc = df.select(row.alias("r"), col.alias("c"))
    assert rc["r"][2] - rc["r"][0] == 1            # 51 m north is the next row at 50 m
    # a bin is bin_m wide along its row: 1 degree of longitude at 51.9 N is ~68.7 km
    one_deg = pl.DataFrame({"lat": [51.9, 51.9], "lon": [-8.0, -7.0]}).select(col.alias("c"))
    assert abs((one_deg["c"][1] - one_deg["c"][0]) * s.bin_m - 68_700) < 300


# --------------------------------------------------------------------------------------------
# synthetic drives over a synthetic city: estimation against the truth
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    city = make_city(tmp_path_factory.mktemp("city"), seed=5, n_cells=240, days=1)
    cells = eci_cells(_contract(city.cells_df))
    return cells, make_samples(cells, seed=3, drives=10, seconds=1200)


@pytest.mark.parametrize("seed", [3, 8])
def test_positions_and_azimuths_estimated_near_truth(tmp_path_factory: pytest.TempPathFactory,
                                                     seed: int) -> None:
    city = make_city(tmp_path_factory.mktemp("city"), seed=seed, n_cells=240, days=1)
    cells = eci_cells(_contract(city.cells_df))
    samples = make_samples(cells, seed=seed, drives=10, seconds=1200)
    feed = Ingest(Config(), None).samples(samples)
    res = analyse_samples(feed.frame, None, Config())
    assert res.cells["estimated"].sum() > 30
    truth = cells.select("cell_id", pl.col("lat").alias("t_lat"), pl.col("lon").alias("t_lon"),
                         pl.col("azimuth").alias("t_az"))
    j = res.cells.filter(pl.col("estimated")).join(truth, on="cell_id")
    err = haversine_m(j["lat"].to_numpy(), j["lon"].to_numpy(), j["t_lat"].to_numpy(),
                      j["t_lon"].to_numpy())
    pooled = j["position_method"].str.contains("3 cells").to_numpy()
    assert pooled.sum() >= 10
    # a site whose three sectors were all driven is found within a fraction of its ISD
    assert np.median(err[pooled] / j["isd_m"].to_numpy()[pooled]) < 0.35
    az = j.filter(pl.Series(pooled) & pl.col("azimuth").is_not_null())
    d = angle_diff_deg(az["azimuth"].to_numpy(), az["t_az"].to_numpy())
    assert np.median(d) < 35.0
    # every estimated cell is marked, and the cells file of the estimates reads back
    est = res.estimated
    assert est.columns[: len(CELLS.names)] == list(CELLS.names)
    assert est["estimated"].to_list() == [1] * est.height


def test_cells_file_wins_and_a_missing_sector_takes_its_site(drive) -> None:
    cells, samples = drive
    feed = Ingest(Config(), None).samples(samples)
    served = feed.frame["cell_id"].value_counts().sort("count", descending=True)
    missing = served["cell_id"][0]
    ing = Ingest(Config(), None)
    known = ing.cells(cells.filter(pl.col("cell_id") != missing))
    res = analyse_samples(feed.frame, known, Config())
    row = res.cells.filter(pl.col("cell_id") == missing).row(0, named=True)
    assert row["estimated"] is True
    assert row["position_method"] == "site in cells file"
    site = cells.filter(pl.col("site_id") == row["site_id"])
    assert abs(row["lat"] - site["lat"].mean()) < 1e-6
    others = res.cells.filter(pl.col("cell_id") != missing)
    assert not others["estimated"].any()
    assert (others["position_method"] == "cells file").all()
    # known cells keep the cells file's position
    one = others.row(0, named=True)
    ref = cells.filter(pl.col("cell_id") == one["cell_id"]).row(0, named=True)
    assert one["lat"] == ref["lat"]
    assert one["azimuth"] == ref["azimuth"]


def test_place_weighting_a_parked_phone_does_not_outweigh_a_drive() -> None:
    """Two bins of one cell: 1 sample driving through a weak bin, 500 parked in a strong one:
    by place, half the cell's footprint is weak (0.5); by time it would be 0.2 %."""
    lat0, lon0 = 51.9, -8.4
    parked = pl.DataFrame({"cell_id": ["1"] * 500, "lat": [lat0] * 500, "lon": [lon0] * 500,
                           "rsrp_dbm": [-80.0] * 500})
    drive = pl.DataFrame({"cell_id": ["1"], "lat": [lat0 + 0.01], "lon": [lon0],
                          "rsrp_dbm": [-120.0]})
    res = analyse_samples(pl.concat([parked, drive]), None, Config())
    row = res.cells.row(0, named=True)
    assert row["samples"] == 501
    assert row["bins"] == 2
    assert row["rsrp_weak_ratio"] == pytest.approx(0.5)
    assert res.bins["samples"].sort().to_list() == [1, 500]


def test_weak_and_overshooting_cells_show_in_their_figures(tmp_path_factory) -> None:
    """The same drives with the western half's cells 30 dB weaker (weak coverage there) and one
    eastern cell 14 dB stronger (it serves far beyond its neighbours): the figures move so."""
    city = make_city(tmp_path_factory.mktemp("city"), seed=21, n_cells=240, days=1)
    cells = eci_cells(_contract(city.cells_df))
    known = Ingest(Config(), None).cells(cells)

    def figures(offsets: dict[str, float] | None) -> pl.DataFrame:
        samples = make_samples(cells, seed=2, drives=10, seconds=1200, power_offset_db=offsets)
        feed = Ingest(Config(), None).samples(samples)
        return analyse_samples(feed.frame, known, Config()).cells

    base = figures(None)
    mid = float(cells["lon"].median())
    west = set(cells.filter(pl.col("lon") < mid)["cell_id"].to_list())
    ok = base.filter(pl.col("evidence_ok") & ~pl.col("cell_id").is_in(list(west)))
    # the driven eastern cell with the tightest footprint: a boost shows most there
    strong = ok.sort("dist_p90_m")["cell_id"][0]
    moved = figures({**dict.fromkeys(west, -30.0), strong: 14.0})

    def median_weak(df: pl.DataFrame, in_west: bool) -> float:
        sel = df.filter(pl.col("evidence_ok") & (pl.col("cell_id").is_in(list(west)) == in_west))
        return float(sel["rsrp_weak_ratio"].median())

    assert median_weak(moved, True) > median_weak(base, True) + 0.1

    def row(df: pl.DataFrame, cid: str) -> dict[str, float]:
        return df.filter(pl.col("cell_id") == cid).row(0, named=True)

    assert row(moved, strong)["dist_p90_m"] > 1.3 * row(base, strong)["dist_p90_m"]
    assert row(moved, strong)["samples"] > row(base, strong)["samples"]


# --------------------------------------------------------------------------------------------
# the commands
# --------------------------------------------------------------------------------------------

def test_kqi_samples_writes_cells_file_that_kqi_run_reads(drive, tmp_path: Path) -> None:
    _cells, samples = drive
    src = tmp_path / "log.csv"
    samples.write_csv(src)
    out = tmp_path / "out"
    assert exit_code(["-q", "samples", "--samples", str(src), "--out", str(out)]) == 0
    for name in ("coverage_bins.csv", "cell_samples.csv", "cells_estimated.csv", "map.html",
                 "manifest.json", "summary.json"):
        assert (out / name).is_file(), name
    bins = pl.read_csv(out / "coverage_bins.csv")
    assert bins.columns[: len(CONTRACT_BINS)] == CONTRACT_BINS
    assert bins["samples"].sum() == samples.height
    per_cell = pl.read_csv(out / "cell_samples.csv", schema_overrides={"cell_id": pl.String})
    assert per_cell.columns[: len(CONTRACT_CELLS)] == CONTRACT_CELLS
    assert per_cell["samples"].sum() == samples.height
    # the estimates are a cells file the other commands read as it is
    est = Ingest(Config(), None).cells(out / "cells_estimated.csv")
    assert est.height == per_cell.filter(pl.col("estimated") & pl.col("lat").is_not_null()).height
    html = (out / "map.html").read_text(encoding="utf-8")
    assert "Drive-test bins, median RSRP" in html
    assert "-110 to -100 dBm" in html
    assert "position ESTIMATED from samples" in html
    # the same inputs give the same bytes
    again = tmp_path / "again"
    assert exit_code(["-q", "samples", "--samples", str(src), "--out", str(again)]) == 0
    for name in ("coverage_bins.csv", "cell_samples.csv", "cells_estimated.csv", "map.html",
                 "manifest.json"):
        a, b = (out / name).read_bytes(), (again / name).read_bytes()
        if name == "manifest.json":
            a = a.replace(str(out).encode(), b"")
            b = b.replace(str(again).encode(), b"")
        assert a == b, name


def test_kqi_run_with_samples(tmp_path: Path) -> None:
    city = make_city(tmp_path / "city", seed=13, n_cells=240, days=7, tests_per_cell_day=20)
    samples = make_samples(city.cells_df, seed=4, drives=4, seconds=600)
    # the synthetic city's ids are not ECIs: these samples name its cells directly
    src = tmp_path / "samples"
    src.mkdir()
    samples.head(1000).write_csv(src / "a.csv")
    samples.slice(1000).write_csv(src / "b.csv")
    out = tmp_path / "out"
    assert exit_code(["-q", "run", "--cells", str(city.cells), "--tests", str(city.tests),
                      "--kpis", str(city.kpis), "--samples", str(src), "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    f = manifest["feeds"]["samples"]
    assert f["rows_read"] == samples.height == f["rows_accepted"] + f["rows_rejected"]
    assert [x["file"] for x in f["files"]] == ["a.csv", "b.csv"]
    assert {"coverage_bins.csv", "cell_samples.csv"} <= set(manifest["outputs"])
    per_cell = pl.read_csv(out / "cell_samples.csv")
    assert not per_cell["estimated"].any()   # every serving cell is in the cells file
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"]["serving_cells"] == per_cell.height
    assert "Drive-test bins" in (out / "map.html").read_text(encoding="utf-8")
    assert "Drive-test / MR samples" in (out / "summary.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# real data, read in place
# --------------------------------------------------------------------------------------------

def test_cork_end_to_end(real_data: Path, tmp_path: Path) -> None:
    cork = real_data / "ucc-5g-cork"
    if not cork.is_dir():
        pytest.skip(f"{cork} not found")
    out = tmp_path / "cork"
    run = run_samples(cork, out=out)
    f = run.manifest["feeds"]["samples"]
    assert f["rows_read"] == 188_711
    assert f["rows_read"] == f["rows_accepted"] + f["rows_rejected"]
    read = [x for x in f["files"] if "skipped" not in x]
    assert len(read) == 83
    assert sum(x["rows_read"] for x in read) == 188_711
    assert {x["file"] for x in f["files"] if "skipped" in x} == {"LICENSE", "README.upstream.md"}
    rejects = pl.read_csv(out / "rejects" / "samples.csv", infer_schema_length=0)
    assert rejects.height == f["rows_rejected"]
    kind = rejects["reason"].str.extract(r"^([a-z_]+): ", 1)
    assert set(kind) == {"tech", "rsrp_dbm"}
    assert rejects.filter(kind == "rsrp_dbm")["reason"].str.starts_with(
        "rsrp_dbm: out of range").all()
    # every 2G/3G row is rejected, and only LTE/5G rows are kept
    assert set(rejects.filter(kind == "tech")["NetworkMode"]) <= {
        "HSPA+", "UMTS", "HSDPA", "HSUPA", "EDGE", "GPRS"}
    modes = rejects["NetworkMode"].value_counts()
    assert modes.filter(~pl.col("NetworkMode").is_in(["LTE", "5G"]))["count"].sum() == 17_096
    bins = pl.read_csv(out / "coverage_bins.csv")
    assert bins["samples"].sum() == f["rows_accepted"]
    assert bins.height > 1000
    assert bins["lat"].is_between(51.87, 51.96).all()
    assert bins["lon"].is_between(-8.58, -8.35).all()
    per_cell = pl.read_csv(out / "cell_samples.csv", schema_overrides={"cell_id": pl.String})
    assert per_cell["samples"].sum() == f["rows_accepted"]
    assert per_cell["estimated"].sum() > 150       # no cells file: every placed cell estimated
    placed = per_cell.filter(pl.col("lat").is_not_null())
    assert placed["estimated"].all()
    assert placed["lat"].is_between(51.8, 52.0).all()
    est = Ingest(Config(), None).cells(out / "cells_estimated.csv")
    assert est.height == placed.height
    assert "Drive-test bins, median RSRP (" in (out / "map.html").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# diagnosis evidence from samples
# --------------------------------------------------------------------------------------------

def _cell_samples(rows: list[dict[str, object]]) -> pl.DataFrame:
    from kqi.samples import _CELL_SCHEMA

    base = {"samples": 400, "bins": 40, "rsrp_weak_ratio": 0.02, "cqi_good_ratio": 0.95,
            "sinr_median_db": 12.0, "estimated": False, "rsrp_median_dbm": -85.0,
            "dist_p90_m": 400.0, "isd_m": 500.0, "dist_isd_ratio": 0.8, "evidence_ok": True}
    full = [{**base, **r} for r in rows]
    return pl.DataFrame(full).select(
        [pl.col(n).cast(t) if n in full[0] else pl.lit(None, t).alias(n)
         for n, t in _CELL_SCHEMA.items()])


def test_samples_fill_what_the_kpis_lack_and_say_so() -> None:
    from kqi.diagnosis import diagnose

    ids = ["A", "B", "C", "D", "E"]
    cells = Ingest(Config(), None).cells(pl.DataFrame({
        "cell_id": ids, "lat": [31.0, 31.01, 31.02, 31.03, 31.04], "lon": [121.0] * 5,
        "azimuth": [0.0] * 5}))
    hours = pl.datetime_range(pl.datetime(2026, 11, 2), pl.datetime(2026, 11, 2, 23),
                              "1h", eager=True, time_zone="UTC")
    kpis = pl.DataFrame({
        "ts": list(hours) * 5, "cell_id": [c for c in ids for _ in hours],
        "prb_util_dl": [30.0] * 120, "availability": [100.0] * 120,
        # C: uplink interference above the threshold; no CQI, RSRP or TA figures at all
        "ul_interference_dbm": [-100.0 if c == "C" else -115.0 for c in ids for _ in hours],
    })
    cell_kqi = pl.DataFrame({"cell_id": ids, "service": ["browsing"] * 5, "poor": [True] * 5})
    smp = _cell_samples([
        {"cell_id": "A", "rsrp_weak_ratio": 0.45},                            # weak coverage
        {"cell_id": "B", "dist_p90_m": 1500.0, "dist_isd_ratio": 3.0},        # overshooting
        {"cell_id": "C", "cqi_good_ratio": 0.5, "sinr_median_db": -1.0},      # interference
        {"cell_id": "D", "rsrp_weak_ratio": 0.6, "samples": 5, "evidence_ok": False},
    ])
    d = diagnose(cell_kqi, kpis, cells, Config(), samples=smp).table
    by = {r["cell_id"]: r for r in d.iter_rows(named=True)}
    assert by["A"]["primary_cause"] == "weak_coverage"
    assert "weak-RSRP sample share 45%" in by["A"]["evidence"]
    assert "(from 400 drive-test samples in 40 bins, weighted by place" in by["A"]["evidence"]
    assert by["B"]["primary_cause"] == "overshooting"
    assert ("drive-test p90 distance 1500 m = 3.0 x local ISD 500 m (400 samples in 40 bins; "
            "the KPIs have no TA), threshold 1.5 x") in by["B"]["evidence"]
    assert "TA p90" not in by["B"]["evidence"]
    assert by["C"]["primary_cause"] == "interference"
    assert "CQI>=7 share 50%, target 88% (from 400 drive-test samples)" in by["C"]["evidence"]
    assert "drive-test SINR median -1.0 dB at median RSRP -85 dBm" in by["C"]["evidence"]
    # too few samples: not evidence; no samples: as before
    assert by["D"]["primary_cause"] == by["E"]["primary_cause"] == "unknown"
    assert "drive-test" not in by["D"]["evidence"] + by["E"]["evidence"]
    # without samples the same KPIs find none of it
    plain = diagnose(cell_kqi, kpis, cells, Config()).table
    assert set(plain.filter(pl.col("cell_id").is_in(["A", "B"]))["primary_cause"]) == {"unknown"}


def test_kpi_figures_win_over_samples() -> None:
    from kqi.samples import fill_evidence

    ev = pl.DataFrame({"cell_id": ["A"], "kpi_hours": [24], "rsrp_weak_ratio": [0.05],
                       "cqi_good_ratio": [0.93], "ta_isd_ratio": [1.1]})
    out = fill_evidence(ev, _cell_samples([{"cell_id": "A", "rsrp_weak_ratio": 0.5,
                                            "cqi_good_ratio": 0.2, "dist_isd_ratio": 4.0}]))
    row = out.row(0, named=True)
    assert (row["rsrp_weak_ratio"], row["cqi_good_ratio"]) == (0.05, 0.93)
    assert row["smp_rsrp_weak_from"] is None
    assert row["smp_dist_isd_ratio"] is None
    assert row["smp_sinr_median_db"] == 12.0   # the corroboration is always there


def test_estimated_cells_file_marks_work_orders(drive, tmp_path: Path) -> None:
    """A run on the cells file kqi samples wrote: the work orders of estimated cells say so."""
    from kqi.diagnosis import diagnose

    _, samples = drive
    res = analyse_samples(Ingest(Config(), None).samples(samples).frame, None, Config())
    path = tmp_path / "cells_estimated.csv"
    res.estimated.write_csv(path)
    est = Ingest(Config(), None).cells(path)
    assert est["estimated"].to_list() == [1] * est.height
    poor = est.head(3).select("cell_id", pl.lit("browsing").alias("service"),
                              pl.lit(True).alias("poor"))
    kpis = pl.DataFrame({"ts": [dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)] * 3,
                         "cell_id": poor["cell_id"], "prb_util_dl": [20.0] * 3})
    d = diagnose(poor, kpis, est, Config()).table
    assert d["evidence"].str.contains("cell position estimated from drive-test samples").all()


# --------------------------------------------------------------------------------------------
# the bins layer in a real browser
# --------------------------------------------------------------------------------------------

@pytest.mark.browser
def test_bins_layer_in_headless_chromium(drive, tmp_path: Path) -> None:
    from _cdp import Browser, find_chromium, load_map, serve
    from kqi.maps import assets as map_assets

    from kqi.config import OutputConfig

    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium not installed (apt-get install -y chromium; CI installs it)")
    artifacts = Path(__file__).resolve().parents[1] / "test-artifacts"
    assets = artifacts / "map-assets"
    if map_assets.missing_files(assets):
        map_assets.fetch_assets(assets)
    _, samples = drive
    cfg = replace(Config(), output=OutputConfig(map_tiles="none", map_assets=str(assets)))
    run = run_samples(samples, out=tmp_path / "site", config=cfg)
    n_bins = run.result.bins.height
    with serve(tmp_path / "site") as base, Browser(exe, width=1280, height=800) as browser:
        assert load_map(browser, f"{base}/map.html", timeout=60) > 0
        state = browser.evaluate("""(function () {
            var kinds = {};
            window.kqiMap.eachLayer(function (l) {
                if (l.kqiKind) { kinds[l.kqiKind] = (kinds[l.kqiKind] || 0) + l.getLayers().length; }
            });
            var legend = document.querySelector(".kqi-bins-legend");
            return {kinds: kinds, legend: legend ? legend.textContent : "",
                    overlays: Array.from(document.querySelectorAll(
                        ".leaflet-control-layers-overlays label")).map(function (e) {
                            return e.textContent.trim(); })};
        })()""")
        artifacts.mkdir(exist_ok=True)
        browser.screenshot(artifacts / "map-bins.png")
        assert browser.errors() == []
    assert state["kinds"]["bins"] == n_bins
    assert state["kinds"]["cells"] == run.result.estimated.height
    assert "median RSRP" in state["legend"]
    assert "< -110 dBm (weak)" in state["legend"]
    assert any(o.startswith("Drive-test bins, median RSRP") for o in state["overlays"])
