"""The one place that decides how numba compiles kqi's kernels.

``fastmath`` keeps ``nnan``/``ninf`` off: KQI data has NaN for missing values and the kernels test
for them. Kernels must accept read-only arrays (zero-copy Arrow buffers are read-only).
"""

from __future__ import annotations

import numba

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def kernel(fn=None, *, parallel: bool = False):
    """Decorate a private kernel: ``@njit`` with the project's flags and on-disk caching."""

    def wrap(f):
        return numba.njit(cache=True, nogil=True, fastmath=FASTMATH, parallel=parallel)(f)

    return wrap(fn) if fn is not None else wrap
