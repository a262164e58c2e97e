"""Numba kernels of the ingest stage.

Arrays and scalars in, arrays out; no validation or DataFrame work (the callers in
:mod:`ingest.core` do that). Inputs may be read-only (zero-copy Arrow buffers).
"""

from __future__ import annotations

import numpy as np

from kqi._numba import kernel


@kernel
def _first_rows(index, ok, n_values):
    """Per value ``v`` in ``0..n_values-1``: the first row ``i`` with ``index[i] == v`` and
    ``ok[i]``; ``len(index)`` where there is none. ``index`` is int32 (-1: a null row, skipped)."""
    n = index.shape[0]
    first = np.full(n_values, n, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        v = index[i]
        if v >= 0 and ok[i]:
            first[v] = i
    return first


@kernel
def _spread(per_value, index, null, out):
    """``out[i] = per_value[index[i]]``, or ``null`` where ``index[i]`` is -1.

    Indices come from a dictionary encoding and lie in ``-1..len(per_value)-1``."""
    for i in range(index.shape[0]):
        j = index[i]
        out[i] = per_value[j] if j >= 0 else null


@kernel
def _screen_floats(values, start, stop, lo, hi, whole):  # noqa: PLR0917 - numba: positional only
    """A quick look at every slot of ``values[start:stop]``, validity ignored: ``(maybe_bad,
    nan)``. ``maybe_bad``: a value other than NaN is infinite, outside ``[lo, hi]`` or (with
    ``whole``) not a whole number; ``nan``: a slot holds a NaN. Either can be a false alarm (a
    null slot holds any value): the exact check (:func:`_check_floats`, which honours the
    validity) then decides. ``(False, False)``: no present value can fail and none is a NaN.

    Reductions that vectorise (min, max, an or of NaN tests; a NaN never replaces an extreme, as
    its comparisons are false): ~0.5-0.7 ns a value against ~2-3 for the exact pass. The whole
    number test is a second pass, made only for a ``whole`` column whose extremes pass.
    """
    mn = np.inf
    mx = -np.inf
    nan = np.int64(0)
    for i in range(start, stop):
        v = values[i]
        mn = v if v < mn else mn
        mx = v if v > mx else mx
        nan |= np.int64(v != v)  # noqa: PLR0124 - the NaN test
    if mn < lo or mx > hi or mn == -np.inf or mx == np.inf:
        return True, nan != 0
    if not whole:
        return False, nan != 0
    frac = np.int64(0)
    for i in range(start, stop):
        v = values[i]
        frac |= np.int64(v == v) & np.int64(np.floor(v) != v)  # noqa: PLR0124 - NaN test
    return frac != 0, nan != 0


@kernel
def _check_floats(values, valid, start, stop, lo, hi, whole, out_valid):  # noqa: PLR0917 - numba: positional only
    """One pass over the present values of ``values[start:stop]``: whether each is within
    ``[lo, hi]``, finite and (with ``whole``) a whole number, with NaN counted as missing.

    ``valid`` is the Arrow validity bitmap of ``values`` (bit ``i & 7`` of byte ``i >> 3``,
    counted from ``values[0]``). ``out_valid`` (uint8, ``(stop - start + 7) // 8`` bytes) receives
    the validity of the range from bit 0 with every NaN cleared (padding bits clear). Returns
    ``(bad, nans)``: bad = a present non-NaN value fails (an infinity, out of range, not whole);
    nans = a present NaN.
    """
    # branch-free: eight values make one byte of bits (a fixed trip count: it unrolls and
    # vectorises), then one byte of the validity masks them. A loop that tests bits per value
    # runs 3-10x slower on randomly missing values. A value behind a clear bit is never trusted.
    not_whole = np.int64(not whole)
    bad = np.int64(0)
    nans = np.int64(0)
    n = stop - start
    for j in range((n + 7) >> 3):
        base = start + j * 8
        m = min(8, n - j * 8)
        keep = np.int64(0)
        fail = np.int64(0)
        nan = np.int64(0)
        if m == 8:
            for b in range(8):
                v = values[base + b]
                isnan = np.int64(v != v)  # noqa: PLR0124 - the branch-free NaN test
                ok = (np.int64(v >= lo) & np.int64(v <= hi) & np.int64(abs(v) < np.inf)
                      & (np.int64(np.floor(v) == v) | not_whole))
                keep |= (isnan ^ 1) << b
                fail |= ((ok ^ 1) & (isnan ^ 1)) << b
                nan |= isnan << b
        else:
            for b in range(m):
                v = values[base + b]
                isnan = np.int64(v != v)  # noqa: PLR0124 - the branch-free NaN test
                ok = (np.int64(v >= lo) & np.int64(v <= hi) & np.int64(abs(v) < np.inf)
                      & (np.int64(np.floor(v) == v) | not_whole))
                keep |= (isnan ^ 1) << b
                fail |= ((ok ^ 1) & (isnan ^ 1)) << b
                nan |= isnan << b
        # the validity bits of rows base..base+7, from any bit offset
        k = base >> 3
        sh = base & 7
        vb = np.int64(valid[k]) >> sh
        if sh and (base + 8 - sh) < stop:
            vb |= np.int64(valid[k + 1]) << (8 - sh)
        vb &= (1 << m) - 1
        bad |= fail & vb
        nans |= nan & vb
        out_valid[j] = np.uint8(keep & vb)
    return bad != 0, nans != 0


@kernel
def _count_byte(buf, byte):
    """How many times ``byte`` occurs in the uint8 array ``buf``."""
    n = 0
    for i in range(buf.shape[0]):
        n += buf[i] == byte
    return n



#: an empty slot of a pair hash set (:func:`_mark_repeats`); no pair may start with it
EMPTY_PAIR = np.iinfo(np.int64).min


@kernel(inline=True)
def _mix64(h):
    """splitmix64's finaliser: a bijection of uint64 whose every output bit depends on every input
    bit (the project's one 64-bit mixer: the pair hash, the cell-id hash of ``ingest._codes``)."""
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


@kernel
def _pair_hash(x, y):
    """A well-mixed 64-bit hash of a pair of int64 (:func:`_mix64` over both)."""
    return _mix64(np.uint64(x) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(y))


@kernel
def _mark_repeats(a, b, ok, table, repeat):
    """Mark the rows whose ``(a[i], b[i])`` pair was seen before, in earlier calls or earlier
    rows of this one; only rows with ``ok[i]`` take part (seen, or marked).

    ``table`` (int64, shape ``(size, 2)``, ``size`` a power of two, empty slots holding
    :data:`EMPTY_PAIR` in column 0) is an open-addressing hash set of pairs with linear probing,
    kept by the caller between calls and sized so it stays at most half full
    (:func:`_rehash_pairs`); a pair and its slot share a cache line. ``repeat[i]`` is set to
    True for a repeat, else left as it is. Returns how many pairs were added.
    """
    mask = np.uint64(table.shape[0] - 1)
    empty = np.int64(EMPTY_PAIR)
    added = 0
    for i in range(a.shape[0]):
        if not ok[i]:
            continue
        x = np.int64(a[i])
        y = np.int64(b[i])
        h = _pair_hash(x, y)
        s = np.int64(h & mask)
        while True:
            k = table[s, 0]
            if k == empty:
                table[s, 0] = x
                table[s, 1] = y
                added += 1
                break
            if k == x and table[s, 1] == y:
                repeat[i] = True
                break
            s = np.int64((np.uint64(s) + np.uint64(1)) & mask)
    return added


@kernel
def _rehash_pairs(table, new):
    """Insert every pair of one hash set (see :func:`_mark_repeats`) into an empty larger one."""
    mask = np.uint64(new.shape[0] - 1)
    empty = np.int64(EMPTY_PAIR)
    for i in range(table.shape[0]):
        x = table[i, 0]
        if x == empty:
            continue
        y = table[i, 1]
        h = _pair_hash(x, y)
        s = np.int64(h & mask)
        while new[s, 0] != empty:
            s = np.int64((np.uint64(s) + np.uint64(1)) & mask)
        new[s, 0] = x
        new[s, 1] = y


@kernel
def _dense_index(b, keys, slots, count, out):
    """Per row, the dense index of ``b[i]`` among the distinct values met so far (in earlier
    calls or earlier rows of this one), a new value taking the next index, ``count``.

    ``keys`` (int64) and ``slots`` (int64, -1 for an empty slot, else the index of the key in
    ``keys``), one power-of-two length, are an open-addressing hash map with linear probing kept
    by the caller between calls. A new value is added only while the map stays at most half
    full: the call stops at the first row whose value would fill it more. ``out[i]`` receives
    each done row's index. Returns ``(rows done, count)``: the caller grows the map and goes on
    from that row.
    """
    mask = np.uint64(keys.shape[0] - 1)
    limit = keys.shape[0] >> 1
    for i in range(b.shape[0]):
        x = np.int64(b[i])
        s = np.int64(_mix64(np.uint64(x)) & mask)
        while True:
            j = slots[s]
            if j < 0:
                if count >= limit:
                    return i, count
                keys[s] = x
                slots[s] = count
                out[i] = count
                count += 1
                break
            if keys[s] == x:
                out[i] = j
                break
            s = np.int64((np.uint64(s) + np.uint64(1)) & mask)
    return b.shape[0], count


@kernel
def _mark_bits(key, ok, bits, repeat):
    """Mark the rows whose ``key[i]`` (an index into the bit set ``bits``, uint8, bit ``k & 7``
    of byte ``k >> 3``) was set before, in earlier calls or earlier rows of this one, and set the
    others' bits; only rows with ``ok[i]`` take part. ``repeat[i]`` is set to True for a
    repeat, else left as it is. Returns how many bits were set."""
    added = 0
    for i in range(key.shape[0]):
        if not ok[i]:
            continue
        k = key[i]
        byte = k >> 3
        m = np.uint8(1 << (k & 7))
        if bits[byte] & m:
            repeat[i] = True
        else:
            bits[byte] |= m
            added += 1
    return added
