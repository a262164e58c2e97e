"""Peak memory of ``kqi.flag_cells`` above its baseline, per file (each in a fresh process).

The baseline is the interpreter with kqi, polars, pyarrow and numba imported and the flag path's
kernels compiled (a ``flag_cells`` of a 2,000-row file first): the figure is the peak resident
memory (VmHWM) after the run minus that. Memory does not depend on the machine's load.

    python -m benchmarks.flag_memory FILE [FILE ...] [--out benchmarks/results/flag_memory.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

_CHILD = """
import json, sys, time
from pathlib import Path
import kqi
from benchmarks.generate import generate
from benchmarks.tools import _rss_mib, digest
path = Path(sys.argv[1])
kqi.flag_cells(generate(2_000, path.parent / "warmup", csv=False)["parquet"])
base = _rss_mib()
t0 = time.perf_counter()
out = kqi.flag_cells(path)
print(json.dumps({"file": str(path), "baseline_mib": round(base, 1), "peak_mib": round(_rss_mib(), 1),
                  "above_baseline_mib": round(_rss_mib() - base, 1), "rows": int(out["tests"].sum()),
                  "seconds": round(time.perf_counter() - t0, 2), "digest": digest(out)["sha256"]}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    rows = []
    for f in args.files:
        r = subprocess.run([sys.executable, "-c", _CHILD, str(f)], capture_output=True, text=True,
                           check=True)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
