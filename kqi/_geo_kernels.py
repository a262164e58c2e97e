"""Numba kernels behind :mod:`kqi.geo`: great-circle distance, bearing, grid-index queries.

Scalar kernels (callable from other kernels, e.g. ``kqi/_link_kernels.py``)::

    haversine_m(lat1, lon1, lat2, lon2) -> float     # metres on the mean Earth sphere
    bearing_deg(lat1, lon1, lat2, lon2) -> float     # initial bearing, degrees clockwise from N, [0, 360)
    angle_diff_deg(a, b) -> float                    # smallest absolute difference of two bearings, [0, 180]

Array kernels take contiguous 1-D float64 arrays (read-only is fine) and write into ``out``.
The grid kernels take the CSR arrays built by :func:`grid_build` (see :class:`kqi.geo.GridIndex`).
No validation here: the wrappers in :mod:`kqi.geo` check shapes, dtypes and NaNs.
"""

from __future__ import annotations

import math

import numpy as np

from kqi._numba import kernel

#: mean Earth radius (IUGG), metres
EARTH_RADIUS_M = 6_371_008.8
_DEG = math.pi / 180.0


@kernel
def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS84 points (degrees); NaN in, NaN out."""
    p1 = lat1 * _DEG
    p2 = lat2 * _DEG
    dp = p2 - p1
    dl = (lon2 - lon1) * _DEG
    s1 = math.sin(0.5 * dp)
    s2 = math.sin(0.5 * dl)
    h = s1 * s1 + math.cos(p1) * math.cos(p2) * s2 * s2
    # rounding can push h a hair above 1 for antipodal points
    h = min(h, 1.0)
    return 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


@kernel
def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from point 1 to point 2, degrees clockwise from north in [0, 360)."""
    p1 = lat1 * _DEG
    p2 = lat2 * _DEG
    dl = (lon2 - lon1) * _DEG
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    b = math.atan2(y, x) / _DEG
    b = b % 360.0
    # -1e-17 % 360 gives 360.0 in floating point
    if b >= 360.0:
        b -= 360.0
    return b


@kernel
def angle_diff_deg(a: float, b: float) -> float:
    """Smallest absolute difference between two bearings (degrees), in [0, 180]."""
    d = abs(a - b) % 360.0
    return 360.0 - d if d > 180.0 else d


@kernel
def haversine_arr(lat1, lon1, lat2, lon2, out):
    """``out[i] = haversine_m(lat1[i], lon1[i], lat2[i], lon2[i])``."""
    for i in range(out.shape[0]):
        out[i] = haversine_m(lat1[i], lon1[i], lat2[i], lon2[i])


@kernel
def bearing_arr(lat1, lon1, lat2, lon2, out):
    """``out[i] = bearing_deg(lat1[i], lon1[i], lat2[i], lon2[i])``."""
    for i in range(out.shape[0]):
        out[i] = bearing_deg(lat1[i], lon1[i], lat2[i], lon2[i])


# --------------------------------------------------------------------------------------------
# Grid index: points bucketed into (row, col) cells of dlat x dlon degrees, stored as CSR
#   order[offsets[c]:offsets[c + 1]] = indices of the points in cell c = row * ncols + col,
#   ascending within a cell.
# --------------------------------------------------------------------------------------------


@kernel
def grid_build(lat, lon, lat0, lon0, dlat, dlon, nrows, ncols):  # noqa: PLR0917
    """Bucket points into grid cells; returns ``(order, offsets)`` (CSR, counting sort: stable)."""
    n = lat.shape[0]
    ncell = nrows * ncols
    cell = np.empty(n, dtype=np.int64)
    counts = np.zeros(ncell + 1, dtype=np.int64)
    for i in range(n):
        r = math.floor((lat[i] - lat0) / dlat)
        c = math.floor((lon[i] - lon0) / dlon)
        r = min(max(r, 0), nrows - 1)
        c = min(max(c, 0), ncols - 1)
        cell[i] = r * ncols + c
        counts[cell[i] + 1] += 1
    offsets = np.cumsum(counts)
    fill = offsets[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        order[fill[cell[i]]] = i
        fill[cell[i]] += 1
    return order, offsets


@kernel
def _ring_lower_bound(r, dlat, dlon, coslat_min):
    """Lower bound (metres) of the distance from a query to any point in ring ``r``.

    A point in ring r lies at least r - 1 whole cells away along one axis. Along latitude that is
    at least R * (r-1) * dlat; along longitude, with both latitudes within +-Phi,
    hav(d) >= cos(Phi)^2 * hav(dlon), so d >= 2R asin(cos(Phi) sin((r-1) dlon / 2)).
    """
    if r <= 1:
        return 0.0
    a = (r - 1) * dlat * _DEG * EARTH_RADIUS_M
    x = min((r - 1) * dlon * _DEG, math.pi)
    b = 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, coslat_min * math.sin(0.5 * x)))
    return min(a, b)


@kernel
def _insert(best_d, best_i, m, d, idx):
    """Insert (d, idx) into the sorted top list of capacity ``len(best_d)`` holding ``m`` items."""
    k = best_d.shape[0]
    if m == k:
        last = k - 1
        if d > best_d[last] or (d == best_d[last] and idx > best_i[last]):
            return m
        pos = last
    else:
        pos = m
        m += 1
    while pos > 0 and (best_d[pos - 1] > d or (best_d[pos - 1] == d and best_i[pos - 1] > idx)):
        best_d[pos] = best_d[pos - 1]
        best_i[pos] = best_i[pos - 1]
        pos -= 1
    best_d[pos] = d
    best_i[pos] = idx
    return m


@kernel
def grid_knn(plat, plon, order, offsets, lat0, lon0, dlat, dlon, nrows, ncols, max_abs_lat,  # noqa: PLR0917
             qlat, qlon, exclude, k, out_idx, out_dist):
    """k nearest indexed points of each query, sorted by (distance, index).

    Searches rings of grid cells outward from the query's cell, stopping once k points are held
    and the next ring's lower bound exceeds the k-th distance, or every point has been seen.
    ``exclude[q]`` is a point index never returned for query q (-1: none). Rows with fewer than
    k points, and queries with a NaN coordinate, are padded with index -1 and distance +inf.
    """
    nq = qlat.shape[0]
    best_d = np.empty(k, dtype=np.float64)
    best_i = np.empty(k, dtype=np.int64)
    for q in range(nq):
        for j in range(k):
            out_idx[q, j] = -1
            out_dist[q, j] = np.inf
        la = qlat[q]
        lo = qlon[q]
        if math.isnan(la) or math.isnan(lo) or k == 0 or plat.shape[0] == 0:
            continue
        coslat_min = math.cos(max(max_abs_lat, abs(la)) * _DEG)
        qr = math.floor((la - lat0) / dlat)
        qc = math.floor((lo - lon0) / dlon)
        # rings before r0 do not touch the grid; beyond rmax they are past every edge
        dr = max(0, -qr, qr - (nrows - 1))
        dc = max(0, -qc, qc - (ncols - 1))
        r0 = max(dr, dc)
        rmax = max(abs(qr), abs(qr - (nrows - 1)), abs(qc), abs(qc - (ncols - 1)))
        m = 0
        seen = 0
        n_points = plat.shape[0]
        ex = exclude[q]
        r = r0
        while r <= rmax:
            if m == k and _ring_lower_bound(r, dlat, dlon, coslat_min) > best_d[k - 1]:
                break
            # every point looked at (k >= n): the outer rings hold nothing more
            if seen == n_points:
                break
            rlo = max(qr - r, 0)
            rhi = min(qr + r, nrows - 1)
            for gr in range(rlo, rhi + 1):
                full_row = gr == qr - r or gr == qr + r
                if full_row:
                    clo = max(qc - r, 0)
                    chi = min(qc + r, ncols - 1)
                    step = 1
                else:
                    # only the ring's two edge columns, when inside the grid
                    clo = qc - r
                    chi = qc + r
                    step = 2 * r if r > 0 else 1
                gc = clo
                while gc <= chi:
                    if 0 <= gc < ncols:
                        cell = gr * ncols + gc
                        seen += offsets[cell + 1] - offsets[cell]
                        for p in range(offsets[cell], offsets[cell + 1]):
                            idx = order[p]
                            if idx == ex:
                                continue
                            d = haversine_m(la, lo, plat[idx], plon[idx])
                            m = _insert(best_d, best_i, m, d, idx)
                    gc += step
            r += 1
        for j in range(m):
            out_idx[q, j] = best_i[j]
            out_dist[q, j] = best_d[j]


@kernel
def _lon_halfwidth_deg(la, radius_m):
    """Half-width in longitude of the box holding every point within ``radius_m`` of latitude la.

    Returns a value >= 180 when the circle reaches a pole (then every longitude qualifies).
    """
    ang = radius_m / EARTH_RADIUS_M
    if ang >= math.pi / 2.0:
        return 360.0
    c = math.cos(la * _DEG)
    s = math.sin(ang)
    if s >= c:
        return 360.0
    return math.asin(s / c) / _DEG


@kernel
def _within_pass(plat, plon, order, offsets, lat0, lon0, dlat, dlon, nrows, ncols,  # noqa: PLR0917
                 qlat, qlon, radius, counts, out_start, out_idx, out_dist, fill):
    """One pass of the radius query: counts (fill=False) or writes hits (fill=True)."""
    nq = qlat.shape[0]
    for q in range(nq):
        la = qlat[q]
        lo = qlon[q]
        rad = radius[q]
        cnt = 0
        if not (math.isnan(la) or math.isnan(lo) or math.isnan(rad) or rad < 0.0):
            # a small margin keeps boundary points whose distance rounds to exactly rad
            rad_box = rad * (1.0 + 1e-9) + 1e-6
            dla = rad_box / EARTH_RADIUS_M / _DEG
            r_lo = math.floor((la - dla - lat0) / dlat)
            r_hi = math.floor((la + dla - lat0) / dlat)
            r_lo = max(r_lo, 0)
            r_hi = min(r_hi, nrows - 1)
            lat_top = min(abs(la) + dla, 90.0)
            hw = _lon_halfwidth_deg(lat_top, rad_box) if lat_top < 90.0 else 360.0
            if hw >= 180.0:
                c_lo = 0
                c_hi = ncols - 1
            else:
                c_lo = max(math.floor((lo - hw - lon0) / dlon), 0)
                c_hi = min(math.floor((lo + hw - lon0) / dlon), ncols - 1)
            base = out_start[q]
            for gr in range(r_lo, r_hi + 1):
                for gc in range(c_lo, c_hi + 1):
                    cell = gr * ncols + gc
                    for p in range(offsets[cell], offsets[cell + 1]):
                        idx = order[p]
                        d = haversine_m(la, lo, plat[idx], plon[idx])
                        if d <= rad:
                            if fill:
                                out_idx[base + cnt] = idx
                                out_dist[base + cnt] = d
                            cnt += 1
            if fill and 1 < cnt <= 32:
                # deterministic order: by distance, ties by point index (small: insertion sort,
                # no allocation)
                for a in range(base + 1, base + cnt):
                    di = out_dist[a]
                    ii = out_idx[a]
                    b = a
                    while b > base and (out_dist[b - 1] > di
                                        or (out_dist[b - 1] == di and out_idx[b - 1] > ii)):
                        out_dist[b] = out_dist[b - 1]
                        out_idx[b] = out_idx[b - 1]
                        b -= 1
                    out_dist[b] = di
                    out_idx[b] = ii
            elif fill and cnt > 32:
                _heapsort_pairs(out_dist, out_idx, base, cnt)
        counts[q] = cnt


@kernel
def _pair_less(d, i, a, b):
    """Whether pair ``a`` sorts before pair ``b`` by (distance, index)."""
    return d[a] < d[b] or (d[a] == d[b] and i[a] < i[b])


@kernel
def _sift_down(d, i, base, root, n):
    """Restore the max-heap of ``n`` pairs at ``base`` below ``root``."""
    while True:
        child = 2 * root + 1
        if child >= n:
            return
        if child + 1 < n and _pair_less(d, i, base + child, base + child + 1):
            child += 1
        if not _pair_less(d, i, base + root, base + child):
            return
        a, b = base + root, base + child
        d[a], d[b] = d[b], d[a]
        i[a], i[b] = i[b], i[a]
        root = child


@kernel
def _heapsort_pairs(d, i, base, n):
    """Sort the ``n`` pairs ``(d[k], i[k])`` from ``base`` by (distance, index), in place.

    Indices are distinct, so the order is total and the result unique (a heapsort: no allocation,
    and a fraction of the compile time of ``np.argsort(kind="mergesort")``, which cost most of a
    first run's compiling).
    """
    for root in range(n // 2 - 1, -1, -1):
        _sift_down(d, i, base, root, n)
    for end in range(n - 1, 0, -1):
        a = base + end
        d[base], d[a] = d[a], d[base]
        i[base], i[a] = i[a], i[base]
        _sift_down(d, i, base, 0, end)


@kernel
def grid_within(plat, plon, order, offsets, lat0, lon0, dlat, dlon, nrows, ncols,  # noqa: PLR0917
                qlat, qlon, radius):
    """Indexed points within ``radius[q]`` metres of each query, CSR: ``(starts, idx, dist)``.

    Hits of query q are ``idx[starts[q]:starts[q + 1]]``, sorted by (distance, index). A query with
    a NaN coordinate or a NaN/negative radius gets none.
    """
    nq = qlat.shape[0]
    counts = np.zeros(nq, dtype=np.int64)
    starts = np.zeros(nq + 1, dtype=np.int64)
    dummy_i = np.empty(0, dtype=np.int64)
    dummy_d = np.empty(0, dtype=np.float64)
    # ``fill`` as a value, not a literal: one compiled _within_pass for both passes (a literal
    # True/False compiles it twice, a first run's largest compile)
    fill = nq < 0
    _within_pass(plat, plon, order, offsets, lat0, lon0, dlat, dlon, nrows, ncols,
                 qlat, qlon, radius, counts, starts, dummy_i, dummy_d, fill)
    for q in range(nq):
        starts[q + 1] = starts[q] + counts[q]
    total = starts[nq]
    out_idx = np.empty(total, dtype=np.int64)
    out_dist = np.empty(total, dtype=np.float64)
    _within_pass(plat, plon, order, offsets, lat0, lon0, dlat, dlon, nrows, ncols,
                 qlat, qlon, radius, counts, starts, out_idx, out_dist, not fill)
    return starts, out_idx, out_dist
