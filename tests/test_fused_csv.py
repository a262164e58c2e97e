"""The app-test CSV feed counted chunk by chunk (``ingest._fused_csv``): the kernel against a
plain reference, and whole files against the batched path (same window and day counts, cell
codes, rejects and reasons, report), with anomalies in some chunks and in a configured zone."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kqi.ingest import Ingest, _fused_csv, _text
from kqi.ingest._fused import JUDGED, _bounds
from kqi.ingest._fused_csv import _judge_count_daily

import kqi
from kqi.config import Config
from kqi.flagging import KqiAccumulator
from tests.reference import ref_judge_count

_TARGETS = ("page_load_ms", "initial_buffer_ms", "stall_ratio", "rtt_ms", "jitter_ms", "loss_pct")


def _bitmap(present: list[bool]) -> np.ndarray:
    return np.packbits(np.array(present, dtype=bool), bitorder="little") if present else \
        np.zeros(0, dtype=np.uint8)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(0, 70), use_good=st.booleans(), block=st.sampled_from([8, 16, 64]),
       daily=st.booleans())
def test_judge_count_daily_matches_reference(data: st.DataObject, n: int, use_good: bool, block: int,
                                             daily: bool) -> None:
    cfg = dataclasses.replace(Config(), kqi=dataclasses.replace(Config().kqi, use_source_good=use_good))
    n_cells, n_days = 4, 3
    cell_map = np.array([0, 1, 2, 3, -1], dtype=np.int32)  # value 4: an id not in the table
    svc_map = np.array([0, 1, 2, -1], dtype=np.int8)        # value 3: an unknown service
    clean = data.draw(st.booleans())
    cell_ix = data.draw(st.lists(st.integers(-1 if not clean else 0, 3 if clean else 4),
                                 min_size=n, max_size=n))
    svc_ix = data.draw(st.lists(st.integers(0, 2 if clean else 3), min_size=n, max_size=n))
    day = data.draw(st.lists(st.integers(0, n_days - 1), min_size=n, max_size=n))
    # values every column takes (flags 0/1, ratios within 0-1), some above a KQI's target
    value = st.one_of(st.none(), st.just(math.nan), st.sampled_from([0.0, 1.0, 1.0, 0.01]))
    bad = st.one_of(value, st.sampled_from([-1.0, math.inf, 150.0, 2.5, 0.5, 1e4]))
    cols = {name: data.draw(st.lists(value if clean else bad, min_size=n, max_size=n))
            for name in JUDGED}
    lo, hi, whole = _bounds()
    arrays = []
    for name in JUDGED:
        vals = cols[name]
        arrays.append(np.array([7.0 if v is None else v for v in vals], dtype=np.float64))
        arrays.append(_bitmap([v is not None for v in vals]))
    targets = np.array([float(getattr(cfg.kqi.targets, f)) for f in _TARGETS], dtype=np.float64)
    bufs = (np.zeros((len(JUDGED), block // 8), dtype=np.uint8), np.zeros(block, dtype=np.int32),
            *(np.zeros(block, dtype=np.int8) for _ in range(4)))
    width = 3 * n_cells
    tests, good = np.zeros(width, dtype=np.int64), np.zeros(width, dtype=np.int64)
    dtests, dgood = np.zeros((n_days, width), dtype=np.int64), np.zeros((n_days, width), dtype=np.int64)
    days = np.array(day, dtype=np.int64) if daily else np.zeros(0, dtype=np.int64)
    args = (np.array(cell_ix, dtype=np.int32), cell_map, np.array(svc_ix, dtype=np.int32), svc_map,
            *arrays, lo, hi, whole, use_good, targets, days)
    stop = _judge_count_daily(*args, 0, n, 1, *bufs, tests, good, dtests, dgood)
    rows = []
    for i in range(n):
        c = int(cell_map[cell_ix[i]]) if cell_ix[i] >= 0 else -1
        s = int(svc_map[svc_ix[i]])
        rows.append({"cell_code": c if c >= 0 else None, "service_code": s if s >= 0 else None,
                     **{name: cols[name][i] for name in JUDGED}})
    bounds = {name: (float(lo[k]), float(hi[k]), bool(whole[k])) for k, name in enumerate(JUDGED)}
    first_bad, _ = ref_judge_count(rows, cfg, bounds)
    assert stop == (n if first_bad == n else first_bad // block * block)
    _, want = ref_judge_count(rows[:stop], cfg, bounds)
    got = {(k // 3, k % 3): [int(tests[k]), int(good[k])] for k in range(width) if tests[k]}
    assert got == want
    want_days: dict[int, dict[tuple[int, int], list[int]]] = defaultdict(dict)
    if daily:
        for d in range(n_days):
            picked = [r for r, rd in zip(rows[:stop], day[:stop], strict=True) if rd == d]
            want_days[d] = ref_judge_count(picked, cfg, bounds)[1]
    for d in range(n_days):
        got_d = {(k // 3, k % 3): [int(dtests[d, k]), int(dgood[d, k])] for k in range(width)
                 if dtests[d, k]}
        assert got_d == want_days.get(d, {})
    # taking the counted rows back leaves nothing
    if stop:
        _judge_count_daily(*args, 0, stop, -1, *bufs, tests, good, dtests, dgood)
    assert not (tests.any())
    assert not (good.any())
    assert not (dtests.any())
    assert not (dgood.any())


# -- the chunked path against the batched one, on files -------------------------------------

def _cells(cfg: Config, ids: list[str]) -> pl.DataFrame:
    """A cells table of ``ids`` (one site, placed anywhere)."""
    n = len(ids)
    return Ingest(cfg, rejects_dir=None).cells(pl.DataFrame({
        "cell_id": ids, "site_id": ["s"] * n, "lat": [30.0] * n, "lon": [120.0] * n,
        "azimuth": [0.0] * n}))


def _run(path: Path, cfg: Config, fused: bool, cells: pl.DataFrame | None, daily: bool
         ) -> tuple[pl.DataFrame | None, pl.DataFrame, list[str], pl.DataFrame, dict[str, object]]:
    ing = Ingest(cfg, rejects_dir=None, checksum=False)
    feed = ing.app_tests(path, cells)
    if fused:
        assert feed.fused is not None, "the file should be counted chunk by chunk"
        assert feed.fused_daily
    else:
        feed.fused = None
    acc = KqiAccumulator(0 if cells is None else cells.height, cfg, daily=daily)
    feed.count(acc)
    report = ing.reports["app_tests"].to_dict()
    report.pop("seconds")
    assert acc.rows == report["rows_accepted"]
    ids = feed.cell_ids
    return (acc.daily(ids) if daily else None, acc.cell_kqi(ids), ids.to_list(),
            ing.rejects["app_tests"], report)


_KQIS = {"page_load_ms": 1400.0, "initial_buffer_ms": 700.0, "stall_ratio": 0.005, "rtt_ms": 40.0,
         "jitter_ms": 9.0, "loss_pct": 0.25}
_ANOMALIES = ["kqi", "success", "cell_blank", "cell_space", "cell_unknown", "svc_unknown",
              "svc_alias", "svc_null", "ts_null", "ts_year", "ts_text", "ts_gap"]


@st.composite
def _csv_feed(draw: st.DrawFn) -> str:
    n = draw(st.integers(1, 5000))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_cells = draw(st.sampled_from([3, 40, 900]))
    ids = np.array([f"{460000 + i // 3}-{i % 3 + 1}" for i in range(n_cells)], dtype=object)
    cell = ids[np.minimum(rng.zipf(1.3, n) - 1, n_cells - 1)].copy()
    svc = np.array(["browsing", "video", "gaming"], dtype=object)[rng.integers(0, 3, n)]
    # four days around the spring change of Europe/Dublin (01:00-02:00 on 29 March does not exist)
    start = np.datetime64("2026-03-27T00:00:00")
    ts = (start + rng.integers(0, 4 * 86_400, n).astype("timedelta64[s]")).astype(str)
    ts = np.char.replace(ts.astype(str), "T", " ").astype(object)
    ts[(ts >= "2026-03-29 01:00:00") & (ts < "2026-03-29 02:00:00")] = "2026-03-29 03:00:00"
    cols: dict[str, object] = {}
    for name, scale in _KQIS.items():
        v = rng.lognormal(0, 0.8, n) * scale
        v = np.minimum(v, 1.0) if name == "stall_ratio" else np.minimum(v, 100.0) if name == "loss_pct" else v
        text = np.char.mod("%.3f", v).astype(object)
        text[rng.random(n) < 0.3] = draw(st.sampled_from(["", "NaN", "null"]))
        cols[name] = text
    succ = np.where(rng.random(n) > 0.05, "1", "0").astype(object)
    for _ in range(draw(st.integers(0, 3))):
        i = int(rng.integers(0, n))
        kind = draw(st.sampled_from(_ANOMALIES))
        if kind == "kqi":
            cols[draw(st.sampled_from(list(_KQIS)))][i] = draw(st.sampled_from(["-1", "inf", "150", "x"]))  # type: ignore[index]
        elif kind == "success":
            succ[i] = "3"
        elif kind == "cell_blank":
            cell[i] = ""
        elif kind == "cell_space":
            cell[i] = f" {cell[i]} "
        elif kind == "cell_unknown":
            cell[i] = "999999-9"
        elif kind == "svc_unknown":
            svc[i] = "email"
        elif kind == "svc_alias":
            svc[i] = "Video"
        elif kind == "svc_null":
            svc[i] = ""
        elif kind == "ts_null":
            ts[i] = ""
        elif kind == "ts_year":
            ts[i] = "0013-02-26 10:00:00"
        elif kind == "ts_text":
            ts[i] = "26/03/2026 10:00"
        else:
            ts[i] = "2026-03-29 01:30:00"
    frame = pl.DataFrame({"ts": ts, "cell_id": cell, "service": svc, "success": succ,
                          **dict(cols.items())}, schema_overrides=dict.fromkeys(
                              ["ts", "cell_id", "service", "success", *_KQIS], pl.String))
    if draw(st.booleans()):
        frame = frame.drop("jitter_ms")
    return frame.write_csv()


def _anomalous_feed(kind: str, n: int = 5000) -> str:
    """A clean file but for one anomaly of ``kind`` at row 3,000 (a later chunk)."""
    rng = np.random.default_rng(5)
    start = np.datetime64("2026-03-27T00:00:00")
    ts = (start + rng.integers(0, 4 * 86_400, n).astype("timedelta64[s]")).astype(str)
    ts = np.char.replace(ts, "T", " ").astype(object)
    ts[(ts >= "2026-03-29 01:00:00") & (ts < "2026-03-29 02:00:00")] = "2026-03-29 03:00:00"
    cell = np.array([f"c{i}" for i in rng.integers(0, 50, n)], dtype=object)
    svc = np.array(["browsing", "video", "gaming"], dtype=object)[rng.integers(0, 3, n)]
    kqis = {k: np.char.mod("%.3f", rng.random(n) * 0.5).astype(object) for k in _KQIS}
    at = 3000
    if kind == "ts_null":
        ts[at] = ""
    elif kind == "ts_year":
        ts[at] = "0013-02-26 10:00:00"
    elif kind == "ts_gap":
        ts[at] = "2026-03-29 01:30:00"
    elif kind == "cell_space":
        cell[at] = f" {cell[at]} "
    elif kind == "svc_alias":
        svc[at] = "Video"
    elif kind == "kqi":
        kqis["stall_ratio"][at] = "1.5"
    return pl.DataFrame({"ts": ts, "cell_id": cell, "service": svc, **kqis}).write_csv()


@pytest.mark.parametrize("kind", ["none", "ts_null", "ts_year", "ts_gap", "cell_space",
                                  "svc_alias", "kqi"])
def test_an_anomaly_in_a_later_chunk_is_read_as_the_batched_path_reads_it(
        tmp_path: Path, kind: str) -> None:
    path = tmp_path / "tests.csv"
    path.write_text(_anomalous_feed(kind), encoding="utf-8")
    cfg = dataclasses.replace(Config(), ingest=dataclasses.replace(
        Config().ingest, batch_rows=500, timezone="Europe/Dublin"))
    cells = _cells(cfg, [f"c{i}" for i in range(50)])
    with mock.patch.object(_text, "_MIN_CHUNK_BYTES", 4096), \
            mock.patch.object(_text, "SAMPLE_BYTES", 16384):
        want = _run(path, cfg, False, cells, True)
        got = _run(path, cfg, True, cells, True)
    assert got[0] is not None
    assert want[0] is not None
    assert got[0].equals(want[0])
    assert got[1].equals(want[1])
    assert got[3].equals(want[3])
    assert got[4] == want[4]
    assert want[4]["rows_rejected"] == (0 if kind in ("none", "cell_space", "svc_alias")
                                        else 1)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feed=_csv_feed(), with_cells=st.booleans(), daily=st.booleans(),
       zone=st.sampled_from(["UTC", "Europe/Dublin", "Asia/Shanghai"]))
def test_chunked_path_equals_batched_path(tmp_path_factory: pytest.TempPathFactory, feed: str,
                                          with_cells: bool, daily: bool, zone: str) -> None:
    path = tmp_path_factory.mktemp("fusedcsv") / "tests.csv"
    path.write_text(feed, encoding="utf-8")
    cfg = dataclasses.replace(Config(), ingest=dataclasses.replace(Config().ingest, batch_rows=700,
                                                                   timezone=zone))
    cells = None
    if with_cells:
        known = sorted({c for c in pl.read_csv(path, infer_schema=False)["cell_id"].to_list()
                        if c and c.strip() == c and c != "999999-9"})
        if known:
            cells = _cells(cfg, known)
    # chunks of a few KiB after a small first read: most files are read in several
    with mock.patch.object(_text, "_MIN_CHUNK_BYTES", 4096), \
            mock.patch.object(_text, "SAMPLE_BYTES", 16384):
        try:
            want = _run(path, cfg, False, cells, daily)
        except kqi.InputError as exc:
            with pytest.raises(kqi.InputError, match=str(exc).split(":")[-1].strip()[:20]):
                _run(path, cfg, True, cells, daily)
            return
        got = _run(path, cfg, True, cells, daily)
    if daily:
        assert got[0] is not None
        assert want[0] is not None
        assert got[0].equals(want[0])
    assert got[1].equals(want[1])
    assert got[2] == want[2]
    assert got[3].equals(want[3])
    assert got[4] == want[4]


def test_clean_chunks_are_counted_by_the_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a file of 20 chunks with one bad value in chunk 12: the first chunk (it decides the report's
    # timestamp form) and the bad one go the ordinary way, the others through the kernel
    rng = np.random.default_rng(11)
    n = 40_000
    frame = pl.DataFrame({
        "ts": pl.datetime_range(pl.datetime(2026, 11, 2), pl.datetime(2026, 11, 2, 11, 6, 39),
                                "1s", eager=True).dt.strftime("%Y-%m-%d %H:%M:%S"),
        "cell_id": [f"c{i}" for i in rng.integers(0, 300, n)],
        "service": np.array(["browsing", "video", "gaming"])[rng.integers(0, 3, n)],
        "success": (rng.random(n) > 0.1).astype(np.int8),
        **{k: rng.random(n) * 0.5 for k in _KQIS}})
    frame = frame.with_columns(pl.when(pl.int_range(n) == 24_321).then(-5.0)
                               .otherwise(pl.col("rtt_ms")).alias("rtt_ms"))
    path = tmp_path / "tests.csv"
    frame.write_csv(path)
    calls = {"fast": 0, "ordinary": 0}
    fast = _fused_csv.CsvFusedCounter._fast

    def counted(self: _fused_csv.CsvFusedCounter, raw: object, acc: object) -> bool:
        done = fast(self, raw, acc)  # type: ignore[arg-type]
        calls["fast" if done else "ordinary"] += 1
        return done

    monkeypatch.setattr(_fused_csv.CsvFusedCounter, "_fast", counted)
    monkeypatch.setattr(_text, "_MIN_CHUNK_BYTES", 4096)
    cfg = dataclasses.replace(Config(), ingest=dataclasses.replace(Config().ingest, batch_rows=2_000))
    ing = Ingest(cfg, rejects_dir=None, checksum=False)
    cells = _cells(cfg, [f"c{i}" for i in range(300)])
    feed = ing.app_tests(path, cells)
    acc = KqiAccumulator(cells.height, cfg)
    feed.count(acc)
    assert calls["ordinary"] == 2
    assert calls["fast"] >= 15
    report = ing.reports["app_tests"]
    assert (report.rows_read, report.rows_rejected) == (n, 1)
    assert ing.rejects["app_tests"]["reason"].str.starts_with("rtt_ms").to_list() == [True]
    assert acc.rows == n - 1
    assert int(acc.daily(cells["cell_id"])["tests"].sum()) == n - 1


def test_a_rejected_rows_far_off_day_does_not_widen_the_day_counters(tmp_path: Path) -> None:
    # a row dated years away whose service is unknown: the ordinary path rejects it, and the day
    # counters stay the four days of the rest (grown for it, 12,873 days x every key)
    text = _anomalous_feed("none").splitlines()
    head = text[0].split(",")
    row = text[3001].split(",")
    row[head.index("ts")], row[head.index("service")] = "1991-01-01 00:00:00", "email"
    text[3001] = ",".join(row)
    path = tmp_path / "tests.csv"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    cfg = dataclasses.replace(Config(), ingest=dataclasses.replace(Config().ingest, batch_rows=500))
    cells = _cells(cfg, [f"c{i}" for i in range(50)])
    shapes = []
    for fused in (False, True):
        with mock.patch.object(_text, "_MIN_CHUNK_BYTES", 4096), \
                mock.patch.object(_text, "SAMPLE_BYTES", 16384):
            ing = Ingest(cfg, rejects_dir=None, checksum=False)
            feed = ing.app_tests(path, cells)
            if not fused:
                feed.fused = None
            acc = KqiAccumulator(cells.height, cfg)
            feed.count(acc)
        assert ing.reports["app_tests"].rows_rejected == 1
        shapes.append(acc.counters(cells.height)[2].shape)
    assert shapes[0] == shapes[1]
    assert shapes[1][0] <= 5


def test_the_verdict_and_days_follow_the_accumulators_config(tmp_path: Path) -> None:
    # an accumulator set up apart from the ingest (another rtt target, another zone for its days)
    path = tmp_path / "tests.csv"
    path.write_text(_anomalous_feed("none"), encoding="utf-8")
    ing_cfg = dataclasses.replace(Config(), ingest=dataclasses.replace(
        Config().ingest, batch_rows=500, timezone="Asia/Shanghai"))
    base = Config()
    acc_cfg = dataclasses.replace(base, kqi=dataclasses.replace(
        base.kqi, targets=dataclasses.replace(base.kqi.targets, rtt_ms=0.2)))
    cells = _cells(ing_cfg, [f"c{i}" for i in range(50)])
    out = []
    for fused in (False, True):
        with mock.patch.object(_text, "_MIN_CHUNK_BYTES", 4096), \
                mock.patch.object(_text, "SAMPLE_BYTES", 16384):
            feed = Ingest(ing_cfg, rejects_dir=None, checksum=False).app_tests(path, cells)
            if not fused:
                feed.fused = None
            acc = KqiAccumulator(cells.height, acc_cfg)
            feed.count(acc)
        out.append((acc.daily(cells["cell_id"]), acc.cell_kqi(cells["cell_id"])))
    assert out[0][0].equals(out[1][0])
    assert out[0][1].equals(out[1][1])
