"""Every real folder holding cells, KPIs or complaints, read in place through its documented
config (docs/real-data/<folder>.toml) alone: every row accounted for, the figures of
docs/real-data.md. Skipped when the real data folder is absent (tests/conftest.py)."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
from kqi.ingest import Ingest

from kqi.complaints import classify
from kqi.config import load_config
from kqi.errors import InputError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "docs" / "real-data"
DOC = REPO / "docs" / "real-data.md"

#: (folder, file, feed) -> rows read, accepted, rejected, the commonest reject reason
EXPECTED: dict[tuple[str, str, str], tuple[int, int, int, str | None]] = {
    ("nsg-cells-west-sussex", "23410_merged_cells_eutra.csv", "cells"): (884, 884, 0, None),
    ("nsg-cells-west-sussex", "23415_merged_cells_eutra.csv", "cells"): (632, 632, 0, None),
    ("nsg-cells-west-sussex", "23420_merged_cells_eutra.csv", "cells"): (715, 715, 0, None),
    ("nsg-cells-west-sussex", "23430_merged_cells_eutra.csv", "cells"): (1006, 1006, 0, None),
    ("opencellid-munich", "final_dataset.csv", "cells"): (
        2231, 2110, 121, "cell_id: duplicate of an earlier row with different values (the first row "
        "is kept); differs in"),
    ("lte-cell-kpi-hourly", "df_hourly_sample.csv", "cell_kpis"): (54781, 54781, 0, None),
    ("comcast-complaints", "Comcast_telecom_complaints_data.csv", "complaints"): (
        2224, 0, 2224, "lat/lon: no position and no cell_id"),
    ("trai-mycall-india", "CallVoiceQualityExperience-2018-April.csv", "complaints"): (
        63336, 47371, 15965, "lat/lon: no position and no cell_id"),
}

#: a one-cell table for the feeds that name cells of no list we have (anonymous KPI cells,
#: complaints located by position only)
_NO_CELLS = pl.DataFrame({"cell_id": ["none"], "lat": [0.0], "lon": [0.0], "azimuth": [0.0],
                          "cell_code": pl.Series([0], dtype=pl.Int32)})


def _read(real: Path, folder: str, name: str, feed: str, tmp_path: Path, *,
          verdicts: bool = False) -> tuple[pl.DataFrame, Ingest]:
    path = real / folder / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    ing = Ingest(load_config(CONFIGS / f"{folder}.toml"), tmp_path / "rejects", verdicts=verdicts)
    if feed == "cells":
        return ing.cells(path), ing
    if feed == "cell_kpis":
        return ing.cell_kpis(path, None), ing   # anonymous cells: no cells list to check against
    return ing.complaints(path, _NO_CELLS), ing


@pytest.mark.parametrize(("folder", "name", "feed"), list(EXPECTED))
def test_real_folder_read_through_its_config(real_data: Path, tmp_path: Path, folder: str, name: str,
                                             feed: str) -> None:
    df, ing = _read(real_data, folder, name, feed, tmp_path)
    rep = ing.reports[feed]
    read, accepted, rejected, reason = EXPECTED[(folder, name, feed)]
    assert (rep.rows_read, rep.rows_accepted, rep.rows_rejected) == (read, accepted, rejected)
    assert rep.rows_read == rep.rows_accepted + rep.rows_rejected
    assert df.height == accepted
    if reason is not None:
        assert rep.reject_reasons[0]["reason"] == reason
        rej = pl.read_csv(tmp_path / "rejects" / f"{feed}.csv", infer_schema_length=0)
        assert rej.height == rejected  # every rejected row is in the rejects file, with its line
        assert rej["line"].cast(pl.Int64).min() >= 2
    # what was detected is on the report (and so in manifest.json)
    assert rep.detected["format"] == "csv"
    assert rep.detected["encoding"] in ("utf-8", "utf-8-sig")


def test_nsg_cells_have_sites_from_the_eci(real_data: Path, tmp_path: Path) -> None:
    cells, ing = _read(real_data, "nsg-cells-west-sussex", "23430_merged_cells_eutra.csv", "cells", tmp_path)
    assert cells["site_id"].null_count() == 0
    eci = cells["cell_id"].cast(pl.Int64)
    assert (cells["site_id"].cast(pl.Int64) == eci // 256).all()
    assert cells["azimuth"].is_between(0, 360).all()
    assert ing.reports["cells"].detected["line_endings"] == "CRLF"


def test_opencellid_cells_are_omni(real_data: Path, tmp_path: Path) -> None:
    cells, ing = _read(real_data, "opencellid-munich", "final_dataset.csv", "cells", tmp_path)
    assert set(cells["beamwidth"].to_list()) == {360.0}
    assert cells["lat"].is_between(48.0, 48.3).all()
    assert any("azimuth: not in the file, filled with 0" in n for n in ing.reports["cells"].notes)
    # without the fill the file is refused, with the setting named
    with pytest.raises(InputError, match=r"azimuth.*\[ingest\.fill\.cells\] azimuth = 0 and beamwidth = 360"):
        Ingest(load_config(None), None).cells(real_data / "opencellid-munich" / "final_dataset.csv")


def test_lte_kpis_fraction_prb_and_daily_rows(real_data: Path, tmp_path: Path) -> None:
    hourly, ing = _read(real_data, "lte-cell-kpi-hourly", "df_hourly_sample.csv", "cell_kpis", tmp_path)
    d = ing.reports["cell_kpis"].detected
    assert d["delimiter"] == ";"
    assert d["units"] == {"prb_util_dl": "fraction, detected (every value within 0-1): x100"}
    assert d["timestamp"]["form"] == "%Y-%m-%d %H:%M:%S"
    raw = pl.read_csv(real_data / "lte-cell-kpi-hourly" / "df_hourly_sample.csv", separator=";")
    assert hourly["prb_util_dl"].to_list() == pytest.approx((raw["PRB_Utilization_Percent"] * 100).to_list())
    assert hourly["cell_id"].n_unique() == raw["Cell"].n_unique()
    # the daily file has a date and a traffic volume but no KPI kqi reads: read as KPIs it would
    # judge no cause at all, so it stops, naming what it lacks
    with pytest.raises(InputError, match=r"df_daily_sample\.csv: none of the cell KPI columns "
                                         r"\(prb_util_dl, .*\); map them in \[ingest\.column_map\.cell_kpis\]"):
        _read(real_data, "lte-cell-kpi-hourly", "df_daily_sample.csv", "cell_kpis", tmp_path)


def test_comcast_complaints_are_dated_but_unlocated(real_data: Path, tmp_path: Path) -> None:
    _, ing = _read(real_data, "comcast-complaints", "Comcast_telecom_complaints_data.csv", "complaints",
                   tmp_path)
    d = ing.reports["complaints"].detected
    assert d["encoding"] == "utf-8-sig"
    assert d["timestamp"] == {"columns": ["Date_month_year", "Time"], "form": "%d-%b-%y %I:%M:%S %p",
                              "configured": False}
    # every ticket's time was read: the only reason is the missing position
    assert ing.reports["complaints"].reject_reasons == [
        {"reason": "lat/lon: no position and no cell_id", "rows": 2224, "examples": []}]
    with pytest.raises(InputError, match=r"Comcast_telecom_complaints_data\.csv: 2,224 of 2,224 rows "
                                         r"rejected: lat/lon: no position and no cell_id"):
        _read(real_data, "comcast-complaints", "Comcast_telecom_complaints_data.csv", "complaints",
              tmp_path, verdicts=True)
    # the upstream README calls `Date` mixed dd-mm-yy / mm-dd-yy; its values decide day-first
    # (1,615 have a first number over 12, none a second)
    from dataclasses import replace

    cfg = load_config(CONFIGS / "comcast-complaints.toml")
    cmap = {k: v for k, v in cfg.ingest.column_map["complaints"].items() if v not in ("date", "time")}
    cfg = replace(cfg, ingest=replace(cfg.ingest, column_map={"complaints": {**cmap, "Date": "date",
                                                                              "Time": "time"}}))
    ing2 = Ingest(cfg, None, verdicts=False)
    ing2.complaints(real_data / "comcast-complaints" / "Comcast_telecom_complaints_data.csv", _NO_CELLS)
    ts2 = ing2.reports["complaints"].detected["timestamp"]
    assert ts2["order"] == "day-first"
    assert ts2["form"] == "%d-%m-%y %I:%M:%S %p"
    rej = pl.read_csv(tmp_path / "rejects" / "complaints.csv", infer_schema_length=0)
    assert rej.height == 2224


def test_trai_reports_categories_and_unknown_positions(real_data: Path, tmp_path: Path) -> None:
    got, _ = _read(real_data, "trai-mycall-india", "CallVoiceQualityExperience-2018-April.csv", "complaints",
                     tmp_path)
    assert got["complaint_id"].n_unique() == got.height
    assert got["complaint_id"][0] == "trai-2018-04-2"
    assert not ((got["lat"] == 0) | (got["lat"] == -1)).any()
    cls = classify(got["category"], load_config(CONFIGS / "trai-mycall-india.toml"))
    counts = dict(zip(got["category"].to_list(), cls["service"].to_list(), strict=True))
    assert counts == {"Satisfactory": None, "Poor Network": "coverage", "Call Dropped": "coverage"}
    assert int(cls["network"].sum()) == 11591


def test_doc_shows_each_config_and_figures() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for toml in sorted(CONFIGS.glob("*.toml")):
        assert toml.read_text(encoding="utf-8").strip() in doc, toml.name
    for (_, name, _), (read, accepted, rejected, _) in EXPECTED.items():
        row = re.search(rf"\| `{re.escape(name)}` \|[^\n]*", doc)
        assert row is not None, name
        assert f"| {read:,} | {accepted:,} | {rejected:,} |" in row.group(0), name


def test_lte_kpis_against_a_real_cells_list_stop_and_judge_high_load_only(real_data: Path,
                                                                          tmp_path: Path) -> None:
    from kqi.diagnosis import extract_evidence
    from kqi.judged import not_judged

    nsg = real_data / "nsg-cells-west-sussex" / "23430_merged_cells_eutra.csv"
    kpis = real_data / "lte-cell-kpi-hourly" / "df_hourly_sample.csv"
    if not (nsg.is_file() and kpis.is_file()):
        pytest.skip("folders not found")
    ing = Ingest(load_config(CONFIGS / "lte-cell-kpi-hourly.toml"), None, verdicts=True)
    cells = Ingest(load_config(CONFIGS / "nsg-cells-west-sussex.toml"), None).cells(nsg)
    with pytest.raises(InputError, match=r"df_hourly_sample\.csv: 54,781 of 54,781 rows name a cell not "
                                         r"in the cells table \(e\.g\. 'cell0001', 'cell0012'\); the cells "
                                         r"table ids look like '\d+'"):
        ing.cell_kpis(kpis, cells)
    cfg = load_config(CONFIGS / "lte-cell-kpi-hourly.toml")
    for name, judged in (("df_hourly_sample.csv", {"high_load"}),):
        k = Ingest(cfg, None).cell_kpis(real_data / "lte-cell-kpi-hourly" / name, None)
        ids = k["cell_id"].unique(maintain_order=True)
        where = pl.DataFrame({"cell_id": ids, "lat": [50 + i / 100 for i in range(len(ids))],
                              "lon": [0.0] * len(ids), "azimuth": [0.0] * len(ids)})
        ev = extract_evidence(k, where, cfg)
        missing = {i["cause"] for i in not_judged(ev)}
        assert missing == {"interference", "high_load", "fault", "weak_coverage", "overshooting"} - judged
