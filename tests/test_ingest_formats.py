"""Ingest of what operators export: spreadsheets, ';' files with decimal commas, CR-only and
CRLF line ends, GBK, date/time forms (detected, day-first vs month-first decided from the data,
or set), a date and a time column joined, daily feeds, units, filled and missing values."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import openpyxl
import polars as pl
import pytest
from ingest_helpers import cfg, write
from kqi.ingest import Ingest

from kqi.config import config_from_dict
from kqi.errors import ConfigError, InputError

UTC = dt.UTC


def _cells_text(sep: str = ",", dec: str = ".") -> str:
    rows = [("A1", "30.641785", "104.043210", "0"), ("A2", "30.651785", "104.053210", "120"),
            ("B1", "-33.5", "151.25", "240.5")]
    head = sep.join(("小区ID", "纬度", "经度", "方位角"))
    return head + "\n" + "\n".join(sep.join(v.replace(".", dec) for v in r) for r in rows) + "\n"


def _read_cells(tmp_path: Path, text: str | bytes, name: str = "cells.csv", **ingest: object) -> pl.DataFrame:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    ing = Ingest(cfg(**ingest), tmp_path / "rejects")
    out = ing.cells(p)
    rep = ing.reports["cells"]
    assert rep.rows_read == rep.rows_accepted + rep.rows_rejected
    return out


# -- delimiters, decimal commas, line ends, encodings --------------------------------------------


@pytest.mark.parametrize(("sep", "dec", "nl"), [
    (",", ".", "\n"), (";", ",", "\n"), (";", ".", "\r\n"), ("\t", ",", "\r"), ("|", ",", "\r\n"),
    (";", ",", "\r"),
])
def test_delimiter_decimal_and_line_ends_detected(tmp_path: Path, sep: str, dec: str, nl: str) -> None:
    text = _cells_text(sep, dec).replace("\n", nl)
    ing = Ingest(cfg(), tmp_path / "rejects")
    got = ing.cells(write(tmp_path / "cells.csv", text))
    assert got["cell_id"].to_list() == ["A1", "A2", "B1"]
    assert got["lat"].to_list() == [30.641785, 30.651785, -33.5]
    assert got["azimuth"].to_list() == [0.0, 120.0, 240.5]
    d = ing.reports["cells"].detected
    assert d["delimiter"] == {"\t": "tab"}.get(sep, sep)
    assert d["decimal"] == dec
    assert d["line_endings"] == {"\n": "LF", "\r\n": "CRLF", "\r": "CR"}[nl]
    assert d["configured"] == []


def test_gbk_semicolon_decimal_comma(tmp_path: Path) -> None:
    text = "小区ID;小区名称;纬度;经度;方位角\nA1;成都高新;30,641785;104,04321;0\nA2;天府;30,65;104,05;90\n"
    ing = Ingest(cfg(), None)
    got = ing.cells(write(tmp_path / "c.csv", text, "gbk"))
    assert got["cell_name"].to_list() == ["成都高新", "天府"]
    assert got["lon"].to_list() == [104.04321, 104.05]
    assert ing.reports["cells"].detected["encoding"] == "gb18030"


def test_decimal_comma_with_thousands_points_and_a_bad_row(tmp_path: Path) -> None:
    cells = Ingest(cfg(), None).cells(write(tmp_path / "c.csv", _cells_text(";", ",")))
    kpis = ("ts;cell_id;rrc_users_max;prb_util_dl;ta_p90_m\n"
            "2026-01-05 19:00;A1;12,5;45,5;1.234,5\n"
            "2026-01-05 20:00;A1;x;50,25;900\n")
    ing = Ingest(cfg(), tmp_path / "rejects")
    got = ing.cell_kpis(write(tmp_path / "k.csv", kpis), cells)
    assert got["rrc_users_max"].to_list() == [12.5]
    assert got["ta_p90_m"].to_list() == [1234.5]
    assert got["prb_util_dl"].to_list() == [45.5]
    rej = pl.read_csv(tmp_path / "rejects" / "cell_kpis.csv")
    assert rej["line"].to_list() == [3]
    assert rej["reason"][0] == "rrc_users_max: not a number 'x'"


def test_ambiguous_or_mixed_decimals_ask_for_the_setting(tmp_path: Path) -> None:
    text = "cell_id;lat;lon;azimuth;users\nA1;30;104;0;1,234\nA2;30;104;5;2,500\n"
    with pytest.raises(InputError, match=r"users.*'1,234' read as 1\.234 \(decimal comma\) or 1234"):
        Ingest(cfg(), None).cells(write(tmp_path / "a.csv", text))
    got = Ingest(cfg(read={"cells": {"decimal": "."}}), None).cells(write(tmp_path / "a.csv", text))
    assert got.height == 2
    mixed = "cell_id;lat;lon;azimuth\nA1;30,5;104.5;0\n"
    with pytest.raises(InputError, match="decimal commas and column 'lon' decimal points"):
        Ingest(cfg(), None).cells(write(tmp_path / "m.csv", mixed))


def test_delimiter_and_decimal_set_in_the_config(tmp_path: Path) -> None:
    # a header with more commas than semicolons: the data lines decide, or the config does
    text = "cell_id;name, long;lat;lon;azimuth\nA1;x, y;30,5;104,5;0\n"
    got = Ingest(cfg(), None).cells(write(tmp_path / "c.csv", text))
    assert got["lat"].to_list() == [30.5]
    ing = Ingest(cfg(read={"cells": {"delimiter": "semicolon", "decimal": ","}}), None)
    assert ing.cells(write(tmp_path / "c.csv", text))["lon"].to_list() == [104.5]
    assert ing.reports["cells"].detected["configured"] == ["delimiter", "decimal"]


def test_read_settings_are_checked_at_load() -> None:
    for bad, match in [({"cells": {"delimiter": "#"}}, "delimiter"), ({"cells": {"decimal": ";"}}, "decimal"),
                       ({"cellz": {"decimal": ","}}, "unknown feed"), ({"cells": {"sheet": 0}}, "sheet"),
                       ({"cells": {"delimiter": ",", "decimal": ","}}, "cannot have"),
                       ({"cells": {"quote": "'"}}, "unknown setting")]:
        with pytest.raises(ConfigError, match=match):
            config_from_dict({"ingest": {"read": bad}})
    with pytest.raises(ConfigError, match="no % directive"):
        config_from_dict({"ingest": {"formats": {"cell_kpis": {"ts": "DD/MM/YYYY"}}}})
    with pytest.raises(ConfigError, match="percent or ratio"):
        config_from_dict({"ingest": {"units": {"cell_kpis": {"rrc_users_max": "fraction"}}}})
    with pytest.raises(ConfigError, match="max_reject_share"):
        config_from_dict({"ingest": {"max_reject_share": 1.5}})


def test_header_row_skips_title_lines(tmp_path: Path) -> None:
    text = "Cell export 2026-01-05\nregion: north\n" + _cells_text() + "A3,x,1,1\n"
    ing = Ingest(cfg(read={"cells": {"header_row": 3}}), tmp_path / "rejects")
    assert ing.cells(write(tmp_path / "c.csv", text)).height == 3
    assert pl.read_csv(tmp_path / "rejects" / "cells.csv")["line"].to_list() == [7]


# -- spreadsheets -----------------------------------------------------------------------------


def _xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
    wb.save(path)
    return path


def test_xlsx_first_sheet_or_a_configured_one(tmp_path: Path) -> None:
    cells = [["ECI", "Latitude", "Longitude", "Azimuth", "Vendor"],
             [4926720, 50.99, -0.09, 294, "Nokia"], [4926721, 50.99, -0.09, 38, "Nokia"],
             [None, None, None, None, None],  # a blank row: not a record
             [4926722, "n/a", -0.09, 222, "Nokia"]]
    path = _xlsx(tmp_path / "export.xlsx", {"Cells": cells, "Notes": [["hello"]]})
    ing = Ingest(cfg(), tmp_path / "rejects")
    got = ing.cells(path)
    assert got["cell_id"].to_list() == ["4926720", "4926721"]  # ints, not '4926720.0'
    assert got["site_id"].to_list() == ["19245", "19245"]
    rep = ing.reports["cells"]
    assert (rep.rows_read, rep.rows_accepted, rep.rows_rejected) == (3, 2, 1)
    assert rep.detected == {"format": "xlsx", "sheet": "Cells", "sheets": 2, "header_row": 1}
    rej = pl.read_csv(tmp_path / "rejects" / "cells.csv")
    assert rej["line"].to_list() == [5]  # the sheet's row
    assert rej["reason"][0] == "lat: not a number 'n/a'" or rej["reason"][0].startswith("lat: missing")
    # the second sheet, by name or number
    path2 = _xlsx(tmp_path / "two.xlsx", {"Summary": [["x"], [1]], "Cells": cells[:3]})
    for sheet in ("Cells", 2):
        ing2 = Ingest(cfg(read={"cells": {"sheet": sheet}}), None)
        assert ing2.cells(path2).height == 2
    with pytest.raises(InputError, match=r"no sheet named 'Cellz' \(sheets: Summary, Cells\)"):
        Ingest(cfg(read={"cells": {"sheet": "Cellz"}}), None).cells(path2)


def test_xlsx_kpis_with_dates_and_fraction_percent(tmp_path: Path) -> None:
    cells = Ingest(cfg(), None).cells(write(tmp_path / "c.csv", _cells_text()))
    rows: list[list[object]] = [["Start Time", "Cell", "PRB Utilisation", "Availability"]]
    for h in range(24):
        rows.append([dt.datetime(2026, 1, 5, h), "A1", 0.05 + h / 30, 1.0 if h != 3 else 0.5])
    path = _xlsx(tmp_path / "kpi.xlsx", {"KPI": rows})
    ing = Ingest(cfg(column_map={"cell_kpis": {"Cell": "cell_id", "PRB Utilisation": "prb_util_dl",
                                               "Start Time": "ts"}}), None)
    got = ing.cell_kpis(path, cells)
    assert got.height == 24
    assert got["ts"][0] == dt.datetime(2026, 1, 5, 0, tzinfo=UTC)
    assert got["prb_util_dl"][0] == pytest.approx(5.0)
    assert got["availability"].to_list()[2:4] == [100.0, 50.0]
    units = ing.reports["cell_kpis"].detected["units"]
    assert units["prb_util_dl"].startswith("fraction, detected")
    assert units["availability"].startswith("fraction, detected")


def test_not_a_spreadsheet_by_name_only(tmp_path: Path) -> None:
    # a CSV named .xlsx is read as the CSV it is; a broken zip is not a spreadsheet either
    got = Ingest(cfg(), None).cells(write(tmp_path / "cells.xlsx", _cells_text()))
    assert got.height == 3


# -- date and time forms ----------------------------------------------------------------------


def _kpis(tmp_path: Path, ts_values: list[str], header: str = "ts", **ingest: object
          ) -> tuple[pl.DataFrame, Ingest]:
    cells = Ingest(cfg(), None).cells(write(tmp_path / "c.csv", _cells_text()))
    lines = [f"{header},cell_id,prb_util_dl"] + [f"{v},A{i % 2 + 1},{10 + i}" for i, v in enumerate(ts_values)]
    ing = Ingest(cfg(**ingest), tmp_path / "rejects")
    return ing.cell_kpis(write(tmp_path / "k.csv", "\n".join(lines) + "\n"), cells), ing


@pytest.mark.parametrize(("values", "first", "form"), [
    (["2019.12.14_10.16.30", "2019.12.14_10.16.31"], dt.datetime(2019, 12, 14, 10, 16, 30), "%Y.%m.%d_%H.%M.%S"),
    (["24-Jun-15", "25-Jun-15"], dt.datetime(2015, 6, 24), "%d-%b-%y"),
    (["2026/01/05 19:00", "2026/01/05 20:00"], dt.datetime(2026, 1, 5, 19), "%Y/%m/%d %H:%M"),
    (["13/01/2026 19:00", "01/02/2026 19:00"], dt.datetime(2026, 1, 13, 19), "%d/%m/%Y %H:%M"),
    (["01/13/2026 7:05 PM", "01/02/2026 7:05 PM"], dt.datetime(2026, 1, 13, 19, 5), "%m/%d/%Y %I:%M %p"),
    (["05.01.2026 19:00:00", "31.01.2026 19:00:00"], dt.datetime(2026, 1, 5, 19), "%d.%m.%Y %H:%M:%S"),
    (["2026-01-05T19:00", "2026-01-05T20:00"], dt.datetime(2026, 1, 5, 19), "%Y-%m-%dT%H:%M"),
    (["1767639600", "1767643200"], dt.datetime(2026, 1, 5, 19), None),
    (["1767639600000", "1767643200000"], dt.datetime(2026, 1, 5, 19), None),
])
def test_timestamp_forms_detected(tmp_path: Path, values: list[str], first: dt.datetime,
                                  form: str | None) -> None:
    got, ing = _kpis(tmp_path, values)
    assert got.height == len(values)
    assert got["ts"][0] == first.replace(tzinfo=UTC)
    ts = ing.reports["cell_kpis"].detected["timestamp"]
    if form is not None:
        assert ts["form"] == form
    assert ts["configured"] is False


def test_day_month_order_undecidable_asks_for_the_form(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"dates such as '01/02/2026 19:00' read either day-first "
                                         r"or month-first.*\[ingest\.formats\.cell_kpis\] ts = "
                                         r"\"%d/%m/%Y %H:%M\" \(day first\) or \"%m/%d/%Y %H:%M\""):
        _kpis(tmp_path, ["01/02/2026 19:00", "02/02/2026 19:00"])
    got, ing = _kpis(tmp_path, ["01/02/2026 19:00", "02/02/2026 19:00"],
                     formats={"cell_kpis": {"ts": "%m/%d/%Y %H:%M"}})
    assert got["ts"].to_list()[0] == dt.datetime(2026, 1, 2, 19, tzinfo=UTC)
    assert ing.reports["cell_kpis"].detected["timestamp"]["configured"] is True


def test_day_and_month_first_in_one_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"both day-first \('22-04-15'\) and month-first \('04-28-15'\)"):
        _kpis(tmp_path, ["22-04-15", "04-28-15"])


def test_set_form_rejects_other_values(tmp_path: Path) -> None:
    got, _ = _kpis(tmp_path, ["05/01/2026 19:00", "2026-01-05 20:00"],
                   formats={"cell_kpis": {"ts": "%d/%m/%Y %H:%M"}})
    assert got.height == 1
    rej = pl.read_csv(tmp_path / "rejects" / "cell_kpis.csv")
    assert rej["reason"][0] == "ts: not a timestamp in the set form '%d/%m/%Y %H:%M' '2026-01-05 20:00'"
    got, ing = _kpis(tmp_path, ["1767639600000"], formats={"cell_kpis": {"ts": "epoch_ms"}})
    assert got["ts"][0] == dt.datetime(2026, 1, 5, 19, tzinfo=UTC)
    assert ing.reports["cell_kpis"].detected["timestamp"]["form"] == "epoch milliseconds"


def test_a_set_form_is_used_where_iso_would_read_the_value_too(tmp_path: Path) -> None:
    # year-day-month: '2026-02-03' is 2 March; pyarrow's own ISO read (3 February) must not win
    got, ing = _kpis(tmp_path, ["2026-02-03 10:00:00", "2026-04-03 10:00:00"],
                     formats={"cell_kpis": {"ts": "%Y-%d-%m %H:%M:%S"}})
    assert got["ts"].to_list() == [dt.datetime(2026, 3, 2, 10, tzinfo=UTC),
                                   dt.datetime(2026, 3, 4, 10, tzinfo=UTC)]
    assert ing.reports["cell_kpis"].detected["timestamp"]["form"] == "%Y-%d-%m %H:%M:%S"


def test_year_one_is_not_a_date(tmp_path: Path) -> None:
    # '01/02/26' is not %Y/%m/%d in the year 1: day/month order decides it
    got, ing = _kpis(tmp_path, ["13/02/26", "01/02/26"])
    assert got["ts"].to_list() == [dt.datetime(2026, 2, 13, tzinfo=UTC), dt.datetime(2026, 2, 1, tzinfo=UTC)]
    assert ing.reports["cell_kpis"].detected["timestamp"]["order"] == "day-first"


def test_date_and_time_columns_joined(tmp_path: Path) -> None:
    cells = Ingest(cfg(), None).cells(write(tmp_path / "c.csv", _cells_text()))
    text = ("\ufeffTicket #,Customer Complaint,Date,Time,Latitude,Longitude\r\n"
            "250635,Internet speed,22-Apr-15,3:53:50 PM,30.64,104.04\r\n"
            "223441,Data caps,04-Aug-15,10:22:56 AM,30.65,104.05\r\n"
            "223442,Data caps,05-Aug-15,,30.65,104.05\r\n")
    ing = Ingest(cfg(column_map={"complaints": {"Ticket #": "complaint_id", "Customer Complaint": "category"}}),
                 tmp_path / "rejects")
    got = ing.complaints(write(tmp_path / "c2.csv", text), cells)
    assert got["ts"].to_list() == [dt.datetime(2015, 4, 22, 15, 53, 50, tzinfo=UTC),
                                   dt.datetime(2015, 8, 4, 10, 22, 56, tzinfo=UTC)]
    rep = ing.reports["complaints"]
    assert rep.detected["timestamp"]["columns"] == ["Date", "Time"]
    assert rep.detected["timestamp"]["form"] == "%d-%b-%y %I:%M:%S %p"
    assert "ts: date column 'Date' and time column 'Time' joined" in rep.notes
    assert pl.read_csv(tmp_path / "rejects" / "complaints.csv")["reason"].to_list() == ["ts: missing value"]
    # explicit halves, each with its own form
    ing2 = Ingest(cfg(column_map={"complaints": {"Ticket #": "complaint_id", "Customer Complaint": "category",
                                                 "Date": "date", "Time": "time"}},
                      formats={"complaints": {"date": "%d-%b-%y", "time": "%I:%M:%S %p"}}), None)
    assert ing2.complaints(write(tmp_path / "c2.csv", text), cells).height == 2


def test_a_time_column_with_whole_timestamps_beside_a_date(tmp_path: Path) -> None:
    cells = Ingest(cfg(), None).cells(write(tmp_path / "c.csv", _cells_text()))
    text = "时间,日期,cell_id,prb_util_dl\n2026-01-05 19:00:00,2026-01-05,A1,50\n19:00,2026-01-06,A1,40\n"
    got = Ingest(cfg(), None).cell_kpis(write(tmp_path / "k.csv", text), cells)
    assert got["ts"].to_list() == [dt.datetime(2026, 1, 5, 19, tzinfo=UTC), dt.datetime(2026, 1, 6, 19, tzinfo=UTC)]


def test_daily_kpis_from_a_date_column(tmp_path: Path) -> None:
    cells = Ingest(cfg(), None).cells(write(tmp_path / "c.csv", _cells_text()))
    text = "Cell;Date;PRB_Util\nA1;2019-01-01;0,3\nA1;2019-01-02;0,5\nA2;2019-01-01;0,9\n"
    ing = Ingest(cfg(column_map={"cell_kpis": {"Cell": "cell_id", "PRB_Util": "prb_util_dl"}}), None)
    got = ing.cell_kpis(write(tmp_path / "d.csv", text), cells)
    assert got["ts"].to_list()[:2] == [dt.datetime(2019, 1, 1, tzinfo=UTC), dt.datetime(2019, 1, 2, tzinfo=UTC)]
    assert got["prb_util_dl"].to_list() == [30.0, 50.0, 90.0]
    assert "ts: from the date column 'Date' (daily rows)" in ing.reports["cell_kpis"].notes


# -- units ------------------------------------------------------------------------------------


def test_units_fraction_detected_set_or_percent_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    got, ing = _kpis(tmp_path, ["2026-01-05 19:00", "2026-01-05 20:00"])
    assert got["prb_util_dl"].to_list() == [10.0, 11.0]  # percents stay percents
    assert "units" not in ing.reports["cell_kpis"].detected
    cells = Ingest(cfg(), None).cells(write(tmp_path / "c.csv", _cells_text()))
    text = "ts,cell_id,prb_util_dl,cqi_good_ratio,availability\n" \
           "2026-01-05 19:00,A1,0.95,85,1\n2026-01-05 20:00,A1,0.05,92.5%,0.99\n"
    ing = Ingest(cfg(), None)
    with caplog.at_level("WARNING"):
        got = ing.cell_kpis(write(tmp_path / "k.csv", text), cells)
    assert got["prb_util_dl"].to_list() == pytest.approx([95.0, 5.0])
    assert got["availability"].to_list() == pytest.approx([100.0, 99.0])
    assert got["cqi_good_ratio"].to_list() == pytest.approx([0.85, 0.925])
    assert "column 'prb_util_dl' (prb_util_dl) holds only values within 0-1: read as a fraction" in caplog.text
    # the unit set in the config: no detection
    ing = Ingest(cfg(units={"cell_kpis": {"prb_util_dl": "percent", "cqi_good_ratio": "percent"}}), None)
    got = ing.cell_kpis(write(tmp_path / "k.csv", text), cells)
    assert got["prb_util_dl"].to_list() == pytest.approx([0.95, 0.05])
    assert ing.reports["cell_kpis"].detected["units"]["prb_util_dl"] == "percent (set)"


# -- filled and missing values -----------------------------------------------------------------


def test_fill_and_missing_values(tmp_path: Path) -> None:
    text = "cell,lat,lon\n1182,48.1484,11.5365\n2372,-1,-1\n3116,0,0\n"
    with pytest.raises(InputError, match=r"azimuth.*set \[ingest\.fill\.cells\] azimuth = 0 and beamwidth = 360"):
        Ingest(cfg(), None).cells(write(tmp_path / "o.csv", text))
    ing = Ingest(cfg(fill={"cells": {"azimuth": 0, "beamwidth": 360}},
                     missing={"cells": {"lat": [-1, 0], "lon": ["-1", "0"]}}), tmp_path / "rejects")
    got = ing.cells(write(tmp_path / "o.csv", text))
    assert got["beamwidth"].to_list() == [360.0]
    assert got["azimuth"].to_list() == [0.0]
    assert pl.read_csv(tmp_path / "rejects" / "cells.csv")["reason"].to_list() == ["lat: missing value"] * 2
    complaints = "Operator,Category,Latitude,Longitude\nAirtel,Poor Network,28.4,76.9\nRJio,Call Dropped,28.5,77\n"
    ing = Ingest(cfg(column_map={"complaints": {"Category": "category"}},
                     fill={"complaints": {"ts": "2018-04-01", "complaint_id": "trai-{line}"}}), None)
    got = ing.complaints(write(tmp_path / "t.csv", complaints), got)
    assert got["complaint_id"].to_list() == ["trai-2", "trai-3"]
    assert got["ts"].to_list() == [dt.datetime(2018, 4, 1, tzinfo=UTC)] * 2


def test_xlsx_date_and_time_cells_joined(tmp_path: Path) -> None:
    cells = Ingest(cfg(), None).cells(write(tmp_path / "c.csv", _cells_text()))
    rows: list[list[object]] = [["Ticket", "Date", "Time", "Type", "Latitude", "Longitude"],
                                ["T1", dt.date(2026, 1, 5), dt.time(19, 5, 30), "video", 30.64, 104.04],
                                ["T2", dt.date(2026, 1, 6), dt.time(7, 0), "browsing", 30.65, 104.05]]
    path = _xlsx(tmp_path / "tickets.xlsx", {"Tickets": rows})
    ing = Ingest(cfg(column_map={"complaints": {"Ticket": "complaint_id"}}), None)
    got = ing.complaints(path, cells)
    assert got["ts"].to_list() == [dt.datetime(2026, 1, 5, 19, 5, 30, tzinfo=UTC),
                                   dt.datetime(2026, 1, 6, 7, 0, tzinfo=UTC)]
    assert ing.reports["complaints"].detected["timestamp"]["columns"] == ["Date", "Time"]


# -- a column not read still shows in the rejects ------------------------------------------------

@pytest.mark.parametrize("fused", [True, False])
def test_rejected_rows_show_ts_as_written_when_ts_is_not_read(tmp_path: Path, fused: bool) -> None:
    """``flag_cells`` does not decode a Parquet ``ts`` the file's statistics prove valid; a
    rejected row still shows its ``ts`` as the file holds it, the same as when ``ts`` is read."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 5_000
    rng = np.random.default_rng(3)
    page = rng.lognormal(7, 0.5, n)
    bad = [5, 1_700, 1_701, 4_999]           # in three of the five row groups
    page[bad] = -1.0
    table = pa.table({
        "ts": pa.array(1_714_521_600_000 + rng.integers(0, 86_400_000, n), pa.timestamp("ms", "UTC")),
        "cell_id": pa.array([f"c{i % 40}" for i in range(n)]),
        "service": pa.array(["browsing"] * n), "page_load_ms": page})
    path = tmp_path / "tests.parquet"
    pq.write_table(table, path, row_group_size=1_000)

    def rejects(days: bool) -> pl.DataFrame:
        ing = Ingest(cfg(batch_rows=700), None, checksum=False)
        feed = ing.app_tests(path, None, days=days)
        if not days:
            assert feed.fused is not None
            if not fused:
                feed.fused = None
        from kqi.flagging import KqiAccumulator

        feed.count(KqiAccumulator(0, ing.config, daily=False))
        return ing.rejects["app_tests"]

    skipped, read = rejects(days=False), rejects(days=True)
    assert skipped["line"].to_list() == [i + 1 for i in bad]
    assert skipped["ts"].null_count() == 0
    assert skipped.equals(read)


def test_parquet_column_text_of_a_file_changed_since_it_was_opened(tmp_path: Path) -> None:
    """Reading back a column for rejected rows (ParquetSource.column_text) of a file that was
    replaced meanwhile gives the one-line input error, file and line, not polars' traceback."""
    from kqi.ingest._sources import ParquetSource

    path = tmp_path / "tests.parquet"
    pl.DataFrame({"cell_id": ["A", "B", "C"], "ts": ["2026-01-01 00:00:00"] * 3}).write_parquet(path)
    src = ParquetSource(path, batch_rows=1024)
    assert src.column_text("ts", np.array([2, 3])).to_list() == ["2026-01-01 00:00:00"] * 2
    src._group_text = None  # the cached row group would hide the change
    path.write_bytes(b"not parquet any more")
    with pytest.raises(InputError) as info:
        src.column_text("ts", np.array([2]))
    msg = str(info.value)
    assert msg.startswith(str(path))
    assert "cannot read Parquet data" in msg
    assert "line 2" in msg
    assert "\n" not in msg
