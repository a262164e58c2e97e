"""Polars expressions built from the cause registry (:mod:`kqi.causes`): the local engine.

Every rule, score and evidence text of :mod:`kqi.diagnosis` comes from here, and here only
from the records; another engine (Spark) builds its own expressions from the same records
with the same semantics:

- a :class:`~kqi.causes.Condition` on a missing figure is false (missing evidence never makes a
  cause hold), or its ``if_missing`` value for a guard;
- a score whose figure is missing is its ``fallback`` score;
- a rule holds when it is switched on and all its conditions hold; a cause holds when any of
  its rules holds;
- the cause's score is the largest score of its holding rules, plus ``support_bonus`` when all
  its support conditions hold; null when the cause does not hold;
- a figure prints rounded half to even (polars ``round``) to its digits, ``n/a`` when missing;
  a setting prints in its shortest form (``%g``).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from kqi.causes import Cause, Clause, Condition, Fig, Rule, Score, Setting
from kqi.config import DiagnosisConfig


def _g(value: float) -> str:
    return f"{value:g}"


def setting_text(d: DiagnosisConfig, s: Setting) -> str:
    """A config value as the evidence text shows it."""
    return _g(float(getattr(d, s.field)) * s.factor)


def fig_expr(f: Fig) -> pl.Expr:
    """A figure as display text (``n/a`` when missing)."""
    x = pl.col(f.column).cast(pl.Float64)
    r = (x * f.factor if f.factor != 1.0 else x).round(f.digits)
    text = r.cast(pl.Int64).cast(pl.String) if f.digits == 0 else r.cast(pl.String)
    return text.fill_null("n/a")


def condition_expr(c: Condition, d: DiagnosisConfig) -> pl.Expr:
    """Boolean, never null: false where the figure is missing."""
    col = pl.col(c.column)
    if c.op == "present":
        return col.is_not_null()
    t = float(getattr(d, c.threshold)) if isinstance(c.threshold, str) else float(c.threshold)
    expr = {">": col > t, "<": col < t, ">=": col >= t, "<=": col <= t}[c.op]
    return expr.fill_null(c.if_missing)


def all_of(conds: tuple[Condition, ...], d: DiagnosisConfig) -> pl.Expr:
    out = pl.lit(True)
    for c in conds:
        out = out & condition_expr(c, d)
    return out


def rule_on(t: Rule, d: DiagnosisConfig) -> bool:
    """Whether the rule is switched on by the config."""
    return t.off_below is None or float(getattr(d, t.off_below[0])) >= t.off_below[1]


def rule_expr(t: Rule, d: DiagnosisConfig) -> pl.Expr:
    """Boolean: the rule holds."""
    return all_of(t.conditions, d) if rule_on(t, d) else pl.lit(False)


def score_value(s: Score, d: DiagnosisConfig) -> pl.Expr:
    """The score formula of a rule (meaningful where the rule holds), never below 0."""
    v = pl.col(s.column).cast(pl.Float64)
    t = float(getattr(d, s.threshold))
    if s.kind == "ratio":
        out = float(getattr(d, s.factor)) * v / t
    else:
        margin = (v - t) if s.side == "above" else (t - v)
        out = (margin / float(getattr(d, s.scale))).clip(lower_bound=0.0)
    return out if s.fallback is None else pl.coalesce(out, score_value(s.fallback, d))


def cause_holds(c: Cause, d: DiagnosisConfig) -> pl.Expr:
    out = pl.lit(False)
    for t in c.rules:
        out = out | rule_expr(t, d)
    return out


def cause_score(c: Cause, d: DiagnosisConfig) -> pl.Expr:
    """Float64: the cause's score, null where it does not hold."""
    parts = [pl.when(rule_expr(t, d)).then(score_value(t.score, d)) for t in c.rules if rule_on(t, d)]
    if not parts:
        return pl.lit(None, dtype=pl.Float64)
    best = pl.max_horizontal(parts) if len(parts) > 1 else parts[0]
    if c.support:
        best = best + pl.when(all_of(c.support, d)).then(d.support_bonus).otherwise(0.0)
    return best.cast(pl.Float64)


def _clause_shown(c: Cause, cl: Clause, d: DiagnosisConfig) -> pl.Expr:
    shown = all_of(cl.when, d)
    if cl.when_rule:
        shown = shown & rule_expr(c.rule(cl.when_rule), d)
    return shown


def _clause_body(cl: Clause, d: DiagnosisConfig) -> pl.Expr:
    parts: list[pl.Expr] = []
    for p in cl.parts:
        if isinstance(p, Fig):
            parts.append(fig_expr(p))
        elif isinstance(p, Setting):
            parts.append(pl.lit(setting_text(d, p)))
        else:
            parts.append(pl.lit(p))
    return pl.concat_str(parts)


def text_expr(c: Cause, d: DiagnosisConfig, clauses: tuple[Clause, ...] | None = None) -> pl.Expr:
    """String: the cause's evidence text (or ``clauses``), clauses joined by their leads; a
    clause's lead is left out when no clause before it is shown."""
    out: Any = None
    any_shown: pl.Expr = pl.lit(False)
    for cl in (c.evidence if clauses is None else clauses):
        shown = _clause_shown(c, cl, d)
        body = _clause_body(cl, d)
        if cl.lead:
            body = pl.when(any_shown).then(pl.concat_str(pl.lit(cl.lead), body)).otherwise(body)
        piece = pl.when(shown).then(body).otherwise(pl.lit(""))
        out = piece if out is None else pl.concat_str(out, piece)
        any_shown = any_shown | shown
    return pl.lit("") if out is None else out
