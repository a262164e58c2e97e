"""Keeping subscriber numbers (MSISDN) out of every output.

The complaints feed's ``msisdn`` column is dropped right after validation; this module covers the
other ways a number gets through: a caller's number typed into the free-text description, and a
phone column whose header is not among the aliases (联系电话, 手机号码, "Contact no." ...).

Numbers are recognised, not guessed from any digit run, in the forms people type them: a
mainland-China mobile number (11 digits starting 1[3-9]) with or without a country code (``+86``,
``0086``, ``86``, ``(+86)``), its digits run together or grouped 3-4-4 / 3-8 / 7-4 by spaces,
dashes, dots, slashes or brackets; an international number written with ``+`` or ``00`` and 8-15
digits (brackets such as ``(0)20`` or ``(415)`` allowed); a mainland landline with its area code
(``010-6234 5678``, ``(0755) 8123 4567``); full-width digits and signs (``１３８…``, ``＋８６``) like
their ASCII forms; and the exact number(s) the ticket carries. Timestamps, epoch seconds, ids
(cell ids, ECIs, ECGIs), coordinates and counts stay intact (tests/test_hardening_privacy.py
measures both errors).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import polars as pl

#: what a removed number becomes: keeps the last two digits so a call-centre agent can match a
#: ticket they hold, without the number itself
MASK = "***"
KEEP = 2

# full-width digits and signs, and the spaces people paste, read as their ASCII forms; one character
# for one, so a match's span in the translated text is its span in the original
_ASCII = str.maketrans({**{chr(0xFF10 + i): str(i) for i in range(10)}, "＋": "+", "－": "-",
                        "（": "(", "）": ")", "．": ".", "／": "/", "\u3000": " ", "\u00a0": " ",
                        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-"})
_SEP = r"[ \t\-./]{0,3}"          # between digit groups: "138 1234 5678", "138-1234-5678", " - "
# a dot only as "138.1234.5678": "139.12345678" and "131.1234 5678" are longitudes, not numbers
_SEP_NODOT = r"[ \t\-/]{0,3}"
_CC86 = r"(?:(?:\+|00)[ ]?86|\(\s*\+?\s*86\s*\)|86)"
_CN_MOBILE = (rf"(?:{_CC86}{_SEP})?\(?1[3-9]\d\)?"
              rf"(?:{_SEP_NODOT}\d{{4}}{_SEP_NODOT}\d{{4}}|\.\d{{4}}\.\d{{4}}|{_SEP_NODOT}\d{{8}})"
              rf"|(?:{_CC86}{_SEP})?1[3-9]\d{{5}}{_SEP_NODOT}\d{{4}}")
_INTERNATIONAL = r"(?:\+|00)[ ]?[1-9](?:[ \t\-./()]{0,3}\d){7,14}"
_LANDLINE = rf"\(?0[1-9]\d{{1,2}}\)?{_SEP}\d{{3,4}}{_SEP}\d{{4}}"
# not inside a word or a longer digit run, and not the decimals of a number ("0.13912345678")
_PHONE = re.compile(rf"(?<![\dA-Za-z])(?<!\d[.,])(?:{_CN_MOBILE}|{_INTERNATIONAL}|{_LANDLINE})"
                    r"(?![\dA-Za-z])")
#: a cheap superset of :data:`_PHONE` for polars (Rust regex, no look-behind): seven digits
#: (any script's, as Python's ``\d``) with short separators (every character :data:`_ASCII` reads
#: as one), the first of them not after a letter or a digit (in every form of :data:`_PHONE` the
#: first digit follows the start, a sign, a bracket or a space, inside the match or before it;
#: ids such as ``C20261102000001`` are then not looked at in Python)
_CANDIDATE = (r"(?:^|[^\dA-Za-z])\d"
              r"(?:[\s\-./()（）＋+－．／\x{2010}-\x{2014}]{0,3}\d){6,}")
#: headers of columns that hold a person's number, whatever their values look like
PHONE_HEADER = re.compile(
    r"(?:^|[_\s])(?:msisdn|phone|mobile|tel|telephone|contact|callback|cellphone)(?:[_\s]|no|$)"
    r"|手机|电话|联系|号码|msisdn|phone", re.IGNORECASE)

#: share of a column's non-empty values that must look like phone numbers to treat it as one
PHONE_COLUMN_SHARE = 0.6


def mask_number(number: str) -> str:
    """A number found in text: ``+86 138-1234-5678`` -> ``***78``."""
    digits = re.sub(r"\D", "", number)
    return MASK + digits[-KEEP:] if len(digits) >= KEEP else MASK


def mask_msisdn(s: pl.Series) -> pl.Series:
    """A whole MSISDN column: ``***`` and the last :data:`KEEP` characters (``***`` alone for a
    value too short to hide anything by cutting)."""
    t = s.cast(pl.String).str.strip_chars()
    return pl.select(
        pl.when(pl.lit(t).is_null() | (pl.lit(t) == "")).then(pl.lit(t))
        .when(pl.lit(t).str.len_chars() > KEEP * 2)
        .then(pl.lit(MASK) + pl.lit(t).str.slice(-KEEP, KEEP))
        .otherwise(pl.lit(MASK))
    ).to_series().alias(s.name)


def scrub_text(text: str | None, known: Iterable[str] = ()) -> str | None:
    """Replace phone numbers in ``text`` (and any of the ``known`` numbers) by their mask."""
    if not text:
        return text
    for number in known:
        if number and len(number) >= 5 and number in text:
            text = text.replace(number, mask_number(number))
    ascii_ = text.translate(_ASCII)
    spans = [m.span() for m in _PHONE.finditer(ascii_)]
    if not spans:
        return text
    parts, pos = [], 0
    for a, b in spans:
        parts += [text[pos:a], mask_number(ascii_[a:b])]
        pos = b
    parts.append(text[pos:])
    return "".join(parts)


def is_phone_header(name: str) -> bool:
    """Whether a column header names a phone number (``msisdn``, ``contact_no``, 联系电话, 手机号 ...)."""
    return bool(PHONE_HEADER.search(name.strip()))


def scrub_series(texts: pl.Series, known: pl.Series | None = None) -> pl.Series:
    """:func:`scrub_text` over a text column; ``known`` holds each row's own number(s).

    Values without a run of seven digits or their own number are skipped in polars; the rest go
    through the regex.
    """
    t = texts.cast(pl.String)
    own = known.cast(pl.String) if known is not None else None
    # only values with a run of digits can hold a number: the others are not looked at in Python
    todo = t.str.contains(_CANDIDATE).fill_null(False)
    if own is not None:  # and the values holding their own number (scrub_text's ``known``)
        todo = todo | pl.select(
            (pl.lit(own).str.len_chars() >= 5)
            & pl.lit(t).str.contains(pl.lit(own), literal=True)).to_series().fill_null(False)
    if not todo.any():
        return t.alias(texts.name)
    idx = todo.arg_true()
    sub_t = t.gather(idx).to_list()
    sub_k = own.gather(idx).to_list() if own is not None else [None] * len(idx)
    done = pl.Series(texts.name, [scrub_text(v, (k,) if k else ()) for v, k in
                                  zip(sub_t, sub_k, strict=True)], dtype=pl.String)
    return t.scatter(idx, done).alias(texts.name)


class ScrubFilter(logging.Filter):
    """A logging filter that masks phone numbers in every record's message (CLI handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = scrub_text(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def looks_like_phone_column(values: pl.Series) -> bool:
    """True when most non-empty values of a text column are phone numbers."""
    s = values.cast(pl.String, strict=False).drop_nulls().str.strip_chars()
    s = s.filter(s != "")
    if s.len() == 0:
        return False
    full = rf"^(?:{_CN_MOBILE}|{_INTERNATIONAL}|\d{{7,15}})$"
    share = s.str.contains(full).sum() / s.len()
    has_mobile = s.str.contains(rf"^(?:{_CN_MOBILE}|{_INTERNATIONAL})$").any()
    return bool(share >= PHONE_COLUMN_SHARE and has_mobile)
