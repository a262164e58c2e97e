"""Spatial clusters: points grouped by place (hdbscan on haversine), with a maximum link length."""

from __future__ import annotations

import logging

import numpy as np
from kqi.clustering.signatures import renumber

log = logging.getLogger(__name__)



def spatial_clusters(lat: np.ndarray, lon: np.ndarray, *, min_cluster_size: int,
                     max_km: float) -> np.ndarray:
    """Group points by place.

    hdbscan (haversine metric) finds the dense groups; each group is then cut by complete
    linkage at ``max_km``, so no two members of one group lie farther apart than ``max_km``
    (a low-density suburb or a city-wide spread of poor cells would otherwise make one "area"
    many kilometres across). Pieces smaller than ``min_cluster_size`` become noise.

    Parameters
    ----------
    lat, lon : ndarray, shape (n,)
        WGS84 degrees, finite, rows in a deterministic order.
    min_cluster_size : int
        Smallest group reported (at least 2).
    max_km : float
        Largest distance allowed between two members of a group.

    Returns
    -------
    ndarray of int32, shape (n,)
        Group label per point, ``-1`` for noise; groups numbered 0.. by first appearance.
    """
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    lon = np.ascontiguousarray(lon, dtype=np.float64)
    if lat.shape != lon.shape or lat.ndim != 1:
        raise ValueError("lat and lon must be 1-D arrays of the same length")
    if min_cluster_size < 2:
        raise ValueError("min_cluster_size must be at least 2")
    if not max_km > 0:
        raise ValueError("max_km must be positive")
    n = lat.shape[0]
    if n < min_cluster_size:
        return np.full(n, -1, dtype=np.int32)
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise ValueError("lat and lon must be finite")
    from kqi.clustering._fit import fit_predict

    rad = np.column_stack([np.radians(lat), np.radians(lon)])
    dense = fit_predict(
        rad,
        min_cluster_size=min_cluster_size,
        metric="haversine",
        algorithm="boruvka_balltree",
        core_dist_n_jobs=1,
        # one compact group of poor cells is one area; the max_km cut bounds its size
        allow_single_cluster=True,
    )

    labels = np.full(n, -1, dtype=np.int64)
    next_id = 0
    for lab in np.unique(dense[dense >= 0]):
        idx = np.flatnonzero(dense == lab)
        pieces = _split_by_diameter(lat[idx], lon[idx], max_km)
        sizes = np.bincount(pieces)
        keep = sizes[pieces] >= min_cluster_size
        labels[idx[keep]] = pieces[keep] + next_id
        next_id += int(sizes.size)
    return renumber(labels)


#: groups larger than this are first cut into max_km tiles (pairwise distances grow as n^2)
_PAIRWISE_MAX = 2000
_KM_PER_DEG = 111.195


def _split_by_diameter(lat: np.ndarray, lon: np.ndarray, max_km: float) -> np.ndarray:
    """Complete-linkage pieces (0..k-1) with every pairwise distance at most ``max_km``."""
    n = lat.shape[0]
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    if n > _PAIRWISE_MAX:
        # a compact group needs no cut: no two points are farther apart than its bounding box's
        # diagonal (cutting it into tiles would split a tight hotspot at an arbitrary grid line)
        coslat_min = max(np.cos(np.radians(float(np.abs(lat).max()))), 0.01)
        dy = (float(lat.max()) - float(lat.min())) * _KM_PER_DEG
        dx = (float(lon.max()) - float(lon.min())) * _KM_PER_DEG
        # the east-west span is widest at the latitude nearest the equator
        coslat_max = float(np.cos(np.radians(float(np.abs(lat).min()))))
        if np.hypot(dy, dx * max(coslat_max, coslat_min)) <= max_km:
            return np.zeros(n, dtype=np.int64)
        # tiles of max_km: members of one tile are within ~1.42 max_km, so linkage still decides
        coslat = max(np.cos(np.radians(float(np.median(lat)))), 0.01)
        ty = np.floor(lat * _KM_PER_DEG / max_km).astype(np.int64)
        tx = np.floor(lon * _KM_PER_DEG * coslat / max_km).astype(np.int64)
        _, tile = np.unique(np.column_stack([ty, tx]), axis=0, return_inverse=True)
        tile = tile.ravel()
        out = np.empty(n, dtype=np.int64)
        offset = 0
        for t in range(int(tile.max()) + 1):
            idx = np.flatnonzero(tile == t)
            sub = _split_by_diameter(lat[idx], lon[idx], max_km)
            out[idx] = sub + offset
            offset += int(sub.max()) + 1
        return out
    from scipy.cluster.hierarchy import fcluster, linkage

    # imported here: kqi.geo brings polars and numba, which the clustering itself does not need
    # (kqi's helper process imports this package for hdbscan alone, kqi/_sidecar.py)
    from kqi.geo import haversine_m

    iu, ju = np.triu_indices(n, k=1)  # condensed order expected by linkage
    dist_km = haversine_m(lat[iu], lon[iu], lat[ju], lon[ju]) / 1000.0
    tree = linkage(dist_km, method="complete")
    return fcluster(tree, t=max_km, criterion="distance").astype(np.int64) - 1
