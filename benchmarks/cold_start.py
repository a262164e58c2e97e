"""Cold start: a newcomer's first ``kqi demo`` / ``kqi run`` after ``pip install``, against a warm one.

Each measurement is a fresh process running the CLI with ``NUMBA_CACHE_DIR`` (and
``KQI_CACHE_DIR``) pointing at an empty folder (cold: every kernel compiled) or at the folder the
cold run filled (warm: every kernel loaded from the cache). numba's compile events are recorded
in the process, so the report gives the total compile time and the kernels that took it, besides
the wall time of the command; compile times are also given in CPU seconds of the compiling
thread, which a busy machine inflates much less than wall time.

    python -m benchmarks.cold_start                  # kqi run and kqi demo, cold and warm, 3 rounds
    python -m benchmarks.cold_start --rounds 5 --out benchmarks/results/cold_start.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._env import library_versions

HERE = Path(__file__).resolve().parent

#: runs the CLI in this process with numba's compile events recorded; prints one JSON line
_CHILD = r"""
import json, sys, threading, time
from numba.core import event

spans = []
class _Listener(event.Listener):
    # numba serialises compiles with its compiler lock, but the events can come from any thread
    # (a worker that calls a kernel first, while the prefetch thread imports): the nesting depth
    # is kept per thread, each span is timed with its own thread's CPU clock, and the shared
    # list is appended under a lock
    def __init__(self):
        self.local = threading.local()
        self.lock = threading.Lock()
    def on_start(self, ev):
        st = self.local.__dict__.setdefault("stack", [])
        st.append((id(ev.data), time.perf_counter(), time.thread_time()))
    def on_end(self, ev):
        st = self.local.__dict__.setdefault("stack", [])
        if not st or st[-1][0] != id(ev.data):
            return  # started before the listener was registered
        _, t0, c0 = st.pop()
        if not st:  # top-level compiles only (nested ones are inside)
            d = ev.data.get("dispatcher")
            name = getattr(d, "py_func", None)
            name = f"{name.__module__}.{name.__qualname__}" if name else "?"
            with self.lock:
                spans.append((name, time.perf_counter() - t0, time.thread_time() - c0))
event.register("numba:compile", _Listener())

def report():
    # an exit handler: the console entry point ends the process itself (kqi/cli.py, _exit),
    # after running the exit handlers, so the run is measured as a user's command ends
    wall = time.perf_counter() - t0
    per = {}
    for name, _, c in spans:
        per[name] = per.get(name, 0.0) + c
    out = {"wall_s": wall, "compile_s": sum(s for _, s, _ in spans),
           "compile_cpu_s": sum(c for _, _, c in spans), "compiles": len(spans),
           "top": sorted(per.items(), key=lambda kv: -kv[1])[:12]}
    sys.stderr.write("\n" + json.dumps(out) + "\n")

import atexit
atexit.register(report)
t0 = time.perf_counter()
sys.argv = ["kqi", *sys.argv[1:]]
from kqi.cli import console
console()  # the console script's own call: it does not return
"""


def _one(args: list[str], cache: Path, cwd: Path) -> dict[str, Any]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache / "numba"), "KQI_CACHE_DIR": str(cache / "kqi"),
           "POLARS_MAX_THREADS": str(len(os.sched_getaffinity(0)))}
    # an installed package has its .pyc files (pip writes them): without them every run would
    # compile kqi's own sources again (~0.5 s), which no user's warm run does
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, "-q", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, check=False)
    total = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"kqi {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    res = json.loads(lines[-1])
    res["process_s"] = total  # with the interpreter's start and the imports
    # user + system CPU of the process (all threads): steadier than wall time on a busy machine
    res["process_cpu_s"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return res


def measure(rounds: int, kinds: list[str], cells: int = 1600, days: int = 7) -> dict[str, Any]:
    """Cold and warm ``kqi run`` (on a city of ``cells`` cells and ``days`` days; the demo
    city by default) and ``kqi demo`` (its default city)."""
    out: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "load_before": [round(x, 2) for x in os.getloadavg()],
                           "libraries": library_versions(), "rounds": []}
    with tempfile.TemporaryDirectory(prefix="kqi-cold-") as tmp:
        root = Path(tmp)
        city = root / "city"
        # the input city; the first cold run fills the cache the warm runs use
        _one(["city", "--out", str(city), "--days", str(days), "--cells", str(cells)],
             root / "city-cache", root)
        run_args = ["run", "--cells", str(city / "cells.csv"), "--tests", str(city / "app_tests.csv"),
                    "--kpis", str(city / "cell_kpis.csv"), "--complaints", str(city / "complaints.csv"),
                    "--out"]
        for i in range(rounds):
            rnd: dict[str, Any] = {}
            for kind in kinds:
                args = [*run_args, str(root / f"out-{i}")] if kind == "run" else [
                    "demo", "--out", str(root / f"demo-{i}"), "--days", "7"]
                cache = root / f"cache-{kind}-{i}"
                rnd[f"{kind}_cold"] = _one(args, cache, root)  # an empty cache
                rnd[f"{kind}_warm"] = _one(args, cache, root)  # the cache the cold run filled
                sys.stderr.write(f"round {i} {kind}: cold {rnd[f'{kind}_cold']['wall_s']:.1f} s, "
                                 f"warm {rnd[f'{kind}_warm']['wall_s']:.1f} s\n")
            out["rounds"].append(rnd)
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    for kind in kinds:
        for key in (f"{kind}_cold", f"{kind}_warm"):
            out[key] = {m: statistics.median(r[key][m] for r in out["rounds"])
                        for m in ("wall_s", "compile_s", "compile_cpu_s", "process_s", "process_cpu_s")}
            out[key]["top"] = out["rounds"][-1][key]["top"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kinds", default="run,demo", help="run, demo or both")
    ap.add_argument("--cells", type=int, default=1600, help="kqi run's city (1,600: the demo's)")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "cold_start.json")
    args = ap.parse_args(argv)
    kinds = args.kinds.split(",")
    res = measure(args.rounds, kinds, args.cells, args.days)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    for key in (f"{k}_{w}" for k in kinds for w in ("cold", "warm")):
        r = res[key]
        sys.stdout.write(f"{key:10s} wall {r['wall_s']:6.2f} s  compile {r['compile_s']:6.2f} s "
                         f"(CPU {r['compile_cpu_s']:6.2f} s)  process {r['process_s']:6.2f} s "
                         f"(CPU {r['process_cpu_s']:6.2f} s)\n")
    sys.stdout.write(f"cold {kinds[0]}, slowest compiles: " + ", ".join(
        f"{n.rsplit('.', 1)[-1]} {s:.2f}" for n, s in res[f"{kinds[0]}_cold"]["top"]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
