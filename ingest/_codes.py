# ruff: noqa: PLR0917
"""cell_id -> cell_code: an append-only hash table of the ids, looked up once per distinct value.

The app-test feed names cells by text; a Parquet row group holds tens of thousands of distinct
ids (hundreds of thousands in a large network) in its dictionary. :class:`CodeTable` maps a whole
dictionary to codes in one kernel pass over its bytes, and new ids are appended (their codes are
the next integers) without rebuilding anything: the cost is per distinct value and per row
group, not per row, and does not grow with the ids already known.

The kernels (open addressing with linear probing; the hash folds the UTF-8 bytes eight at a time
through splitmix64's finaliser) take Arrow's string layout as arrays: ``offsets`` (int64,
``n + 1``) and ``data`` (uint8). A slot is a 32-byte row in one cache line: tag (length and hash
bits), code and the id's first 24 bytes, so a lookup of an id up to 24 bytes (every cell id seen
in operators' exports) reads one cache line of the table and no other memory; the ids' bytes are
also kept in code order (``koff``/``kbuf``) for :attr:`CodeTable.ids` and longer ids. The plain
reference is a Python dict (``tests/reference.py``, ``ref_code_lookup``).
"""

from __future__ import annotations

import contextlib
import mmap

import numpy as np
import polars as pl
import pyarrow as pa

from kqi._numba import kernel

from ._kernels import _mix64

#: an empty slot (column 0 of a table row); a used one holds ``tag << 32 | code`` (tag < 2**31)
_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)
#: the unused ``out`` of an insert (:func:`_place`)
_NO_OUT = np.empty(0, dtype=np.int32)
#: bytes of a key stored in its slot: an id up to this long is compared without leaving the slot
INLINE = 24


@kernel(inline=True)
def _words(data, a, b):
    """The key ``data[a:b]``: its first :data:`INLINE` bytes as three little-endian words (zero
    padded), its slot's tag (``tag << 32``) and its hash (the length and the words, then any
    further bytes, folded through ``_mix64``, the splitmix64 finaliser)."""
    n = b - a
    w0 = np.uint64(0)
    w1 = np.uint64(0)
    w2 = np.uint64(0)
    for k in range(min(n, INLINE)):
        v = np.uint64(data[a + k]) << np.uint64(8 * (k & 7))
        if k < 8:
            w0 |= v
        elif k < 16:
            w1 |= v
        else:
            w2 |= v
    h = _mix64(w0 ^ (np.uint64(n) << np.uint64(56)))
    if n > 8:
        h = _mix64(h ^ w1)
    if n > 16:
        h = _mix64(h ^ w2)
    if n > INLINE:
        t = np.uint64(0xCBF29CE484222325)
        for k in range(a + INLINE, b):
            t = (t ^ np.uint64(data[k])) * np.uint64(0x100000001B3)
        h = _mix64(h ^ t)
    # a slot's tag (bits 32-62): the key's length (up to 255) and 23 bits of its hash
    key = ((np.uint64(min(n, 255)) << np.uint64(23)) | (h >> np.uint64(41))) << np.uint64(32)
    return w0, w1, w2, key, h


@kernel(inline=True)
def _probe(table, w0, w1, w2, key, h, data, a, b, koff, kbuf):
    """The row of ``table`` that holds the key ``data[a:b]`` (words and hash from
    :func:`_words`), or the empty row where it would go. A row is ``tag << 32 | code`` and the
    key's first :data:`INLINE` bytes: tag and words decide a key up to that long in one cache
    line; a longer one's further bytes are compared through ``koff``/``kbuf``."""
    mask = np.uint64(table.shape[0] - 1)
    s = np.int64(h & mask)
    while True:
        e = table[s, 0]
        if e == _EMPTY:
            return s
        if ((e & np.uint64(0xFFFFFFFF00000000)) == key and table[s, 1] == w0
                and table[s, 2] == w1 and table[s, 3] == w2):
            if b - a <= INLINE:
                return s
            c = np.int64(e & np.uint64(0xFFFFFFFF))
            o = koff[c]
            if koff[c + 1] - o == b - a:
                same = True
                for k in range(INLINE, b - a):
                    if kbuf[o + k] != data[a + k]:
                        same = False
                        break
                if same:
                    return s
        s = np.int64((np.uint64(s) + np.uint64(1)) & mask)


@kernel
def _place(offsets, data, table, koff, kbuf, insert, n_keys, hashes, out):
    """Look up or insert the strings ``data[offsets[i]:offsets[i + 1]]``: one kernel for both
    (one compile on a first run instead of two; ``insert`` is the same for every row, so the
    branch costs nothing in the loop).

    Look up (``insert`` False): ``out[i]`` = code of string ``i``, -1 when absent (``n_keys`` and
    ``hashes`` unused). Insert (``insert`` True): place the strings (absent from the table,
    distinct; their bytes already appended to ``koff``/``kbuf`` as codes ``n_keys, n_keys + 1,
    ...``) into the table, which has room, and their hashes into ``hashes`` (``out`` unused)."""
    for i in range(offsets.shape[0] - 1):
        a = offsets[i]
        b = offsets[i + 1]
        w0, w1, w2, key, h = _words(data, a, b)
        s = _probe(table, w0, w1, w2, key, h, data, a, b, koff, kbuf)
        if insert:
            table[s, 0] = key | np.uint64(n_keys + i)
            table[s, 1] = w0
            table[s, 2] = w1
            table[s, 3] = w2
            hashes[n_keys + i] = h
        else:
            e = table[s, 0]
            out[i] = np.int32(-1) if e == _EMPTY else np.int32(e & np.uint64(0xFFFFFFFF))


@kernel
def _rehash(old, hashes, new):
    """Move every row of the table ``old`` into the empty larger table ``new``."""
    mask = np.uint64(new.shape[0] - 1)
    for r in range(old.shape[0]):
        e = old[r, 0]
        if e == _EMPTY:
            continue
        s = np.int64(hashes[np.int64(e & np.uint64(0xFFFFFFFF))] & mask)
        while new[s, 0] != _EMPTY:
            s = np.int64((np.uint64(s) + np.uint64(1)) & mask)
        for k in range(4):
            new[s, k] = old[r, k]


#: an array of at least this many bytes that is read at random (the code table, the counters of
#: a large network) is asked for transparent huge pages: one TLB entry maps 2 MiB instead of 4 KiB
#: (a 500,000-id table is 32 MiB; its lookups 1.6 -> 1.25 CPU-s for 20 M rows)
HUGE_MIN = 4 << 20
_HUGE_PAGE = 2 << 20


def zeros(n: int, dtype: type | np.dtype) -> np.ndarray:
    """``np.zeros(n, dtype)``; from :data:`HUGE_MIN` bytes on, anonymous memory aligned to and
    advised for huge pages where the system has them (zero-filled as the kernel maps it)."""
    dt = np.dtype(dtype)
    nbytes = n * dt.itemsize
    if nbytes < HUGE_MIN or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.zeros(n, dtype=dt)
    m = mmap.mmap(-1, nbytes + _HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    raw = np.frombuffer(m, dtype=np.uint8)  # the array keeps the mapping alive
    skip = -raw.ctypes.data % _HUGE_PAGE
    with contextlib.suppress(OSError):  # no huge pages here: ordinary pages
        m.madvise(mmap.MADV_HUGEPAGE, skip, nbytes)
    return raw[skip:skip + nbytes].view(dt)


def _table(size: int) -> np.ndarray:
    """An empty table of ``size`` rows (a power of two) of four uint64, each row in one 64-byte
    cache line (the buffer aligned to 64 bytes; a large one on huge pages, see :func:`zeros`)."""
    if size * 32 >= HUGE_MIN:
        buf = zeros(size * 4, np.uint64)
        buf[:] = _EMPTY
        return buf.reshape(size, 4)
    buf = np.full(size * 4 + 8, _EMPTY, dtype=np.uint64)
    skip = (-buf.ctypes.data % 64) // 8
    return buf[skip:skip + size * 4].reshape(size, 4)


def string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64 ``len + 1``, data uint8) of an Arrow string / large_string array, zero-copy
    for the data; null entries read as empty strings (callers treat them apart)."""
    if pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.large_string())
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise TypeError(f"not a string array: {arr.type}")
    n = len(arr)
    bufs = arr.buffers()
    odt = np.int32 if pa.types.is_string(arr.type) else np.int64
    if bufs[1] is None:
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(bufs[1], dtype=odt, count=arr.offset + n + 1)[arr.offset:]
    data = (np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size
            else np.zeros(0, dtype=np.uint8))
    return offsets.astype(np.int64), data


class CodeTable:
    """cell_id -> cell_code (int32), fixed (from the cells table) or growing (codes from the feed).

    The interface of ``ingest.core._CodeMap`` (``fixed``, ``ids``, ``add``, ``lookup``) and, for
    the row-group path, :meth:`lookup_arrow` / :meth:`append_arrow` on Arrow strings.
    """

    def __init__(self, ids: pl.Series | None) -> None:
        self.fixed = ids is not None
        self._n = 0
        self._table = _table(1024)
        self._hashes = np.zeros(512, dtype=np.uint64)
        self._koff = np.zeros(513, dtype=np.int64)
        self._kbuf = np.zeros(4096, dtype=np.uint8)
        self._ids: pl.Series | None = None
        if ids is not None and len(ids):
            s = ids.cast(pl.String)
            if s.null_count() or s.n_unique() != len(s):
                raise ValueError("cell ids must be distinct and not null")
            self.append_arrow(_arrow(s))

    def __len__(self) -> int:
        return self._n

    # -- Arrow strings ---------------------------------------------------------------------
    def lookup_arrow(self, arr: pa.Array) -> np.ndarray:
        """Code of each string of ``arr`` (int32, -1 where absent or null)."""
        offsets, data = string_buffers(arr)
        out = np.empty(len(arr), dtype=np.int32)
        self.lookup_buffers(offsets, data, out)
        if arr.null_count:
            out[np.asarray(arr.is_null())] = -1
        return out

    def lookup_buffers(self, offsets: np.ndarray, data: np.ndarray, out: np.ndarray) -> None:
        """``out[i]`` = code of string ``i`` of :func:`string_buffers`' layout (``offsets`` int64,
        ``len(out) + 1``; ``data`` uint8), -1 where absent; nulls are not told apart."""
        _place(offsets, data, self._table, self._koff, self._kbuf, False, 0, self._hashes, out)

    def append_arrow(self, arr: pa.Array) -> None:
        """Append ids (distinct, not null, none in the table) with the next codes, in order."""
        offsets, data = string_buffers(arr)
        k = len(arr)
        if k == 0:
            return
        self._reserve(k, int(offsets[-1] - offsets[0]))
        n = self._n
        used = int(self._koff[n])
        self._kbuf[used:used + int(offsets[-1] - offsets[0])] = data[offsets[0]:offsets[-1]]
        self._koff[n + 1:n + k + 1] = offsets[1:] - offsets[0] + used
        _place(offsets, data, self._table, self._koff, self._kbuf, True, n, self._hashes, _NO_OUT)
        self._n = n + k
        self._ids = None

    def _reserve(self, keys: int, nbytes: int) -> None:
        need = self._n + keys
        if need + 1 > self._koff.shape[0]:
            cap = max(need + 1, 2 * self._koff.shape[0])
            self._koff = _grown(self._koff, cap)
            self._hashes = _grown(self._hashes, cap)
        used = int(self._koff[self._n])
        if used + nbytes > self._kbuf.shape[0]:
            self._kbuf = _grown(self._kbuf, max(used + nbytes, 2 * self._kbuf.shape[0]))
        if 2 * need > self._table.shape[0]:  # load factor at most 1/2
            size = self._table.shape[0]
            while 2 * need > size:
                size *= 2
            new = _table(size)
            if self._n:  # an empty table has nothing to move: a run whose code table is filled
                # by one append (the cells table's ids) never compiles the rehash kernel
                _rehash(self._table, self._hashes, new)
            self._table = new

    # -- the _CodeMap interface ------------------------------------------------------------
    @property
    def ids(self) -> pl.Series:
        """``cell_id`` of each code (position = code)."""
        if self._ids is None:
            n = self._n
            used = int(self._koff[n])
            arr = pa.Array.from_buffers(pa.large_string(), n, [
                None, pa.py_buffer(self._koff[:n + 1].copy()), pa.py_buffer(self._kbuf[:used].copy())])
            self._ids = pl.Series("cell_id", arr, dtype=pl.String)
        return self._ids

    def add(self, ids: pl.Series) -> None:
        """Give codes to ids not seen before, in first-appearance order."""
        new = ids.cast(pl.String).drop_nulls().unique(maintain_order=True)
        if not len(new):
            return
        arr = _arrow(new)
        fresh = self.lookup_arrow(arr) < 0
        if fresh.any():
            self.append_arrow(arr.filter(pa.array(fresh)))

    def lookup(self, ids: pl.Series) -> pl.Series:
        """Int32 code per id; null for a null or unknown id."""
        codes = self.lookup_arrow(_arrow(ids.cast(pl.String)))
        s = pl.Series("cell_code", codes, dtype=pl.Int32)
        return s.set(s < 0, None) if (codes < 0).any() else s


def _arrow(s: pl.Series) -> pa.Array:
    arr = s.to_arrow()
    if isinstance(arr, pa.ChunkedArray):  # pragma: no cover - one chunk from a rechunked series
        arr = arr.combine_chunks()
    return arr


def _grown(a: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=a.dtype)
    out[:a.shape[0]] = a
    return out
