"""Synthetic app-test files in the contract's columns, as operators export them, in many shapes.

String ``cell_id`` and ``service`` columns; per-test KQIs, missing where the service does not
measure them; cells with Zipf-like test counts (a few busy cells, a long tail); cell quality
drawn so that about a tenth of the judged cells are poor. Written in chunks, so files larger than
memory can be made.

A :class:`Shape` says how the file is stored: missing KQIs as nulls or as NaN, KQIs rounded (as
most exports are, and dictionary-friendly) or full-precision doubles, rows time-ordered or
shuffled, ``ts`` in micro- or milliseconds, the number of cells and the Zipf exponent of their
popularity, the Parquet compression and row-group size, or CSV. The same seed gives the same
tests in every storage shape that keeps the values (so every tool must give the same counts).

    python -m benchmarks.generate --rows 2e7 --shape issue --out /tmp/kqi-bench
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

N_CELLS = 50_000
ZIPF_S = 0.9            # tests per cell ~ rank^-s
SERVICE_MIX = (0.5, 0.3, 0.2)  # browsing, video, gaming
CHUNK_ROWS = 1_000_000
DAYS = 30
T0 = 1_714_521_600      # 2024-05-01 00:00:00 UTC
SERVICES = ("browsing", "video", "gaming")
#: the KQI columns, their median scale and the decimals a rounded export keeps
KQI_SPEC = (("page_load_ms", 0, 1400.0, 1), ("initial_buffer_ms", 1, 700.0, 1),
            ("stall_ratio", 1, 0.005, 4), ("rtt_ms", 2, 40.0, 1), ("jitter_ms", 2, 9.0, 1),
            ("loss_pct", 2, 0.25, 2))


@dataclass(frozen=True)
class Shape:
    """How a benchmark file stores the same kind of tests.

    Attributes
    ----------
    missing : {"null", "nan"}
        A KQI the service does not measure: a null, or a NaN (as many exports write it).
    precision : {"rounded", "full"}
        KQIs rounded to the decimals exports keep, or full-precision doubles (no dictionary).
    order : {"sorted", "shuffled"}
        Rows in time order, or in random order (``ts`` unsorted).
    ts_unit : {"us", "ms"}
    cells : int
        Cells in the network (test counts Zipf-like over them).
    zipf : float
        Exponent ``s`` of the cells' popularity (tests ~ rank^-s).
    compression : {"zstd", "snappy", "none"}
    row_group : int
        Parquet rows per row group.
    fmt : {"parquet", "csv"}
    """

    missing: str = "nan"
    precision: str = "full"
    order: str = "shuffled"
    ts_unit: str = "ms"
    cells: int = N_CELLS
    zipf: float = ZIPF_S
    compression: str = "zstd"
    row_group: int = 1_000_000
    fmt: str = "parquet"

    def tag(self) -> str:
        """A file-name fragment that names every field."""
        return (f"{self.fmt}-{self.missing}-{self.precision}-{self.order}-{self.ts_unit}-"
                f"c{self.cells}-z{self.zipf:g}-{self.compression}-rg{self.row_group}")


#: the shape the issue measured (NaN, full precision, shuffled, ms, zstd, 1 M-row groups)
ISSUE = Shape()
#: what this generator wrote before shapes (nulls, rounded KQIs, sorted, us)
LEGACY = Shape(missing="null", precision="rounded", order="sorted", ts_unit="us")
#: the benchmark matrix: the issue's shape, then one storage choice changed at a time
MATRIX: dict[str, Shape] = {
    "issue": ISSUE,
    "legacy": LEGACY,
    "nulls": dataclasses.replace(ISSUE, missing="null"),
    "rounded": dataclasses.replace(ISSUE, precision="rounded"),
    "sorted": dataclasses.replace(ISSUE, order="sorted"),
    "ts-us": dataclasses.replace(ISSUE, ts_unit="us"),
    "cells-5k": dataclasses.replace(ISSUE, cells=5_000),
    "cells-500k": dataclasses.replace(ISSUE, cells=500_000),
    "zipf-1.2": dataclasses.replace(ISSUE, zipf=1.2),
    "snappy": dataclasses.replace(ISSUE, compression="snappy"),
    "uncompressed": dataclasses.replace(ISSUE, compression="none"),
    "rg-128k": dataclasses.replace(ISSUE, row_group=131_072),
    "csv": dataclasses.replace(ISSUE, fmt="csv"),
}


def cell_ids(n_cells: int = N_CELLS) -> list[str]:
    """Operator-style ids ``<site>-<sector>``, three sectors per site."""
    return [f"{460000 + i // 3}-{i % 3 + 1}" for i in range(n_cells)]


def _chunk(rng: np.random.Generator, n: int, start_row: int, total: int, cum_w: np.ndarray,  # noqa: PLR0917
           quality: np.ndarray, ids: pl.Series, shape: Shape) -> pl.DataFrame:
    cell = np.searchsorted(cum_w, rng.random(n) * cum_w[-1]).astype(np.int32)
    svc = np.searchsorted(np.cumsum(SERVICE_MIX), rng.random(n) * 0.999999).astype(np.int8)
    q = quality[cell]  # >1: a worse cell (KQIs scaled up)
    if shape.order == "sorted":
        # time-ordered, as most exports are: row r of `total` falls at r/total of the window
        ts_s = T0 + ((start_row + np.arange(n)) * (DAYS * 86_400) // total)
    else:
        ts_s = T0 + rng.integers(0, DAYS * 86_400, n)
    ms = rng.integers(0, 1000, n)  # a sub-second part, so ms/us files store it
    ts = (ts_s * 1000 + ms).astype(np.int64)
    ts_col = (pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("ms", "UTC")) if shape.ts_unit == "ms"
              else pl.Series(ts * 1000, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")))
    cols: dict[str, pl.Series] = {
        "ts": ts_col,
        "cell_id": ids.gather(cell),
        "service": pl.Series(SERVICES, dtype=pl.String).gather(svc),
        "success": pl.Series((rng.random(n) > 0.02 * q).astype(np.int8)),
    }
    for name, service, scale, decimals in KQI_SPEC:
        v = rng.lognormal(np.log(scale), 0.6, n) * q
        if shape.precision == "rounded":
            v = np.round(v, decimals)
        v = np.where(svc == service, v, np.nan)
        s = pl.Series(name, v)
        cols[name] = s.fill_nan(None) if shape.missing == "null" else s
    return pl.DataFrame(cols)


def _path(rows: int, out_dir: Path, shape: Shape, seed: int) -> Path:
    tag = f"{rows:.0e}".replace("+0", "").replace("+", "")
    return out_dir / f"app_tests_{tag}_{shape.tag()}_s{seed}.{shape.fmt}"


def generate_shape(rows: int, out_dir: Path, shape: Shape = ISSUE, *, seed: int = 42) -> Path:
    """Write ``rows`` app tests in ``shape`` under ``out_dir`` (kept: an existing file is reused).

    Returns
    -------
    Path
        The file (``.parquet`` or ``.csv``, its name spelling out the shape).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = _path(rows, out_dir, shape, seed)
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    ranks = rng.permutation(shape.cells) + 1
    cum_w = np.cumsum(ranks.astype(np.float64) ** -shape.zipf)
    # most cells fine, a tail of worse ones (about a tenth end up poor)
    quality = np.where(rng.random(shape.cells) < 0.12, rng.uniform(1.3, 2.5, shape.cells),
                       rng.uniform(0.6, 1.0, shape.cells))
    ids = pl.Series("cell_id", cell_ids(shape.cells))
    tmp = path.with_suffix(path.suffix + ".tmp")
    writer: pq.ParquetWriter | None = None
    try:
        with open(tmp, "wb") as fh:
            for start in range(0, rows, CHUNK_ROWS):
                df = _chunk(rng, min(CHUNK_ROWS, rows - start), start, rows, cum_w, quality, ids,
                            shape)
                if shape.fmt == "csv":
                    # full precision round-trips: polars writes the shortest exact decimal
                    df.write_csv(fh, include_header=start == 0,
                                 datetime_format="%Y-%m-%d %H:%M:%S%.3f")
                else:
                    table: pa.Table = df.to_arrow()
                    if writer is None:
                        writer = pq.ParquetWriter(fh, table.schema, compression=shape.compression)
                    writer.write_table(table, row_group_size=shape.row_group)
                log.info("generated %d / %d rows", start + df.height, rows)
            if writer is not None:
                writer.close()
                writer = None
        tmp.replace(path)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return path


def generate(rows: int, out_dir: Path, *, seed: int = 42, n_cells: int = N_CELLS,
             csv: bool = True, shape: Shape = LEGACY) -> dict[str, Path]:
    """Write ``app_tests_*.parquet`` (and the same rows as ``.csv``) under ``out_dir``; skip
    existing files. The default shape is the one this generator always wrote (:data:`LEGACY`).

    Returns
    -------
    dict
        ``{"parquet": path, "csv": path}`` (csv only when asked for).
    """
    shape = dataclasses.replace(shape, cells=n_cells)
    out = {"parquet": generate_shape(rows, out_dir, dataclasses.replace(shape, fmt="parquet"),
                                     seed=seed)}
    if csv:
        out["csv"] = generate_shape(rows, out_dir, dataclasses.replace(shape, fmt="csv"), seed=seed)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1e6")
    ap.add_argument("--shape", default="issue", choices=sorted(MATRIX))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(generate_shape(int(float(args.rows)), args.out, MATRIX[args.shape], seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
