"""The workbook's cell writer (kqi._xlsx) against openpyxl's own: the same bytes, cell for cell,
for every kind of cell it writes as text and every kind it leaves to openpyxl; and kqi's order
sheets (kqi.excel._put, _put_column, _rows) against the openpyxl calls they stand for."""

from __future__ import annotations

import datetime as dt
import io
import math
import zipfile

import polars as pl
import pytest
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill

from kqi import excel
from kqi._xlsx import save
from kqi.io import deterministic_zip

TEXTS = ["plain", " leading", "trailing ", "  ", "", "a & b < c > d \"e\" 'f'", "line\nbreak",
         "tab\tinside", "=SUM(A1:A2)", "+1", "-x", "@me", "#N/A", "中文名称 小区", "emoji 📶",
         "x" * 40_000, "\u00a0nbsp\u00a0", "cr\rlf"]
NUMBERS = [0, 1, -1, 2**53 + 1, 10**20, 0.5, -0.0, 1e-300, 1.7976931348623157e308, 3.14159265358979,
           True, False]


def _openpyxl_bytes(wb: Workbook) -> bytes:
    buf = io.BytesIO()
    wb.save(buf)
    return deterministic_zip(buf.getvalue())


def _kqi_bytes(wb: Workbook) -> bytes:
    # save stores its entries as deterministic_zip does (kqi.io.FixedZip): no second pass
    return save(wb)


def _sheets(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _assert_same(build) -> None:  # type: ignore[no-untyped-def]
    # a workbook is built twice (saving registers styles): once per writer
    ours, theirs = _kqi_bytes(build()), _openpyxl_bytes(build())
    if ours != theirs:
        a, b = _sheets(ours), _sheets(theirs)
        assert a.keys() == b.keys()
        for name in a:
            assert a[name] == b[name], name
    assert ours == theirs


def _mixed() -> Workbook:
    wb = Workbook()
    ws = wb.active
    bold, fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
    for j, text in enumerate(TEXTS, start=1):
        cell = ws.cell(row=1, column=j, value=text)
        cell.data_type = "s"
        if j % 3 == 0:
            cell.font = bold
        if j % 4 == 0:
            cell.quotePrefix = True
    for j, value in enumerate(NUMBERS, start=1):
        cell = ws.cell(row=2, column=j, value=value)
        if j % 2:
            cell.number_format = "0.00"
    ws.cell(row=3, column=2).fill = fill                       # styled, empty
    ws.cell(row=3, column=4)                                   # empty, unstyled: left out
    ws.cell(row=3, column=5, value=float("nan"))               # openpyxl writes <v />
    ws.cell(row=3, column=6, value="=1+2")                     # a formula
    ws.cell(row=3, column=7, value=dt.datetime(2026, 11, 3, 20, 39))
    ws.cell(row=3, column=8, value=dt.date(2026, 11, 3))
    ws.cell(row=3, column=9, value="commented").comment = Comment("note", "kqi")
    ws.cell(row=3, column=10, value="link").hyperlink = "https://example.org/a?b=1&c=2"
    ws.cell(row=3, column=11, value="#DIV/0!")                 # an error code
    ws.merge_cells("A5:D5")
    ws.cell(row=5, column=1, value="merged text").alignment = Alignment(wrap_text=True)
    ws.row_dimensions[5].height = 43.2
    ws.row_dimensions[7].height = 20                           # a row with no cells
    other = wb.create_sheet("Second")
    for r in range(1, 30):
        for c in range(1, 6):
            other.cell(row=r, column=c, value=r * c if c % 2 else f"r{r}c{c}")
            other.cell(row=r, column=c).alignment = Alignment(vertical="top")
    return wb


def test_cells_of_every_kind_same_bytes() -> None:
    _assert_same(_mixed)


def test_empty_workbook_same_bytes() -> None:
    _assert_same(Workbook)


def _orders(n: int) -> pl.DataFrame:
    return pl.DataFrame({
        "rank": list(range(1, n + 1)),
        "cell_id": [f"46000-{k}" for k in range(n)],
        "cell_name": [("=x" if k % 7 == 0 else "小区 ") + str(k) for k in range(n)],
        "vendor": ["ZTE" if k % 3 else "Huawei" for k in range(n)],
        "region": ["north", "south"] * (n // 2) + ["east"] * (n % 2),
        "primary_cause": ["high_load" if k % 2 else "interference" for k in range(n)],
        "evidence": ["busy-hour UL interference -95.1 dBm & CQI < 7 " * (1 + k % 4)
                     for k in range(n)],
        "good_rate_browsing": [None if k % 5 == 0 else 0.5 + k / (4 * n) for k in range(n)],
        "priority_score": [float(n - k) / 3 for k in range(n)],
        "complaints": [k % 4 for k in range(n)],
    })


def test_work_order_workbook_same_bytes() -> None:
    orders = _orders(60)

    def build() -> Workbook:
        wb = Workbook()
        ws = wb.active
        ws.title = excel.SUMMARY_SHEET
        excel._summary_sheet(ws, orders, {"poor_cells": 60, "note": "x & y"}, None)
        excel._order_sheet(wb.create_sheet(excel.ALL_SHEET), orders, {"browsing": 0.8},
                           name="Orders1")
        return wb

    _assert_same(build)


@pytest.mark.parametrize("value", [*TEXTS, *NUMBERS, None, float("nan"), float("inf"),
                                   dt.date(2026, 1, 2), "nul\x00esc\x1b\x0bvt", "del\x7f",
                                   "bidi\u202eoverride\u2066", "=\x01SUM(A1)"])
def test_put_as_openpyxl_sets_a_value(value: object) -> None:
    """excel._put fills the cell as ``ws.cell().value = ...`` would (plus kqi's text rules)."""
    wb = Workbook()
    ws = wb.active
    cell = excel._put(ws, 3, 2, value)
    ref = Workbook().active.cell(row=3, column=2)
    if isinstance(value, str):
        # the characters openpyxl refuses, then kqi's (excel._put removes both in one go)
        ref.value = excel.clean_text(ILLEGAL_CHARACTERS_RE.sub("", value))
        ref.data_type = "s"
        if excel.formula_like(ref.value):
            ref.quotePrefix = True
    elif isinstance(value, float):
        ref.value = round(value, 6) if math.isfinite(value) else None
    else:
        ref.value = value
    assert (cell._value, cell.data_type, cell.quotePrefix, cell.number_format) == \
        (ref._value, ref.data_type, ref.quotePrefix, ref.number_format)
    assert ws._cells[(3, 2)] is cell
    assert ws.max_row == 3


COLUMN_VALUES = [*TEXTS, *NUMBERS, None, float("nan"), float("-inf"), dt.date(2026, 1, 2),
                 dt.datetime(2026, 1, 2, 3, 4), "nul\x00esc\x1b", "=\x01SUM(A1)", "-12.5", "-x"]


@pytest.mark.parametrize("fmt", [None, "0.000", "0.0%"])
@pytest.mark.parametrize("align", [None, Alignment(wrap_text=True, vertical="top")])
@pytest.mark.parametrize("existing", [False, True])
def test_put_column_as_put_then_format_and_alignment(fmt, align, existing) -> None:
    """excel._put_column (then _add_rows) makes the cells and styles of _put a cell, then
    cell.number_format on each value that is not text, then cell.alignment on each cell: the
    same saved sheet and styles, for every kind of value, over cells the sheet had or not."""
    def build(fast: bool) -> Workbook:
        wb = Workbook()
        ws = wb.active
        if existing:   # cells the sheet already has, some styled, one holding a formula
            for r in (2, 5, 9):
                ws.cell(row=r, column=2, value="old").font = Font(bold=True)
            ws.cell(row=7, column=2, value="=1+1")
        ws.cell(row=1, column=2, value="header")
        for k in range(len(COLUMN_VALUES)):   # a neighbour column, as a table has
            ws.cell(row=2 + k, column=3, value=k)
        fmt_id = align_id = None
        if fmt is not None:   # registered as _write_table registers it
            probe = Cell(ws)
            probe.number_format = fmt
            fmt_id = probe._style.numFmtId
        if align is not None:
            align_id = wb._alignments.add(align)
        if fast:
            dirty = any(isinstance(v, str) and excel.clean_text(v) != v for v in COLUMN_VALUES)
            made = excel._put_column(ws, 2, 2, COLUMN_VALUES, dirty=dirty, fmt_id=fmt_id,
                                     align_id=align_id)
            excel._add_rows(ws, [made])
        else:
            for r, value in enumerate(COLUMN_VALUES, start=2):
                cell = excel._put(ws, r, 2, value)
                if fmt is not None and not isinstance(value, str):
                    cell.number_format = fmt
                if align is not None:
                    cell.alignment = align
        return wb

    fast, slow = build(True), build(False)
    got = {k: (c._value, c.data_type, tuple(c._style) if c.has_style else None)
           for k, c in fast.active._cells.items()}
    want = {k: (c._value, c.data_type, tuple(c._style) if c.has_style else None)
            for k, c in slow.active._cells.items()}
    assert got == want
    added = [k for k in fast.active._cells if k[1] == 2]
    assert added == sorted(added) or existing   # added in reading order
    assert fast.active.max_row == slow.active.max_row
    assert fast.active._current_row == slow.active._current_row
    assert _sheets(save(fast)) == _sheets(save(slow))


def test_put_column_refuses_rows_past_the_last() -> None:
    ws = Workbook().active
    with pytest.raises(ValueError, match="Row numbers"):
        excel._put_column(ws, 1, 1_048_576, [1, 2], dirty=False, fmt_id=None, align_id=None)
    assert not ws._cells


def test_rows_as_iter_rows() -> None:
    """excel._rows gives the cells ws.iter_rows gives, and creates the same missing ones."""
    sheets = [Workbook().active, Workbook().active]
    for ws in sheets:
        for r, c in [(2, 3), (4, 1), (5, 5)]:
            ws.cell(row=r, column=c, value=r * c)
    expected = [[(c.row, c.column) for c in row] for row in sheets[0].iter_rows(min_row=2)]
    got = [[(c.row, c.column) for c in row] for row in excel._rows(sheets[1], 2)]
    assert got == expected
    assert sorted(sheets[0]._cells) == sorted(sheets[1]._cells)


def test_workbook_saved_by_openpyxl_where_the_fast_save_does_not_apply(tmp_path, monkeypatch
                                                                       ) -> None:
    """openpyxl writing through lxml (kqi._xlsx.usable false): openpyxl saves it, same bytes."""
    from kqi import _xlsx
    from kqi.io import write_workbook

    def build() -> Workbook:
        wb = Workbook()
        excel._order_sheet(wb.active, _orders(20), {"browsing": 0.8}, name="Orders1")
        return wb

    assert _xlsx.usable()  # the test environment has no lxml: the fast save is the one in use
    fast = write_workbook(tmp_path / "fast.xlsx", build()).read_bytes()
    monkeypatch.setattr(_xlsx, "usable", lambda: False)
    monkeypatch.setattr(_xlsx, "save", lambda wb: pytest.fail("the fast save used"))
    slow = write_workbook(tmp_path / "slow.xlsx", build()).read_bytes()
    assert slow == fast
