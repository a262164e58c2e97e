"""clustering/: robust standardization, signature clusters, spatial clusters (areas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from kqi.clustering.signatures import (
    cluster_profiles,
    renumber,
    robust_standardize,
    signature_clusters,
)
from kqi.clustering.spatial import spatial_clusters


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0088 * math.asin(math.sqrt(min(1.0, a)))


# --------------------------------------------------------------------------------------------
# robust_standardize
# --------------------------------------------------------------------------------------------

def standardize_reference(values: np.ndarray, reference: np.ndarray, clip: float) -> np.ndarray:
    out = np.zeros(values.shape)
    for j in range(values.shape[1]):
        col = [v for v in reference[:, j] if math.isfinite(v)]
        if not col:
            continue
        q25, med, q75 = np.quantile(col, [0.25, 0.5, 0.75])
        scale = (q75 - q25) / 1.349
        if not scale > 0:
            scale = float(np.std(col))
        if not scale > 0:
            scale = 1.0
        for i in range(values.shape[0]):
            v = float(values[i, j])
            if not math.isfinite(v):
                continue  # missing: the median's 0
            try:
                z = (v - float(med)) / float(scale)
            except OverflowError:  # beyond a tiny (subnormal) spread: as far out as can be
                z = math.copysign(math.inf, v - float(med))
            out[i, j] = min(clip, max(-clip, z))
    return out


@settings(max_examples=60, deadline=None)
@given(
    values=arrays(np.float64, st.tuples(st.integers(1, 12), st.just(3)),
                  elements=st.one_of(st.just(np.nan), st.floats(-1e3, 1e3))),
    reference=arrays(np.float64, st.tuples(st.integers(1, 20), st.just(3)),
                     elements=st.one_of(st.just(np.nan), st.floats(-1e3, 1e3))),
)
@example(values=np.array([[1.0, 1.0, 1.0]]),  # a spread of a few subnormals: z overflows
         reference=np.array([[0.0, 5e-324, 5e-324], [5e-324, 5e-324, 5e-324]]))
def test_standardize_matches_reference(values: np.ndarray, reference: np.ndarray) -> None:
    got = robust_standardize(values, reference, clip=4.0)
    np.testing.assert_allclose(got, standardize_reference(values, reference, 4.0), rtol=1e-9, atol=1e-9)


def test_standardize_zero_spread_and_missing() -> None:
    ref = np.array([[100.0, 1.0], [100.0, np.nan], [100.0, 3.0]] * 40 + [[40.0, np.nan]])
    z = robust_standardize(np.array([[40.0, np.nan]]), ref, clip=6.0)
    # availability-like column: IQR 0, std used; the outage is far out and clipped
    assert z[0, 0] == -6.0
    assert z[0, 1] == 0.0  # missing = the network median


def test_standardize_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="feature columns"):
        robust_standardize(np.zeros((2, 3)), np.zeros((2, 2)))


# --------------------------------------------------------------------------------------------
# signature_clusters, renumber, cluster_profiles
# --------------------------------------------------------------------------------------------

def blobs(seed: int = 0, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0], [6, 0, 0, 0], [0, 6, 0, 0], [0, 0, 6, 6]], dtype=float)
    x = np.vstack([rng.normal(c, 0.3, (n, 4)) for c in centres])
    truth = np.repeat(np.arange(4), n)
    order = rng.permutation(len(x))
    return x[order], truth[order]


def test_signature_clusters_recover_blobs() -> None:
    x, truth = blobs()
    labels = signature_clusters(x, min_cluster_size=5)
    assert set(labels) == {0, 1, 2, 3}
    # each found cluster is one blob (a pure one-to-one mapping)
    pairs = set(zip(labels.tolist(), truth.tolist(), strict=True))
    assert len(pairs) == 4
    assert labels[0] == 0  # numbered by first appearance


def test_signature_clusters_deterministic() -> None:
    x, _ = blobs(1)
    a = signature_clusters(x, min_cluster_size=5)
    b = signature_clusters(x.copy(), min_cluster_size=5)
    np.testing.assert_array_equal(a, b)


def test_signature_clusters_small_and_invalid() -> None:
    assert signature_clusters(np.zeros((3, 2)), min_cluster_size=5).tolist() == [-1, -1, -1]
    assert signature_clusters(np.zeros((0, 2)), min_cluster_size=5).shape == (0,)
    with pytest.raises(ValueError, match="finite"):
        signature_clusters(np.full((10, 2), np.nan), min_cluster_size=5)
    with pytest.raises(ValueError, match="min_cluster_size"):
        signature_clusters(np.zeros((10, 2)), min_cluster_size=1)


def test_signature_clusters_accept_read_only() -> None:
    x, _ = blobs(2)
    x.setflags(write=False)
    assert (signature_clusters(x, min_cluster_size=5) >= 0).any()


def test_renumber_by_first_appearance() -> None:
    assert renumber(np.array([5, -1, 2, 5, 7, 2])).tolist() == [0, -1, 1, 0, 2, 1]
    assert renumber(np.array([-1, -1])).tolist() == [-1, -1]


def test_cluster_profiles_are_medians() -> None:
    x = np.array([[1.0, np.nan], [3.0, 4.0], [10.0, 1.0], [20.0, np.nan], [99.0, 99.0]])
    labels = np.array([0, 0, 1, 1, -1])
    prof = cluster_profiles(x, labels)
    np.testing.assert_allclose(prof, [[2.0, 4.0], [15.0, 1.0]])
    all_missing = cluster_profiles(np.array([[np.nan], [np.nan]]), np.array([0, 0]))
    assert np.isnan(all_missing).all()
    assert cluster_profiles(x, np.full(5, -1)).shape == (0, 2)


# --------------------------------------------------------------------------------------------
# spatial_clusters
# --------------------------------------------------------------------------------------------

def places(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three tight groups of points (~300 m across) kilometres apart, plus scattered singles."""
    rng = np.random.default_rng(seed)
    centres = [(30.00, 120.00), (30.05, 120.02), (30.02, 120.10)]
    lat, lon, truth = [], [], []
    for g, (a, b) in enumerate(centres):
        for _ in range(8):
            lat.append(a + rng.normal(0, 0.001))
            lon.append(b + rng.normal(0, 0.001))
            truth.append(g)
    for _ in range(5):
        lat.append(29.8 + rng.uniform(-0.1, 0.1))
        lon.append(119.7 + rng.uniform(-0.1, 0.1))
        truth.append(-1)
    return np.array(lat), np.array(lon), np.array(truth)


def test_spatial_clusters_find_places() -> None:
    lat, lon, truth = places()
    labels = spatial_clusters(lat, lon, min_cluster_size=3, max_km=1.5)
    for g in range(3):
        found = set(labels[truth == g].tolist())
        assert len(found) == 1
        assert found != {-1}
    assert len({labels[truth == g][0] for g in range(3)}) == 3
    assert (labels[truth == -1] == -1).all()


def diameter_ok(lat: np.ndarray, lon: np.ndarray, labels: np.ndarray, max_km: float) -> bool:
    for lab in set(labels.tolist()) - {-1}:
        idx = np.flatnonzero(labels == lab)
        for i in idx:
            for j in idx:
                if haversine_km(lat[i], lon[i], lat[j], lon[j]) > max_km + 1e-9:
                    return False
    return True


def test_spatial_clusters_respect_max_km() -> None:
    # a dense 4 km line of points: one hdbscan group, cut into pieces no wider than max_km
    lat = np.full(41, 30.0)
    lon = 120.0 + np.arange(41) * (0.1 / 111.195 / math.cos(math.radians(30.0)))
    labels = spatial_clusters(lat, lon, min_cluster_size=3, max_km=1.0)
    assert diameter_ok(lat, lon, labels, 1.0)
    assert len(set(labels.tolist()) - {-1}) >= 4
    # a looser limit gives fewer, wider areas
    wide = spatial_clusters(lat, lon, min_cluster_size=3, max_km=5.0)
    assert len(set(wide.tolist()) - {-1}) < len(set(labels.tolist()) - {-1})


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), max_km=st.floats(0.3, 3.0))
def test_spatial_clusters_property(seed: int, max_km: float) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    lat = 30.0 + rng.normal(0, 0.02, n)
    lon = 120.0 + rng.normal(0, 0.02, n)
    labels = spatial_clusters(lat, lon, min_cluster_size=3, max_km=max_km)
    assert labels.shape == (n,)
    assert diameter_ok(lat, lon, labels, max_km)
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0)
    assert (sizes >= 3).all()
    # labels are 0..k-1 in order of first appearance
    seen = [lab for lab in dict.fromkeys(labels.tolist()) if lab >= 0]
    assert seen == list(range(len(seen)))
    np.testing.assert_array_equal(labels, spatial_clusters(lat, lon, min_cluster_size=3, max_km=max_km))


def test_spatial_clusters_large_group_is_tiled() -> None:
    # more points than the pairwise limit in one dense group: still no piece wider than max_km
    rng = np.random.default_rng(5)
    n = 2300
    lat = 30.0 + rng.uniform(0, 0.03, n)
    lon = 120.0 + rng.uniform(0, 0.03, n)
    labels = spatial_clusters(lat, lon, min_cluster_size=3, max_km=1.0)
    for lab in set(labels.tolist()) - {-1}:
        idx = np.flatnonzero(labels == lab)
        la, lo = np.radians(lat[idx]), np.radians(lon[idx])
        a = (np.sin((la[:, None] - la[None, :]) / 2) ** 2
             + np.cos(la[:, None]) * np.cos(la[None, :]) * np.sin((lo[:, None] - lo[None, :]) / 2) ** 2)
        assert (2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))).max() <= 1.0 + 1e-9


def test_spatial_clusters_co_sited_and_small() -> None:
    # three sectors of one site share a position
    lat = np.array([30.0, 30.0, 30.0, 31.0])
    lon = np.array([120.0, 120.0, 120.0, 121.0])
    labels = spatial_clusters(lat, lon, min_cluster_size=3, max_km=1.5)
    assert labels.tolist() == [0, 0, 0, -1]
    assert spatial_clusters(lat[:2], lon[:2], min_cluster_size=3, max_km=1.5).tolist() == [-1, -1]


def test_spatial_clusters_invalid() -> None:
    with pytest.raises(ValueError, match="same length"):
        spatial_clusters(np.zeros(3), np.zeros(2), min_cluster_size=3, max_km=1.0)
    with pytest.raises(ValueError, match="max_km"):
        spatial_clusters(np.zeros(3), np.zeros(3), min_cluster_size=3, max_km=0.0)
    with pytest.raises(ValueError, match="finite"):
        spatial_clusters(np.array([np.nan, 0, 0]), np.zeros(3), min_cluster_size=3, max_km=1.0)


def test_spatial_clusters_large_compact_group_stays_one() -> None:
    # more points than the pairwise limit, but all within ~100 m: one hotspot, not two halves
    rng = np.random.default_rng(6)
    n = 2600
    lat = 30.0 + rng.normal(0, 0.0002, n)
    lon = 120.0 + rng.normal(0, 0.0002, n)
    labels = spatial_clusters(lat, lon, min_cluster_size=5, max_km=1.0)
    assert (labels >= 0).mean() > 0.9
    assert set(labels[labels >= 0].tolist()) == {0}


def test_standardize_with_an_overflowing_spread_gives_no_nan() -> None:
    # a reference spread beyond float range: no usable distance, the median's 0 (hdbscan takes
    # no NaN)
    z = robust_standardize(np.array([[1e308], [0.0]]), np.array([[-1.7e308], [1.7e308]]))
    assert np.isfinite(z).all()
