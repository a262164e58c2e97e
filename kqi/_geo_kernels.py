"""Numba kernels behind :mod:`kqi.geo`: great-circle distance and bearing.

Scalar kernels (callable from other kernels, e.g. ``kqi/_link_kernels.py``)::

    haversine_m(lat1, lon1, lat2, lon2) -> float     # metres on the mean Earth sphere
    bearing_deg(lat1, lon1, lat2, lon2) -> float     # initial bearing, degrees clockwise from N, [0, 360)
    angle_diff_deg(a, b) -> float                    # smallest absolute difference of two bearings, [0, 180]

Array kernels take contiguous 1-D float64 arrays (read-only is fine) and write into ``out``.
(Nearest-neighbour and radius queries are scipy's k-d tree: :class:`kqi.geo.GridIndex`.)
No validation here: the wrappers in :mod:`kqi.geo` check shapes, dtypes and NaNs.
"""

from __future__ import annotations

import math

from kqi._numba import kernel

#: mean Earth radius (IUGG), metres
EARTH_RADIUS_M = 6_371_008.8
_DEG = math.pi / 180.0


@kernel(inline=True)
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


@kernel(inline=True)
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


@kernel(inline=True)
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
