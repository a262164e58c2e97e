"""Property tests: corrupted input never crashes ingest with anything but InputError, and no row is lost."""

from __future__ import annotations

import csv
import io
import math
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kqi.ingest import Ingest
from kqi.ingest._convert import clean_numeric

from kqi.config import Config, IngestConfig
from kqi.errors import InputError
from kqi.schema import Column

CELLS = "cell_id,lat,lon,azimuth\nC1,31,121,0\nC2,31.1,121.1,120\nC3,31.2,121.2,240\n"
N_ROWS = 30
SERVICES = ("browsing", "video", "gaming", "浏览", "视频", "游戏")


def base_rows(feed: str, quoted: bool = True) -> tuple[list[str], list[list[str]]]:
    """A valid file of ``feed``: header and rows as fields (``quoted``: a field needing quotes)."""
    if feed == "app_tests":
        header = ["ts", "cell_id", "service", "success", "page_load_ms", "initial_buffer_ms", "stall_ratio",
                  "rtt_ms", "jitter_ms", "loss_pct", "good"]
        rows = [[f"2024-01-01 00:{i // 60:02d}:{i % 60:02d}", f"C{i % 3 + 1}", SERVICES[i % 6], str(i % 2),
                 str(100 + i), "", "0.01", "", "", "0.5", ""] for i in range(N_ROWS)]
    elif feed == "cells":
        header = ["cell_id", "site_id", "cell_name", "lat", "lon", "azimuth"]
        rows = [[f"X{i}", f"S{i // 3}", f"站点{i}", "31.5", "121.5", str(i * 10)] for i in range(N_ROWS)]
    else:
        header = ["complaint_id", "ts", "lat", "lon", "category", "msisdn", "description", "cell_id"]
        rows = [[f"K{i}", "2024-01-01 10:00:00", "31.5" if i % 2 else "", "121.5" if i % 2 else "",
                 "上网慢", f"1380013{i:04d}", 'slow, "very"' if quoted else "slow", f"C{i % 4 + 1}"] for i in range(N_ROWS)]
    return header, rows


def to_csv(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


cell_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
safe_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Zl", "Zp", "Cc"),
                                           exclude_characters=',"\r\n\x0b\x0c\x1c\x1d\x1e\x85'),
                    max_size=12)


def edits(text_strategy: st.SearchStrategy[str]) -> st.SearchStrategy[list[tuple[int, int, str]]]:
    return st.lists(st.tuples(st.integers(0, N_ROWS - 1), st.integers(0, 10), text_strategy), max_size=6)


def run_feed(feed: str, data: bytes, directory: Path) -> tuple[int, str] | None:
    """Read ``data`` as ``feed``; (rows read, encoding used), or None on InputError."""
    path = directory / f"{feed}.csv"
    path.write_bytes(data)
    out = directory / "rejects"
    ing = Ingest(Config(ingest=IngestConfig(batch_rows=1000)), out)
    cells = ing.cells(directory / "cells_ref.csv")
    try:
        if feed == "app_tests":
            got = sum(b.height for b in ing.app_tests(path, cells).batches)
        elif feed == "cells":
            got = ing.cells(path).height
        else:
            got = ing.complaints(path, cells).height
    except InputError as exc:
        msg = str(exc)
        assert str(path) in msg
        assert "\n" not in msg
        return None
    rep = ing.reports[feed]
    assert rep.rows_read == rep.rows_accepted + rep.rows_rejected
    assert got == rep.rows_accepted
    n_file = 0
    if rep.rejects_path is not None:
        with open(rep.rejects_path, encoding="utf-8", newline="") as fh:
            n_file = sum(1 for _ in csv.reader(fh)) - 1
        rej = pl.read_csv(rep.rejects_path, infer_schema=False)
        assert rej["reason"].null_count() == 0
        assert rej["line"].cast(pl.Int64).is_sorted()
    assert n_file == rep.rows_rejected
    return rep.rows_read, rep.encoding


def corrupt(feed: str, cell_edits: list[tuple[int, int, str]], truncations: list[tuple[int, int]],
            junk: list[tuple[int, bytes]], quoted: bool = True) -> bytes:
    header, rows = base_rows(feed, quoted)
    for r, c, v in cell_edits:
        rows[r][c % len(header)] = v
    lines = to_csv(header, rows).encode("utf-8").split(b"\n")
    for r, keep in truncations:
        ln = lines[1 + r]
        lines[1 + r] = ln[: keep % (len(ln) + 1)]
    data = b"\n".join(lines)
    for pos, blob in junk:
        at = pos % (len(data) + 1)
        data = data[:at] + blob + data[at:]
    return data


FEED_NAMES = ("app_tests", "cells", "complaints")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("feed", FEED_NAMES)
@SETTINGS
@given(cell_edits=edits(cell_text),
       truncations=st.lists(st.tuples(st.integers(0, N_ROWS - 1), st.integers(0, 200)), max_size=3),
       junk=st.lists(st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=4)), max_size=3))
def test_corrupted_files_never_crash_or_lose_rows(feed: str, cell_edits: list[tuple[int, int, str]],
                                                   truncations: list[tuple[int, int]],
                                                   junk: list[tuple[int, bytes]]) -> None:
    data = corrupt(feed, cell_edits, truncations, junk)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "cells_ref.csv").write_text(CELLS, encoding="utf-8")
        run_feed(feed, data, d)


@pytest.mark.parametrize("feed", FEED_NAMES)
@SETTINGS
@given(cell_edits=edits(safe_text),
       truncations=st.lists(st.tuples(st.integers(0, N_ROWS - 1), st.integers(0, 200)), max_size=3))
def test_edits_that_keep_lines_keep_every_row(feed: str, cell_edits: list[tuple[int, int, str]],
                                              truncations: list[tuple[int, int]]) -> None:
    """Edits without line breaks or quotes: every data line is read as exactly one row."""
    data = corrupt(feed, cell_edits, truncations, [], quoted=False)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "cells_ref.csv").write_text(CELLS, encoding="utf-8")
        result = run_feed(feed, data, d)
    if result is not None:
        # every non-blank line after the header is one row (a line truncated to nothing is not)
        # (a cut multi-byte character can make the file read as GB18030: decode as it was read)
        lines = data.decode(result[1]).split("\n")[1:]
        assert result[0] == sum(1 for ln in lines if ln.strip())


# -- the fast "whole column is valid" test against a plain reference ---------------------------


def passes_reference(values: list[float | None], col: Column) -> bool:
    for v in values:
        if v is None or math.isnan(v):  # NaN is a missing value
            continue
        if not math.isfinite(v):
            return False
        if (col.lo is not None and v < col.lo) or (col.hi is not None and v > col.hi):
            return False
        if col.kind in ("int", "flag") and v != int(v):
            return False
        if col.kind == "flag" and v not in (0.0, 1.0):
            return False
    return True


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.floats(min_value=-1e300, max_value=1e300),
                                 st.sampled_from([0.0, 1.0, 0.5, 100.0, 100.5, float("nan"), float("inf"),
                                                  float("-inf"), -0.0])), max_size=40),
       kind=st.sampled_from(["float", "int", "flag"]),
       lo=st.sampled_from([None, 0.0, -150.0]), hi=st.sampled_from([None, 1.0, 100.0]),
       offset=st.integers(0, 5))
def test_clean_numeric_matches_reference(values: list[float | None], kind: str, lo: float | None,
                                         hi: float | None, offset: int) -> None:
    col = Column("x", kind, lo=lo, hi=hi)  # type: ignore[arg-type]
    # a slice: the Arrow buffers start at an offset, as in a batch cut from a bigger frame
    s = pl.Series("x", [1.0] * offset + values, dtype=pl.Float64).slice(offset)
    clean = clean_numeric(s.to_frame(), {"x": col})
    assert (set(clean) == {"x"}) == passes_reference(values, col)
    if (fixed := clean.get("x")) is not None:  # NaN made null, nothing else changed
        want = [None if v is None or math.isnan(v) else v for v in values]
        assert fixed.to_list() == want
    ints = [v for v in values if v is None or (math.isfinite(v) and abs(v) < 2**62 and v == int(v))]
    si = pl.Series("x", [None if v is None else int(v) for v in ints], dtype=pl.Int64)
    assert (set(clean_numeric(si.to_frame(), {"x": col})) == {"x"}) == passes_reference(
        [None if v is None else float(int(v)) for v in ints], col)
