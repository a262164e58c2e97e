"""Issue 12, class 1: no personal number leaves kqi in any typed form, and nothing else is masked.

Both errors are measured: every form in :data:`hostile_cases.CN_FORMS` / ``OTHER_FORMS`` (and
hypothesis-generated ones) must be masked; every string in ``NOT_PHONES`` (ids, ECIs, timestamps,
coordinates, counts) and generated timestamps / coordinates must come out unchanged.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import hostile_cases as hc
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kqi.ingest import Ingest

from kqi.config import Config
from kqi.privacy import is_phone_header, scrub_series, scrub_text

CASES = hc.phone_cases()


@pytest.mark.parametrize(("form", "digits"), CASES, ids=[c[0] for c in CASES])
def test_every_typed_form_is_masked(form: str, digits: str) -> None:
    out = scrub_text(f"请回电 {form} 谢谢")
    assert not hc.leaks(out, digits), out
    assert out.startswith("请回电 ")
    assert out.endswith(" 谢谢")
    # the column path (its polars prefilter) gives the same, the form alone and after text too
    for text in (f"请回电 {form} 谢谢", form, f"call{form}", f"C{form}", f"({form})", f"x（{form}）"):
        assert scrub_series(pl.Series([text])).to_list() == [scrub_text(text)]


@pytest.mark.parametrize("text", hc.NOT_PHONES)
def test_ids_times_coordinates_and_counts_survive(text: str) -> None:
    assert scrub_text(text) == text
    assert scrub_series(pl.Series([text])).to_list() == [text]


_SEPS = st.sampled_from(["", " ", "-", " - ", "\u00a0", "/"])
_FULL = str.maketrans("0123456789+", "０１２３４５６７８９＋")


@settings(max_examples=300, deadline=None)
@given(second=st.integers(3, 9), rest=st.text("0123456789", min_size=9, max_size=9), sep=_SEPS,
       prefix=st.sampled_from(["", "+86 ", "+86", "86", "0086 ", "(+86) ", "86-"]),
       full=st.booleans(), before=st.sampled_from(["", "tel:", "电话", "call ", "("]),
       after=st.sampled_from(["", "。", " ok", ")", ",", "谢谢"]))
def test_generated_mobile_numbers_are_masked(*, second: int, rest: str, sep: str, prefix: str,
                                             full: bool, before: str, after: str) -> None:
    digits = f"1{second}{rest}"
    typed = prefix + sep.join([digits[:3], digits[3:7], digits[7:]])
    if full:
        typed = typed.translate(_FULL)
    out = scrub_text(before + typed + after)
    assert not hc.leaks(out, digits), out


@settings(max_examples=200, deadline=None)
@given(ts=st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1)),
       lat=st.floats(-90, 90), lon=st.floats(-180, 180),
       eci=st.integers(0, (1 << 28) - 1), count=st.integers(0, 10**9))
def test_generated_non_numbers_survive(ts, lat: float, lon: float, eci: int, count: int) -> None:
    for text in (ts.strftime("%Y-%m-%d %H:%M:%S"), ts.strftime("%Y%m%d%H%M%S"), f"{lat:.6f},{lon:.6f}",
                 f"{lon:.8f} {lat:.8f}", str(eci), f"460-00-{eci >> 8}-{eci & 255}", str(count),
                 str(int(ts.replace(tzinfo=dt.UTC).timestamp()))):
        assert scrub_text(text) == text


@pytest.mark.parametrize("text", [
    "请回电 138–1234–5678 谢谢", "138‐1234‐5678", "138．1234．5678", "+44—20—7946—0958",
    "010／6234／5678", "+966 ٥٠٥١٢٣٤٥٦٧", "call 138\u20111234\u20115678"])
def test_numbers_typed_with_word_processor_signs_are_masked_in_a_column(text: str) -> None:
    # dashes, full-width dot and slash, other scripts' digits: read as their ASCII forms by
    # scrub_text, so the column path's prefilter must pick them (with or without an own number)
    for own in (None, "13900000000"):
        got = scrub_series(pl.Series([text]), pl.Series([own], dtype=pl.String)).to_list()
        assert got == [scrub_text(text, (own,) if own else ())]
        assert got != [text]


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from(["1", "3", "8", "0", "86", "138", "1234", "5678", "００", "１３８",
                                       "٥٠٥", "𝟏𝟑𝟖", " ", "-", ".", "/", "(", ")", "+", "＋", "（",
                                       "）", "－", "．", "／", "\u2010", "\u2011", "–", "—", "C", "x",
                                       "号", ",", "\u3000", "\u00a0", "\n"]), max_size=24),
       own=st.sampled_from([None, "", "1234", "13812345678", "5678", "86138"]))
def test_the_column_path_scrubs_as_the_text_path(parts: list[str], own: str | None) -> None:
    # scrub_series looks in Python only at the values its polars prefilter picks: that must be
    # every value scrub_text would change
    text = "".join(parts)
    got = scrub_series(pl.Series([text]), pl.Series([own], dtype=pl.String)).to_list()
    assert got == [scrub_text(text, (own,) if own else ())]


@pytest.mark.parametrize(("header", "phone"), [
    ("msisdn", True), ("phone", True), ("Contact", True), ("contact_no", True), ("联系电话", True),
    ("手机号", True), ("Mobile", True), ("tel", True), ("cell_id", False), ("site", False),
    ("lat", False), ("小区ID", False), ("description", False), ("ts", False),
])
def test_phone_headers(header: str, phone: bool) -> None:
    assert is_phone_header(header) is phone


CELLS = "cell_id,site_id,lat,lon,azimuth\nC1,S1,31.0,121.0,0\nC2,S1,31.0,121.0,120\n"


def _text(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in folder.rglob("*.csv"))


@pytest.mark.parametrize("header", ["msisdn", "phone", "contact", "联系电话", "手机号", "notes"])
def test_phone_columns_of_every_feed_are_masked_in_rejects(tmp_path: Path, header: str) -> None:
    """A rejected cells / KPI row carries phone columns: masked, and so is the reason's value."""
    lines = [f"cell_id,site_id,lat,lon,azimuth,{header}"]
    for k, (form, _) in enumerate(CASES):
        lines.append(f'X{k},S1,{form if k % 2 else 999},121.0,0,"{form}"')
    p = tmp_path / "cells.csv"
    p.write_text("\n".join([*lines, "C1,S1,31.0,121.0,0,"]) + "\n", encoding="utf-8")
    ing = Ingest(Config(), tmp_path / "rejects")
    ing.cells(p)
    text = _text(tmp_path / "rejects")
    assert ing.reports["cells"].rows_rejected == len(CASES)
    leaked = [form for form, digits in CASES if hc.leaks(text, digits)]
    assert not leaked


def test_numbers_as_ids_categories_and_names_are_masked(tmp_path: Path) -> None:
    (tmp_path / "cells.csv").write_text(
        "cell_id,site_id,lat,lon,azimuth,vendor,region,cell_name\n"
        "C1,S1,31.0,121.0,0,ZTE 13812345678,+44 7700 900123,call 010-62345678\n", encoding="utf-8")
    cells = Ingest(Config(), None).cells(tmp_path / "cells.csv")
    row = cells.row(0, named=True)
    assert (row["vendor"], row["region"], row["cell_name"]) == ("ZTE ***78", "***23", "call ***78")
    rows = ["complaint_id,ts,lat,lon,category,msisdn,description"]
    for form, _ in CASES:
        rows.append(f'"{form}",2026-11-02 08:00:00,31.0,121.0,"{form}",,"x"')
    (tmp_path / "complaints.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ing = Ingest(Config(), tmp_path / "rejects")
    out = ing.complaints(tmp_path / "complaints.csv", cells)
    assert out.height == len(CASES)  # masked ids stay unique (line number appended)
    assert out["complaint_id"].n_unique() == len(CASES)
    text = out.write_csv()
    assert not [form for form, digits in CASES if hc.leaks(text, digits)]
    assert out["ts"].null_count() == 0
    assert out["lat"].to_list() == [31.0] * len(CASES)
