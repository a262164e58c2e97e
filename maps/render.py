"""``map.html``: poor cells by cause, complaints and poor-quality areas on one folium map.

Scale: each group of cells is one GeoJSON layer on the map's shared canvas renderer (folium's
``prefer_canvas``), with one tooltip and one popup binding per layer whose content is read from
the clicked feature; a province of 50,000 cells is a handful of layers, not 50,000 objects.

Safety: every text that comes from an input (names, ids, categories, evidence, complaint
descriptions) is HTML-escaped in Python before it enters a tooltip or popup, and every JSON blob
written into the page's script has ``<``, ``>`` and ``&`` encoded as ``\\u003c``-style escapes, so
no input can end the script block or add markup.

Determinism: folium names its JavaScript variables from random ids; they are renumbered before the
page is rendered, so the same inputs give a byte-identical file.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import folium
import numpy as np
import polars as pl
from branca.element import Element, MacroElement
from folium.map import Layer
from folium.plugins import HeatMap
from folium.template import Template
from kqi.maps import geometry, samples_layer
from kqi.maps._errors import MapError
from kqi.maps.assets import head_html

from kqi import _sidecar
from kqi.causes import REGISTRY
from kqi.config import Config
from kqi.frames import column_or_null
from kqi.io import write_text
from kqi.schema import CAUSES, CELLS

log = logging.getLogger(__name__)

# ---- presentation (not analysis thresholds: these only decide how the map looks) ----------------
#: wedge radius = this share of the local inter-site distance, clipped to [min, max] metres
SECTOR_ISD_SHARE = 0.4
SECTOR_MIN_M = 40.0
SECTOR_MAX_M = 2500.0
SECTOR_FALLBACK_M = 400.0   # no ISD at all (a lone site, or no positions to compare)
ARC_POINTS = 7              # points along a wedge's arc (11 degrees apart on a 65-degree beam)
OMNI_POINTS = 24            # points around an omni cell
COORD_DECIMALS = 5          # about a metre: enough for a wedge, and keeps the file small
LISTED_COMPLAINTS = 5       # complaint ids listed in a cell's popup
MAX_ZOOM = 19               # marker clustering needs one even when there is no basemap

#: colour and legend label of each cause, from the cause registry (kqi/causes.py)
CAUSE_COLOURS: dict[str, str] = {c.name: c.colour for c in REGISTRY}
CAUSE_LABELS: dict[str, str] = {c.name: c.label for c in REGISTRY}
HEALTHY_STYLE = {"color": "#9aa0a6", "weight": 0.5, "opacity": 0.5, "fillColor": "#9aa0a6",
                 "fillOpacity": 0.12}
#: the cells of a cell list without tests (kqi map --cells): the only layer, so it is visible
UNJUDGED_STYLE = {"color": "#4a6580", "weight": 0.8, "opacity": 0.8, "fillColor": "#6f8fae",
                  "fillOpacity": 0.35}
#: cells placed from their drive-test samples (kqi.samples): dashed, the position is a guess
ESTIMATED_STYLE = {"color": "#7a4f9e", "weight": 1.0, "opacity": 0.9, "dashArray": "4 3",
                   "fillColor": "#b39ddb", "fillOpacity": 0.3}
POOR_STYLE = {"weight": 1.0, "opacity": 0.9, "fillOpacity": 0.65}
AREA_STYLE = {"weight": 2.5, "opacity": 0.9, "dashArray": "6 4", "fill": False}
COMPLAINT_STYLE = {"radius": 5, "color": "#222222", "weight": 1, "fillColor": "#ffd400",
                   "fillOpacity": 0.9}
HEAT_OPTIONS = {"radius": 18, "blur": 14, "min_opacity": 0.35}

RECOVERED_STYLE = {"color": "#1a7f37", "weight": 2.5, "opacity": 0.95, "fillColor": "#2ca02c",
                   "fillOpacity": 0.35}
#: the sparkline of a cell's good rate: the last runs, at most this many services (lines)
SPARK_RUNS = 8
SPARK_SERVICES = 3
SPARK_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")

HEALTHY_LAYER = "Cells, not poor"
UNJUDGED_LAYER = "Cells, no test data"
ESTIMATED_LAYER = "Cells estimated from drive-test samples"
RECOVERED_LAYER = "Recovered (closed) orders"
AREA_LAYER = "Poor-quality areas"
HEAT_LAYER = "Network complaints (heat)"
POINT_LAYER = "Network complaints (points)"


#: shown instead of a blank page when the Leaflet library could not be loaded (an offline machine
#: and CDN-hosted assets): says what happened and how to fix it
_NO_LEAFLET = """
<script>
window.addEventListener("load", function () {
    if (typeof L !== "undefined") { return; }
    var d = document.createElement("div");
    d.id = "kqi-no-leaflet";
    d.style.cssText = "font:15px/1.5 sans-serif;max-width:46em;margin:3em auto;padding:1em 1.5em;"
        + "border:1px solid #c00;border-radius:6px;background:#fff5f5";
    d.textContent = "This map could not load its Leaflet library (no internet access?). "
        + "Fetch a local copy once with `kqi map-assets` (from the npm registry), then re-run kqi: "
        + "the map then carries the library inside map.html. See docs/maps.md (offline use).";
    document.body.insertBefore(d, document.body.firstChild);
});
</script>"""


@_sidecar.remote
def render_map(
    path: str | Path,
    *,
    cells: pl.DataFrame,
    cell_kqi: pl.DataFrame | None = None,
    diagnosis: pl.DataFrame | None = None,
    areas: pl.DataFrame | None = None,
    complaints: pl.DataFrame | None = None,
    links: pl.DataFrame | None = None,
    work_orders: pl.DataFrame | None = None,
    isd: pl.DataFrame | None = None,
    config: Config | None = None,
    trend: pl.DataFrame | None = None,
    followup: pl.DataFrame | None = None,
    samples: Any | None = None,
) -> Path:
    """Write the folium map of cells, poor cells by cause, complaints and areas to ``path``.

    Parameters
    ----------
    path : str or Path
        Output HTML file; written atomically.
    cells : polars.DataFrame
        CELLS columns (``cell_id``, ``lat``, ``lon``, ``azimuth`` required; ``beamwidth`` defaults
        to the schema default, 360 = omni).
    cell_kqi : polars.DataFrame, optional
        CELL_KQI rows: good-rates per service shown in popups; ``poor`` marks poor cells.
    diagnosis : polars.DataFrame, optional
        DIAGNOSIS rows: ``primary_cause`` colours a poor cell and picks its layer;
        ``secondary_causes`` and ``evidence`` go into the popup.
    areas : polars.DataFrame, optional
        ``area_id``, ``cell_ids`` (";"-joined), ``dominant_cause`` (``n_cells`` optional): drawn as
        outlines around their cells.
    complaints : polars.DataFrame, optional
        COMPLAINTS rows with a position: heat layer and clustered points.
    links : polars.DataFrame, optional
        COMPLAINT_LINKS rows: counted and listed in the linked cell's popup.
    work_orders : polars.DataFrame, optional
        WORK_ORDERS rows: the work-order ``rank`` of a cell; ``order_id`` and ``order_status``
        (and ``runs_poor``) go into the popup when present.
    isd : polars.DataFrame, optional
        ``cell_id``, ``isd_m``: scales each wedge; computed with :func:`kqi.geo.site_isd` when
        omitted.
    config : kqi.config.Config, optional
        Uses ``output.map_tiles`` ("OpenStreetMap", another folium tile name, a URL template or
        "none") and ``output.map_assets`` (see :mod:`maps.assets`).
    trend : polars.DataFrame, optional
        ``cell_id, last_day`` (or ``run_id``), ``service, good_rate``: the good rate of a cell per
        run (``order_id`` ignored here). A cell with rows gets a sparkline of its last
        :data:`SPARK_RUNS` runs in its popup, one line per poor service (the work order's
        ``poor_services`` and the follow-up's ``service``; all services when neither names one).
    followup : polars.DataFrame, optional
        ``cell_id, verdict`` (``order_id, status, service, good_rate_before, good_rate_after``
        optional): cells with a ``recovered`` verdict form the layer "Recovered (closed) orders".
    samples : kqi.samples.SamplesResult, optional
        Drive-test / MR samples: the coverage bins as a layer coloured by median RSRP (legend in
        dBm), and each cell's sample figures (and an estimated position) in its popup
        (:mod:`kqi.maps.samples_layer`).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MapError
        ``cells`` is empty or lacks a required column, or the assets folder is unusable.
    """
    cfg = config if config is not None else Config()
    # resolve the assets first: a bad option must fail before any work is done
    assets = head_html(cfg.output.map_assets)
    table, rings = sector_table(cells, cell_kqi=cell_kqi, diagnosis=diagnosis, links=links,
                                complaints=complaints, work_orders=work_orders, isd=isd,
                                config=cfg, trend=trend, followup=followup)
    # drive-test figures, and an estimated position, in the cells' popups (rows keep their
    # order: the rings are aligned with them)
    extra = samples_layer.cell_lines(samples, cells)
    if extra.height:
        table = table.join(extra, on="cell_id", how="left", maintain_order="left").with_columns(
            pl.when(pl.col("samples_text").is_not_null())
            .then(pl.col("lines") + pl.lit("\n") + pl.col("samples_text"))
            .otherwise(pl.col("lines")).alias("lines")).drop("samples_text")
    # a cell list alone (kqi map --cells): no cell was judged, so none is "not poor"
    judged = cell_kqi is not None or diagnosis is not None
    healthy_layer = HEALTHY_LAYER if judged else UNJUDGED_LAYER

    fmap = _base_map(cfg.output.map_tiles)
    # folium hands max_zoom only to a tile layer; without a basemap the map itself needs it
    fmap.options["max_zoom"] = MAX_ZOOM
    root: Any = fmap.get_root()
    # the empty icon keeps the browser from asking the server for /favicon.ico
    root.header.add_child(_Raw('<link rel="icon" href="data:,"/>\n' + assets + _NO_LEAFLET),
                          name="kqi_assets")
    fmap.default_js = []
    fmap.default_css = []

    coords = _ring_lists(rings)
    counts: dict[str, int] = {}
    # drive-test bins under the cells (drawn first)
    n_bins, bin_bounds = samples_layer.add_bins(fmap, samples, _CanvasGeoJson, js_json)
    estimated = table["estimated"].to_numpy()
    healthy = table["cause"].is_null().to_numpy() & ~estimated
    if healthy.any() or not estimated.any():
        _CanvasGeoJson(_feature_collection(table, coords, healthy),
                       HEALTHY_STYLE if judged else UNJUDGED_STYLE,
                       name=f"{healthy_layer} ({int(healthy.sum()):,})", kind="cells").add_to(fmap)
    counts["not_poor"] = int(healthy.sum())
    # cells placed from their drive-test samples (not poor or not judged): a layer of their own
    placed = table["cause"].is_null().to_numpy() & estimated
    if placed.any():
        _CanvasGeoJson(_feature_collection(table, coords, placed), ESTIMATED_STYLE,
                       name=f"{ESTIMATED_LAYER} ({int(placed.sum()):,})", kind="cells").add_to(fmap)
    counts["estimated"] = int(placed.sum())
    causes = table["cause"].to_numpy()
    for cause in CAUSES:
        mask = causes == cause
        n = int(mask.sum())
        if n == 0:
            continue
        style = {**POOR_STYLE, "color": CAUSE_COLOURS[cause], "fillColor": CAUSE_COLOURS[cause]}
        _CanvasGeoJson(_feature_collection(table, coords, mask), style,
                       name=f"{CAUSE_LABELS[cause]} ({n:,})", kind="cells").add_to(fmap)
        counts[cause] = n
    n_recovered = _add_recovered(fmap, followup, table, coords)
    counts["recovered"] = n_recovered

    n_areas = _add_areas(fmap, areas, table, rings)
    shown = _add_complaints(fmap, complaints, links)
    n_complaints = shown.shown

    folium.LayerControl(collapsed=False, position="topright").add_to(fmap)
    fmap.add_child(_Legend(counts, n_areas, shown, n_recovered,
                           healthy_label=healthy_layer.removeprefix("Cells, ")))
    if n_bins:
        fmap.add_child(LegendControl(samples_layer.bins_legend(), name="KqiBinsLegend",
                                     position="bottomright",
                                     css_class="kqi-legend kqi-bins-legend"))
    extent = [np.array(bin_bounds[0::2]), np.array(bin_bounds[1::2])] if bin_bounds else []
    lats = np.concatenate([r[:, 1] for r in rings] + extent[:1])
    lons = np.concatenate([r[:, 0] for r in rings] + extent[1:])
    fmap.fit_bounds([[float(lats.min()), float(lons.min())], [float(lats.max()), float(lons.max())]])
    fmap.add_child(_Ready())

    _renumber(root)
    page = root.render()
    log.info("map: %d cells (%d poor), %d areas, %d complaints", table.height,
             table.height - counts["not_poor"], n_areas, n_complaints)
    return write_text(path, page)


# ------------------------------------------------------------------------------------------------
# the per-cell table
# ------------------------------------------------------------------------------------------------

def sector_table(cells: pl.DataFrame, *, cell_kqi: pl.DataFrame | None = None,
                 diagnosis: pl.DataFrame | None = None, links: pl.DataFrame | None = None,
                 complaints: pl.DataFrame | None = None,
                 work_orders: pl.DataFrame | None = None, isd: pl.DataFrame | None = None,
                 config: Config | None = None, trend: pl.DataFrame | None = None,
                 followup: pl.DataFrame | None = None) -> tuple[pl.DataFrame, list[np.ndarray]]:
    """The cells the map draws and their wedges, for the map and the exports (KMZ, GeoJSON).

    Returns one row per drawable cell, sorted by ``cell_id`` (``cause`` null when not poor;
    ``tip`` and ``lines`` the escaped tooltip and popup text), and each row's closed wedge ring
    (``[lon, lat]`` rows). The parameters are those of :func:`render_map`.
    """
    cfg = config if config is not None else Config()
    table = _cell_table(cells, cell_kqi=cell_kqi, diagnosis=diagnosis, links=links,
                        complaints=complaints, work_orders=work_orders, isd=isd, cfg=cfg,
                        trend=trend, followup=followup)
    rings = geometry.sector_polygons(
        table["lat"].to_numpy(), table["lon"].to_numpy(), table["azimuth"].to_numpy(),
        table["beamwidth"].to_numpy(), table["radius_m"].to_numpy(),
        arc_points=ARC_POINTS, omni_points=OMNI_POINTS,
    )
    return table, rings


def _esc(expr: pl.Expr) -> pl.Expr:
    """HTML-escape a string expression (the same five characters as ``html.escape``)."""
    out = expr.cast(pl.String)
    for raw, ent in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;")):
        out = out.str.replace_all(raw, ent, literal=True)
    return out


def _opt(df: pl.DataFrame | None, needed: tuple[str, ...], what: str) -> pl.DataFrame | None:
    """``df`` when it is usable, else ``None`` (logged): optional inputs never stop the map."""
    if df is None or df.height == 0:
        return None
    missing = [c for c in needed if c not in df.columns]
    if missing:
        log.warning("map: %s has no column %s; not shown", what, missing[0])
        return None
    return df


def _cell_table(cells: pl.DataFrame, *, cell_kqi: pl.DataFrame | None,
                diagnosis: pl.DataFrame | None, links: pl.DataFrame | None,
                complaints: pl.DataFrame | None, work_orders: pl.DataFrame | None,
                isd: pl.DataFrame | None, cfg: Config, trend: pl.DataFrame | None = None,
                followup: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per drawable cell: position, wedge, cause (null = not poor), tooltip and popup."""
    if not isinstance(cells, pl.DataFrame) or cells.height == 0:
        raise MapError("cells table is empty: nothing to map")
    for col in ("cell_id", "lat", "lon", "azimuth"):
        if col not in cells.columns:
            raise MapError(f"cells table has no column '{col}'")

    def text(col: str) -> pl.Expr:
        return (pl.col(col).cast(pl.String) if col in cells.columns
                else pl.lit(None, pl.String)).alias(col)

    bw_default = float(CELLS.column("beamwidth").default or 65.0)
    t = cells.select(
        pl.col("cell_id").cast(pl.String),
        text("site_id"), text("cell_name"), text("vendor"), text("region"),
        pl.col("lat").cast(pl.Float64), pl.col("lon").cast(pl.Float64),
        pl.col("azimuth").cast(pl.Float64).fill_null(0.0).fill_nan(0.0),
        (pl.col("beamwidth").cast(pl.Float64).fill_nan(None) if "beamwidth" in cells.columns
         else pl.lit(None, pl.Float64)).fill_null(bw_default).alias("beamwidth"),
        # position estimated from drive-test samples (kqi.samples; a cells file it wrote)
        ((pl.col("estimated").cast(pl.Int8, strict=False).fill_null(0) == 1)
         if "estimated" in cells.columns else pl.lit(False)).alias("estimated"),
    )
    ok = (t["cell_id"].is_not_null() & t["lat"].is_not_null() & t["lon"].is_not_null()
          & t["lat"].is_finite() & t["lon"].is_finite() & t["lat"].is_between(-90, 90)
          & t["lon"].is_between(-180, 180))
    if not ok.all():
        log.warning("map: %d cells without a valid position or id are not drawn",
                    int((~ok).sum()))
        t = t.filter(ok)
    if t.height == 0:
        raise MapError("no cell has a valid position: nothing to map")
    t = t.unique("cell_id", keep="first", maintain_order=True).sort("cell_id")

    # wedge radius from the local inter-site distance
    isd_df = _opt(isd, ("cell_id", "isd_m"), "isd")
    if isd_df is None:
        from kqi.geo import site_isd

        isd_df = site_isd(t, cfg)
    isd_df = isd_df.select(pl.col("cell_id").cast(pl.String), pl.col("isd_m").cast(pl.Float64))
    t = t.join(isd_df.unique("cell_id", keep="first"), on="cell_id", how="left")
    isd_m = t["isd_m"].fill_null(np.nan).to_numpy()
    known = isd_m[np.isfinite(isd_m) & (isd_m > 0)]
    fallback = float(np.median(known)) * SECTOR_ISD_SHARE if known.size else SECTOR_FALLBACK_M
    t = t.with_columns(pl.Series("radius_m", geometry.sector_radius(
        isd_m, factor=SECTOR_ISD_SHARE, min_m=SECTOR_MIN_M, max_m=SECTOR_MAX_M,
        fallback_m=fallback)))

    # good-rates per service, and the poor flag
    kqi = _opt(cell_kqi, ("cell_id", "service", "tests", "good_rate", "poor"), "cell_kqi")
    if kqi is not None:
        rates = (
            kqi.select(
                pl.col("cell_id").cast(pl.String),
                pl.concat_str(
                    _esc(pl.col("service")), pl.lit(" "),
                    (pl.col("good_rate").cast(pl.Float64) * 100).round(1).cast(pl.String),
                    pl.lit("% good of "), pl.col("tests").cast(pl.String), pl.lit(" tests"),
                    pl.when(pl.col("poor")).then(pl.lit(" — poor")).otherwise(pl.lit("")),
                ).alias("line"),
                pl.col("service").cast(pl.String).alias("_svc"),
                pl.col("poor").cast(pl.Boolean).fill_null(False),
            )
            .sort("cell_id", "_svc")
            .group_by("cell_id", maintain_order=True)
            .agg(pl.col("line").str.join("\n").alias("rates_text"),
                 pl.col("poor").any().alias("kqi_poor"))
        )
        t = t.join(rates, on="cell_id", how="left")
    else:
        t = t.with_columns(pl.lit(None, pl.String).alias("rates_text"),
                           pl.lit(None, pl.Boolean).alias("kqi_poor"))

    # diagnosis: cause, secondary causes, evidence
    diag = _opt(diagnosis, ("cell_id", "primary_cause"), "diagnosis")
    if diag is not None:
        def dcol(c: str) -> pl.Expr:
            return (pl.col(c).cast(pl.String) if c in diag.columns
                    else pl.lit(None, pl.String)).alias(f"d_{c}")

        d = diag.select(pl.col("cell_id").cast(pl.String), dcol("primary_cause"),
                        dcol("secondary_causes"), dcol("evidence"), dcol("poor_services"),
                        dcol("area_id"), dcol("review_note")).unique("cell_id", keep="first")
        t = t.join(d, on="cell_id", how="left")
    else:
        t = t.with_columns([pl.lit(None, pl.String).alias(f"d_{c}") for c in
                            ("primary_cause", "secondary_causes", "evidence", "poor_services",
                             "area_id", "review_note")])
    in_diag = pl.col("d_primary_cause").is_not_null()
    poor = in_diag | pl.col("kqi_poor").fill_null(False)
    # a cause outside the known list is shown as written but drawn with the "unknown" cells
    t = t.with_columns(
        pl.when(poor).then(
            pl.when(pl.col("d_primary_cause").is_in(list(CAUSES)))
            .then(pl.col("d_primary_cause")).otherwise(pl.lit("unknown"))
        ).otherwise(pl.lit(None, pl.String)).alias("cause"),
    )

    # linked complaints
    t = t.join(_complaints_per_cell(links, complaints), on="cell_id", how="left")

    # work-order rank
    wo = _opt(work_orders, ("rank", "cell_id"), "work_orders")
    if wo is not None:
        def wcol(c: str) -> pl.Expr:
            return (pl.col(c).cast(pl.String) if c in wo.columns
                    else pl.lit(None, pl.String)).alias(f"wo_{c}")

        t = t.join(wo.select(pl.col("cell_id").cast(pl.String),
                             pl.col("rank").cast(pl.Int64).alias("wo_rank"),
                             wcol("order_id"), wcol("order_status"), wcol("runs_poor"))
                   .sort("wo_rank").unique("cell_id", keep="first"), on="cell_id", how="left")
    else:
        t = t.with_columns(pl.lit(None, pl.Int64).alias("wo_rank"),
                           *[pl.lit(None, pl.String).alias(f"wo_{c}")
                             for c in ("order_id", "order_status", "runs_poor")])

    # sparkline of the good rate over the last runs (raw SVG markup built from numbers and
    # escaped text only)
    t = t.join(_sparklines(trend, wo, followup), on="cell_id", how="left")

    return t.with_columns(_tooltip_expr().alias("tip"), _popup_expr().alias("lines"))


def _complaints_per_cell(links: pl.DataFrame | None,
                         complaints: pl.DataFrame | None) -> pl.DataFrame:
    """``cell_id``, ``n_complaints``, ``complaints_text`` (escaped list of the first few)."""
    empty = pl.DataFrame(schema={"cell_id": pl.String, "n_complaints": pl.UInt32,
                                 "complaints_text": pl.String})
    lk = _opt(links, ("complaint_id", "cell_id"), "links")
    if lk is None:
        return empty
    lk = lk.select(pl.col("complaint_id").cast(pl.String), pl.col("cell_id").cast(pl.String)
                   ).filter(pl.col("cell_id").is_not_null() & (pl.col("cell_id") != ""))
    cmp = _opt(complaints, ("complaint_id", "category"), "complaints")
    if cmp is not None:
        lk = lk.join(cmp.select(pl.col("complaint_id").cast(pl.String),
                                pl.col("category").cast(pl.String))
                     .unique("complaint_id", keep="first"), on="complaint_id", how="left")
    else:
        lk = lk.with_columns(pl.lit(None, pl.String).alias("category"))
    item = pl.concat_str(_esc(pl.col("complaint_id")),
                         pl.when(pl.col("category").is_not_null())
                         .then(pl.lit(" (") + _esc(pl.col("category")) + pl.lit(")"))
                         .otherwise(pl.lit("")))
    return (
        lk.with_columns(item.alias("item"))
        .sort("cell_id", "complaint_id")
        .group_by("cell_id", maintain_order=True)
        .agg(pl.len().alias("n_complaints"),
             pl.col("item").head(LISTED_COMPLAINTS).str.join(", ").alias("complaints_text"))
        .with_columns(pl.col("n_complaints").cast(pl.UInt32))
    )


def _name_expr() -> pl.Expr:
    return _esc(pl.coalesce(pl.col("cell_name"), pl.col("cell_id")))


def _tooltip_expr() -> pl.Expr:
    cause_part = (pl.when(pl.col("cause").is_not_null())
                  .then(pl.lit(" · ") + _esc(pl.coalesce(pl.col("d_primary_cause"), pl.col("cause"))))
                  .otherwise(pl.lit("")))
    rank_part = (pl.when(pl.col("wo_rank").is_not_null())
                 .then(pl.lit(" · work order #") + pl.col("wo_rank").cast(pl.String))
                 .otherwise(pl.lit("")))
    return pl.concat_str(_name_expr(), cause_part, rank_part)


def _popup_expr() -> pl.Expr:
    """Popup as escaped text lines joined by newlines; the page adds the markup (the first line is
    the title)."""
    def line(label: str, value: pl.Expr, *, escaped: bool = False) -> pl.Expr:
        shown = value if escaped else _esc(value)
        return (pl.when(value.is_not_null() & (value.cast(pl.String) != ""))
                .then(pl.lit(f"\n{label}") + shown).otherwise(pl.lit("")))

    return pl.concat_str(
        _name_expr(),
        line("cell ", pl.col("cell_id")),
        line("site ", pl.col("site_id")),
        line("vendor ", pl.col("vendor")),
        line("region ", pl.col("region")),
        line("", pl.col("rates_text"), escaped=True),   # built from escaped parts
        line("poor for ", pl.col("d_poor_services")),
        line("cause: ", pl.when(pl.col("cause").is_not_null())
             .then(pl.coalesce(pl.col("d_primary_cause"), pl.col("cause")))),
        line("also: ", pl.col("d_secondary_causes")),
        line("evidence: ", pl.col("d_evidence")),
        # where the diagnosis asks for a human check (its cluster disagrees), why
        line("to review: ", pl.col("d_review_note")),
        pl.when(pl.col("n_complaints").fill_null(0) > 0)
        .then(pl.lit("\ncomplaints: ") + pl.col("n_complaints").cast(pl.String)
              + pl.lit(" — ") + pl.col("complaints_text"))
        .otherwise(pl.lit("")),
        line("work order #", pl.col("wo_rank").cast(pl.String)),
        line("order ", pl.concat_str(
            pl.col("wo_order_id"),
            pl.when(pl.col("wo_order_status").is_not_null())
            .then(pl.lit(" · ") + pl.col("wo_order_status")).otherwise(pl.lit("")),
            pl.when(pl.col("wo_runs_poor").is_not_null())
            .then(pl.lit(" · poor in ") + pl.col("wo_runs_poor")
                  + pl.when(pl.col("wo_runs_poor") == "1").then(pl.lit(" run")).otherwise(pl.lit(" runs")))
            .otherwise(pl.lit("")))),
        line("", pl.col("spark"), escaped=True),   # SVG from numbers and escaped text only
    )


def _num_text(x: float) -> str:
    """A finite number as plain digits for SVG attributes (never text from the inputs)."""
    return f"{float(x):.1f}"


def _spark_svg(series: list[tuple[str, list[float]]]) -> str:
    """One inline SVG: a row per service with its name, first value, the line and last value.

    Rates are drawn on a 0.5-1 scale (lower when a value is lower), so that the same height
    means the same rate in every row. Only numbers and escaped service names enter the markup,
    and it has no line break (the popup splits lines on newlines).
    """
    row_h, top_pad = 20, 2
    x0, x1 = 96.0, 176.0            # the line's extent; labels left and right of it
    lo = min([0.5, *[v for _, vals in series for v in vals]])
    lo = float(np.floor(lo * 10) / 10)
    height = row_h * len(series) + top_pad
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="226" height="{height}" '
             f'viewBox="0 0 226 {height}" style="display:block;margin-top:3px" role="img">']
    for k, (service, vals) in enumerate(series):
        colour = SPARK_COLOURS[k % len(SPARK_COLOURS)]
        y_top, y_bot = top_pad + row_h * k + 3.0, top_pad + row_h * (k + 1) - 3.0
        base = y_bot - 2.0

        def y(v: float, y_top: float = y_top, y_bot: float = y_bot) -> float:
            return y_bot - (v - lo) / (1.0 - lo) * (y_bot - y_top) if lo < 1.0 else y_bot

        step = (x1 - x0) / (len(vals) - 1) if len(vals) > 1 else 0.0
        xs = [x0 + step * i if len(vals) > 1 else (x0 + x1) / 2 for i in range(len(vals))]
        pts = " ".join(f"{_num_text(a)},{_num_text(y(v))}" for a, v in zip(xs, vals, strict=True))
        parts.append(f'<text x="0" y="{_num_text(base)}" font-size="11" fill="#333">'
                     f"{html.escape(service[:14])}</text>")
        parts.append(f'<text x="{_num_text(x0 - 4)}" y="{_num_text(base)}" font-size="11" '
                     f'text-anchor="end" fill="{colour}">{vals[0] * 100:.0f}%</text>')
        if len(vals) > 1:
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" '
                         f'stroke-width="1.6"/>')
        parts.append(f'<circle cx="{_num_text(xs[-1])}" cy="{_num_text(y(vals[-1]))}" r="2.2" '
                     f'fill="{colour}"/>')
        parts.append(f'<text x="{_num_text(x1 + 5)}" y="{_num_text(base)}" font-size="11" '
                     f'fill="{colour}">{vals[-1] * 100:.0f}%</text>')
    parts.append("</svg>")
    return "".join(parts)


def _sparklines(trend: pl.DataFrame | None, work_orders: pl.DataFrame | None,
                followup: pl.DataFrame | None) -> pl.DataFrame:
    """``cell_id``, ``spark``: the SVG sparkline of each cell with a trend."""
    empty = pl.DataFrame(schema={"cell_id": pl.String, "spark": pl.String})
    tr = _opt(trend, ("cell_id", "service", "good_rate"), "trend")
    if tr is None:
        return empty
    when = next((c for c in ("last_day", "run_id") if c in tr.columns), None)
    if when is None:
        log.warning("map: trend has no column last_day or run_id; no sparklines")
        return empty
    t = (tr.select(pl.col("cell_id").cast(pl.String), pl.col(when).alias("_when"),
                   pl.col("service").cast(pl.String),
                   pl.col("good_rate").cast(pl.Float64).fill_nan(None))
         .filter(pl.col("cell_id").is_not_null() & pl.col("service").is_not_null()
                 & pl.col("_when").is_not_null() & pl.col("good_rate").is_not_null()
                 & pl.col("good_rate").is_between(0.0, 1.0))
         .unique(["cell_id", "service", "_when"], keep="last", maintain_order=True))
    if t.height == 0:
        return empty
    # the services each cell is poor for: its work order's list, then its follow-ups' service
    named: list[pl.DataFrame] = []
    if work_orders is not None and "poor_services" in work_orders.columns:
        named.append(work_orders.select(
            pl.col("cell_id").cast(pl.String),
            pl.col("poor_services").cast(pl.String).str.split(";").alias("service"))
            .explode("service"))
    if followup is not None and {"cell_id", "service"} <= set(followup.columns):
        named.append(followup.select(pl.col("cell_id").cast(pl.String),
                                     pl.col("service").cast(pl.String)))
    poor = (pl.concat(named).with_columns(pl.col("service").str.strip_chars())
            .filter(pl.col("service").is_not_null() & (pl.col("service") != ""))
            .unique(maintain_order=True)
            .with_columns(pl.int_range(pl.len()).over("cell_id").alias("_pos")) if named
            else pl.DataFrame(schema={"cell_id": pl.String, "service": pl.String,
                                      "_pos": pl.Int64}))
    has_trend = t.select("cell_id", "service").unique()
    listed = poor.join(has_trend, on=["cell_id", "service"], how="semi")
    # cells whose poor services have no trend show every service they have (by name)
    shown = pl.concat([listed.with_columns(pl.col("_pos").cast(pl.Int64)),
                       has_trend.join(listed, on="cell_id", how="anti")
                       .with_columns(pl.lit(None, pl.Int64).alias("_pos"))])
    t = t.join(shown, on=["cell_id", "service"], how="inner")
    groups = (t.sort("cell_id", "_pos", "service", "_when", nulls_last=True)
              .group_by("cell_id", "service", maintain_order=True)
              .agg(pl.col("good_rate").tail(SPARK_RUNS))
              .select("cell_id", "service", "good_rate"))
    out_ids: list[str] = []
    out_svg: list[str] = []
    current: str | None = None
    series: list[tuple[str, list[float]]] = []
    for cid, service, vals in [*groups.iter_rows(), (None, "", [])]:
        if cid != current:
            if current is not None and series:
                out_ids.append(current)
                out_svg.append(_spark_svg(series[:SPARK_SERVICES]))
            current, series = cid, []
        if cid is not None:
            series.append((service, [float(v) for v in vals]))
    return pl.DataFrame({"cell_id": out_ids, "spark": out_svg},
                        schema={"cell_id": pl.String, "spark": pl.String})


# ------------------------------------------------------------------------------------------------
# GeoJSON text
# ------------------------------------------------------------------------------------------------

def js_json(obj: Any) -> str:
    """JSON text safe inside a ``<script>`` block: ``<``, ``>``, ``&`` and the JS line separators
    are written as ``\\uXXXX`` escapes (outside strings JSON has none of them)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _ring_lists(rings: list[np.ndarray]) -> list[list[list[float]]]:
    """Rings as rounded nested lists, converted a block of same-length rings at a time."""
    out: list[list[list[float]]] = [[] for _ in rings]
    by_len: dict[int, list[int]] = {}
    for i, r in enumerate(rings):
        by_len.setdefault(len(r), []).append(i)
    for idx in by_len.values():
        block = np.round(np.stack([rings[i] for i in idx]), COORD_DECIMALS).tolist()
        for i, ring in zip(idx, block, strict=True):
            out[i] = ring
    return out


def _feature_collection(table: pl.DataFrame, coords: list[list[list[float]]],
                        mask: np.ndarray) -> str:
    """GeoJSON text (script-safe) of the masked cells' wedges.

    Properties: ``t`` the tooltip, ``l`` the popup lines (both escaped text, no markup).
    """
    tips = table["tip"].to_list()
    lines = table["lines"].to_list()
    features = [{"type": "Feature", "properties": {"t": tips[i], "l": lines[i]},
                 "geometry": {"type": "Polygon", "coordinates": [coords[i]]}}
                for i in np.flatnonzero(mask).tolist()]
    return js_json({"type": "FeatureCollection", "features": features})


# ------------------------------------------------------------------------------------------------
# layers
# ------------------------------------------------------------------------------------------------

#: JavaScript shared by the layers: popup markup from escaped text lines (first line bold)
_LINES_JS = ("window.kqiLines = window.kqiLines || function (s) { var p = s.split(\"\\n\"); "
             "return \"<b>\" + p[0] + \"</b>\" + (p.length > 1 ? \"<br>\" + "
             "p.slice(1).join(\"<br>\") : \"\"); };")


class _Raw(Element):
    """Text put into the page as it is.

    Folium compiles the output of every element's macros as a Jinja template again, so text from
    the inputs must never go through a macro: a cell named ``{{ 7*7 }}`` would be evaluated (and a
    crafted one could run code). Input-derived data therefore only enters the page through this
    element, whose render returns the text untouched.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "KqiRaw"
        self.text = text

    def render(self, **kwargs: Any) -> str:
        return self.text


class _DataLayer(Layer):
    """A layer whose (input-derived) data goes into a JSON block of the page body, unrendered."""

    data: str

    def render(self, **kwargs: Any) -> None:  # type: ignore[override]  # folium's layers return None
        block = (f'<script type="application/json" id="{self.get_name()}_data">'
                 f"{self.data}</script>")
        root: Any = self.get_root()
        root.html.add_child(_Raw(block), name=self.get_name() + "_data")
        super().render(**kwargs)


class _CanvasGeoJson(_DataLayer):
    """A GeoJSON overlay drawn on the map's canvas, with one tooltip and one popup binding.

    The data sits in a ``<script type="application/json">`` block read with ``JSON.parse``: the
    browser parses JSON text faster than the same data as a JavaScript literal.
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this.lines_js }}
        var {{ this.get_name() }} = L.geoJSON(JSON.parse(
            document.getElementById("{{ this.get_name() }}_data").textContent), {
            style: {{ this.style_json }},
        });
        {{ this.get_name() }}.kqiKind = {{ this.kind_json }};
        {{ this.get_name() }}.bindTooltip(function (l) { return l.feature.properties.t; },
                                          {sticky: true});
        {{ this.get_name() }}.bindPopup(function (l) {
            return window.kqiLines(l.feature.properties.l); }, {maxWidth: 380});
        {% endmacro %}
    """)

    def __init__(self, data: str, style: dict[str, Any], *, name: str, kind: str) -> None:
        super().__init__(name=html.escape(name), overlay=True, control=True, show=True)
        self._name = "KqiGeoJson"
        self.data = data
        self.style_json = js_json(style)
        self.kind_json = js_json(kind)
        self.lines_js = _LINES_JS


class _ComplaintPoints(_DataLayer):
    """Complaints as circle markers in a marker-cluster group, with a popup each."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this.lines_js }}
        var {{ this.get_name() }} = L.markerClusterGroup({
            showCoverageOnHover: false, maxClusterRadius: 50,
            // the complaints' own yellow and black, not the plugin's green/yellow/orange
            // bubbles, which read as recovered (green) or as a cause colour
            iconCreateFunction: function (c) {
                var n = c.getChildCount(), d = n < 10 ? 28 : (n < 100 ? 34 : 40);
                return L.divIcon({className: "kqi-complaint-cluster", iconSize: L.point(d, d),
                    html: '<div style="box-sizing:border-box;width:' + d + 'px;height:' + d
                        + 'px;border-radius:50%;background:{{ this.fill }};border:2px solid '
                        + '{{ this.edge }};text-align:center;font:bold 12px sans-serif;'
                        + 'line-height:' + (d - 4) + 'px;color:#222">' + n + '</div>'});
            }});
        {{ this.get_name() }}.kqiKind = "complaints";
        {{ this.get_name() }}.addLayers(L.geoJSON(JSON.parse(
            document.getElementById("{{ this.get_name() }}_data").textContent), {
            pointToLayer: function (f, ll) { return L.circleMarker(ll, {{ this.style_json }}); },
            onEachFeature: function (f, l) {
                l.bindPopup(window.kqiLines(f.properties.l), {maxWidth: 380});
                l.bindTooltip(f.properties.t);
            },
        }).getLayers());
        {% endmacro %}
    """)

    def __init__(self, data: str, *, name: str) -> None:
        super().__init__(name=html.escape(name), overlay=True, control=True, show=True)
        self._name = "KqiComplaints"
        self.data = data
        self.style_json = js_json(COMPLAINT_STYLE)
        self.fill, self.edge = COMPLAINT_STYLE["fillColor"], COMPLAINT_STYLE["color"]
        self.lines_js = _LINES_JS


class LegendControl(MacroElement):
    """A legend box (a Leaflet control) showing ``html`` at ``position``; the map's cause legend
    and the samples' bins legend are both one."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.control({position: {{ this.position_json }}});
        {{ this.get_name() }}.onAdd = function () {
            var div = L.DomUtil.create("div", {{ this.css_json }});
            div.style.cssText = "background:rgba(255,255,255,0.92);padding:6px 9px;"
                + "font:12px/1.5 sans-serif;border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3)";
            div.innerHTML = {{ this.html_json }};
            return div;
        };
        {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self, html_text: str, *, name: str, position: str,
                 css_class: str = "kqi-legend") -> None:
        super().__init__()
        self._name = name
        self.html_json = js_json(html_text)
        self.position_json = js_json(position)
        self.css_json = js_json(css_class)


class _Legend(LegendControl):
    """Cause colours and counts, bottom left."""

    def __init__(self, counts: dict[str, int], n_areas: int, complaints: ComplaintsShown,
                 n_recovered: int = 0, *, healthy_label: str = "not poor") -> None:

        def swatch(colour: str, label: str, *, outline: bool = False, dot: bool = False) -> str:
            shape = ("border-radius:50%;" if dot else "")
            fill = "transparent" if outline else colour
            border = f"2px dashed {colour}" if outline else "1px solid #555"
            return (f'<div><span style="display:inline-block;width:12px;height:12px;'
                    f'margin-right:6px;vertical-align:middle;{shape}background:{fill};'
                    f'border:{border}"></span>{html.escape(label)}</div>')

        judged = healthy_label == "not poor"
        rows = ["<b>Poor cells by cause</b>" if judged else "<b>Cells (no tests: none judged)</b>"]
        for cause in CAUSES:
            if counts.get(cause):
                rows.append(swatch(CAUSE_COLOURS[cause], f"{CAUSE_LABELS[cause]} ({counts[cause]:,})"))
        if len(rows) == 1 and judged:
            rows.append("<div>none</div>")
        if counts.get("not_poor") or not counts.get("estimated"):
            rows.append(swatch(str((HEALTHY_STYLE if judged else UNJUDGED_STYLE)["fillColor"]),
                               f"{healthy_label} ({counts.get('not_poor', 0):,})"))
        if counts.get("estimated"):
            rows.append(swatch(str(ESTIMATED_STYLE["fillColor"]),
                               f"position estimated from drive-test samples ({counts['estimated']:,})"))
        if n_recovered:
            rows.append(swatch(str(RECOVERED_STYLE["fillColor"]),
                               f"recovered, order closed ({n_recovered:,})"))
        if n_areas:
            rows.append(swatch("#333333", f"poor-quality area ({n_areas:,})", outline=True))
        if complaints.shown or complaints.no_position:
            rows.append(swatch(str(COMPLAINT_STYLE["fillColor"]), complaints.legend(), dot=True))
        super().__init__("".join(rows), name="KqiLegend", position="bottomleft")


class _Ready(MacroElement):
    """Exposes the map to scripts and marks when it has drawn (two frames after the last layer).

    The browser test and the benchmark read ``window.kqiMap`` and ``window.kqiDrawnAt``.
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        window.kqiMap = {{ this._parent.get_name() }};
        requestAnimationFrame(function () { requestAnimationFrame(function () {
            window.kqiDrawnAt = performance.now();
        }); });
        {% endmacro %}
    """)

    def __init__(self) -> None:
        super().__init__()
        self._name = "KqiReady"


def _base_map(tiles: str) -> folium.Map:
    """A canvas-preferring folium map with the configured basemap (or none)."""
    kind = tiles.strip()
    common: dict[str, Any] = {"prefer_canvas": True, "control_scale": True, "zoom_start": 12,
                              "location": [0.0, 0.0], "max_zoom": MAX_ZOOM}
    if kind == "" or kind.lower() == "none":
        return folium.Map(tiles=None, **common)
    if "{z}" in kind or "{x}" in kind:
        return folium.Map(tiles=kind, attr="map tiles: " + html.escape(kind.split("/")[2]
                                                                       if "//" in kind else kind),
                          **common)
    try:
        return folium.Map(tiles=kind, **common)
    except ValueError as exc:
        raise MapError(f"output.map_tiles '{kind}' is not a folium tile name or a URL template "
                       f"with {{z}}/{{x}}/{{y}}: {exc}") from None


def _add_areas(fmap: folium.Map, areas: pl.DataFrame | None, table: pl.DataFrame,
               rings: list[np.ndarray]) -> int:
    """Outline each poor-quality area: the convex hull of its cells' wedges."""
    a = _opt(areas, ("area_id", "cell_ids"), "areas")
    if a is None:
        return 0
    row_of = {cid: i for i, cid in enumerate(table["cell_id"].to_list())}
    features = []
    has_cause = "dominant_cause" in a.columns
    for rec in a.sort("area_id").iter_rows(named=True):
        ids = [s for s in str(rec["cell_ids"] or "").split(";") if s]
        members = [row_of[c] for c in ids if c in row_of]
        if not members:
            log.warning("map: area %s has no drawable cell; not shown", rec["area_id"])
            continue
        hull = geometry.convex_hull(np.vstack([rings[i] for i in members]))
        cause = str(rec["dominant_cause"]) if has_cause and rec["dominant_cause"] else "unknown"
        colour = CAUSE_COLOURS.get(cause, CAUSE_COLOURS["unknown"])
        label = (f"area {html.escape(str(rec['area_id']))}: {len(members)} poor cells"
                 f" · {html.escape(cause)}")
        cell_list = ", ".join(ids[:20]) + (" …" if len(ids) > 20 else "")
        features.append({
            "type": "Feature",
            "properties": {"t": label, "l": label + "\ncells: " + html.escape(cell_list),
                           "color": colour},
            "geometry": {"type": "Polygon",
                         "coordinates": [np.round(hull, COORD_DECIMALS).tolist()]},
        })
    if not features:
        return 0
    layer = _CanvasGeoJson(js_json({"type": "FeatureCollection", "features": features}),
                           AREA_STYLE, name=f"{AREA_LAYER} ({len(features):,})", kind="areas")
    # each outline takes its area's dominant-cause colour
    layer.style_json = ("function (f) { return Object.assign(" + js_json(AREA_STYLE)
                        + ", {color: f.properties.color}); }")
    layer.add_to(fmap)
    return len(features)


@dataclass(frozen=True)
class ComplaintsShown:
    """What the complaint layers show and what they leave out, for the legend.

    ``shown``: network complaints with a position (drawn); ``no_position``: network complaints
    without one (linked through their CRM cell, counted in its popup, not drawn);
    ``non_network``: tickets whose category is not a network problem (billing, ...), not drawn.
    """

    shown: int = 0
    no_position: int = 0
    non_network: int = 0

    def legend(self) -> str:
        """``network complaints: 215 shown, 9 without a position (56 non-network tickets not shown)``."""
        text = f"network complaints: {self.shown:,} shown"
        if self.no_position:
            text += f", {self.no_position:,} without a position"
        if self.non_network:
            tickets = "ticket" if self.non_network == 1 else "tickets"
            text += f" ({self.non_network:,} non-network {tickets} not shown)"
        return text


def _add_complaints(fmap: folium.Map, complaints: pl.DataFrame | None,
                    links: pl.DataFrame | None) -> ComplaintsShown:
    """Network complaints with a position: a heat layer and clustered points with escaped
    popups. Non-network tickets (billing, ...: ``network`` false in the links) are not drawn;
    the counts say what was left out."""
    c = _opt(complaints, ("complaint_id", "lat", "lon"), "complaints")
    if c is None:
        return ComplaintsShown()
    lk = _opt(links, ("complaint_id", "cell_id"), "links")
    non_network = 0
    if lk is not None and "network" in lk.columns:
        other = (lk.filter(~pl.col("network").cast(pl.Boolean).fill_null(False))
                 .get_column("complaint_id").cast(pl.String))
        keep = ~c.get_column("complaint_id").cast(pl.String).is_in(other.implode())
        non_network = int((~keep).sum())
        c = c.filter(keep)

    def col(name: str) -> pl.Expr:
        return (pl.col(name).cast(pl.String) if name in c.columns
                else pl.lit(None, pl.String)).alias(name)

    # times as a person reads them: "2026-11-03 20:39 UTC", not an ISO string with microseconds
    ts = (pl.col("ts").dt.strftime("%Y-%m-%d %H:%M UTC").alias("ts")
          if "ts" in c.columns and c.schema["ts"].is_temporal() else col("ts"))
    df = c.select(
        pl.col("complaint_id").cast(pl.String), ts, col("category"), col("description"),
        col("cell_id"), pl.col("lat").cast(pl.Float64), pl.col("lon").cast(pl.Float64),
    )
    ok = (df["lat"].is_not_null() & df["lon"].is_not_null() & df["lat"].is_finite()
          & df["lon"].is_finite() & df["lat"].is_between(-90, 90) & df["lon"].is_between(-180, 180))
    no_position = int((~ok).sum())
    if no_position:
        log.info("map: %d complaints without a position are not drawn", no_position)
    df = df.filter(ok).sort("complaint_id")
    if df.height == 0:
        return ComplaintsShown(0, no_position, non_network)
    if lk is not None:
        dist = (pl.col("distance_m").cast(pl.Float64) if "distance_m" in lk.columns
                else pl.lit(None, pl.Float64))
        df = df.join(lk.select(pl.col("complaint_id").cast(pl.String),
                               pl.col("cell_id").cast(pl.String).alias("linked_cell"),
                               dist.alias("distance_m")).unique("complaint_id", keep="first"),
                     on="complaint_id", how="left")
    else:
        df = df.with_columns(pl.lit(None, pl.String).alias("linked_cell"),
                             pl.lit(None, pl.Float64).alias("distance_m"))

    def line(label: str, value: pl.Expr) -> pl.Expr:
        return (pl.when(value.is_not_null() & (value != ""))
                .then(pl.lit(f"\n{label}") + _esc(value)).otherwise(pl.lit("")))

    linked = pl.coalesce(pl.col("linked_cell").replace("", None), pl.col("cell_id"))
    df = df.with_columns(
        pl.concat_str(pl.lit("complaint "), _esc(pl.col("complaint_id")),
                      pl.when(pl.col("category").is_not_null())
                      .then(pl.lit(" · ") + _esc(pl.col("category"))).otherwise(pl.lit(""))
                      ).alias("tip"),
        pl.concat_str(
            pl.lit("complaint "), _esc(pl.col("complaint_id")),
            line("time ", pl.col("ts")), line("category ", pl.col("category")),
            line("", pl.col("description")),
            line("linked cell ", linked),
            line("distance m ", pl.col("distance_m").round(0).cast(pl.Int64).cast(pl.String)),
        ).alias("lines"),
    )
    lat = np.round(df["lat"].to_numpy(), COORD_DECIMALS).tolist()
    lon = np.round(df["lon"].to_numpy(), COORD_DECIMALS).tolist()
    heat = HeatMap([[a, b] for a, b in zip(lat, lon, strict=True)],
                   name=html.escape(f"{HEAT_LAYER} ({df.height:,})"),
                   overlay=True, control=True, show=False, **HEAT_OPTIONS)
    # off at first: over a dense core it hides the cause colours; one tick in the layer control
    heat.default_js = []   # leaflet.heat comes with the other assets (maps.assets)
    heat.add_to(fmap)
    features = [
        {"type": "Feature", "properties": {"t": t, "l": h},
         "geometry": {"type": "Point", "coordinates": [b, a]}}
        for a, b, t, h in zip(lat, lon, df["tip"].to_list(), df["lines"].to_list(), strict=True)
    ]
    _ComplaintPoints(js_json({"type": "FeatureCollection", "features": features}),
                     name=f"{POINT_LAYER} ({df.height:,})").add_to(fmap)
    return ComplaintsShown(df.height, no_position, non_network)


def _add_recovered(fmap: folium.Map, followup: pl.DataFrame | None, table: pl.DataFrame,
                   coords: list[list[list[float]]]) -> int:
    """The cells whose follow-up verdict is ``recovered``: green wedges, a popup with the good
    rate before and after. Returns the number of cells drawn."""
    fu = _opt(followup, ("cell_id", "verdict"), "followup")
    if fu is None:
        return 0

    def col(c: str, dtype: Any = pl.String) -> pl.Expr:
        return column_or_null(fu.columns, c, dtype)

    rec = (fu.select(pl.col("cell_id").cast(pl.String), pl.col("verdict").cast(pl.String),
                     col("order_id"), col("status"), col("service"),
                     col("good_rate_before", pl.Float64), col("good_rate_after", pl.Float64))
           .filter(pl.col("verdict") == "recovered")
           .sort("cell_id", "order_id", nulls_last=True)
           .unique("cell_id", keep="last", maintain_order=True))
    row_of = {cid: i for i, cid in enumerate(table["cell_id"].to_list())}
    missing = rec.filter(~pl.col("cell_id").is_in(list(row_of)))
    if missing.height:
        log.info("map: %d recovered cells have no position; not drawn", missing.height)
    rec = rec.filter(pl.col("cell_id").is_in(list(row_of)))
    if rec.height == 0:
        return 0
    names = dict(zip(table["cell_id"].to_list(),
                     table.select(pl.coalesce("cell_name", "cell_id"))
                     .to_series().to_list(), strict=True))

    def pct(x: float | None) -> str | None:
        return f"{x * 100:.0f} %" if x is not None and np.isfinite(x) else None

    features = []
    for r in rec.iter_rows(named=True):
        before, after = pct(r["good_rate_before"]), pct(r["good_rate_after"])
        change = html.escape(f"recovered: {before} -> {after}") if before and after else "recovered"
        service = f" ({html.escape(r['service'])})" if r["service"] else ""
        name = html.escape(str(names[r["cell_id"]]))
        lines = [name, "cell " + html.escape(r["cell_id"])]
        if r["order_id"]:
            lines.append("order " + html.escape(r["order_id"])
                         + (" · " + html.escape(r["status"]) if r["status"] else ""))
        lines.append(change + service)
        features.append({"type": "Feature",
                         "properties": {"t": f"{name} · {change}", "l": "\n".join(lines)},
                         "geometry": {"type": "Polygon",
                                      "coordinates": [coords[row_of[r["cell_id"]]]]}})
    _CanvasGeoJson(js_json({"type": "FeatureCollection", "features": features}), RECOVERED_STYLE,
                   name=f"{RECOVERED_LAYER} ({len(features):,})", kind="recovered").add_to(fmap)
    return len(features)


def _renumber(root: Element) -> None:
    """Replace folium's random element ids with a counter so that output is reproducible."""
    seen: set[int] = set()
    counter = 0
    stack = [root]
    while stack:
        el = stack.pop(0)
        if id(el) in seen:
            continue
        seen.add(id(el))
        el._id = f"{counter:08x}"
        counter += 1
        stack.extend(getattr(el, "_children", {}).values())
