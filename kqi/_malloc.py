"""The C allocator of kqi's own process told to keep freed memory for the next chunk.

A run reads its feeds chunk by chunk: each chunk's columns are allocated, converted, counted and
freed, and the next chunk allocates the same sizes again. glibc's ``malloc`` maps a block of 128
KiB or more on its own (a threshold it raises, up to 32 MiB, as such blocks are freed) and
unmaps it when freed, and gives free memory at the top of a heap beyond ``M_TRIM_THRESHOLD``
back to the kernel: the next chunk's pages are then mapped, faulted in and zeroed by the kernel
once more, and on a VM a fresh page is dear. :func:`keep_freed_memory` fixes the threshold from
which a block is mapped on its own at :data:`MMAP_THRESHOLD` (the top of glibc's own range; set
by hand it no longer moves), keeps up to :data:`TRIM_THRESHOLD` of free memory at a heap's top
and extends a heap by :data:`TOP_PAD` more than asked. Freed memory is then reused by the next
chunk instead of being returned and faulted in again. Measured on the 50,000-cell city (1.5 GB
of hourly KPIs, 2-core VM, ``benchmarks/`` and docs/benchmarks.md): the KPI ingest's system time
1.0-5.3 s without, 0.9-1.3 s with, the largest gain on a machine whose memory the host had taken
back (a first run). The process holds what glibc keeps until it ends, which a command line run
does soon after; and polars and pyarrow allocate through their own allocators (jemalloc,
mimalloc), which cannot reuse it, so memory freed by glibc before a large polars allocation can
raise the peak (600 MiB of numpy blocks freed before a 600 MiB polars frame: 1.8 GiB instead of
1.2). Measured on the 50k city's ``kqi run``: peak RSS 4.55 GB without, 4.62 GB with (+1.6 %).
On 32-bit glibc, whose own range ends lower, the 32 MiB threshold is refused (the other two
apply).

Only the console script does this (:func:`kqi.cli.console`): a library caller's process
(``kqi.run`` from Python) keeps its allocator as it set it. Where the C library is not glibc
(musl, macOS, Windows) nothing is changed.
"""

from __future__ import annotations

import ctypes
import os

#: glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3

#: free memory at the heap's top kept (bytes); mallopt takes a C int
TRIM_THRESHOLD = 1 << 30
#: extra memory asked of the kernel per heap extension (virtual: pages are faulted as used)
TOP_PAD = 64 << 20
#: blocks from this size are mapped on their own (glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64 bits)
MMAP_THRESHOLD = 32 << 20


def keep_freed_memory() -> bool:
    """Tell glibc's allocator to keep freed memory (see the module doc); ``True`` when it took
    all three settings, ``False`` where the C library is not glibc or refused one."""
    if "glibc" not in _libc_version():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library (no ldconfig run)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = [mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD))]
    return all(done)


def _libc_version() -> str:
    """``glibc 2.36`` on glibc, else empty (musl, macOS, Windows: no such name or no confstr)."""
    confstr = getattr(os, "confstr", None)
    if confstr is None:
        return ""
    try:
        return confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return ""
