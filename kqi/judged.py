"""Which causes a run's KPIs can judge at all.

A cause holds when one of its rules holds (:mod:`kqi.causes`), and a rule needs every evidence
figure it compares. When no cell has one of those figures (the KPI feed has no
``ul_interference_dbm`` column, or only empty values in it), the rule can never hold, and a poor
cell of that cause comes out ``unknown`` or under another cause. That is not a finding about the
network: the summary says which causes could not be judged and which input columns the KPI feed
would need for them (``prb_util_dl``, not the busy-hour figure ``prb_util_busy`` made from it),
in the console, summary.md and the workbook; summary.json keeps the evidence figures too.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from kqi.causes import FALLBACK, REGISTRY
from kqi.diagnosis import DERIVED_FROM, KPI_AGGREGATES
from kqi.phrases import phrase as _p

#: words of :func:`not_judged_text` (kqi.phrases: the workbook in Chinese shows the Chinese)
_NO = _p(" (no ", " (缺少 ")
_NOR_SAMPLES = _p(", nor drive-test samples", "，也无路测样本")
_SAMPLES = _p("drive-test samples", "路测样本")

#: evidence figure -> the KPI column of the input feed it is made from
_KPI_SOURCE: dict[str, str] = {a.name: a.source for a in KPI_AGGREGATES} | {"ta_isd_ratio": "ta_p90_m"}
#: evidence figures from drive-test samples (kqi.samples.fill_evidence)
_SAMPLES_PREFIX = "smp_"


def input_column(evidence: str) -> str | None:
    """The KPI feed's column an evidence figure is made from (``None``: from drive-test samples).

    ``prb_util_busy`` -> ``prb_util_dl``, ``ul_rise_db`` -> ``ul_interference_dbm``,
    ``ta_isd_ratio`` -> ``ta_p90_m``, ``smp_dist_isd_ratio`` -> ``None``.
    """
    if evidence.startswith(_SAMPLES_PREFIX):
        return None
    col = DERIVED_FROM.get(evidence, evidence)
    return _KPI_SOURCE.get(col, col)


def not_judged(evidence: pl.DataFrame) -> list[dict[str, Any]]:
    """Causes none of whose rules has all its figures for any cell, each with the figures missing.

    Parameters
    ----------
    evidence
        The diagnosis evidence (``Diagnosis.evidence``: one row per cell with KPI rows).

    Returns
    -------
    list of dict
        ``{"cause": name, "missing": [KPI feed columns it needs], "samples": whether drive-test
        samples (``--samples``) would judge it too, "evidence": [evidence figures no cell
        has]}``, in registry order.
    """
    have = {c for c in evidence.columns
            if evidence.height and evidence.get_column(c).null_count() < evidence.height}
    out: list[dict[str, Any]] = []
    for cause in REGISTRY:
        if cause.name == FALLBACK or not cause.rules:
            continue
        # a guard that passes on a missing figure (if_missing) is not a figure the rule needs;
        # a figure derived from another (the rise over the network floor) is named by its source
        needs = [tuple(dict.fromkeys(DERIVED_FROM.get(c.column, c.column)
                                     for c in rule.conditions if not c.if_missing))
                 for rule in cause.rules]
        if any(all(col in have for col in cols) for cols in needs):
            continue
        evidence_missing = list(dict.fromkeys(col for cols in needs for col in cols if col not in have))
        sources = [input_column(c) for c in evidence_missing]
        out.append({"cause": cause.name,
                    "missing": list(dict.fromkeys(c for c in sources if c is not None)),
                    "samples": None in sources,
                    "evidence": evidence_missing})
    return out


def not_judged_text(items: list[dict[str, Any]]) -> str:
    """``interference (no ul_interference_dbm), overshooting (no ta_p90_m, nor drive-test samples)``:
    the input columns a user would add."""
    parts = []
    for i in items:
        what = ", ".join(i["missing"])
        if i.get("samples"):
            what = f"{what}{_NOR_SAMPLES}" if what else _SAMPLES
        parts.append(f"{i['cause']}{_NO}{what})")
    return ", ".join(parts)
