"""Spreadsheets (xlsx, xlsm, xlsb, xls, ods) read through ``polars.read_excel`` with the
calamine engine (fastexcel): one sheet, the first unless ``[ingest.read.<feed>] sheet`` names
another, validated exactly as a table in memory.

A rejected row's ``line`` is its row number in the sheet (the header row being row
``header_row``, 1 by default), counted from the sheet's first non-empty row. Blank rows are not
records, as blank lines in a CSV.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from kqi.errors import InputError

from ._sources import FrameSource
from ._text import RawChunk, _dedupe

#: the first bytes of an OLE2 compound file (the old .xls)
_OLE2 = bytes.fromhex("d0cf11e0a1b11ae1")
_ZIP = b"PK\x03\x04"


def spreadsheet_kind(path: Path, head: bytes) -> str | None:
    """``xlsx`` / ``xls`` / ``ods`` when ``path`` is a spreadsheet (by its bytes, not its
    name), else ``None``."""
    if head.startswith(_OLE2):
        return "xls"
    if not head.startswith(_ZIP):
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "xl/workbook.xml" in names or "xl/workbook.bin" in names:
                return "xlsx"
            if "mimetype" in names and zf.read("mimetype").startswith(
                    b"application/vnd.oasis.opendocument.spreadsheet"):
                return "ods"
    except (zipfile.BadZipFile, OSError, KeyError):
        return None
    return None


class ExcelSource(FrameSource):
    """One sheet of a spreadsheet, read whole (sheets are small next to CSV exports)."""

    def __init__(self, path: Path, kind: str, batch_rows: int, *, sheet: str | int | None = None,
                 header_row: int = 1) -> None:
        try:
            import fastexcel
        except ImportError:  # pragma: no cover - a declared dependency
            raise InputError(path, "reading spreadsheets needs the fastexcel package "
                             "(pip install fastexcel)") from None
        try:
            names = list(fastexcel.read_excel(path).sheet_names)
        except Exception as exc:
            raise InputError(path, f"cannot read the {kind} file ({_one_line(exc)})") from None
        if not names:
            raise InputError(path, f"the {kind} file has no sheet")
        if sheet is None:
            name = names[0]
        elif isinstance(sheet, int):
            if sheet > len(names):
                raise InputError(path, f"no sheet {sheet}: the file has {len(names)} "
                                 f"({', '.join(names[:10])})")
            name = names[sheet - 1]
        else:
            if sheet not in names:
                raise InputError(path, f"no sheet named '{sheet}' (sheets: {', '.join(names[:10])})")
            name = sheet
        try:
            df = pl.read_excel(path, sheet_name=name, engine="calamine",
                               read_options={"header_row": header_row - 1, "dtype_coercion": "coerce"},
                               infer_schema_length=None, drop_empty_rows=False,
                               drop_empty_cols=False, raise_if_empty=False)
        except Exception as exc:
            raise InputError(path, f"cannot read sheet '{name}' ({_one_line(exc)})") from None
        assert isinstance(df, pl.DataFrame)
        cols = _dedupe(["" if c.startswith("__UNNAMED__") else c for c in df.columns])
        df = df.rename(dict(zip(df.columns, cols, strict=True)))
        # blank rows are not records; the others keep their sheet row number
        lines = np.arange(header_row + 1, header_row + 1 + df.height, dtype=np.int64)
        if df.height and df.width:
            blank = df.select(pl.all_horizontal(_blank(c, df.schema[c]) for c in df.columns)).to_series()
            if blank.any():
                keep = ~blank
                lines = lines[keep.to_numpy()]
                df = df.filter(keep)
        self._lines = lines
        super().__init__(df, str(path), batch_rows)
        self.path = path
        self.encoding = kind
        self.kind = kind
        self.sheet = name
        self.sheets = names
        self.header_row = header_row
        self._df = df
        with path.open("rb") as fh:
            self._file_sha = hashlib.file_digest(fh, "sha256").hexdigest()

    @property
    def detected(self) -> dict[str, object]:
        return {"format": self.kind, "sheet": self.sheet, "sheets": len(self.sheets),
                "header_row": self.header_row}

    @property
    def sha256(self) -> str:
        return self._file_sha

    def finish_hash(self) -> None:
        """The file's digest is taken when it is opened."""

    def chunks(self) -> Iterator[RawChunk]:
        wanted = self._wanted if self._wanted is not None else self.columns
        df = self._df.select(wanted)
        for start in range(0, df.height, self._batch_rows):
            frame = df.slice(start, self._batch_rows)
            yield RawChunk(frame, self._lines[start:start + frame.height])


def _blank(name: str, dtype: pl.DataType) -> pl.Expr:
    c = pl.col(name)
    if dtype == pl.String:
        return c.is_null() | (c.str.strip_chars() == "")
    return c.is_null()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
