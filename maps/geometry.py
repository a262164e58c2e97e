"""Pure geometry for the map: sector wedges, their radius, and area outlines.

Everything here works on numpy arrays of degrees and metres and has no folium or polars in it, so
it is tested against a plain-Python reference (``tests/test_maps.py``).
"""

from __future__ import annotations

import numpy as np

from kqi.geo import destination

__all__ = ["OMNI_BEAMWIDTH", "convex_hull", "destination", "sector_polygons", "sector_radius"]

#: A beamwidth at or above this is drawn as a full circle (an omni cell).
OMNI_BEAMWIDTH = 360.0


def sector_radius(isd_m: np.ndarray, *, factor: float, min_m: float, max_m: float,
                  fallback_m: float) -> np.ndarray:
    """Wedge radius per cell: a share of the local inter-site distance, clipped.

    Cells whose ISD is unknown (NaN, or not positive: a lone site) take ``fallback_m``.
    """
    isd = np.asarray(isd_m, dtype=np.float64)
    radius = np.where(np.isfinite(isd) & (isd > 0.0), isd * factor, fallback_m)
    return np.clip(radius, min_m, max_m)


def sector_polygons(lat: np.ndarray, lon: np.ndarray, azimuth: np.ndarray,
                    beamwidth: np.ndarray, radius_m: np.ndarray, *,
                    arc_points: int, omni_points: int) -> list[np.ndarray]:
    """Closed rings (``[lon, lat]`` rows, GeoJSON order) of each cell's sector wedge.

    A directional cell is the site, then ``arc_points`` points along the arc from
    ``azimuth - beamwidth/2`` to ``azimuth + beamwidth/2``, then the site again. An omni cell
    (beamwidth >= 360) is a circle of ``omni_points`` points around the site.

    Parameters
    ----------
    lat, lon : numpy.ndarray
        Site positions, degrees WGS84.
    azimuth : numpy.ndarray
        Antenna azimuths, degrees clockwise from north.
    beamwidth : numpy.ndarray
        Horizontal beamwidths, degrees.
    radius_m : numpy.ndarray
        Wedge radii, metres.
    arc_points, omni_points : int
        Points on the arc of a wedge (at least 2) and on an omni circle (at least 3).

    Returns
    -------
    list of numpy.ndarray
        One ``(k, 2)`` float array per cell; the first and last rows are equal.
    """
    if arc_points < 2 or omni_points < 3:
        raise ValueError("arc_points must be >= 2 and omni_points >= 3")
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    az = np.asarray(azimuth, dtype=np.float64)
    bw = np.asarray(beamwidth, dtype=np.float64)
    r = np.asarray(radius_m, dtype=np.float64)
    omni = bw >= OMNI_BEAMWIDTH
    rings: list[np.ndarray] = [np.empty((0, 2))] * len(lat)

    idx = np.flatnonzero(~omni)
    if idx.size:
        t = np.linspace(-0.5, 0.5, arc_points)
        bearings = az[idx, None] + bw[idx, None] * t[None, :]
        alat, alon = destination(lat[idx, None], lon[idx, None], bearings, r[idx, None])
        n = idx.size
        ring = np.empty((n, arc_points + 2, 2))
        ring[:, 0, 0] = lon[idx]
        ring[:, 0, 1] = lat[idx]
        ring[:, 1:-1, 0] = alon
        ring[:, 1:-1, 1] = alat
        ring[:, -1] = ring[:, 0]
        for j, i in enumerate(idx):
            rings[i] = ring[j]

    idx = np.flatnonzero(omni)
    if idx.size:
        bearings = np.linspace(0.0, 360.0, omni_points, endpoint=False)
        clat, clon = destination(lat[idx, None], lon[idx, None], bearings[None, :], r[idx, None])
        ring = np.empty((idx.size, omni_points + 1, 2))
        ring[:, :-1, 0] = clon
        ring[:, :-1, 1] = clat
        ring[:, -1] = ring[:, 0]
        for j, i in enumerate(idx):
            rings[i] = ring[j]
    return rings


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Closed convex hull ring of ``(n, 2)`` points (Andrew's monotone chain), counter-clockwise.

    Fewer than three distinct points give the distinct points themselves, closed.
    """
    pts = np.unique(np.asarray(points, dtype=np.float64).reshape(-1, 2), axis=0)
    if len(pts) < 3:
        return np.vstack([pts, pts[:1]]) if len(pts) else pts

    def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))

    lower: list[np.ndarray] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[np.ndarray] = []
    for p in pts[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    return np.vstack([*hull, hull[0]])
