"""Map benchmark: file size, render time and time-to-drawn in headless Chromium.

For each network size (default 1,600 / 10,000 / 50,000 cells) a synthetic city is made with
``kqi.synth.make_city``; the map is rendered offline (no basemap, inlined Leaflet assets) and
loaded in headless Chromium from a local web server. Measured:

- ``render_s``: ``maps.render_map`` wall time (Python: tables, wedges, JSON, HTML);
- ``file_mb``: size of ``map.html``;
- ``drawn_ms``: from the start of navigation until the page has drawn every layer
  (``window.kqiDrawnAt``: two animation frames after the last layer was added), median of
  ``--repeat`` loads in a fresh tab each;
- ``pan_ms`` / ``zoom_ms``: one 300 px pan and one zoom-in, until the next frame after the move.

Peer: the naive folium way (one ``folium.Polygon`` per cell, SVG, one tooltip object each) at the
sizes listed in ``--naive`` (default 1,600 only: it gets slow fast).

    python benchmarks/bench_map.py                      # all sizes, writes benchmarks/results/map.json
    python benchmarks/bench_map.py --sizes 1600 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
from kqi.maps import assets as map_assets
from kqi.maps.render import render_map

from kqi.config import Config, OutputConfig
from kqi.schema import SERVICES
from kqi.synth import make_city
from tests._cdp import Browser, find_chromium, load_map, serve

RESULTS = Path(__file__).resolve().parent / "results"
AFTER_MOVE = """new Promise(function (done) {
    var t0 = performance.now();
    %s
    requestAnimationFrame(function () { requestAnimationFrame(function () {
        done(performance.now() - t0); }); });
})"""


def city_inputs(out: Path, n_cells: int, seed: int = 7) -> dict[str, pl.DataFrame]:
    """Map inputs shaped like the pipeline's, from a synthetic city (planted causes as diagnosis)."""
    city = make_city(out, seed=seed, n_cells=n_cells, days=1, tests_per_cell_day=1.0)
    cells = city.cells_df
    truth = city.truth_df
    poor = truth.filter(pl.col("poor_services") != "")
    rng = np.random.default_rng(seed)
    kqi = pl.concat([
        truth.select(
            "cell_id", pl.lit(svc).alias("service"),
            pl.lit(200, pl.Int64).alias("tests"),
            pl.Series("good_tests", rng.integers(150, 200, truth.height), dtype=pl.Int64),
        ) for svc in SERVICES
    ]).with_columns((pl.col("good_tests") / pl.col("tests")).alias("good_rate"),
                    pl.lit(False).alias("poor"))
    kqi = kqi.join(poor.select("cell_id", pl.lit(True).alias("_p")), on="cell_id", how="left"
                   ).with_columns(
        pl.when(pl.col("_p") & (pl.col("service") == "browsing")).then(pl.lit(True))
        .otherwise(pl.col("poor")).alias("poor")).drop("_p")
    diagnosis = poor.select(
        "cell_id", "poor_services", pl.col("cause").alias("primary_cause"),
        pl.col("secondary").alias("secondary_causes"),
        pl.format("busy-hour evidence for {} (planted)", pl.col("cause")).alias("evidence"))
    complaints = pl.read_csv(city.complaints, schema_overrides={"msisdn": pl.String}).drop("msisdn")
    links = city.complaint_truth_df.select(
        "complaint_id", "cell_id", pl.lit(200.0).alias("distance_m"))
    # poor-quality areas: poor cells sharing a ~2 km square, three or more
    areas = (
        poor.join(cells.select("cell_id", "lat", "lon"), on="cell_id")
        .with_columns((pl.col("lat") / 0.018).floor().alias("gy"),
                      (pl.col("lon") / 0.021).floor().alias("gx"))
        .group_by("gy", "gx").agg(pl.col("cell_id").sort(), pl.col("cause").mode().first(),
                                  pl.col("lat").mean(), pl.col("lon").mean())
        .filter(pl.col("cell_id").list.len() >= 3).sort("gy", "gx").with_row_index("area_id")
        .select(pl.col("area_id").cast(pl.Int32), pl.col("cell_id").list.len().alias("n_cells"),
                pl.col("cell_id").list.join(";").alias("cell_ids"), "lat", "lon",
                pl.col("cause").alias("dominant_cause"))
    )
    work_orders = poor.select(pl.int_range(1, pl.len() + 1).cast(pl.Int32).alias("rank"),
                              "cell_id")
    return {"cells": cells, "cell_kqi": kqi, "diagnosis": diagnosis, "areas": areas,
            "complaints": complaints, "links": links, "work_orders": work_orders}


def naive_map(path: Path, cells: pl.DataFrame, assets: Path) -> None:
    """The peer: one folium Polygon (SVG) with its own tooltip per cell."""
    import folium
    from kqi.maps import geometry

    r = geometry.sector_radius(cells["isd_m"].to_numpy(), factor=0.4, min_m=40, max_m=2500,
                               fallback_m=400)
    rings = geometry.sector_polygons(cells["lat"].to_numpy(), cells["lon"].to_numpy(),
                                     cells["azimuth"].to_numpy(), cells["beamwidth"].to_numpy(), r,
                                     arc_points=9, omni_points=24)
    m = folium.Map(tiles=None, max_zoom=19)
    m.options["max_zoom"] = 19
    m.default_js, m.default_css = [], []
    m.get_root().header.add_child(folium.Element(
        '<link rel="icon" href="data:,"/>' + map_assets.head_html(str(assets))))
    for ring, name in zip(rings, cells["cell_name"].to_list(), strict=True):
        folium.Polygon([(p[1], p[0]) for p in ring], tooltip=str(name), weight=1).add_to(m)
    m.fit_bounds([[float(cells["lat"].min()), float(cells["lon"].min())],
                  [float(cells["lat"].max()), float(cells["lon"].max())]])
    # mark when drawn, like the kqi map does
    m.get_root().script.add_child(folium.Element(
        "requestAnimationFrame(function(){requestAnimationFrame(function(){"
        "window.kqiDrawnAt=performance.now();});});"))
    m.save(str(path))


def measure(chromium: str, site: Path, page: str, repeat: int, *, moves: bool) -> dict[str, float]:
    drawn, pan, zoom = [], [], []
    with serve(site) as base:
        # untimed first load: warms the disk cache and the browser binary
        with Browser(chromium, timeout=300) as b:
            load_map(b, f"{base}/{page}", timeout=300)
        for _ in range(repeat):
            with Browser(chromium, width=1280, height=800, timeout=300) as b:
                drawn.append(load_map(b, f"{base}/{page}", timeout=300))
                if b.errors():
                    raise RuntimeError(f"{page}: {b.errors()[:3]}")
                if moves:
                    pan.append(b.evaluate(AFTER_MOVE % "window.kqiMap.panBy([300, 200], "
                                                       "{animate: false});"))
                    zoom.append(b.evaluate(AFTER_MOVE % "window.kqiMap.setZoom("
                                                        "window.kqiMap.getZoom() + 1, "
                                                        "{animate: false});"))
    out = {"drawn_ms": round(statistics.median(drawn), 1)}
    if moves:
        out["pan_ms"] = round(statistics.median(pan), 1)
        out["zoom_ms"] = round(statistics.median(zoom), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1600, 10_000, 50_000])
    ap.add_argument("--naive", type=int, nargs="*", default=[1600])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "map.json")
    args = ap.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        sys.stderr.write("chromium not found (apt-get install -y chromium)\n")
        return 2
    assets = map_assets.default_cache_dir()
    if map_assets.missing_files(assets):
        map_assets.fetch_assets(assets)
    cfg = replace(Config(), output=OutputConfig(map_tiles="none", map_assets=str(assets)))
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kqi-bench-map-") as tmp:
        for n in args.sizes:
            work = Path(tmp) / str(n)
            inputs = city_inputs(work / "city", n)
            site = work / "site"
            t0 = time.perf_counter()
            render_map(site / "map.html", config=cfg, **inputs)
            render_s = time.perf_counter() - t0
            size = (site / "map.html").stat().st_size
            # the biggest map loads once: a 50k run stays short
            rep = args.repeat if n <= 10_000 else 1
            row = {"approach": "kqi (GeoJSON on canvas)", "cells": inputs["cells"].height,
                   "poor": inputs["diagnosis"].height, "complaints": inputs["complaints"].height,
                   "render_s": round(render_s, 2), "file_mb": round(size / 1e6, 2),
                   "loads": rep, **measure(chromium, site, "map.html", rep, moves=True)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if n in args.naive:
                t0 = time.perf_counter()
                naive_map(site / "naive.html", inputs["cells"], assets)
                render_s = time.perf_counter() - t0
                size = (site / "naive.html").stat().st_size
                row = {"approach": "naive folium (Polygon per cell, SVG)",
                       "cells": inputs["cells"].height, "render_s": round(render_s, 2),
                       "file_mb": round(size / 1e6, 2), "loads": rep,
                       **measure(chromium, site, "naive.html", rep, moves=False)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {"benchmark": "map", "chromium": version, "python": platform.python_version(),
              "machine": platform.machine(), "cpus": _cpus(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
