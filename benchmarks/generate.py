"""Synthetic app-test files in the contract's columns, as operators export them.

String ``cell_id`` and ``service`` columns; per-test KQIs with nulls where the service does not
measure them; ~50,000 cells with Zipf-like test counts (a few busy cells, a long tail); cell
quality drawn so that about a tenth of the judged cells are poor. Written in chunks, so files
larger than memory can be made.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

N_CELLS = 50_000
ZIPF_S = 0.9            # tests per cell ~ rank^-s
SERVICE_MIX = (0.5, 0.3, 0.2)  # browsing, video, gaming
CHUNK_ROWS = 1_000_000
DAYS = 30
T0 = 1_714_521_600      # 2024-05-01 00:00:00 UTC
SERVICES = ("browsing", "video", "gaming")


def cell_ids(n_cells: int = N_CELLS) -> list[str]:
    """Operator-style ids ``<site>-<sector>``, three sectors per site."""
    return [f"{460000 + i // 3}-{i % 3 + 1}" for i in range(n_cells)]


def _chunk(rng: np.random.Generator, n: int, start_row: int, total: int, cum_w: np.ndarray,  # noqa: PLR0917
           quality: np.ndarray, ids: pl.Series) -> pl.DataFrame:
    cell = np.searchsorted(cum_w, rng.random(n) * cum_w[-1]).astype(np.int32)
    svc = np.searchsorted(np.cumsum(SERVICE_MIX), rng.random(n) * 0.999999).astype(np.int8)
    q = quality[cell]  # >1: a worse cell (KQIs scaled up)
    # time-ordered, as exports are: row r of `total` falls at r/total of the window
    ts = T0 + ((start_row + np.arange(n)) * (DAYS * 86_400) // total)

    def kqi(service: int, scale: float, decimals: int) -> pl.Series:
        # rounded as exports are (and so CSV and Parquet hold the same values)
        v = np.round(rng.lognormal(np.log(scale), 0.6, n) * q, decimals)
        return pl.Series(np.where(svc == service, v, np.nan)).fill_nan(None)

    return pl.DataFrame({
        "ts": pl.Series(ts * 1_000_000, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
        "cell_id": ids.gather(cell),
        "service": pl.Series(SERVICES, dtype=pl.String).gather(svc),
        "success": (rng.random(n) > 0.02 * q).astype(np.int8),
        "page_load_ms": kqi(0, 1400.0, 1),
        "initial_buffer_ms": kqi(1, 700.0, 1),
        "stall_ratio": kqi(1, 0.005, 4),
        "rtt_ms": kqi(2, 40.0, 1),
        "jitter_ms": kqi(2, 9.0, 1),
        "loss_pct": kqi(2, 0.25, 2),
    })


def generate(rows: int, out_dir: Path, *, seed: int = 42, n_cells: int = N_CELLS,
             csv: bool = True) -> dict[str, Path]:
    """Write ``app_tests_<rows>.parquet`` (and ``.csv``) under ``out_dir``; skip existing files.

    Returns
    -------
    dict
        ``{"parquet": path, "csv": path}`` (csv only when asked for).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{rows:.0e}".replace("+0", "").replace("+", "")
    paths = {"parquet": out_dir / f"app_tests_{tag}.parquet"}
    if csv:
        paths["csv"] = out_dir / f"app_tests_{tag}.csv"
    if all(p.exists() for p in paths.values()):
        return paths
    rng = np.random.default_rng(seed)
    ranks = rng.permutation(n_cells) + 1
    cum_w = np.cumsum(ranks.astype(np.float64) ** -ZIPF_S)
    # most cells fine, a tail of worse ones (about a tenth end up poor)
    quality = np.where(rng.random(n_cells) < 0.12, rng.uniform(1.3, 2.5, n_cells),
                       rng.uniform(0.6, 1.0, n_cells))
    ids = pl.Series("cell_id", cell_ids(n_cells))
    writer = None
    tmp = {k: p.with_suffix(p.suffix + ".tmp") for k, p in paths.items()}
    try:
        with open(tmp.get("csv", Path("/dev/null")), "wb") as csv_file:
            for start in range(0, rows, CHUNK_ROWS):
                df = _chunk(rng, min(CHUNK_ROWS, rows - start), start, rows, cum_w, quality, ids)
                table = df.to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(tmp["parquet"], table.schema, compression="zstd")
                writer.write_table(table, row_group_size=CHUNK_ROWS)
                if csv:
                    df.write_csv(csv_file, include_header=start == 0,
                                 datetime_format="%Y-%m-%d %H:%M:%S")
                log.info("generated %d / %d rows", start + df.height, rows)
        if writer is not None:
            writer.close()
            writer = None
        for k, p in paths.items():
            tmp[k].replace(p)
    finally:
        if writer is not None:
            writer.close()
        for p in tmp.values():
            p.unlink(missing_ok=True)
    return paths
