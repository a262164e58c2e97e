"""Peak memory of a whole ``kqi run`` against the number of app-test rows (issue 15, item 3).

A city's inputs (``kqi demo``'s or a ``benchmarks`` city folder: cells.csv, cell_kpis.csv,
complaints.csv, subscribers.csv, app_tests.csv) are run once as they are (the reference), then
with a Parquet app-test file of each size in ``--rows`` in place of their app tests: the city's
own cell ids (Zipf-like popularity) and week, NaN for a KQI a service does not measure, zstd,
1 M-row groups. Each run is a fresh process; the figure is its peak resident memory (ru_maxrss).
Memory does not depend on the machine's load.

    python -m benchmarks.run_memory --city CITY_DIR --rows 2e7,1e8 --data-dir /tmp/kqi-mem
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.generate import CHUNK_ROWS, KQI_SPEC, SERVICE_MIX, SERVICES


def city_tests(city: Path, rows: int, out: Path, *, seed: int = 42) -> Path:
    """A Parquet app-test file of ``rows`` rows over the city's cells and its tests' week."""
    ids = pl.read_csv(city / "cells.csv", columns=["cell_id"], infer_schema=False)["cell_id"].to_list()
    first = pl.scan_csv(city / "app_tests.csv", infer_schema=False).select(
        pl.col("ts").str.to_datetime(strict=False).min()).collect().item()
    t0 = int(pl.Series([first]).dt.truncate("1d").dt.epoch("ms")[0])
    w = 1.0 / np.arange(1, len(ids) + 1) ** 0.9
    cum = np.cumsum(w / w.sum())
    rng = np.random.default_rng(seed)
    names = np.array(SERVICES)
    dictionary = pa.array(ids)
    schema = pa.schema([("ts", pa.timestamp("ms", "UTC")), ("cell_id", pa.string()),
                        ("service", pa.string()), ("success", pa.int8()),
                        *((k, pa.float64()) for k, *_ in KQI_SPEC)])
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            cell = np.searchsorted(cum, rng.random(n)).clip(0, len(ids) - 1).astype(np.int32)
            svc = np.searchsorted(np.cumsum(SERVICE_MIX)[:-1], rng.random(n))
            cols: dict[str, pa.Array] = {
                "ts": pa.array(t0 + rng.integers(0, 7 * 86_400_000, n), pa.timestamp("ms", "UTC")),
                "cell_id": pa.DictionaryArray.from_arrays(pa.array(cell), dictionary).cast(pa.string()),
                "service": pa.array(names[svc]),
                "success": pa.array((rng.random(n) > 0.03).astype(np.int8))}
            for name, s, scale, _ in KQI_SPEC:
                v = rng.lognormal(0, 0.6, n) * scale
                v = np.minimum(v, 1.0) if name == "stall_ratio" else np.minimum(v, 100.0) if name == "loss_pct" else v
                v[svc != s] = np.nan
                cols[name] = pa.array(v)
            writer.write_table(pa.table(cols, schema=schema), row_group_size=CHUNK_ROWS)
    return out


_CHILD = """
import resource, subprocess, sys, json, time
t0 = time.perf_counter()
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": r.returncode, "peak_mib": round(ru.ru_maxrss / 1024, 1),
                  "seconds": round(time.perf_counter() - t0, 1),
                  "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 1), "stderr": r.stderr[-300:]}))
"""


def peak_of_run(city: Path, tests: Path) -> dict[str, object]:
    """Peak RSS of one ``kqi run`` of the city with ``tests`` (a fresh process)."""
    out = Path(tempfile.mkdtemp(prefix="kqi-mem-"))
    try:
        cmd = [sys.executable, "-m", "kqi.cli", "run", "-q", "--cells", str(city / "cells.csv"),
               "--tests", str(tests), "--kpis", str(city / "cell_kpis.csv"), "--out", str(out)]
        for flag, name in (("--complaints", "complaints.csv"), ("--subscribers", "subscribers.csv")):
            if (city / name).exists():
                cmd += [flag, str(city / name)]
        r = subprocess.run([sys.executable, "-c", _CHILD, *cmd], capture_output=True, text=True,
                           check=True)
        return {"tests": str(tests), **json.loads(r.stdout.strip().splitlines()[-1])}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--city", type=Path, required=True)
    ap.add_argument("--rows", default="2e7,1e8")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    rows_out = [{"rows": "the city's own", **peak_of_run(args.city, args.city / "app_tests.csv")}]
    print(json.dumps(rows_out[-1]), flush=True)
    for rows in (int(float(x)) for x in args.rows.split(",")):
        path = args.data_dir / f"city_tests_{rows:.0e}.parquet".replace("+", "")
        if not path.exists():
            t0 = time.perf_counter()
            city_tests(args.city, rows, path)
            print(f"generated {path} in {time.perf_counter() - t0:.0f} s", flush=True)
        rows_out.append({"rows": rows, **peak_of_run(args.city, path)})
        print(json.dumps(rows_out[-1]), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(rows_out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
