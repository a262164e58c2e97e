"""Trailing-window benchmark: a weekly run that reads one week of tests plus the stored day counts
of the four weeks before it, against re-reading all five weeks of tests.

Both runs analyse the same 35 days and give the same cell_kqi (checked here). Five weeks of the
same synthetic network are made with ``kqi.synth.make_followup`` (weeks 0-4); weeks 0-3 are run
into one history with ``[history] window_days = 35``; then, alternated ``--repeat`` times:

- ``trailing``: week 4's run (``kqi.run(..., history=copy of the 4-week history)``);
- ``reread``: one run over the five weeks' tests concatenated into one file, no history.

Times are the whole ``kqi.run`` (ingest of every feed, flag, diagnosis, complaints, work orders,
follow-up and recording for the trailing run; nothing written: ``out=None``).

    python -m benchmarks.bench_history                     # 1,600 cells; benchmarks/results/history.json
    python -m benchmarks.bench_history --cells 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import polars as pl

import kqi
from kqi.config import Config, HistoryConfig
from kqi.synth import make_followup

RESULTS = Path(__file__).parent / "results" / "history.json"  # --out to keep several


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=1600)
    ap.add_argument("--tests-per-cell-day", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--format", choices=("csv", "parquet"), default="csv",
                    help="format of the app-test files (operators' feeds are mostly CSV)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    cfg = replace(Config(), history=HistoryConfig(window_days=35))
    cfg = replace(cfg, output=replace(cfg.output, map=False, excel=False))
    with tempfile.TemporaryDirectory(prefix="kqi-bench-history-") as tmp:
        root = Path(tmp)
        weeks = [make_followup(root / f"w{k}", seed=7, n_cells=args.cells, days=7, week=k,
                               tests_per_cell_day=args.tests_per_cell_day, tests_format=args.format)
                 for k in range(5)]
        hist = root / "four-weeks.duckdb"
        for w in weeks[:4]:
            kqi.run(cells=w.cells, tests=w.tests, kpis=w.kpis, complaints=w.complaints,
                    out=None, history=hist, config=cfg)
        all_tests = root / f"five-weeks.{args.format}"
        if args.format == "parquet":
            pl.concat([pl.read_parquet(w.tests) for w in weeks]).write_parquet(all_tests)
        else:
            with all_tests.open("wb") as fh:
                for k, w in enumerate(weeks):
                    lines = w.tests.read_bytes().splitlines(keepends=True)
                    fh.writelines(lines if k == 0 else lines[1:])
        all_kpis = root / "five-weeks-kpis.csv"
        last = weeks[-1]
        shutil.copy(last.kpis, all_kpis)   # the same KPIs (the last week) for both runs
        times: dict[str, list[float]] = {"trailing": [], "reread": []}
        stage: dict[str, list[float]] = {"trailing": [], "reread": []}
        flag = "ingest + flag app tests"
        results: dict[str, pl.DataFrame] = {}
        for _ in range(args.repeat):
            h = root / "run.duckdb"
            shutil.copy(hist, h)
            t0 = time.perf_counter()
            r = kqi.run(cells=last.cells, tests=last.tests, kpis=last.kpis,
                        complaints=last.complaints, out=None, history=h, config=cfg)
            times["trailing"].append(time.perf_counter() - t0)
            stage["trailing"].append(r.run_info["timings_s"][flag])
            results["trailing"] = r.cell_kqi
            t0 = time.perf_counter()
            r = kqi.run(cells=last.cells, tests=all_tests, kpis=all_kpis,
                        complaints=last.complaints, out=None, config=cfg)
            times["reread"].append(time.perf_counter() - t0)
            stage["reread"].append(r.run_info["timings_s"][flag])
            results["reread"] = r.cell_kqi
        cols = ["cell_id", "service", "tests", "good_tests", "poor"]
        same = results["trailing"].select(cols).equals(results["reread"].select(cols))
        rows = {"test_file_mb_week": round(last.tests.stat().st_size / 2**20, 1),
                "test_file_mb_five_weeks": round(all_tests.stat().st_size / 2**20, 1)}
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "cells": args.cells, "format": args.format, "repeat": args.repeat, **rows,
        "same_cell_kqi": same,
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "median_flag_stage_s": {k: round(statistics.median(v), 3) for k, v in stage.items()},
        "reread_over_trailing": round(med["reread"] / med["trailing"], 2),
        "python": platform.python_version(), "kqi": kqi.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
