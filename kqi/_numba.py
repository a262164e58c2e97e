"""The one place that decides how numba compiles kqi's kernels.

``fastmath`` keeps ``nnan``/``ninf`` off: KQI data has NaN for missing values and the kernels test
for them. Kernels must accept read-only arrays (zero-copy Arrow buffers are read-only).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import numba
import numpy as np
from numba.core import event

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def kernel(fn=None, *, parallel: bool = False, inline: bool = False):
    """Decorate a private kernel: ``@njit`` with the project's flags and on-disk caching.

    ``inline``: a small scalar kernel that other kernels call is inlined into them at numba's IR
    level (``inline="always"``) instead of compiled as a function of its own for each caller;
    called from Python it compiles as any kernel.
    """

    def wrap(f):
        return numba.njit(cache=True, nogil=True, fastmath=FASTMATH, parallel=parallel,
                          inline="always" if inline else "never")(f)

    return wrap(fn) if fn is not None else wrap


class _FirstCompile(event.Listener):
    """Calls ``notify`` once, when numba starts the first compile of the process (a kernel not
    found in numba's on-disk cache); loading a cached kernel fires no such event. It stays
    registered (a no-op) afterwards: numba iterates its listeners while it calls them, and one
    unregistered there would make it skip the next."""

    def __init__(self, notify: Callable[[], None]) -> None:
        self._notify: Callable[[], None] | None = notify
        self._lock = threading.Lock()

    def on_start(self, ev: event.Event) -> None:
        with self._lock:
            notify, self._notify = self._notify, None
        if notify is not None:
            notify()

    def on_end(self, ev: event.Event) -> None:
        pass


def _off(listener: event.Listener) -> None:
    with contextlib.suppress(ValueError):  # already off
        event.unregister("numba:compile", listener)


def on_first_compile(notify: Callable[[], None]) -> Callable[[], None]:
    """Call ``notify()`` once when this process first compiles a kernel (a numba cache miss),
    from the compiling thread, before the compile; returns a function that stops listening."""
    listener = _FirstCompile(notify)
    event.register("numba:compile", listener)
    return lambda: _off(listener)


def read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``: numba compiles a kernel once per read-only flag of its arrays,
    so wrappers pass every input read-only (one specialisation each, less compiling on a first
    run)."""
    v = a.view()
    v.flags.writeable = False
    return v
