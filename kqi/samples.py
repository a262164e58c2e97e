"""Drive-test / MR samples: coverage bins, per-cell figures and cells estimated from samples.

A sample is one measurement (serving cell, position, RSRP, RSRQ, SINR, CQI, throughput) as a
drive-test logger (G-NetTrack Pro ...) or an MR export writes it; ``kqi.ingest`` reads and
validates the feed (``Ingest.samples``). This stage turns the accepted samples into:

* ``coverage_bins.csv``: a metric grid (``samples.bin_m``) with each bin's samples, median RSRP,
  weak share, serving cells, SINR, CQI and throughput;
* ``cell_samples.csv``: per serving cell its samples, weak-RSRP share, CQI>=7 share, SINR median
  and the p90 distance of its samples against the local inter-site distance, **weighted by
  place** (each grid bin the cell serves counts once: a car stuck in a jam, or a phone left on a
  table for an hour, does not outweigh a drive through the cell's whole footprint);
* cells estimated from their samples when the cells table does not have them (or there is
  none): the site from the pooled samples of every cell of the same eNB, the azimuth from the
  bearing of the cell's samples seen from the site. Every output marks them ``estimated``.

Where a poor cell's KPIs lack a figure, its sample figures are diagnosis evidence
(:func:`fill_evidence`), said so in the evidence text. The method and every default are in
``docs/samples.md``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from kqi.config import Config, SamplesConfig, check_samples
from kqi.frames import polars_schema
from kqi.geo import EARTH_RADIUS_M, bearing_deg, haversine_m
from kqi.schema import CELL_SAMPLES, CELLS, COVERAGE_BINS

log = logging.getLogger(__name__)

#: metres per degree of latitude on the sphere kqi.geo uses
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
#: Weiszfeld iterations of the site estimate (converges to < 1 m in far fewer on real data)
_WEISZFELD_ITER = 40
#: the distance quantile of cell_samples.csv (``dist_p90_m``)
DIST_QUANTILE = 0.9

_BINS_SCHEMA: dict[str, pl.DataType] = dict(polars_schema(COVERAGE_BINS))
_CELL_SCHEMA: dict[str, pl.DataType] = dict(polars_schema(CELL_SAMPLES))
#: columns of the estimated-cells table (a cells file the other commands read), after CELLS'
ESTIMATED_EXTRA: tuple[str, ...] = ("samples", "position_method")


@dataclass
class SamplesResult:
    """What :func:`analyse_samples` computed.

    Attributes
    ----------
    bins : polars.DataFrame
        ``coverage_bins.csv`` (:data:`kqi.schema.COVERAGE_BINS`), sorted by grid row and column.
    cells : polars.DataFrame
        ``cell_samples.csv`` (:data:`kqi.schema.CELL_SAMPLES`), sorted by ``cell_id``.
    estimated : polars.DataFrame
        The cells whose position was estimated, as a cells table (CELLS columns plus
        ``estimated``, ``samples``, ``position_method``): ``kqi samples --write-cells``.
    summary : dict
        Counts for ``summary.json`` and the console.
    """

    bins: pl.DataFrame
    cells: pl.DataFrame
    estimated: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# the grid
# --------------------------------------------------------------------------------------------

def grid_rows_cols(lat: pl.Expr, lon: pl.Expr, bin_m: float) -> tuple[pl.Expr, pl.Expr]:
    """Grid row and column of a position: rows ``bin_m`` metres of latitude apart, columns
    ``bin_m`` metres apart along the row's centre latitude. The grid is anchored at 0,0, so a
    bin keeps its id from run to run whatever the data's extent."""
    row = (lat * M_PER_DEG / bin_m).floor().cast(pl.Int64)
    lat_c = (row.cast(pl.Float64) + 0.5) * bin_m / M_PER_DEG
    col = (lon * M_PER_DEG * (lat_c * (math.pi / 180.0)).cos() / bin_m).floor().cast(pl.Int64)
    return row, col


def _centre(row: pl.Expr, col: pl.Expr, bin_m: float) -> tuple[pl.Expr, pl.Expr]:
    lat_c = (row.cast(pl.Float64) + 0.5) * bin_m / M_PER_DEG
    lon_c = (col.cast(pl.Float64) + 0.5) * bin_m / (M_PER_DEG * (lat_c * (math.pi / 180.0)).cos())
    return lat_c, lon_c


def _prepare(samples: pl.DataFrame, s: SamplesConfig) -> pl.DataFrame:
    need = ("cell_id", "lat", "lon", "rsrp_dbm")
    for c in need:
        if c not in samples.columns:
            raise ValueError(f"samples has no '{c}' column (pass Ingest.samples(...).frame)")

    def opt(c: str, dtype: pl.DataType) -> pl.Expr:
        return (pl.col(c).cast(dtype) if c in samples.columns else pl.lit(None, dtype)).alias(c)

    lat, lon = pl.col("lat").cast(pl.Float64), pl.col("lon").cast(pl.Float64)
    row, col = grid_rows_cols(lat, lon, s.bin_m)
    positioned = lat.is_not_null() & lon.is_not_null()
    return samples.select(
        pl.col("cell_id").cast(pl.String), lat.alias("lat"), lon.alias("lon"),
        pl.col("rsrp_dbm").cast(pl.Float64), opt("sinr_db", pl.Float64()),
        opt("cqi", pl.Float64()), opt("dl_kbps", pl.Float64()), opt("tech", pl.String()),
        pl.when(positioned).then(row).alias("row"), pl.when(positioned).then(col).alias("col"),
        (pl.col("rsrp_dbm") < s.weak_rsrp_dbm).cast(pl.Float64).alias("weak"),
        pl.when(pl.col("cqi").is_not_null()).then((pl.col("cqi") >= s.cqi_good).cast(pl.Float64))
        .alias("cqi_good") if "cqi" in samples.columns else pl.lit(None, pl.Float64).alias("cqi_good"),
    )


def coverage_bins(prepared: pl.DataFrame, s: SamplesConfig) -> pl.DataFrame:
    """One row per grid bin with positioned samples (:data:`kqi.schema.COVERAGE_BINS`)."""
    pos = prepared.filter(pl.col("row").is_not_null())
    if pos.height == 0:
        return pl.DataFrame(schema=_BINS_SCHEMA)
    top = (pos.filter(pl.col("cell_id").is_not_null())
           .group_by("row", "col", "cell_id").len()
           .sort(["row", "col", "len", "cell_id"], descending=[False, False, True, False])
           .group_by("row", "col", maintain_order=True).first()
           .select("row", "col", pl.col("cell_id").alias("top_cell_id")))
    lat_c, lon_c = _centre(pl.col("row"), pl.col("col"), s.bin_m)
    return (
        pos.group_by("row", "col").agg(
            pl.len().cast(pl.Int64).alias("samples"),
            pl.col("rsrp_dbm").median().alias("rsrp_median_dbm"),
            pl.col("weak").mean().alias("rsrp_weak_share"),
            pl.col("cell_id").drop_nulls().n_unique().cast(pl.Int64).alias("serving_cells"),
            pl.col("sinr_db").median().alias("sinr_median_db"),
            pl.col("cqi_good").mean().alias("cqi_good_share"),
            pl.col("dl_kbps").median().alias("dl_kbps_median"),
        )
        .join(top, on=["row", "col"], how="left")
        .sort("row", "col")
        .with_columns(
            pl.concat_str(pl.col("row").cast(pl.String), pl.lit("_"), pl.col("col").cast(pl.String))
            .alias("bin_id"),
            lat_c.round(6).alias("lat"), lon_c.round(6).alias("lon"),
        )
        .select([pl.col(n).cast(t) for n, t in _BINS_SCHEMA.items()])
    )


# --------------------------------------------------------------------------------------------
# per cell
# --------------------------------------------------------------------------------------------

def _cell_bins(prepared: pl.DataFrame) -> pl.DataFrame:
    """One row per (cell, bin): the cell's samples in that bin summarized, and where they were."""
    return (
        prepared.filter(pl.col("row").is_not_null() & pl.col("cell_id").is_not_null())
        .group_by("cell_id", "row", "col").agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("weak").mean(),
            pl.col("cqi_good").mean(),
            pl.col("sinr_db").median(),
            pl.col("rsrp_dbm").median(),
            pl.col("lat").mean(),
            pl.col("lon").mean(),
        )
        .sort("cell_id", "row", "col")
    )


def _cell_figures(prepared: pl.DataFrame, cb: pl.DataFrame) -> pl.DataFrame:
    """Per cell: samples, bins and the place-weighted figures (sample-weighted for a cell
    without any positioned sample: MR without GPS)."""
    served = prepared.filter(pl.col("cell_id").is_not_null())
    totals = served.group_by("cell_id").agg(
        pl.len().cast(pl.Int64).alias("samples"),
        pl.col("tech").drop_nulls().mode().sort().first().alias("tech"),
        pl.col("weak").mean().alias("_weak_t"),
        pl.col("cqi_good").mean().alias("_cqi_t"),
        pl.col("sinr_db").median().alias("_sinr_t"),
        pl.col("rsrp_dbm").median().alias("_rsrp_t"),
    )
    placed = cb.group_by("cell_id").agg(
        pl.len().cast(pl.Int64).alias("bins"),
        pl.col("weak").mean().alias("_weak_b"),
        pl.col("cqi_good").mean().alias("_cqi_b"),
        pl.col("sinr_db").median().alias("_sinr_b"),
        pl.col("rsrp_dbm").median().alias("_rsrp_b"),
    )
    t = totals.join(placed, on="cell_id", how="left").with_columns(pl.col("bins").fill_null(0))
    by_place = pl.col("bins") > 0
    return t.select(
        "cell_id", "samples", "bins", "tech",
        pl.when(by_place).then(pl.col("_weak_b")).otherwise(pl.col("_weak_t")).alias("rsrp_weak_ratio"),
        pl.when(by_place).then(pl.col("_cqi_b")).otherwise(pl.col("_cqi_t")).alias("cqi_good_ratio"),
        pl.when(by_place).then(pl.col("_sinr_b")).otherwise(pl.col("_sinr_t")).alias("sinr_median_db"),
        pl.when(by_place).then(pl.col("_rsrp_b")).otherwise(pl.col("_rsrp_t")).alias("rsrp_median_dbm"),
    )


# --------------------------------------------------------------------------------------------
# positions estimated from samples
# --------------------------------------------------------------------------------------------

def _rsrp_weight(rsrp: np.ndarray, per_db: float) -> np.ndarray:
    """Weight of a bin from its median RSRP, relative to the strongest: ``10^((RSRP - top) /
    per_db)``; a bin without RSRP weighs as one 60 dB below the top."""
    r = np.asarray(rsrp, dtype=np.float64)
    top = np.nanmax(r) if r.size and np.isfinite(r).any() else 0.0
    return np.power(10.0, (np.nan_to_num(r, nan=top - 60.0) - top) / per_db)


#: the site estimate weighs bins by RSRP as power (10^(RSRP/10)): with a path-loss exponent near
#: 3.8 that falls off as distance^-3.8, so the bins nearest the mast pull hardest and a sector's
#: far lobe hardly drags the site forward (measured against 10^(RSRP/20), 10^(RSRP/40) and equal
#: weights on synthetic drives: docs/samples.md)
SITE_WEIGHT_PER_DB = 10.0
#: the azimuth weighs bearings by RSRP as amplitude (10^(RSRP/20)): the main lobe counts more
#: than the side lobes without one strong bin deciding alone
BEARING_WEIGHT_PER_DB = 20.0


def _site_estimates(g: np.ndarray, lat: np.ndarray, lon: np.ndarray, w: np.ndarray, *,
                    n_groups: int, trim: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted geometric median (Weiszfeld) of each group's points, twice: the second time
    without the points beyond ``trim`` times the group's median distance from the first."""
    lat0 = np.bincount(g, weights=lat, minlength=n_groups) / np.maximum(
        np.bincount(g, minlength=n_groups), 1)
    lon0 = np.bincount(g, weights=lon, minlength=n_groups) / np.maximum(
        np.bincount(g, minlength=n_groups), 1)
    kx = M_PER_DEG * np.cos(np.radians(lat0))
    x = (lon - lon0[g]) * kx[g]
    y = (lat - lat0[g]) * M_PER_DEG
    keep = np.ones(len(g), dtype=bool)
    ex = np.zeros(n_groups)
    ey = np.zeros(n_groups)
    for rnd in range(2):
        ww = np.where(keep, w, 0.0)
        sw = np.bincount(g, weights=ww, minlength=n_groups)
        ex = np.bincount(g, weights=ww * x, minlength=n_groups) / np.where(sw > 0, sw, 1.0)
        ey = np.bincount(g, weights=ww * y, minlength=n_groups) / np.where(sw > 0, sw, 1.0)
        for _ in range(_WEISZFELD_ITER):
            d = np.hypot(x - ex[g], y - ey[g])
            inv = ww / np.maximum(d, 1.0)   # 1 m floor: a point on the estimate does not blow up
            s_inv = np.bincount(g, weights=inv, minlength=n_groups)
            s_inv = np.where(s_inv > 0, s_inv, 1.0)
            ex = np.bincount(g, weights=inv * x, minlength=n_groups) / s_inv
            ey = np.bincount(g, weights=inv * y, minlength=n_groups) / s_inv
        if rnd == 0:
            d = np.hypot(x - ex[g], y - ey[g])
            med = pl.DataFrame({"g": g, "d": d}).group_by("g").agg(pl.col("d").median())
            med_d = np.zeros(n_groups)
            med_d[med["g"].to_numpy()] = med["d"].to_numpy()
            keep = d <= np.maximum(trim * med_d[g], 1.0)
    return lat0 + ey / M_PER_DEG, lon0 + ex / kx


def _estimate_positions(figures: pl.DataFrame, cb: pl.DataFrame, cells: pl.DataFrame | None,
                        s: SamplesConfig) -> pl.DataFrame:
    """Position, azimuth and how they were found, for every cell with samples: from the cells
    table when it has the cell; else estimated (``estimated`` true).

    Returns ``cell_id, site_id, lat, lon, azimuth, beamwidth, estimated, position_method``.
    """
    from kqi.ingest.core import site_ids

    ids = figures.select("cell_id")
    site, _ = site_ids(ids.get_column("cell_id"))
    ids = ids.with_columns(site)
    known = (cells.select(pl.col("cell_id").cast(pl.String),
                          (pl.col("site_id").cast(pl.String) if "site_id" in cells.columns
                           else pl.lit(None, pl.String)).alias("site_id"),
                          pl.col("lat").cast(pl.Float64), pl.col("lon").cast(pl.Float64),
                          pl.col("azimuth").cast(pl.Float64),
                          (pl.col("beamwidth").cast(pl.Float64) if "beamwidth" in cells.columns
                           else pl.lit(None, pl.Float64)).alias("beamwidth"))
             if cells is not None and cells.height else None)
    out_known = pl.DataFrame(schema={"cell_id": pl.String})
    todo = ids
    if known is not None:
        out_known = ids.select("cell_id").join(known, on="cell_id", how="inner").with_columns(
            pl.lit(False).alias("estimated"), pl.lit("cells file").alias("position_method"))
        todo = ids.join(known.select("cell_id"), on="cell_id", how="anti")
    # an unknown cell's site: its eNB (ECI >> 8, or A of A-B); else the cell alone
    todo = todo.with_columns(pl.coalesce("site_id", pl.lit("\x00") + pl.col("cell_id")).alias("_site"))
    site_pos = pl.DataFrame(schema={"_site": pl.String, "s_lat": pl.Float64, "s_lon": pl.Float64,
                                    "position_method": pl.String})
    if known is not None:
        # a sector missing from a cells file that has its site's other sectors: the site is known
        site_pos = (known.filter(pl.col("site_id").is_not_null())
                    .group_by("site_id").agg(pl.col("lat").mean().alias("s_lat"),
                                             pl.col("lon").mean().alias("s_lon"))
                    .select(pl.col("site_id").alias("_site"), "s_lat", "s_lon",
                            pl.lit("site in cells file").alias("position_method")))
    pool = (cb.join(todo.select("cell_id", "_site"), on="cell_id", how="inner")
            .join(site_pos.select("_site"), on="_site", how="anti"))
    n_pool = pool.group_by("_site").agg(pl.col("n").sum().alias("_n"),
                                        pl.col("cell_id").n_unique().alias("_cells"))
    pool = pool.join(n_pool.filter(pl.col("_n") >= s.estimate_min_samples), on="_site", how="inner")
    if pool.height:
        pool = pool.sort("_site", "cell_id", "row", "col")
        sites = pool.get_column("_site").unique(maintain_order=True)
        g = pool.get_column("_site").replace_strict(
            {v: i for i, v in enumerate(sites.to_list())}, return_dtype=pl.Int64).to_numpy()
        est_lat, est_lon = _site_estimates(
            g, pool["lat"].to_numpy(), pool["lon"].to_numpy(),
            _rsrp_weight(pool["rsrp_dbm"].to_numpy(), SITE_WEIGHT_PER_DB), n_groups=len(sites),
            trim=s.estimate_trim)
        cells_per = n_pool.select("_site", "_cells")
        est = (pl.DataFrame({"_site": sites, "s_lat": est_lat, "s_lon": est_lon})
               .join(cells_per, on="_site", how="left")
               .select("_site", "s_lat", "s_lon",
                       pl.when(pl.col("_cells") > 1)
                       .then(pl.lit("samples of ") + pl.col("_cells").cast(pl.String)
                             + pl.lit(" cells of the site pooled"))
                       .otherwise(pl.lit("own samples")).alias("position_method")))
        site_pos = pl.concat([site_pos, est])
    placed = todo.join(site_pos, on="_site", how="inner")
    # azimuth: the circular mean bearing of the cell's bins seen from the site, RSRP-weighted
    az = pl.DataFrame(schema={"cell_id": pl.String, "azimuth": pl.Float64, "beamwidth": pl.Float64})
    pts = cb.join(placed.select("cell_id", "s_lat", "s_lon"), on="cell_id", how="inner")
    if pts.height:
        b = np.radians(bearing_deg(pts["s_lat"].to_numpy(), pts["s_lon"].to_numpy(),
                                   pts["lat"].to_numpy(), pts["lon"].to_numpy()))
        d = haversine_m(pts["s_lat"].to_numpy(), pts["s_lon"].to_numpy(),
                        pts["lat"].to_numpy(), pts["lon"].to_numpy())
        w = _rsrp_weight(pts["rsrp_dbm"].to_numpy(), BEARING_WEIGHT_PER_DB) * (d > 0.5 * s.bin_m)  # not the bin under the mast
        circ = pl.DataFrame({"cell_id": pts["cell_id"], "sx": w * np.sin(b), "cx": w * np.cos(b),
                             "w": w}).group_by("cell_id").agg(pl.col("sx").sum(), pl.col("cx").sum(),
                                                              pl.col("w").sum(), pl.len().alias("k"))
        resultant = (pl.col("sx") ** 2 + pl.col("cx") ** 2).sqrt() / pl.col("w")
        directional = (pl.col("w") > 0) & (pl.col("k") >= 3) & (resultant >= s.omni_resultant)
        az = circ.select(
            "cell_id",
            pl.when(directional).then((pl.arctan2("sx", "cx").degrees() + 360.0) % 360.0)
            .round(1).alias("azimuth"),
            pl.when(directional).then(pl.lit(float(CELLS.column("beamwidth").default or 65.0)))
            .otherwise(pl.lit(360.0)).alias("beamwidth"),
        )
    est_cells = placed.join(az, on="cell_id", how="left").select(
        "cell_id", "site_id", pl.col("s_lat").round(6).alias("lat"),
        pl.col("s_lon").round(6).alias("lon"), "azimuth",
        pl.col("beamwidth").fill_null(360.0), pl.lit(True).alias("estimated"), "position_method")
    unplaced = todo.join(placed.select("cell_id"), on="cell_id", how="anti").select(
        "cell_id", "site_id", pl.lit(None, pl.Float64).alias("lat"),
        pl.lit(None, pl.Float64).alias("lon"), pl.lit(None, pl.Float64).alias("azimuth"),
        pl.lit(None, pl.Float64).alias("beamwidth"), pl.lit(False).alias("estimated"),
        pl.lit("not estimated: too few positioned samples").alias("position_method"))
    cols = ["cell_id", "site_id", "lat", "lon", "azimuth", "beamwidth", "estimated",
            "position_method"]
    parts = [p.select([pl.col(c).cast(_POS_TYPES[c]) for c in cols])
             for p in (out_known, est_cells, unplaced) if p.height]
    if not parts:
        return pl.DataFrame(schema={c: _POS_TYPES[c] for c in cols})
    return pl.concat(parts).sort("cell_id")


_POS_TYPES: dict[str, pl.DataType] = {
    "cell_id": pl.String(), "site_id": pl.String(), "lat": pl.Float64(), "lon": pl.Float64(),
    "azimuth": pl.Float64(), "beamwidth": pl.Float64(), "estimated": pl.Boolean(),
    "position_method": pl.String(),
}


# --------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------

def analyse_samples(samples: pl.DataFrame, cells: pl.DataFrame | None = None,
                    config: Config | None = None, isd: pl.DataFrame | None = None) -> SamplesResult:
    """Coverage bins, per-cell figures and estimated cells from accepted samples.

    Parameters
    ----------
    samples : polars.DataFrame
        The accepted samples (``Ingest.samples(...).frame``: ``cell_id, lat, lon, rsrp_dbm`` and
        the optional ``sinr_db, cqi, dl_kbps, tech``).
    cells : polars.DataFrame, optional
        The cells table; cells it lacks (all, without one) are estimated from their samples.
    config : Config, optional
        ``config.samples`` (grid, thresholds, estimation) and ``config.diagnosis``
        (``isd_neighbours``, ``isd_floor_m``).
    isd : polars.DataFrame, optional
        ``cell_id, isd_m`` of the cells table (the run's, from :func:`kqi.geo.site_isd`).

    Returns
    -------
    SamplesResult
    """
    from kqi.geo import site_isd

    cfg = config or Config()
    s = cfg.samples
    check_samples(s)
    prepared = _prepare(samples, s)
    bins = coverage_bins(prepared, s)
    cb = _cell_bins(prepared)
    figures = _cell_figures(prepared, cb)
    pos = _estimate_positions(figures, cb, cells, s)

    # local ISD: the cells table's for its cells; for an estimated cell, from every site known
    # (the cells table and the estimates together)
    placed = pos.filter(pl.col("lat").is_not_null())
    isd_known = (isd.select(pl.col("cell_id").cast(pl.String), pl.col("isd_m").cast(pl.Float64))
                 if isd is not None else None)
    est = placed.filter(pl.col("estimated"))
    isd_parts = []
    if isd_known is not None:
        isd_parts.append(isd_known)
    elif cells is not None and cells.height:
        isd_parts.append(site_isd(cells, cfg).select("cell_id", "isd_m"))
    if est.height:
        network = est.select("cell_id", "site_id", "lat", "lon")
        if cells is not None and cells.height:
            network = pl.concat([network, cells.select(
                pl.col("cell_id").cast(pl.String),
                (pl.col("site_id").cast(pl.String) if "site_id" in cells.columns
                 else pl.lit(None, pl.String)).alias("site_id"),
                pl.col("lat").cast(pl.Float64), pl.col("lon").cast(pl.Float64))
                .join(est.select("cell_id"), on="cell_id", how="anti")])
        isd_est = site_isd(network, cfg).join(est.select("cell_id"), on="cell_id", how="semi")
        isd_parts.append(isd_est.select("cell_id", "isd_m"))
    isd_all = (pl.concat(isd_parts).unique("cell_id", keep="last") if isd_parts
               else pl.DataFrame(schema={"cell_id": pl.String, "isd_m": pl.Float64}))

    # p90 distance of the cell's bins from its position (place-weighted, as the figures)
    dist = pl.DataFrame(schema={"cell_id": pl.String, "dist_p90_m": pl.Float64})
    pts = cb.join(placed.select("cell_id", pl.col("lat").alias("c_lat"), pl.col("lon").alias("c_lon")),
                  on="cell_id", how="inner")
    if pts.height:
        d = haversine_m(pts["c_lat"].to_numpy(), pts["c_lon"].to_numpy(), pts["lat"].to_numpy(),
                        pts["lon"].to_numpy())
        dist = (pts.select("cell_id").with_columns(pl.Series("d", d)).group_by("cell_id")
                .agg(pl.col("d").quantile(DIST_QUANTILE, "linear").alias("dist_p90_m")))
    floor = cfg.diagnosis.isd_floor_m
    table = (
        figures.join(pos, on="cell_id", how="left")
        .join(isd_all, on="cell_id", how="left")
        .join(dist, on="cell_id", how="left")
        .with_columns(
            pl.when(pl.col("isd_m").is_not_null())
            .then(pl.max_horizontal(pl.col("isd_m"), pl.lit(floor))).alias("isd_m"),
            pl.col("estimated").fill_null(False),
            ((pl.col("samples") >= s.min_samples)
             & ((pl.col("bins") == 0) | (pl.col("bins") >= s.min_bins))).alias("evidence_ok"),
        )
        .with_columns((pl.col("dist_p90_m") / pl.col("isd_m")).alias("dist_isd_ratio"))
        .sort("cell_id")
    )
    cell_table = table.select([pl.col(n).cast(t) for n, t in _CELL_SCHEMA.items()])
    est_cells = _estimated_cells_table(table)
    summary = {
        "samples": int(prepared.height),
        "positioned": int(prepared["row"].is_not_null().sum()),
        "bins": bins.height,
        "bin_m": s.bin_m,
        "serving_cells": cell_table.height,
        "cells_file": cells is not None,
        "cells_in_cells_file": int((pos["position_method"] == "cells file").sum()) if pos.height else 0,
        "cells_estimated": int(cell_table["estimated"].sum()),
        "sites_estimated": int(est_cells["site_id"].n_unique()) if est_cells.height else 0,
        "cells_without_position": int(cell_table["lat"].is_null().sum()),
        "cells_with_evidence": int(cell_table["evidence_ok"].sum()),
        "weak_bins": int((bins["rsrp_weak_share"] > cfg.diagnosis.rsrp_weak_ratio).sum())
        if bins.height else 0,
    }
    log.info("samples: %d bins of %g m, %d serving cells (%d estimated, %d without position)",
             bins.height, s.bin_m, cell_table.height, summary["cells_estimated"],
             summary["cells_without_position"])
    return SamplesResult(bins=bins, cells=cell_table, estimated=est_cells, summary=summary)


def _estimated_cells_table(table: pl.DataFrame) -> pl.DataFrame:
    """The estimated cells as a cells file (contract cells columns first): what ``kqi samples
    --write-cells`` writes and ``kqi run --cells`` reads back. An omni estimate (no clear
    direction) has azimuth 0 and beamwidth 360."""
    est = table.filter(pl.col("estimated") & pl.col("lat").is_not_null())
    out: dict[str, pl.Expr] = {
        "cell_id": pl.col("cell_id"),
        "site_id": pl.col("site_id"),
        "cell_name": pl.lit(None, pl.String),
        "lat": pl.col("lat"),
        "lon": pl.col("lon"),
        "azimuth": pl.col("azimuth").fill_null(0.0),
        "beamwidth": pl.when(pl.col("azimuth").is_null()).then(pl.lit(360.0))
        .otherwise(pl.col("beamwidth")),
        "vendor": pl.lit(None, pl.String),
        "region": pl.lit(None, pl.String),
        "tech": pl.col("tech"),
        "estimated": pl.lit(1, pl.Int8),
        "samples": pl.col("samples"),
        "position_method": pl.col("position_method"),
    }
    assert tuple(out) == (*CELLS.names, *ESTIMATED_EXTRA)
    return est.select([e.alias(k) for k, e in out.items()]).sort("cell_id")


# --------------------------------------------------------------------------------------------
# `kqi samples`: the feed on its own
# --------------------------------------------------------------------------------------------

@dataclass
class SamplesRun:
    """What :func:`run_samples` computed and wrote.

    Attributes
    ----------
    result : SamplesResult
        Bins, per-cell figures, estimated cells, summary.
    cells : polars.DataFrame or None
        The validated cells table, when one was given.
    out : Path or None
        The output folder (``None`` when nothing was written).
    files : list of Path
        Files written.
    manifest : dict
        What ``manifest.json`` holds (feeds with per-file accounting, config, outputs).
    summary : dict
        What ``summary.json`` holds.
    rejects : dict of polars.DataFrame
        Rejected rows per feed when ``out`` is ``None``.
    """

    result: SamplesResult
    cells: pl.DataFrame | None = None
    out: Any = None
    files: list[Any] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    rejects: dict[str, pl.DataFrame] = field(default_factory=dict)


def write_outputs(result: SamplesResult, out_dir: Any) -> list[Any]:
    """``coverage_bins.csv``, ``cell_samples.csv`` and, when any cell was estimated,
    ``cells_estimated.csv`` (a cells file ``kqi run --cells`` reads), atomically."""
    from pathlib import Path

    from kqi.io import write_csv

    d = Path(out_dir)
    files = [write_csv(d / "coverage_bins.csv", result.bins),
             write_csv(d / "cell_samples.csv", result.cells)]
    if result.estimated.height:
        files.append(write_csv(d / "cells_estimated.csv", result.estimated))
    return files


def run_samples(samples: Any, *, cells: Any = None, out: Any = None,
                config: Config | str | Any = None) -> SamplesRun:
    """Read a samples feed (a file or a folder of files) and write its coverage bins, per-cell
    figures, estimated cells and a map: what ``kqi samples`` runs.

    Parameters
    ----------
    samples : path, folder, polars DataFrame/LazyFrame or Arrow table
        Drive-test / MR samples (docs/samples.md).
    cells : path or table, optional
        The cells table; cells missing from it (all, without one) are estimated.
    out : str or Path, optional
        Output folder: ``coverage_bins.csv``, ``cell_samples.csv``, ``cells_estimated.csv``,
        ``map.html``, ``summary.json``, ``rejects/``, ``manifest.json``, ``run_info.json``;
        ``None`` writes nothing.
    config : Config, str or Path, optional
        ``[samples]`` settings (grid size, thresholds), ``[output] map``.

    Returns
    -------
    SamplesRun
    """
    import datetime as dt
    import platform
    import time
    from pathlib import Path

    from kqi import __version__
    from kqi.config import as_config
    from kqi.ingest import Ingest, source_name
    from kqi.io import write_json, write_text

    cfg = as_config(config)
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()

    def body(out_dir: Path | None) -> SamplesRun:
        rejects_dir = None if out_dir is None else out_dir / "rejects"
        ing = Ingest(cfg, rejects_dir=rejects_dir, verdicts=True)
        cell_df = ing.cells(cells) if cells is not None else None
        feed = ing.samples(samples)
        isd = None
        if cell_df is not None and cell_df.height:
            from kqi.geo import site_isd

            isd = site_isd(cell_df, cfg)
        result = analyse_samples(feed.frame, cell_df, cfg, isd=isd)
        run = SamplesRun(result=result, cells=cell_df, rejects=dict(ing.rejects))
        from kqi.summary import feed_counts

        run.summary = {"inputs": feed_counts(ing.reports), "samples": result.summary}
        if out_dir is not None:
            run.files.extend(write_outputs(result, out_dir))
            if cfg.output.map:
                drawn = render_samples_map(result, cell_df, out_dir / "map.html", cfg)
                if drawn is not None:
                    run.files.append(drawn)
                else:
                    run.summary["samples"]["map"] = ("no map: no serving cell has a position "
                                                     "(none in the cells file, no positioned "
                                                     "samples to estimate one)")
                    log.warning("samples: %s", run.summary["samples"]["map"])
            from kqi.summary import samples_markdown, source_files

            run.files.append(write_json(out_dir / "summary.json", run.summary))
            run.files.append(write_text(out_dir / "summary.md",
                                        samples_markdown(run.summary, source_files(ing.reports))))
            run.files.extend(sorted(p for p in (out_dir / "rejects").glob("*.csv")))
        feeds = {name: rep.to_dict() for name, rep in ing.reports.items()}
        seconds = {name: f.pop("seconds") for name, f in feeds.items()}
        for f in feeds.values():
            if f.get("rejects_path") and out_dir is not None:
                f["rejects_path"] = Path(f["rejects_path"]).relative_to(out_dir).as_posix()
        run_info = {"started_utc": started.isoformat(timespec="seconds"),
                    "timings_s": {"samples": round(time.perf_counter() - t0, 3)},
                    "feed_seconds": seconds}
        if out_dir is not None:
            run.files.append(write_json(out_dir / "run_info.json", run_info))
        run.manifest = {
            "kqi_version": __version__, "python": platform.python_version(), "feeds": feeds,
            "inputs": {k: source_name(v, k) for k, v in (("samples", samples), ("cells", cells))
                       if v is not None},
            "config": cfg.to_dict(), "run_info": "run_info.json",
            "outputs": ([] if out_dir is None
                        else sorted(p.relative_to(out_dir).as_posix() for p in run.files)),
        }
        if out_dir is not None:
            run.files.append(write_json(out_dir / "manifest.json", run.manifest))
        return run

    if out is None:
        return body(None)
    from kqi.outdir import OutputDir, os_errors

    with OutputDir(out) as od, os_errors(od.path, "write the outputs"):
        run = body(od.staging)
        run.files = od.commit(run.files)
        run.out = od.path
    return run


def map_cells(result: SamplesResult, cells: pl.DataFrame | None) -> pl.DataFrame | None:
    """The cells a samples map draws: the cells table's cells that served samples, and the
    estimated ones (an omni estimate as a circle)."""
    parts = []
    if cells is not None and cells.height:
        served = result.cells.filter(~pl.col("estimated")).select("cell_id")
        parts.append(cells.join(served, on="cell_id", how="semi")
                     .select([c for c in CELLS.names if c in cells.columns]))
    if result.estimated.height:
        parts.append(result.estimated.select(CELLS.names))
    parts = [p for p in parts if p.height]
    if not parts:
        return None
    return pl.concat(parts, how="diagonal_relaxed").unique("cell_id", keep="first").sort("cell_id")


def cells_with_estimates(cells: pl.DataFrame, result: SamplesResult | None) -> pl.DataFrame:
    """The cells table and, after it, the cells estimated from samples that it lacks (what a
    run's map draws: an estimated cell's popup says so)."""
    if result is None or result.estimated.height == 0:
        return cells
    extra = result.estimated.join(cells.select(pl.col("cell_id").cast(pl.String)), on="cell_id",
                                  how="anti")
    cols = [c for c in CELLS.names if c in cells.columns]
    return pl.concat([cells.select(cols), extra.select(cols)], how="diagonal_relaxed")


def render_samples_map(result: SamplesResult, cells: pl.DataFrame | None, path: Any,
                       config: Config) -> Any:
    """``map.html`` of a samples run: the bins by median RSRP and the serving cells (estimated
    ones said so in their popups); ``None`` (nothing written) when no cell has a position."""
    from kqi.maps import render_map

    drawn = map_cells(result, cells)
    if drawn is None:
        return None   # nothing to place on a map (MR without GPS, no cells file)
    return render_map(path, cells=drawn, config=config, samples=result)


# --------------------------------------------------------------------------------------------
# sample figures as diagnosis evidence
# --------------------------------------------------------------------------------------------

#: evidence columns the samples add (kqi.causes reads them): the counts behind the figures,
#: the overshooting figures (only where the KPIs have no TA), the SINR and RSRP corroboration,
#: and which KPI figures were taken from samples
SAMPLE_EVIDENCE: tuple[str, ...] = (
    "smp_samples", "smp_bins", "smp_dist_p90_m", "smp_isd_m", "smp_dist_isd_ratio",
    "smp_sinr_median_db", "smp_rsrp_median_dbm", "smp_rsrp_weak_from", "smp_cqi_from",
)


def fill_evidence(evidence: pl.DataFrame, cell_samples: pl.DataFrame | None) -> pl.DataFrame:
    """The diagnosis evidence with the samples' figures where the KPIs lack them.

    For a cell whose sample figures are evidence (``evidence_ok``): a missing ``rsrp_weak_ratio``
    or ``cqi_good_ratio`` is taken from its samples (``smp_rsrp_weak_from`` /
    ``smp_cqi_from`` = the number of samples, so the evidence text can say so); without a TA
    figure, the p90 distance of its samples against the local ISD is ``smp_dist_isd_ratio``
    (overshooting's samples rule); its SINR and RSRP medians are always added (interference
    corroboration). A cell with samples but no KPI rows gets a row of its own (``kpi_hours``
    null). Cells without sample evidence are unchanged.
    """
    if cell_samples is None or cell_samples.height == 0:
        return evidence
    s = cell_samples.filter(pl.col("evidence_ok")).select(
        pl.col("cell_id").cast(pl.String),
        pl.col("samples").alias("_n"), pl.col("bins").alias("_b"),
        pl.col("rsrp_weak_ratio").alias("_weak"), pl.col("cqi_good_ratio").alias("_cqi"),
        pl.col("sinr_median_db").alias("_sinr"), pl.col("rsrp_median_dbm").alias("_rsrp"),
        pl.col("dist_p90_m").alias("_dist"), pl.col("isd_m").alias("_isd"),
        pl.col("dist_isd_ratio").alias("_ratio"),
    )
    if s.height == 0:
        return evidence
    ev = evidence.with_columns(pl.col("cell_id").cast(pl.String))
    for c in ("rsrp_weak_ratio", "cqi_good_ratio", "ta_isd_ratio"):
        if c not in ev.columns:
            ev = ev.with_columns(pl.lit(None, pl.Float64).alias(c))
    missing = s.join(ev.select("cell_id"), on="cell_id", how="anti").select("cell_id")
    if missing.height:
        ev = pl.concat([ev, missing], how="diagonal_relaxed")
    j = ev.join(s, on="cell_id", how="left")
    has = pl.col("_n").is_not_null()
    weak_from = has & pl.col("rsrp_weak_ratio").is_null() & pl.col("_weak").is_not_null()
    cqi_from = has & pl.col("cqi_good_ratio").is_null() & pl.col("_cqi").is_not_null()
    no_ta = has & pl.col("ta_isd_ratio").is_null()
    out = j.with_columns(
        pl.when(weak_from).then(pl.col("_weak")).otherwise(pl.col("rsrp_weak_ratio"))
        .alias("rsrp_weak_ratio"),
        pl.when(cqi_from).then(pl.col("_cqi")).otherwise(pl.col("cqi_good_ratio"))
        .alias("cqi_good_ratio"),
        pl.col("_n").cast(pl.Float64).alias("smp_samples"),
        pl.col("_b").cast(pl.Float64).alias("smp_bins"),
        pl.when(no_ta).then(pl.col("_dist")).alias("smp_dist_p90_m"),
        pl.when(no_ta).then(pl.col("_isd")).alias("smp_isd_m"),
        pl.when(no_ta).then(pl.col("_ratio")).alias("smp_dist_isd_ratio"),
        pl.col("_sinr").alias("smp_sinr_median_db"),
        pl.col("_rsrp").alias("smp_rsrp_median_dbm"),
        pl.when(weak_from).then(pl.col("_n").cast(pl.Float64)).alias("smp_rsrp_weak_from"),
        pl.when(cqi_from).then(pl.col("_n").cast(pl.Float64)).alias("smp_cqi_from"),
    ).drop("_n", "_b", "_weak", "_cqi", "_sinr", "_rsrp", "_dist", "_isd", "_ratio")
    return out.sort("cell_id")
