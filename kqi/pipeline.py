"""The whole analysis, stage by stage: ingest -> flag -> diagnose -> link complaints -> work orders
-> outputs. The CLI and notebook users call :func:`run`; each stage is also usable on its own.

Every output is written atomically into ``out``; ``manifest.json`` (written last) records per feed
rows_read / rows_accepted / rows_rejected, the inputs' checksums, the config, the version and the
time each stage took.
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import polars as pl
import pyarrow as pa

from kqi import __version__, _sidecar
from kqi.config import Config, as_config
from kqi.errors import InputError
from kqi.ingest import source_name
from kqi.io import write_csv, write_json, write_parquet, write_text
from kqi.summary import RunSummary, feed_counts

if TYPE_CHECKING:
    from kqi.closedloop import Loop
    from kqi.samples import SamplesResult

log = logging.getLogger(__name__)


#: progress callback: (stage name, event) with event "start" or "done"
Progress = Callable[[str, str], None]


#: an input feed: a file path, or a table already in memory
Source: TypeAlias = str | Path | pl.DataFrame | pl.LazyFrame | pa.Table


@dataclass
class RunResult:
    """Everything a run computed, as polars frames, and what it wrote.

    Attributes
    ----------
    cells, kpis, complaints, isd : polars.DataFrame
        The validated feeds (complaints without msisdn) and each site's local inter-site distance.
    out : Path or None
        The output folder; ``None`` when the run wrote nothing (``out=None``).
    files : list of Path
        Files written (empty without ``out``).
    summary : kqi.summary.RunSummary
        What ``summary.json`` holds (a typed dict): the case table, inputs, causes, complaints,
        work orders, the closed loop's programme table.
    manifest : dict
        What ``manifest.json`` holds: per feed row accounting and checksums, config, timings.
    cell_kqi, daily : polars.DataFrame
        Per cell x service (``cell_kqi.csv``) and per cell x service x day counts.
    diagnosis, evidence, clusters, areas : polars.DataFrame
        Per poor cell causes; per cell KPI evidence; signature clusters; poor-quality areas.
    links, hotspots, silent : polars.DataFrame or None
        Complaint links, TOP hotspots, silent poor cells (``None`` without complaints).
    work_orders : polars.DataFrame
        The ranked work orders.
    followup : polars.DataFrame or None
        The follow-up of earlier orders (only with a history).
    trend : polars.DataFrame or None
        Per order, run and service the cell's good-rate in every recorded run (with a history).
    reports : dict
        Per feed :class:`kqi.ingest.FeedReport` (rows read, accepted, rejected, checksum).
    rejects : dict of polars.DataFrame
        Rejected rows per feed (held here when ``out`` is ``None``; in ``rejects/`` otherwise).
    run_info : dict
        When the run started and how long each stage took (``run_info.json``): kept apart from
        the manifest so that the same inputs give the same manifest.
    samples : kqi.samples.SamplesResult or None
        Drive-test / MR samples: coverage bins, per-cell figures, estimated cells (only with
        ``samples=``).
    """

    out: Path | None = None
    files: list[Path] = field(default_factory=list)
    summary: RunSummary = field(default_factory=RunSummary)
    manifest: dict[str, Any] = field(default_factory=dict)
    cells: pl.DataFrame = field(default_factory=pl.DataFrame)
    kpis: pl.DataFrame = field(default_factory=pl.DataFrame)
    complaints: pl.DataFrame | None = None
    isd: pl.DataFrame = field(default_factory=pl.DataFrame)
    cell_kqi: pl.DataFrame = field(default_factory=pl.DataFrame)
    daily: pl.DataFrame = field(default_factory=pl.DataFrame)
    diagnosis: pl.DataFrame = field(default_factory=pl.DataFrame)
    evidence: pl.DataFrame = field(default_factory=pl.DataFrame)
    clusters: pl.DataFrame = field(default_factory=pl.DataFrame)
    areas: pl.DataFrame = field(default_factory=pl.DataFrame)
    links: pl.DataFrame | None = None
    hotspots: pl.DataFrame | None = None
    silent: pl.DataFrame | None = None
    work_orders: pl.DataFrame = field(default_factory=pl.DataFrame)
    followup: pl.DataFrame | None = None
    trend: pl.DataFrame | None = None
    reports: dict[str, Any] = field(default_factory=dict)
    rejects: dict[str, pl.DataFrame] = field(default_factory=dict)
    run_info: dict[str, Any] = field(default_factory=dict)
    samples: SamplesResult | None = None


class _Stages:
    """Times each stage and reports progress."""

    def __init__(self, progress: Progress | None) -> None:
        self.timings: dict[str, float] = {}
        self._progress = progress

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self._progress:
            self._progress(name, "start")
        t0 = time.perf_counter()
        log.info("stage %s ...", name)
        yield
        self.timings[name] = round(time.perf_counter() - t0, 3)
        log.info("stage %s done in %.2f s", name, self.timings[name])
        if self._progress:
            self._progress(name, "done")


def _check_inputs(feeds: dict[str, Source | None], engine: str = "local") -> None:
    """Fail before any work when an input file is missing, rather than after the first stages."""
    for feed, source in feeds.items():
        if source is None or not isinstance(source, str | Path):
            continue
        if engine == "spark" and feed != "samples":  # folders of parts and URIs are Spark's
            from kqi.spark.engine import check_source

            check_source(source, feed)
            continue
        if feed == "samples":   # a file or a folder of files
            if not Path(source).exists():
                raise InputError(source, "samples file or folder not found")
            continue
        if Path(source).is_dir():
            raise InputError(source, f"{feed} input is a folder, not a file")
        if not Path(source).is_file():
            raise InputError(source, f"{feed} file not found")


def run(
    *,
    cells: Source,
    tests: Source,
    kpis: Source,
    out: str | Path | None = None,
    complaints: Source | None = None,
    subscribers: Source | None = None,
    config: Config | str | Path | None = None,
    history: str | Path | None = None,
    progress: Progress | None = None,
    samples: Source | None = None,
) -> RunResult:
    """Run the whole analysis: ingest, flag, diagnose, link complaints, rank work orders.

    Parameters
    ----------
    cells, tests, kpis, complaints, subscribers : path, polars DataFrame/LazyFrame or Arrow table
        The input feeds (docs/input-formats.md): a CSV (UTF-8/GBK) or Parquet file, or the same
        columns in memory, which go through the same validation (rejected rows are on
        ``result.rejects`` or in ``rejects/``). ``complaints`` and ``subscribers`` (per cell or
        per region, for complaints per 10,000 subscribers; estimated from KPIs when absent) are
        optional.
    out : str or Path, optional
        Output folder (created); every output is written there. ``None`` writes nothing and
        returns everything on the result.
    config : Config, str or Path, optional
        Run configuration, or the path of a TOML file (as ``--config``); defaults when ``None``.
    history : str or Path, optional
        A DuckDB history file (created when missing; else ``config.history.path`` when set):
        earlier orders are followed up (``result.followup``, ``followup.csv``), work orders carry
        order ids and statuses, and the run is recorded there (docs/history.md).
    progress : callable, optional
        Called as ``progress(stage, "start" | "done")`` for a progress display.
    samples : path, folder or table, optional
        Drive-test / MR samples (docs/samples.md): ``coverage_bins.csv``, ``cell_samples.csv``
        (cells missing from ``cells`` estimated from their samples), a bins layer on the map, and
        sample figures as diagnosis evidence where the KPIs lack them.

    Returns
    -------
    RunResult
        Every table the run computed (cell_kqi, daily, diagnosis, evidence, clusters, areas,
        links, hotspots, silent, work_orders), the summary and the manifest.

    Raises
    ------
    kqi.InputError
        An input cannot be used at all (missing file, missing required column, no rows,
        undecodable).
    kqi.errors.OutputError
        ``out`` cannot be written (full disk, read-only, under a file) or another run holds it.

    Examples
    --------
    >>> import kqi
    >>> result = kqi.run(cells="cells.csv", tests="app_tests.parquet", kpis="kpis.csv")  # doctest: +SKIP
    >>> result.work_orders.head()                                                         # doctest: +SKIP
    """
    cfg = as_config(config)
    inputs = {"cells": cells, "tests": tests, "kpis": kpis, "complaints": complaints,
              "subscribers": subscribers, "samples": samples}
    _check_inputs(inputs, cfg.engine.name)
    history_path = history if history is not None else (cfg.history.path or None)
    if out is None:
        return _run(cfg, inputs, None, history_path, progress)
    from kqi.outdir import OutputDir, os_errors

    # all or nothing: outputs are written into a staging folder inside ``out`` (locked), then
    # swapped in, manifest.json last (kqi/outdir.py)
    with OutputDir(out) as od, os_errors(od.path, "write the outputs"):
        result = _run(cfg, inputs, od.staging, history_path, progress)
        result.files = od.commit(result.files)
        result.out = od.path
    return result


def _run(cfg: Config, inputs: dict[str, Source | None], out_dir: Path | None,
         history_path: str | Path | None, progress: Progress | None) -> RunResult:
    """Every stage of :func:`run`; the outputs written into ``out_dir`` (the staging folder)
    when given. With a history, the run is recorded once its outputs are written, so a run
    whose outputs fail leaves no trace in the history."""
    st = _Stages(progress)
    started = dt.datetime.now(dt.UTC)
    # hdbscan and folium imported while the inputs are read (kqi/_prefetch.py), by a thread
    # here unless kqi's helper process, which does their work, imports them (kqi/_sidecar.py)
    from kqi import _prefetch

    _prefetch.start()
    rejects_dir = None if out_dir is None else out_dir / "rejects"
    loop = None
    if history_path is not None:
        from kqi.closedloop import Loop

        with st.stage("open history"):
            loop = Loop.open(history_path, cfg)
    try:
        result = _analyse(cfg, st, rejects_dir, loop=loop, **inputs)
        if loop is not None:
            with st.stage("follow-up"):
                loop.follow_up(result)
                result.summary["programme"] = loop.programme
                result.trend = loop.trend(result)
        if out_dir is not None and rejects_dir is not None:
            with _gc_paused():
                _write_all(result, out_dir, rejects_dir, cfg, st)
        if loop is not None:
            with st.stage("record history"):
                loop.record(result)
    finally:
        if loop is not None:
            loop.close()
    _finish(result, cfg, inputs, out_dir=out_dir, st=st, started=started)
    return result


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cycle collector off while the outputs are built: the workbook and the map make
    hundreds of thousands of small objects (cells, features), and each collection walks every
    live object of the run again (15-25 % of those stages' time at 50,000 cells). What they
    leave behind is collected by the first collection after it is back on."""
    import gc

    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _write_all(result: RunResult, out_dir: Path, rejects_dir: Path, cfg: Config,
               st: _Stages) -> None:
    """The output stages of a run: tables and workbook, map, exports. The map and the exports
    are handed to kqi's helper process first when the run has one (kqi/_sidecar.py): drawn
    there while the tables are written here (their stages then time the wait for them)."""
    drawn = exported = None
    try:
        with st.stage("write outputs"):
            drawn = _render_map(result, out_dir / "map.html", cfg) if cfg.output.map else None
            exported = (_write_exports(result, out_dir, cfg)
                        if cfg.output.kmz or cfg.output.geojson else None)
            _write_tables(result, out_dir, cfg)
        if drawn is not None:
            with st.stage("map"):
                result.files.append(drawn.result())
        if exported is not None:
            with st.stage("exports (KMZ, GeoJSON)"):
                result.files.extend(exported.result())
    finally:
        # a failed stage: the helper finishes what it writes before the staging folder goes
        for pending in (drawn, exported):
            if pending is not None:
                pending.discard()
    result.files.extend(sorted(p for p in rejects_dir.glob("*.csv")))


def _finish(result: RunResult, cfg: Config, inputs: dict[str, Source | None], *,
            out_dir: Path | None, st: _Stages, started: dt.datetime) -> None:
    """``run_info.json`` and ``manifest.json`` (last) of a run (also of ``kqi map``)."""
    # manifest.json depends on the inputs and the config only (byte-identical for the same run);
    # times and timings go to run_info.json
    feeds = {name: rep.to_dict() for name, rep in result.reports.items()}
    feed_seconds = {name: f.pop("seconds") for name, f in feeds.items()}
    for f in feeds.values():
        if f.get("rejects_path") and out_dir is not None:
            f["rejects_path"] = Path(f["rejects_path"]).relative_to(out_dir).as_posix()
    result.run_info = {
        "started_utc": started.isoformat(timespec="seconds"),
        "timings_s": st.timings,
        "feed_seconds": feed_seconds,
    }
    if out_dir is not None:
        result.files.append(write_json(out_dir / "run_info.json", result.run_info))
    result.manifest = {
        "kqi_version": __version__,
        "python": platform.python_version(),
        "feeds": feeds,
        "inputs": {k: source_name(v, k) for k, v in inputs.items() if v is not None},
        "config": cfg.to_dict(),
        "run_info": "run_info.json",   # the run's times and stage timings
        "outputs": ([] if out_dir is None
                    else sorted(p.relative_to(out_dir).as_posix() for p in result.files)),
    }
    if out_dir is not None:
        result.files.append(write_json(out_dir / "manifest.json", result.manifest))


def _analyse(cfg: Config, st: _Stages, rejects_dir: Path | None, *, cells: Source, tests: Source,
             kpis: Source, complaints: Source | None = None, subscribers: Source | None = None,
             loop: Loop | None = None, samples: Source | None = None) -> RunResult:
    """Every stage but the writing: the tables of a run, on a :class:`RunResult`."""
    from kqi.diagnosis import diagnose
    from kqi.flagging import KqiAccumulator, check_kqi_columns, summarize
    from kqi.geo import site_isd
    from kqi.ingest import Ingest
    from kqi.workorders import build_work_orders, work_order_summary

    r = RunResult()
    ing = Ingest(cfg, rejects_dir=rejects_dir, verdicts=True)
    spark = None
    if cfg.engine.name == "spark":  # tests and KPIs aggregated on Spark (kqi/spark/engine.py)
        from kqi.spark import require_pyspark

        require_pyspark()
        from kqi.spark.engine import SparkEngine

        with st.stage("start Spark"):
            spark = SparkEngine(cfg, ing)
            cells, complaints, subscribers = (spark.small(cells, "cells"),
                                              spark.small(complaints, "complaints"),
                                              spark.small(subscribers, "subscribers"))
    with st.stage("ingest cells"):
        cell_df = ing.cells(cells)
    with st.stage("ingest KPIs"):
        kpi_df = ing.cell_kpis(kpis, cell_df) if spark is None else spark.kpis(kpis, cell_df)
    complaint_df = None
    if complaints is not None:
        with st.stage("ingest complaints"):
            complaint_df = ing.complaints(complaints, cell_df)
    subs = None
    if subscribers is not None:
        with st.stage("ingest subscribers"):
            subs = ing.subscribers(subscribers)

    with st.stage("ingest + flag app tests"):
        feed: Any = ing.app_tests(tests, cell_df) if spark is None else spark.tests(tests, cell_df)
        acc = KqiAccumulator(cell_df.height, cfg)
        feed.count(acc)  # chunk by chunk in place where the file allows it (kqi.ingest)
        check_kqi_columns(feed, acc, cfg)
        r.daily = acc.daily(cell_df["cell_id"])
        if loop is not None:
            loop.start(r.daily)
            stored = loop.trailing_counts(cell_df)
            if stored is not None:  # the analysed window: the stored days, then the new ones
                acc.add(stored)
                r.daily = acc.daily(cell_df["cell_id"])
        r.cell_kqi = acc.cell_kqi(cell_df["cell_id"])
    r.cells, r.kpis, r.complaints = cell_df, kpi_df, complaint_df

    with st.stage("inter-site distance"):
        r.isd = site_isd(cell_df, cfg)

    if samples is not None:
        with st.stage("samples"):
            from kqi.samples import analyse_samples

            r.samples = analyse_samples(ing.samples(samples).frame, cell_df, cfg, isd=r.isd)

    with st.stage("diagnosis"):
        diag = diagnose(r.cell_kqi, kpi_df, cell_df, cfg, isd=r.isd,
                        samples=None if r.samples is None else r.samples.cells,
                        kpi_aggregates=None if spark is None else spark.evidence)
    r.diagnosis, r.evidence, r.clusters, r.areas = diag.table, diag.evidence, diag.clusters, diag.areas

    if complaint_df is not None:
        with st.stage("complaints"):
            from kqi.complaints import hotspots, link_complaints, silent_poor_cells

            r.links = link_complaints(complaint_df, cell_df, r.cell_kqi, r.isd, cfg)
            r.hotspots = hotspots(r.links, complaint_df, cell_df, cfg, kpis=kpi_df, subscribers=subs,
                                  previous=None if loop is None else loop.previous_complaints)
            r.silent = silent_poor_cells(r.cell_kqi, r.links)

    with st.stage("work orders"):
        r.work_orders = build_work_orders(diag.table, r.cell_kqi, cell_df, r.links, cfg,
                                          evidence=diag.evidence)

    summary = summarize(r.cell_kqi, cell_df, cfg)
    summary["inputs"] = feed_counts(ing.reports)
    summary["diagnosis"] = diag.summary()
    from kqi.judged import not_judged

    summary["diagnosis"]["not_judged"] = not_judged(diag.evidence)  # causes the KPIs cannot show
    if r.links is not None:
        summary["complaints"] = _complaint_summary(r.links, r.silent, r.hotspots)
    summary["work_orders"] = work_order_summary(r.work_orders)
    if r.samples is not None:
        summary["samples"] = r.samples.summary
    r.summary = summary
    r.reports = dict(ing.reports)
    r.rejects = dict(ing.rejects)
    return r


def _write_tables(r: RunResult, out_dir: Path, cfg: Config) -> None:
    """Every table output of a run (the map aside), atomically, into ``out_dir``.

    The tables are written by polars, which leaves the interpreter lock while it writes, so
    they are written in a thread while this one builds the summary and the workbook (Python
    objects a cell): at 50,000 cells the two take about a second each. ``r.files`` lists them
    in the same order either way (tables, summary, workbook)."""
    from concurrent.futures import ThreadPoolExecutor

    from kqi.summary import source_files, to_markdown

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kqi-tables") as pool:
        tables = pool.submit(_write_frames, r, out_dir)
        rest = [write_json(out_dir / "summary.json", r.summary),
                write_text(out_dir / "summary.md", to_markdown(r.summary, source_files(r.reports)))]
        if cfg.output.excel:
            from kqi.excel import write_work_orders_xlsx

            rest.append(write_work_orders_xlsx(out_dir / "work_orders.xlsx", r.work_orders,
                                               r.summary, r.hotspots, followup=r.followup,
                                               trend=r.trend, language=cfg.output.language))
        r.files.extend(tables.result())
    r.files.extend(rest)


def _write_frames(r: RunResult, out_dir: Path) -> list[Path]:
    """The CSV and Parquet tables of a run (:func:`_write_tables`), in their order."""
    files = [write_csv(out_dir / "cell_kqi.csv", r.cell_kqi),
             write_parquet(out_dir / "cell_kqi.parquet", r.cell_kqi),
             write_csv(out_dir / "cell_kqi_daily.csv", r.daily)]
    for name, table in (("diagnosis", r.diagnosis), ("clusters", r.clusters), ("areas", r.areas)):
        files.append(write_csv(out_dir / f"{name}.csv", table))
    files.append(write_parquet(out_dir / "diagnosis.parquet", r.diagnosis))
    # the one CSV people double-click: a byte order mark makes Excel read it as UTF-8
    files.append(write_csv(out_dir / "work_orders.csv", r.work_orders, bom=True))
    if r.followup is not None:
        files.append(write_csv(out_dir / "followup.csv", r.followup))
    if r.links is not None and r.hotspots is not None:
        files.append(write_csv(out_dir / "complaint_links.csv", r.links))
        files.append(write_csv(out_dir / "hotspots.csv", r.hotspots))
    if r.samples is not None:
        from kqi.samples import write_outputs

        files.extend(write_outputs(r.samples, out_dir))
    return files


def _render_map(r: RunResult, path: Path, cfg: Config) -> _sidecar.Pending:
    """``map.html`` started (kqi.maps.render.render_map); its path is the result."""
    from kqi.samples import cells_with_estimates

    return _sidecar.submit(_sidecar.by_name("kqi.maps.render", "render_map"), path,
                           cells=cells_with_estimates(r.cells, r.samples), cell_kqi=r.cell_kqi,
                           diagnosis=r.diagnosis, areas=r.areas, complaints=r.complaints,
                           links=r.links, work_orders=r.work_orders, isd=r.isd, config=cfg,
                           trend=r.trend, followup=r.followup, samples=r.samples)


def _write_exports(r: RunResult, out_dir: Path, cfg: Config) -> _sidecar.Pending:
    """``sectors.kmz`` and ``cells.geojson`` started (kqi.maps.exports.write_exports); the
    paths written are the result."""
    return _sidecar.submit(_sidecar.by_name("kqi.maps.exports", "write_exports"), out_dir, cells=r.cells,
                           cell_kqi=r.cell_kqi, diagnosis=r.diagnosis, complaints=r.complaints,
                           links=r.links, work_orders=r.work_orders, isd=r.isd, config=cfg)


def _complaint_summary(links: pl.DataFrame, silent: pl.DataFrame | None,
                       hotspot_df: pl.DataFrame | None) -> dict[str, Any]:
    from kqi.complaints import hotspot_counts
    from kqi.frames import linked_network

    network = links.filter(pl.col("network"))
    linked = linked_network(links)
    return {
        "complaints": links.height,
        "network_complaints": network.height,
        "linked": linked.height,
        "non_network": links.height - network.height,
        "by_method": dict(sorted(
            (str(k), int(v)) for k, v in links.group_by("method").len().iter_rows())),
        "silent_poor_cells": silent.height if silent is not None else None,
        **hotspot_counts(hotspot_df),  # distinct places, and the entries per ranking
    }
