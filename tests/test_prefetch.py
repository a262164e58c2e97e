"""The late stages' imports started ahead (kqi/_prefetch.py): in kqi's own process the prefetch
thread's imports do not load pandas (scikit-learn and folium import it for nothing a run uses);
every other thread, and a library caller's process, import as usual."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from kqi import _prefetch


def test_finder_hides_the_names_from_its_thread_only() -> None:
    seen: list[str] = []

    def look() -> None:
        try:
            seen.append(repr(finder.find_spec("pandas.core.frame")))
        except ModuleNotFoundError as exc:
            seen.append(f"not found: {exc.name}")
        seen.append(repr(finder.find_spec("pandasx")))  # another name: passed on

    t = threading.Thread(target=look)
    finder = _prefetch._NotInThread(["pandas"], t)
    t.start()
    t.join()
    assert seen == ["not found: pandas.core.frame", "None"]
    # any other thread (here the test's own) is passed on to the next finder
    assert finder.find_spec("pandas") is None
    assert finder.find_spec("pandas.core.frame") is None


_CHILD = r"""
import json, sys
from kqi import _prefetch
_prefetch.own_process = {own}
_prefetch.start().join()
import sklearn.utils.fixes, folium.utilities
seen = {{"pandas": "pandas" in sys.modules, "hdbscan": "hdbscan" in sys.modules,
        "folium": "folium" in sys.modules, "sklearn_pd": sklearn.utils.fixes.pd is not None,
        "finders": sum(type(f).__name__ == "_NotInThread" for f in sys.meta_path)}}
import pandas  # after the prefetch: found as usual
seen["pandas_after"] = pandas.DataFrame({{"a": [1]}}).shape[0]
print(json.dumps(seen))
"""


def _child(own: bool) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(own=own)], capture_output=True,
                          text=True, check=True, timeout=300)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_own_process_prefetch_leaves_pandas_unimported() -> None:
    pytest.importorskip("pandas")  # a dev dependency: the case only exists where it is installed
    seen = _child(True)
    assert seen == {"pandas": False, "hdbscan": True, "folium": True, "sklearn_pd": False,
                    "finders": 0, "pandas_after": 1}


def test_library_process_prefetch_imports_as_usual() -> None:
    pytest.importorskip("pandas")
    seen = _child(False)
    assert seen == {"pandas": True, "hdbscan": True, "folium": True, "sklearn_pd": True,
                    "finders": 0, "pandas_after": 1}


def test_cli_marks_the_process_its_own(monkeypatch) -> None:
    from kqi import cli

    monkeypatch.setattr(_prefetch, "own_process", False)
    cli.main(["--version"])
    assert _prefetch.own_process is True


def test_the_finder_never_changes_the_list_an_import_in_progress_walks(monkeypatch) -> None:
    """sys.meta_path is rebound around the prefetch, never changed in place: an import running
    in another thread walks the list it read, which a removal in place would shift under it
    (skipping a finder and failing the import of an installed module)."""
    walked = sys.meta_path  # the list an import in progress is walking
    snapshot = list(walked)
    during: list[bool] = []

    def import_module(name: str) -> None:  # what the prefetch sees while it imports
        during.append(walked == snapshot)
        during.append(any(isinstance(f, _prefetch._NotInThread) for f in sys.meta_path))

    monkeypatch.setattr(_prefetch.importlib, "import_module", import_module)
    seen: list[int] = []

    def load() -> None:
        _prefetch._load(["json"], ["pandasx"])
        seen.append(sum(isinstance(f, _prefetch._NotInThread) for f in sys.meta_path))

    t = threading.Thread(target=load)
    t.start()
    t.join()
    assert during == [True, True]  # the finder in place, the walked list untouched
    assert walked == snapshot
    assert seen == [0]
    assert not any(isinstance(f, _prefetch._NotInThread) for f in sys.meta_path)


def test_nothing_the_helper_process_does_is_prefetched_here(monkeypatch) -> None:
    from kqi import _sidecar

    loads: list[list[str]] = []
    monkeypatch.setattr(_prefetch, "_load", lambda modules, hidden: loads.append(list(modules)))
    _prefetch.start().join()
    monkeypatch.setattr(_sidecar, "active", lambda: True)
    _prefetch.start().join()
    assert loads == [["scipy.spatial", "hdbscan", "folium"], ["scipy.spatial"]]
