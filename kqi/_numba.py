"""The one place that decides how numba compiles kqi's kernels.

``fastmath`` keeps ``nnan``/``ninf`` off: KQI data has NaN for missing values and the kernels test
for them. Kernels must accept read-only arrays (zero-copy Arrow buffers are read-only).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable

import numba
import numpy as np
from numba.core import event

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def kernel(fn=None, *, parallel: bool = False, inline: bool = False, exact: bool = False):
    """Decorate a private kernel: ``@njit`` with the project's flags and on-disk caching.

    ``inline``: a small scalar kernel that other kernels call is inlined into them at numba's IR
    level (``inline="always"``) instead of compiled as a function of its own for each caller;
    called from Python it compiles as any kernel.
    ``exact``: IEEE arithmetic as written, without :data:`FASTMATH` (a compensated sum, whose
    correction term is zero to an optimiser that may reassociate).
    """

    def wrap(f):
        return numba.njit(cache=True, nogil=True, fastmath=False if exact else FASTMATH,
                          parallel=parallel, inline="always" if inline else "never")(f)

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


class _YoungOnly(event.Listener):
    """While numba compiles one of kqi's kernels, the cyclic garbage collector looks only at
    objects made since the compile began: what existed before (the imported modules, a run's
    data: millions of objects) is set aside with ``gc.freeze`` and given back at its end.

    A compile makes many objects, so collections run in it; on a first run two full ones
    scanned the whole heap, 0.4-0.5 of 3.1-4.0 CPU-s of compiling the demo city's kernels.
    Nothing is collected that would not be (an object set aside is still freed when its last
    reference goes; only a cycle of them waits for a later collection). Compiles are serialised
    by numba's compiler lock; a nested compile (a kernel's callee) runs inside its caller's. A
    process that has frozen objects itself (``gc.get_freeze_count()``) is left as it is.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def on_start(self, ev: event.Event) -> None:
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        if depth:
            return
        d = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
        module = getattr(getattr(d, "py_func", None), "__module__", "") or ""
        if module.startswith("kqi.") and gc.isenabled() and gc.get_freeze_count() == 0:
            gc.freeze()
            self._local.frozen = True

    def on_end(self, ev: event.Event) -> None:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:  # started before this listener was registered
            return
        self._local.depth = depth - 1
        if depth == 1 and getattr(self._local, "frozen", False):
            self._local.frozen = False
            gc.unfreeze()


event.register("numba:compile", _YoungOnly())


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
