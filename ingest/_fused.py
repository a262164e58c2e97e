# ruff: noqa: PLR0917
"""The app-test feed counted row group by row group, in one pass, without batches kept.

For a Parquet feed whose every column can be judged from its values alone (``cell_id`` and
``service`` text, the flag and KQI columns numeric, ``ts`` proved valid by the file's statistics
and not needed), each record batch of a row group is decoded by pyarrow (``cell_id`` and
``service`` as the file's dictionaries, the rest typed: one decoder, the one the decode floor
measures), its dictionaries mapped to codes once (:class:`ingest._codes.CodeTable`, appending new
ids; a ``cell_id`` whose dictionary overflowed into plain pages is read as plain strings instead,
each row looked up by the decode worker, see :data:`_PLAIN_BYTES`), and one kernel pass (:func:`_judge_count`) checks every value (range, finiteness, whole
numbers; NaN counted as missing, the rule of ``ingest._kernels._check_floats``), gives each test
its verdict (``kqi._kernels._verdicts``) and adds it to the per cell x service counters in place.

Where a batch holds a value that fails a check (or a null, unknown or unclean ``cell_id`` or
``service``), its counts are taken back and the batch goes through the ordinary path
(``Ingest._test_chunk``: the same conversion, rejects and reasons as ``kqi run``), so rejects and
row accounting are exactly those of the batched path. Memory is that of a row group or two.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kqi import _kernels as fk
from kqi._numba import kernel
from kqi._numba import read_only as _ro
from kqi.errors import InputError
from kqi.progress import add_rows
from kqi.schema import APP_TESTS, KQI_COLUMNS

from . import _codes
from ._codes import CodeTable, string_buffers
from ._convert import Checks, convert_service, convert_string
from ._kernels import _check_floats, _first_rows, _screen_floats
from ._sources import ParquetSource, _one_line
from ._text import Coded, RawChunk, _prefetched

if TYPE_CHECKING:
    from .core import Ingest, _Run

#: the judged columns, in kernel order: success, the six KQIs, good
JUDGED: tuple[str, ...] = ("success", *KQI_COLUMNS, "good")
#: rows per kernel block: a block's checks, verdicts and counts stay in the core's cache
BLOCK = 16_384
#: a row group larger than this many batches is read batch by batch (iter_batches)
_MAX_GROUP_BATCHES = 4
#: a ``cell_id`` column chunk of more uncompressed bytes a value than this is read as plain
#: strings, each row looked up in the code table by the decode worker: dictionary indices take
#: at most ~3 bytes a value, so more means the writer's dictionary overflowed into plain pages
#: (pyarrow would rebuild a dictionary by hashing every row) or a dictionary nearly as long as
#: the rows. 128k-row groups of 50,000 cells (4.5 B/value, fully dictionary-encoded) read their
#: dictionaries faster; 500,000 cells (10.8 B/value, mostly plain pages) their strings. Only the
#: speed depends on it: both reads give the same codes.
_PLAIN_BYTES = 8.0
#: rows the decode worker looks up at a time, holding the code table's lock: the counting thread,
#: which appends new ids, waits for one piece at most (a whole 1 M-row group held the lock ~70 ms,
#: and the counting waited for it after every group: ~1.8 s of 20 M rows with 500,000 cells)
_LOOKUP_ROWS = 32_768
#: a service dictionary of at most this many values has its map kept by content
_SMALL_DICT = 64
#: at most this many such maps are kept (the orders of a few services a file's groups use)
_KEPT_MAPS = 64
_UNRESOLVED = np.int32(-3)
_BAD = np.int32(-2)
#: the cell map of a batch whose ``cell_ix`` are codes already (see :func:`_judge_count`)
_DIRECT = _ro(np.zeros(0, dtype=np.int32))


@kernel
def _block_bad(x, xv, b0, b1, lo, hi, whole, out_valid):
    """Whether a present value of ``x[b0:b1]`` fails its check (NaN is missing): the quick
    reduction, confirmed by the exact one-pass check where it alarms."""
    if not _screen_floats(x, b0, b1, lo, hi, whole)[0]:
        return False
    return _check_floats(x, xv, b0, b1, lo, hi, whole, out_valid)[0]


@kernel
def _judge_block(cell_ix, cell_map, svc_ix, svc_map,
                 s, sv, k0, v0, k1, v1, k2, v2, k3, v3, k4, v4, k5, v5, g, gv,
                 lo, hi, whole, use_good, targets, b0, b1,
                 valid_buf, cell_buf, svc_buf, succ_buf, good_buf, verdict_buf):
    """Check and judge rows ``b0..b1-1`` (one block, at most ``len(cell_buf)`` rows, ``b0`` a
    multiple of 8): every present value of the eight judged columns (``s`` success, ``k0..k5``
    KQIs, ``g`` good; float64 values with Arrow validity bitmaps from bit 0) is checked against
    ``lo``/``hi``/``whole`` (NaN counted as missing: the rule of ``_check_floats``); every row's
    cell and service code is read through the per-value maps (``cell_map[cell_ix]``,
    ``svc_map[svc_ix]``; an empty ``cell_map``: ``cell_ix`` holds the codes themselves; a
    negative index or code is a row that needs the ordinary path); then each row's code goes to
    ``cell_buf``/``svc_buf`` and its verdict (``_verdicts``; a NaN KQI fails as a missing one
    does, a NaN success counts as missing) to ``verdict_buf``, from 0.

    Returns False, judging nothing, when a value of the block fails.
    """
    m = b1 - b0
    nb = (m + 7) >> 3
    j0 = b0 >> 3
    if (_block_bad(s, sv, b0, b1, lo[0], hi[0], whole[0], valid_buf[0, :nb])
            or _block_bad(k0, v0, b0, b1, lo[1], hi[1], whole[1], valid_buf[1, :nb])
            or _block_bad(k1, v1, b0, b1, lo[2], hi[2], whole[2], valid_buf[2, :nb])
            or _block_bad(k2, v2, b0, b1, lo[3], hi[3], whole[3], valid_buf[3, :nb])
            or _block_bad(k3, v3, b0, b1, lo[4], hi[4], whole[4], valid_buf[4, :nb])
            or _block_bad(k4, v4, b0, b1, lo[5], hi[5], whole[5], valid_buf[5, :nb])
            or _block_bad(k5, v5, b0, b1, lo[6], hi[6], whole[6], valid_buf[6, :nb])
            or _block_bad(g, gv, b0, b1, lo[7], hi[7], whole[7], valid_buf[7, :nb])):
        return False
    if use_good:  # a NaN good is a missing one: its validity with NaNs cleared
        _check_floats(g, gv, b0, b1, lo[7], hi[7], whole[7], valid_buf[7, :nb])
    else:
        valid_buf[7, :nb] = gv[j0:j0 + nb]
    direct = cell_map.shape[0] == 0
    bad = np.int64(0)
    for i in range(m):
        ci = np.int64(cell_ix[b0 + i])
        si = np.int64(svc_ix[b0 + i])
        c = np.int32(-1) if ci < 0 else (np.int32(ci) if direct else cell_map[ci])
        sc = np.int8(-1) if si < 0 else svc_map[si]
        bad |= np.int64(c < 0) | np.int64(sc < 0)
        cell_buf[i] = c
        svc_buf[i] = sc
        succ_buf[i] = np.int8(s[b0 + i] != 0.0)
        good_buf[i] = np.int8(g[b0 + i] != 0.0)
    if bad:
        return False
    fk._verdicts(svc_buf[:m], succ_buf[:m], sv[j0:j0 + nb],
                 k0[b0:b1], v0[j0:j0 + nb], k1[b0:b1], v1[j0:j0 + nb],
                 k2[b0:b1], v2[j0:j0 + nb], k3[b0:b1], v3[j0:j0 + nb],
                 k4[b0:b1], v4[j0:j0 + nb], k5[b0:b1], v5[j0:j0 + nb],
                 good_buf[:m], valid_buf[7, :nb], use_good, targets, verdict_buf[:m])
    return True


@kernel
def _judge_count(cell_ix, cell_map, svc_ix, svc_map,
                 s, sv, k0, v0, k1, v1, k2, v2, k3, v3, k4, v4, k5, v5, g, gv,
                 lo, hi, whole, use_good, targets, start, stop, sign,
                 valid_buf, cell_buf, svc_buf, succ_buf, good_buf, verdict_buf, counts):
    """Check, judge (:func:`_judge_block`) and count rows ``start..stop-1`` block by block
    (``start`` a multiple of 8): each block's verdicts are added, times ``sign``, to ``counts``
    (int64: tests at ``2 * key``, good tests at ``2 * key + 1``, ``key = cell * N_SERVICES +
    service``).

    Returns ``stop`` when every block was counted, else the first row of the block where a value
    failed (rows before it are counted: the caller takes them back with ``sign = -1``).
    """
    blk = cell_buf.shape[0]
    b0 = start
    while b0 < stop:
        b1 = min(b0 + blk, stop)
        if not _judge_block(cell_ix, cell_map, svc_ix, svc_map, s, sv, k0, v0, k1, v1, k2, v2,
                            k3, v3, k4, v4, k5, v5, g, gv, lo, hi, whole, use_good, targets,
                            b0, b1, valid_buf, cell_buf, svc_buf, succ_buf, good_buf, verdict_buf):
            return b0
        for i in range(b1 - b0):
            # tests and good tests side by side: one cache line per row, however many cells
            key = (np.int64(cell_buf[i]) * 3 + svc_buf[i]) * 2
            counts[key] += sign
            counts[key + 1] += sign * verdict_buf[i]
        b0 = b1
    return stop


def block_buffers() -> tuple[np.ndarray, ...]:
    """The per-block scratch arrays :func:`_judge_block` fills (``valid_buf`` .. ``verdict_buf``)."""
    return (np.zeros((len(JUDGED), BLOCK // 8), dtype=np.uint8), np.zeros(BLOCK, dtype=np.int32),
            *(np.zeros(BLOCK, dtype=np.int8) for _ in range(4)))


def service_map(values: pl.Series) -> np.ndarray:
    """Per service value (text): its service code (int8), -1 where rows with it need the
    ordinary path (an unknown or missing service)."""
    checks = Checks(len(values))
    code = convert_service(APP_TESTS.column("service"), values, checks)
    out = code.fill_null(-1).to_numpy().astype(np.int8)
    out[checks.failing().to_numpy()] = -1
    return out


def _bounds() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """lo, hi, whole of the judged columns: the checks ``convert_flag``/``convert_float`` make."""
    lo, hi, whole = [], [], []
    for name in JUDGED:
        col = APP_TESTS.column(name)
        a = -math.inf if col.lo is None else float(col.lo)
        b = math.inf if col.hi is None else float(col.hi)
        if col.kind == "flag":
            a, b = max(a, 0.0), min(b, 1.0)
        lo.append(a)
        hi.append(b)
        whole.append(col.kind in ("int", "flag"))
    return (np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64),
            np.array(whole, dtype=np.bool_))


def _float_column(arr: pa.Array | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 values and a validity bitmap from bit 0 of a numeric Arrow array (None: absent,
    all missing)."""
    if arr is None:
        return np.zeros(n, dtype=np.float64), np.zeros((n + 7) // 8, dtype=np.uint8)
    if arr.type != pa.float64():
        arr = pc.cast(arr, pa.float64())
    off = arr.offset
    bufs = arr.buffers()
    values = np.frombuffer(bufs[1], dtype=np.float64, count=off + n)[off:]
    if arr.null_count == 0:
        valid = np.full((n + 7) // 8, 0xFF, dtype=np.uint8)
    elif off % 8 == 0:
        valid = np.frombuffer(bufs[0], dtype=np.uint8, count=(off + n + 7) // 8)[off // 8:]
    else:
        valid = np.packbits(np.asarray(arr.is_valid()), bitorder="little")
    return values, valid


def _indices(arr: pa.DictionaryArray) -> np.ndarray:
    """int32 dictionary indices, -1 for a null row."""
    ix = arr.indices
    if ix.null_count:
        ix = pc.fill_null(ix, -1)
    return np.ascontiguousarray(ix.to_numpy(zero_copy_only=False), dtype=np.int32)


def _key(d: pa.Array) -> tuple[int, ...]:
    return (len(d), d.offset, *(b.address if b is not None else 0 for b in d.buffers()))


class FusedCounter:
    """Counts a Parquet app-test feed row group by row group (see the module docstring).

    Parameters
    ----------
    ing, run
        The ingest and the feed's run (mapping, rejects sink, row counts).
    codes
        The feed's code table.
    chunk
        The ordinary path for one raw chunk: ``Ingest._test_chunk`` bound to this feed.
    kqi_config
        The verdict's settings (``config.kqi``): the accumulator's; the ingest's by default.
    """

    def __init__(self, ing: Ingest, run: _Run, codes: CodeTable,
                 chunk: Callable[[RawChunk], pl.DataFrame], kqi_config: Any = None) -> None:
        self.run = run
        self.codes = codes
        self.chunk = chunk
        src = run.src
        assert isinstance(src, ParquetSource)
        self.src = src
        self.id_src = run.mapping["cell_id"]
        self.svc_src = run.mapping["service"]
        self.judged = {name: run.mapping.get(name) for name in JUDGED}
        self.columns = list(dict.fromkeys(
            [self.id_src, self.svc_src, *(c for c in self.judged.values() if c is not None)]))
        kcfg = ing.config.kqi if kqi_config is None else kqi_config  # the accumulator's
        self.use_good = bool(kcfg.use_source_good and self.judged["good"] is not None)
        self.targets = _ro(fk.target_array(kcfg))
        self.lo, self.hi, self.whole = (_ro(a) for a in _bounds())
        #: tests and good tests per cell x service, interleaved (see :func:`_judge_count`)
        self.counts = np.zeros(0, dtype=np.int64)
        self._cell_cache: tuple[tuple[int, ...], pa.Array, np.ndarray] | None = None
        self._svc_cache: tuple[tuple[int, ...], pa.Array, np.ndarray] | None = None
        #: service maps of small dictionaries by their values (see :meth:`_svc_map`)
        self._svc_maps: dict[tuple[str | None, ...], np.ndarray] = {}
        #: held while the decode worker reads the code table or this thread changes it
        self._codes_lock = threading.Lock()
        self._bufs = block_buffers()

    @staticmethod
    def applies(run: _Run, aggregated: bool) -> bool:
        """Whether every value of the feed can be judged from the values alone: a Parquet file,
        per-test rows, ``ts`` not read, no fill, missing-value tokens or units set for it, text
        ids and services, numeric flag and KQI columns."""
        src = run.src
        if aggregated or not isinstance(src, ParquetSource) or "ts" not in run.skip:
            return False
        if run.fill or run.missing_values or run.units or run.time_src is not None:
            return False
        try:
            with pq.ParquetFile(src.path) as pf:
                schema = pf.schema_arrow
        except (pa.ArrowException, OSError):
            return False
        for canon, col in run.mapping.items():
            if canon == "ts":
                continue
            t = schema.field(col).type
            if canon in ("cell_id", "service"):
                if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
                    return False
            elif not (pa.types.is_integer(t) or pa.types.is_floating(t)):
                return False
        typed = [c for c in JUDGED if c in run.mapping]
        return bool(typed) and len(set(run.mapping.values())) == len(run.mapping)

    # -- reading ---------------------------------------------------------------------------
    def _batches(self) -> Iterator[tuple[pa.RecordBatch, np.ndarray | None]]:
        """Each record batch with, where its ``cell_id`` was read as plain strings (see
        :data:`_PLAIN_BYTES`), the code of each row that the code table held when it was looked
        up (-1 for a null or absent id), else None. Made in the decode worker (:meth:`count`): the
        lookups run beside the counting of the batch before. (A thread of their own between the
        decode and the counting measured no faster, with a row group more in memory.)"""
        for rb, plain in self._decoded(self._plan()):
            yield rb, self._plain_lookup(rb.column(self.id_src)) if plain else None

    def _plan(self) -> list[tuple[int, bool]]:
        """The row groups with rows, and whether each one's ``cell_id`` is read as plain
        strings (from the column chunk's size in the file's metadata)."""
        with pq.ParquetFile(self.src.path) as pf:
            md = pf.metadata
        paths = [md.schema.column(j).path for j in range(md.num_columns)]
        col = paths.index(self.id_src) if self.id_src in paths else -1
        plan = []
        for g in range(md.num_row_groups):
            meta = md.row_group(g)
            if meta.num_rows == 0:
                continue
            chunk = meta.column(col) if col >= 0 else None
            plan.append((g, chunk is not None and chunk.num_values > 0
                         and chunk.total_uncompressed_size > _PLAIN_BYTES * chunk.num_values))
        return plan

    def _decoded(self, plan: list[tuple[int, bool]]) -> Iterator[tuple[pa.RecordBatch, bool]]:
        """Each record batch of the row groups of ``plan``, and whether its ``cell_id`` was read
        as plain strings."""
        limit = self.src._batch_rows
        with contextlib.ExitStack() as stack:
            readers: dict[bool, pq.ParquetFile] = {}
            for g, plain in plan:
                if plain not in readers:
                    dicts = [self.svc_src] if plain else [self.id_src, self.svc_src]
                    readers[plain] = stack.enter_context(
                        pq.ParquetFile(self.src.path, read_dictionary=dicts))
                pf = readers[plain]
                rows = pf.metadata.row_group(g).num_rows
                if rows > _MAX_GROUP_BATCHES * limit:
                    batches: Iterator[pa.RecordBatch] = pf.iter_batches(
                        batch_size=limit, row_groups=[g], columns=self.columns)
                else:
                    batches = iter(pf.read_row_group(g, columns=self.columns)
                                   .combine_chunks().to_batches())
                for rb in batches:
                    yield rb, plain

    def _plain_lookup(self, cell: pa.Array) -> np.ndarray | None:
        """Per row of a plain string ``cell_id``: its code in the table as it is now, -1 for a
        null or absent id (None for a column of another type: the batch goes the ordinary way)."""
        if not (pa.types.is_string(cell.type) or pa.types.is_large_string(cell.type)):
            return None
        offsets, data = string_buffers(cell)
        n = len(cell)
        out = np.empty(n, dtype=np.int32)
        for a in range(0, n, _LOOKUP_ROWS):  # the counting thread appends between two pieces
            b = min(a + _LOOKUP_ROWS, n)
            with self._codes_lock:
                self.codes.lookup_buffers(offsets[a:b + 1], data, out[a:b])
        if cell.null_count:
            out[np.asarray(cell.is_null())] = -1
        return out

    def count(self, arrays: Callable[[int], tuple[np.ndarray, np.ndarray]],
              add: Callable[[pl.DataFrame], None]) -> int:
        """Count the whole feed. ``add(batch)`` counts a batch of the ordinary path; the batches
        counted here are added at the end to ``arrays(n_cells)``, the accumulator's counters
        grown to ``n_cells`` codes. Returns the rows counted here (not those given to ``add``)."""
        start = 1
        counted = 0
        try:
            for rb, codes in _prefetched(self._batches(), 1, name="kqi-decode"):
                n = rb.num_rows
                self.run.rows_read += n
                add_rows(n)  # the console's progress (kqi.progress)
                if self._fast(rb, codes):
                    self.run.rows_accepted += n
                    counted += n
                else:
                    raw = self._raw(rb, start)
                    with self._codes_lock:  # the ordinary path may give ids codes
                        batch = self.chunk(raw)
                    add(batch)
                start += n
        except (pa.ArrowException, OSError) as exc:
            raise InputError(self.src.path, f"cannot read Parquet data ({_one_line(exc)})",
                             line=start) from None
        n_keys = len(self.codes) * fk.N_SERVICES
        tests, good = arrays(len(self.codes))
        tests[:n_keys] += self.counts[0:2 * n_keys:2]
        good[:n_keys] += self.counts[1:2 * n_keys:2]
        return counted

    def _raw(self, rb: pa.RecordBatch, start: int) -> RawChunk:
        """The batch as the ordinary path reads it: typed columns in a frame, text as Coded."""
        n = rb.num_rows
        typed = [c for c in rb.schema.names if c not in (self.id_src, self.svc_src)]
        frame = pl.from_arrow(pa.Table.from_batches([rb.select(typed)]))
        assert isinstance(frame, pl.DataFrame)
        coded = {c: Coded.from_arrow(_encoded(rb.column(c))) for c in (self.id_src, self.svc_src)}
        return RawChunk(frame, np.arange(start, start + n, dtype=np.int64), coded=coded)

    # -- the fused path --------------------------------------------------------------------
    def _svc_map(self, d: pa.Array) -> np.ndarray:
        """Per service dictionary value: its service code, -1 where rows with it need the
        ordinary path. Each row group has a dictionary of its own, nearly always the same few
        values in one of a few orders: a small one is converted once per content (with 128k-row
        groups the conversions took ~0.3 CPU-s of 20 M rows)."""
        k = _key(d)
        if self._svc_cache is not None and self._svc_cache[0] == k:
            return self._svc_cache[2]
        content = tuple(d.to_pylist()) if len(d) <= _SMALL_DICT else None
        out = None if content is None else self._svc_maps.get(content)
        if out is None:
            out = service_map(pl.Series("service", d.cast(pa.large_string()), dtype=pl.String))
            if content is not None and len(self._svc_maps) < _KEPT_MAPS:
                self._svc_maps[content] = out
        self._svc_cache = (k, d, out)
        return out

    def _cell_map(self, d: pa.Array, ix: np.ndarray) -> tuple[np.ndarray, pa.Array | None,
                                                                np.ndarray | None]:
        """Per dictionary value: its code, -2 where rows with it need the ordinary path, -3 not
        resolved yet (no row of the batch has it). New ids (growing codes) get the next codes
        in the order of their first row; returned with their positions, to be appended once
        the batch is counted."""
        k = _key(d)
        if self._cell_cache is not None and self._cell_cache[0] == k:
            cmap = self._cell_cache[2]
        else:
            cmap = self.codes.lookup_arrow(d)
            cmap[cmap < 0] = _UNRESOLVED
            self._cell_cache = (k, d, cmap)
        return self._resolve(d, ix, cmap)

    def _plain_codes(self, cell: pa.Array, codes: np.ndarray) -> tuple[np.ndarray, pa.Array | None]:
        """Per row of a plain string ``cell_id``: its code (``codes`` from the decode worker, its
        absent ids looked up again, then resolved as one dictionary by the rules of
        :meth:`_cell_map`), -1 for a null; and the new ids, to be appended once the batch is
        counted."""
        miss = np.flatnonzero(codes < 0)
        if miss.size == 0:
            return codes, None
        missed = cell.take(pa.array(miss))
        again = self.codes.lookup_arrow(missed)  # ids appended since the worker looked
        hit = again >= 0
        if hit.any():
            codes[miss[hit]] = again[hit]
            miss = miss[~hit]
            if miss.size == 0:
                return codes, None
            missed = missed.filter(pa.array(~hit))
        enc = pc.dictionary_encode(missed)
        ix = _indices(enc)
        if len(enc.dictionary) == 0:  # every missed row is a null
            codes[miss] = -1
            return codes, None
        cmap = np.full(len(enc.dictionary), _UNRESOLVED, dtype=np.int32)
        cmap, new_ids, _ = self._resolve(enc.dictionary, ix, cmap)
        codes[miss] = np.where(ix >= 0, cmap[np.maximum(ix, 0)], np.int32(-1))
        return codes, new_ids

    def _resolve(self, d: pa.Array, ix: np.ndarray, cmap: np.ndarray
                 ) -> tuple[np.ndarray, pa.Array | None, np.ndarray | None]:
        """``cmap`` with its unresolved values (-3) that rows of ``ix`` have resolved: a code, -2,
        or the next new codes (see :meth:`_cell_map`); the new ids and their positions."""
        todo = np.flatnonzero(cmap == _UNRESOLVED)
        if todo.size == 0:
            return cmap, None, None
        first = _first_rows(ix, np.ones(ix.shape[0], dtype=np.bool_), len(d))[todo]
        seen = first < ix.shape[0]
        todo, first = todo[seen], first[seen]
        if todo.size == 0:
            return cmap, None, None
        raw = pl.Series("cell_id", d.take(pa.array(todo)).cast(pa.large_string()), dtype=pl.String)
        clean = convert_string(APP_TESTS.column("cell_id"), raw)
        null = clean.is_null().to_numpy()
        cmap[todo[null]] = _BAD
        keep = pl.Series(~null)
        todo, first, clean, raw = todo[~null], first[~null], clean.filter(keep), raw.filter(keep)
        if todo.size == 0:
            return cmap, None, None
        # only a value that cleaning changed can now hit: the others missed as they are
        changed = (clean != raw).to_numpy()
        known = pl.Series(np.full(len(clean), None), dtype=pl.Int32)
        if changed.any():
            known = known.scatter(np.flatnonzero(changed),
                                  self.codes.lookup(clean.filter(pl.Series(changed))))
        hit = known.is_not_null().to_numpy()
        cmap[todo[hit]] = known.filter(pl.Series(hit)).cast(pl.Int32).to_numpy()
        todo, first, clean = todo[~hit], first[~hit], clean.filter(pl.Series(~hit))
        if todo.size == 0:
            return cmap, None, None
        if self.codes.fixed:
            cmap[todo] = _BAD  # not in the cells table: the ordinary path rejects the rows
            return cmap, None, None
        # new ids: one code per cleaned id, numbered by the first row that has it
        base = np.int32(len(self.codes))
        if clean.n_unique() == len(clean):  # the usual case: no two values clean to one id
            order = np.argsort(first, kind="stable")
            rank = np.empty(order.shape[0], dtype=np.int32)
            rank[order] = np.arange(order.shape[0], dtype=np.int32)
            cmap[todo] = rank + base
            ids = clean.gather(pl.Series(order))
        else:
            new = (pl.DataFrame({"id": clean, "first": first})
                   .group_by("id").agg(pl.col("first").min()).sort("first"))
            joined = clean.to_frame("id").join(new.with_row_index("rank"), on="id", how="left",
                                               maintain_order="left").get_column("rank")
            cmap[todo] = joined.to_numpy().astype(np.int32) + base
            ids = new.get_column("id")
        arr = ids.to_arrow()
        if isinstance(arr, pa.ChunkedArray):  # pragma: no cover
            arr = arr.combine_chunks()
        return cmap, arr, todo

    def _fast(self, rb: pa.RecordBatch, codes: np.ndarray | None) -> bool:
        n = rb.num_rows
        cell = rb.column(self.id_src)
        svc = rb.column(self.svc_src)
        if not isinstance(svc, pa.DictionaryArray):
            return False
        new_pos = None
        if codes is not None:  # plain strings, looked up by the decode worker
            cell_ix, new_ids = self._plain_codes(cell, codes)
            cmap = _DIRECT
        elif isinstance(cell, pa.DictionaryArray):
            cell_ix = _indices(cell)
            cmap, new_ids, new_pos = self._cell_map(cell.dictionary, cell_ix)
        else:
            return False
        svc_ix = _indices(svc)
        smap = self._svc_map(svc.dictionary)
        cols: list[np.ndarray] = []
        for name in JUDGED:
            src = self.judged[name]
            cols.extend(_ro(a) for a in _float_column(None if src is None else rb.column(src), n))
        n_codes = len(self.codes) + (0 if new_ids is None else len(new_ids))
        need = 2 * fk.N_SERVICES * n_codes
        if need > self.counts.shape[0]:  # grown geometrically: O(n) copies in all
            grown = _codes.zeros(max(need, int(self.counts.shape[0] * 1.5)), np.int64)
            grown[:self.counts.shape[0]] = self.counts
            self.counts = grown
        args = (_ro(cell_ix), _ro(cmap), _ro(svc_ix), _ro(smap), *cols, self.lo, self.hi, self.whole,
                self.use_good, self.targets)
        stop = _judge_count(*args, 0, n, 1, *self._bufs, self.counts)
        if stop == n:
            if new_ids is not None:
                with self._codes_lock:
                    self.codes.append_arrow(new_ids)
            return True
        if stop:
            _judge_count(*args, 0, stop, -1, *self._bufs, self.counts)
        if new_pos is not None:
            cmap[new_pos] = _UNRESOLVED  # the ordinary path gives these ids their codes
        return False


def _encoded(arr: pa.Array) -> pa.Array:
    """A text column as a dictionary array (a plain one encoded)."""
    return arr if isinstance(arr, pa.DictionaryArray) else pc.dictionary_encode(arr)


def fused_count(ing: Ingest, run: _Run, codes: CodeTable, chunk: Callable[[RawChunk], pl.DataFrame],
                acc: Any) -> None:
    """Count the feed into ``acc`` (``kqi.flagging.KqiAccumulator``) with :class:`FusedCounter`."""
    counter = FusedCounter(ing, run, codes, chunk, acc.config.kqi)
    counted = counter.count(acc.arrays, acc.add)  # acc.add counts its own rows meanwhile
    acc.rows += counted
