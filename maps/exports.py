"""Exports of the map's sector wedges for other tools: ``sectors.kmz`` and ``cells.geojson``.

``sectors.kmz`` opens in Google Earth: every exported cell as a wedge polygon in its cause's
colour (the map's colours), in two views of the same cells, of which Google Earth shows one at a
time (a radio folder): **By cause** (a folder per cause) and **By vendor** (a folder per
vendor). Each placemark's balloon is the map popup's content; its extended data holds the
cell's attributes.

``cells.geojson`` (RFC 7946) opens in QGIS, ArcGIS, geojson.io or a script: the same wedges as
polygons (counter-clockwise exterior rings, ``[lon, lat]``) with the cell's attributes as
properties, and simplestyle ``fill`` / ``stroke`` colours.

After ``kqi run`` both hold the poor cells; after ``kqi map --cells`` (a cell list without tests)
they hold every cell. Both are byte-identical for the same inputs (fixed zip entry times, cells in
a total order) and written atomically.

The KML is written as text, every value from the data through one escaping rule (control
characters removed, ``& < >`` escaped, attribute values quoted: ``_x`` for one value, ``_xml`` the
same over a column); see docs/maps.md ("Exports") for why neither simplekml nor fastkml is used.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import polars as pl
from kqi.maps.render import (
    CAUSE_COLOURS,
    CAUSE_LABELS,
    HEALTHY_STYLE,
    POOR_STYLE,
    UNJUDGED_STYLE,
    _popup_expr,
    sector_table,
)

from kqi import _sidecar
from kqi.config import Config
from kqi.io import CONTROL, FIXED_TIME, atomic_path, write_text
from kqi.schema import CAUSES, SERVICES

KML_NS = "http://www.opengis.net/kml/2.2"
KMZ_NAME = "sectors.kmz"
GEOJSON_NAME = "cells.geojson"
#: decimals of exported coordinates (about 0.1 m): GIS users measure on these
EXPORT_DECIMALS = 6
#: the By-cause folder of cells placed from their drive-test samples (not poor, or not judged)
ESTIMATED_FOLDER = "Estimated from drive-test samples"
#: the By-cause folder of cells that were not judged (a cell list without tests)
UNJUDGED_FOLDER = "No test data"
NOT_POOR_FOLDER = "Not poor"
UNKNOWN_VENDOR = "Unknown vendor"
VIEW_BY_CAUSE = "By cause"
VIEW_BY_VENDOR = "By vendor"

# XML 1.0 cannot carry these at all; the other control characters go as in every output (kqi.io)
_NOT_XML = re.compile("[\ufffe\uffff]")
_CONTROL = re.compile(CONTROL)

#: the attributes of an exported cell: (column of the attribute table, label in Google Earth)
ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("cell_id", "Cell"),
    ("cell_name", "Cell name"),
    ("site_id", "Site"),
    ("vendor", "Vendor"),
    ("region", "Region"),
    ("status", "Status"),
    ("primary_cause", "Primary cause"),
    ("cause_label", "Cause"),
    ("secondary_causes", "Secondary causes"),
    ("poor_services", "Poor services"),
    ("evidence", "Evidence"),
    *((f"good_rate_{s}", f"Good rate {s}") for s in SERVICES),
    ("tests", "Tests"),
    ("complaints", "Linked complaints"),
    ("rank", "Work order rank"),
    ("priority_score", "Priority score"),
    ("action", "Action"),
    ("order_id", "Order"),
    ("order_status", "Order status"),
    ("azimuth", "Azimuth (deg)"),
    ("beamwidth", "Beamwidth (deg)"),
    ("radius_m", "Wedge radius (m)"),
    ("estimated", "Position estimated from drive-test samples"),
)


def _clean(value: str) -> str:
    """Text as every kqi output carries it: no control characters, nothing XML cannot hold."""
    return _NOT_XML.sub("", _CONTROL.sub("", value))


def _status(judged: bool) -> pl.Expr:
    if not judged:
        return pl.lit("not_judged")
    return pl.when(pl.col("cause").is_not_null()).then(pl.lit("poor")).otherwise(pl.lit("not_poor"))


def export_table(cells: pl.DataFrame, *, cell_kqi: pl.DataFrame | None = None,
                 diagnosis: pl.DataFrame | None = None, complaints: pl.DataFrame | None = None,
                 links: pl.DataFrame | None = None, work_orders: pl.DataFrame | None = None,
                 isd: pl.DataFrame | None = None, config: Config | None = None,
                 all_cells: bool = False) -> tuple[pl.DataFrame, list[np.ndarray]]:
    """The exported cells: their attributes (:data:`ATTRIBUTES` plus ``colour``, ``popup`` and
    the style key ``style``) and their wedge rings, counter-clockwise.

    The poor cells (those the map colours by cause), or every drawable cell when ``all_cells``;
    in work-order rank, then by ``cell_id``.
    """
    table, rings = sector_table(cells, cell_kqi=cell_kqi, diagnosis=diagnosis, links=links,
                                complaints=complaints, work_orders=work_orders, isd=isd,
                                config=config)
    judged = cell_kqi is not None or diagnosis is not None
    t = table.with_row_index("_ring").with_columns(
        pl.lit(None, pl.String).alias("spark"),   # the popup's sparkline is SVG for the browser
    ).with_columns(
        (_popup_expr() + pl.when(pl.col("estimated"))
         .then(pl.lit("\nposition estimated from drive-test samples")).otherwise(pl.lit("")))
        .alias("popup"), _status(judged).alias("status"))
    if not all_cells:
        t = t.filter(pl.col("cause").is_not_null())

    # figures the popup has as text, as numbers
    if cell_kqi is not None and cell_kqi.height and {"cell_id", "service", "good_rate",
                                                      "tests"} <= set(cell_kqi.columns):
        rates = (cell_kqi.select(pl.col("cell_id").cast(pl.String),
                                 pl.col("service").cast(pl.String),
                                 pl.col("good_rate").cast(pl.Float64),
                                 pl.col("tests").cast(pl.Int64))
                 .filter(pl.col("service").is_in(list(SERVICES))))
        wide = (rates.pivot(on="service", index="cell_id", values="good_rate",
                            aggregate_function="first")
                .rename({s: f"good_rate_{s}" for s in SERVICES if s in rates["service"]}))
        tests = rates.group_by("cell_id").agg(pl.col("tests").sum())
        t = t.join(wide, on="cell_id", how="left").join(tests, on="cell_id", how="left")
    for s in SERVICES:
        if f"good_rate_{s}" not in t.columns:
            t = t.with_columns(pl.lit(None, pl.Float64).alias(f"good_rate_{s}"))
    if "tests" not in t.columns:
        t = t.with_columns(pl.lit(None, pl.Int64).alias("tests"))
    wo_cols = {"priority_score": pl.Float64, "action": pl.String}
    if work_orders is not None and work_orders.height and "cell_id" in work_orders.columns:
        extra = work_orders.select(
            pl.col("cell_id").cast(pl.String),
            *[(pl.col(c).cast(d) if c in work_orders.columns else pl.lit(None, d)).alias(c)
              for c, d in wo_cols.items()],
        ).unique("cell_id", keep="first", maintain_order=True)
        t = t.join(extra, on="cell_id", how="left")
    else:
        t = t.with_columns([pl.lit(None, d).alias(c) for c, d in wo_cols.items()])

    label = pl.col("cause").replace_strict(CAUSE_LABELS, default=None, return_dtype=pl.String)
    colour = pl.col("cause").replace_strict(CAUSE_COLOURS, default=None, return_dtype=pl.String)
    unjudged = UNJUDGED_FOLDER if not judged else NOT_POOR_FOLDER
    t = t.with_columns(
        pl.col("d_primary_cause").alias("primary_cause"),
        label.fill_null(pl.when(pl.col("estimated")).then(pl.lit(ESTIMATED_FOLDER))
                        .otherwise(pl.lit(unjudged))).alias("cause_label"),
        colour.fill_null(pl.lit(str(_cell_style(judged)["fillColor"]))).alias("colour"),
        pl.coalesce(pl.col("cause"), pl.lit("_cells")).alias("style"),
        pl.col("d_secondary_causes").alias("secondary_causes"),
        pl.col("d_poor_services").alias("poor_services"),
        pl.col("d_evidence").alias("evidence"),
        pl.col("n_complaints").cast(pl.Int64).fill_null(0).alias("complaints"),
        pl.col("wo_rank").alias("rank"),
        pl.col("wo_order_id").alias("order_id"),
        pl.col("wo_order_status").alias("order_status"),
        pl.col("radius_m").round(0),
    ).sort("rank", "cell_id", nulls_last=True)
    ccw = [rings[i][::-1] for i in t["_ring"].to_list()]   # the map's rings run clockwise
    cols = [c for c, _ in ATTRIBUTES]
    return t.select(*cols, "colour", "style", "popup"), ccw


def _cell_style(judged: bool) -> dict[str, Any]:
    """The map's style of the cells not coloured by a cause."""
    return HEALTHY_STYLE if judged else UNJUDGED_STYLE


def write_geojson(path: str | Path, table: pl.DataFrame, rings: Sequence[np.ndarray]) -> Path:
    """``cells.geojson``: one Polygon feature per row of :func:`export_table`, properties the
    attributes plus simplestyle colours (``fill``, ``stroke``), one feature per line."""
    def prop(name: str, dtype: pl.DataType) -> pl.Expr:
        col = pl.col(name)
        if dtype.is_float():    # rounded like the CSVs; NaN and infinities are null
            return pl.when(col.is_finite()).then(col.round(6)).alias(name)
        if dtype == pl.String:
            return col.str.replace_all(CONTROL, "").str.replace_all("[\ufffe\uffff]", "")
        return col

    def style(key: str) -> pl.Expr:
        # not-poor cells take the map's style of cells not coloured by a cause
        return (pl.when(pl.col("status") == "poor").then(pl.lit(POOR_STYLE[key]))
                .when(pl.col("status") == "not_judged").then(pl.lit(UNJUDGED_STYLE[key]))
                .otherwise(pl.lit(HEALTHY_STYLE[key])).cast(pl.Float64))

    cols = [c for c, _ in ATTRIBUTES]
    props = table.select(pl.struct(
        *[prop(c, table.schema[c]) for c in cols],
        pl.col("colour").alias("fill"), pl.col("colour").alias("stroke"),
        style("fillOpacity").alias("fill-opacity"), style("weight").alias("stroke-width"),
    ).struct.json_encode()).to_series().to_list()
    coords = _ring_texts(rings, point=("[", ",", "]"), sep=",")
    lines = [f'{{"type":"Feature","properties":{p},"geometry":{{"type":"Polygon",'
             f'"coordinates":[[{c}]]}}}}' for p, c in zip(props, coords, strict=True)]
    text = '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"
    return write_text(path, text)


def _ring_texts(rings: Sequence[np.ndarray], *, point: tuple[str, str, str],
                sep: str) -> list[str]:
    """Each ring's coordinates as text, ``point`` = (before, between, after) of a ``lon, lat``
    pair, ``sep`` between pairs; rounded to :data:`EXPORT_DECIMALS`, formatted a block of
    same-length rings at a time (numbers only: nothing to escape)."""
    out = [""] * len(rings)
    by_len: dict[int, list[int]] = {}
    for i, r in enumerate(rings):
        by_len.setdefault(len(r), []).append(i)
    before, between, after = point
    for n, idx in by_len.items():
        block = np.round(np.stack([rings[i] for i in idx]), EXPORT_DECIMALS).reshape(len(idx), -1)
        frame = pl.DataFrame(block, schema=[f"c{j}" for j in range(2 * n)], orient="row")
        parts: list[pl.Expr] = []
        for k in range(n):
            if k:
                parts.append(pl.lit(sep))
            parts += [pl.lit(before), pl.col(f"c{2 * k}").cast(pl.String), pl.lit(between),
                      pl.col(f"c{2 * k + 1}").cast(pl.String), pl.lit(after)]
        texts = frame.select(pl.concat_str(parts)).to_series().to_list()
        for i, t in zip(idx, texts, strict=True):
            out[i] = t
    return out


# ------------------------------------------------------------------------------------------------
# KML
# ------------------------------------------------------------------------------------------------

def kml_colour(hex_rgb: str, opacity: float) -> str:
    """``#rrggbb`` and an opacity 0-1 as KML's ``aabbggrr``."""
    h = hex_rgb.lstrip("#")
    a = max(0, min(255, round(opacity * 255)))
    return f"{a:02x}{h[4:6]}{h[2:4]}{h[0:2]}".lower()


def _x(value: str) -> str:
    """Text for an XML element: cleaned (:func:`_clean`), then ``& < >`` escaped."""
    return escape(_clean(value))


def _el(tag: str, text: str, **attrib: str) -> str:
    """``<tag attr="...">text</tag>`` with the text and every attribute value escaped."""
    attrs = "".join(f" {k}={quoteattr(_clean(v))}" for k, v in attrib.items())
    return f"<{tag}{attrs}>{_x(text)}</{tag}>"


def _style(sid: str, colour: str, *, fill: float, width: float, line_opacity: float) -> str:
    return (f'<Style id="{sid}"><LineStyle>{_el("color", kml_colour(colour, line_opacity))}'
            f'{_el("width", f"{width:g}")}</LineStyle>'
            f'<PolyStyle>{_el("color", kml_colour(colour, fill))}</PolyStyle>'
            # the balloon shows the description alone (no "directions to here" links)
            "<BalloonStyle><text>$[description]</text></BalloonStyle></Style>")


def _xml(expr: pl.Expr) -> pl.Expr:
    """:func:`_x` as a polars expression (a whole column at a time)."""
    out = expr.cast(pl.String).str.replace_all(CONTROL, "").str.replace_all("[\ufffe\uffff]", "")
    for raw, ent in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        out = out.str.replace_all(raw, ent, literal=True)
    return out


def _shown(name: str, dtype: pl.DataType) -> pl.Expr:
    """An attribute as text for the extended data (floats to six decimals; empty when null)."""
    col = pl.col(name)
    if dtype.is_float():
        col = pl.when(col.is_finite()).then(col.round(6))
    return col.cast(pl.String)


def _placemarks(table: pl.DataFrame, rings: Sequence[np.ndarray]) -> list[str]:
    """Every row of :func:`export_table` as a placemark (every text from the data escaped by
    :func:`_xml`), built a column at a time."""
    def data(col: str, label: str) -> pl.Expr:
        v = _shown(col, table.schema[col])
        return (pl.when(v.is_not_null() & (v != ""))
                .then(pl.concat_str(pl.lit(f'<Data name="{col}"><displayName>{escape(label)}'
                                           "</displayName><value>"), _xml(v),
                                    pl.lit("</value></Data>")))
                .otherwise(pl.lit("")))

    snippet = pl.concat_str(
        pl.col("cause_label"), pl.lit(" · "), pl.col("cell_id"),
        pl.when(pl.col("rank").is_not_null())
        .then(pl.lit(" · work order #") + pl.col("rank").cast(pl.String)).otherwise(pl.lit("")))
    # the popup's lines are escaped text: the balloon (HTML) shows them as text, first line bold
    body = (pl.col("popup").str.replace(r"^([^\n]*)", "<b>$1</b>")
            .str.replace_all("\n", "<br>", literal=True))
    head = table.select(pl.concat_str(
        pl.lit("<Placemark><name>"), _xml(pl.coalesce("cell_name", "cell_id")),
        pl.lit('</name><Snippet maxLines="1">'), _xml(snippet),
        pl.lit("</Snippet><description>"),
        _xml(pl.lit('<div style="font-family:sans-serif;max-width:380px">') + body
             + pl.lit("</div>")),
        pl.lit("</description><styleUrl>#"),
        pl.when(pl.col("style") == "_cells").then(pl.lit("cells"))
        .otherwise(pl.lit("cause-") + pl.col("style")),
        pl.lit("</styleUrl><ExtendedData>"),
        *[data(c, label) for c, label in ATTRIBUTES],
        pl.lit("</ExtendedData><Polygon><tessellate>1</tessellate><altitudeMode>clampToGround"
               "</altitudeMode><outerBoundaryIs><LinearRing><coordinates>"),
    ).alias("head")).to_series().to_list()
    tail = "</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>"
    coords = _ring_texts(rings, point=("", ",", ""), sep=" ")
    return [h + c + tail for h, c in zip(head, coords, strict=True)]


def _style_id(key: str) -> str:
    return "cells" if key == "_cells" else f"cause-{key}"


def _folder(name: str, children: list[str], *, visible: bool = True, is_open: bool = False,
            style_url: str | None = None, description: str | None = None) -> str:
    """A folder around already written children."""
    return "".join([
        "<Folder>", _el("name", name),
        "" if visible else "<visibility>0</visibility>",
        "<open>1</open>" if is_open else "",
        _el("description", description) if description else "",
        _el("styleUrl", style_url) if style_url else "",
        *children, "</Folder>"])


def kml_document(table: pl.DataFrame, rings: Sequence[np.ndarray], *, title: str) -> bytes:
    """The KML text: styles, then a radio folder of two views (by cause, by vendor)."""
    keys = set(table["style"].to_list())
    styles = [_style(_style_id(c), CAUSE_COLOURS[c], fill=POOR_STYLE["fillOpacity"],
                     width=max(1.5, POOR_STYLE["weight"]), line_opacity=POOR_STYLE["opacity"])
              for c in CAUSES if c in keys]
    if "_cells" in keys:
        cell = _cell_style("not_judged" not in set(table["status"].to_list()))
        styles.append(_style("cells", str(cell["fillColor"]), fill=max(0.25, cell["fillOpacity"]),
                             width=1.0, line_opacity=cell["opacity"]))
    styles.append('<Style id="views"><ListStyle><listItemType>radioFolder</listItemType>'
                  "</ListStyle></Style>")

    records = table.select("style", "cause_label", "vendor").to_dicts()
    marks = _placemarks(table, rings)
    by_cause: list[str] = []
    for key in CAUSES:
        idx = [i for i, r in enumerate(records) if r["style"] == key]
        if idx:
            label = records[idx[0]]["cause_label"]
            by_cause.append(_folder(f"{label} ({len(idx):,})", [marks[i] for i in idx]))
    # the other cells: not poor (or not judged), and those placed from drive-test samples
    labels = sorted({r["cause_label"] for r in records if r["style"] == "_cells"},
                    key=lambda x: x == ESTIMATED_FOLDER)
    for label in labels:
        idx = [i for i, r in enumerate(records) if r["style"] == "_cells" and r["cause_label"] == label]
        by_cause.append(_folder(f"{label} ({len(idx):,})", [marks[i] for i in idx]))
    vendors = sorted({r["vendor"] or "" for r in records}, key=lambda v: (v == "", v))
    by_vendor: list[str] = []
    for v in vendors:
        idx = [i for i, r in enumerate(records) if (r["vendor"] or "") == v]
        by_vendor.append(_folder(f"{v or UNKNOWN_VENDOR} ({len(idx):,})", [marks[i] for i in idx]))
    views = _folder(f"{title} ({len(records):,})", [
        _folder(VIEW_BY_CAUSE, by_cause, is_open=True),
        _folder(VIEW_BY_VENDOR, by_vendor, visible=False),
    ], is_open=True, style_url="#views",
        description="Two views of the same cells; Google Earth shows one at a time.")
    text = "".join(['<?xml version="1.0" encoding="UTF-8"?>\n', f'<kml xmlns="{KML_NS}">',
                    "<Document>", _el("name", title), "<open>1</open>", *styles, views,
                    "</Document></kml>\n"])
    return text.encode("utf-8")


def write_kmz(path: str | Path, table: pl.DataFrame, rings: Sequence[np.ndarray], *,
              title: str) -> Path:
    """``sectors.kmz``: ``doc.kml`` (see :func:`kml_document`) zipped, its entry time fixed
    (:data:`kqi.io.FIXED_TIME`), so the same cells give the same bytes."""
    entry = zipfile.ZipInfo("doc.kml", date_time=FIXED_TIME)   # not the time of writing
    entry.compress_type = zipfile.ZIP_DEFLATED
    entry.external_attr = 0o644 << 16
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as z:
        z.writestr(entry, kml_document(table, rings, title=title))
    return Path(path)


@_sidecar.remote
def write_exports(out_dir: str | Path, *, cells: pl.DataFrame,
                  cell_kqi: pl.DataFrame | None = None, diagnosis: pl.DataFrame | None = None,
                  complaints: pl.DataFrame | None = None, links: pl.DataFrame | None = None,
                  work_orders: pl.DataFrame | None = None, isd: pl.DataFrame | None = None,
                  config: Config | None = None, all_cells: bool = False) -> list[Path]:
    """Write ``sectors.kmz`` and ``cells.geojson`` into ``out_dir`` (each when the config's
    ``output.kmz`` / ``output.geojson`` is on); return the paths written.

    The poor cells, or every cell with ``all_cells`` (a cell list without tests).
    """
    cfg = config if config is not None else Config()
    if not (cfg.output.kmz or cfg.output.geojson):
        return []
    table, rings = export_table(cells, cell_kqi=cell_kqi, diagnosis=diagnosis,
                                complaints=complaints, links=links, work_orders=work_orders,
                                isd=isd, config=cfg, all_cells=all_cells)
    out = Path(out_dir)
    files = []
    if cfg.output.kmz:
        title = "kqi cells" if all_cells else "kqi poor cells"
        files.append(write_kmz(out / KMZ_NAME, table, rings, title=title))
    if cfg.output.geojson:
        files.append(write_geojson(out / GEOJSON_NAME, table, rings))
    return files
