"""The CSV reader's chunks as views of the mapped file (``CsvSource._mapped_chunks``) are the
chunks it reads into buffers: the same boundaries, records, line numbers, malformed rows,
dictionary columns and text of any row, for files with quotes, blank lines, records longer than a
chunk, a last line without its line break, and chunks that fail the typed read."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from kqi.ingest._text import CsvSource

COLUMNS = ["ts", "cell_id", "service", "rtt_ms", "note"]
_FORMS = ["12.5", "", "NA", "nan", "1e3", "-0", " 7", "x", "1,5"]


def _line(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.01:
        return ""  # a blank line
    if r < 0.02:
        return "a,b"  # too few fields
    if r < 0.03:
        return '2026-11-02 00:00:00,C1,video,1,"quoted, with\nnewline"'
    if r < 0.035:
        return "2026-11-02 00:00:00,C1,video,1,\"" + "y" * rng.randrange(1, 90_000) + "\""
    if r < 0.04:
        return '2026-11-02 00:00:00,C1,video,1,"unterminated'
    ts = f"2026-11-{rng.randrange(1, 31):02d} {rng.randrange(24):02d}:00:00"
    return ",".join([ts, f"C{rng.randrange(50)}", rng.choice(["video", "gaming", "浏览"]),
                     rng.choice(_FORMS) if rng.random() < 0.02 else f"{rng.random() * 300:.2f}",
                     rng.choice(["", "ok", "note"])])


def _file(tmp_path: Path, seed: int, clean: bool, crlf: bool = False) -> Path:
    rng = random.Random(seed)
    lines = [",".join(COLUMNS)]
    size = 0
    while size < (1 << 20) + 400_000:  # past the first MiB the sample reads
        ln = _line(rng) if not clean or rng.random() < 0.001 else \
            f"2026-11-02 0{rng.randrange(10)}:00:00,C{rng.randrange(50)},video,{rng.random():.3f},"
        lines.append(ln)
        size += len(ln) + 1
    text = "\n".join(lines) + ("\n" if seed % 2 else "")
    if crlf:  # Windows line ends (a quoted line break too)
        text = text.replace("\n", "\r\n")
    p = tmp_path / f"f{seed}.csv"
    p.write_bytes(text.encode("utf-8"))
    return p


def _chunks(path: Path, chunk_bytes: int, mapped: bool, typed: bool) -> list[tuple]:
    src = CsvSource(path, "auto", 1000)
    src.checksum = False
    src._chunk_bytes = chunk_bytes
    if typed:
        src.set_types({"ts": pa.timestamp("us"), "cell_id": pa.string(), "service": pa.string(),
                       "rtt_ms": pa.float64()})
        src.set_dictionary(["cell_id", "service"])
    if not mapped:
        src._mapped = lambda: None  # type: ignore[method-assign]
    out = []
    for raw in src.chunks():
        rows = np.arange(0, raw.frame.height, max(1, raw.frame.height // 7))
        out.append((raw.frame.to_dicts(), raw.lines.tolist(), [vars(m) for m in raw.malformed],
                    {k: raw.column(k).to_list() for k in raw.coded},
                    raw.text_rows(rows).to_dicts() if raw.frame.height else []))
    return out


@pytest.mark.parametrize(("seed", "chunk_bytes", "typed", "form"), [
    (1, 60_000, True, "messy"), (2, 200_000, True, "messy"), (3, 33_333, False, "messy"),
    (4, 1 << 20, True, "messy"), (5, 50_000, True, "clean"), (6, 120_000, True, "clean"),
    (7, 70_000, True, "messy crlf"), (8, 45_000, True, "clean crlf"),
])
def test_mapped_chunks_are_the_buffered_ones(tmp_path: Path, seed: int, chunk_bytes: int,
                                             typed: bool, form: str) -> None:
    path = _file(tmp_path, seed, form.startswith("clean"), form.endswith("crlf"))
    mapped = _chunks(path, chunk_bytes, True, typed)
    assert mapped == _chunks(path, chunk_bytes, False, typed)
    assert len(mapped) > 1


def test_mapped_only_where_it_applies(tmp_path: Path) -> None:
    big = _file(tmp_path, 5, True)
    src = CsvSource(big, "auto", 1000)
    src.checksum = False
    with big.open("rb") as fh:
        src._fh = fh
        assert src._mapped() is not None
        src._fh = None
    small = tmp_path / "small.csv"
    small.write_text("a,b\n1,2\n")
    src = CsvSource(small, "auto", 1000)
    with small.open("rb") as fh:
        src._fh = fh
        assert src._mapped() is None  # all in the sample
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(big.read_bytes().replace(b"C1", "小区".encode("gb18030")) + "区".encode("gb18030"))
    src = CsvSource(gbk, "gbk", 1000)
    src.checksum = False
    with gbk.open("rb") as fh:
        src._fh = fh
        assert src._mapped() is None  # transcoded: read into buffers


def test_file_changed_while_read_stops_with_the_reason(tmp_path: Path) -> None:
    """A mapped file written to while it is read: an error naming the file, not a wrong read (or,
    for a shortened file, the process killed by a fault in the mapping)."""
    from kqi.errors import InputError

    path = _file(tmp_path, 5, True)
    src = CsvSource(path, "auto", 1000)
    src.checksum = False
    src._chunk_bytes = 60_000
    chunks = src.chunks()
    next(chunks)
    with path.open("ab") as fh:
        fh.write(b"2026-11-02 00:00:00,C1,video,1.5,\n")
    with pytest.raises(InputError, match="changed while it was read"):
        for _ in chunks:
            pass
