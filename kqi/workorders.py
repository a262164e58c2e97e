"""The prioritized work-order list: one row per poor cell, ranked by a documented priority score.

A work order carries what the field needs to act on a poor cell: where it is (cell, site, vendor,
region), what is wrong (poor services and their good-rates), why (primary and secondary causes with
their evidence, from :mod:`kqi.diagnosis`), who noticed (linked complaints, or ``silent`` when nobody
has complained yet) and what to do (``action``, per primary cause, from
``config.workorders.actions``). The priority formula is in docs/work-orders.md::

    priority_score = cause_weight[primary_cause] * (
          w_gap        * min(1, sum_s (threshold_s - good_rate_s) / threshold_s / gap_full)
        + w_tests      * min(1, log10(1 + poor_tests) / log10(1 + tests_full))
        + w_users      * min(1, rrc_users_busy / users_full)
        + w_complaints * min(1, log10(1 + complaints) / log10(1 + complaints_full))
        + w_services   * n_poor_services / 3)

where ``s`` runs over the cell's poor services and ``poor_tests`` counts the tests of those services
that were not good. ``rank`` orders by score (highest first), then by ``cell_id``.
"""

from __future__ import annotations

import logging
import math

import polars as pl

from kqi.causes import FALLBACK
from kqi.config import Config, check_workorders
from kqi.errors import KqiError
from kqi.frames import (
    column_or_null,
    linked_network,
    poor_services_agg,
    require_columns,
)
from kqi.phrases import phrase as _p
from kqi.schema import CAUSES, SERVICES, WORK_ORDERS

log = logging.getLogger(__name__)


#: work-order columns after the contract's ones, in order
EXTRA_COLUMNS: tuple[str, ...] = (
    "silent",
    *(f"good_rate_{s}" for s in SERVICES),
    "tests",
    "poor_tests",
    "rrc_users_busy",
    "complaint_ids",
    "review_note",
)

#: words of the sentences built here (kqi.phrases: the workbook in Chinese shows the Chinese)
_NO_DIAGNOSIS = _p("no diagnosis for this cell", "该小区无诊断")





def linked_complaint_counts(links: pl.DataFrame | None, max_ids: int) -> pl.DataFrame:
    """Per cell: how many network complaints are linked to it, and the first ``max_ids`` ids.

    Parameters
    ----------
    links : polars.DataFrame or None
        Complaint links (``kqi.schema.COMPLAINT_LINKS`` columns); ``None`` means no complaints.
    max_ids : int
        At most this many complaint ids are listed per cell (sorted); ``+N more`` says the rest.

    Returns
    -------
    polars.DataFrame
        ``cell_id``, ``complaints`` (int64), ``complaint_ids`` (``;``-joined), sorted by cell_id.
    """
    empty = pl.DataFrame(schema={"cell_id": pl.String, "complaints": pl.Int64,
                                 "complaint_ids": pl.String})
    if links is None or links.height == 0:
        return empty
    require_columns(links, ("complaint_id",), "complaint links")
    linked = linked_network(links)
    if linked.height == 0:
        return empty
    limit = max(int(max_ids), 0)
    out = (
        linked.group_by("cell_id")
        .agg(pl.len().cast(pl.Int64).alias("complaints"),
             pl.col("complaint_id").sort().head(limit).alias("_ids"))
        .with_columns(
            pl.when(pl.col("complaints") > limit)
            .then(pl.col("_ids").list.join(";") + pl.lit(";+")
                  + (pl.col("complaints") - limit).cast(pl.String) + pl.lit(" more"))
            .otherwise(pl.col("_ids").list.join(";"))
            .alias("complaint_ids")
        )
        .drop("_ids")
        .sort("cell_id")
    )
    return out


def _per_cell_kqi(cell_kqi: pl.DataFrame) -> pl.DataFrame:
    """Wide per-cell view of the cell x service table: good-rates, poor services, poor tests."""
    require_columns(cell_kqi, ("cell_id", "service", "tests", "good_tests", "good_rate", "poor"),
                    "cell_kqi")
    kq = cell_kqi.select(
        pl.col("cell_id").cast(pl.String),
        pl.col("service").cast(pl.String),
        pl.col("tests").cast(pl.Int64),
        pl.col("good_tests").cast(pl.Int64),
        pl.col("good_rate").cast(pl.Float64),
        pl.col("poor").cast(pl.Boolean).fill_null(False),
    )
    aggs: list[pl.Expr] = [
        pl.col("tests").sum().alias("tests"),
        pl.col("poor").any().alias("_any_poor"),
        poor_services_agg().alias("poor_services_kqi"),
        (pl.col("tests") - pl.col("good_tests")).filter(pl.col("poor")).sum().alias("poor_tests"),
        pl.col("poor").filter(pl.col("poor")).len().cast(pl.Int64).alias("n_poor_services"),
    ]
    aggs += [
        pl.col("good_rate").filter(pl.col("service") == s).first().alias(f"good_rate_{s}")
        for s in SERVICES
    ]
    return kq.group_by("cell_id").agg(aggs).sort("cell_id")


def _gap_expr(config: Config) -> pl.Expr:
    """Sum over poor services of the relative shortfall below the service's threshold."""
    terms = []
    for s in SERVICES:
        t = config.kqi.thresholds.for_service(s)
        rate = pl.col(f"good_rate_{s}")
        poor_s = pl.col("poor_services_kqi").str.split(";").list.contains(s)
        shortfall = ((pl.lit(t) - rate) / t).clip(lower_bound=0.0) if t > 0 else pl.lit(0.0)
        terms.append(pl.when(poor_s & rate.is_not_null()).then(shortfall).otherwise(0.0))
    return pl.sum_horizontal(terms)


def _cause_weight(config: Config) -> pl.Expr:
    w = config.workorders
    # every cause of the registry has a weight (checked at config load); a cause outside the
    # contract (warned about in build_work_orders) is weighed as the fallback cause
    return pl.col("primary_cause").replace_strict(
        {c: float(v) for c, v in w.cause_weight.items()}, default=float(w.cause_weight[FALLBACK]),
        return_dtype=pl.Float64)


def priority_expr(config: Config) -> pl.Expr:
    """The priority score as a polars expression over the work-order working columns.

    Needs ``good_rate_<service>``, ``poor_services_kqi``, ``poor_tests``, ``rrc_users_busy``
    (nullable), ``complaints``, ``n_poor_services`` and ``primary_cause``. See the module docstring
    and docs/work-orders.md for the formula.
    """
    w = config.workorders
    gap_full = w.gap_full if w.gap_full > 0 else 1.0
    log_tests = math.log10(1.0 + max(w.tests_full, 1.0))
    log_compl = math.log10(1.0 + max(w.complaints_full, 1.0))
    users_full = w.users_full if w.users_full > 0 else 1.0
    gap = (_gap_expr(config) / gap_full).clip(upper_bound=1.0)
    tests = ((pl.col("poor_tests").cast(pl.Float64) + 1.0).log10() / log_tests).clip(upper_bound=1.0)
    users = (pl.col("rrc_users_busy").fill_null(0.0).fill_nan(0.0).clip(lower_bound=0.0)
             / users_full).clip(upper_bound=1.0)
    compl = ((pl.col("complaints").cast(pl.Float64) + 1.0).log10() / log_compl).clip(upper_bound=1.0)
    services = pl.col("n_poor_services").cast(pl.Float64) / len(SERVICES)
    cause_w = _cause_weight(config)
    raw = (w.w_gap * gap + w.w_tests * tests + w.w_users * users + w.w_complaints * compl
           + w.w_services * services)
    # rounded so that the ranking and the CSV do not depend on float summation order
    return (cause_w * raw).round(4)


def build_work_orders(  # noqa: PLR0917 - positional order is the pipeline's API
    diagnosis_table: pl.DataFrame | None,
    cell_kqi: pl.DataFrame,
    cells: pl.DataFrame,
    links: pl.DataFrame | None,
    config: Config,
    evidence: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Build the ranked work-order list: one row per poor cell.

    Parameters
    ----------
    diagnosis_table : polars.DataFrame or None
        ``kqi.schema.DIAGNOSIS`` table (``cell_id``, ``primary_cause``, ``secondary_causes``,
        ``evidence``; ``rrc_users_busy`` when present). A poor cell it lacks gets cause
        ``unknown``.
    cell_kqi : polars.DataFrame
        ``kqi.schema.CELL_KQI`` table; its ``poor`` flags decide which cells get a work order.
    cells : polars.DataFrame
        Cells (``cell_id``; ``cell_name``, ``site_id``, ``vendor``, ``region`` when present).
    links : polars.DataFrame or None
        Complaint links from :func:`kqi.complaints.link_complaints`; ``None`` = no complaints.
    config : kqi.config.Config
        Priority weights and actions come from ``config.workorders``, thresholds from
        ``config.kqi.thresholds``.
    evidence : polars.DataFrame, optional
        Per-cell evidence with ``cell_id`` and ``rrc_users_busy``; overrides the diagnosis
        table's ``rrc_users_busy`` when given.

    Returns
    -------
    polars.DataFrame
        ``kqi.schema.WORK_ORDERS`` columns, then ``silent`` (no linked complaint),
        ``good_rate_browsing``/``_video``/``_gaming``, ``tests``, ``poor_tests``,
        ``rrc_users_busy`` and ``complaint_ids``; sorted by ``rank`` (1 = most urgent).
    """
    w = config.workorders
    check_workorders(w)  # a Config built in code (dataclasses.replace) is checked here too
    per_cell = _per_cell_kqi(cell_kqi).filter(pl.col("_any_poor")).drop("_any_poor")

    require_columns(cells, ("cell_id",), "cells")
    cell_info = cells.select(pl.col("cell_id").cast(pl.String),
                             *[column_or_null(cells.columns, c, pl.String)
                               for c in ("cell_name", "site_id", "vendor", "region")])
    unknown_cells = per_cell.join(cell_info, on="cell_id", how="anti")
    if unknown_cells.height:
        log.warning("%d poor cell(s) are not in the cells table; their work orders lack site data",
                    unknown_cells.height)

    diag_cols = ["primary_cause", "secondary_causes", "evidence"]
    if diagnosis_table is not None and diagnosis_table.height:
        require_columns(diagnosis_table, ("cell_id", *diag_cols), "diagnosis")
        extra = ["rrc_users_busy"] if "rrc_users_busy" in diagnosis_table.columns else []
        notes = ["review_note"] if "review_note" in diagnosis_table.columns else []
        diag = diagnosis_table.select(
            pl.col("cell_id").cast(pl.String),
            *[pl.col(c).cast(pl.String) for c in (*diag_cols, *notes)],
            *[pl.col(c).cast(pl.Float64) for c in extra],
        ).unique("cell_id", keep="first", maintain_order=True)
    else:
        diag = pl.DataFrame(schema={"cell_id": pl.String, **dict.fromkeys(diag_cols, pl.String)})
    diag = diag.with_columns(column_or_null(diag.columns, "rrc_users_busy", pl.Float64),
                             column_or_null(diag.columns, "review_note", pl.String))
    if evidence is not None and "rrc_users_busy" in evidence.columns:
        require_columns(evidence, ("cell_id",), "evidence")
        ev = evidence.select(pl.col("cell_id").cast(pl.String),
                             pl.col("rrc_users_busy").cast(pl.Float64).alias("_rrc_ev")
                             ).unique("cell_id", keep="first", maintain_order=True)
        diag = (diag.join(ev, on="cell_id", how="full", coalesce=True)
                .with_columns(pl.coalesce("_rrc_ev", "rrc_users_busy").alias("rrc_users_busy"))
                .drop("_rrc_ev"))

    undiagnosed = per_cell.join(diag.filter(pl.col("primary_cause").is_not_null()),
                                on="cell_id", how="anti").height
    if undiagnosed:
        log.warning("%d poor cell(s) have no diagnosis; cause set to 'unknown'", undiagnosed)

    counts = linked_complaint_counts(links, w.complaint_ids_max)

    unknown_action = w.actions[FALLBACK]
    df = (
        per_cell.join(cell_info, on="cell_id", how="left")
        .join(diag, on="cell_id", how="left")
        .join(counts, on="cell_id", how="left")
        .with_columns(
            pl.col("primary_cause").fill_null("unknown"),
            pl.col("secondary_causes").fill_null(""),
            pl.col("evidence").fill_null(_NO_DIAGNOSIS),
            pl.col("complaints").fill_null(0),
            pl.col("complaint_ids").fill_null(""),
            pl.col("review_note").fill_null(""),
            pl.col("poor_tests").fill_null(0).cast(pl.Int64),
        )
    )
    bad_causes = df.filter(~pl.col("primary_cause").is_in(CAUSES))["primary_cause"].unique().sort()
    if bad_causes.len():
        log.warning("primary cause(s) outside the contract: %s", ", ".join(bad_causes.to_list()))
    df = df.with_columns(
        priority_expr(config).alias("priority_score"),
        pl.col("primary_cause").replace_strict(w.actions, default=unknown_action,
                                               return_dtype=pl.String).alias("action"),
        (pl.col("complaints") == 0).alias("silent"),
        pl.col("poor_services_kqi").alias("poor_services"),
    ).sort(["priority_score", "cell_id"], descending=[True, False])
    df = df.with_columns(pl.int_range(1, df.height + 1, dtype=pl.Int32).alias("rank"))
    columns = [f.name for f in WORK_ORDERS] + list(EXTRA_COLUMNS)
    log.info("work orders: %d poor cells, %d silent", df.height, int(df["silent"].sum() or 0))
    return df.select(columns)


def work_order_summary(work_orders: pl.DataFrame) -> dict[str, object]:
    """Counts for the summary: work orders per cause, per vendor, silent cells.

    Parameters
    ----------
    work_orders : polars.DataFrame
        The output of :func:`build_work_orders`.

    Returns
    -------
    dict
        ``work_orders`` (total), ``causes`` ({cause: n}, every cause of the contract),
        ``vendors`` ({vendor: n}, sorted), ``silent_poor_cells`` (n) and
        ``silent_cell_ids`` (sorted list).
    """
    causes = dict.fromkeys(CAUSES, 0)
    for cause, n in work_orders.group_by("primary_cause").len().iter_rows():
        causes[cause] = causes.get(cause, 0) + int(n)
    vendors = {
        v: int(n) for v, n in work_orders.with_columns(pl.col("vendor").fill_null("unknown"))
        .group_by("vendor").len().sort("vendor").iter_rows()
    } if "vendor" in work_orders.columns else {}
    silent = (work_orders.filter(pl.col("silent"))["cell_id"].sort().to_list()
              if "silent" in work_orders.columns else [])
    return {
        "work_orders": work_orders.height,
        "causes": causes,
        "vendors": vendors,
        "silent_poor_cells": len(silent),
        "silent_cell_ids": silent,
    }


#: work-order columns the closed loop adds (with a history), after the contract's
ORDER_COLUMNS: tuple[str, ...] = ("order_id", "order_status", "first_seen", "runs_poor")


def apply_order_state(work_orders: pl.DataFrame, state: pl.DataFrame, config: Config
                      ) -> pl.DataFrame:
    """Give each work order its order across runs, and rank persisting orders above new ones.

    Parameters
    ----------
    work_orders : polars.DataFrame
        From :func:`build_work_orders`.
    state : polars.DataFrame
        The order state after this run (:func:`kqi.followup.advance_orders`): ``cell_id``,
        ``order_id``, ``order_status`` (null for cells not poor this run), ``first_seen``,
        ``runs_poor``.
    config : kqi.config.Config
        ``config.followup.w_persist`` and ``persist_full``.

    Returns
    -------
    polars.DataFrame
        The work orders with ``order_id``, ``order_status``, ``first_seen``, ``runs_poor`` after
        the contract's columns; ``priority_score`` raised by
        ``cause_weight * w_persist * min(1, (runs_poor - 1) / (persist_full - 1))`` for an order
        poor in an earlier run too (persisting, reopened, escalated), then re-ranked. A new order
        gets no bonus, so of two orders of equal severity the older ranks first.
    """
    f = config.followup
    span = max(f.persist_full - 1, 1)
    st = state.filter(pl.col("order_status").is_not_null()).select(
        pl.col("cell_id").cast(pl.String), pl.col("order_id").cast(pl.String),
        pl.col("order_status").cast(pl.String), pl.col("first_seen").cast(pl.Date),
        pl.col("runs_poor").cast(pl.Int64))
    df = work_orders.join(st, on="cell_id", how="left")
    missing = df.filter(pl.col("order_id").is_null()).height
    if missing:  # pragma: no cover - advance_orders gives every poor cell an order
        raise KqiError(f"{missing} work order(s) have no order state")
    bonus = (_cause_weight(config) * f.w_persist
             * ((pl.col("runs_poor") - 1).cast(pl.Float64) / span).clip(0.0, 1.0))
    df = df.with_columns((pl.col("priority_score") + bonus).round(4).alias("priority_score"))
    df = df.sort(["priority_score", "cell_id"], descending=[True, False]).with_columns(
        pl.int_range(1, df.height + 1, dtype=pl.Int32).alias("rank"))
    contract = [f.name for f in WORK_ORDERS]
    rest = [c for c in df.columns if c not in contract and c not in ORDER_COLUMNS]
    return df.select([*contract, *ORDER_COLUMNS, *rest])
