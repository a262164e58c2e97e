"""The console's progress of long stages (kqi.progress): rows so far and rows/s on stderr,
refreshed in place on a terminal, plain lines otherwise, nothing for a short stage or with -q."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from ingest_helpers import cfg, write
from kqi.ingest import Ingest

from kqi import diagnosis, progress
from kqi.config import Config
from kqi.diagnosis import extract_evidence
from kqi.progress import Ticker, describe, rows_text


class _Stream(io.StringIO):
    """A stream that tells when something was written (no sleeping on a guess)."""

    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self._tty = tty
        self.wrote = threading.Event()

    def isatty(self) -> bool:
        return self._tty

    def write(self, s: str) -> int:
        n = super().write(s)
        self.wrote.set()
        return n


def test_plain_lines_with_rows_and_rate() -> None:
    out = _Stream()
    t = Ticker(out, after=0.0, every=0.01)
    t.start("ingest KPIs")
    progress.add_rows(1_500_000)
    out.wrote.clear()
    assert out.wrote.wait(5)  # a line written after the rows were counted
    assert t.stop() == 1_500_000
    lines = out.getvalue().splitlines()
    assert lines
    assert all(ln.startswith("  ingest KPIs: ") and ln.endswith(" ...") for ln in lines)
    assert "1,500,000 rows" in lines[-1]
    assert "rows/s" in lines[-1]
    assert "\r" not in out.getvalue()  # not a terminal: no cursor tricks in a log file


def test_terminal_line_refreshed_in_place_and_cleared() -> None:
    out = _Stream(tty=True)
    t = Ticker(out, after=0.0, refresh=0.01)
    t.start("diagnosis")
    assert out.wrote.wait(5)
    assert t.stop() is None  # a stage that counts no rows
    text = out.getvalue()
    assert text.startswith("\r\x1b[K  diagnosis: working, ")
    assert text.endswith("\r\x1b[K")  # the line is cleared when the stage ends
    assert "\n" not in text


def test_short_stage_shows_nothing_and_rows_count_only_while_active() -> None:
    out = _Stream()
    t = Ticker(out, after=60.0)
    progress.add_rows(5)  # no stage running: counted nowhere, no error
    t.start("ingest cells")
    progress.add_rows(7)
    assert t.stop() == 7
    progress.add_rows(9)
    assert t.rows == 7
    assert out.getvalue() == ""


def test_texts() -> None:
    assert describe("ingest KPIs", 1_234_567, 1.0) == "ingest KPIs: 1,234,567 rows, 1.23 M rows/s, 1 s"
    assert describe("map", 0, 4.2) == "map: working, 4 s"
    assert rows_text(3_000, 2.0) == "3,000 rows, 2 k rows/s"
    assert rows_text(10, 0.0) == "10 rows, 0 rows/s"


def test_ingest_counts_every_row_read(tmp_path: Path) -> None:
    """The rows shown are the feed's rows read, the rejected and malformed ones included."""
    ing = Ingest(cfg(batch_rows=2), tmp_path / "rejects")
    cells = ing.cells(write(tmp_path / "cells.csv", "cell_id,lat,lon,azimuth\nC1,31,121,0\n"))
    rows = "".join(f"2024-01-01 0{h}:00:00,C1,50\n" for h in range(6))
    path = write(tmp_path / "k.csv", "ts,cell_id,prb_util_dl\n" + rows + "2024-01-01 09:00:00,C9,1\nx,y\n")
    t = Ticker(_Stream(), after=60.0)
    t.start("ingest KPIs")
    got = ing.cell_kpis(path, cells)
    assert t.stop() == ing.reports["cell_kpis"].rows_read == 8
    assert isinstance(got, pl.DataFrame)
    assert got.height == 6


def test_diagnosis_counts_the_kpi_rows_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The diagnosis stage (over 2 s on a city of 50,000 cells) shows the KPI rows its evidence
    has read so far: each row once, the count growing a block at a time."""
    from test_diagnosis import network

    cells, kpis, _, _ = network()
    t = Ticker(_Stream(), after=60.0)
    t.start("diagnosis")
    extract_evidence(kpis, cells, Config())
    assert t.stop() == kpis.height

    seen: list[int] = []

    def counted(n: int) -> None:
        progress.add_rows(n)
        seen.append(t.rows)

    monkeypatch.setattr(diagnosis, "add_rows", counted)
    k = pl.DataFrame({"code": [0] * 10, "hour": list(range(10)),
                      **{a.source: [1.0] * 10 for a in diagnosis.KPI_AGGREGATES}})
    no_hours = np.zeros(24, dtype=np.bool_)
    t.start("diagnosis")
    diagnosis._kpi_aggregates(k, 1, no_hours, no_hours, block_rows=3)
    assert t.stop() == 10
    assert seen == [3, 6, 9, 10]
