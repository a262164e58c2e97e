"""Cause diagnosis of poor cells: KPI evidence, rule scores, signature clusters, poor-quality areas.

The stage reads the hourly cell KPIs once, with polars group-bys (no per-cell Python), into one
evidence row per cell: busy-hour UL interference, PRB utilisation and RRC users, weak-RSRP and
CQI>=7 shares, TA p90 against the local inter-site distance, availability and alarms. Rules turn
each cause's margin over its configured threshold into a score; the strongest cause is primary,
the others that hold are secondary. hdbscan then groups the poor cells by their standardized
evidence (signature clusters, named by the cause their centroid shows) and by place (areas).
See ``docs/diagnosis.md`` for every rule, score and evidence text.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from kqi import rules
from kqi.causes import BY_NAME, FALLBACK, REGISTRY, RULE_CAUSES
from kqi.config import Config, check_diagnosis
from kqi.frames import column_or_null, poor_services_agg, with_columns_or_null
from kqi.schema import CAUSES, DIAGNOSIS

log = logging.getLogger(__name__)

#: evidence columns per cell, in DIAGNOSIS order
EVIDENCE_COLUMNS: tuple[str, ...] = (
    "ul_interference_dbm", "prb_util_busy", "prb_util_p90", "rrc_users_busy", "rsrp_weak_ratio",
    "cqi_good_ratio", "ta_p90_m", "isd_m", "ta_isd_ratio", "availability_min", "availability_mean",
    "alarm_count",
)

#: evidence the signature clusters are built on (one per cause dimension, plus CQI and users)
SIGNATURE_FEATURES: tuple[str, ...] = (
    "ul_interference_dbm", "prb_util_busy", "rrc_users_busy", "rsrp_weak_ratio", "cqi_good_ratio",
    "ta_isd_ratio", "availability_min", "alarm_count",
)

_KPI_FLOATS: tuple[str, ...] = (
    "prb_util_dl", "rrc_users_max", "ul_interference_dbm", "rsrp_weak_ratio", "cqi_good_ratio",
    "ta_p90_m", "availability",
)

_DIAG_SCHEMA: dict[str, pl.DataType] = dict(
    pl.from_arrow(DIAGNOSIS.empty_table()).schema  # type: ignore[union-attr]
)


@dataclass
class Diagnosis:
    """Result of :func:`diagnose`.

    Attributes
    ----------
    table : pl.DataFrame
        One row per poor cell (poor in any service), ``kqi.schema.DIAGNOSIS`` columns, sorted by
        ``cell_id``.
    evidence : pl.DataFrame
        Evidence for every cell with KPIs: ``cell_id``, ``kpi_hours`` and the evidence columns.
    clusters : pl.DataFrame
        ``cluster_id, name, size, agreement`` and the centroid (median) of each signature feature.
    areas : pl.DataFrame
        ``area_id, n_cells, cell_ids`` (";"-joined), ``lat, lon`` (centroid), ``dominant_cause``.
    proposals : dict
        Network-calibrated thresholds proposed from the data (never applied automatically).
    """

    table: pl.DataFrame
    evidence: pl.DataFrame
    clusters: pl.DataFrame
    areas: pl.DataFrame
    proposals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Figures for ``summary.json``: cause counts, clusters, areas and proposals."""
        counts = dict.fromkeys(CAUSES, 0)
        for cause, n in self.table.group_by("primary_cause").len().iter_rows():
            counts[str(cause)] = int(n)
        secondary = dict.fromkeys(RULE_CAUSES, 0)
        for cause in RULE_CAUSES:
            secondary[cause] = int(
                self.table["secondary_causes"].str.split(";").list.contains(cause).sum()
            )
        return {
            "poor_cells": self.table.height,
            "cause_counts": counts,
            "secondary_counts": secondary,
            "review": int(self.table["review"].sum()) if self.table.height else 0,
            "clusters": [_json_safe(r) for r in self.clusters.to_dicts()],
            "areas": self.areas.height,
            "cells_in_areas": int(self.areas["n_cells"].sum()) if self.areas.height else 0,
            "proposals": self.proposals,
        }


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


# --------------------------------------------------------------------------------------------
# Evidence
# --------------------------------------------------------------------------------------------


def extract_evidence(kpis: pl.DataFrame, cells: pl.DataFrame, config: Config | None = None,
                     isd: pl.DataFrame | None = None) -> pl.DataFrame:
    """Summarize hourly KPIs into one evidence row per cell.

    Busy hours are ``config.diagnosis.busy_hours`` when set, otherwise each cell's
    ``busy_hour_count`` hours of the day with the highest mean PRB utilisation (RRC users where a
    cell reports no PRB). Busy-hour figures: UL interference (mean), PRB utilisation (mean, p90),
    RRC users (mean of the hourly maxima), CQI>=7 share (mean). Whole-window figures: weak-RSRP
    share (mean), TA p90 (median of the hourly p90), availability (min, mean), alarms (sum).

    Parameters
    ----------
    kpis : pl.DataFrame
        ``kqi.schema.CELL_KPIS`` columns (``ts`` and ``cell_id`` required; absent KPI columns are
        treated as missing).
    cells : pl.DataFrame
        ``kqi.schema.CELLS`` columns; used for the inter-site distance when ``isd`` is omitted.
    config : Config, optional
    isd : pl.DataFrame, optional
        ``cell_id, isd_m`` (from :func:`kqi.geo.site_isd`); computed from ``cells`` if omitted.

    Returns
    -------
    pl.DataFrame
        ``cell_id, kpi_hours`` and :data:`EVIDENCE_COLUMNS`, one row per cell with KPI rows,
        sorted by ``cell_id``.
    """
    cfg = config or Config()
    d = cfg.diagnosis
    check_diagnosis(d)
    for col in ("ts", "cell_id"):
        if col not in kpis.columns:
            raise ValueError(f"kpis has no '{col}' column")
    # local hours: a configured busy window (19-22) means the operator's clock, not UTC
    ts = pl.col("ts")
    ts_type = kpis.schema["ts"]
    if isinstance(ts_type, pl.Datetime) and ts_type.time_zone is not None:
        ts = ts.dt.convert_time_zone(cfg.ingest.timezone)
    # dense integer codes: grouping and gathering by int is several times faster than by string
    code = (pl.col("cell_code").cast(pl.Int64) if "cell_code" in kpis.columns
            else pl.col("cell_id").cast(pl.String).rank("dense").cast(pl.Int64) - 1)
    k = kpis.select(
        code.alias("code"),
        pl.col("cell_id").cast(pl.String),
        ts.dt.hour().cast(pl.Int64).alias("hour"),
        *[column_or_null(kpis.columns, c, pl.Float64).fill_nan(None) for c in _KPI_FLOATS],
        column_or_null(kpis.columns, "alarm_count", pl.Int64),
    ).with_columns((pl.col("code") * 24 + pl.col("hour")).alias("key"))
    if k.height and k["hour"].n_unique() == 1:
        # a daily feed (the contract allows one): every row sits at the same hour, so there are
        # no busy hours to pick; the daily figures are the evidence, stated as such in the log
        log.warning("cell KPIs hold one time of day only (a daily feed?): busy-hour evidence "
                    "uses every row")
        busy = pl.Series(np.ones(k.height, dtype=bool))
    elif d.busy_hours:
        busy = k["hour"].is_in(list(d.busy_hours))
    else:
        busy = pl.Series(_busy_lookup(k, d.busy_hour_count)[k["key"].to_numpy()])
    b = pl.col("busy")
    ev = k.with_columns(busy.alias("busy")).lazy().group_by("code").agg(
        pl.col("cell_id").first(),
        pl.len().cast(pl.Int64).alias("kpi_hours"),
        pl.col("ul_interference_dbm").filter(b).mean(),
        pl.col("prb_util_dl").filter(b).mean().alias("prb_util_busy"),
        pl.col("prb_util_dl").filter(b).quantile(0.9, "linear").alias("prb_util_p90"),
        pl.col("rrc_users_max").filter(b).mean().alias("rrc_users_busy"),
        pl.col("rsrp_weak_ratio").mean(),
        pl.col("cqi_good_ratio").filter(b).mean(),
        pl.col("ta_p90_m").median(),
        pl.col("availability").min().alias("availability_min"),
        pl.col("availability").mean().alias("availability_mean"),
        # sum() of an all-null column is 0; keep "not reported" distinct from "no alarms"
        pl.when(pl.col("alarm_count").count() > 0).then(pl.col("alarm_count").sum())
        .alias("alarm_count"),
    ).collect()

    if isd is None:
        from kqi.geo import site_isd

        isd = site_isd(cells, cfg)
    isd_col = isd.select(
        pl.col("cell_id").cast(pl.String),
        pl.col("isd_m").cast(pl.Float64).fill_nan(None),
    ).unique("cell_id", keep="first")
    ev = ev.join(isd_col, on="cell_id", how="left").with_columns(
        # co-sited or very dense sites: an ISD of a few metres would make every TA "overshooting"
        pl.when(pl.col("isd_m").is_not_null())
        .then(pl.max_horizontal(pl.col("isd_m"), pl.lit(d.isd_floor_m))).alias("isd_m"),
    ).with_columns((pl.col("ta_p90_m") / pl.col("isd_m")).alias("ta_isd_ratio"))
    return ev.select("cell_id", "kpi_hours", *EVIDENCE_COLUMNS).sort("cell_id")


def _busy_lookup(k: pl.DataFrame, count: int) -> np.ndarray:
    """Boolean per ``code * 24 + hour``: the hour is one of the cell's ``count`` busiest.

    Traffic is the mean PRB utilisation of that hour of the day over the window (RRC users
    where PRB is missing); ties go to the earlier hour, hours without traffic figures come last.
    """
    n_codes = int(k["code"].max() or 0) + 1 if k.height else 0  # type: ignore[arg-type]
    key = k["key"].to_numpy()
    traffic = k.select(pl.coalesce("prb_util_dl", "rrc_users_max")).to_series().to_numpy()
    traffic = np.asarray(traffic, dtype=np.float64)  # null -> NaN
    valid = ~np.isnan(traffic)
    size = n_codes * 24
    rows = np.bincount(key, minlength=size).reshape(n_codes, 24)
    n_valid = np.bincount(key[valid], minlength=size).reshape(n_codes, 24)
    total = np.bincount(key[valid], weights=traffic[valid], minlength=size).reshape(n_codes, 24)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n_valid
    # sort key per hour: busiest first; hours with rows but no traffic figure next; absent last
    order_key = np.where(n_valid > 0, -mean, np.where(rows > 0, np.finfo(np.float64).max, np.inf))
    top = np.argsort(order_key, axis=1, kind="stable")[:, :count]  # stable: ties -> earlier hour
    lookup = np.zeros((n_codes, 24), dtype=bool)
    np.put_along_axis(lookup, top, True, axis=1)
    return lookup.ravel()


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


def score_causes(evidence: pl.DataFrame, config: Config | None = None) -> pl.DataFrame:
    """Score each rule cause from its registry record (:mod:`kqi.causes`, built by
    :mod:`kqi.rules`).

    A cause *holds* when any of its tests holds (every condition of the test: strictly ``>``
    for "above", ``<`` for "below"; alarms count from ``alarm_count`` up). Its score is the
    best holding test's margin in units of the cause's scale (``interference_scale_db`` etc.),
    plus ``support_bonus`` when supporting evidence also holds (low CQI for interference, many
    RRC users for high load). Missing evidence never makes a cause hold.

    Parameters
    ----------
    evidence : pl.DataFrame
        Evidence columns (as from :func:`extract_evidence`); absent columns count as missing.
    config : Config, optional

    Returns
    -------
    pl.DataFrame
        ``evidence`` plus ``s_<cause>`` (Float64, null where the cause does not hold) for each of
        :data:`RULE_CAUSES`.
    """
    d = (config or Config()).diagnosis
    check_diagnosis(d)
    needed: dict[str, pl.DataType | type[pl.DataType]] = dict.fromkeys(
        (*EVIDENCE_COLUMNS, *(col for c in REGISTRY for col in c.columns)), pl.Float64)
    ev = with_columns_or_null(evidence, needed)
    return ev.with_columns(
        rules.cause_score(BY_NAME[c], d).alias(f"s_{c}") for c in RULE_CAUSES)


def classify(scored: pl.DataFrame, config: Config | None = None) -> pl.DataFrame:
    """Primary cause, secondary causes, score and evidence text from :func:`score_causes` output.

    The primary cause is the holding cause with the highest score (ties go to the earlier cause
    in ``kqi.schema.CAUSES``); the other holding causes are secondary, strongest first;
    ``unknown`` when none holds.

    Returns
    -------
    pl.DataFrame
        ``scored`` plus ``primary_cause``, ``secondary_causes`` (";"-joined), ``cause_score``
        (0 for unknown) and ``evidence``.
    """
    d = (config or Config()).diagnosis
    n_c = len(RULE_CAUSES)
    s = scored.select([f"s_{c}" for c in RULE_CAUSES]).to_numpy().astype(np.float64)
    s = s.reshape(scored.height, n_c)
    holds = np.isfinite(s)
    # stable sort on -score: ties keep CAUSES order; causes that do not hold sort last
    key = np.where(holds, -s, np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    ranked_holds = np.take_along_axis(holds, order, axis=1)
    names = np.asarray(RULE_CAUSES, dtype=object)
    rank_cols = {}
    for r in range(n_c):
        rank_cols[f"_r{r}"] = pl.Series(
            [str(names[o]) if h else None for h, o in zip(ranked_holds[:, r], order[:, r], strict=True)],
            dtype=pl.String)
    best = np.where(holds.any(axis=1), np.nanmax(np.where(holds, s, -np.inf), axis=1), 0.0)
    out = scored.with_columns(
        pl.Series("cause_score", best, dtype=pl.Float64), *[v.alias(k) for k, v in rank_cols.items()]
    )
    texts = {c: rules.text_expr(BY_NAME[c], d) for c in RULE_CAUSES}

    def text_of(rank_col: str) -> pl.Expr:
        expr: Any = pl.when(pl.lit(False)).then(pl.lit(None, dtype=pl.String))
        for cause in RULE_CAUSES:
            expr = expr.when(pl.col(rank_col) == cause).then(texts[cause])
        return expr.otherwise(pl.lit(None, dtype=pl.String))

    col = pl.col
    unknown_text = rules.text_expr(BY_NAME[FALLBACK], d)
    secondary_texts = [
        pl.when(col(f"_r{r}").is_not_null()).then(
            pl.concat_str(pl.lit(" | also "), col(f"_r{r}"), pl.lit(": "), text_of(f"_r{r}")))
        .otherwise(pl.lit(""))
        for r in range(1, n_c)
    ]
    out = out.with_columns(
        col("_r0").fill_null(FALLBACK).alias("primary_cause"),
        pl.concat_str([col(f"_r{r}") for r in range(1, n_c)], separator=";", ignore_nulls=True)
        .alias("secondary_causes"),
        pl.when(col("_r0").is_null()).then(unknown_text)
        .otherwise(pl.concat_str(text_of("_r0"), *secondary_texts)).alias("evidence"),
    )
    return out.drop([f"_r{r}" for r in range(n_c)])


# --------------------------------------------------------------------------------------------
# Clusters, areas, proposals
# --------------------------------------------------------------------------------------------


def _feature_matrix(ev: pl.DataFrame) -> np.ndarray:
    """Signature features as float64 with NaN for missing; alarms log-scaled (heavy-tailed)."""
    x = ev.select(
        [pl.col(c).cast(pl.Float64) for c in SIGNATURE_FEATURES]
    ).fill_null(float("nan")).to_numpy().astype(np.float64)
    x = x.reshape(ev.height, len(SIGNATURE_FEATURES))
    j = SIGNATURE_FEATURES.index("alarm_count")
    x[:, j] = np.log1p(np.clip(x[:, j], 0.0, None))
    return x


def _signatures(poor: pl.DataFrame, reference: pl.DataFrame,
                cfg: Config) -> tuple[np.ndarray, pl.DataFrame]:
    """Cluster poor cells on standardized evidence; name each cluster by its centroid's cause."""
    from kqi.clustering.signatures import cluster_profiles, robust_standardize, signature_clusters

    if poor.height == 0:
        labels = np.empty(0, dtype=np.int32)
    else:
        z = robust_standardize(_feature_matrix(poor), _feature_matrix(reference))
        labels = signature_clusters(z, min_cluster_size=cfg.diagnosis.min_cluster_size,
                                    min_samples=cfg.diagnosis.signature_min_samples)
    raw = poor.select([pl.col(c).cast(pl.Float64) for c in SIGNATURE_FEATURES]).fill_null(
        float("nan")).to_numpy().reshape(poor.height, len(SIGNATURE_FEATURES))
    prof = cluster_profiles(raw, labels)
    centroid = pl.DataFrame(
        {c: prof[:, j] for j, c in enumerate(SIGNATURE_FEATURES)},
        schema=dict.fromkeys(SIGNATURE_FEATURES, pl.Float64),
    ).with_columns(pl.all().fill_nan(None))
    named = classify(score_causes(centroid, cfg), cfg)
    k = prof.shape[0]
    sizes = np.bincount(labels[labels >= 0], minlength=k) if k else np.zeros(0, dtype=np.int64)
    clusters = pl.DataFrame({
        "cluster_id": pl.Series(np.arange(k, dtype=np.int32)),
        "name": named["primary_cause"],
        "size": pl.Series(sizes.astype(np.int64)),
    }, schema={"cluster_id": pl.Int32, "name": pl.String, "size": pl.Int64}).hstack(centroid)
    return labels, clusters


def _areas(diag: pl.DataFrame, cells: pl.DataFrame, cfg: Config) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Poor cells grouped by place; returns (cell_id -> area_id, areas table)."""
    from kqi.clustering.spatial import spatial_clusters

    pos = diag.select("cell_id", "primary_cause").join(
        cells.select(pl.col("cell_id").cast(pl.String), pl.col("lat").cast(pl.Float64),
                     pl.col("lon").cast(pl.Float64)),
        on="cell_id", how="left",
    ).filter(pl.col("lat").is_finite() & pl.col("lon").is_finite()).sort("cell_id")
    labels = spatial_clusters(
        pos["lat"].to_numpy(), pos["lon"].to_numpy(),
        min_cluster_size=cfg.diagnosis.area_min_cluster_size, max_km=cfg.diagnosis.area_max_km,
    ) if pos.height else np.empty(0, dtype=np.int32)
    pos = pos.with_columns(pl.Series("area_id", labels, dtype=pl.Int32))
    members = pos.filter(pl.col("area_id") >= 0)
    cause_rank = pl.col("primary_cause").replace_strict(
        {c: i for i, c in enumerate(CAUSES)}, default=len(CAUSES), return_dtype=pl.Int32)
    dominant = (
        members.group_by("area_id", "primary_cause").agg(pl.len().alias("n"))
        .sort(["area_id", "n", cause_rank.alias("_o")], descending=[False, True, False])
        .group_by("area_id", maintain_order=True).first()
        .select("area_id", pl.col("primary_cause").alias("dominant_cause"))
    ) if members.height else pl.DataFrame(schema={"area_id": pl.Int32, "dominant_cause": pl.String})
    areas = (
        members.sort("cell_id").group_by("area_id", maintain_order=True).agg(
            pl.len().cast(pl.Int64).alias("n_cells"),
            pl.col("cell_id").str.join(";").alias("cell_ids"),
            pl.col("lat").mean(),
            pl.col("lon").mean(),
        )
        .join(dominant, on="area_id", how="left")
        .sort("area_id")
    ) if members.height else pl.DataFrame(schema={
        "area_id": pl.Int32, "n_cells": pl.Int64, "cell_ids": pl.String, "lat": pl.Float64,
        "lon": pl.Float64, "dominant_cause": pl.String})
    return pos.select("cell_id", "area_id"), areas


#: proposals from cluster boundaries: cause -> (config field, evidence column, "above"/"below"),
#: from the registry's proposal boundaries
_BOUNDARIES: dict[str, tuple[str, str, str]] = {
    c.name: (c.boundary.config_field, c.boundary.column, c.boundary.side)
    for c in REGISTRY if c.boundary is not None
}


def _q(values: pl.Series, q: float) -> float | None:
    v = values.drop_nulls()
    return None if v.len() == 0 else float(v.quantile(q, "linear"))  # type: ignore[arg-type]


def _proposals(evidence: pl.DataFrame, diag: pl.DataFrame, clusters: pl.DataFrame,
               cfg: Config) -> dict[str, dict[str, Any]]:
    """Thresholds calibrated on this network, with their basis; reported, never applied."""
    d = cfg.diagnosis
    poor_ids = diag["cell_id"]
    healthy = evidence.filter(~pl.col("cell_id").is_in(poor_ids.implode()))
    if healthy.height == 0:
        healthy = evidence
    out: dict[str, dict[str, Any]] = {}
    floor = _q(healthy["ul_interference_dbm"], 0.5)
    if floor is not None:
        p95 = _q(healthy["ul_interference_dbm"], 0.95)
        proposed = round(floor + d.propose_interference_rise_db, 1)
        out["ul_interference_dbm"] = {
            "current": d.ul_interference_dbm,
            "proposed": proposed,
            "network_floor_dbm": round(floor, 1),
            "basis": (f"healthy cells' busy-hour UL interference: median {floor:.1f} dBm "
                      f"(p95 {p95:.1f}); proposed = floor + {d.propose_interference_rise_db:g} dB"),
        }
    for cause, (param, column, side) in _BOUNDARIES.items():
        ids = clusters.filter(pl.col("name") == cause)["cluster_id"]
        if ids.len() == 0:
            continue
        members = diag.filter(pl.col("cluster_id").is_in(ids.implode()))[column]
        inner = _q(members, 0.10 if side == "above" else 0.90)
        outer = _q(healthy[column], 0.95 if side == "above" else 0.05)
        if inner is None or outer is None:
            continue
        boundary = (inner + outer) / 2.0
        basis = (f"{members.len()} cells in '{cause}' clusters: p10 {inner:.3g}; healthy cells: "
                 f"p95 {outer:.3g}; proposed = midpoint")
        if param in out:  # interference: keep the floor-based figure, add the cluster view
            out[param]["cluster_boundary"] = round(boundary, 3)
            out[param]["basis"] += f"; cluster boundary {boundary:.1f} ({basis})"
            continue
        out[param] = {"current": getattr(d, param), "proposed": round(boundary, 3), "basis": basis}
    return out


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


def poor_cells(cell_kqi: pl.DataFrame) -> pl.DataFrame:
    """``cell_id, poor_services`` (";"-joined in browsing/video/gaming order) of every poor cell."""
    return (cell_kqi.filter(pl.col("poor")).with_columns(pl.col("cell_id").cast(pl.String))
            .group_by("cell_id").agg(poor_services_agg()).sort("cell_id"))


def _note_estimated(judged: pl.DataFrame, cells: pl.DataFrame) -> pl.DataFrame:
    """The evidence of a cell whose position was estimated from drive-test samples (a cells file
    from ``kqi samples``: ``estimated`` = 1) says so: its ISD and distances rest on it."""
    if "estimated" not in cells.columns or judged.height == 0:
        return judged
    est = cells.filter(pl.col("estimated") == 1).select(pl.col("cell_id").cast(pl.String))
    if est.height == 0:
        return judged
    flag = pl.col("cell_id").is_in(est["cell_id"].implode())
    return judged.with_columns(
        pl.when(flag).then(pl.col("evidence") + pl.lit(
            " | cell position estimated from drive-test samples (not surveyed)"))
        .otherwise(pl.col("evidence")).alias("evidence"))


def diagnose(cell_kqi: pl.DataFrame, kpis: pl.DataFrame, cells: pl.DataFrame,
             config: Config | None = None, *, isd: pl.DataFrame | None = None,
             samples: pl.DataFrame | None = None) -> Diagnosis:
    """Diagnose every poor cell: evidence, rule causes, signature clusters, areas, proposals.

    Parameters
    ----------
    cell_kqi : pl.DataFrame
        ``kqi.schema.CELL_KQI`` rows; a cell is diagnosed when it is poor in any service.
    kpis : pl.DataFrame
        Hourly ``kqi.schema.CELL_KPIS`` rows.
    cells : pl.DataFrame
        ``kqi.schema.CELLS`` rows (positions for areas and the inter-site distance).
    config : Config, optional
        Thresholds in ``config.diagnosis``; defaults when omitted.
    isd : pl.DataFrame, optional
        ``cell_id, isd_m`` from :func:`kqi.geo.site_isd`; computed when omitted.
    samples : pl.DataFrame, optional
        ``cell_samples`` (:data:`kqi.schema.CELL_SAMPLES`, from :func:`kqi.samples.analyse_samples`):
        drive-test figures taken as evidence where the KPIs lack them, said so in the text
        (:func:`kqi.samples.fill_evidence`).

    Returns
    -------
    Diagnosis
        ``table`` (``kqi.schema.DIAGNOSIS``, one row per poor cell, sorted by ``cell_id``),
        ``evidence``, ``clusters``, ``areas``, ``proposals``.
    """
    cfg = config or Config()
    check_diagnosis(cfg.diagnosis)
    kpi_evidence = extract_evidence(kpis, cells, cfg, isd=isd)
    evidence = kpi_evidence
    if samples is not None:
        from kqi.samples import fill_evidence

        evidence = fill_evidence(kpi_evidence, samples)
    judged = _note_estimated(classify(score_causes(evidence, cfg), cfg), cells)
    poor = poor_cells(cell_kqi)
    diag = poor.join(judged, on="cell_id", how="left").with_columns(
        pl.col("primary_cause").fill_null(FALLBACK),
        pl.col("secondary_causes").fill_null(""),
        pl.col("cause_score").fill_null(0.0),
        pl.col("evidence").fill_null("no KPI data for this cell"),
    ).sort("cell_id")

    with_kpis = diag.filter(pl.col("kpi_hours").is_not_null())
    labels, clusters = _signatures(with_kpis, kpi_evidence, cfg)
    with_kpis = with_kpis.with_columns(pl.Series("cluster_id", labels, dtype=pl.Int32))
    names = clusters.select("cluster_id", pl.col("name").alias("cluster_name"))
    diag = diag.join(with_kpis.select("cell_id", "cluster_id"), on="cell_id", how="left").join(
        names, on="cluster_id", how="left"
    ).with_columns(
        pl.col("cluster_id").fill_null(-1),
        (pl.col("cluster_name").is_not_null()
         & (pl.col("cluster_name") != pl.col("primary_cause"))).alias("review"),
    )
    agreement = diag.filter(pl.col("cluster_id") >= 0).group_by("cluster_id").agg(
        (1.0 - pl.col("review").cast(pl.Float64).mean()).alias("agreement"))
    clusters = clusters.join(agreement, on="cluster_id", how="left").select(
        "cluster_id", "name", "size", "agreement", *SIGNATURE_FEATURES).sort("cluster_id")

    area_of, areas = _areas(diag, cells, cfg)
    diag = diag.join(area_of, on="cell_id", how="left").with_columns(
        pl.col("area_id").fill_null(-1)).sort("cell_id")
    proposals = _proposals(kpi_evidence, diag, clusters, cfg)

    table = diag.select([pl.col(name).cast(dtype) for name, dtype in _DIAG_SCHEMA.items()])
    counts = table.group_by("primary_cause").len().sort("primary_cause").iter_rows()
    log.info("diagnosed %d poor cells: %s; %d signature clusters, %d areas", table.height,
             ", ".join(f"{c} {n}" for c, n in counts), clusters.height, areas.height)
    return Diagnosis(table=table, evidence=evidence, clusters=clusters, areas=areas,
                     proposals=proposals)
