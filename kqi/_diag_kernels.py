"""Numba kernel behind :mod:`kqi.diagnosis`: each cell's traffic per hour of the day.

It takes arrays and scalars only and does no validation; the wrapper
(:func:`kqi.diagnosis._hour_traffic`) checks that no code or hour is missing, negative or out
of range (the outputs are indexed by them, unchecked) and turns the KPI columns into the arrays
used here.
"""

from __future__ import annotations

import numpy as np

from kqi._numba import kernel


@kernel
def _hour_traffic_counts(code, hour, prb, users, has_prb, rows, n_valid, total, first):  # noqa: PLR0917 - a kernel takes no keyword-only parameters
    """Per ``code * 24 + hour`` (the flat ``n_codes x 24`` outputs, zeroed by the caller): the
    rows, the rows with a traffic figure and the sum of that figure, added in row order; per
    code (``first``, -1 filled by the caller) the index of its first row.

    A cell's traffic is its PRB utilisation (``prb``), or its RRC users (``users``) when the
    cell has no PRB figure in any row; NaN is a missing figure. ``has_prb`` (bool, one per code,
    False filled by the caller) receives whether the code has a PRB figure: allocated by the
    caller, as an array made here (``np.zeros``) compiles numba's allocation helpers with the
    kernel (~0.2 CPU-s more on a first run)."""
    n = code.shape[0]
    for i in range(n):
        if not np.isnan(prb[i]):
            has_prb[code[i]] = True
    for i in range(n):
        c = code[i]
        if first[c] < 0:
            first[c] = i
        key = np.int64(c) * 24 + hour[i]
        rows[key] += 1
        t = prb[i] if has_prb[c] else users[i]
        if not np.isnan(t):
            n_valid[key] += 1
            total[key] += t
