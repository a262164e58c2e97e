"""Ingest: the app_tests feed (per-test and pre-aggregated), encodings, rejects, unusable files."""

from __future__ import annotations

import gc
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kqi.ingest._text as text_mod
import polars as pl
import pytest
from ingest_helpers import cfg, write
from kqi.ingest import (
    AGG_BATCH_SCHEMA,
    TEST_BATCH_COLUMNS,
    TEST_BATCH_SCHEMA,
    FeedReport,
    Ingest,
    detect_encoding,
    read_table,
)

from kqi.errors import ConfigError, InputError
from kqi.schema import SERVICES

CELLS_CSV = """cell_id,site_id,cell_name,lat,lon,azimuth
C3,S2,third,31.01,121.01,240
C1,S1,first,31.00,121.00,0
C2,S1,second,31.00,121.00,120
"""

TESTS_HEADER = "ts,cell_id,service,success,page_load_ms,initial_buffer_ms,stall_ratio,rtt_ms,jitter_ms,loss_pct,good\n"


@pytest.fixture
def cells_file(tmp_path: Path) -> Path:
    return write(tmp_path / "cells.csv", CELLS_CSV)


@pytest.fixture
def ing(tmp_path: Path) -> Ingest:
    return Ingest(cfg(batch_rows=1000), tmp_path / "out" / "rejects")


def expected_tests_frame() -> pl.DataFrame:
    """A canonical tests table with nulls and every service."""
    return pl.DataFrame({
        "ts": [datetime(2024, 3, 1, 8, 0, 0), datetime(2024, 3, 1, 9, 30, 5), datetime(2024, 3, 2, 23, 59, 59),
               datetime(2024, 3, 3, 0, 0, 1)],
        "cell_id": ["C2", "C1", "C3", "C2"],
        "service": ["browsing", "video", "gaming", "browsing"],
        "success": [1, 1, 0, 1],
        "page_load_ms": [1200.5, None, None, 3100.0],
        "initial_buffer_ms": [None, 800.0, None, None],
        "stall_ratio": [None, 0.015, None, None],
        "rtt_ms": [None, None, 45.0, None],
        "jitter_ms": [None, None, 12.5, None],
        "loss_pct": [None, None, 0.5, None],
        "good": [1, None, 0, 0],
    }, schema_overrides={"success": pl.Int8, "good": pl.Int8})


def check_tests_batch(out: pl.DataFrame, exp: pl.DataFrame) -> None:
    cell_order = {"C1": 0, "C2": 1, "C3": 2}  # cells sorted by cell_id
    assert out.columns == list(TEST_BATCH_COLUMNS)
    assert out.schema == pl.Schema(TEST_BATCH_SCHEMA)
    assert out["ts"].dtype == pl.Datetime("us", "UTC")
    assert out["ts"].dt.replace_time_zone(None).to_list() == exp["ts"].to_list()
    assert out["cell_code"].dtype == pl.Int32
    assert out["cell_code"].to_list() == [cell_order[c] for c in exp["cell_id"]]
    assert out["service_code"].dtype == pl.Int8
    assert [SERVICES[i] for i in out["service_code"]] == exp["service"].to_list()
    for c in ("success", "good"):
        assert out[c].dtype == pl.Int8
        assert out[c].to_list() == exp[c].to_list()
    for c in ("page_load_ms", "initial_buffer_ms", "stall_ratio", "rtt_ms", "jitter_ms", "loss_pct"):
        assert out[c].dtype == pl.Float64
        assert out[c].to_list() == exp[c].to_list()


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tests_round_trip(tmp_path: Path, ing: Ingest, cells_file: Path, fmt: str) -> None:
    exp = expected_tests_frame()
    path = tmp_path / f"tests.{fmt}"
    if fmt == "csv":
        exp.write_csv(path, datetime_format="%Y-%m-%d %H:%M:%S")
    else:
        exp.write_parquet(path)
    cells = ing.cells(cells_file)
    feed = ing.app_tests(path, cells)
    assert feed.kind == "tests"
    check_tests_batch(feed.collect(), exp)
    rep = ing.reports["app_tests"]
    assert (rep.rows_read, rep.rows_accepted, rep.rows_rejected) == (4, 4, 0)
    assert rep.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rep.rejects_path is None
    assert feed.cell_ids.to_list() == ["C1", "C2", "C3"]


def test_parquet_typed_timestamps_and_ids(tmp_path: Path, ing: Ingest) -> None:
    """Tz-aware, naive and epoch-integer timestamps and integer cell ids in Parquet."""
    df = pl.DataFrame({
        "ts": [datetime(2024, 1, 1, 8, tzinfo=UTC), datetime(2024, 1, 1, 9, tzinfo=UTC)],
        "cell_id": [4926720, 4926721],
        "service": ["video", "视频"],
        "stall_ratio": [0.01, 1.5],
    })
    path = tmp_path / "t.parquet"
    df.write_parquet(path)
    feed = ing.app_tests(path)
    out = feed.collect()
    assert out["ts"].to_list() == [datetime(2024, 1, 1, 8, tzinfo=UTC)]
    assert feed.cell_ids.to_list() == ["4926720"]
    rej = pl.read_csv(ing.reports["app_tests"].rejects_path, infer_schema=False)
    assert rej["line"].to_list() == ["2"]
    assert rej["reason"][0].startswith("stall_ratio: out of range [0, 1]")
    assert rej["stall_ratio"].to_list() == ["1.5"]

    epoch = pl.DataFrame({"ts": [1_700_000_000, 1_700_000_000_000], "cell_id": ["A", "A"],
                          "service": ["web", "game"]})
    epoch.write_parquet(path)
    out = ing.app_tests(path).collect()
    assert out["ts"].to_list() == [datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)] * 2


def test_parquet_dictionary_read_holds_no_earlier_row_groups(tmp_path: Path) -> None:
    """The cell_id / service columns read as dictionaries keep no row group's data once it is
    read: Arrow's live memory at the last chunk is that of the first ones (with pyarrow's
    pre-buffering the reader kept every row group's column chunks until it was closed: +140 MiB
    by the end of a 100 M-row file)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from kqi.ingest._sources import ParquetSource

    rng = np.random.default_rng(3)
    path = tmp_path / "t.parquet"
    groups, rows = 40, 20_000
    with pq.ParquetWriter(path, pa.schema([("cell_id", pa.string()), ("service", pa.string()),
                                           ("rtt_ms", pa.float64())])) as w:
        for _ in range(groups):  # ids of high entropy: ~0.2 MB of compressed column per group
            w.write_table(pa.table({"cell_id": [f"C{v}" for v in rng.integers(0, 10**9, rows)],
                                    "service": ["video"] * rows, "rtt_ms": rng.random(rows)}))
    src = ParquetSource(path, rows)
    src.checksum = False
    src.set_dictionary(["cell_id", "service"])
    live = []
    for raw in src.chunks():
        live.append(pa.total_allocated_bytes())
        del raw
    assert len(live) == groups
    # the first chunks' level (at most 3 chunks in flight), not a growth by each group read
    assert max(live[-5:]) <= max(live[:5]) + 1_000_000


def test_cells_table_must_keep_dense_codes(tmp_path: Path, ing: Ingest, cells_file: Path) -> None:
    cells = ing.cells(cells_file)
    path = write(tmp_path / "t.csv", TESTS_HEADER + GOOD_ROW + "\n")
    with pytest.raises(ValueError, match="row index"):
        ing.app_tests(path, cells.filter(pl.col("cell_id") != "C1"))
    assert ing.app_tests(path, cells.drop("cell_code")).collect()["cell_code"].to_list() == [0]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_unread_or_abandoned_feed_holds_no_file(tmp_path: Path, fmt: str) -> None:
    exp = pl.concat([expected_tests_frame()] * 600)  # 2,400 rows: three batches of 1,000
    exp = exp.with_columns(pl.when(pl.int_range(pl.len()) == 500).then(-1.0).otherwise(pl.col("rtt_ms"))
                           .alias("rtt_ms"))
    path = tmp_path / f"t.{fmt}"
    exp.write_csv(path) if fmt == "csv" else exp.write_parquet(path)
    ing = Ingest(cfg(batch_rows=1000), tmp_path / "rejects")
    feed = ing.app_tests(path)
    del feed
    gc.collect()  # an unclosed file would warn here, and warnings are errors
    feed = ing.app_tests(path)
    assert 0 < next(feed.batches).height <= 1000
    feed.batches.close()  # type: ignore[attr-defined]
    assert "app_tests" not in ing.reports
    assert not list((tmp_path / "rejects").glob("*"))  # the partial reject file was dropped
    assert ing.app_tests(path).collect().height == 2399
    assert ing.reports["app_tests"].rows_rejected == 1


def test_cells_none_assigns_codes_in_first_appearance_order(tmp_path: Path, ing: Ingest) -> None:
    path = write(tmp_path / "t.csv", TESTS_HEADER + "".join(
        f"2024-01-01 00:00:0{i},{c},browsing,1,100,,,,,,\n" for i, c in enumerate(["Z", "A", " Z ", "M", "A"])))
    feed = ing.app_tests(path)
    with pytest.raises(RuntimeError):
        _ = feed.cell_ids
    out = feed.collect()
    assert out["cell_code"].to_list() == [0, 1, 0, 2, 1]
    assert feed.cell_ids.to_list() == ["Z", "A", "M"]


@pytest.mark.parametrize(("chunk", "piece"), [(512, 65536), (1 << 20, 256), (1 << 20, 65536)])
def test_batches_are_bounded_and_lines_exact_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           cells_file: Path, chunk: int, piece: int) -> None:
    # small chunks (many chunk boundaries) or small slow-path pieces (a chunk with anomalies split
    # into many pieces): a quoted newline, blank lines and bad rows, in later chunks too
    monkeypatch.setattr(text_mod, "_MIN_CHUNK_BYTES", 64)
    monkeypatch.setattr(text_mod, "_MAX_CHUNK_BYTES", chunk)
    monkeypatch.setattr(text_mod, "_SLOW_PIECE_BYTES", piece)
    rows = []
    bad_lines = {}
    line = 2
    for i in range(3500):
        if i % 700 == 350:
            rows.append("2024-01-01 00:00:00,C1,browsing,1,-1,,,,,,\n")
            bad_lines[line] = "page_load_ms: out of range"
        elif i == 1000:
            rows.append('2024-01-01 00:00:00,C2,"vid\neo",1,,,,,,,\n')
            bad_lines[line] = "service: unknown service"
            line += 1
        elif i == 2000:
            rows.append("\n\n")
            line += 2
            continue
        else:
            rows.append(f"2024-01-01 00:00:00,C{i % 3 + 1},video,1,,{i},0.01,,,,\n")
        line += 1
    path = write(tmp_path / "t.csv", TESTS_HEADER + "".join(rows))
    ing = Ingest(cfg(batch_rows=1000), None)
    feed = ing.app_tests(path, ing.cells(cells_file))
    sizes = [b.height for b in feed.batches]
    assert max(sizes) <= 1000
    rep = ing.reports["app_tests"]
    assert rep.rows_read == 3499
    assert rep.rows_rejected == len(bad_lines) == 6
    assert sum(sizes) == rep.rows_accepted == 3499 - 6
    rej = ing.rejects["app_tests"]
    assert rej["line"].to_list() == sorted(bad_lines)
    for got, want in zip(rej["reason"], [bad_lines[k] for k in sorted(bad_lines)], strict=True):
        assert got.startswith(want)
    assert rej.filter(pl.col("reason").str.starts_with("service"))["service"].to_list() == ["vid\neo"]


# -- pre-aggregated feed -------------------------------------------------------------------


def test_aggregated_feed(tmp_path: Path, ing: Ingest, cells_file: Path) -> None:
    path = write(tmp_path / "agg.csv", "小区ID,业务类型,测试次数,优良次数,周期\n"
                 "C1,浏览,100,90,2024-03\n"
                 "C2,视频,50,50,2024-03\n"
                 "C1,browsing,10,9,2024-03\n"     # duplicate key
                 "C3,gaming,5,6,2024-03\n"        # good > tests
                 "C9,gaming,5,1,2024-03\n"        # unknown cell
                 "C3,gaming,7,3,\n")
    feed = ing.app_tests(path, ing.cells(cells_file))
    assert feed.kind == "aggregated"
    out = feed.collect()
    assert out.columns == ["cell_code", "service_code", "tests", "good_tests", "period"]
    assert out.schema == pl.Schema(AGG_BATCH_SCHEMA)
    assert out.to_dicts() == [
        {"cell_code": 0, "service_code": 0, "tests": 100, "good_tests": 90, "period": "2024-03"},
        {"cell_code": 1, "service_code": 1, "tests": 50, "good_tests": 50, "period": "2024-03"},
        {"cell_code": 2, "service_code": 2, "tests": 7, "good_tests": 3, "period": None},
    ]
    assert out["tests"].dtype == pl.Int64
    rej = pl.read_csv(ing.reports["app_tests"].rejects_path, infer_schema=False)
    assert rej["line"].to_list() == ["4", "5", "6"]
    assert [r.split(":")[0] for r in rej["reason"]] == ["period", "good_tests", "cell_id"]
    assert rej.columns[:2] == ["line", "reason"]
    assert "测试次数" in rej.columns


# -- every kind of bad row -----------------------------------------------------------------

GOOD_ROW = "2024-01-01 00:00:00,C1,browsing,1,100,,,,,,"

BAD_ROWS = [
    ("bad-ts", "2024-13-45 00:00:00,C1,browsing,1,100,,,,,,", "ts: not a timestamp"),
    ("no-ts", ",C1,browsing,1,100,,,,,,", "ts: missing value"),
    ("no-cell", "2024-01-01 00:00:00,,browsing,1,100,,,,,,", "cell_id: missing value"),
    ("unknown-cell", "2024-01-01 00:00:00,C7,browsing,1,100,,,,,,", "cell_id: not in the cells table"),
    ("no-service", "2024-01-01 00:00:00,C1,,1,100,,,,,,", "service: missing value"),
    ("bad-service", "2024-01-01 00:00:00,C1,fax,1,100,,,,,,", "service: unknown service"),
    ("success-2", "2024-01-01 00:00:00,C1,browsing,2,100,,,,,,", "success: out of range [0, 1]"),
    ("success-text", "2024-01-01 00:00:00,C1,browsing,maybe,100,,,,,,", "success: not a number"),
    ("good-half", "2024-01-01 00:00:00,C1,browsing,1,100,,,,,,0.5", "good: must be 0 or 1"),
    ("neg-ms", "2024-01-01 00:00:00,C1,browsing,1,-3,,,,,,", "page_load_ms: out of range [0, ]"),
    ("nan-text", "2024-01-01 00:00:00,C1,browsing,1,abc,,,,,,", "page_load_ms: not a number"),
    ("inf", "2024-01-01 00:00:00,C1,browsing,1,inf,,,,,,", "page_load_ms: not a finite number"),
    ("ratio", "2024-01-01 00:00:00,C1,video,1,,100,1.2,,,,", "stall_ratio: out of range [0, 1]"),
    ("loss", "2024-01-01 00:00:00,C1,gaming,1,,,,10,2,101,", "loss_pct: out of range [0, 100]"),
    ("short", "2024-01-01 00:00:00,C1,browsing", "row: has 3 fields, the header has 11"),
    ("long", GOOD_ROW + ",extra", "row: has 12 fields, the header has 11"),
]


@pytest.mark.parametrize(("row", "reason"), [(r, why) for _, r, why in BAD_ROWS],
                         ids=[k for k, _, _ in BAD_ROWS])
def test_bad_row_rejected_with_reason_and_line(tmp_path: Path, ing: Ingest, cells_file: Path,
                                               row: str, reason: str) -> None:
    path = write(tmp_path / "t.csv", TESTS_HEADER + f"{GOOD_ROW}\n{row}\n{GOOD_ROW}\n")
    out = ing.app_tests(path, ing.cells(cells_file)).collect()
    rep = ing.reports["app_tests"]
    assert (rep.rows_read, rep.rows_accepted, rep.rows_rejected) == (3, 2, 1)
    assert out.height == 2
    rej = pl.read_csv(rep.rejects_path, infer_schema=False)
    assert rej["line"].to_list() == ["3"]
    assert rej["reason"][0].startswith(reason), rej["reason"][0]
    assert rej.columns == ["line", "reason", *TESTS_HEADER.strip().split(",")]


def test_all_rows_rejected_gives_typed_empty_feed(tmp_path: Path, ing: Ingest) -> None:
    path = write(tmp_path / "t.csv", TESTS_HEADER + "x,C1,browsing,1,,,,,,,\ny,C1,browsing,1,,,,,,,\n")
    feed = ing.app_tests(path)
    out = feed.collect()
    assert out.height == 0
    assert out.schema == pl.Schema(TEST_BATCH_SCHEMA)
    assert feed.cell_ids.to_list() == []
    assert ing.reports["app_tests"].rows_rejected == 2


def test_first_failing_check_wins(tmp_path: Path, ing: Ingest, cells_file: Path) -> None:
    path = write(tmp_path / "t.csv", TESTS_HEADER + "bad,C1,fax,7,-1,,,,,,\n")
    ing.app_tests(path, ing.cells(cells_file)).collect()
    assert ing.reports["app_tests"].rows_rejected == 1
    rej = pl.read_csv(ing.reports["app_tests"].rejects_path, infer_schema=False)
    assert rej["reason"][0] == "ts: not a timestamp 'bad'"


def test_null_tokens_and_text_flags(tmp_path: Path, ing: Ingest) -> None:
    path = write(tmp_path / "t.csv", TESTS_HEADER
                 + "2024-01-01 00:00:00,C1,Browsing ,TRUE,NA,-,null,,,,是\n"
                 + "2024-01-01 00:00:00,C1, 网页,false,nan,,,,,,no\n")
    out = ing.app_tests(path).collect()
    assert out["success"].to_list() == [1, 0]
    assert out["good"].to_list() == [1, 0]
    assert out["service_code"].to_list() == [0, 0]
    assert out["page_load_ms"].to_list() == [None, None]


def test_rejects_are_formula_inert(tmp_path: Path, ing: Ingest) -> None:
    path = write(tmp_path / "t.csv", TESTS_HEADER + "=HYPERLINK(\"x\"),C1,browsing,1,,,,,,,\n"
                 + GOOD_ROW + "\n")
    ing.app_tests(path).collect()
    raw = Path(ing.reports["app_tests"].rejects_path).read_text(encoding="utf-8")
    assert "'=HYPERLINK" in raw
    assert ",=HYPERLINK" not in raw


def test_stale_rejects_file_removed(tmp_path: Path, ing: Ingest) -> None:
    bad = write(tmp_path / "bad.csv", TESTS_HEADER + "x,C1,browsing,1,,,,,,,\n" + GOOD_ROW + "\n")
    ing.app_tests(bad).collect()
    target = Path(ing.reports["app_tests"].rejects_path)
    assert target.is_file()
    good = write(tmp_path / "good.csv", TESTS_HEADER + GOOD_ROW + "\n")
    ing.app_tests(good).collect()
    assert ing.reports["app_tests"].rejects_path is None
    assert not target.exists()
    assert not list(target.parent.glob(".*tmp"))


# -- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2024-03-01 08:09:10", "2024-03-01T08:09:10", "2024/03/01 08:09:10",
                                   "1709280550", "1709280550000", "1709280550.0"])
def test_timestamp_forms(tmp_path: Path, ing: Ingest, value: str) -> None:
    path = write(tmp_path / "t.csv", TESTS_HEADER + f"{value},C1,browsing,1,,,,,,,\n")
    out = ing.app_tests(path).collect()
    assert out["ts"].to_list() == [datetime(2024, 3, 1, 8, 9, 10, tzinfo=UTC)]


@pytest.mark.parametrize("value", ["2024-03-01 08:09", "2024/03/01 08:09", "2024-03-01", "2024/03/01"])
def test_timestamp_short_forms(tmp_path: Path, ing: Ingest, value: str) -> None:
    path = write(tmp_path / "t.csv", TESTS_HEADER + f"{value},C1,browsing,1,,,,,,,\n")
    out = ing.app_tests(path).collect()
    minute = 9 if "08:09" in value else 0
    hour = 8 if "08:09" in value else 0
    assert out["ts"].to_list() == [datetime(2024, 3, 1, hour, minute, tzinfo=UTC)]


@pytest.mark.parametrize(("value", "want"), [
    ("2024-03-01 08:09:10.250", datetime(2024, 3, 1, 8, 9, 10, 250000, tzinfo=UTC)),
    ("2024-03-01T08:09:10+08:00", datetime(2024, 3, 1, 0, 9, 10, tzinfo=UTC)),
    ("2024-03-01T08:09:10.5Z", datetime(2024, 3, 1, 8, 9, 10, 500000, tzinfo=UTC)),
])
def test_timestamp_fractions_and_offsets(tmp_path: Path, value: str, want: datetime) -> None:
    # the offset wins over the configured zone; naive text is in the configured zone
    ing = Ingest(cfg(timezone="Europe/Paris"), None)
    path = write(tmp_path / "t.csv", TESTS_HEADER + f"{value},C1,browsing,1,,,,,,,\n")
    got = ing.app_tests(path).collect()["ts"].to_list()
    shift = timedelta(hours=1) if value.endswith(".250") else timedelta(0)
    assert got == [want - shift]


def test_naive_times_in_configured_zone(tmp_path: Path) -> None:
    ing = Ingest(cfg(timezone="Asia/Shanghai"), None)
    path = write(tmp_path / "t.csv", TESTS_HEADER + "2024-03-01 08:00:00,C1,browsing,1,,,,,,,\n"
                 + "1709280000,C1,browsing,1,,,,,,,\n")
    out = ing.app_tests(path).collect()
    # naive text is Shanghai time (UTC+8); epoch seconds are UTC whatever the zone
    assert out["ts"].to_list() == [datetime(2024, 3, 1, 0, 0, tzinfo=UTC), datetime(2024, 3, 1, 8, 0, tzinfo=UTC)]


def test_nonexistent_local_time_rejected(tmp_path: Path) -> None:
    ing = Ingest(cfg(timezone="Europe/London"), None)
    path = write(tmp_path / "t.csv", TESTS_HEADER + "2024-03-31 01:30:00,C1,browsing,1,,,,,,,\n" + GOOD_ROW + "\n")
    ing.app_tests(path).collect()
    assert ing.rejects["app_tests"]["reason"][0].startswith("ts: time does not exist in Europe/London")


def test_unknown_timezone_is_config_error() -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        Ingest(cfg(timezone="Mars/Olympus"), None)


# -- encodings, headers --------------------------------------------------------------------


def test_gbk_file_with_chinese_headers_and_services(tmp_path: Path, ing: Ingest, cells_file: Path) -> None:
    text = ("时间,小区ID,业务类型,是否成功,页面时延,首缓时延,卡顿占比,时延,抖动,丢包率,备注\n"
            "2024-03-01 08:00:00,C1,浏览,1,1500,,,,,,晚高峰\n"
            "2024-03-01 08:00:01,C2,视频,1,,900,0.01,,,,\n"
            "2024-03-01 08:00:02,C3,游戏,0,,,,80,10,0.2,室内\n"
            "2024-03-01 08:00:03,C3,传真,0,,,,80,10,0.2,未知业务\n")
    path = write(tmp_path / "gbk.csv", text, "gbk")
    assert detect_encoding(path) == "gb18030"
    out = ing.app_tests(path, ing.cells(cells_file)).collect()
    assert out["service_code"].to_list() == [0, 1, 2]
    assert out["page_load_ms"].to_list() == [1500.0, None, None]
    rep = ing.reports["app_tests"]
    assert rep.encoding == "gb18030"
    rej = pl.read_csv(rep.rejects_path, infer_schema=False)
    # reject files are UTF-8 whatever the input encoding, with the original headers
    assert rej["业务类型"].to_list() == ["传真"]
    assert rej["备注"].to_list() == ["未知业务"]


def test_utf8_bom(tmp_path: Path, ing: Ingest) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (TESTS_HEADER + GOOD_ROW + "\n").encode())
    assert detect_encoding(path) == "utf-8-sig"
    out = ing.app_tests(path).collect()
    assert out.height == 1
    assert ing.reports["app_tests"].encoding == "utf-8-sig"


def test_forced_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "时间,小区ID,业务类型\n2024-03-01 08:00:00,C1,视频\n", "gbk")
    ing = Ingest(cfg(encoding="gbk"), None)
    assert ing.app_tests(path).collect()["service_code"].to_list() == [1]
    bad = Ingest(cfg(encoding="klingon"), None)
    with pytest.raises(InputError, match="unknown encoding"):
        bad.app_tests(path)


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters(tmp_path: Path, ing: Ingest, delimiter: str) -> None:
    text = (TESTS_HEADER + GOOD_ROW + "\n").replace(",", delimiter)
    out = ing.app_tests(write(tmp_path / "t.csv", text)).collect()
    assert out["page_load_ms"].to_list() == [100.0]


def test_column_map_and_extra_columns(tmp_path: Path) -> None:
    ing = Ingest(cfg(column_map={"app_tests": {"Serving ECGI": "cell_id", "Kind": "service",
                                               "When": "ts"}}), None)
    path = write(tmp_path / "t.csv", "Kind,When,Serving ECGI,IMEI,page_load_ms\nweb,2024-01-01,A,1234,50\n")
    out = ing.app_tests(path).collect()
    assert out["page_load_ms"].to_list() == [50.0]
    assert out["success"].to_list() == [1]  # default when the column is absent
    assert out["good"].to_list() == [None]


def test_duplicate_header_source_is_noted(tmp_path: Path, ing: Ingest) -> None:
    path = write(tmp_path / "t.csv", "ts,cgi,eci,service\n2024-01-01,A,B,video\n")
    feed = ing.app_tests(path)
    feed.collect()
    assert feed.cell_ids.to_list() == ["A"]
    assert any("'eci' ignored" in n for n in ing.reports["app_tests"].notes)


# -- unusable files ------------------------------------------------------------------------


def unusable_cases(tmp_path: Path) -> list[tuple[Path, str]]:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(128, 256)) * 40)
    utf16 = tmp_path / "u16.csv"
    utf16.write_bytes((TESTS_HEADER + GOOD_ROW).encode("utf-16"))
    bad_parquet = tmp_path / "bad.parquet"
    bad_parquet.write_bytes(b"PAR1" + b"\x00" * 50)
    late_junk = tmp_path / "late.csv"
    late_junk.write_bytes((TESTS_HEADER + GOOD_ROW + "\n").encode() + b"\xff\xfe\xfa,C1\n")
    return [
        (tmp_path / "missing.csv", "file not found"),
        (write(tmp_path / "empty.csv", ""), "empty"),
        (write(tmp_path / "header.csv", TESTS_HEADER), "no data rows"),
        (write(tmp_path / "blank.csv", TESTS_HEADER + "\n\n"), "no data rows"),
        (write(tmp_path / "nocol.csv", "ts,service\n2024-01-01,video\n"), "column 'cell_id'"),
        (junk, "cannot decode"),
        (utf16, "UTF-16"),
        (bad_parquet, "Parquet"),
        (late_junk, "cannot decode"),
        (tmp_path, "not a file"),
    ]


def test_unusable_inputs_raise_one_line_input_error(tmp_path: Path, ing: Ingest) -> None:
    for path, problem in unusable_cases(tmp_path):
        with pytest.raises(InputError) as err:
            ing.app_tests(path).collect()
        msg = str(err.value)
        assert str(path) in msg, msg
        assert problem in msg, msg
        assert "\n" not in msg
    assert "app_tests" not in ing.reports


def test_report_to_dict(tmp_path: Path, ing: Ingest) -> None:
    ing.app_tests(write(tmp_path / "t.csv", TESTS_HEADER + GOOD_ROW + "\nx,C1,web,1,,,,,,,\n")).collect()
    d = ing.reports["app_tests"].to_dict()
    assert set(d) == set(FeedReport.__dataclass_fields__)
    assert d["rows_read"] == d["rows_accepted"] + d["rows_rejected"] == 2
    assert d["rejects_path"].endswith("app_tests.csv")


def test_read_table(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "a;b\n1;x\n2;\n", "gbk")
    df = read_table(path)
    assert df.to_dict(as_series=False) == {"a": ["1", "2"], "b": ["x", ""]}
    with pytest.raises(InputError, match="line 3"):
        read_table(write(tmp_path / "u.csv", "a,b\n1,2\n3\n"))


def test_a_mapped_csv_read_in_many_chunks_has_the_files_sha256(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # over the 1 MiB sample, so the file is mapped and hashed stretch by stretch as the chunks
    # are cut (kqi/ingest/_text.py); small chunks make many stretches
    monkeypatch.setattr(text_mod, "_MIN_CHUNK_BYTES", 64)
    monkeypatch.setattr(text_mod, "_MAX_CHUNK_BYTES", 150_000)
    start = datetime(2024, 1, 1)
    lines = ["ts,cell_id,service,success,page_load_ms"]
    lines += [f"{start + timedelta(minutes=i):%Y-%m-%d %H:%M:%S},C{i % 97},browsing,1,{1000 + i % 5000}"
              for i in range(60_000)]
    path = tmp_path / "tests.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size > 2 * text_mod.SAMPLE_BYTES
    ing = Ingest(cfg(batch_rows=5000), tmp_path / "rejects")
    feed = ing.app_tests(path, None)
    heights = [b.height for b in feed.batches]
    assert len(heights) > 10
    assert max(heights) <= 5000
    assert sum(heights) == 60_000
    assert ing.reports["app_tests"].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
