"""Ingest: cells, cell KPIs and complaints; every header alias of every feed; real cell lists."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from ingest_helpers import cfg, write
from kqi.ingest import Ingest

from kqi.errors import InputError
from kqi.schema import CELLS, FEEDS, SERVICES

TS = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def ing(tmp_path: Path) -> Ingest:
    return Ingest(cfg(batch_rows=1000), tmp_path / "rejects")


@pytest.fixture
def cells(tmp_path: Path, ing: Ingest) -> pl.DataFrame:
    return ing.cells(write(tmp_path / "cells.csv", "cell_id,lat,lon,azimuth\nC2,31,121,10\nC1,31,121,0\n"))


# -- cells -------------------------------------------------------------------------------------


def test_cells_round_trip_sorted_with_codes(tmp_path: Path, ing: Ingest) -> None:
    exp = pl.DataFrame({
        "cell_id": ["B-2", "A-1", "C-3"], "site_id": ["SB", "SA", None], "cell_name": ["b", "甲", "=c"],
        "lat": [31.0, 31.5, -33.9], "lon": [121.0, 121.5, 151.2], "azimuth": [0.0, 359.5, 360.0],
        "beamwidth": [65.0, 30.0, 360.0], "vendor": ["ZTE", "Nokia", None], "region": ["N", "S", "E"],
        "tech": ["LTE", "NR", None],
    })
    for fmt in ("csv", "parquet"):
        path = tmp_path / f"cells.{fmt}"
        exp.write_csv(path) if fmt == "csv" else exp.write_parquet(path)
        got = ing.cells(path)
        assert got.columns == [*CELLS.names, "cell_code"]  # a site_id column: nothing derived
        # "estimated" (position estimated from samples) defaults to 0
        assert got.drop("cell_code", "estimated").equals(exp.sort("cell_id"))
        assert got["estimated"].to_list() == [0, 0, 0]
        assert got["cell_code"].to_list() == [0, 1, 2]
        assert got["cell_code"].dtype == pl.Int32
        assert ing.reports["cells"].rows_accepted == 3


def test_cells_derive_site_from_eci_and_defaults(tmp_path: Path, ing: Ingest) -> None:
    path = write(tmp_path / "c.csv", "eci,latitude,longitude,azimuth\n"
                 "4926721,50.9,-0.09,38\n4926720,50.9,-0.09,294\n129097582,51,-0.14,277\n460123-2,30,120,5\n")
    got = ing.cells(path)
    assert got["cell_id"].to_list() == ["129097582", "460123-2", "4926720", "4926721"]
    assert got["site_id"].to_list() == ["504287", "460123", "19245", "19245"]
    assert got["cell_local"].to_list() == [110, None, 0, 1]
    assert got["beamwidth"].to_list() == [65.0] * 4
    assert got["cell_name"].to_list() == [None] * 4
    off = Ingest(cfg(derive_site_from_eci=False), None).cells(path)
    assert off["site_id"].to_list() == [None] * 4
    assert "cell_local" not in off.columns


def test_spreadsheet_float_ids_match_integer_ids(tmp_path: Path, ing: Ingest) -> None:
    """An export that wrote 4926720.0 names the same cell as 4926720 (and the eNB is derived)."""
    cells = ing.cells(write(tmp_path / "c.csv", "cell_id,lat,lon,azimuth\n4926720.0,51,0,0\n4926721,51,0,0\n"))
    assert cells["cell_id"].to_list() == ["4926720", "4926721"]
    assert cells["site_id"].to_list() == ["19245", "19245"]
    kpis = ing.cell_kpis(write(tmp_path / "k.csv", "ts,cell_id,availability\n2024-01-01,4926721.0,100\n"),
                         cells)
    assert kpis["cell_code"].to_list() == [1]
    tests = pl.DataFrame({"ts": ["2024-01-01"], "cell_id": [4926720.0], "service": ["web"]})
    tests.write_parquet(tmp_path / "t.parquet")
    assert ing.app_tests(tmp_path / "t.parquet", cells).collect()["cell_code"].to_list() == [0]


def test_cells_bad_rows_and_duplicates(tmp_path: Path, ing: Ingest) -> None:
    path = write(tmp_path / "c.csv", "cell_id,lat,lon,azimuth,beamwidth\n"
                 "A,31,121,0,\n"          # 2 ok, beamwidth default
                 "B,91,121,0,\n"          # 3 lat out of range
                 "C,31,181,0,\n"          # 4 lon out of range
                 "D,31,121,361,\n"        # 5 azimuth out of range
                 "E,31,121,,\n"           # 6 azimuth missing
                 "A,32,122,10,\n"         # 7 duplicate cell_id, other position
                 ",31,121,0,\n"           # 8 no cell_id
                 "F,31,121,0,0\n"         # 9 beamwidth below 1
                 "G,x,121,0,\n")          # 10 lat not a number
    got = ing.cells(path)
    assert got["cell_id"].to_list() == ["A"]
    rep = ing.reports["cells"]
    assert (rep.rows_read, rep.rows_accepted, rep.rows_rejected) == (9, 1, 8)
    rej = pl.read_csv(rep.rejects_path, infer_schema=False)
    assert rej["line"].to_list() == [str(i) for i in range(3, 11)]
    assert [r.split(" '")[0] for r in rej["reason"]] == [
        "lat: out of range [-90, 90]", "lon: out of range [-180, 180]", "azimuth: out of range [0, 360]",
        "azimuth: missing value",
        "cell_id: duplicate of an earlier row with different values (the first row is kept); differs in",
        "cell_id: missing value", "beamwidth: out of range [1, 360]", "lat: not a number",
    ]
    assert rej["reason"][4].endswith("differs in 'lat, lon, azimuth'")
    assert any("disagree with the first row" in n for n in rep.notes)


def test_identical_duplicate_cell_is_just_a_duplicate(tmp_path: Path, ing: Ingest) -> None:
    path = write(tmp_path / "c.csv", "cell_id,lat,lon,azimuth\nA,31,121,0\nB,31,121,120\nA,31,121,0\n")
    assert ing.cells(path)["cell_id"].to_list() == ["A", "B"]
    rej = pl.read_csv(ing.reports["cells"].rejects_path, infer_schema=False)
    assert rej["reason"].to_list() == ["cell_id: duplicate of an earlier row"]
    assert rej["line"].to_list() == ["4"]


# -- KPIs ------------------------------------------------------------------------------------

KPI_HEADER = ("ts,cell_id,prb_util_dl,prb_util_ul,rrc_users_max,ul_interference_dbm,rsrp_weak_ratio,"
              "cqi_good_ratio,ta_p90_m,availability,alarm_count\n")


def test_kpis_round_trip(tmp_path: Path, ing: Ingest, cells: pl.DataFrame) -> None:
    exp = pl.DataFrame({
        "ts": [datetime(2024, 1, 1, h) for h in (0, 1, 0)], "cell_id": ["C2", "C2", "C1"],
        "prb_util_dl": [55.5, None, 80.0], "prb_util_ul": [20.0, 21.0, None], "rrc_users_max": [120.0, 3.0, 0.0],
        "ul_interference_dbm": [-110.2, -99.0, None], "rsrp_weak_ratio": [0.1, 0.0, 1.0],
        "cqi_good_ratio": [0.93, 0.5, None], "ta_p90_m": [1500.0, 0.0, 12000.0],
        "availability": [100.0, 97.5, None], "alarm_count": [0, 2, None],
    })
    for fmt in ("csv", "parquet"):
        path = tmp_path / f"k.{fmt}"
        exp.write_csv(path) if fmt == "csv" else exp.write_parquet(path)
        got = ing.cell_kpis(path, cells)
        assert got.columns == [*FEEDS["cell_kpis"].names, "cell_code"]
        assert got["cell_code"].to_list() == [1, 1, 0]
        assert got["ts"].dtype == pl.Datetime("us", "UTC")
        assert got["alarm_count"].dtype == pl.Int64
        want = exp.with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
        assert got.drop("cell_code").equals(want)


def test_kpis_referential_duplicates_and_ranges(tmp_path: Path, ing: Ingest, cells: pl.DataFrame) -> None:
    path = write(tmp_path / "k.csv", KPI_HEADER
                 + "2024-01-01 00:00:00,C1,50,,,,,,,,\n"      # 2 ok
                 + "2024-01-01 00:00:00,C9,50,,,,,,,,\n"      # 3 unknown cell
                 + "2024-01-01 00:00:00,C1,60,,,,,,,,\n"      # 4 duplicate cell+hour
                 + "2024-01-01 01:00:00,C1,101,,,,,,,,\n"     # 5 prb > 100
                 + "2024-01-01 02:00:00,C1,,,,-20,,,,,\n"     # 6 interference out of range
                 + "2024-01-01 03:00:00,C1,,,,,,,,,1.5\n"     # 7 alarms not whole
                 + "2024-01-01 03:00:00,C2,,,,,,,,,3\n")      # 8 ok
    got = ing.cell_kpis(path, cells)
    assert got["cell_id"].to_list() == ["C1", "C2"]
    rej = pl.read_csv(ing.reports["cell_kpis"].rejects_path, infer_schema=False)
    assert rej["line"].to_list() == ["3", "4", "5", "6", "7"]
    assert [r.split(":")[0] for r in rej["reason"]] == ["cell_id", "ts", "prb_util_dl", "ul_interference_dbm",
                                                        "alarm_count"]
    assert rej["reason"][1] == "ts: duplicate cell_id and ts"


# -- complaints ------------------------------------------------------------------------------

COMPLAINT_HEADER = "complaint_id,ts,lat,lon,category,msisdn,description,cell_id\n"


def test_complaints_rules(tmp_path: Path, ing: Ingest, cells: pl.DataFrame) -> None:
    path = write(tmp_path / "k.csv", COMPLAINT_HEADER
                 + "K1,2024-01-01 10:00:00,31.1,121.1,上网慢,13800138000,slow,C1\n"   # 2 ok, known cell
                 + "K2,2024-01-01 10:00:00,31.1,121.1,video,13800138001,,C9\n"       # 3 unknown cell, has pos
                 + "K3,2024-01-01 10:00:00,,,video,13800138002,,C9\n"                # 4 unknown cell, no pos
                 + "K4,2024-01-01 10:00:00,,,video,13800138003,,\n"                  # 5 nothing
                 + "K5,2024-01-01 10:00:00,95,121,video,13800138004,,\n"             # 6 lat out of range
                 + "K1,2024-01-01 11:00:00,31,121,video,13800138005,,\n"             # 7 duplicate id
                 + "K6,2024-01-01 10:00:00,31.2,,no_signal,,\"=cmd|' /C calc'!A0\",C2\n"  # 8 half position
                 + "K7,,31,121,video,13800138007,,\n"                                # 9 no ts
                 + "K8,2024-01-01 10:00:00,31,121,,13800138008,,\n")                 # 10 no category
    got = ing.complaints(path, cells)
    assert got.columns == ["complaint_id", "ts", "lat", "lon", "category", "description", "cell_id", "cell_code"]
    assert got["complaint_id"].to_list() == ["K1", "K2", "K6"]
    assert got["cell_id"].to_list() == ["C1", None, "C2"]
    assert got["cell_code"].to_list() == [0, None, 1]
    assert got["lat"].to_list() == [31.1, 31.1, None]
    rep = ing.reports["complaints"]
    assert (rep.rows_read, rep.rows_accepted, rep.rows_rejected) == (9, 3, 6)
    assert any(n.startswith("msisdn: 2 values dropped") for n in rep.notes)
    assert any(n.startswith("cell_id: 1 complaints") for n in rep.notes)
    assert any(n.startswith("lat/lon: 1 complaints") for n in rep.notes)
    raw = Path(rep.rejects_path).read_text(encoding="utf-8")
    for digits in ("13800138002", "13800138003", "13800138004", "13800138005"):
        assert digits not in raw
    rej = pl.read_csv(rep.rejects_path, infer_schema=False)
    assert rej["msisdn"].to_list() == ["***02", "***03", "***04", "***05", "***07", "***08"]
    assert rej["line"].to_list() == ["4", "5", "6", "7", "9", "10"]
    assert [r.split(" '")[0] for r in rej["reason"]] == [
        "cell_id: not in the cells table and no position", "lat/lon: no position and no cell_id",
        "lat: out of range [-90, 90]", "complaint_id: duplicate of an earlier row", "ts: missing value",
        "category: missing value",
    ]


def test_complaint_description_hostile_text_kept_as_data(tmp_path: Path, ing: Ingest, cells: pl.DataFrame) -> None:
    hostile = "<script>alert(1)</script>, \"quoted\"\n second line"
    df = pl.DataFrame({"complaint_id": ["K1"], "ts": ["2024-01-01 10:00:00"], "lat": [31.0], "lon": [121.0],
                       "category": ["视频卡顿"], "description": [hostile]})
    path = tmp_path / "k.csv"
    df.write_csv(path)
    got = ing.complaints(path, cells)
    assert got["description"].to_list() == [hostile]
    assert got["ts"].to_list() == [TS]


# -- every alias of every column ---------------------------------------------------------------

BASE: dict[str, dict[str, str]] = {
    "cells": {"cell_id": "C1", "site_id": "S1", "cell_name": "n1", "lat": "31.5", "lon": "121.5",
              "azimuth": "90", "beamwidth": "60", "vendor": "ZTE", "region": "R1", "tech": "LTE",
              "estimated": "1"},
    "app_tests": {"ts": "2024-01-01 10:00:00", "cell_id": "C1", "service": "video", "success": "0",
                  "page_load_ms": "1", "initial_buffer_ms": "2", "stall_ratio": "0.5", "rtt_ms": "3",
                  "jitter_ms": "4", "loss_pct": "5", "good": "1"},
    "app_tests_agg": {"cell_id": "C1", "service": "video", "tests": "10", "good_tests": "7", "period": "P1"},
    "cell_kpis": {"ts": "2024-01-01 10:00:00", "cell_id": "C1", "prb_util_dl": "50", "prb_util_ul": "40",
                  "rrc_users_max": "20", "ul_interference_dbm": "-100", "rsrp_weak_ratio": "0.1",
                  "cqi_good_ratio": "0.9", "ta_p90_m": "1500", "availability": "99.5", "alarm_count": "2"},
    "complaints": {"complaint_id": "K1", "ts": "2024-01-01 10:00:00", "lat": "31.5", "lon": "121.5",
                   "category": "上网慢", "msisdn": "13800138000", "description": "slow", "cell_id": "C1"},
    "subscribers": {"cell_id": "C1", "region": "R1", "subscribers": "1200"},
    "samples": {"ts": "2024-01-01 10:00:00", "cell_id": "C1", "lat": "31.5", "lon": "121.5",
                "rsrp_dbm": "-95", "rsrq_db": "-10", "sinr_db": "5", "cqi": "9", "dl_kbps": "1000",
                "ul_kbps": "100", "tech": "LTE"},
}


def alias_cases() -> list[tuple[str, str, str]]:
    cases = []
    for feed, schema in FEEDS.items():
        assert set(BASE[feed]) == set(schema.names), feed
        for col in schema.columns:
            for alias in col.aliases:
                cases.append((feed, col.name, alias))
                if alias.isascii() and alias.lower() != alias.upper():
                    cases.append((feed, col.name, f"  {alias.upper()} "))
    return cases


def read_one(ing: Ingest, feed: str, path: Path, cells: pl.DataFrame) -> dict[str, object]:
    """The single output row of ``path`` with cell_id, service and ts as in the input text."""
    if feed == "cells":
        row = ing.cells(path).row(0, named=True)
    elif feed in ("app_tests", "app_tests_agg"):
        f = ing.app_tests(path, cells)
        assert f.kind == ("aggregated" if feed == "app_tests_agg" else "tests")
        row = f.collect().row(0, named=True)
        row["cell_id"] = cells["cell_id"][row["cell_code"]]
        row["service"] = SERVICES[row["service_code"]]
    elif feed == "cell_kpis":
        row = ing.cell_kpis(path, cells).row(0, named=True)
    elif feed == "subscribers":
        row = ing.subscribers(path).row(0, named=True)
    elif feed == "samples":
        row = ing.samples(path).frame.row(0, named=True)
    else:
        row = ing.complaints(path, cells).row(0, named=True)
    rep = ing.reports["app_tests" if feed.startswith("app_tests") else feed]
    assert (rep.rows_read, rep.rows_accepted) == (1, 1), ing.rejects
    if feed == "complaints":
        row["msisdn"] = "13800138000" if any(n.startswith("msisdn: 1") for n in rep.notes) else None
    return row


@pytest.mark.parametrize(("feed", "column", "alias"), alias_cases())
def test_every_alias(tmp_path: Path, feed: str, column: str, alias: str) -> None:
    ing = Ingest(cfg(), None)
    cells = ing.cells(write(tmp_path / "cells.csv", "cell_id,lat,lon,azimuth\nC1,31,121,0\n"))
    values = BASE[feed]
    if feed == "subscribers":  # one key per file: with both, the file is read per cell
        values = {k: v for k, v in values.items() if k != ("cell_id" if column == "region" else "region")}
    header = [alias if c == column else c for c in values]
    path = write(tmp_path / "f.csv", ",".join(header) + "\n" + ",".join(values.values()) + "\n")
    row = read_one(ing, feed, path, cells)
    want = values[column]
    got = row[column]
    kind = FEEDS[feed].column(column).kind
    if kind == "timestamp":
        assert got == TS
    elif kind in ("float", "int", "flag"):
        assert got == float(want)
    else:
        assert got == want


def test_column_map_overrides_alias(tmp_path: Path) -> None:
    ing = Ingest(cfg(column_map={"cells": {"Sector Key": "cell_id", "cell_id": "cell_name"}}), None)
    path = write(tmp_path / "c.csv", "Sector Key,cell_id,lat,lon,azimuth\nK1,my name,1,2,3\n")
    got = ing.cells(path)
    assert got["cell_id"].to_list() == ["K1"]
    assert got["cell_name"].to_list() == ["my name"]


def test_missing_required_column_names_file_and_column(tmp_path: Path, ing: Ingest, cells: pl.DataFrame) -> None:
    path = write(tmp_path / "k.csv", "complaint_id,ts,lat,lon\nK1,2024-01-01,1,2\n")
    with pytest.raises(InputError, match=r"k\.csv, column 'category': missing required column"):
        ing.complaints(path, cells)
    with pytest.raises(InputError, match="column 'azimuth'"):
        ing.cells(write(tmp_path / "c.csv", "cell_id,lat,lon\nA,1,2\n"))
    with pytest.raises(InputError, match="no data rows"):
        ing.cell_kpis(write(tmp_path / "e.csv", KPI_HEADER), cells)


# -- real data: the UK LTE cell lists (NSG, four operators) ------------------------------------

NSG = {  # file -> (cells, eNBs) as stated in the data folder's README
    "23410_merged_cells_eutra.csv": (884, 167),
    "23415_merged_cells_eutra.csv": (632, 141),
    "23420_merged_cells_eutra.csv": (715, 128),
    "23430_merged_cells_eutra.csv": (1006, 165),
}


def test_real_nsg_cells_each_operator(real_data: Path) -> None:
    folder = real_data / "nsg-cells-west-sussex"
    ing = Ingest(cfg(column_map={"cells": {"ECellID": "cell_id"}}), None)
    for name, (n_cells, n_enb) in NSG.items():
        got = ing.cells(folder / name)
        rep = ing.reports["cells"]
        assert (rep.rows_read, rep.rows_accepted, rep.rows_rejected) == (n_cells, n_cells, 0)
        assert got.height == n_cells
        assert got["site_id"].n_unique() == n_enb
        eci = got["cell_id"].cast(pl.Int64)
        assert (got["site_id"].cast(pl.Int64) == eci // 256).all()
        assert (got["cell_local"].cast(pl.Int64) == eci % 256).all()
        assert got["lat"].is_between(50.8, 51.3).all()
        assert got["lon"].is_between(-0.3, 0.0).all()
        assert got["azimuth"].is_between(0, 360).all()
        assert (got["beamwidth"] == 65.0).all()
        assert got["cell_id"].is_sorted()


def test_real_nsg_cells_combined(real_data: Path, tmp_path: Path) -> None:
    """All four operators in one file: ECIs repeat across operators, so later ones are duplicates."""
    folder = real_data / "nsg-cells-west-sussex"
    parts = [(folder / n).read_text(encoding="utf-8").splitlines() for n in NSG]
    combined = write(tmp_path / "all.csv", "\n".join([parts[0][0]] + [ln for p in parts for ln in p[1:]]) + "\n")
    ing = Ingest(cfg(column_map={"cells": {"ECellID": "cell_id"}}), tmp_path / "rejects")
    got = ing.cells(combined)
    rep = ing.reports["cells"]
    assert rep.rows_read == sum(n for n, _ in NSG.values()) == 3237
    assert rep.rows_read == rep.rows_accepted + rep.rows_rejected
    assert got.height == got["cell_id"].n_unique() == rep.rows_accepted
    rej = pl.read_csv(rep.rejects_path, infer_schema=False)
    # ECIs repeated across operators: other sites, so the reason names what differs
    assert all(r.startswith("cell_id: duplicate of an earlier row") for r in rej["reason"])
    assert rej.height == rep.rows_rejected == 4
