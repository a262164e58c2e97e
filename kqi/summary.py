"""The run summary: its shape (``summary.json``) and the one place that renders it for people.

:class:`RunSummary` types the plain-JSON dict a run builds (the case table from
:func:`kqi.flagging.summarize`, then inputs, diagnosis, complaints, work orders and the closed
loop's programme table). The renderers here read it through those typed keys:
:func:`to_markdown` (``summary.md``), :func:`console_lines` (``kqi run``/``kqi demo``) and
:func:`case_frame` (the workbook's case table); :func:`case_scopes` is the one definition of the
case table's rows (all, then each vendor, then each region).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

import polars as pl

from kqi.io import md_text
from kqi.schema import SERVICES


class CaseCounts(TypedDict):
    """Counts of one scope of the case table."""

    cells_reporting: int
    poor_cells: int
    poor_share: float
    poor_by_service: dict[str, int]
    tests: int


class FeedCounts(TypedDict):
    """Row accounting of one input feed."""

    rows_read: int
    rows_accepted: int
    rows_rejected: int


class RunSummary(TypedDict, total=False):
    """What ``summary.json`` holds (every key but the case counts optional)."""

    cells_reporting: int
    poor_cells: int
    poor_share: float
    poor_by_service: dict[str, int]
    tests: int
    rule: dict[str, Any]
    by_vendor: dict[str, CaseCounts]
    by_region: dict[str, CaseCounts]
    inputs: dict[str, FeedCounts]
    diagnosis: dict[str, Any]
    complaints: dict[str, Any]
    work_orders: dict[str, Any]
    programme: dict[str, Any]
    samples: dict[str, Any]


#: the summary keys that make up the case table (shown as a table, not as single figures)
CASE_KEYS: frozenset[str] = frozenset({
    "cells_reporting", "poor_cells", "poor_share", "poor_by_service", "tests", "by_vendor",
    "by_region"})


def case_scopes(summary: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The case table's rows: ``("all", counts)``, then ``("vendor: ZTE", counts)`` for each
    vendor and ``("region: north", counts)`` for each region, names as they are; empty when the
    summary has no case counts."""
    if "cells_reporting" not in summary or not isinstance(summary.get("poor_by_service"), Mapping):
        return []
    rows: list[tuple[str, Mapping[str, Any]]] = [("all", summary)]
    for dim in ("vendor", "region"):
        rows += [(f"{dim}: {name}", c) for name, c in (summary.get(f"by_{dim}") or {}).items()]
    return rows


def case_frame(summary: Mapping[str, Any]) -> pl.DataFrame | None:
    """The case table as a frame: scope, cells reporting, poor cells, poor share, poor per service."""
    scopes = case_scopes(summary)
    if not scopes:
        return None
    services = list(summary["poor_by_service"])
    rows = [{"scope": scope, "cells reporting": c.get("cells_reporting"),
             "poor cells": c.get("poor_cells"), "poor share": c.get("poor_share"),
             **{f"poor {s}": (c.get("poor_by_service") or {}).get(s, 0) for s in services}}
            for scope, c in scopes]
    schema = {"scope": pl.String, "cells reporting": pl.Int64, "poor cells": pl.Int64,
              "poor share": pl.Float64, **{f"poor {s}": pl.Int64 for s in services}}
    return pl.DataFrame(rows, schema=schema)


def _pct(x: float) -> str:
    return f"{100.0 * x:.2f} %"


def case_markdown(summary: Mapping[str, Any]) -> str:
    """The case table section of ``summary.md`` (names made inert)."""
    lines = ["## Poor-quality cells", "",
             "| scope | cells reporting | poor cells | poor share | " + " | ".join(SERVICES) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(SERVICES)]
    for scope, c in case_scopes(summary):
        per = " | ".join(str(c["poor_by_service"].get(s, 0)) for s in SERVICES)
        lines.append(f"| {md_text(scope)} | {c['cells_reporting']} | {c['poor_cells']} | "
                     f"{_pct(c['poor_share'])} | {per} |")
    rule = summary.get("rule")
    if rule:
        th = ", ".join(f"{s} ≤ {_pct(t)}" for s, t in rule["thresholds"].items())
        lines += ["", f"A cell is poor for a service when it has at least {rule['min_tests']} "
                      f"tests and its good-rate is at or below the threshold ({th})"
                      + (", and the Wilson upper bound is too." if rule["flag_on_upper_bound"]
                         else ".")]
    return "\n".join(lines) + "\n"


def to_markdown(summary: Mapping[str, Any], files: Mapping[str, str] | None = None) -> str:
    """``summary.md``: the case table, inputs (with their ``files``, :func:`source_files`),
    causes, proposals, complaints, the programme's before/after table and the work orders;
    every name from the data made inert."""
    lines = [case_markdown(summary).rstrip(), "", *inputs_markdown(summary, files)]
    diag = summary.get("diagnosis") or {}
    causes = diag.get("cause_counts") or {}
    if causes:
        lines += ["## Causes of poor cells", "", "| cause | cells |", "|---|---:|"]
        lines += [f"| {md_text(str(k))} | {v:,} |" for k, v in causes.items()]
        lines.append("")
    unjudged = diag.get("not_judged") or []
    if unjudged:
        from kqi.judged import not_judged_text

        lines += [f"**Causes not judged**: the KPI feed lacks the columns they need, so no cell can "
                  f"come out with them: {md_text(not_judged_text(unjudged))}.", ""]
    net = diag.get("network") or {}
    if isinstance(net, dict) and net.get("basis"):
        # the reference the network-relative evidence is stated against (kqi.diagnosis)
        lines += ["## This network's reference", "", f"- {md_text(str(net['basis']))}", ""]
    proposals = diag.get("proposals") or {}
    if proposals:
        lines += ["## Proposed network-calibrated thresholds (not applied)", ""]
        for name, p in proposals.items():
            if isinstance(p, dict) and "proposed" in p:
                lines.append(f"- **{md_text(str(name))}**: {p.get('current')} → {p['proposed']}: "
                             f"{md_text(str(p.get('basis', '')))}")
            else:
                lines.append(f"- **{md_text(str(name))}**: {md_text(str(p))}")
        lines.append("")
    smp = summary.get("samples")
    if smp:
        lines += ["## Drive-test / MR samples", "", samples_line(smp), ""]
    comp = summary.get("complaints")
    if comp:
        from kqi.complaints import hotspots_text

        lines += [
            "## Complaints", "",
            f"- complaints: {comp['complaints']} (network {comp['network_complaints']}, "
            f"linked to a cell {comp['linked']}, non-network {comp['non_network']})",
            f"- silent poor cells (poor, no complaint yet): {comp['silent_poor_cells']}",
            *([f"- hotspots: {md_text(hotspots_text(comp))} (hotspots.csv)"]
              if comp.get("hotspots") else []),
            "",
        ]
    programme = summary.get("programme")
    if programme:
        from kqi.followup import programme_markdown

        lines += [programme_markdown(programme).rstrip(), ""]
    wo = summary.get("work_orders") or {}
    if wo:
        lines += ["## Work orders", "", f"- orders: {wo.get('work_orders')}", ""]
    return "\n".join(lines)


def console_lines(summary: Mapping[str, Any], rejects_dir: Path | None = None) -> list[str]:
    """The run's figures for the console (rich markup; names escaped for rich); a feed's
    rejects are named in ``rejects_dir`` when given."""
    from rich.markup import escape

    out: list[str] = []
    cells = summary.get("cells_reporting")
    if cells is not None:
        share = summary.get("poor_share")
        share_txt = f" ({share:.2%})" if isinstance(share, float) else ""
        per = summary.get("poor_by_service") or {}
        per_txt = ", ".join(f"{k} {v}" for k, v in per.items())
        out.append(f"[bold]{cells}[/bold] cells reported tests; [bold]{summary.get('poor_cells')}"
                   f"[/bold] poor{share_txt}" + (f": {per_txt}" if per_txt else ""))
    causes = (summary.get("diagnosis") or {}).get("cause_counts") or {}
    if causes:
        out.append("causes: " + ", ".join(f"{escape(str(k))} {v}" for k, v in causes.items()))
    unjudged = (summary.get("diagnosis") or {}).get("not_judged") or []
    if unjudged:
        from kqi.judged import not_judged_text

        out.append(f"[yellow]causes not judged, the KPI feed lacks the columns they need: "
                   f"{escape(not_judged_text(unjudged))}[/yellow]")
    for feed, c in (summary.get("inputs") or {}).items():
        if c["rows_rejected"]:
            where = (rejects_dir or Path("rejects")) / f"{feed}.csv"
            out.append(f"[yellow]{escape(feed)}: {c['rows_rejected']:,} of {c['rows_read']:,} rows "
                       f"rejected[/yellow] -> {escape(str(where))}")
    smp = summary.get("samples")
    if smp:
        out.append(samples_line(smp))
    comp = summary.get("complaints")
    if comp:
        from kqi.complaints import hotspots_text

        out.append(f"complaints: {comp['complaints']}, linked {comp['linked']}, "
                   f"silent poor cells {comp['silent_poor_cells']}"
                   + (f", hotspots: {escape(hotspots_text(comp))}" if comp.get("hotspots") else ""))
    prog = (summary.get("programme") or {}).get("orders")
    if prog:
        verdicts = (summary.get("programme") or {}).get("verdicts") or {}
        out.append(f"follow-up of {prog.get('verified', 0)} earlier orders: "
                   + ", ".join(f"{k} {v}" for k, v in verdicts.items())
                   + f"; orders now: {prog.get('opened', 0)} new, {prog.get('persisting', 0)} "
                     f"persisting, {prog.get('escalated', 0)} escalated, "
                     f"{prog.get('reopened', 0)} reopened, {prog.get('closed_recovered', 0)} "
                     "closed as recovered")
    return out


def feed_counts(reports: Mapping[str, Any]) -> dict[str, FeedCounts]:
    """Feed -> its row accounting (``summary.json``'s ``inputs``), from the ingest's
    ``FeedReport`` of each feed."""
    return {name: {"rows_read": rep.rows_read, "rows_accepted": rep.rows_accepted,
                   "rows_rejected": rep.rows_rejected} for name, rep in reports.items()}


def source_files(reports: Mapping[str, Any]) -> dict[str, str]:
    """Feed -> the name of the file it was read from (``FeedReport.path``'s last part; a table
    in memory as ``<feed DataFrame>``): the file column of :func:`inputs_markdown`."""
    return {name: Path(str(rep.path)).name for name, rep in reports.items()}


def inputs_markdown(summary: Mapping[str, Any], files: Mapping[str, str] | None = None) -> list[str]:
    """The "Inputs" section: each feed in readers' words (:mod:`kqi.words`) with its file
    (``files``, from :func:`source_files`), rows read, accepted and rejected."""
    from kqi.words import value_words

    inputs = summary.get("inputs") or {}
    if not inputs:
        return []
    words, files = value_words("feed"), files or {}
    lines = ["## Inputs", "", "| input | file | rows read | accepted | rejected |",
             "|---|---|---:|---:|---:|"]
    for name, c in inputs.items():
        rej = c["rows_rejected"]
        note = f" (see rejects/{md_text(name)}.csv)" if rej else ""
        lines.append(f"| {md_text(words.get(name, name))} | {md_text(files.get(name, ''))} | "
                     f"{c['rows_read']:,} | {c['rows_accepted']:,} | {rej:,}{note} |")
    return [*lines, ""]


def samples_markdown(summary: Mapping[str, Any], files: Mapping[str, str] | None = None) -> str:
    """``summary.md`` of ``kqi samples``: the inputs' accounting (with their ``files``) and the
    samples' figures."""
    smp = summary.get("samples") or {}
    lines = ["# Drive-test / MR samples", "", *inputs_markdown(summary, files)]
    if smp:
        lines += ["## Samples", "", samples_line(smp) + "."]
        if smp.get("map"):
            lines += ["", md_text(str(smp["map"])) + "."]
    return "\n".join(lines).rstrip() + "\n"


def samples_line(smp: Mapping[str, Any]) -> str:
    """The samples feed's figures in one sentence (numbers only: safe as markup and Markdown)."""
    return (f"samples: {smp.get('samples', 0):,} accepted, {smp.get('positioned', 0):,} with a "
            f"position, in {smp.get('bins', 0):,} bins of {smp.get('bin_m', 0):g} m "
            f"({smp.get('weak_bins', 0):,} weak); {smp.get('serving_cells', 0):,} serving cells: "
            + (f"{smp.get('cells_in_cells_file', 0):,} in the cells file, "
               if smp.get("cells_file", True) else "no cells file, ")
            + f"{smp.get('cells_estimated', 0):,} estimated from samples "
            f"({smp.get('sites_estimated', 0):,} sites), {smp.get('cells_without_position', 0):,} "
            "without a position")
