"""Subscriber numbers never leave ingest in clear, and timestamps are read as what they are."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from kqi.ingest import Ingest

from kqi.config import Config

CELLS = "cell_id,site_id,lat,lon,azimuth\nC1,S1,31.0,121.0,0\nC2,S1,31.0,121.0,120\n"


@pytest.fixture
def cells(tmp_path: Path) -> pl.DataFrame:
    p = tmp_path / "cells.csv"
    p.write_text(CELLS, encoding="utf-8")
    return Ingest(Config(), None).cells(p)


def _files_text(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in folder.rglob("*.csv"))


def test_numbers_in_descriptions_are_masked(tmp_path: Path, cells: pl.DataFrame) -> None:
    p = tmp_path / "complaints.csv"
    p.write_text(
        "complaint_id,ts,lat,lon,category,msisdn,description\n"
        "K1,2026-11-02 08:00:00,31.0,121.0,上网慢,13812345678,客户13812345678反映网速慢\n"
        "K2,2026-11-02 09:00:00,31.0,121.0,视频卡顿,5551234,please call 5551234 or +447700900123\n"
        "K3,2026-11-02 10:00:00,,,billing,13912345678,bad row 13912345678 no position\n",
        encoding="utf-8")
    ing = Ingest(Config(), tmp_path / "rejects")
    out = ing.complaints(p, cells)
    assert "msisdn" not in out.columns
    assert out["description"].to_list() == ["客户***78反映网速慢", "please call ***34 or ***23"]
    rejected = _files_text(tmp_path / "rejects")
    assert "K3" in rejected
    for number in ("13812345678", "13912345678", "5551234", "447700900123"):
        assert number not in rejected
        assert number not in out.write_csv()


def test_phone_column_under_an_unknown_header_is_masked_in_rejects(
        tmp_path: Path, cells: pl.DataFrame) -> None:
    p = tmp_path / "complaints.csv"
    p.write_text(
        "complaint_id,ts,lat,lon,category,回访号码,description\n"
        "K1,2026-11-02 08:00:00,31.0,121.0,上网慢,13812345678,slow\n"
        "K2,2026-11-02 09:00:00,31.0,121.0,视频卡顿,13912345679,stalls\n"
        "K3,2026-11-02 10:00:00,999,121.0,视频卡顿,13712345670,bad latitude\n",
        encoding="utf-8")
    ing = Ingest(Config(), tmp_path / "rejects")
    out = ing.complaints(p, cells)
    assert out.height == 2
    assert not any("1381234" in str(v) for row in out.iter_rows() for v in row)
    rejected = _files_text(tmp_path / "rejects")
    assert "K3" in rejected
    assert "13712345670" not in rejected
    assert "***70" in rejected


def test_numbers_in_a_malformed_row_are_masked(tmp_path: Path, cells: pl.DataFrame) -> None:
    # a field missing before msisdn shifts the number into another column of the rejects file
    p = tmp_path / "complaints.csv"
    p.write_text(
        "complaint_id,ts,lat,lon,category,msisdn,description\n"
        "K1,2026-11-02 08:00:00,31.0,121.0,上网慢,13812345678,ok\n"
        "K2,2026-11-02 09:00:00,31.0,上网慢,13912345679,short row\n",
        encoding="utf-8")
    ing = Ingest(Config(), tmp_path / "rejects")
    assert ing.complaints(p, cells).height == 1
    rejected = _files_text(tmp_path / "rejects")
    assert "K2" in rejected
    assert "13912345679" not in rejected


@pytest.mark.parametrize("header", ["手机号码", "联系电话", "联系号码", "主叫号码", "phone_number",
                                    "mobile"])
def test_common_phone_headers_are_msisdn_aliases(header: str) -> None:
    from kqi.schema import COMPLAINTS

    assert header.lower() in COMPLAINTS.column("msisdn").aliases


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20261102080000", datetime(2026, 11, 2, 8, 0, tzinfo=UTC)),
        ("202611020800", datetime(2026, 11, 2, 8, 0, tzinfo=UTC)),
        ("20261102", datetime(2026, 11, 2, tzinfo=UTC)),
        ("1762070400", datetime(2025, 11, 2, 8, 0, tzinfo=UTC)),
        ("1762070400000", datetime(2025, 11, 2, 8, 0, tzinfo=UTC)),
    ],
)
def test_compact_and_epoch_timestamps(tmp_path: Path, cells: pl.DataFrame, text: str,
                                      expected: datetime) -> None:
    p = tmp_path / "kpis.csv"
    p.write_text(f"ts,cell_id,prb_util_dl\n{text},C1,50\n", encoding="utf-8")
    kpis = Ingest(Config(), None).cell_kpis(p, cells)
    assert kpis["ts"].to_list() == [expected]


@pytest.mark.parametrize("text", ["19991301", "12345", "99999999999999999"])
def test_implausible_timestamps_are_rejected(tmp_path: Path, cells: pl.DataFrame, text: str) -> None:
    p = tmp_path / "kpis.csv"
    p.write_text(f"ts,cell_id,prb_util_dl\n2026-11-02 08:00:00,C1,50\n{text},C2,50\n",
                 encoding="utf-8")
    ing = Ingest(Config(), tmp_path / "rejects")
    kpis = ing.cell_kpis(p, cells)
    assert kpis.height == 1
    rejects = pl.read_csv(tmp_path / "rejects" / "cell_kpis.csv", infer_schema=False)
    assert rejects["line"].to_list() == ["3"]
    assert "ts" in rejects["reason"][0]
