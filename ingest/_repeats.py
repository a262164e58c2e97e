"""Repeated keys across a whole feed, for keys of a code and an integer (``cell_code``, ``ts``).

The KPI feed's duplicate check (a second row for the same cell and hour) used to join every
chunk's keys against all the keys accepted before it, as strings: most of the time of reading a
large KPI file. Here each distinct ``b`` (a timestamp) gets a dense index in order of first
appearance (a hash map of the values, :func:`_dense_index`), and a pair is one bit at ``b_index * n_codes + code`` of a bit set kept for the
feed (an hourly feed of 10,000 cells over 90 days: 2.7 MB); a feed whose ``b`` is nearly unique
per row (so that the bit set would be large and sparse) moves to a hash set of pairs.
"""

from __future__ import annotations

import numpy as np

from kqi._numba import read_only as _read_only

from ._kernels import EMPTY_PAIR, _dense_index, _mark_bits, _mark_repeats, _rehash_pairs

_MIN_SLOTS = 1 << 12
#: the bit set's largest size (bits); beyond it the pairs go to a hash set
MAX_BITS = 1 << 31


class _HashPairs:
    """An open-addressing hash set of int64 pairs (:func:`_mark_repeats`)."""

    def __init__(self) -> None:
        self._table = np.full((_MIN_SLOTS, 2), EMPTY_PAIR, dtype=np.int64)
        self.count = 0

    def repeats(self, a: np.ndarray, b: np.ndarray, ok: np.ndarray, out: np.ndarray) -> None:
        size = self._table.shape[0]
        need = 2 * (self.count + int(ok.sum()))  # at most half full
        if need > size:
            while size < need:
                size *= 2
            new = np.full((size, 2), EMPTY_PAIR, dtype=np.int64)
            _rehash_pairs(self._table, new)
            self._table = new
        self.count += int(_mark_repeats(a, b, ok, self._table, out))


class PairSet:
    """The ``(code, b)`` pairs seen so far in a feed; :meth:`repeats` marks a row whose pair was
    seen in an earlier row (of this chunk or an earlier one). Rows outside ``ok`` neither count
    as seen nor are marked, as :class:`kqi.ingest.core._Duplicates` does.

    Parameters
    ----------
    n_codes
        Codes lie in ``0..n_codes-1`` (the cells table's size); ``None`` when codes are given as
        the feed is read (no bound known ahead): the pairs then go to the hash set from the start.
    """

    def __init__(self, n_codes: int | None) -> None:
        self.n_codes = max(int(n_codes), 1) if n_codes is not None else None
        #: the distinct ``b`` seen so far and the dense index of each: a hash map
        #: (:func:`_dense_index`), and how many it holds
        self._keys = np.zeros(_MIN_SLOTS, dtype=np.int64)
        self._slots = np.full(_MIN_SLOTS, -1, dtype=np.int64)
        self._known = 0
        self._bits: np.ndarray | None = np.zeros(0, dtype=np.uint8) if n_codes is not None else None
        self._hash: _HashPairs | None = None if n_codes is not None else _HashPairs()
        self._count = 0

    def __len__(self) -> int:
        """How many distinct pairs have been seen."""
        return self._count

    def _dense(self, b: np.ndarray) -> np.ndarray:
        """Each value's index among the distinct values seen so far in the feed (a value keeps
        its index; new values get the next ones, in order of first appearance)."""
        b = _read_only(b)
        out = np.empty(len(b), dtype=np.int64)
        done = 0
        while True:
            n, self._known = _dense_index(b[done:], self._keys, self._slots, self._known, out[done:])
            done += int(n)
            if done == len(b):
                return out
            self._grow()

    def _grow(self) -> None:
        """The map of :meth:`_dense` at twice its size, every value keeping its index."""
        used = self._slots >= 0
        known = self._keys[used][np.argsort(self._slots[used], kind="stable")]
        size = 2 * len(self._keys)
        self._keys = np.zeros(size, dtype=np.int64)
        self._slots = np.full(size, -1, dtype=np.int64)
        # inserted in index order, each value gets its own index again
        n, count = _dense_index(_read_only(known), self._keys, self._slots, 0, np.empty(len(known), dtype=np.int64))
        assert n == len(known)
        assert count == len(known)

    def repeats(self, code: np.ndarray, b: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Boolean mask: row ``i`` is ``ok`` and its pair ``(code[i], b[i])`` was seen before.

        ``code``, ``b``: integer arrays of one length, ``code`` within ``0..n_codes-1`` where
        ``ok``; ``ok``: a boolean array of that length.
        """
        code = np.ascontiguousarray(code, dtype=np.int64)
        b = np.ascontiguousarray(b, dtype=np.int64)
        ok = np.ascontiguousarray(ok, dtype=np.bool_)
        if not (len(code) == len(b) == len(ok)):
            raise ValueError("code, b and ok must have one length")
        if ok.any():
            c = code[ok]
            if c.min() < 0 or (self.n_codes is not None and c.max() >= self.n_codes):
                raise ValueError("codes must lie within 0..n_codes-1")
        out = np.zeros(len(code), dtype=np.bool_)
        bi = self._dense(b)
        if self._bits is not None and self.n_codes is not None:
            need_bits = self._known * self.n_codes
            if need_bits <= MAX_BITS:
                if need_bits > 8 * len(self._bits):
                    grown = np.zeros(max((need_bits + 7) // 8, 2 * len(self._bits)), dtype=np.uint8)
                    grown[:len(self._bits)] = self._bits
                    self._bits = grown
                self._count += int(_mark_bits(bi * self.n_codes + code, ok, self._bits, out))
                return out
            self._to_hash()
        assert self._hash is not None
        before = self._hash.count
        self._hash.repeats(code, bi, ok, out)
        self._count += self._hash.count - before
        return out

    def _to_hash(self) -> None:
        """Move the pairs of the bit set to a hash set (too many distinct ``b`` for bits)."""
        assert self._bits is not None
        assert self.n_codes is not None
        keys = np.flatnonzero(np.unpackbits(self._bits, bitorder="little")).astype(np.int64)
        self._hash = _HashPairs()
        sink = np.zeros(len(keys), dtype=np.bool_)
        self._hash.repeats(keys % self.n_codes, keys // self.n_codes, np.ones(len(keys), dtype=np.bool_), sink)
        self._bits = None
