"""Ingest's numba kernels against plain-Python references, and the per-value code paths they
serve (dictionary-encoded ``cell_id`` / ``service``) against reading the same rows as plain text."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import reference as ref
from hypothesis import example, given, settings
from hypothesis import strategies as st
from kqi.ingest import Ingest
from kqi.ingest._kernels import (
    _check_floats,
    _count_byte,
    _dense_index,
    _first_rows,
    _screen_floats,
    _spread,
)

from kqi.config import Config


@pytest.fixture(autouse=True)
def _wrapping_multiply() -> Iterator[None]:
    """The hash mixers (``_mix64``) multiply uint64 modulo 2**64 by design: compiled, numba wraps
    silently; run as Python (``NUMBA_DISABLE_JIT=1``) numpy warns on every wrap, which the test
    settings make an error."""
    with np.errstate(over="ignore"):
        yield


def _ro(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def first_rows_reference(index: list[int], ok: list[bool], n_values: int) -> list[int]:
    first = [len(index)] * n_values
    for i, (v, good) in enumerate(zip(index, ok, strict=True)):
        if v >= 0 and good and first[v] == len(index):
            first[v] = i
    return first


def check_floats_reference(values: list[float], valid: list[bool], lo: float, hi: float, whole: bool
                           ) -> tuple[bool, bool, list[bool]]:
    """(bad, nans, validity with NaN cleared): NaN counts as missing, any other failing present
    value is bad."""
    bad = nans = False
    out = []
    for v, present in zip(values, valid, strict=True):
        isnan = math.isnan(v)
        out.append(present and not isnan)
        if not present:
            continue
        if isnan:
            nans = True
        elif not math.isfinite(v) or v < lo or v > hi or (whole and v != math.floor(v)):
            bad = True
    return bad, nans, out


@settings(max_examples=200, deadline=None)
@given(n_values=st.integers(0, 6), data=st.data())
def test_first_rows_matches_reference(n_values: int, data: st.DataObject) -> None:
    index = data.draw(st.lists(st.integers(-1, n_values - 1), max_size=60))
    ok = data.draw(st.lists(st.booleans(), min_size=len(index), max_size=len(index)))
    got = _first_rows(_ro(np.array(index, dtype=np.int32)), _ro(np.array(ok, dtype=bool)), n_values)
    assert got.tolist() == first_rows_reference(index, ok, n_values)


@settings(max_examples=200, deadline=None)
@given(per_value=st.lists(st.integers(-128, 127), min_size=1, max_size=8), data=st.data())
def test_spread_matches_reference(per_value: list[int], data: st.DataObject) -> None:
    index = data.draw(st.lists(st.integers(-1, len(per_value) - 1), max_size=60))
    for dtype in (np.int8, np.int32):
        out = np.empty(len(index), dtype=dtype)
        _spread(_ro(np.array(per_value, dtype=dtype)), _ro(np.array(index, dtype=np.int32)), dtype(-1), out)
        assert out.tolist() == [per_value[j] if j >= 0 else -1 for j in index]
    flags = [v % 2 == 0 for v in per_value]
    out = np.empty(len(index), dtype=bool)
    _spread(_ro(np.array(flags)), _ro(np.array(index, dtype=np.int32)), np.bool_(True), out)
    assert out.tolist() == [flags[j] if j >= 0 else True for j in index]


_FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0.0, -0.0, 1.0, 0.5, 100.0, 100.5, -150.0, 2.0**53]))


@settings(max_examples=300, deadline=None)
@given(values=st.lists(_FLOATS, max_size=40), data=st.data(),
       lo=st.sampled_from([-math.inf, 0.0, -150.0]), hi=st.sampled_from([math.inf, 1.0, 100.0]),
       whole=st.booleans(), start=st.integers(0, 9))
def test_check_floats_matches_reference(values: list[float], data: st.DataObject, lo: float, hi: float,  # noqa: PLR0917
                                        whole: bool, start: int) -> None:
    valid = data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
    # the range starts mid-byte of the bitmap, as in a batch sliced from a bigger one
    vals = [7.0] * start + values
    bits = [True] * start + valid
    bitmap = np.packbits(np.array(bits + [False] * (-len(bits) % 8), dtype=bool), bitorder="little")
    out = np.full((len(values) + 7) // 8, 0xAA, dtype=np.uint8)
    bad, nans = _check_floats(_ro(np.array(vals, dtype=np.float64)), _ro(bitmap), start, len(vals),
                              lo, hi, whole, out)
    want_bad, want_nans, want_valid = check_floats_reference(values, valid, lo, hi, whole)
    assert (bool(bad), bool(nans)) == (want_bad, want_nans)
    got_valid = np.unpackbits(out, bitorder="little")[:len(values)].astype(bool).tolist()
    assert got_valid == want_valid
    assert not np.unpackbits(out, bitorder="little")[len(values):].any()  # padding bits clear


@settings(max_examples=300, deadline=None)
@example(values=[0.5, math.nan, 0.25], lo=0.0, hi=1.0, whole=False, start=0)
@example(values=[0.5, math.inf], lo=-math.inf, hi=math.inf, whole=False, start=3)
@example(values=[0.5, 1.5], lo=0.0, hi=1.0, whole=False, start=0)
@example(values=[0.5, -0.5], lo=0.0, hi=1.0, whole=False, start=0)
@example(values=[1.0, 0.5], lo=0.0, hi=1.0, whole=True, start=1)
@example(values=[0.0, 1.0], lo=0.0, hi=1.0, whole=True, start=9)
@given(values=st.lists(_FLOATS, max_size=40), lo=st.sampled_from([-math.inf, 0.0, -150.0]),
       hi=st.sampled_from([math.inf, 1.0, 100.0]), whole=st.booleans(), start=st.integers(0, 9))
def test_screen_floats_matches_reference(values: list[float], lo: float, hi: float, whole: bool,
                                         start: int) -> None:
    # every slot, validity ignored: a non-NaN value infinite, out of lo..hi or (whole) fractional;
    # a NaN anywhere
    want_bad = any(not math.isnan(v) and not (math.isfinite(v) and lo <= v <= hi
                                              and (not whole or v == math.floor(v)))
                   for v in values)
    want_nan = any(math.isnan(v) for v in values)
    vals = [float("nan")] * start + values  # the range starts past slots it must not read
    bad, nan = _screen_floats(_ro(np.array(vals, dtype=np.float64)), start, len(vals), lo, hi, whole)
    assert (bool(bad), bool(nan)) == (want_bad, want_nan)
    if not (want_bad or want_nan):  # then the exact pass finds nothing, whatever the validity
        bitmap = np.packbits(np.ones(len(vals) + 8, dtype=bool), bitorder="little")
        out = np.empty((len(values) + 7) // 8, dtype=np.uint8)
        bad, nans = _check_floats(_ro(np.array(vals, dtype=np.float64)), _ro(bitmap), start,
                                  len(vals), lo, hi, whole, out)
        assert not bad
        assert not nans


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300), byte=st.sampled_from([10, 34, 0, 255]))
def test_count_byte_matches_bytes_count(data: bytes, byte: int) -> None:
    assert _count_byte(np.frombuffer(data, dtype=np.uint8), np.uint8(byte)) == data.count(bytes([byte]))


def test_dictionary_encoded_parquet_reads_as_plain_text(tmp_path: Path) -> None:
    """Ids and services read through their dictionaries (batches cutting row groups, ids that need
    cleaning, unknown and missing values) give the rows, codes and rejects of the same file as CSV."""
    rng = np.random.default_rng(7)
    n = 5000
    ids = np.array(["C1", "C2", " C3 ", "4926720.0", "", "X", "C2"], dtype=object)
    svc = np.array(["browsing", "video", "视频", " Gaming ", "tv", ""], dtype=object)
    df = pl.DataFrame({
        "ts": [f"2024-01-01 00:{i // 60 % 60:02d}:{i % 60:02d}" for i in range(n)],
        "cell_id": pl.Series(ids[rng.integers(0, len(ids), n)].tolist()).set(pl.Series(rng.random(n) < 0.02), None),
        "service": svc[rng.integers(0, len(svc), n)].tolist(),
        "rtt_ms": rng.random(n) * 100,
    })
    pq.write_table(df.to_arrow(), tmp_path / "t.parquet", row_group_size=1700)
    df.write_csv(tmp_path / "t.csv")
    cells = tmp_path / "cells.csv"
    cells.write_text("cell_id,lat,lon,azimuth\nC1,1,1,0\nC2,1,1,0\nC3,1,1,0\n4926720,1,1,0\n", encoding="utf-8")
    config = Config()
    config = type(config)(**{**config.__dict__, "ingest": type(config.ingest)(
        **{**config.ingest.__dict__, "batch_rows": 1000})})
    for with_cells in (False, True):
        got = {}
        for fmt in ("parquet", "csv"):
            ing = Ingest(config, None)
            feed = ing.app_tests(tmp_path / f"t.{fmt}", ing.cells(cells) if with_cells else None)
            got[fmt] = (feed.collect(), feed.cell_ids.to_list(), ing.rejects["app_tests"])
        assert got["parquet"][0].equals(got["csv"][0])
        assert got["parquet"][1] == got["csv"][1]
        # Parquet lines are row numbers; CSV lines count the header
        pq_rej = got["parquet"][2].select("line", "reason")
        csv_rej = got["csv"][2].select(pl.col("line") - 1, "reason")
        assert pq_rej.height > 0
        assert pq_rej.equals(csv_rej)



@settings(max_examples=150, deadline=None)
@given(st.data(), st.integers(1, 30), st.integers(1, 30), st.booleans(), st.sampled_from([None, 4, 64]))
def test_pair_set_matches_reference(data: st.DataObject, n_codes: int, n_b: int, fixed: bool,
                                    max_bits: int | None) -> None:
    """Repeated (code, ts) pairs over a feed's chunks, in the bit set, the hash set, and a feed
    that outgrows the bit set half way (``MAX_BITS`` made small), against the reference."""
    from kqi.ingest import _repeats

    old = _repeats.MAX_BITS
    if max_bits is not None:
        _repeats.MAX_BITS = max_bits
    try:
        ps = _repeats.PairSet(n_codes if fixed else None)
        seen: set[tuple[int, int]] = set()
        for _ in range(data.draw(st.integers(1, 4))):
            n = data.draw(st.integers(0, 40))
            codes = data.draw(st.lists(st.integers(0, n_codes - 1), min_size=n, max_size=n))
            bs = [1_700_000_000_000_000 + i * 3_600_000_000
                  for i in data.draw(st.lists(st.integers(0, n_b - 1), min_size=n, max_size=n))]
            ok = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
            got = ps.repeats(_ro(np.array(codes, dtype=np.int32)), _ro(np.array(bs, dtype=np.int64)),
                             _ro(np.array(ok, dtype=bool)))
            assert got.tolist() == ref.repeats(list(zip(codes, bs, strict=True)), ok, seen)
        assert len(ps) == len(seen)
    finally:
        _repeats.MAX_BITS = old


def dense_index_reference(values: list[int], known: dict[int, int], limit: int) -> tuple[int, list[int]]:
    """(rows done, their indices): each value's index in ``known`` (which gains new values with
    the next index), stopping at the first new value once ``known`` holds ``limit``."""
    out = []
    for i, v in enumerate(values):
        if v not in known:
            if len(known) >= limit:
                return i, out
            known[v] = len(known)
        out.append(known[v])
    return len(values), out


@settings(max_examples=200, deadline=None)
@given(st.data(), st.sampled_from([2, 4, 8, 64]))
def test_dense_index_matches_reference(data: st.DataObject, size: int) -> None:
    """Dense indices over several calls into one map, which stops when half full."""
    keys = np.zeros(size, dtype=np.int64)
    slots = np.full(size, -1, dtype=np.int64)
    known: dict[int, int] = {}
    count = 0
    for _ in range(data.draw(st.integers(1, 4))):
        values = data.draw(st.lists(st.one_of(st.integers(0, 12), st.sampled_from(
            [-(2**63), 2**63 - 1, -1, 1_700_000_000_000_000])), max_size=20))
        out = np.full(len(values), -7, dtype=np.int64)
        done, count = _dense_index(_ro(np.array(values, dtype=np.int64)), keys, slots, count, out)
        want_done, want = dense_index_reference(values, known, size // 2)
        assert (done, count) == (want_done, len(known))
        assert out[:done].tolist() == want
        assert (out[done:] == -7).all()


def test_pair_set_dense_grows() -> None:
    """Dense indices stay those of first appearance while the map grows many times over."""
    from kqi.ingest._repeats import PairSet

    rng = np.random.default_rng(3)
    b = rng.integers(-(10**15), 10**15, 30_000)
    b = np.concatenate([b, b[::-1], rng.choice(b, 5000)])
    ps = PairSet(None)
    first_half = ps._dense(b[:20_000])
    got = np.concatenate([first_half, ps._dense(b[20_000:])])
    order: dict[int, int] = {}
    want = [order.setdefault(v, len(order)) for v in b.tolist()]
    assert got.tolist() == want


def test_pair_set_hash_grows() -> None:
    """The hash set stays exact while it grows from its first size many times over."""
    from kqi.ingest._repeats import PairSet

    rng = np.random.default_rng(7)
    a = rng.integers(0, 2000, 50_000)
    b = rng.integers(0, 300, 50_000) * 10**9
    ps = PairSet(None)
    first = ps.repeats(a, b, np.ones(len(a), dtype=bool))
    seen: set[tuple[int, int]] = set()
    want = ref.repeats(list(zip(a.tolist(), b.tolist(), strict=True)), [True] * len(a), seen)
    assert first.tolist() == want
    assert 0 < sum(want) < len(a)
    assert ps.repeats(a, b, np.ones(len(a), dtype=bool)).all()
