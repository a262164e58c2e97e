"""Feed-level verdicts: a feed with (nearly) every row rejected stops `kqi run` before the
analysis with one line naming the file, the commonest reason and two examples, and leaves no
outputs; the same city exported the way European operators do (';', decimal commas, Excel) runs."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from kqi.cli import main
from kqi.synth import make_city

SMALL = {"n_cells": 120, "days": 3, "tests_per_cell_day": 12}


def _kqi(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_city(tmp_path_factory.mktemp("city"), seed=23, **SMALL)


def _run(city, out: Path, **feeds: Path) -> list[str]:  # type: ignore[no-untyped-def]
    paths = {"cells": city.cells, "tests": city.tests, "kpis": city.kpis, "complaints": city.complaints}
    paths.update(feeds)
    argv = ["-q", "run", "--out", str(out)]
    for k, v in paths.items():
        argv += [f"--{k}", str(v)]
    return argv


def _no_outputs(out: Path) -> None:
    left = [p.name for p in out.iterdir()] if out.exists() else []
    assert left in ([], [".kqi.lock"]), left


def test_tests_naming_no_known_cell_stop_the_run(city, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    tests = pl.read_csv(city.tests, infer_schema_length=0)
    foreign = tmp_path / "app_tests.csv"
    tests.with_columns(("X" + pl.col("cell_id").str.slice(-4)).alias("cell_id")).write_csv(foreign)
    out = tmp_path / "out"
    code, _, err = _kqi(_run(city, out, tests=foreign), capsys)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    cells_ids = pl.read_csv(city.cells, infer_schema_length=0)["cell_id"].sort()
    n = tests.height
    assert f"app_tests.csv: {n:,} of {n:,} rows name a cell not in cells.csv (e.g. 'X" in lines[0]
    assert f"cells.csv ids look like '{cells_ids[0]}'" in lines[0]
    _no_outputs(out)


def test_kpis_nearly_all_rejected_stop_with_the_share(city, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    kpis = pl.read_csv(city.kpis, infer_schema_length=0)
    keep = max(1, kpis.height // 50)  # 2 % of the rows still name a known cell
    bad = pl.concat([kpis.head(keep), kpis.slice(keep).with_columns(ts=pl.lit("soon"))])
    path = tmp_path / "kpis.csv"
    bad.write_csv(path)
    out = tmp_path / "out"
    code, _, err = _kqi(_run(city, out, kpis=path), capsys)
    assert code == 2
    rejected = kpis.height - keep
    assert (f"kpis.csv: {rejected:,} of {kpis.height:,} rows rejected: ts: not a timestamp "
            f"(e.g. 'soon'); set the form in [ingest.formats.cell_kpis] ts") in err
    assert "more than ingest.max_reject_share = 95% of the rows rejected" in err
    _no_outputs(out)
    # the share is a setting: at 1.0 only a feed with no usable row stops
    cfg = tmp_path / "kqi.toml"
    cfg.write_text("[ingest]\nmax_reject_share = 1.0\n")
    code, _, err = _kqi([*_run(city, out, kpis=path), "--config", str(cfg)], capsys)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["feeds"]["cell_kpis"]["rows_rejected"] == rejected
    assert manifest["feeds"]["cell_kpis"]["reject_reasons"][0]["reason"] == "ts: not a timestamp"


def test_semicolon_decimal_comma_and_xlsx_exports_run(city, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cells = pl.read_csv(city.cells, infer_schema_length=0)
    # the cells list as a European export: ';' and decimal commas
    eu = tmp_path / "cells_eu.csv"
    eu.write_text(cells.with_columns(pl.col("lat", "lon", "azimuth", "beamwidth").str.replace(".", ",", literal=True))
                  .write_csv(separator=";"), encoding="utf-8")
    # and the KPIs as a workbook
    kpis = pl.read_csv(city.kpis)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "KPI"
    ws.append(kpis.columns)
    for row in kpis.iter_rows():
        ws.append(list(row))
    xlsx = tmp_path / "kpis.xlsx"
    wb.save(xlsx)
    out = tmp_path / "out"
    code, _, err = _kqi(_run(city, out, cells=eu, kpis=xlsx), capsys)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    c = manifest["feeds"]["cells"]
    assert (c["rows_read"], c["rows_rejected"]) == (cells.height, 0)
    assert c["detected"]["delimiter"] == ";"
    assert c["detected"]["decimal"] == ","
    k = manifest["feeds"]["cell_kpis"]
    assert k["detected"]["format"] == "xlsx"
    assert k["detected"]["sheet"] == "KPI"
    assert k["rows_accepted"] == kpis.height
    wo = pl.read_csv(out / "work_orders.csv")
    assert wo.height > 0


def test_causes_the_kpis_cannot_judge_are_named(city, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                capsys: pytest.CaptureFixture[str]) -> None:
    kpis = pl.read_csv(city.kpis, infer_schema_length=0)
    path = tmp_path / "kpis.csv"
    kpis.drop("ul_interference_dbm", "rsrp_weak_ratio", "prb_util_dl", "ta_p90_m").write_csv(path)
    out = tmp_path / "out"
    code, stdout, err = _kqi([*_run(city, out, kpis=path)][1:], capsys)  # without -q: the summary
    assert code == 0, err
    # the input columns a user would add (prb_util_dl), not the figures made from them
    # (prb_util_busy, ta_isd_ratio): those stay in summary.json
    named = ("interference (no ul_interference_dbm), high_load (no prb_util_dl), weak_coverage (no "
             "rsrp_weak_ratio), overshooting (no ta_p90_m, nor drive-test samples)")
    line = f"causes not judged, the KPI feed lacks the columns they need: {named}"
    assert line in " ".join(stdout.split())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diagnosis"]["not_judged"] == [
        {"cause": "interference", "missing": ["ul_interference_dbm"], "samples": False,
         "evidence": ["ul_interference_dbm"]},
        {"cause": "high_load", "missing": ["prb_util_dl"], "samples": False,
         "evidence": ["prb_util_busy"]},
        {"cause": "weak_coverage", "missing": ["rsrp_weak_ratio"], "samples": False,
         "evidence": ["rsrp_weak_ratio"]},
        {"cause": "overshooting", "missing": ["ta_p90_m"], "samples": True,
         "evidence": ["ta_isd_ratio", "smp_dist_isd_ratio"]}]
    md = (out / "summary.md").read_text()
    assert "**Causes not judged**" in md
    assert f"{named}." in md
    assert "prb_util_busy" not in md
    # every KPI present: nothing to say
    code, stdout, _ = _kqi(_run(city, tmp_path / "out2")[1:], capsys)
    assert code == 0
    assert "causes not judged" not in stdout
    assert json.loads((tmp_path / "out2" / "summary.json").read_text())["diagnosis"]["not_judged"] == []


def test_kpis_read_without_a_cells_table(tmp_path: Path) -> None:
    from ingest_helpers import cfg, write
    from kqi.ingest import Ingest

    text = "ts,cell_id,prb_util_dl\n2026-01-05 19:00,B,50\n2026-01-05 19:00,A,40\n2026-01-05 19:00,B,1\n"
    ing = Ingest(cfg(), tmp_path / "rejects")
    got = ing.cell_kpis(write(tmp_path / "k.csv", text), None)
    assert got["cell_code"].to_list() == [0, 1]  # codes in first-appearance order
    assert got["cell_id"].to_list() == ["B", "A"]
    assert pl.read_csv(tmp_path / "rejects" / "cell_kpis.csv")["reason"].to_list() == [
        "ts: duplicate cell_id and ts"]


def test_decimal_comma_read_as_points_stops_at_the_cells(tmp_path: Path) -> None:
    from ingest_helpers import cfg, write
    from kqi.ingest import Ingest

    from kqi.errors import InputError

    text = "cell_id;lat;lon;azimuth\nA1;30,641785;104,04321;0\nA2;30,65;104,05;90\n"
    ing = Ingest(cfg(read={"cells": {"decimal": "."}}), tmp_path / "rejects", verdicts=True)
    with pytest.raises(InputError, match=r"cells\.csv: 2 of 2 rows rejected: lat: not a number \(e\.g\. "
                                         r"'30,641785', '30,65'\); a decimal comma\? set "
                                         r"\[ingest\.read\.cells\] decimal = ','"):
        ing.cells(write(tmp_path / "cells.csv", text))


def test_complaints_naming_no_known_cell_are_linked_by_position(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from ingest_helpers import cfg, write
    from kqi.ingest import Ingest

    ing = Ingest(cfg(), None, verdicts=True)
    cells = ing.cells(write(tmp_path / "cells.csv", "cell_id,lat,lon,azimuth\n460-1,30,104,0\n"))
    text = ("complaint_id,ts,category,lat,lon,cell_id\n1,2026-01-05 10:00,browsing,30,104,A9\n"
            "2,2026-01-05 11:00,browsing,30,104,A8\n")
    with caplog.at_level("WARNING"):
        got = ing.complaints(write(tmp_path / "c.csv", text), cells)
    assert got.height == 2
    note = ("cell_id: none of the 2 complaints' cell ids is in cells.csv (e.g. 'A9', 'A8'); cells.csv ids "
            "look like '460-1': complaints are linked by position only")
    assert note in ing.reports["complaints"].notes
    assert "none of the 2 complaints' cell ids" in caplog.text


def test_daily_kpis_with_a_date_column_run_end_to_end(city, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      caplog: pytest.LogCaptureFixture) -> None:
    import kqi

    kpis = pl.read_csv(city.kpis, try_parse_dates=True)
    daily = (kpis.group_by(pl.col("ts").dt.date().alias("Date"), "cell_id")
             .agg(pl.col("prb_util_dl", "rrc_users_max", "ul_interference_dbm", "rsrp_weak_ratio",
                         "cqi_good_ratio", "ta_p90_m").mean(), pl.col("availability").min(),
                  pl.col("alarm_count").sum())
             .sort("Date", "cell_id"))
    path = tmp_path / "kpis_daily.csv"
    daily.with_columns(pl.col("Date").dt.strftime("%d.%m.%Y")).write_csv(path, separator=";")
    # the city's days are 1-12 of a month: '02.11.2026' cannot say its order, so it is set
    from kqi.config import config_from_dict

    cfg = config_from_dict({"ingest": {"formats": {"cell_kpis": {"ts": "%d.%m.%Y"}}}})
    with caplog.at_level("WARNING"):
        result = kqi.run(cells=city.cells, tests=city.tests, kpis=path, out=None, config=cfg)
    rep = result.reports["cell_kpis"]
    assert rep.rows_accepted == daily.height
    assert "ts: from the date column 'Date' (daily rows)" in rep.notes
    assert rep.detected["timestamp"] == {"columns": ["Date"], "form": "%d.%m.%Y", "configured": True}
    assert "busy-hour evidence uses every row" in caplog.text
    assert result.diagnosis.height > 0
    assert result.summary["diagnosis"]["not_judged"] == []
