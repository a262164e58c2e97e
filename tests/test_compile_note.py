"""The first-run note: one line on stderr when the run compiles numba kernels (a cache miss),
none when every kernel comes from the cache, none with ``-q``."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from kqi import cli
from kqi._numba import on_first_compile


def _fresh_kernel():
    # a new dispatcher every call, never cached: its first call compiles
    @numba.njit(cache=False)
    def add_one(x):
        return x + 1

    return add_one


def test_on_first_compile_fires_once_and_only_on_a_compile() -> None:
    calls: list[int] = []
    warm = _fresh_kernel()
    warm(np.int64(1))  # compiled before listening: a later call compiles nothing
    stop = on_first_compile(lambda: calls.append(1))
    try:
        warm(np.int64(2))
        assert calls == []
        k = _fresh_kernel()
        k(np.int64(1))  # compiles
        k(np.float64(1.0))  # compiles again, but the note is once
        _fresh_kernel()(np.int64(3))
        assert calls == [1]
    finally:
        stop()
    stop()  # stopping twice is harmless


@pytest.fixture
def note_state(monkeypatch):
    monkeypatch.setattr(cli, "_compile_noted", [False])


def test_printer_notes_compiling_once(note_state, capsys) -> None:
    for _ in range(2):  # kqi demo runs the pipeline twice: one note a process
        printer = cli._ProgressPrinter(quiet=False)
        try:
            _fresh_kernel()(np.int64(1))
        finally:
            printer.close()
    err = capsys.readouterr().err
    assert err.count(cli._COMPILE_NOTE) == 1


def test_printer_silent_when_warm_or_quiet(note_state, capsys) -> None:
    warm = _fresh_kernel()
    warm(np.int64(1))
    printer = cli._ProgressPrinter(quiet=False)
    try:
        warm(np.int64(2))  # nothing compiles
    finally:
        printer.close()
    printer = cli._ProgressPrinter(quiet=True)
    try:
        _fresh_kernel()(np.int64(1))  # compiles, but -q
    finally:
        printer.close()
    assert cli._COMPILE_NOTE not in capsys.readouterr().err


def _kqi_kernel(inner=None):
    """A fresh dispatcher that numba sees as one of kqi's (its function's module is kqi's),
    never cached; ``inner``, another such dispatcher, is called from it (a nested compile)."""
    if inner is None:
        def f(x):
            return x + 1
    else:
        def f(x):
            return inner(x) * 2
    f.__module__ = "kqi._numba"
    return numba.njit(cache=False)(f)


def test_a_kqi_compile_sets_the_older_objects_aside_for_the_collector() -> None:
    """While one of kqi's kernels compiles (nested compiles included) the objects made before
    are frozen (gc.freeze); at its end they are back; another package's compile, and a process
    that froze objects itself, are left alone."""
    import gc

    from numba.core import event

    seen: list[tuple[str, int]] = []

    class Spy(event.Listener):
        def on_start(self, ev: event.Event) -> None:
            py = ev.data["dispatcher"].py_func
            seen.append((py.__module__, gc.get_freeze_count()))

        def on_end(self, ev: event.Event) -> None:
            pass

    spy = Spy()
    event.register("numba:compile", spy)
    try:
        assert gc.get_freeze_count() == 0
        _kqi_kernel(_kqi_kernel())(np.int64(1))  # the caller's compile, then its callee's inside
        assert gc.get_freeze_count() == 0
        assert [m for m, _ in seen] == ["kqi._numba", "kqi._numba"]
        assert all(frozen > 0 for _, frozen in seen)
        seen.clear()
        _fresh_kernel()(np.int64(1))  # a test module's kernel: not kqi's
        assert seen == [(__name__, 0)]
        seen.clear()
        gc.freeze()
        mine = gc.get_freeze_count()
        try:
            _kqi_kernel()(np.int64(1))
            assert seen == [("kqi._numba", mine)]
            # still frozen (not given back by kqi); a few frozen objects were freed meanwhile
            assert 0 < gc.get_freeze_count() <= mine
        finally:
            gc.unfreeze()
    finally:
        event.unregister("numba:compile", spy)
