"""The work-order workbook (``work_orders.xlsx``): a summary sheet and one sheet per vendor.

Every sheet has a frozen header row, filters, column widths fitted to the content, number formats,
and a red-to-green colour scale on good-rate columns. Text is always stored as text: a value that
a spreadsheet would run as a formula (starting with ``= + - @``) gets a leading apostrophe, like in
the CSV outputs, and its cell type is forced to string.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from kqi.io import CONTROL, inert_text, write_workbook
from kqi.summary import CASE_KEYS, case_frame
from kqi.workorders import work_order_summary

log = logging.getLogger(__name__)

SUMMARY_SHEET = "Summary"
ALL_SHEET = "All orders"
FOLLOWUP_SHEET = "Follow-up"
TRENDS_SHEET = "Trends"
#: follow-up verdict -> cell fill (Excel's good / bad / neutral styles, and grey for no data)
VERDICT_FILLS: dict[str, str] = {
    "recovered": "C6EFCE",
    "worse": "FFC7CE",
    "not_recovered": "FFEB9C",
    "insufficient_data": "D9D9D9",
}
#: orders drawn in the trend chart (the highest-ranked ones)
TREND_ORDERS = 10
#: long free-text columns, wrapped rather than cut off
_WRAPPED = ("evidence", "action", "secondary_causes", "complaint_ids", "review_note")
UNKNOWN_VENDOR = "Unknown vendor"
#: colours of the good-rate scale: low (red), middle (yellow), high (green)
SCALE_COLOURS = ("F8696B", "FFEB84", "63BE7B")
_MAX_WIDTH = 60
_FLOAT_DIGITS = 6
#: first column of the summary sheet's right-hand block (D)
_SUMMARY_RIGHT_COLUMN = 4
_MIN_WIDTH = 6
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
# characters XML 1.0 cannot carry; openpyxl refuses them
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

#: column name -> Excel number format
_NUMBER_FORMATS: dict[str, str] = {
    "priority_score": "0.00",
    "distance_m": "0",
    "per_10k": "0.00",
    "subscribers": "#,##0",
    "lat": "0.000000",
    "lon": "0.000000",
    "rrc_users_busy": "0",
    "radius_m": "0",
}


def _text(value: str) -> str:
    return inert_text(_ILLEGAL.sub("", value)) or ""


def _put(ws: Any, row: int, col: int, value: Any) -> Any:
    """Write one value; strings are stored as strings whatever they look like."""
    cell = ws.cell(row=row, column=col)
    if isinstance(value, str):
        cell.value = _text(value)
        cell.data_type = "s"  # openpyxl would otherwise read "=..." as a formula
    elif isinstance(value, float):
        # NaN and inf stay empty; the rest is rounded like the CSVs (float_precision=6), so that no long
        # digit run (an accidental phone-number look-alike) or float noise reaches the workbook
        cell.value = round(value, _FLOAT_DIGITS) if math.isfinite(value) else None
    else:
        cell.value = value
    return cell


def _display_width(text: str) -> int:
    """Width in Latin characters: CJK and other wide characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _sheet_title(name: str, taken: set[str]) -> str:
    """A valid, unique sheet name: no []:*?/\\, at most 31 characters, no apostrophe at either end
    (Excel repairs such a file), and never Excel's reserved "History"."""
    base = _SHEET_BAD.sub("_", re.sub(CONTROL, "", " ".join(name.split()))).strip("'").strip() \
        or UNKNOWN_VENDOR
    base = base[:31].rstrip("'").rstrip() or UNKNOWN_VENDOR
    title, k = base, 2
    while title.lower() in taken or title.lower() == "history":
        suffix = f" ({k})"
        title = base[: 31 - len(suffix)].rstrip("'").rstrip() + suffix
        k += 1
    taken.add(title.lower())
    return title


def _fit_widths(ws: Any, widths: dict[int, int]) -> None:
    from openpyxl.utils import get_column_letter

    for col, width in widths.items():
        ws.column_dimensions[get_column_letter(col)].width = max(_MIN_WIDTH, min(_MAX_WIDTH, width + 2))


def _number_format(name: str, dtype: pl.DataType) -> str | None:
    if name.startswith("good_rate") or name in ("poor_share", "share"):
        return "0.0%"
    if name in _NUMBER_FORMATS:
        return _NUMBER_FORMATS[name]
    if dtype.is_integer():
        return "0"
    if dtype.is_float():
        return "0.000"
    return None


def _write_table(ws: Any, df: pl.DataFrame, top: int = 1, left: int = 1,
                 widths: dict[int, int] | None = None) -> tuple[int, int]:
    """Write ``df`` with a bold header at (top, left); return (last row, last column)."""
    from openpyxl.styles import Font, PatternFill

    widths = {} if widths is None else widths
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDEBF7")
    for j, name in enumerate(df.columns):
        cell = _put(ws, top, left + j, name)
        cell.font = bold
        cell.fill = fill
        widths[left + j] = max(widths.get(left + j, 0), len(name))
    formats = [_number_format(n, t) for n, t in df.schema.items()]
    for i, row in enumerate(df.iter_rows(), start=top + 1):
        for j, raw in enumerate(row):
            value = ("yes" if raw else "no") if isinstance(raw, bool) else raw
            cell = _put(ws, i, left + j, value)
            if formats[j] is not None and not isinstance(value, str):
                cell.number_format = formats[j]
            shown = _display_width(value) if isinstance(value, str) else len(f"{value}") if value is not None else 0
            widths[left + j] = max(widths.get(left + j, 0), min(shown, _MAX_WIDTH))
    return top + df.height, left + df.width - 1


def _colour_scale(ws: Any, df: pl.DataFrame, top: int, left: int,
                  thresholds: Mapping[str, float] | None = None) -> None:
    """Red-yellow-green on good-rate columns; anchored at the service's threshold (yellow) when
    known, so that a rate above the threshold is never red just for being the column's lowest."""
    from openpyxl.formatting.rule import ColorScaleRule
    from openpyxl.utils import get_column_letter

    if df.height == 0:
        return
    low, mid, high = SCALE_COLOURS
    for j, name in enumerate(df.columns):
        if name.startswith("good_rate"):
            letter = get_column_letter(left + j)
            ref = f"{letter}{top + 1}:{letter}{top + df.height}"
            t = (thresholds or {}).get(name.removeprefix("good_rate_"))
            if t is not None:
                rule = ColorScaleRule(start_type="num", start_value=max(0.0, t - 0.25),
                                      start_color=low, mid_type="num", mid_value=t, mid_color=mid,
                                      end_type="num", end_value=1.0, end_color=high)
            else:
                rule = ColorScaleRule(start_type="min", start_color=low, mid_type="percentile",
                                      mid_value=50, mid_color=mid, end_type="max", end_color=high)
            ws.conditional_formatting.add(ref, rule)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(_flatten(value, name + "."))
        elif isinstance(value, list | tuple):
            if all(isinstance(v, str | int | float) for v in value):
                rows.append((name, "; ".join(str(v) for v in value)))
            else:
                for k, v in enumerate(value):
                    if isinstance(v, Mapping):
                        rows.extend(_flatten(v, f"{name}[{k}]."))
                    else:
                        rows.append((f"{name}[{k}]", str(v)))
        else:
            rows.append((name, value))
    return rows


#: summary entries that are lists of ids or per-cluster profiles: in the CSVs, not on this sheet
_SUMMARY_SKIP = {"silent_cell_ids", "clusters", "by_method"}


def _other_figures(summary: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Item / value rows for the figures beside the case table, readable by a person."""
    rows: list[tuple[str, Any]] = []
    diag_value = summary.get("diagnosis")
    diag: Mapping[str, Any] = diag_value if isinstance(diag_value, Mapping) else {}
    proposals = diag.get("proposals") or {}
    rest = dict(summary)
    if diag:
        rest["diagnosis"] = {k: v for k, v in diag.items() if k not in ("proposals", "cause_counts")}
    for item, value in _flatten(rest):
        if any(part.split("[")[0] in _SUMMARY_SKIP for part in item.split(".")):
            continue
        rows.append((item, value if isinstance(value, int | float | str) or value is None
                     else str(value)))
    for name, p in proposals.items():
        if isinstance(p, Mapping) and "proposed" in p:
            rows.append((f"proposed {name} (not applied)",
                         f"{p.get('current')} -> {p['proposed']}: {p.get('basis', '')}"))
    return rows


def _summary_sheet(ws: Any, work_orders: pl.DataFrame, summary: Mapping[str, Any],
                   hotspots: pl.DataFrame | None) -> None:
    """The case table (scope x counts) top left, then the other figures as item / value rows;
    causes, silent cells and hotspots to the right, so the counts are on the first screen."""
    from openpyxl.styles import Font

    title = Font(bold=True, size=13)
    widths: dict[int, int] = {}
    _put(ws, 1, 1, "Case summary").font = title
    case = case_frame(summary)
    row = 2
    skip: set[str] = set()
    if case is not None:
        end, _ = _write_table(ws, case, top=2, left=1, widths=widths)
        share = case.columns.index("poor share") + 1
        for r in range(3, end + 1):
            ws.cell(row=r, column=share).number_format = "0.00%"
        row = end + 2
        skip = set(CASE_KEYS)
    programme = summary.get("programme")
    left_width = case.width if case is not None else 0
    if isinstance(programme, Mapping):
        row, width = _programme_block(ws, programme, row, widths)
        left_width = max(left_width, width)
        skip.add("programme")   # shown as tables above, not as programme.* dotted rows
    other = _other_figures({k: v for k, v in summary.items() if k not in skip})
    for k, (item, value) in enumerate(other, start=row):
        _put(ws, k, 1, item)
        _put(ws, k, 2, value)
        widths[1] = max(widths.get(1, 0), len(item))
        widths[2] = max(widths.get(2, 0), min(len(str(value)), _MAX_WIDTH))

    # the right-hand block starts after the widest table on the left
    left = _SUMMARY_RIGHT_COLUMN if left_width == 0 else max(_SUMMARY_RIGHT_COLUMN, left_width + 2)
    _put(ws, 1, left, "Work orders by primary cause").font = title
    figures = work_order_summary(work_orders)
    counts: dict[str, int] = figures["causes"]  # type: ignore[assignment]
    silent = figures["silent_poor_cells"]
    cause_df = pl.DataFrame({
        "primary_cause": [*counts.keys(), "total"],
        "work_orders": [*counts.values(), work_orders.height],
    }, schema={"primary_cause": pl.String, "work_orders": pl.Int64})
    end, _ = _write_table(ws, cause_df, top=2, left=left, widths=widths)
    row = end + 1
    _put(ws, row, left, "silent poor cells (no complaint yet)")
    _put(ws, row, left + 1, silent)
    widths[left] = max(widths.get(left, 0), 36)
    row += 2

    if hotspots is not None and hotspots.height:
        _put(ws, row, left, "Complaint hotspots").font = title
        row += 1
        shown = hotspots.select([c for c in hotspots.columns
                                 if hotspots[c].null_count() < hotspots.height])
        _write_table(ws, shown, top=row, left=left, widths=widths)
    _fit_widths(ws, widths)


_PROGRAMME_DIMS = (("by_cause", "cause"), ("by_vendor", "vendor"), ("by_region", "region"))
_PROGRAMME_COUNTS = ("orders", "recovered", "not_recovered", "worse", "insufficient_data",
                     "orders_with_tests")
_SIGNED_PERCENT = "+0.0%;-0.0%;0.0%"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _programme_table(programme: Mapping[str, Any]) -> pl.DataFrame:
    """Before / after rows of the follow-up programme: all orders, then each cause, vendor and
    region (the ``by_*`` lists of ``summary["programme"]``)."""
    rows: list[dict[str, Any]] = []

    def add(scope: str, rec: Mapping[str, Any]) -> None:
        before, after = _num(rec.get("good_rate_before")), _num(rec.get("good_rate_after"))
        row: dict[str, Any] = {"scope": scope}
        for key in _PROGRAMME_COUNTS:
            value = _num(rec.get(key))
            row[key.replace("_", " ")] = int(value) if value is not None else None
        row.update({"good rate before": before, "good rate after": after,
                    "change": after - before if before is not None and after is not None else None,
                    "mean effect": _num(rec.get("mean_effect"))})
        rows.append(row)

    verdicts = programme.get("verdicts")
    overall = programme.get("all") if isinstance(programme.get("all"), Mapping) else None
    if overall is not None:
        add("all", overall)
    elif isinstance(verdicts, Mapping):
        counts = {k: v for k, v in verdicts.items() if _num(v) is not None}
        by_cause = [r for r in programme.get("by_cause") or [] if isinstance(r, Mapping)]
        tested = [v for r in by_cause if (v := _num(r.get("orders_with_tests"))) is not None]
        # each order has one cause: the causes' orders with tests add up to all of them
        with_tests = int(sum(tested)) if by_cause and len(tested) == len(by_cause) else None
        add("all", {**counts, "orders": sum(counts.values()), "orders_with_tests": with_tests})
    for key, dim in _PROGRAMME_DIMS:
        for rec in programme.get(key) or []:
            if isinstance(rec, Mapping):
                add(f"{dim}: {rec.get('name')}", rec)
    schema: dict[str, Any] = {"scope": pl.String,
                              **{k.replace("_", " "): pl.Int64 for k in _PROGRAMME_COUNTS},
                              "good rate before": pl.Float64, "good rate after": pl.Float64,
                              "change": pl.Float64, "mean effect": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def _programme_block(ws: Any, programme: Mapping[str, Any], row: int,
                     widths: dict[int, int]) -> tuple[int, int]:
    """The closed loop on the summary sheet: orders by state, then the before / after table.
    Returns the next free row and the number of columns used."""
    from openpyxl.styles import Font, PatternFill

    _put(ws, row, 1, "Follow-up programme (closed loop)").font = Font(bold=True, size=13)
    row += 1
    orders = programme.get("orders")
    if isinstance(orders, Mapping) and orders:
        states = pl.DataFrame({"order state": [str(k) for k in orders],
                               "orders": [int(v) if _num(v) is not None else None
                                          for v in orders.values()]},
                              schema={"order state": pl.String, "orders": pl.Int64})
        end, _ = _write_table(ws, states, top=row, left=1, widths=widths)
        row = end + 2
    table = _programme_table(programme)
    used = 2
    if table.height:
        used = table.width
        end, _ = _write_table(ws, table, top=row, left=1, widths=widths)
        for j, name in enumerate(table.columns, start=1):
            fmt = {"good rate before": "0.0%", "good rate after": "0.0%",
                   "change": _SIGNED_PERCENT, "mean effect": _SIGNED_PERCENT}.get(name)
            if fmt is not None:
                for r in range(row + 1, end + 1):
                    ws.cell(row=r, column=j).number_format = fmt
            colour = VERDICT_FILLS.get(name.replace(" ", "_"))
            if colour is not None:   # the verdict headers in the verdict colours
                ws.cell(row=row, column=j).fill = PatternFill("solid", fgColor=colour)
        row = end + 2
    return row, used


#: line colours of the trend chart's series (distinct, colour-blind-safe: Okabe-Ito, then Tol)
_SERIES_COLOURS = ("0072B2", "E69F00", "009E73", "D55E00", "CC79A7", "56B4E9", "F0E442",
                   "000000", "882255", "44AA99")


def _print_setup(sheet: Any, *, title_row: bool = True, one_page: bool = False) -> None:
    """Print landscape on A4, fitted to the page width (as many pages down as needed, or one
    page in all), the header row repeated on every page."""
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 1 if one_page else 0
    if title_row:
        sheet.print_title_rows = "1:1"


def _order_sheet(sheet: Any, table: pl.DataFrame, thresholds: Mapping[str, float]) -> None:
    """A list of work orders: header, filters, frozen rank and cell, widths, wrapped long text."""
    from openpyxl.styles import Alignment

    widths: dict[int, int] = {}
    _write_table(sheet, table, widths=widths)
    _fit_widths(sheet, widths)
    sheet.freeze_panes = "C2"
    if table.height:
        sheet.auto_filter.ref = sheet.dimensions
    _colour_scale(sheet, table, top=1, left=1, thresholds=thresholds)
    wrap = Alignment(wrap_text=True, vertical="top")
    for j, name in enumerate(table.columns, start=1):
        if name in _WRAPPED:
            for row in sheet.iter_rows(min_row=2, min_col=j, max_col=j):
                row[0].alignment = wrap
    _print_setup(sheet)


def _followup_sheet(sheet: Any, followup: pl.DataFrame) -> None:
    """The follow-up verdicts as a table: frozen header, filters, verdict cells in colour."""
    from openpyxl.styles import PatternFill

    widths: dict[int, int] = {}
    _write_table(sheet, followup, widths=widths)
    _fit_widths(sheet, widths)
    sheet.freeze_panes = "B2" if followup.columns[:1] == ["order_id"] else "A2"
    _print_setup(sheet)
    if followup.height:
        sheet.auto_filter.ref = sheet.dimensions
    if "verdict" not in followup.columns:
        return
    col = followup.columns.index("verdict") + 1
    fills = {v: PatternFill("solid", fgColor=c) for v, c in VERDICT_FILLS.items()}
    for r, verdict in enumerate(followup["verdict"].cast(pl.String).to_list(), start=2):
        if verdict in fills:
            sheet.cell(row=r, column=col).fill = fills[verdict]


def _trend_series(trend: pl.DataFrame, work_orders: pl.DataFrame,
                  followup: pl.DataFrame | None = None, limit: int = TREND_ORDERS) -> pl.DataFrame:
    """Wide table for the chart: ``last_day`` and one good-rate column per order (the ``limit``
    best-ranked orders; orders no longer on the list come after, by id), one row per run.

    Each order is one series: its first poor service (work-order ``poor_services``) that has a
    trend, else the service its follow-up judged, else the service it starts worst in.
    """
    t = trend.select(
        pl.col("order_id").cast(pl.String), pl.col("cell_id").cast(pl.String),
        pl.col("run_id").cast(pl.String), pl.col("last_day").cast(pl.Date),
        pl.col("service").cast(pl.String), pl.col("good_rate").cast(pl.Float64).fill_nan(None),
    ).filter(pl.col("order_id").is_not_null() & pl.col("last_day").is_not_null())
    if t.height == 0:
        return pl.DataFrame()
    cols = [c for c in ("order_id", "rank", "poor_services") if c in work_orders.columns]
    if "order_id" in cols and "rank" in cols:
        wo = (work_orders.select(pl.col("order_id").cast(pl.String),
                                 pl.col("rank").cast(pl.Int64),
                                 (pl.col("poor_services").cast(pl.String) if "poor_services" in cols
                                  else pl.lit(None, pl.String)).alias("poor_services"))
              .filter(pl.col("order_id").is_not_null())
              .sort("rank").unique("order_id", keep="first"))
    else:
        wo = pl.DataFrame(schema={"order_id": pl.String, "rank": pl.Int64,
                                  "poor_services": pl.String})
    # one service per order: its first listed poor service with a trend, else its worst start
    pos = (wo.select("order_id", pl.col("poor_services").fill_null("").str.split(";")
                     .alias("service"))
           .with_columns(pl.int_ranges(pl.col("service").list.len()).alias("_pos"))
           .explode("service", "_pos")
           .with_columns(pl.col("service").str.strip_chars())
           .filter(pl.col("service") != ""))
    if followup is not None and {"order_id", "service"} <= set(followup.columns):
        # the service a follow-up judged (closed orders are no longer on the work-order list)
        pos = pl.concat([pos, followup.select(
            pl.col("order_id").cast(pl.String), pl.col("service").cast(pl.String),
            pl.lit(10_000, pl.Int64).alias("_pos")).drop_nulls()])
    pos = pos.sort("_pos").unique(["order_id", "service"], keep="first")
    first = (t.sort("last_day").group_by("order_id", "service", maintain_order=True)
             .agg(pl.col("good_rate").drop_nulls().first().alias("first_rate"))
             .join(pos, on=["order_id", "service"], how="left")
             .join(wo.select("order_id", "rank"), on="order_id", how="left"))
    pick = (first.sort("order_id", "_pos", "first_rate", "service", nulls_last=True)
            .unique("order_id", keep="first")
            .sort("rank", "order_id", nulls_last=True)
            .head(limit))
    chosen = t.join(pick.select("order_id", "service", "rank"), on=["order_id", "service"])
    labels = {r["order_id"]: f"{r['order_id']} ({r['service']})" for r in pick.iter_rows(named=True)}
    wide = (chosen.sort("last_day").group_by("last_day", "order_id", maintain_order=True)
            .agg(pl.col("good_rate").last())
            .pivot(on="order_id", index="last_day", values="good_rate")
            .sort("last_day"))
    order = [o for o in pick["order_id"].to_list() if o in wide.columns]
    return wide.select("last_day", *order).rename(labels)


def _trends_sheet(sheet: Any, trend: pl.DataFrame, work_orders: pl.DataFrame,
                  followup: pl.DataFrame | None = None) -> int:
    """The good-rate per run of the top orders: a data block (A1) and a line chart beside it.
    Returns the number of series drawn."""
    from openpyxl.chart import LineChart, Reference

    wide = _trend_series(trend, work_orders, followup)
    if wide.width < 2 or wide.height == 0:
        _put(sheet, 1, 1, "no trend for the listed orders")
        return 0
    # one row per order, one column per run: narrow enough to print beside nothing, the chart
    # below it at the page's width
    runs = [d.isoformat() for d in wide.get_column(wide.columns[0]).to_list()]
    block = pl.DataFrame({"order (service)": wide.columns[1:],
                          **{run: [wide[c][k] for c in wide.columns[1:]] for k, run in enumerate(runs)}},
                         schema={"order (service)": pl.String, **dict.fromkeys(runs, pl.Float64)})
    widths: dict[int, int] = {}
    end, last_col = _write_table(sheet, block, widths=widths)
    for r in range(2, end + 1):
        for c in range(2, last_col + 1):
            sheet.cell(row=r, column=c).number_format = "0.0%"
    _fit_widths(sheet, widths)
    sheet.freeze_panes = "B2"

    _print_setup(sheet, one_page=True)   # the block and its chart on one page
    chart = LineChart()
    chart.title = f"Good rate per run, top {wide.width - 1} work orders"
    chart.height, chart.width = 13, 24   # cm: room for a ten-entry legend below the plot
    chart.legend.position = "b"   # below the plot: a legend on the right squeezes it
    chart.y_axis.title = "good rate"
    chart.y_axis.scaling.min = 0.0
    chart.y_axis.scaling.max = 1.0
    chart.y_axis.majorUnit = 0.2
    chart.y_axis.number_format = "0%"
    # one tick per run (a category axis; a date axis would tick every day between runs)
    chart.x_axis.title = "run (last day)"
    # openpyxl >= 3.1 hides axes unless told otherwise
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    data = Reference(sheet, min_col=1, max_col=last_col, min_row=2, max_row=end)
    chart.add_data(data, titles_from_data=True, from_rows=True)
    chart.set_categories(Reference(sheet, min_col=2, max_col=last_col, min_row=1, max_row=1))
    for k, series in enumerate(chart.series):
        colour = _SERIES_COLOURS[k % len(_SERIES_COLOURS)]
        series.smooth = False
        series.graphicalProperties.line.solidFill = colour
        series.graphicalProperties.line.width = 22_000   # EMU, about 1.75 pt
        series.marker.symbol = "circle"
        series.marker.graphicalProperties.solidFill = colour
        series.marker.graphicalProperties.line.solidFill = colour
    # below the data block: the block is as wide as ten order ids, the chart would print tiny
    sheet.add_chart(chart, f"A{end + 3}")
    return wide.width - 1


def write_work_orders_xlsx(
    path: str | Path,
    work_orders: pl.DataFrame,
    summary: Mapping[str, Any] | None,
    hotspots: pl.DataFrame | None = None,
    *,
    vendor_columns: Sequence[str] | None = None,
    followup: pl.DataFrame | None = None,
    trend: pl.DataFrame | None = None,
) -> Path:
    """Write ``work_orders.xlsx`` atomically.

    Parameters
    ----------
    path : str or pathlib.Path
        Target file; written to a temporary file beside it, then renamed.
    work_orders : polars.DataFrame
        Output of :func:`kqi.workorders.build_work_orders` (sorted by rank).
    summary : mapping or None
        The case table (``summary.json`` content): shown flattened as item / value rows.
    hotspots : polars.DataFrame or None
        Output of :func:`kqi.complaints.hotspots`; all-empty columns are left out.
    vendor_columns : sequence of str, optional
        Columns of the vendor sheets, in order; default all work-order columns except ``vendor``.
    followup : polars.DataFrame, optional
        The follow-up verdicts (``followup.csv`` content, ``verdict`` column coloured): written as
        the ``Follow-up`` sheet as they are.
    trend : polars.DataFrame, optional
        ``order_id, cell_id, run_id, last_day`` (date), ``service, good_rate``: one row per order
        x run x service. The ``Trends`` sheet charts the good rate per run of the
        :data:`TREND_ORDERS` best-ranked orders (``rank``/``order_id`` of ``work_orders``; one
        series per order, its first poor service), from a data block on the same sheet.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    Sheets: ``Summary`` (case table, the follow-up programme's before / after table when
    ``summary["programme"]`` exists, work orders per cause, silent cells, hotspots), ``All orders``
    in rank order, ``Follow-up`` and ``Trends`` when given, then one sheet per vendor (sorted by name; cells without a vendor go to ``Unknown vendor``), rows sorted by
    region, then rank, for dispatch.
    """
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = SUMMARY_SHEET
    _summary_sheet(ws, work_orders, summary or {}, hotspots)
    _print_setup(ws, title_row=False)

    thresholds = (summary or {}).get("rule", {}).get("thresholds", {}) if summary else {}
    taken = {SUMMARY_SHEET.lower(), ALL_SHEET.lower(), FOLLOWUP_SHEET.lower(),
             TRENDS_SHEET.lower()}
    if work_orders.height:
        # the whole list in priority order, for whoever plans the week before dispatch by vendor
        sheet = wb.create_sheet(ALL_SHEET)
        _order_sheet(sheet, work_orders, thresholds)
    if followup is not None and followup.width:
        _followup_sheet(wb.create_sheet(FOLLOWUP_SHEET), followup)
    needed = {"order_id", "cell_id", "run_id", "last_day", "service", "good_rate"}
    if trend is not None and trend.height:
        missing = sorted(needed - set(trend.columns))
        if missing:
            log.warning("workbook: trend has no column %s; no trend chart", missing[0])
        else:
            _trends_sheet(wb.create_sheet(TRENDS_SHEET), trend, work_orders, followup)
    cols = list(vendor_columns) if vendor_columns is not None else [
        c for c in work_orders.columns if c != "vendor"]
    wo = work_orders.with_columns(pl.col("vendor").fill_null(""))
    # cells without a vendor go last
    vendors = sorted(wo["vendor"].unique().to_list(), key=lambda v: (v == "", v)) if wo.height else []
    for vendor in vendors:
        part = wo.filter(pl.col("vendor") == vendor).sort(["region", "rank"], nulls_last=True)
        sheet = wb.create_sheet(_sheet_title(vendor or UNKNOWN_VENDOR, taken))
        _order_sheet(sheet, part.select(cols), thresholds)
    if not vendors:
        log.info("no work orders: the workbook has only the summary sheet")

    # fixed zip and document times: the same inputs give the same bytes
    return write_workbook(path, wb)
