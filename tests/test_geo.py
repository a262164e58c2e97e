"""kqi.geo and kqi._geo_kernels against plain-Python brute-force references."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import R, ref_bearing, ref_haversine

from kqi import _geo_kernels as gk
from kqi import geo
from kqi.config import Config, DiagnosisConfig
from kqi.errors import KqiError

# ---------------------------------------------------------------- plain-Python references





def ref_knn(plat, plon, qlat, qlon, k, exclude=None):  # noqa: PLR0917
    """Brute force: every point's distance, sorted by (distance, index)."""
    out = []
    for q in range(len(qlat)):
        if math.isnan(qlat[q]) or math.isnan(qlon[q]):
            out.append([])
            continue
        cand = [
            (ref_haversine(qlat[q], qlon[q], plat[i], plon[i]), i)
            for i in range(len(plat))
            if exclude is None or exclude[q] != i
        ]
        out.append(sorted(cand)[:k])
    return out


def ref_within(plat, plon, qlat, qlon, radius):
    out = []
    for q in range(len(qlat)):
        cand = [
            (ref_haversine(qlat[q], qlon[q], plat[i], plon[i]), i) for i in range(len(plat))
        ]
        out.append(sorted((d, i) for d, i in cand if d <= radius[q]))
    return out


def assert_knn_matches(got_idx, got_dist, ref, k, plat, plon, qlat, qlon):  # noqa: PLR0917
    for q, row in enumerate(ref):
        m = len(row)
        want_d = [d for d, _ in row]
        np.testing.assert_allclose(got_dist[q, :m], want_d, rtol=1e-9, atol=1e-6)
        assert (got_idx[q, m:] == -1).all()
        assert np.isinf(got_dist[q, m:]).all()
        assert len(set(got_idx[q, :m].tolist())) == m
        for j, (d, i) in enumerate(row):
            g = int(got_idx[q, j])
            assert ref_haversine(qlat[q], qlon[q], plat[g], plon[g]) == pytest.approx(
                got_dist[q, j], rel=1e-9, abs=1e-6)
            # the index may differ from the reference only inside a rounding-level tie
            if g != i:
                assert any(abs(d - d2) < 1e-6 for jj, (d2, _) in enumerate(row) if jj != j)


# ---------------------------------------------------------------- distances and bearings


def test_haversine_known_distances() -> None:
    # one degree of latitude on the mean sphere
    assert geo.haversine_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(R * math.pi / 180, rel=1e-12)
    # quarter of a great circle: equator to pole
    assert geo.haversine_m(0.0, 10.0, 90.0, 10.0) == pytest.approx(R * math.pi / 2, rel=1e-12)
    # antipodes
    assert geo.haversine_m(0.0, 0.0, 0.0, 180.0) == pytest.approx(R * math.pi, rel=1e-12)
    # Big Ben -> Statue of Liberty, the textbook example: about 5,575 km
    assert geo.haversine_m(51.5007, -0.1246, 40.6892, -74.0445) == pytest.approx(5_574_840, rel=1e-4)
    # Chengdu: 0.01 degrees of longitude at 30.66 N is about 957 m
    assert geo.haversine_m(30.66, 104.06, 30.66, 104.07) == pytest.approx(956.9, abs=1.0)
    assert geo.haversine_m(30.66, 104.06, 30.66, 104.06) == 0.0


def test_haversine_nan_and_broadcast() -> None:
    d = geo.haversine_m([0.0, np.nan], 0.0, 1.0, [0.0, 0.0])
    assert d.shape == (2,)
    assert math.isnan(d[1])
    grid = geo.haversine_m(np.zeros((3, 1)), 0.0, 0.0, np.array([[0.0, 1.0]]))
    assert grid.shape == (3, 2)
    assert geo.haversine_m(pl.Series([0.0, None]), 0.0, 0.0, 0.0)[1] != 0.0


def test_bearing_cardinal_points() -> None:
    b = geo.bearing_deg(0.0, 0.0, [1.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, -1.0])
    np.testing.assert_allclose(b, [0.0, 90.0, 180.0, 270.0], atol=1e-9)
    # from Chengdu towards due north-east-ish: within (0, 90)
    assert 0.0 < float(geo.bearing_deg(30.66, 104.06, 30.67, 104.07)) < 90.0


def test_angle_diff() -> None:
    np.testing.assert_allclose(geo.angle_diff_deg([10, 350, 0, 90], [350, 10, 180, 270]),
                               [20, 20, 180, 180])
    assert gk.angle_diff_deg(359.0, 1.0) == pytest.approx(2.0)


coord = st.tuples(st.floats(-89.9, 89.9), st.floats(-179.9, 179.9))


@given(coord, coord)
@settings(max_examples=200, deadline=None)
def test_scalar_kernels_match_reference(a, b) -> None:
    assert gk.haversine_m(a[0], a[1], b[0], b[1]) == pytest.approx(
        ref_haversine(a[0], a[1], b[0], b[1]), rel=1e-9, abs=1e-6)
    got = gk.bearing_deg(a[0], a[1], b[0], b[1])
    assert 0.0 <= got < 360.0
    if ref_haversine(a[0], a[1], b[0], b[1]) > 1.0:
        want = ref_bearing(a[0], a[1], b[0], b[1])
        assert min(abs(got - want), 360 - abs(got - want)) < 1e-7


@given(st.lists(st.tuples(coord, coord), min_size=1, max_size=20))
@settings(max_examples=50, deadline=None)
def test_array_kernels_match_reference(pairs) -> None:
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    d = geo.haversine_m(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
    want = [ref_haversine(x[0], x[1], y[0], y[1]) for x, y in pairs]
    np.testing.assert_allclose(d, want, rtol=1e-9, atol=1e-6)


# ---------------------------------------------------------------- grid index


def city_points(draw_seed: int, n: int, spread: float = 0.2, dup: float = 0.0):
    rng = np.random.default_rng(draw_seed)
    lat = 30.66 + (rng.random(n) - 0.5) * spread
    lon = 104.06 + (rng.random(n) - 0.5) * spread
    if dup and n > 1:
        # near-duplicate points: copies of others, moved by at most a few millimetres
        m = max(1, int(n * dup))
        src = rng.integers(0, n, m)
        dst = rng.integers(0, n, m)
        lat[dst] = lat[src] + rng.normal(0, 1e-8, m)
        lon[dst] = lon[src]
    return lat, lon


@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 60),
    k=st.integers(0, 70),
    spread=st.sampled_from([1e-6, 0.01, 0.3, 3.0]),
    dup=st.sampled_from([0.0, 0.3]),
    cell_m=st.sampled_from([None, 50.0, 2000.0, 1e6]),
)
@settings(max_examples=120, deadline=None)
def test_knn_matches_brute_force(seed, n, k, spread, dup, cell_m) -> None:  # noqa: PLR0917
    plat, plon = city_points(seed, n, spread, dup)
    qlat, qlon = city_points(seed + 1, 7, spread * 2)
    qlat[0] = np.nan  # a query with no position
    qlat[1] = 80.0    # far outside the grid
    index = geo.GridIndex(plat, plon, cell_m=cell_m)
    idx, dist = index.knn(qlat, qlon, k)
    assert idx.shape == (7, k)
    assert_knn_matches(idx, dist, ref_knn(plat, plon, qlat, qlon, k), k, plat, plon, qlat, qlon)
    if n:
        sidx, sdist = index.knn(plat, plon, k, exclude_self=True)
        ref = ref_knn(plat, plon, plat, plon, k, exclude=list(range(n)))
        assert_knn_matches(sidx, sdist, ref, k, plat, plon, plat, plon)
        assert not (sidx == np.arange(n)[:, None]).any()


def test_knn_exact_ties_broken_by_index() -> None:
    # four points at one position, one query there: indices must come out ascending
    lat = np.array([30.0, 30.0, 30.0, 30.0, 30.1])
    lon = np.array([104.0, 104.0, 104.0, 104.0, 104.0])
    idx, dist = geo.GridIndex(lat, lon).knn([30.0], [104.0], 3)
    assert idx.tolist() == [[0, 1, 2]]
    assert dist.tolist() == [[0.0, 0.0, 0.0]]
    idx, _ = geo.GridIndex(lat, lon).knn(lat, lon, 2, exclude_self=True)
    assert idx[0].tolist() == [1, 2]
    assert idx[3].tolist() == [0, 1]


def test_knn_k_larger_than_points_pads() -> None:
    idx, dist = geo.GridIndex([30.0, 30.01], [104.0, 104.0]).knn([30.0], [104.0], 5)
    assert idx.tolist() == [[0, 1, -1, -1, -1]]
    assert np.isinf(dist[0, 2:]).all()


def test_knn_exclude_array_and_errors() -> None:
    lat, lon = city_points(3, 30)
    index = geo.GridIndex(lat, lon)
    ex = np.arange(30)[::-1].copy()
    idx, _ = index.knn(lat, lon, 4, exclude=ex)
    assert not (idx == ex[:, None]).any()
    with pytest.raises(ValueError, match="not both"):
        index.knn(lat, lon, 2, exclude_self=True, exclude=ex)
    with pytest.raises(ValueError, match="indexed points"):
        index.knn(lat[:3], lon[:3], 2, exclude_self=True)
    with pytest.raises(ValueError, match="finite"):
        geo.GridIndex([np.nan], [1.0])
    with pytest.raises(ValueError, match="cell_m"):
        geo.GridIndex([1.0], [1.0], cell_m=0.0)


@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 60),
    spread=st.sampled_from([1e-6, 0.01, 0.3, 3.0]),
    dup=st.sampled_from([0.0, 0.3]),
    cell_m=st.sampled_from([None, 50.0, 2000.0]),
    radius_scale=st.sampled_from([0.0, 100.0, 3000.0, 400_000.0]),
)
@settings(max_examples=120, deadline=None)
def test_within_matches_brute_force(seed, n, spread, dup, cell_m, radius_scale) -> None:  # noqa: PLR0917
    plat, plon = city_points(seed, n, spread, dup)
    qlat, qlon = city_points(seed + 7, 8, spread)
    if n:
        qlat[:2], qlon[:2] = plat[:2], plon[:2]  # on a point: distance 0 must be inside r = 0
    qlon[3] = np.nan
    rng = np.random.default_rng(seed)
    radius = rng.random(8) * radius_scale
    radius[4] = -1.0
    radius[5] = np.nan
    hits = geo.GridIndex(plat, plon, cell_m=cell_m).within(qlat, qlon, radius)
    ref = ref_within(plat, plon, qlat, qlon, radius)
    ref[3] = ref[4] = ref[5] = []
    assert hits.starts.shape == (9,)
    assert hits.counts.tolist() == [len(r) for r in ref]
    for q, row in enumerate(ref):
        seg = slice(hits.starts[q], hits.starts[q + 1])
        np.testing.assert_allclose(hits.dist[seg], [d for d, _ in row], rtol=1e-9, atol=1e-6)
        assert sorted(hits.idx[seg].tolist()) == sorted(i for _, i in row)
    assert hits.query.tolist() == [q for q, r in enumerate(ref) for _ in r]


def test_within_scalar_radius_and_order() -> None:
    lat = np.array([30.0, 30.001, 30.002, 30.0])
    lon = np.array([104.0, 104.0, 104.0, 104.0])
    hits = geo.GridIndex(lat, lon, cell_m=100.0).within([30.0, 40.0], [104.0, 104.0], 150.0)
    assert hits.starts.tolist() == [0, 3, 3]
    assert hits.idx.tolist() == [0, 3, 1]  # tie at distance 0 by index, then by distance


# ---------------------------------------------------------------- site ISD


def ref_site_isd(cells: pl.DataFrame, k: int) -> dict[str, float | None]:
    sites = cells.group_by("site_id").agg(pl.col("lat").mean(), pl.col("lon").mean())
    pos = {r["site_id"]: (r["lat"], r["lon"]) for r in sites.iter_rows(named=True)}
    isd = {}
    for s, (la, lo) in pos.items():
        d = sorted(ref_haversine(la, lo, *p) for t, p in pos.items() if t != s)[:k]
        isd[s] = sum(d) / len(d) if d else None
    return {r["cell_id"]: isd[r["site_id"]] for r in cells.iter_rows(named=True)}


def cells_frame(n_sites: int, seed: int = 0) -> pl.DataFrame:
    lat, lon = city_points(seed, n_sites, 0.1)
    rows = []
    for s in range(n_sites):
        for c in range(3):
            rows.append((f"S{s}-{c}", f"S{s}", lat[s] + 1e-5 * c, lon[s]))
    return pl.DataFrame(rows, schema=["cell_id", "site_id", "lat", "lon"], orient="row")


@pytest.mark.parametrize(("n_sites", "k"), [(1, 3), (2, 3), (4, 3), (40, 3), (40, 1), (40, 6)])
def test_site_isd_matches_reference(n_sites, k) -> None:
    cells = cells_frame(n_sites).sample(fraction=1.0, shuffle=True, seed=1)
    cfg = Config(diagnosis=DiagnosisConfig(isd_neighbours=k))
    got = geo.site_isd(cells, cfg)
    assert got.columns == ["cell_id", "site_id", "isd_m"]
    assert got.schema["isd_m"] == pl.Float64
    assert got["cell_id"].to_list() == sorted(cells["cell_id"].to_list())
    want = ref_site_isd(cells, k)
    for cid, v in zip(got["cell_id"], got["isd_m"], strict=True):
        if want[cid] is None:
            assert v is None
        else:
            assert v == pytest.approx(want[cid], rel=1e-9)


def test_site_isd_lone_site_null_and_missing_site_id() -> None:
    cells = pl.DataFrame({
        "cell_id": ["a", "b", "c"],
        "site_id": [None, None, "X"],
        "lat": [30.0, 30.01, 30.02],
        "lon": [104.0, 104.0, 104.0],
    })
    got = geo.site_isd(cells)
    # each cell without site_id is a site of its own: three sites, two neighbours each
    assert got["isd_m"].null_count() == 0
    assert got.filter(pl.col("cell_id") == "a")["isd_m"][0] == pytest.approx(
        (ref_haversine(30, 104, 30.01, 104) + ref_haversine(30, 104, 30.02, 104)) / 2)
    assert got["site_id"].to_list() == [None, None, "X"]
    lone = geo.site_isd(cells.filter(pl.col("cell_id") == "c"))
    assert lone["isd_m"].to_list() == [None]
    with pytest.raises(KqiError, match="lat"):
        geo.site_isd(cells.drop("lat"))


def test_site_isd_20k_network_runs() -> None:
    rng = np.random.default_rng(5)
    n_sites = 7000
    lat = np.repeat(30.0 + rng.random(n_sites) * 1.0, 3)
    lon = np.repeat(104.0 + rng.random(n_sites) * 1.0, 3)
    site = np.repeat(np.arange(n_sites), 3).astype(str)
    cells = pl.DataFrame({
        "cell_id": [f"{s}-{i % 3}" for i, s in enumerate(site)],
        "site_id": site, "lat": lat, "lon": lon,
    })
    got = geo.site_isd(cells)
    assert got.height == 21_000
    assert got["isd_m"].null_count() == 0
    # ~7000 sites on ~100 km x 110 km: mean nearest-3 distance is around a kilometre
    assert 400 < got["isd_m"].mean() < 2500


def test_inputs_of_any_array_kind() -> None:
    import pandas as pd
    import pyarrow as pa

    lat = [30.0, 30.01, 30.025]
    lon = [104.0, 104.0, 104.0]
    want = geo.haversine_m(np.array(lat), np.array(lon), 30.0, 104.0)
    for kind in (list, np.array, pl.Series, pa.array, pa.chunked_array, pd.Series):
        la = kind([lat]) if kind is pa.chunked_array else kind(lat)
        lo = kind([lon]) if kind is pa.chunked_array else kind(lon)
        np.testing.assert_allclose(geo.haversine_m(la, lo, 30.0, 104.0), want)
        idx, _ = geo.GridIndex(la, lo).knn(la, lo, 1, exclude_self=True)
        assert idx[:, 0].tolist() == [1, 0, 1]
    # read-only arrays (zero-copy Arrow buffers) are accepted
    ro = np.array(lat)
    ro.setflags(write=False)
    hits = geo.GridIndex(ro, np.array(lon)).within(ro, np.array(lon), 1200.0)
    assert hits.counts.tolist() == [2, 2, 1]
