"""Geography: great-circle distance and bearing, a spatial grid index, local inter-site distance.

Public API
----------
Distances and bearings (numpy broadcasting; scalars, lists, numpy arrays or polars Series)::

    from kqi import geo
    d = geo.haversine_m(lat1, lon1, lat2, lon2)   # metres, float64 array (NaN where an input is NaN)
    b = geo.bearing_deg(lat1, lon1, lat2, lon2)   # initial bearing 1 -> 2, degrees clockwise from N, [0, 360)
    a = geo.angle_diff_deg(b, azimuth)            # smallest |difference| of two bearings, [0, 180]

Inside your own numba kernels use the scalar kernels instead::

    from kqi._geo_kernels import haversine_m, bearing_deg, angle_diff_deg   # float args, float result

Spatial grid index (CSR buckets of lat/lon cells; exact haversine distances; no O(n^2) matrix)::

    idx = geo.GridIndex(cells["lat"], cells["lon"])              # cell_m=None picks a size (~1 point/bucket)
    nn_idx, nn_dist = idx.knn(q_lat, q_lon, k=3)                 # (nq, k) int64 / float64, sorted by
                                                                 #   (distance, index); padded -1 / +inf
    nn_idx, nn_dist = idx.knn(cells["lat"], cells["lon"], k=3, exclude_self=True)  # query i != point i
    hits = idx.within(q_lat, q_lon, radius_m)                    # radius_m: scalar or one per query
    hits.starts, hits.idx, hits.dist                             # CSR: hits of query q are
                                                                 #   idx[starts[q]:starts[q+1]], sorted by
                                                                 #   (distance, index)
    hits.query                                                   # query number of every hit (flat pairs)

``idx`` values are row positions in the arrays the index was built from. A query with a NaN
coordinate (e.g. a complaint without position) gets no neighbours; so does a NaN or negative
radius. The index covers one contiguous longitude range: networks straddling the ±180° meridian
are not supported.

Local inter-site distance::

    isd = geo.site_isd(cells, config)      # columns cell_id, site_id, isd_m; one row per cell,
                                           # sorted by cell_id

Sites are the unique ``site_id`` values (a cell without site_id is its own site); a site's position
is the mean of its cells' positions. ``isd_m`` is the mean great-circle distance to the
``config.diagnosis.isd_neighbours`` nearest *other* sites; a network with fewer other sites uses
all it has, and a lone site (no other site at all) gets null.
"""

from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from kqi import _geo_kernels as _k
from kqi.config import Config
from kqi.errors import KqiError

__all__ = [
    "EARTH_RADIUS_M",
    "GridIndex",
    "RadiusHits",
    "angle_diff_deg",
    "bearing_deg",
    "destination",
    "haversine_m",
    "site_isd",
]

log = logging.getLogger(__name__)

EARTH_RADIUS_M = _k.EARTH_RADIUS_M
_M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
#: the grid never holds more buckets than this (memory of the CSR offsets), whatever cell_m says
_MAX_BUCKETS = 4_000_000


def _as_f64(x: Any) -> np.ndarray:
    """Any 1-D-ish numeric input as a float64 numpy array (nulls become NaN)."""
    if isinstance(x, pl.Series):
        return x.cast(pl.Float64).to_numpy()
    if hasattr(x, "to_numpy") and not isinstance(x, np.ndarray):
        try:
            return np.asarray(x.to_numpy(zero_copy_only=False), dtype=np.float64)
        except TypeError:
            return np.asarray(x.to_numpy(), dtype=np.float64)
    return np.asarray(x, dtype=np.float64)


def _ro(a: np.ndarray) -> np.ndarray:
    """A read-only view: numba compiles a kernel once per read-only flag of its arrays, so every
    input goes in read-only (one specialisation each, less compiling on a first run)."""
    v = a.view()
    v.flags.writeable = False
    return v


def _pairwise(kernel: Any, lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Run a point-pair array kernel over broadcast inputs; the result has the broadcast shape."""
    arrs = np.broadcast_arrays(_as_f64(lat1), _as_f64(lon1), _as_f64(lat2), _as_f64(lon2))
    shape = arrs[0].shape
    flat = [_ro(np.ascontiguousarray(x.ravel())) for x in arrs]
    out = np.empty(flat[0].shape[0], dtype=np.float64)
    kernel(*flat, out)
    return out.reshape(shape)


def haversine_m(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Great-circle distance between WGS84 points, in metres.

    Parameters
    ----------
    lat1, lon1, lat2, lon2
        Degrees; scalars or array-likes, broadcast against each other.

    Returns
    -------
    numpy.ndarray
        float64 distances with the broadcast shape (0-d for scalars); NaN where an input is NaN.
    """
    return _pairwise(_k.haversine_arr, lat1, lon1, lat2, lon2)


def destination(lat: np.ndarray, lon: np.ndarray, bearing_deg: np.ndarray,
                distance_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Great-circle destination of points moved ``distance_m`` along ``bearing_deg``.

    Parameters
    ----------
    lat, lon : numpy.ndarray
        Start points, degrees WGS84 (broadcastable against the other arguments).
    bearing_deg : numpy.ndarray
        Bearings, degrees clockwise from north.
    distance_m : numpy.ndarray
        Distances, metres.

    Returns
    -------
    tuple of numpy.ndarray
        Latitudes and longitudes of the destinations, degrees; longitudes wrapped to [-180, 180).
    """
    phi1 = np.radians(lat)
    lam1 = np.radians(lon)
    theta = np.radians(bearing_deg)
    delta = np.asarray(distance_m, dtype=np.float64) / EARTH_RADIUS_M
    sin_phi2 = np.sin(phi1) * np.cos(delta) + np.cos(phi1) * np.sin(delta) * np.cos(theta)
    phi2 = np.arcsin(np.clip(sin_phi2, -1.0, 1.0))
    lam2 = lam1 + np.arctan2(np.sin(theta) * np.sin(delta) * np.cos(phi1),
                             np.cos(delta) - np.sin(phi1) * sin_phi2)
    lon2 = (np.degrees(lam2) + 540.0) % 360.0 - 180.0
    return np.degrees(phi2), lon2


def bearing_deg(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Initial bearing from point 1 to point 2, degrees clockwise from north in [0, 360).

    Parameters
    ----------
    lat1, lon1, lat2, lon2
        Degrees; scalars or array-likes, broadcast against each other.

    Returns
    -------
    numpy.ndarray
        float64 bearings with the broadcast shape; NaN where an input is NaN. The bearing between
        two identical points is 0.
    """
    return _pairwise(_k.bearing_arr, lat1, lon1, lat2, lon2)


def angle_diff_deg(a: Any, b: Any) -> np.ndarray:
    """Smallest absolute difference between bearings ``a`` and ``b`` (degrees), in [0, 180].

    Parameters
    ----------
    a, b
        Degrees; scalars or array-likes, broadcast.

    Returns
    -------
    numpy.ndarray
        float64 differences; NaN where an input is NaN.
    """
    d = np.abs(_as_f64(a) - _as_f64(b)) % 360.0
    return np.where(d > 180.0, 360.0 - d, d)


class RadiusHits(NamedTuple):
    """Result of :meth:`GridIndex.within`: CSR hits per query.

    Hits of query ``q`` are ``idx[starts[q]:starts[q + 1]]`` (point row positions) with distances
    ``dist[...]`` in metres, sorted by (distance, index).
    """

    starts: np.ndarray
    idx: np.ndarray
    dist: np.ndarray

    @property
    def query(self) -> np.ndarray:
        """Query number of every hit (same length as ``idx``): the flat (query, point) pairs."""
        return np.repeat(np.arange(self.starts.shape[0] - 1, dtype=np.int64), np.diff(self.starts))

    @property
    def counts(self) -> np.ndarray:
        """Number of hits per query."""
        return np.diff(self.starts)


class GridIndex:
    """Spatial index of points: lat/lon buckets of about ``cell_m`` metres, stored as CSR arrays.

    Queries return exact great-circle results: the grid only decides which points to look at.

    Parameters
    ----------
    lat, lon
        Point positions in WGS84 degrees (array-likes of equal length, no NaN).
    cell_m
        Bucket edge in metres. ``None`` picks one from the points' extent so that a bucket holds
        about one point on average (good for k-NN with small k). A size that would need more than
        16 buckets per point (or 4 million) is doubled until it does not.

    Attributes
    ----------
    n : int
        Number of indexed points.
    cell_m : float
        Bucket edge actually used, metres (north-south; east-west at the points' mean latitude).
    """

    def __init__(self, lat: Any, lon: Any, *, cell_m: float | None = None) -> None:
        plat = _ro(np.ascontiguousarray(_as_f64(lat).ravel()))
        plon = _ro(np.ascontiguousarray(_as_f64(lon).ravel()))
        if plat.shape != plon.shape:
            raise ValueError(f"lat and lon differ in length ({plat.shape[0]} vs {plon.shape[0]})")
        if not (np.isfinite(plat).all() and np.isfinite(plon).all()):
            raise ValueError("indexed points must have finite lat and lon")
        if plat.size and (np.abs(plat).max() > 90.0 or np.abs(plon).max() > 180.0):
            raise ValueError("indexed points must have lat in [-90, 90] and lon in [-180, 180]")
        if cell_m is not None and not (math.isfinite(cell_m) and cell_m > 0):
            raise ValueError(f"cell_m must be a positive number, got {cell_m!r}")
        self.lat = plat
        self.lon = plon
        self.n = int(plat.shape[0])
        if self.n:
            lat0, lat1 = float(plat.min()), float(plat.max())
            lon0, lon1 = float(plon.min()), float(plon.max())
        else:
            lat0 = lat1 = lon0 = lon1 = 0.0
        mid_cos = max(math.cos(math.radians(0.5 * (lat0 + lat1))), 1e-6)
        h_m = (lat1 - lat0) * _M_PER_DEG
        w_m = (lon1 - lon0) * _M_PER_DEG * mid_cos
        if cell_m is None:
            area = max(h_m, 1.0) * max(w_m, 1.0)
            cell_m = max(math.sqrt(area / max(self.n, 1)), 1.0)
        # a tiny cell_m over a wide extent would mostly make empty buckets (memory, and rings
        # of nothing to walk): at most 16 buckets per point
        max_buckets = min(_MAX_BUCKETS, max(16 * self.n, 1024))
        while (h_m / cell_m + 1) * (w_m / cell_m + 1) > max_buckets:
            cell_m *= 2.0
        self.cell_m = float(cell_m)
        self._dlat = cell_m / _M_PER_DEG
        self._dlon = min(cell_m / (_M_PER_DEG * mid_cos), 360.0)
        self._lat0 = lat0
        self._lon0 = lon0
        self._nrows = int((lat1 - lat0) / self._dlat) + 1
        self._ncols = int((lon1 - lon0) / self._dlon) + 1
        self._max_abs_lat = max(abs(lat0), abs(lat1))
        self._order, self._offsets = _k.grid_build(
            plat, plon, self._lat0, self._lon0, self._dlat, self._dlon, self._nrows, self._ncols
        )
        log.debug("grid index: %d points, %d x %d buckets of %.0f m", self.n, self._nrows,
                  self._ncols, self.cell_m)

    def _queries(self, lat: Any, lon: Any) -> tuple[np.ndarray, np.ndarray]:
        qlat = _ro(np.ascontiguousarray(_as_f64(lat).ravel()))
        qlon = _ro(np.ascontiguousarray(_as_f64(lon).ravel()))
        if qlat.shape != qlon.shape:
            raise ValueError(f"query lat and lon differ in length ({qlat.shape[0]} vs {qlon.shape[0]})")
        return qlat, qlon

    def knn(self, lat: Any, lon: Any, k: int, *, exclude_self: bool = False,
            exclude: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest indexed points of each query position.

        Parameters
        ----------
        lat, lon
            Query positions, degrees (array-likes of equal length; NaN = no result).
        k
            Neighbours per query (>= 0).
        exclude_self
            The queries are the indexed points themselves (same length, same order): query ``i``
            never returns point ``i`` (other points at the same position still count).
        exclude
            Optional int array, one per query: a point index never returned for that query
            (-1 = none). Combined with ``exclude_self`` it is an error.

        Returns
        -------
        idx, dist : numpy.ndarray
            ``(nq, k)`` int64 point row positions and float64 metres, each row sorted by
            (distance, index); padded with -1 and +inf where fewer than ``k`` points exist.
        """
        qlat, qlon = self._queries(lat, lon)
        nq = qlat.shape[0]
        k = int(k)
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        if exclude_self and exclude is not None:
            raise ValueError("give exclude_self or exclude, not both")
        if exclude_self:
            if nq != self.n:
                raise ValueError("exclude_self needs the queries to be the indexed points")
            ex = np.arange(nq, dtype=np.int64)
        elif exclude is not None:
            ex = np.ascontiguousarray(np.asarray(exclude, dtype=np.int64).ravel())
            if ex.shape[0] != nq:
                raise ValueError("exclude needs one entry per query")
        else:
            ex = np.full(nq, -1, dtype=np.int64)
        out_idx = np.empty((nq, k), dtype=np.int64)
        out_dist = np.empty((nq, k), dtype=np.float64)
        _k.grid_knn(self.lat, self.lon, self._order, self._offsets, self._lat0, self._lon0,
                    self._dlat, self._dlon, self._nrows, self._ncols, self._max_abs_lat,
                    qlat, qlon, ex, k, out_idx, out_dist)
        return out_idx, out_dist

    def within(self, lat: Any, lon: Any, radius_m: Any) -> RadiusHits:
        """Indexed points within ``radius_m`` metres (inclusive) of each query position.

        Parameters
        ----------
        lat, lon
            Query positions, degrees (NaN = no hits).
        radius_m
            Metres: a scalar or one per query (NaN or negative = no hits).

        Returns
        -------
        RadiusHits
            CSR ``(starts, idx, dist)``; see :class:`RadiusHits`.
        """
        qlat, qlon = self._queries(lat, lon)
        rad = np.ascontiguousarray(
            np.broadcast_to(_as_f64(radius_m), qlat.shape).astype(np.float64, copy=True).ravel()
        )
        starts, idx, dist = _k.grid_within(
            self.lat, self.lon, self._order, self._offsets, self._lat0, self._lon0,
            self._dlat, self._dlon, self._nrows, self._ncols, qlat, qlon, rad,
        )
        return RadiusHits(starts, idx, dist)


def site_isd(cells: pl.DataFrame, config: Config | None = None) -> pl.DataFrame:
    """Local inter-site distance of every cell's site.

    Parameters
    ----------
    cells
        Cells table with ``cell_id``, ``lat``, ``lon`` and optionally ``site_id`` (a cell with a
        null or absent site_id is treated as a site of its own).
    config
        Uses ``config.diagnosis.isd_neighbours`` (default 3).

    Returns
    -------
    polars.DataFrame
        ``cell_id`` (str), ``site_id`` (str, as given, may be null), ``isd_m`` (float64): mean
        distance from the cell's site to its ``isd_neighbours`` nearest other sites (fewer when the
        network has fewer; null for a lone site). One row per cell, sorted by ``cell_id``.
    """
    cfg = config if config is not None else Config()
    k_want = int(cfg.diagnosis.isd_neighbours)
    if k_want < 1:
        raise KqiError(f"'diagnosis.isd_neighbours' must be at least 1, got {k_want}")
    for col in ("cell_id", "lat", "lon"):
        if col not in cells.columns:
            raise KqiError(f"site_isd: cells table has no column '{col}'")
    has_site = "site_id" in cells.columns
    base = cells.select(
        pl.col("cell_id").cast(pl.String),
        (pl.col("site_id").cast(pl.String) if has_site else pl.lit(None, pl.String)).alias("site_id"),
        pl.col("lat").cast(pl.Float64),
        pl.col("lon").cast(pl.Float64),
    )
    if base["lat"].null_count() or base["lon"].null_count():
        raise KqiError("site_isd: cells with no position (lat/lon null)")
    # the \x00 prefix keeps a cell-as-site key from colliding with a real site_id
    base = base.with_columns(
        pl.coalesce(pl.col("site_id"), pl.lit("\x00") + pl.col("cell_id")).alias("_site")
    )
    sites = (
        base.group_by("_site")
        .agg(pl.col("lat").mean(), pl.col("lon").mean())
        .sort("_site")
    )
    n_sites = sites.height
    k = min(k_want, max(n_sites - 1, 0))
    if k == 0:
        isd = np.full(n_sites, np.nan)
    else:
        index = GridIndex(sites["lat"], sites["lon"])
        _, dist = index.knn(sites["lat"], sites["lon"], k, exclude_self=True)
        isd = dist.mean(axis=1)
    sites = sites.select("_site", pl.Series("isd_m", isd, dtype=pl.Float64).fill_nan(None))
    return (
        base.join(sites, on="_site", how="left")
        .select("cell_id", "site_id", "isd_m")
        .sort("cell_id")
    )
