"""The typed config: defaults, TOML overrides, and one-line errors for bad settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kqi.config import Config, config_from_dict, load_config
from kqi.errors import ConfigError


def test_defaults_match_the_contract() -> None:
    cfg = Config()
    assert (cfg.kqi.thresholds.browsing, cfg.kqi.thresholds.video, cfg.kqi.thresholds.gaming) == (
        0.80, 0.90, 0.90)
    t = cfg.kqi.targets
    assert (t.page_load_ms, t.initial_buffer_ms, t.stall_ratio) == (3000, 2000, 0.02)
    assert (t.rtt_ms, t.jitter_ms, t.loss_pct) == (100, 30, 1.0)
    assert cfg.kqi.min_tests == 30
    assert cfg.kqi.flag_on_upper_bound is False
    assert cfg.diagnosis.ul_interference_dbm == -105


def test_toml_overrides_only_what_it_names(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(
        "[kqi]\nmin_tests = 50\n[kqi.thresholds]\nbrowsing = 0.85\n"
        "[diagnosis]\nul_interference_dbm = -100\n"
        "[complaints.categories]\n'网络差' = 'browsing'\n"
        "[ingest.column_map.cells]\nECellID = 'cell_id'\n",
        encoding="utf-8",
    )
    cfg = load_config(p)
    assert cfg.kqi.min_tests == 50
    assert cfg.kqi.thresholds.browsing == 0.85
    assert cfg.kqi.thresholds.video == 0.90
    assert cfg.diagnosis.ul_interference_dbm == -100.0
    assert cfg.complaints.categories["网络差"] == "browsing"
    assert cfg.complaints.categories["上网慢"] == "browsing"  # defaults kept
    assert cfg.ingest.column_map == {"cells": {"ECellID": "cell_id"}}


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"kqi": {"thresholds": {"browsng": 0.8}}}, "kqi.thresholds.browsng"),
        ({"kqii": {}}, "kqii"),
        ({"kqi": {"min_tests": "thirty"}}, "kqi.min_tests"),
        ({"kqi": {"min_tests": 0}}, "min_tests"),
        ({"kqi": {"thresholds": {"video": 1.5}}}, "kqi.thresholds.video"),
        ({"kqi": {"use_source_good": 1}}, "use_source_good"),
        ({"ingest": {"column_map": {"cellz": {"a": "cell_id"}}}}, "cellz"),
        ({"ingest": {"column_map": {"cells": {"a": "nope"}}}}, "nope"),
        ({"complaints": {"categories": {"x": "voice"}}}, "voice"),
    ],
)
def test_bad_settings_are_named(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        config_from_dict(data)


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("[kqi\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)


def test_config_is_frozen() -> None:
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.kqi.min_tests = 5  # type: ignore[misc]


def test_to_dict_round_trips() -> None:
    cfg = config_from_dict({"kqi": {"min_tests": 12}})
    d = cfg.to_dict()
    assert d["kqi"]["min_tests"] == 12
    assert config_from_dict({"kqi": {"min_tests": d["kqi"]["min_tests"]}}) == cfg


@pytest.mark.parametrize(("toml", "message"), [
    ("[diagnosis]\ninterference_scale_db = 0\n", "'diagnosis.interference_scale_db' must be positive"),
    ("[diagnosis]\nbusy_hours = [25]\n", "'diagnosis.busy_hours' must be hours 0-23"),
    ("[followup]\nalpha = 1.5\n", "'followup.alpha' must lie strictly between 0 and 1"),
    ("[followup]\ncontrols = 0\n", "'followup.controls' must be at least 1"),
    ("[history]\nwindow_days = -7\n", "'history.window_days' must be 0"),
])
def test_section_ranges_fail_at_load(tmp_path, toml: str, message: str) -> None:
    """A bad [diagnosis] / [followup] / [history] value stops the run at load_config, before any
    input is read (it used to surface only once the stage ran)."""
    p = tmp_path / "kqi.toml"
    p.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(p)


def test_a_misspelt_setting_names_the_nearest_one(tmp_path) -> None:
    from kqi.config import load_config
    from kqi.errors import ConfigError

    path = tmp_path / "c.toml"
    path.write_text("[kqi]\nmin_test = 30\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'kqi\.min_test'; did you mean 'min_tests'\?"):
        load_config(path)
