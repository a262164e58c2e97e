"""Pictures of the closed loop: the follow-up sheet, the trend chart and the programme table of
``work_orders.xlsx``; order ids, sparklines and the recovered layer of ``map.html``."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import zipfile
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from kqi.maps.render import RECOVERED_LAYER, render_map

from kqi import words
from kqi.config import Config, OutputConfig
from kqi.excel import FOLLOWUP_SHEET, TRENDS_SHEET, VERDICT_FILLS, write_work_orders_xlsx

HOSTILE = 'Cell </script><img src=x onerror="window.__pwned=1"> & <svg onload=alert(1)>'
DAYS = [dt.date(2026, 11, 8) + dt.timedelta(days=7 * k) for k in range(3)]
RUNS = [f"run{k}" for k in range(3)]
VERDICTS = ["recovered", "worse", "not_recovered", "insufficient_data"]


def work_orders(n: int = 12) -> pl.DataFrame:
    ids = [f"C{i:02d}" for i in range(n)]
    return pl.DataFrame({
        "rank": list(range(1, n + 1)),
        "cell_id": ids,
        "cell_name": [HOSTILE if i == 0 else f"cell {i}" for i in range(n)],
        "vendor": ["ZTE" if i % 2 else "Nokia" for i in range(n)],
        "region": ["r1"] * n,
        "poor_services": ["video;browsing" if i == 1 else "browsing" for i in range(n)],
        "primary_cause": ["interference"] * n,
        "complaints": [0] * n,
        "order_id": [f"WO-{c}" for c in ids],
        "order_status": ["escalated" if i == 0 else "open" for i in range(n)],
        "first_seen": [DAYS[0]] * n,
        "runs_poor": [3 if i == 0 else 1 for i in range(n)],
    }, schema_overrides={"rank": pl.Int32})


def followup_frame() -> pl.DataFrame:
    # the first four listed orders, plus two closed ones no longer on the list (R1, R2)
    return pl.DataFrame({
        "order_id": ["WO-C00", "WO-C01", "WO-C02", "WO-C03", "WO-R1", "WO-R2"],
        "cell_id": ["C00", "C01", "C02", "C03", "R1", "R2"],
        "opened": [DAYS[0]] * 6,
        "good_rate_before": [0.60, 0.70, 0.65, 0.66, 0.62, 0.5],
        "good_rate_after": [0.61, 0.55, 0.66, None, 0.95, 0.9],
        "verdict": ["not_recovered", "worse", "not_recovered", "insufficient_data",
                    "recovered", "recovered"],
        "status": ["open", "open", "open", "open", "closed", "closed"],
        "service": ["browsing"] * 6,
    })


def trend_frame(orders: pl.DataFrame) -> pl.DataFrame:
    rows = []
    pairs = [*zip(orders["order_id"], orders["cell_id"], strict=True), ("WO-R1", "R1")]
    for k, (oid, cid) in enumerate(pairs):
        for j, (run, day) in enumerate(zip(RUNS, DAYS, strict=True)):
            for service, base in (("browsing", 0.6), ("video", 0.9)):
                rows.append({"order_id": oid, "cell_id": cid, "run_id": run, "last_day": day,
                             "service": service, "good_rate": round(base + 0.01 * k + 0.1 * j
                                                                    * (service == "browsing"), 4)})
    return pl.DataFrame(rows)


def programme() -> dict:
    def rec(name: str, orders: int, before: float, after: float) -> dict:
        return {"name": name, "orders": orders, "recovered": 1, "not_recovered": orders - 1,
                "worse": 0, "insufficient_data": 0, "orders_with_tests": orders,
                "good_rate_before": before, "good_rate_after": after, "mean_effect": after - before}

    return {"orders": {"opened": 2, "open": 4, "closed": 2},
            "verdicts": {"recovered": 2, "not_recovered": 2, "worse": 1, "insufficient_data": 1},
            "by_cause": [rec("interference", 6, 0.62, 0.75)],
            "by_vendor": [rec("Nokia", 2, 0.6, 0.9), rec("=ZTE", 4, 0.63, 0.7)],
            "by_region": [rec("r1", 6, 0.62, 0.75)]}


# ---- workbook ------------------------------------------------------------------------------------

@pytest.fixture
def workbook(tmp_path: Path):
    from openpyxl import load_workbook

    wo = work_orders()
    summary = {"note": "x", "programme": programme()}
    path = write_work_orders_xlsx(tmp_path / "w.xlsx", wo, summary, None,
                                  followup=followup_frame(), trend=trend_frame(wo))
    return load_workbook(path)


def test_followup_sheet_has_table_and_verdict_colours(workbook) -> None:
    assert workbook.sheetnames[:4] == ["Summary", "All orders", FOLLOWUP_SHEET, TRENDS_SHEET]
    ws = workbook[FOLLOWUP_SHEET]
    header = [c.value for c in ws[1]]
    # every column, in words; the printed key columns first (kqi.excel.FOLLOWUP_PRINT)
    assert sorted(header) == sorted(words.header(c) for c in followup_frame().columns)
    assert header[:2] == ["Order ID", "Cell ID"]
    assert ws.freeze_panes == "B2"
    (table,) = ws.tables.values()          # an Excel table: banded rows, filter buttons
    assert table.ref == ws.dimensions
    col = header.index("Verdict") + 1
    seen = {}
    for r in range(2, ws.max_row + 1):
        cell = ws.cell(row=r, column=col)
        seen[cell.value] = cell.fill.fgColor.rgb[-6:]
    verdict_words = words.value_words("verdict")
    assert seen == {verdict_words[v]: VERDICT_FILLS[v] for v in VERDICTS}
    assert VERDICT_FILLS["recovered"].startswith("C6")   # green
    assert ws.cell(row=2, column=header.index("Good rate before") + 1).number_format == "0.0%"


def test_trend_labels_and_followup_basis_in_chinese(tmp_path: Path) -> None:
    """In a zh workbook the trend's series name their service and the follow-up its control
    basis in Chinese."""
    from openpyxl import load_workbook

    wo = work_orders()
    followup = followup_frame().with_columns(pl.Series("control_basis", [
        "12 neighbours", "1 neighbour", "network", None, "3 neighbours", "network"]))
    path = write_work_orders_xlsx(tmp_path / "zh.xlsx", wo, {"programme": programme()}, None,
                                  followup=followup, trend=trend_frame(wo), language="zh")
    wb = load_workbook(path)
    assert wb.sheetnames[:4] == ["汇总", "全部工单", "跟踪复核", "趋势"]
    labels = [r[0] for r in wb["趋势"].iter_rows(min_row=2, max_row=3, values_only=True)]
    assert labels == ["WO-C00 (浏览)", "WO-C01 (视频)"]
    # the chart reads its series from the Chinese-named sheet
    with zipfile.ZipFile(path) as z:
        charts = [z.read(n).decode() for n in z.namelist() if n.startswith("xl/charts/chart")]
    assert charts
    assert all("'趋势'!" in c or "趋势!" in c for c in charts)
    ws = wb["跟踪复核"]
    header = [c.value for c in ws[1]]
    shown = {r[header.index("对照依据")] for r in ws.iter_rows(min_row=2, values_only=True)}
    assert shown == {"12 个邻区", "1 个邻区", "全网", None, "3 个邻区"}


def test_trend_chart_references_its_data_block(workbook) -> None:
    ws = workbook[TRENDS_SHEET]
    rows = list(ws.iter_rows(values_only=True))
    header = rows[0]
    assert header[0] == words.header("order (service)")
    # one column per run (printable: the block stays narrow), one row per order
    assert list(header[1:]) == [d.isoformat() for d in DAYS]
    # the ten best-ranked orders, in rank order; C01's first poor service is video
    assert [r[0] for r in rows[1:11]] == [f"WO-C{i:02d} ({'video' if i == 1 else 'browsing'})"
                                          for i in range(10)]
    assert rows[1][1] == pytest.approx(0.6)
    assert rows[1][3] == pytest.approx(0.8)
    assert ws._charts, "no chart"
    chart = ws._charts[0]
    assert 0 < len(chart.series) <= 10
    assert chart.y_axis.scaling.min == 0
    assert chart.y_axis.scaling.max == 1
    assert chart.y_axis.number_format.formatCode == "0%"
    assert chart.x_axis.title is not None
    assert chart.y_axis.title is not None
    assert chart.title is not None
    first = chart.series[0]
    assert first.val.numRef.f == f"'{TRENDS_SHEET}'!$B$2:$D$2"
    cat = first.cat.numRef or first.cat.strRef
    assert cat.f == f"'{TRENDS_SHEET}'!$B$1:$D$1"
    assert first.tx.strRef.f == f"'{TRENDS_SHEET}'!A2"
    last = chart.series[-1]
    assert last.val.numRef.f == f"'{TRENDS_SHEET}'!$B$11:$D$11"
    # series told apart by colour
    colours = [s.graphicalProperties.line.solidFill.srgbClr for s in chart.series]
    assert len(set(colours)) == len(colours)


def test_programme_table_on_summary(workbook) -> None:
    ws = workbook["Summary"]
    values = [[c.value for c in r] for r in ws.iter_rows()]
    assert not any(isinstance(v, str) and v.startswith("programme") for r in values for v in r)
    head = next(i for i, r in enumerate(values) if r[0] == "Scope" and r[1] == "Orders")
    assert values[head][:11] == ["Scope", "Orders", "Recovered", "Not recovered", "Worse",
                                 "Insufficient data", "Orders with tests", "Good rate before",
                                 "Good rate after", "Change", "Mean effect"]
    table = {r[0]: r for r in values[head + 1:] if r[0]}
    assert table["All cells"][1:6] == [6, 2, 2, 1, 1]
    nokia = table["Vendor: Nokia"]
    assert nokia[7] == pytest.approx(0.6)
    assert nokia[8] == pytest.approx(0.9)
    assert nokia[9] == pytest.approx(0.3)
    assert "Vendor: =ZTE" in table   # names as written, stored as text
    assert ws.cell(row=head + 2, column=8).number_format == "0.0%"
    states = next(i for i, r in enumerate(values) if r[0] == "Order state")
    assert values[states + 1][:2] == ["opened", 2]
    # a figure the sheet has no table for is still shown
    assert {r[0]: r[1] for r in values}["note"] == "x"


def test_workbook_without_loop_inputs_is_unchanged(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    wb = load_workbook(write_work_orders_xlsx(tmp_path / "w.xlsx", work_orders(), {}, None))
    assert wb.sheetnames == ["Summary", "All orders", "Nokia", "ZTE"]


# ---- map -----------------------------------------------------------------------------------------

DATA_BLOCK = re.compile(r'<script type="application/json" id="(\w+)_data">(.*?)</script>', re.S)


def render(tmp_path: Path, **kw) -> str:
    wo = work_orders()
    ids = [*wo["cell_id"], "R1", "R2", "H1"]
    cells = pl.DataFrame({
        "cell_id": ids,
        "site_id": [f"S{i // 3}" for i in range(len(ids))],
        "cell_name": [HOSTILE if c == "C00" else f"name {c}" for c in ids],
        "lat": [31.0 + 0.002 * i for i in range(len(ids))],
        "lon": [121.0 + 0.002 * (i % 3) for i in range(len(ids))],
        "azimuth": [120.0 * (i % 3) for i in range(len(ids))],
    })
    # R2 (recovered) has no position: not drawn
    cells = cells.with_columns(pl.when(pl.col("cell_id") == "R2").then(None)
                               .otherwise(pl.col("lat")).alias("lat"))
    cfg = replace(Config(), output=OutputConfig(map_tiles="none", map_assets=""))
    out = render_map(tmp_path / "map.html", cells=cells, work_orders=wo, config=cfg,
                     trend=trend_frame(wo), followup=followup_frame(), **kw)
    return out.read_text(encoding="utf-8")


def features(page: str) -> list[dict]:
    blocks = [json.loads(m.group(2)) for m in DATA_BLOCK.finditer(page)]
    return [f for b in blocks for f in b["features"]]


def test_map_popups_carry_order_and_sparkline(tmp_path: Path) -> None:
    page = render(tmp_path)
    by_cell = {}
    for f in features(page):
        lines = f["properties"]["l"].split("\n")
        cell = next(x for x in lines if x.startswith("cell "))[5:]
        by_cell.setdefault(cell, []).append(lines)
    c00 = by_cell["C00"][0]
    assert c00[0] == html.escape(HOSTILE)
    assert "order WO-C00 · escalated · poor in 3 runs" in c00
    svg = next(x for x in c00 if x.startswith("<svg"))
    assert svg.endswith("</svg>")
    assert svg.count("<polyline") == 1
    assert ">60%</text>" in svg
    assert ">80%</text>" in svg
    assert ">browsing</text>" in svg
    # two poor services: two lines, in the work order's order
    c01 = next(x for x in by_cell["C01"][0] if x.startswith("<svg"))
    assert c01.count("<polyline") == 2
    assert c01.index(">video<") < c01.index(">browsing<")
    # no trend, no sparkline
    assert not any("<svg" in x for x in by_cell["H1"][0])
    # the SVG is markup built from numbers and fixed words only
    assert not re.search(r"on\w+=|script|href", svg, re.I)


def test_recovered_layer(tmp_path: Path) -> None:
    page = render(tmp_path)
    names = re.findall(r'"(Recovered \(closed\) orders \(\d+\))"', page)
    assert names == [f"{RECOVERED_LAYER} (1)"]
    blocks = {m.group(1): json.loads(m.group(2)) for m in DATA_BLOCK.finditer(page)}
    layer = [b for b in blocks.values()
             if any("recovered:" in f["properties"]["l"] for f in b["features"])]
    assert len(layer) == 1
    assert len(layer[0]["features"]) == 1
    props = layer[0]["features"][0]["properties"]
    assert "recovered: 62 % -&gt; 95 % (browsing)" in props["l"].split("\n")
    assert "order WO-R1 · closed" in props["l"].split("\n")
    assert "recovered, order closed (1)" in json.loads(
        re.search(r"div.innerHTML = (\".*?\");", page).group(1))


def test_map_hostile_text_stays_escaped(tmp_path: Path) -> None:
    page = render(tmp_path)
    assert "<img" not in page
    assert "<svg" not in page
    assert len(re.findall(r"<script\b", page, re.I)) == len(re.findall(r"</script", page, re.I))
    for f in features(page):
        text = f["properties"]["l"] + f["properties"]["t"]
        assert "<img" not in text
        assert "onerror" not in text.replace("onerror=&quot;", "")
        for line in f["properties"]["l"].split("\n"):
            if not line.startswith("<svg"):
                assert "<" not in line


def test_map_without_loop_inputs(tmp_path: Path) -> None:
    wo = work_orders()
    cells = pl.DataFrame({"cell_id": ["C00"], "lat": [31.0], "lon": [121.0], "azimuth": [0.0]})
    cfg = replace(Config(), output=OutputConfig(map_tiles="none", map_assets=""))
    page = render_map(tmp_path / "m.html", cells=cells, work_orders=wo.drop(
        "order_id", "order_status", "runs_poor"), config=cfg).read_text(encoding="utf-8")
    assert RECOVERED_LAYER not in page
    lines = [x for f in features(page) for x in f["properties"]["l"].split("\n")]
    assert "work order #1" in lines
    assert not any(x.startswith(("order ", "<svg")) for x in lines)
