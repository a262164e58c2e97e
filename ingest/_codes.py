# ruff: noqa: PLR0917
"""cell_id -> cell_code: an append-only hash table of the ids, looked up once per distinct value.

The app-test feed names cells by text; a Parquet row group holds tens of thousands of distinct
ids (hundreds of thousands in a large network) in its dictionary. :class:`CodeTable` maps a whole
dictionary to codes in one kernel pass over its bytes, and new ids are appended (their codes are
the next integers) without rebuilding anything: the cost is per distinct value and per row
group, not per row, and does not grow with the ids already known.

The kernels (open addressing, FNV-1a over the UTF-8 bytes) take Arrow's string layout as arrays:
``offsets`` (int64, ``n + 1``) and ``data`` (uint8). The plain reference is a Python dict
(``tests/reference.py``, ``ref_code_lookup``).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from kqi._numba import kernel

_EMPTY = np.int64(-1)


@kernel
def _fnv(data, start, stop):
    """FNV-1a 64 of ``data[start:stop]``, finished with murmur3's fmix64 (FNV's low bits, the
    ones a power-of-two table uses, mix poorly on ids that differ in a digit or two)."""
    h = np.uint64(0xCBF29CE484222325)
    for i in range(start, stop):
        h = (h ^ np.uint64(data[i])) * np.uint64(0x100000001B3)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@kernel
def _find(data, start, stop, h, slots, koff, kbuf):
    """The slot of the key ``data[start:stop]`` (hash ``h``). A slot holds ``-1`` (empty: where
    the key would go) or ``(h >> 33) << 32 | code`` (non-negative): the hash's top half is compared before the
    key's bytes are read, so a probe costs one memory access, not three."""
    mask = slots.shape[0] - 1
    s = np.int64(h & np.uint64(mask))
    top = np.int64(h >> np.uint64(33))
    n = stop - start
    while True:
        e = slots[s]
        if e < 0:
            return s
        if (e >> 32) == top:
            c = e & 0xFFFFFFFF
            a = koff[c]
            if koff[c + 1] - a == n:
                same = True
                for k in range(n):
                    if kbuf[a + k] != data[start + k]:
                        same = False
                        break
                if same:
                    return s
        s = (s + 1) & mask


@kernel
def _lookup(offsets, data, slots, koff, kbuf, out):
    """``out[i]`` = code of string ``i`` (``data[offsets[i]:offsets[i + 1]]``), -1 when absent."""
    for i in range(offsets.shape[0] - 1):
        a = offsets[i]
        b = offsets[i + 1]
        e = slots[_find(data, a, b, _fnv(data, a, b), slots, koff, kbuf)]
        out[i] = np.int32(-1) if e < 0 else np.int32(e & 0xFFFFFFFF)


@kernel
def _insert(offsets, data, n_keys, slots, hashes, koff, kbuf):
    """Append the strings (absent from the table, distinct) as codes ``n_keys, n_keys + 1, ...``;
    the arrays have room (the caller grew them). Returns the new number of keys."""
    used = koff[n_keys]
    for i in range(offsets.shape[0] - 1):
        a = offsets[i]
        b = offsets[i + 1]
        h = _fnv(data, a, b)
        s = _find(data, a, b, h, slots, koff, kbuf)
        slots[s] = (np.int64(h >> np.uint64(33)) << 32) | n_keys
        hashes[n_keys] = h
        for k in range(b - a):
            kbuf[used + k] = data[a + k]
        used += b - a
        n_keys += 1
        koff[n_keys] = used
    return n_keys


@kernel
def _rehash(hashes, n_keys, slots):
    """Place codes ``0..n_keys-1`` into the empty table ``slots`` by their hashes."""
    mask = slots.shape[0] - 1
    for c in range(n_keys):
        h = hashes[c]
        s = np.int64(h & np.uint64(mask))
        while slots[s] >= 0:
            s = (s + 1) & mask
        slots[s] = (np.int64(h >> np.uint64(33)) << 32) | c


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
        self._slots = np.full(1024, _EMPTY, dtype=np.int64)
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
        _lookup(offsets, data, self._slots, self._koff, self._kbuf, out)
        if arr.null_count:
            out[np.asarray(arr.is_null())] = -1
        return out

    def append_arrow(self, arr: pa.Array) -> None:
        """Append ids (distinct, not null, none in the table) with the next codes, in order."""
        offsets, data = string_buffers(arr)
        k = len(arr)
        if k == 0:
            return
        self._reserve(k, int(offsets[-1] - offsets[0]))
        self._n = int(_insert(offsets, data, self._n, self._slots, self._hashes, self._koff,
                              self._kbuf))
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
        if 2 * need > self._slots.shape[0]:  # load factor at most 1/2
            size = self._slots.shape[0]
            while 2 * need > size:
                size *= 2
            self._slots = np.full(size, _EMPTY, dtype=np.int64)
            _rehash(self._hashes, self._n, self._slots)

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
