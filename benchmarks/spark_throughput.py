"""Throughput per core of the Spark engine in local mode next to the local engine's.

The same Parquet file of per-test rows (benchmarks/generate.py: 50,000 cells, Zipf-like counts,
nulls where a service does not measure a KQI) is flagged by ``kqi.flag_cells`` (numba, polars;
ingest validation included) and by ``kqi.spark.flag_cells`` (validation, verdicts and the
per cell x service x day counts on Spark, then the same local flagging of the collected counts),
and the two results are checked equal. Each timing is one cold run after a warm-up on a small
file (numba compiled, the Spark session up), so it includes Spark's per-query planning.

    python -m benchmarks.spark_throughput --rows 20000000 100000000 --cores 2 --data-dir /tmp/kqi-spark-bench

Files are written in chunks (memory bounded); 10^8 rows take about 2.5 GB of disk as Parquet.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from benchmarks.generate import generate


def _load() -> float:
    return os.getloadavg()[0]


def measure(rows: int, data_dir: Path, cores: int, engines: list[str]) -> dict[str, Any]:
    import kqi
    import kqi.spark
    from kqi.config import Config, EngineConfig

    path = generate(rows, data_dir, csv=False)["parquet"]
    cfg = Config(engine=EngineConfig(name="spark", master=f"local[{cores}]", spark={
        "spark.sql.shuffle.partitions": str(4 * cores), "spark.driver.memory": "3g"}))
    out: dict[str, Any] = {"rows": rows, "file_mib": round(path.stat().st_size / 2**20, 1),
                           "load_before": round(_load(), 2)}
    results = {}
    for engine in engines:
        t0 = time.perf_counter()
        if engine == "local":
            results[engine] = kqi.flag_cells(path, dataclasses.replace(cfg, engine=EngineConfig()))
        else:
            results[engine] = kqi.spark.flag_cells(str(path), cfg)
        secs = time.perf_counter() - t0
        out[engine] = {"seconds": round(secs, 2), "rows_per_s": round(rows / secs),
                       "rows_per_s_per_core": round(rows / secs / cores)}
    if len(results) == 2:
        out["equal"] = results["local"].equals(results["spark"])
    out["load_after"] = round(_load(), 2)
    return out


def markdown(res: list[dict[str, Any]], cores: int) -> str:
    lines = [f"| rows | Parquet MiB | local s | local rows/s/core | Spark local[{cores}] s | "
             "Spark rows/s/core | Spark / local | same cell_kqi | load (1 min) |",
             "|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in res:
        loc, spk = r.get("local", {}), r.get("spark", {})
        ratio = (f"{spk['rows_per_s'] / loc['rows_per_s']:.3f}" if loc and spk else "")
        lines.append(f"| {r['rows']:,} | {r['file_mib']} | {loc.get('seconds', '')} | "
                     f"{loc.get('rows_per_s_per_core', 0):,} | {spk.get('seconds', '')} | "
                     f"{spk.get('rows_per_s_per_core', 0):,} | {ratio} | {r.get('equal', '')} | "
                     f"{r['load_before']} -> {r['load_after']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[20_000_000, 100_000_000])
    ap.add_argument("--cores", type=int, default=2, help="Spark local[N] (and the per-core divisor)")
    ap.add_argument("--engines", nargs="+", default=["local", "spark"], choices=["local", "spark"])
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/kqi-spark-bench"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "spark_throughput.json")
    args = ap.parse_args(argv)
    import kqi
    import kqi.spark
    from kqi.config import Config, EngineConfig

    # warm-up: numba compiled, the Spark session started, on a small file
    warm = generate(100_000, args.data_dir, csv=False)["parquet"]
    kqi.flag_cells(warm)
    kqi.spark.flag_cells(str(warm), Config(engine=EngineConfig(
        name="spark", master=f"local[{args.cores}]")))
    res = []
    for rows in args.rows:
        r = measure(rows, args.data_dir, args.cores, args.engines)
        print(json.dumps(r), flush=True)
        res.append(r)
    table = markdown(res, args.cores)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(),
                                    "cores": args.cores, "results": res, "table": table},
                                   indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())



