# ruff: noqa: PLR0917
"""The app-test CSV feed counted chunk by chunk, with its day counts, without batches made.

``kqi run`` reads a CSV feed in chunks that pyarrow parses typed (``ts`` a timestamp, the flag
and KQI columns doubles, ``cell_id`` and ``service`` dictionary-encoded: :class:`RawChunk`). The
ordinary path then converts and checks every column with polars, resolves the ids, builds a batch
and hands it to the accumulator, which reads it again for the verdicts and the day counts. Here a
chunk whose values all pass is counted by one kernel pass over it instead
(:func:`_judge_count_daily`: the checks and verdicts of :func:`ingest._fused._judge_block`, the
same rules as the Parquet fused path, then the counts of ``kqi._kernels._count_verdicts``), the
ids and services resolved once per distinct value, the calendar days made once per chunk
(``kqi.zones``).

A chunk with anything the ordinary path would reject, fix or report (a value out of range, an
unknown or unclean id, an unknown service, a missing or implausible time, a time that does not
exist in the configured zone) has its counts taken back and goes through the ordinary path
(``Ingest._test_chunk``, then the accumulator), so rejects, reasons, counts and the report are
exactly those of the batched path. The first chunk always goes the ordinary way: it decides what
the report says about the file (the timestamps' form).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from kqi import _kernels as fk
from kqi._numba import kernel
from kqi._numba import read_only as _ro
from kqi.schema import APP_TESTS
from kqi.zones import local_days

from ._codes import CodeTable, _arrow
from ._convert import Checks
from ._fused import JUDGED, _bounds, _float_column, _judge_block, block_buffers, service_map
from ._text import CsvSource, RawChunk

if TYPE_CHECKING:
    from .core import _Run

#: no day rows (the accumulator keeps no daily counts)
_NO_DAYS = _ro(np.zeros(0, dtype=np.int64))
#: the timestamp type pyarrow's typed read gives ``ts`` (naive: local times in the configured zone)
_NAIVE_US = pl.Datetime("us")


@kernel
def _judge_count_daily(cell_ix, cell_map, svc_ix, svc_map,
                       s, sv, k0, v0, k1, v1, k2, v2, k3, v3, k4, v4, k5, v5, g, gv,
                       lo, hi, whole, use_good, targets, day, start, stop, sign,
                       valid_buf, cell_buf, svc_buf, succ_buf, good_buf, verdict_buf,
                       tests_out, good_out, dtests_out, dgood_out):
    """Check, judge (:func:`ingest._fused._judge_block`) and count rows ``start..stop-1`` block
    by block (``start`` a multiple of 8), times ``sign``: into the whole-window counters
    ``tests_out``/``good_out`` (index ``cell * N_SERVICES + service``) and, where ``day`` has a
    row per row (its row of the day x key counters ``dtests_out``/``dgood_out``), the day ones.

    Returns ``stop`` when every block was counted, else the first row of the block where a value
    failed (rows before it are counted: the caller takes them back with ``sign = -1``).
    """
    daily = day.shape[0] > 0
    blk = cell_buf.shape[0]
    b0 = start
    while b0 < stop:
        b1 = min(b0 + blk, stop)
        if not _judge_block(cell_ix, cell_map, svc_ix, svc_map, s, sv, k0, v0, k1, v1, k2, v2,
                            k3, v3, k4, v4, k5, v5, g, gv, lo, hi, whole, use_good, targets,
                            b0, b1, valid_buf, cell_buf, svc_buf, succ_buf, good_buf, verdict_buf):
            return b0
        for i in range(b1 - b0):
            key = np.int64(cell_buf[i]) * fk.N_SERVICES + svc_buf[i]
            v = sign * verdict_buf[i]
            tests_out[key] += sign
            good_out[key] += v
            if daily:
                d = day[b0 + i]
                dtests_out[d, key] += sign
                dgood_out[d, key] += v
        b0 = b1
    return stop


class CsvFusedCounter:
    """Counts a typed CSV app-test feed chunk by chunk (see the module docstring).

    Parameters
    ----------
    run
        The feed's run (mapping, parser, rejects sink, row counts).
    codes
        The feed's code table.
    ordinary
        The ordinary path for one raw chunk: its accepted rows counted into the accumulator.
    kqi_config
        The verdict's settings (``config.kqi``): the accumulator's.
    """

    def __init__(self, run: _Run, codes: CodeTable, ordinary: Callable[[RawChunk], None],
                 kqi_config: Any) -> None:
        self.run = run
        self.codes = codes
        self.ordinary = ordinary
        self.id_src = run.mapping["cell_id"]
        self.svc_src = run.mapping["service"]
        self.ts_src = run.mapping["ts"]
        self.judged = {name: run.mapping.get(name) for name in JUDGED}
        self.use_good = bool(kqi_config.use_source_good and self.judged["good"] is not None)
        self.targets = _ro(fk.target_array(kqi_config))
        self.lo, self.hi, self.whole = (_ro(a) for a in _bounds())
        self._bufs = block_buffers()
        self._ts_col = APP_TESTS.column("ts")

    @staticmethod
    def applies(run: _Run, aggregated: bool) -> bool:
        """Whether the feed's chunks can be judged from their values alone: per-test rows of a
        CSV file read typed, ``ts`` from one column, no fill, missing-value tokens or units set
        for the feed, each canonical column from a column of its own."""
        src = run.src
        if aggregated or not isinstance(src, CsvSource) or not src.typed:
            return False
        if run.fill or run.missing_values or run.units or run.time_src is not None or run.skip:
            return False
        if any(c not in run.mapping for c in ("ts", "cell_id", "service")):
            return False
        return len(set(run.mapping.values())) == len(run.mapping)

    def count(self, acc: Any) -> None:
        """Count every chunk into ``acc`` (``kqi.flagging.KqiAccumulator``); the chunks that
        need it go the ordinary way."""
        for raw in self.run.chunks():
            if not self._fast(raw, acc):
                self.ordinary(raw)

    # -- one chunk -------------------------------------------------------------------------
    def _ready(self, raw: RawChunk) -> bool:
        """Whether the chunk's columns have the types the kernel reads, and the file's form has
        been decided (by an ordinary chunk before it)."""
        run = self.run
        if run.scale is None or run.parser.typed_form is None:
            return False
        if self.id_src not in raw.coded or self.svc_src not in raw.coded:
            return False
        schema = raw.frame.schema
        if schema.get(self.ts_src) != _NAIVE_US:
            return False
        return all(src is None or schema.get(src) == pl.Float64 for src in self.judged.values())

    def _utc(self, ts: pl.Series) -> pl.Series | None:
        """The chunk's times in UTC (as the ordinary path makes them from the configured zone),
        or None when a time is missing, implausible or does not exist in the zone (the ordinary
        path reports those; a missing one makes pyarrow's typed read fail already)."""
        from .core import _outside_plausible_years  # the ordinary path's own rule

        if ts.null_count() or _outside_plausible_years(ts).any():
            return None
        checks = Checks(len(ts))
        utc = self.run.parser._localize(ts, checks, self._ts_col, None)
        return None if checks.failing().any() else utc

    def _piece_args(self, raw: RawChunk, frame: pl.DataFrame, a: int, b: int, cmap: np.ndarray,
                    smap: np.ndarray) -> tuple[tuple[Any, ...], int]:
        """The kernel's arguments before the day rows for rows ``a..b-1`` (one parse block),
        and its row count."""
        piece = frame.slice(a, b - a)
        cols: list[np.ndarray] = []
        for name in JUDGED:
            src = self.judged[name]
            arr = None if src is None else _arrow(piece.get_column(src))
            cols.extend(_ro(x) for x in _float_column(arr, b - a))
        cell_ix = _ro(raw.coded[self.id_src].index[a:b])
        svc_ix = _ro(raw.coded[self.svc_src].index[a:b])
        return (cell_ix, cmap, svc_ix, smap, *cols, self.lo, self.hi, self.whole, self.use_good,
                self.targets), b - a

    def _fast(self, raw: RawChunk, acc: Any) -> bool:
        if not self._ready(raw):
            return False
        frame = raw.frame
        n = frame.height
        cell = raw.coded[self.id_src]
        svc = raw.coded[self.svc_src]
        # every value of a chunk's dictionaries is some row's: one that misses sends it the
        # ordinary way before any work
        cmap = _ro(self.codes.lookup_arrow(_arrow(cell.values.cast(pl.String))))
        smap = _ro(service_map(svc.values))
        if (cmap < 0).any() or (smap < 0).any():
            return False
        # the times are checked as the ordinary path checks them, days kept or not
        utc = self._utc(frame.get_column(self.ts_src))
        if utc is None:
            return False
        days = local_days(utc, acc.config.ingest.timezone) if acc.keeps_daily else None
        tests, good, dtests, dgood, day0 = acc.counters(len(self.codes))
        span = None if days is None else (int(days.min()), int(days.max()))  # type: ignore[arg-type]
        pieces = [self._piece_args(raw, frame, a, b, cmap, smap) for a, b in _pieces(frame)]
        if span is not None and not (dtests.shape[0] and day0 <= span[0]
                                     and span[1] < day0 + dtests.shape[0]):
            # new days: the chunk is checked (sign 0, no day rows) before the day counters grow
            # for it, so that a rejected row's far-off date does not widen them
            for args, m in pieces:
                if _judge_count_daily(*args, _NO_DAYS, 0, m, 0, *self._bufs, tests, good, dtests,
                                      dgood) != m:
                    return False
            tests, good, dtests, dgood, day0 = acc.counters(len(self.codes), span)
        day = _NO_DAYS if days is None else _ro((days.cast(pl.Int64) - day0).to_numpy())
        done: list[tuple[tuple[Any, ...], np.ndarray, int]] = []  # counted pieces, to take back
        a = 0
        for args, m in pieces:
            rows = day[a:a + m] if day.shape[0] else _NO_DAYS
            a += m
            stop = _judge_count_daily(*args, rows, 0, m, 1, *self._bufs, tests, good, dtests, dgood)
            done.append((args, rows, stop))
            if stop != m:
                for back, back_rows, end in done:  # the chunk goes the ordinary way: counts undone
                    if end:
                        _judge_count_daily(*back, back_rows, 0, end, -1, *self._bufs, tests, good,
                                           dtests, dgood)
                return False
        self.run.rows_accepted += n
        self.run.parser._count(self.run.parser.typed_form or "datetime values", n)
        self.run.sink.flush()
        acc.rows += n
        return True


def _pieces(frame: pl.DataFrame) -> list[tuple[int, int]]:
    """Row ranges of ``frame`` in which every column is one chunk (pyarrow's parse blocks):
    each piece's columns are read without a copy."""
    ends: set[int] = {frame.height}
    for s in frame.get_columns():
        if s.n_chunks() > 1:
            ends.update(itertools.accumulate(len(c) for c in s.get_chunks()))
    bounds = [0, *sorted(ends)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
