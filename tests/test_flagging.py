"""kqi.flag_cells (files through ingest, tables in memory), the case table and its markdown."""

from __future__ import annotations

import datetime as dt
import json
import logging

import numpy as np
import polars as pl
import pytest
import reference as ref

import kqi
from kqi.config import load_config
from kqi.errors import InputError
from kqi.flagging import summarize
from kqi.schema import CELL_KQI
from kqi.summary import case_markdown

T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)


def app_tests(seed: int = 1, n: int = 900) -> pl.DataFrame:
    """A small feed in the contract's columns: 6 cells, services mixed, nulls where unmeasured."""
    rng = np.random.default_rng(seed)
    svc = rng.integers(0, 3, n)
    cell_quality = np.array([0.5, 0.8, 1.0, 1.2, 1.6, 2.2])
    cell = rng.integers(0, 6, n)
    q = cell_quality[cell]

    def kqi_col(service: int, scale: float) -> list[float | None]:
        v = np.round(rng.exponential(scale, n) * q, 1)
        return [float(x) if s == service else None for x, s in zip(v, svc, strict=True)]

    return pl.DataFrame({
        "ts": [T0 + dt.timedelta(minutes=int(m)) for m in rng.integers(0, 3 * 1440, n)],
        "cell_id": [f"4600{c}-1" for c in cell],
        "service": [("browsing", "video", "gaming")[s] for s in svc],
        "success": (rng.random(n) > 0.03).astype(np.int8),
        "page_load_ms": kqi_col(0, 1500.0),
        "initial_buffer_ms": kqi_col(1, 700.0),
        "stall_ratio": kqi_col(1, 0.006),
        "rtt_ms": kqi_col(2, 45.0),
        "jitter_ms": kqi_col(2, 10.0),
        "loss_pct": kqi_col(2, 0.3),
    }, schema_overrides={"ts": pl.Datetime("us", "UTC")})


def expected(df: pl.DataFrame) -> list[dict]:
    """The reference result for a frame in the contract's columns."""
    ids = sorted(set(df["cell_id"]))
    rows = [{**r, "cell_code": ids.index(r["cell_id"]),
             "service_code": ref.SERVICES.index(r["service"]), "good": None}
            for r in df.to_dicts()]
    return ref.cell_kqi(rows, ids, kqi.Config())


def assert_matches(got: pl.DataFrame, want: list[dict]) -> None:
    cols = ["cell_id", "service", "tests", "good_tests", "good_rate", "poor"]
    assert got.select(cols).to_dicts() == [{k: r[k] for k in cols} for r in want]


def test_flag_cells_on_a_polars_frame_matches_reference() -> None:
    df = app_tests()
    got = kqi.flag_cells(df)
    assert got.schema == pl.from_arrow(CELL_KQI.empty_table()).schema  # type: ignore[union-attr]
    assert got.null_count().sum_horizontal().item() == 0
    assert_matches(got, expected(df))
    assert got["poor"].any()
    assert not got["poor"].all()


def test_flag_cells_on_an_arrow_table_and_aliases() -> None:
    df = app_tests(seed=2)
    cn = df.rename({"cell_id": "小区ID", "service": "业务类型", "page_load_ms": "页面时延"})
    cn = cn.with_columns(pl.col("业务类型").replace({"browsing": "网页", "video": "视频",
                                                       "gaming": "游戏"}))
    got = kqi.flag_cells(cn.to_arrow())
    assert_matches(got, expected(df))


def test_flag_cells_rejects_rows_as_ingest_does(caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    df = app_tests(seed=3, n=60)
    bad = df.head(2).with_columns(pl.Series("service", ["fishing", "browsing"]),
                                  pl.Series("cell_id", ["46000-1", None]))
    with caplog.at_level(logging.INFO, logger="kqi.ingest"):
        got = kqi.flag_cells(pl.concat([df, bad]))
    assert_matches(got, expected(df))
    assert "2 rejected" in caplog.text


def test_flag_cells_reads_files_through_ingest(tmp_path) -> None:
    df = app_tests(seed=4)
    parquet, csv = tmp_path / "tests.parquet", tmp_path / "tests.csv"
    df.write_parquet(parquet)
    df.write_csv(csv, datetime_format="%Y-%m-%d %H:%M:%S")
    want = kqi.flag_cells(df)
    assert kqi.flag_cells(parquet).equals(want)
    assert kqi.flag_cells(str(csv)).equals(want)


@pytest.mark.parametrize("seed", [5, 6])
def test_nan_kqis_count_as_missing_on_the_fast_path(tmp_path, seed: int) -> None:
    """A file with NaN for an unmeasured KQI (as many exports write it) gives exactly what the
    same file with nulls gives; an infinity or an out-of-range value beside the NaNs is still
    rejected, and a NaN never reaches a batch."""
    df = app_tests(seed=seed)
    nan = df.with_columns(pl.col(c).fill_null(float("nan")) for c in kqi.schema.KQI_COLUMNS)
    bad = nan.head(3).with_columns(pl.Series("rtt_ms", [float("inf"), -5.0, float("nan")]))
    for frame, name in ((df, "nulls"), (nan, "nan"), (pl.concat([nan, bad]), "bad")):
        frame.write_parquet(tmp_path / f"{name}.parquet")
    want = kqi.flag_cells(tmp_path / "nulls.parquet")
    assert_matches(want, expected(df))
    assert kqi.flag_cells(tmp_path / "nan.parquet").equals(want)
    ing = kqi.ingest.Ingest(kqi.Config(), rejects_dir=None)
    batches = ing.app_tests(tmp_path / "bad.parquet", None).collect()
    assert batches.select(pl.col(kqi.schema.KQI_COLUMNS).is_nan().any()).row(0) == (False,) * 6
    rejects = ing.rejects["app_tests"]
    assert rejects.height == 2
    assert rejects["reason"].to_list() == ["rtt_ms: not a finite number",
                                           "rtt_ms: out of range [0, ] '-5.0'"]
    assert batches.height == nan.height + 1


def test_flag_cells_reads_no_ts_it_does_not_need_but_rejects_what_it_must(tmp_path) -> None:
    """flag_cells keeps no day counts: a zone-aware ts without nulls (the file's statistics say
    so) is not decoded; a ts with a null is read and its row rejected, as kqi run would."""
    df = app_tests(seed=7)
    df.write_parquet(tmp_path / "ok.parquet")
    with_null = df.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(None)
                                .otherwise(pl.col("ts")).alias("ts"))
    with_null.write_parquet(tmp_path / "null.parquet")
    want = kqi.flag_cells(df)
    assert kqi.flag_cells(tmp_path / "ok.parquet").equals(want)
    got = kqi.flag_cells(tmp_path / "null.parquet")
    assert_matches(got, expected(df.slice(1)))
    ing = kqi.ingest.Ingest(kqi.Config(), rejects_dir=None, checksum=False)
    feed = ing.app_tests(tmp_path / "ok.parquet", None, days=False)
    batch = feed.collect()
    assert batch["ts"].null_count() == batch.height  # not decoded
    assert ing.reports["app_tests"].sha256 == ""  # no checksum asked for
    ing = kqi.ingest.Ingest(kqi.Config(), rejects_dir=None)
    assert ing.app_tests(tmp_path / "ok.parquet", None).collect()["ts"].null_count() == 0
    assert len(ing.reports["app_tests"].sha256) == 64


def test_flag_cells_on_a_pre_aggregated_table() -> None:
    agg = pl.DataFrame({"cell_id": ["b", "a", "a"], "service": ["video", "browsing", "gaming"],
                        "tests": [40, 30, 5], "good_tests": [36, 24, 1]})
    got = kqi.flag_cells(agg)
    assert got.select("cell_id", "service", "tests", "good_tests", "poor").rows() == [
        ("a", "browsing", 30, 24, True), ("a", "gaming", 5, 1, False),
        ("b", "video", 40, 36, True)]


def test_flag_cells_follows_the_config_file(tmp_path) -> None:
    toml = tmp_path / "kqi.toml"
    toml.write_text("[kqi]\nmin_tests = 1\n[kqi.thresholds]\nbrowsing = 0.0\nvideo = 0.0\n"
                    "gaming = 0.0\n[kqi.targets]\npage_load_ms = 10.0\n", encoding="utf-8")
    cfg = load_config(toml)
    df = app_tests(seed=5, n=120)
    got = kqi.flag_cells(df, cfg)
    # a cell is poor only when none of its tests is good; page loads under 10 ms are rare
    assert got.filter(pl.col("poor"))["good_tests"].to_list() == [0] * int(got["poor"].sum())
    browsing = got.filter(pl.col("service") == "browsing")
    assert browsing["good_tests"].sum() < kqi.flag_cells(df)["good_tests"].sum()


def test_flag_cells_refuses_unusable_sources() -> None:
    with pytest.raises(InputError, match=r"^<app_tests DataFrame>, column 'ts': missing required column"):
        kqi.flag_cells(pl.DataFrame({"cell_id": ["a"]}))
    with pytest.raises(TypeError, match="path"):
        kqi.flag_cells(42)  # type: ignore[arg-type]


def test_flag_cells_is_deterministic() -> None:
    df = app_tests(seed=6)
    shuffled = df.sample(fraction=1.0, shuffle=True, seed=9)
    assert kqi.flag_cells(df).equals(kqi.flag_cells(shuffled))


# --------------------------------------------------------------------------------------------
# The case table
# --------------------------------------------------------------------------------------------

def case_kqi() -> pl.DataFrame:
    return pl.DataFrame({
        "cell_id": ["a", "a", "b", "c", "d"],
        "service": ["browsing", "video", "gaming", "browsing", "browsing"],
        "tests": [40, 40, 50, 10, 30],
        "good_tests": [30, 30, 50, 1, 30],
        "good_rate": [0.75, 0.75, 1.0, 0.1, 1.0],
        "poor": [True, True, False, False, False],
    })


def test_summarize_counts_the_case_table() -> None:
    cells = pl.DataFrame({"cell_id": ["a", "b", "c"], "vendor": ["ZTE", "Nokia", "ZTE"],
                          "region": ["north", "north", "south|x"]})
    s = summarize(case_kqi(), cells, kqi.Config())
    assert s["cells_reporting"] == 4
    assert s["poor_cells"] == 1
    assert s["poor_share"] == 0.25
    assert s["poor_by_service"] == {"browsing": 1, "video": 1, "gaming": 0}
    assert s["tests"] == 170
    assert s["by_vendor"]["ZTE"]["cells_reporting"] == 2
    assert s["by_vendor"]["ZTE"]["poor_cells"] == 1
    assert s["by_vendor"]["(unknown)"]["cells_reporting"] == 1   # d is not in the cells table
    assert list(s["by_region"]) == ["(unknown)", "north", "south|x"]
    assert s["rule"]["thresholds"]["browsing"] == 0.8
    json.dumps(s)  # summary.json must be plain JSON


def test_summarize_without_cells_and_without_tests() -> None:
    s = summarize(case_kqi().head(0), None)
    assert s["cells_reporting"] == 0
    assert s["poor_share"] == 0.0
    assert "by_vendor" not in s


def test_summary_markdown_renders_every_scope() -> None:
    cells = pl.DataFrame({"cell_id": ["a", "b"], "vendor": ["ZTE", "No|kia"]})
    md = case_markdown(summarize(case_kqi(), cells, kqi.Config()))
    assert "| all | 4 | 1 | 25.00 % | 1 | 1 | 0 |" in md
    assert "| vendor: ZTE | 1 | 1 | 100.00 % | 1 | 1 | 0 |" in md
    assert "No\\|kia" in md
    assert "at least 30 tests" in md


def test_missing_kqi_column_is_refused_not_flagged_poor(tmp_path) -> None:
    # gaming tests without loss_pct would all count as not good: every cell "poor", full confidence
    from kqi.errors import InputError

    p = tmp_path / "t.csv"
    p.write_text("ts,cell_id,service,rtt_ms,jitter_ms\n"
                 + "".join(f"2026-11-02 08:00:{i:02d},C1,gaming,40,5\n" for i in range(40)),
                 encoding="utf-8")
    with pytest.raises(InputError, match=r"no 'loss_pct' column.*40 gaming tests") as exc:
        kqi.flag_cells(p)
    assert exc.value.column == "loss_pct"
    assert "t.csv" in str(exc.value)
    # a feed with only browsing tests needs only page_load_ms
    q = tmp_path / "b.csv"
    q.write_text("ts,cell_id,service,page_load_ms\n2026-11-02 08:00:00,C1,browsing,900\n",
                 encoding="utf-8")
    assert kqi.flag_cells(q)["good_tests"].to_list() == [1]


@pytest.mark.parametrize("bad", [
    pl.Series("cell_id", [["a"], ["b"]]),
    pl.Series("cell_id", [{"x": 1}, {"x": 2}]),
    pl.Series("page_load_ms", [True, False]),
])
def test_in_memory_columns_of_unusable_types_are_refused(bad: pl.Series) -> None:
    df = pl.DataFrame({"ts": ["2026-01-01 10:00:00"] * 2, "cell_id": ["a", "b"],
                       "service": ["browsing"] * 2, "page_load_ms": [100.0, 200.0]})
    df = df.with_columns(bad)
    with pytest.raises(InputError, match=rf"column '{bad.name}': column type .* cannot hold"):
        kqi.flag_cells(df)


def test_summary_md_escapes_a_name_once() -> None:
    """summary.md escapes a vendor's '|' once (it was escaped twice: a literal backslash, then a
    bare '|' that split the table row)."""
    from kqi.summary import to_markdown

    cells = pl.DataFrame({"cell_id": ["a", "b"], "vendor": ["ZTE", "No|kia"]})
    md = to_markdown(summarize(case_kqi(), cells, kqi.Config()))
    row = next(line for line in md.splitlines() if "kia" in line)
    assert row.startswith("| vendor: No\\|kia | ")
    assert "\\\\" not in row
    assert row.count(" | ") == 6   # 7 cells (scope, 3 counts, 3 services): 6 inner separators


def test_config_may_be_a_toml_path(tmp_path) -> None:
    from kqi.errors import ConfigError

    toml = tmp_path / "kqi.toml"
    toml.write_text("[kqi]\nmin_tests = 1\n", encoding="utf-8")
    df = app_tests(seed=5, n=120)
    assert kqi.flag_cells(df, toml).equals(kqi.flag_cells(df, load_config(toml)))
    assert kqi.flag_cells(df, str(toml)).equals(kqi.flag_cells(df, load_config(toml)))
    with pytest.raises(ConfigError, match=r"config must be a kqi\.Config or the path"):
        kqi.flag_cells(df, {"kqi": {}})  # type: ignore[arg-type]
