"""The synthetic city: demo data for ``kqi demo`` and the ground truth the tests score against.

Public API
----------
::

    from kqi.synth import make_city
    city = make_city(out_dir, seed=7, n_cells=1600, days=7)
    city.cells, city.tests, city.kpis, city.complaints, city.subscribers      # input files (Path)
    city.truth, city.complaint_truth, city.expected_rejects                   # truth files (Path)
    city.truth_df            # pl.DataFrame, one row per cell (truth.csv)
    city.complaint_truth_df  # pl.DataFrame, one row per complaint (complaint_truth.csv)
    city.rejects_df          # pl.DataFrame feed, line, reason (empty unless corrupt=True)
    city.cells_df            # pl.DataFrame: the cells as written (canonical headers) + isd_m, isd_class

    from kqi.synth import make_followup
    week1 = make_followup(out_dir, seed=7, n_cells=1600, days=7, week=1)   # the next 7 days
    week1.followup_truth, week1.followup_truth_df   # followup_truth.csv: what was fixed, per cell

Files written into ``out_dir`` (inputs follow docs/data-contract.md):

=======================  ==================================================================
``cells.csv``            cell_id, site_id, cell_name, lat, lon, azimuth, beamwidth, vendor,
                         region, tech (Chinese headers with ``chinese_headers=True``)
``app_tests.csv``        ts, cell_id, service, success, page_load_ms, initial_buffer_ms,
                         stall_ratio, rtt_ms, jitter_ms, loss_pct (``.parquet`` with
                         ``tests_format="parquet"``)
``cell_kpis.csv``        ts, cell_id, prb_util_dl, prb_util_ul, rrc_users_max,
                         ul_interference_dbm, rsrp_weak_ratio, cqi_good_ratio, ta_p90_m,
                         availability, alarm_count (every cell x hour)
``complaints.csv``       complaint_id, ts, lat, lon, category, msisdn, description, cell_id
                         (Chinese headers with ``chinese_headers=True``)
``subscribers.csv``      cell_id, subscribers
``truth.csv``            cell_id, poor_services (";"-joined, empty = healthy), cause (empty =
                         healthy; one of kqi.schema.CAUSES), secondary (";"-joined planted
                         co-occurring conditions), isd_class (core/suburban), isd_m,
                         complaints_rising (true/false: more complaints in week 2)
``complaint_truth.csv``  complaint_id, cell_id (true serving cell), network (true/false)
``expected_rejects.csv`` feed (app_tests/complaints), line (1-based, header = line 1), reason
                         keyword (number, range, unknown_cell, service, timestamp, position,
                         duplicate); header only unless ``corrupt=True``
=======================  ==================================================================

``encoding`` applies to every input feed (cells, app_tests, cell_kpis, complaints, subscribers);
truth files are always UTF-8. Same arguments give byte-identical files.

:func:`make_followup` writes the same files for a later week of the same network (week 0 =
:func:`make_city`), plus ``followup_truth.csv``: cell_id, poor_week0, cause_week0, outcome
(one of :data:`OUTCOMES`), poor_services, cause (this week's planted state), expected_verdict
(:data:`EXPECTED_VERDICTS`, for week 0's poor cells).

How the city is built (details and numbers in docs/synthetic-city.md): sites on two jittered
hexagonal grids (core ~450 m apart, suburban ring ~1.5 km apart, ``suburban_share`` of the
cells), three sectors each (a few 2-sector and omni sites); ZTE maintains ~73 % of the area and
Nokia ~27 %, split by district. ``poor_share`` of the cells are poor (mostly browsing, a few video
or gaming), each with a planted cause in the case's proportions (interference 56, high load 65,
fault 2, weak coverage 5, overshooting 33 of 161) plus ~3 % ``unknown``; their hourly KPIs carry
the cause's evidence relative to the :class:`kqi.config.Config` defaults (or the ``config``
given), so the planted truth moves with the thresholds. Per-test KQIs are drawn so that a cell's
expected good-rate is well above its service threshold (healthy) or well below it (poor).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from kqi import geo
from kqi.config import Config
from kqi.io import atomic_path
from kqi.schema import SERVICES

__all__ = [
    "CASE_CAUSES", "CHARACTERS", "EXPECTED_VERDICTS", "HOSTILE_STRINGS", "MAX_NETWORK_SHIFT",
    "OUTCOMES", "Character", "City", "draw_params", "make_city", "make_followup",
]

log = logging.getLogger(__name__)

#: the case's causes among its 161 poor cells (docs/domain.md); ``unknown`` is added on top
CASE_CAUSES: dict[str, int] = {
    "interference": 56, "high_load": 65, "fault": 2, "weak_coverage": 5, "overshooting": 33,
}
#: the case's poor cells per service (153 browsing, 2 video, 6 gaming of 161)
CASE_SERVICES: dict[str, int] = {"browsing": 153, "video": 2, "gaming": 6}

#: hostile free text planted in complaint descriptions (each appears at least once)
HOSTILE_STRINGS: tuple[str, ...] = (
    "</script><script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '=HYPERLINK("http://x","y")',
    "+SUM(1,2)",
    "@cmd",
    "-1+2",
)

CITY_CENTRE = (30.66, 104.06)

#: relative traffic per hour of day (busy in the evening)
_HOURLY = np.array([
    0.35, 0.25, 0.18, 0.14, 0.12, 0.13, 0.20, 0.35, 0.55, 0.65, 0.70, 0.75,
    0.80, 0.75, 0.72, 0.75, 0.78, 0.80, 0.85, 0.92, 0.98, 1.00, 0.90, 0.60,
])

# district layout: (name, vendor, share of the full circle); a wedge of ~27 % is Nokia-maintained
_CORE_DISTRICTS = (
    ("成华区", "Nokia", 0.27), ("锦江区", "ZTE", 0.19), ("武侯区", "ZTE", 0.19),
    ("青羊区", "ZTE", 0.18), ("金牛区", "ZTE", 0.17),
)
_SUBURBAN_DISTRICTS = (
    ("龙泉驿区", "Nokia", 0.27), ("双流区", "ZTE", 0.19), ("温江区", "ZTE", 0.18),
    ("郫都区", "ZTE", 0.18), ("新都区", "ZTE", 0.18),
)
_PLACES = (
    "春熙路", "天府广场", "太古里", "宽窄巷子", "人民公园", "九眼桥", "红星路", "盐市口", "骡马市",
    "火车北站", "东郊记忆", "建设路", "玉林", "桐梓林", "高升桥", "神仙树", "磨子桥", "青羊宫",
    "杜甫草堂", "金沙", "茶店子", "营门口", "驷马桥", "万年场", "双桥子", "牛王庙", "沙河堡",
    "大学城", "工业园", "汽车城", "体育中心", "医院", "中学", "地铁站", "万达广场", "客运站",
)

_CORE_SPACING_M = 450.0
_SUBURBAN_SPACING_M = 1500.0
_CORE_SUBURBAN_GAP_M = 600.0

#: complaint categories drawn for each complaint kind (weights within a kind are equal)
_CATEGORIES: dict[str, tuple[str, ...]] = {
    "browsing": ("上网慢", "网速慢", "网页打不开", "slow_data", "browsing"),
    "video": ("视频卡顿", "视频缓冲", "video_stall"),
    "gaming": ("游戏延迟", "游戏卡顿", "game_lag"),
    "coverage": ("无信号", "信号差", "no_signal", "weak_signal"),
    "": ("资费", "账单", "套餐", "billing", "tariff"),
}
_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "browsing": ("晚上上网很慢，网页半天打不开", "刷网页一直转圈", "Web pages load very slowly at home",
                 "网速慢, 说\"4G满格\"但是打不开", "微信图片发不出去"),
    "video": ("看视频一直卡顿缓冲", "短视频加载慢", "Video keeps buffering in the evening"),
    "gaming": ("打游戏延迟很高，460ms", "王者荣耀经常卡顿掉线", "Game lag, ping over 200 ms"),
    "coverage": ("家里没有信号", "室内信号很差，电话打不通", "No signal indoors"),
    "": ("本月话费扣费有误", "套餐变更咨询", "Question about my bill", "流量包资费太贵"),
}

_MSISDN_PREFIXES = np.array([134, 135, 136, 137, 138, 139, 147, 150, 151, 152, 157, 158, 159,
                             178, 182, 183, 184, 187, 188, 198])

_CELLS_ZH = {
    "cell_id": "小区ID", "site_id": "基站ID", "cell_name": "小区名称", "lat": "纬度", "lon": "经度",
    "azimuth": "方位角", "beamwidth": "波瓣宽度", "vendor": "厂家", "region": "区域", "tech": "制式",
}
_COMPLAINTS_ZH = {
    "complaint_id": "投诉工单号", "ts": "投诉时间", "lat": "纬度", "lon": "经度",
    "category": "投诉类型", "msisdn": "手机号", "description": "投诉内容", "cell_id": "小区ID",
}

_TS_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class City:
    """Paths of the files :func:`make_city` (or :func:`make_followup`) wrote, and its truth
    tables; ``week``, ``followup_truth`` and ``followup_truth_df`` are set by
    :func:`make_followup` only."""

    out_dir: Path
    cells: Path
    tests: Path
    kpis: Path
    complaints: Path
    subscribers: Path
    truth: Path
    complaint_truth: Path
    expected_rejects: Path
    truth_df: pl.DataFrame = field(repr=False)
    complaint_truth_df: pl.DataFrame = field(repr=False)
    rejects_df: pl.DataFrame = field(repr=False)
    cells_df: pl.DataFrame = field(repr=False)
    week: int = 0
    followup_truth: Path | None = None
    followup_truth_df: pl.DataFrame | None = field(default=None, repr=False)
    character: str = "plain"
    #: the parameters the city was drawn with (:func:`draw_params`, and its floor)
    params: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def poor_cells(self) -> list[str]:
        """cell_id of every planted poor cell, sorted."""
        return self.truth_df.filter(pl.col("poor_services") != "")["cell_id"].to_list()


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _apportion(total: int, weights: dict[str, float], minimum: int = 0) -> dict[str, int]:
    """Split ``total`` by ``weights`` (largest remainder); then lift every share below ``minimum``
    to it, taking from the largest shares, when ``total`` is at least 4 x minimum per key."""
    keys = list(weights)
    w = np.array([weights[k] for k in keys], dtype=float)
    raw = w / w.sum() * total
    base = np.floor(raw).astype(int)
    order = np.argsort(-(raw - base), kind="stable")
    for i in order[: total - base.sum()]:
        base[i] += 1
    if minimum and total >= 4 * minimum * len(keys):
        for i in range(len(keys)):
            while base[i] < minimum:
                base[int(np.argmax(base))] -= 1
                base[i] += 1
    return {k: int(b) for k, b in zip(keys, base, strict=True)}


def _hex_grid(n: int, spacing: float, r_min: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of a jittered hexagonal grid, nearest to the centre beyond ``r_min`` (metres)."""
    if n == 0:
        return np.empty(0), np.empty(0)
    # radius holding n hexagons (area sqrt(3)/2 s^2 each), plus margin for the ring's edges
    r_need = math.sqrt(r_min**2 + n * math.sqrt(3) / 2 * spacing**2 / math.pi) + 2 * spacing
    m = int(r_need / spacing) + 2
    ii, jj = np.meshgrid(np.arange(-m, m + 1), np.arange(-m, m + 1), indexing="ij")
    x = (ii + 0.5 * (jj % 2)) * spacing
    y = jj * spacing * math.sqrt(3) / 2
    x, y = x.ravel(), y.ravel()
    r = np.hypot(x, y)
    keep = r >= r_min
    x, y, r = x[keep], y[keep], r[keep]
    # ties in radius broken by angle then x: a total order, so the selection is deterministic
    order = np.lexsort((x, np.arctan2(y, x), np.round(r, 6)))[:n]
    x, y = x[order], y[order]
    jit = 0.18 * spacing
    return x + rng.uniform(-jit, jit, n), y + rng.uniform(-jit, jit, n)


def _to_latlon(x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lat0, lon0 = CITY_CENTRE
    m_per_deg = geo.EARTH_RADIUS_M * math.pi / 180.0
    return lat0 + y_m / m_per_deg, lon0 + x_m / (m_per_deg * math.cos(math.radians(lat0)))


def _csv_text(df: pl.DataFrame, header: bool = True) -> str:
    return df.write_csv(include_header=header, datetime_format=_TS_FORMAT)


def _write_text(path: Path, text: str, encoding: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(text.encode(encoding))


def _write_df(path: Path, df: pl.DataFrame, encoding: str) -> None:
    """Write ``df`` as CSV; UTF-8 straight from polars (big feeds), others through a string."""
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        with atomic_path(path) as tmp:
            df.write_csv(tmp, datetime_format=_TS_FORMAT)
    else:
        _write_text(path, _csv_text(df), encoding)


# --------------------------------------------------------------------------------------------
# the city
# --------------------------------------------------------------------------------------------


def _make_cells(rng: np.random.Generator, n_cells: int, suburban_share: float,
                config: Config) -> pl.DataFrame:
    n_sub_cells = round(n_cells * suburban_share)
    n_core_cells = n_cells - n_sub_cells
    # sites per zone: mostly 3 sectors; about 5 % 2-sector and 3 % omni
    site_rows = []
    core_radius = 0.0
    for zone, n_zone in (("core", n_core_cells), ("suburban", n_sub_cells)):
        u = rng.random(n_zone)
        draw = np.where(u < 0.03, 1, np.where(u < 0.08, 2, 3))
        n_site_zone = int(np.searchsorted(np.cumsum(draw), n_zone)) + 1 if n_zone else 0
        sectors = draw[:n_site_zone].tolist()
        if sectors:
            sectors[-1] -= sum(sectors) - n_zone
        spacing = _CORE_SPACING_M if zone == "core" else _SUBURBAN_SPACING_M
        r_min = 0.0 if zone == "core" else core_radius + _CORE_SUBURBAN_GAP_M
        x, y = _hex_grid(len(sectors), spacing, r_min, rng)
        if zone == "core" and len(x):
            core_radius = float(np.hypot(x, y).max())
        for s in range(len(sectors)):
            site_rows.append((zone, sectors[s], x[s], y[s]))
    zone_arr = np.array([r[0] for r in site_rows])
    nsec = np.array([r[1] for r in site_rows], dtype=np.int64)
    sx = np.array([r[2] for r in site_rows])
    sy = np.array([r[3] for r in site_rows])
    n_sites = len(site_rows)
    slat, slon = _to_latlon(sx, sy)

    # district by angle (clockwise from north); each zone has its own district list
    ang = (np.degrees(np.arctan2(sx, sy)) + 360.0) % 360.0
    region = np.empty(n_sites, dtype=object)
    vendor = np.empty(n_sites, dtype=object)
    for zone, districts in (("core", _CORE_DISTRICTS), ("suburban", _SUBURBAN_DISTRICTS)):
        edges = np.cumsum([d[2] for d in districts]) * 360.0
        k = np.minimum(np.searchsorted(edges, ang, side="right"), len(districts) - 1)
        sel = zone_arr == zone
        region[sel] = np.array([districts[i][0] for i in k[sel]], dtype=object)
        vendor[sel] = np.array([districts[i][1] for i in k[sel]], dtype=object)

    # 6-digit eNB ids, scattered as real ones are
    enb = 100_000 + rng.choice(900_000, size=n_sites, replace=False)
    site_of_cell = np.repeat(np.arange(n_sites), nsec)
    sector = np.concatenate([np.arange(1, k + 1) for k in nsec]) if n_sites else np.empty(0, int)
    nsec_c = nsec[site_of_cell]
    rot = rng.uniform(-20.0, 20.0, n_sites)[site_of_cell]
    base_az = np.where(nsec_c == 3, (sector - 1) * 120.0, np.where(nsec_c == 2, (sector - 1) * 180.0, 0.0))
    azimuth = np.where(nsec_c == 1, 0.0, (base_az + rot + rng.uniform(-10, 10, n_cells)) % 360.0)
    beamwidth = np.where(nsec_c == 1, 360.0, np.where(rng.random(n_cells) < 0.15, 90.0, 65.0))
    place = np.array(_PLACES, dtype=object)[np.arange(n_sites) % len(_PLACES)]
    place_no = np.arange(n_sites) // len(_PLACES)
    site_name = [f"{region[s]}_{place[s]}{'' if place_no[s] == 0 else place_no[s]}" for s in range(n_sites)]
    # a few carry an ASCII tag as operators' names do (indoor, high-speed rail, ...)
    tags = np.where(rng.random(n_sites) < 0.06, "_HF", np.where(rng.random(n_sites) < 0.04, "_DS", ""))
    cells = pl.DataFrame({
        "cell_id": [f"460-00-{enb[s]}-{k}" for s, k in zip(site_of_cell, sector, strict=True)],
        "site_id": [str(enb[s]) for s in site_of_cell],
        "cell_name": [f"{site_name[s]}{tags[s]}_{k}" for s, k in zip(site_of_cell, sector, strict=True)],
        "lat": np.round(slat[site_of_cell], 6),
        "lon": np.round(slon[site_of_cell], 6),
        "azimuth": np.round(azimuth, 1) % 360.0,
        "beamwidth": beamwidth,
        "vendor": vendor[site_of_cell].tolist(),
        "region": region[site_of_cell].tolist(),
        "tech": "LTE",
        "isd_class": zone_arr[site_of_cell].tolist(),
    })
    isd = geo.site_isd(cells, config).select("cell_id", "isd_m")
    return cells.join(isd, on="cell_id", how="left").sort("cell_id")


#: planted secondary conditions each primary cause may carry
_PARTNERS: dict[str, tuple[str, ...]] = {
    "interference": ("high_load", "overshooting"),
    "high_load": ("interference",),
    "overshooting": ("interference", "weak_coverage"),
    "weak_coverage": ("overshooting",),
}


def _plant_truth(rng: np.random.Generator, cells: pl.DataFrame, poor_share: float,
                 config: Config, secondary_share: float = 0.15) -> dict[str, np.ndarray]:
    """Choose poor cells, their poor services, causes and secondary conditions."""
    n = cells.height
    n_poor = min(round(n * poor_share), n)
    n_unknown = max(1, round(0.03 * n_poor)) if n_poor >= 10 else 0
    causes = _apportion(n_poor - n_unknown, CASE_CAUSES, minimum=1)
    causes["unknown"] = n_unknown
    cause = np.full(n, "", dtype=object)
    free = np.ones(n, dtype=bool)
    core = (cells["isd_class"] == "core").to_numpy()
    lat, lon = cells["lat"].to_numpy(), cells["lon"].to_numpy()

    # interference: spatial clusters around a few sources (one interferer hits neighbouring cells)
    n_int = causes["interference"]
    if n_int:
        index = geo.GridIndex(lat, lon)
        size = max(2, n_int // max(1, n_int // 5))
        seeds = rng.permutation(n)
        nbrs, _ = index.knn(lat[seeds[: 4 * n_int]], lon[seeds[: 4 * n_int]], 12)
        picked: list[int] = []
        for row in nbrs:
            take = [int(i) for i in row if i >= 0 and free[i]]
            rng.shuffle(take)
            for i in take[: min(size, n_int - len(picked))]:
                free[i] = False
                picked.append(i)
            if len(picked) == n_int:
                break
        cause[np.array(picked, dtype=np.int64)] = "interference"
    # other causes: high load prefers the core, weak coverage the suburbs
    pref = {"high_load": np.where(core, 3.0, 1.0), "weak_coverage": np.where(core, 1.0, 4.0)}
    for c in ("high_load", "fault", "weak_coverage", "overshooting", "unknown"):
        k = causes[c]
        if not k:
            continue
        w = pref.get(c, np.ones(n)) * free
        chosen = rng.choice(n, size=k, replace=False, p=w / w.sum())
        cause[chosen] = c
        free[chosen] = False
    poor_idx = np.flatnonzero(cause != "")

    # poor services in the case's proportions; a few browsing-poor cells also poor in a second one
    svc_counts = _apportion(poor_idx.size, CASE_SERVICES)
    svc_list = np.repeat(np.array(list(svc_counts), dtype=object), list(svc_counts.values()))
    svc_list = svc_list[rng.permutation(svc_list.size)]
    poor_services = np.full(n, "", dtype=object)
    for i, s in zip(poor_idx, svc_list, strict=True):
        extra = ""
        if s == "browsing" and rng.random() < 0.02:
            extra = ";" + ("video" if rng.random() < 0.5 else "gaming")
        poor_services[i] = s + extra

    # planted co-occurring conditions, weaker than the primary evidence
    secondary = np.full(n, "", dtype=object)
    for i in poor_idx:
        if cause[i] in _PARTNERS and rng.random() < secondary_share:
            opts = _PARTNERS[cause[i]]
            secondary[i] = opts[int(rng.integers(len(opts)))]
    return {"cause": cause, "poor_services": poor_services, "secondary": secondary}


def _healthy_range(service: str, threshold: float) -> tuple[float, float]:
    """Range of a healthy cell's planted good-rate: far enough above the threshold that a cell
    with min_tests tests is rarely flagged by chance (browsing 0.92-0.98, video/gaming
    0.98-0.997 at the defaults)."""
    lo, hi = (0.6, 0.9) if service == "browsing" else (0.8, 0.97)
    return threshold + (1 - threshold) * lo, threshold + (1 - threshold) * hi


def _poor_gap_max(service: str) -> float:
    """Largest gap of a poor cell's planted good-rate below the threshold (smallest is 0.08)."""
    return 0.25 if service == "browsing" else 0.2


def _service_params(rng: np.random.Generator, poor: np.ndarray, config: Config) -> np.ndarray:
    """Expected good-rate per cell x service: clearly above (healthy) or below (poor) threshold."""
    n = poor.shape[0]
    p = np.empty((n, len(SERVICES)))
    for j, s in enumerate(SERVICES):
        t = config.kqi.thresholds.for_service(s)
        healthy = rng.uniform(*_healthy_range(s, t), n)
        # poor: 0.08-0.25 below (browsing 0.55-0.72), 0.08-0.2 (video/gaming 0.70-0.82)
        gap = rng.uniform(0.08, _poor_gap_max(s), n)
        p[:, j] = np.where(poor[:, j], t - gap, healthy)
    return p


def _poor_matrix(poor_services: np.ndarray) -> np.ndarray:
    """Boolean cell x service matrix of the ";"-joined ``poor_services`` strings."""
    poor = np.zeros((poor_services.shape[0], len(SERVICES)), dtype=bool)
    for j, s in enumerate(SERVICES):
        poor[:, j] = np.array([s in ps.split(";") for ps in poor_services], dtype=bool)
    return poor


def _test_counts(rng: np.random.Generator, need: np.ndarray, *, days: int,
                 tests_per_cell_day: float) -> np.ndarray:
    """Tests per cell x service; ``need`` (cell x service) is a floor on the expected count
    (0 = none), and cells with a need are never among the sparse or silent ones."""
    n = need.shape[0]
    any_need = (need > 0).any(axis=1)
    # tests per cell are skewed: most cells lognormal around the mean, ~8 % sparse, a few none
    w = rng.lognormal(0.0, 0.45, n)
    u = rng.random(n)
    sparse = (u < 0.08) & ~any_need
    w = np.where(sparse, rng.uniform(0.03, 0.15, n), w)
    w = np.where((u > 0.995) & ~any_need, 0.0, w)
    mix = rng.dirichlet(np.array([60.0, 25.0, 15.0]), n)
    expected = tests_per_cell_day * days * w[:, None] * mix
    # a planted poor service must be judged, and judged poor despite sampling noise
    scale = np.where(need > 0, need / np.maximum(expected, 1e-9), 1.0).max(axis=1)
    expected = expected * np.maximum(scale, 1.0)[:, None]
    return rng.poisson(expected)


def _make_tests(rng: np.random.Generator, cells: pl.DataFrame, *, counts: np.ndarray,
                p_good: np.ndarray, days: int, start: datetime, config: Config) -> pl.DataFrame:
    """Draw ``counts`` tests per cell x service over ``days`` from ``start``, exactly
    ``round(p_good x tests)`` of them good."""
    n = cells.height
    cell_of = np.repeat(np.repeat(np.arange(n), len(SERVICES)), counts.ravel())
    svc_of = np.repeat(np.tile(np.arange(len(SERVICES)), n), counts.ravel())
    m = cell_of.size
    # exactly round(p x tests) good tests per cell x service, at random places in the group: the
    # realised good-rate is the planted one, so the truth holds at the configured thresholds
    group = cell_of * len(SERVICES) + svc_of
    starts = np.concatenate(([0], np.cumsum(counts.ravel())))[:-1]
    # rows are laid out group by group; a random order within each group = sort by group + U(0,1)
    order = np.argsort(group + rng.random(m), kind="stable")
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.arange(m) - starts[group[order]]
    n_good = np.rint(p_good.ravel() * counts.ravel()).astype(np.int64)
    good = rank < n_good[group]
    # a bad test failed outright (no KQIs) or missed one KQI target
    success = good | (rng.random(m) >= 0.12)
    n_kqi = np.array([1, 2, 3])[svc_of]
    bad_kqi = np.where(good | ~success, -1, (rng.random(m) * n_kqi).astype(np.int64))
    tg = config.kqi.targets

    def kqi_values(target: float, is_bad: np.ndarray, sigma: float, good_median: float) -> np.ndarray:
        # folded lognormals: good values below the target, bad ones above (with a margin so
        # rounding in the CSV cannot move a value across the target)
        lo, hi = target * 0.99, target * 1.02
        x = np.exp(np.log(np.where(is_bad, target * 1.6, target * good_median))
                   + sigma * rng.standard_normal(is_bad.size))
        x = np.where(~is_bad & (x > lo), lo * lo / x, x)
        return np.where(is_bad & (x < hi), hi * hi / x, x)

    def ratio_values(target: float, is_bad: np.ndarray, zero_share: float, cap: float) -> np.ndarray:
        k = is_bad.size
        ok = np.where(rng.random(k) < zero_share, 0.0, rng.uniform(0.0, target * 0.95, k))
        return np.where(is_bad, rng.uniform(target * 1.1, min(cap, target * 15), k), ok)

    page = np.full(m, np.nan)
    ib = np.full(m, np.nan)
    stall = np.full(m, np.nan)
    rtt = np.full(m, np.nan)
    jit = np.full(m, np.nan)
    loss = np.full(m, np.nan)
    b = svc_of == 0
    page[b] = kqi_values(tg.page_load_ms, bad_kqi[b] == 0, 0.45, 0.45)
    v = svc_of == 1
    ib[v] = kqi_values(tg.initial_buffer_ms, bad_kqi[v] == 0, 0.5, 0.4)
    stall[v] = ratio_values(tg.stall_ratio, bad_kqi[v] == 1, 0.7, 1.0)
    g = svc_of == 2
    rtt[g] = kqi_values(tg.rtt_ms, bad_kqi[g] == 0, 0.35, 0.5)
    jit[g] = kqi_values(tg.jitter_ms, bad_kqi[g] == 1, 0.5, 0.35)
    loss[g] = ratio_values(tg.loss_pct, bad_kqi[g] == 2, 0.6, 100.0)
    # failed tests report no KQIs; a few bad ones lack the KQI that failed (not good either way)
    missing = (bad_kqi >= 0) & (rng.random(m) < 0.03)
    for k_idx, arr, svc in ((0, page, 0), (0, ib, 1), (1, stall, 1), (0, rtt, 2), (1, jit, 2),
                            (2, loss, 2)):
        arr[~success] = np.nan
        arr[missing & (svc_of == svc) & (bad_kqi == k_idx)] = np.nan

    day = rng.integers(0, days, m)
    hour = rng.choice(24, size=m, p=_HOURLY / _HOURLY.sum())
    sec = day * 86400 + hour * 3600 + rng.integers(0, 3600, m)
    # file order: by time, then cell (cells are sorted by cell_id), then service; lexsort is
    # stable, so equal keys keep their generation order and the bytes stay reproducible
    o = np.argsort((sec * n + cell_of) * len(SERVICES) + svc_of, kind="stable")
    ts = (np.datetime64(start, "s") + sec[o].astype("timedelta64[s]")).astype("datetime64[us]")
    tests = pl.DataFrame({
        "ts": ts,
        "cell_id": cells["cell_id"].gather(cell_of[o]),
        "service": pl.Series(SERVICES, dtype=pl.String).gather(svc_of[o]),
        "success": success[o].astype(np.int8),
        "page_load_ms": np.round(page[o], 0),
        "initial_buffer_ms": np.round(ib[o], 0),
        "stall_ratio": np.round(stall[o], 4),
        "rtt_ms": np.round(rtt[o], 1),
        "jitter_ms": np.round(jit[o], 1),
        "loss_pct": np.round(loss[o], 2),
    }, nan_to_null=True)
    return tests


#: relative traffic per hour of day of an office district (busy around midday)
_DAYTIME = np.array([
    0.20, 0.15, 0.12, 0.10, 0.10, 0.12, 0.25, 0.45, 0.70, 0.88, 0.96, 1.00,
    0.98, 0.97, 1.00, 0.95, 0.90, 0.75, 0.55, 0.45, 0.40, 0.35, 0.30, 0.25,
])


@dataclass(frozen=True)
class Character:
    """How hard a city's KPIs are to read: ranges that :func:`make_city` draws from the seed
    (docs/synthetic-city.md). A tuple ``(lo, hi)`` is drawn uniformly; ``lo == hi`` is fixed."""

    name: str
    #: UL noise floor of the network (dBm)
    floor_dbm: tuple[float, float] = (-116.0, -116.0)
    #: per-cell floor offset, uniform within +-this (band, equipment)
    floor_spread_db: tuple[float, float] = (0.75, 0.75)
    #: load-induced UL noise rise, dB per PRB point of the hour's load
    load_db_per_prb: tuple[float, float] = (0.02, 0.02)
    #: share of cells whose traffic peaks around midday (offices) instead of the evening
    daytime_share: tuple[float, float] = (0.0, 0.0)
    #: planted primary strength in score units (margin / the cause's scale) for interference,
    #: high load, weak coverage and overshooting; each cell draws its own within the range
    strength: tuple[float, float] = (1.0, 3.0)
    #: share of poor cells with a planted secondary condition
    secondary_share: tuple[float, float] = (0.15, 0.15)
    #: share of interference cells whose interferer is constant (else it follows traffic)
    constant_interferer_share: tuple[float, float] = (0.0, 0.0)
    #: share of healthy cells with a constant, harmless UL rise of 3-10 dB (noise for the floor)
    interfered_healthy_share: tuple[float, float] = (0.0, 0.0)
    #: share of healthy and unknown cells with CQI>=7 below target (low CQI alone)
    low_cqi_share: tuple[float, float] = (0.0, 0.0)
    #: share of cells whose KPI export lacks one or two columns (never their cause's own)
    kpi_missing_share: tuple[float, float] = (0.0, 0.0)


#: the city characters :func:`make_city` knows; ``plain`` is the default (the demo)
CHARACTERS: dict[str, Character] = {
    "plain": Character("plain"),
    # every difficulty at once, each drawn from the seed within its range
    "hard": Character(
        "hard", floor_dbm=(-118.0, -100.0), floor_spread_db=(0.5, 1.5),
        load_db_per_prb=(0.03, 0.09), daytime_share=(0.2, 0.6), strength=(0.25, 1.5),
        secondary_share=(0.3, 0.5), constant_interferer_share=(0.3, 0.7),
        interfered_healthy_share=(0.02, 0.08), low_cqi_share=(0.1, 0.3),
        kpi_missing_share=(0.05, 0.15)),
}


def draw_params(character: str | Character, seed: int) -> dict[str, float]:
    """The parameters a city of ``character`` gets from ``seed`` (its own random stream)."""
    ch = CHARACTERS[character] if isinstance(character, str) else character
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(300,)))
    out: dict[str, float] = {}
    for f in dataclasses.fields(ch):
        if f.name in ("name", "strength"):  # strength is a range within the city
            continue
        lo, hi = getattr(ch, f.name)
        out[f.name] = float(lo) if lo == hi else float(rng.uniform(lo, hi))
    return out


#: per cause: the scale field of its score and the columns its evidence needs (never dropped)
_CAUSE_SCALE = {"interference": "interference_scale_db", "high_load": "prb_scale_pct",
                "weak_coverage": "rsrp_weak_scale", "overshooting": "overshoot_scale"}
_CAUSE_COLUMNS = {
    "interference": ("ul_interference_dbm", "cqi_good_ratio", "prb_util_dl"),
    "high_load": ("prb_util_dl", "rrc_users_max"),
    "fault": ("availability", "alarm_count"),
    "weak_coverage": ("rsrp_weak_ratio",),
    "overshooting": ("ta_p90_m",),
}
_DROPPABLE = ("cqi_good_ratio", "rsrp_weak_ratio", "ta_p90_m", "alarm_count", "rrc_users_max",
              "ul_interference_dbm", "prb_util_dl")
#: a planted secondary is at most this share of the primary's score, and at least this margin
_SECONDARY_RATIO = (0.15, 0.6)
_SECONDARY_MIN = 0.15


def _strengths(rng: np.random.Generator, truth: dict[str, np.ndarray], params: dict[str, float],
               config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Primary and secondary strength per cell, in score units; a secondary too weak to plant
    (the primary is near its threshold) is dropped from ``truth["secondary"]`` (in place)."""
    n = truth["cause"].shape[0]
    u_p = np.asarray(rng.uniform(params["strength_lo"], params["strength_hi"], n), dtype=np.float64)
    bonus = config.diagnosis.support_bonus
    has_support = {"interference": bonus, "high_load": bonus}
    b_p = np.array([has_support.get(c, 0.0) for c in truth["cause"]])
    b_s = np.array([has_support.get(c, 0.0) for c in truth["secondary"]])
    total_s = rng.uniform(*_SECONDARY_RATIO, n) * (u_p + b_p)
    u_s = total_s - b_s
    weak = (truth["secondary"] != "") & (u_s < _SECONDARY_MIN)
    truth["secondary"][weak] = ""
    return u_p, np.where(truth["secondary"] != "", u_s, 0.0)


def _make_kpis(rng: np.random.Generator, cells: pl.DataFrame, truth: dict[str, np.ndarray], *,
               days: int, start: datetime, noise_floor_dbm: float, config: Config,
               params: dict[str, float] | None = None) -> pl.DataFrame:
    n = cells.height
    H = days * 24
    dc = config.diagnosis
    prm = params if params is not None else _plain_params()
    cause = truth["cause"]
    sec = truth["secondary"]
    isd = cells["isd_m"].fill_null(1000.0).to_numpy()
    core = (cells["isd_class"] == "core").to_numpy()
    u_p, u_s = _strengths(rng, truth, prm, config)

    def has(c: str) -> np.ndarray:
        return cause == c

    def has2(c: str) -> np.ndarray:
        return np.array([c in s.split(";") for s in sec], dtype=bool)

    def level(c: str, threshold: float, base: np.ndarray) -> np.ndarray:
        """``base``, with the cause's evidence planted at its strength above ``threshold``."""
        scale = float(getattr(dc, _CAUSE_SCALE[c]))
        out = np.where(has(c), threshold + u_p * scale, base)
        return np.where(has2(c), threshold + u_s * scale, out)

    hours = np.arange(H)
    daytime = rng.random(n) < prm["daytime_share"]
    shape = np.where(daytime[:, None], _DAYTIME[None, :], _HOURLY[None, :])  # cell x hour of day
    weekday = ((np.datetime64(start, "D").astype(int) + 3 + hours // 24) % 7)  # 0 = Monday
    week_f = np.where(weekday >= 5, 0.93, 1.0)
    prof = shape[:, hours % 24] * week_f[None, :]

    # levels below are what a busy-hour average sees (the cell's top busy_hour_count hours of
    # the day, weekends included); dividing by that gain gives the profile's peak
    k_busy = max(1, dc.busy_hour_count)
    gain = np.sort(shape, axis=1)[:, -k_busy:].mean(axis=1) * float(week_f.mean())
    # PRB: healthy cells 20-60 % in busy hours, some busy healthy cells just below the rule
    busy_prb = np.where(rng.random(n) < 0.12, rng.uniform(dc.prb_util_pct - 14, dc.prb_util_pct - 5, n),
                        rng.uniform(20.0, dc.prb_util_pct - 10, n))
    busy_prb = np.minimum(level("high_load", dc.prb_util_pct, busy_prb), 97.0)
    prb = np.clip((busy_prb / gain)[:, None] * prof * (1 + rng.normal(0, 0.05, (n, H))), 0.5, 99.8)
    prb_ul = np.clip(prb * rng.uniform(0.35, 0.6, n)[:, None] * (1 + rng.normal(0, 0.05, (n, H))), 0.2, 99.0)
    users_busy = np.clip(busy_prb * rng.uniform(1.2, 1.8, n), 5, dc.rrc_users - 30)
    users_busy = np.where(has("high_load"), rng.uniform(dc.rrc_users + 30, dc.rrc_users + 250, n), users_busy)
    users_busy = np.where(has2("high_load"), rng.uniform(dc.rrc_users + 5, dc.rrc_users + 30, n), users_busy)
    users = np.round(np.maximum(users_busy[:, None] * prof * (1 + rng.normal(0, 0.08, (n, H))), 0.0))

    # UL interference + noise: the cell's floor, the noise rise its own load brings (the same
    # dB per PRB point network-wide), and an interferer where planted. The interferer's rise is
    # planted over the network floor net of load, at its strength above the rule's rise
    spread = prm["floor_spread_db"]
    offset = rng.uniform(-spread, spread, n)
    interfered = has("interference") | has2("interference")
    offset = np.where(interfered, 0.0, offset)
    rise = level("interference", dc.interference_rise_db, np.zeros(n))
    harmless = ~interfered & (cause == "") & (rng.random(n) < prm["interfered_healthy_share"])
    rise = np.where(harmless, rng.uniform(3.0, 10.0, n), rise)
    constant = harmless | (rng.random(n) < prm["constant_interferer_share"])
    # the interferer is constant, or on all day but strongest in the cell's busy hours
    pattern = np.where(constant[:, None], 1.0,
                       (0.35 + 0.65 * prof) / (0.35 + 0.65 * gain)[:, None])
    ul = (noise_floor_dbm + offset[:, None] + prm["load_db_per_prb"] * prb
          + rise[:, None] * pattern + rng.normal(0, 0.5, (n, H)))

    # CQI >= 7 share
    cqi_base = rng.uniform(dc.cqi_good_ratio + 0.02, 0.97, n)
    cqi_busy = cqi_base - 0.02
    low = (cause == "") | (cause == "unknown")
    low &= rng.random(n) < prm["low_cqi_share"]
    cqi_busy = np.where(low, rng.uniform(0.80, dc.cqi_good_ratio - 0.01, n), cqi_busy)
    cqi_busy = np.where(has("interference"), rng.uniform(0.70, dc.cqi_good_ratio - 0.04, n), cqi_busy)
    cqi_busy = np.where(has("weak_coverage"), rng.uniform(0.78, dc.cqi_good_ratio - 0.02, n), cqi_busy)
    cqi_busy = np.where(has("overshooting"), rng.uniform(0.84, 0.90, n), cqi_busy)
    cqi_busy = np.where(has2("interference"), np.minimum(cqi_busy, rng.uniform(0.83, 0.87, n)), cqi_busy)
    cqi_base = np.maximum(cqi_base, cqi_busy)
    cqi = np.clip(cqi_base[:, None] - ((cqi_base - cqi_busy) / gain)[:, None] * prof
                  + rng.normal(0, 0.01, (n, H)), 0.0, 1.0)

    # weak-RSRP share
    weak = np.where(core, rng.uniform(0.01, 0.10, n), rng.uniform(0.04, 0.14, n))
    weak = np.where(has("overshooting"), rng.uniform(0.08, dc.rsrp_weak_ratio - 0.03, n), weak)
    weak = np.minimum(level("weak_coverage", dc.rsrp_weak_ratio, weak), 0.9)
    rsrp = np.clip(weak[:, None] * (1 + rng.normal(0, 0.08, (n, H))), 0.0, 1.0)

    # TA p90 as a multiple of the local ISD: healthy 0.5-1.0, overshooting past the rule
    f = rng.uniform(0.5, 1.0, n)
    f = np.where(has("weak_coverage"), rng.uniform(0.9, 1.3, n), f)
    f = level("overshooting", dc.overshoot_isd_factor, f)
    ta = np.maximum(f * np.maximum(isd, dc.isd_floor_m), 80.0)[:, None] * (1 + rng.normal(0, 0.06, (n, H)))

    # availability and alarms: faults are a few bad hours with alarms
    avail = np.full((n, H), 100.0)
    alarms = np.zeros((n, H), dtype=np.int64)
    glitch = rng.random((n, H)) < 0.0005
    avail[glitch] = rng.uniform(dc.availability_pct + 0.2, 99.99, int(glitch.sum()))
    for i in np.flatnonzero(has("fault")):
        k = int(rng.integers(2, 7))
        hrs = rng.choice(H, size=min(k, H), replace=False)
        avail[i, hrs] = rng.uniform(30.0, dc.availability_pct - 3.0, hrs.size)
        alarms[i, hrs] = rng.integers(dc.alarm_count, dc.alarm_count + 4, hrs.size)
    fault_mask = alarms > 0

    # whole columns missing for some cells (an export without them), never the ones the
    # cell's planted causes are read from
    missing: dict[str, np.ndarray] = {c: np.zeros(n, dtype=bool) for c in _DROPPABLE}
    for i in np.flatnonzero(rng.random(n) < prm["kpi_missing_share"]):
        keep = {c for name in (cause[i], *sec[i].split(";")) for c in _CAUSE_COLUMNS.get(name, ())}
        options = [c for c in _DROPPABLE if c not in keep]
        for c in rng.choice(options, size=min(len(options), int(rng.integers(1, 3))), replace=False):
            missing[str(c)][i] = True

    def drop(a: np.ndarray, name: str, share: float = 0.003) -> np.ndarray:
        a = a.astype(np.float64)
        a[(rng.random(a.shape) < share) & ~fault_mask] = np.nan
        if name in missing:
            a[missing[name]] = np.nan
        return a

    ts = (np.datetime64(start, "s") + (hours * 3600).astype("timedelta64[s]")).astype("datetime64[us]")
    # hour-major (ts, then cell_id): transposing the (cell, hour) arrays needs no sort
    def col(a: np.ndarray, name: str, decimals: int | None) -> np.ndarray:
        a = drop(a, name)
        return (np.round(a, decimals) if decimals is not None else a).T.ravel()

    alarm_out = alarms.astype(np.float64)
    alarm_out[missing["alarm_count"]] = np.nan
    return pl.DataFrame({
        "ts": np.repeat(ts, n),
        "cell_id": pl.concat([cells["cell_id"]] * H),
        "prb_util_dl": col(prb, "prb_util_dl", 2),
        "prb_util_ul": col(prb_ul, "prb_util_ul", 2),
        "rrc_users_max": col(users, "rrc_users_max", None),
        "ul_interference_dbm": col(ul, "ul_interference_dbm", 2),
        "rsrp_weak_ratio": col(rsrp, "rsrp_weak_ratio", 4),
        "cqi_good_ratio": col(cqi, "cqi_good_ratio", 4),
        "ta_p90_m": col(ta, "ta_p90_m", 0),
        "availability": np.round(avail, 2).T.ravel(),
        "alarm_count": alarm_out.T.ravel(),
    }, nan_to_null=True).with_columns(pl.col("alarm_count").cast(pl.Int64))


def _city_params(character: str, seed: int, noise_floor_dbm: float | None
                 ) -> tuple[dict[str, float], float]:
    if character not in CHARACTERS:
        raise ValueError(f"character must be one of {', '.join(CHARACTERS)}, got {character!r}")
    params = _flat(draw_params(character, seed), CHARACTERS[character])
    floor = params["floor_dbm"] if noise_floor_dbm is None else float(noise_floor_dbm)
    return params, floor


def _plain_params() -> dict[str, float]:
    return _flat(draw_params("plain", 0), CHARACTERS["plain"])


def _flat(drawn: dict[str, float], ch: Character) -> dict[str, float]:
    """Drawn parameters plus the strength range's ends (strength is a range within a city)."""
    out = dict(drawn)
    out["strength_lo"], out["strength_hi"] = ch.strength
    return out


def _make_complaints(rng: np.random.Generator, cells: pl.DataFrame, truth: dict[str, np.ndarray], *,
                     test_counts: np.ndarray, days: int, start: datetime,
                     complaints_per_day: float, boost: np.ndarray | None = None
                     ) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """Complaint tickets and their truth; ``boost`` (per cell, 1 = as usual) multiplies a poor
    cell's complaint rate, and a boosted cell is never silent."""
    n = cells.height
    total = round(complaints_per_day * days)
    poor_idx = np.flatnonzero(truth["poor_services"] != "")
    n_bill = round(total * 0.2)
    n_net = total - n_bill
    n_poor_net = round(n_net * 0.7) if poor_idx.size else 0
    n_bg = n_net - n_poor_net

    # ~30 % of poor cells are silent; the others complain at heavy-tailed rates
    loud_draw = rng.random(poor_idx.size) >= 0.3
    if boost is not None:
        loud_draw |= boost[poor_idx] > 1.0
    loud = poor_idx[loud_draw]
    rising = np.zeros(n, dtype=bool)
    two_weeks = days >= 14
    cell_l: list[np.ndarray] = []
    kind_l: list[np.ndarray] = []
    day_l: list[np.ndarray] = []
    if n_poor_net and loud.size:
        # every loud cell complains at least once (the silent ones are the other ~30 %)
        if loud.size > n_poor_net:
            loud = np.sort(rng.choice(loud, size=n_poor_net, replace=False))
        rate = rng.lognormal(0.0, 0.8, loud.size)
        if boost is not None:
            rate = rate * boost[loud]
        if two_weeks:
            up = rng.random(loud.size) < 0.15
            rising[loud[up]] = True
            rate = np.where(up, 3.0 * rate, rate)
        extra = rng.choice(loud.size, size=n_poor_net - loud.size, p=rate / rate.sum())
        cc = loud[np.concatenate([np.arange(loud.size), extra])]
        kinds = []
        for i in cc:
            svcs = truth["poor_services"][i].split(";")
            k = svcs[int(rng.integers(len(svcs)))]
            if truth["cause"][i] in ("weak_coverage", "overshooting") and rng.random() < 0.3:
                k = "coverage"
            kinds.append(k)
        # rising cells: 85 % of their complaints fall in the second week
        dd = rng.integers(0, days, cc.size)
        if two_weeks:
            late = rng.random(cc.size) < 0.85
            dd = np.where(rising[cc], np.where(late, rng.integers(7, 14, cc.size),
                                               rng.integers(0, 7, cc.size)), dd)
        cell_l.append(cc)
        kind_l.append(np.array(kinds, dtype=object))
        day_l.append(dd)
    # background network complaints and billing ones, on cells weighted by traffic
    traffic = test_counts.sum(axis=1).astype(float) + 1.0
    healthy = truth["poor_services"] == ""
    wbg = traffic * healthy
    if n_bg and wbg.sum() > 0:
        cc = rng.choice(n, size=n_bg, p=wbg / wbg.sum())
        kinds = np.array(["browsing", "browsing", "browsing", "video", "gaming", "coverage"],
                         dtype=object)[rng.integers(0, 6, n_bg)]
        cell_l.append(cc)
        kind_l.append(kinds)
        day_l.append(rng.integers(0, days, n_bg))
    if n_bill:
        cell_l.append(rng.choice(n, size=n_bill, p=traffic / traffic.sum()))
        kind_l.append(np.full(n_bill, "", dtype=object))
        day_l.append(rng.integers(0, days, n_bill))
    cell_of = np.concatenate(cell_l) if cell_l else np.empty(0, np.int64)
    kind = np.concatenate(kind_l) if kind_l else np.empty(0, object)
    day = np.concatenate(day_l) if day_l else np.empty(0, np.int64)
    m = cell_of.size

    # position inside the serving cell's beam, up to 0.6 x its ISD
    lat = cells["lat"].to_numpy()[cell_of]
    lon = cells["lon"].to_numpy()[cell_of]
    az = cells["azimuth"].to_numpy()[cell_of]
    bw = cells["beamwidth"].to_numpy()[cell_of]
    isd = cells["isd_m"].fill_null(1000.0).to_numpy()[cell_of]
    bearing = (az + rng.uniform(-0.4, 0.4, m) * np.minimum(bw, 360.0)) % 360.0
    dist = isd * 0.6 * np.sqrt(rng.uniform(0.02, 1.0, m))
    plat, plon = geo.destination(lat, lon, bearing, dist)

    hour = rng.choice(24, size=m, p=(_HOURLY + 0.2) / (_HOURLY + 0.2).sum())
    sec = day * 86400 + hour * 3600 + rng.integers(0, 3600, m)
    ts = (np.datetime64(start, "s") + sec.astype("timedelta64[s]")).astype("datetime64[us]")
    category = [(_CATEGORIES[k])[int(rng.integers(len(_CATEGORIES[k])))] for k in kind]
    description = [(_DESCRIPTIONS[k])[int(rng.integers(len(_DESCRIPTIONS[k])))] for k in kind]
    # hostile text: each string at least once, then at ~2 % of the rest
    slots = rng.permutation(m)
    for j, h in enumerate(HOSTILE_STRINGS):
        if j < m:
            description[slots[j]] = h
    for i in slots[len(HOSTILE_STRINGS):]:
        if rng.random() < 0.02:
            description[i] = HOSTILE_STRINGS[int(rng.integers(len(HOSTILE_STRINGS)))]
    # msisdn: 11 digits; some subscribers complain more than once
    subs = (_MSISDN_PREFIXES[rng.integers(0, _MSISDN_PREFIXES.size, m)].astype(np.int64) * 10**8
            + rng.integers(0, 10**8, m))
    repeat = rng.random(m) < 0.1
    if m > 1:
        subs[repeat] = subs[rng.integers(0, m, int(repeat.sum()))]
    crm = rng.random(m) < 0.15
    no_pos = crm & (rng.random(m) < 0.3)
    cell_ids = cells["cell_id"].to_numpy()[cell_of]
    raw = pl.DataFrame({
        "ts": ts,
        "lat": np.where(no_pos, np.nan, np.round(plat, 6)),
        "lon": np.where(no_pos, np.nan, np.round(plon, 6)),
        "category": category,
        "msisdn": [str(s) for s in subs],
        "description": description,
        "cell_id": np.where(crm, cell_ids, None).tolist(),
        "_true_cell": cell_ids.tolist(),
        "_network": (kind != "").tolist(),
    }, nan_to_null=True)
    raw = raw.sort(["ts", "_true_cell", "category", "msisdn", "description"], maintain_order=True)
    ids = [f"C{d:%Y%m%d}{i:06d}" for i, d in enumerate(raw["ts"].to_list(), start=1)]
    raw = raw.with_columns(complaint_id=pl.Series(ids, dtype=pl.String))
    complaints = raw.select("complaint_id", "ts", "lat", "lon", "category", "msisdn",
                            "description", "cell_id")
    ctruth = raw.select("complaint_id", pl.col("_true_cell").alias("cell_id"),
                        pl.col("_network").alias("network"))
    return complaints, ctruth, rising


# --------------------------------------------------------------------------------------------
# corruption: malformed rows injected into the CSV text, with their expected line numbers
# --------------------------------------------------------------------------------------------


def _inject(lines: list[str], bad: list[tuple[str, str]], rng: np.random.Generator,
            feed: str) -> tuple[list[str], list[tuple[str, int, str]]]:
    """Insert ``bad`` (text, reason) rows among the data lines; return new lines + rejects."""
    n_data = len(lines) - 1
    # never before the first data line: a duplicate id must come after the row it repeats
    first = 2 if n_data >= 2 else 1
    pos = np.sort(rng.choice(np.arange(first, n_data + 1), size=len(bad),
                             replace=n_data - first + 1 < len(bad)))
    out = [lines[0]]
    rejects = []
    j = 0
    for i in range(1, len(lines)):
        while j < len(bad) and pos[j] == i:
            out.append(bad[j][0])
            rejects.append((feed, len(out), bad[j][1]))
            j += 1
        out.append(lines[i])
    while j < len(bad):
        out.append(bad[j][0])
        rejects.append((feed, len(out), bad[j][1]))
        j += 1
    return out, rejects


def _row_text(row: dict[str, object], columns: list[str]) -> str:
    df = pl.DataFrame({c: [None if row.get(c) is None else str(row[c])] for c in columns},
                      schema=dict.fromkeys(columns, pl.String))
    return _csv_text(df, header=False).rstrip("\n")


def _corrupt_tests(tests: pl.DataFrame) -> list[tuple[str, str]]:
    cols = tests.columns
    base = tests.filter(pl.col("service") == "browsing").row(0, named=True)
    base["ts"] = base["ts"].strftime(_TS_FORMAT)
    video = tests.filter(pl.col("service") == "video")
    vbase = video.row(0, named=True) if video.height else dict(base)
    vbase["ts"] = base["ts"]
    return [
        (_row_text({**base, "page_load_ms": "12O0"}, cols), "number"),
        (_row_text({**vbase, "stall_ratio": "1.7"}, cols), "range"),
        (_row_text({**base, "cell_id": "460-00-999999-9"}, cols), "unknown_cell"),
        (_row_text({**base, "service": "voice_call"}, cols), "service"),
        (_row_text({**base, "ts": "2026-13-45 25:61:00"}, cols), "timestamp"),
        (_row_text({**base, "success": "7"}, cols), "range"),
    ]


def _corrupt_complaints(complaints: pl.DataFrame, lines: list[str]) -> list[tuple[str, str]]:
    cols = complaints.columns
    pos = complaints.filter(pl.col("lat").is_not_null())
    base = pos.row(0, named=True)
    base["ts"] = base["ts"].strftime(_TS_FORMAT)
    # the id of the first data row, repeated on a later row: the later occurrence is the reject
    first_id = lines[1].split(",", 1)[0]
    return [
        (_row_text({**base, "complaint_id": "CBAD000001", "lat": None, "lon": None,
                    "cell_id": None}, cols), "position"),
        (_row_text({**base, "complaint_id": "CBAD000002", "lat": "123.4"}, cols), "range"),
        (_row_text({**base, "complaint_id": "CBAD000003", "lon": "abc"}, cols), "number"),
        (_row_text({**base, "complaint_id": first_id}, cols), "duplicate"),
    ]


# --------------------------------------------------------------------------------------------
# parts shared by every week
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Week0:
    """What every week of one network shares: its cells, week 0's planted truth and test plan,
    and week 0's random streams (``tests`` positioned after the plan's draws)."""

    cells: pl.DataFrame
    truth: dict[str, np.ndarray]
    counts: np.ndarray
    p_good: np.ndarray
    rngs: dict[str, np.random.Generator]


def _check_city_args(n_cells: int, days: int, suburban_share: float, poor_share: float, *,
                     tests_format: str, encoding: str) -> None:
    if n_cells < 1:
        raise ValueError(f"n_cells must be at least 1, got {n_cells}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if not 0.0 <= suburban_share <= 1.0 or not 0.0 <= poor_share <= 1.0:
        raise ValueError("suburban_share and poor_share must be between 0 and 1")
    if tests_format not in ("csv", "parquet"):
        raise ValueError(f"tests_format must be 'csv' or 'parquet', got {tests_format!r}")
    "x".encode(encoding)  # an unknown codec fails here, before any work


def _week0(seed: int, *, n_cells: int, days: int, tests_per_cell_day: float,
           suburban_share: float, poor_share: float, config: Config,
           secondary_share: float = 0.15) -> _Week0:
    # independent streams per part: changing one part's draws leaves the others as they were
    ss = np.random.SeedSequence(seed)
    r_cells, r_truth, r_tests, r_kpis, r_compl, r_corrupt = (np.random.default_rng(s) for s in ss.spawn(6))
    cells = _make_cells(r_cells, n_cells, suburban_share, config)
    truth = _plant_truth(r_truth, cells, poor_share, config, secondary_share)
    poor = _poor_matrix(truth["poor_services"])
    counts = _test_counts(r_tests, np.where(poor, 4.0 * config.kqi.min_tests, 0.0), days=days,
                          tests_per_cell_day=tests_per_cell_day)
    p_good = _service_params(r_tests, poor, config)
    return _Week0(cells=cells, truth=truth, counts=counts, p_good=p_good,
                  rngs={"tests": r_tests, "kpis": r_kpis, "complaints": r_compl, "corrupt": r_corrupt})


def _subscribers(rng: np.random.Generator, cells: pl.DataFrame, counts: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({
        "cell_id": cells["cell_id"],
        "subscribers": np.round(400 + counts.sum(axis=1) * rng.uniform(8, 20, cells.height)).astype(np.int64),
    })


def _truth_frame(cells: pl.DataFrame, truth: dict[str, np.ndarray], rising: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({
        "cell_id": cells["cell_id"],
        "poor_services": truth["poor_services"].tolist(),
        "cause": truth["cause"].tolist(),
        "secondary": truth["secondary"].tolist(),
        "isd_class": cells["isd_class"],
        "isd_m": cells["isd_m"].round(1),
        "complaints_rising": rising,
    }, schema_overrides={"poor_services": pl.String, "cause": pl.String, "secondary": pl.String})


def _write_week(out: Path, *, cells: pl.DataFrame, tests: pl.DataFrame, kpis: pl.DataFrame,
                complaints: pl.DataFrame, ctruth: pl.DataFrame, subs: pl.DataFrame,
                truth_df: pl.DataFrame, r_corrupt: np.random.Generator, encoding: str,
                chinese_headers: bool, tests_format: str, corrupt: bool
                ) -> tuple[dict[str, Path], pl.DataFrame]:
    """Write one week's feeds and truth files; return their paths and the expected rejects."""
    paths = {
        "cells": out / "cells.csv",
        "tests": out / ("app_tests.parquet" if tests_format == "parquet" else "app_tests.csv"),
        "kpis": out / "cell_kpis.csv",
        "complaints": out / "complaints.csv",
        "subscribers": out / "subscribers.csv",
        "truth": out / "truth.csv",
        "complaint_truth": out / "complaint_truth.csv",
        "expected_rejects": out / "expected_rejects.csv",
    }
    rejects: list[tuple[str, int, str]] = []

    cells_out = cells.select("cell_id", "site_id", "cell_name", "lat", "lon", "azimuth",
                             "beamwidth", "vendor", "region", "tech")
    if chinese_headers:
        cells_out = cells_out.rename(_CELLS_ZH)
    _write_text(paths["cells"], _csv_text(cells_out), encoding)

    if tests_format == "parquet":
        tests_pq = tests
        if corrupt:
            bad = pl.DataFrame([
                {**tests.row(0, named=True), "stall_ratio": 1.7, "service": "video"},
                {**tests.row(1, named=True), "cell_id": "460-00-999999-9"},
                {**tests.row(2, named=True), "service": "voice_call"},
            ], schema=tests.schema)
            at = [tests.height // 4, tests.height // 2, 3 * tests.height // 4]
            parts, prev = [], 0
            for k, a in enumerate(at):
                parts.extend([tests.slice(prev, a - prev), bad.slice(k, 1)])
                # parquet has no header line: line = 1-based row number (as ingest reports it)
                rejects.append(("app_tests", a + k + 1, ("range", "unknown_cell", "service")[k]))
                prev = a
            parts.append(tests.slice(prev))
            tests_pq = pl.concat(parts)
        with atomic_path(paths["tests"]) as tmp:
            tests_pq.with_columns(pl.col("ts").dt.replace_time_zone("UTC")).write_parquet(
                tmp, compression="zstd", statistics=True)
    elif corrupt:
        lines = _csv_text(tests).splitlines()
        lines, rj = _inject(lines, _corrupt_tests(tests), r_corrupt, "app_tests")
        rejects.extend(rj)
        _write_text(paths["tests"], "\n".join(lines) + "\n", encoding)
    else:
        _write_df(paths["tests"], tests, encoding)

    _write_df(paths["kpis"], kpis, encoding)

    comp_out = complaints.rename(_COMPLAINTS_ZH) if chinese_headers else complaints
    lines = _csv_text(comp_out).splitlines()
    if corrupt and complaints.height:
        lines, rj = _inject(lines, _corrupt_complaints(complaints, lines), r_corrupt, "complaints")
        rejects.extend(rj)
    _write_text(paths["complaints"], "\n".join(lines) + "\n", encoding)

    _write_text(paths["subscribers"], _csv_text(subs), encoding)
    _write_text(paths["truth"], _csv_text(truth_df), "utf-8")
    _write_text(paths["complaint_truth"], _csv_text(ctruth), "utf-8")
    rejects_df = pl.DataFrame(sorted(rejects, key=lambda r: (r[0], r[1])),
                              schema={"feed": pl.String, "line": pl.Int64, "reason": pl.String},
                              orient="row")
    _write_text(paths["expected_rejects"], _csv_text(rejects_df), "utf-8")
    return paths, rejects_df


#: first day of a synthetic city's week 0 (``YYYY-MM-DD``)
DEFAULT_START = "2026-11-02"

# --------------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------------


def make_city(
    out_dir: str | Path,
    *,
    seed: int = 7,
    n_cells: int = 1600,
    days: int = 7,
    tests_per_cell_day: float = 30.0,
    start: str = DEFAULT_START,
    noise_floor_dbm: float | None = None,
    character: str = "plain",
    suburban_share: float = 0.35,
    poor_share: float = 0.10,
    complaints_per_day: float | None = None,
    encoding: str = "utf-8",
    chinese_headers: bool = False,
    tests_format: Literal["csv", "parquet"] = "csv",
    corrupt: bool = False,
    config: Config | None = None,
) -> City:
    """Generate a synthetic city's input feeds and ground truth into ``out_dir``.

    Parameters
    ----------
    out_dir
        Folder to write into (created if missing; existing files of the same names replaced).
    seed
        Seed of the numpy Generator: the same arguments give byte-identical files.
    n_cells
        Number of cells (sites get three sectors, a few two or one).
    days
        Days of tests, hourly KPIs and complaints, from ``start`` (``YYYY-MM-DD``).
    tests_per_cell_day
        Mean app tests per cell and day (skewed across cells; planted poor services always get
        at least 4 x ``config.kqi.min_tests`` expected tests).
    noise_floor_dbm
        Uplink noise floor (dBm): healthy cells' quiet-hour UL interference sits within about
        1 dB of it. ``None`` = the character's (plain: -116; hard: drawn from -118..-100).
    character
        ``plain`` (the demo) or ``hard`` (:data:`CHARACTERS`): how hard the KPIs are to read;
        the hard character's parameters (floor, load-induced noise rise, traffic peaks, planted
        strengths near the thresholds, mixed causes, missing KPI columns) are drawn from
        ``seed`` (:func:`draw_params`), so hard cities differ by seed.
    suburban_share
        Share of cells in the sparse suburban ring (ISD ~1.3-1.6 km vs ~400 m in the core).
    poor_share
        Share of cells planted poor (the case: 10.1 %).
    complaints_per_day
        Complaints per day; ``None`` = 2.5 per 100 cells (40 for 1,600 cells).
    encoding
        Encoding of the input CSVs (``utf-8``, ``utf-8-sig``, ``gbk``).
    chinese_headers
        Write cells and complaints with Chinese headers (aliases from kqi.schema).
    tests_format
        ``csv`` or ``parquet`` for the app tests.
    corrupt
        Inject malformed rows into app_tests and complaints and list them in
        ``expected_rejects.csv``. With parquet tests only type-valid bad rows (range, unknown
        cell, unknown service) go in; their ``line`` is the 1-based row number.
    config
        Thresholds the planted evidence is placed around (default: ``Config()``).

    Returns
    -------
    City
        Paths of the written files and the truth tables.

    See Also
    --------
    make_followup : a later week of the same network, with the truth of what was fixed.
    """
    cfg = config if config is not None else Config()
    _check_city_args(n_cells, days, suburban_share, poor_share, tests_format=tests_format,
                     encoding=encoding)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = datetime.strptime(start, "%Y-%m-%d")
    params, floor = _city_params(character, seed, noise_floor_dbm)
    base = _week0(seed, n_cells=n_cells, days=days, tests_per_cell_day=tests_per_cell_day,
                  suburban_share=suburban_share, poor_share=poor_share, config=cfg,
                  secondary_share=params["secondary_share"])
    cells, truth, r = base.cells, base.truth, base.rngs
    tests = _make_tests(r["tests"], cells, counts=base.counts, p_good=base.p_good, days=days,
                        start=t0, config=cfg)
    kpis = _make_kpis(r["kpis"], cells, truth, days=days, start=t0, noise_floor_dbm=floor,
                      config=cfg, params=params)
    cpd = complaints_per_day if complaints_per_day is not None else 0.025 * n_cells
    complaints, ctruth, rising = _make_complaints(
        r["complaints"], cells, truth, test_counts=base.counts, days=days, start=t0,
        complaints_per_day=cpd)
    subs = _subscribers(r["complaints"], cells, base.counts)
    truth_df = _truth_frame(cells, truth, rising)
    paths, rejects_df = _write_week(
        out, cells=cells, tests=tests, kpis=kpis, complaints=complaints, ctruth=ctruth, subs=subs,
        truth_df=truth_df, r_corrupt=r["corrupt"], encoding=encoding,
        chinese_headers=chinese_headers, tests_format=tests_format, corrupt=corrupt)
    log.info("synthetic city: %d cells, %d tests, %d KPI rows, %d complaints, %d poor cells in %s",
             cells.height, tests.height, kpis.height, complaints.height,
             int((truth["poor_services"] != "").sum()), out)
    return City(out_dir=out, **paths, truth_df=truth_df, complaint_truth_df=ctruth,
                rejects_df=rejects_df, cells_df=cells, character=character,
                params={**params, "floor_dbm": floor})


# --------------------------------------------------------------------------------------------
# the follow-up weeks
# --------------------------------------------------------------------------------------------

#: what happens to a cell after week 0 (``followup_truth.csv`` ``outcome``)
OUTCOMES: tuple[str, ...] = ("fixed", "not_fixed", "worse", "sparse", "new_poor", "healthy")
#: the verdict a verification of a week-0 order should reach, by outcome
EXPECTED_VERDICTS: dict[str, str] = {
    "fixed": "recovered", "not_fixed": "not_recovered", "worse": "worse",
    "sparse": "insufficient_data",
}
#: largest network-wide shift of the good-test probability: healthy cells stay above threshold
MAX_NETWORK_SHIFT = 0.05
#: a worse cell's good-rate falls this much below week 0 (a significant drop at its test count)
_WORSE_DROP = (0.15, 0.25)
#: complaint rate multipliers of worse and new poor cells
_BOOST_WORSE, _BOOST_NEW = 3.0, 2.0

_FOLLOWUP_SCHEMA = {
    "cell_id": pl.String, "poor_week0": pl.String, "cause_week0": pl.String, "outcome": pl.String,
    "poor_services": pl.String, "cause": pl.String, "expected_verdict": pl.String,
}


def _followup_plan(rng: np.random.Generator, cells: pl.DataFrame, truth0: dict[str, np.ndarray],
                   p0: np.ndarray, *, fix_share: float, worse_share: float, sparse_share: float,
                   new_poor_share: float, config: Config,
                   secondary_share: float = 0.15) -> dict[str, np.ndarray]:
    """The state of every week after week 0: outcome per cell, the planted truth (cause,
    poor_services, secondary) and the good-rate per cell x service before any network shift."""
    n = cells.height
    poor0 = _poor_matrix(truth0["poor_services"])
    poor_idx = np.flatnonzero(poor0.any(axis=1))
    k = poor_idx.size
    n_sparse = min(round(sparse_share * k), k)
    n_fixed = min(round(fix_share * k), k - n_sparse)
    n_worse = min(round(worse_share * k), k - n_sparse - n_fixed)
    outcome = np.full(n, "healthy", dtype=object)
    outcome[poor_idx] = "not_fixed"
    order = rng.permutation(poor_idx)
    outcome[order[:n_sparse]] = "sparse"
    outcome[order[n_sparse:n_sparse + n_fixed]] = "fixed"
    outcome[order[n_sparse + n_fixed:n_sparse + n_fixed + n_worse]] = "worse"

    cause = truth0["cause"].copy()
    poor_services = truth0["poor_services"].copy()
    secondary = truth0["secondary"].copy()
    fixed = outcome == "fixed"
    cause[fixed] = ""
    poor_services[fixed] = ""
    secondary[fixed] = ""

    # new poor cells among week 0's healthy ones, their causes and services as in the case
    healthy0 = outcome == "healthy"
    n_new = round(new_poor_share * int(healthy0.sum()))
    n_unknown = max(1, round(0.03 * n_new)) if n_new >= 10 else 0
    causes = _apportion(n_new - n_unknown, CASE_CAUSES, minimum=1) if n_new else {}
    causes["unknown"] = n_unknown
    core = (cells["isd_class"] == "core").to_numpy()
    pref = {"high_load": np.where(core, 3.0, 1.0), "weak_coverage": np.where(core, 1.0, 4.0)}
    free = healthy0.copy()
    for c in (*CASE_CAUSES, "unknown"):
        m = min(causes.get(c, 0), int(free.sum()))
        if not m:
            continue
        w = pref.get(c, np.ones(n)) * free
        chosen = rng.choice(n, size=m, replace=False, p=w / w.sum())
        cause[chosen] = c
        outcome[chosen] = "new_poor"
        free[chosen] = False
    new_idx = np.flatnonzero(outcome == "new_poor")
    svc_counts = _apportion(new_idx.size, CASE_SERVICES) if new_idx.size else {}
    svc_list = np.repeat(np.array(list(svc_counts), dtype=object), list(svc_counts.values()))
    svc_list = svc_list[rng.permutation(svc_list.size)]
    for i, s in zip(new_idx, svc_list, strict=True):
        poor_services[i] = s
        if cause[i] in _PARTNERS and rng.random() < secondary_share:
            opts = _PARTNERS[cause[i]]
            secondary[i] = opts[int(rng.integers(len(opts)))]

    # good-rates: week 0's, except fixed services (healthy again), worse ones (a drop) and
    # the new poor services (below threshold as week 0's poor ones)
    p = p0.copy()
    poor_now = _poor_matrix(poor_services)
    worse = (outcome == "worse")[:, None] & poor0
    new = (outcome == "new_poor")[:, None] & poor_now
    for j, s in enumerate(SERVICES):
        t = config.kqi.thresholds.for_service(s)
        healthy = rng.uniform(*_healthy_range(s, t), n)
        drop = rng.uniform(*_WORSE_DROP, n)
        gap = rng.uniform(0.08, _poor_gap_max(s), n)
        p[:, j] = np.where(fixed & poor0[:, j], healthy, p[:, j])
        p[:, j] = np.where(worse[:, j], np.maximum(p0[:, j] - drop, 0.05), p[:, j])
        p[:, j] = np.where(new[:, j], t - gap, p[:, j])
    return {"outcome": outcome, "cause": cause, "poor_services": poor_services,
            "secondary": secondary, "p_good": p, "poor0": poor0, "poor_now": poor_now}


def _followup_frame(cells: pl.DataFrame, truth0: dict[str, np.ndarray],
                    state: dict[str, np.ndarray], plan: dict[str, np.ndarray]) -> pl.DataFrame:
    return pl.DataFrame({
        "cell_id": cells["cell_id"],
        "poor_week0": truth0["poor_services"].tolist(),
        "cause_week0": truth0["cause"].tolist(),
        "outcome": plan["outcome"].tolist(),
        "poor_services": state["poor_services"].tolist(),
        "cause": state["cause"].tolist(),
        "expected_verdict": [EXPECTED_VERDICTS.get(o, "") for o in plan["outcome"]],
    }, schema=_FOLLOWUP_SCHEMA)


def make_followup(
    out_dir: str | Path,
    *,
    seed: int = 7,
    n_cells: int = 1600,
    days: int = 7,
    week: int = 1,
    fix_share: float = 0.6,
    worse_share: float = 0.05,
    sparse_share: float = 0.03,
    new_poor_share: float = 0.02,
    network_shift: float = 0.0,
    tests_per_cell_day: float = 30.0,
    start: str = DEFAULT_START,
    noise_floor_dbm: float | None = None,
    character: str = "plain",
    suburban_share: float = 0.35,
    poor_share: float = 0.10,
    complaints_per_day: float | None = None,
    encoding: str = "utf-8",
    chinese_headers: bool = False,
    tests_format: Literal["csv", "parquet"] = "csv",
    corrupt: bool = False,
    config: Config | None = None,
) -> City:
    """Write week ``week`` of the network :func:`make_city` builds, with the truth of what was
    fixed after week 0.

    Week 0 is :func:`make_city` with the same arguments (byte-identical files). Week ``w >= 1``
    covers the ``days`` days from ``start + w x days``: same cells, subscribers and cell
    positions; of week 0's poor cells ``fix_share`` are fixed (healthy services, no KPI
    evidence), ``worse_share`` get worse (good-rate 0.15-0.25 below week 0), ``sparse_share``
    report fewer than ``min(config.kqi.min_tests, config.followup.min_tests_after)`` tests, the
    rest stay poor as in week 0; ``new_poor_share`` of week 0's healthy cells turn poor with
    causes of their own. The outcomes are the same in every week ``>= 1``; the draws (tests,
    KPIs, complaints) differ per week.

    Parameters
    ----------
    out_dir
        Folder to write into (created if missing; existing files of the same names replaced).
    seed, n_cells, days, tests_per_cell_day, start, noise_floor_dbm, character, suburban_share, poor_share
        As for :func:`make_city`, and the same for every week of one network.
    week
        0 = :func:`make_city`'s week; 1 = the ``days`` days right after it; and so on.
    fix_share, worse_share, sparse_share
        Shares of week 0's poor cells fixed, worse, and with too few tests to verify (their sum
        at most 1; the others stay poor).
    new_poor_share
        Share of week 0's healthy cells poor from week 1 on.
    network_shift
        Added to every cell's good-test probability in weeks ``>= 1`` (an app update, a
        holiday), at most ``MAX_NETWORK_SHIFT`` either way so healthy cells stay healthy;
        ignored in week 0, the reference week.
    complaints_per_day, encoding, chinese_headers, tests_format, corrupt, config
        As for :func:`make_city`.

    Returns
    -------
    City
        As :func:`make_city`, plus ``week``, ``followup_truth`` (the path of
        ``followup_truth.csv``) and ``followup_truth_df``: one row per cell with cell_id,
        poor_week0, cause_week0, outcome, poor_services and cause (this week's planted state;
        in week 0, week 0's), expected_verdict (for week 0's poor cells, else empty). Week 0's
        file already names the outcomes planned for the later weeks. ``truth.csv`` lists the
        week's poor cells a flagging can find (sparse cells count as healthy there).

    Raises
    ------
    ValueError
        On an argument out of range.
    """
    cfg = config if config is not None else Config()
    _check_city_args(n_cells, days, suburban_share, poor_share, tests_format=tests_format,
                     encoding=encoding)
    if week < 0:
        raise ValueError(f"week must be at least 0, got {week}")
    shares = {"fix_share": fix_share, "worse_share": worse_share, "sparse_share": sparse_share,
              "new_poor_share": new_poor_share}
    for name, v in shares.items():
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {v}")
    if fix_share + worse_share + sparse_share > 1.0 + 1e-9:
        raise ValueError("fix_share + worse_share + sparse_share must be at most 1")
    if not abs(network_shift) <= MAX_NETWORK_SHIFT:
        raise ValueError(f"network_shift must be within ±{MAX_NETWORK_SHIFT}, got {network_shift}")
    out = Path(out_dir)
    # week 0 as make_city draws it; the outcomes from one stream for all weeks >= 1, apart
    # from make_city's six
    params, floor = _city_params(character, seed, noise_floor_dbm)
    base = _week0(seed, n_cells=n_cells, days=days, tests_per_cell_day=tests_per_cell_day,
                  suburban_share=suburban_share, poor_share=poor_share, config=cfg,
                  secondary_share=params["secondary_share"])
    cells, truth0 = base.cells, base.truth
    plan = _followup_plan(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(100,))),
                          cells, truth0, base.p_good, fix_share=fix_share, worse_share=worse_share,
                          sparse_share=sparse_share, new_poor_share=new_poor_share, config=cfg,
                          secondary_share=params["secondary_share"])
    ftruth_path = out / "followup_truth.csv"

    if week == 0:
        city = make_city(out, seed=seed, n_cells=n_cells, days=days,
                         tests_per_cell_day=tests_per_cell_day, start=start,
                         noise_floor_dbm=noise_floor_dbm, character=character,
                         suburban_share=suburban_share,
                         poor_share=poor_share, complaints_per_day=complaints_per_day,
                         encoding=encoding, chinese_headers=chinese_headers,
                         tests_format=tests_format, corrupt=corrupt, config=cfg)
        ftruth = _followup_frame(cells, truth0, truth0, plan)
        _write_text(ftruth_path, _csv_text(ftruth), "utf-8")
        return dataclasses.replace(city, week=0, followup_truth=ftruth_path, followup_truth_df=ftruth)

    out.mkdir(parents=True, exist_ok=True)
    t0 = datetime.strptime(start, "%Y-%m-%d")
    tw = t0 + timedelta(days=days * week)
    cpd = complaints_per_day if complaints_per_day is not None else 0.025 * n_cells
    # week 0's subscribers (their draw follows week 0's complaints)
    _make_complaints(base.rngs["complaints"], cells, truth0, test_counts=base.counts, days=days,
                     start=t0, complaints_per_day=cpd)
    subs = _subscribers(base.rngs["complaints"], cells, base.counts)
    outcome = plan["outcome"]
    r_tests, r_kpis, r_compl, r_corrupt = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed, spawn_key=(200, week)).spawn(4))

    # tests: enough on every week-0 poor service to verify it (more on worse cells, whose
    # drop must be significant), on the new poor services to flag them; sparse cells few
    enough = 4.0 * max(cfg.kqi.min_tests, cfg.followup.min_tests_after)
    poor0, poor_now = plan["poor0"], plan["poor_now"]
    need = np.where(poor0 & (outcome != "sparse")[:, None], enough, 0.0)
    need = np.where(poor0 & (outcome == "worse")[:, None], 1.5 * enough, need)
    need = np.where(poor_now & (outcome == "new_poor")[:, None], enough, need)
    counts = _test_counts(r_tests, need, days=days, tests_per_cell_day=tests_per_cell_day)
    few = min(cfg.kqi.min_tests, cfg.followup.min_tests_after)
    sparse_idx = np.flatnonzero(outcome == "sparse")
    if sparse_idx.size:
        totals = r_tests.integers(min(3, few - 1), few, sparse_idx.size)
        counts[sparse_idx] = r_tests.multinomial(totals, [0.6, 0.25, 0.15])
    p_week = np.clip(plan["p_good"] + network_shift, 0.0, 1.0)
    tests = _make_tests(r_tests, cells, counts=counts, p_good=p_week, days=days, start=tw, config=cfg)

    state = {"cause": plan["cause"], "poor_services": plan["poor_services"],
             "secondary": plan["secondary"]}
    kpis = _make_kpis(r_kpis, cells, state, days=days, start=tw, noise_floor_dbm=floor,
                      config=cfg, params=params)
    boost = np.where(outcome == "worse", _BOOST_WORSE, np.where(outcome == "new_poor", _BOOST_NEW, 1.0))
    complaints, ctruth, rising = _make_complaints(
        r_compl, cells, state, test_counts=counts, days=days, start=tw, complaints_per_day=cpd,
        boost=boost)

    # truth.csv: the poor cells this week's tests can show (sparse ones cannot be judged)
    seen = outcome != "sparse"
    judged = {k: np.where(seen, v, "").astype(object) for k, v in state.items()}
    truth_df = _truth_frame(cells, judged, rising)
    paths, rejects_df = _write_week(
        out, cells=cells, tests=tests, kpis=kpis, complaints=complaints, ctruth=ctruth, subs=subs,
        truth_df=truth_df, r_corrupt=r_corrupt, encoding=encoding,
        chinese_headers=chinese_headers, tests_format=tests_format, corrupt=corrupt)
    ftruth = _followup_frame(cells, truth0, state, plan)
    _write_text(ftruth_path, _csv_text(ftruth), "utf-8")
    log.info("synthetic follow-up week %d: %d tests, %d complaints; of %d week-0 poor cells "
             "%d fixed, %d worse, %d sparse; %d new poor cells in %s",
             week, tests.height, complaints.height, int(poor0.any(axis=1).sum()),
             int((outcome == "fixed").sum()), int((outcome == "worse").sum()), sparse_idx.size,
             int((outcome == "new_poor").sum()), out)
    return City(out_dir=out, **paths, truth_df=truth_df, complaint_truth_df=ctruth,
                rejects_df=rejects_df, cells_df=cells, week=week, followup_truth=ftruth_path,
                followup_truth_df=ftruth, character=character, params={**params, "floor_dbm": floor})
