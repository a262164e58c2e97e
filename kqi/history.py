"""The run history: every run of the closed loop in one embedded DuckDB file (docs/history.md).

A :class:`History` holds a read-write DuckDB connection for its whole lifetime, so DuckDB's own file
lock keeps a second kqi run out until the first finishes (two runs must not interleave: each one's
follow-ups are computed from the state the previous one left). ::

    with History.open("city.duckdb", lock_wait_s=cfg.history.lock_wait_s) as h:
        run_id = History.run_id_for(window_start, window_end)
        mode = h.plan(window_start, window_end)          # "new" or "replace", or HistoryError
        state = h.orders_state(before_run=run_id)        # what the previous run left
        ...
        h.record_run(RunRecord(window_start=..., window_end=..., orders=..., ...))

The schema is versioned: ``kqi_meta`` holds a format marker and ``schema_version``; opening an
older file applies the missing :data:`MIGRATIONS` in one transaction. A migration, once shipped,
is never edited (files in the field were made by it); a change is a new migration.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import duckdb
import polars as pl

from kqi import __version__
from kqi.errors import KqiError
from kqi.frames import column_or_null
from kqi.schema import SERVICES

log = logging.getLogger(__name__)

__all__ = [
    "FORMAT",
    "MIGRATIONS",
    "ORDER_STATES",
    "ORDER_STATUSES",
    "SCHEMA_VERSION",
    "VERDICTS",
    "History",
    "HistoryError",
    "RunRecord",
]

#: value of ``kqi_meta.format``: marks a DuckDB file as a kqi history
FORMAT = "kqi-history"
#: the schema this kqi writes (and the newest it reads)
SCHEMA_VERSION = 3

ORDER_STATES: tuple[str, ...] = ("open", "escalated", "closed")            # orders.status
ORDER_STATUSES: tuple[str, ...] = ("new", "persisting", "reopened", "escalated")  # order_status
VERDICTS: tuple[str, ...] = ("recovered", "not_recovered", "worse", "insufficient_data")

_POLL_S = 0.2   # how often a waiting run retries the lock


class HistoryError(KqiError):
    """The history file cannot be used (in use, not a history, too new, or a refused write)."""


# --------------------------------------------------------------------------------------------
# schema and migrations (frozen once shipped: files in the field were written by them)
# --------------------------------------------------------------------------------------------

def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


_SCHEMA_1 = f"""
CREATE TABLE kqi_meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    recorded_utc TIMESTAMPTZ NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    window_end TIMESTAMPTZ NOT NULL,
    first_day DATE NOT NULL,
    last_day DATE NOT NULL,
    inputs JSON,
    config JSON,
    kqi_version VARCHAR NOT NULL
);
CREATE TABLE day_counts (
    run_id VARCHAR NOT NULL,
    cell_id VARCHAR NOT NULL,
    service VARCHAR NOT NULL,
    day DATE NOT NULL,
    tests BIGINT NOT NULL,
    good_tests BIGINT NOT NULL,
    PRIMARY KEY (run_id, cell_id, service, day)
);
CREATE TABLE cell_kqi (
    run_id VARCHAR NOT NULL,
    cell_id VARCHAR NOT NULL,
    service VARCHAR NOT NULL,
    tests BIGINT NOT NULL,
    good_tests BIGINT NOT NULL,
    good_rate DOUBLE,
    poor BOOLEAN NOT NULL,
    PRIMARY KEY (run_id, cell_id, service)
);
CREATE TABLE diagnosis (
    run_id VARCHAR NOT NULL,
    cell_id VARCHAR NOT NULL,
    poor_services VARCHAR,
    primary_cause VARCHAR NOT NULL,
    secondary_causes VARCHAR,
    evidence VARCHAR,
    PRIMARY KEY (run_id, cell_id)
);
CREATE TABLE complaints (
    run_id VARCHAR NOT NULL,
    cell_id VARCHAR NOT NULL,
    complaints BIGINT NOT NULL,
    PRIMARY KEY (run_id, cell_id)
);
CREATE TABLE hotspots (
    run_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    rank INTEGER NOT NULL,
    key VARCHAR,
    measures JSON,
    PRIMARY KEY (run_id, kind, rank)
);
CREATE TABLE orders (
    run_id VARCHAR NOT NULL,
    order_id VARCHAR NOT NULL,
    cell_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN {_in(ORDER_STATES)}),
    order_status VARCHAR CHECK (order_status IN {_in(ORDER_STATUSES)}),
    opened DATE,
    first_seen DATE,
    runs_poor INTEGER,
    runs_open INTEGER,
    cause_at_open VARCHAR,
    poor_services_at_open VARCHAR,
    opened_run VARCHAR,
    closed_run VARCHAR,
    last_verdict VARCHAR,
    PRIMARY KEY (run_id, order_id)
);
CREATE TABLE followup (
    run_id VARCHAR NOT NULL,
    order_id VARCHAR NOT NULL,
    cell_id VARCHAR NOT NULL,
    opened DATE,
    cause_at_open VARCHAR,
    good_rate_before DOUBLE,
    good_rate_after DOUBLE,
    tests_after BIGINT,
    control_delta DOUBLE,
    effect DOUBLE,
    p_value DOUBLE,
    verdict VARCHAR CHECK (verdict IN {_in(VERDICTS)}),
    status VARCHAR CHECK (status IN {_in(ORDER_STATES)}),
    PRIMARY KEY (run_id, order_id)
);
"""

# schema 2: numeric evidence in long format (new evidence columns need no migration), and the
# follow-up frame's extra columns kept as JSON (the statistics may grow columns of their own)
_SCHEMA_2 = """
CREATE TABLE evidence_values (
    run_id VARCHAR NOT NULL,
    cell_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    value DOUBLE,
    PRIMARY KEY (run_id, cell_id, name)
);
ALTER TABLE followup ADD COLUMN extra JSON;
"""

_SCHEMA_3 = """
ALTER TABLE orders ADD COLUMN before_first DATE;
ALTER TABLE orders ADD COLUMN before_last DATE;
ALTER TABLE orders ADD COLUMN poor_streak INTEGER;
ALTER TABLE orders ADD COLUMN times_reopened INTEGER;
"""


def _sql_steps(script: str) -> Callable[[duckdb.DuckDBPyConnection], None]:
    def step(con: duckdb.DuckDBPyConnection) -> None:
        for stmt in script.split(";"):
            if stmt.strip():
                con.execute(stmt)
    return step


#: (schema version reached, what changed, step); applied in order, each file from its version on
MIGRATIONS: tuple[tuple[int, str, Callable[[duckdb.DuckDBPyConnection], None]], ...] = (
    (1, "initial schema", _sql_steps(_SCHEMA_1)),
    (2, "evidence_values table; followup.extra (JSON of extra columns)", _sql_steps(_SCHEMA_2)),
    (3, "orders: before_first, before_last (the window verified against), poor_streak, "
        "times_reopened", _sql_steps(_SCHEMA_3)),
)

#: tables holding one run's rows (all keyed by run_id), in the order they are written
_RUN_TABLES: tuple[str, ...] = ("day_counts", "cell_kqi", "diagnosis", "evidence_values",
                                "complaints", "hotspots", "orders", "followup")

# the columns each RunRecord frame is cast to (current schema); True = the frame must have it
_COLUMNS: dict[str, tuple[tuple[str, Any, bool], ...]] = {
    "day_counts": (("cell_id", pl.String, True), ("service", pl.String, True),
                   ("day", pl.Date, True), ("tests", pl.Int64, True),
                   ("good_tests", pl.Int64, True)),
    "cell_kqi": (("cell_id", pl.String, True), ("service", pl.String, True),
                 ("tests", pl.Int64, True), ("good_tests", pl.Int64, True),
                 ("good_rate", pl.Float64, True), ("poor", pl.Boolean, True)),
    "diagnosis": (("cell_id", pl.String, True), ("poor_services", pl.String, False),
                  ("primary_cause", pl.String, True), ("secondary_causes", pl.String, False),
                  ("evidence", pl.String, False)),
    "evidence_values": (("cell_id", pl.String, True), ("name", pl.String, True),
                        ("value", pl.Float64, True)),
    "complaints": (("cell_id", pl.String, True), ("complaints", pl.Int64, True)),
    "hotspots": (("kind", pl.String, True), ("rank", pl.Int32, True), ("key", pl.String, False),
                 ("measures", pl.String, False)),
    "orders": (("order_id", pl.String, True), ("cell_id", pl.String, True),
               ("status", pl.String, True), ("order_status", pl.String, False),
               ("opened", pl.Date, False), ("first_seen", pl.Date, False),
               ("runs_poor", pl.Int32, False), ("runs_open", pl.Int32, False),
               ("cause_at_open", pl.String, False), ("poor_services_at_open", pl.String, False),
               ("opened_run", pl.String, False), ("closed_run", pl.String, False),
               ("last_verdict", pl.String, False), ("before_first", pl.Date, False),
               ("before_last", pl.Date, False), ("poor_streak", pl.Int32, False),
               ("times_reopened", pl.Int32, False)),
    "followup": (("order_id", pl.String, True), ("cell_id", pl.String, True),
                 ("opened", pl.Date, False), ("cause_at_open", pl.String, False),
                 ("good_rate_before", pl.Float64, False), ("good_rate_after", pl.Float64, False),
                 ("tests_after", pl.Int64, False), ("control_delta", pl.Float64, False),
                 ("effect", pl.Float64, False), ("p_value", pl.Float64, False),
                 ("verdict", pl.String, False), ("status", pl.String, False)),
}

#: read order of each table's rows within a run
_ORDER_BY: dict[str, str] = {
    "day_counts": "day, cell_id, service", "cell_kqi": "cell_id, service", "diagnosis": "cell_id",
    "evidence_values": "cell_id, name", "complaints": "cell_id", "hotspots": "kind, rank",
    "orders": "order_id", "followup": "order_id",
}

# diagnosis columns that are text or identifiers, not numeric evidence
_NOT_EVIDENCE = {"cell_id", "cell_code", "cluster_id", "area_id"}


# --------------------------------------------------------------------------------------------
# the record of one run
# --------------------------------------------------------------------------------------------

@dataclass
class RunRecord:
    """Everything one run stores; :meth:`History.record_run` writes it in one transaction.

    Parameters
    ----------
    window_start, window_end : datetime.datetime
        First and last test time of the run's *new* tests (naive times are read as UTC).
    run_id : str, optional
        Defaults to :meth:`History.run_id_for` of the window; a different value is refused.
    inputs : Mapping[str, str]
        Feed name -> sha256 of its file(s).
    config : Mapping or kqi.config.Config
        The run's configuration (a ``Config`` is stored through ``to_dict()``).
    kqi_version : str
        The kqi that made the run (default: this one).
    day_counts, cell_kqi, diagnosis, evidence_values, complaints, hotspots, orders, followup :
        polars.DataFrame or None
        The run's tables (columns in docs/history.md); ``None`` or empty stores no rows.
        ``evidence_values`` defaults to the numeric columns of ``diagnosis`` in long format.
        ``hotspots`` may carry any measure columns (stored as JSON); ``followup`` any extra
        columns besides the contract's (stored as JSON).
    recorded_utc : datetime.datetime, optional
        When the run was recorded (default: now).
    """

    window_start: dt.datetime
    window_end: dt.datetime
    run_id: str = ""
    inputs: Mapping[str, str] | None = None
    config: Any = None
    kqi_version: str = __version__
    day_counts: pl.DataFrame | None = None
    cell_kqi: pl.DataFrame | None = None
    diagnosis: pl.DataFrame | None = None
    evidence_values: pl.DataFrame | None = None
    complaints: pl.DataFrame | None = None
    hotspots: pl.DataFrame | None = None
    orders: pl.DataFrame | None = None
    followup: pl.DataFrame | None = None
    recorded_utc: dt.datetime | None = None

    def __post_init__(self) -> None:
        self.window_start = _utc(self.window_start)
        self.window_end = _utc(self.window_end)
        if not self.run_id:
            self.run_id = History.run_id_for(self.window_start, self.window_end)


def _utc(t: dt.datetime) -> dt.datetime:
    """Aware UTC datetime; naive values are taken as UTC (kqi's timestamps are UTC after ingest)."""
    if t.tzinfo is None:
        return t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC)


def _day(t: dt.date | dt.datetime) -> dt.date:
    return _utc(t).date() if isinstance(t, dt.datetime) else t


def _json(value: Any) -> str:
    # sorted keys: the same inputs give the same stored text
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


# --------------------------------------------------------------------------------------------
# opening: lock, format check, migrations
# --------------------------------------------------------------------------------------------

# DuckDB shares one database instance between connections of a process, so its file lock does
# not keep a second History of this process out; this set does
_OPEN_PATHS: set[str] = set()
_OPEN_GUARD = threading.Lock()


def _is_lock_error(exc: duckdb.Error) -> bool:
    return "lock" in str(exc).lower()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _initialise(con: duckdb.DuckDBPyConnection, *, schema_version: int = SCHEMA_VERSION) -> None:
    """Create the kqi tables of ``schema_version`` in an empty database (one transaction)."""
    con.begin()
    try:
        for version, _what, step in MIGRATIONS:
            if version <= schema_version:
                step(con)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        con.executemany("INSERT INTO kqi_meta VALUES (?, ?)", [
            ["format", FORMAT], ["schema_version", str(schema_version)],
            ["created_by_version", __version__], ["created_utc", now],
        ])
        con.commit()
    except BaseException:
        con.rollback()
        raise


class History:
    """An open run history (a context manager; the connection is held until :meth:`close`).

    Use :meth:`History.open`, not the constructor.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, key: str) -> None:
        self._con: duckdb.DuckDBPyConnection | None = con
        self.path = path
        self._key = key

    # ---------------------------------------------------------------- open / close
    @classmethod
    def open(cls, path: str | Path, *, lock_wait_s: float = 30.0, create: bool = True) -> History:
        """Open (or create) a history file for reading and writing.

        Parameters
        ----------
        path : str or pathlib.Path
            The DuckDB file.
        lock_wait_s : float
            While another process (or another :class:`History` of this one) holds the file,
            retry for this many seconds, then raise :class:`HistoryError`.
        create : bool
            Create the file when it does not exist; otherwise a missing file is an error.

        Returns
        -------
        History
            Holding the file until :meth:`close` (or the end of a ``with`` block).

        Raises
        ------
        HistoryError
            The file is in use, missing (``create=False``), not a kqi history, or written by a
            newer kqi.
        """
        p = Path(path)
        if p.is_dir():
            raise HistoryError(f"{p}: is a folder, not a kqi history file")
        existed = p.exists()
        if not existed and not create:
            raise HistoryError(f"{p}: no such history file")
        if not existed:
            p.parent.mkdir(parents=True, exist_ok=True)
        key = str(p.resolve())
        con = cls._connect(p, key, lock_wait_s)
        try:
            con.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ reads back in UTC, whatever the host
            cls._check_and_migrate(con, p, create=create)
        except BaseException:
            con.close()
            with _OPEN_GUARD:
                _OPEN_PATHS.discard(key)
            raise
        return cls(con, p, key)

    @staticmethod
    def _connect(p: Path, key: str, lock_wait_s: float) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + max(0.0, lock_wait_s)
        waited = False
        while True:
            holder = ""
            with _OPEN_GUARD:
                if key in _OPEN_PATHS:
                    holder = f"held by this process, PID {os.getpid()}"
                else:
                    try:
                        con = duckdb.connect(str(p))
                    except duckdb.Error as exc:
                        if not _is_lock_error(exc):
                            if "not a valid duckdb database" in str(exc).lower():
                                raise HistoryError(f"{p}: not a kqi history file") from None
                            raise HistoryError(f"{p}: cannot open the history: "
                                               f"{_first_line(exc)}") from None
                        m = re.search(r"PID (\d+)", str(exc))
                        holder = f"held by PID {m.group(1)}" if m else "locked"
                    else:
                        _OPEN_PATHS.add(key)
                        if waited:
                            log.info("%s: the other run finished; continuing", p)
                        return con
            if time.monotonic() >= deadline:
                raise HistoryError(f"{p}: history is in use by another kqi run ({holder}); "
                                   "try again when it finishes")
            if not waited:
                log.warning("%s: history is in use by another kqi run (%s); waiting up to %.0f s",
                            p, holder, lock_wait_s)
                waited = True
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))

    @staticmethod
    def _check_and_migrate(con: duckdb.DuckDBPyConnection, p: Path, *, create: bool) -> None:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}
        if "kqi_meta" not in tables:
            # a database with no tables at all is an empty file (a new one, or a creation that
            # was rolled back); one with tables of its own is somebody else's data
            if tables or not create:
                raise HistoryError(f"{p}: not a kqi history file")
            _initialise(con)
            log.info("%s: new history (schema %d)", p, SCHEMA_VERSION)
            return
        meta = dict(con.execute("SELECT key, value FROM kqi_meta").fetchall())
        try:
            version = int(meta.get("schema_version", ""))
        except ValueError:
            version = -1
        if meta.get("format") != FORMAT or version < 1:
            raise HistoryError(f"{p}: not a kqi history file")
        if version > SCHEMA_VERSION:
            raise HistoryError(f"{p}: written by a newer kqi (schema {version}, this kqi reads up "
                               f"to {SCHEMA_VERSION}); upgrade kqi to use it")
        if version == SCHEMA_VERSION:
            return
        con.begin()
        try:
            for to_version, what, step in MIGRATIONS:
                if to_version > version:
                    step(con)
                    log.info("%s: migrated to schema %d (%s)", p, to_version, what)
            con.execute("UPDATE kqi_meta SET value = ? WHERE key = 'schema_version'",
                        [str(SCHEMA_VERSION)])
            con.execute("INSERT OR REPLACE INTO kqi_meta VALUES ('migrated_by_version', ?)",
                        [__version__])
            con.commit()
        except duckdb.Error as exc:
            con.rollback()
            raise HistoryError(f"{p}: migration from schema {version} failed: "
                               f"{_first_line(exc)}") from None

    def close(self) -> None:
        """Release the file (idempotent)."""
        if self._con is not None:
            self._con.close()
            self._con = None
            with _OPEN_GUARD:
                _OPEN_PATHS.discard(self._key)

    def __enter__(self) -> History:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection (for ad-hoc SQL; kqi's own code uses the methods)."""
        if self._con is None:
            raise HistoryError(f"{self.path}: history is closed")
        return self._con

    @property
    def schema_version(self) -> int:
        """The file's schema version (always :data:`SCHEMA_VERSION` once open)."""
        row = self._one("SELECT value FROM kqi_meta WHERE key = 'schema_version'")
        return int(row[0]) if row else 0

    def _first(self, sql: str, params: list[Any] | None = None) -> Any:
        """The first value of a query that always returns a row."""
        row = self._one(sql, params)
        if row is None:  # pragma: no cover - the queries above always give a row
            raise HistoryError(f"{self.path}: the history is inconsistent ({sql.split(maxsplit=1)[0]} gave no row)")
        return row[0]

    def _one(self, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of a query (DuckDB 2 refuses new work while a result is half read)."""
        rows = self.con.execute(sql, params or []).fetchall()
        return rows[0] if rows else None

    def _q(self, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
        df = self.con.sql(sql, params=params).pl()
        # DuckDB names the zone Etc/UTC; kqi's frames say UTC
        return df.with_columns(pl.col(c).dt.convert_time_zone("UTC") for c, t in df.schema.items()
                               if isinstance(t, pl.Datetime) and t.time_zone is not None)

    # ---------------------------------------------------------------- the run-order policy
    @staticmethod
    def run_id_for(window_start: dt.date | dt.datetime, window_end: dt.date | dt.datetime) -> str:
        """The run id of a window: its first and last UTC day, ``"20261102-20261108"``.

        Parameters
        ----------
        window_start, window_end : datetime.date or datetime.datetime
            First and last test time (or day) of the run's new tests.

        Returns
        -------
        str
        """
        return f"{_day(window_start):%Y%m%d}-{_day(window_end):%Y%m%d}"

    def plan(self, window_start: dt.datetime, window_end: dt.datetime) -> Literal["new", "replace"]:
        """What recording a run of this window would do.

        Parameters
        ----------
        window_start, window_end : datetime.datetime
            First and last test time of the run's new tests.

        Returns
        -------
        {"new", "replace"}
            ``"replace"`` when the window's days equal the newest recorded run's (its rows are
            rewritten), ``"new"`` when the window ends after the newest run's end.

        Raises
        ------
        HistoryError
            The window ends at or before the newest run's end, or it is an older run's window:
            runs are recorded in time order (docs/history.md, "Run order").
        """
        start, end = _utc(window_start), _utc(window_end)
        run_id = self.run_id_for(start, end)
        newest = self.newest_run()
        if newest is None or run_id == newest["run_id"]:
            return "new" if newest is None else "replace"
        known = self._one("SELECT 1 FROM runs WHERE run_id = ?", [run_id])
        if known or end <= newest["window_end"]:
            raise HistoryError(
                f"{self.path}: this run's window {start.date()}..{end.date()} is older than the "
                f"newest recorded run {newest['first_day']}..{newest['last_day']}; kqi records "
                "runs in time order (docs/history.md)")
        return "new"

    # ---------------------------------------------------------------- writing
    def record_run(self, record: RunRecord) -> None:
        """Store one run in one transaction (replacing the newest run of the same window).

        Parameters
        ----------
        record : RunRecord
            The run's window, inputs, config and tables.

        Raises
        ------
        HistoryError
            Refused by :meth:`plan`, a run id that does not match the window, a frame without
            a required column, or rows that break a key (e.g. two rows for one cell x service).
        """
        expected = self.run_id_for(record.window_start, record.window_end)
        if record.run_id != expected:
            raise HistoryError(f"{self.path}: run id {record.run_id!r} does not match its window "
                               f"(expected {expected!r})")
        frames = {t: self._conform(t, f) for t, f in self._frames(record).items()}
        con = self.con
        views: dict[str, str] = {}
        for table in _RUN_TABLES:
            df = frames.get(table)
            if df is not None and df.height:
                views[table] = f"_kqi_in_{table}"
                con.register(views[table],
                             df.with_columns(pl.lit(record.run_id).alias("run_id")).to_arrow())
        con.begin()
        try:
            mode = self.plan(record.window_start, record.window_end)
            run_id = record.run_id
            if mode == "replace":
                seq = self._first("SELECT seq FROM runs WHERE run_id = ?", [run_id])
                for table in (*_RUN_TABLES, "runs"):
                    con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            else:
                seq = self._first("SELECT coalesce(max(seq), 0) + 1 FROM runs")
            cfg = record.config.to_dict() if hasattr(record.config, "to_dict") else record.config
            con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                run_id, seq, _utc(record.recorded_utc or dt.datetime.now(dt.UTC)),
                record.window_start, record.window_end, record.window_start.date(),
                record.window_end.date(), _json(dict(record.inputs or {})),
                _json(cfg if cfg is not None else {}), record.kqi_version,
            ])
            for table, view in views.items():
                try:
                    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {view}")
                except duckdb.Error as exc:
                    raise HistoryError(f"{self.path}: run {run_id}: cannot store {table}: "
                                       f"{_first_line(exc)}") from None
            con.commit()
        except BaseException:
            con.rollback()
            raise
        finally:
            # outside the transaction: an aborted one refuses even this
            for view in views.values():
                con.unregister(view)
        log.info("%s: %s run %s (seq %d)", self.path,
                 "replaced" if mode == "replace" else "recorded", run_id, seq)

    @staticmethod
    def _frames(record: RunRecord) -> dict[str, pl.DataFrame | None]:
        frames: dict[str, pl.DataFrame | None] = {t: getattr(record, t) for t in _RUN_TABLES}
        diag = record.diagnosis
        if frames["evidence_values"] is None and diag is not None and diag.height:
            frames["evidence_values"] = _evidence_long(diag)
        if frames["hotspots"] is not None:
            frames["hotspots"] = _hotspots_rows(frames["hotspots"])
        if frames["followup"] is not None:
            frames["followup"] = _followup_rows(frames["followup"])
        return frames

    def _conform(self, table: str, df: pl.DataFrame | None) -> pl.DataFrame | None:
        """The frame's columns of ``table``, cast to the stored types; missing optional = null."""
        if df is None:
            return None
        cols = _COLUMNS[table]
        missing = [c for c, _t, req in cols if req and c not in df.columns]
        if missing:
            raise HistoryError(f"{self.path}: {table} lacks column(s) {', '.join(missing)}")
        extra = ["extra"] if table == "followup" else []
        try:
            return df.select(
                *[column_or_null(df.columns, c, t) for c, t, _req in cols],
                *[pl.col(c) for c in extra if c in df.columns])
        except pl.exceptions.PolarsError as exc:
            raise HistoryError(f"{self.path}: {table}: {_first_line(exc)}") from None

    # ---------------------------------------------------------------- reading
    def runs(self) -> pl.DataFrame:
        """Every recorded run in window order.

        Returns
        -------
        polars.DataFrame
            ``run_id, seq, first_day, last_day, window_start, window_end, recorded_utc,
            kqi_version, cells`` (cells with KQI rows), ``poor_cells``, ``open_orders`` (status
            open or escalated after the run), ``followups``, ``inputs``, ``config`` (JSON text).
        """
        return self._q("""
            SELECT r.run_id, r.seq, r.first_day, r.last_day, r.window_start, r.window_end,
                   r.recorded_utc, r.kqi_version,
                   (SELECT count(DISTINCT cell_id) FROM cell_kqi k WHERE k.run_id = r.run_id) AS cells,
                   (SELECT count(DISTINCT cell_id) FROM cell_kqi k
                     WHERE k.run_id = r.run_id AND k.poor) AS poor_cells,
                   (SELECT count(*) FROM orders o
                     WHERE o.run_id = r.run_id AND o.status <> 'closed') AS open_orders,
                   (SELECT count(*) FROM followup f WHERE f.run_id = r.run_id) AS followups,
                   CAST(r.inputs AS VARCHAR) AS inputs, CAST(r.config AS VARCHAR) AS config
            FROM runs r ORDER BY r.seq""")

    def newest_run(self, exclude: str | None = None) -> dict[str, Any] | None:
        """The newest recorded run, other than ``exclude`` (the run being replaced).

        Parameters
        ----------
        exclude : str, optional
            A run id to pass over.

        Returns
        -------
        dict or None
            The ``runs`` row (``inputs`` and ``config`` parsed from JSON); None when there is none.
        """
        df = self._q("SELECT * FROM runs WHERE run_id IS DISTINCT FROM ? ORDER BY seq DESC LIMIT 1",
                     [exclude])
        if df.height == 0:
            return None
        row = df.row(0, named=True)
        row["inputs"] = json.loads(row["inputs"]) if row["inputs"] else {}
        row["config"] = json.loads(row["config"]) if row["config"] else {}
        return row

    def _seq(self, run_id: str | None) -> int | None:
        """The seq of a recorded run; None for None or a run not recorded (yet)."""
        if run_id is None:
            return None
        row = self._one("SELECT seq FROM runs WHERE run_id = ?", [run_id])
        return None if row is None else int(row[0])

    def previous_run_id(self, run_id: str) -> str | None:
        """The run recorded before ``run_id``.

        Parameters
        ----------
        run_id : str
            A recorded run, or a run about to be recorded (then the newest recorded run is the
            one before it).

        Returns
        -------
        str or None
            None when ``run_id`` is the first run.
        """
        seq = self._seq(run_id)
        if seq is None:
            newest = self.newest_run()
            return None if newest is None else str(newest["run_id"])
        row = self._one("SELECT run_id FROM runs WHERE seq < ? ORDER BY seq DESC LIMIT 1", [seq])
        return None if row is None else str(row[0])

    def _before(self, before_run: str | None) -> tuple[str, list[Any]]:
        """SQL condition on ``r.seq`` (runs aliased r) selecting the runs before ``before_run``."""
        seq = self._seq(before_run)
        return ("TRUE", []) if seq is None else ("r.seq < ?", [seq])

    def day_counts(self, first_day: dt.date, last_day: dt.date, *,
                   before_run: str | None = None) -> pl.DataFrame:
        """Per cell x service x day test counts for ``first_day..last_day`` across runs.

        When two runs hold the same day, the newer run wins the whole day (its counts replace
        the older run's for every cell of that day, docs/history.md).

        Parameters
        ----------
        first_day, last_day : datetime.date
            Inclusive day range (UTC days).
        before_run : str, optional
            Only runs recorded before this one (a run id not recorded yet: all runs).

        Returns
        -------
        polars.DataFrame
            ``cell_id, service, day, tests, good_tests, run_id`` (the run the day came from),
            sorted by day, cell_id, service.
        """
        cond, params = self._before(before_run)
        return self._q(f"""
            WITH src AS (
                SELECT d.*, r.seq FROM day_counts d JOIN runs r USING (run_id)
                WHERE d.day BETWEEN ? AND ? AND {cond}
            ), winner AS (SELECT day, max(seq) AS seq FROM src GROUP BY day)
            SELECT s.cell_id, s.service, s.day, s.tests, s.good_tests, s.run_id
            FROM src s JOIN winner w ON s.day = w.day AND s.seq = w.seq
            ORDER BY s.day, s.cell_id, s.service""", [_day(first_day), _day(last_day), *params])

    def orders_state(self, before_run: str | None = None) -> pl.DataFrame:
        """Each order's state after the newest run before ``before_run``.

        Parameters
        ----------
        before_run : str, optional
            The run about to be computed (or replaced); None = after the newest run.

        Returns
        -------
        polars.DataFrame
            The ``orders`` columns (``run_id`` = the run the state is from), one row per
            order_id, sorted by order_id.
        """
        cond, params = self._before(before_run)
        return self._q(f"""
            SELECT o.* FROM orders o JOIN runs r USING (run_id) WHERE {cond}
            QUALIFY row_number() OVER (PARTITION BY o.order_id ORDER BY r.seq DESC) = 1
            ORDER BY o.order_id""", params)

    def orders(self, status: str | None = None) -> pl.DataFrame:
        """Every order's current state (its row in the newest run that lists it).

        Parameters
        ----------
        status : {"open", "escalated", "closed"}, optional
            Only orders in this state.

        Returns
        -------
        polars.DataFrame
            As :meth:`orders_state`.
        """
        df = self.orders_state()
        if status is None:
            return df
        if status not in ORDER_STATES:
            raise HistoryError(f"unknown order status {status!r} (one of {', '.join(ORDER_STATES)})")
        return df.filter(pl.col("status") == status)

    def _run_rows(self, table: str, run_id: str) -> pl.DataFrame:
        return self._q(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY {_ORDER_BY[table]}",
                       [run_id])

    def cell_kqi(self, run_id: str) -> pl.DataFrame:
        """The run's per cell x service result: ``run_id, cell_id, service, tests, good_tests,
        good_rate, poor``, sorted by cell_id, service."""
        return self._run_rows("cell_kqi", run_id)

    def cell_kqi_trend(self, orders: pl.DataFrame) -> pl.DataFrame:
        """The good-rate of each order's cell in every recorded run.

        Parameters
        ----------
        orders : polars.DataFrame
            ``order_id, cell_id``.

        Returns
        -------
        polars.DataFrame
            ``order_id, cell_id, run_id, last_day, service, good_rate``, one row per order x
            run x service with tests, sorted by order_id, run order, service.
        """
        if orders.height == 0:
            return pl.DataFrame(schema={"order_id": pl.String, "cell_id": pl.String,
                                        "run_id": pl.String, "last_day": pl.Date,
                                        "service": pl.String, "good_rate": pl.Float64})
        con = self.con
        con.register("_kqi_trend_orders", orders.select("order_id", "cell_id").to_arrow())
        try:
            return con.sql("""
                SELECT o.order_id, k.cell_id, k.run_id, r.last_day, k.service, k.good_rate
                FROM cell_kqi k JOIN runs r USING (run_id)
                JOIN _kqi_trend_orders o ON o.cell_id = k.cell_id
                ORDER BY o.order_id, r.seq, k.service""").pl()
        finally:
            con.unregister("_kqi_trend_orders")

    def diagnosis(self, run_id: str) -> pl.DataFrame:
        """The run's diagnoses: ``run_id, cell_id, poor_services, primary_cause,
        secondary_causes, evidence``, sorted by cell_id."""
        return self._run_rows("diagnosis", run_id)

    def evidence_values(self, run_id: str) -> pl.DataFrame:
        """The run's numeric evidence, long format: ``run_id, cell_id, name, value``."""
        return self._run_rows("evidence_values", run_id)

    def day_counts_of(self, run_id: str) -> pl.DataFrame:
        """The day counts one run stored (no newest-wins merge): see :meth:`day_counts`."""
        return self._run_rows("day_counts", run_id)

    def complaints(self, run_id: str) -> pl.DataFrame:
        """The run's linked network complaints per cell: ``run_id, cell_id, complaints``."""
        return self._run_rows("complaints", run_id)

    def hotspots(self, run_id: str) -> pl.DataFrame:
        """The run's hotspots: ``run_id, kind, rank, key`` and the stored measures as columns."""
        return _expand_json(self._run_rows("hotspots", run_id), "measures")

    def order_rows(self, run_id: str) -> pl.DataFrame:
        """The ``orders`` rows one run wrote (the state of every order after it)."""
        return self._run_rows("orders", run_id)

    def followup(self, run_id: str | None = None) -> pl.DataFrame:
        """Follow-up verdicts, with any extra columns the frame had.

        Parameters
        ----------
        run_id : str, optional
            One run; None = every run (sorted by run order, then order_id).

        Returns
        -------
        polars.DataFrame
            ``run_id`` and the contract's followup.csv columns, then the extra columns.
        """
        where, params = ("WHERE f.run_id = ?", [run_id]) if run_id is not None else ("", [])
        df = self._q(f"SELECT f.* FROM followup f JOIN runs r USING (run_id) {where} "
                     "ORDER BY r.seq, f.order_id", params)
        return _expand_json(df, "extra")

    def cell_dossier(self, cell_id: str) -> dict[str, pl.DataFrame]:
        """Everything the history holds on one cell, run by run.

        Parameters
        ----------
        cell_id : str

        Returns
        -------
        dict of str to polars.DataFrame
            ``kqi`` (good-rates and poor flags per run x service), ``diagnosis``, ``evidence``
            (numeric evidence, long), ``complaints``, ``orders``, ``followup``, and
            ``timeline``: one row per run that mentions the cell (``run_id, first_day,
            last_day, tests, good_rate_<service>...``, ``poor_services, primary_cause,
            complaints, order_id, status, order_status, verdict``). All in run order.
        """
        def rows(table: str, cols: str, order: str) -> pl.DataFrame:
            return self._q(f"SELECT r.seq, r.first_day, r.last_day, {cols} FROM {table} t "
                           "JOIN runs r USING (run_id) WHERE t.cell_id = ? "
                           f"ORDER BY r.seq{', ' + order if order else ''}", [cell_id])

        out = {
            "kqi": rows("cell_kqi", "t.run_id, t.service, t.tests, t.good_tests, t.good_rate, t.poor",
                        "t.service"),
            "diagnosis": rows("diagnosis", "t.run_id, t.poor_services, t.primary_cause, "
                              "t.secondary_causes, t.evidence", ""),
            "evidence": rows("evidence_values", "t.run_id, t.name, t.value", "t.name"),
            "complaints": rows("complaints", "t.run_id, t.complaints", ""),
            "orders": rows("orders", "t.* EXCLUDE (cell_id)", "t.order_id"),
            "followup": _expand_json(rows("followup", "t.* EXCLUDE (cell_id)", "t.order_id"),
                                     "extra"),
        }
        out["timeline"] = _timeline(out)
        return out


# --------------------------------------------------------------------------------------------
# frame shaping
# --------------------------------------------------------------------------------------------

def _evidence_long(diag: pl.DataFrame) -> pl.DataFrame:
    """Numeric diagnosis columns as ``cell_id, name, value`` rows (nulls left out)."""
    names = [c for c, t in diag.schema.items()
             if c not in _NOT_EVIDENCE and t.is_numeric()]
    if not names or "cell_id" not in diag.columns:
        return pl.DataFrame(schema={"cell_id": pl.String, "name": pl.String, "value": pl.Float64})
    return (diag.select(pl.col("cell_id").cast(pl.String), *[pl.col(c).cast(pl.Float64) for c in names])
            .unpivot(index="cell_id", on=names, variable_name="name", value_name="value")
            .filter(pl.col("value").is_not_null()))


def _json_rows(cols: list[str]) -> pl.Expr:
    if not cols:
        return pl.lit(None, dtype=pl.String)
    return pl.struct([pl.col(c) for c in cols]).struct.json_encode()


def _hotspots_rows(df: pl.DataFrame) -> pl.DataFrame:
    """kind, rank, key (cell, region or position) and every other column as JSON measures."""
    if "measures" in df.columns:
        return df
    measures = [c for c in df.columns if c not in ("kind", "rank", "key", "run_id")]
    keys = [pl.col(c).cast(pl.String) for c in ("key", "cell_id", "region") if c in df.columns]
    if "lat" in df.columns and "lon" in df.columns:
        keys.append(pl.format("{},{}", pl.col("lat").round(5), pl.col("lon").round(5)))
    key = pl.coalesce(keys) if keys else pl.lit(None, dtype=pl.String)
    return df.with_columns(key.alias("key"), _json_rows(measures).alias("measures"))


def _followup_rows(df: pl.DataFrame) -> pl.DataFrame:
    """The contract's columns, and every other column in one JSON ``extra`` column."""
    known = {c for c, _t, _r in _COLUMNS["followup"]} | {"run_id", "extra"}
    extras = [c for c in df.columns if c not in known]
    if not extras:
        return df
    return df.with_columns(_json_rows(extras).alias("extra"))


def _expand_json(df: pl.DataFrame, col: str) -> pl.DataFrame:
    """Replace a JSON object column by one column per key (types as JSON gives them)."""
    if col not in df.columns:
        return df
    texts = df[col].to_list()
    parsed = [json.loads(t) if t else {} for t in texts]
    keys: list[str] = []
    for obj in parsed:
        keys.extend(k for k in obj if k not in keys and k not in df.columns)
    base = df.drop(col)
    if not keys:
        return base
    wide = pl.DataFrame([{k: obj.get(k) for k in keys} for obj in parsed],
                        schema=keys, infer_schema_length=None, orient="row")
    return pl.concat([base, wide], how="horizontal")


def _timeline(d: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """One row per run that mentions the cell, from the dossier's frames."""
    runs = pl.concat([f.select("seq", "run_id", "first_day", "last_day") for f in d.values()]
                     ).unique().sort("seq")
    k = d["kqi"]
    rates = runs.select("seq")
    for s in SERVICES:
        rates = rates.join(k.filter(pl.col("service") == s)
                           .select("seq", pl.col("good_rate").alias(f"good_rate_{s}")),
                           on="seq", how="left")
    per_run = k.group_by("seq").agg(
        pl.col("tests").sum(),
        pl.col("service").filter(pl.col("poor")).sort().str.join(";").alias("poor_services"))
    order_cols = ["order_id", "status", "order_status"]
    orders = (d["orders"].group_by("seq", maintain_order=True)
              .agg(pl.col(c).str.join(";") for c in order_cols))
    verdicts = (d["followup"].group_by("seq", maintain_order=True)
                .agg(pl.col("verdict").drop_nulls().str.join(";")))
    return (runs.join(per_run, on="seq", how="left")
            .join(rates, on="seq", how="left")
            .join(d["diagnosis"].select("seq", "primary_cause"), on="seq", how="left")
            .join(d["complaints"].select("seq", "complaints"), on="seq", how="left")
            .join(orders, on="seq", how="left")
            .join(verdicts, on="seq", how="left")
            .sort("seq").drop("seq"))


def order_state(orders: pl.DataFrame) -> pl.Expr:
    """One column for people: the order's state, with the newest run's word for it in brackets.

    ``status`` (open / escalated / closed: where the order stands) and ``order_status`` (new /
    persisting / reopened / escalated: what the newest run that listed it made of it, empty when
    its cell was not poor in that run) read as two statuses side by side; ``kqi history orders``
    shows them as one: ``open (new)``, ``open (persisting)``, ``open (not poor in its last
    run)``, ``escalated``, ``closed``. The CSV (``--csv``) keeps both columns, as the data
    contract names them.
    """
    status = pl.col("status").cast(pl.String)
    detail = (pl.col("order_status").cast(pl.String) if "order_status" in orders.columns
              else pl.lit(None, pl.String))
    return (pl.when(status == "open")
            .then(pl.concat_str(status, pl.lit(" ("),
                                detail.fill_null("not poor in its last run"), pl.lit(")")))
            .otherwise(status).alias("order_state"))
