"""Benchmark: kqi against pandas, DuckDB and polars on the same app-test files.

    python -m benchmarks.run --sizes 1e6,1e7            # the documented command
    python -m benchmarks.run --sizes 1e8 --formats parquet --keep-data
    python -m benchmarks.run --matrix                   # every storage shape at 20 M rows

``--matrix`` runs the shapes of :data:`benchmarks.generate.MATRIX` (NaN or null, rounded or full
KQIs, sorted or shuffled, ms or us, 5k-500k cells, Zipf exponent, zstd/snappy/none, row-group
size, CSV): per shape, the decode floor (only the needed columns decoded), kqi, DuckDB and polars
(pandas up to 10 M rows), each in a fresh process, alternated over rounds; see :func:`run_matrix`.

For each size it generates (once) a Parquet and a CSV file of app tests in the contract's columns
under ``benchmarks/data/`` (git-ignored), then times, in this one run and on those files, the job
read -> per-test verdict -> count per cell x service -> flag in each tool, each measurement in a
fresh process (for its peak memory). It also measures the machine's streaming-read memory
bandwidth and kqi's in-memory kernel stage against that floor. Results go to
``benchmarks/results/<name>.json`` and a markdown table beside it (copied into
docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._env import library_versions
from benchmarks.generate import MATRIX, N_CELLS, generate, generate_shape

log = logging.getLogger("benchmarks")

HERE = Path(__file__).resolve().parent
TOOLS = ("kqi", "duckdb", "polars", "pandas")
#: bytes per test row the verdict + count must read: cell_code (4), service_code (1), success (1),
#: six float64 KQIs (48) and the seven validity bitmaps (7/8); KQIs a service does not use are
#: still streamed (columnar buffers are read in cache lines that mix services)
KERNEL_BYTES_PER_ROW = 4 + 1 + 1 + 48 + 7 / 8
#: pandas holds the whole file as object strings; above this many rows it does not fit in 24 GiB
PANDAS_MAX_ROWS = 50_000_000
#: the stage breakdown holds every ingested batch in memory at once (~65 B/row)
STAGES_MAX_ROWS = 20_000_000


def memory_bandwidth(gib: float = 1.0, repeat: int = 5) -> float:
    """Single-core streaming read bandwidth in bytes/s (numba sum over a ``gib`` GiB array).

    Reported for the run; the kernel stage's floor uses the bandwidth measured beside it.
    """
    from kqi._kernels import _stream_sum

    x = np.ones(int(gib * 2**30) // 8)
    _stream_sum(x[:16])
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        _stream_sum(x)
        best = min(best, time.perf_counter() - t0)
    return x.nbytes / best


def _measure(args: list[str], timeout: float) -> dict[str, Any]:
    env = {**os.environ, "POLARS_MAX_THREADS": str(len(os.sched_getaffinity(0)))}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.tools", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=HERE.parent, env=env, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run(sizes: list[int], formats: list[str], tools: list[str], repeat: int, data_dir: Path, *,
        keep_data: bool, timeout: float, note: str) -> dict[str, Any]:
    """Run every measurement; returns the results dict (also what the JSON holds)."""
    bw = memory_bandwidth()
    log.info("memory bandwidth %.1f GB/s", bw / 1e9)
    out: dict[str, Any] = {
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "memory_bandwidth_gbps": round(bw / 1e9, 2),
            "libraries": library_versions(),
            "load_before": _load(),
        },
        "note": note,
        "kernel_bytes_per_row": KERNEL_BYTES_PER_ROW,
        "n_cells": N_CELLS,
        "runs": [],
    }
    for rows in sizes:
        paths = generate(rows, data_dir, csv="csv" in formats)
        reps = repeat if repeat else (3 if rows <= 1_000_000 else 1)
        for fmt in formats:
            path = paths[fmt]
            entry: dict[str, Any] = {"rows": rows, "format": fmt,
                                     "file_mib": round(path.stat().st_size / 2**20, 1),
                                     "tools": {}}
            for tool in tools:
                if tool == "pandas" and rows > PANDAS_MAX_ROWS:
                    entry["tools"][tool] = {"skipped": f"over {PANDAS_MAX_ROWS:,} rows pandas "
                                            "needs more than the machine's 24 GiB"}
                    continue
                log.info("%s %s %d rows ...", tool, fmt, rows)
                r = _measure([tool, str(path), "--repeat", str(reps)], timeout)
                if "seconds" in r:
                    r["rows_per_s"] = rows / r["seconds"]
                entry["tools"][tool] = r
                log.info("  %s", {k: r.get(k) for k in ("seconds", "peak_rss_mib", "error")})
            if "kqi" in tools and rows > STAGES_MAX_ROWS:
                entry["kqi_stages"] = {"skipped": f"over {STAGES_MAX_ROWS:,} rows the in-memory "
                                       "batches would not fit beside the other processes"}
            elif "kqi" in tools:
                st = _measure(["kqi-stages", str(path)], timeout)
                if "kernel_stage_s" in st:
                    floor = rows * KERNEL_BYTES_PER_ROW / (st["bandwidth_gbps"] * 1e9)
                    st["floor_s"] = floor
                    st["kernel_vs_floor"] = st["kernel_stage_s"] / floor
                entry["kqi_stages"] = st
            times = {t: r["seconds"] for t, r in entry["tools"].items() if "seconds" in r}
            if times:
                fastest = min(times.values())
                for t, s in times.items():
                    entry["tools"][t]["ratio_to_fastest"] = s / fastest
            digests = {t: r["result"]["sha256"] for t, r in entry["tools"].items() if "result" in r}
            entry["results_agree"] = len(set(digests.values())) <= 1
            out["runs"].append(entry)
        if not keep_data:
            for p in paths.values():
                p.unlink(missing_ok=True)
    out["machine"]["load_after"] = _load()
    return out


def markdown(res: dict[str, Any]) -> str:
    """The results as a markdown table."""
    m = res["machine"]
    lines = [
        f"Machine: {m['cpus']} CPUs, {m['processor']}, measured streaming read "
        f"{m['memory_bandwidth_gbps']} GB/s (one core); load average before/after "
        f"{m['load_before']} / {m['load_after']}. {res['note']}",
        "",
        "| rows | format | tool | seconds | M rows/s | × fastest | peak RSS MiB | result |",
        "|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for e in res["runs"]:
        for tool, r in e["tools"].items():
            if "seconds" in r:
                lines.append(
                    f"| {e['rows']:,} | {e['format']} | {tool} | {r['seconds']:.3f} | "
                    f"{r['rows_per_s'] / 1e6:.1f} | {r['ratio_to_fastest']:.2f} | "
                    f"{r['peak_rss_mib']:.0f} | {r['result']['sha256']} |")
            else:
                lines.append(f"| {e['rows']:,} | {e['format']} | {tool} | – | – | – | – | "
                             f"{r.get('skipped') or r.get('error')} |")
    lines += ["", "kqi stages (in-memory kernel stage = verdict + count over batches "
              "already in memory; floor = rows × "
              f"{res['kernel_bytes_per_row']:.1f} B / bandwidth measured beside it, best of 5 "
              "each):", "",
              "| rows | format | ingest s | kernel stage s | ns/row | GB/s | floor s | "
              "kernel / floor | finalize s |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for e in res["runs"]:
        st = e.get("kqi_stages", {})
        if "kernel_stage_s" in st:
            lines.append(f"| {e['rows']:,} | {e['format']} | {st['ingest_s']:.3f} | "
                         f"{st['kernel_stage_s']:.4f} | {st['kernel_stage_s'] / e['rows'] * 1e9:.1f} | "
                         f"{st['bandwidth_gbps']:.1f} | {st['floor_s']:.4f} | "
                         f"{st['kernel_vs_floor']:.2f} | {st['finalize_s']:.3f} |")
        elif st:
            lines.append(f"| {e['rows']:,} | {e['format']} | – | – | – | – | – | – | – |  "
                         f"{st.get('skipped') or st.get('error')}")
    return "\n".join(lines) + "\n"


#: the matrix runs pandas only up to this many rows (it holds every string as an object)
PANDAS_MATRIX_MAX_ROWS = 10_000_000
MATRIX_TOOLS = ("floor", "kqi", "duckdb", "polars", "pandas")


def run_matrix(rows: int, shapes: list[str], tools: list[str], rounds: int, data_dir: Path, *,
               keep_data: bool, timeout: float, note: str,
               save: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every tool on every shape of :data:`benchmarks.generate.MATRIX`, ``rows`` rows each.

    Per shape, ``rounds`` rounds; in each round every tool runs once in a fresh process (one
    timed run), the
    tools' order rotating from round to round, so that every tool sees the same machine load
    (the file is in the page cache from its generation). A tool's time is the median of its
    rounds (wall and CPU seconds), its memory the largest peak RSS.
    """
    out: dict[str, Any] = {
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                    "python": platform.python_version(), "load_before": _load(),
                    "libraries": library_versions()},
        "note": note, "rows": rows, "rounds": rounds, "shapes": [],
    }
    for name in shapes:
        shape = MATRIX[name]
        log.info("shape %s: generating %d rows ...", name, rows)
        path = generate_shape(rows, data_dir, shape)
        entry: dict[str, Any] = {"shape": name, "spec": dataclasses.asdict(shape),
                                 "file_mib": round(path.stat().st_size / 2**20, 1),
                                 "load_before": _load(), "tools": {}}
        runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
        for rnd in range(rounds):
            order = tools[rnd % len(tools):] + tools[:rnd % len(tools)]
            for tool in order:
                if tool == "pandas" and rows > PANDAS_MATRIX_MAX_ROWS:
                    continue
                r = _measure([tool, str(path), "--repeat", "1"], timeout)
                log.info("  %s %s round %d: %s", name, tool, rnd,
                         {k: r.get(k) for k in ("seconds", "peak_rss_mib", "error")})
                runs[tool].append(r)
        for tool, rs in runs.items():
            if tool == "pandas" and rows > PANDAS_MATRIX_MAX_ROWS:
                entry["tools"][tool] = {"skipped": f"over {PANDAS_MATRIX_MAX_ROWS:,} rows"}
                continue
            ok = [r for r in rs if "seconds" in r]
            if not ok:
                entry["tools"][tool] = {"error": rs[0].get("error") if rs else "not run"}
                continue
            secs = sorted(r["seconds"] for r in ok)
            entry["tools"][tool] = {
                "seconds": float(np.median(secs)), "all_seconds": secs,
                "cpu_s": float(np.median([r["cpu_s"] for r in ok])),
                "peak_rss_mib": max(r["peak_rss_mib"] for r in ok),
                "rss_before_mib": min(r["rss_before_mib"] for r in ok),
                **({"result": ok[-1]["result"]} if "result" in ok[-1] else {}),
                **({"parts": ok[-1]["parts"]} if "parts" in ok[-1] else {}),
            }
        t = entry["tools"]
        for r in t.values():
            if "seconds" not in r:
                continue
            if "seconds" in t.get("duckdb", {}):
                r["vs_duckdb"] = r["seconds"] / t["duckdb"]["seconds"]
            if "seconds" in t.get("floor", {}):
                r["vs_floor"] = r["seconds"] / t["floor"]["seconds"]
        digests = {k: r["result"]["sha256"] for k, r in t.items() if "result" in r}
        entry["results_agree"] = len(set(digests.values())) <= 1
        entry["digest"] = next(iter(digests.values()), None)
        entry["load_after"] = _load()
        out["shapes"].append(entry)
        if save is not None:  # after every shape: a long run interrupted keeps what it measured
            out["machine"]["load_after"] = _load()
            save(out)
        if not keep_data:
            path.unlink(missing_ok=True)
    out["machine"]["load_after"] = _load()
    return out


def matrix_markdown(res: dict[str, Any]) -> str:
    """The matrix as a markdown table: per shape, each tool's median time, its ratio to DuckDB
    and to the decode floor, and its peak RSS."""
    m = res["machine"]
    lines = [
        f"{res['rows']:,} rows per shape, median of {res['rounds']} alternated rounds; "
        f"{m['cpus']} CPUs; load average before/after {m['load_before']} / {m['load_after']}. "
        f"{res['note']}", "",
        "| shape | file MiB | floor s | kqi s | kqi ÷ floor | kqi ÷ DuckDB | DuckDB s | polars s "
        "| pandas s | kqi CPU ÷ floor | kqi CPU ÷ DuckDB | kqi MiB | DuckDB MiB | polars MiB "
        "| digests agree |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def sec(r: dict[str, Any]) -> str:
        return f"{r['seconds']:.2f}" if "seconds" in r else "–"

    def mib(r: dict[str, Any]) -> str:
        return f"{r['peak_rss_mib']:.0f}" if "peak_rss_mib" in r else "–"

    def cpu_ratio(a: dict[str, Any], b: dict[str, Any]) -> str:
        return f"{a['cpu_s'] / b['cpu_s']:.2f}" if a.get("cpu_s") and b.get("cpu_s") else "–"

    for e in res["shapes"]:
        t = e["tools"]
        k = t.get("kqi", {})
        lines.append(
            f"| {e['shape']} | {e['file_mib']:.0f} | {sec(t.get('floor', {}))} | {sec(k)} | "
            f"{k.get('vs_floor', float('nan')):.2f} | {k.get('vs_duckdb', float('nan')):.2f} | "
            f"{sec(t.get('duckdb', {}))} | {sec(t.get('polars', {}))} | {sec(t.get('pandas', {}))} | "
            f"{cpu_ratio(k, t.get('floor', {}))} | {cpu_ratio(k, t.get('duckdb', {}))} | "
            f"{mib(k)} | {mib(t.get('duckdb', {}))} | {mib(t.get('polars', {}))} | "
            f"{'yes' if e['results_agree'] else '**NO**'} ({e['digest']}) |")
    lines += ["", "Shapes: " + "; ".join(
        f"{e['shape']} = {e['spec']['fmt']}, {e['spec']['missing']}, {e['spec']['precision']}, "
        f"{e['spec']['order']}, ts {e['spec']['ts_unit']}, {e['spec']['cells']:,} cells, "
        f"zipf {e['spec']['zipf']}, {e['spec']['compression']}, row groups "
        f"{e['spec']['row_group']:,}" for e in res["shapes"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="kqi vs pandas, DuckDB and polars")
    ap.add_argument("--sizes", default="1e6,1e7", help="rows, comma-separated (1e6,1e7,1e8)")
    ap.add_argument("--formats", default="parquet,csv")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--repeat", type=int, default=0, help="repeats (0: 3 at 1e6, else 1)")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--name", default="", help="results file name (default: from the sizes)")
    ap.add_argument("--keep-data", action="store_true", help="keep the generated files")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    ap.add_argument("--note", default="", help="recorded with the results (e.g. machine shared)")
    ap.add_argument("--matrix", action="store_true",
                    help="the shape matrix (benchmarks.generate.MATRIX) at --matrix-rows rows")
    ap.add_argument("--matrix-rows", default="2e7")
    ap.add_argument("--shapes", default=",".join(MATRIX), help="matrix shapes, comma-separated")
    ap.add_argument("--rounds", type=int, default=3, help="matrix rounds (median of them)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.matrix:
        rows = int(float(args.matrix_rows))
        tools = [t for t in args.tools.split(",") if t in MATRIX_TOOLS] if args.tools != ",".join(
            TOOLS) else list(MATRIX_TOOLS)
        name = args.name or f"matrix_{args.matrix_rows}"
        args.out.mkdir(parents=True, exist_ok=True)

        def save(res: dict[str, Any]) -> None:
            (args.out / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
            (args.out / f"{name}.md").write_text(matrix_markdown(res), encoding="utf-8")

        res = run_matrix(rows, args.shapes.split(","), tools, args.rounds, args.data_dir,
                         keep_data=args.keep_data, timeout=args.timeout, note=args.note, save=save)
        save(res)
        sys.stdout.write(matrix_markdown(res))
        return 0
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    res = run(sizes, args.formats.split(","), args.tools.split(","), args.repeat, args.data_dir,
              keep_data=args.keep_data, timeout=args.timeout, note=args.note)
    name = args.name or "results_" + "_".join(f"{s:.0e}".replace("+0", "").replace("+", "")
                                              for s in sizes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    (args.out / f"{name}.md").write_text(markdown(res), encoding="utf-8")
    sys.stdout.write(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
