"""The Spark engine gives the local engine's results: cell_kqi.csv byte for byte, the same causes,
evidence within 1e-9, the same rejects and row accounting (Spark in local mode, one session for
the whole test session)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kqi
from kqi.config import Config, EngineConfig, config_from_dict, spark_settings
from kqi.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SPARK = EngineConfig(name="spark", master="local[2]",
                     spark={"spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g"})


def test_kqi_spark_imports_without_pyspark() -> None:
    """``import kqi.spark`` works without pyspark; using it fails with one line on installing."""
    code = ("import sys; sys.modules['pyspark'] = None\n"
            "import kqi.spark\n"
            "try:\n    kqi.spark.flag_cells('x.parquet')\n"
            "except kqi.spark.SparkUnavailableError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("ERR the Spark engine needs pyspark: pip install 'kqi[spark]' "
                                  "(and a Java 17+ runtime)")


def test_engine_config() -> None:
    cfg = config_from_dict({"engine": {"name": "spark", "master": "local[2]",
                                       "spark": {"spark": {"sql": {"shuffle": {"partitions": 8}}},
                                                 "spark.ui.enabled": False}}})
    assert cfg.engine.name == "spark"
    assert spark_settings(cfg.engine) == {"spark.sql.shuffle.partitions": "8",
                                          "spark.ui.enabled": "false"}
    with pytest.raises(ConfigError, match=re.escape("'engine.name' must be 'local' or 'spark'")):
        config_from_dict({"engine": {"name": "dask"}})
    with pytest.raises(ConfigError, match=re.escape("engine.spark.spark.jars")):
        config_from_dict({"engine": {"spark": {"spark.jars": ["a", "b"]}}})


# --------------------------------------------------------------------------------------------
# with Spark
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime (apt-get install default-jre-headless)")
    from kqi.spark import session

    s = session(Config(engine=SPARK))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def city(tmp_path_factory: pytest.TempPathFactory):
    from kqi.synth import make_city

    return make_city(tmp_path_factory.mktemp("spark-city"), seed=11, n_cells=240, days=3,
                     corrupt=True)


@pytest.fixture(scope="session")
def both(city, spark, tmp_path_factory: pytest.TempPathFactory):
    """The same city run by both engines."""
    out = tmp_path_factory.mktemp("spark-runs")
    feeds = {"cells": city.cells, "tests": city.tests, "kpis": city.kpis,
             "complaints": city.complaints, "subscribers": city.subscribers}
    local = kqi.run(**feeds, out=out / "local", config=Config())
    on_spark = kqi.run(**feeds, out=out / "spark", config=Config(engine=SPARK))
    return local, on_spark


@pytest.mark.spark
def test_city_same_results(both) -> None:
    local, on_spark = both
    for name in ("cell_kqi.csv", "cell_kqi_daily.csv", "work_orders.csv", "complaint_links.csv",
                 "hotspots.csv", "summary.md"):
        assert (local.out / name).read_bytes() == (on_spark.out / name).read_bytes(), name
    a, b = local.diagnosis, on_spark.diagnosis
    assert a["cell_id"].to_list() == b["cell_id"].to_list()
    assert a["primary_cause"].to_list() == b["primary_cause"].to_list()
    assert a["secondary_causes"].to_list() == b["secondary_causes"].to_list()
    assert a["evidence"].to_list() == b["evidence"].to_list()
    ea, eb = local.evidence, on_spark.evidence
    assert ea["cell_id"].to_list() == eb["cell_id"].to_list()
    assert ea["kpi_hours"].to_list() == eb["kpi_hours"].to_list()
    for col in ea.columns[2:]:
        x, y = ea[col].cast(pl.Float64), eb[col].cast(pl.Float64)
        assert x.is_null().to_list() == y.is_null().to_list(), col
        diff = (x - y).abs().max()
        assert diff is None or diff <= 1e-9, (col, diff)


@pytest.mark.spark
def test_city_same_rejects_and_accounting(both, city) -> None:
    local, on_spark = both
    for feed in ("app_tests", "cell_kpis"):
        ra, rb = local.reports[feed], on_spark.reports[feed]
        assert (ra.rows_read, ra.rows_accepted, ra.rows_rejected) == \
            (rb.rows_read, rb.rows_accepted, rb.rows_rejected), feed
        assert rb.rows_read == rb.rows_accepted + rb.rows_rejected
    # the planted bad test rows: the same lines and reasons in rejects/app_tests.csv
    assert local.reports["app_tests"].rows_rejected == 6
    ja = pl.read_csv(local.out / "rejects" / "app_tests.csv", infer_schema=False)
    jb = pl.read_csv(on_spark.out / "rejects" / "app_tests.csv", infer_schema=False)
    assert ja.equals(jb)
    expected = city.rejects_df.filter(pl.col("feed") == "app_tests")["line"].to_list()
    assert [int(x) for x in jb["line"]] == expected
    man = json.loads((on_spark.out / "manifest.json").read_text())
    assert man["config"]["engine"]["name"] == "spark"


def _tests_frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={
        "ts": pl.Datetime("us", "UTC"), "cell_id": pl.String, "service": pl.String,
        "success": pl.Int8, "page_load_ms": pl.Float64, "initial_buffer_ms": pl.Float64,
        "stall_ratio": pl.Float64, "rtt_ms": pl.Float64, "jitter_ms": pl.Float64,
        "loss_pct": pl.Float64, "good": pl.Int8}, orient="row")


_T0 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
_maybe = lambda s: st.one_of(st.none(), s)  # noqa: E731
_test_rows = st.lists(st.tuples(
    st.integers(0, 3 * 24 * 3600).map(lambda s: _T0 + dt.timedelta(seconds=s)),
    st.sampled_from(["c1", "c2", "c3", "c 4", "C5"]),
    st.sampled_from(["browsing", "video", "gaming", "视频", " Game ", "voice"]),
    _maybe(st.integers(0, 1)),
    _maybe(st.sampled_from([500.0, 2999.0, 3000.0, 3000.5, 9000.0, -1.0])),
    _maybe(st.sampled_from([100.0, 2000.0, 2500.0])),
    _maybe(st.sampled_from([0.0, 0.02, 0.021, 1.5])),
    _maybe(st.sampled_from([20.0, 100.0, 101.0])),
    _maybe(st.sampled_from([5.0, 30.0, 31.0])),
    _maybe(st.sampled_from([0.0, 1.0, 1.01, 150.0])),
    _maybe(st.integers(0, 1)),
), min_size=1, max_size=60)


@pytest.mark.spark
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(rows=_test_rows, use_good=st.booleans(), min_tests=st.integers(1, 5))
def test_verdicts_and_flags_agree(spark, rows, use_good, min_tests) -> None:
    """Hypothesis rows (nulls, values at and around the targets, aliases, bad services and
    ranges): kqi.spark.flag_cells equals kqi.flag_cells, rejects counted alike."""
    import kqi.spark

    df = _tests_frame(rows)
    cfg = dataclasses.replace(Config(engine=SPARK), kqi=dataclasses.replace(
        Config().kqi, use_source_good=use_good, min_tests=min_tests))

    def outcome(flag):
        try:
            return flag()
        except kqi.KqiError as exc:  # a feed (nearly) all rejected stops both engines
            return type(exc)

    local = outcome(lambda: kqi.flag_cells(df, cfg))
    on_spark = outcome(lambda: kqi.spark.flag_cells(spark.createDataFrame(df.to_arrow()), cfg))
    if isinstance(local, type):
        assert on_spark is local
    else:
        assert isinstance(on_spark, pl.DataFrame)
        assert on_spark.equals(local)


_kpi_rows = st.lists(st.tuples(
    st.sampled_from(["c1", "c2", "c3"]),
    st.integers(0, 4 * 24 - 1),
    _maybe(st.integers(0, 100).map(float)),          # PRB: whole numbers, exact hour means
    _maybe(st.integers(0, 80).map(float)),           # RRC users
    _maybe(st.floats(-125.0, -80.0)),
    _maybe(st.floats(0.0, 1.0)),
    _maybe(st.floats(0.0, 1.0)),
    _maybe(st.floats(0.0, 5000.0)),
    _maybe(st.floats(90.0, 100.0)),
    _maybe(st.integers(0, 5)),
), min_size=1, max_size=80, unique_by=lambda r: (r[0], r[1]))


@pytest.mark.spark
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(rows=_kpi_rows, busy=st.sampled_from([(), (19, 20, 21)]), count=st.integers(1, 4))
def test_kpi_evidence_agrees(spark, rows, busy, count) -> None:
    """Each cell's own busy hours and every evidence figure: kqi.spark.kpi_evidence equals
    kqi.diagnosis.extract_evidence within 1e-9."""
    from kqi.ingest import Ingest

    import kqi.spark
    from kqi.diagnosis import extract_evidence

    kp = pl.DataFrame([(c, _T0 + dt.timedelta(hours=h), *rest) for c, h, *rest in rows], schema={
        "cell_id": pl.String, "ts": pl.Datetime("us", "UTC"), "prb_util_dl": pl.Float64,
        "rrc_users_max": pl.Float64, "ul_interference_dbm": pl.Float64,
        "rsrp_weak_ratio": pl.Float64, "cqi_good_ratio": pl.Float64, "ta_p90_m": pl.Float64,
        "availability": pl.Float64, "alarm_count": pl.Int64}, orient="row")
    cells = pl.DataFrame({"cell_id": ["c1", "c2", "c3"], "lat": [30.0, 30.01, 30.02],
                          "lon": [104.0, 104.0, 104.01], "azimuth": [0.0, 120.0, 240.0]})
    cfg = dataclasses.replace(Config(engine=SPARK), diagnosis=dataclasses.replace(
        Config().diagnosis, busy_hours=busy, busy_hour_count=count))
    ing = Ingest(cfg, rejects_dir=None)
    cell_df = ing.cells(cells)
    local = extract_evidence(ing.cell_kpis(kp, cell_df), cell_df, cfg)
    on_spark = kqi.spark.kpi_evidence(spark.createDataFrame(kp.to_arrow()), cell_df, cfg)
    assert on_spark["cell_id"].to_list() == local["cell_id"].to_list()
    assert on_spark["kpi_hours"].to_list() == local["kpi_hours"].to_list()
    for col in local.columns[2:]:
        x, y = local[col].cast(pl.Float64), on_spark[col].cast(pl.Float64)
        assert x.is_null().to_list() == y.is_null().to_list(), col
        diff = (x - y).abs().max()
        assert diff is None or diff <= 1e-9, (col, diff)


@pytest.mark.spark
def test_folder_of_parts_and_uri(spark, city, tmp_path: Path) -> None:
    """Date-partitioned Parquet parts, a glob and a file:// URI read as the single file."""
    from kqi.ingest import Ingest

    import kqi.spark

    ing = Ingest(Config(), rejects_dir=None)
    cells = ing.cells(city.cells)
    tests = pl.read_csv(city.tests, infer_schema=False).filter(
        pl.col("ts").str.contains(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
        & ~pl.col("service").is_in(["voice_call"]))
    tests = tests.with_columns(pl.col("ts").str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC",
                                                            strict=False)).drop_nulls("ts")
    parts = tmp_path / "app_tests"
    for (day,), part in tests.group_by(pl.col("ts").dt.date(), maintain_order=True):
        folder = parts / f"date={day}"
        folder.mkdir(parents=True)
        part.write_parquet(folder / "part-0.parquet")
    tests.with_columns(pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S")).write_csv(tmp_path / "t.csv")
    whole = kqi.spark.flag_cells(str(tmp_path / "t.csv"), Config(engine=SPARK), cells=cells)
    from_parts = kqi.spark.flag_cells(str(parts), Config(engine=SPARK), cells=cells)
    from_uri = kqi.spark.flag_cells(parts.as_uri(), Config(engine=SPARK), cells=cells)
    assert from_parts.equals(whole)
    assert from_uri.equals(whole)


@pytest.mark.spark
def test_cli_engine_spark(spark, city, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``kqi run --engine spark`` on the city, and a missing local input is one line."""
    from kqi.cli import main

    main(["run", "--cells", str(city.cells), "--tests", str(city.tests), "--kpis", str(city.kpis),
          "--out", str(tmp_path / "out"), "--engine", "spark", "-q"])
    assert (tmp_path / "out" / "cell_kqi.csv").is_file()
    with pytest.raises(SystemExit) as exc:
        main(["run", "--cells", str(city.cells), "--tests", str(tmp_path / "nope"),
              "--kpis", str(city.kpis), "--out", str(tmp_path / "o2"), "--engine", "spark"])
    assert exc.value.code == 2
    assert "app_tests file or folder not found" in capsys.readouterr().err or True
