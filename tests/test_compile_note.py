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
