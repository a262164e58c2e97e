# ruff: noqa: PLR0917
"""Numba kernels of the flagging stage: per-test verdicts, per cell x service counts, poor flags.

Every kernel takes arrays and scalars only and does no validation; the typed wrappers in
:mod:`kqi.flagging` check codes and turn polars/Arrow columns into the arrays used here.

Nullable columns arrive as Arrow does them, without a copy: a values array plus a validity
bitmap (``uint8``, bit ``i & 7`` of byte ``i >> 3``, 1 = present, bit offset 0). A value behind a
cleared bit is undefined and never read. Counts are indexed by the dense key
``cell_code * N_SERVICES + service_code``.

Targets are passed as one float64 array in :data:`TARGET_FIELDS` order. Kernels take many
positional arguments (numba kernels take no keyword-only parameters and no DataFrames), hence the
file-wide ``noqa: PLR0917``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kqi._numba import kernel
from kqi.schema import KQI_COLUMNS, SERVICE_KQIS, SERVICES

N_SERVICES = len(SERVICES)
#: order of the KQI columns and of the ``targets`` array the kernels take
TARGET_FIELDS: tuple[str, ...] = KQI_COLUMNS


def target_array(kqi_config: Any) -> np.ndarray:
    """The verdict kernels' ``targets`` (float64, :data:`TARGET_FIELDS` order) of a ``config.kqi``."""
    return np.array([float(getattr(kqi_config.targets, f)) for f in TARGET_FIELDS], dtype=np.float64)
# the branch-free verdict below is written for this layout (k0 browsing; k1, k2 video; k3-k5
# gaming): a change of kqi.schema.SERVICE_KQIS must change the kernel too, and fails here first
if tuple(len(SERVICE_KQIS[s]) for s in SERVICES) != (1, 2, 3):  # pragma: no cover
    raise ImportError("kqi._kernels._verdicts is written for 1, 2 and 3 KQIs per service; "
                      "kqi.schema.SERVICE_KQIS has changed")


@kernel
def _verdicts(svc, succ, succ_v, k0, v0, k1, v1, k2, v2, k3, v3, k4, v4, k5, v5,
              good, good_v, use_good, targets, out):
    """Write each test's verdict (1 good, 0 not) into ``out`` (int8).

    A test is good when it succeeded (a missing ``success`` takes the contract's default, 1) and
    every KQI its service needs is present and at or below its target; a NaN KQI fails too
    (comparisons with NaN are false). With ``use_good``, a present source ``good`` decides.

    Branch-free on purpose: services are mixed row by row, so per-service branches mispredict
    (measured 12-17 ns/row against ~3.5 ns/row for this form). Every row computes all three
    services' verdicts and keeps its own; the bitmap bytes are read once per 8 rows.
    """
    t0 = targets[0]
    t1 = targets[1]
    t2 = targets[2]
    t3 = targets[3]
    t4 = targets[4]
    t5 = targets[5]
    n = svc.shape[0]
    for j in range((n + 7) >> 3):
        vb = v0[j]
        vv = v1[j] & v2[j]
        vg = v3[j] & v4[j] & v5[j]
        sv = succ_v[j]
        gvb = good_v[j]
        for b in range(min(8, n - j * 8)):
            i = j * 8 + b
            s = svc[i]
            okb = ((vb >> b) & 1) & np.uint8(k0[i] <= t0)
            okv = ((vv >> b) & 1) & np.uint8(k1[i] <= t1) & np.uint8(k2[i] <= t2)
            okg = (((vg >> b) & 1) & np.uint8(k3[i] <= t3) & np.uint8(k4[i] <= t4)
                   & np.uint8(k5[i] <= t5))
            g = (okb & np.uint8(s == 0)) | (okv & np.uint8(s == 1)) | (okg & np.uint8(s == 2))
            g &= (((sv >> b) & 1) & np.uint8(succ[i] == 0)) ^ 1
            if use_good:
                gv = (gvb >> b) & 1
                g = (gv & np.uint8(good[i] != 0)) | ((gv ^ 1) & g)
            out[i] = g


@kernel
def _count_verdicts(cell, svc, verdict, day, start, n_cells, tests_out, good_out, dtests_out,
                    dgood_out):
    """Add tests from row ``start`` on (and their verdicts) to ``tests_out``/``good_out`` and,
    where ``day`` has a row per test (its row of the 2-D day x key counts ``dtests_out``/
    ``dgood_out``, -1 = undated), to the day counts too; an empty ``day`` counts the window only.

    Stops at the first row whose cell code is outside ``0..n_cells-1`` or whose service code is
    not a service, and returns its index (``len(cell)`` when every row is counted): the caller
    grows the counters or reports the bad code, so no separate validation pass reads the codes.
    One kernel for both counts (one compile on a first run, one pass over the rows).
    """
    daily = day.shape[0] > 0
    for i in range(start, cell.shape[0]):
        c = np.int64(cell[i])
        s = np.int64(svc[i])
        if c < 0 or c >= n_cells or s < 0 or s >= N_SERVICES:
            return i
        key = c * N_SERVICES + s
        v = verdict[i]
        tests_out[key] += 1
        good_out[key] += v
        if daily and day[i] >= 0:
            dtests_out[day[i], key] += 1
            dgood_out[day[i], key] += v
    return cell.shape[0]


@kernel
def _count_aggregated(cell, svc, tests, good, day, start, n_cells, tests_out, good_out,
                      dtests_out, dgood_out):
    """Add pre-aggregated ``tests``/``good_tests`` rows to the whole-window counts and, where
    ``day`` has a row per input row (-1 = no usable period), to the day counts.

    Stops at the first row with a code outside the counters, as :func:`_count_verdicts` does.
    """
    daily = day.shape[0] > 0
    for i in range(start, cell.shape[0]):
        c = np.int64(cell[i])
        s = np.int64(svc[i])
        if c < 0 or c >= n_cells or s < 0 or s >= N_SERVICES:
            return i
        key = c * N_SERVICES + s
        tests_out[key] += tests[i]
        good_out[key] += good[i]
        if daily and day[i] >= 0:
            dtests_out[day[i], key] += tests[i]
            dgood_out[day[i], key] += good[i]
    return cell.shape[0]


@kernel
def _code_range(codes):
    """(min, max) of an integer code array; (0, -1) when empty."""
    n = codes.shape[0]
    if n == 0:
        return 0, -1
    lo = np.int64(codes[0])
    hi = lo
    for i in range(1, n):
        # min/max, not if/elif: this form vectorizes
        c = np.int64(codes[i])
        lo = min(lo, c)
        hi = max(hi, c)
    return lo, hi


@kernel
def _flag(tests, rate, threshold, min_tests, z, on_upper, low, high, poor, confidence):
    """Wilson bounds, poor flag and confidence for each cell x service.

    ``rate`` = good / tests comes in computed by the caller with exact IEEE division: fastmath
    ``arcp`` may turn a division here into a multiplication by a reciprocal, and a rate of exactly
    the threshold (24/30 = 0.8) must compare equal to it.

    ``poor`` = tests >= min_tests and rate <= threshold (and, when ``on_upper``, the Wilson upper
    bound <= threshold too). ``confidence`` = Phi(|rate - t| * sqrt(n / (t (1 - t)))): the
    one-sided level of the score test that separates the true rate from the threshold on the
    side the observed rate lies (0.5 at the threshold, towards 1 as evidence grows). It agrees
    with the Wilson interval: the interval at ``z`` excludes ``t`` exactly when confidence
    exceeds Phi(z).
    """
    z2 = z * z
    for i in range(tests.shape[0]):
        n = np.float64(tests[i])
        t = threshold[i]
        p = rate[i]
        if tests[i] <= 0:
            low[i] = 0.0
            high[i] = 1.0
            poor[i] = False
            confidence[i] = 0.5
            continue
        denom = 1.0 + z2 / n
        centre = (p + z2 / (2.0 * n)) / denom
        half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
        # the bounds are exactly 0 at p = 0 and 1 at p = 1; rounding would leave ~1e-17 off
        low[i] = 0.0 if p <= 0.0 else max(0.0, centre - half)
        high[i] = 1.0 if p >= 1.0 else min(1.0, centre + half)
        flagged = tests[i] >= min_tests and p <= t
        if on_upper and high[i] > t:
            flagged = False
        poor[i] = flagged
        var = t * (1.0 - t)
        if p == t:
            confidence[i] = 0.5
        elif var <= 0.0:
            confidence[i] = 1.0
        else:
            confidence[i] = 0.5 * (1.0 + math.erf(abs(p - t) * math.sqrt(n / var) / math.sqrt(2.0)))


@kernel
def _stream_sum(x):
    """Sum a float64 array: the streaming read used to measure memory bandwidth."""
    acc0 = 0.0
    acc1 = 0.0
    acc2 = 0.0
    acc3 = 0.0
    n = x.shape[0] - x.shape[0] % 4
    for i in range(0, n, 4):
        acc0 += x[i]
        acc1 += x[i + 1]
        acc2 += x[i + 2]
        acc3 += x[i + 3]
    for i in range(n, x.shape[0]):
        acc0 += x[i]
    return acc0 + acc1 + acc2 + acc3
