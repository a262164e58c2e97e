"""Samples benchmark: the Cork drive-test folder (188,711 G-NetTrack rows in 83 files), read in place.

Measured, median of ``--repeat`` runs after one warm-up (numba, pyarrow, polars first calls):

- ``read_s``: ``Ingest.samples`` on the folder (every file opened, validated, accounted for);
- ``read_one_file_s``: the same rows as one file (the folder's per-file cost is the difference);
- ``analyse_s``: ``kqi.samples.analyse_samples`` (bins, per-cell figures, cells estimated);
- ``map_s``: the map of bins and estimated cells;
- peer ``polars_floor_s``: ``polars.read_csv`` of the 83 files, concatenated, with a group-by on
  a 50 m grid: what the reading and binning cost with no validation, rejects or accounting.

    python benchmarks/bench_samples.py [--data ../shared/data/real] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import polars as pl
from kqi.ingest import Ingest

from kqi.config import Config
from kqi.samples import analyse_samples, render_samples_map

RESULTS = Path(__file__).resolve().parent / "results"


def _time(fn, repeat: int) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return round(statistics.median(runs), 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("KQI_REAL_DATA")
                                                      or here.parent / "shared" / "data" / "real"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cork = args.data / "ucc-5g-cork"
    files = sorted(cork.rglob("*.csv"))
    cfg = Config()
    feed = Ingest(cfg, None).samples(cork)
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "all.csv"
        pl.concat([pl.read_csv(f, infer_schema=False) for f in files]).write_csv(one)
        out: dict[str, object] = {
            "rows": feed.report.rows_read, "files": len(files), "machine": platform.machine(),
            "cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2),
            "read_s": _time(lambda: Ingest(cfg, None).samples(cork), args.repeat),
            "read_one_file_s": _time(lambda: Ingest(cfg, None).samples(one), args.repeat),
        }
        res = analyse_samples(feed.frame, None, cfg)
        out["analyse_s"] = _time(lambda: analyse_samples(feed.frame, None, cfg), args.repeat)
        out["map_s"] = _time(lambda: render_samples_map(res, None, Path(tmp) / "map.html", cfg),
                             args.repeat)

    def floor() -> None:
        df = pl.concat([pl.read_csv(f, infer_schema=False) for f in files])
        lat = pl.col("Latitude").cast(pl.Float64, strict=False)
        lon = pl.col("Longitude").cast(pl.Float64, strict=False)
        df.group_by((lat * 111_195 / 50).floor(), (lon * 68_700 / 50).floor()).agg(
            pl.col("RSRP").cast(pl.Float64, strict=False).median())

    out["polars_floor_s"] = _time(floor, args.repeat)
    out["rows_per_s_read"] = round(out["rows"] / out["read_s"])  # type: ignore[operator]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "samples_cork.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
