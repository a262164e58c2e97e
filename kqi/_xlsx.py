"""Saving an openpyxl workbook faster, to the same bytes.

openpyxl (without lxml, which kqi does not require) serialises every cell through the standard
library's element tree: an ``Element`` per cell, its attributes sorted out namespace by namespace,
and a write per piece. That is most of the time of saving a workbook of a few thousand orders.
:func:`save` writes the sheets' cells as text instead, for the cells kqi writes (strings, numbers
and booleans, styled or not, without comments or hyperlinks), with the same escaping and the same
markup as openpyxl, and leaves every other cell, and everything else in the file, to openpyxl.
``tests/test_xlsx_writer.py`` checks the bytes against openpyxl's own writer.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any
from warnings import warn
from xml.etree.ElementTree import _escape_cdata  # type: ignore[attr-defined]
from zipfile import ZIP_DEFLATED

from openpyxl.cell._writer import write_cell
from openpyxl.cell.cell import Cell
from openpyxl.comments.comment_sheet import CommentRecord
from openpyxl.compat import safe_string
from openpyxl.drawing.spreadsheet_drawing import SpreadsheetDrawing
from openpyxl.utils import get_column_letter, range_boundaries
from openpyxl.worksheet._writer import WorksheetWriter
from openpyxl.writer.excel import ExcelWriter

#: data types written as text here ("s" as an inline string, as openpyxl does)
_TYPES = {"s": "inlineStr", "n": "n", "b": "b"}
#: the fields of a cell without a style (openpyxl's StyleArray of nine zeros)
_UNSTYLED = (0,) * 9


class _SheetWriter(WorksheetWriter):
    """openpyxl's worksheet writer with the rows' cells written as text."""

    def write_rows(self) -> None:
        xf = self.xf.send(True)
        write = xf._file            # the stream's write function: text goes out as it is
        ws = self.ws
        styles = ws.parent._cell_styles
        style_ids: dict[tuple[int, ...], int] = {}
        letters: dict[int, str] = {}
        dims = ws.row_dimensions
        with xf.element("sheetData"):
            for row_idx, row in self.rows():
                attrs = {"r": f"{row_idx}"}
                attrs.update(dims.get(row_idx, {}))
                with xf.element("row", attrs):
                    parts: list[str] = []
                    for cell in row:
                        text = _cell_text(cell, styles, style_ids, letters)
                        if text is not None:
                            parts.append(text)
                            continue
                        # anything else as openpyxl writes it (the text so far first)
                        if parts:
                            write("".join(parts))
                            parts = []
                        if cell._comment is not None:
                            self.ws._comments.append(CommentRecord.from_cell(cell))
                        if cell._value is None and not cell.has_style and not cell._comment:
                            continue
                        write_cell(xf, ws, cell, cell.has_style)
                    if parts:
                        write("".join(parts))
        self.xf.send(None)


    def write_tables(self) -> None:
        # openpyxl names each table's columns from its header row, read as ws[table.ref][0]:
        # every cell of the table made into a tuple for the first row's; the same names here
        # from the header row alone (a one-cell ref, where ws[ref] is a cell, left to openpyxl)
        for table in self.ws.tables.values():
            min_col, min_row, max_col, max_row = range_boundaries(table.ref)
            if table.tableColumns or not table.headerRowCount or (min_col, min_row) == (max_col, max_row):
                continue
            table._initialise_columns()
            for c, col in zip(range(min_col, max_col + 1), table.tableColumns, strict=False):
                cell = self.ws.cell(row=min_row, column=c)
                if cell.data_type != "s":
                    warn("File may not be readable: column headings must be strings.", stacklevel=2)
                col.name = str(cell.value)
        super().write_tables()


def _cell_text(cell: Any, styles: Any, style_ids: dict[tuple[int, ...], int],
               letters: dict[int, str]) -> str | None:
    """The cell's markup as openpyxl writes it, ``""`` for a cell openpyxl leaves out, or
    ``None`` when openpyxl must write it (another kind of cell or value)."""
    if type(cell) is not Cell or cell._comment is not None or cell._hyperlink is not None:
        return None
    kind = _TYPES.get(cell.data_type)
    if kind is None:
        return None
    value = cell._value
    style = cell._style
    key = _UNSTYLED if style is None else tuple(style)
    if value is None and key == _UNSTYLED:
        return ""
    col = cell.column
    letter = letters.get(col)
    if letter is None:
        letter = letters[col] = get_column_letter(col)
    if key != _UNSTYLED:   # any field set: openpyxl's has_style
        sid = style_ids.get(key)
        if sid is None:   # registered in the order openpyxl would register it
            sid = style_ids[key] = styles.add(style)
        head = f'<c r="{letter}{cell.row}" s="{sid}" t="{kind}"'
    else:
        head = f'<c r="{letter}{cell.row}" t="{kind}"'
    if value is None or value == "":
        return head + " />"
    if kind == "inlineStr":
        if not isinstance(value, str):
            return None
        stripped = value.strip()
        space = ' xml:space="preserve"' if stripped and value != stripped else ""
        return f"{head}><is><t{space}>{_escape_cdata(value)}</t></is></c>"
    number = type(value)
    if (number is int or number is float) and value - value == 0:   # finite
        return f"{head}><v>{'%.16g' % value}</v></c>"  # noqa: UP031 (safe_string's format)
    text = safe_string(value)
    if text == "":
        return None
    return f"{head}><v>{_escape_cdata(text)}</v></c>"


class _Writer(ExcelWriter):
    def write_worksheet(self, ws: Any) -> None:
        # ExcelWriter.write_worksheet with the writer above (openpyxl 3.1)
        ws._drawing = SpreadsheetDrawing()
        ws._drawing.charts = ws._charts
        ws._drawing.images = ws._images
        if self.workbook.write_only:
            if not ws.closed:
                ws.close()
            writer = ws._writer
        else:
            writer = _SheetWriter(ws)
            writer.write()
        ws._rels = writer._rels
        self._archive.write(writer.out, ws.path[1:])
        self.manifest.append(ws)
        writer.cleanup()


def usable() -> bool:
    """Whether :func:`save` applies: openpyxl writes its XML through the standard library (with
    lxml installed it writes through lxml's stream, which takes no text)."""
    from openpyxl.xml import LXML

    return not LXML


def save(workbook: Any) -> bytes:
    """The workbook's xlsx bytes, as ``workbook.save`` writes them, then
    :func:`kqi.io.deterministic_zip` stores them (fixed times), in one compression."""
    from kqi.io import FixedZip

    buf = io.BytesIO()
    archive = FixedZip(buf, "w", ZIP_DEFLATED, allowZip64=True)
    workbook.properties.modified = dt.datetime.now(tz=dt.UTC).replace(tzinfo=None)
    _Writer(workbook, archive).save()
    return buf.getvalue()
