"""The closed loop inside a run: what a run reads from the history and what it records there.

A run with a history (``--history F.duckdb`` or ``[history] path``):

1. opens the history and holds it for the whole run (a second run on the same file waits,
   then stops with one line);
2. after the app tests are read, knows its window (first and last day of the new tests) and
   asks the history whether it is a new run or a re-run of the newest one (an older window is
   refused before any output is written);
3. with ``[history] window_days``, adds the stored day counts of the trailing window's earlier
   days to the flag stage, so a weekly run reads one week of tests;
4. verifies every order open before it (:func:`kqi.followup.verify_orders`), advances the
   order state (:func:`kqi.followup.advance_orders`), gives the work orders their order ids and
   ranks persisting orders above new ones (:func:`kqi.workorders.apply_order_state`);
5. records the run (day counts, cell_kqi, diagnosis and evidence, complaints per cell,
   hotspots, orders, follow-up) in one transaction, once its outputs are written.

See docs/history.md and docs/followup.md.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from kqi import __version__
from kqi.config import Config
from kqi.history import History, RunRecord
from kqi.schema import SERVICE_CODE

if TYPE_CHECKING:
    from kqi.pipeline import RunResult

log = logging.getLogger(__name__)


@dataclass
class Window:
    """The days of a run's new tests (local calendar days, as the day counts)."""

    first_day: dt.date
    last_day: dt.date

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.first_day, dt.time(0, 0), tzinfo=dt.UTC)

    @property
    def end(self) -> dt.datetime:
        return dt.datetime.combine(self.last_day, dt.time(23, 59, 59), tzinfo=dt.UTC)

    @property
    def run_id(self) -> str:
        return History.run_id_for(self.start, self.end)

    @classmethod
    def of(cls, daily: pl.DataFrame) -> Window:
        """The window of per-day counts (``day`` column)."""
        if daily.height == 0:
            raise ValueError("no tests: a run without tests has no window")
        first: dt.date = daily["day"].min()  # type: ignore[assignment]
        last: dt.date = daily["day"].max()  # type: ignore[assignment]
        return cls(first, last)


@dataclass
class Loop:
    """One run's use of the history file."""

    history: History
    config: Config
    window: Window | None = None
    mode: str = ""
    previous_run: str | None = None
    #: this run's own (new) day counts, before any stored days are added
    new_daily: pl.DataFrame = field(default_factory=pl.DataFrame)
    #: linked complaints per cell of the previous run (cell_id, complaints), None without one
    previous_complaints: pl.DataFrame | None = None
    state: pl.DataFrame = field(default_factory=pl.DataFrame)
    followup: pl.DataFrame | None = None
    programme: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path, config: Config) -> Loop:
        return cls(History.open(path, lock_wait_s=config.history.lock_wait_s), config)

    def close(self) -> None:
        self.history.close()

    def start(self, new_daily: pl.DataFrame) -> Window:
        """Fix the run's window from its new tests and check it may be recorded."""
        self.window = Window.of(new_daily)
        self.new_daily = new_daily
        self.mode = self.history.plan(self.window.start, self.window.end)
        prev = self.history.newest_run(exclude=self.window.run_id)
        self.previous_run = None if prev is None else str(prev["run_id"])
        if self.previous_run is not None:
            self.previous_complaints = self.history.complaints(self.previous_run).drop("run_id")
        log.info("history %s: run %s (%s), previous run %s", self.history.path,
                 self.window.run_id, self.mode, self.previous_run)
        return self.window

    def trailing_counts(self, cells: pl.DataFrame) -> pl.DataFrame | None:
        """Stored day counts of the trailing window's days before this run's tests, as an
        aggregated flag batch (``cell_code, service_code, tests, good_tests, period``); None
        when no trailing window is configured or nothing is stored."""
        days = self.config.history.window_days
        if days <= 0 or self.window is None:
            return None
        first = self.window.last_day - dt.timedelta(days=days - 1)
        last = self.window.first_day - dt.timedelta(days=1)
        if first > last:
            return None
        stored = self.history.day_counts(first, last, before_run=self.window.run_id)
        if stored.height == 0:
            return None
        codes = cells.select(pl.col("cell_id").cast(pl.String), pl.col("cell_code").cast(pl.Int32))
        batch = stored.join(codes, on="cell_id", how="inner").select(
            "cell_code",
            pl.col("service").replace_strict(SERVICE_CODE, return_dtype=pl.Int8).alias("service_code"),
            pl.col("tests").cast(pl.Int64), pl.col("good_tests").cast(pl.Int64),
            pl.col("day").cast(pl.Date).alias("period"))
        log.info("trailing window: %d stored day counts from %s to %s", batch.height, first, last)
        return batch

    def follow_up(self, r: RunResult) -> None:
        """Verify the orders open before this run, advance the state, number the work orders."""
        from kqi.followup import advance_orders, programme_table, verify_orders
        from kqi.workorders import apply_order_state

        assert self.window is not None
        w = self.window
        previous = self.history.orders_state(before_run=w.run_id)
        open_orders = (previous.filter(pl.col("status").is_in(("open", "escalated")))
                       if previous.height else previous)
        self.followup = None
        if open_orders.height:
            first = open_orders["before_first"].min()
            stored = self.history.day_counts(first, w.first_day - dt.timedelta(days=1),  # type: ignore[arg-type]
                                             before_run=w.run_id).drop("run_id")
            counts = pl.concat([stored, self.new_daily.select(stored.columns)],
                               how="vertical_relaxed")
            fu = verify_orders(open_orders, counts, r.cells, r.isd, (w.first_day, w.last_day),
                               self.config, complaints_before=self.previous_complaints,
                               complaints_after=_complaints_per_cell(r))
            self.followup = _with_cell_info(fu, r.cells)
        poor = r.work_orders.select("cell_id", "primary_cause", "poor_services").with_columns(
            pl.lit(w.first_day).alias("first_day"), pl.lit(w.last_day).alias("last_day"))
        self.state = advance_orders(previous if previous.height else None, self.followup, poor,
                                    w.first_day, w.run_id, self.config)
        r.work_orders = apply_order_state(r.work_orders, self.state, self.config)
        r.followup = self.followup
        self.programme = programme_table(self.followup, self.state, r.cells)

    def trend(self, r: RunResult) -> pl.DataFrame:
        """Per order, run and service: the cell's good-rate in every recorded run before this one
        and in this run (for the workbook's chart and the map's sparklines)."""
        assert self.window is not None
        w = self.window
        orders = self.state.select("order_id", "cell_id")
        stored = self.history.cell_kqi_trend(orders).filter(pl.col("run_id") != w.run_id)
        now = orders.join(r.cell_kqi.select("cell_id", "service", "good_rate"), on="cell_id").select(
            "order_id", "cell_id", pl.lit(w.run_id).alias("run_id"),
            pl.lit(w.last_day).alias("last_day"), "service", "good_rate")
        return pl.concat([stored, now.select(stored.columns)]).sort(
            "order_id", "last_day", "service", maintain_order=True)

    def record(self, r: RunResult) -> None:
        """Store the run (replacing the newest run of the same window)."""
        assert self.window is not None
        w = self.window
        self.history.record_run(RunRecord(
            window_start=w.start, window_end=w.end, run_id=w.run_id,
            inputs={k: rep.sha256 for k, rep in r.reports.items()},
            config=self.config, kqi_version=__version__,
            day_counts=self.new_daily, cell_kqi=r.cell_kqi, diagnosis=r.diagnosis,
            complaints=_complaints_per_cell(r),
            hotspots=r.hotspots, orders=self.state, followup=self.followup,
        ))
        log.info("history %s: recorded run %s", self.history.path, w.run_id)


def _complaints_per_cell(r: RunResult) -> pl.DataFrame | None:
    """This run's linked network complaints per cell (``cell_id, complaints``)."""
    from kqi.workorders import linked_complaint_counts

    if r.links is None:
        return None
    return linked_complaint_counts(r.links, 0).select("cell_id", "complaints")


#: where a follow-up row's cell is, for the reader of followup.csv (after the contract's columns)
_CELL_INFO = ("cell_name", "site_id", "vendor", "region")


def _with_cell_info(followup: pl.DataFrame, cells: pl.DataFrame) -> pl.DataFrame:
    """``followup`` with the cell's name, site, vendor and region after the contract's columns."""
    from kqi.followup import CONTRACT_COLUMNS
    from kqi.frames import column_or_null

    info = cells.select(pl.col("cell_id").cast(pl.String),
                        *[column_or_null(cells.columns, c, pl.String) for c in _CELL_INFO])
    out = followup.join(info, on="cell_id", how="left")
    rest = [c for c in followup.columns if c not in CONTRACT_COLUMNS]
    return out.select([*CONTRACT_COLUMNS, *_CELL_INFO, *rest])
