"""One typed, frozen configuration object with documented defaults.

Every target, threshold and rule weight lives here; code reads them from a :class:`Config`, never
from literals. A TOML file (``--config``) overrides any subset::

    [kqi]
    min_tests = 50
    [kqi.thresholds]
    browsing = 0.85
    [diagnosis]
    ul_interference_dbm = -100      # a TDD network
    [ingest.column_map.cells]       # headers that are not among the aliases
    ECellID = "cell_id"

Unknown sections or keys are an error (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kqi.causes import REGISTRY
from kqi.errors import ConfigError


@dataclass(frozen=True)
class Targets:
    """Per-test KQI targets: a test is good when it meets every target of its service."""

    page_load_ms: float = 3000.0       # browsing: page displayed within
    initial_buffer_ms: float = 2000.0  # video: initial buffering within
    stall_ratio: float = 0.02          # video: stalled share of play time at most
    rtt_ms: float = 100.0              # gaming: round-trip time at most
    jitter_ms: float = 30.0            # gaming: jitter at most
    loss_pct: float = 1.0              # gaming: packet loss (percent) at most


@dataclass(frozen=True)
class Thresholds:
    """Good-rate at or below which a cell is poor for the service."""

    browsing: float = 0.80
    video: float = 0.90
    gaming: float = 0.90

    def for_service(self, service: str) -> float:
        return float(getattr(self, service))


@dataclass(frozen=True)
class KqiConfig:
    """Per-test verdicts and per-cell poor flags."""

    min_tests: int = 30                 # a cell needs this many tests of a service to be judged
    use_source_good: bool = False       # take the feed's own `good` column when present
    flag_on_upper_bound: bool = False   # also require the Wilson upper bound <= threshold
    confidence_z: float = 1.96          # z of the Wilson interval (1.96 = 95 %)
    targets: Targets = field(default_factory=Targets)
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass(frozen=True)
class DiagnosisConfig:
    """Cause evidence thresholds (defaults from field practice, see docs/domain.md)."""

    busy_hours: tuple[int, ...] = ()        # fixed busy hours (0-23); empty = each cell's top hours
    busy_hour_count: int = 4                # top-traffic hours per cell when busy_hours is empty
    quiet_hour_count: int = 4               # lowest-traffic hours per cell: its quiet UL level
    ul_interference_dbm: float = -105.0     # busy-hour mean UL interference above this (FDD)
    interference_rise_db: float = 6.0       # busy-hour UL over the network floor, net of load,
    #                                         above this (with the level above or CQI degraded)
    floor_quantile: float = 0.5             # network floor = this quantile of the non-poor
    #                                         cells' quiet-hour UL interference
    load_slope_min_prb: float = 10.0        # cells whose busy and quiet PRB differ by at least
    #                                         this many points estimate the dB per PRB point
    prb_util_pct: float = 70.0              # busy-hour mean PRB utilisation above this
    rrc_users: float = 150.0                # busy-hour max RRC users supporting high load
    availability_pct: float = 99.0          # any hour below this = fault
    alarm_count: int = 1                    # at least this many alarms in the window = fault
    rsrp_weak_ratio: float = 0.20           # weak-RSRP sample share above this
    cqi_good_ratio: float = 0.88            # CQI>=7 share below this (supporting evidence)
    overshoot_isd_factor: float = 1.5       # TA p90 beyond this multiple of the local ISD
    isd_neighbours: int = 3                 # ISD = mean distance to this many nearest sites
    min_cluster_size: int = 5               # hdbscan, signature clusters
    signature_min_samples: int = 2          # hdbscan density (low: small causes keep their group)
    area_min_cluster_size: int = 3          # hdbscan, poor-quality areas
    area_max_km: float = 1.5                # cells farther apart than this are not one area
    # --- rule scores (docs/diagnosis.md): score = margin beyond the threshold / its scale ---
    interference_scale_db: float = 5.0      # dB of UL interference above threshold = 1 score unit
    prb_scale_pct: float = 10.0             # PRB percentage points above threshold = 1 unit
    availability_scale_pct: float = 1.0     # availability points below threshold = 1 unit
    alarm_score: float = 0.5                # fault score per alarm-count threshold reached
    rsrp_weak_scale: float = 0.06           # weak-RSRP share above threshold = 1 unit
    overshoot_scale: float = 0.25           # TA/ISD multiples above the factor = 1 unit
    support_bonus: float = 0.25             # added when supporting evidence also holds
    isd_floor_m: float = 200.0              # ISD never taken below this (co-sited dense cores)
    propose_interference_rise_db: float = 10.0  # proposed threshold = network floor + this
    samples_sinr_db: float = 3.0            # drive-test SINR median below this ...
    samples_rsrp_good_dbm: float = -100.0   # ... at a median RSRP above this: interference seen
    #                                         in samples (evidence text, docs/samples.md)


@dataclass(frozen=True)
class ComplaintsConfig:
    """Which complaint categories are network complaints, and how to link them to cells."""

    #: category (lower-cased, stripped) -> service it concerns; "coverage" = no/poor signal;
    #: "" = not a network complaint (billing, service, ...). Unknown categories are non-network.
    categories: dict[str, str] = field(default_factory=lambda: {
        "browsing": "browsing", "slow_browsing": "browsing", "slow_data": "browsing", "data": "browsing",
        "slow_internet": "browsing", "网络慢": "browsing", "上网卡": "browsing",
        "上网慢": "browsing", "网速慢": "browsing", "网页打不开": "browsing", "上网卡顿": "browsing",
        "video": "video", "video_stall": "video", "视频卡顿": "video", "视频缓冲": "video",
        "gaming": "gaming", "game_lag": "gaming", "游戏延迟": "gaming", "游戏卡顿": "gaming",
        "no_signal": "coverage", "weak_signal": "coverage", "coverage": "coverage",
        "无信号": "coverage", "信号差": "coverage", "信号弱": "coverage",
        "billing": "", "tariff": "", "资费": "", "账单": "", "套餐": "", "服务态度": "",
    })
    radius_isd_factor: float = 1.5          # a cell reaches this multiple of its site's local ISD
    min_radius_m: float = 300.0
    max_radius_m: float = 5000.0
    beam_weight: float = 1.0                # score bonus for a bearing inside the cell's beam
    poor_weight: float = 0.2                # score bonus for a cell poor in the complaint's service
    min_bearing_m: float = 20.0             # closer to the antenna than this, bearing is not scored
    hotspot_top: int = 10
    per_10k_min_complaints: int = 3         # fewer complaints are not ranked per 10k subscribers
    hotspot_min_cluster_size: int = 5       # hdbscan, spatial complaint hotspots
    hotspot_max_radius_m: float = 1000.0    # spatial hotspots span at most twice this (hdbscan, then cut)
    period_days: int = 7                    # hotspot "increase": last period vs the one before
    subscribers_per_rrc_user: float = 10.0  # subscriber estimate = busy-hour RRC users x this
    per_10k_min_subscribers: float = 100.0  # smaller denominators are not ranked per 10k


@dataclass(frozen=True)
class WorkOrderConfig:
    """Priority formula weights (see docs/work-orders.md)."""

    w_gap: float = 40.0           # how far below the threshold (per service, summed)
    w_tests: float = 15.0         # log-scaled tests affected
    w_users: float = 10.0         # busy-hour RRC users
    w_complaints: float = 20.0    # linked complaints (log-scaled)
    w_services: float = 10.0      # number of poor services
    #: priority weight per primary cause (defaults from the cause registry, kqi/causes.py)
    cause_weight: dict[str, float] = field(default_factory=lambda: {
        c.name: c.weight for c in REGISTRY})
    gap_full: float = 0.20        # summed relative shortfall below threshold that scores in full
    tests_full: float = 1000.0    # poor tests (log-scaled) that score in full
    users_full: float = 300.0     # busy-hour RRC users that score in full
    complaints_full: float = 20.0  # linked complaints (log-scaled) that score in full
    complaint_ids_max: int = 20   # complaint ids listed per work order (the count is always full)
    #: recommended action per primary cause (docs/work-orders.md; defaults from the registry)
    actions: dict[str, str] = field(default_factory=lambda: {
        c.name: c.action for c in REGISTRY})


@dataclass(frozen=True)
class IngestConfig:
    """How input files are read."""

    timezone: str = "UTC"                  # zone of timestamps without one
    batch_rows: int = 1_000_000            # app_tests rows per batch (bounded memory)
    encoding: str = "auto"                 # auto | utf-8 | gbk
    derive_site_from_eci: bool = True      # site_id = ECI >> 8 when no site column exists
    #: feed -> {source header -> canonical column}, for exports whose headers are not aliases
    #: ("date" and "time" name the two halves of a ts split over two columns)
    column_map: dict[str, dict[str, str]] = field(default_factory=dict)
    #: feed -> how its file is read, when detection is not wanted: delimiter, decimal, sheet
    #: (xlsx: a name or a 1-based number), encoding, header_row (docs/input-formats.md)
    read: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: feed -> {ts | date | time -> strftime format, or "epoch_s" / "epoch_ms"}
    formats: dict[str, dict[str, str]] = field(default_factory=dict)
    #: feed -> {column -> "percent" | "fraction"}: the unit the file gives a percent or ratio
    #: column in (then no unit detection for that column)
    units: dict[str, dict[str, str]] = field(default_factory=dict)
    #: feed -> {column -> value} for a column the file lacks ("{line}" = the row's line number)
    fill: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: feed -> {column -> values read as missing in that column} (e.g. lat = ["-1", "0"])
    missing: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    #: a feed with more than this share of its rows rejected (or none accepted) stops the run
    #: before the analysis (docs/input-formats.md, "Feed verdicts")
    max_reject_share: float = 0.95


@dataclass(frozen=True)
class OutputConfig:
    """What the run writes."""

    excel: bool = True
    map: bool = True
    map_tiles: str = "OpenStreetMap"       # a tile URL template, a folium name, or "none"
    map_assets: str = "auto"               # auto (local copy if fetched, else CDN) | "" (CDN) |
    #                                        a folder or URL prefix with Leaflet JS/CSS (offline)
    language: str = "en"                   # words of the workbook: en | zh (docs/work-orders.md)
    kmz: bool = True                       # sectors.kmz (Google Earth), docs/maps.md
    geojson: bool = True                   # cells.geojson (GIS), docs/maps.md


@dataclass(frozen=True)
class HistoryConfig:
    """The run history (the closed loop, docs/history.md)."""

    path: str = ""                 # DuckDB file; "" = no history unless --history is given
    window_days: int = 0           # analyse a trailing window of this many days from the stored
    #                                day counts plus the new tests (0 = the new tests only)
    lock_wait_s: float = 30.0      # wait this long for another run holding the file, then stop


@dataclass(frozen=True)
class FollowupConfig:
    """Verification of open orders in later runs (docs/followup.md)."""

    min_tests_after: int = 30       # fewer tests of a service after the order: insufficient_data
    alpha: float = 0.05             # significance of the difference-in-differences test
    controls: int = 12              # nearest cells without an order of their own, at most
    control_radius_isd: float = 3.0  # controls lie within this multiple of the cell's local ISD
    min_control_tests: int = 100    # fewer control tests in a period: network-wide controls
    escalate_after_runs: int = 3    # an order open this many runs without recovery escalates
    escalate_on_worse: bool = True  # a verdict of 'worse' escalates at once
    w_persist: float = 10.0         # priority bonus (scaled by cause weight) of a persisting /
    #                                 reopened order over a new one of equal severity
    persist_full: int = 3           # runs poor at which the bonus is full


@dataclass(frozen=True)
class SamplesConfig:
    """Drive-test / MR samples: the coverage grid, per-cell figures, estimated cells
    (docs/samples.md)."""

    bin_m: float = 50.0                 # side of a coverage_bins.csv grid bin, metres (5-5000)
    weak_rsrp_dbm: float = -110.0       # a sample is weak below this RSRP (the MR rule)
    cqi_good: float = 7.0               # a CQI report at or above this is good
    #: radio technologies whose samples carry LTE/NR fields (case-insensitive); others (GSM,
    #: UMTS, HSPA+ ...: their RSRP column holds RSCP) are rejected
    techs: tuple[str, ...] = ("LTE", "LTE-A", "LTE+", "LTE CA", "4G", "4G+", "5G", "NR",
                              "5G NSA", "5G SA", "NR NSA", "NR SA", "NSA", "SA")
    min_samples: int = 30               # a cell's figures are diagnosis evidence from this many
    min_bins: int = 3                   # ... samples in at least this many bins
    estimate_min_samples: int = 10      # a cell's position is estimated from this many samples
    estimate_trim: float = 3.0          # bins beyond this multiple of the median distance from
    #                                     the site estimate are left out of it (handover lag)
    omni_resultant: float = 0.3         # bearings less concentrated than this: no azimuth (omni)


@dataclass(frozen=True)
class EngineConfig:
    """Where the heavy aggregations run (docs/scale.md): ``local`` (numba and polars) or
    ``spark`` (Apache Spark; the ``spark`` extra and a Java runtime)."""

    name: str = "local"            # local | spark
    master: str = ""               # Spark master URL ("" = the active session's, else local[*])
    #: Spark settings passed to the session builder as they are ([engine.spark] in TOML),
    #: e.g. "spark.sql.shuffle.partitions" = "400"
    spark: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    """The whole configuration of a run."""

    kqi: KqiConfig = field(default_factory=KqiConfig)
    diagnosis: DiagnosisConfig = field(default_factory=DiagnosisConfig)
    complaints: ComplaintsConfig = field(default_factory=ComplaintsConfig)
    workorders: WorkOrderConfig = field(default_factory=WorkOrderConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    followup: FollowupConfig = field(default_factory=FollowupConfig)
    samples: SamplesConfig = field(default_factory=SamplesConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for manifest.json)."""
        return dataclasses.asdict(self)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from ``data``, overriding defaults; unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"[{where}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(_unknown(where, key, known))
        hint = hints[key]
        path = f"{where}.{key}" if where else key
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, path)
        else:
            kwargs[key] = _coerce(hint, value, path, default=getattr(cls(), key))
    return cls(**kwargs)


def _unknown(where: str, key: str, known: Iterable[str]) -> str:
    """The one-line error for an unknown key, with the nearest known name when one is close."""
    what = f"unknown setting '{where}.{key}'" if where else f"unknown section '{key}'"
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.7)
    return f"{what}; did you mean '{close[0]}'?" if close else what


def _coerce(hint: Any, value: Any, path: str, default: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{path}' must be a table")
        # mappings extend the defaults rather than replace them (e.g. one more category)
        merged = dict(default)
        merged.update(value)
        return merged
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"'{path}' must be a list")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{path}' must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{path}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"'{path}' must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"'{path}' must be a string, got {value!r}")
        return value
    if isinstance(hint, types.UnionType):  # pragma: no cover - no such fields yet
        return value
    return value


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a :class:`Config` from a nested dict (as parsed from TOML)."""
    cfg = _build(Config, data, "")
    _validate(cfg)
    return cfg


def load_config(path: str | Path | None = None) -> Config:
    """Load a TOML config file over the defaults; ``None`` gives the defaults."""
    if path is None:
        return Config()
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder, not a config file (give the path of a .toml file)")
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def as_config(config: Config | str | Path | None) -> Config:
    """A :class:`Config` as the public functions take it: a Config, a TOML file's path, or
    ``None`` for the defaults."""
    if config is None:
        return Config()
    if isinstance(config, Config):
        return config
    if isinstance(config, str | Path):
        return load_config(config)
    raise ConfigError(f"config must be a kqi.Config or the path of a TOML file, "
                      f"not {type(config).__name__}")


def _validate(cfg: Config) -> None:
    for s in ("browsing", "video", "gaming"):
        t = cfg.kqi.thresholds.for_service(s)
        if not 0.0 <= t <= 1.0:
            raise ConfigError(f"'kqi.thresholds.{s}' must be between 0 and 1, got {t}")
    if cfg.kqi.min_tests < 1:
        raise ConfigError("'kqi.min_tests' must be at least 1")
    if cfg.ingest.batch_rows < 1000:
        raise ConfigError("'ingest.batch_rows' must be at least 1000")
    from kqi.schema import FEEDS

    for feed, mapping in cfg.ingest.column_map.items():
        if feed not in FEEDS:
            raise ConfigError(f"'ingest.column_map.{feed}': unknown feed (one of {', '.join(FEEDS)})")
        for src, dst in mapping.items():
            halves = ("date", "time") if "ts" in FEEDS[feed].names else ()
            if dst not in FEEDS[feed].names and dst not in halves:
                raise ConfigError(f"'ingest.column_map.{feed}.{src}': '{dst}' is not a column of {feed}")
    from kqi.ingest.settings import check_ingest

    check_ingest(cfg.ingest)
    for cat, svc in cfg.complaints.categories.items():
        if svc not in ("", "browsing", "video", "gaming", "coverage"):
            raise ConfigError(f"'complaints.categories.{cat}': '{svc}' is not browsing/video/gaming/coverage or ''")
    from kqi.causes import LANGUAGES

    if cfg.output.language not in LANGUAGES:
        raise ConfigError(f"'output.language' must be one of {', '.join(LANGUAGES)}, "
                          f"got {cfg.output.language!r}")
    check_diagnosis(cfg.diagnosis)
    check_workorders(cfg.workorders)
    check_followup(cfg.followup)
    check_history(cfg.history)
    check_samples(cfg.samples)
    check_engine(cfg.engine)


# the section checks run at load (above) and again in the stages that read the section, for a
# Config built in code (dataclasses.replace) rather than loaded

def check_diagnosis(d: DiagnosisConfig) -> None:
    """Reject settings that would make the rules meaningless (one-line ConfigError)."""
    for name in _POSITIVE_DIAGNOSIS:
        if not getattr(d, name) > 0:
            raise ConfigError(f"'diagnosis.{name}' must be positive, got {getattr(d, name)}")
    if any(not 0 <= h <= 23 for h in d.busy_hours):
        raise ConfigError(f"'diagnosis.busy_hours' must be hours 0-23, got {list(d.busy_hours)}")
    if d.busy_hour_count < 1:
        raise ConfigError("'diagnosis.busy_hour_count' must be at least 1")
    if d.quiet_hour_count < 1 or d.quiet_hour_count + d.busy_hour_count > 24:
        raise ConfigError("'diagnosis.quiet_hour_count' must be at least 1 and, with "
                          "busy_hour_count, at most 24")
    if not 0.0 < d.floor_quantile < 1.0:
        raise ConfigError(f"'diagnosis.floor_quantile' must lie strictly between 0 and 1, "
                          f"got {d.floor_quantile}")
    if d.interference_rise_db < 0 or d.load_slope_min_prb <= 0:
        raise ConfigError("'diagnosis.interference_rise_db' must be >= 0 and "
                          "'load_slope_min_prb' positive")
    if d.min_cluster_size < 2 or d.area_min_cluster_size < 2:
        raise ConfigError("'diagnosis.min_cluster_size' and 'area_min_cluster_size' must be >= 2")
    if d.signature_min_samples < 1:
        raise ConfigError("'diagnosis.signature_min_samples' must be at least 1")
    if not d.area_max_km > 0:
        raise ConfigError(f"'diagnosis.area_max_km' must be positive, got {d.area_max_km}")


def check_workorders(w: WorkOrderConfig) -> None:
    """Every cause has an action and a positive weight, and no key names an unknown cause (a
    typo would otherwise leave the real cause on its default unnoticed)."""
    names = [c.name for c in REGISTRY]
    for what, table in (("actions", w.actions), ("cause_weight", w.cause_weight)):
        for key in table:
            if key not in names:
                raise ConfigError(f"'workorders.{what}.{key}': unknown cause (one of {', '.join(names)})")
        for name in names:
            if name not in table:
                raise ConfigError(f"'workorders.{what}' has no entry for cause '{name}'")
    for name, v in w.cause_weight.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            raise ConfigError(f"'workorders.cause_weight.{name}' must be a positive number, got {v!r}")
    for name, text in w.actions.items():
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"'workorders.actions.{name}' must be a non-empty string, got {text!r}")


def _check_registry_fields() -> tuple[str, ...]:
    """At import: every [diagnosis] field a cause record names exists and is a number; returns
    the fields that must be positive (the margins' scales, the TA factor)."""
    fields = {f.name: f for f in dataclasses.fields(DiagnosisConfig)}
    hints = typing.get_type_hints(DiagnosisConfig)
    for c in REGISTRY:
        for name in c.config_fields:
            if name not in fields:
                raise ConfigError(f"cause '{c.name}' names [diagnosis] field '{name}', which "
                                  "DiagnosisConfig does not have")
            if hints[name] not in (int, float):
                raise ConfigError(f"cause '{c.name}': [diagnosis] field '{name}' is not a number")
    positive = [s for c in REGISTRY for s in c.scale_fields]
    return tuple(dict.fromkeys([*positive, "overshoot_isd_factor"]))


_POSITIVE_DIAGNOSIS: tuple[str, ...] = _check_registry_fields()


def check_followup(f: FollowupConfig) -> None:
    """Reject follow-up settings that would give quiet nonsense (one-line ConfigError)."""
    if f.min_tests_after < 1:
        raise ConfigError("'followup.min_tests_after' must be at least 1")
    if not 0.0 < f.alpha < 1.0:
        raise ConfigError(f"'followup.alpha' must lie strictly between 0 and 1, got {f.alpha}")
    if f.controls < 1:
        raise ConfigError("'followup.controls' must be at least 1")
    if not f.control_radius_isd > 0.0:
        raise ConfigError("'followup.control_radius_isd' must be positive")
    if f.min_control_tests < 0:
        raise ConfigError("'followup.min_control_tests' must be >= 0")
    if f.escalate_after_runs < 1:
        raise ConfigError("'followup.escalate_after_runs' must be at least 1")


def check_history(h: HistoryConfig) -> None:
    """Reject history settings out of range (one-line ConfigError)."""
    if h.window_days < 0:
        raise ConfigError(f"'history.window_days' must be 0 (no trailing window) or more, got {h.window_days}")
    if h.lock_wait_s < 0:
        raise ConfigError(f"'history.lock_wait_s' must be >= 0, got {h.lock_wait_s}")


def check_samples(s: SamplesConfig) -> None:
    """Reject samples settings out of range (one-line ConfigError)."""
    if not 5.0 <= s.bin_m <= 5000.0:
        raise ConfigError(f"'samples.bin_m' must be between 5 and 5000 metres, got {s.bin_m:g}")
    if not -156.0 <= s.weak_rsrp_dbm <= -30.0:
        raise ConfigError(f"'samples.weak_rsrp_dbm' must be an RSRP between -156 and -30 dBm, "
                          f"got {s.weak_rsrp_dbm:g}")
    if not 0.0 <= s.cqi_good <= 15.0:
        raise ConfigError(f"'samples.cqi_good' must be a CQI between 0 and 15, got {s.cqi_good:g}")
    if not s.techs or any(not isinstance(t, str) or not t.strip() for t in s.techs):
        raise ConfigError("'samples.techs' must be a non-empty list of technology names")
    for name in ("min_samples", "min_bins", "estimate_min_samples"):
        if getattr(s, name) < 1:
            raise ConfigError(f"'samples.{name}' must be at least 1, got {getattr(s, name)}")
    if not s.estimate_trim > 1.0:
        raise ConfigError(f"'samples.estimate_trim' must be more than 1, got {s.estimate_trim:g}")
    if not 0.0 <= s.omni_resultant < 1.0:
        raise ConfigError(f"'samples.omni_resultant' must lie in [0, 1), got {s.omni_resultant:g}")


def check_engine(e: EngineConfig) -> None:
    """Reject an unknown engine or a Spark setting that is not a single value."""
    if e.name not in ("local", "spark"):
        raise ConfigError(f"'engine.name' must be 'local' or 'spark', got {e.name!r}")
    spark_settings(e)


def spark_settings(e: EngineConfig) -> dict[str, str]:
    """``[engine.spark]`` as Spark's flat ``key -> text`` settings. Dotted keys may be written
    quoted (``"spark.sql.shuffle.partitions" = 8``) or bare, which TOML nests as tables; both
    give ``spark.sql.shuffle.partitions = "8"``. Booleans are written as Spark spells them."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list | tuple) or value is None:
            raise ConfigError(f"'engine.spark.{prefix}' must be a single value, got {value!r}")
        else:
            out[prefix] = str(value).lower() if isinstance(value, bool) else str(value)

    walk("", e.spark)
    return out
