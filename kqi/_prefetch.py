"""Heavy imports of the later stages, started in a background thread at the start of a run.

``scipy.spatial`` (kqi.geo's k-d tree, first used by the inter-site distance after the ingest)
costs 0.25-0.35 CPU-s; ``hdbscan`` (diagnosis's signature clusters) imports scikit-learn and
scipy.stats: about 1-2 CPU-s, most of a small run's diagnosis stage; ``folium`` (the map) about
0.3-1 s. Importing them in a thread while the ingest stages read files (polars and numba release
the GIL) takes that time off the critical path. Nothing else changes: the stages still import
the modules themselves (Python's import lock makes the stage wait for a prefetch in progress),
and a failed prefetch is silent here and raised by the stage's own import, as without it. (The
command line does better for hdbscan and folium: its helper process imports them and does their
work on the other core, kqi/_sidecar.py; then only scipy.spatial is prefetched here.)

pandas is not one of kqi's dependencies, but where it is installed scikit-learn
(``sklearn.utils.fixes``) and folium (``folium.utilities``) import it at module level, inside
``try: import pandas ... except ImportError``, for nothing a run uses (folium converts a pandas
DataFrame given as locations; kqi gives lists): ~0.7 CPU-s holding the interpreter lock that the
ingest needs. When the process is kqi's own (the command line, :func:`start` with
``own_process``), the prefetch thread's imports see pandas as not installed, as on a machine
without it: the modules it imports (scikit-learn's, folium's) keep "no pandas" for the whole
process, while ``import pandas`` itself, in another thread or after the prefetch, finds it as
usual. A library caller's process (``kqi.run`` from Python) is left alone: its own code may give
folium DataFrames.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import threading
from collections.abc import Sequence
from types import ModuleType

#: modules imported ahead, in this order (the one needed first comes first)
MODULES = ("scipy.spatial", "hdbscan", "folium")

#: what the prefetch thread's imports do not look for in kqi's own process (see the module doc)
UNUSED = ("pandas",)

#: set by the command line (kqi.cli) before it runs the pipeline: the process is kqi's own
own_process = False


class _NotInThread(importlib.abc.MetaPathFinder):
    """Reports the top-level packages ``names`` (and their submodules) as not installed to
    imports made by ``thread``; every other thread's imports pass through to the next finder."""

    def __init__(self, names: Sequence[str], thread: threading.Thread) -> None:
        self._names = tuple(names)
        self._thread = thread

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> None:
        # None (any other name or thread): not this finder's, the next one looks
        if (fullname.partition(".")[0] in self._names
                and threading.current_thread() is self._thread):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


def _load(modules: Sequence[str], hidden: Sequence[str]) -> None:
    finder = _NotInThread(hidden, threading.current_thread()) if hidden else None
    # sys.meta_path is rebound, never changed in place: an import in progress in another thread
    # walks the list it read, and a removal in place would shift it under that walk (skipping a
    # finder, PathFinder say, and failing an import of an installed module)
    if finder is not None:
        sys.meta_path = [finder, *sys.meta_path]
    try:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # the stage's own import reports it
                return
    finally:
        if finder is not None:
            sys.meta_path = [f for f in sys.meta_path if f is not finder]


def start() -> threading.Thread:
    """Start importing :data:`MODULES` in a daemon thread; returns the thread. In kqi's own
    process (:data:`own_process`) the packages of :data:`UNUSED` that are not imported yet stay
    unimported by them. A module that kqi's helper process imports and uses instead of this one
    (kqi/_sidecar.py, when it runs) is left out."""
    from kqi import _sidecar

    modules = [m for m in MODULES if not (_sidecar.active() and m in _sidecar.COVERS)]
    hidden = [n for n in UNUSED if n not in sys.modules] if own_process else []
    t = threading.Thread(target=_load, args=(modules, hidden), name="kqi-prefetch-imports",
                         daemon=True)
    t.start()
    return t
