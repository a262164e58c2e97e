"""What a benchmark result was measured with: the library versions of the interpreter that ran
the measured code (another checkout's, with ``--python``), recorded beside the figures.

A figure moves with the libraries as much as with kqi's own code (polars 2.x reads CSV at a
different speed from 1.x, and the CSV decode floor with it), so a comparison across sessions
has to know which ones each side ran.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: the distributions whose speed a kqi figure depends on
LIBRARIES = ("kqi", "polars", "pyarrow", "numba", "llvmlite", "numpy", "duckdb", "pandas")

_PROBE = (
    "import importlib.metadata as m, json, platform\n"
    f"names = {LIBRARIES!r}\n"
    "out = {'python': platform.python_version()}\n"
    "for n in names:\n"
    "    try:\n"
    "        out[n] = m.version(n)\n"
    "    except m.PackageNotFoundError:\n"
    "        out[n] = None\n"
    "print(json.dumps(out))\n"
)


def library_versions(python: str | None = None) -> dict[str, str | None]:
    """Python's and each of :data:`LIBRARIES`' installed version (``None``: not installed) as
    ``python`` (default: this interpreter) sees them, with this process's ``PYTHONPATH``."""
    proc = subprocess.run([python or sys.executable, "-c", _PROBE], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-200:]}
    versions: dict[str, str | None] = json.loads(proc.stdout)
    return versions
