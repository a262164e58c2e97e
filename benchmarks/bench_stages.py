"""The whole ``kqi run`` at scale: the time of every stage on a synthetic city.

Generates (once, kept under ``--data-dir``) a city of ``--cells`` cells and ``--days`` days with
``kqi city``, then runs ``kqi run`` on it (CSV inputs, complaints, outputs written, the map
included) in a fresh process per round, after one untimed run on a small city that loads or
compiles the kernels, and reports each stage's median time (``run_info.json``'s
``timings_s``), the whole run's wall time and the process's peak RSS.

    python -m benchmarks.bench_stages --cells 10000 --days 14
    python -m benchmarks.bench_stages --cells 50000 --days 14 --rounds 1

``--python`` runs another checkout's kqi (an interpreter, and ``PYTHONPATH`` in the
environment) for a before/after table in the same session.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._env import library_versions

HERE = Path(__file__).resolve().parent

_CHILD = r"""
import atexit, json, sys, time
t0 = time.perf_counter()
def report():  # registered first, so run last of the exit handlers
    wall = time.perf_counter() - t0
    with open("/proc/self/status", encoding="ascii") as f:
        hwm = next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM:"))
    sys.stderr.write("\n" + json.dumps({"wall_s": wall, "peak_rss_mib": hwm}) + "\n")
    sys.stderr.flush()
atexit.register(report)
sys.argv = ["kqi", *sys.argv[1:]]
try:  # the console script's own path, as a user's command runs
    from kqi.cli import console as entry
except ImportError:  # a checkout from before kqi.cli.console (its console script was main)
    from kqi.cli import main as entry
sys.exit(entry())
"""


def _kqi(python: str, args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "POLARS_MAX_THREADS": str(len(os.sched_getaffinity(0)))}
    if env.get("PYTHONPATH"):  # the child runs in another folder: its entries made absolute
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep))
    # run outside any checkout: ``python -c`` puts its working directory first on sys.path, so
    # in this one another checkout's interpreter would import this checkout's kqi over its own
    with tempfile.TemporaryDirectory(prefix="kqi-stages-cwd-") as cwd:
        proc = subprocess.run([python, "-c", _CHILD, "-q", *args], capture_output=True,
                              text=True, env=env, cwd=cwd, check=False)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"kqi {' '.join(args)} failed: {proc.stderr.strip()[-800:]}")
    return json.loads(lines[-1])


def _run_args(city: Path, out: Path) -> list[str]:
    return ["run", "--cells", str(city / "cells.csv"), "--tests", str(city / "app_tests.csv"),
            "--kpis", str(city / "cell_kpis.csv"), "--complaints", str(city / "complaints.csv"),
            "--subscribers", str(city / "subscribers.csv"), "--out", str(out)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--python", default=sys.executable, help="interpreter whose kqi is measured")
    ap.add_argument("--label", default="", help="recorded with the results (e.g. before/after)")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default: results/)")
    args = ap.parse_args(argv)
    # the children run in a folder of their own: paths given relative to this one made absolute
    # (abspath, not resolve: a venv's python is a symlink that must stay one)
    args.data_dir = Path(os.path.abspath(args.data_dir))
    if os.sep in args.python:
        args.python = os.path.abspath(args.python)
    city = args.data_dir / f"city_{args.cells}_{args.days}d"
    if not (city / "cell_kpis.csv").exists():
        _kqi(sys.executable, ["city", "--out", str(city), "--cells", str(args.cells),
                              "--days", str(args.days)])
    sizes = {p.name: p.stat().st_size for p in sorted(city.glob("*.csv"))}
    res: dict[str, Any] = {"cells": args.cells, "days": args.days, "label": args.label,
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "load_before": [round(x, 2) for x in os.getloadavg()],
                           "libraries": library_versions(args.python),
                           "input_bytes": sizes, "rounds": []}
    # kernels compiled (or loaded) before timing: one untimed run on a small city of the same
    # shape (the kernels' types do not depend on its size)
    small = args.data_dir / "city_200_2d"
    if not (small / "cell_kpis.csv").exists():
        _kqi(sys.executable, ["city", "--out", str(small), "--cells", "200", "--days", "2"])
    with tempfile.TemporaryDirectory(prefix="kqi-stages-warm-") as tmp:
        _kqi(args.python, _run_args(small, Path(tmp) / "out"))
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="kqi-stages-") as tmp:
            out = Path(tmp) / "out"
            r = _kqi(args.python, _run_args(city, out))
            info = json.loads((out / "run_info.json").read_text(encoding="utf-8"))
            r["timings_s"] = info["timings_s"]
            res["rounds"].append(r)
            sys.stderr.write(f"{args.label} {args.cells} cells: {r['wall_s']:.1f} s "
                             f"{json.dumps(r['timings_s'])}\n")
    res["load_after"] = [round(x, 2) for x in os.getloadavg()]
    stages = res["rounds"][0]["timings_s"].keys()
    res["timings_s"] = {s: statistics.median(r["timings_s"][s] for r in res["rounds"]) for s in stages}
    res["wall_s"] = statistics.median(r["wall_s"] for r in res["rounds"])
    res["peak_rss_mib"] = max(r["peak_rss_mib"] for r in res["rounds"])
    path = args.out or HERE / "results" / f"stages_{args.cells}_{args.days}d{'_' + args.label if args.label else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    for s, t in sorted(res["timings_s"].items(), key=lambda kv: -kv[1]):
        sys.stdout.write(f"{s:28s} {t:8.2f} s\n")
    sys.stdout.write(f"{'whole run (process)':28s} {res['wall_s']:8.2f} s, peak RSS {res['peak_rss_mib']:.0f} MiB\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
