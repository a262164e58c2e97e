"""What a delimited file's first MiB says about how to read it: the delimiter, the decimal
separator and the line endings.

Detection never guesses silently: what it decided is reported (``FeedReport.detected``), and a
sample that allows two readings (values like ``1,234`` in a ``;`` file: one and a bit, or a
thousand?) stops with one line asking for the setting.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence

from kqi.errors import InputError

DELIMITERS = (",", "\t", ";", "|")
#: data rows of the sample looked at
SAMPLE_ROWS = 2000
_DEC_COMMA = re.compile(r"^[+-]?\d*,\d+(?:[eE][+-]?\d+)?$")
_DEC_POINT = re.compile(r"^[+-]?\d*\.\d+(?:[eE][+-]?\d+)?$")
#: ``1,234`` / ``12,345,678``: a thousands separator or a decimal comma, the value cannot say
_THOUSANDS_COMMA = re.compile(r"^[+-]?[1-9]\d{0,2}(?:,\d{3})+$")
_THOUSANDS_POINT_DEC_COMMA = re.compile(r"^[+-]?\d{1,3}(?:\.\d{3})+,\d+$")
_THOUSANDS_COMMA_DEC_POINT = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+\.\d+$")
_NULLS = frozenset({"", "-", "--", "na", "n/a", "nan", "null", "none", "#n/a", "\\n"})


def line_endings(sample: bytes) -> str:
    """``LF``, ``CRLF`` or ``CR`` (old Mac exports), from the first line break of ``sample``."""
    lf = sample.find(b"\n")
    cr = sample.find(b"\r")
    if cr < 0:
        return "LF"
    if lf < 0:
        return "CR"
    if cr == lf - 1:
        return "CRLF"
    return "CR" if cr < lf and sample.count(b"\n") * 4 < sample.count(b"\r") else "LF"


def sniff_delimiter(header: str, lines: Sequence[str]) -> str:
    """The delimiter of a header line and the data lines after it.

    The candidates (``,`` tab ``;`` ``|``) that occur in the header are tried in order of their
    count there; the first that splits the header and most of the data lines into the same
    number of fields (more than one) wins. Failing that, the header's commonest one; a header
    with none of them is one column (``,``).
    """
    counts = {d: header.count(d) for d in DELIMITERS}
    ranked = sorted((d for d in DELIMITERS if counts[d]), key=lambda d: (-counts[d], DELIMITERS.index(d)))
    if not ranked:
        return ","
    data = [ln for ln in lines[:50] if ln.strip()]
    if data:
        for d in ranked:
            width = _fields(header, d)
            if width < 2:
                continue
            same = sum(_fields(ln, d) == width for ln in data)
            if same * 2 > len(data):
                return d
    return ranked[0]


def _fields(line: str, delimiter: str) -> int:
    try:
        return len(next(csv.reader([line], delimiter=delimiter, strict=False)))
    except (csv.Error, StopIteration):
        return 0


def detect_decimal(path: object, header: list[str], rows: list[list[str]], feed: str = "<feed>") -> str:
    """``.`` or ``,``: the decimal separator the sample's numeric columns are written with.

    A column is counted only when every value in the sample is a number (or empty): a decimal
    comma column has values like ``30,641785`` or ``0,5``, a decimal point one ``30.641785``.
    Both kinds in one file, or only values like ``1,234`` (a thousands separator or a decimal
    comma), stop with one line asking for ``[ingest.read.<feed>] decimal``.
    """
    comma_cols: list[str] = []
    point_cols: list[str] = []
    unsure: list[tuple[str, str]] = []
    for j, name in enumerate(header):
        values = [r[j].strip() for r in rows if j < len(r)]
        values = [v for v in values if v.lower() not in _NULLS]
        if not values:
            continue
        comma = point = thousands = 0
        for v in values:
            if _THOUSANDS_COMMA.match(v):
                thousands += 1
            elif _DEC_COMMA.match(v) or _THOUSANDS_POINT_DEC_COMMA.match(v):
                comma += 1
            elif _DEC_POINT.match(v) or _THOUSANDS_COMMA_DEC_POINT.match(v):
                point += 1
            elif not _is_int(v):
                break
        else:
            if comma and not point:
                comma_cols.append(name)
            elif point and not comma:
                point_cols.append(name)
            elif comma and point:
                raise InputError(str(path), "numbers written with both a decimal comma and a "
                                 f"decimal point; set [ingest.read.{feed}] decimal = ',' or '.'",
                                 column=name)
            elif thousands:
                unsure.append((name, next(v for v in values if _THOUSANDS_COMMA.match(v))))
    if comma_cols and point_cols:
        raise InputError(str(path), f"column '{comma_cols[0]}' has decimal commas and column "
                         f"'{point_cols[0]}' decimal points; set [ingest.read.{feed}] decimal = ',' or '.'")
    if comma_cols:
        return ","
    if point_cols or not unsure:
        return "."
    name, value = unsure[0]
    raise InputError(str(path), f"values like '{value}' read as {value.replace(',', '.')} (decimal "
                     f"comma) or {value.replace(',', '')} (thousands separator); set "
                     f"[ingest.read.{feed}] decimal = ',' or '.'", column=name)


def _is_int(v: str) -> bool:
    s = v[1:] if v[:1] in "+-" else v
    return s.isdigit()
