"""Complaints: link each network complaint to the cell that most likely served it; hotspots.

Linking (:func:`link_complaints`)
    1. ``config.complaints.categories`` maps a category (lower-cased, stripped) to the service it
       concerns (browsing, video, gaming, or coverage for no/weak signal); ``""`` or an unknown
       category means *not a network complaint* (billing, tariff, ...): such a complaint is never
       linked (method ``non_network``).
    2. A network complaint that names a cell of the cells table keeps it (method ``crm``).
    3. A network complaint with a position is linked spatially (method ``spatial``): every cell
       reaches ``clip(radius_isd_factor * ISD, min_radius_m, max_radius_m)`` around its site,
       scaled by the site's local inter-site distance (ISD); every cell within its reach scores ::

           score = (1 - distance / reach)
                 + beam_weight * beam       # 1 when the complaint lies inside azimuth +- beamwidth/2,
                                            # falling to 0 one half-beam outside
                 + poor_weight * poor       # 1 when the cell is poor in the complaint's service
                                            # (coverage: in any service)

       and the best one wins (ties: nearer, then lower cell_id).
    4. Anything else is ``unlinked`` (no position, or no cell within its reach).

Hotspots (:func:`hotspots`)
    TOP-N cells by linked complaints (``volume``), by increase of the last period over the one
    before (``increase``; only when the complaint window spans two periods of
    ``config.complaints.period_days`` whole days counted back from the day of the last complaint),
    by complaints per 10,000 subscribers (``per_10k``: subscribers from a file, per cell or per
    region, else estimated from busy-hour RRC users, as ``subscribers_source`` says), and spatial
    clusters of complaint positions (``spatial``; hdbscan, haversine metric).

Personal data: ``msisdn`` is never read here; no function returns a column of the complaints feed
other than ``complaint_id``, positions and category-derived values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from kqi import geo
from kqi._link_kernels import COVERAGE, link_candidates
from kqi.clustering import spatial_clusters
from kqi.config import Config
from kqi.errors import KqiError
from kqi.frames import DType, column_or_null, linked_network, poor_services_agg, require_columns
from kqi.schema import CELLS, COMPLAINT_LINKS, SERVICE_CODE, SERVICES

log = logging.getLogger(__name__)

__all__ = [
    "HOTSPOT_KINDS",
    "classify",
    "hotspots",
    "link_complaints",
    "silent_poor_cells",
]

#: order of the hotspot kinds in the output
HOTSPOT_KINDS: tuple[str, ...] = ("volume", "increase", "per_10k", "spatial")
#: complaint service values (the services plus coverage)
COMPLAINT_SERVICES: tuple[str, ...] = (*SERVICES, "coverage")
if COMPLAINT_SERVICES.index("coverage") != COVERAGE:  # pragma: no cover - kernel contract
    raise ImportError("kqi._link_kernels.COVERAGE does not match COMPLAINT_SERVICES")
_DEFAULT_BEAMWIDTH = float(CELLS.column("beamwidth").default or 65.0)

_LINK_COLUMNS = [f.name for f in COMPLAINT_LINKS]




def classify(category: pl.Series, config: Config) -> pl.DataFrame:
    """Decide for each category whether it is a network complaint and which service it concerns.

    Parameters
    ----------
    category : polars.Series
        Category text or codes, e.g. ``video``, ``上网慢``, ``billing``.
    config : kqi.config.Config
        ``config.complaints.categories`` is the mapping (keys compared lower-cased and stripped).

    Returns
    -------
    polars.DataFrame
        ``network`` (bool) and ``service`` (browsing/video/gaming/coverage; null when not a
        network complaint), one row per input value.
    """
    cats = config.complaints.categories
    mapping = dict(zip(_category_keys(pl.Series(list(cats), dtype=pl.String)).to_list(),
                       cats.values(), strict=True))
    norm = _category_keys(category)
    service = norm.replace_strict(mapping, default="", return_dtype=pl.String).fill_null("")
    unmapped = norm.filter(~norm.is_in(list(mapping)) & norm.is_not_null() & (norm != ""))
    if unmapped.len():
        top = unmapped.value_counts(sort=True).head(5).rows()
        log.warning("complaint categories not in complaints.categories, taken as non-network: %s",
                    ", ".join(f"{k} ({n})" for k, n in top))
    return pl.DataFrame({
        "network": service != "",
        "service": pl.Series("service", service).replace("", None),
    })


def _category_keys(categories: pl.Series) -> pl.Series:
    """'No Signal', 'no-signal' and 'no_signal' are one category: the same key for the mapping's
    entries and for the tickets' values."""
    return (categories.cast(pl.String).str.strip_chars().str.to_lowercase()
            .str.replace_all(r"[\s\-]+", "_"))


def _poor_matrix(cell_kqi: pl.DataFrame | None, cell_ids: pl.Series) -> np.ndarray:
    """int8 [n_cells, 3]: 1 where the cell (row of ``cell_ids``) is poor for the service."""
    poor = np.zeros((cell_ids.len(), len(SERVICES)), dtype=np.int8)
    if cell_kqi is None or cell_kqi.height == 0:
        return poor
    require_columns(cell_kqi, ("cell_id", "service", "poor"), "cell_kqi")
    pos = pl.DataFrame({"cell_id": cell_ids, "_row": pl.int_range(cell_ids.len(), eager=True)})
    hits = (
        cell_kqi.filter(pl.col("poor").fill_null(False))
        .select(pl.col("cell_id").cast(pl.String), pl.col("service").cast(pl.String))
        .filter(pl.col("service").is_in(SERVICES))
        .join(pos, on="cell_id", how="inner")
        .with_columns(pl.col("service").replace_strict(SERVICE_CODE, return_dtype=pl.Int64))
    )
    poor[hits["_row"].to_numpy(), hits["service"].to_numpy()] = 1
    return poor


def _cells_frame(cells: pl.DataFrame) -> pl.DataFrame:
    require_columns(cells, ("cell_id", "lat", "lon", "azimuth"), "cells")
    bw = column_or_null(cells.columns, "beamwidth", pl.Float64)
    site = column_or_null(cells.columns, "site_id", pl.String)
    out = cells.select(
        pl.col("cell_id").cast(pl.String),
        site.alias("site_id"),
        pl.col("lat").cast(pl.Float64),
        pl.col("lon").cast(pl.Float64),
        pl.col("azimuth").cast(pl.Float64).fill_null(0.0),
        bw.fill_null(_DEFAULT_BEAMWIDTH).fill_nan(_DEFAULT_BEAMWIDTH).alias("beamwidth"),
    ).filter(pl.col("lat").is_not_null() & pl.col("lon").is_not_null()).sort("cell_id")
    if out["cell_id"].is_duplicated().any():
        raise KqiError("cells: cell_id is not unique")
    return out


def _candidates(cf: pl.DataFrame, reach: np.ndarray, q_lat: np.ndarray, q_lon: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR candidates (starts, cell rows, distances): every cell within its own reach of a query.

    Cells are grouped by reach (powers of two), one grid query per group at the group's largest
    reach, so a few kilometre-reach rural cells do not widen the search in a dense core.
    """
    level = np.ceil(np.log2(np.maximum(reach, 1.0))).astype(np.int64)
    lat = cf["lat"].to_numpy()
    lon = cf["lon"].to_numpy()
    queries, rows, dists = [], [], []
    for lv in np.unique(level):
        members = np.flatnonzero(level == lv)
        index = geo.GridIndex(lat[members], lon[members])
        hits = index.within(q_lat, q_lon, float(reach[members].max()))
        queries.append(hits.query)
        rows.append(members[hits.idx])
        dists.append(hits.dist)
    q = np.concatenate(queries) if queries else np.empty(0, np.int64)
    order = np.argsort(q, kind="stable")
    starts = np.searchsorted(q[order], np.arange(q_lat.shape[0] + 1), side="left").astype(np.int64)
    idx = np.ascontiguousarray((np.concatenate(rows) if rows else np.empty(0, np.int64))[order])
    dist = np.ascontiguousarray((np.concatenate(dists) if dists else np.empty(0))[order])
    return starts, idx, dist


def link_complaints(
    complaints: pl.DataFrame,
    cells: pl.DataFrame,
    cell_kqi: pl.DataFrame | None,
    isd: pl.DataFrame | None,
    config: Config,
) -> pl.DataFrame:
    """Link every complaint to the cell that most likely served it.

    Parameters
    ----------
    complaints : polars.DataFrame
        ``complaint_id``, ``category``; ``lat``/``lon`` and ``cell_id`` when known (other columns,
        msisdn included, are ignored and never returned).
    cells : polars.DataFrame
        ``cell_id``, ``lat``, ``lon``, ``azimuth``; ``beamwidth`` (default 65, 360 = omni) and
        ``site_id`` when known.
    cell_kqi : polars.DataFrame or None
        ``cell_id``, ``service``, ``poor``: a cell poor in the complaint's service is preferred.
    isd : polars.DataFrame or None
        ``cell_id``, ``isd_m`` (from :func:`kqi.geo.site_isd`); computed when ``None``.
    config : kqi.config.Config
        ``config.complaints``: category mapping, radius and score weights.

    Returns
    -------
    polars.DataFrame
        ``kqi.schema.COMPLAINT_LINKS`` columns (complaint_id, cell_id, distance_m, network,
        service, method, score) plus ``site_id`` and ``radius_m`` (the linked cell's reach, spatial
        links only); one row per complaint, sorted
        by complaint_id. ``method`` is ``crm``, ``spatial``, ``unlinked`` or ``non_network``;
        ``score`` is set for spatial links only.
    """
    cc = config.complaints
    require_columns(complaints, ("complaint_id", "category"), "complaints")
    cf = _cells_frame(cells)
    n_cells = cf.height

    def opt(name: str, dtype: DType) -> pl.Expr:
        return column_or_null(complaints.columns, name, dtype)

    comp = complaints.select(
        pl.col("complaint_id").cast(pl.String),
        pl.col("category").cast(pl.String),
        opt("lat", pl.Float64), opt("lon", pl.Float64), opt("cell_id", pl.String),
    )
    bad_pos = (pl.col("lat").abs() > 90.0) | (pl.col("lon").abs() > 180.0)
    n_bad = comp.filter(bad_pos.fill_null(False)).height
    if n_bad:
        log.warning("%d complaint(s) with a position out of range are not linked spatially", n_bad)
    comp = comp.with_columns(
        pl.when(bad_pos.fill_null(False)).then(None).otherwise(pl.col("lat")).alias("lat"),
        pl.when(bad_pos.fill_null(False)).then(None).otherwise(pl.col("lon")).alias("lon"),
    ).sort("complaint_id", maintain_order=True)
    comp = pl.concat([comp, classify(comp["category"], config)], how="horizontal")

    row_of = cf.select("cell_id", pl.int_range(n_cells, dtype=pl.Int64).alias("_crm_row"))
    comp = comp.join(row_of, on="cell_id", how="left", maintain_order="left")

    q_lat = comp["lat"].fill_null(float("nan")).to_numpy().astype(np.float64)
    q_lon = comp["lon"].fill_null(float("nan")).to_numpy().astype(np.float64)
    nq = comp.height
    has_pos = (comp["lat"].is_not_null() & comp["lon"].is_not_null()).to_numpy()
    crm_row = comp["_crm_row"].fill_null(-1).to_numpy()
    crm_dist = np.full(nq, np.nan)
    if n_cells and (crm_row >= 0).any():
        r = np.maximum(crm_row, 0)
        crm_dist = geo.haversine_m(q_lat, q_lon, cf["lat"].to_numpy()[r], cf["lon"].to_numpy()[r])
    # a CRM cell farther from the complaint than any cell reaches is a wrong cell or a wrong
    # position: link by position when a cell there can have served it, else keep the CRM cell
    # (a placeholder position such as 0,0 finds no candidate)
    far = comp["network"].to_numpy() & (crm_row >= 0) & has_pos & (crm_dist > cc.max_radius_m)
    # spatial linking for network complaints with a position and no valid (or a far) CRM cell
    spatial = comp["network"].to_numpy() & ((crm_row < 0) | far) & has_pos
    out_cell = np.full(nq, -1, dtype=np.int64)
    out_dist = np.full(nq, np.nan)
    out_score = np.full(nq, np.nan)
    radius = np.full(nq, np.nan)
    if n_cells and spatial.any():
        if isd is None:
            isd = geo.site_isd(cells, config)
        require_columns(isd, ("cell_id", "isd_m"), "isd")
        cell_isd = (cf.select("cell_id")
                    .join(isd.select(pl.col("cell_id").cast(pl.String),
                                     pl.col("isd_m").cast(pl.Float64)).unique("cell_id"),
                          on="cell_id", how="left", maintain_order="left")["isd_m"]
                    .fill_null(float("nan")).to_numpy())
        reach = np.where(np.isnan(cell_isd), cc.max_radius_m, cc.radius_isd_factor * cell_isd)
        reach = np.clip(reach, cc.min_radius_m, cc.max_radius_m)
        starts, cand_idx, cand_dist = _candidates(
            cf, reach, np.where(spatial, q_lat, np.nan), np.where(spatial, q_lon, np.nan))
        svc = (comp["service"].replace_strict(
            {s: i for i, s in enumerate(COMPLAINT_SERVICES)}, default=-1, return_dtype=pl.Int8)
            .fill_null(-1).to_numpy().astype(np.int8))
        svc = np.where(spatial, svc, np.int8(-1)).astype(np.int8)
        link_candidates(
            np.ascontiguousarray(q_lat), np.ascontiguousarray(q_lon), np.ascontiguousarray(svc),
            starts, cand_idx, cand_dist,
            cf["lat"].to_numpy(), cf["lon"].to_numpy(), cf["azimuth"].to_numpy(),
            cf["beamwidth"].to_numpy(), reach, _poor_matrix(cell_kqi, cf["cell_id"]),
            float(cc.min_bearing_m), float(cc.beam_weight), float(cc.poor_weight),
            out_cell, out_dist, out_score,
        )
        radius = np.where(out_cell >= 0, reach[np.maximum(out_cell, 0)], np.nan)

    relinked = far & (out_cell >= 0)
    if far.any():
        log.warning("%d complaint(s) lie more than %.0f m from their CRM cell: %d linked by "
                    "position instead, %d kept on the CRM cell (no cell near the position)",
                    int(far.sum()), cc.max_radius_m, int(relinked.sum()),
                    int((far & ~relinked).sum()))
    crm = comp["network"].to_numpy() & (crm_row >= 0) & ~relinked
    row = np.where(crm, crm_row, out_cell)
    distance = np.where(crm, crm_dist, out_dist)
    network = comp["network"].to_numpy()
    method = np.where(~network, "non_network",
                      np.where(crm, "crm", np.where(out_cell >= 0, "spatial", "unlinked")))
    linked = pl.Series("_linked", row >= 0)
    rows = pl.Series("_row", np.maximum(row, 0), dtype=pl.Int64)

    def gather(col: str) -> pl.Series:
        if n_cells == 0:
            return pl.Series(col, [None] * nq, dtype=pl.String)
        values = cf[col].gather(rows)
        return pl.select(pl.when(linked).then(values).otherwise(None).alias(col)).to_series()

    out = pl.DataFrame({
        "complaint_id": comp["complaint_id"],
        "cell_id": gather("cell_id"),
        "distance_m": pl.Series(distance, dtype=pl.Float64).fill_nan(None),
        "network": comp["network"],
        "service": comp["service"],
        "method": pl.Series(method, dtype=pl.String),
        "score": pl.Series(np.where(method == "spatial", out_score, np.nan),
                           dtype=pl.Float64).fill_nan(None),
        "site_id": gather("site_id"),
        "radius_m": pl.Series(radius, dtype=pl.Float64).fill_nan(None),
    })
    counts = dict(out.group_by("method").len().iter_rows())
    log.info("complaint links: %s", ", ".join(f"{k} {counts[k]}" for k in sorted(counts)))
    return out.select(*_LINK_COLUMNS, "site_id", "radius_m").sort(
        ["complaint_id", "method", "cell_id"], nulls_last=True)


def silent_poor_cells(cell_kqi: pl.DataFrame, links: pl.DataFrame | None) -> pl.DataFrame:
    """Poor cells that no linked network complaint points at: the silent unsatisfied.

    Parameters
    ----------
    cell_kqi : polars.DataFrame
        ``kqi.schema.CELL_KQI`` table.
    links : polars.DataFrame or None
        Output of :func:`link_complaints`; ``None`` = no complaints at all.

    Returns
    -------
    polars.DataFrame
        ``cell_id``, ``poor_services`` (``;``-joined, in ``SERVICES`` order), ``tests`` (of the
        poor services), ``bad_tests`` (not good, of the poor services); sorted by cell_id.
    """
    require_columns(cell_kqi, ("cell_id", "service", "tests", "good_tests", "poor"), "cell_kqi")
    poor = (
        cell_kqi.filter(pl.col("poor").fill_null(False))
        .select(pl.col("cell_id").cast(pl.String), pl.col("service").cast(pl.String),
                pl.col("tests").cast(pl.Int64), pl.col("good_tests").cast(pl.Int64),
                pl.col("poor"))
        .group_by("cell_id")
        .agg(poor_services_agg(),
             pl.col("tests").sum(),
             (pl.col("tests") - pl.col("good_tests")).sum().alias("bad_tests"))
    )
    if links is not None and links.height:
        heard = linked_network(links).select(pl.col("cell_id").cast(pl.String)).unique()
        poor = poor.join(heard, on="cell_id", how="anti")
    return poor.sort("cell_id")


# --------------------------------------------------------------------------------------------
# hotspots
# --------------------------------------------------------------------------------------------

_HOTSPOT_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "rank": pl.Int32(),
    "cell_id": pl.String(),
    "complaints": pl.Int64(),
    "previous": pl.Int64(),
    "increase": pl.Int64(),
    "region": pl.String(),
    "subscribers": pl.Float64(),
    "per_10k": pl.Float64(),
    "subscribers_source": pl.String(),
    "lat": pl.Float64(),
    "lon": pl.Float64(),
    "radius_m": pl.Float64(),
}


def _conform(df: pl.DataFrame, kind: str) -> pl.DataFrame:
    df = df.with_columns(pl.lit(kind).alias("kind"),
                         pl.int_range(1, df.height + 1, dtype=pl.Int32).alias("rank"))
    return df.select([
        column_or_null(df.columns, c, t)
        for c, t in _HOTSPOT_SCHEMA.items()
    ])


def _periods(ts: pl.Series, period_days: int) -> tuple[date, date, date] | None:
    """(previous start, last start, end) of the two last whole-day periods, or None if too short."""
    days = ts.drop_nulls().dt.date()
    if days.len() == 0 or period_days < 1:
        return None
    first: date = days.min()  # type: ignore[assignment]
    last: date = days.max()  # type: ignore[assignment]
    end = last + timedelta(days=1)
    if (end - first).days < 2 * period_days:
        return None
    return end - timedelta(days=2 * period_days), end - timedelta(days=period_days), end


def _subscriber_estimate(kpis: pl.DataFrame, config: Config) -> pl.DataFrame:
    """Per cell: mean over days of the daily max of RRC users, times the configured ratio."""
    require_columns(kpis, ("ts", "cell_id", "rrc_users_max"), "cell_kpis")
    return (
        kpis.select(pl.col("cell_id").cast(pl.String), pl.col("ts").dt.date().alias("_d"),
                    pl.col("rrc_users_max").cast(pl.Float64))
        .drop_nulls()
        .filter(pl.col("rrc_users_max").is_not_nan())
        .group_by("cell_id", "_d").agg(pl.col("rrc_users_max").max())
        .group_by("cell_id").agg(
            (pl.col("rrc_users_max").mean() * config.complaints.subscribers_per_rrc_user)
            .alias("subscribers"))
        .sort("cell_id")
    )


def _spatial_hotspots(points: pl.DataFrame, config: Config) -> pl.DataFrame:
    """hdbscan (haversine) over complaint positions; one row per cluster, largest first."""
    cc = config.complaints
    m = int(cc.hotspot_min_cluster_size)
    if m < 2 or points.height < 2 * m:
        return pl.DataFrame()
    lat = points["lat"].to_numpy().astype(np.float64)
    lon = points["lon"].to_numpy().astype(np.float64)
    # a city-wide density blob is no hotspot to send anyone to: cap the spread of a cluster
    labels = spatial_clusters(lat, lon, min_cluster_size=m,
                              max_km=2.0 * float(cc.hotspot_max_radius_m) / 1000.0)
    pts = points.with_columns(pl.Series("_label", labels, dtype=pl.Int64)).filter(
        pl.col("_label") >= 0)
    if pts.height == 0:
        return pl.DataFrame()
    centres = pts.group_by("_label").agg(
        pl.len().cast(pl.Int64).alias("complaints"),
        pl.col("lat").mean(), pl.col("lon").mean(),
    )
    pts = pts.join(centres.select("_label", pl.col("lat").alias("_clat"),
                                  pl.col("lon").alias("_clon")), on="_label")
    pts = pts.with_columns(pl.Series("_d", geo.haversine_m(
        pts["lat"], pts["lon"], pts["_clat"], pts["_clon"]), dtype=pl.Float64))
    radius = pts.group_by("_label").agg(pl.col("_d").quantile(0.9, "linear").alias("radius_m"))
    top_cell = (
        pts.filter(pl.col("cell_id").is_not_null())
        .group_by("_label", "cell_id").len()
        .sort(["_label", "len", "cell_id"], descending=[False, True, False])
        .group_by("_label", maintain_order=True).first()
        .select("_label", "cell_id")
    )
    return (
        centres.join(radius, on="_label").join(top_cell, on="_label", how="left")
        .with_columns(pl.col("lat").round(6), pl.col("lon").round(6), pl.col("radius_m").round(1))
        .sort(["complaints", "lat", "lon"], descending=[True, False, False])
        .head(cc.hotspot_top)
        .drop("_label")
    )


def hotspots(  # noqa: PLR0917 - positional order is the pipeline's API
    links: pl.DataFrame,
    complaints: pl.DataFrame,
    cells: pl.DataFrame,
    config: Config,
    kpis: pl.DataFrame | None = None,
    subscribers: pl.DataFrame | None = None,
    previous: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """TOP-N complaint hotspots by volume, increase, per 10,000 subscribers, and spatial clusters.

    Parameters
    ----------
    links : polars.DataFrame
        Output of :func:`link_complaints`.
    complaints : polars.DataFrame
        ``complaint_id``; ``ts`` for the increase ranking; ``lat``/``lon`` for spatial hotspots.
    cells : polars.DataFrame
        ``cell_id``; ``region`` for a per-region subscribers file.
    config : kqi.config.Config
        ``config.complaints``: ``hotspot_top``, ``period_days``, ``subscribers_per_rrc_user``,
        ``per_10k_min_subscribers``, ``hotspot_min_cluster_size``.
    kpis : polars.DataFrame, optional
        Cell KPIs (``ts``, ``cell_id``, ``rrc_users_max``): subscriber estimate when no file.
    subscribers : polars.DataFrame, optional
        From :meth:`kqi.ingest.Ingest.subscribers`: ``cell_id`` or ``region``, and ``subscribers``.
    previous : polars.DataFrame, optional
        The previous run's linked complaints per cell (``cell_id, complaints``, from the history):
        the increase ranking then compares this run with that run's period, instead of the last
        ``period_days`` of this run's complaints with the ones before.

    Returns
    -------
    polars.DataFrame
        ``kind`` (volume, increase, per_10k, spatial), ``rank``, ``cell_id``, ``complaints``,
        ``previous``, ``increase``, ``region``, ``subscribers``, ``per_10k``,
        ``subscribers_source`` (``file:cell``, ``file:region`` or ``estimate:rrc_users``),
        ``lat``, ``lon``, ``radius_m`` (the columns a kind does not use are null);
        sorted by kind (in that order), then rank.
    """
    cc = config.complaints
    top = int(cc.hotspot_top)
    require_columns(links, ("complaint_id",), "complaint links")
    linked = linked_network(links).select("complaint_id", pl.col("cell_id").cast(pl.String))
    parts: list[pl.DataFrame] = []

    volume = (linked.group_by("cell_id").agg(pl.len().cast(pl.Int64).alias("complaints"))
              .sort(["complaints", "cell_id"], descending=[True, False]).head(top))
    parts.append(_conform(volume, "volume"))

    counts: pl.DataFrame | None = None    # per cell: complaints now and in the period before
    if previous is not None and linked.height:
        prev = previous.select(pl.col("cell_id").cast(pl.String),
                               pl.col("complaints").cast(pl.Int64).alias("previous"))
        counts = (linked.group_by("cell_id").agg(pl.len().cast(pl.Int64).alias("complaints"))
                  .join(prev, on="cell_id", how="left")
                  .with_columns(pl.col("previous").fill_null(0)))
    elif "ts" in complaints.columns and linked.height:
        stamped = linked.join(complaints.select(pl.col("complaint_id").cast(pl.String), "ts")
                              .unique("complaint_id", keep="first", maintain_order=True),
                              on="complaint_id", how="left")
        # periods are the operator's calendar days, as the test counts are
        tz = config.ingest.timezone
        if isinstance(stamped.schema["ts"], pl.Datetime) and stamped.schema["ts"].time_zone:
            stamped = stamped.with_columns(pl.col("ts").dt.convert_time_zone(tz))
        window = _periods(stamped["ts"], cc.period_days)
        if window is None:
            log.info("complaints span less than two periods of %d days: no increase ranking",
                     cc.period_days)
        else:
            prev_start, last_start, end = window
            day = pl.col("ts").dt.date()
            counts = stamped.group_by("cell_id").agg(
                ((day >= last_start) & (day < end)).sum().cast(pl.Int64).alias("complaints"),
                ((day >= prev_start) & (day < last_start)).sum().cast(pl.Int64).alias("previous"))
    if counts is not None:
        inc = (counts.with_columns((pl.col("complaints") - pl.col("previous")).alias("increase"))
               .filter(pl.col("increase") > 0)
               .sort(["increase", "complaints", "cell_id"], descending=[True, True, False])
               .head(top))
        parts.append(_conform(inc, "increase"))

    per_cell = linked.group_by("cell_id").agg(pl.len().cast(pl.Int64).alias("complaints"))
    per10k: pl.DataFrame | None = None
    if subscribers is not None and "cell_id" in subscribers.columns:
        subs = subscribers.select(pl.col("cell_id").cast(pl.String),
                                  pl.col("subscribers").cast(pl.Float64))
        per10k = per_cell.join(subs, on="cell_id", how="inner").with_columns(
            pl.lit("file:cell").alias("subscribers_source"))
    elif subscribers is not None and "region" in subscribers.columns:
        if "region" not in cells.columns:
            raise KqiError("a per-region subscribers file needs a region column in the cells table")
        regions = cells.select(pl.col("cell_id").cast(pl.String), pl.col("region").cast(pl.String))
        per_region = (per_cell.join(regions, on="cell_id", how="inner")
                      .group_by("region").agg(pl.col("complaints").sum()))
        subs = subscribers.select(pl.col("region").cast(pl.String),
                                  pl.col("subscribers").cast(pl.Float64))
        per10k = per_region.join(subs, on="region", how="inner").with_columns(
            pl.lit("file:region").alias("subscribers_source"))
    elif kpis is not None and "rrc_users_max" in kpis.columns:
        per10k = per_cell.join(_subscriber_estimate(kpis, config), on="cell_id",
                               how="inner").with_columns(
            pl.lit("estimate:rrc_users").alias("subscribers_source"))
    else:
        log.info("no subscribers file and no RRC users in the KPIs: no per-10k ranking")
    if per10k is not None:
        key = "cell_id" if "cell_id" in per10k.columns else "region"
        per10k = (
            per10k.filter((pl.col("subscribers") >= max(cc.per_10k_min_subscribers, 1e-9))
                          # one complaint in a small cell is chance, not a hotspot
                          & (pl.col("complaints") >= cc.per_10k_min_complaints))
            .with_columns((pl.col("complaints") * 10_000.0 / pl.col("subscribers"))
                          .round(4).alias("per_10k"),
                          pl.col("subscribers").round(1))
            .sort(["per_10k", "complaints", key], descending=[True, True, False])
            .head(top)
        )
        parts.append(_conform(per10k, "per_10k"))

    if {"lat", "lon"} <= set(complaints.columns):
        network = links.filter(pl.col("network")).select("complaint_id", "cell_id")
        points = (
            complaints.select(pl.col("complaint_id").cast(pl.String),
                              pl.col("lat").cast(pl.Float64), pl.col("lon").cast(pl.Float64))
            .unique("complaint_id", keep="first", maintain_order=True)
            .join(network, on="complaint_id", how="inner")
            .drop_nulls(["lat", "lon"])
            .filter(pl.col("lat").is_not_nan() & pl.col("lon").is_not_nan()
                    & (pl.col("lat").abs() <= 90.0) & (pl.col("lon").abs() <= 180.0))
            .sort("complaint_id")
        )
        spatial = _spatial_hotspots(points, config)
        if spatial.height:
            parts.append(_conform(spatial, "spatial"))

    out = pl.concat(parts, how="vertical")
    # a cell hotspot says where it is and who dispatches there: the cell's region and site position
    where = [c for c in ("region", "lat", "lon") if c in cells.columns]
    if where:
        lut = cells.select(pl.col("cell_id").cast(pl.String),
                           *[pl.col(c).cast(out.schema[c]).alias(f"_{c}") for c in where]
                           ).unique("cell_id", keep="first")
        out = out.join(lut, on="cell_id", how="left").with_columns(
            [pl.coalesce(pl.col(c), pl.col(f"_{c}")).alias(c) for c in where]
        ).drop([f"_{c}" for c in where])
    order = {k: i for i, k in enumerate(HOTSPOT_KINDS)}
    return (out.with_columns(pl.col("kind").replace_strict(order, return_dtype=pl.Int32)
                             .alias("_k"))
            .sort(["_k", "rank"]).drop("_k"))


#: the hotspot rankings in words (summary.md, console), in the order they are ranked
HOTSPOT_RANKINGS: dict[str, str] = {"volume": "by volume", "increase": "by increase",
                                    "per_10k": "per 10,000 subscribers", "spatial": "by place"}


def hotspot_counts(hotspots: pl.DataFrame | None) -> dict[str, Any]:
    """How many distinct places the TOP-N rankings name, and how many entries each ranking has.

    One cell can top several rankings (by volume and per 10,000 subscribers), so the entries of
    ``hotspots.csv`` overcount: a place is a cell, else a region (per-region subscribers), else
    a spatial cluster's centre.

    Returns
    -------
    dict
        ``{"hotspots": distinct places, "hotspot_rankings": {kind: entries}}``.
    """
    if hotspots is None or hotspots.height == 0:
        return {"hotspots": 0, "hotspot_rankings": {}}

    def text(name: str) -> pl.Expr:
        return (pl.col(name).cast(pl.String) if name in hotspots.columns
                else pl.lit(None, pl.String))

    place = pl.coalesce(pl.lit("cell ") + text("cell_id"), pl.lit("region ") + text("region"),
                        pl.lit("at ") + text("lat") + pl.lit(",") + text("lon"))
    kinds = hotspots.get_column("kind").cast(pl.String).to_list()
    order = [k for k in HOTSPOT_RANKINGS if k in kinds] + sorted(set(kinds) - set(HOTSPOT_RANKINGS))
    return {"hotspots": int(hotspots.select(place.n_unique()).item()),
            "hotspot_rankings": {k: kinds.count(k) for k in order}}


def hotspots_text(comp: Mapping[str, Any]) -> str:
    """``15 distinct places in 3 rankings (by volume 10, per 10,000 subscribers 6, by place 10; a
    place can top several)``, from :func:`hotspot_counts`."""
    rankings: Mapping[str, int] = comp.get("hotspot_rankings") or {}
    n = comp.get("hotspots", 0)
    if not rankings:
        return f"{n:,} distinct places"
    parts = ", ".join(f"{HOTSPOT_RANKINGS.get(k, k)} {v:,}" for k, v in rankings.items())
    several = "; a place can top several" if len(rankings) > 1 else ""
    word = "ranking" if len(rankings) == 1 else "rankings"
    return f"{n:,} distinct places in {len(rankings)} {word} ({parts}{several})"
