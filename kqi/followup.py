"""The closed loop: verify open work orders in a later run and advance their state.

Three pure functions over polars frames (no I/O; the history store reads and writes them)::

    from kqi.followup import verify_orders, advance_orders, programme_table

    fu = verify_orders(open_orders, day_counts, cells, isd, (first_day, last_day), config)
    state = advance_orders(previous_state, fu, poor_cells, first_day, run_id, config)
    table = programme_table(fu, state, cells)                  # for summary.json

:func:`verify_orders` answers, for every order open before this run, whether its cell recovered:
a difference in differences of good-rates against nearby control cells, tested on the counts.
:func:`advance_orders` is the order state machine (new, persisting, reopened, escalated, closed).
:func:`programme_table` is management's before/after table. The rules, the statistic and every
default are in docs/followup.md.
"""

from __future__ import annotations

import logging
import math
from datetime import date
from typing import Any

import numpy as np
import polars as pl
import polars.selectors as cs

from kqi.config import Config, FollowupConfig, check_followup
from kqi.errors import KqiError
from kqi.flagging import flag_counts
from kqi.frames import require_columns
from kqi.geo import GridIndex, site_isd
from kqi.phrases import phrase as _p
from kqi.schema import SERVICE_CODE, SERVICES

#: words of the sentences built here (kqi.phrases: the workbook in Chinese shows the Chinese)
_NEIGHBOUR = _p(" neighbour", " 个邻区")
_NEIGHBOURS = _p(" neighbours", " 个邻区")
_NETWORK = _p("network", "全网")


log = logging.getLogger(__name__)

__all__ = [
    "FOLLOWUP_COLUMNS",
    "ORDER_STATE_COLUMNS",
    "VERDICTS",
    "FollowupError",
    "advance_orders",
    "did_test",
    "order_id",
    "programme_markdown",
    "programme_table",
    "verify_orders",
]

#: verdicts of :func:`verify_orders`, per service and per order
VERDICTS: tuple[str, ...] = ("recovered", "not_recovered", "worse", "insufficient_data")
#: floats in the outputs are rounded to this many decimals, so CSVs are byte-identical
DECIMALS = 6

#: columns of :func:`verify_orders`' result: the contract's (followup.csv) first, then the detail
#: the data contract's followup.csv columns, first in every follow-up frame (FOLLOWUP_COLUMNS)
CONTRACT_COLUMNS: tuple[str, ...] = (
    "order_id", "cell_id", "opened", "cause_at_open", "good_rate_before", "good_rate_after",
    "tests_after", "control_delta", "effect", "p_value", "verdict", "status")

FOLLOWUP_COLUMNS: dict[str, pl.DataType] = {
    "order_id": pl.String(), "cell_id": pl.String(), "opened": pl.Date(),
    "cause_at_open": pl.String(), "good_rate_before": pl.Float64(), "good_rate_after": pl.Float64(),
    "tests_after": pl.Int64(), "control_delta": pl.Float64(), "effect": pl.Float64(),
    "p_value": pl.Float64(), "verdict": pl.String(), "status": pl.String(),
    "service": pl.String(), "tests_before": pl.Int64(), "good_tests_before": pl.Int64(),
    "good_tests_after": pl.Int64(), "controls": pl.Int64(), "control_basis": pl.String(),
    "control_rate_before": pl.Float64(), "control_rate_after": pl.Float64(),
    "complaints_before": pl.Int64(), "complaints_after": pl.Int64(),
}

#: columns of the order state (:func:`advance_orders`' input ``previous`` and its result)
ORDER_STATE_COLUMNS: dict[str, pl.DataType] = {
    "order_id": pl.String(), "cell_id": pl.String(), "status": pl.String(),
    "opened": pl.Date(), "first_seen": pl.Date(), "runs_poor": pl.Int64(), "runs_open": pl.Int64(),
    "cause_at_open": pl.String(), "poor_services_at_open": pl.String(),
    "opened_run": pl.String(), "closed_run": pl.String(), "last_verdict": pl.String(),
    "before_first": pl.Date(), "before_last": pl.Date(),
    "poor_streak": pl.Int64(), "times_reopened": pl.Int64(), "order_status": pl.String(),
}
#: state columns a previous state may lack (older histories): filled with these defaults
_STATE_DEFAULTS: dict[str, Any] = {"poor_streak": 0, "times_reopened": 0}

_ORDER_COLUMNS = ("order_id", "cell_id", "opened", "cause_at_open", "poor_services_at_open",
                  "before_first", "before_last", "runs_open", "status")
_OPEN = ("open", "escalated")


class FollowupError(KqiError):
    """The inputs of the follow-up cannot be used (missing column, bad value, duplicate order)."""


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------



def _as_date(name: str, dtype: pl.DataType) -> pl.Expr:
    """``name`` as a Date column: ISO text is parsed, datetimes are truncated to their day."""
    if dtype == pl.String:
        return pl.col(name).str.to_date("%Y-%m-%d", strict=True).alias(name)
    if isinstance(dtype, pl.Datetime):
        return pl.col(name).dt.date().alias(name)
    return pl.col(name).cast(pl.Date).alias(name)


def _orders_frame(orders: pl.DataFrame) -> pl.DataFrame:
    require_columns(orders, _ORDER_COLUMNS, "orders", FollowupError)
    schema = orders.schema
    df = orders.select(
        pl.col("order_id").cast(pl.String), pl.col("cell_id").cast(pl.String),
        _as_date("opened", schema["opened"]), pl.col("cause_at_open").cast(pl.String),
        pl.col("poor_services_at_open").cast(pl.String).fill_null(""),
        _as_date("before_first", schema["before_first"]),
        _as_date("before_last", schema["before_last"]),
        pl.col("runs_open").cast(pl.Int64).fill_null(0), pl.col("status").cast(pl.String),
    )
    if df["order_id"].null_count() or df["cell_id"].null_count():
        raise FollowupError("orders: order_id and cell_id must not be null")
    dup = df.filter(pl.col("order_id").is_duplicated())["order_id"].unique().sort()
    if dup.len():
        raise FollowupError(f"orders: order_id {dup[0]} appears more than once")
    bad = df.filter(~pl.col("status").is_in(_OPEN) | pl.col("status").is_null())
    if bad.height:
        raise FollowupError(f"orders: order {bad['order_id'][0]} has status "
                            f"{bad['status'][0]!r}; only open or escalated orders are verified")
    if df.filter(pl.col("before_first").is_null() | pl.col("before_last").is_null()
                 | (pl.col("before_first") > pl.col("before_last"))).height:
        raise FollowupError("orders: before_first/before_last must be dates with first <= last")
    return df


def _day_counts_frame(day_counts: pl.DataFrame) -> pl.DataFrame:
    require_columns(day_counts, ("cell_id", "service", "day", "tests", "good_tests"), "day_counts",
                    FollowupError)
    df = day_counts.select(
        pl.col("cell_id").cast(pl.String), pl.col("service").cast(pl.String),
        _as_date("day", day_counts.schema["day"]),
        pl.col("tests").cast(pl.Int64), pl.col("good_tests").cast(pl.Int64),
    ).drop_nulls()
    if df.filter((pl.col("good_tests") < 0) | (pl.col("good_tests") > pl.col("tests"))).height:
        raise FollowupError("day_counts: good_tests must lie in 0..tests")
    return df


# --------------------------------------------------------------------------------------------
# The statistic
# --------------------------------------------------------------------------------------------

def did_test(  # noqa: PLR0917 - the four (good, tests) pairs of the contrast
    g0: np.ndarray, n0: np.ndarray, g1: np.ndarray, n1: np.ndarray,
    G0: np.ndarray, N0: np.ndarray, G1: np.ndarray, N1: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference in differences of four binomial proportions and its two-sided p-value.

    ``effect = (g1/n1 - g0/n0) - (G1/N1 - G0/N0)`` on the raw counts. The test is the adjusted
    Wald test of a linear contrast of independent binomial proportions (Price & Bonett 2004, the
    four-group form of Agresti & Caffo 2000): each proportion is estimated as
    ``(y + 2/m) / (n + 4/m)`` with ``m = 4`` groups, i.e. half a success in one extra trial, and

        z = (p1 - p0 - P1 + P0) / sqrt(sum p (1 - p) / (n + 1))     over the four adjusted p,
        p_value = 2 (1 - Phi(|z|)).

    The plain Wald z (raw proportions in the variance) has zero variance at 0 % or 100 % rates,
    so a cell going from 25/30 to 30/30 with saturated controls would be "certain"; the
    adjustment keeps every variance term positive and is known to hold its level far better for
    small counts, while agreeing with the plain z for the large pooled control counts.

    Parameters
    ----------
    g0, n0, g1, n1 : np.ndarray
        Good tests and tests of the treated cell before and after (n0, n1 > 0).
    G0, N0, G1, N1 : np.ndarray
        Pooled good tests and tests of the controls before and after (N0, N1 > 0).

    Returns
    -------
    effect, z, p_value : np.ndarray
        float64 arrays of the common length.
    """
    counts = [np.asarray(a, dtype=np.float64) for a in (g0, n0, g1, n1, G0, N0, G1, N1)]
    g0, n0, g1, n1, G0, N0, G1, N1 = counts
    with np.errstate(divide="ignore", invalid="ignore"):
        effect = (g1 / n1 - g0 / n0) - (G1 / N1 - G0 / N0)
    adj = [((y + 0.5) / (n + 1.0), n + 1.0) for y, n in ((g0, n0), (g1, n1), (G0, N0), (G1, N1))]
    (q0, m0), (q1, m1), (Q0, M0), (Q1, M1) = adj
    est = (q1 - q0) - (Q1 - Q0)
    se = np.sqrt(q0 * (1 - q0) / m0 + q1 * (1 - q1) / m1 + Q0 * (1 - Q0) / M0 + Q1 * (1 - Q1) / M1)
    z = est / se
    p = np.array([math.erfc(abs(v) / math.sqrt(2.0)) if math.isfinite(v) else math.nan
                  for v in z], dtype=np.float64)
    return effect, z, p


# --------------------------------------------------------------------------------------------
# verify_orders
# --------------------------------------------------------------------------------------------

def _window_sums(dc: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """Tests and good tests per cell x service summed over each (before_first, before_last)."""
    parts = []
    for first, last in windows.iter_rows():
        parts.append(
            dc.filter(pl.col("day").is_between(first, last, closed="both"))
            .group_by("cell_id", "service")
            .agg(pl.col("tests").sum().alias("n0"), pl.col("good_tests").sum().alias("g0"))
            .with_columns(pl.lit(first, pl.Date).alias("before_first"),
                          pl.lit(last, pl.Date).alias("before_last"))
        )
    schema = {"cell_id": pl.String, "service": pl.String, "n0": pl.Int64, "g0": pl.Int64,
              "before_first": pl.Date, "before_last": pl.Date}
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat(parts).cast(schema)  # type: ignore[arg-type]


def _control_pairs(orders: pl.DataFrame, cells: pl.DataFrame, isd: pl.DataFrame | None,
                   order_cells: pl.Series, config: Config) -> pl.DataFrame:
    """Every (order, candidate control) within the order cell's control radius, ranked by distance.

    Candidates are the cells table's cells with a position and no order in ``orders``. The radius
    is ``control_radius_isd`` x the cell's local ISD (floored at ``diagnosis.isd_floor_m``, as the
    diagnosis floors it); a cell without position or ISD gets no local candidates.
    """
    out_schema = {"order_id": pl.String, "control_id": pl.String, "rank": pl.Int64}
    require_columns(cells, ("cell_id", "lat", "lon"), "cells", FollowupError)
    pos = (cells.select(pl.col("cell_id").cast(pl.String), pl.col("lat").cast(pl.Float64),
                        pl.col("lon").cast(pl.Float64))
           .drop_nulls().unique("cell_id", keep="first").sort("cell_id"))
    cand = pos.filter(~pl.col("cell_id").is_in(order_cells.implode()))
    if cand.height == 0:
        return pl.DataFrame(schema=out_schema)
    if isd is None:
        isd = site_isd(cells, config)
    require_columns(isd, ("cell_id", "isd_m"), "isd", FollowupError)
    isd_lut = isd.select(pl.col("cell_id").cast(pl.String), pl.col("isd_m").cast(pl.Float64)
                         ).unique("cell_id", keep="first")
    q = (orders.select("order_id", "cell_id")
         .join(pos, on="cell_id", how="left").join(isd_lut, on="cell_id", how="left"))
    floor = float(config.diagnosis.isd_floor_m)
    radius = (q["isd_m"].fill_nan(None).clip(lower_bound=floor)
              * config.followup.control_radius_isd).fill_null(float("nan"))
    hits = GridIndex(cand["lat"], cand["lon"]).within(
        q["lat"].fill_null(float("nan")), q["lon"].fill_null(float("nan")), radius)
    query = hits.query
    # hits come sorted by (distance, index) within each query: the rank is the position there
    rank = np.arange(query.shape[0], dtype=np.int64) - hits.starts[query]
    return pl.DataFrame({
        "order_id": q["order_id"].gather(query),
        "control_id": cand["cell_id"].gather(hits.idx),
        "rank": rank,
    }, schema=out_schema)


def _round(names: list[str]) -> list[pl.Expr]:
    return [pl.col(c).round(DECIMALS) for c in names]


def _empty_followup() -> pl.DataFrame:
    return pl.DataFrame(schema=FOLLOWUP_COLUMNS)


def verify_orders(  # noqa: PLR0917 - positional order is the brief's API
    orders: pl.DataFrame,
    day_counts: pl.DataFrame,
    cells: pl.DataFrame,
    isd: pl.DataFrame | None,
    after: tuple[date, date],
    config: Config,
    *,
    complaints_before: pl.DataFrame | None = None,
    complaints_after: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Verify every order open before this run: did its cell recover, relative to its controls?

    Parameters
    ----------
    orders : polars.DataFrame
        Orders open before this run, one row each: ``order_id``, ``cell_id``, ``opened`` (date),
        ``cause_at_open``, ``poor_services_at_open`` (";"-joined services), ``before_first``,
        ``before_last`` (dates: the window of the run that opened the order), ``runs_open``
        (int) and ``status`` (``open`` or ``escalated``). Extra columns are ignored.
    day_counts : polars.DataFrame
        ``cell_id``, ``service``, ``day`` (date), ``tests``, ``good_tests`` of all cells, for the
        days of every order's before window and of the after window.
    cells : polars.DataFrame
        The cells table (``cell_id``, ``lat``, ``lon``; other columns ignored).
    isd : polars.DataFrame or None
        ``cell_id``, ``isd_m`` as :func:`kqi.geo.site_isd` returns them; None = computed here
        from ``cells``.
    after : (date, date)
        First and last day (inclusive) of the after period (this run's window).
    config : kqi.config.Config
        ``config.followup`` (controls, tests, alpha, escalation), ``config.kqi.thresholds`` and
        ``config.kqi.confidence_z`` (recovery), ``config.diagnosis.isd_floor_m``.
    complaints_before, complaints_after : polars.DataFrame, optional
        ``cell_id``, ``complaints`` (counts linked to the cell in each period); summed per cell.
        When absent the ``complaints_*`` columns are null; a cell absent from a given frame has 0.

    Returns
    -------
    polars.DataFrame
        One row per order, sorted by ``order_id``, with the columns of
        :data:`FOLLOWUP_COLUMNS`: order_id, cell_id, opened, cause_at_open, good_rate_before,
        good_rate_after, tests_after, control_delta, effect, p_value, verdict, status, then
        service (the deciding service), tests_before, good_tests_before, good_tests_after,
        controls (number of control cells), control_basis (``"12 neighbours"``, ``"network"``,
        or null when no control had tests), control_rate_before, control_rate_after,
        complaints_before, complaints_after. Floats are rounded to 6 decimals.

    Notes
    -----
    Per service poor at open, with the cell's counts before (its order's before window) g0/n0
    and after g1/n1, and the pooled counts of its controls G0/N0 and G1/N1 (sums, never means
    of rates), ``effect`` and ``p_value`` come from :func:`did_test` and the verdict is:

    - ``insufficient_data`` when n1 < ``min_tests_after``, or n0 = 0, or no control has tests
      in both periods (never a guess);
    - ``worse`` when effect < 0, p_value < ``alpha`` and g1/n1 < g0/n0;
    - ``recovered`` when the Wilson lower bound of g1/n1 (``kqi.confidence_z``) lies above the
      service threshold *and* effect > 0 with p_value < ``alpha``;
    - ``not_recovered`` otherwise.

    The order's verdict is ``worse`` if any service is worse, else ``insufficient_data`` if any
    is, else ``recovered`` if all are, else ``not_recovered``. Its figures are those of the
    deciding service: among the services with the order's verdict, the lowest effect for worse
    and not_recovered, the highest p_value (the weakest recovery) for recovered, the fewest tests
    after for insufficient_data; ties go to the service order browsing, video, gaming. Decisions
    use unrounded values.

    Status after this run: recovered -> ``closed``; worse -> ``escalated`` when
    ``escalate_on_worse`` (else as not_recovered); not_recovered -> ``escalated`` when
    ``runs_open + 1 >= escalate_after_runs``, else the current status; insufficient_data keeps
    the current status. An escalated order stays escalated unless it recovers.
    """
    fcfg = config.followup
    check_followup(fcfg)
    a0, a1 = after
    if a0 > a1:
        raise FollowupError(f"after period starts {a0} after it ends {a1}")
    o = _orders_frame(orders)
    if o.height == 0:
        return _empty_followup()
    dc = _day_counts_frame(day_counts)

    per = (o.with_columns(pl.col("poor_services_at_open").str.split(";").alias("service"))
           .explode("service")
           .with_columns(pl.col("service").str.strip_chars().str.to_lowercase())
           .filter(pl.col("service").is_not_null() & (pl.col("service") != ""))
           .unique(["order_id", "service"], keep="first"))
    unknown = per.filter(~pl.col("service").is_in(SERVICES))
    if unknown.height:
        raise FollowupError(f"orders: order {unknown['order_id'][0]} names unknown service "
                            f"{unknown['service'][0]!r} in poor_services_at_open")
    no_service = o.join(per, on="order_id", how="anti")
    if no_service.height:
        log.warning("%d order(s) name no poor service; verdict insufficient_data",
                    no_service.height)

    key = ["before_first", "before_last"]
    before = _window_sums(dc, o.select(key).unique().sort(key))
    after_sums = (dc.filter(pl.col("day").is_between(a0, a1, closed="both"))
                  .group_by("cell_id", "service")
                  .agg(pl.col("tests").sum().alias("n1"), pl.col("good_tests").sum().alias("g1")))

    # the treated cell's own counts
    per = (per.join(before, on=["cell_id", "service", *key], how="left")
           .join(after_sums, on=["cell_id", "service"], how="left")
           .with_columns(pl.col("n0", "g0", "n1", "g1").fill_null(0)))

    # a cell with an order of its own is never a control (a cluster fixed together would
    # otherwise cancel itself out), whatever that order's state
    order_cells = o["cell_id"].unique()
    both = (before.join(after_sums, on=["cell_id", "service"], how="inner")
            .filter((pl.col("n0") > 0) & (pl.col("n1") > 0)
                    & ~pl.col("cell_id").is_in(order_cells.implode())))
    agg = [pl.len().cast(pl.Int64).alias("controls"),
           pl.col("g0").sum().alias("G0"), pl.col("n0").sum().alias("N0"),
           pl.col("g1").sum().alias("G1"), pl.col("n1").sum().alias("N1")]

    pairs = _control_pairs(o, cells, isd, order_cells, config)
    local = (per.select("order_id", "service", *key)
             .join(pairs, on="order_id", how="inner")
             .join(both.rename({"cell_id": "control_id"}), on=["control_id", "service", *key],
                   how="inner")
             .sort("order_id", "service", "rank")
             .filter(pl.int_range(pl.len()).over("order_id", "service") < fcfg.controls)
             .group_by("order_id", "service").agg(agg))
    network = both.group_by("service", *key).agg(agg)
    per = (per.join(local, on=["order_id", "service"], how="left")
           .join(network.rename({c: f"{c}_net" for c in ("controls", "G0", "N0", "G1", "N1")}),
                 on=["service", *key], how="left"))
    use_local = (pl.col("N0").fill_null(0) >= max(fcfg.min_control_tests, 1)) & (
        pl.col("N1").fill_null(0) >= max(fcfg.min_control_tests, 1))
    per = per.with_columns(
        *[pl.when(use_local).then(pl.col(c)).otherwise(pl.col(f"{c}_net")).fill_null(0).alias(c)
          for c in ("controls", "G0", "N0", "G1", "N1")],
        pl.when(use_local)
        .then(pl.col("controls").cast(pl.String)
              + pl.when(pl.col("controls") == 1).then(pl.lit(_NEIGHBOUR))
              .otherwise(pl.lit(_NEIGHBOURS)))
        .when(pl.col("N0_net").fill_null(0) > 0).then(pl.lit(_NETWORK))
        .otherwise(pl.lit(None, pl.String)).alias("control_basis"),
    ).drop(cs.ends_with("_net"))
    fallback = per.filter(pl.col("control_basis") == _NETWORK).height
    if fallback:
        log.info("follow-up: %d order x service(s) use network-wide controls", fallback)

    per = per.sort("order_id", "service")
    per = _service_verdicts(per, config)
    decided = _combine(per)
    out = o.join(decided, on="order_id", how="left").with_columns(
        pl.col("verdict").fill_null("insufficient_data"))
    out = out.with_columns(_status_expr(fcfg).alias("new_status"))
    out = _with_complaints(out, complaints_before, "complaints_before")
    out = _with_complaints(out, complaints_after, "complaints_after")
    rates = {"good_rate_before": ("g0", "n0"), "good_rate_after": ("g1", "n1"),
             "control_rate_before": ("G0", "N0"), "control_rate_after": ("G1", "N1")}
    out = out.with_columns(
        *[pl.when(pl.col(n) > 0).then(pl.col(g) / pl.col(n)).otherwise(None).alias(name)
          for name, (g, n) in rates.items()],
    ).rename({"n1": "tests_after", "n0": "tests_before", "g0": "good_tests_before",
              "g1": "good_tests_after"}).drop("status").rename({"new_status": "status"})
    out = out.select([pl.col(c).cast(t) for c, t in FOLLOWUP_COLUMNS.items()])
    floats = [c for c, t in FOLLOWUP_COLUMNS.items() if t == pl.Float64()]
    out = out.with_columns(_round(floats)).sort("order_id")
    counts = dict(out.group_by("verdict").len().iter_rows())
    log.info("follow-up of %d order(s): %s", out.height,
             ", ".join(f"{v} {counts.get(v, 0)}" for v in VERDICTS))
    return out


def _service_verdicts(per: pl.DataFrame, config: Config) -> pl.DataFrame:
    """Add effect, p_value, rates and the per-service verdict to the order x service rows."""
    fcfg = config.followup
    cols = {c: per[c].to_numpy().astype(np.float64) for c in
            ("g0", "n0", "g1", "n1", "G0", "N0", "G1", "N1")}
    computable = (cols["n0"] > 0) & (cols["n1"] > 0) & (cols["N0"] > 0) & (cols["N1"] > 0)
    effect, _, p = did_test(*(np.where(computable, cols[c], 1.0) for c in
                              ("g0", "n0", "g1", "n1", "G0", "N0", "G1", "N1")))
    effect = np.where(computable, effect, np.nan)
    p = np.where(computable, p, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        control_delta = np.where(computable, cols["G1"] / cols["N1"] - cols["G0"] / cols["N0"],
                                 np.nan)
    # the cell is no longer poor with confidence: Wilson lower bound above the threshold
    svc = per["service"].replace_strict(SERVICE_CODE, return_dtype=pl.Int64).to_numpy()
    flags = flag_counts(per["n1"].to_numpy(), per["g1"].to_numpy(), svc, config)
    thresholds = np.array([config.kqi.thresholds.for_service(s) for s in SERVICES])[svc]
    not_poor = flags["rate_low"] > thresholds
    with np.errstate(divide="ignore", invalid="ignore"):
        fell = cols["g1"] / cols["n1"] < cols["g0"] / cols["n0"]
    sig = computable & (p < fcfg.alpha)
    insufficient = (cols["n1"] < fcfg.min_tests_after) | ~computable
    verdict = np.where(
        insufficient, "insufficient_data",
        np.where(sig & (effect < 0) & fell, "worse",
                 np.where(sig & (effect > 0) & not_poor, "recovered", "not_recovered")))
    return per.with_columns(
        pl.Series("effect", effect).fill_nan(None),
        pl.Series("p_value", p).fill_nan(None),
        pl.Series("control_delta", control_delta).fill_nan(None),
        pl.Series("verdict", verdict, dtype=pl.String),
    )


def _combine(per: pl.DataFrame) -> pl.DataFrame:
    """One row per order: the order's verdict and the deciding service's figures."""
    v = pl.col("verdict")
    order_v = (pl.when((v == "worse").any()).then(pl.lit("worse"))
               .when((v == "insufficient_data").any()).then(pl.lit("insufficient_data"))
               .when((v == "recovered").all()).then(pl.lit("recovered"))
               .otherwise(pl.lit("not_recovered")))
    per = per.with_columns(order_v.over("order_id").alias("_order_v"),
                           pl.col("service").replace_strict(SERVICE_CODE).alias("_code"))
    sort_key = (pl.when(pl.col("verdict").is_in(["worse", "not_recovered"])).then(pl.col("effect"))
                .when(pl.col("verdict") == "recovered").then(-pl.col("p_value"))
                .otherwise(pl.col("n1").cast(pl.Float64)))
    return (per.filter(pl.col("verdict") == pl.col("_order_v"))
            .with_columns(sort_key.alias("_key"))
            .sort(["order_id", "_key", "_code"], nulls_last=True)
            .group_by("order_id", maintain_order=True).first()
            .select("order_id", "service", "n0", "g0", "n1", "g1", "controls", "control_basis",
                    "G0", "N0", "G1", "N1", "effect", "p_value", "control_delta", "verdict"))


def _status_expr(fcfg: FollowupConfig) -> pl.Expr:
    v = pl.col("verdict")
    stale = pl.col("runs_open") + 1 >= fcfg.escalate_after_runs
    escalate = pl.lit("escalated")
    return (pl.when(v == "recovered").then(pl.lit("closed"))
            .when((v == "worse") & pl.lit(fcfg.escalate_on_worse)).then(escalate)
            .when(v.is_in(["worse", "not_recovered"]) & stale).then(escalate)
            .otherwise(pl.col("status")))


def _with_complaints(out: pl.DataFrame, frame: pl.DataFrame | None, name: str) -> pl.DataFrame:
    if frame is None:
        return out.with_columns(pl.lit(None, pl.Int64).alias(name))
    require_columns(frame, ("cell_id", "complaints"), name, FollowupError)
    per_cell = (frame.select(pl.col("cell_id").cast(pl.String),
                             pl.col("complaints").cast(pl.Int64).fill_null(0))
                .group_by("cell_id").agg(pl.col("complaints").sum().alias(name)))
    return out.join(per_cell, on="cell_id", how="left").with_columns(pl.col(name).fill_null(0))


# --------------------------------------------------------------------------------------------
# advance_orders: the state machine
# --------------------------------------------------------------------------------------------

def order_id(opened: date, cell_id: str) -> str:
    """The order id of a cell's order opened on ``opened``: ``WO-YYYYMMDD-<cell_id>``."""
    return f"WO-{opened:%Y%m%d}-{cell_id}"


def _previous_rows(previous: pl.DataFrame | None) -> list[dict[str, Any]]:
    if previous is None or previous.height == 0:
        return []
    required = [c for c in ORDER_STATE_COLUMNS if c not in (*_STATE_DEFAULTS, "order_status")]
    require_columns(previous, required, "previous order state", FollowupError)
    df = previous
    for c, default in _STATE_DEFAULTS.items():
        if c not in df.columns:
            df = df.with_columns(pl.lit(default, pl.Int64).alias(c))
    schema = df.schema
    dates = [c for c, t in ORDER_STATE_COLUMNS.items() if t == pl.Date()]
    df = df.select(
        *[_as_date(c, schema[c]) if c in dates else pl.col(c).cast(t)
          for c, t in ORDER_STATE_COLUMNS.items() if c != "order_status"])
    for c in ("order_id", "cell_id"):
        dup = df.filter(pl.col(c).is_duplicated())[c].unique().sort()
        if dup.len():
            raise FollowupError(f"previous order state: {c} {dup[0]} appears more than once")
    bad = df.filter(~pl.col("status").is_in([*_OPEN, "closed"]) | pl.col("status").is_null())
    if bad.height:
        raise FollowupError(f"previous order state: order {bad['order_id'][0]} has unknown "
                            f"status {bad['status'][0]!r}")
    return df.sort("order_id").to_dicts()


def advance_orders(  # noqa: PLR0917 - positional order is the brief's API
    previous: pl.DataFrame | None,
    followup: pl.DataFrame | None,
    poor_cells: pl.DataFrame,
    run_first_day: date,
    run_id: str,
    config: Config,
) -> pl.DataFrame:
    """The order state machine: every order's state after this run.

    Parameters
    ----------
    previous : polars.DataFrame or None
        Every order's state after the previous run (this function's earlier result; closed
        orders included), columns of :data:`ORDER_STATE_COLUMNS` (``poor_streak`` and
        ``times_reopened`` may be absent: 0; ``order_status`` is ignored). None = first run.
        One order per cell: a cell's order is reopened, never duplicated.
    followup : polars.DataFrame or None
        :func:`verify_orders`' result for this run (``order_id``, ``verdict``, ``status``); None
        or a missing order = not verified, the order keeps its status.
    poor_cells : polars.DataFrame
        This run's poor cells: ``cell_id``, ``primary_cause``, ``poor_services`` and
        ``last_day`` (date: the last day of this run's window; ``first_day`` optional, default
        ``run_first_day``). The window becomes the before window of orders (re)opened now.
    run_first_day : date
        First day of this run's window: the opening day of new and reopened orders.
    run_id : str
        This run's id, recorded in ``opened_run`` / ``closed_run``.
    config : kqi.config.Config
        ``config.followup.escalate_after_runs``.

    Returns
    -------
    polars.DataFrame
        The columns of :data:`ORDER_STATE_COLUMNS`, one row per order, sorted by ``order_id``:
        order_id, cell_id, status (open/escalated/closed), opened (first day of the run that
        opened or last reopened the order: its before window starts there), first_seen (first
        day of the run that first opened it; the id's date), runs_poor (runs the cell was poor
        under this order, in all), runs_open (runs of the current opening, this run included),
        cause_at_open, poor_services_at_open, opened_run, closed_run (null while open),
        last_verdict, before_first, before_last, poor_streak (consecutive runs poor, up to
        this one), times_reopened, and order_status for this run's poor cells (null for the
        others): ``new``, ``persisting``, ``reopened``, or ``escalated`` whenever the order is
        escalated (by follow-up, or by ``poor_streak >= escalate_after_runs``).
    """
    fcfg = config.followup
    check_followup(fcfg)
    require_columns(poor_cells, ("cell_id", "primary_cause", "poor_services"), "poor_cells",
                    FollowupError)
    if poor_cells.height and "last_day" not in poor_cells.columns:
        raise FollowupError("poor_cells: missing column last_day (last day of this run's window)")
    pc = poor_cells.select(
        pl.col("cell_id").cast(pl.String), pl.col("primary_cause").cast(pl.String),
        pl.col("poor_services").cast(pl.String),
        (_as_date("first_day", poor_cells.schema["first_day"]) if "first_day" in poor_cells.columns
         else pl.lit(run_first_day, pl.Date).alias("first_day")),
        (_as_date("last_day", poor_cells.schema["last_day"]) if "last_day" in poor_cells.columns
         else pl.lit(None, pl.Date).alias("last_day")),
    )
    dup = pc.filter(pl.col("cell_id").is_duplicated())["cell_id"].unique().sort()
    if dup.len():
        raise FollowupError(f"poor_cells: cell {dup[0]} appears more than once")
    poor = {r["cell_id"]: r for r in pc.iter_rows(named=True)}

    rows = _previous_rows(previous)
    verdicts: dict[str, tuple[str, str]] = {}
    if followup is not None and followup.height:
        require_columns(followup, ("order_id", "verdict", "status"), "followup", FollowupError)
        verdicts = {oid: (v, s) for oid, v, s in
                    followup.select("order_id", "verdict", "status").iter_rows()}
    known = {r["order_id"] for r in rows}
    stray = sorted(set(verdicts) - known)
    if stray:
        log.warning("follow-up names %d order(s) not in the previous state (e.g. %s); ignored",
                    len(stray), stray[0])

    def reopen_window(r: dict[str, Any], p: dict[str, Any]) -> None:
        r.update(opened=run_first_day, before_first=p["first_day"], before_last=p["last_day"],
                 cause_at_open=p["primary_cause"], poor_services_at_open=p["poor_services"],
                 runs_open=1, closed_run=None)

    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for prev in rows:
        r = dict(prev)
        r["order_status"] = None
        cell = r["cell_id"]
        p = poor.get(cell)
        seen.add(cell)
        was_open = r["status"] in _OPEN
        if was_open and r["order_id"] in verdicts:
            verdict, status = verdicts[r["order_id"]]
            r["last_verdict"] = verdict
            if status not in (*_OPEN, "closed"):
                raise FollowupError(f"followup: order {r['order_id']} has unknown status {status!r}")
            r["status"] = status
            if status == "closed":
                r["closed_run"] = run_id
        if p is None:
            r["poor_streak"] = 0
            if was_open and r["status"] in _OPEN:
                r["runs_open"] += 1
            out.append(r)
            continue
        r["runs_poor"] += 1
        if r["status"] in _OPEN:
            # still open after follow-up: the same problem persists
            r["runs_open"] += 1
            r["poor_streak"] += 1
            r["order_status"] = "persisting"
        else:
            # closed (earlier, or as recovered by this very run's follow-up) and poor again:
            # the same order comes back, with this run as its new before window
            reopen_window(r, p)
            r["status"] = "open"
            r["poor_streak"] = 1
            r["times_reopened"] += 1
            r["order_status"] = "reopened"
        if r["poor_streak"] >= fcfg.escalate_after_runs:
            r["status"] = "escalated"
        if r["status"] == "escalated":
            r["order_status"] = "escalated"
        out.append(r)

    for cell in sorted(set(poor) - seen):
        p = poor[cell]
        r = dict.fromkeys(ORDER_STATE_COLUMNS)
        r.update(order_id=order_id(run_first_day, cell), cell_id=cell, status="open",
                 first_seen=run_first_day, runs_poor=1, opened_run=run_id, poor_streak=1,
                 times_reopened=0, order_status="new")
        reopen_window(r, p)
        if fcfg.escalate_after_runs <= 1:
            r["status"] = r["order_status"] = "escalated"
        out.append(r)

    if any(r["status"] in _OPEN and r["before_last"] is None for r in out):
        raise FollowupError("poor_cells: last_day must not be null")
    df = pl.DataFrame(out, schema=ORDER_STATE_COLUMNS, orient="row") if out else \
        pl.DataFrame(schema=ORDER_STATE_COLUMNS)
    df = df.sort("order_id")
    st = dict(df.group_by("order_status").len().drop_nulls().iter_rows())
    log.info("orders after run %s: %d open, %d closed; poor cells: %s", run_id,
             df.filter(pl.col("status").is_in(_OPEN)).height,
             df.filter(pl.col("status") == "closed").height,
             ", ".join(f"{k} {st.get(k, 0)}" for k in ("new", "persisting", "reopened", "escalated")))
    return df


# --------------------------------------------------------------------------------------------
# programme_table: management's before/after table
# --------------------------------------------------------------------------------------------

def _experience(fu: pl.DataFrame, dim: str) -> list[dict[str, Any]]:
    """Per value of ``dim``: orders verified, verdict counts, pooled good-rate before -> after."""
    has = pl.col("tests_before") > 0
    has_after = pl.col("tests_after") > 0
    both = has & has_after
    g = (fu.group_by(dim).agg(
        pl.len().alias("orders"),
        *[(pl.col("verdict") == v).sum().alias(v) for v in VERDICTS],
        both.sum().alias("orders_with_tests"),
        pl.col("good_tests_before").filter(both).sum().alias("_g0"),
        pl.col("tests_before").filter(both).sum().alias("_n0"),
        pl.col("good_tests_after").filter(both).sum().alias("_g1"),
        pl.col("tests_after").filter(both).sum().alias("_n1"),
        pl.col("effect").mean().alias("mean_effect"),
    ).sort(dim))
    g = g.with_columns(
        pl.when(pl.col("_n0") > 0).then(pl.col("_g0") / pl.col("_n0")).round(DECIMALS)
        .alias("good_rate_before"),
        pl.when(pl.col("_n1") > 0).then(pl.col("_g1") / pl.col("_n1")).round(DECIMALS)
        .alias("good_rate_after"),
        pl.col("mean_effect").round(DECIMALS),
    ).drop("_g0", "_n0", "_g1", "_n1")
    return [{k: (int(v) if isinstance(v, int | np.integer) and not isinstance(v, bool) else v)
             for k, v in row.items()} for row in g.iter_rows(named=True)]


def programme_table(followup: pl.DataFrame | None, work_orders_state: pl.DataFrame,
                    cells: pl.DataFrame | None) -> dict[str, Any]:
    """Management's before/after table of the closed loop, as plain dicts for summary.json.

    Parameters
    ----------
    followup : polars.DataFrame or None
        :func:`verify_orders`' result for this run (None or empty on a first run).
    work_orders_state : polars.DataFrame
        :func:`advance_orders`' result for this run.
    cells : polars.DataFrame or None
        Cells table with ``cell_id`` and, when present, ``vendor`` and ``region``; cells missing
        from it (or a null value) count under ``"(unknown)"``.

    Returns
    -------
    dict
        ``orders``: this run's counts ``opened`` (new), ``reopened``, ``persisting`` (poor again,
        open, not escalated), ``escalated`` (open orders now escalated), ``verified`` (orders
        followed up), ``closed_recovered`` (closed by this run's follow-up), ``open`` and
        ``closed`` (all orders, after this run); ``verdicts``: {verdict: n} of this run's
        follow-up; ``all`` (when any order was followed up): the figures below over every
        order followed up; ``by_cause``, ``by_vendor``, ``by_region``: lists of {name, orders,
        the four verdict counts, orders_with_tests, good_rate_before, good_rate_after,
        mean_effect}, sorted by name. The good-rates are pooled from the deciding service's
        counts (sum of good tests / sum of tests, over orders with tests in both periods);
        mean_effect is the plain mean of the orders' effects (null when none).
    """
    st = work_orders_state
    require_columns(st, ("order_id", "cell_id", "status", "order_status"), "work_orders_state",
                    FollowupError)
    os_ = pl.col("order_status")
    fu = followup if followup is not None else pl.DataFrame(schema=FOLLOWUP_COLUMNS)
    require_columns(fu, ("order_id", "cell_id", "cause_at_open", "verdict", "status",
                         "tests_before", "good_tests_before", "tests_after", "good_tests_after",
                         "effect"), "followup", FollowupError)
    orders = {
        "opened": st.filter(os_ == "new").height,
        "reopened": st.filter(os_ == "reopened").height,
        "persisting": st.filter(os_ == "persisting").height,
        "escalated": st.filter(pl.col("status") == "escalated").height,
        "verified": fu.height,
        "closed_recovered": fu.filter(pl.col("status") == "closed").height,
        "open": st.filter(pl.col("status").is_in(_OPEN)).height,
        "closed": st.filter(pl.col("status") == "closed").height,
    }
    verdicts = {v: fu.filter(pl.col("verdict") == v).height for v in VERDICTS}
    for dim in ("vendor", "region"):
        if cells is not None and dim in cells.columns:
            lut = cells.select(pl.col("cell_id").cast(pl.String), pl.col(dim).cast(pl.String)
                               ).unique("cell_id", keep="first")
            fu = fu.drop(dim, strict=False).join(lut, on="cell_id", how="left")
        else:
            fu = fu.with_columns(pl.lit(None, pl.String).alias(dim))
        fu = fu.with_columns(pl.col(dim).fill_null("(unknown)"))
    fu = fu.with_columns(pl.col("cause_at_open").fill_null("unknown"))
    out: dict[str, Any] = {"orders": orders, "verdicts": verdicts}
    # the programme's headline: every order followed up, pooled the same way as each group
    overall = _experience(fu.with_columns(pl.lit("all").alias("_all")), "_all")
    if overall:
        out["all"] = {k: v for k, v in overall[0].items() if k != "_all"}
    for name, dim in (("by_cause", "cause_at_open"), ("by_vendor", "vendor"), ("by_region", "region")):
        out[name] = [{"name": r.pop(dim), **r} for r in _experience(fu, dim)]
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100.0 * x:.2f} %"


def programme_markdown(table: dict[str, Any]) -> str:
    """Render :func:`programme_table`'s dict as markdown for summary.md."""
    o = table["orders"]
    lines = ["## Closed loop", "",
             "| opened | reopened | persisting | escalated | verified | closed (recovered) "
             "| open | closed |", "|" + "---:|" * 8,
             "| " + " | ".join(str(o[k]) for k in ("opened", "reopened", "persisting", "escalated",
                                                  "verified", "closed_recovered", "open", "closed"))
             + " |", ""]
    overall = table.get("all")
    for key, title in (("all", "scope"), ("by_cause", "cause"), ("by_vendor", "vendor"),
                       ("by_region", "region")):
        if key == "all":
            rows = [{**overall, "name": "all followed up"}] if overall else []
        else:
            rows = table.get(key) or []
        if not rows:
            continue
        lines += [f"| {title} | orders | recovered | not recovered | worse | insufficient "
                  "| good-rate before | good-rate after |", "|---|" + "---:|" * 7]
        for r in rows:
            name = str(r["name"]).replace("|", "\\|")
            lines.append(f"| {name} | {r['orders']} | {r['recovered']} | {r['not_recovered']} | "
                         f"{r['worse']} | {r['insufficient_data']} | "
                         f"{_pct(r['good_rate_before'])} | {_pct(r['good_rate_after'])} |")
        lines.append("")
    return "\n".join(lines)
