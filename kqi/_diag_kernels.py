"""Numba kernels behind :mod:`kqi.diagnosis`: each cell's traffic per hour of the day, and each
cell's evidence figures (:data:`kqi.diagnosis.KPI_AGGREGATES`) from its hourly KPI rows.

They take arrays and scalars only and do no validation. Each works on the codes of one range,
so that worker threads given disjoint ranges write disjoint parts of the outputs and each
code's rows are still added in row order (the same figures on any number of threads). The
wrappers (:func:`kqi.diagnosis._hour_traffic`, :func:`kqi.diagnosis._kpi_aggregates`) check
that no code or hour is missing, negative or out of range (the outputs are indexed by them,
unchecked) and turn the KPI columns into the arrays used here.
"""

from __future__ import annotations

import numpy as np

from kqi._numba import kernel


@kernel(inline=True)
def _add(acc, comp, j, v):
    """Add ``v`` to the compensated sum ``acc[j] + comp[j]`` (Neumaier's: the exact sum
    correctly rounded but under extreme cancellation, so it does not depend on the order of
    the values). Callers compile without fastmath, which would fold ``comp`` to zero."""
    s = acc[j]
    t = s + v
    if np.isfinite(t):  # past an infinite value the sum is that infinity (or NaN), uncorrected
        if abs(s) >= abs(v):
            comp[j] += (s - t) + v
        else:
            comp[j] += (v - t) + s
    acc[j] = t


@kernel(exact=True)
def _hour_traffic_block(codes_from, codes_to, code, hour, prb, users, offset, rows, n_prb, sum_prb, n_users, sum_users, comp, first):  # noqa: PLR0917 - a kernel takes no keyword-only parameters
    """Add one block of KPI rows (the file's rows ``offset`` on), those of the codes
    ``codes_from <= code < codes_to`` (one worker's share), to the counts per
    ``code * 24 + hour`` (the flat ``n_codes x 24`` outputs, zeroed by the caller before the
    first block): the rows, and of PRB utilisation (``prb``) and RRC users (``users``) each the
    rows with a figure (not NaN) and their compensated sum (``sum_prb + comp[0]``,
    ``sum_users + comp[1]``: a cell's busiest hours do not depend on the order of the rows);
    per code (``first``, -1 filled by the caller) the index of its first row. Both traffic
    measures are kept: the caller takes PRB, or RRC users for a cell without any PRB figure."""
    comp_prb = comp[0]
    comp_users = comp[1]
    for i in range(code.shape[0]):
        c = code[i]
        if c < codes_from or c >= codes_to:
            continue
        if first[c] < 0:
            first[c] = offset + i
        key = np.int64(c) * 24 + hour[i]
        rows[key] += 1
        if not np.isnan(prb[i]):
            n_prb[key] += 1
            _add(sum_prb, comp_prb, key, prb[i])
        if not np.isnan(users[i]):
            n_users[key] += 1
            _add(sum_users, comp_users, key, users[i])


#: codes of KpiAggregate.how and .window, as the kernels below read them
HOW_MEAN, HOW_QUANTILE, HOW_MIN, HOW_SUM = 0, 1, 2, 3
WINDOW_ALL, WINDOW_BUSY, WINDOW_QUIET = 0, 1, 2


@kernel(inline=True)
def _in_window(window, busy, quiet):
    """Whether a row of these busy and quiet flags is in the ``window`` (a WINDOW_* code)."""
    return window == WINDOW_ALL or (window == WINDOW_BUSY and busy) or (window == WINDOW_QUIET and quiet)


@kernel(exact=True)
def _kpi_accumulate(codes_from, codes_to, code, hour, busy_at, quiet_at, columns, source, how, window, slot, start, count, acc, comp, buf):  # noqa: PLR0917 - a kernel takes no keyword-only parameters
    """Add one block of KPI rows, those of the codes ``codes_from <= c < codes_to`` (one
    worker's share), to the running figures: per code ``c`` and aggregate ``a``
    (``count[c, a]``, ``acc[c, a]``, ``comp[c, a]``, zeroed by the caller before the first
    block) the values in the aggregate's window and not NaN and, by ``how[a]``: their sum
    (HOW_MEAN, HOW_SUM), their minimum (HOW_MIN), or (HOW_QUANTILE) the values themselves, for
    :func:`_kpi_quantiles`: at ``buf[slot[a], start[c] + count[c, a]]``, where ``start[c]``
    leaves room for all of the code's rows.

    A sum is compensated (:func:`_add`): ``acc + comp`` is the exact sum correctly rounded but
    under extreme cancellation, so a figure does not depend on the order of the rows.

    ``columns`` is a tuple of float64 arrays (NaN: missing); aggregate ``a`` reads
    ``columns[source[a]]`` over the rows ``_in_window(window[a], busy, quiet)``, where a row is
    busy (quiet) when ``busy_at`` (``quiet_at``) holds at its ``code * 24 + hour``."""
    n_agg = source.shape[0]
    for i in range(code.shape[0]):
        c = code[i]
        if c < codes_from or c >= codes_to:
            continue
        key = np.int64(c) * 24 + hour[i]
        b = busy_at[key]
        qu = quiet_at[key]
        for a in range(n_agg):
            if not _in_window(window[a], b, qu):
                continue
            v = columns[source[a]][i]
            if np.isnan(v):
                continue
            h = how[a]
            if h == HOW_MIN:
                if count[c, a] == 0 or v < acc[c, a]:
                    acc[c, a] = v
            elif h == HOW_QUANTILE:
                buf[slot[a], start[c] + count[c, a]] = v
            else:
                _add(acc[c], comp[c], a, v)
            count[c, a] += 1


@kernel
def _kpi_quantiles(codes_from, codes_to, how, slot, q, start, count, buf, acc):  # noqa: PLR0917 - a kernel takes no keyword-only parameters
    """Per quantile aggregate ``a`` and code ``codes_from <= c < codes_to``: ``acc[c, a]`` =
    the ``q[a]`` quantile of the ``count[c, a]`` values :func:`_kpi_accumulate` placed at
    ``buf[slot[a], start[c]:]`` (NaN without values), by linear interpolation between the closest ranks as polars'
    ``quantile(q, "linear")`` computes it: ``(i - lo) * (upper - lower) + lower`` at
    ``i = (m - 1) * q``. Reorders those values in place."""
    for a in range(how.shape[0]):
        if how[a] != HOW_QUANTILE:
            continue
        values = buf[slot[a]]
        for c in range(codes_from, codes_to):
            m = count[c, a]
            if m == 0:
                acc[c, a] = np.nan
                continue
            at = (m - 1) * q[a]
            lo = int(at)
            seg = values[start[c]:start[c] + m]
            lower = _select(seg, lo)
            if lo + 1 >= m or at == lo:
                acc[c, a] = lower
                continue
            upper = seg[lo + 1]
            for r in range(lo + 2, m):
                upper = min(upper, seg[r])
            acc[c, a] = lower if lower == upper else (at - lo) * (upper - lower) + lower


@kernel(inline=True)
def _select(a, k):
    """The ``k``-th smallest of ``a`` (no NaN), rearranging ``a`` in place so that no value
    before ``k`` is larger and none after it is smaller (Hoare's selection, median-of-three
    pivot). Hand-written: numba's ``np.partition`` takes ~5 CPU-s to compile."""
    left = 0
    right = a.shape[0] - 1
    while left < right:
        mid = (left + right) // 2
        x, y, z = a[left], a[mid], a[right]
        pivot = max(min(x, y), min(max(x, y), z))
        i = left
        j = right
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            right = j
        elif k >= i:
            left = i
        else:
            break
    return a[k]
