"""The same job in each tool: read app tests -> per-test verdict -> count per cell x service -> flag.

Every implementation returns cell_id, service, tests, good_tests, good_rate, poor (one row per
cell x service with tests) with the contract's default rule, so their results can be compared.
Run one measurement in a fresh process (peak memory is per process)::

    python -m benchmarks.tools TOOL FILE [--repeat N]

It prints one JSON object: seconds of each repeat, peak RSS, and a digest of the result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kqi.config import Config

CFG = Config()
T = CFG.kqi.targets
TH = CFG.kqi.thresholds
MIN_TESTS = CFG.kqi.min_tests
COLUMNS = ["cell_id", "service", "success", "page_load_ms", "initial_buffer_ms", "stall_ratio",
           "rtt_ms", "jitter_ms", "loss_pct"]
FLOATS = COLUMNS[3:]


def run_kqi(path: Path) -> pl.DataFrame:
    import kqi

    return kqi.flag_cells(path, CFG)


def run_pandas(path: Path) -> pl.DataFrame:
    import pandas as pd

    if path.suffix == ".parquet":
        df = pd.read_parquet(path, columns=COLUMNS)
    else:
        df = pd.read_csv(path, usecols=COLUMNS,
                         dtype={"cell_id": str, "service": str, "success": "float64",
                                **dict.fromkeys(FLOATS, "float64")})
    svc = df["service"]
    ok = df["success"].fillna(1) != 0
    # comparisons with NaN are False: a missing KQI fails the test, as the contract says
    good = ok & np.select(
        [svc == "browsing", svc == "video", svc == "gaming"],
        [df["page_load_ms"] <= T.page_load_ms,
         (df["initial_buffer_ms"] <= T.initial_buffer_ms) & (df["stall_ratio"] <= T.stall_ratio),
         (df["rtt_ms"] <= T.rtt_ms) & (df["jitter_ms"] <= T.jitter_ms)
         & (df["loss_pct"] <= T.loss_pct)],
        default=False)
    g = (df.assign(good=good.astype("int64"))
         .groupby(["cell_id", "service"], sort=True)["good"].agg(["size", "sum"])
         .rename(columns={"size": "tests", "sum": "good_tests"}).reset_index())
    g["good_rate"] = g["good_tests"] / g["tests"]
    th = g["service"].map({"browsing": TH.browsing, "video": TH.video, "gaming": TH.gaming})
    g["poor"] = (g["tests"] >= MIN_TESTS) & (g["good_rate"] <= th)
    return pl.from_pandas(g)


def run_duckdb(path: Path) -> pl.DataFrame:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {len(os.sched_getaffinity(0))}")
    src = f"read_parquet('{path}')" if path.suffix == ".parquet" else f"read_csv('{path}')"
    sql = f"""
    WITH c AS (
      SELECT cell_id, service, count(*) AS tests,
        sum(CASE WHEN coalesce(success, 1) = 0 THEN 0
                 WHEN service = 'browsing' THEN coalesce(page_load_ms <= {T.page_load_ms}, false)::INT
                 WHEN service = 'video' THEN coalesce(initial_buffer_ms <= {T.initial_buffer_ms}
                                                      AND stall_ratio <= {T.stall_ratio}, false)::INT
                 WHEN service = 'gaming' THEN coalesce(rtt_ms <= {T.rtt_ms} AND jitter_ms <= {T.jitter_ms}
                                                       AND loss_pct <= {T.loss_pct}, false)::INT
                 ELSE 0 END)::BIGINT AS good_tests
      FROM {src} GROUP BY cell_id, service
    )
    SELECT *, good_tests::DOUBLE / tests AS good_rate,
      tests >= {MIN_TESTS} AND good_tests::DOUBLE / tests <=
        CASE service WHEN 'browsing' THEN {TH.browsing}::DOUBLE WHEN 'video' THEN {TH.video}::DOUBLE
                     ELSE {TH.gaming}::DOUBLE END AS poor
    FROM c ORDER BY cell_id, service
    """
    return pl.from_arrow(con.sql(sql).to_arrow_table())  # type: ignore[return-value]


def run_polars(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        lf = pl.scan_parquet(path)
    else:
        lf = pl.scan_csv(path, schema_overrides={"success": pl.Int8,
                                                 **dict.fromkeys(FLOATS, pl.Float64)})
    c = pl.col
    good = (c("success").fill_null(1) != 0) & (
        pl.when(c("service") == "browsing").then(c("page_load_ms") <= T.page_load_ms)
        .when(c("service") == "video").then((c("initial_buffer_ms") <= T.initial_buffer_ms)
                                            & (c("stall_ratio") <= T.stall_ratio))
        .when(c("service") == "gaming").then((c("rtt_ms") <= T.rtt_ms) & (c("jitter_ms") <= T.jitter_ms)
                                             & (c("loss_pct") <= T.loss_pct))
        .otherwise(False)
    ).fill_null(False)
    th = (pl.when(c("service") == "browsing").then(TH.browsing)
          .when(c("service") == "video").then(TH.video).otherwise(TH.gaming))
    return (lf.group_by("cell_id", "service")
            .agg(tests=pl.len().cast(pl.Int64), good_tests=good.sum().cast(pl.Int64))
            .with_columns(good_rate=c("good_tests") / c("tests"))
            .with_columns(poor=(c("tests") >= MIN_TESTS) & (c("good_rate") <= th))
            .sort("cell_id", "service")
            .collect())


def decode_floor(path: Path) -> pl.DataFrame:
    """The decode floor: only the columns the job needs, decoded and nothing else done.

    Parquet: the fastest of polars (typed columns), pyarrow's ``read_table`` and pyarrow's
    ``read_row_group`` one row group after the other (``cell_id`` and ``service`` as the file's
    dictionaries, the other columns typed), each with all threads; CSV: the fastest of polars'
    eager and lazy readers (the same columns with the same types as :func:`run_polars`) and
    pyarrow's (``cell_id`` and ``service`` dictionary-encoded, as kqi reads them). Returns an
    empty frame (no digest).
    """
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        c0, t0 = _cpu_s(), time.perf_counter()
        pl.read_parquet(path, columns=COLUMNS)
        _FLOOR_PARTS.update(polars_s=time.perf_counter() - t0, polars_cpu_s=_cpu_s() - c0)
        c0, t0 = _cpu_s(), time.perf_counter()
        pq.read_table(path, columns=COLUMNS, read_dictionary=["cell_id", "service"])
        _FLOOR_PARTS.update(pyarrow_s=time.perf_counter() - t0, pyarrow_cpu_s=_cpu_s() - c0)
        # pyarrow row group by row group (the reads kqi's flag path makes), often the cheapest
        c0, t0 = _cpu_s(), time.perf_counter()
        with pq.ParquetFile(path, read_dictionary=["cell_id", "service"]) as pf:
            for g in range(pf.num_row_groups):
                pf.read_row_group(g, columns=COLUMNS)
        _FLOOR_PARTS.update(pyarrow_rg_s=time.perf_counter() - t0, pyarrow_rg_cpu_s=_cpu_s() - c0)
    else:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        types = {"success": pl.Int8, **dict.fromkeys(FLOATS, pl.Float64)}
        c0, t0 = _cpu_s(), time.perf_counter()
        pl.read_csv(path, columns=COLUMNS, schema_overrides=types)
        _FLOOR_PARTS.update(polars_s=time.perf_counter() - t0, polars_cpu_s=_cpu_s() - c0)
        # polars' lazy reader (the one run_polars' query uses) reads some files faster than its
        # eager one (polars 2.x: the flag query itself beat the eager read of its columns)
        c0, t0 = _cpu_s(), time.perf_counter()
        pl.scan_csv(path, schema_overrides=types).select(COLUMNS).collect()
        _FLOOR_PARTS.update(polars_lazy_s=time.perf_counter() - t0, polars_lazy_cpu_s=_cpu_s() - c0)
        c0, t0 = _cpu_s(), time.perf_counter()
        pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            include_columns=COLUMNS, column_types={"success": pa.int8(), **dict.fromkeys(FLOATS, pa.float64()),
                                                   "cell_id": pa.dictionary(pa.int32(), pa.string()),
                                                   "service": pa.dictionary(pa.int32(), pa.string())}))
        _FLOOR_PARTS.update(pyarrow_s=time.perf_counter() - t0, pyarrow_cpu_s=_cpu_s() - c0)
    return pl.DataFrame()


_FLOOR_PARTS: dict[str, float] = {}

TOOLS: dict[str, Callable[[Path], pl.DataFrame]] = {
    "kqi": run_kqi, "pandas": run_pandas, "duckdb": run_duckdb, "polars": run_polars,
    "floor": decode_floor,
}


def digest(df: pl.DataFrame) -> dict[str, Any]:
    """What the tools must agree on: every cell x service's counts and flag."""
    key = (df.select(pl.col("cell_id").cast(pl.String), pl.col("service").cast(pl.String),
                     pl.col("tests").cast(pl.Int64), pl.col("good_tests").cast(pl.Int64),
                     pl.col("poor").cast(pl.Boolean))
           .sort("cell_id", "service"))
    return {
        "rows": key.height,
        "tests": int(key["tests"].sum()),
        "good_tests": int(key["good_tests"].sum()),
        "poor": int(key["poor"].sum()),
        "sha256": hashlib.sha256(key.write_csv().encode()).hexdigest()[:16],
    }


def _rss_mib() -> float:
    """Peak resident memory of this process (VmHWM: unlike ru_maxrss, not inherited at exec)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    """CPU seconds (user + system) this process has used, all threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def kqi_stages(path: Path) -> dict[str, Any]:
    """Where kqi's time goes: ingest (read + validate + encode), the in-memory kernel stage
    (verdict + count over batches already in memory) and the finalize (flags, cell_id, sort)."""
    from benchmarks.generate import generate
    from kqi import ingest
    from kqi.flagging import KqiAccumulator

    # ingest's kernels loaded (JIT cache) before timing, as for the end-to-end measurement
    for warm_path in generate(2_000, path.parent / "warmup").values():
        list(ingest.Ingest(CFG, rejects_dir=None).app_tests(warm_path, None).batches)
    t0 = time.perf_counter()
    feed = ingest.Ingest(CFG, rejects_dir=None).app_tests(path, None)
    batches = list(feed.batches)
    t_ingest = time.perf_counter() - t0
    n_cells = feed.cell_ids.len()
    warm = KqiAccumulator(n_cells, CFG, daily=False)  # compile / load the kernels' cache
    warm.add(batches[0].head(1000))
    warm.cell_kqi(feed.cell_ids)
    from kqi._kernels import _stream_sum

    # the floor is measured beside the kernel, interleaved, so both see the same machine load;
    # the best of each is kept (what the machine can do, and what the kernel does at best)
    probe = np.ones(2**26)  # 512 MiB
    _stream_sum(probe[:16])
    best_bw = 0.0
    best_add = best_fin = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        _stream_sum(probe)
        best_bw = max(best_bw, probe.nbytes / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        acc = KqiAccumulator(n_cells, CFG, daily=False)
        for b in batches:
            acc.add(b)
        t1 = time.perf_counter()
        acc.cell_kqi(feed.cell_ids)
        best_add = min(best_add, t1 - t0)
        best_fin = min(best_fin, time.perf_counter() - t1)
    rows = sum(b.height for b in batches)
    return {"ingest_s": t_ingest, "kernel_stage_s": best_add, "finalize_s": best_fin,
            "bandwidth_gbps": best_bw / 1e9,
            "rows": rows, "cell_services": int(acc.counts()[0].astype(bool).sum())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tool", choices=[*TOOLS, "kqi-stages"])
    ap.add_argument("file", type=Path)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=0, help="untimed runs first")
    args = ap.parse_args(argv)
    if args.tool == "kqi-stages":
        out = kqi_stages(args.file)
    else:
        fn = TOOLS[args.tool]
        if args.tool == "kqi":  # JIT warm-up on a tiny slice, outside the timing
            from benchmarks.generate import generate

            fn(generate(2_000, args.file.parent / "warmup", csv=False)["parquet"])
        base = _rss_mib()
        times = []
        result = None
        for _ in range(args.warmup):  # the file in the page cache, the allocator warm
            fn(args.file)
        cpu = []
        for _ in range(args.repeat):
            c0 = _cpu_s()
            t0 = time.perf_counter()
            result = fn(args.file)
            times.append(time.perf_counter() - t0)
            cpu.append(_cpu_s() - c0)
        assert result is not None
        if args.tool == "floor":
            # the floor is the faster reader's time, each reader timed on its own
            if _FLOOR_PARTS:
                readers = [k[:-2] for k in _FLOOR_PARTS if k.endswith("_s") and not k.endswith("_cpu_s")]
                best = min(readers, key=lambda k: _FLOOR_PARTS[f"{k}_s"])
                times = [_FLOOR_PARTS[f"{best}_s"]]
                cpu = [_FLOOR_PARTS[f"{best}_cpu_s"]]
            out = {"seconds": min(times), "all_seconds": times, "cpu_s": min(cpu),
                   "peak_rss_mib": _rss_mib(), "rss_before_mib": base, "parts": dict(_FLOOR_PARTS)}
        else:
            out = {"seconds": min(times), "all_seconds": times, "cpu_s": min(cpu),
                   "peak_rss_mib": _rss_mib(), "rss_before_mib": base, "result": digest(result)}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
