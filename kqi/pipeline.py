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
from typing import Any

import polars as pl

from kqi import __version__
from kqi.config import Config
from kqi.errors import InputError
from kqi.io import md_safe, write_csv, write_json, write_parquet, write_text

log = logging.getLogger(__name__)

#: every file a run may write into ``out`` (besides rejects/ and run_info.json); a file an earlier
#: run wrote and this one does not is removed when the outputs are swapped in (kqi/outdir.py)
OUTPUT_FILES = (
    "cell_kqi.csv", "cell_kqi.parquet", "cell_kqi_daily.csv", "diagnosis.csv", "diagnosis.parquet",
    "clusters.csv", "areas.csv", "work_orders.csv", "work_orders.xlsx", "complaint_links.csv",
    "hotspots.csv", "summary.json", "summary.md", "map.html", "manifest.json",
)

#: progress callback: (stage name, event) with event "start" or "done"
Progress = Callable[[str, str], None]


@dataclass
class RunResult:
    """What a run produced: the output folder, the files written and the key tables."""

    out: Path
    files: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    cell_kqi: pl.DataFrame | None = None
    diagnosis: pl.DataFrame | None = None
    work_orders: pl.DataFrame | None = None


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


def run(
    *,
    cells: str | Path,
    tests: str | Path,
    kpis: str | Path,
    out: str | Path,
    complaints: str | Path | None = None,
    subscribers: str | Path | None = None,
    config: Config | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run the whole analysis on input files and write every output into ``out``.

    Parameters
    ----------
    cells, tests, kpis, complaints
        Input feeds (CSV in UTF-8/GBK or Parquet), see docs/data-contract. ``complaints`` is optional.
    subscribers
        Optional per-cell (``cell_id, subscribers``) or per-region (``region, subscribers``) counts
        for complaints per 10,000 subscribers; estimated from KPIs when absent.
    out
        Output folder (created).
    config
        Run configuration; defaults when ``None``.
    progress
        Optional callback ``(stage, "start" | "done")`` for a progress display.

    Returns
    -------
    RunResult

    Raises
    ------
    kqi.errors.InputError
        An input cannot be used at all (missing file, missing required column, no rows, undecodable).
    kqi.errors.OutputError
        ``out`` cannot be written (full disk, read-only, under a file) or another run holds it.
    """
    cfg = config or Config()
    # fail before any work when an input is missing, rather than after the first stages
    for feed, path in (("cells", cells), ("tests", tests), ("kpis", kpis),
                       ("complaints", complaints), ("subscribers", subscribers)):
        if path is None:
            continue
        if Path(path).is_dir():
            raise InputError(path, f"{feed} input is a folder, not a file")
        if not Path(path).is_file():
            raise InputError(path, f"{feed} file not found")
    from kqi.outdir import OutputDir, os_errors

    # all or nothing: outputs are written into a staging folder inside ``out`` (locked), then
    # swapped in, manifest.json last (kqi/outdir.py)
    with OutputDir(out) as od, os_errors(od.path, "write the outputs"):
        result = _run_stages(od.staging, cells=cells, tests=tests, kpis=kpis,
                             complaints=complaints, subscribers=subscribers, cfg=cfg,
                             progress=progress)
        result.files = od.commit(result.files)
        result.out = od.path
    return result


def _run_stages(out_dir: Path, *, cells: str | Path, tests: str | Path, kpis: str | Path,
                complaints: str | Path | None, subscribers: str | Path | None, cfg: Config,
                progress: Progress | None) -> RunResult:
    """Every stage of :func:`run`, its outputs written into ``out_dir`` (the staging folder)."""
    from kqi.flagging import KqiAccumulator, check_kqi_columns, summarize, summary_markdown
    from kqi.ingest import Ingest
    from kqi.workorders import build_work_orders, work_order_summary

    rejects_dir = out_dir / "rejects"
    st = _Stages(progress)
    result = RunResult(out=out_dir)
    started = dt.datetime.now(dt.UTC)

    ing = Ingest(cfg, rejects_dir=rejects_dir)
    with st.stage("ingest cells"):
        cell_df = ing.cells(cells)
    with st.stage("ingest KPIs"):
        kpi_df = ing.cell_kpis(kpis, cell_df)
    complaint_df = None
    if complaints is not None:
        with st.stage("ingest complaints"):
            complaint_df = ing.complaints(complaints, cell_df)

    with st.stage("ingest + flag app tests"):
        feed = ing.app_tests(tests, cell_df)
        acc = KqiAccumulator(cell_df.height, cfg)
        for batch in feed.batches:
            acc.add(batch)
        check_kqi_columns(feed, acc, cfg)
        cell_kqi = acc.cell_kqi(cell_df["cell_id"])
        daily = acc.daily(cell_df["cell_id"])
    result.cell_kqi = cell_kqi

    with st.stage("inter-site distance"):
        from kqi.geo import site_isd

        isd = site_isd(cell_df, cfg)

    with st.stage("diagnosis"):
        from kqi.diagnosis import diagnose

        diag = diagnose(cell_kqi, kpi_df, cell_df, cfg, isd=isd)
    result.diagnosis = diag.table

    links = hotspot_df = None
    silent = None
    if complaint_df is not None:
        with st.stage("complaints"):
            from kqi.complaints import (
                hotspots,
                link_complaints,
                read_subscribers,
                silent_poor_cells,
            )

            subs = read_subscribers(subscribers) if subscribers is not None else None
            links = link_complaints(complaint_df, cell_df, cell_kqi, isd, cfg)
            hotspot_df = hotspots(links, complaint_df, cell_df, cfg, kpis=kpi_df, subscribers=subs)
            silent = silent_poor_cells(cell_kqi, links)

    with st.stage("work orders"):
        wo = build_work_orders(diag.table, cell_kqi, cell_df, links, cfg, evidence=diag.evidence)
    result.work_orders = wo

    summary = summarize(cell_kqi, cell_df, cfg)
    summary["inputs"] = {
        name: {"rows_read": rep.rows_read, "rows_accepted": rep.rows_accepted,
               "rows_rejected": rep.rows_rejected}
        for name, rep in ing.reports.items()
    }
    summary["diagnosis"] = diag.summary()
    if links is not None:
        summary["complaints"] = _complaint_summary(links, silent, hotspot_df)
    summary["work_orders"] = work_order_summary(wo)
    result.summary = summary

    with st.stage("write outputs"):
        files = result.files
        files.append(write_csv(out_dir / "cell_kqi.csv", cell_kqi))
        files.append(write_parquet(out_dir / "cell_kqi.parquet", cell_kqi))
        files.append(write_csv(out_dir / "cell_kqi_daily.csv", daily))
        files.append(write_csv(out_dir / "diagnosis.csv", diag.table))
        files.append(write_parquet(out_dir / "diagnosis.parquet", diag.table))
        files.append(write_csv(out_dir / "clusters.csv", diag.clusters))
        files.append(write_csv(out_dir / "areas.csv", diag.areas))
        files.append(write_csv(out_dir / "work_orders.csv", wo))
        if links is not None:
            files.append(write_csv(out_dir / "complaint_links.csv", links))
            files.append(write_csv(out_dir / "hotspots.csv", hotspot_df))
        files.append(write_json(out_dir / "summary.json", summary))
        files.append(write_text(out_dir / "summary.md",
                                _summary_md(md_safe(summary), summary_markdown)))
        if cfg.output.excel:
            from kqi.excel import write_work_orders_xlsx

            files.append(write_work_orders_xlsx(out_dir / "work_orders.xlsx", wo, summary,
                                                hotspot_df))

    if cfg.output.map:
        with st.stage("map"):
            from kqi.maps import render_map

            files.append(render_map(
                out_dir / "map.html", cells=cell_df, cell_kqi=cell_kqi, diagnosis=diag.table,
                areas=diag.areas, complaints=complaint_df, links=links, work_orders=wo, isd=isd,
                config=cfg,
            ))

    files.extend(sorted(p for p in rejects_dir.glob("*.csv")))
    # manifest.json depends on the inputs and the config only (byte-identical for the same run);
    # times and timings go to run_info.json
    feeds = {name: rep.to_dict() for name, rep in ing.reports.items()}
    feed_seconds = {name: f.pop("seconds") for name, f in feeds.items()}
    for f in feeds.values():
        if f.get("rejects_path"):
            f["rejects_path"] = Path(f["rejects_path"]).relative_to(out_dir).as_posix()
    files.append(write_json(out_dir / "run_info.json", {
        "started_utc": started.isoformat(timespec="seconds"),
        "timings_s": st.timings,
        "feed_seconds": feed_seconds,
    }))
    manifest = {
        "kqi_version": __version__,
        "python": platform.python_version(),
        "feeds": feeds,
        "inputs": {k: str(v) for k, v in {
            "cells": cells, "tests": tests, "kpis": kpis, "complaints": complaints,
            "subscribers": subscribers}.items() if v is not None},
        "config": cfg.to_dict(),
        "outputs": sorted(p.relative_to(out_dir).as_posix() for p in files),
    }
    result.manifest = manifest
    files.append(write_json(out_dir / "manifest.json", manifest))
    return result


def _complaint_summary(links: pl.DataFrame, silent: pl.DataFrame | None,
                       hotspot_df: pl.DataFrame | None) -> dict[str, Any]:
    network = links.filter(pl.col("network"))
    linked = network.filter(pl.col("cell_id").is_not_null() & (pl.col("cell_id") != ""))
    return {
        "complaints": links.height,
        "network_complaints": network.height,
        "linked": linked.height,
        "non_network": links.height - network.height,
        "by_method": dict(sorted(
            (str(k), int(v)) for k, v in links.group_by("method").len().iter_rows())),
        "silent_poor_cells": silent.height if silent is not None else None,
        "hotspots": hotspot_df.height if hotspot_df is not None else 0,
    }


def _summary_md(summary: dict[str, Any], case_md: Callable[[dict[str, Any]], str]) -> str:
    lines = [case_md(summary).rstrip(), ""]
    inputs = summary.get("inputs") or {}
    if inputs:
        lines += ["## Inputs", "", "| feed | rows read | accepted | rejected |", "|---|---:|---:|---:|"]
        for name, c in inputs.items():
            rej = c["rows_rejected"]
            note = f" (see rejects/{name}.csv)" if rej else ""
            lines.append(f"| {name} | {c['rows_read']} | {c['rows_accepted']} | {rej}{note} |")
        lines.append("")
    diag = summary.get("diagnosis") or {}
    causes = diag.get("cause_counts") or {}
    if causes:
        lines += ["## Causes of poor cells", "", "| cause | cells |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in causes.items()]
        lines.append("")
    proposals = diag.get("proposals") or {}
    if proposals:
        lines += ["## Proposed network-calibrated thresholds (not applied)", ""]
        for name, p in proposals.items():
            if isinstance(p, dict) and "proposed" in p:
                lines.append(f"- **{name}**: {p.get('current')} → {p['proposed']}: {p.get('basis', '')}")
            else:
                lines.append(f"- **{name}**: {p}")
        lines.append("")
    comp = summary.get("complaints")
    if comp:
        lines += [
            "## Complaints", "",
            f"- complaints: {comp['complaints']} (network {comp['network_complaints']}, "
            f"linked to a cell {comp['linked']}, non-network {comp['non_network']})",
            f"- silent poor cells (poor, no complaint yet): {comp['silent_poor_cells']}",
            "",
        ]
    wo = summary.get("work_orders") or {}
    if wo:
        lines += ["## Work orders", "", f"- orders: {wo.get('work_orders')}", ""]
    return "\n".join(lines)
