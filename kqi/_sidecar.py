"""A helper process for the heaviest imports of a run: hdbscan (with scikit-learn and
scipy.stats) and folium, and the work that needs them.

``import hdbscan`` costs about 1.1-1.6 CPU-s (scikit-learn imports scipy.stats, model selection,
linear models ...) and folium about 0.25-0.4, all of it holding the interpreter lock: imported by
a thread of the run's own process (kqi/_prefetch.py) they slow the main thread by as much. The
command line (``kqi run``, ``kqi demo``) therefore starts this helper process as its first act
(:func:`start`): a fresh interpreter that imports them on the other core while the run imports
polars, numba and pyarrow and reads the feeds, then waits for work. The run's clustering calls
and its map and exports (functions marked :func:`remote`, sent with :func:`call` or
:func:`submit`) are pickled there (arrays of a few thousand rows, the tables the map draws) and
their results pickled back: the same code on the same inputs, the same outputs. The map and the
exports are submitted before the tables and the workbook are written and collected after, so
they are drawn on the other core meanwhile.

Nothing depends on the helper: when none was started (a library caller's process, ``kqi.run``
from Python), or it cannot start, dies or answers something that does not unpickle, the function
runs in this process, as without it. An exception raised by the function in the helper is raised
here; the warnings it gives are given again here (under this process's filters) and its log
records are handled by this process's loggers (at this process's level).

The helper's stdout carries the answers (length-prefixed pickles); anything else it prints goes
to stderr, which it shares with the run. :func:`stop` (the command line's end, or this
process's exit) ends it. In the helper, pandas is reported as not installed (scikit-learn and folium
import it for nothing a run uses, see kqi/_prefetch.py; the helper runs nothing else).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import importlib
import importlib.abc
import logging
import pickle
import queue
import struct
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from typing import IO, Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: imported by the helper as soon as it starts, before it reads any request
MODULES = ("hdbscan",)

#: imported by the helper next, in a thread, while it answers the requests that come
LATER = ("kqi.maps.render", "kqi.maps.exports")

#: the third-party packages whose work the helper does: a run's process that has a helper
#: needs not import them (kqi/_prefetch.py leaves them out)
COVERS = ("hdbscan", "folium")

#: not importable in the helper (kqi/_prefetch.py: what scikit-learn imports for nothing)
UNUSED = ("pandas",)

_HEADER = struct.Struct("<Q")

#: the helper's interpreter: the parent's sys.path (an editable or source checkout included),
#: then the serving loop
_BOOT = "import sys; sys.path[:] = {path!r}; from kqi._sidecar import _serve; _serve()"


def remote(fn: F) -> F:
    """Mark ``fn`` (a module-level function of kqi's whose arguments and result pickle) as one
    the helper may run."""
    fn._kqi_remote = True  # type: ignore[attr-defined]
    return fn


class by_name:  # noqa: N801  (used as a function)
    """``module.qualname``, a function marked :func:`remote`, named without importing it here:
    the helper imports it; called here (no helper), it imports its module then."""

    def __init__(self, module: str, qualname: str) -> None:
        self.module, self.qualname = module, qualname

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(self.module), self.qualname)(*args, **kwargs)


def _where(fn: Callable[..., Any]) -> tuple[str, str]:
    if isinstance(fn, by_name):
        return fn.module, fn.qualname
    return fn.__module__, fn.__qualname__


class _GoneError(Exception):
    """The helper cannot be used (not started, exited, broken pipe)."""


def _write(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    (n,) = _HEADER.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


class Helper:
    """The helper process, seen from the run's process. Requests are answered in the order
    they were sent; an answer is kept on its :class:`Pending` until collected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: collections.deque[Pending] = collections.deque()  # not answered yet
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-c", _BOOT.format(path=[p for p in sys.path if isinstance(p, str)])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None)

    def send(self, pending: Pending) -> None:
        """Send ``pending``'s call; raises :class:`_GoneError` when the helper cannot take it."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None:
                raise _GoneError
            level = logging.getLogger().getEffectiveLevel()
            try:
                _write(proc.stdin, (*_where(pending.fn), pending.args, pending.kwargs, level))
            except Exception as exc:  # a broken pipe; an argument that does not pickle
                self._close()
                raise _GoneError from exc
            self._sent.append(pending)

    def wait(self, pending: Pending) -> tuple[str, Any, list[Any], list[dict[str, Any]]]:
        """``pending``'s answer (reading those of the calls sent before it on the way);
        raises :class:`_GoneError` when the helper ended before it answered."""
        with self._lock:
            while pending.answer is None:
                proc = self._proc
                if proc is None or proc.stdout is None or not self._sent:
                    raise _GoneError
                try:
                    answer = _read(proc.stdout)
                except Exception as exc:  # the helper ended; an answer that does not
                    # unpickle here
                    self._close()
                    raise _GoneError from exc
                self._sent.popleft().answer = answer
            return pending.answer

    def _close(self) -> None:
        proc, self._proc = self._proc, None
        self._sent.clear()
        if proc is None:
            return
        # every call was answered or abandoned: nothing the helper does now is needed (an
        # interrupted atomic write leaves a temporary file only, in a staging folder); killed
        # rather than left to tear its interpreter down, and waited for (its CPU time is the
        # run's)
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def close(self) -> None:
        with self._lock:
            self._close()


#: the process's helper, once started and while it works (a list: no global statement)
_helper: list[Helper] = []


def start() -> None:
    """Start the helper (once a process); nothing happens when it cannot start."""
    if _helper:
        return
    try:
        _helper.append(Helper())
    except (OSError, ValueError):  # no interpreter to start (an embedded Python)
        return
    atexit.register(stop)


def stop() -> None:
    """End the helper (the process then runs every function itself)."""
    while _helper:
        _helper.pop().close()


def active() -> bool:
    """Whether a helper was started and has not failed."""
    return bool(_helper)


def _gone(helper: Helper) -> None:
    if helper in _helper:
        _helper.remove(helper)  # of no more use: everything runs here from now on


class Pending:
    """A call sent to the helper (or, without one, to be run here): :meth:`result`."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.helper: Helper | None = None
        self.answer: tuple[str, Any, list[Any], list[dict[str, Any]]] | None = None

    def result(self) -> Any:
        """The function's result, or its exception raised here; run here when the helper is
        gone or its result does not pickle."""
        helper, self.helper = self.helper, None
        if helper is not None:
            try:
                status, value, caught, records = helper.wait(self)
            except _GoneError:
                _gone(helper)
            else:
                for message, category, filename, lineno in caught:
                    warnings.warn_explicit(message, category, filename, lineno)
                for rec in records:
                    logging.getLogger(rec["name"]).handle(logging.makeLogRecord(rec))
                if status == "ok":
                    return value
                if status == "error":
                    raise value
                # "here": the result did not pickle
        return self.fn(*self.args, **self.kwargs)


    def discard(self) -> None:
        """Wait until the helper has finished the call (its files written, say) and drop its
        answer; nothing when it was collected or never sent."""
        helper, self.helper = self.helper, None
        if helper is not None:
            with contextlib.suppress(_GoneError):
                helper.wait(self)


def submit(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Pending:
    """Start ``fn(*args, **kwargs)`` in the helper when one runs; :meth:`Pending.result` gives
    its result (run here when there is no helper, or it failed)."""
    pending = Pending(fn, args, kwargs)
    helper = _helper[0] if _helper else None
    if helper is not None:
        try:
            helper.send(pending)
            pending.helper = helper
        except _GoneError:
            _gone(helper)
    return pending


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``: in the helper when one runs, else (or when it fails) here."""
    return submit(fn, *args, **kwargs).result()


class _Hidden(importlib.abc.MetaPathFinder):
    """Reports the top-level packages of :data:`UNUSED` (and their submodules) as not
    installed, in the whole helper process."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] in UNUSED:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


class _Records(logging.Handler):
    """Keeps the log records of a request, to be handled by the run's process."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        d = dict(record.__dict__)
        d["msg"], d["args"], d["exc_info"] = record.getMessage(), None, None
        self.records.append(d)


def _run_one(request: tuple[Any, ...]) -> tuple[str, Any, list[Any], list[dict[str, Any]]]:
    module, qualname, args, kwargs, level = request
    root = logging.getLogger()
    keep = _Records()
    root.setLevel(level)
    root.addHandler(keep)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # the run's filters decide what is shown
            try:
                fn = getattr(importlib.import_module(module), qualname)
                if not getattr(fn, "_kqi_remote", False):
                    raise TypeError(f"{module}.{qualname} is not run by kqi's helper process")
                status, value = "ok", fn(*args, **kwargs)
            except Exception as exc:
                status, value = "error", exc
    finally:
        root.removeHandler(keep)
    return status, value, [(str(w.message), w.category, w.filename, w.lineno)
                           for w in caught], keep.records


def _import(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # the call reports it
            return


def _receive(inp: IO[bytes], requests: queue.SimpleQueue[Any]) -> None:
    """Read every request as it comes (so that the run's process never waits to send one while
    an earlier one runs); None at the end of the input."""
    try:
        while True:
            requests.put(_read(inp))
    except Exception:  # the end of the input (the run's process ended or stopped the helper)
        requests.put(None)


def _serve() -> None:
    """The helper's loop: import :data:`MODULES` (then :data:`LATER` in a thread), and answer
    the requests in order until the input ends."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stdout carries the answers only
    sys.meta_path.insert(0, _Hidden())
    requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
    threading.Thread(target=_receive, args=(inp, requests), daemon=True).start()
    _import(MODULES)
    threading.Thread(target=_import, args=(LATER,), daemon=True).start()
    while (request := requests.get()) is not None:
        answer = _run_one(request)
        try:
            _write(out, answer)
        except OSError:
            return
        except Exception:  # an answer that does not pickle: the run's process runs it
            _write(out, ("here", None, [], []))
