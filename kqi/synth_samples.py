"""Synthetic drive-test samples over a cells table (the tests' ground truth for kqi.samples).

Drives are random walks on a street grid (about 10 m a second, turning at corners) across the
cells' area. At each second every cell's RSRP is computed from a 3GPP-style urban macro model:
path loss ``128.1 + 37.6 log10(d km)``, a sector antenna pattern ``-min(12 (θ/65°)², 25) dB``,
log-normal shadowing (iid per sample and cell, ``shadow_db``), and a per-cell power offset (to
plant weak coverage, negative, or overshooting, positive). The strongest cell serves; SINR is
its power over the others' and thermal noise, CQI follows SINR. Columns are written with
G-NetTrack Pro's headers and time format, so a generated file goes through the same aliases as
a real log. Nothing here is used by an analysis; only tests and benchmarks import it.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl

from kqi.geo import EARTH_RADIUS_M, bearing_deg, haversine_m

_M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
#: RSRP at 1 km on boresight before shadowing: 18.2 dBm per resource element - 128.1 dB
_RSRP_1KM = 18.2 - 128.1
_NOISE_DBM = -125.0          # thermal noise per 15 kHz resource element, 7 dB noise figure


def eci_cells(cells: pl.DataFrame) -> pl.DataFrame:
    """A synthetic city's cells with 28-bit ECIs as ``cell_id`` (eNB = the numeric site id,
    sector = the id's last part), so that ``site = ECI >> 8`` holds as in a real network."""
    enb = pl.col("site_id").cast(pl.Int64)
    sector = pl.col("cell_id").str.extract(r"-(\d+)$", 1).cast(pl.Int64)
    return cells.with_columns((enb * 256 + sector).cast(pl.String).alias("cell_id"),
                              enb.cast(pl.String).alias("site_id")).sort("cell_id")


def make_samples(cells: pl.DataFrame, *, seed: int = 1, drives: int = 12, seconds: int = 1500,
                 speed_m_s: float = 10.0, shadow_db: float = 5.0,
                 power_offset_db: dict[str, float] | None = None,
                 start: str = "2026-11-02 08:00:00") -> pl.DataFrame:
    """Drive-test samples over ``cells`` (``cell_id, lat, lon, azimuth``, ``beamwidth`` optional).

    Returns
    -------
    polars.DataFrame
        G-NetTrack Pro columns: ``Timestamp`` (``YYYY.MM.DD_HH.MM.SS``), ``Longitude``,
        ``Latitude``, ``Speed``, ``RAWCELLID``, ``NetworkMode``, ``RSRP``, ``RSRQ``, ``SNR``,
        ``CQI``, ``DL_bitrate``, ``UL_bitrate``; one row per second of every drive.
    """
    rng = np.random.default_rng(seed)
    lat = cells["lat"].cast(pl.Float64).to_numpy()
    lon = cells["lon"].cast(pl.Float64).to_numpy()
    az = cells["azimuth"].cast(pl.Float64).fill_null(0.0).to_numpy()
    bw = (cells["beamwidth"].cast(pl.Float64).fill_null(65.0).to_numpy()
          if "beamwidth" in cells.columns else np.full(len(lat), 65.0))
    ids = cells["cell_id"].cast(pl.String).to_list()
    offset = np.array([(power_offset_db or {}).get(c, 0.0) for c in ids])
    lat0, lon0 = float(np.mean(lat)), float(np.mean(lon))
    kx = _M_PER_DEG * math.cos(math.radians(lat0))
    cx, cy = (lon - lon0) * kx, (lat - lat0) * _M_PER_DEG
    x_lo, x_hi, y_lo, y_hi = cx.min(), cx.max(), cy.min(), cy.max()
    block = 150.0   # street grid spacing, metres
    rows = []
    t0 = dt.datetime.fromisoformat(start)
    headings = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    for k in range(drives):
        x = rng.uniform(x_lo, x_hi)
        y = block * round(rng.uniform(y_lo, y_hi) / block)
        h = int(rng.integers(4))
        since = 0.0
        for sec in range(seconds):
            step = speed_m_s * rng.uniform(0.3, 1.3)
            x += headings[h, 0] * step
            y += headings[h, 1] * step
            since += step
            if since >= block and rng.random() < 0.35:
                h = (h + int(rng.choice([1, 3]))) % 4   # turn left or right at a corner
                since = 0.0
            # stay inside the area: turn back at its edge
            if not (x_lo <= x <= x_hi and y_lo <= y <= y_hi):
                h = (h + 2) % 4
                x = min(max(x, x_lo), x_hi)
                y = min(max(y, y_lo), y_hi)
            rows.append((k, sec, x, y, step))
    arr = np.asarray(rows, dtype=np.float64)
    s_lat = lat0 + arr[:, 3] / _M_PER_DEG
    s_lon = lon0 + arr[:, 2] / kx
    n = len(arr)
    best = np.zeros(n, dtype=np.int64)
    rsrp = np.zeros(n)
    sinr = np.zeros(n)
    chunk = max(1, 2_000_000 // max(len(lat), 1))
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        d = haversine_m(s_lat[a:b, None], s_lon[a:b, None], lat[None, :], lon[None, :])
        theta = bearing_deg(lat[None, :], lon[None, :], s_lat[a:b, None], s_lon[a:b, None])
        off = np.abs((theta - az[None, :] + 180.0) % 360.0 - 180.0)
        pattern = np.where(bw[None, :] >= 360.0, 0.0,
                           -np.minimum(12.0 * (off / np.maximum(bw[None, :], 1.0)) ** 2, 25.0))
        p = (_RSRP_1KM - 37.6 * np.log10(np.maximum(d, 10.0) / 1000.0) + pattern + offset[None, :]
             + rng.normal(0.0, shadow_db, size=d.shape))
        i = np.argmax(p, axis=1)
        best[a:b] = i
        top = p[np.arange(b - a), i]
        lin = np.power(10.0, p / 10.0)
        interf = lin.sum(axis=1) - np.power(10.0, top / 10.0)
        rsrp[a:b] = top
        sinr[a:b] = top - 10.0 * np.log10(interf * 0.5 + np.power(10.0, _NOISE_DBM / 10.0))
    rsrp = np.clip(np.round(rsrp), -140.0, -44.0)
    sinr = np.clip(np.round(sinr), -20.0, 30.0)
    cqi = np.clip(np.round((sinr + 6.0) / 2.0), 0.0, 15.0)
    rsrq = np.clip(np.round(-3.0 - 0.5 * (30.0 - sinr) / 2.0), -20.0, -3.0)
    dl = np.round(np.maximum(0.0, 2000.0 * np.log2(1.0 + np.power(10.0, sinr / 10.0))))
    times = [(t0 + dt.timedelta(hours=int(k), seconds=int(sec))).strftime("%Y.%m.%d_%H.%M.%S")
             for k, sec in zip(arr[:, 0], arr[:, 1], strict=True)]
    return pl.DataFrame({
        "Timestamp": times,
        "Longitude": np.round(s_lon, 6),
        "Latitude": np.round(s_lat, 6),
        "Speed": np.round(arr[:, 4] * 3.6).astype(np.int64),
        "RAWCELLID": [ids[i] for i in best],
        "NetworkMode": ["LTE"] * n,
        "RSRP": rsrp.astype(np.int64),
        "RSRQ": rsrq.astype(np.int64),
        "SNR": sinr,
        "CQI": cqi.astype(np.int64),
        "DL_bitrate": dl.astype(np.int64),
        "UL_bitrate": np.round(dl / 8).astype(np.int64),
    })
