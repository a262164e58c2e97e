"""The fused row-group path of the app-test feed (``ingest._fused``) and its code table
(``ingest._codes``): against plain references, and against the batched path on the same files
(same counts, same cell codes, same rejects and reasons, same report)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kqi.ingest import Ingest, _fused
from kqi.ingest._codes import CodeTable
from kqi.ingest._fused import JUDGED, _bounds, _judge_count

import kqi
from kqi.config import Config
from kqi.flagging import KqiAccumulator
from tests.reference import ref_code_table, ref_judge_count

# -- the code table ------------------------------------------------------------------------

_ids = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(_ids, max_size=40), max_size=5),
       queries=st.lists(st.one_of(st.none(), _ids), max_size=60))
def test_code_table_matches_a_dict(batches: list[list[str]], queries: list[str | None]) -> None:
    table = CodeTable(None)
    appended: list[str] = []
    for b in batches:
        table.add(pl.Series(b, dtype=pl.String))
        appended.extend(b)
    want = ref_code_table(appended, queries)
    got = table.lookup_arrow(pa.array(queries, type=pa.string()))
    assert got.tolist() == want
    got_pl = table.lookup(pl.Series(queries, dtype=pl.String)).fill_null(-1).to_list()
    assert got_pl == want
    assert table.ids.to_list() == list(dict.fromkeys(appended))


def test_code_table_grows_and_keeps_codes() -> None:
    table = CodeTable(pl.Series(["b", "a"]))
    assert table.fixed
    many = [f"{460000 + i // 3}-{i % 3 + 1}" for i in range(20_000)]
    grow = CodeTable(None)
    for start in range(0, len(many), 3_000):  # appends across several rehashes
        grow.append_arrow(pa.array(many[start:start + 3_000]))
    assert grow.lookup_arrow(pa.array(many)).tolist() == list(range(len(many)))
    assert grow.lookup_arrow(pa.array(["x", "", "460000-4"])).tolist() == [-1, -1, -1]
    assert table.lookup_arrow(pa.large_string() and pa.array(["a", "b"], pa.large_string())).tolist() == [1, 0]
    with pytest.raises(ValueError, match="distinct"):
        CodeTable(pl.Series(["a", "a"]))


def test_large_arrays_are_zeros_and_the_table_keeps_codes_on_them() -> None:
    from kqi.ingest import _codes

    for n, dtype in [(10, np.int64), (_codes.HUGE_MIN // 8 + 3, np.int64),
                     (_codes.HUGE_MIN // 4 + 1, np.int32)]:
        a = _codes.zeros(n, dtype)
        assert a.shape == (n,)
        assert a.dtype == dtype
        assert a.flags.writeable
        assert not a.any()
        a[-1] = 7
        assert a.sum() == 7
    many = [f"{460000 + i // 3}-{i % 3 + 1}" for i in range(150_000)]
    table = CodeTable(None)
    for start in range(0, len(many), 40_000):  # the table grows past HUGE_MIN (rows of 32 bytes)
        table.append_arrow(pa.array(many[start:start + 40_000]))
    assert table._table.nbytes >= _codes.HUGE_MIN
    assert table.lookup_arrow(pa.array(many)).tolist() == list(range(len(many)))
    assert table.lookup_arrow(pa.array(["x", "460000-4"])).tolist() == [-1, -1]


def test_code_table_rehashes_only_what_it_holds(monkeypatch) -> None:
    from kqi.ingest import _codes

    moved: list[int] = []
    rehash = _codes._rehash
    monkeypatch.setattr(_codes, "_rehash", lambda old, h, new: (moved.append(len(old)), rehash(old, h, new)))
    ids = [f"c{i}" for i in range(3_000)]
    table = CodeTable(pl.Series(ids[:2_000]))  # one append into the empty table: nothing to move
    assert moved == []
    table.append_arrow(pa.array(ids[2_000:]))  # grows a table that holds keys: moved
    assert moved == [4096]
    assert table.lookup_arrow(pa.array(ids)).tolist() == list(range(3_000))


def test_code_table_tells_apart_ids_its_slots_hold_alike() -> None:
    # a slot holds a key's first 24 bytes zero-padded and its length up to 255: ids alike there
    # (trailing NULs, one prefix past 24 bytes, lengths past 255) are still told apart
    long = "x" * 24
    ids = ["", "a", "a\x00", "a\x00\x00", long, long + "a", long + "b", long + "ab",
           "y" * 300 + "1", "y" * 300 + "2", "y" * 301, "é" * 13]
    table = CodeTable(None)
    table.append_arrow(pa.array(ids[::2]))
    table.append_arrow(pa.array(ids[1::2]))
    want = list(range(0, len(ids), 2)) + list(range(1, len(ids), 2))
    assert table.lookup_arrow(pa.array(ids[::2] + ids[1::2])).tolist() == list(range(len(ids)))
    assert table.lookup_arrow(pa.array([long + "c", "y" * 300, "a\x00\x00\x00"])).tolist() == [-1] * 3
    assert table.ids.to_list() == [ids[i] for i in want]


# -- the kernel against its reference ------------------------------------------------------

_value = st.one_of(st.none(), st.just(math.nan), st.just(math.inf), st.just(-math.inf),
                   st.just(-1.0), st.just(-0.0), st.floats(0, 3000, allow_nan=False),
                   st.sampled_from([0.0, 1.0, 0.5, 2.0, 101.0]))
#: what a null slot holds: Arrow leaves it undefined, so anything, a bad value included (the quick
#: check may alarm on it; the exact check, which reads the validity, must then clear it)
_null_slot = st.sampled_from([0.0, math.nan, math.inf, -math.inf, -5.0, 0.5, 1e308])


def _bitmap(present: list[bool]) -> np.ndarray:
    return np.packbits(np.array(present, dtype=bool), bitorder="little") if present else \
        np.zeros(0, dtype=np.uint8)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(0, 70), use_good=st.booleans(), block=st.sampled_from([8, 16, 64]))
def test_judge_count_matches_reference(data: st.DataObject, n: int, use_good: bool, block: int) -> None:
    cfg = dataclasses.replace(Config(), kqi=dataclasses.replace(Config().kqi, use_source_good=use_good))
    n_cells = 4
    cell_map = np.array([0, 1, 2, 3, -2], dtype=np.int32)   # value 4: an id that needs the slow path
    svc_map = np.array([0, 1, 2, -1], dtype=np.int8)         # value 3: an unknown service
    clean = data.draw(st.booleans())
    cell_ix = data.draw(st.lists(st.integers(-1 if not clean else 0, 3 if clean else 4),
                                 min_size=n, max_size=n))
    svc_ix = data.draw(st.lists(st.integers(0 if clean else -1, 2 if clean else 3),
                                min_size=n, max_size=n))
    cols = {name: data.draw(st.lists(_value if not clean else st.one_of(st.none(), st.just(math.nan),
                                                                        st.sampled_from([0.0, 1.0])),
                                     min_size=n, max_size=n)) for name in JUDGED}
    lo, hi, whole = _bounds()
    arrays = []
    for name in JUDGED:
        vals = cols[name]
        arrays.append(np.array([data.draw(_null_slot) if v is None else v for v in vals],
                               dtype=np.float64))
        arrays.append(_bitmap([v is not None for v in vals]))
    targets = np.array([float(getattr(cfg.kqi.targets, f)) for f in
                        ("page_load_ms", "initial_buffer_ms", "stall_ratio", "rtt_ms", "jitter_ms",
                         "loss_pct")], dtype=np.float64)
    bufs = (np.zeros((len(JUDGED), block // 8), dtype=np.uint8), np.zeros(block, dtype=np.int32),
            *(np.zeros(block, dtype=np.int8) for _ in range(4)))
    counts = np.zeros(2 * 3 * n_cells, dtype=np.int64)
    ix = np.array(cell_ix, dtype=np.int32)
    cmap = cell_map
    if data.draw(st.booleans()):  # the codes themselves, with an empty map (a plain cell_id read)
        ix = np.where(ix >= 0, cell_map[np.maximum(ix, 0)], np.int32(-1)).astype(np.int32)
        cmap = np.zeros(0, dtype=np.int32)
    stop = _judge_count(ix, cmap, np.array(svc_ix, dtype=np.int32),
                        svc_map, *arrays, lo, hi, whole, use_good, targets, 0, n, 1, *bufs, counts)
    rows = []
    for i in range(n):
        c = int(cell_map[cell_ix[i]]) if cell_ix[i] >= 0 else -1
        s = int(svc_map[svc_ix[i]]) if svc_ix[i] >= 0 else -1
        rows.append({"cell_code": c if c >= 0 else None, "service_code": s if s >= 0 else None,
                     **{name: cols[name][i] for name in JUDGED}})
    bounds = {name: (float(lo[k]), float(hi[k]), bool(whole[k])) for k, name in enumerate(JUDGED)}
    first_bad, _ = ref_judge_count(rows, cfg, bounds)
    assert stop == (n if first_bad == n else first_bad // block * block)
    _, want = ref_judge_count(rows[:stop], cfg, bounds)
    got = {(k // 6, k // 2 % 3): [int(counts[k]), int(counts[k + 1])]
           for k in range(0, counts.shape[0], 2) if counts[k]}
    assert got == want
    # taking the counted rows back leaves nothing
    if stop:
        _judge_count(ix, cmap, np.array(svc_ix, dtype=np.int32),
                     svc_map, *arrays, lo, hi, whole, use_good, targets, 0, stop, -1, *bufs, counts)
    assert not counts.any()


# -- the fused path against the batched one, on files -------------------------------------

def _run(path: Path, cfg: Config, fused: bool, cells: pl.DataFrame | None = None
         ) -> tuple[pl.DataFrame, list[str], pl.DataFrame, dict[str, object]]:
    ing = Ingest(cfg, rejects_dir=None, checksum=False)
    feed = ing.app_tests(path, cells, days=False)
    if fused:
        assert feed.fused is not None, "the file should take the fused path"
    else:
        feed.fused = None
    acc = KqiAccumulator(0, cfg, daily=False)
    feed.count(acc)
    report = ing.reports["app_tests"].to_dict()
    report.pop("seconds")
    assert acc.rows == report["rows_accepted"]
    return acc.cell_kqi(feed.cell_ids), feed.cell_ids.to_list(), ing.rejects["app_tests"], report


_bad_float = st.sampled_from([-1.0, math.inf, -math.inf, 1e308, 150.0, 2.5])


@st.composite
def _feed(draw: st.DrawFn) -> tuple[pa.Table, int]:
    n = draw(st.integers(1, 6000))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_cells = draw(st.sampled_from([3, 40, 2000]))
    ids = np.array([f"{460000 + i // 3}-{i % 3 + 1}" for i in range(n_cells)], dtype=object)
    cell = ids[np.minimum(rng.zipf(1.3, n) - 1, n_cells - 1)].copy()
    svc = np.array(["browsing", "video", "gaming"], dtype=object)[rng.integers(0, 3, n)]
    cols: dict[str, object] = {
        "ts": pa.array(1_714_521_600_000 + rng.integers(0, 86_400_000, n), pa.timestamp("ms", "UTC")),
    }
    kqis = {"page_load_ms": 1400.0, "initial_buffer_ms": 700.0, "stall_ratio": 0.005, "rtt_ms": 40.0,
            "jitter_ms": 9.0, "loss_pct": 0.25}
    for name, scale in kqis.items():
        v = rng.lognormal(0, 0.8, n) * scale
        v = np.minimum(v, 1.0) if name == "stall_ratio" else np.minimum(v, 100.0) if name == "loss_pct" else v
        v[rng.random(n) < 0.3] = np.nan
        cols[name] = v
    succ = (rng.random(n) > 0.05).astype(np.int8)
    n_bad = draw(st.integers(0, 3))
    succ_null = np.zeros(n, dtype=bool)
    for _ in range(n_bad):
        i = int(rng.integers(0, n))
        kind = draw(st.sampled_from(["kqi", "success", "cell_null", "cell_blank", "cell_space",
                                     "svc_unknown", "svc_alias", "svc_null", "success_null"]))
        if kind == "kqi":
            cols[draw(st.sampled_from(list(kqis)))][i] = draw(_bad_float)  # type: ignore[index]
        elif kind == "success":
            succ[i] = 3
        elif kind == "success_null":
            succ_null[i] = True
        elif kind == "cell_null":
            cell[i] = None
        elif kind == "cell_blank":
            cell[i] = "  "
        elif kind == "cell_space":
            cell[i] = f" {cell[i]} "
        elif kind == "svc_unknown":
            svc[i] = "email"
        elif kind == "svc_alias":
            svc[i] = "Video"
        else:
            svc[i] = None
    table = pa.table({"ts": cols.pop("ts"), "cell_id": pa.array(cell, pa.string()),
                      "service": pa.array(svc, pa.string()),
                      "success": pa.array(succ, pa.int8(), mask=succ_null),
                      **{k: pa.array(v) for k, v in cols.items()}})
    if draw(st.booleans()):
        table = table.drop_columns(["jitter_ms"])
    return table, draw(st.sampled_from([700, 1500, 6000]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feed=_feed(), batch_rows=st.sampled_from([1000, 100_000]), with_cells=st.booleans(),
       plain=st.booleans())
def test_fused_path_equals_batched_path(tmp_path_factory: pytest.TempPathFactory,
                                        feed: tuple[pa.Table, int], batch_rows: int,
                                        with_cells: bool, plain: bool) -> None:
    # plain: cell_id read as plain strings, each row looked up in the decode worker (as for an
    # overflowed dictionary); else as the file's dictionaries
    with mock.patch.object(_fused, "_PLAIN_BYTES", 0.0 if plain else math.inf):
        _fused_equals_batched(tmp_path_factory, feed, batch_rows, with_cells)


def _fused_equals_batched(tmp_path_factory: pytest.TempPathFactory, feed: tuple[pa.Table, int],
                          batch_rows: int, with_cells: bool) -> None:
    table, row_group = feed
    path = tmp_path_factory.mktemp("fused") / "tests.parquet"
    pq.write_table(table, path, row_group_size=row_group, compression="zstd")
    cfg = dataclasses.replace(Config(), ingest=dataclasses.replace(Config().ingest, batch_rows=batch_rows))
    cells = None
    if with_cells:
        known = sorted({c for c in table.column("cell_id").to_pylist() if c and c.strip() == c})[:-1]
    if with_cells and known:
        cells = Ingest(cfg, rejects_dir=None).cells(pl.DataFrame({
            "cell_id": known, "site_id": ["s"] * len(known), "lat": [30.0] * len(known),
            "lon": [120.0] * len(known), "azimuth": [0.0] * len(known)}))
    try:
        want = _run(path, cfg, False, cells)
    except kqi.InputError as exc:
        with pytest.raises(kqi.InputError, match=str(exc).split(":")[-1].strip()[:20]):
            _run(path, cfg, True, cells)
        return
    got = _run(path, cfg, True, cells)
    assert got[0].equals(want[0])
    assert got[1] == want[1]
    assert got[2].equals(want[2])
    assert got[3] == want[3]


def test_flag_cells_takes_the_fused_path_and_agrees_with_polars(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 30_000
    ids = np.array([f"c{i}" for i in range(500)], dtype=object)
    t = pa.table({
        "ts": pa.array(1_714_521_600_000 + rng.integers(0, 10**8, n), pa.timestamp("ms", "UTC")),
        "cell_id": ids[rng.integers(0, 500, n)], "service": np.array(["browsing", "video", "gaming"],
                                                                     dtype=object)[rng.integers(0, 3, n)],
        "success": (rng.random(n) > 0.1).astype(np.int8),
        "page_load_ms": np.where(rng.random(n) < 0.2, np.nan, rng.lognormal(7, 0.6, n)),
        "initial_buffer_ms": rng.lognormal(6.5, 0.6, n), "stall_ratio": rng.random(n) * 0.02,
        "rtt_ms": rng.lognormal(3.6, 0.5, n), "jitter_ms": rng.lognormal(2.1, 0.5, n),
        "loss_pct": rng.random(n)})
    path = tmp_path / "t.parquet"
    pq.write_table(t, path, row_group_size=7_000)
    got = kqi.flag_cells(path)
    from benchmarks.tools import digest, run_polars
    assert digest(got) == digest(run_polars(path))
    feed = Ingest(Config(), rejects_dir=None, checksum=False).app_tests(path, None, days=False)
    assert feed.fused is not None


def test_plain_read_with_null_ids_equals_batched_path(tmp_path: Path) -> None:
    # a plain-read batch whose absent rows are all null (their dictionary is empty), and one
    # whose every row is null: the same rejects and counts as the batched path
    n = 4_000
    rng = np.random.default_rng(3)
    cell = np.array([f"c{i % 50}" for i in range(n)], dtype=object)
    cell[rng.integers(0, n, 40)] = None
    cell[3_000:] = None
    t = pa.table({
        "ts": pa.array(1_714_521_600_000 + rng.integers(0, 10**8, n), pa.timestamp("ms", "UTC")),
        "cell_id": pa.array(cell, pa.string()),
        "service": np.array(["browsing", "video", "gaming"], dtype=object)[rng.integers(0, 3, n)],
        "success": (rng.random(n) > 0.1).astype(np.int8),
        **{k: rng.random(n) for k in ("page_load_ms", "initial_buffer_ms", "stall_ratio", "rtt_ms",
                                      "jitter_ms", "loss_pct")}})
    path = tmp_path / "t.parquet"
    pq.write_table(t, path, row_group_size=1_000)
    cfg = dataclasses.replace(Config(), ingest=dataclasses.replace(Config().ingest, batch_rows=1_000))
    want = _run(path, cfg, False)
    with mock.patch.object(_fused, "_PLAIN_BYTES", 0.0):
        got = _run(path, cfg, True)
    assert got[0].equals(want[0])
    assert got[1] == want[1]
    assert got[2].equals(want[2])
    assert got[3] == want[3]
    assert want[3]["rows_rejected"] == 1_000 + int((cell[:3_000] == None).sum())  # noqa: E711
