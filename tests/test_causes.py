"""The cause registry: every record complete, everything else derived from it."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from kqi import causes
from kqi.causes import (
    BY_NAME,
    FALLBACK,
    REGISTRY,
    Cause,
    Clause,
    Condition,
    Fig,
    RegistryError,
    Rule,
    Score,
    Setting,
    check_registry,
)
from kqi.config import Config, DiagnosisConfig, config_from_dict
from kqi.errors import ConfigError
from kqi.schema import CAUSES


def test_causes_derived_from_registry() -> None:
    assert tuple(c.name for c in REGISTRY) == CAUSES
    assert CAUSES[-1] == FALLBACK
    from kqi.maps.render import CAUSE_COLOURS, CAUSE_LABELS

    from kqi.diagnosis import RULE_CAUSES

    assert CAUSES[:-1] == RULE_CAUSES
    assert {c.name: c.colour for c in REGISTRY} == CAUSE_COLOURS
    assert {c.name: c.label for c in REGISTRY} == CAUSE_LABELS
    w = Config().workorders
    assert w.actions == {c.name: c.action for c in REGISTRY}
    assert w.cause_weight == {c.name: c.weight for c in REGISTRY}


def test_records_are_data() -> None:
    # a second engine builds its expressions from the records: nothing in them is code
    def walk(x: object) -> None:
        assert not callable(x) or isinstance(x, type), x
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            for f in dataclasses.fields(x):
                walk(getattr(x, f.name))
        elif isinstance(x, tuple):
            for v in x:
                walk(v)
        else:
            assert x is None or isinstance(x, str | int | float), x

    for c in REGISTRY:
        walk(c)


def test_every_named_config_field_exists_and_is_a_number() -> None:
    hints = typing.get_type_hints(DiagnosisConfig)
    for c in REGISTRY:
        for name in c.config_fields:
            assert hints[name] in (int, float), (c.name, name)


def test_labels() -> None:
    assert causes.label("interference") == "Interference"
    assert causes.label("interference", "zh") == "干扰"
    assert causes.label("not_a_cause", "zh") == "not_a_cause"
    with pytest.raises(ValueError, match="language"):
        causes.label("fault", "fr")
    assert all(c.label_zh for c in REGISTRY)


def _cause(**kw: object) -> Cause:
    base: dict[str, object] = {
        "name": "pim", "label": "PIM", "label_zh": "无源互调", "colour": "#123456", "action": "Check PIM",
        "action_zh": "排查无源互调", "weight": 1.0,
        "rules": (Rule("absolute", (Condition("ul_interference_dbm", ">", "ul_interference_dbm"),),
                    Score("ul_interference_dbm", "ul_interference_dbm", scale="interference_scale_db")),),
        # fragments with their Chinese recorded (kqi.phrases) by the registry's own records
        "evidence": (Clause(("UL interference ", Fig("ul_interference_dbm"), ", ", "threshold ",
                          Setting("ul_interference_dbm")), lead=""),),
    }
    base.update(kw)
    return Cause(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("change", "message"), [
    ({"action": ""}, "no action"),
    ({"action_zh": ""}, "no action_zh"),
    ({"evidence": (Clause(("UL level ", Fig("ul_interference_dbm")), lead=""),)}, "has no Chinese"),
    ({"label_zh": " "}, "no label_zh"),
    ({"weight": 0.0}, "weight must be positive"),
    ({"colour": "red"}, "colour must be"),
    ({"evidence": ()}, "no evidence text"),
    ({"rules": ()}, "needs a rule"),
    ({"name": "Bad Name"}, "lower_snake_case"),
    ({"rules": (Rule("t", (Condition("x", ">", "ul_interference_dbm"),),
                     Score("x", "ul_interference_dbm")),)}, "without a scale"),
    ({"rules": (Rule("t", (Condition("x", "~", "y"),),  # type: ignore[arg-type]
                     Score("x", "y", scale="z")),)}, "unknown operator"),
    ({"evidence": (Clause(("x",), when_rule="nope"),)}, "unknown rule"),
])
def test_incomplete_record_is_an_error(change: dict[str, object], message: str) -> None:
    check_registry((_cause(), *REGISTRY))  # the record itself is complete
    with pytest.raises(RegistryError, match=message):
        check_registry((_cause(**change), *REGISTRY))


def test_registry_needs_the_fallback_last() -> None:
    with pytest.raises(RegistryError, match="no 'unknown'"):
        check_registry(REGISTRY[:-1])
    with pytest.raises(RegistryError, match="must be the last"):
        check_registry((REGISTRY[-1], *REGISTRY[:-1]))
    with pytest.raises(RegistryError, match="defined twice"):
        check_registry((REGISTRY[0], *REGISTRY))


def test_config_fields_of_a_record_are_listed() -> None:
    f = BY_NAME["fault"].config_fields
    assert {"availability_pct", "availability_scale_pct", "alarm_count", "alarm_score"} <= set(f)
    assert "support_bonus" in BY_NAME["interference"].config_fields


def test_workorder_tables_must_name_known_causes() -> None:
    with pytest.raises(ConfigError, match=r"'workorders\.actions\.interferance': unknown cause"):
        config_from_dict({"workorders": {"actions": {"interferance": "hunt"}}})
    with pytest.raises(ConfigError, match=r"cause_weight\.fault' must be a positive number"):
        config_from_dict({"workorders": {"cause_weight": {"fault": 0}}})
    with pytest.raises(ConfigError, match="non-empty string"):
        config_from_dict({"workorders": {"actions": {"fault": " "}}})
    cfg = config_from_dict({"workorders": {"cause_weight": {"fault": 2}}})
    assert cfg.workorders.cause_weight["fault"] == 2
    assert cfg.workorders.cause_weight["unknown"] == BY_NAME["unknown"].weight


def test_work_orders_refuse_a_table_without_a_cause(tmp_path: object) -> None:
    import polars as pl

    from kqi.workorders import build_work_orders

    w = dataclasses.replace(Config().workorders, actions={
        k: v for k, v in Config().workorders.actions.items() if k != "overshooting"})
    cfg = dataclasses.replace(Config(), workorders=w)
    empty = pl.DataFrame(schema={"cell_id": pl.String, "service": pl.String, "tests": pl.Int64,
                                 "good_tests": pl.Int64, "good_rate": pl.Float64,
                                 "poor": pl.Boolean})
    with pytest.raises(ConfigError, match=r"'workorders\.actions' has no entry for cause 'overshooting'"):
        build_work_orders(None, empty, pl.DataFrame({"cell_id": ["a"]}), None, cfg)


def test_sentences_in_chinese_fragment_by_fragment() -> None:
    """The workbook's Chinese sentences: every recorded fragment in Chinese, figures unchanged,
    a cause code only as a whole word; a fragment with two Chinese words is an error."""
    import kqi.diagnosis  # records " | also "
    import kqi.followup  # noqa: F401  (records the control basis)
    from kqi.phrases import in_words, phrase

    en = ("busy-hour PRB utilisation 85.3% (p90 90.1%), threshold 80% | also interference: "
          "UL interference -101.2 dBm in busy hours")
    assert in_words(en, "en") == en
    assert in_words(en, "zh") == ("忙时PRB利用率 85.3% (p90 90.1%)，门限 80% | 另有干扰: "
                                  "上行干扰 -101.2 dBm(忙时)")
    assert in_words("faulty", "zh") == "faulty"      # not the code 'fault'
    # a fragment's word ends are word boundaries: names from the data are left as written
    assert in_words("Block x2", "zh") == "Block x2"  # not the fragment " x"
    assert in_words("TA 2.10 x", "zh") == "TA 2.10 倍"
    assert [in_words(v, "zh") for v in ("1 neighbour", "12 neighbours", "network")] == [
        "1 个邻区", "12 个邻区", "全网"]
    assert phrase("threshold ", "门限 ") == "threshold "
    with pytest.raises(ValueError, match="two Chinese"):
        phrase("threshold ", "阈值 ")
