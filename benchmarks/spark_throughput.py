"""Throughput per core of the Spark engine in local mode next to the local engine's.

The same Parquet file of per-test rows (benchmarks/generate.py: 50,000 cells, Zipf-like counts,
nulls where a service does not measure a KQI) is flagged by ``kqi.flag_cells`` (numba, polars;
ingest validation included) and by ``kqi.spark.flag_cells`` (validation, verdicts and the
per cell x service x day counts on Spark, then the same local flagging of the collected counts),
and the two results are checked equal. Each timing is one cold run after a warm-up on a small
file (numba compiled, the Spark session up), so it includes Spark's per-query planning.

    python -m benchmarks.spark_throughput --rows 20000000 100000000 --cores 2 --data-dir /work/bench/spark-data

Files are written in chunks (memory bounded); 10^8 rows take about 0.9 GB of disk as Parquet.
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


def _cpu() -> float:
    """CPU seconds (user + system) of this process and of the Spark JVM it started."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    total = ru.ru_utime + ru.ru_stime
    try:
        from pyspark import SparkContext

        proc = SparkContext._gateway.proc if SparkContext._gateway else None  # type: ignore[attr-defined]
        if proc is not None:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (ImportError, OSError, IndexError, ValueError):
        pass
    return total


def spark_config(cores: int) -> Any:
    """The benchmark's Spark session: ``local[cores]``, 4 shuffle partitions per core."""
    from kqi.config import Config, EngineConfig

    return Config(engine=EngineConfig(name="spark", master=f"local[{cores}]", spark={
        "spark.sql.shuffle.partitions": str(4 * cores), "spark.driver.memory": "3g"}))


def measure(rows: int, data_dir: Path, cores: int, engines: list[str]) -> dict[str, Any]:
    import kqi
    import kqi.spark
    from kqi.config import EngineConfig

    path = generate(rows, data_dir, csv=False)["parquet"]
    cfg = spark_config(cores)
    out: dict[str, Any] = {"rows": rows, "file_mib": round(path.stat().st_size / 2**20, 1),
                           "load_before": round(_load(), 2)}
    results = {}
    for engine in engines:
        t0, c0 = time.perf_counter(), _cpu()
        if engine == "local":
            results[engine] = kqi.flag_cells(path, dataclasses.replace(cfg, engine=EngineConfig()))
        else:
            results[engine] = kqi.spark.flag_cells(str(path), cfg)
        secs, cpu = time.perf_counter() - t0, _cpu() - c0
        out[engine] = {"seconds": round(secs, 2), "cpu_seconds": round(cpu, 2),
                       "rows_per_s": round(rows / secs),
                       "rows_per_s_per_core": round(rows / secs / cores),
                       "rows_per_cpu_s": round(rows / cpu) if cpu > 0 else None}
    if len(results) == 2:
        out["equal"] = results["local"].equals(results["spark"])
    out["load_after"] = round(_load(), 2)
    return out


def markdown(res: list[dict[str, Any]], cores: int) -> str:
    lines = [f"| rows | Parquet MiB | local s (CPU s) | local rows/s/core | Spark local[{cores}] s "
             "(CPU s) | Spark rows/s/core | Spark rows/CPU s | Spark / local | same cell_kqi | "
             "load (1 min) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in res:
        loc, spk = r.get("local", {}), r.get("spark", {})
        ratio = (f"{spk['rows_per_s'] / loc['rows_per_s']:.3f}" if loc and spk else "")
        lines.append(f"| {r['rows']:,} | {r['file_mib']} | {loc.get('seconds', '')} "
                     f"({loc.get('cpu_seconds', '')}) | {loc.get('rows_per_s_per_core', 0):,} | "
                     f"{spk.get('seconds', '')} ({spk.get('cpu_seconds', '')}) | "
                     f"{spk.get('rows_per_s_per_core', 0):,} | {spk.get('rows_per_cpu_s') or 0:,} | "
                     f"{ratio} | {r.get('equal', '')} | "
                     f"{r['load_before']} -> {r['load_after']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[20_000_000, 100_000_000])
    ap.add_argument("--cores", type=int, default=2, help="Spark local[N] (and the per-core divisor)")
    ap.add_argument("--engines", nargs="+", default=["local", "spark"], choices=["local", "spark"])
    ap.add_argument("--data-dir", type=Path, default=Path("/work/bench/spark-data"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "spark_throughput.json")
    args = ap.parse_args(argv)
    import kqi
    import kqi.spark

    # warm-up: numba compiled, the Spark session started, on a small file
    warm = generate(100_000, args.data_dir, csv=False)["parquet"]
    kqi.flag_cells(warm)
    kqi.spark.flag_cells(str(warm), spark_config(args.cores))
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



