"""Geography: great-circle distance and bearing, a spatial index, local inter-site distance.

Public API
----------
Distances and bearings (numpy broadcasting; scalars, lists, numpy arrays or polars Series)::

    from kqi import geo
    d = geo.haversine_m(lat1, lon1, lat2, lon2)   # metres, float64 array (NaN where an input is NaN)
    b = geo.bearing_deg(lat1, lon1, lat2, lon2)   # initial bearing 1 -> 2, degrees clockwise from N, [0, 360)
    a = geo.angle_diff_deg(b, azimuth)            # smallest |difference| of two bearings, [0, 180]

Inside your own numba kernels use the scalar kernels instead::

    from kqi._geo_kernels import haversine_m, bearing_deg, angle_diff_deg   # float args, float result

Spatial index (a scipy k-d tree picks candidates; exact haversine distances; no O(n^2) matrix)::

    idx = geo.GridIndex(cells["lat"], cells["lon"])
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
radius. The index works on the sphere (3-D positions), so networks straddling the ±180° meridian
or near a pole are fine.

Local inter-site distance::

    isd = geo.site_isd(cells, config)      # columns cell_id, site_id, isd_m; one row per cell,
                                           # sorted by cell_id

Sites are the unique ``site_id`` values (a cell without site_id is its own site); a site's position
is the mean of its cells' positions. ``isd_m`` is the mean great-circle distance to the
``config.diagnosis.isd_neighbours`` nearest *other* sites; a network with fewer other sites uses
all it has, and a lone site (no other site at all) gets null.
"""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from kqi import _geo_kernels as _k
from kqi._numba import read_only as _ro
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
    """Spatial index of points for exact great-circle k-nearest and radius queries.

    A :class:`scipy.spatial.cKDTree` over the points' positions on the sphere (3-D, metres)
    chooses the candidates: a chord is a monotonic function of the great-circle distance, so the
    tree's chord bounds (widened by a margin far above rounding) hold every point that can
    qualify. Distances are then the exact haversine of :func:`haversine_m` and the order is by
    (distance, index), so ties and units are those of a brute-force search. (The name is kept
    from the grid of buckets this replaced; scipy needs no compiling on a first run.)

    Parameters
    ----------
    lat, lon
        Point positions in WGS84 degrees (array-likes of equal length, no NaN).
    cell_m
        Accepted for callers of the earlier grid index (a positive number or ``None``); it has no
        effect: the tree needs no bucket size and results are exact either way.

    Attributes
    ----------
    n : int
        Number of indexed points.
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
        # scipy.spatial imported here, not with the module: a run's prefetch thread imports it
        # while the feeds are read (kqi/_prefetch.py)
        from scipy.spatial import cKDTree

        self._tree = cKDTree(_xyz(plat, plon)) if self.n else None
        log.debug("spatial index: %d points", self.n)

    def _queries(self, lat: Any, lon: Any) -> tuple[np.ndarray, np.ndarray]:
        qlat = _ro(np.ascontiguousarray(_as_f64(lat).ravel()))
        qlon = _ro(np.ascontiguousarray(_as_f64(lon).ravel()))
        if qlat.shape != qlon.shape:
            raise ValueError(f"query lat and lon differ in length ({qlat.shape[0]} vs {qlon.shape[0]})")
        return qlat, qlon

    def _ball(self, qlat: np.ndarray, qlon: np.ndarray, q: np.ndarray,
              chord: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points within chord ``chord[j]`` of query ``q[j]``: flat ``(query, point)`` pairs."""
        assert self._tree is not None
        x = _xyz(qlat[q], qlon[q])
        if chord.size and chord.min() == chord.max():
            from scipy.spatial import cKDTree

            # one radius: a tree of the queries against the points' tree, flat pairs from C
            pairs = cKDTree(x).sparse_distance_matrix(self._tree, float(chord[0]),
                                                      output_type="ndarray")
            return q[pairs["i"]].astype(np.int64), pairs["j"].astype(np.int64)
        lists = self._tree.query_ball_point(x, chord, return_sorted=False)
        counts = np.fromiter((len(h) for h in lists), dtype=np.int64, count=len(lists))
        pts = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64,
                          count=int(counts.sum()))
        return np.repeat(q.astype(np.int64, copy=False), counts), pts

    def _haversine_sorted(self, qlat: np.ndarray, qlon: np.ndarray, qq: np.ndarray,
                          pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact distances of the (query, point) pairs, pairs sorted by (query, distance, point)."""
        dist = np.empty(qq.shape[0], dtype=np.float64)
        _k.haversine_arr(_ro(qlat[qq]), _ro(qlon[qq]), _ro(self.lat[pts]), _ro(self.lon[pts]), dist)
        order = (pl.DataFrame({"q": qq, "d": dist, "p": pts})
                 .select(pl.arg_sort_by(["q", "d", "p"])).to_series().to_numpy())
        return qq[order], pts[order], dist[order]

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
        ex: np.ndarray | None = None
        if exclude_self:
            if nq != self.n:
                raise ValueError("exclude_self needs the queries to be the indexed points")
            ex = np.arange(nq, dtype=np.int64)
        elif exclude is not None:
            ex = np.ascontiguousarray(np.asarray(exclude, dtype=np.int64).ravel())
            if ex.shape[0] != nq:
                raise ValueError("exclude needs one entry per query")
        out_idx = np.full((nq, k), -1, dtype=np.int64)
        out_dist = np.full((nq, k), np.inf, dtype=np.float64)
        q = np.flatnonzero(~(np.isnan(qlat) | np.isnan(qlon)))
        if k == 0 or self.n == 0 or q.size == 0:
            return out_idx, out_dist
        assert self._tree is not None
        # the chord to the (k + 1)-th nearest (k-th without exclusions), widened, bounds the
        # k-th nearest non-excluded point: every point inside it is a candidate. A query whose
        # last fetched neighbour lies beyond that bound has all its candidates; the others (ties:
        # co-sited cells, duplicates) fetch twice as many, until they do or hold every point
        kk = k + (1 if ex is not None else 0)
        x = _xyz(qlat[q], qlon[q])
        kq = min(2 * kk + 2, self.n)
        qs, ps = [], []
        while q.size:
            cd, ci = self._tree.query(x, k=kq)
            cd = cd.reshape(q.size, kq)
            if kq == self.n:
                done = np.ones(q.size, dtype=bool)
            else:
                done = cd[:, -1] > _widen(cd[:, min(kk, kq) - 1])
            qs.append(np.repeat(q[done].astype(np.int64), kq))
            ps.append(ci.reshape(q.size, kq)[done].ravel().astype(np.int64, copy=False))
            q, x = q[~done], x[~done]
            kq = min(2 * kq, self.n)
        qq = np.concatenate(qs)
        pts = np.concatenate(ps)
        if ex is not None:
            keep = pts != ex[qq]
            qq, pts = qq[keep], pts[keep]
        qq, pts, dist = self._haversine_sorted(qlat, qlon, qq, pts)
        # rank of each pair within its query; the first k of each query are the answer
        first = np.searchsorted(qq, qq, side="left")
        rank = np.arange(qq.shape[0], dtype=np.int64) - first
        top = rank < k
        out_idx[qq[top], rank[top]] = pts[top]
        out_dist[qq[top], rank[top]] = dist[top]
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
        nq = qlat.shape[0]
        rad = np.broadcast_to(_as_f64(radius_m), qlat.shape).astype(np.float64, copy=True).ravel()
        with np.errstate(invalid="ignore"):
            ok = ~(np.isnan(qlat) | np.isnan(qlon) | np.isnan(rad)) & (rad >= 0.0)
        q = np.flatnonzero(ok)
        starts = np.zeros(nq + 1, dtype=np.int64)
        if self.n == 0 or q.size == 0:
            return RadiusHits(starts, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
        # chord of the great-circle radius (a radius past half the globe takes every point)
        half = np.minimum(rad[q] / (2.0 * EARTH_RADIUS_M), 0.5 * math.pi)
        chord = _widen(2.0 * EARTH_RADIUS_M * np.sin(half))
        qq, pts, dist = self._haversine_sorted(qlat, qlon, *self._ball(qlat, qlon, q, chord))
        keep = dist <= rad[qq]
        qq, pts, dist = qq[keep], pts[keep], dist[keep]
        np.cumsum(np.bincount(qq, minlength=nq), out=starts[1:])
        return RadiusHits(starts, pts, dist)


def _xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Positions on the mean Earth sphere, metres, as an ``(n, 3)`` array (a chord between two
    rows is a monotonic function of their great-circle distance)."""
    p = np.radians(lat)
    lam = np.radians(lon)
    cp = np.cos(p)
    return EARTH_RADIUS_M * np.column_stack((cp * np.cos(lam), cp * np.sin(lam), np.sin(p)))


def _widen(chord: np.ndarray) -> np.ndarray:
    """A chord bound widened far beyond the rounding of chords and haversines (a micrometre-scale
    error at Earth's radius) so that no qualifying point is missed; the exact haversine decides."""
    return chord * (1.0 + 1e-6) + 1.0


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
