"""A network without tests: the map and the exports from a cell list alone (``kqi map``).

``kqi map --cells F [--complaints F] --out DIR`` reads the cells (and complaints) through the same
ingest as a run, so bad rows go to ``rejects/`` and ``manifest.json`` accounts for every row; it
draws every cell's sector wedge on ``map.html`` (grey: no cell was judged, since there are no
tests), links the complaints to the cells that most likely served them (distance and beam), and
writes ``sectors.kmz`` and ``cells.geojson`` with every cell. The output folder is handled as in
``kqi run`` (:mod:`kqi.outdir`): locked, staged, swapped in whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from kqi.complaints import hotspots_text
from kqi.config import Config, as_config
from kqi.io import md_text, write_csv, write_json, write_text
from kqi.pipeline import Progress, RunResult, Source, _check_inputs, _finish, _Stages
from kqi.summary import feed_counts, inputs_markdown, source_files

__all__ = ["map_cells"]


def map_cells(*, cells: Source, out: str | Path, complaints: Source | None = None,
              config: Config | str | Path | None = None,
              progress: Progress | None = None) -> RunResult:
    """Draw a cell list on the map and export it (KMZ, GeoJSON); no tests, no KPIs needed.

    Parameters
    ----------
    cells : path, polars DataFrame/LazyFrame or Arrow table
        The cells feed (docs/input-formats.md); rejected rows go to ``rejects/cells.csv``.
    out : str or Path
        Output folder: ``map.html``, ``sectors.kmz``, ``cells.geojson``, ``summary.json`` /
        ``.md``, ``manifest.json``, ``run_info.json``, ``rejects/``; with complaints also
        ``complaint_links.csv`` and ``hotspots.csv``.
    complaints : path or table, optional
        Complaint tickets: drawn as points and heat, linked to cells, ranked into hotspots.
    config : Config, str or Path, optional
        As for :func:`kqi.run` (``[output]`` decides the map's tiles and assets and whether the
        KMZ / GeoJSON are written).
    progress : callable, optional
        ``progress(stage, "start" | "done")``.

    Returns
    -------
    RunResult
        ``cells``, ``isd``, ``complaints``, ``links``, ``hotspots``, ``summary``, ``manifest``,
        ``files``; the analysis tables stay empty.
    """
    from kqi.outdir import OutputDir, os_errors

    cfg = as_config(config)
    inputs: dict[str, Source | None] = {"cells": cells, "complaints": complaints}
    _check_inputs(inputs)
    with OutputDir(out) as od, os_errors(od.path, "write the outputs"):
        result = _map(cfg, inputs, od.staging, progress)
        result.files = od.commit(result.files)
        result.out = od.path
    return result


def _map(cfg: Config, inputs: dict[str, Source | None], out_dir: Path,
         progress: Progress | None) -> RunResult:
    from kqi.geo import site_isd
    from kqi.ingest import Ingest
    from kqi.maps import render_map
    from kqi.maps.exports import write_exports

    st = _Stages(progress)
    started = dt.datetime.now(dt.UTC)
    rejects_dir = out_dir / "rejects"
    r = RunResult()
    ing = Ingest(cfg, rejects_dir=rejects_dir)
    with st.stage("ingest cells"):
        r.cells = ing.cells(inputs["cells"])
    if inputs["complaints"] is not None:
        with st.stage("ingest complaints"):
            r.complaints = ing.complaints(inputs["complaints"], r.cells)
    with st.stage("inter-site distance"):
        r.isd = site_isd(r.cells, cfg)
    if r.complaints is not None:
        with st.stage("complaints"):
            from kqi.complaints import hotspots, link_complaints

            r.links = link_complaints(r.complaints, r.cells, None, r.isd, cfg)
            r.hotspots = hotspots(r.links, r.complaints, r.cells, cfg)
    r.reports, r.rejects = dict(ing.reports), dict(ing.rejects)
    r.summary = map_summary(r)  # type: ignore[assignment]  # a map's summary, not a run's

    with st.stage("write outputs"):
        if r.links is not None and r.hotspots is not None:
            r.files.append(write_csv(out_dir / "complaint_links.csv", r.links))
            r.files.append(write_csv(out_dir / "hotspots.csv", r.hotspots))
        r.files.append(write_json(out_dir / "summary.json", r.summary))
        r.files.append(write_text(out_dir / "summary.md", map_markdown(r.summary, source_files(r.reports))))
    if cfg.output.map:
        with st.stage("map"):
            r.files.append(render_map(out_dir / "map.html", cells=r.cells,
                                      complaints=r.complaints, links=r.links, isd=r.isd,
                                      config=cfg))
    if cfg.output.kmz or cfg.output.geojson:
        with st.stage("exports (KMZ, GeoJSON)"):
            r.files.extend(write_exports(out_dir, cells=r.cells, complaints=r.complaints,
                                         links=r.links, isd=r.isd, config=cfg, all_cells=True))
    r.files.extend(sorted(rejects_dir.glob("*.csv")))
    _finish(r, cfg, inputs, out_dir=out_dir, st=st, started=started)
    return r


def _counts(cells: pl.DataFrame, column: str) -> dict[str, int]:
    if column not in cells.columns:
        return {}
    c = (cells.select(pl.col(column).cast(pl.String).fill_null("").alias("k"))
         .group_by("k").len().sort("k"))
    if c.height == 1 and c["k"][0] == "":
        return {}   # the column is empty: nothing to count
    return {(k or "(none)"): int(n) for k, n in c.iter_rows()}


def map_summary(r: RunResult) -> dict[str, Any]:
    """What ``summary.json`` holds after ``kqi map``: the cells by vendor, region and tech, the
    input row accounting and the complaint figures."""
    cells = r.cells
    bw = (cells["beamwidth"].cast(pl.Float64) if "beamwidth" in cells.columns
          else pl.Series([], dtype=pl.Float64))
    summary: dict[str, Any] = {
        "mode": "map (a cell list without tests: no cell is judged)",
        "cells": cells.height,
        "sites": int(cells["site_id"].n_unique()) if "site_id" in cells.columns else None,
        "omni_cells": int((bw >= 360).sum()) if bw.len() else 0,
        "by_vendor": _counts(cells, "vendor"),
        "by_region": _counts(cells, "region"),
        "by_tech": _counts(cells, "tech"),
        "inputs": feed_counts(r.reports),
    }
    if r.links is not None:
        from kqi.complaints import hotspot_counts
        from kqi.frames import linked_network

        links = r.links
        network = links.filter(pl.col("network"))
        summary["complaints"] = {
            "complaints": links.height,
            "network_complaints": network.height,
            "linked": linked_network(links).height,
            "non_network": links.height - network.height,
            **hotspot_counts(r.hotspots),
        }
    return summary


def _table(title: str, counts: Mapping[str, int]) -> list[str]:
    if not counts:
        return []
    lines = [f"## Cells by {title}", "", f"| {title} | cells |", "|---|---:|"]
    lines += [f"| {md_text(k)} | {v:,} |" for k, v in counts.items()]
    return [*lines, ""]


def map_markdown(summary: Mapping[str, Any], files: Mapping[str, str] | None = None) -> str:
    """``summary.md`` after ``kqi map`` (names from the data made inert; the inputs with their
    ``files``, :func:`kqi.summary.source_files`)."""
    lines = ["# Cell map", "",
             f"{summary['cells']:,} cells"
             + (f" on {summary['sites']:,} sites" if summary.get("sites") is not None else "")
             + f" ({summary['omni_cells']:,} omni). No tests were given, so no cell is judged: "
               "the map, sectors.kmz and cells.geojson show every cell.", ""]
    lines += inputs_markdown(summary, files)
    for key, title in (("by_vendor", "vendor"), ("by_region", "region"), ("by_tech", "tech")):
        lines += _table(title, summary.get(key) or {})
    comp = summary.get("complaints")
    if comp:
        lines += ["## Complaints", "",
                  f"- complaints: {comp['complaints']:,} (network {comp['network_complaints']:,}, "
                  f"linked to a cell {comp['linked']:,}, non-network {comp['non_network']:,})",
                  f"- hotspots: {md_text(hotspots_text(comp))} (hotspots.csv)", ""]
    return "\n".join(lines)


def console_lines(summary: Mapping[str, Any], rejects_dir: Path) -> list[str]:
    """The figures of ``kqi map`` for the console (rich markup, names escaped)."""
    from rich.markup import escape

    out = [f"[bold]{summary['cells']:,}[/bold] cells drawn"
           + (f" on {summary['sites']:,} sites" if summary.get("sites") is not None else "")
           + " (no tests: no cell is judged)"]
    vendors = summary.get("by_vendor") or {}
    if vendors:
        out.append("vendors: " + ", ".join(f"{escape(k)} {v:,}" for k, v in vendors.items()))
    for feed, c in (summary.get("inputs") or {}).items():
        if c["rows_rejected"]:
            out.append(f"[yellow]{escape(feed)}: {c['rows_rejected']:,} of {c['rows_read']:,} "
                       f"rows rejected[/yellow] -> {escape(str(rejects_dir / f'{feed}.csv'))}")
    comp = summary.get("complaints")
    if comp:
        out.append(f"complaints: {comp['complaints']:,}, linked {comp['linked']:,}, "
                   f"hotspots: {escape(hotspots_text(comp))}")
    return out
