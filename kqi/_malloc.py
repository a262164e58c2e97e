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

pyarrow's own allocator (mimalloc in its wheels) gives a freed chunk's memory back to the kernel
too, and every chunk's columns were faulted in and zeroed afresh: on the 50k city's KPI file
``clear_page`` from mimalloc took about an eighth of the ingest's CPU. Where glibc took the
settings, :func:`keep_freed_memory` also makes the C allocator pyarrow's default
(``ARROW_DEFAULT_MEMORY_POOL=system``, read when pyarrow makes its default pool; a value the user
set is kept): alternated 3 rounds on the 50k KPI ingest, system time 3.0-4.7 s -> 1.3-1.4 s, wall
4.8-5.7 s -> 4.1-4.5 s, peak RSS 2.38 -> 2.20 GB. The variable is inherited by the processes a
run starts (the map's helper), which then use the C allocator with glibc's own settings.

Only the console script does this (:func:`kqi.cli.console`): a library caller's process
(``kqi.run`` from Python) keeps its allocator as it set it. Where the C library is not glibc
(musl, macOS, Windows) nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3

#: free memory at the heap's top kept (bytes); mallopt takes a C int
TRIM_THRESHOLD = 1 << 30
#: extra memory asked of the kernel per heap extension (virtual: pages are faulted as used)
TOP_PAD = 64 << 20
#: blocks from this size are mapped on their own (glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64 bits)
MMAP_THRESHOLD = 32 << 20
#: the environment variable pyarrow reads for its default memory pool
ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


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
    if all(done):
        _arrow_on_malloc()
    return all(done)


def _arrow_on_malloc() -> None:
    """pyarrow's default pool made the C allocator's, unless the user chose one."""
    if ARROW_POOL_VARIABLE in os.environ:
        return
    os.environ[ARROW_POOL_VARIABLE] = "system"
    pa = sys.modules.get("pyarrow")
    if pa is not None:  # imported already: its default pool may be made; set it as well
        pa.set_memory_pool(pa.system_memory_pool())


def _libc_version() -> str:
    """``glibc 2.36`` on glibc, else empty (musl, macOS, Windows: no such name or no confstr)."""
    confstr = getattr(os, "confstr", None)
    if confstr is None:
        return ""
    try:
        return confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return ""
