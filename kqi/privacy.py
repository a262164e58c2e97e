"""Keeping subscriber numbers (MSISDN) out of every output.

The complaints feed's ``msisdn`` column is dropped right after validation; this module covers the
other ways a number gets through: a caller's number typed into the free-text description, and a
phone column whose header is not among the aliases (联系电话, 手机号码, "Contact no." ...).

Numbers are recognised, not guessed from any digit run: a mainland-China mobile number (11 digits
starting 1[3-9], optionally with +86 / 0086), an international number written with + or 00 and
8-15 digits, and the exact number(s) the ticket carries. Timestamps, ids and counts stay intact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import polars as pl

#: what a removed number becomes: keeps the last two digits so a call-centre agent can match a
#: ticket they hold, without the number itself
MASK = "***"
KEEP = 2

_CN_MOBILE = r"(?:(?:\+|00)86[ -]?)?1[3-9]\d{9}"
_INTERNATIONAL = r"(?:\+|00)[1-9]\d{7,14}"
_PHONE = re.compile(rf"(?<![\dA-Za-z])(?:{_CN_MOBILE}|{_INTERNATIONAL})(?![\dA-Za-z])")

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
    return _PHONE.sub(lambda m: mask_number(m.group(0)), text)


def scrub_series(texts: pl.Series, known: pl.Series | None = None) -> pl.Series:
    """:func:`scrub_text` over a text column; ``known`` holds each row's own number(s).

    Complaint feeds are thousands of rows, not millions: a plain loop is clear and fast enough.
    """
    own = known.cast(pl.String).to_list() if known is not None else [None] * texts.len()
    return pl.Series(texts.name, [scrub_text(t, (k,) if k else ()) for t, k in
                                  zip(texts.cast(pl.String).to_list(), own, strict=True)],
                     dtype=pl.String)


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
