"""Numba kernels behind :mod:`kqi.complaints`: scoring candidate cells of each complaint.

The candidates come from :meth:`kqi.geo.GridIndex.within` as CSR arrays (``starts``, ``idx``,
``dist``, any order within a complaint); the kernel scores each candidate within that cell's reach
and keeps the best. No validation here: the wrapper
:func:`kqi.complaints.link_complaints` builds and checks every array.
"""

from __future__ import annotations

import math

from kqi._geo_kernels import angle_diff_deg, bearing_deg
from kqi._numba import kernel

#: complaint service code meaning "coverage" (no/poor signal): concerns every service
COVERAGE = 3


@kernel(inline=True)
def beam_term(off_deg: float, beamwidth: float) -> float:
    """1 inside the beam (|offset| <= beamwidth/2), falling linearly to 0 one half-beam outside.

    An omni cell (beamwidth >= 360) or an unknown offset (NaN: complaint on the site) scores 1.
    """
    if beamwidth >= 360.0 or math.isnan(off_deg):
        return 1.0
    half = 0.5 * beamwidth
    if off_deg <= half:
        return 1.0
    return max(0.0, 1.0 - (off_deg - half) / half)


@kernel(inline=True)
def link_score(  # noqa: PLR0917 - a numba kernel takes positional scalars
    dist_m: float, radius_m: float, off_deg: float, beamwidth: float, poor: int,
    beam_weight: float, poor_weight: float,
) -> float:
    """Score of one candidate cell: ``(1 - d/radius) + beam_weight*beam + poor_weight*poor``."""
    near = 1.0 - dist_m / radius_m if radius_m > 0.0 else 0.0
    return near + beam_weight * beam_term(off_deg, beamwidth) + poor_weight * poor


@kernel
def link_candidates(  # noqa: PLR0917 - a numba kernel takes positional arrays
    q_lat, q_lon, q_service, starts, cand_idx, cand_dist,
    cell_lat, cell_lon, azimuth, beamwidth, cell_radius, poor, min_bearing_m,
    beam_weight, poor_weight, out_cell, out_dist, out_score,
):
    """Best-scoring candidate cell of every complaint.

    Parameters (all arrays contiguous, read-only is fine)
    ----------
    q_lat, q_lon : float64[nq]
        Complaint positions.
    q_service : int8[nq]
        0..2 = index into ``kqi.schema.SERVICES``, 3 = coverage, -1 = do not link.
    starts, cand_idx, cand_dist : int64[nq+1], int64[m], float64[m]
        CSR candidates per complaint (cell row positions and distances in metres).
    cell_lat, cell_lon, azimuth, beamwidth : float64[ncells]
        Cell positions and antenna direction / horizontal beamwidth (degrees).
    cell_radius : float64[ncells]
        Reach of each cell, metres: farther candidates are ignored, nearer ones score
        ``1 - distance / reach``.
    poor : int8[ncells, 3]
        1 where the cell is poor for the service.
    min_bearing_m : float
        Closer than this to the cell, the bearing is meaningless and every beam scores 1.
    beam_weight, poor_weight : float
        Score weights.
    out_cell, out_dist, out_score : int64[nq], float64[nq], float64[nq]
        Best cell (-1 = none), its distance and score (NaN when none). Ties go to the nearer cell,
        then to the lower row position, so the result does not depend on candidate order.
    """
    nq = q_lat.shape[0]
    for q in range(nq):
        out_cell[q] = -1
        out_dist[q] = math.nan
        out_score[q] = math.nan
        svc = q_service[q]
        if svc < 0:
            continue
        best = -1
        best_s = -math.inf
        best_d = math.inf
        for p in range(starts[q], starts[q + 1]):
            c = cand_idx[p]
            d = cand_dist[p]
            reach = cell_radius[c]
            if d > reach:
                continue
            if d < min_bearing_m:
                off = math.nan
            else:
                b = bearing_deg(cell_lat[c], cell_lon[c], q_lat[q], q_lon[q])
                off = angle_diff_deg(b, azimuth[c])
            if svc == COVERAGE:
                pr = 1 if (poor[c, 0] + poor[c, 1] + poor[c, 2]) > 0 else 0
            else:
                pr = 1 if poor[c, svc] > 0 else 0
            s = link_score(d, reach, off, beamwidth[c], pr, beam_weight, poor_weight)
            if s > best_s or (s == best_s and (d < best_d or (d == best_d and c < best))):
                best = c
                best_s = s
                best_d = d
        if best >= 0:
            out_cell[q] = best
            out_dist[q] = best_d
            out_score[q] = best_s
