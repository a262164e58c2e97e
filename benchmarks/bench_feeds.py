"""Each CSV feed's ingest against ``polars.read_csv`` of the same file (issue 15, item 4).

For every feed of a synthetic city (``kqi city``: cells, hourly KPIs, complaints, app tests),
in a fresh process per measurement, the tools alternated round by round:

- **kqi**: the feed read as ``kqi run`` reads it (``Ingest`` with rejects written, verdicts and
  the SHA-256 the manifest records); the app tests through ``kqi.flag_cells`` (ingest, checks,
  verdict and counts), the matrix's ``csv`` job.
- **polars**: ``polars.read_csv`` of the same file, all threads: every column with the types
  polars infers (cells, KPIs, complaints); for the app tests the columns the flag job needs,
  with the types of the benchmark matrix's decode floor (``benchmarks.tools.decode_floor``).

Both tools' processes get the C allocator settings of ``kqi run``'s own process
(``kqi._malloc``, where the interpreter's kqi has it; polars allocates through its own jemalloc).

Imports, the cells table a feed is checked against, and kqi's kernels (a small file read first)
are outside the timed part. Reported per feed and tool: median wall and CPU seconds (user +
system of the process over the timed call, all threads), and kqi's ratio to polars.

    python -m benchmarks.bench_feeds --cells 10000 --days 14 --rounds 3
    python -m benchmarks.bench_feeds --city /path/to/city_folder --feeds kpis,tests

Run it under the shared machine's lock (``flock /work/bench/bench.lock python -m ...``).
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
FEEDS = {"cells": "cells.csv", "kpis": "cell_kpis.csv", "complaints": "complaints.csv",
         "tests": "app_tests.csv"}

_CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path

feed, tool, city = sys.argv[1], sys.argv[2], Path(sys.argv[3])
files = {"cells": "cells.csv", "kpis": "cell_kpis.csv", "complaints": "complaints.csv",
         "tests": "app_tests.csv"}
path = city / files[feed]

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

try:  # the allocator settings of kqi run's own process (kqi/_malloc.py), for both tools
    from kqi._malloc import keep_freed_memory
    keep_freed_memory()
except ImportError:  # a checkout from before them: neither tool has them
    pass
import polars as pl
if tool == "polars":
    from benchmarks.tools import COLUMNS, FLOATS
    def job():
        if feed == "tests":
            df = pl.read_csv(path, columns=COLUMNS,
                             schema_overrides={"success": pl.Int8, **dict.fromkeys(FLOATS, pl.Float64)})
        else:
            df = pl.read_csv(path)
        return df.height
else:
    import inspect
    try:
        import kqi
        from kqi.config import Config
        from kqi.ingest import Ingest
    except ImportError as exc:
        sys.exit(f"kqi of {sys.executable} cannot be imported ({exc}); for another checkout "
                 "use its own venv's python, or PYTHONPATH=<checkout>")
    cfg = Config()
    #: a checkout before the ingest's verdict checks (16321d1 and older) has no ``verdicts``:
    #: it reads the feed as its own kqi run did, and the result says so
    has_verdicts = "verdicts" in inspect.signature(Ingest).parameters

    def make_ingest(rejects, verdicts):
        return Ingest(cfg, rejects, verdicts=verdicts) if has_verdicts else Ingest(cfg, rejects)
    tmp = Path(tempfile.mkdtemp(prefix="kqi-bench-feeds-"))
    # kernels loaded or compiled, and the cells table read, before timing
    small = tmp / "small.csv"
    with path.open("rb") as src, small.open("wb") as dst:
        for _, line in zip(range(2000), src):
            dst.write(line)

    def read(ing, p):
        # the feed at p read as kqi run reads it; its rows read (the app tests: counted)
        if feed == "tests":
            return int(kqi.flag_cells(p, cfg)["tests"].sum())
        if feed == "cells":
            ing.cells(p)
        else:
            getattr(ing, "cell_kpis" if feed == "kpis" else "complaints")(p, cells)
        return ing.reports["cell_kpis" if feed == "kpis" else feed].rows_read

    ing = make_ingest(tmp / "warm", False)
    cells = ing.cells(city / "cells.csv")
    read(ing, small)
    ing = make_ingest(tmp / "rejects", True)
    def job():
        return read(ing, path)

c0, t0 = cpu(), time.perf_counter()
rows = job()
wall, cpu_s = time.perf_counter() - t0, cpu() - c0
out = {"wall_s": wall, "cpu_s": cpu_s, "rows": rows}
if tool == "kqi":
    out["verdicts"] = has_verdicts   # false: the checkout's Ingest has no verdict checks
    out["kqi_from"] = str(Path(kqi.__file__).parent)
print(json.dumps(out))
"""


def _measure(python: str, feed: str, tool: str, city: Path) -> dict[str, Any]:
    env = dict(os.environ)
    if tool == "polars":  # benchmarks.tools from this checkout; kqi from the interpreter's own
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    # run outside any checkout: ``python -c`` puts its working directory first on sys.path, so
    # in this one the measured interpreter would import this checkout's kqi package over its own
    # (and its own stage folders: a mix of two versions)
    with tempfile.TemporaryDirectory(prefix="kqi-bench-feeds-cwd-") as cwd:
        proc = subprocess.run([python, "-c", _CHILD, feed, tool, str(city)], capture_output=True,
                              text=True, env=env, cwd=cwd, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{tool} {feed} failed: {proc.stderr.strip()[-800:]}")
    return json.loads(lines[-1])


def _city(args: argparse.Namespace) -> Path:
    if args.city is not None:
        return args.city
    city = args.data_dir / f"city_{args.cells}_{args.days}d"
    if not (city / "cell_kpis.csv").exists():
        subprocess.run([sys.executable, "-m", "kqi.cli", "-q", "city", "--out", str(city), "--cells",
                        str(args.cells), "--days", str(args.days)], check=True)
    return city


def table(res: dict[str, Any]) -> str:
    """The results as a markdown table."""
    rows = ["| feed | file MiB | rows | kqi s | polars s | kqi ÷ polars | kqi CPU s | polars CPU s | "
            "kqi CPU ÷ polars |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for feed, r in res["feeds"].items():
        k, p = r["kqi"], r["polars"]
        rows.append(f"| {feed} | {r['mib']:.0f} | {k['rows']:,} | {k['wall_s']:.2f} | {p['wall_s']:.2f} | "
                    f"{k['wall_s'] / p['wall_s']:.2f} | {k['cpu_s']:.2f} | {p['cpu_s']:.2f} | "
                    f"{k['cpu_s'] / p['cpu_s']:.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--city", type=Path, default=None, help="a city folder (default: generated)")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--feeds", default=",".join(FEEDS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--python", default=sys.executable, help="interpreter whose kqi is measured")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default: results/)")
    args = ap.parse_args(argv)
    city = _city(args)
    feeds = [f.strip() for f in args.feeds.split(",") if f.strip()]
    unknown = [f for f in feeds if f not in FEEDS]
    if unknown:
        ap.error(f"unknown feed(s) {unknown}; choose from {list(FEEDS)}")
    res: dict[str, Any] = {"city": str(city), "label": args.label, "rounds": args.rounds,
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "load_before": [round(x, 2) for x in os.getloadavg()],
                           "libraries": library_versions(args.python), "feeds": {}}
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {f: {"kqi": [], "polars": []} for f in feeds}
    for rnd in range(args.rounds):
        for feed in feeds:
            tools = ["kqi", "polars"] if rnd % 2 == 0 else ["polars", "kqi"]
            for tool in tools:
                try:
                    m = _measure(args.python if tool == "kqi" else sys.executable, feed, tool, city)
                except RuntimeError as exc:
                    print(f"bench_feeds: {exc}", file=sys.stderr)
                    return 2
                if m.get("verdicts") is False and "kqi_verdicts" not in res:
                    print(f"note: the kqi of {args.python} has no ingest verdict checks (a "
                          "checkout before them): its feeds are read as its kqi run read them",
                          file=sys.stderr)
                if tool == "kqi":
                    res["kqi_verdicts"] = m.get("verdicts", True)
                    res["kqi_from"] = m.get("kqi_from")
                raw[feed][tool].append(m)
                print(f"round {rnd + 1} {feed:10s} {tool:6s} wall {m['wall_s']:6.2f} s  "
                      f"cpu {m['cpu_s']:6.2f} s", file=sys.stderr)
    for feed in feeds:
        res["feeds"][feed] = {
            "mib": (city / FEEDS[feed]).stat().st_size / 2**20,
            **{tool: {"wall_s": statistics.median(m["wall_s"] for m in ms),
                      "cpu_s": statistics.median(m["cpu_s"] for m in ms),
                      "rows": ms[0]["rows"], "all": ms}
               for tool, ms in raw[feed].items()},
        }
    res["load_after"] = [round(x, 2) for x in os.getloadavg()]
    out = args.out or HERE / "results" / f"feeds_{city.name}{'_' + args.label if args.label else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    print(table(res))
    print(f"\nwritten: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
