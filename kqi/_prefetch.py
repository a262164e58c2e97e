"""Heavy imports of the late stages, started in a background thread at the start of a run.

``hdbscan`` (diagnosis's signature clusters) imports scikit-learn, scipy.stats and pandas: about
1.5-3 CPU-s, most of a small run's diagnosis stage; ``folium`` (the map) about 1 s. Importing
them in a thread while the ingest stages read files (polars and numba release the GIL) takes
that time off the critical path. Nothing else changes: the stages still import the modules
themselves (Python's import lock makes the stage wait for a prefetch in progress), and a failed
prefetch is silent here and raised by the stage's own import, as without it.
"""

from __future__ import annotations

import importlib
import threading

#: modules imported ahead, in this order (the one needed first comes first)
MODULES = ("hdbscan", "folium")


def _load() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # the stage's own import reports it
            return


def start() -> threading.Thread:
    """Start importing :data:`MODULES` in a daemon thread; returns the thread."""
    t = threading.Thread(target=_load, name="kqi-prefetch-imports", daemon=True)
    t.start()
    return t
