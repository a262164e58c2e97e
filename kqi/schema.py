"""Canonical schema of every table that crosses a stage.

The input feeds (``cells``, ``app_tests``, ``app_tests_agg``, ``cell_kpis``, ``complaints``) are
described column by column: canonical name, type, unit, whether it is required, the header aliases
accepted at ingest (case- and space-insensitive, Chinese included) and the valid range. The derived
tables (``cell_kqi``, ``diagnosis``, ``complaint_links``, ``work_orders``, ``hotspots``) are plain
Arrow schemas. Nothing else in the package spells a column name's type or unit again.

After ingest, every feed that names a cell carries ``cell_code``: a dense ``int32`` code (0..n-1)
assigned once from the cells table (cells sorted by ``cell_id``). Kernels index arrays by it.
Services likewise carry ``service_code`` (0 browsing, 1 video, 2 gaming).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl
import pyarrow as pa

from kqi.causes import CAUSE_NAMES

SERVICES: tuple[str, ...] = ("browsing", "video", "gaming")
SERVICE_CODE: dict[str, int] = {s: i for i, s in enumerate(SERVICES)}

#: the KQIs each service's test verdict needs (targets in :class:`kqi.config.Targets`); the one
#: definition of which KQI belongs to which service, read by ingest, the verdict kernel and the
#: feed check
SERVICE_KQIS: dict[str, tuple[str, ...]] = {
    "browsing": ("page_load_ms",),
    "video": ("initial_buffer_ms", "stall_ratio"),
    "gaming": ("rtt_ms", "jitter_ms", "loss_pct"),
}
#: the KQI columns of a per-test feed, in service order (also the order of the kernels' targets)
KQI_COLUMNS: tuple[str, ...] = tuple(k for s in SERVICES for k in SERVICE_KQIS[s])

#: Service values accepted at ingest (after lower-casing and stripping), mapped to canonical names.
SERVICE_ALIASES: dict[str, str] = {
    "browsing": "browsing", "browse": "browsing", "web": "browsing", "http": "browsing",
    "浏览": "browsing", "网页": "browsing", "网页浏览": "browsing", "上网": "browsing",
    "video": "video", "视频": "video", "视频播放": "video",
    "gaming": "gaming", "game": "gaming", "games": "gaming", "游戏": "gaming", "手游": "gaming",
}

#: the causes of a poor cell, in tie-break order, from the cause registry (kqi/causes.py)
CAUSES: tuple[str, ...] = CAUSE_NAMES

#: Timestamp text forms accepted at ingest, besides epoch seconds (int or float).
TIMESTAMP_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d",
)

#: compact all-digit forms common in Chinese operators' exports, by length. Read only from values
#: of exactly that many digits, before any epoch reading, so 20261102080000 is 2026-11-02 08:00:00
#: and not milliseconds in the year 2612 (strptime alone would also read 1709280550 as year 1709)
COMPACT_TIMESTAMP_FORMATS: dict[int, str] = {14: "%Y%m%d%H%M%S", 12: "%Y%m%d%H%M", 8: "%Y%m%d"}

#: a timestamp outside these years is a misread value (an id, a count, a wrong unit), not a time
PLAUSIBLE_YEARS: tuple[int, int] = (1990, 2100)

Kind = Literal["string", "float", "int", "flag", "timestamp", "service"]

_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "float": pa.float64(),
    "int": pa.int64(),
    "flag": pa.int8(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "service": pa.string(),
}


#: the polars type of each kind as it leaves ingest (a service is its canonical name; as a code,
#: ``service_code``, it is Int8)
POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "float": pl.Float64(),
    "int": pl.Int64(),
    "flag": pl.Int8(),
    "timestamp": pl.Datetime("us", "UTC"),
    "service": pl.String(),
}
SERVICE_CODE_TYPE: pl.DataType = pl.Int8()


@dataclass(frozen=True)
class Column:
    """One column of an input feed.

    ``lo``/``hi`` bound the valid range (inclusive); ``None`` leaves that side open.
    """

    name: str
    kind: Kind
    required: bool = False
    unit: str = ""
    aliases: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    default: float | str | None = None
    doc: str = ""

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES[self.kind]

    @property
    def polars_type(self) -> pl.DataType:
        return POLARS_TYPES[self.kind]


@dataclass(frozen=True)
class FeedSchema:
    """The columns of one input feed, its duplicate key and whether it references cells."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    references_cells: bool = False
    #: at least one of these groups must be fully present per row (e.g. position or cell_id)
    one_of: tuple[tuple[str, ...], ...] = field(default=())

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def arrow_schema(self) -> pa.Schema:
        """Arrow schema of the feed as it leaves ingest (canonical columns, plus codes)."""
        fields = [pa.field(c.name, c.arrow_type, nullable=not c.required) for c in self.columns]
        if self.name == "cells" or self.references_cells:
            fields.append(pa.field("cell_code", pa.int32(), nullable=self.name == "complaints"))
        if self.name in ("app_tests", "app_tests_agg"):
            fields.append(pa.field("service_code", pa.int8(), nullable=False))
        return pa.schema(fields)


CELLS = FeedSchema(
    name="cells",
    key=("cell_id",),
    columns=(
        Column("cell_id", "string", True, aliases=("小区id", "小区标识", "cgi", "eci", "ecgi", "cellid", "cell"),
               doc="unique key, e.g. 460123-1 or an ECI"),
        Column("site_id", "string", False, aliases=("基站id", "基站标识", "enodeb_id", "enbid", "gnodeb_id", "site", "siteid"),
               doc="base station; derived from a 28-bit ECI (eNB = ECI >> 8) when absent"),
        Column("cell_name", "string", False, aliases=("小区名称", "name", "cellname")),
        Column("lat", "float", True, "degrees WGS84", ("纬度", "latitude"), -90.0, 90.0),
        Column("lon", "float", True, "degrees WGS84", ("经度", "longitude", "lng"), -180.0, 180.0),
        Column("azimuth", "float", True, "degrees clockwise from north", ("方位角", "azi"), 0.0, 360.0),
        Column("beamwidth", "float", False, "degrees (360 = omni)", ("波瓣宽度", "hbw", "水平波瓣宽度"), 1.0, 360.0,
               default=65.0),
        Column("vendor", "string", False, aliases=("厂家", "设备厂家", "manufacturer")),
        Column("region", "string", False, aliases=("区域", "district", "grid", "网格", "区县")),
        Column("tech", "string", False, aliases=("制式", "rat", "technology")),
        Column("estimated", "flag", False, "0/1", ("position_estimated", "估算位置"), 0, 1,
               default=0, doc="1 = position estimated from drive-test samples (kqi samples)"),
    ),
)

APP_TESTS = FeedSchema(
    name="app_tests",
    references_cells=True,
    columns=(
        Column("ts", "timestamp", True, "UTC", ("时间", "time", "测试时间", "timestamp", "datetime", "date_time")),
        Column("cell_id", "string", True, aliases=("小区id", "小区标识", "cgi", "eci", "ecgi", "cellid")),
        Column("service", "service", True, aliases=("业务类型", "业务", "service_type")),
        Column("success", "flag", False, "0/1", ("是否成功", "成功"), 0, 1, default=1),
        Column("page_load_ms", "float", False, "ms", ("页面时延", "页面加载时延", "page_load"), 0.0, None),
        Column("initial_buffer_ms", "float", False, "ms", ("首缓时延", "初始缓冲时延"), 0.0, None),
        Column("stall_ratio", "float", False, "0-1", ("卡顿占比", "卡顿率"), 0.0, 1.0),
        Column("rtt_ms", "float", False, "ms", ("时延", "rtt"), 0.0, None),
        Column("jitter_ms", "float", False, "ms", ("抖动", "jitter"), 0.0, None),
        Column("loss_pct", "float", False, "percent 0-100", ("丢包率", "loss"), 0.0, 100.0),
        Column("good", "flag", False, "0/1", ("是否优良", "优良"), 0, 1),
    ),
)

APP_TESTS_AGG = FeedSchema(
    name="app_tests_agg",
    references_cells=True,
    key=("cell_id", "service", "period"),
    columns=(
        Column("cell_id", "string", True, aliases=("小区id", "小区标识", "cgi", "eci", "ecgi", "cellid")),
        Column("service", "service", True, aliases=("业务类型", "业务", "service_type")),
        Column("tests", "int", True, "count", ("测试次数", "总次数"), 0, None),
        Column("good_tests", "int", True, "count", ("优良次数",), 0, None),
        Column("period", "string", False, aliases=("周期", "日期", "date")),
    ),
)

CELL_KPIS = FeedSchema(
    name="cell_kpis",
    references_cells=True,
    key=("cell_id", "ts"),
    columns=(
        Column("ts", "timestamp", True, "start of the hour, UTC", ("时间", "time", "开始时间", "timestamp",
                                                            "datetime", "date_time", "start_time")),
        Column("cell_id", "string", True, aliases=("小区id", "小区标识", "cgi", "eci", "ecgi", "cellid")),
        Column("prb_util_dl", "float", False, "percent 0-100", ("下行prb利用率", "prb利用率", "dl_prb_util"), 0.0, 100.0),
        Column("prb_util_ul", "float", False, "percent 0-100", ("上行prb利用率", "ul_prb_util"), 0.0, 100.0),
        Column("rrc_users_max", "float", False, "count", ("最大rrc连接用户数", "rrc用户数", "rrc_users"), 0.0, None),
        Column("ul_interference_dbm", "float", False, "dBm per PRB", ("上行干扰", "上行平均干扰", "ul_interference"),
               -150.0, -50.0),
        Column("rsrp_weak_ratio", "float", False, "0-1", ("弱覆盖比例", "rsrp弱覆盖占比"), 0.0, 1.0),
        Column("cqi_good_ratio", "float", False, "0-1", ("cqi优良比", "cqi≥7占比", "cqi>=7占比"), 0.0, 1.0),
        Column("ta_p90_m", "float", False, "metres", ("ta_p90", "接入距离p90", "ta90"), 0.0, None),
        Column("availability", "float", False, "percent 0-100", ("可用率", "小区可用率"), 0.0, 100.0),
        Column("alarm_count", "int", False, "count", ("告警数", "告警次数", "alarms"), 0, None),
    ),
)

COMPLAINTS = FeedSchema(
    name="complaints",
    key=("complaint_id",),
    references_cells=True,
    one_of=(("lat", "lon"), ("cell_id",)),
    columns=(
        Column("complaint_id", "string", True, aliases=("投诉id", "工单号", "投诉工单号", "ticket_id", "id")),
        Column("ts", "timestamp", True, "UTC", ("时间", "投诉时间", "time", "timestamp", "datetime", "date_time")),
        Column("lat", "float", False, "degrees WGS84", ("纬度", "latitude"), -90.0, 90.0),
        Column("lon", "float", False, "degrees WGS84", ("经度", "longitude", "lng"), -180.0, 180.0),
        Column("category", "string", True, aliases=("投诉类型", "类别", "问题类型", "type")),
        Column("msisdn", "string", False, aliases=(
            "手机号", "手机号码", "号码", "用户号码", "联系电话", "联系号码", "主叫号码", "用户手机",
            "电话", "phone", "phone_number", "mobile", "mobile_number", "contact_number", "tel")),
        Column("description", "string", False, aliases=("描述", "投诉内容", "问题描述", "desc")),
        Column("cell_id", "string", False, aliases=("小区id", "小区标识", "cgi", "eci", "ecgi", "cellid")),
    ),
)

SUBSCRIBERS = FeedSchema(
    name="subscribers",
    one_of=(("cell_id",), ("region",)),
    columns=(
        Column("cell_id", "string", False, aliases=CELLS.column("cell_id").aliases),
        Column("region", "string", False, aliases=CELLS.column("region").aliases),
        Column("subscribers", "float", True, "count",
               ("subscriber", "users", "subs", "用户数", "用户数量", "用户"), 0.0, None),
    ),
)

#: drive-test / MR measurement samples (optional feed, kqi.samples): one row per sample. A sample
#: needs a serving cell or a position; samples of cells missing from the cells table are kept
#: (their position is estimated), so the feed does not reference cells at ingest
SAMPLES = FeedSchema(
    name="samples",
    one_of=(("lat", "lon"), ("cell_id",)),
    columns=(
        Column("ts", "timestamp", False, "UTC", ("timestamp", "time", "时间", "采样时间", "datetime")),
        # RAWCELLID (the 28-bit ECI) before CellID (G-NetTrack's 8-bit local cell id)
        Column("cell_id", "string", False, aliases=(
            "rawcellid", "eci", "ecgi", "cgi", "serving_cell", "servingcell", "小区id", "服务小区",
            "小区标识", "cellid", "cell")),
        Column("lat", "float", False, "degrees WGS84", ("latitude", "纬度", "gps_lat"), -90.0, 90.0),
        Column("lon", "float", False, "degrees WGS84", ("longitude", "lng", "经度", "gps_lon"),
               -180.0, 180.0),
        Column("rsrp_dbm", "float", True, "dBm", ("rsrp", "rsrp(dbm)", "rsrp_(dbm)", "serving_rsrp",
                                                  "参考信号接收功率"), -156.0, -30.0),
        Column("rsrq_db", "float", False, "dB", ("rsrq", "rsrq(db)", "rsrq_(db)", "serving_rsrq"),
               -43.0, 20.0),
        Column("sinr_db", "float", False, "dB", ("sinr", "snr", "rs_sinr", "rssnr", "sinr(db)",
                                                 "sinr_(db)"), -50.0, 60.0),
        Column("cqi", "float", False, "0-15", ("cqi_avg", "wideband_cqi"), 0.0, 15.0),
        Column("dl_kbps", "float", False, "kbit/s", ("dl_bitrate", "dl_throughput_kbps"), 0.0, None),
        Column("ul_kbps", "float", False, "kbit/s", ("ul_bitrate", "ul_throughput_kbps"), 0.0, None),
        Column("tech", "string", False, aliases=("networkmode", "network_mode", "network_type",
                                                 "rat", "制式", "technology")),
    ),
)

FEEDS: dict[str, FeedSchema] = {
    f.name: f for f in (CELLS, APP_TESTS, APP_TESTS_AGG, CELL_KPIS, COMPLAINTS, SUBSCRIBERS,
                        SAMPLES)
}

# --------------------------------------------------------------------------------------------
# Derived tables
# --------------------------------------------------------------------------------------------

CELL_KQI = pa.schema([
    pa.field("cell_id", pa.string(), nullable=False),
    pa.field("service", pa.string(), nullable=False),
    pa.field("tests", pa.int64(), nullable=False),
    pa.field("good_tests", pa.int64(), nullable=False),
    pa.field("good_rate", pa.float64(), nullable=False),
    pa.field("poor", pa.bool_(), nullable=False),
    pa.field("rate_low", pa.float64(), nullable=False),    # Wilson lower bound
    pa.field("rate_high", pa.float64(), nullable=False),   # Wilson upper bound
    pa.field("confidence", pa.float64(), nullable=False),  # how sure the flag is, 0.5-1
])

DIAGNOSIS = pa.schema([
    pa.field("cell_id", pa.string(), nullable=False),
    pa.field("poor_services", pa.string(), nullable=False),   # e.g. "browsing;video"
    pa.field("primary_cause", pa.string(), nullable=False),   # one of CAUSES
    pa.field("secondary_causes", pa.string(), nullable=False),  # ";"-joined, may be empty
    pa.field("evidence", pa.string(), nullable=False),        # readable sentence(s)
    pa.field("cause_score", pa.float64(), nullable=False),
    pa.field("ul_interference_dbm", pa.float64()),
    pa.field("ul_quiet_dbm", pa.float64()),      # UL interference in the cell's quiet hours
    pa.field("prb_util_busy", pa.float64()),
    pa.field("prb_util_quiet", pa.float64()),
    pa.field("prb_util_p90", pa.float64()),
    pa.field("rrc_users_busy", pa.float64()),
    pa.field("rsrp_weak_ratio", pa.float64()),
    pa.field("cqi_good_ratio", pa.float64()),
    pa.field("ta_p90_m", pa.float64()),
    pa.field("isd_m", pa.float64()),
    pa.field("ta_isd_ratio", pa.float64()),
    pa.field("availability_min", pa.float64()),
    pa.field("availability_mean", pa.float64()),
    pa.field("alarm_count", pa.int64()),
    pa.field("ul_floor_dbm", pa.float64()),     # the network's quiet UL floor (one per run)
    pa.field("ul_load_rise_db", pa.float64()),  # the rise this cell's busy-hour load explains
    pa.field("ul_rise_db", pa.float64()),       # busy-hour UL over the floor, net of load
    pa.field("cluster_id", pa.int32()),    # -1 = noise / not clustered
    pa.field("cluster_name", pa.string()),
    pa.field("review", pa.bool_()),        # rule cause disagrees with its signature cluster
    pa.field("review_note", pa.string()),  # why, in words (empty when review is false)
    pa.field("area_id", pa.int32()),       # -1 = not in an area
])

COMPLAINT_LINKS = pa.schema([
    pa.field("complaint_id", pa.string(), nullable=False),
    pa.field("cell_id", pa.string()),          # empty when not linked
    pa.field("distance_m", pa.float64()),
    pa.field("network", pa.bool_(), nullable=False),
    pa.field("service", pa.string()),          # browsing/video/gaming/coverage, empty if non-network
    pa.field("method", pa.string(), nullable=False),  # crm | spatial | unlinked | non_network
    pa.field("score", pa.float64()),
])

WORK_ORDERS = pa.schema([
    pa.field("rank", pa.int32(), nullable=False),
    pa.field("cell_id", pa.string(), nullable=False),
    pa.field("cell_name", pa.string()),
    pa.field("site_id", pa.string()),
    pa.field("vendor", pa.string()),
    pa.field("region", pa.string()),
    pa.field("poor_services", pa.string(), nullable=False),
    pa.field("primary_cause", pa.string(), nullable=False),
    pa.field("secondary_causes", pa.string(), nullable=False),
    pa.field("evidence", pa.string(), nullable=False),
    pa.field("complaints", pa.int64(), nullable=False),
    pa.field("priority_score", pa.float64(), nullable=False),
    pa.field("action", pa.string(), nullable=False),
])

HOTSPOTS = pa.schema([
    pa.field("kind", pa.string(), nullable=False),   # volume | increase | per_10k | spatial
    pa.field("rank", pa.int32(), nullable=False),
    pa.field("cell_id", pa.string()),
    pa.field("complaints", pa.int64()),
])

#: ``coverage_bins.csv``: one row per grid bin with samples (kqi.samples)
COVERAGE_BINS = pa.schema([
    pa.field("bin_id", pa.string(), nullable=False),      # "<row>_<col>" of the metric grid
    pa.field("lat", pa.float64(), nullable=False),        # bin centre
    pa.field("lon", pa.float64(), nullable=False),
    pa.field("samples", pa.int64(), nullable=False),
    pa.field("rsrp_median_dbm", pa.float64(), nullable=False),
    pa.field("rsrp_weak_share", pa.float64(), nullable=False),
    pa.field("serving_cells", pa.int64(), nullable=False),
    pa.field("sinr_median_db", pa.float64()),
    pa.field("cqi_good_share", pa.float64()),
    pa.field("dl_kbps_median", pa.float64()),
    pa.field("top_cell_id", pa.string()),                 # the cell serving most of its samples
])

#: ``cell_samples.csv``: one row per serving cell with samples (kqi.samples)
CELL_SAMPLES = pa.schema([
    pa.field("cell_id", pa.string(), nullable=False),
    pa.field("samples", pa.int64(), nullable=False),
    pa.field("rsrp_weak_ratio", pa.float64()),
    pa.field("cqi_good_ratio", pa.float64()),
    pa.field("sinr_median_db", pa.float64()),
    pa.field("estimated", pa.bool_(), nullable=False),    # position estimated from its samples
    pa.field("bins", pa.int64(), nullable=False),         # grid bins it served (place weighting)
    pa.field("rsrp_median_dbm", pa.float64()),
    pa.field("dist_p90_m", pa.float64()),                 # p90 distance of its samples' bins
    pa.field("isd_m", pa.float64()),
    pa.field("dist_isd_ratio", pa.float64()),
    pa.field("site_id", pa.string()),
    pa.field("lat", pa.float64()),
    pa.field("lon", pa.float64()),
    pa.field("azimuth", pa.float64()),
    pa.field("tech", pa.string()),
    pa.field("evidence_ok", pa.bool_(), nullable=False),  # enough samples and bins to be evidence
    pa.field("position_method", pa.string()),  # cells file | site in cells file | own samples ...
])

DERIVED: dict[str, pa.Schema] = {
    "cell_kqi": CELL_KQI,
    "diagnosis": DIAGNOSIS,
    "complaint_links": COMPLAINT_LINKS,
    "work_orders": WORK_ORDERS,
    "hotspots": HOTSPOTS,
    "coverage_bins": COVERAGE_BINS,
    "cell_samples": CELL_SAMPLES,
}
