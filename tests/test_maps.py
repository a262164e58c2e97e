"""maps: sector geometry against plain references, and map.html content (no browser needed)."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import logging
import math
import re
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kqi.maps import assets as map_assets
from kqi.maps import geometry
from kqi.maps._errors import MapError
from kqi.maps.render import js_json, render_map
from reference import R  # the plain sphere the wedges are checked on
from scipy.spatial import ConvexHull

from kqi.config import Config, OutputConfig
from kqi.errors import KqiError

HOSTILE_NAME = 'Cell </script><img src=x onerror="window.__pwned=1">'
HOSTILE_DESC = "</script><script>window.__pwned=2</script><img src=x onerror=alert(1)> & co"


# ---- plain references ----------------------------------------------------------------------------

def ref_destination(lat: float, lon: float, bearing: float, dist: float) -> tuple[float, float]:
    p1, l1, th, d = math.radians(lat), math.radians(lon), math.radians(bearing), dist / R
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(th))
    l2 = l1 + math.atan2(math.sin(th) * math.sin(d) * math.cos(p1),
                         math.cos(d) - math.sin(p1) * math.sin(p2))
    lon2 = math.degrees(l2)
    while lon2 >= 180.0:
        lon2 -= 360.0
    while lon2 < -180.0:
        lon2 += 360.0
    return math.degrees(p2), lon2


def ref_haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * R * math.asin(math.sqrt(a))


def ref_bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def ref_sector(lat: float, lon: float, az: float, bw: float, r: float, *, arc: int, omni: int
               ) -> list[tuple[float, float]]:
    if bw >= 360.0:
        pts = [ref_destination(lat, lon, 360.0 * k / omni, r) for k in range(omni)]
        ring = [(p[1], p[0]) for p in pts]
        return [*ring, ring[0]]
    ring = [(lon, lat)]
    for k in range(arc):
        b = az - bw / 2 + bw * k / (arc - 1)
        p = ref_destination(lat, lon, b, r)
        ring.append((p[1], p[0]))
    return [*ring, (lon, lat)]


# ---- geometry --------------------------------------------------------------------------------------

lat_s = st.floats(-80.0, 80.0)
lon_s = st.floats(-179.9, 179.9)


@settings(max_examples=200, deadline=None)
@given(lat=lat_s, lon=lon_s, bearing=st.floats(0.0, 360.0), dist=st.floats(0.0, 20_000.0))
def test_destination_matches_reference(lat: float, lon: float, bearing: float, dist: float) -> None:
    got_lat, got_lon = geometry.destination(np.array([lat]), np.array([lon]), np.array([bearing]),
                                            np.array([dist]))
    want_lat, want_lon = ref_destination(lat, lon, bearing, dist)
    assert got_lat[0] == pytest.approx(want_lat, abs=1e-9)
    dlon = (got_lon[0] - want_lon + 180.0) % 360.0 - 180.0
    assert abs(dlon) < 1e-9
    # and the point really is that far away, in that direction
    assert ref_haversine(lat, lon, got_lat[0], got_lon[0]) == pytest.approx(dist, abs=1e-3)


@settings(max_examples=100, deadline=None)
@given(lat=st.floats(-70.0, 70.0), lon=lon_s, az=st.floats(0.0, 360.0),
       bw=st.one_of(st.floats(1.0, 359.0), st.just(360.0)), r=st.floats(10.0, 5000.0))
def test_sector_polygon_matches_reference(lat: float, lon: float, az: float, bw: float,
                                          r: float) -> None:
    ring = geometry.sector_polygons(np.array([lat]), np.array([lon]), np.array([az]),
                                    np.array([bw]), np.array([r]), arc_points=7, omni_points=12)[0]
    want = np.array(ref_sector(lat, lon, az, bw, r, arc=7, omni=12))
    assert ring.shape == want.shape
    dlon = (ring[:, 0] - want[:, 0] + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(dlon, 0.0, atol=1e-9)
    np.testing.assert_allclose(ring[:, 1], want[:, 1], atol=1e-9)
    np.testing.assert_array_equal(ring[0], ring[-1])


def test_sector_wedge_shape() -> None:
    lat, lon, az, bw, r = 30.0, 104.0, 120.0, 60.0, 500.0
    ring = geometry.sector_polygons(np.array([lat, lat]), np.array([lon, lon]),
                                    np.array([az, 0.0]), np.array([bw, 360.0]),
                                    np.array([r, r]), arc_points=9, omni_points=24)
    wedge, omni = ring
    assert wedge.shape == (11, 2)
    assert tuple(wedge[0]) == (lon, lat) == tuple(wedge[-1])
    for plon, plat in wedge[1:-1]:
        assert ref_haversine(lat, lon, plat, plon) == pytest.approx(r, rel=1e-6)
        off = (ref_bearing(lat, lon, plat, plon) - az + 180.0) % 360.0 - 180.0
        assert -bw / 2 - 1e-6 <= off <= bw / 2 + 1e-6
    assert ref_bearing(lat, lon, wedge[1][1], wedge[1][0]) == pytest.approx(az - bw / 2, abs=1e-6)
    assert omni.shape == (25, 2)
    assert all(ref_haversine(lat, lon, p[1], p[0]) == pytest.approx(r, rel=1e-6) for p in omni)


def test_sector_polygons_rejects_too_few_points() -> None:
    with pytest.raises(ValueError, match="arc_points"):
        geometry.sector_polygons(np.zeros(1), np.zeros(1), np.zeros(1), np.full(1, 65.0),
                                 np.full(1, 100.0), arc_points=1, omni_points=12)


def test_sector_radius_scales_with_isd_and_clips() -> None:
    isd = np.array([1000.0, 3000.0, np.nan, 0.0, 10.0, 1e6])
    got = geometry.sector_radius(isd, factor=0.4, min_m=40.0, max_m=2500.0, fallback_m=333.0)
    np.testing.assert_allclose(got, [400.0, 1200.0, 333.0, 333.0, 40.0, 2500.0])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-1000, 1000), st.integers(-1000, 1000)),
                min_size=3, max_size=60))
def test_convex_hull_matches_scipy(points: list[tuple[int, int]]) -> None:
    pts = np.array(points, dtype=np.float64) / 100.0
    uniq = np.unique(pts, axis=0)
    centred = uniq - uniq.mean(axis=0)
    if len(uniq) < 3 or np.linalg.matrix_rank(centred, tol=1e-9) < 2:
        return  # scipy cannot hull collinear points; covered by the degenerate test
    hull = geometry.convex_hull(pts)
    np.testing.assert_array_equal(hull[0], hull[-1])
    want = {tuple(p) for p in uniq[ConvexHull(uniq).vertices]}
    assert {tuple(p) for p in hull[:-1]} == want
    # counter-clockwise: positive signed area
    x, y = hull[:, 0], hull[:, 1]
    assert float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1])) > 0


def test_convex_hull_degenerate() -> None:
    one = geometry.convex_hull(np.array([[1.0, 2.0], [1.0, 2.0]]))
    assert one.tolist() == [[1.0, 2.0], [1.0, 2.0]]
    line = geometry.convex_hull(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]))
    assert line[0].tolist() == line[-1].tolist()
    assert {tuple(p) for p in line[:-1]} <= {(0.0, 0.0), (2.0, 2.0)}


# ---- inputs ----------------------------------------------------------------------------------------

@pytest.fixture
def inputs() -> dict[str, pl.DataFrame]:
    cells = pl.DataFrame({
        "cell_id": ["A1", "A2", "A3", "B1", "C1", "D1"],
        "site_id": ["A", "A", "A", "B", "C", "D"],
        "cell_name": [HOSTILE_NAME, "Alpha 2", "Alpha 3", "Bravo omni", "Charlie", "Delta"],
        "lat": [31.0, 31.0, 31.0, 31.01, 31.005, None],
        "lon": [121.0, 121.0, 121.0, 121.01, 121.02, 121.03],
        "azimuth": [0.0, 120.0, 240.0, 0.0, 90.0, 0.0],
        "beamwidth": [65.0, 65.0, 65.0, 360.0, None, 65.0],
        "vendor": ["ZTE", "ZTE", "ZTE", "Nokia", "Nokia", "Nokia"],
        "region": ["r1"] * 6,
    })
    cell_kqi = pl.DataFrame({
        "cell_id": ["A1", "A1", "A2", "B1", "C1"],
        "service": ["browsing", "video", "browsing", "gaming", "video"],
        "tests": [100, 50, 80, 40, 60],
        "good_tests": [70, 49, 75, 30, 50],
        "good_rate": [0.70, 0.98, 0.9375, 0.75, 50 / 60],
        "poor": [True, False, False, True, True],
    })
    diagnosis = pl.DataFrame({
        "cell_id": ["A1", "B1"],
        "poor_services": ["browsing", "gaming"],
        "primary_cause": ["interference", "high_load"],
        "secondary_causes": ["weak_coverage", ""],
        "evidence": ["UL interference -98 dBm <b>busy</b>", "PRB 85 %"],
        "review_note": ["its cluster <i>looks</i> like high_load: check", ""],
        "cluster_id": [0, -1],
        "area_id": [0, 0],
    })
    areas = pl.DataFrame({"area_id": [0], "n_cells": [2], "cell_ids": ["A1;B1"],
                          "lat": [31.005], "lon": [121.005], "dominant_cause": ["interference"]})
    complaints = pl.DataFrame({
        "complaint_id": ["K1", "K2", "K3"],
        "ts": ["2026-11-02 10:00:00"] * 3,
        "lat": [31.001, 31.002, None],
        "lon": [121.001, 121.0, None],
        "category": ["上网慢", "video_stall", "资费"],
        "description": [HOSTILE_DESC, "视频卡顿", "billing"],
        "cell_id": [None, None, "A2"],
    })
    links = pl.DataFrame({"complaint_id": ["K1", "K2", "K3"], "cell_id": ["A1", None, "A2"],
                          "distance_m": [120.0, None, None]})
    work_orders = pl.DataFrame({"rank": [1, 2, 3], "cell_id": ["A1", "B1", "C1"]})
    return {"cells": cells, "cell_kqi": cell_kqi, "diagnosis": diagnosis, "areas": areas,
            "complaints": complaints, "links": links, "work_orders": work_orders}


@pytest.fixture
def fake_assets(tmp_path: Path) -> Path:
    """A folder with the asset layout (tiny stand-in files; the browser test uses real ones)."""
    root = tmp_path / "assets"
    for pkg in map_assets.PACKAGES:
        for f in (*pkg.js, *pkg.css, *pkg.extra):
            p = root / pkg.folder / f
            p.parent.mkdir(parents=True, exist_ok=True)
            if f.endswith(".png"):
                p.write_bytes(b"\x89PNG fake " + f.encode())
            elif f.endswith(".css"):
                p.write_text(f".x{{background:url(images/layers.png)}} /* {pkg.name} {f} */\n",
                             encoding="utf-8")
            else:
                p.write_text(f"/* {pkg.name} {f} */ window.loaded_{len(f)} = 1;\n",
                             encoding="utf-8")
    return root


def offline(assets: Path | str) -> Config:
    return replace(Config(), output=OutputConfig(map_tiles="none", map_assets=str(assets)))


DATA_BLOCK = re.compile(r'<script type="application/json" id="(\w+)_data">(.*?)</script>', re.S)


def data_blocks(page: str) -> dict[str, dict]:
    """Every GeoJSON data block of the page, by its layer variable, decoded."""
    return {m.group(1): json.loads(m.group(2)) for m in DATA_BLOCK.finditer(page)}


def geojson_layers(page: str) -> dict[str, dict]:
    """The data of the ``L.geoJSON`` overlays (cells and areas; not complaint points)."""
    return {k: v for k, v in data_blocks(page).items() if k.startswith("kqi_geo_json")}


def overlay_names(page: str) -> list[str]:
    block = re.search(r"overlays :  \{(.*?)\},", page, re.S)
    assert block is not None
    return [json.loads(k) for k in re.findall(r'^\s*("(?:[^"\\]|\\.)*") :', block.group(1), re.M)]


def render(tmp_path: Path, cfg: Config, name: str = "map.html", **kw: pl.DataFrame | None) -> str:
    out = render_map(tmp_path / name, config=cfg, **kw)
    assert out == tmp_path / name
    return out.read_text(encoding="utf-8")


# ---- map content -------------------------------------------------------------------------------

def test_layers_features_and_popups(tmp_path: Path, inputs: dict, fake_assets: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="kqi.maps.render"):
        page = render(tmp_path, offline(fake_assets), **inputs)
    assert "1 cells without a valid position or id" in caplog.text
    layers = geojson_layers(page)
    cells_layers = [v for v in layers.values() if v["features"]
                    and v["features"][0]["geometry"]["type"] == "Polygon"]
    # healthy (A2, A3), interference (A1), high_load (B1), unknown (C1: poor, no diagnosis), area
    sizes = sorted(len(v["features"]) for v in cells_layers)
    assert sizes == [1, 1, 1, 1, 2]
    assert overlay_names(page) == [
        "Cells, not poor (2)", "Interference (1)", "High load (1)", "Unknown cause (1)",
        "Poor-quality areas (1)", "Network complaints (heat) (2)", "Network complaints (points) (2)",
    ]
    assert "network complaints: 2 shown, 1 without a position</div>" in _legend(page)
    props = {f["properties"]["t"].split(" · ")[0]: f["properties"]
             for v in cells_layers for f in v["features"]}
    a1 = props[html.escape(HOSTILE_NAME)]
    assert "interference" in a1["t"]
    assert "work order #1" in a1["t"]
    popup = a1["l"].split("\n")
    assert popup[0] == html.escape(HOSTILE_NAME)
    for text in ("browsing 70.0% good of 100 tests — poor", "video 98.0% good of 50 tests",
                 "cause: interference", "also: weak_coverage",
                 "evidence: UL interference -98 dBm &lt;b&gt;busy&lt;/b&gt;",
                 "complaints: 1 — K1 (上网慢)", "work order #1", "vendor ZTE",
                 "to review: its cluster &lt;i&gt;looks&lt;/i&gt; like high_load: check"):
        assert text in popup
    assert not any(p.startswith("to review") for p in props["Bravo omni"]["l"].split("\n"))
    assert "<" not in a1["l"]
    c1 = props["Charlie"]
    assert "unknown" in c1["t"]
    assert "work order #3" in c1["l"]
    assert "cause" not in props["Alpha 3"]["l"]
    # the linked complaint K3 has no position: counted in its cell, not drawn
    assert "complaints: 1 — K3 (资费)" in props["Alpha 2"]["l"]
    area = next(v for v in layers.values() if v["features"][0]["properties"].get("color"))
    assert area["features"][0]["properties"]["t"] == "area 0: 2 poor cells · interference"


def _legend(page: str) -> str:
    """The legend's html (a JSON string in the page's script), decoded."""
    m = re.search(r'("(?:[^"\\]|\\.)*network complaints: (?:[^"\\]|\\.)*")', page)
    assert m is not None
    return json.loads(m.group(1))


def test_complaint_layers_say_what_is_shown_and_what_is_not(tmp_path: Path, inputs: dict,
                                                           fake_assets: Path) -> None:
    """Non-network tickets (billing) are not drawn, tickets without a position cannot be: the
    legend counts both, so the map's count is not read as every ticket."""
    links = inputs["links"].with_columns(pl.Series("network", [True, False, True]))
    page = render(tmp_path, offline(fake_assets), **{**inputs, "links": links})
    assert overlay_names(page)[-2:] == ["Network complaints (heat) (1)",
                                        "Network complaints (points) (1)"]
    assert ("network complaints: 1 shown, 1 without a position (1 non-network ticket not shown)"
            in _legend(page))
    points = [v for k, v in data_blocks(page).items() if not k.startswith("kqi_geo_json")]
    assert [f["properties"]["t"] for p in points for f in p["features"]] == [
        f"complaint K1 · {html.escape('上网慢')}"]


def test_hostile_text_is_escaped_and_cannot_end_the_script(tmp_path: Path, inputs: dict,
                                                           fake_assets: Path) -> None:
    page = render(tmp_path, offline(fake_assets), **inputs)
    # every "</script" in the page closes a block that page itself opened
    assert len(re.findall(r"<script\b", page, re.I)) == len(re.findall(r"</script", page, re.I))
    assert "<img" not in page
    body = page[page.index("<body>"):]
    assert "onerror=" not in re.sub(r'"(?:[^"\\]|\\.)*"', "", body)  # only inside JSON strings
    points = next(v for k, v in data_blocks(page).items() if k.startswith("kqi_complaints"))
    k1 = next(f for f in points["features"] if "K1" in f["properties"]["t"])
    assert html.escape(HOSTILE_DESC) in k1["properties"]["l"].split("\n")
    assert "linked cell A1" in k1["properties"]["l"]
    assert "distance m 120" in k1["properties"]["l"]


def test_js_json_is_script_safe() -> None:
    text = js_json({"a": "</script><!-- & \u2028 \u2029 '"})
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in text
    assert json.loads(text) == {"a": "</script><!-- & \u2028 \u2029 '"}


def test_output_is_deterministic(tmp_path: Path, inputs: dict, fake_assets: Path) -> None:
    a = render(tmp_path, offline(fake_assets), "a.html", **inputs)
    b = render(tmp_path, offline(fake_assets), "b.html", **inputs)
    assert a == b
    assert "map_00000001" in a


def test_only_cells(tmp_path: Path, inputs: dict, fake_assets: Path) -> None:
    page = render(tmp_path, offline(fake_assets), cells=inputs["cells"])
    # a cell list alone (kqi map --cells): no cell was judged, so none is called "not poor"
    assert overlay_names(page) == ["Cells, no test data (5)"]
    assert "no test data (5)" in page
    assert "not poor" not in page
    assert "heatLayer" not in page.split("</head>")[1]
    assert "fitBounds" in page


def test_empty_optional_inputs(tmp_path: Path, inputs: dict, fake_assets: Path) -> None:
    empty = {k: v.clear() for k, v in inputs.items() if k != "cells"}
    page = render(tmp_path, offline(fake_assets), cells=inputs["cells"], **empty)
    assert overlay_names(page) == ["Cells, not poor (5)"]


def test_poor_cells_without_diagnosis_are_unknown(tmp_path: Path, inputs: dict,
                                                  fake_assets: Path) -> None:
    page = render(tmp_path, offline(fake_assets), cells=inputs["cells"],
                  cell_kqi=inputs["cell_kqi"])
    assert overlay_names(page) == ["Cells, not poor (2)", "Unknown cause (3)"]


def test_unlisted_cause_drawn_as_unknown_but_named(tmp_path: Path, inputs: dict,
                                                   fake_assets: Path) -> None:
    diag = inputs["diagnosis"].with_columns(pl.lit("<transport>").alias("primary_cause"))
    page = render(tmp_path, offline(fake_assets), cells=inputs["cells"], diagnosis=diag)
    assert overlay_names(page) == ["Cells, not poor (3)", "Unknown cause (2)"]
    assert "cause: \\u0026lt;transport\\u0026gt;" in page


def test_wedge_radius_follows_isd(tmp_path: Path, fake_assets: Path) -> None:
    cells = pl.DataFrame({"cell_id": ["N", "W"], "lat": [30.0, 30.0], "lon": [104.0, 105.0],
                          "azimuth": [0.0, 0.0], "beamwidth": [10.0, 10.0]})
    isd = pl.DataFrame({"cell_id": ["N", "W"], "isd_m": [500.0, 2000.0]})
    page = render(tmp_path, offline(fake_assets), cells=cells, isd=isd)
    feats = next(iter(geojson_layers(page).values()))["features"]
    reach = {}
    for f in feats:
        ring = f["geometry"]["coordinates"][0]
        lon0, lat0 = ring[0]
        reach[f["properties"]["t"]] = max(ref_haversine(lat0, lon0, p[1], p[0]) for p in ring)
    assert reach["N"] == pytest.approx(500.0 * 0.4, rel=0.01)
    assert reach["W"] == pytest.approx(2000.0 * 0.4, rel=0.01)


def test_isd_computed_when_not_given(tmp_path: Path, inputs: dict, fake_assets: Path) -> None:
    page = render(tmp_path, offline(fake_assets), cells=inputs["cells"])
    assert len(next(iter(geojson_layers(page).values()))["features"]) == 5


def test_bad_cells_raise_map_error(tmp_path: Path, inputs: dict, fake_assets: Path) -> None:
    cfg = offline(fake_assets)
    with pytest.raises(MapError, match="empty"):
        render_map(tmp_path / "m.html", cells=inputs["cells"].clear(), config=cfg)
    with pytest.raises(MapError, match="azimuth"):
        render_map(tmp_path / "m.html", cells=inputs["cells"].drop("azimuth"), config=cfg)
    with pytest.raises(MapError, match="valid position"):
        render_map(tmp_path / "m.html",
                   cells=inputs["cells"].with_columns(pl.lit(None, pl.Float64).alias("lat")),
                   config=cfg)
    assert issubclass(MapError, KqiError)
    assert not (tmp_path / "m.html").exists()


# ---- assets and tiles --------------------------------------------------------------------------

def test_cdn_uses_pinned_urls_and_no_unused_libraries(tmp_path: Path, inputs: dict) -> None:
    cdn = replace(Config(), output=OutputConfig(map_assets=""))
    page = render(tmp_path, cdn, cells=inputs["cells"], complaints=inputs["complaints"])
    urls = set(re.findall(r'(?:src|href)="(https?://[^"]+)"', page))
    want = {f"{map_assets.CDN_PREFIX}/{p.folder}/{f}" for p in map_assets.PACKAGES
            for f in (*p.js, *p.css)}
    assert urls == want
    for dropped in ("jquery", "bootstrap", "awesome", "fontawesome", "glyphicons"):
        assert dropped not in page.lower()
    assert "tile.openstreetmap.org" in page


def test_url_prefix_and_tile_template(tmp_path: Path, inputs: dict) -> None:
    cfg = replace(Config(), output=OutputConfig(
        map_tiles="http://tiles.intranet/{z}/{x}/{y}.png", map_assets="http://gis.intranet/npm/"))
    page = render(tmp_path, cfg, cells=inputs["cells"])
    assert 'src="http://gis.intranet/npm/leaflet@1.9.4/dist/leaflet.js"' in page
    assert "http://tiles.intranet/{z}/{x}/{y}.png" in page
    assert "cdn.jsdelivr" not in page


def test_no_basemap_and_inlined_assets(tmp_path: Path, inputs: dict, fake_assets: Path) -> None:
    page = render(tmp_path, offline(fake_assets), **inputs)
    assert "L.tileLayer" not in page
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)
    for pkg in map_assets.PACKAGES:
        for f in (*pkg.js, *pkg.css):
            assert f"/* {pkg.name} {f} */" in page
    png = base64.b64encode(b"\x89PNG fake dist/images/layers.png").decode()
    assert f'url("data:image/png;base64,{png}")' in page


def test_unusable_assets_or_tiles(tmp_path: Path, inputs: dict, fake_assets: Path) -> None:
    with pytest.raises(MapError, match="not found"):
        render_map(tmp_path / "m.html", cells=inputs["cells"], config=offline(tmp_path / "nope"))
    (fake_assets / "leaflet@1.9.4" / "dist" / "leaflet.js").unlink()
    with pytest.raises(MapError, match=r"lacks leaflet@1\.9\.4/dist/leaflet\.js"):
        render_map(tmp_path / "m.html", cells=inputs["cells"], config=offline(fake_assets))
    bad = replace(Config(), output=OutputConfig(map_tiles="No Such Tiles"))
    with pytest.raises(MapError, match="map_tiles"):
        render_map(tmp_path / "m.html", cells=inputs["cells"], config=bad)


def test_inlining_refuses_script_end(fake_assets: Path) -> None:
    (fake_assets / "leaflet@1.9.4" / "dist" / "leaflet.js").write_text("var a='</script>';")
    with pytest.raises(MapError, match="cannot be inlined"):
        map_assets.head_html(str(fake_assets))


def _fake_npm(tmp_path: Path) -> Path:
    """An ``npm`` stand-in whose ``pack`` writes a tarball with the package's files."""
    tarballs = tmp_path / "tarballs"
    tarballs.mkdir()
    for pkg in map_assets.PACKAGES:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for f in (*pkg.js, *pkg.css, *pkg.extra):
                data = f"/* {pkg.name} {f} */".encode()
                info = tarfile.TarInfo(f"package/{f}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        (tarballs / f"{pkg.name}-{pkg.version}.tgz").write_bytes(buf.getvalue())
    script = tmp_path / "npm"
    script.write_text(
        "#!/bin/sh\n# npm pack --json --pack-destination DIR NAME@VERSION\n"
        'spec=$5; name=${spec%@*}; ver=${spec##*@}; f="$name-$ver.tgz"\n'
        f'cp "{tarballs}/$f" "$4/$f"\n'
        'printf \'[{"filename": "%s"}]\' "$f"\n')
    script.chmod(0o755)
    return script


def test_fetch_assets_checks_integrity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    npm = _fake_npm(tmp_path)
    # the stand-in tarballs are not the registry's: the pinned hashes reject them
    with pytest.raises(MapError, match="integrity"):
        map_assets.fetch_assets(tmp_path / "dest", npm=str(npm))
    assert map_assets.missing_files(tmp_path / "dest")
    # with integrity hashes matching the stand-in tarballs, every file lands in the layout
    pinned = []
    for pkg in map_assets.PACKAGES:
        data = (tmp_path / "tarballs" / f"{pkg.name}-{pkg.version}.tgz").read_bytes()
        sri = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        pinned.append(replace(pkg, integrity=sri))
    monkeypatch.setattr(map_assets, "PACKAGES", tuple(pinned))
    root = map_assets.fetch_assets(tmp_path / "dest", npm=str(npm))
    assert map_assets.missing_files(root) == []
    assert (root / "leaflet@1.9.4/dist/leaflet.js").read_text() == "/* leaflet dist/leaflet.js */"


def test_fetch_assets_without_npm(tmp_path: Path) -> None:
    with pytest.raises(MapError, match="not found"):
        map_assets.fetch_assets(tmp_path, npm="no-such-npm-here")


def test_auto_assets_use_the_local_copy_when_complete(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, inputs: dict, fake_assets: Path) -> None:
    assert Config().output.map_assets == "auto"
    monkeypatch.setenv("KQI_CACHE_DIR", str(tmp_path / "empty-cache"))
    page = render(tmp_path, Config(), cells=inputs["cells"])
    assert map_assets.CDN_PREFIX in page           # nothing fetched: the public CDN
    assert "kqi-no-leaflet" in page                 # and a clear message if it cannot load
    cache = tmp_path / "cache"
    shutil.copytree(fake_assets, cache / "map-assets")
    monkeypatch.setenv("KQI_CACHE_DIR", str(cache))
    page = render(tmp_path, Config(), cells=inputs["cells"])
    assert map_assets.CDN_PREFIX not in page        # fetched once: inlined, works offline
    assert "window.loaded_" in page


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KQI_CACHE_DIR", str(tmp_path))
    assert map_assets.default_cache_dir() == tmp_path / "map-assets"


def test_synthetic_city(tmp_path: Path, fake_assets: Path) -> None:
    synth = pytest.importorskip("kqi.synth")
    city = synth.make_city(tmp_path / "city", seed=5, n_cells=200, days=1)
    truth = city.truth_df.filter(pl.col("poor_services") != "")
    diag = truth.select("cell_id", "poor_services", pl.col("cause").alias("primary_cause"),
                        pl.col("secondary").alias("secondary_causes"),
                        pl.lit("planted").alias("evidence"))
    page = render(tmp_path, offline(fake_assets), cells=city.cells_df, diagnosis=diag,
                  complaints=pl.read_csv(city.complaints))
    n = sum(len(v["features"]) for v in geojson_layers(page).values())
    assert n == city.cells_df.height
    names = overlay_names(page)
    assert names[0] == f"Cells, not poor ({city.cells_df.height - truth.height})"
    assert len(names) == 1 + truth["cause"].n_unique() + 2


def test_template_syntax_in_inputs_is_not_evaluated(tmp_path: Path, inputs: dict,
                                                    fake_assets: Path) -> None:
    # folium re-renders macro output as Jinja: input text must never reach it
    payload = "{{ 7*7 }} {% for x in range(3) %}X{% endfor %} {# gone #} {{ cycler.__init__ }}"
    cells = inputs["cells"].with_columns(pl.lit(payload).alias("cell_name"))
    complaints = inputs["complaints"].with_columns(pl.lit(payload).alias("description"))
    diagnosis = inputs["diagnosis"].with_columns(pl.lit(payload).alias("evidence"))
    areas = inputs["areas"].with_columns(pl.lit("{{ 6*7 }}").alias("dominant_cause"))
    page = render(tmp_path, offline(fake_assets), **{**inputs, "cells": cells,
                                                      "complaints": complaints,
                                                      "diagnosis": diagnosis, "areas": areas})
    blocks = data_blocks(page)
    texts = [f["properties"]["l"] for b in blocks.values() for f in b["features"]]
    assert all(payload in t for t in texts if not t.startswith("area"))
    assert sum(payload in t for t in texts) == len(texts) - 1
    assert any("{{ 6*7 }}" in t for t in texts)
    assert "XXX" not in page
