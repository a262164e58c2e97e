"""Subscriber numbers are recognised and masked; timestamps, ids and counts are not."""

from __future__ import annotations

import polars as pl
import pytest

from kqi.privacy import looks_like_phone_column, mask_number, scrub_series, scrub_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("用户要求回电 14749779382", "用户要求回电 ***82"),
        ("call back +86 13812345678 please", "call back ***78 please"),
        ("call back +8613812345678", "call back ***78"),
        ("UK caller +447700900123", "UK caller ***23"),
        ("00447700900123,again", "***23,again"),
        ("two: 13800000001/13900000002", "two: ***01/***02"),
        # not numbers of people
        ("ticket C20261103000061 at 2026-11-03 20:39:42", "ticket C20261103000061 at 2026-11-03 20:39:42"),
        ("eci 4926720 cell 460-00-870362-3", "eci 4926720 cell 460-00-870362-3"),
        ("epoch 1762200000 and 12345678901234", "epoch 1762200000 and 12345678901234"),
        ("", ""),
        (None, None),
    ],
)
def test_scrub_text(text: str | None, expected: str | None) -> None:
    assert scrub_text(text) == expected


def test_known_number_in_any_form_is_masked() -> None:
    assert scrub_text("my number is 5551234", known=["5551234"]) == "my number is ***34"
    assert mask_number("+86 138-1234-5678") == "***78"


def test_scrub_series_uses_each_rows_own_number() -> None:
    texts = pl.Series("description", ["call 5551234", "slow video", None, "ring 5551234"])
    own = pl.Series("msisdn", ["5551234", "5559999", None, None])
    out = scrub_series(texts, own)
    assert out.to_list() == ["call ***34", "slow video", None, "ring 5551234"]
    assert out.name == "description"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["13812345678", "13912345678", "", None, "15012345678"], True),
        (["+447700900123", "+447700900124"], True),
        (["460-00-1-1", "460-00-1-2"], False),
        (["2026-11-03", "2026-11-04"], False),
        (["1762200000", "1762200001"], False),       # epoch seconds, no mobile among them
        (["slow", "13812345678", "video", "x"], False),  # one number in free text
        ([], False),
    ],
)
def test_phone_column_detection(values: list[str | None], expected: bool) -> None:
    assert looks_like_phone_column(pl.Series(values, dtype=pl.String)) is expected
