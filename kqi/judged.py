"""Which causes a run's KPIs can judge at all.

A cause holds when one of its rules holds (:mod:`kqi.causes`), and a rule needs every evidence
figure it compares. When no cell has one of those figures (the KPI feed has no
``ul_interference_dbm`` column, or only empty values in it), the rule can never hold, and a poor
cell of that cause comes out ``unknown`` or under another cause. That is not a finding about the
network: the summary says which causes could not be judged and for want of which figures, in the
console and in summary.md.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from kqi.causes import FALLBACK, REGISTRY
from kqi.diagnosis import DERIVED_FROM


def not_judged(evidence: pl.DataFrame) -> list[dict[str, Any]]:
    """Causes none of whose rules has all its figures for any cell, each with the figures missing.

    Parameters
    ----------
    evidence
        The diagnosis evidence (``Diagnosis.evidence``: one row per cell with KPI rows).

    Returns
    -------
    list of dict
        ``{"cause": name, "missing": [evidence columns no cell has]}``, in registry order.
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
        missing = list(dict.fromkeys(col for cols in needs for col in cols if col not in have))
        out.append({"cause": cause.name, "missing": missing})
    return out


def not_judged_text(items: list[dict[str, Any]]) -> str:
    """``interference (no ul_interference_dbm), fault (no availability_min, alarm_count)``."""
    return ", ".join(f"{i['cause']} (no {', '.join(i['missing'])})" for i in items)
