"""The cause registry: one record per cause, from which every other part of kqi is derived.

A :class:`Cause` carries everything kqi knows about one cause of a poor cell:

- its **rule** as data (:class:`Rule`: comparisons of evidence columns with ``[diagnosis]``
  config fields, all of which must hold; a cause holds when any of its rules holds), the
  **score** each rule gives (:class:`Score`: the margin beyond a threshold in units of a scale
  field, or a ratio), and the **support** that adds ``support_bonus``;
- its **evidence text** (:class:`Clause` of literal text, figures of the evidence row
  (:class:`Fig`) and config values (:class:`Setting`)); each literal written as
  ``_p(english, chinese)`` (:func:`kqi.phrases.phrase`: the workbook in Chinese shows the
  Chinese, the CSVs the English);
- its **action** (English and Chinese) and priority **weight** (the defaults of ``[workorders] actions`` and
  ``cause_weight``), **colour** and **labels** (English and Chinese) on the map and in the
  workbook;
- its **proposal boundary** (:class:`Boundary`: which config field a network-calibrated
  proposal replaces, from which evidence column, on which side).

Nothing here is a Python closure: each engine builds its own expressions from the records
(the local engine in :mod:`kqi.diagnosis` with polars; a Spark engine can do the same with
``pyspark.sql.functions``), so the rules cannot drift apart. :func:`check_registry` verifies at
import that every record is complete (a cause without an action, weight, colour or label is an
error, never a silent fallback to ``unknown``'s); :mod:`kqi.config` verifies that every config
field a record names exists.

Adding a cause = adding one record to :data:`REGISTRY` (and, when its rule needs a new
threshold, that field in :class:`kqi.config.DiagnosisConfig`; a missing one fails at import).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from kqi.phrases import PHRASES
from kqi.phrases import phrase as _p

#: comparison operators a condition may use (``present``: the figure is not missing)
Op = Literal[">", "<", ">=", "<=", "present"]
OPS: tuple[str, ...] = (">", "<", ">=", "<=", "present")


@dataclass(frozen=True)
class Condition:
    """``column <op> config.diagnosis.<threshold>`` (or a number, for a fixed bound).

    A missing figure does not satisfy it, unless ``if_missing`` says otherwise: only a guard
    whose figure may be unknowable uses that (the absolute interference rule's "stands out from
    this network's floor", when no floor can be estimated). ``op = "present"`` only asks that the
    figure is not missing (``threshold`` unused).
    """

    column: str
    op: Op
    threshold: str | float = ""
    if_missing: bool = False


@dataclass(frozen=True)
class Score:
    """How strongly a holding rule speaks for its cause, in comparable units.

    ``kind = "margin"``: ``(value - threshold) / scale`` for ``side = "above"``,
    ``(threshold - value) / scale`` for ``"below"``; never below 0.
    ``kind = "ratio"``: ``factor * value / threshold`` (alarms: half a unit per threshold).
    ``scale`` and ``factor`` name config fields.
    """

    column: str
    threshold: str
    kind: Literal["margin", "ratio"] = "margin"
    side: Literal["above", "below"] = "above"
    scale: str = ""
    factor: str = ""
    #: the score where this one's figure is missing (interference without a network floor)
    fallback: Score | None = None


@dataclass(frozen=True)
class Rule:
    """One way a cause holds: every condition holds (and the rule is switched on).

    ``off_below = (field, v)`` switches the rule off while ``config.diagnosis.<field> < v``
    (``alarm_count = 0`` turns alarms off as evidence).
    """

    name: str
    conditions: tuple[Condition, ...]
    score: Score
    off_below: tuple[str, float] | None = None


@dataclass(frozen=True)
class Fig:
    """A figure of the evidence row in the text: ``column x factor`` rounded to ``digits``
    (``n/a`` when missing)."""

    column: str
    digits: int = 1
    factor: float = 1.0


@dataclass(frozen=True)
class Setting:
    """A config value in the text (``config.diagnosis.<field> x factor``, shortest form)."""

    field: str
    factor: float = 1.0


Part = str | Fig | Setting


@dataclass(frozen=True)
class Clause:
    """A piece of evidence text, shown when its conditions hold (all of ``when``, and the
    cause's rule ``when_rule`` if named); joined to the text before it with ``lead``."""

    parts: tuple[Part, ...]
    when: tuple[Condition, ...] = ()
    when_rule: str = ""
    lead: str = "; "


@dataclass(frozen=True)
class Boundary:
    """Where a network-calibrated proposal for ``config_field`` comes from: the cause's
    signature-cluster members vs the healthy cells on ``column``, on ``side``."""

    config_field: str
    column: str
    side: Literal["above", "below"] = "above"


@dataclass(frozen=True)
class Cause:
    """Everything about one cause (see the module docstring)."""

    name: str
    label: str
    label_zh: str
    colour: str
    action: str
    weight: float
    #: the default action in Chinese (the workbook in Chinese shows it for the default action)
    action_zh: str = ""
    rules: tuple[Rule, ...] = ()
    support: tuple[Condition, ...] = ()
    evidence: tuple[Clause, ...] = ()
    review: tuple[Clause, ...] = ()
    boundary: Boundary | None = None
    doc: str = ""

    @property
    def config_fields(self) -> tuple[str, ...]:
        """Every ``[diagnosis]`` field the record reads, in first-use order."""
        names: list[str] = []

        def add(n: str) -> None:
            if n and n not in names:
                names.append(n)

        def add_conds(conds: tuple[Condition, ...]) -> None:
            for c in conds:
                if c.op != "present" and isinstance(c.threshold, str):
                    add(c.threshold)

        for t in self.rules:
            add_conds(t.conditions)
            sc: Score | None = t.score
            while sc is not None:
                add(sc.threshold)
                add(sc.scale)
                add(sc.factor)
                sc = sc.fallback
            if t.off_below:
                add(t.off_below[0])
        add_conds(self.support)
        if self.support:
            add("support_bonus")
        for cl in (*self.evidence, *self.review):
            add_conds(cl.when)
            for p in cl.parts:
                if isinstance(p, Setting):
                    add(p.field)
        if self.boundary:
            add(self.boundary.config_field)
        return tuple(names)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every evidence column the record reads."""
        names: list[str] = []
        conds = [c for t in self.rules for c in t.conditions] + list(self.support)
        conds += [c for cl in (*self.evidence, *self.review) for c in cl.when]
        for c in conds:
            names.append(c.column)
        for t in self.rules:
            sc: Score | None = t.score
            while sc is not None:
                names.append(sc.column)
                sc = sc.fallback
        for cl in (*self.evidence, *self.review):
            names += [p.column for p in cl.parts if isinstance(p, Fig)]
        if self.boundary:
            names.append(self.boundary.column)
        return tuple(dict.fromkeys(names))

    @property
    def scale_fields(self) -> tuple[str, ...]:
        """Config fields that divide a margin (must be positive)."""
        out: list[str] = []
        for t in self.rules:
            sc: Score | None = t.score
            while sc is not None:
                if sc.scale:
                    out.append(sc.scale)
                sc = sc.fallback
        return tuple(dict.fromkeys(out))

    def rule(self, name: str) -> Rule:
        for t in self.rules:
            if t.name == name:
                return t
        raise KeyError(f"cause {self.name!r} has no rule {name!r}")


# --------------------------------------------------------------------------------------------
# The records
# --------------------------------------------------------------------------------------------

_CQI_LOW = Condition("cqi_good_ratio", "<", "cqi_good_ratio")
#: the CQI share came from drive-test samples (the KPIs had none): said so after the figure
_CQI_FROM_SAMPLES = Clause((_p(" (from ", " (来自 "), Fig("smp_cqi_from", 0), _p(" drive-test samples)", " 个路测样本)")),
                           when=(_CQI_LOW, Condition("smp_cqi_from", "present")), lead="")
#: good signal with poor SINR in the cell's drive-test samples: interference as a drive test
#: shows it (corroboration in the text; the rule stays on the uplink figure)
_SINR_FROM_SAMPLES = Clause(
    (_p("drive-test SINR median ", "路测SINR中位数 "), Fig("smp_sinr_median_db", 1), _p(" dB at median RSRP ", " dB，RSRP中位数 "),
     Fig("smp_rsrp_median_dbm", 0), _p(" dBm (good signal, poor SINR; threshold ", " dBm (信号好但SINR差；门限 "),
     Setting("samples_sinr_db"), _p(" dB)", " dB)")),
    when=(Condition("smp_sinr_median_db", "<", "samples_sinr_db"),
          Condition("smp_rsrp_median_dbm", ">", "samples_rsrp_good_dbm")))

_RISE = Condition("ul_rise_db", ">", "interference_rise_db")
_RISE_SCORE = Score("ul_rise_db", "interference_rise_db", scale="interference_scale_db",
                    fallback=Score("ul_interference_dbm", "ul_interference_dbm",
                                   scale="interference_scale_db"))
_UL_FIGURES = (
    Clause((_p("UL interference ", "上行干扰 "), Fig("ul_interference_dbm", 1), _p(" dBm in busy hours", " dBm(忙时)")), lead=""),
    Clause((Fig("ul_over_floor_db", 1), _p(" dB over this network's floor of ", " dB，高于本网底噪 "), Fig("ul_floor_dbm", 1)),
           when=(Condition("ul_floor_dbm", "present"),), lead=", "),
    Clause(("(", Fig("ul_load_rise_db", 1), _p(" dB of it from load)", " dB来自负荷)")),
           when=(Condition("ul_load_rise_db", ">=", 0.05), Condition("ul_floor_dbm", "present")),
           lead=" "),
    Clause((_p("threshold ", "门限 "), Setting("ul_interference_dbm")),),
    Clause((_p("or a rise of ", "或抬升 "), Setting("interference_rise_db"), _p(" dB net of load with CQI>=7 below ", " dB(扣除负荷)且CQI>=7占比低于 "),
            Setting("cqi_good_ratio", 100.0), "%"),
           when=(Condition("ul_floor_dbm", "present"),), lead=", "),
)

INTERFERENCE = Cause(
    name="interference",
    label="Interference", label_zh="干扰",
    colour="#d62728",
    action="Interference hunting: check PIM and external sources, verify parameters",
    weight=1.0,
    action_zh="干扰排查：检查PIM及外部干扰源，核查参数",
    rules=(
        # above the absolute threshold, and standing out from this network's own floor by more
        # than the cell's load explains (on a network whose floor is near the threshold, the
        # level alone would call every cell interference)
        Rule("absolute",
             (Condition("ul_interference_dbm", ">", "ul_interference_dbm"),
              Condition("ul_rise_db", ">", "interference_rise_db", if_missing=True)),
             _RISE_SCORE),
        # the rise over the network floor, net of load, corroborated by degraded CQI
        Rule("relative", (_RISE, _CQI_LOW), _RISE_SCORE),
    ),
    support=(_CQI_LOW,),
    evidence=(
        *_UL_FIGURES,
        Clause((_p("CQI>=7 share ", "CQI>=7占比 "), Fig("cqi_good_ratio", 0, 100.0), _p("%, target ", "%，目标 "),
                Setting("cqi_good_ratio", 100.0), "%"), when=(_CQI_LOW,)),
        _CQI_FROM_SAMPLES,
        _SINR_FROM_SAMPLES,
    ),
    review=(
        *_UL_FIGURES,
        Clause((_p("CQI>=7 share ", "CQI>=7占比 "), Fig("cqi_good_ratio", 0, 100.0), _p("%, target ", "%，目标 "),
                Setting("cqi_good_ratio", 100.0), "%"),),
    ),
    boundary=Boundary("interference_rise_db", "ul_rise_db"),
    doc="busy-hour UL interference above the threshold and above the network floor by more than "
        "load explains, or a rise over the floor net of load with degraded CQI; low CQI supports it",
)

HIGH_LOAD = Cause(
    name="high_load",
    label="High load", label_zh="高负荷",
    colour="#ff7f0e",
    action="Load balancing: adjust handover/idle-mode offsets, add carrier or split sector",
    weight=1.0,
    action_zh="负荷均衡：调整切换/空闲态偏置，扩载波或裂区",
    rules=(
        Rule("absolute", (Condition("prb_util_busy", ">", "prb_util_pct"),),
             Score("prb_util_busy", "prb_util_pct", scale="prb_scale_pct")),
    ),
    support=(Condition("rrc_users_busy", ">", "rrc_users"),),
    evidence=(
        Clause((_p("busy-hour PRB utilisation ", "忙时PRB利用率 "), Fig("prb_util_busy", 1), _p("% (p90 ", "% (p90 "),
                Fig("prb_util_p90", 1), _p("%), threshold ", "%)，门限 "), Setting("prb_util_pct"), "%"), lead=""),
        Clause((_p("network median ", "全网中位数 "), Fig("net_prb_util_busy", 0), "%"),
               when=(Condition("net_prb_util_busy", "present"),)),
        Clause((Fig("rrc_users_busy", 0), _p(" RRC users in busy hours, threshold ", " 忙时RRC用户数，门限 "),
                Setting("rrc_users")), when=(Condition("rrc_users_busy", ">", "rrc_users"),)),
    ),
    boundary=Boundary("prb_util_pct", "prb_util_busy"),
    doc="busy-hour PRB utilisation (of the cell's own PRBs) above the threshold; many RRC users "
        "support it",
)

FAULT = Cause(
    name="fault",
    label="Fault", label_zh="故障",
    colour="#9467bd",
    action="Maintenance dispatch: clear alarms and restore availability",
    weight=1.2,
    action_zh="维护派单：清除告警，恢复可用率",
    rules=(
        Rule("availability", (Condition("availability_min", "<", "availability_pct"),),
             Score("availability_min", "availability_pct", side="below",
                   scale="availability_scale_pct")),
        Rule("alarms", (Condition("alarm_count", ">=", "alarm_count"),),
             Score("alarm_count", "alarm_count", kind="ratio", factor="alarm_score"),
             off_below=("alarm_count", 1)),
    ),
    evidence=(
        Clause((_p("availability fell to ", "可用率降至 "), Fig("availability_min", 1), _p("% (mean ", "% (平均 "),
                Fig("availability_mean", 1), _p("%), threshold ", "%)，门限 "), Setting("availability_pct"), "%"),
               when_rule="availability", lead=""),
        Clause((Fig("alarm_count", 0), _p(" alarms in the window, threshold ", " 条告警(统计窗口内)，门限 "), Setting("alarm_count")),
               when_rule="alarms"),
    ),
    review=(
        Clause((_p("lowest hourly availability ", "最低小时可用率 "), Fig("availability_min", 1), _p("%, threshold ", "%，门限 "),
                Setting("availability_pct"), "%; ", Fig("alarm_count", 0),
                _p(" alarms in the window", " 条告警(统计窗口内)")), lead=""),
    ),
    doc="an hour below the availability threshold, or alarms in the window",
)

WEAK_COVERAGE = Cause(
    name="weak_coverage",
    label="Weak coverage", label_zh="弱覆盖",
    colour="#1f77b4",
    action="Coverage fix: up-tilt or raise power, consider a new site",
    weight=0.9,
    action_zh="覆盖优化：上倾或增加功率，考虑新建站",
    rules=(
        Rule("absolute", (Condition("rsrp_weak_ratio", ">", "rsrp_weak_ratio"),),
             Score("rsrp_weak_ratio", "rsrp_weak_ratio", scale="rsrp_weak_scale")),
    ),
    evidence=(
        Clause((_p("weak-RSRP sample share ", "弱RSRP采样占比 "), Fig("rsrp_weak_ratio", 0, 100.0), _p("%, threshold ", "%，门限 "),
                Setting("rsrp_weak_ratio", 100.0), "%"), lead=""),
        # the KPIs had no MR figure: it came from drive-test samples (kqi.samples.fill_evidence)
        Clause((_p(" (from ", " (来自 "), Fig("smp_rsrp_weak_from", 0), _p(" drive-test samples in ", " 个路测样本，分布于 "),
                Fig("smp_bins", 0), _p(" bins, weighted by place; the KPIs have no MR figure)", " 个栅格，按位置加权；KPI无MR指标)")),
               when=(Condition("smp_rsrp_weak_from", "present"),), lead=""),
        Clause((_p("network median ", "全网中位数 "), Fig("net_rsrp_weak_ratio", 0, 100.0), "%"),
               when=(Condition("net_rsrp_weak_ratio", "present"),)),
    ),
    boundary=Boundary("rsrp_weak_ratio", "rsrp_weak_ratio"),
    doc="share of MR samples with RSRP below -110 dBm above the threshold",
)

OVERSHOOTING = Cause(
    name="overshooting",
    label="Overshooting", label_zh="越区覆盖",
    colour="#e377c2",
    action="Overshooting fix: down-tilt, adjust azimuth or reduce power",
    weight=0.9,
    action_zh="越区覆盖优化：下倾、调整方位角或降低功率",
    rules=(
        Rule("absolute", (Condition("ta_isd_ratio", ">", "overshoot_isd_factor"),),
             Score("ta_isd_ratio", "overshoot_isd_factor", scale="overshoot_scale")),
        # no TA in the KPIs: the p90 distance of the cell's drive-test samples (by place)
        Rule("samples", (Condition("smp_dist_isd_ratio", ">", "overshoot_isd_factor"),),
             Score("smp_dist_isd_ratio", "overshoot_isd_factor", scale="overshoot_scale")),
    ),
    evidence=(
        Clause((_p("TA p90 ", "TA p90 "), Fig("ta_p90_m", 0), _p(" m = ", " 米 = "), Fig("ta_isd_ratio", 2), _p(" x local ISD ", " 倍本地站间距 "),
                Fig("isd_m", 0), _p(" m, threshold ", " 米，门限 "), Setting("overshoot_isd_factor"), _p(" x", " 倍")),
               when_rule="absolute", lead=""),
        Clause((_p("network median ", "全网中位数 "), Fig("net_ta_isd_ratio", 2), _p(" x", " 倍")),
               when=(Condition("net_ta_isd_ratio", "present"),), when_rule="absolute"),
        Clause((_p("drive-test p90 distance ", "路测p90距离 "), Fig("smp_dist_p90_m", 0), _p(" m = ", " 米 = "),
                Fig("smp_dist_isd_ratio", 2), _p(" x local ISD ", " 倍本地站间距 "), Fig("smp_isd_m", 0), _p(" m (", " 米 ("),
                Fig("smp_samples", 0), _p(" samples in ", " 个样本，分布于 "), Fig("smp_bins", 0),
                _p(" bins; the KPIs have no TA), threshold ", " 个栅格；KPI无TA)，门限 "), Setting("overshoot_isd_factor"), _p(" x", " 倍")),
               when_rule="samples"),
    ),
    review=(
        Clause((_p("TA p90 ", "TA p90 "), Fig("ta_p90_m", 0), _p(" m = ", " 米 = "), Fig("ta_isd_ratio", 2), _p(" x local ISD ", " 倍本地站间距 "),
                Fig("isd_m", 0), _p(" m, threshold ", " 米，门限 "), Setting("overshoot_isd_factor"), _p(" x", " 倍")),
               lead=""),
        Clause((_p("network median ", "全网中位数 "), Fig("net_ta_isd_ratio", 2), _p(" x", " 倍")),
               when=(Condition("net_ta_isd_ratio", "present"),)),
    ),
    boundary=Boundary("overshoot_isd_factor", "ta_isd_ratio"),
    doc="TA p90 beyond a multiple of the local inter-site distance",
)

UNKNOWN = Cause(
    name="unknown",
    label="Unknown cause", label_zh="原因不明",
    colour="#7f7f7f",
    action="Investigate: check core network, transport and app side; drive test",
    weight=0.8,
    action_zh="排查：检查核心网、传输和应用侧；路测",
    evidence=(
        Clause((_p("no cause evidence beyond thresholds", "无超出门限的原因证据"),), lead=""),
        Clause((_p("low CQI: CQI>=7 share ", "CQI偏低：CQI>=7占比 "), Fig("cqi_good_ratio", 0, 100.0), _p("%, target ", "%，目标 "),
                Setting("cqi_good_ratio", 100.0), "%"), when=(_CQI_LOW,)),
        _CQI_FROM_SAMPLES,
        _SINR_FROM_SAMPLES,
        Clause((_p(" (check core network, transport, app side)", " (请检查核心网、传输和应用侧)"),), lead=""),
    ),
    doc="no rule holds: core network, transport or app side (low CQI alone is stated, not a cause)",
)

#: every cause, in tie-break order (an exact tie of scores goes to the earlier cause);
#: ``unknown`` (no rule: what remains) is last
REGISTRY: tuple[Cause, ...] = (INTERFERENCE, HIGH_LOAD, FAULT, WEAK_COVERAGE, OVERSHOOTING, UNKNOWN)

#: the fallback cause: no rule, what remains when no rule holds
FALLBACK = "unknown"

BY_NAME: dict[str, Cause] = {c.name: c for c in REGISTRY}

_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class RegistryError(Exception):
    """A cause record is incomplete or inconsistent (raised at import)."""


def check_registry(registry: tuple[Cause, ...]) -> None:
    """Every record complete and consistent; raises :class:`RegistryError` naming the cause.

    Complete: a name, an action, a positive weight, a ``#rrggbb`` colour, English and Chinese
    labels, evidence text; every cause but the fallback has at least one rule, the fallback
    none. Consistent: unique names and rule names, known operators, a scale for every margin
    score and a factor for every ratio, ``when_rule`` naming one of the cause's rules.
    """
    seen: set[str] = set()
    for c in registry:
        where = f"cause {c.name!r}"
        if not _NAME.match(c.name):
            raise RegistryError(f"{where}: a name must be lower_snake_case")
        if c.name in seen:
            raise RegistryError(f"{where}: defined twice")
        seen.add(c.name)
        for attr in ("action", "action_zh", "label", "label_zh"):
            if not str(getattr(c, attr)).strip():
                raise RegistryError(f"{where}: no {attr}")
        if not c.weight > 0:
            raise RegistryError(f"{where}: weight must be positive, got {c.weight}")
        if not _COLOUR.match(c.colour):
            raise RegistryError(f"{where}: colour must be #rrggbb, got {c.colour!r}")
        if not c.evidence:
            raise RegistryError(f"{where}: no evidence text")
        if (c.name == FALLBACK) != (not c.rules):
            raise RegistryError(f"{where}: every cause but '{FALLBACK}' needs a rule; "
                                f"'{FALLBACK}' has none")
        names = [t.name for t in c.rules]
        if len(set(names)) != len(names):
            raise RegistryError(f"{where}: rule names repeat")
        conds = [x for t in c.rules for x in t.conditions] + list(c.support)
        conds += [x for cl in (*c.evidence, *c.review) for x in cl.when]
        for x in conds:
            if x.op not in OPS:
                raise RegistryError(f"{where}: unknown operator {x.op!r}")
            if x.op != "present" and x.threshold == "":
                raise RegistryError(f"{where}: condition on {x.column} has no threshold field")
        for t in c.rules:
            if not t.conditions:
                raise RegistryError(f"{where}: rule {t.name!r} has no condition")
            sc: Score | None = t.score
            while sc is not None:
                if sc.kind == "margin" and not sc.scale:
                    raise RegistryError(f"{where}: rule {t.name!r} scores a margin without a scale")
                if sc.kind == "ratio" and not sc.factor:
                    raise RegistryError(f"{where}: rule {t.name!r} scores a ratio without a factor")
                sc = sc.fallback
        for cl in (*c.evidence, *c.review):
            if cl.when_rule and cl.when_rule not in names:
                raise RegistryError(f"{where}: text names unknown rule {cl.when_rule!r}")
            for p in (*cl.parts, cl.lead):
                if isinstance(p, str) and re.search("[A-Za-z]", p) and p not in PHRASES:
                    raise RegistryError(f"{where}: text {p!r} has no Chinese (write it as "
                                        "_p(english, chinese))")
    if FALLBACK not in seen:
        raise RegistryError(f"the registry has no '{FALLBACK}' cause")
    if registry[-1].name != FALLBACK:
        raise RegistryError(f"'{FALLBACK}' must be the last cause")


check_registry(REGISTRY)

# a cause's code in a sentence (``| also high_load: ...``) in Chinese
for _c in REGISTRY:
    _p(_c.name, _c.label_zh)

#: cause names in registry order (``kqi.schema.CAUSES``)
CAUSE_NAMES: tuple[str, ...] = tuple(c.name for c in REGISTRY)
#: causes a rule can establish (every cause but the fallback)
RULE_CAUSES: tuple[str, ...] = tuple(c.name for c in REGISTRY if c.rules)

#: network figures the texts state: ``net_<column>`` = the median of ``<column>`` over the
#: cells that are not poor (kqi.diagnosis.network_relative)
NETWORK_MEDIANS: tuple[str, ...] = tuple(dict.fromkeys(
    p.column[4:] for c in REGISTRY for cl in (*c.evidence, *c.review) for p in cl.parts
    if isinstance(p, Fig) and p.column.startswith("net_")))

#: languages the labels exist in
LANGUAGES: tuple[str, ...] = ("en", "zh")


def label(name: str, language: str = "en") -> str:
    """The cause's label in ``language`` (``en`` or ``zh``); a name outside the registry is
    returned as written."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    c = BY_NAME.get(name)
    if c is None:
        return name
    return c.label_zh if language == "zh" else c.label
