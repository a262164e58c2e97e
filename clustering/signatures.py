"""Signature clusters: cells grouped by what their (standardized) KPI evidence has in common."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

#: IQR of a standard normal; dividing by it makes the robust scale comparable to a std
_IQR_TO_STD = 1.349


def robust_standardize(values: np.ndarray, reference: np.ndarray | None = None, *,
                       clip: float = 6.0) -> np.ndarray:
    """Standardize feature columns robustly against a reference population.

    Parameters
    ----------
    values : ndarray, shape (n, f)
        Rows to standardize; NaN marks a missing value.
    reference : ndarray, shape (m, f), optional
        Population that defines "normal" (e.g. every cell of the network); ``values`` if omitted.
    clip : float
        Standardized values are clipped to ``[-clip, clip]`` so one extreme feature (a cell that
        was down for hours) cannot swamp the others in the distance.

    Returns
    -------
    ndarray, shape (n, f)
        ``(x - median) / scale`` with scale = IQR / 1.349, falling back to the standard deviation
        and then 1 where the spread is zero; missing values become 0 (the reference median).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("values must be a 2-D array (rows x features)")
    ref = x if reference is None else np.asarray(reference, dtype=np.float64)
    if ref.ndim != 2 or ref.shape[1] != x.shape[1]:
        raise ValueError("reference must have the same number of feature columns as values")
    out = np.zeros_like(x)
    for j in range(x.shape[1]):
        col = ref[:, j]
        col = col[np.isfinite(col)]
        if col.size == 0:
            continue  # feature absent everywhere: contributes nothing
        v = x[:, j]
        # values near the float range overflow the spread or the median (infinite or NaN:
        # no usable distance, the median's 0); a value far beyond a tiny spread overflows to
        # infinity and is clipped like any far value; a missing value is the median's 0
        with np.errstate(over="ignore", invalid="ignore"):
            q25, med, q75 = np.quantile(col, [0.25, 0.5, 0.75])
            scale = (q75 - q25) / _IQR_TO_STD
            if not scale > 0:
                scale = float(col.std())
            if not scale > 0:
                scale = 1.0
            z = (v - med) / scale
        out[:, j] = np.where(np.isfinite(v) & ~np.isnan(z), np.clip(z, -clip, clip), 0.0)
    return out


def signature_clusters(standardized: np.ndarray, *, min_cluster_size: int,
                       min_samples: int | None = None) -> np.ndarray:
    """Cluster rows of standardized evidence with hdbscan.

    Parameters
    ----------
    standardized : ndarray, shape (n, f)
        Finite feature matrix (see :func:`robust_standardize`), rows in a deterministic order.
    min_cluster_size : int
        Smallest group hdbscan reports as a cluster.
    min_samples : int, optional
        hdbscan's density parameter; defaults to ``min_cluster_size``.

    Returns
    -------
    ndarray of int32, shape (n,)
        Cluster label per row, ``-1`` for noise; clusters numbered 0.. by first appearance.
    """
    # hdbscan's trees need a writable buffer; zero-copy Arrow data is read-only
    x = np.array(standardized, dtype=np.float64, order="C", copy=True)
    n = x.shape[0]
    if min_cluster_size < 2:
        raise ValueError("min_cluster_size must be at least 2")
    if n < max(min_cluster_size, 2) or x.shape[1] == 0:
        return np.full(n, -1, dtype=np.int32)
    if not np.isfinite(x).all():
        raise ValueError("standardized features must be finite")
    from kqi.clustering._fit import fit_predict

    labels = fit_predict(x, min_cluster_size=min_cluster_size, min_samples=min_samples,
                         algorithm="boruvka_kdtree", core_dist_n_jobs=1)
    return renumber(labels)


def renumber(labels: np.ndarray) -> np.ndarray:
    """Renumber cluster labels 0.. in order of first appearance; ``-1`` stays noise."""
    labels = np.asarray(labels)
    out = np.full(labels.shape[0], -1, dtype=np.int32)
    mapping: dict[int, int] = {}
    # one pass over the distinct labels (not the rows): order by first index
    uniq, first = np.unique(labels, return_index=True)
    for lab in uniq[np.argsort(first, kind="stable")]:
        if lab >= 0:
            mapping[int(lab)] = len(mapping)
    for lab, new in mapping.items():
        out[labels == lab] = new
    return out


def cluster_profiles(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-cluster median of each feature (NaN ignored), in the features' own units.

    Parameters
    ----------
    values : ndarray, shape (n, f)
    labels : ndarray, shape (n,)
        From :func:`signature_clusters`, numbered 0..k-1 with -1 noise.

    Returns
    -------
    ndarray, shape (k, f)
        Row ``c`` is the centroid (median) of cluster ``c``; NaN where no member has the feature.
    """
    x = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    out = np.full((k, x.shape[1]), np.nan)
    for c in range(k):
        members = x[labels == c]
        for j in range(x.shape[1]):
            col = members[:, j]
            col = col[np.isfinite(col)]
            if col.size:
                out[c, j] = float(np.median(col))
    return out
