"""benchmarks/bench_stages.py measures a real ``kqi run`` through the console script's path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_stages


@pytest.mark.slow
def test_a_stage_table_from_a_small_city(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a data folder given relative to the caller's folder (the runs themselves are made in one
    # of their own)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "stages.json"
    assert bench_stages.main(["--cells", "40", "--days", "1", "--data-dir", "data",
                              "--out", str(out)]) == 0
    assert (tmp_path / "data" / "city_40_1d" / "cell_kpis.csv").is_file()
    res = json.loads(out.read_text(encoding="utf-8"))
    (rnd,) = res["rounds"]
    assert rnd["wall_s"] > 0
    assert rnd["peak_rss_mib"] > 50
    # every stage of the run timed, from the run's own run_info.json
    assert {"ingest cells", "ingest KPIs", "ingest + flag app tests", "diagnosis",
            "write outputs"} <= set(res["timings_s"])
    assert sum(res["timings_s"].values()) <= res["wall_s"]
