"""map.html in a real headless Chromium: it draws, shows every layer, logs no error, and shows
hostile text as text. Keeps PNG screenshots in ``test-artifacts/``.

Needs Debian's ``chromium`` (skipped with a reason when it is absent) and the Leaflet assets from
the npm registry (fetched with ``npm pack`` into the cache folder when missing; see docs/maps.md).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from _cdp import Browser, find_chromium, load_map, serve
from kqi.maps import assets as map_assets
from kqi.maps.render import render_map

from kqi.config import Config, OutputConfig

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
HOSTILE_NAME = 'Cell </script><img src=x onerror="window.__pwned=1">'
POPUP_SHOWN = 'getComputedStyle(document.querySelector(".leaflet-popup")).opacity === "1"'
HOSTILE_DESC = "</script><script>window.__pwned=2</script><img src=x onerror=window.__pwned=3>"


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium not installed (apt-get install -y chromium; CI installs it)")
    return exe


@pytest.fixture(scope="module")
def assets() -> Path:
    # a folder of the checkout's own, never the user's ~/.cache/kqi
    root = ARTIFACTS / "map-assets"
    if map_assets.missing_files(root):
        # CI runs scripts/fetch_map_assets.sh test-artifacts/map-assets first; this covers a
        # fresh developer machine
        map_assets.fetch_assets(root)
    return root


def city_inputs(out: Path) -> dict[str, pl.DataFrame]:
    """Map inputs from the synthetic city: planted causes as the diagnosis, plus hostile text."""
    from kqi.synth import make_city

    city = make_city(out, seed=11, n_cells=400, days=1)
    cells = city.cells_df.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(HOSTILE_NAME))
        .otherwise(pl.col("cell_name")).alias("cell_name"))
    hostile_id = cells["cell_id"][0]
    truth = city.truth_df.with_columns(
        pl.when(pl.col("cell_id") == hostile_id).then(pl.lit("browsing"))
        .otherwise(pl.col("poor_services")).alias("poor_services"),
        pl.when(pl.col("cell_id") == hostile_id).then(pl.lit("interference"))
        .otherwise(pl.col("cause")).alias("cause"),
    )
    poor = truth.filter(pl.col("poor_services") != "")
    diagnosis = poor.select(
        "cell_id", "poor_services", pl.col("cause").alias("primary_cause"),
        pl.col("secondary").alias("secondary_causes"),
        pl.format("planted {} <i>evidence</i>", pl.col("cause")).alias("evidence"))
    cell_kqi = truth.select(
        "cell_id", pl.lit("browsing").alias("service"), pl.lit(100).alias("tests"),
        pl.when(pl.col("poor_services") != "").then(pl.lit(60)).otherwise(pl.lit(95))
        .alias("good_tests"),
    ).with_columns((pl.col("good_tests") / pl.col("tests")).alias("good_rate"),
                   (pl.col("good_tests") <= 80).alias("poor"))
    complaints = pl.read_csv(city.complaints, schema_overrides={"msisdn": pl.String}).drop("msisdn")
    first = cells.row(0, named=True)
    complaints = pl.concat([complaints, pl.DataFrame({
        "complaint_id": ["HOSTILE-1"], "ts": [complaints["ts"][0]],
        "lat": [first["lat"] + 0.0004], "lon": [first["lon"] + 0.0004],
        "category": ["上网慢"], "description": [HOSTILE_DESC], "cell_id": [None]},
        schema=complaints.schema)])
    links = pl.concat([
        city.complaint_truth_df.select("complaint_id", "cell_id"),
        pl.DataFrame({"complaint_id": ["HOSTILE-1"], "cell_id": [hostile_id]}),
    ]).with_columns(pl.lit(150.0).alias("distance_m"))
    by_cause = poor.group_by("cause", maintain_order=True).agg(pl.col("cell_id").head(4))
    areas = by_cause.with_row_index("area_id").select(
        pl.col("area_id").cast(pl.Int32), pl.col("cell_id").list.len().alias("n_cells"),
        pl.col("cell_id").list.join(";").alias("cell_ids"),
        pl.col("cause").alias("dominant_cause"))
    work_orders = poor.select(pl.int_range(1, pl.len() + 1).cast(pl.Int32).alias("rank"),
                              "cell_id")
    return {"cells": cells, "cell_kqi": cell_kqi, "diagnosis": diagnosis, "areas": areas,
            "complaints": complaints, "links": links, "work_orders": work_orders}


def test_map_in_headless_chromium(chromium: str, assets: Path, tmp_path: Path) -> None:
    inputs = city_inputs(tmp_path / "city")
    cfg = replace(Config(), output=OutputConfig(map_tiles="none", map_assets=str(assets)))
    site = tmp_path / "site"
    render_map(site / "map.html", config=cfg, **inputs)
    n_cells = inputs["cells"].height
    n_causes = inputs["diagnosis"]["primary_cause"].n_unique()
    # not poor + one per cause + areas + complaint heat + complaint points
    n_overlays = 1 + n_causes + 3
    ARTIFACTS.mkdir(exist_ok=True)

    with serve(site) as base, Browser(chromium, width=1280, height=800) as browser:
        drawn_ms = load_map(browser, f"{base}/map.html", timeout=60)
        assert drawn_ms > 0
        state = browser.evaluate("""(function () {
            var m = window.kqiMap, kinds = {}, onMap = 0;
            m.eachLayer(function (l) {
                if (!l.kqiKind) { return; }
                var n = l.getLayers().length;
                kinds[l.kqiKind] = (kinds[l.kqiKind] || 0) + n;
            });
            var canvas = document.querySelector(".leaflet-overlay-pane canvas");
            var painted = 0;
            if (canvas) {
                var px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
                for (var i = 3; i < px.length; i += 4) { if (px[i] > 0) { painted++; } }
            }
            return {
                kinds: kinds,
                overlays: Array.from(document.querySelectorAll(
                    ".leaflet-control-layers-overlays label")).map(function (e) {
                        return e.textContent.trim(); }),
                checked: document.querySelectorAll(
                    ".leaflet-control-layers-overlays input:checked").length,
                painted: painted,
                heat: document.querySelectorAll("canvas.leaflet-heatmap-layer").length,
                legend: (document.querySelector(".kqi-legend") || {}).textContent || "",
                zoom: m.getZoom()
            };
        })()""")
        browser.screenshot(ARTIFACTS / "map.png")
        # the layer control works: ticking the heat layer draws it
        heat_on = browser.evaluate("""(function () {
            var labels = document.querySelectorAll(".leaflet-control-layers-overlays label");
            for (var i = 0; i < labels.length; i++) {
                if (labels[i].textContent.indexOf("heat") >= 0) {
                    labels[i].querySelector("input").click(); }
            }
            return document.querySelectorAll("canvas.leaflet-heatmap-layer").length;
        })()""")
        assert heat_on == 1
        browser.screenshot(ARTIFACTS / "map-heat.png")

        assert state["kinds"]["cells"] == n_cells
        assert state["kinds"]["areas"] == inputs["areas"].height
        placed = inputs["complaints"].filter(pl.col("lat").is_not_null() & pl.col("lon").is_not_null())
        assert state["kinds"]["complaints"] == placed.height
        assert len(state["overlays"]) == n_overlays
        assert state["checked"] == n_overlays - 1   # the heat layer starts hidden
        assert state["overlays"][0] == f"Cells, not poor ({n_cells - inputs['diagnosis'].height})"
        assert state["painted"] > 10_000, "the sector canvas is blank"
        assert state["heat"] == 0
        assert "Poor cells by cause" in state["legend"]
        assert state["zoom"] > 8, "the view was not fitted to the data"

        # hostile cell name: the popup and tooltip show it as text, no element is created
        cell = browser.evaluate("""(function () {
            var hit = null;
            window.kqiMap.eachLayer(function (l) {
                if (l.kqiKind !== "cells" || hit) { return; }
                l.eachLayer(function (f) {
                    if (!hit && f.feature.properties.t.indexOf("Cell &lt;/script") === 0) {
                        hit = f; }
                });
            });
            // as the mouse would: the events bubble to the layer that holds the bindings
            var at = hit.getBounds().getCenter();
            hit.fire("mouseover", {latlng: at}, true);
            var tip = document.querySelector(".leaflet-tooltip");
            hit.fire("click", {latlng: at}, true);
            var pop = document.querySelector(".leaflet-popup-content");
            return {tip: tip.textContent, popup: pop.textContent,
                     popupElements: Array.from(pop.querySelectorAll("*")).map(
                         function (e) { return e.tagName; })};
        })()""")
        assert cell["tip"].startswith(HOSTILE_NAME)
        assert cell["popup"].startswith(HOSTILE_NAME)
        assert "planted interference <i>evidence</i>" in cell["popup"]
        assert set(cell["popupElements"]) <= {"B", "BR"}
        browser.wait_for(POPUP_SHOWN)   # let the fade-in finish before the picture
        browser.screenshot(ARTIFACTS / "map-hostile-cell.png")

        # hostile complaint description: opened from its marker cluster
        complaint = browser.evaluate("""new Promise(function (done) {
            var group = null, marker = null;
            window.kqiMap.eachLayer(function (l) { if (l.kqiKind === "complaints") { group = l; } });
            group.eachLayer(function (m) {
                if (m.feature.properties.t.indexOf("HOSTILE-1") >= 0) { marker = m; } });
            group.zoomToShowLayer(marker, function () {
                marker.openPopup();
                setTimeout(function () {
                    var pop = document.querySelector(".leaflet-popup-content");
                    done({popup: pop.textContent, elements: Array.from(
                        pop.querySelectorAll("*")).map(function (e) { return e.tagName; })});
                }, 300);
            });
        })""")
        assert HOSTILE_DESC in complaint["popup"]
        assert set(complaint["elements"]) <= {"B", "BR"}
        browser.wait_for(POPUP_SHOWN)
        browser.screenshot(ARTIFACTS / "map-hostile-complaint.png")

        assert browser.evaluate("typeof window.__pwned") == "undefined"
        assert browser.errors() == []


def test_map_without_leaflet_says_why(chromium: str, tmp_path: Path) -> None:
    """Offline with CDN-hosted assets, the page explains itself instead of staying blank."""
    inputs = city_inputs(tmp_path / "city")
    # an address on this machine where nothing listens: the library cannot load, as offline
    cfg = replace(Config(), output=OutputConfig(map_tiles="none", map_assets="http://127.0.0.1:9/npm"))
    site = tmp_path / "site"
    render_map(site / "map.html", config=cfg, cells=inputs["cells"])
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(site) as base, Browser(chromium, width=1000, height=600) as browser:
        browser.navigate(f"{base}/map.html")
        browser.wait_for('document.getElementById("kqi-no-leaflet") !== null', timeout=30)
        text = browser.evaluate('document.getElementById("kqi-no-leaflet").textContent')
        browser.screenshot(ARTIFACTS / "map-no-leaflet.png")
    assert "could not load its Leaflet library" in text
    assert "kqi map-assets" in text
