"""A file given as the wrong feed (a tests file as --kpis) stops before the analysis with one line
naming the file and what its columns look like, exit 2, and no outputs."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from cli_helpers import exit_code as _kqi
from kqi.ingest._feedcheck import looks_like

from kqi.synth import make_city


@pytest.fixture(scope="module", params=[5, 23])
def city(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    return make_city(tmp_path_factory.mktemp("city"), seed=request.param, n_cells=40, days=2,
                     tests_per_cell_day=8)


# (option given the wrong file, the file, the feed named in the error, the option it suggests)
SWAPS = [
    ("--kpis", "tests", "none of the cell KPI columns (prb_util_dl", "app tests: --tests?"),
    ("--tests", "kpis", "column 'service': missing required column", "cell KPIs: --kpis?"),
    ("--cells", "complaints", "column 'azimuth'", "complaints: --complaints?"),
    ("--complaints", "cells", "column 'complaint_id'", "a cell list: --cells?"),
    ("--subscribers", "complaints", "column 'subscribers'", "complaints: --complaints?"),
    ("--kpis", "subscribers", "column 'ts'", "subscriber counts: --subscribers?"),
    ("--samples", "kpis", "column 'rsrp_dbm'", "cell KPIs: --kpis?"),
    ("--tests", "complaints", "column 'service'", "complaints: --complaints?"),
]


@pytest.mark.parametrize("swap", SWAPS, ids=[f"{s[1]} as {s[0]}" for s in SWAPS])
def test_a_swapped_feed_stops_with_what_it_looks_like(city, tmp_path: Path, capsys,
                                                      swap: tuple[str, str, str, str]) -> None:
    option, given, problem, hint = swap
    files = {"--cells": city.cells, "--tests": city.tests, "--kpis": city.kpis,
             "--complaints": city.complaints}
    files[option] = getattr(city, given)
    argv = ["-q", "run", "--out", str(tmp_path / "out")]
    for opt, path in files.items():
        argv += [opt, str(path)]
    if option in ("--subscribers", "--samples"):
        argv += [option, str(getattr(city, given))]
    assert _kqi(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"{getattr(city, given)}" in err[0]
    assert problem in err[0], err[0]
    assert err[0].endswith(hint), err[0]
    assert not (tmp_path / "out").exists()


def test_a_kpi_feed_without_kpis_and_unlike_any_feed_says_how_to_map_them(city, tmp_path: Path,
                                                                          capsys) -> None:
    odd = tmp_path / "kpis.csv"
    pl.read_csv(city.kpis).select("ts", "cell_id", pl.col("prb_util_dl").alias("dl_load")).write_csv(odd)
    argv = ["-q", "run", "--cells", str(city.cells), "--tests", str(city.tests), "--kpis", str(odd),
            "--out", str(tmp_path / "out")]
    assert _kqi(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("none of the cell KPI columns (prb_util_dl, prb_util_ul, rrc_users_max, "
                        "ul_interference_dbm, ...); map them in [ingest.column_map.cell_kpis]"), err


def test_a_kpi_feed_with_one_kpi_is_read() -> None:
    assert looks_like(["ts", "cell_id", "availability"], "cell_kpis") is None
    assert looks_like(["ts", "cell_id", "service", "rtt_ms"], "cell_kpis") == "app_tests"
    assert looks_like(["cell_id", "service", "tests", "good_tests"], "cell_kpis") == "app_tests_agg"
    # the two forms of the tests feed are one option
    assert looks_like(["cell_id", "service", "tests", "good_tests"], "app_tests") is None


def test_a_tests_file_without_any_kqi_stops(city, tmp_path: Path, capsys) -> None:
    bare = tmp_path / "tests.csv"
    pl.read_csv(city.tests).select("ts", "cell_id", "service").write_csv(bare)
    argv = ["-q", "run", "--cells", str(city.cells), "--tests", str(bare), "--kpis", str(city.kpis),
            "--out", str(tmp_path / "out")]
    assert _kqi(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "no 'page_load_ms' column, so its" in err
    assert "browsing tests cannot be judged" in err
    assert not (tmp_path / "out").exists()
