"""Work orders: priority formula (vs a plain reference), ranking, actions, silent cells; the Excel
workbook (sheets, formats, formula-like text stays text); output safety (no MSISDN anywhere,
byte-identical CSVs)."""

from __future__ import annotations

import math
import zipfile
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from kqi import io as kio
from kqi import words
from kqi.causes import label
from kqi.complaints import hotspots, link_complaints, silent_poor_cells
from kqi.config import Config, config_from_dict
from kqi.errors import KqiError
from kqi.excel import write_work_orders_xlsx
from kqi.schema import WORK_ORDERS
from kqi.workorders import build_work_orders, work_order_summary


def cells_frame() -> pl.DataFrame:
    return pl.DataFrame({
        "cell_id": ["A-1", "A-2", "A-3", "B-1", "B-2", "C-1"],
        "site_id": ["A", "A", "A", "B", "B", "C"],
        "cell_name": ["=HYPERLINK(\"http://x\")", "+a2", "a3", "@b1", "-b2", "c1"],
        "lat": [30.0, 30.0, 30.0, 30.0, 30.0, 30.01],
        "lon": [120.0, 120.0, 120.0, 120.01, 120.01, 120.0],
        "azimuth": [0.0, 120.0, 240.0, 0.0, 180.0, 90.0],
        "beamwidth": [65.0] * 6,
        "vendor": ["ZTE", "ZTE", "ZTE", "Nokia", None, None],
        "region": ["north", "north", "south", "south", "north", "east"],
    })


def kqi_frame() -> pl.DataFrame:
    rows = [
        # cell, service, tests, good, poor
        ("A-1", "browsing", 400, 240, True),     # 0.60 <= 0.80
        ("A-1", "video", 100, 85, True),         # 0.85 <= 0.90
        ("A-2", "browsing", 300, 270, False),
        ("A-3", "gaming", 50, 40, True),         # 0.80
        ("B-1", "browsing", 1000, 790, True),    # 0.79
        ("B-2", "video", 200, 150, True),        # 0.75
        ("C-1", "browsing", 10, 2, False),       # too few tests to judge
    ]
    return pl.DataFrame(rows, schema={"cell_id": pl.String, "service": pl.String,
                                      "tests": pl.Int64, "good_tests": pl.Int64,
                                      "poor": pl.Boolean}, orient="row").with_columns(
        (pl.col("good_tests") / pl.col("tests")).alias("good_rate"))


def diagnosis_frame() -> pl.DataFrame:
    return pl.DataFrame({
        "cell_id": ["A-1", "A-3", "B-1"],
        "poor_services": ["browsing;video", "gaming", "browsing"],
        "primary_cause": ["interference", "fault", "high_load"],
        "secondary_causes": ["high_load", "", ""],
        "evidence": ["=UL interference -98 dBm", "availability 91 %", "PRB 86 %"],
        "rrc_users_busy": [120.0, None, 450.0],
    })


def links_frame() -> pl.DataFrame:
    ids = [f"c{i:02d}" for i in range(30)]
    cell = ["A-1"] * 25 + ["B-1"] * 2 + [None, "A-2", "A-1"]
    network = [True] * 27 + [False, True, False]
    method = ["spatial"] * 27 + ["non_network", "crm", "non_network"]
    return pl.DataFrame({"complaint_id": ids, "cell_id": cell, "network": network,
                         "method": method})


def ref_priority(cell: str, cfg: Config) -> float:
    """Plain reference of the documented priority formula."""
    w = cfg.workorders
    kq = [r for r in kqi_frame().iter_rows(named=True) if r["cell_id"] == cell and r["poor"]]
    gap = sum((cfg.kqi.thresholds.for_service(r["service"]) - r["good_rate"])
              / cfg.kqi.thresholds.for_service(r["service"]) for r in kq)
    poor_tests = sum(r["tests"] - r["good_tests"] for r in kq)
    diag = {r["cell_id"]: r for r in diagnosis_frame().iter_rows(named=True)}
    users = (diag.get(cell) or {}).get("rrc_users_busy") or 0.0
    cause = diag[cell]["primary_cause"] if cell in diag else "unknown"
    links = links_frame()
    n = links.filter(pl.col("network") & (pl.col("cell_id") == cell)).height
    raw = (w.w_gap * min(1.0, gap / w.gap_full)
           + w.w_tests * min(1.0, math.log10(1 + poor_tests) / math.log10(1 + w.tests_full))
           + w.w_users * min(1.0, users / w.users_full)
           + w.w_complaints * min(1.0, math.log10(1 + n) / math.log10(1 + w.complaints_full))
           + w.w_services * len(kq) / 3)
    return w.cause_weight[cause] * raw


def build(cfg: Config | None = None, **kw) -> pl.DataFrame:
    return build_work_orders(diagnosis_frame(), kqi_frame(), cells_frame(), links_frame(),
                             cfg or Config(), **kw)


def test_one_row_per_poor_cell_with_contract_columns():
    wo = build()
    assert wo.columns[:len(WORK_ORDERS)] == [f.name for f in WORK_ORDERS]
    assert sorted(wo["cell_id"].to_list()) == ["A-1", "A-3", "B-1", "B-2"]
    assert wo["rank"].to_list() == [1, 2, 3, 4]
    a1 = wo.filter(pl.col("cell_id") == "A-1").row(0, named=True)
    assert a1["poor_services"] == "browsing;video"
    assert a1["complaints"] == 25
    assert a1["good_rate_browsing"] == pytest.approx(0.6)
    assert a1["good_rate_video"] == pytest.approx(0.85)
    assert a1["good_rate_gaming"] is None
    assert a1["poor_tests"] == 160 + 15
    assert a1["tests"] == 500
    assert a1["vendor"] == "ZTE"
    assert a1["region"] == "north"


def test_priority_matches_reference_and_ranks():
    cfg = Config()
    wo = build(cfg)
    for cell, score in wo.select("cell_id", "priority_score").iter_rows():
        assert score == pytest.approx(ref_priority(cell, cfg), abs=1e-3)
    scores = wo["priority_score"].to_list()
    assert scores == sorted(scores, reverse=True)
    # more complaints weigh more
    heavier = config_from_dict({"workorders": {"w_complaints": 500.0}})
    assert build(heavier)["cell_id"][0] == "A-1"


def test_rank_ties_break_by_cell_id():
    kq = pl.DataFrame({"cell_id": ["Z", "M", "A"], "service": ["browsing"] * 3,
                       "tests": [100] * 3, "good_tests": [50] * 3, "good_rate": [0.5] * 3,
                       "poor": [True] * 3})
    cells = pl.DataFrame({"cell_id": ["A", "M", "Z"]})
    wo = build_work_orders(None, kq, cells, None, Config())
    assert wo["cell_id"].to_list() == ["A", "M", "Z"]
    assert wo["priority_score"].n_unique() == 1


def test_actions_causes_and_silent():
    cfg = Config()
    wo = build(cfg).sort("cell_id")
    assert wo["primary_cause"].to_list() == ["interference", "fault", "high_load", "unknown"]
    assert wo["action"].to_list() == [cfg.workorders.actions[c] for c in wo["primary_cause"]]
    assert wo["silent"].to_list() == [False, True, False, True]
    b2 = wo.filter(pl.col("cell_id") == "B-2").row(0, named=True)
    assert b2["evidence"] == "no diagnosis for this cell"
    assert b2["secondary_causes"] == ""
    custom = config_from_dict({"workorders": {"actions": {"fault": "call the vendor"}}})
    assert build(custom).filter(pl.col("cell_id") == "A-3")["action"].to_list() == [
        "call the vendor"]
    summary = work_order_summary(wo)
    assert summary["causes"]["interference"] == 1
    assert summary["causes"]["unknown"] == 1
    assert summary["silent_cell_ids"] == ["A-3", "B-2"]
    assert summary["vendors"] == {"Nokia": 1, "ZTE": 2, "unknown": 1}
    silent = silent_poor_cells(kqi_frame(), links_frame())
    assert silent["cell_id"].to_list() == wo.filter(pl.col("silent"))["cell_id"].to_list()


def test_complaint_ids_truncated_and_evidence_override():
    cfg = config_from_dict({"workorders": {"complaint_ids_max": 3}})
    ev = pl.DataFrame({"cell_id": ["A-3"], "rrc_users_busy": [300.0]})
    wo = build(cfg, evidence=ev)
    a1 = wo.filter(pl.col("cell_id") == "A-1").row(0, named=True)
    assert a1["complaint_ids"] == "c00;c01;c02;+22 more"
    a3 = wo.filter(pl.col("cell_id") == "A-3").row(0, named=True)
    assert a3["rrc_users_busy"] == 300.0
    assert a3["priority_score"] > build().filter(pl.col("cell_id") == "A-3")["priority_score"][0]


def test_no_poor_cells_and_missing_columns():
    kq = kqi_frame().with_columns(pl.lit(False).alias("poor"))
    wo = build_work_orders(diagnosis_frame(), kq, cells_frame(), None, Config())
    assert wo.height == 0
    assert wo.columns[:len(WORK_ORDERS)] == [f.name for f in WORK_ORDERS]
    with pytest.raises(KqiError, match="good_rate"):
        build_work_orders(None, kqi_frame().drop("good_rate"), cells_frame(), None, Config())


# --------------------------------------------------------------------------------------------
# Excel
# --------------------------------------------------------------------------------------------

def hotspots_frame() -> pl.DataFrame:
    return pl.DataFrame({"kind": ["volume", "volume"], "rank": [1, 2], "cell_id": ["A-1", "=B-1"],
                         "complaints": [25, 2], "previous": [None, None],
                         "per_10k": [float("inf"), 1.23456789123]},
                        schema_overrides={"rank": pl.Int32, "previous": pl.Int64})


def test_workbook_sheets_values_and_formats(tmp_path):
    from openpyxl import load_workbook

    wo = build()
    summary = {"cells_reporting": 6, "poor_cells": {"browsing": 2, "video": 2}, "note": "=1+1"}
    path = write_work_orders_xlsx(tmp_path / "work_orders.xlsx", wo, summary, hotspots_frame())
    assert path.is_file()
    assert not list(tmp_path.glob(".*tmp"))
    wb = load_workbook(path)
    assert wb.sheetnames == ["Summary", "All orders", "Nokia", "ZTE", "Unknown vendor"]
    everything = [r[1] for r in wb["All orders"].iter_rows(min_row=2, values_only=True)]
    assert len(everything) == wo.height
    assert [r[0] for r in wb["All orders"].iter_rows(min_row=2, values_only=True)] == sorted(
        wo["rank"].to_list())

    zte = wb["ZTE"]
    header = [c.value for c in zte[1]]
    # headers in words; the printed key columns first (kqi.excel.PRINT_COLUMNS)
    assert header[:3] == ["Rank", "Cell ID", "Cell name"]
    assert "Vendor" not in header
    assert sorted(header) == sorted(words.header(c) for c in wo.columns if c != "vendor")
    assert zte.freeze_panes == "C2"
    (table,) = zte.tables.values()         # an Excel table (banded rows, filter buttons)
    assert table.ref == zte.dimensions
    assert not zte.auto_filter.ref          # the table's own filter, no second one
    rows = list(zte.iter_rows(min_row=2, values_only=True))
    # dispatch order: region, then rank
    regions = [r[header.index("Region")] for r in rows]
    assert regions == sorted(regions)
    a1 = next(r for r in rows if r[1] == "A-1")
    assert a1[header.index("Complaints")] == 25
    assert a1[header.index("Good rate browsing")] == pytest.approx(0.6)
    # causes and services in words
    causes = set(wo["primary_cause"].to_list())
    assert {r[header.index("Primary cause")] for r in rows} <= {label(c) for c in causes}
    col = header.index("Good rate browsing") + 1
    row_a1 = 2 + [r[1] for r in rows].index("A-1")
    assert zte.cell(row=row_a1, column=col).number_format == "0.0%"
    assert zte.cell(row=row_a1, column=col).data_type == "n"      # a number, not text
    ranges = [str(r.sqref) for r in zte.conditional_formatting]
    letter = zte.cell(row=1, column=col).column_letter
    assert any(rng.startswith(letter) for rng in ranges)
    rule = next(iter(zte.conditional_formatting)).rules[0]
    assert rule.type == "colorScale"
    assert zte.column_dimensions["A"].width >= 6
    assert zte.column_dimensions[zte.cell(row=1, column=header.index("Recommended action") + 1)
                                 .column_letter].width <= 62
    # print: landscape, fitted to the width, header repeated, the key columns
    assert zte.page_setup.orientation == "landscape"
    assert zte.page_setup.fitToWidth == 1
    assert zte.page_setup.fitToHeight == 0
    assert zte.print_title_rows == "$1:$1"
    from openpyxl.utils import get_column_letter

    from kqi.excel import PRINT_COLUMNS

    n_print = len([c for c in PRINT_COLUMNS if c in wo.columns and c != "vendor"])
    assert str(zte.print_area).endswith(f"$A$1:${get_column_letter(n_print)}${zte.max_row}")

    # formula-like text stays text: a string cell with Excel's quote prefix, no apostrophe
    name = zte.cell(row=row_a1, column=header.index("Cell name") + 1)
    assert name.data_type == "s"
    assert name.value == "=HYPERLINK(\"http://x\")"
    assert name.quotePrefix
    ev = zte.cell(row=row_a1, column=header.index("Evidence") + 1)
    assert ev.value.startswith("=")
    assert ev.quotePrefix
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    assert not cell.value.startswith("'"), (ws.title, cell.coordinate)

    s = wb["Summary"]
    values = [[c.value for c in r] for r in s.iter_rows()]
    titles = [r[0] for r in values if r[0] and s.cell(row=values.index(r) + 1, column=1).font.sz == 13]
    assert "Work orders by primary cause" in titles
    assert "Complaint hotspots" in titles
    flat = {r[0]: r[1] for r in values if r[0] is not None}
    # figures the sheet has no table for (this summary has no case table) are still shown
    assert flat["cells_reporting"] == "6"
    assert flat["poor_cells.browsing"] == "2"
    assert flat["note"] == "=1+1"
    assert flat["Interference"] == 1
    assert flat["Total"] == 4
    hs_header = next(i for i, r in enumerate(values) if r[:2] == ["Ranked by", "Rank"])
    assert values[hs_header][:4] == ["Ranked by", "Rank", "Cell ID", "Complaints"]
    assert "Previous period" not in values[hs_header]  # all-null column left out
    assert values[hs_header + 2][2] == "=B-1"
    per10k = values[hs_header].index("Per 10,000 subscribers")
    assert values[hs_header + 1][per10k] is None  # inf is not a number Excel can hold
    assert values[hs_header + 2][per10k] == 1.234568


def test_workbook_in_chinese(tmp_path):
    from openpyxl import load_workbook

    wo = build()
    path = write_work_orders_xlsx(tmp_path / "w.xlsx", wo, {"note": "x"}, hotspots_frame(),
                                  language="zh")
    wb = load_workbook(path)
    assert wb.sheetnames[:2] == ["汇总", "全部工单"]
    ws = wb["全部工单"]
    header = [c.value for c in ws[1]]
    assert header[:3] == ["排名", "小区ID", "小区名称"]
    assert "主要原因" in header
    causes = {r[header.index("主要原因")] for r in ws.iter_rows(min_row=2, values_only=True)}
    assert causes == {label(c, "zh") for c in wo["primary_cause"].to_list()}
    services = {r[header.index("质差业务")] for r in ws.iter_rows(min_row=2, values_only=True)}
    assert services <= {"浏览", "视频", "游戏", "浏览、视频", "浏览、游戏", "视频、游戏",
                        "浏览、视频、游戏"}
    summary = [r[0] for r in wb["汇总"].iter_rows(values_only=True) if r[0]]
    assert "按主要原因的工单" in summary
    with pytest.raises(ValueError, match="language"):
        write_work_orders_xlsx(tmp_path / "x.xlsx", wo, None, None, language="fr")


def test_workbook_without_work_orders(tmp_path):
    from openpyxl import load_workbook

    wo = build_work_orders(None, kqi_frame().with_columns(pl.lit(False).alias("poor")),
                           cells_frame(), None, Config())
    path = write_work_orders_xlsx(tmp_path / "w.xlsx", wo, None, None)
    assert load_workbook(path).sheetnames == ["Summary"]


# --------------------------------------------------------------------------------------------
# output safety: no MSISDN anywhere, byte-identical CSVs
# --------------------------------------------------------------------------------------------

def complaints_with_msisdn(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cats = ["上网慢", "视频卡顿", "游戏延迟", "无信号", "资费", "billing"]
    return pl.DataFrame({
        "complaint_id": [f"T{i:04d}" for i in range(n)],
        "ts": [datetime(2026, 1, 1) + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 20, n)],
        "lat": 30.0 + rng.uniform(-0.004, 0.014, n),
        "lon": 120.0 + rng.uniform(-0.004, 0.014, n),
        "category": [cats[i % len(cats)] for i in range(n)],
        "msisdn": [f"1{rng.integers(3, 9)}{rng.integers(0, 10**9):09d}" for _ in range(n)],
        "description": [f"=cmd|' /C calc'!A{i}" if i % 7 == 0 else "slow" for i in range(n)],
        "cell_id": [None if i % 5 else "A-2" for i in range(n)],
    })


def write_all(out, complaints: pl.DataFrame, cells: pl.DataFrame, kq: pl.DataFrame) -> None:
    cfg = Config()
    links = link_complaints(complaints, cells, kq, None, cfg)
    hs = hotspots(links, complaints, cells, cfg)
    wo = build_work_orders(diagnosis_frame(), kq, cells, links, cfg)
    kio.write_csv(out / "complaint_links.csv", links)
    kio.write_csv(out / "hotspots.csv", hs)
    kio.write_csv(out / "work_orders.csv", wo)
    kio.write_csv(out / "silent.csv", silent_poor_cells(kq, links))
    summary = {"work_orders": work_order_summary(wo)}
    kio.write_json(out / "summary.json", summary)
    write_work_orders_xlsx(out / "work_orders.xlsx", wo, summary, hs)


def test_no_msisdn_in_any_output(tmp_path):
    comp = complaints_with_msisdn(120, seed=5)
    write_all(tmp_path, comp, cells_frame(), kqi_frame())
    blobs = []
    for f in sorted(tmp_path.rglob("*")):
        if f.is_file():
            blobs.append(f.read_bytes())
            if f.suffix == ".xlsx":
                with zipfile.ZipFile(f) as z:
                    blobs += [z.read(n) for n in z.namelist()]
    assert len(blobs) > 6
    data = b"\n".join(blobs)
    assert b"T0001" in data  # the links are there (the grep can find things)
    for m in comp["msisdn"]:
        assert m.encode() not in data, m


def test_csv_outputs_byte_identical(tmp_path):
    comp = complaints_with_msisdn(80, seed=9)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_all(tmp_path / "a", comp, cells_frame(), kqi_frame())
    write_all(tmp_path / "b", comp.sample(fraction=1.0, shuffle=True, seed=1),
              cells_frame().reverse(), kqi_frame().reverse())
    for name in ("complaint_links.csv", "hotspots.csv", "work_orders.csv", "silent.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    text = (tmp_path / "a" / "work_orders.csv").read_text(encoding="utf-8")
    assert "'=HYPERLINK" in text
    first = pl.read_csv(tmp_path / "a" / "work_orders.csv").row(0, named=True)
    assert (first["rank"], first["cell_id"]) == (1, "A-1")


def test_sheet_titles_never_end_with_an_apostrophe_or_reuse_history():
    from kqi.excel import _sheet_title

    taken: set[str] = set()
    assert _sheet_title("x" * 30 + "'abc", taken) == "x" * 30
    assert _sheet_title("History", taken) == "History (2)"
    t = _sheet_title("x" * 30 + "'abc", taken)
    assert t.endswith("(2)")
    assert "'" not in t


def test_vendor_sheet_names_are_valid_and_unique(tmp_path):
    from openpyxl import load_workbook

    wo = build().with_columns(
        pl.Series("vendor", ["Huawei/ZTE [east]", "huawei/zte [east]", "Nokia", "x" * 40]))
    wb = load_workbook(write_work_orders_xlsx(tmp_path / "w.xlsx", wo, {}, None))
    assert wb.sheetnames[1] == "All orders"
    names = wb.sheetnames[2:]
    assert len({n.lower() for n in names}) == 4
    assert all(len(n) <= 31 and not any(ch in n for ch in "[]:*?/\\") for n in names)
    assert names[0].startswith("Huawei_ZTE")


def test_summary_sheet_shows_every_diagnosis_figure(tmp_path):
    from openpyxl import load_workbook

    summary = {"diagnosis": {"poor_cells": 3, "review": 1, "cause_counts": {"fault": 3},
                             "not_judged": [{"cause": "fault", "missing": ["availability"],
                                             "samples": False, "evidence": ["availability_min"]}],
                             "network": {"basis": "UL floor -115.3 dBm (median of healthy cells)"},
                             "something_new": 7}}
    wb = load_workbook(write_work_orders_xlsx(tmp_path / "w.xlsx", build(), summary, None))
    values = {r[0]: r[1] for r in wb["Summary"].iter_rows(values_only=True) if r[0]}
    assert values["Poor cells diagnosed"] == 3          # a number, stored as a number
    assert values["Causes not judged (KPI columns missing)"] == "fault (no availability)"
    assert values["This network's reference"].startswith("UL floor -115.3 dBm")
    assert values["something_new"] == "7"               # nothing left out


def test_workbook_test_counts_say_their_base(tmp_path):
    """``tests`` counts every test of the cell, ``poor_tests`` only the not-good tests of its
    poor services: side by side, each header names its base, so one is not read as a share of
    the other."""
    from openpyxl import load_workbook

    wo = build()
    assert {"tests", "poor_tests"} <= set(wo.columns)
    for language, headers in (("en", ("Tests (all services)", "Not-good tests (poor services)")),
                            ("zh", ("测试数(全部业务)", "差测试数(质差业务)"))):
        path = write_work_orders_xlsx(tmp_path / f"w_{language}.xlsx", wo, {}, None,
                                      language=language)
        header = [c.value for c in load_workbook(path).worksheets[1][1]]
        assert set(headers) <= set(header), header
