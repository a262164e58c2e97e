"""Progress of a long stage on the console: rows so far and rows per second, or at least that it
is still working and for how long.

The work only counts (:func:`add_rows`: one addition per chunk of rows, no I/O); a ticker thread
reads the count and writes to stderr, so a stage runs as fast with the display as without it.
Nothing is shown for a stage shorter than :attr:`Ticker.after` seconds. On a terminal the line
is refreshed in place (and cleared when the stage ends); otherwise (a log file, a pipe, CI) a
plain line is written every :attr:`Ticker.every` seconds. ``kqi -q`` makes no ticker at all, and
nothing of this reaches an output file.

    ticker = Ticker(sys.stderr)
    ticker.start("ingest KPIs")     # the pipeline's stage hook
    ...                             # ingest calls add_rows(n) per chunk it reads
    rows = ticker.stop()            # rows counted in the stage (None: not a row stage)
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

#: the ticker of the running stage, if any (one at a time: the pipeline runs stages in turn)
_active: list[Ticker | None] = [None]
_lock = threading.Lock()


def add_rows(n: int) -> None:
    """Count ``n`` more rows read in the running stage (nothing when no ticker is active)."""
    t = _active[0]
    if t is not None:
        t.rows += n


def _rate(rows: int, seconds: float) -> str:
    r = rows / seconds if seconds > 0 else 0.0
    return f"{r / 1e6:.2f} M rows/s" if r >= 1e6 else f"{r / 1e3:.0f} k rows/s" if r >= 1e3 \
        else f"{r:.0f} rows/s"


def rows_text(rows: int, seconds: float) -> str:
    """``1,234,567 rows, 0.85 M rows/s``."""
    return f"{rows:,} rows, {_rate(rows, seconds)}"


def describe(stage: str, rows: int, seconds: float) -> str:
    """``ingest KPIs: 1,234,567 rows, 0.85 M rows/s, 2 s``; a stage without rows:
    ``diagnosis: working, 4 s``."""
    if rows:
        return f"{stage}: {rows_text(rows, seconds)}, {seconds:.0f} s"
    return f"{stage}: working, {seconds:.0f} s"


class Ticker:
    """Shows the running stage's progress on ``stream`` from a thread of its own.

    Parameters
    ----------
    stream
        Where to write (stderr).
    tty
        Refresh one line in place (a terminal); default: ``stream.isatty()``.
    after
        Seconds a stage runs before anything is shown.
    every
        Seconds between plain lines (not a terminal).
    refresh
        Seconds between refreshes on a terminal.
    """

    def __init__(self, stream: TextIO, *, tty: bool | None = None, after: float = 2.0,
                 every: float = 5.0, refresh: float = 0.5) -> None:
        self.stream = stream
        self.tty = bool(stream.isatty()) if tty is None else tty
        self.after, self.every, self.refresh = after, every, refresh
        self.rows = 0
        self.stage: str | None = None
        self._t0 = 0.0
        self._wake = threading.Event()
        self._shown = False
        self._thread: threading.Thread | None = None

    def start(self, stage: str) -> None:
        """A stage begins: count its rows from zero and show it once it runs long enough."""
        self.stop()
        self.stage, self.rows, self._t0, self._shown = stage, 0, time.perf_counter(), False
        self._wake.clear()
        with _lock:
            _active[0] = self
        self._thread = threading.Thread(target=self._run, name="kqi-progress", daemon=True)
        self._thread.start()

    def stop(self) -> int | None:
        """The stage ended: stop showing it (a terminal's line cleared); its row count, or None
        when it counted none."""
        if self._thread is None:
            return None
        self._wake.set()
        self._thread.join()
        self._thread = None
        with _lock:
            if _active[0] is self:
                _active[0] = None
        if self._shown and self.tty:
            self._write("\r\x1b[K")
        return self.rows or None

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr stops nothing
            pass

    def _run(self) -> None:
        if self._wake.wait(self.after):
            return
        step = self.refresh if self.tty else self.every
        while True:
            assert self.stage is not None
            line = describe(self.stage, self.rows, self.elapsed())
            self._write(f"\r\x1b[K  {line} ..." if self.tty else f"  {line} ...\n")
            self._shown = True
            if self._wake.wait(step):
                return
