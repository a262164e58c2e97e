"""Numba kernels of the ingest stage.

Arrays and scalars in, arrays out; no validation or DataFrame work (the callers in
:mod:`ingest.core` do that). Inputs may be read-only (zero-copy Arrow buffers).
"""

from __future__ import annotations

import math

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
def _all_pass(values, valid, start, stop, lo, hi, whole):  # noqa: PLR0917 - numba: positional only
    """Whether every present value of ``values[start:stop]`` is finite, within ``[lo, hi]`` and,
    with ``whole``, a whole number. ``valid`` is the Arrow validity bitmap of ``values`` (bit
    ``i & 7`` of byte ``i >> 3``, counted from ``values[0]``)."""
    # branch-free in the loop (it vectorises); a value behind a clear bit is undefined but masked
    bad = 0
    if whole:
        for i in range(start, stop):
            v = values[i]
            ok = (v >= lo) & (v <= hi) & math.isfinite(v) & (np.floor(v) == v)  # NaN/inf fail
            bad |= ((valid[i >> 3] >> (i & 7)) & 1) & (1 - np.uint8(ok))
    else:
        for i in range(start, stop):
            v = values[i]
            ok = (v >= lo) & (v <= hi) & math.isfinite(v)
            bad |= ((valid[i >> 3] >> (i & 7)) & 1) & (1 - np.uint8(ok))
    return bad == 0


@kernel
def _count_byte(buf, byte):
    """How many times ``byte`` occurs in the uint8 array ``buf``."""
    n = 0
    for i in range(buf.shape[0]):
        n += buf[i] == byte
    return n
