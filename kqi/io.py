"""Writing outputs: atomically (temp file, then rename), deterministically, and safely.

Text cells that a spreadsheet would run as a formula (starting with = + - @, or a tab / carriage
return) are made inert by a leading apostrophe; numbers, also written as text (``-110.5``,
``+5``, ``-1e3``), are left alone. Characters that corrupt a file or fool a reader are removed from
every text cell: C0 control characters except tab, line feed and carriage return (NUL, ESC, form
feed ...), DEL, and the Unicode bidirectional overrides (which can show a name backwards).
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: the same first characters as a pattern (for polars' expressions over whole columns)
_FORMULA_PATTERN = r"^[=+\-@\t\r]"
#: characters removed from every text cell written (see the module docstring)
CONTROL = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]"
_CONTROL = re.compile(CONTROL)
#: a plain number: not run by a spreadsheet, so not prefixed
NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_NUMBER = re.compile(NUMBER)
_UMASK = os.umask(0)  # read once at import (os.umask can only be read by setting it)
os.umask(_UMASK)


def formula_like(value: str) -> bool:
    """Whether a spreadsheet would run ``value`` as a formula: it starts with ``= + - @``, a tab
    or a carriage return and is not a plain number (``-110.5`` is a number, not a formula)."""
    return value.startswith(_FORMULA_START) and not _NUMBER.match(value)


def clean_text(value: str) -> str:
    """``value`` without the characters removed from every text cell (module docstring)."""
    return _CONTROL.sub("", value)


def inert_text(value: str | None) -> str | None:
    """Return ``value`` made safe for CSV: formula-like text gets a leading apostrophe (the
    workbook stores such text as a string cell instead, kqi.excel)."""
    if value is None or value == "":
        return value
    value = clean_text(value)
    if formula_like(value):
        return "'" + value
    return value


def inert_header(name: str) -> str:
    """A column header made inert like a text cell, on one line (line breaks become spaces)."""
    return inert_text(re.sub(r"[\r\n\t]+", " ", name)) or name


#: what a text cell that :func:`make_inert` changes contains: a removed character, or a formula's
#: first character at its start (a cell with neither is written as it is)
_INERT_CHANGES = CONTROL + "|" + _FORMULA_PATTERN


def make_inert(df: pl.DataFrame) -> pl.DataFrame:
    """Apply :func:`inert_text` to every string column of ``df``.

    A column none of whose cells :func:`inert_text` would change is left as it is, found by one
    search for :data:`_INERT_CHANGES`: the replace and the two searches a cell of the rewrite
    take ~7x longer (0.58 against 0.08 CPU-s on the 2 M-row daily table at 50,000 cells)."""
    strings = [name for name, dtype in df.schema.items() if dtype == pl.String]
    if not strings:
        return df
    changes = df.select(pl.col(n).str.contains(_INERT_CHANGES).any() for n in strings).row(0)
    exprs = []
    for name, changed in zip(strings, changes, strict=True):
        if changed:
            col = pl.col(name).str.replace_all(CONTROL, "")
            exprs.append(
                pl.when(col.str.contains(_FORMULA_PATTERN) & ~col.str.contains(NUMBER))
                .then(pl.lit("'") + col)
                .otherwise(col)
                .alias(name)
            )
    return df.with_columns(exprs) if exprs else df


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; outputs are shared with colleagues and web servers: honour the umask
    os.chmod(tmp_path, 0o666 & ~_UMASK)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False,
                                       default=str) + "\n")


def write_csv(path: str | Path, df: pl.DataFrame, *, inert: bool = True, bom: bool = False) -> Path:
    """Write ``df`` as UTF-8 CSV atomically; string cells made formula-inert unless told not to.

    ``bom``: start with the UTF-8 byte order mark, so that Excel opening the file by a double
    click reads it as UTF-8 (Chinese names intact); polars, pandas and DuckDB skip the mark, and
    Python's ``csv`` module reads it with ``encoding="utf-8-sig"``.
    """
    out = make_inert(df) if inert else df
    with atomic_path(path) as tmp:
        out.write_csv(tmp, float_precision=6, datetime_format="%Y-%m-%d %H:%M:%S",
                      include_bom=bom)
    return Path(path)


def write_parquet(path: str | Path, df: pl.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=True)
    return Path(path)


#: the time stamped into a workbook's zip entries and document properties: outputs depend on the
#: inputs and the config only, so two runs give the same bytes (run times are in run_info.json)
FIXED_TIME = (2000, 1, 1, 0, 0, 0)
_CORE_TIME = re.compile(r"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)")


def fixed_entry(name: str, body: bytes, external_attr: int) -> tuple[zipfile.ZipInfo, bytes]:
    """A workbook's zip entry as it is stored: the time :data:`FIXED_TIME`, deflated, the file's
    attributes ``external_attr``, and in ``docProps/core.xml`` the document-property times fixed."""
    if name == "docProps/core.xml":
        stamp = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z".format(*FIXED_TIME)
        body = _CORE_TIME.sub(lambda m: m.group(1) + stamp + m.group(2),
                              body.decode("utf-8")).encode("utf-8")
    entry = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    entry.compress_type = zipfile.ZIP_DEFLATED
    entry.external_attr = external_attr
    return entry, body


class FixedZip(zipfile.ZipFile):
    """A zip (write mode) whose every entry is stored by :func:`fixed_entry`: the bytes
    :func:`deterministic_zip` makes of the same entries, without a second compression.
    ``compress_type`` and ``compresslevel`` are ignored: every entry is deflated at the default
    level, as :func:`deterministic_zip` stores it."""

    def writestr(self, zinfo_or_arcname: str | zipfile.ZipInfo, data: Any,
                 compress_type: int | None = None, compresslevel: int | None = None) -> None:
        if isinstance(zinfo_or_arcname, zipfile.ZipInfo):
            name, attr = zinfo_or_arcname.filename, zinfo_or_arcname.external_attr
        else:   # the attributes ZipFile.writestr gives an entry named by a string
            name = zinfo_or_arcname
            attr = (0o40775 << 16) | 0x10 if name.endswith("/") else 0o600 << 16
        body = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        super().writestr(*fixed_entry(name, body, attr))

    def write(self, filename: Any, arcname: Any = None, compress_type: int | None = None,
              compresslevel: int | None = None) -> None:
        info = zipfile.ZipInfo.from_file(filename, arcname)   # the file's attributes
        with open(filename, "rb") as f:
            self.writestr(info, f.read())


def deterministic_zip(data: bytes) -> bytes:
    """``data`` (a zip: xlsx) with fixed entry times and fixed document-property times."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, \
            zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(*fixed_entry(info.filename, src.read(info.filename), info.external_attr))
    return out.getvalue()


def _fast_save(workbook: Any) -> bytes | None:
    """:func:`kqi._xlsx.save`, or ``None`` where it does not apply (openpyxl writing through
    lxml, whose stream it cannot write text to)."""
    from kqi import _xlsx

    return _xlsx.save(workbook) if _xlsx.usable() else None


def write_workbook(path: str | Path, workbook: Any) -> Path:
    """Save an openpyxl workbook atomically and byte-deterministically (the cells written as text
    by :func:`kqi._xlsx.save`: the bytes openpyxl writes, faster).

    ``kqi._xlsx`` writes into openpyxl's own (standard-library) XML stream, openpyxl 3.1's
    internals (pinned in pyproject.toml); where openpyxl writes through lxml instead, the workbook
    is saved by openpyxl itself, slower."""
    data = _fast_save(workbook)   # already deterministic (its entries stored by FixedZip)
    if data is None:
        buf = io.BytesIO()
        workbook.save(buf)
        data = deterministic_zip(buf.getvalue())
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


_MD_SPECIAL = re.compile(r"([\\`*\[\]|~#!])")


def md_text(value: str) -> str:
    """A name made inert in Markdown: one line, HTML escaped, markup characters backslashed."""
    one_line = " ".join(_CONTROL.sub("", value).split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))


def md_safe(data: Any) -> Any:
    """A JSON-like structure with every string (keys too) passed through :func:`md_text`."""
    if isinstance(data, str):
        return md_text(data)
    if isinstance(data, dict):
        return {md_text(k) if isinstance(k, str) else k: md_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [md_safe(v) for v in data]
    return data
