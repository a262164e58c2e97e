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
from kqi.workorders import work_order_summary

log = logging.getLogger(__name__)

SUMMARY_SHEET = "Summary"
ALL_SHEET = "All orders"
#: long free-text columns, wrapped rather than cut off
_WRAPPED = ("evidence", "action", "secondary_causes", "complaint_ids")
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


def _case_table(summary: Mapping[str, Any]) -> pl.DataFrame | None:
    """The case table as rows (all, each vendor, each region) when ``summary`` carries it."""
    if "cells_reporting" not in summary or not isinstance(summary.get("poor_by_service"), Mapping):
        return None
    services = list(summary["poor_by_service"])
    rows: list[dict[str, Any]] = []

    def add(scope: str, c: Mapping[str, Any]) -> None:
        row = {"scope": scope, "cells reporting": c.get("cells_reporting"),
               "poor cells": c.get("poor_cells"), "poor share": c.get("poor_share")}
        row.update({f"poor {s}": (c.get("poor_by_service") or {}).get(s, 0) for s in services})
        rows.append(row)

    add("all", summary)
    for dim in ("vendor", "region"):
        for name, c in (summary.get(f"by_{dim}") or {}).items():
            add(f"{dim}: {name}", c)
    schema = {"scope": pl.String, "cells reporting": pl.Int64, "poor cells": pl.Int64,
              "poor share": pl.Float64, **{f"poor {s}": pl.Int64 for s in services}}
    return pl.DataFrame(rows, schema=schema)


#: summary entries that are lists of ids or per-cluster profiles: in the CSVs, not on this sheet
_SUMMARY_SKIP = {"silent_cell_ids", "clusters", "by_method"}


def _other_figures(summary: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Item / value rows for the figures beside the case table, readable by a person."""
    rows: list[tuple[str, Any]] = []
    diag = summary.get("diagnosis") if isinstance(summary.get("diagnosis"), Mapping) else {}
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
    case = _case_table(summary)
    row = 2
    skip: set[str] = set()
    if case is not None:
        end, _ = _write_table(ws, case, top=2, left=1, widths=widths)
        share = case.columns.index("poor share") + 1
        for r in range(3, end + 1):
            ws.cell(row=r, column=share).number_format = "0.00%"
        row = end + 2
        skip = {"cells_reporting", "poor_cells", "poor_share", "poor_by_service", "by_vendor",
                "by_region"}
    other = _other_figures({k: v for k, v in summary.items() if k not in skip})
    for k, (item, value) in enumerate(other, start=row):
        _put(ws, k, 1, item)
        _put(ws, k, 2, value)
        widths[1] = max(widths.get(1, 0), len(item))
        widths[2] = max(widths.get(2, 0), min(len(str(value)), _MAX_WIDTH))

    left = _SUMMARY_RIGHT_COLUMN if case is None else case.width + 2
    _put(ws, 1, left, "Work orders by primary cause").font = title
    figures = work_order_summary(work_orders)
    counts = figures["causes"]
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


def write_work_orders_xlsx(
    path: str | Path,
    work_orders: pl.DataFrame,
    summary: Mapping[str, Any] | None,
    hotspots: pl.DataFrame | None,
    *,
    vendor_columns: Sequence[str] | None = None,
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

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    Sheets: ``Summary`` (case table, work orders per cause, silent cells, hotspots), ``All orders``
    in rank order, then one sheet per vendor (sorted by name; cells without a vendor go to ``Unknown vendor``), rows sorted by
    region, then rank, for dispatch.
    """
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = SUMMARY_SHEET
    _summary_sheet(ws, work_orders, summary or {}, hotspots)

    thresholds = (summary or {}).get("rule", {}).get("thresholds", {}) if summary else {}
    taken = {SUMMARY_SHEET.lower(), ALL_SHEET.lower()}
    if work_orders.height:
        # the whole list in priority order, for whoever plans the week before dispatch by vendor
        sheet = wb.create_sheet(ALL_SHEET)
        _order_sheet(sheet, work_orders, thresholds)
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
