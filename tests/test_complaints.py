"""Complaint linking (kernel vs plain reference, behaviour), hotspots, silent cells, subscribers."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kqi.ingest import Ingest
from reference import ref_bearing, ref_haversine

from kqi import geo
from kqi._link_kernels import link_candidates
from kqi.complaints import (
    classify,
    hotspots,
    link_complaints,
    silent_poor_cells,
)
from kqi.config import Config, config_from_dict
from kqi.errors import InputError, KqiError
from kqi.schema import COMPLAINT_LINKS

# --------------------------------------------------------------------------------------------
# plain-Python reference of the linking kernel (brute force over every cell, no grid index)
# --------------------------------------------------------------------------------------------






def ref_score(d, radius, point, cell, poor, *, cfg) -> float:
    lat, lon = point
    clat, clon, azimuth, bw = cell
    near = 1.0 - d / radius
    if bw >= 360.0 or d < cfg.min_bearing_m:
        beam = 1.0
    else:
        off = abs(ref_bearing(clat, clon, lat, lon) - azimuth) % 360.0
        off = 360.0 - off if off > 180.0 else off
        half = bw / 2.0
        beam = 1.0 if off <= half else max(0.0, 1.0 - (off - half) / half)
    return near + cfg.beam_weight * beam + cfg.poor_weight * poor


def ref_link(query, cells, poor, cfg):
    """(best cell row or -1, its score) by brute force; a cell is (lat, lon, az, bw, reach)."""
    lat, lon, svc = query
    best, best_s, best_d = -1, -math.inf, math.inf
    for c, (clat, clon, az, bw, reach) in enumerate(cells):
        d = ref_haversine(clat, clon, lat, lon)
        if d > reach:
            continue
        pr = int(poor[c].any()) if svc == 3 else int(poor[c, svc])
        s = ref_score(d, reach, (lat, lon), (clat, clon, az, bw), pr, cfg=cfg)
        if s > best_s or (s == best_s and (d < best_d or (d == best_d and c < best))):
            best, best_s, best_d = c, s, d
    return best, best_s


def run_kernel(q, cells, poor, svc):
    cfg = Config().complaints
    clat = np.array([c[0] for c in cells])
    clon = np.array([c[1] for c in cells])
    reach = np.array([c[4] for c in cells])
    index = geo.GridIndex(clat, clon)
    qlat = np.array([p[0] for p in q])
    qlon = np.array([p[1] for p in q])
    hits = index.within(qlat, qlon, reach.max())
    n = len(q)
    out_cell = np.empty(n, dtype=np.int64)
    out_dist = np.empty(n)
    out_score = np.empty(n)
    link_candidates(qlat, qlon, svc, hits.starts, hits.idx, hits.dist, clat, clon,
                    np.array([c[2] for c in cells]), np.array([c[3] for c in cells]), reach, poor,
                    cfg.min_bearing_m, cfg.beam_weight, cfg.poor_weight,
                    out_cell, out_dist, out_score)
    return out_cell, out_score


coord = st.tuples(st.floats(30.0, 30.03), st.floats(120.0, 120.03))


@settings(max_examples=40, deadline=None)
@given(
    sites=st.lists(st.tuples(coord, st.floats(200.0, 3000.0)), min_size=1, max_size=6),
    queries=st.lists(st.tuples(coord, st.integers(0, 3)), min_size=1, max_size=12),
    bws=st.sampled_from([30.0, 65.0, 90.0, 360.0]),
    poor_bits=st.integers(0, 2**18 - 1),
)
def test_kernel_matches_reference(sites, queries, bws, poor_bits):
    cfg = Config().complaints
    cells = []
    for (la, lo), reach in sites:
        for az in (0.0, 120.0, 240.0):
            cells.append((la, lo, az, bws, reach))
    poor = np.array([[(poor_bits >> ((i * 3 + s) % 18)) & 1 for s in range(3)]
                     for i in range(len(cells))], dtype=np.int8)
    q = [p for p, _ in queries]
    svc = np.array([s for _, s in queries], dtype=np.int8)
    got, got_s = run_kernel(q, cells, poor, svc)
    for i, (lat, lon) in enumerate(q):
        want, want_s = ref_link((lat, lon, int(svc[i])), cells, poor, cfg)
        if want != got[i]:
            # only a numerical tie (or a cell right at its reach) may go either way
            assert want >= 0
            assert got[i] >= 0
            assert abs(want_s - got_s[i]) < 1e-9
        elif want >= 0:
            assert got_s[i] == pytest.approx(want_s, abs=1e-9)


def test_kernel_skips_non_linkable_and_readonly_arrays():
    cells = [(30.0, 120.0, 0.0, 65.0, 500.0)]
    poor = np.zeros((1, 3), dtype=np.int8)
    poor.setflags(write=False)
    svc = np.array([-1, 0], dtype=np.int8)
    svc.setflags(write=False)
    got, _ = run_kernel([(30.001, 120.0), (30.001, 120.0)], cells, poor, svc)
    assert got.tolist() == [-1, 0]


# --------------------------------------------------------------------------------------------
# link_complaints behaviour on hand-made frames
# --------------------------------------------------------------------------------------------

def two_sites() -> pl.DataFrame:
    """Two three-sector sites ~960 m apart (east-west)."""
    return pl.DataFrame({
        "cell_id": ["A-1", "A-2", "A-3", "B-1", "B-2", "B-3"],
        "site_id": ["A", "A", "A", "B", "B", "B"],
        "cell_name": ["a1", "a2", "a3", "b1", "b2", "b3"],
        "lat": [30.0] * 6,
        "lon": [120.0] * 3 + [120.01] * 3,
        "azimuth": [0.0, 120.0, 240.0] * 2,
        "beamwidth": [65.0] * 6,
        "vendor": ["ZTE"] * 3 + ["Nokia"] * 3,
        "region": ["north"] * 3 + ["south"] * 3,
    })


def complaints_frame(rows: list[dict]) -> pl.DataFrame:
    base = {"complaint_id": None, "ts": "2026-01-10 10:00:00", "lat": None, "lon": None,
            "category": "browsing", "msisdn": "13900000000", "description": "", "cell_id": None}
    df = pl.DataFrame([{**base, **r} for r in rows], schema={
        "complaint_id": pl.String, "ts": pl.String, "lat": pl.Float64, "lon": pl.Float64,
        "category": pl.String, "msisdn": pl.String, "description": pl.String,
        "cell_id": pl.String})
    return df.with_columns(pl.col("ts").str.to_datetime())


def offset(lat: float, lon: float, bearing: float, dist_m: float) -> tuple[float, float]:
    dlat = dist_m * math.cos(math.radians(bearing)) / 111_195.0
    dlon = dist_m * math.sin(math.radians(bearing)) / (111_195.0 * math.cos(math.radians(lat)))
    return lat + dlat, lon + dlon


def test_classify_maps_english_and_chinese():
    cfg = Config()
    got = classify(pl.Series(["上网慢", " Video ", "游戏卡顿", "无信号", "资费", "账单", "weird", None]), cfg)
    assert got["network"].to_list() == [True, True, True, True, False, False, False, False]
    assert got["service"].to_list() == ["browsing", "video", "gaming", "coverage",
                                        None, None, None, None]


def test_classify_config_extends_mapping():
    cfg = config_from_dict({"complaints": {"categories": {"Dropped_Call": "coverage"}}})
    got = classify(pl.Series(["dropped_call", "billing"]), cfg)
    assert got["network"].to_list() == [True, False]


def test_link_picks_sector_facing_the_complaint():
    cells = two_sites()
    rows = []
    for k, (site_lon, sector, az) in enumerate(
            [(120.0, "A-1", 0.0), (120.0, "A-2", 120.0), (120.0, "A-3", 240.0),
             (120.01, "B-2", 120.0), (120.01, "B-1", 10.0)]):
        lat, lon = offset(30.0, site_lon, az, 250.0)
        rows.append({"complaint_id": f"c{k}", "lat": lat, "lon": lon, "category": "上网慢",
                     "description": sector})
    comp = complaints_frame(rows)
    links = link_complaints(comp, cells, None, None, Config())
    want = comp.select("complaint_id", pl.col("description").alias("want"))
    got = links.join(want, on="complaint_id")
    assert (got["cell_id"] == got["want"]).all()
    assert (got["method"] == "spatial").all()
    assert got["distance_m"].to_numpy() == pytest.approx(250.0, rel=0.01)
    assert links.columns[:7] == [f.name for f in COMPLAINT_LINKS]


def test_poor_cell_is_preferred_between_overlapping_beams():
    cells = pl.DataFrame({
        "cell_id": ["S-1", "S-2"], "site_id": ["S", "S"], "lat": [30.0, 30.0],
        "lon": [120.0, 120.0], "azimuth": [0.0, 0.0], "beamwidth": [65.0, 65.0],
    })
    lat, lon = offset(30.0, 120.0, 0.0, 300.0)
    comp = complaints_frame([{"complaint_id": "v", "lat": lat, "lon": lon, "category": "视频卡顿"},
                             {"complaint_id": "g", "lat": lat, "lon": lon, "category": "游戏延迟"}])
    kq = pl.DataFrame({"cell_id": ["S-2", "S-1"], "service": ["video", "browsing"],
                       "tests": [100, 100], "good_tests": [50, 50], "good_rate": [0.5, 0.5],
                       "poor": [True, True]})
    links = link_complaints(comp, cells, kq, None, Config()).sort("complaint_id")
    # video complaint -> the cell poor for video; gaming: nobody poor -> tie -> lower cell_id
    assert links["cell_id"].to_list() == ["S-1", "S-2"]
    assert links["service"].to_list() == ["gaming", "video"]


def test_non_network_complaints_are_never_linked():
    cells = two_sites()
    comp = complaints_frame([
        {"complaint_id": "b1", "category": "billing", "lat": 30.001, "lon": 120.0, "cell_id": "A-1"},
        {"complaint_id": "b2", "category": "资费", "lat": 30.001, "lon": 120.0},
        {"complaint_id": "b3", "category": "账单", "cell_id": "A-1"},
        {"complaint_id": "u", "category": "unheard-of", "lat": 30.001, "lon": 120.0},
    ])
    links = link_complaints(comp, cells, None, None, Config())
    assert links["cell_id"].null_count() == 4
    assert (links["method"] == "non_network").all()
    assert not links["network"].any()


def test_crm_cell_kept_and_invalid_cell_falls_back():
    cells = two_sites()
    lat, lon = offset(30.0, 120.01, 120.0, 200.0)
    comp = complaints_frame([
        {"complaint_id": "k1", "category": "video", "cell_id": "A-3", "lat": lat, "lon": lon},
        {"complaint_id": "k2", "category": "video", "cell_id": "A-3"},
        {"complaint_id": "k3", "category": "video", "cell_id": "ZZZ", "lat": lat, "lon": lon},
        {"complaint_id": "k4", "category": "video", "cell_id": "ZZZ"},
        {"complaint_id": "k5", "category": "video"},
    ])
    links = link_complaints(comp, cells, None, None, Config())
    assert links["cell_id"].to_list() == ["A-3", "A-3", "B-2", None, None]
    assert links["method"].to_list() == ["crm", "crm", "spatial", "unlinked", "unlinked"]
    d = links["distance_m"].to_list()
    assert d[0] == pytest.approx(ref_haversine(30.0, 120.0, lat, lon), rel=1e-6)
    assert d[1] is None
    assert links["score"].to_list()[:2] == [None, None]


def test_radius_scales_with_isd():
    cells = two_sites()
    far = offset(30.0, 120.0, 0.0, 2500.0)
    comp = complaints_frame([{"complaint_id": "f", "lat": far[0], "lon": far[1]}])
    cfg = Config()
    links = link_complaints(comp, cells, None, None, cfg)
    # ISD ~960 m -> reach 1.5 x 960 = ~1440 m: a complaint 2.5 km away is not linked
    assert links["method"].to_list() == ["unlinked"]
    assert links["radius_m"][0] is None
    wide = config_from_dict({"complaints": {"radius_isd_factor": 3.0}})
    got = link_complaints(comp, cells, None, None, wide)
    assert got["cell_id"].to_list() == ["A-1"]
    assert got["radius_m"][0] == pytest.approx(3.0 * ref_haversine(30, 120, 30, 120.01), rel=1e-3)
    capped = config_from_dict({"complaints": {"radius_isd_factor": 3.0, "max_radius_m": 1000.0}})
    assert link_complaints(comp, cells, None, None, capped)["method"].to_list() == ["unlinked"]


def test_links_deterministic_and_without_msisdn():
    cells = two_sites()
    rng = np.random.default_rng(3)
    rows = [{"complaint_id": f"c{i:03d}", "lat": 30.0 + rng.uniform(-0.005, 0.005),
             "lon": 120.0 + rng.uniform(-0.003, 0.013),
             "category": ["上网慢", "video", "billing", "无信号"][i % 4],
             "msisdn": f"1380013{i:04d}"} for i in range(60)]
    comp = complaints_frame(rows)
    a = link_complaints(comp, cells, None, None, Config())
    b = link_complaints(comp.sample(fraction=1.0, shuffle=True, seed=7), cells.reverse(), None,
                        None, Config())
    assert a.equals(b)
    assert a["complaint_id"].is_sorted()
    assert "msisdn" not in a.columns
    assert a.filter(pl.col("method") == "spatial").height == 45


def test_cells_without_beamwidth_column_and_bad_input():
    cells = two_sites().drop("beamwidth", "site_id")
    lat, lon = offset(30.0, 120.0, 240.0, 200.0)
    comp = complaints_frame([{"complaint_id": "x", "lat": lat, "lon": lon}])
    links = link_complaints(comp, cells, None, None, Config())
    assert links["cell_id"].to_list() == ["A-3"]
    assert links["site_id"].to_list() == [None]
    with pytest.raises(KqiError, match="category"):
        link_complaints(comp.drop("category"), cells, None, None, Config())
    with pytest.raises(KqiError, match="not unique"):
        link_complaints(comp, pl.concat([cells, cells]), None, None, Config())


def test_link_complaints_matches_brute_force_with_mixed_reach():
    """Dense core plus sparse outskirts: each cell's reach follows its own ISD (grouped queries)."""
    rng = np.random.default_rng(21)
    core = [(30.0 + rng.uniform(0, 0.012), 120.0 + rng.uniform(0, 0.012)) for _ in range(12)]
    rural = [(30.03 + rng.uniform(0, 0.06), 120.03 + rng.uniform(0, 0.06)) for _ in range(5)]
    rows = []
    for k, (la, lo) in enumerate(core + rural):
        for j, az in enumerate((0.0, 120.0, 240.0)):
            rows.append({"cell_id": f"S{k:02d}-{j}", "site_id": f"S{k:02d}", "lat": la, "lon": lo,
                         "azimuth": az, "beamwidth": 65.0 if k % 4 else 360.0})
    cells = pl.DataFrame(rows)
    n = 150
    comp = complaints_frame([
        {"complaint_id": f"q{i:03d}", "lat": 30.0 + rng.uniform(-0.01, 0.1),
         "lon": 120.0 + rng.uniform(-0.01, 0.1),
         "category": ["browsing", "video", "gaming", "no_signal"][i % 4]} for i in range(n)])
    kq = pl.DataFrame({"cell_id": cells["cell_id"][::5], "service": "video", "poor": True})
    cfg = Config()
    links = link_complaints(comp, cells, kq, None, cfg)
    isd = geo.site_isd(cells, cfg).sort("cell_id")
    cc = cfg.complaints
    reach = np.clip(cc.radius_isd_factor * isd["isd_m"].to_numpy(), cc.min_radius_m, cc.max_radius_m)
    cs = cells.sort("cell_id")
    ref_cells = list(zip(cs["lat"], cs["lon"], cs["azimuth"], cs["beamwidth"], reach, strict=True))
    poor = np.zeros((cs.height, 3), dtype=np.int8)
    poor[np.isin(cs["cell_id"].to_numpy(), kq["cell_id"].to_numpy()), 1] = 1
    svc_code = {"browsing": 0, "video": 1, "gaming": 2, "coverage": 3}
    assert reach.min() < 1000 < reach.max()
    for row in links.iter_rows(named=True):
        q = comp.filter(pl.col("complaint_id") == row["complaint_id"]).row(0, named=True)
        want, want_s = ref_link((q["lat"], q["lon"], svc_code[row["service"]]), ref_cells, poor, cc)
        if want < 0:
            assert row["cell_id"] is None
            assert row["method"] == "unlinked"
        else:
            assert row["cell_id"] == cs["cell_id"][want]
            assert row["score"] == pytest.approx(want_s, abs=1e-9)
            assert row["radius_m"] == pytest.approx(reach[want])
    assert links.filter(pl.col("method") == "spatial").height > n // 2


# --------------------------------------------------------------------------------------------
# silent cells
# --------------------------------------------------------------------------------------------

def test_silent_poor_cells():
    kq = pl.DataFrame({
        "cell_id": ["A-1", "A-1", "A-2", "B-1", "B-2"],
        "service": ["video", "browsing", "browsing", "gaming", "browsing"],
        "tests": [50, 100, 100, 40, 100], "good_tests": [40, 70, 95, 30, 70],
        "good_rate": [0.8, 0.7, 0.95, 0.75, 0.7], "poor": [True, True, False, True, True],
    })
    links = pl.DataFrame({"complaint_id": ["1", "2", "3"], "cell_id": ["B-1", "A-2", "B-2"],
                          "network": [True, True, False], "method": ["spatial", "crm", "non_network"]})
    silent = silent_poor_cells(kq, links)
    assert silent["cell_id"].to_list() == ["A-1", "B-2"]
    assert silent["poor_services"].to_list() == ["browsing;video", "browsing"]
    assert silent["bad_tests"].to_list() == [40, 30]
    assert silent_poor_cells(kq, None)["cell_id"].to_list() == ["A-1", "B-1", "B-2"]


# --------------------------------------------------------------------------------------------
# hotspots
# --------------------------------------------------------------------------------------------

def linked_frame(cell_counts: dict[str, int], start: datetime, days: int, seed: int = 0):
    """Links + complaints with ``n`` network complaints per cell spread over ``days`` days."""
    rng = np.random.default_rng(seed)
    ids, cells_, ts = [], [], []
    k = 0
    for cell, n in cell_counts.items():
        for _ in range(n):
            ids.append(f"c{k:05d}")
            cells_.append(cell)
            ts.append(start + timedelta(days=int(rng.integers(0, days)), hours=3))
            k += 1
    links = pl.DataFrame({"complaint_id": ids, "cell_id": cells_, "network": [True] * k,
                          "method": ["spatial"] * k})
    comp = pl.DataFrame({"complaint_id": ids, "ts": ts})
    return links, comp


def test_volume_hotspots_ranked_with_ties_by_cell_id():
    links, comp = linked_frame({"A-1": 3, "B-2": 5, "A-2": 3, "B-1": 1}, datetime(2026, 1, 1), 3)
    links = pl.concat([links, pl.DataFrame({"complaint_id": ["x"], "cell_id": [None],
                                            "network": [False], "method": ["non_network"]},
                                           schema=links.schema)])
    cfg = config_from_dict({"complaints": {"hotspot_top": 3}})
    hs = hotspots(links, comp, two_sites(), cfg)
    vol = hs.filter(pl.col("kind") == "volume")
    assert vol["cell_id"].to_list() == ["B-2", "A-1", "A-2"]
    assert vol["rank"].to_list() == [1, 2, 3]
    assert vol["complaints"].to_list() == [5, 3, 3]
    assert "increase" not in hs["kind"].to_list()  # 3 days < two 7-day periods


def test_increase_compares_last_period_with_previous():
    start = datetime(2026, 1, 1)
    ids = [f"i{k}" for k in range(9)]
    # window 2026-01-01 .. 2026-01-14: previous = days 1-7, last = days 8-14
    days = [0, 3, 6, 7, 8, 13, 2, 9, 10]
    cells_ = ["A-1", "A-1", "A-1", "A-1", "A-1", "A-1", "B-1", "B-1", "B-1"]
    links = pl.DataFrame({"complaint_id": ids, "cell_id": cells_, "network": [True] * 9,
                          "method": ["crm"] * 9})
    comp = pl.DataFrame({"complaint_id": ids, "ts": [start + timedelta(days=d) for d in days]})
    hs = hotspots(links, comp, two_sites(), Config())
    inc = hs.filter(pl.col("kind") == "increase")
    assert inc.select("cell_id", "complaints", "previous", "increase").rows() == [
        ("B-1", 2, 1, 1)]  # 3 last vs 3 previous -> no increase
    short = comp.filter(pl.col("complaint_id") != "i0")  # window now 13 days
    assert hotspots(links, short, two_sites(), Config()).filter(
        pl.col("kind") == "increase").height == 0


def test_per_10k_from_cell_file_region_file_and_estimate(tmp_path):
    links, comp = linked_frame({"A-1": 4, "B-2": 6, "B-3": 1}, datetime(2026, 1, 1), 2)
    cells = two_sites()
    p = tmp_path / "subs.csv"
    p.write_text("小区ID,用户数\nA-1,2000\nB-2,12000\nB-3,50\n", encoding="utf-8-sig")
    subs = read_subscribers(p)
    hs = hotspots(links, comp, cells, Config(), subscribers=subs).filter(pl.col("kind") == "per_10k")
    # B-3 has fewer subscribers than per_10k_min_subscribers (100)
    assert hs.select("cell_id", "per_10k", "subscribers_source").rows() == [
        ("A-1", 20.0, "file:cell"), ("B-2", 5.0, "file:cell")]

    p2 = tmp_path / "regions.csv"
    p2.write_bytes("区域,subscribers\nnorth,10000\nsouth,70000\n".encode("gbk"))
    subs2 = read_subscribers(p2)
    hs2 = hotspots(links, comp, cells, Config(), subscribers=subs2).filter(
        pl.col("kind") == "per_10k")
    assert hs2.select("region", "complaints", "per_10k", "subscribers_source").rows() == [
        ("north", 4, 4.0, "file:region"), ("south", 7, 1.0, "file:region")]
    assert hs2["cell_id"].null_count() == 2

    kpis = pl.DataFrame({
        "ts": [datetime(2026, 1, 1, h) for h in (10, 11)] * 2 + [datetime(2026, 1, 2, 10)] * 2,
        "cell_id": ["A-1", "A-1", "B-2", "B-2", "A-1", "B-2"],
        "rrc_users_max": [20.0, 40.0, 100.0, None, 60.0, 100.0],
    })
    hs3 = hotspots(links, comp, cells, Config(), kpis=kpis).filter(pl.col("kind") == "per_10k")
    # daily max 40, 60 -> mean 50 x 10 = 500 subscribers; B-2: 100 x 10 = 1000
    assert hs3.select("cell_id", "subscribers", "per_10k", "subscribers_source").rows() == [
        ("A-1", 500.0, 80.0, "estimate:rrc_users"), ("B-2", 1000.0, 60.0, "estimate:rrc_users")]


def read_subscribers(path, rejects_dir=None):
    return Ingest(Config(), rejects_dir=rejects_dir).subscribers(path)


def test_subscribers_feed_errors_and_rejects(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_subscribers(tmp_path / "nope.csv")
    p = tmp_path / "s.csv"
    p.write_text("cell_id,count\nA,1\n")
    with pytest.raises(InputError, match="column 'subscribers': missing required column"):
        read_subscribers(p)
    p.write_text("foo,subscribers\nA,1\n")
    with pytest.raises(InputError, match="cell_id or a region"):
        read_subscribers(p)
    p.write_text("cell_id,subscribers\n")
    with pytest.raises(InputError, match="no data rows"):
        read_subscribers(p)
    # a bad row is rejected with its line and reason, like any feed's; the others are kept
    p.write_text("cell_id,subscribers\nA,1\nB,-3\n,7\nA,2\n")
    ing = Ingest(Config(), rejects_dir=tmp_path / "rejects")
    assert ing.subscribers(p).rows() == [("A", 3.0)]
    rep = ing.reports["subscribers"]
    assert (rep.rows_read, rep.rows_accepted, rep.rows_rejected) == (4, 2, 2)
    rejects = pl.read_csv(tmp_path / "rejects" / "subscribers.csv", infer_schema=False)
    assert rejects["line"].to_list() == ["3", "4"]
    assert "range" in rejects["reason"][0] or "subscribers" in rejects["reason"][0]


def test_spatial_hotspots_find_dense_groups():
    rng = np.random.default_rng(11)
    centres = [(30.0, 120.0, 40), (30.02, 120.03, 25)]
    lat, lon = [], []
    for clat, clon, n in centres:
        lat += list(clat + rng.normal(0, 0.0005, n))
        lon += list(clon + rng.normal(0, 0.0005, n))
    lat += list(rng.uniform(29.9, 30.1, 15))
    lon += list(rng.uniform(119.9, 120.1, 15))
    n = len(lat)
    ids = [f"s{i:03d}" for i in range(n)]
    comp = pl.DataFrame({"complaint_id": ids, "lat": lat, "lon": lon,
                         "ts": [datetime(2026, 1, 1)] * n})
    links = pl.DataFrame({"complaint_id": ids, "cell_id": ["A-1"] * 40 + ["B-2"] * (n - 40),
                          "network": [True] * n, "method": ["spatial"] * n})
    hs = hotspots(links, comp, two_sites(), Config())
    sp = hs.filter(pl.col("kind") == "spatial")
    assert sp.height >= 2
    top = sp.row(0, named=True)
    assert top["lat"] == pytest.approx(30.0, abs=0.001)
    assert top["lon"] == pytest.approx(120.0, abs=0.001)
    assert 35 <= top["complaints"] <= 45
    assert top["cell_id"] == "A-1"
    assert top["radius_m"] < 150
    second = sp.row(1, named=True)
    assert second["lat"] == pytest.approx(30.02, abs=0.003)
    assert second["lon"] == pytest.approx(120.03, abs=0.003)
    assert hs.equals(hotspots(links, comp.reverse(), two_sites(), Config()))


def test_hotspots_empty_links():
    links = pl.DataFrame(schema={"complaint_id": pl.String, "cell_id": pl.String,
                                 "network": pl.Boolean, "method": pl.String})
    comp = pl.DataFrame(schema={"complaint_id": pl.String, "ts": pl.Datetime("us")})
    hs = hotspots(links, comp, two_sites(), Config())
    assert hs.height == 0
    assert hs.columns[:4] == ["kind", "rank", "cell_id", "complaints"]


# --------------------------------------------------------------------------------------------
# accuracy on the synthetic city's ground truth
# --------------------------------------------------------------------------------------------

SYNTH_SEEDS = (7, 8, 9)


@pytest.fixture(scope="module")
def synth_links(tmp_path_factory):
    """(cells, complaints, truth, links, city) for a few synthetic cities, two weeks each."""
    from kqi.synth import make_city

    out = []
    for seed in SYNTH_SEEDS:
        city = make_city(tmp_path_factory.mktemp(f"city{seed}"), seed=seed, n_cells=1600, days=14,
                         tests_per_cell_day=2, complaints_per_day=100)
        cells = pl.read_csv(city.cells, schema_overrides={"cell_id": pl.String,
                                                          "site_id": pl.String})
        comp = pl.read_csv(city.complaints, schema_overrides={
            "cell_id": pl.String, "msisdn": pl.String, "complaint_id": pl.String,
        }).with_columns(pl.col("ts").str.to_datetime())
        # poor flags as the flagging stage would give them for the planted poor services
        kq = (city.truth_df.select("cell_id", pl.col("poor_services").fill_null("")
                                   .str.split(";").alias("_s"))
              .join(pl.DataFrame({"service": ["browsing", "video", "gaming"]}), how="cross")
              .with_columns(pl.col("_s").list.contains(pl.col("service")).alias("poor"),
                            pl.lit(100).alias("tests"), pl.lit(50).alias("good_tests"))
              .drop("_s"))
        links = link_complaints(comp, cells, kq, geo.site_isd(cells, Config()), Config())
        out.append((cells, comp, kq, links, city))
    return out


def test_link_accuracy_on_synthetic_truth(synth_links):
    right_site = right_cell = n_net = 0
    for cells, _, _, links, city in synth_links:
        truth = city.complaint_truth_df.select(
            pl.col("complaint_id").cast(pl.String), pl.col("cell_id").alias("true_cell"),
            pl.col("network").alias("true_network"))
        j = (links.join(truth, on="complaint_id", how="inner")
             .join(cells.select(pl.col("cell_id").alias("true_cell"),
                                pl.col("site_id").alias("true_site")), on="true_cell"))
        assert j.height == links.height == truth.height
        # billing / tariff complaints are never linked, and never called network complaints
        non = j.filter(~pl.col("true_network"))
        assert non.height > 100
        assert non["cell_id"].null_count() == non.height
        assert (non["method"] == "non_network").all()
        net = j.filter(pl.col("true_network"))
        assert net["network"].all()
        n_net += net.height
        right_site += int((net["site_id"] == net["true_site"]).fill_null(False).sum())
        right_cell += int((net["cell_id"] == net["true_cell"]).fill_null(False).sum())
        crm = net.filter(pl.col("method") == "crm")
        assert (crm["cell_id"] == crm["true_cell"]).all()
    assert n_net > 3000
    assert right_site / n_net >= 0.95
    assert right_cell / n_net >= 0.85


def test_increase_hotspots_find_rising_cells(synth_links):
    found = rising_total = 0
    for cells, comp, _, links, city in synth_links:
        hs = hotspots(links, comp, cells, Config())
        inc = hs.filter(pl.col("kind") == "increase")
        assert inc.height == 10
        rising = set(city.truth_df.filter(pl.col("complaints_rising"))["cell_id"].to_list())
        found += len(rising & set(inc["cell_id"].to_list()))
        rising_total += min(len(rising), 10)
        assert set(hs["kind"].unique().to_list()) >= {"volume", "increase", "spatial"}
    assert found / rising_total >= 0.6


def test_silent_cells_match_truth(synth_links):
    for _, _, kq, links, city in synth_links:
        silent = set(silent_poor_cells(kq, links)["cell_id"].to_list())
        poor = set(kq.filter(pl.col("poor"))["cell_id"].to_list())
        heard = set(city.complaint_truth_df.filter(pl.col("network"))["cell_id"].to_list())
        truth_silent = poor - heard
        assert len(truth_silent) > 20
        overlap = len(silent & truth_silent) / len(silent | truth_silent)
        assert overlap >= 0.8


def test_wide_spatial_clusters_are_split(tmp_path):
    """A sparse week of complaints: hdbscan's top cluster is the whole dense core unless split."""
    from kqi.synth import make_city

    city = make_city(tmp_path, seed=7, n_cells=1600, days=7, tests_per_cell_day=1)
    cells = pl.read_csv(city.cells, schema_overrides={"cell_id": pl.String, "site_id": pl.String})
    comp = pl.read_csv(city.complaints, schema_overrides={
        "cell_id": pl.String, "msisdn": pl.String}).with_columns(pl.col("ts").str.to_datetime())
    links = link_complaints(comp, cells, None, None, Config())

    def spatial(max_radius_m: float) -> pl.DataFrame:
        cfg = config_from_dict({"complaints": {"hotspot_max_radius_m": max_radius_m}})
        return hotspots(links, comp, cells, cfg).filter(pl.col("kind") == "spatial")

    blob = spatial(1e9)
    assert blob["radius_m"][0] > 2000
    split = spatial(1000.0)
    assert split.height >= blob.height
    assert split["radius_m"].max() < blob["radius_m"][0]
    assert split["complaints"][0] < blob["complaints"][0]


def test_category_spelling_variants_map_to_one_category():
    cats = pl.Series(["No Signal", "no-signal", " NO_SIGNAL ", "Video Stall", "网络慢", "账单"])
    got = classify(cats, Config())
    assert got["service"].to_list() == ["coverage", "coverage", "coverage", "video", "browsing", None]
    assert got["network"].to_list() == [True, True, True, True, True, False]


def _stamped(times: list[datetime]) -> tuple[pl.DataFrame, pl.DataFrame]:
    ids = [f"k{i}" for i in range(len(times))]
    comp = pl.DataFrame({"complaint_id": ids, "ts": times},
                        schema={"complaint_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    links = pl.DataFrame({"complaint_id": ids, "cell_id": ["A-1"] * len(ids),
                          "network": [True] * len(ids), "method": ["crm"] * len(ids)})
    return comp, links


def test_increase_periods_are_local_calendar_days():
    # Shanghai days: one complaint on Jan 1, two in the last week (Jan 8 07:00 local = Jan 7 UTC)
    utc = [datetime(2026, 1, 1, 4), datetime(2026, 1, 7, 23), datetime(2026, 1, 14, 4)]
    comp, links = _stamped(utc)
    cfg = config_from_dict({"ingest": {"timezone": "Asia/Shanghai"}})
    hs = hotspots(links, comp, two_sites(), cfg)
    inc = hs.filter(pl.col("kind") == "increase")
    assert inc.select("cell_id", "complaints", "previous", "increase").rows() == [("A-1", 2, 1, 1)]
    # in UTC the Jan 7 complaint belongs to the earlier week: no increase at all
    assert hotspots(links, comp, two_sites(), Config()).filter(pl.col("kind") == "increase").height == 0


def test_per_10k_needs_a_minimum_of_complaints():
    comp, links = _stamped([datetime(2026, 1, 1, 8)] * 2)
    subs = pl.DataFrame({"cell_id": ["A-1"], "subscribers": [150.0]})
    hs = hotspots(links, comp, two_sites(), Config(), subscribers=subs)
    assert hs.filter(pl.col("kind") == "per_10k").height == 0   # 2 < 3 complaints
    cfg = config_from_dict({"complaints": {"per_10k_min_complaints": 2}})
    hs = hotspots(links, comp, two_sites(), cfg, subscribers=subs)
    assert hs.filter(pl.col("kind") == "per_10k")["per_10k"].to_list() == [pytest.approx(133.3333)]


def test_far_crm_cell_is_relinked_by_position_unless_the_position_is_off_network():
    cells = two_sites()
    near_a1 = offset(30.0, 120.0, 0.0, 200.0)
    comp = complaints_frame([
        # CRM says B-1, but the complaint is 200 m north of site A and B is < 1 km away: kept
        {"complaint_id": "c1", "lat": near_a1[0], "lon": near_a1[1], "cell_id": "B-1"},
        # CRM says Z-1, ~73 km away, but the complaint sits by site A: relinked by position
        {"complaint_id": "c2", "lat": near_a1[0], "lon": near_a1[1], "cell_id": "Z-1"},
        # placeholder position 0,0: no cell there, the CRM cell stands
        {"complaint_id": "c3", "lat": 0.0, "lon": 0.0, "cell_id": "B-1"},
    ])
    far_site = cells.filter(pl.col("site_id") == "B").with_columns(
        pl.col("cell_id").str.replace("B-", "Z-"), pl.lit("Z").alias("site_id"),
        pl.lit(30.66).alias("lat"))
    links = link_complaints(comp, pl.concat([cells, far_site]), None, None, Config())
    got = {r["complaint_id"]: (r["cell_id"], r["method"]) for r in links.iter_rows(named=True)}
    assert got["c1"] == ("B-1", "crm")
    assert got["c2"] == ("A-1", "spatial")
    assert got["c3"] == ("B-1", "crm")


def test_hotspot_counts_are_distinct_places_per_ranking() -> None:
    """A cell at the top of several rankings is one place; a per-region entry and a spatial
    cluster without a cell are places of their own."""
    from kqi.complaints import hotspot_counts, hotspots_text

    h = pl.DataFrame({
        "kind": ["volume", "volume", "per_10k", "per_10k", "spatial", "spatial"],
        "rank": [1, 2, 1, 2, 1, 2],
        "cell_id": ["A", "B", "B", None, "A", None],
        "region": [None, None, None, "north", None, None],
        "lat": [None, None, None, None, 31.0, 31.2],
        "lon": [None, None, None, None, 121.0, 121.1],
    })
    got = hotspot_counts(h)
    assert got == {"hotspots": 4, "hotspot_rankings": {"volume": 2, "per_10k": 2, "spatial": 2}}
    assert hotspots_text(got) == ("4 distinct places in 3 rankings (by volume 2, per 10,000 "
                                  "subscribers 2, by place 2; a place can top several)")
    assert hotspot_counts(None) == {"hotspots": 0, "hotspot_rankings": {}}


def test_summary_and_workbook_count_hotspots_as_places(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    from kqi.excel import write_work_orders_xlsx
    from kqi.summary import to_markdown

    comp = {"complaints": 9, "network_complaints": 8, "linked": 8, "non_network": 1,
            "silent_poor_cells": 2, "hotspots": 3, "hotspot_rankings": {"volume": 3, "per_10k": 2}}
    md = to_markdown({"complaints": comp})
    assert ("- hotspots: 3 distinct places in 2 rankings (by volume 3, per 10,000 subscribers 2; "
            "a place can top several) (hotspots.csv)") in md
    hot = pl.DataFrame({"kind": ["per_10k"], "rank": [1], "cell_id": ["A"], "complaints": [3],
                        "subscribers": [2000.0], "per_10k": [15.0],
                        "subscribers_source": ["file:cell"]})
    wo = pl.DataFrame(schema={"rank": pl.Int32, "cell_id": pl.String, "vendor": pl.String,
                              "primary_cause": pl.String})
    for language, words in (("en", "subscribers file, per cell"), ("zh", "用户数文件(按小区)")):
        path = write_work_orders_xlsx(tmp_path / f"w_{language}.xlsx", wo, {"complaints": comp}, hot,
                                      language=language)
        rows = [[v for v in r if v is not None]
                for r in load_workbook(path).worksheets[0].iter_rows(values_only=True)]
        assert words in [v for r in rows for v in r]
        if language == "en":
            figures = {r[0]: r[1] for r in rows if len(r) == 2}
            assert figures["Hotspots (distinct places)"] == 3
            assert figures["Hotspots ranked: volume"] == 3
            assert figures["Hotspots ranked: per 10,000 subscribers"] == 2
