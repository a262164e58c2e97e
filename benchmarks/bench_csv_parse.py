"""kqi's typed CSV parse (pyarrow) against polars' reader doing the same job (issue 15, items 2, 4).

The question: would ``polars.read_csv`` as the typed fast path of a CSV chunk make the KPI ingest
and the app-test flag path cheaper? The chunks are kqi's own: a feed is read once as ``kqi run``
reads it (``kqi.flag_cells`` for the app tests, ``Ingest.cell_kpis`` for the KPIs) and every
chunk :class:`CsvSource` parses is recorded with the source's column types and dictionary
columns. Then, in the same process, the variants parse the recorded chunks, alternated round by
round:

- ``kqi``: ``CsvSource._parse`` as ingest calls it (pyarrow with kqi's null tokens and
  timestamp forms, the dictionary columns to :class:`Coded`, the frame);
- ``polars_parse``: ``pl.read_csv`` of the chunk's bytes, the same columns, the float columns as
  ``Float64`` and the timestamp and dictionary columns as text: polars' parser alone, less than
  kqi needs;
- ``polars_as_kqi``: that, plus what the chunk must give downstream to be the same ``RawChunk``:
  the timestamp column parsed (``str.strptime`` of the one form ``%Y-%m-%d %H:%M:%S``; polars'
  CSV reader parsing ``Datetime`` itself costs 4-5x its whole parse here), the dictionary
  columns as ``Coded`` (``pyarrow.compute.dictionary_encode``; polars' ``Categorical`` read costs
  as much) and the NaN check of the float columns (polars reads ``nan`` as NaN, kqi as missing).
  Still less than an exact path: no check of the forms polars and pyarrow read differently;
- ``field_count``: one count of the delimiter over the chunk (``bytes.count``), a lower bound of
  the per-line field-count check an exact polars path needs (polars fills a short row with
  nulls and, reading a subset of columns, ignores extra fields, where kqi rejects the row).

Reported per variant: median CPU (user + system, all threads) and wall seconds over the rounds.

    flock /work/bench/bench.lock python -m benchmarks.bench_csv_parse \\
        --city /work/bench/data/city_10000_14d --feeds kpis,tests --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.tools import _cpu_s

HERE = Path(__file__).resolve().parent
FEEDS = {"kpis": "cell_kpis.csv", "tests": "app_tests.csv"}


Chunk = tuple[Any, bytes, int, int]  # (source, bytes, newlines, first line)


def _capture(feed: str, city: Path) -> list[Chunk]:
    """kqi's chunks of ``feed``, recorded while the feed is read as ``kqi run`` reads it."""
    from kqi.ingest import Ingest
    from kqi.ingest._text import CsvSource

    import kqi
    from kqi.config import Config

    cfg = Config()
    chunks: list[Chunk] = []
    parse = CsvSource._parse

    def spy(self: CsvSource, chunk: bytes | bytearray, newlines: int) -> Any:
        chunks.append((self, bytes(chunk), newlines, self._next_line))
        return parse(self, chunk, newlines)

    with tempfile.TemporaryDirectory(prefix="kqi-bench-parse-") as tmp:
        ing = Ingest(cfg, Path(tmp) / "rejects", verdicts=False)
        cells = ing.cells(city / "cells.csv")
        CsvSource._parse = spy  # type: ignore[method-assign]
        try:
            if feed == "tests":
                kqi.flag_cells(city / FEEDS[feed], cfg)
            else:
                ing.cell_kpis(city / FEEDS[feed], cells)
        finally:
            CsvSource._parse = parse  # type: ignore[method-assign]
    return chunks


def _kqi(c: Chunk) -> None:
    src, data, newlines, first = c
    src._next_line, src._typed_failures = first, 0
    src._parse(bytearray(data), newlines)


def _polars_frame(src: Any, data: bytes) -> pl.DataFrame:
    names = list(src._types)
    schema = {c: pl.Float64 if src._types.get(c) == pa.float64() else pl.String for c in src.columns}
    return pl.read_csv(data, has_header=False, schema=schema, separator=src.delimiter,
                       columns=[src.columns.index(c) for c in names], empty_string_is_null=False)


def _polars_parse(c: Chunk) -> None:
    _polars_frame(c[0], c[1])


def _polars_as_kqi(c: Chunk) -> None:
    from kqi.ingest._text import Coded

    src = c[0]
    df = _polars_frame(src, c[1])
    types = src._types
    coded = {n: Coded.from_arrow(pc.dictionary_encode(df.get_column(n).to_arrow()))
             for n in df.columns if pa.types.is_dictionary(types[n])}
    stamps = [pl.when(pl.col(n) != "").then(pl.col(n)).str.strptime(
        pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=True, exact=True)
        for n in df.columns if pa.types.is_timestamp(types[n])]
    floats = [n for n in df.columns if types[n] == pa.float64()]
    if floats:
        df.select(pl.any_horizontal(pl.col(floats).is_nan().any())).item()
    df.drop(list(coded)).with_columns(stamps)


def _field_count(c: Chunk) -> None:
    c[1].count(c[0].delimiter.encode())


VARIANTS: dict[str, Callable[[Chunk], None]] = {
    "kqi": _kqi, "polars_parse": _polars_parse, "polars_as_kqi": _polars_as_kqi,
    "field_count": _field_count,
}


def measure(feed: str, city: Path, rounds: int) -> dict[str, Any]:
    chunks = _capture(feed, city)
    for fn in VARIANTS.values():  # warm: kernels, polars' and pyarrow's pools
        fn((chunks[0][0], chunks[0][1][:1 << 16].rsplit(b"\n", 1)[0] + b"\n", 0, chunks[0][3]))
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in VARIANTS}
    for _ in range(rounds):
        for name, fn in VARIANTS.items():
            c0, t0 = _cpu_s(), time.perf_counter()
            for c in chunks:
                fn(c)
            runs[name].append((_cpu_s() - c0, time.perf_counter() - t0))
    return {"feed": feed, "chunks": len(chunks), "mib": sum(len(c[1]) for c in chunks) / 2**20,
            "variants": {k: {"cpu_s": statistics.median(r[0] for r in v),
                             "wall_s": statistics.median(r[1] for r in v),
                             "rounds": [list(r) for r in v]} for k, v in runs.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--city", type=Path, required=True, help="a `kqi city` folder")
    ap.add_argument("--feeds", default=",".join(FEEDS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default: results/)")
    args = ap.parse_args(argv)
    res = {"city": str(args.city), "rounds": args.rounds,
           "feeds": [measure(f, args.city, args.rounds) for f in args.feeds.split(",")]}
    out = args.out or HERE / "results" / f"csv_parse_{args.city.name}.json"
    out.write_text(json.dumps(res, indent=1))
    print("| feed | variant | CPU s | wall s | CPU ÷ kqi |")
    print("|---|---|---:|---:|---:|")
    for f in res["feeds"]:
        base = f["variants"]["kqi"]["cpu_s"]
        for k, v in f["variants"].items():
            print(f"| {f['feed']} | {k} | {v['cpu_s']:.2f} | {v['wall_s']:.2f} | {v['cpu_s'] / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
