"""The work-order workbook (``work_orders.xlsx``), written for the people who read and print it.

Sheets: ``Summary`` (the case table, rule, inputs, causes, proposals, complaints, work orders,
follow-up programme and hotspots, each as a table with a title), ``All orders`` in rank order,
``Follow-up`` and ``Trends`` with a history, then one sheet per vendor in dispatch order.

Headers and coded values are in words (``Primary cause: High load``), English or Chinese
(``[output] language``, :mod:`kqi.words`); numbers are stored as numbers with number formats.
Order sheets are Excel tables (banded rows, filter buttons) with frozen panes, a red-to-green
colour scale on good-rate columns and wrapped long text; they print landscape on A4, fitted to
the page width, with the header row on every page and a print area of the columns a field team
reads (:data:`PRINT_COLUMNS`), the rest kept on screen to the right. Text is always stored as
text: a value that a spreadsheet would run as a formula (``= + - @``) is a string cell marked
"quote prefix" (Excel's own way to keep typed text literal), shown as written without an
apostrophe; control characters are removed.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from kqi.io import _FORMULA_START, CONTROL, clean_text, formula_like, write_workbook
from kqi.phrases import in_words, phrase
from kqi.summary import CASE_KEYS, case_frame
from kqi.words import figure, header, section, sheet, translate, value_words
from kqi.workorders import work_order_summary

log = logging.getLogger(__name__)

#: the sheets' names in English (``kqi.words.SHEETS``; a Chinese workbook has them in Chinese)
SUMMARY_SHEET = sheet("summary")
ALL_SHEET = sheet("all_orders")
FOLLOWUP_SHEET = sheet("followup")
TRENDS_SHEET = sheet("trends")
#: follow-up verdict -> cell fill (Excel's good / bad / neutral styles, and grey for no data)
VERDICT_FILLS: dict[str, str] = {
    "recovered": "C6EFCE",
    "worse": "FFC7CE",
    "not_recovered": "FFEB9C",
    "insufficient_data": "D9D9D9",
}
#: orders drawn in the trend chart (the highest-ranked ones)
TREND_ORDERS = 10
UNKNOWN_VENDOR = sheet("unknown_vendor")
#: colours of the good-rate scale: low (red), middle (yellow), high (green)
SCALE_COLOURS = ("F8696B", "FFEB84", "63BE7B")
_MAX_WIDTH = 60
_FLOAT_DIGITS = 6
_MIN_WIDTH = 6
#: a header is wrapped rather than widening its column beyond this
_HEADER_WIDTH = 10
#: width caps of long text columns (wrapped), so that the printed key columns fit a landscape
#: A4 page at a readable size (about 7 pt or more after fitting, checked in tests/test_print.py)
_WIDTH_CAPS: dict[str, int] = {"evidence": 36, "action": 24, "cell_name": 18, "complaint_ids": 40,
                               "secondary_causes": 16, "order_id": 28, "poor_services": 12, "review_note": 36,
                               "primary_cause": 13, "cause_at_open": 13, "control_basis": 16}
#: text columns wrapped (their rows made as tall as the text)
_WRAPPED = ("evidence", "action", "secondary_causes", "complaint_ids", "cell_name",
            "poor_services", "primary_cause", "cause_at_open", "control_basis", "review_note")
#: what a field team reads on paper, in this order: the print area of an order sheet (the
#: other columns, priority score, order id, tests, users, complaint ids ..., follow on screen)
PRINT_COLUMNS: tuple[str, ...] = (
    "rank", "cell_id", "cell_name", "vendor", "region", "poor_services", "primary_cause",
    "evidence", "action", "complaints", "order_status",
    "good_rate_browsing", "good_rate_video", "good_rate_gaming")
#: points per line of wrapped 11 pt text (row heights are set: spreadsheets do not fit them to
#: wrapped text when they open a file)
_LINE_PT = 14.4
#: the same for the follow-up sheet
FOLLOWUP_PRINT: tuple[str, ...] = (
    "order_id", "cell_id", "cell_name", "region", "cause_at_open", "service", "good_rate_before",
    "good_rate_after", "tests_after", "control_delta", "effect", "p_value", "verdict", "status")
#: the workbook's font (Excel's default; LibreOffice uses its metric twin Carlito)
FONT = "Calibri"
#: Excel's table style of the order sheets (banded rows)
TABLE_STYLE = "TableStyleLight9"
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")

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


#: openpyxl's longest cell text (it truncates longer text) and last row
_MAX_TEXT = 32_767
_MAX_ROW = 1_048_576


def _put(ws: Any, row: int, col: int, value: Any) -> Any:
    """Write one value; strings are stored as strings whatever they look like.

    What ``ws.cell(row, col).value = value`` does, without its per-cell checks where the type is
    known (text: control characters already removed; numbers), a few times faster."""
    from openpyxl.cell.cell import Cell

    cell = ws._cells.get((row, col))
    if cell is None:
        if not 0 < row <= _MAX_ROW:
            raise ValueError("Row numbers must be between 1 and 1048576")
        cell = Cell(ws, row=row, column=col)
        ws._add_cell(cell)
    _set_value(cell, value)
    return cell


def _set_value(cell: Any, value: Any) -> None:
    """The value of :func:`_put` in ``cell``."""
    if isinstance(value, str):
        # clean_text removes the characters openpyxl refuses (C0 controls but tab, LF and CR)
        text = clean_text(value)[:_MAX_TEXT]
        cell._value = text
        cell.data_type = "s"  # openpyxl would otherwise read "=..." as a formula
        if formula_like(text):
            # shown as written and kept as text if edited, without a visible apostrophe
            cell.quotePrefix = True
    elif type(value) is float:
        # NaN and inf stay empty; the rest is rounded like the CSVs (float_precision=6), so that no long
        # digit run (an accidental phone-number look-alike) or float noise reaches the workbook
        cell.data_type = "n"
        cell._value = round(value, _FLOAT_DIGITS) if math.isfinite(value) else None
    elif type(value) is int:
        cell.data_type = "n"
        cell._value = value
    elif isinstance(value, float):
        cell.value = round(value, _FLOAT_DIGITS) if math.isfinite(value) else None
    else:
        cell.value = value


def _put_column(ws: Any, column: int, first_row: int, values: Sequence[Any], *, dirty: bool,
                fmt_id: int | None, align_id: int | None) -> list[Any]:
    """:func:`_put` of each of ``values`` down ``column`` from ``first_row``, with the number
    format ``fmt_id`` (a registered format's id) on each value that is not text and the
    alignment ``align_id`` (a registered alignment's index) on each cell: the cells and styles
    that ``_put``, then ``cell.number_format = ...`` and ``cell.alignment = ...`` give, a column
    at a time (tests/test_xlsx_writer.py compares them). ``dirty``: some text value holds a
    character :func:`clean_text` removes (when false, the text is stored as it is).

    Returns the cells made, one a value (``None`` where the sheet had the cell: filled in
    place). They are not on the sheet yet: :func:`_add_rows` adds them row by row, so that the
    sheet's cells stay in reading order (openpyxl's writer sorts them; sorted, in one pass)."""
    from openpyxl.cell.cell import Cell
    from openpyxl.styles.cell_style import StyleArray

    if first_row + len(values) - 1 > _MAX_ROW:
        raise ValueError("Row numbers must be between 1 and 1048576")
    cells = ws._cells
    base = StyleArray()   # the style of a value that is not text (copied to each cell)
    if fmt_id is not None:
        base.numFmtId = fmt_id
    if align_id is not None:
        base.alignmentId = align_id
    plain = fmt_id is None and align_id is None   # no style at all, as _put leaves a cell
    text_base = StyleArray()   # the style of a text value
    if align_id is not None:
        text_base.alignmentId = align_id
    made: list[Any] = []
    for row, value in enumerate(values, start=first_row):
        kind = type(value)
        cell = cells.get((row, column))
        if cell is not None:   # filled in place, as _put fills it
            _set_value(cell, value)
            made.append(None)
        else:
            cell = Cell(ws, row=row, column=column)
            made.append(cell)
            if kind is str:
                text = (clean_text(value) if dirty else value)[:_MAX_TEXT]
                cell._value = text
                cell.data_type = "s"
                if text.startswith(_FORMULA_START) and formula_like(text):
                    cell._style = StyleArray(text_base)
                    cell._style.quotePrefix = True
                elif align_id is not None:
                    cell._style = StyleArray(text_base)
                continue
            if kind is float or kind is int or value is None:
                if kind is float:
                    cell._value = round(value, _FLOAT_DIGITS) if math.isfinite(value) else None
                elif kind is int:
                    cell._value = value
                if not plain:
                    cell._style = StyleArray(base)
                continue
            _set_value(cell, value)   # a value of another kind (it may set a style: a date's format)
        # a cell the sheet had, or a value of another kind: its style set field by field
        if fmt_id is not None and not isinstance(value, str):
            if not cell._style:
                cell._style = StyleArray()
            cell._style.numFmtId = fmt_id
        if align_id is not None:
            if not cell._style:
                cell._style = StyleArray()
            cell._style.alignmentId = align_id
    return made


def _add_rows(ws: Any, columns: Sequence[Sequence[Any]]) -> None:
    """The cells :func:`_put_column` made for each column (as many a column) added to the
    sheet, row by row (what ``ws._add_cell`` does a cell)."""
    cells = ws._cells
    last = 0
    for row in zip(*columns, strict=True):
        for cell in row:
            if cell is not None:
                cells[(cell.row, cell.column)] = cell
                last = cell.row
    if last:
        ws._current_row = max(last, ws._current_row)


def _display_width(text: str) -> int:
    """Width in Latin characters: CJK and other wide characters take two."""
    if text.isascii():   # no ASCII character is wide
        return len(text)
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _shown_width(value: Any, fmt: str | None) -> int:
    """Characters a value takes on screen in its number format."""
    if value is None:
        return 0
    if isinstance(value, str):
        return _display_width(value)
    if isinstance(value, float) and fmt is not None:
        if fmt.endswith("%"):
            return 6
        decimals = len(fmt.split(".")[1]) if "." in fmt else 0
        return len(f"{value:,.{decimals}f}")
    return len(f"{value}")


def _rows(ws: Any, min_row: int, min_col: int | None = None, max_col: int | None = None
          ) -> Iterator[list[Any]]:
    """``ws.iter_rows(min_row, min_col=, max_col=)`` (the same cells, missing ones created as
    it creates them), reading the sheet's cell dictionary instead of a lookup a cell."""
    cells = ws._cells
    first = min_col or 1
    last = max_col or ws.max_column
    for r in range(min_row, ws.max_row + 1):
        row = []
        for c in range(first, last + 1):
            cell = cells.get((r, c))
            row.append(ws.cell(row=r, column=c) if cell is None else cell)
        yield row


def _fit_heights(ws: Any, first_row: int = 1, spans: Mapping[tuple[int, int], float] | None = None
                 ) -> None:
    """Each row as tall as its longest wrapped text (wrapped cells only), from ``first_row``.

    ``spans`` gives the width of merged cells by (row, column)."""
    import math as _m

    from openpyxl.styles.cell_style import StyleArray
    from openpyxl.utils import get_column_letter

    cells = ws._cells
    last_row, last_col = ws.max_row, ws.max_column
    if sum(1 for r, _ in cells if r >= first_row) < (last_row - first_row + 1) * last_col:
        for _ in _rows(ws, first_row):   # the missing cells created, as ws.iter_rows creates them
            pass
    width = {}
    alignments = ws.parent._alignments   # a cell's alignment by its index (no style proxy a cell)
    wraps: dict[int, bool] = {}          # whether an alignment index wraps, looked up once
    lines_at: dict[int, int] = {}        # row -> lines of its tallest wrapped text
    # the cells in the order they were written (the tallest text of a row does not depend on
    # the order): no row lists built
    for (r, c), cell in cells.items():
        value = cell._value
        if r < first_row or not isinstance(value, str):
            continue
        if not cell._style:
            cell._style = StyleArray()
        aid = cell._style.alignmentId
        wrapped = wraps.get(aid)
        if wrapped is None:
            wrapped = wraps[aid] = bool(alignments[aid].wrap_text)
        if not wrapped:
            continue
        w = (spans or {}).get((r, c))
        if w is None:
            letter = get_column_letter(c)
            if letter not in width:
                width[letter] = ws.column_dimensions[letter].width or 8.43
            w = width[letter]
        # a column's width counts digits; text runs narrower (Calibri: about 1.2 letters a
        # digit), so 1.1 letters a unit, less a unit of padding, never clips
        per_line = max(1.0, (w - 1.0) * 1.1)
        if "\n" in value:
            n = sum(max(1, _m.ceil(_display_width(part) / per_line)) for part in value.split("\n"))
        else:
            n = max(1, _m.ceil(_display_width(value) / per_line))
        if n > lines_at.get(r, 1):
            lines_at[r] = n
    for r in sorted(lines_at):
        ws.row_dimensions[r].height = round(lines_at[r] * _LINE_PT, 1)


def _sheet_title(name: str, taken: set[str], unknown: str = UNKNOWN_VENDOR) -> str:
    """A valid, unique sheet name: no []:*?/\\, at most 31 characters, no apostrophe at either end
    (Excel repairs such a file), and never Excel's reserved "History"; ``unknown`` where nothing
    of ``name`` is left."""
    base = _SHEET_BAD.sub("_", re.sub(CONTROL, "", " ".join(name.split()))).strip("'").strip() \
        or unknown
    base = base[:31].rstrip("'").rstrip() or unknown
    title, k = base, 2
    while title.lower() in taken or title.lower() == "history":
        suffix = f" ({k})"
        title = base[: 31 - len(suffix)].rstrip("'").rstrip() + suffix
        k += 1
    taken.add(title.lower())
    return title


def _fit_widths(ws: Any, widths: dict[int, int], caps: Mapping[int, int] | None = None) -> None:
    from openpyxl.utils import get_column_letter

    for col, width in widths.items():
        cap = (caps or {}).get(col, _MAX_WIDTH)
        ws.column_dimensions[get_column_letter(col)].width = max(_MIN_WIDTH, min(cap, width + 2))


def _headers(columns: Sequence[str], language: str) -> list[str]:
    """Each column's words, made unique (an Excel table needs distinct headers)."""
    out: list[str] = []
    for name in columns:
        words = header(name, language)
        out.append(words if words not in out else f"{words} ({name})")
    return out


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
                 widths: dict[int, int] | None = None, *, language: str = "en",
                 table: str | None = None, free: Sequence[str] = (),
                 align: Sequence[Any] | None = None) -> tuple[int, int]:
    """Write ``df`` at (top, left): a bold wrapped header of words, values in words, numbers
    with number formats; an Excel table named ``table`` when given (and ``df`` has rows).
    ``align``: each column's alignment of its values (the header's is set here).
    Returns (last row, last column)."""
    from openpyxl.cell.cell import Cell
    from openpyxl.styles import Alignment, Font, PatternFill

    widths = {} if widths is None else widths
    bold = Font(name=FONT, bold=True)
    fill = PatternFill("solid", fgColor="DDEBF7")
    wrap = Alignment(wrap_text=True, vertical="top")
    sized = [c not in free for c in df.columns]   # columns whose content sets their width
    numeric = [t.is_numeric() for t in df.dtypes]
    right = Alignment(wrap_text=True, vertical="top", horizontal="right")
    for j, words in enumerate(_headers(df.columns, language)):
        cell = _put(ws, top, left + j, words)
        cell.font = bold
        cell.fill = fill
        cell.alignment = right if numeric[j] else wrap
        if sized[j]:
            # wrapped at _HEADER_WIDTH, but never inside a word (bold: a character more)
            longest = max((_display_width(w) for w in words.split()), default=0) + 1
            widths[left + j] = max(widths.get(left + j, 0),
                                   min(max(_display_width(words), longest),
                                       max(_HEADER_WIDTH, longest)))
    formats = [_number_format(n, t) for n, t in df.schema.items()]
    shown = translate(df, language)
    columns = [shown.to_series(j).to_list() for j in range(shown.width)]
    # registered at first use in reading order (row by row), as cell.number_format would
    firsts: list[tuple[int, int]] = []   # (row, column) of each format's first use
    for j, values in enumerate(columns):
        if formats[j] is not None:
            k = next((k for k, v in enumerate(values) if not isinstance(v, str)), None)
            if k is not None:
                firsts.append((k, j))
    firsts.sort()
    format_ids: dict[str, int] = {}
    for _, j in firsts:
        fmt = formats[j]
        assert fmt is not None
        if fmt not in format_ids:
            probe = Cell(ws)   # not on the sheet: registers the format as a cell's would
            probe.number_format = fmt
            format_ids[fmt] = probe._style.numFmtId
    # the data cells' alignments registered column by column, as setting them would
    align_ids = None if align is None else [ws.parent._alignments.add(a) for a in align]
    # one search a text column for the characters clean_text removes (rare: most columns are
    # stored as they are, without a search a cell)
    strings = [name for name, dtype in shown.schema.items() if dtype == pl.String]
    found = dict(zip(strings, shown.select(pl.col(n).str.contains(CONTROL).any() for n in strings)
                     .row(0), strict=True)) if strings and shown.height else {}
    # a text column's width: its longest text where all of it is ASCII (one column a character)
    ascii_widths = dict(zip(strings, shown.select(
        pl.when(pl.col(n).str.contains(r"[^\x00-\x7f]").any()).then(None)
        .otherwise(pl.col(n).str.len_chars().max().fill_null(0)).alias(n) for n in strings).row(0),
        strict=True)) if strings and shown.height else {}
    made = []
    for j, values in enumerate(columns):
        fmt = formats[j]
        made.append(_put_column(ws, left + j, top + 1, values,
                                dirty=found.get(shown.columns[j], True) is not False,
                                fmt_id=None if fmt is None else format_ids.get(fmt),
                                align_id=None if align_ids is None else align_ids[j]))
        if sized[j] and values:
            shown_width = ascii_widths.get(shown.columns[j])
            if shown_width is None:
                shown_width = max(_shown_width(v, fmt) for v in values)
            widths[left + j] = max(widths.get(left + j, 0), min(shown_width, _MAX_WIDTH))
    _add_rows(ws, made)
    if table is not None and df.height:
        from openpyxl.utils import get_column_letter
        from openpyxl.worksheet.table import Table, TableStyleInfo

        ref = (f"{get_column_letter(left)}{top}:"
               f"{get_column_letter(left + df.width - 1)}{top + df.height}")
        t = Table(displayName=table, ref=ref)
        t.tableStyleInfo = TableStyleInfo(name=TABLE_STYLE, showRowStripes=True,
                                          showColumnStripes=False, showFirstColumn=False,
                                          showLastColumn=False)
        ws.add_table(t)
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
                        rows.append((name, str(v)))
        else:
            rows.append((name, value))
    return rows


#: summary keys the sheet shows as its own tables (the rest go to "Other figures"); lists of ids
#: and cluster profiles stay in the CSVs
_SHOWN_KEYS = {"cells_reporting", "poor_cells", "poor_share", "poor_by_service", "tests",
               "by_vendor", "by_region", "rule", "inputs", "diagnosis", "complaints",
               "work_orders", "programme"}
_DIAGNOSIS_FIGURES = ("poor_cells", "review", "areas", "cells_in_areas")
#: diagnosis keys shown by a table of their own (clusters stay in clusters.csv)
_DIAGNOSIS_SHOWN = {*_DIAGNOSIS_FIGURES, "cause_counts", "secondary_counts", "proposals",
                    "clusters", "not_judged", "network"}


def _title(ws: Any, row: int, text: str) -> int:
    from openpyxl.styles import Font

    _put(ws, row, 1, text).font = Font(name=FONT, bold=True, size=13)
    return row + 1


def _figures(items: Sequence[tuple[str, Any]]) -> pl.DataFrame:
    """Figure / value rows; the values stay numbers when they all are."""
    values = [v for _, v in items]
    numbers = [v for v in values if v is not None]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in numbers):
        dtype: Any = pl.Int64
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
        dtype = pl.Float64
    else:
        dtype, values = pl.String, [None if v is None else str(v) for v in values]
    return pl.DataFrame({"figure": [k for k, _ in items], "value": values},
                        schema={"figure": pl.String, "value": dtype})


def _summary_tables(work_orders: pl.DataFrame, summary: Mapping[str, Any],
                    hotspots: pl.DataFrame | None,
                    language: str) -> list[tuple[str, pl.DataFrame, dict[str, str]]]:
    """The summary sheet's tables, in reading order: (title key, table, number formats)."""
    out: list[tuple[str, pl.DataFrame, dict[str, str]]] = []
    case = case_frame(summary)
    if case is not None:
        out.append(("case", case, {"poor share": "0.00%"}))
    rule = summary.get("rule")
    if isinstance(rule, Mapping) and isinstance(rule.get("thresholds"), Mapping):
        th = rule["thresholds"]
        out.append(("rule", pl.DataFrame(
            {"service": list(th), "threshold": [float(v) for v in th.values()],
             "min tests": [rule.get("min_tests")] * len(th)},
            schema={"service": pl.String, "threshold": pl.Float64, "min tests": pl.Int64}),
            {"threshold": "0%"}))
    inputs = summary.get("inputs")
    if isinstance(inputs, Mapping) and inputs:
        out.append(("inputs", pl.DataFrame(
            {"feed": list(inputs),
             "rows read": [c.get("rows_read") for c in inputs.values()],
             "rows accepted": [c.get("rows_accepted") for c in inputs.values()],
             "rows rejected": [c.get("rows_rejected") for c in inputs.values()],
             "rejects file": [f"rejects/{k}.csv" if c.get("rows_rejected") else ""
                              for k, c in inputs.items()]},
            schema={"feed": pl.String, "rows read": pl.Int64, "rows accepted": pl.Int64,
                    "rows rejected": pl.Int64, "rejects file": pl.String}),
            {"rows read": "#,##0", "rows accepted": "#,##0", "rows rejected": "#,##0"}))
    diag = summary.get("diagnosis") if isinstance(summary.get("diagnosis"), Mapping) else {}
    assert isinstance(diag, Mapping)
    primary, secondary = diag.get("cause_counts") or {}, diag.get("secondary_counts") or {}
    if primary:
        names = list(dict.fromkeys([*primary, *secondary]))
        out.append(("causes", pl.DataFrame(
            {"cause": names, "primary": [primary.get(n, 0) for n in names],
             "secondary": [secondary.get(n, 0) for n in names]},
            schema={"cause": pl.String, "primary": pl.Int64, "secondary": pl.Int64}), {}))
    figs = [(figure(k, language), diag[k]) for k in _DIAGNOSIS_FIGURES if k in diag]
    if figs:
        out.append(("diagnosis", _figures(figs), {}))
    # the diagnosis' words: causes the KPIs cannot show, the network's reference, anything new
    notes: list[tuple[str, str]] = []
    if diag.get("not_judged"):
        from kqi.judged import not_judged_text

        notes.append((figure("not_judged", language),
                      in_words(not_judged_text(diag["not_judged"]), language)))
    network = diag.get("network")
    if isinstance(network, Mapping) and network.get("basis"):
        notes.append((figure("network", language), in_words(str(network["basis"]), language)))
    rest_diag = {k: v for k, v in diag.items() if k not in _DIAGNOSIS_SHOWN}
    notes += [(k, "" if v is None else str(v)) for k, v in _flatten(rest_diag)]
    if notes:
        out.append(("diagnosis_notes", pl.DataFrame(
            {"figure": [k for k, _ in notes], "value": [v for _, v in notes]},
            schema={"figure": pl.String, "value": pl.String}), {}))
    proposals = diag.get("proposals") or {}
    rows = [(name, p.get("current"), p.get("proposed"), str(p.get("basis", "")))
            for name, p in proposals.items() if isinstance(p, Mapping) and "proposed" in p]
    if rows:
        out.append(("proposals", pl.DataFrame(
            rows, schema={"setting": pl.String, "current": pl.Float64, "proposed": pl.Float64,
                          "basis": pl.String}, orient="row"), {}))
    comp = summary.get("complaints")
    if isinstance(comp, Mapping) and comp:
        items = [(figure(k, language), comp[k]) for k in
                 ("complaints", "network_complaints", "linked", "non_network") if k in comp]
        items += [(figure(k, language), v) for k, v in (comp.get("by_method") or {}).items()
                  if k != "non_network"]
        items += [(figure(k, language), comp[k]) for k in ("silent_poor_cells", "hotspots")
                  if k in comp and comp[k] is not None]
        rankings = comp.get("hotspot_rankings")
        if isinstance(rankings, Mapping) and rankings:  # one place can top several rankings
            kinds = value_words("kind", language)
            items += [(f"{figure('hotspot_rankings', language)}: {kinds.get(k, k)}", v)
                      for k, v in rankings.items()]
        out.append(("complaints", _figures(items), {}))
    figures_wo = work_order_summary(work_orders)
    counts: Mapping[str, Any] = figures_wo["causes"]  # type: ignore[assignment]
    if work_orders.height:
        out.append(("work_orders", pl.DataFrame(
            {"cause": [*counts.keys(), section("total", language)],
             "work orders": [*counts.values(), work_orders.height]},
            schema={"cause": pl.String, "work orders": pl.Int64}), {}))
        vendors = (work_orders.select(pl.col("vendor").cast(pl.String).fill_null(""))
                   .group_by("vendor").len().sort("vendor"))
        out.append(("vendors", pl.DataFrame(
            {"vendor": [v or sheet("unknown_vendor", language) for v in vendors["vendor"].to_list()],
             "work orders": vendors["len"].cast(pl.Int64).to_list()},
            schema={"vendor": pl.String, "work orders": pl.Int64}), {}))
    if hotspots is not None and hotspots.height:
        out.append(("hotspots", hotspots.select(
            [c for c in hotspots.columns if hotspots[c].null_count() < hotspots.height]), {}))
    # what no table above shows (the case counts without a case table, unknown keys ...)
    shown = set(_SHOWN_KEYS)
    if case is None:
        shown -= set(CASE_KEYS)
    if not any(k == "rule" for k, _, _ in out):
        shown.discard("rule")
    rest = {k: v for k, v in summary.items() if k not in shown}
    other = [(k, v if isinstance(v, int | float | str) or v is None else str(v))
             for k, v in _flatten(rest)]
    if other:
        out.append(("other", pl.DataFrame({"figure": [k for k, _ in other],
                                           "value": [None if v is None else str(v)
                                                     for _, v in other]},
                                          schema={"figure": pl.String, "value": pl.String}), {}))
    return out


def _summary_sheet(ws: Any, work_orders: pl.DataFrame, summary: Mapping[str, Any],
                   hotspots: pl.DataFrame | None, language: str = "en") -> None:
    """Every figure of the run as titled tables, one below the other (it prints down the page);
    the case table first, the follow-up programme after the work orders."""
    from openpyxl.styles import Alignment
    from openpyxl.utils import get_column_letter

    widths: dict[int, int] = {}
    row = _title(ws, 1, section("title", language))
    row += 1
    tables = _summary_tables(work_orders, summary, hotspots, language)
    programme = summary.get("programme")
    merges: list[tuple[int, int]] = []   # (row, column) of long text spread to _SUMMARY_SPAN
    for key, table, formats in tables:
        if key == "hotspots" and isinstance(programme, Mapping):
            row = _programme_block(ws, programme, row, widths, language)
        row = _title(ws, row, section(key, language))
        long_col = _LONG_TEXT.get(key)
        # long text has no width of its own: it spreads over the columns to its right
        end, _ = _write_table(ws, table, top=row, left=1, widths=widths, language=language,
                              free=(long_col,) if long_col else ())
        for j, name in enumerate(table.columns, start=1):
            if name in formats:
                for r in range(row + 1, end + 1):
                    ws.cell(row=r, column=j).number_format = formats[name]
            if name == long_col:
                merges += [(r, j) for r in range(row, end + 1)]
        row = end + 2
    if isinstance(programme, Mapping) and not any(k == "hotspots" for k, _, _ in tables):
        row = _programme_block(ws, programme, row, widths, language)
    # the first column holds scopes and figure names: wide enough to read them
    widths[1] = max(widths.get(1, 0), 24)
    _fit_widths(ws, widths, caps=dict.fromkeys(range(2, _SUMMARY_SPAN + 1), 16))
    wrap = Alignment(wrap_text=True, vertical="top")
    spans: dict[tuple[int, int], float] = {}
    top = Alignment(vertical="top")
    for r, j in merges:
        ws.merge_cells(start_row=r, start_column=j, end_row=r, end_column=_SUMMARY_SPAN)
        ws.cell(row=r, column=j).alignment = wrap
        for c in range(1, j):   # the row's other cells at the top, beside the wrapped text
            if r > 1 and not ws.cell(row=r, column=c).font.b:
                ws.cell(row=r, column=c).alignment = top
        spans[(r, j)] = sum(ws.column_dimensions[get_column_letter(c)].width or 8.43
                            for c in range(j, _SUMMARY_SPAN + 1))
    _fit_heights(ws, spans=spans)


#: summary tables with a long text column, spread over the columns up to _SUMMARY_SPAN
_LONG_TEXT = {"proposals": "basis", "other": "value", "diagnosis_notes": "value"}
_SUMMARY_SPAN = 11


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
                     widths: dict[int, int], language: str = "en") -> int:
    """The closed loop on the summary sheet: orders by state, then the before / after table.
    Returns the next free row."""
    from openpyxl.styles import PatternFill

    row = _title(ws, row, section("programme", language))
    orders = programme.get("orders")
    if isinstance(orders, Mapping) and orders:
        states = pl.DataFrame({"order state": [str(k) for k in orders],
                               "orders": [int(v) if _num(v) is not None else None
                                          for v in orders.values()]},
                              schema={"order state": pl.String, "orders": pl.Int64})
        end, _ = _write_table(ws, states, top=row, left=1, widths=widths, language=language)
        row = end + 2
    table = _programme_table(programme)
    if table.height:
        end, _ = _write_table(ws, table, top=row, left=1, widths=widths, language=language)
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
    return row


#: line colours of the trend chart's series (distinct, colour-blind-safe: Okabe-Ito, then Tol)
_SERIES_COLOURS = ("0072B2", "E69F00", "009E73", "D55E00", "CC79A7", "56B4E9", "F0E442",
                   "000000", "882255", "44AA99")


def _print_setup(sheet: Any, *, title_row: int | None = 1, one_page: bool = False,
                 print_area: str | None = None) -> None:
    """Print landscape on A4 with narrow margins, fitted to the page width (as many pages down
    as needed, or one page in all), the header row repeated on every page, the sheet's name and
    page number in the footer."""
    from openpyxl.worksheet.page import PageMargins

    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 1 if one_page else 0
    sheet.page_margins = PageMargins(left=0.4, right=0.4, top=0.5, bottom=0.6, header=0.25,
                                     footer=0.3)
    sheet.oddFooter.center.text = "&A, &P / &N"
    if title_row is not None:
        sheet.print_title_rows = f"{title_row}:{title_row}"
    if print_area is not None:
        sheet.print_area = print_area


def _print_first(table: pl.DataFrame, first: Sequence[str]) -> tuple[pl.DataFrame, int]:
    """``table`` with the ``first`` columns it has in front; returns it and their number."""
    lead = [c for c in first if c in table.columns]
    return table.select(*lead, *[c for c in table.columns if c not in lead]), len(lead)


def _order_sheet(sheet: Any, table: pl.DataFrame, thresholds: Mapping[str, float], *,
                 language: str = "en", name: str | None = None) -> None:
    """A list of work orders: an Excel table (banded, filters), frozen rank and cell, widths,
    wrapped long text; printed: the key columns (:data:`PRINT_COLUMNS`)."""
    from openpyxl.styles import Alignment
    from openpyxl.utils import get_column_letter

    table, n_print = _print_first(table, PRINT_COLUMNS)
    widths: dict[int, int] = {}
    wrap = Alignment(wrap_text=True, vertical="top")
    top = Alignment(vertical="top")
    _write_table(sheet, table, widths=widths, language=language, table=name,
                 align=[wrap if col in _WRAPPED else top for col in table.columns])
    caps = {j: _WIDTH_CAPS[c] for j, c in enumerate(table.columns, start=1) if c in _WIDTH_CAPS}
    _fit_widths(sheet, widths, caps)
    sheet.freeze_panes = "C2"
    _colour_scale(sheet, table, top=1, left=1, thresholds=thresholds)
    _fit_heights(sheet)
    last = get_column_letter(max(n_print, 1))
    _print_setup(sheet, print_area=f"A1:{last}{max(table.height + 1, 2)}")


def _followup_sheet(sheet: Any, followup: pl.DataFrame, *, language: str = "en",
                    name: str | None = None) -> None:
    """The follow-up verdicts as an Excel table: frozen header, verdict cells in colour;
    printed: the key columns (:data:`FOLLOWUP_PRINT`)."""
    from openpyxl.styles import PatternFill
    from openpyxl.utils import get_column_letter

    followup, n_print = _print_first(followup, FOLLOWUP_PRINT)
    widths: dict[int, int] = {}
    from openpyxl.styles import Alignment

    wrap = Alignment(wrap_text=True, vertical="top")
    top = Alignment(vertical="top")
    _write_table(sheet, followup, widths=widths, language=language, table=name,
                 align=[wrap if column in _WRAPPED else top for column in followup.columns])
    caps = {j: _WIDTH_CAPS[c] for j, c in enumerate(followup.columns, start=1)
            if c in _WIDTH_CAPS}
    _fit_widths(sheet, widths, caps)
    _fit_heights(sheet)
    sheet.freeze_panes = "B2" if followup.columns[:1] == ["order_id"] else "A2"
    last = get_column_letter(max(n_print, 1))
    _print_setup(sheet, print_area=f"A1:{last}{max(followup.height + 1, 2)}")
    if "verdict" not in followup.columns:
        return
    col = followup.columns.index("verdict") + 1
    fills = {v: PatternFill("solid", fgColor=c) for v, c in VERDICT_FILLS.items()}
    for r, verdict in enumerate(followup["verdict"].cast(pl.String).to_list(), start=2):
        if verdict in fills:
            sheet.cell(row=r, column=col).fill = fills[verdict]


def _trend_series(trend: pl.DataFrame, work_orders: pl.DataFrame,
                  followup: pl.DataFrame | None = None, limit: int = TREND_ORDERS,
                  language: str = "en") -> pl.DataFrame:
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
    services = value_words("service", language)
    labels = {r["order_id"]: f"{r['order_id']} ({services.get(r['service'], r['service'])})"
              for r in pick.iter_rows(named=True)}
    wide = (chosen.sort("last_day").group_by("last_day", "order_id", maintain_order=True)
            .agg(pl.col("good_rate").last())
            .pivot(on="order_id", index="last_day", values="good_rate")
            .sort("last_day"))
    order = [o for o in pick["order_id"].to_list() if o in wide.columns]
    return wide.select("last_day", *order).rename(labels)


_NO_TREND = phrase("no trend for the listed orders", "所列工单无趋势数据")


def _trends_sheet(sheet: Any, trend: pl.DataFrame, work_orders: pl.DataFrame,
                  followup: pl.DataFrame | None = None, *, language: str = "en") -> int:
    """The good-rate per run of the top orders: a data block (A1) and a line chart beside it.
    Returns the number of series drawn."""
    from openpyxl.chart import LineChart, Reference

    wide = _trend_series(trend, work_orders, followup, language=language)
    if wide.width < 2 or wide.height == 0:
        _put(sheet, 1, 1, in_words(_NO_TREND, language))
        return 0
    # one row per order, one column per run: narrow enough to print beside nothing, the chart
    # below it at the page's width
    runs = [d.isoformat() for d in wide.get_column(wide.columns[0]).to_list()]
    block = pl.DataFrame({"order (service)": wide.columns[1:],
                          **{run: [wide[c][k] for c in wide.columns[1:]] for k, run in enumerate(runs)}},
                         schema={"order (service)": pl.String, **dict.fromkeys(runs, pl.Float64)})
    widths: dict[int, int] = {}
    end, last_col = _write_table(sheet, block, widths=widths, language=language)
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
    language: str = "en",
) -> Path:
    """Write ``work_orders.xlsx`` atomically.

    Parameters
    ----------
    path : str or pathlib.Path
        Target file; written to a temporary file beside it, then renamed.
    work_orders : polars.DataFrame
        Output of :func:`kqi.workorders.build_work_orders` (sorted by rank).
    summary : mapping or None
        ``summary.json`` content: shown as titled tables (case table, rule, inputs, causes,
        proposals, complaints, work orders, programme, hotspots; anything else as figures).
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

    language : str
        ``en`` or ``zh``: the words of headers, causes, services, statuses and titles
        (:mod:`kqi.words`); ``[output] language`` in a run.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    Sheets: ``Summary`` (case table, the follow-up programme's before / after table when
    ``summary["programme"]`` exists, work orders per cause, silent cells, hotspots), ``All orders``
    in rank order, ``Follow-up`` and ``Trends`` when given, then one sheet per vendor (sorted by
    name; cells without a vendor go to ``Unknown vendor``), rows sorted by region, then rank, for
    dispatch. With ``language="zh"`` the workbook's own sheets are named in Chinese
    (:data:`kqi.words.SHEETS`: ``汇总``, ``全部工单``, ``跟踪复核``, ``趋势``, ``未知厂家``).
    """
    from openpyxl import Workbook

    from kqi.words import LANGUAGES

    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    wb = Workbook()
    ws = wb.active
    ws.title = sheet("summary", language)
    _summary_sheet(ws, work_orders, summary or {}, hotspots, language)
    _print_setup(ws, title_row=None)

    thresholds = (summary or {}).get("rule", {}).get("thresholds", {}) if summary else {}
    # the vendors' sheets never take a name of the workbook's own sheets, in either language
    taken = {sheet(key, lang).lower() for key in ("summary", "all_orders", "followup", "trends")
             for lang in LANGUAGES}
    tables = iter(f"Orders{k}" for k in range(1, 10_000))
    if work_orders.height:
        # the whole list in priority order, for whoever plans the week before dispatch by vendor
        ws_all = wb.create_sheet(sheet("all_orders", language))
        _order_sheet(ws_all, work_orders, thresholds, language=language, name=next(tables))
    if followup is not None and followup.width:
        _followup_sheet(wb.create_sheet(sheet("followup", language)), followup, language=language,
                        name="FollowUp")
    needed = {"order_id", "cell_id", "run_id", "last_day", "service", "good_rate"}
    if trend is not None and trend.height:
        missing = sorted(needed - set(trend.columns))
        if missing:
            log.warning("workbook: trend has no column %s; no trend chart", missing[0])
        else:
            _trends_sheet(wb.create_sheet(sheet("trends", language)), trend, work_orders, followup,
                          language=language)
    cols = list(vendor_columns) if vendor_columns is not None else [
        c for c in work_orders.columns if c != "vendor"]
    wo = work_orders.with_columns(pl.col("vendor").fill_null(""))
    # cells without a vendor go last
    vendors = sorted(wo["vendor"].unique().to_list(), key=lambda v: (v == "", v)) if wo.height else []
    unknown = sheet("unknown_vendor", language)
    for vendor in vendors:
        part = wo.filter(pl.col("vendor") == vendor).sort(["region", "rank"], nulls_last=True)
        ws_vendor = wb.create_sheet(_sheet_title(vendor or unknown, taken, unknown))
        _order_sheet(ws_vendor, part.select(cols), thresholds, language=language, name=next(tables))
    if not vendors:
        log.info("no work orders: the workbook has only the summary sheet")

    # fixed zip and document times: the same inputs give the same bytes
    return write_workbook(path, wb)
