"""The samples layers of ``map.html``: coverage bins coloured by median RSRP (legend in dBm), and
the drive-test figures (and an estimated position) in each cell's popup.

Kept apart from :mod:`kqi.maps.render`, which calls :func:`add_bins`, :func:`bins_legend` and
:func:`cell_lines`. Bins are one GeoJSON layer of squares on the shared canvas, like the cells;
their text is numbers and escaped ids only.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import polars as pl

from kqi.geo import EARTH_RADIUS_M

#: median-RSRP classes of a bin: (lower bound dBm, colour, label), strongest first; the last
#: class takes everything below the one before (the usual drive-test palette, 10 dB steps)
RSRP_CLASSES: tuple[tuple[float, str, str], ...] = (
    (-80.0, "#1a9641", ">= -80 dBm"),
    (-90.0, "#a6d96a", "-90 to -80 dBm"),
    (-100.0, "#ffffbf", "-100 to -90 dBm"),
    (-110.0, "#fdae61", "-110 to -100 dBm"),
    (-math.inf, "#d7191c", "< -110 dBm (weak)"),
)
BIN_STYLE = {"weight": 0.3, "color": "#555555", "opacity": 0.6, "fillOpacity": 0.7}
BINS_LAYER = "Drive-test bins, median RSRP"
_M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
_DECIMALS = 6


def rsrp_colour(rsrp: np.ndarray) -> list[str]:
    """The class colour of each median RSRP (NaN takes the weakest class)."""
    r = np.nan_to_num(np.asarray(rsrp, dtype=np.float64), nan=-math.inf)
    out = np.full(r.shape, RSRP_CLASSES[-1][1], dtype=object)
    for lo, colour, _ in reversed(RSRP_CLASSES[:-1]):
        out[r >= lo] = colour
    return [str(c) for c in out]


def bin_features(bins: pl.DataFrame, bin_m: float) -> list[dict[str, Any]]:
    """GeoJSON squares of the bins (``bin_m`` a side around each centre), with tooltip ``t``,
    popup lines ``l`` and fill colour ``c``."""
    if bins.height == 0:
        return []
    lat = bins["lat"].to_numpy()
    lon = bins["lon"].to_numpy()
    half_lat = bin_m / 2.0 / _M_PER_DEG
    half_lon = bin_m / 2.0 / (_M_PER_DEG * np.cos(np.radians(lat)))
    colours = rsrp_colour(bins["rsrp_median_dbm"].to_numpy())

    def fmt(v: Any, unit: str, digits: int = 0) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "n/a"
        return f"{v:.{digits}f}{unit}"

    feats = []
    for i, r in enumerate(bins.iter_rows(named=True)):
        a, b = float(lat[i]), float(lon[i])
        dy, dx = float(half_lat), float(half_lon[i])
        ring = [[round(b - dx, _DECIMALS), round(a - dy, _DECIMALS)],
                [round(b + dx, _DECIMALS), round(a - dy, _DECIMALS)],
                [round(b + dx, _DECIMALS), round(a + dy, _DECIMALS)],
                [round(b - dx, _DECIMALS), round(a + dy, _DECIMALS)],
                [round(b - dx, _DECIMALS), round(a - dy, _DECIMALS)]]
        tip = (f"bin {html.escape(str(r['bin_id']))}: RSRP {fmt(r['rsrp_median_dbm'], ' dBm')}"
               f" · {r['samples']} samples")
        lines = [
            f"bin {html.escape(str(r['bin_id']))} ({bin_m:g} m)",
            f"{r['samples']:,} samples, {r['serving_cells']} serving cells",
            f"median RSRP {fmt(r['rsrp_median_dbm'], ' dBm')}; "
            f"{fmt(100.0 * r['rsrp_weak_share'], ' %')} weak",
            f"median SINR {fmt(r.get('sinr_median_db'), ' dB', 1)}; CQI>=7 "
            f"{fmt(None if r.get('cqi_good_share') is None else 100.0 * r['cqi_good_share'], ' %')}",
            f"median DL {fmt(r.get('dl_kbps_median'), ' kbit/s')}",
        ]
        if r.get("top_cell_id"):
            lines.append("mostly served by " + html.escape(str(r["top_cell_id"])))
        feats.append({"type": "Feature", "properties": {"t": tip, "l": "\n".join(lines),
                                                        "c": colours[i]},
                      "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return feats


def bins_legend() -> str:
    """Legend rows (HTML, constants only) of the RSRP classes."""
    rows = ["<b>Drive-test bins: median RSRP</b>"]
    for _, colour, label in RSRP_CLASSES:
        rows.append(f'<div><span style="display:inline-block;width:12px;height:12px;'
                    f'margin-right:6px;vertical-align:middle;background:{colour};'
                    f'border:1px solid #555"></span>{html.escape(label)}</div>')
    return "".join(rows)


def add_bins(fmap: Any, samples: Any, layer_cls: Any, js_json: Any) -> tuple[int, list[float] | None]:
    """Add the bins layer to ``fmap``; returns the number of bins and their bounds
    ``[south, west, north, east]`` (``None`` without bins)."""
    bins = getattr(samples, "bins", None)
    if bins is None or bins.height == 0:
        return 0, None
    bin_m = float(samples.summary.get("bin_m", 50.0))
    feats = bin_features(bins, bin_m)
    layer = layer_cls(js_json({"type": "FeatureCollection", "features": feats}), BIN_STYLE,
                      name=f"{BINS_LAYER} ({len(feats):,})", kind="bins")
    layer.style_json = ("function (f) { return Object.assign(" + js_json(BIN_STYLE)
                        + ", {fillColor: f.properties.c}); }")
    layer.add_to(fmap)
    lat = bins["lat"].to_numpy()
    lon = bins["lon"].to_numpy()
    return len(feats), [float(lat.min()), float(lon.min()), float(lat.max()), float(lon.max())]


def cell_lines(samples: Any, table: pl.DataFrame | None = None) -> pl.DataFrame:
    """``cell_id, samples_text``: a cell's drive-test figures for its popup (escaped text; an
    estimated position said so), and, for a cell of ``table`` (the cells drawn) marked
    ``estimated`` = 1 without samples this run, that its position was estimated."""
    empty = pl.DataFrame(schema={"cell_id": pl.String, "samples_text": pl.String})
    cells = getattr(samples, "cells", None)
    flagged = empty
    if table is not None and "estimated" in table.columns:
        flagged = table.filter(pl.col("estimated").cast(pl.Int8, strict=False) == 1).select(
            pl.col("cell_id").cast(pl.String),
            pl.lit("position ESTIMATED from drive-test samples (cells file of kqi samples)")
            .alias("samples_text"))
    if cells is None or cells.height == 0:
        return flagged

    def num(c: str, scale: float = 1.0, digits: int = 0) -> pl.Expr:
        r = (pl.col(c) * scale).round(digits)
        return (r.cast(pl.Int64) if digits == 0 else r).cast(pl.String).fill_null("n/a")

    text = pl.concat_str(
        pl.when(pl.col("estimated"))
        .then(pl.lit("position ESTIMATED from samples (")
              + pl.col("position_method").fill_null("").str.replace_all("&", "&amp;")
              .str.replace_all("<", "&lt;").str.replace_all(">", "&gt;") + pl.lit(")\n"))
        .otherwise(pl.lit("")),
        pl.lit("drive test: "), pl.col("samples").cast(pl.String), pl.lit(" samples in "),
        pl.col("bins").cast(pl.String), pl.lit(" bins; weak RSRP "),
        num("rsrp_weak_ratio", 100.0), pl.lit(" %, CQI>=7 "), num("cqi_good_ratio", 100.0),
        pl.lit(" %, SINR median "), num("sinr_median_db", 1.0, 1), pl.lit(" dB"),
        pl.when(pl.col("dist_p90_m").is_not_null())
        .then(pl.lit("; p90 distance ") + num("dist_p90_m") + pl.lit(" m = ")
              + num("dist_isd_ratio", 1.0, 2) + pl.lit(" x ISD"))
        .otherwise(pl.lit("")),
    )
    lines = cells.select(pl.col("cell_id").cast(pl.String), text.alias("samples_text"))
    return pl.concat([lines, flagged.join(lines, on="cell_id", how="anti")])
