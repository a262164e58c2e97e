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
here, with the helper's traceback as its cause; the warnings it gives are given again here
(under this process's filters) and its log records are handled by this process's loggers (at
this process's level).

The helper reads the requests from its stdin and writes the answers (pickles, each behind a
magic word and its length) to its stdout, both kept on private descriptors: its descriptors 0 and 1
become /dev/null and its stderr, which it shares with the run, so that nothing the helper's
libraries print (from Python or C) can mix with the answers. An answer whose frame is wrong ends
the helper; one that does not unpickle here, or would import a module this process has not
imported (a warning category of scikit-learn's, say), has its call run here. A helper that has
exited, or has made no progress for :data:`STALL_SECONDS` (no CPU time, no byte read or
written, not in an I/O wait) while a call waits for it or while a request is written to it
(stopped, deadlocked), is killed and the call run here. What the helper's start prints on its
stdout before the first answer (a ``sitecustomize``, say) is passed on to this process's stderr.
The helper ignores Ctrl-C (the run's process handles it and then ends the helper) and, on Linux,
is killed by the kernel when the run's process dies; it also checks before every call that the
process that started it is still its parent.
``KQI_HELPER_DEBUG=1`` in the environment makes a helper that fails outside a call print its
traceback on stderr.
:func:`stop` (the command line's end, or this process's exit) ends it. In the helper, pandas is
reported as not installed (scikit-learn and folium import it for nothing a run uses, see
kqi/_prefetch.py; the helper runs nothing else).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import importlib
import importlib.abc
import io
import logging
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from typing import IO, Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: imported by the helper as soon as it starts, before it reads any request
MODULES = ("hdbscan", "kqi.clustering._fit")

#: imported by the helper next, one by one whenever no request waits
LATER = ("kqi.maps.render", "kqi.maps.exports")

#: the third-party packages whose work the helper does: a run's process that has a helper
#: needs not import them (kqi/_prefetch.py leaves them out)
COVERS = ("hdbscan", "folium")

#: not importable in the helper (kqi/_prefetch.py: what scikit-learn imports for nothing)
UNUSED = ("pandas",)

#: an answer's frame: a magic word, then the pickle's length
_HEADER = struct.Struct("<4sQ")
_MAGIC = b"KQI1"

#: a helper that has made no progress for this long (no CPU time, no I/O, not in an I/O wait)
#: while this process waits on it is taken as stuck (stopped, deadlocked): it is killed and the
#: call run here (Linux, where /proc tells; elsewhere the wait ends when the helper exits)
STALL_SECONDS = 30.0

#: the helper's interpreter: Ctrl-C ignored (the run's process handles it, then ends the helper);
#: the requests and the answers moved to descriptors of their own before anything is imported
#: (descriptor 0 becomes /dev/null and 1 a copy of stderr, so that what a library prints, from
#: Python or C, goes to stderr); the parent's sys.path (an editable or source checkout included);
#: then the serving loop. A helper that cannot import kqi or fails outside a call exits without
#: a traceback (the run's process then runs everything itself) unless KQI_HELPER_DEBUG is set.
_BOOT = """\
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
requests, answers = os.dup(0), os.dup(1)
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
os.dup2(2, 1)
sys.stdout = sys.stderr
sys.path[:] = {path!r}
try:
    from kqi._sidecar import _serve
    _serve({parent}, requests, answers)
except BaseException:
    if os.environ.get("KQI_HELPER_DEBUG"):
        import traceback
        traceback.print_exc()
    sys.exit(1)
"""


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


class _RemoteTracebackError(Exception):
    """The traceback of an exception raised in the helper (set as the cause of the exception
    raised here, as :mod:`concurrent.futures` does for its worker processes)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\"\"\"\n(in kqi's helper process)\n{self.text}\"\"\""


def _framed(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(_MAGIC, len(data)) + data


def _write(stream: IO[bytes], obj: Any) -> None:
    stream.write(_framed(obj))
    stream.flush()


def _frame_size(head: bytes) -> int:
    magic, n = _HEADER.unpack(head)
    if magic != _MAGIC:
        raise ValueError("not an answer of kqi's helper")
    return int(n)


def _read_frame(stream: IO[bytes]) -> bytes:
    """The next frame's pickle, read from a blocking stream; EOFError at its end."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    n = _frame_size(head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return bytes(data)


class _Known(pickle.Unpickler):
    """Unpickles only what refers to modules this process has already imported: an answer
    must not make the run's process import scikit-learn or folium (say) that it left to the
    helper (a submodule of a package imported here counts as not imported: its package's
    ``__init__`` may import much more)."""

    def find_class(self, module: str, name: str) -> Any:
        if module not in sys.modules:
            raise pickle.UnpicklingError(f"{module} is not imported here")
        return super().find_class(module, name)


def _activity(pid: int) -> tuple[bytes, tuple[Any, ...]] | None:
    """The process's state letter, and what changes while it works: user + system CPU clock
    ticks and the bytes it has read and written (Linux); None where /proc does not tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        state, ticks = fields[0], int(fields[11]) + int(fields[12])  # fields 3, 14 and 15
    except (OSError, ValueError, IndexError):
        return None
    io_counts: tuple[bytes, ...] = ()
    with contextlib.suppress(OSError), open(f"/proc/{pid}/io", "rb") as f:
        io_counts = tuple(ln for ln in f if ln.startswith((b"rchar", b"wchar")))
    return state, (ticks, io_counts)


class _Watch:
    """Whether the helper still makes progress while this process waits on it (for an answer,
    or to take a request): :meth:`check` raises TimeoutError after :data:`STALL_SECONDS`
    without CPU time, I/O or an I/O wait ("D": a slow disk, a network file system)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        seen = _activity(pid)
        self.seen = None if seen is None else seen[1]
        self.since = time.monotonic()

    def moved(self) -> None:
        """Bytes came from or went to the helper."""
        self.since = time.monotonic()

    def check(self) -> None:
        now = _activity(self.pid)
        if now is None:  # cannot tell: the wait ends when the helper exits
            return
        state, work = now
        if work != self.seen or state == b"D":
            self.seen, self.since = work, time.monotonic()
        elif time.monotonic() - self.since > STALL_SECONDS:
            raise TimeoutError(f"kqi's helper made no progress for {STALL_SECONDS:g} s")


def _ready(proc: subprocess.Popen[bytes], fd: int, watch: _Watch, *, write: bool) -> None:
    """Wait until the pipe ``fd`` to (``write``) or from the helper can be used; raises
    EOFError when the helper has exited (and, reading, nothing it wrote is left), TimeoutError
    when it is stuck (:class:`_Watch`)."""
    want = ([], [fd]) if write else ([fd], [])
    while True:
        readable, writable, _ = select.select(*want, [], 1.0)
        if readable or writable:
            return
        if proc.poll() is not None and not any(select.select(*want, [], 0)[:2]):
            raise EOFError("kqi's helper exited")
        watch.check()


#: what an answer that cannot be used here becomes: the call is run here
_HERE: tuple[Any, ...] = ("here", None, [], [], None)


class Helper:
    """The helper process, seen from the run's process. Requests are answered in the order
    they were sent; an answer is kept on its :class:`Pending` until collected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: collections.deque[Pending] = collections.deque()  # not answered yet
        self._buf = bytearray()  # what has been read of the answers and not yet taken
        self._synced = False  # whether the first answer's frame was found
        boot = _BOOT.format(path=[p for p in sys.path if isinstance(p, str)], parent=os.getpid())
        # on POSIX the requests are written to, and the answers read from, the pipes' descriptors
        # (never through proc.stdin's and proc.stdout's buffers): see _put and _frame
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-c", boot], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None)
        if os.name == "posix" and self._proc.stdin is not None:
            os.set_blocking(self._proc.stdin.fileno(), False)

    def send(self, pending: Pending) -> bool:
        """Send ``pending``'s call; False when its arguments do not pickle (it is then run
        here); raises :class:`_GoneError` when the helper cannot take it."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None:
                raise _GoneError
            level = logging.getLogger().getEffectiveLevel()
            try:
                data = _framed((*_where(pending.fn), pending.args, pending.kwargs, level))
            except Exception:  # an argument that does not pickle
                return False
            try:
                self._put(proc, data)
            except Exception as exc:  # a broken pipe, a stuck helper
                self._close()
                raise _GoneError from exc
            except BaseException:  # Ctrl-C half-way through a request: the stream is broken
                self._close()
                raise
            self._sent.append(pending)
            return True

    def _put(self, proc: subprocess.Popen[bytes], data: bytes) -> None:
        """Write a request as the helper takes it; raises EOFError or BrokenPipeError when it
        has exited, TimeoutError when it is stuck (:func:`_ready`)."""
        assert proc.stdin is not None
        if os.name != "posix":
            proc.stdin.write(data)
            proc.stdin.flush()
            return
        fd, view, watch = proc.stdin.fileno(), memoryview(data), _Watch(proc.pid)
        while view:
            _ready(proc, fd, watch, write=True)
            try:
                view = view[os.write(fd, view[:1 << 20]):]
            except BlockingIOError:
                continue
            watch.moved()

    def wait(self, pending: Pending) -> tuple[Any, ...]:
        """``pending``'s answer (reading those of the calls sent before it on the way);
        raises :class:`_GoneError` when the helper ended, or got stuck, before it answered."""
        with self._lock:
            try:
                while pending.answer is None:
                    proc = self._proc
                    if proc is None or proc.stdout is None or not self._sent:
                        raise _GoneError
                    try:
                        data = self._frame(proc)
                    except Exception as exc:  # the helper ended or is stuck; a broken frame
                        raise _GoneError from exc
                    target = self._sent.popleft()
                    try:
                        target.answer = _Known(io.BytesIO(data)).load()
                    except Exception:  # does not unpickle here: the call is run here
                        target.answer = _HERE
            except BaseException:
                # the helper gone, or this process interrupted (Ctrl-C) half-way through an
                # answer: the stream can no longer be trusted to match the calls
                self._close()
                raise
            return pending.answer

    def _frame(self, proc: subprocess.Popen[bytes]) -> bytes:
        """The next answer's pickle, read from the helper's stdout as it comes; raises
        EOFError when the helper ends first, TimeoutError when it is stuck (:func:`_ready`)."""
        assert proc.stdout is not None
        if os.name != "posix":  # no select() on pipes: a blocking read
            return _read_frame(proc.stdout)
        fd, buf, watch = proc.stdout.fileno(), self._buf, _Watch(proc.pid)
        while True:
            if not self._synced:
                self._skip_to_magic()
            if len(buf) >= _HEADER.size:
                end = _HEADER.size + _frame_size(bytes(buf[:_HEADER.size]))
                if len(buf) >= end:
                    with memoryview(buf) as view:
                        data = bytes(view[_HEADER.size:end])
                    del buf[:end]
                    self._synced = True
                    return data
            _ready(proc, fd, watch, write=False)
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise EOFError
            buf += chunk
            watch.moved()

    def _skip_to_magic(self) -> None:
        """Before the first answer: what the helper's start printed on its stdout (before its
        descriptors were moved: a ``sitecustomize``, a ``.pth`` hook) goes to this process's
        stderr, up to the first answer's magic word."""
        buf = self._buf
        at = buf.find(_MAGIC)
        cut = at if at >= 0 else max(0, len(buf) - len(_MAGIC) + 1)
        if cut:
            with contextlib.suppress(Exception):
                sys.stderr.write(bytes(buf[:cut]).decode(errors="replace"))
                sys.stderr.flush()
            del buf[:cut]

    def _close(self) -> None:
        proc, self._proc = self._proc, None
        self._sent.clear()
        self._buf.clear()
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
    except (OSError, ValueError, TypeError):  # no interpreter to start (an embedded Python,
        # sys.executable empty or None)
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
        self.answer: tuple[Any, ...] | None = None

    def result(self) -> Any:
        """The function's result, or its exception raised here; run here when the helper is
        gone or its result does not pickle."""
        helper, self.helper = self.helper, None
        if helper is not None:
            try:
                status, value, caught, records, remote_tb = helper.wait(self)
            except _GoneError:
                _gone(helper)
            else:
                for message, categories, filename, lineno, module in caught:
                    warnings.warn_explicit(message, _category(categories), filename, lineno,
                                           module=module,
                                           registry=_registries.setdefault(module, {}))
                for rec in records:
                    logging.getLogger(rec["name"]).handle(logging.makeLogRecord(rec))
                if status == "ok":
                    return value
                if status == "error":
                    if remote_tb:
                        value.__cause__ = _RemoteTracebackError(remote_tb)
                    raise value
                # "here": the result did not pickle there or does not unpickle here
        return self.fn(*self.args, **self.kwargs)

    def discard(self) -> None:
        """Wait until the helper has finished the call (its files written, say) and drop its
        answer; nothing when it was collected or never sent."""
        helper, self.helper = self.helper, None
        if helper is not None:
            try:
                helper.wait(self)
            except _GoneError:
                _gone(helper)


#: the warning registries of the helper's warnings, by module (as each module's
#: ``__warningregistry__`` is for its own): "default" and "module" filters show one once
_registries: dict[str, dict[Any, Any]] = {}


def _category(names: list[tuple[str, str]]) -> type[Warning]:
    """The first of a warning category's classes (its own, then its bases) that this process has
    already imported: scikit-learn's warnings do not make this process import scikit-learn."""
    for module, qualname in names:
        obj: Any = sys.modules.get(module)
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, type) and issubclass(obj, Warning):
            return obj
    return UserWarning


def submit(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Pending:
    """Start ``fn(*args, **kwargs)`` in the helper when one runs; :meth:`Pending.result` gives
    its result (run here when there is no helper, or it failed)."""
    pending = Pending(fn, args, kwargs)
    helper = _helper[0] if _helper else None
    if helper is not None:
        try:
            if helper.send(pending):
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
        d = {k: v if _pickles(v) else repr(v) for k, v in record.__dict__.items()}
        if record.exc_info and not record.exc_text:  # the traceback, as text
            d["exc_text"] = logging.Formatter().formatException(record.exc_info)
        d["msg"], d["args"], d["exc_info"] = record.getMessage(), None, None
        self.records.append(d)


def _pickles(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    try:
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return False
    return True


#: module names by file, as found by :func:`_module_of`
_modules_by_file: dict[str, str] = {}


def _module_of(filename: str) -> str:
    """The name of the module imported from ``filename`` (what a warning's ``module`` is)."""
    if filename not in _modules_by_file:
        for name, mod in list(sys.modules.items()):
            if getattr(mod, "__file__", None) == filename:
                _modules_by_file[filename] = name
                break
        else:
            return filename[:-3] if filename.endswith(".py") else filename or "<unknown>"
    return _modules_by_file[filename]


def _warning(w: warnings.WarningMessage) -> tuple[Any, ...]:
    categories = [(c.__module__, c.__qualname__) for c in w.category.__mro__
                  if issubclass(c, Warning)]
    return str(w.message), categories, w.filename, w.lineno, _module_of(w.filename)


def _run_one(request: tuple[Any, ...]) -> tuple[Any, ...]:
    module, qualname, args, kwargs, level = request
    remote_tb = None
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
                remote_tb = "".join(traceback.format_exception(exc))
    finally:
        root.removeHandler(keep)
    return status, value, [_warning(w) for w in caught], keep.records, remote_tb


def _import(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # the call reports it
            return


def _receive(inp: IO[bytes], requests: queue.SimpleQueue[bytes | None]) -> None:
    """Read every request's frame as it comes (so that the run's process never waits to send
    one while an earlier one runs); None at the end of the input. The frames are unpickled by
    the serving loop: unpickling imports (polars, for a table), and only that thread imports."""
    try:
        while True:
            requests.put(_read_frame(inp))
    except Exception:  # the end of the input (the run's process ended or stopped the helper)
        requests.put(None)


def _die_with(parent: int) -> bool:
    """Ask the kernel to kill this process when the one that started it dies (Linux; it fires
    when the thread that started the helper ends: the command line's main thread); whether that
    process is still the parent."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    return os.getppid() == parent


def _serve(parent: int, requests_fd: int, answers_fd: int) -> None:
    """The helper's loop: import :data:`MODULES`, then answer the requests (read from
    ``requests_fd``, answered on ``answers_fd``: _BOOT moved them there) in order until the
    input ends or ``parent`` is no longer this process's parent, importing the next module of
    :data:`LATER` whenever no request waits.

    Every import happens in this thread: Python's import locks do not make imports in two
    threads safe where packages import each other (polars imported by a request's unpickling
    while a thread imported kqi.maps.render, which imports polars too, failed now and then
    with "cannot import name 'DataFrame' from partially initialized module")."""
    if not _die_with(parent):
        return
    inp, out = os.fdopen(requests_fd, "rb"), os.fdopen(answers_fd, "wb")
    sys.meta_path.insert(0, _Hidden())
    requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    threading.Thread(target=_receive, args=(inp, requests), daemon=True).start()
    _import(MODULES)
    later = list(LATER)
    while True:
        try:
            frame = requests.get(block=not later)
        except queue.Empty:  # nothing to answer: on with the imports the later calls need
            _import((later.pop(0),))
            continue
        if frame is None:
            return
        if os.getppid() != parent:  # orphaned: nobody waits for the answer
            return
        try:
            request = pickle.loads(frame)
        except Exception:  # a request that does not unpickle here: the run's process runs it
            answer = _HERE
        else:
            answer = _run_one(request)
        try:
            _write(out, answer)
        except OSError:
            return
        except Exception:  # an answer that does not pickle: the run's process runs it
            _write(out, _HERE)
