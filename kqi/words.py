"""Words for the people who read the workbook: column headers and coded values in English or
Chinese (``[output] language``).

The CSVs keep the data contract's column names and codes (``primary_cause = high_load``); the
workbook shows ``High load`` / ``高负荷`` under ``Primary cause`` / ``主要原因``. Cause labels come
from the cause registry (:func:`kqi.causes.label`), the one definition of each cause's words.
A column or value without words here is shown as written. Sentences (evidence, review notes,
the control basis) are shown through :func:`kqi.phrases.in_words`: their words are given where
each is built.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from kqi.causes import LANGUAGES, label
from kqi.phrases import in_words

__all__ = ["LANGUAGES", "figure", "header", "scope", "section", "sheet", "translate",
           "value_words"]

#: column -> (English, Chinese)
COLUMNS: dict[str, tuple[str, str]] = {
    # work orders
    "rank": ("Rank", "排名"),
    "cell_id": ("Cell ID", "小区ID"),
    "cell_name": ("Cell name", "小区名称"),
    "site_id": ("Site", "基站"),
    "vendor": ("Vendor", "厂家"),
    "region": ("Region", "区域"),
    "poor_services": ("Poor services", "质差业务"),
    "primary_cause": ("Primary cause", "主要原因"),
    "secondary_causes": ("Secondary causes", "次要原因"),
    "evidence": ("Evidence", "依据"),
    "complaints": ("Complaints", "投诉数"),
    "priority_score": ("Priority", "优先级"),
    "action": ("Recommended action", "建议措施"),
    "order_id": ("Order ID", "工单号"),
    "order_status": ("Order status", "工单状态"),
    "first_seen": ("First seen", "首次发现"),
    "runs_poor": ("Runs poor", "质差次数"),
    "silent": ("Silent (no complaint)", "无投诉"),
    # two bases: every test of the cell, and the not-good tests of its poor services only
    "tests": ("Tests (all services)", "测试数(全部业务)"),
    "poor_tests": ("Not-good tests (poor services)", "差测试数(质差业务)"),
    "rrc_users_busy": ("Busy-hour RRC users", "忙时RRC用户数"),
    "complaint_ids": ("Complaint IDs", "投诉单号"),
    "review_note": ("To review", "待复核说明"),
    # follow-up
    "opened": ("Opened", "开单日期"),
    "cause_at_open": ("Cause at opening", "开单时原因"),
    "good_rate_before": ("Good rate before", "整改前良好率"),
    "good_rate_after": ("Good rate after", "整改后良好率"),
    "tests_after": ("Tests after", "整改后测试数"),
    "tests_before": ("Tests before", "整改前测试数"),
    "good_tests_before": ("Good tests before", "整改前良好测试数"),
    "good_tests_after": ("Good tests after", "整改后良好测试数"),
    "control_delta": ("Control change", "对照组变化"),
    "effect": ("Effect", "效果"),
    "p_value": ("p-value", "p值"),
    "verdict": ("Verdict", "结论"),
    "status": ("Status", "状态"),
    "service": ("Service", "业务"),
    "controls": ("Control cells", "对照小区数"),
    "control_basis": ("Control basis", "对照依据"),
    "control_rate_before": ("Control rate before", "对照组整改前良好率"),
    "control_rate_after": ("Control rate after", "对照组整改后良好率"),
    "complaints_before": ("Complaints before", "整改前投诉数"),
    "complaints_after": ("Complaints after", "整改后投诉数"),
    # hotspots
    "kind": ("Ranked by", "排名依据"),
    "previous": ("Previous period", "上一周期"),
    "increase": ("Increase", "增量"),
    "subscribers": ("Subscribers", "用户数"),
    "per_10k": ("Per 10,000 subscribers", "每万用户投诉"),
    "subscribers_source": ("Subscribers from", "用户数来源"),
    "lat": ("Latitude", "纬度"),
    "lon": ("Longitude", "经度"),
    "radius_m": ("Radius (m)", "半径(米)"),
    # summary tables
    "scope": ("Scope", "范围"),
    "cells reporting": ("Cells reporting", "有测试小区"),
    "poor cells": ("Poor cells", "质差小区"),
    "poor share": ("Poor share", "质差占比"),
    "feed": ("Input", "输入"),
    "rows read": ("Rows read", "读取行数"),
    "rows accepted": ("Accepted", "接受"),
    "rows rejected": ("Rejected", "拒绝"),
    "rejects file": ("Rejected rows in", "拒绝行文件"),
    "cause": ("Cause", "原因"),
    "primary": ("Primary cause of", "主要原因小区数"),
    "secondary": ("Secondary cause of", "次要原因小区数"),
    "work orders": ("Work orders", "工单数"),
    "threshold": ("Poor at or below", "质差门限"),
    "min tests": ("Min. tests", "最少测试数"),
    "setting": ("Setting", "参数"),
    "current": ("Current", "当前值"),
    "proposed": ("Proposed", "建议值"),
    "basis": ("Basis", "依据"),
    "figure": ("Figure", "指标"),
    "value": ("Value", "数值"),
    "order state": ("Order state", "工单状态"),
    "orders": ("Orders", "工单数"),
    "recovered": ("Recovered", "已恢复"),
    "not recovered": ("Not recovered", "未恢复"),
    "worse": ("Worse", "恶化"),
    "insufficient data": ("Insufficient data", "数据不足"),
    "orders with tests": ("Orders with tests", "有测试工单"),
    "good rate before": ("Good rate before", "整改前良好率"),
    "good rate after": ("Good rate after", "整改后良好率"),
    "change": ("Change", "变化"),
    "mean effect": ("Mean effect", "平均效果"),
    "order (service)": ("Order (service)", "工单(业务)"),
}

#: coded values -> (English, Chinese), per kind of value
_SERVICES: dict[str, tuple[str, str]] = {
    "browsing": ("browsing", "浏览"), "video": ("video", "视频"), "gaming": ("gaming", "游戏"),
    "coverage": ("coverage", "覆盖"),
}
_VALUES: dict[str, dict[str, tuple[str, str]]] = {
    "order_status": {"new": ("new", "新建"), "persisting": ("persisting", "持续"),
                     "reopened": ("reopened", "重开"), "escalated": ("escalated", "升级")},
    "verdict": {"recovered": ("recovered", "已恢复"), "not_recovered": ("not recovered", "未恢复"),
                "worse": ("worse", "恶化"), "insufficient_data": ("insufficient data", "数据不足")},
    "status": {"closed": ("closed", "已关闭"), "open": ("open", "未关闭"),
               "escalated": ("escalated", "已升级")},
    "kind": {"volume": ("volume", "投诉量"), "increase": ("increase", "增量"),
             "per_10k": ("per 10,000 subscribers", "每万用户"), "spatial": ("place", "区域聚集")},
    "order state": {"opened": ("opened", "新开"), "reopened": ("reopened", "重开"),
                    "persisting": ("persisting", "持续"), "escalated": ("escalated", "升级"),
                    "verified": ("verified", "已验证"),
                    "closed_recovered": ("closed as recovered", "恢复关闭"),
                    "open": ("open", "未关闭"), "closed": ("closed", "已关闭")},
    # the inputs as readers name them (the workbook's and summary.md's Inputs tables)
    "feed": {"cells": ("Cells (engineering parameters)", "工参"),
             "app_tests": ("App tests", "业务测试"),
             "cell_kpis": ("Cell KPIs (hourly)", "小区KPI(小时)"),
             "complaints": ("Complaints", "投诉"), "subscribers": ("Subscribers", "用户数"),
             "samples": ("Drive-test / MR samples", "路测/MR测量样本")},
    "bool": {"true": ("yes", "是"), "false": ("no", "否")},
    "subscribers_source": {"file:cell": ("subscribers file, per cell", "用户数文件(按小区)"),
                           "file:region": ("subscribers file, per region", "用户数文件(按区域)"),
                           "estimate:rrc_users": ("estimated from busy-hour RRC users",
                                                  "按忙时RRC用户数估算")},
}
#: section titles of the workbook's summary sheet
SECTIONS: dict[str, tuple[str, str]] = {
    "case": ("Poor-quality cells", "质差小区"),
    "rule": ("Rule", "判定规则"),
    "inputs": ("Inputs", "输入数据"),
    "causes": ("Causes of poor cells", "质差原因"),
    "proposals": ("Proposed thresholds, calibrated to this network (not applied)",
                  "按本网校准的建议门限(未应用)"),
    "complaints": ("Complaints", "投诉"),
    "work_orders": ("Work orders by primary cause", "按主要原因的工单"),
    "vendors": ("Work orders by vendor", "按厂家的工单"),
    "programme": ("Follow-up programme (closed loop)", "闭环跟踪"),
    "hotspots": ("Complaint hotspots", "投诉热点"),
    "diagnosis": ("Diagnosis", "诊断"),
    "diagnosis_notes": ("Diagnosis notes", "诊断说明"),
    "other": ("Other figures", "其他指标"),
    "title": ("kqi work orders", "kqi 工单"),
    "total": ("Total", "合计"),
    "all": ("All cells", "全部小区"),
}
#: figures of the summary (``summary.json`` keys) -> words
FIGURES: dict[str, tuple[str, str]] = {
    "complaints": ("Complaints", "投诉"),
    "network_complaints": ("Network complaints", "网络类投诉"),
    "linked": ("Linked to a cell", "关联到小区"),
    "non_network": ("Not about the network", "非网络类"),
    "crm": ("Linked by the ticket's cell", "按工单小区关联"),
    "spatial": ("Linked by position and beam", "按位置与波束关联"),
    "unlinked": ("Not linked", "未关联"),
    "silent_poor_cells": ("Silent poor cells (no complaint yet)", "无投诉质差小区"),
    "hotspots": ("Hotspots (distinct places)", "热点(不重复地点)"),
    "hotspot_rankings": ("Hotspots ranked", "热点排名"),
    "poor_cells": ("Poor cells diagnosed", "已诊断质差小区"),
    "review": ("Diagnoses to review", "待复核诊断"),
    "areas": ("Poor-quality areas", "质差区域"),
    "cells_in_areas": ("Poor cells in areas", "区域内质差小区"),
    "not_judged": ("Causes not judged (KPI columns missing)", "无法判断的原因(缺少KPI列)"),
    "network": ("This network's reference", "本网参考基准"),
    "flag_on_upper_bound": ("Poor only when the Wilson upper bound is too", "威尔逊上界也需低于门限"),
}
#: the workbook's own sheet names (the vendors' sheets are named by vendor) -> words
SHEETS: dict[str, tuple[str, str]] = {
    "summary": ("Summary", "汇总"),
    "all_orders": ("All orders", "全部工单"),
    "followup": ("Follow-up", "跟踪复核"),
    "trends": ("Trends", "趋势"),
    "unknown_vendor": ("Unknown vendor", "未知厂家"),
}
_SCOPES: dict[str, tuple[str, str]] = {"vendor": ("Vendor", "厂家"), "region": ("Region", "区域"),
                                       "cause": ("Cause", "原因")}
#: columns of sentences built from :func:`kqi.phrases.phrase` fragments: in words fragment by
#: fragment (:func:`kqi.phrases.in_words`), the figures unchanged
_SENTENCE_COLUMNS = ("evidence", "review_note", "control_basis", "basis")
_CAUSE_COLUMNS = ("primary_cause", "cause_at_open", "cause")
_CAUSE_LISTS = ("secondary_causes",)
_SERVICE_COLUMNS = ("service",)
_SERVICE_LISTS = ("poor_services",)


def _pick(pair: tuple[str, str], language: str) -> str:
    return pair[1] if language == "zh" else pair[0]


def _check(language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")


def header(name: str, language: str = "en") -> str:
    """The words for column ``name`` (``good_rate_video`` -> ``Good rate video`` / ``视频良好率``);
    a column without words is shown as written."""
    _check(language)
    if name in COLUMNS:
        return _pick(COLUMNS[name], language)
    for prefix, en, zh in (("good_rate_", "Good rate {}", "{}良好率"),
                           ("poor ", "Poor {}", "{}质差")):
        svc = name.removeprefix(prefix)
        if svc != name and svc in _SERVICES:
            return (zh if language == "zh" else en).format(_pick(_SERVICES[svc], language))
    return name


def section(key: str, language: str = "en") -> str:
    """A summary-sheet title (:data:`SECTIONS`)."""
    _check(language)
    return _pick(SECTIONS[key], language)


def figure(key: str, language: str = "en") -> str:
    """A summary figure's words (:data:`FIGURES`), else the key with spaces."""
    _check(language)
    return _pick(FIGURES[key], language) if key in FIGURES else key.replace("_", " ")


def sheet(key: str, language: str = "en") -> str:
    """A sheet name of the workbook (:data:`SHEETS`): ``Summary`` / ``汇总`` ..."""
    _check(language)
    return _pick(SHEETS[key], language)


def scope(text: str, language: str = "en") -> str:
    """A case-table scope in words: ``all``, ``vendor: ZTE``, ``cause: high_load`` ..."""
    _check(language)
    if text == "all":
        return section("all", language)
    dim, sep, rest = text.partition(": ")
    if sep and dim in _SCOPES:
        if dim == "cause":
            rest = label(rest, language)
        return f"{_pick(_SCOPES[dim], language)}: {rest}"
    return text


def value_words(kind: str, language: str = "en") -> dict[str, str]:
    """Code -> words for one kind of value: a column name of :data:`_VALUES`, ``cause`` or
    ``service``."""
    _check(language)
    if kind == "cause":
        from kqi.causes import CAUSE_NAMES

        return {c: label(c, language) for c in CAUSE_NAMES}
    if kind == "service":
        return {k: _pick(v, language) for k, v in _SERVICES.items()}
    return {k: _pick(v, language) for k, v in _VALUES.get(kind, {}).items()}


def _sentences(values: pl.Series, language: str) -> pl.Series:
    """Sentences in ``language``, each distinct one once."""
    if language == "en" or values.len() == 0:
        return values
    words = {v: in_words(v, language) for v in values.unique().drop_nulls().to_list()}
    return values.replace(words)


def _actions(language: str) -> dict[str, str]:
    """The default action of each cause (the registry's) -> its words; an action set in
    ``[workorders.actions]`` is shown as written."""
    from kqi.causes import REGISTRY

    return {c.action: (c.action_zh if language == "zh" else c.action) for c in REGISTRY}


def _replace(expr: pl.Expr, words: Mapping[str, str]) -> pl.Expr:
    return expr.replace(dict(words))


def _replace_list(expr: pl.Expr, words: Mapping[str, str], joiner: str) -> pl.Expr:
    """A ``;``-joined list of codes as words joined by ``joiner``."""
    return (expr.str.split(";").list.eval(pl.element().str.strip_chars().replace(dict(words)))
            .list.join(joiner))


def translate(df: pl.DataFrame, language: str = "en") -> pl.DataFrame:
    """``df`` with its coded values in words (causes, services, statuses, verdicts, hotspot kinds,
    yes / no, the default actions) and its sentences (evidence, review notes, control basis, a proposal's basis) in
    ``language``; column names unchanged (see :func:`header`)."""
    _check(language)
    joiner = "、" if language == "zh" else ", "
    causes, services = value_words("cause", language), value_words("service", language)
    yes_no = value_words("bool", language)
    exprs: list[pl.Expr | pl.Series] = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        if dtype == pl.Boolean:
            exprs.append(pl.when(col).then(pl.lit(yes_no["true"]))
                         .when(col.not_()).then(pl.lit(yes_no["false"])).alias(name))
        elif dtype != pl.String:
            continue
        elif name == "scope":   # a few rows (the summary's tables): words one by one
            exprs.append(pl.Series(name, [None if v is None else scope(v, language)
                                          for v in df[name].to_list()], dtype=pl.String))
        elif name in _SENTENCE_COLUMNS:
            exprs.append(_sentences(df[name], language))
        elif name == "action":
            exprs.append(_replace(col, _actions(language)))
        elif name in _CAUSE_COLUMNS:
            exprs.append(_replace(col, causes))
        elif name in _CAUSE_LISTS:
            exprs.append(_replace_list(col, causes, joiner))
        elif name in _SERVICE_COLUMNS:
            exprs.append(_replace(col, services))
        elif name in _SERVICE_LISTS:
            exprs.append(_replace_list(col, services, joiner))
        elif name in _VALUES:
            exprs.append(_replace(col, value_words(name, language)))
    return df.with_columns(exprs) if exprs else df

