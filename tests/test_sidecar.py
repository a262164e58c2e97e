"""kqi's helper process (kqi/_sidecar.py): functions marked remote run there when the command line
started one, give what they give here (results, exceptions, warnings, log records), and run here
whenever the helper is not there or fails; a command-line run with the helper writes the same
bytes as a library run without it, and its own process imports neither hdbscan nor folium."""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from kqi.clustering import signature_clusters, spatial_clusters

from kqi import _sidecar
from kqi.synth import make_city

log = logging.getLogger("kqi.test_sidecar")


@_sidecar.remote
def _pid(x: int = 0) -> tuple[int, int]:
    return os.getpid(), x


@_sidecar.remote
def _pid_later(parent: int, x: int) -> tuple[int, int]:
    if os.getpid() != parent:  # in the helper: slow enough to be killed before it answers
        time.sleep(30.0)
    return os.getpid(), x


@_sidecar.remote
def _boom(n: int) -> None:
    raise ValueError(f"boom {n}")


@_sidecar.remote
def _noisy(n: int) -> int:
    warnings.warn(f"careful {n}", UserWarning, stacklevel=1)
    log.warning("logged %d", n)
    log.debug("not shown at the run's level")
    return n


@_sidecar.remote
def _unpicklable() -> tuple[int, object]:
    return os.getpid(), lambda: None


@_sidecar.remote
def _write_after(path: Path, delay: float) -> Path:
    time.sleep(delay)
    path.write_text("done", encoding="utf-8")
    return path


@_sidecar.remote
def _prints(x: int) -> tuple[int, int]:
    print("printed to sys.stdout")  # what a chatty library does
    os.write(1, b"written to descriptor 1\n")  # as a C library's printf does
    return os.getpid(), x


@_sidecar.remote
def _logs_an_exception() -> int:
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        log.exception("while dividing")
    return os.getpid()


@_sidecar.remote
def _foreign(module: str, what: str) -> tuple[int, object]:
    mod = importlib.import_module(module)
    if what == "warning":
        warnings.warn("from a module this process has not imported", mod.ForeignWarning,
                      stacklevel=1)
        return os.getpid(), None
    return os.getpid(), mod.Foreign()


@_sidecar.remote
def _input_error(line: int) -> None:
    from kqi.errors import InputError

    raise InputError(f"pid-{os.getpid()}.csv", "bad value", line=line, column="rsrp")


@_sidecar.remote
def _size(x: np.ndarray) -> tuple[int, int]:
    return os.getpid(), int(x.size)


@_sidecar.remote
def _slow_io(folder: Path, seconds: float) -> int:
    """Little CPU, but bytes written all along (a slow disk's pace)."""
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        (folder / f"part-{i % 4}.txt").write_text("x" * 4096, encoding="utf-8")
        time.sleep(0.1)
        i += 1
    return os.getpid()


@_sidecar.remote
def _import_threads(table: object) -> tuple[int, int, bool]:
    """The threads that have imported a module in this process so far (the audit hook _AUDIT
    puts in the helper's start), and whether the helper has imported its later modules."""
    import builtins

    seen = builtins._kqi_import_threads  # type: ignore[attr-defined]
    return os.getpid(), len(seen), all(m in sys.modules for m in _sidecar.LATER)


#: put before the helper's boot: every import the helper makes notes the thread that makes it
_AUDIT = """\
import builtins, sys, threading
builtins._kqi_import_threads = set()
def _kqi_audit(event, args, seen=builtins._kqi_import_threads, ident=threading.get_ident):
    if event == "import":
        seen.add(ident())
sys.addaudithook(_kqi_audit)
"""


def _not_marked() -> int:
    return os.getpid()


@contextlib.contextmanager
def _stopped(pid: int) -> Iterator[None]:
    """The process stopped (SIGSTOP) inside the block, continued after it."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGCONT)


@pytest.fixture
def helper() -> Iterator[None]:
    assert not _sidecar.active()
    _sidecar.start()
    assert _sidecar.active()
    try:
        yield
    finally:
        _sidecar.stop()
    assert not _sidecar.active()


def test_without_a_helper_everything_runs_here() -> None:
    assert not _sidecar.active()
    assert _sidecar.call(_pid, 4) == (os.getpid(), 4)
    pending = _sidecar.submit(_pid, x=5)
    assert pending.result() == (os.getpid(), 5)


@pytest.mark.usefixtures("helper")
def test_a_remote_function_runs_in_the_helper() -> None:
    pid, x = _sidecar.call(_pid, 7)
    assert x == 7
    assert pid != os.getpid()
    assert _sidecar.call(_pid, x=8) == (pid, 8)  # the same helper every time


@pytest.mark.usefixtures("helper")
def test_answers_reach_their_own_calls_in_any_order() -> None:
    first, second = _sidecar.submit(_pid, 1), _sidecar.submit(_pid, 2)
    assert second.result()[1] == 2
    assert first.result()[1] == 1
    _sidecar.submit(_pid, 3)  # never collected: the next call still gets its own answer
    assert _sidecar.call(_pid, 4)[1] == 4


@pytest.mark.usefixtures("helper")
def test_a_discarded_call_is_finished_first(tmp_path: Path) -> None:
    target = tmp_path / "late.txt"
    pending = _sidecar.submit(_write_after, target, 0.5)
    pending.discard()   # as a failed stage does before its staging folder is removed
    assert target.read_text(encoding="utf-8") == "done"
    pending.discard()   # once is enough
    local = _sidecar.Pending(_write_after, (tmp_path / "never.txt", 0.0), {})
    local.discard()     # never sent: nothing runs
    assert not (tmp_path / "never.txt").exists()


@pytest.mark.usefixtures("helper")
def test_an_exception_in_the_helper_is_raised_here() -> None:
    with pytest.raises(ValueError, match="boom 3"):
        _sidecar.call(_boom, 3)
    assert _sidecar.active()  # the helper still serves
    assert _sidecar.call(_pid)[0] != os.getpid()


@pytest.mark.usefixtures("helper")
def test_an_exception_carries_the_helpers_traceback() -> None:
    with pytest.raises(ValueError, match="boom 4") as caught:
        _sidecar.call(_boom, 4)
    cause = caught.value.__cause__
    assert isinstance(cause, _sidecar._RemoteTracebackError)
    assert "in _boom" in cause.text
    assert 'raise ValueError(f"boom {n}")' in cause.text
    assert "kqi's helper process" in str(cause)


def test_what_the_helpers_libraries_print_does_not_mix_with_the_answers(
        capfd: pytest.CaptureFixture[str]) -> None:
    _sidecar.start()  # after capfd: the helper's stderr is the captured one
    try:
        first = _sidecar.call(_prints, 1)
        assert first[0] != os.getpid()
        assert _sidecar.call(_prints, 2) == (first[0], 2)  # the same helper: nothing broke
        assert _sidecar.active()
    finally:
        _sidecar.stop()
    err = capfd.readouterr().err
    assert "printed to sys.stdout" in err
    assert "written to descriptor 1" in err


@pytest.mark.usefixtures("helper")
def test_a_log_records_traceback_is_given_here(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert _sidecar.call(_logs_an_exception) != os.getpid()
    (rec,) = [r for r in caplog.records if r.name == log.name]
    assert rec.getMessage() == "while dividing"
    assert rec.exc_text is not None
    assert "ZeroDivisionError" in rec.exc_text


@pytest.mark.usefixtures("helper")
def test_the_run_filters_the_helpers_warnings_by_module() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", module=__name__)
        assert _sidecar.call(_noisy, 3) == 3
    assert seen == []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert _sidecar.call(_noisy, 4) == 4
    assert [(str(w.message), w.filename) for w in seen] == [("careful 4", __file__)]


def test_an_answer_never_imports_a_module_here(tmp_path: Path, monkeypatch) -> None:
    name = f"kqi_test_foreign_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        class ForeignWarning(UserWarning):
            pass

        class Foreign:
            pass
    """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))  # the helper starts with this sys.path
    _sidecar.start()
    try:
        with pytest.warns(UserWarning, match="has not imported") as seen:
            pid, _ = _sidecar.call(_foreign, name, "warning")
        assert pid != os.getpid()
        assert [w.category for w in seen] == [UserWarning]  # its nearest class known here
        assert name not in sys.modules
        pid, obj = _sidecar.call(_foreign, name, "object")  # would import it: run here
        assert pid == os.getpid()
        assert type(obj).__module__ == name
        assert _sidecar.active()
    finally:
        _sidecar.stop()
        sys.modules.pop(name, None)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="the helper's CPU time is read from /proc")
@pytest.mark.usefixtures("helper")
def test_a_stuck_helper_is_killed_and_the_work_done_here(monkeypatch) -> None:
    monkeypatch.setattr(_sidecar, "STALL_SECONDS", 1.5)
    assert _sidecar.call(_pid)[0] != os.getpid()
    helper = _sidecar._helper[0]
    assert helper._proc is not None
    proc = helper._proc
    with _stopped(proc.pid):  # it will never answer
        t0 = time.monotonic()
        assert _sidecar.call(_pid, 11) == (os.getpid(), 11)
        assert time.monotonic() - t0 < 30.0
    assert proc.poll() is not None  # killed, and waited for
    assert not _sidecar.active()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="the helper's CPU time is read from /proc")
@pytest.mark.usefixtures("helper")
def test_a_request_to_a_stuck_helper_is_not_waited_for_forever(monkeypatch) -> None:
    monkeypatch.setattr(_sidecar, "STALL_SECONDS", 1.5)
    assert _sidecar.call(_pid)[0] != os.getpid()
    proc = _sidecar._helper[0]._proc
    assert proc is not None
    with _stopped(proc.pid):  # it cannot take a request bigger than the pipe
        big = np.zeros(2_000_000)  # 16 MB
        assert _sidecar.call(_size, big) == (os.getpid(), big.size)
    assert proc.poll() is not None
    assert not _sidecar.active()


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="the helper's I/O is read from /proc")
@pytest.mark.usefixtures("helper")
def test_a_helper_busy_with_io_is_not_taken_as_stuck(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_sidecar, "STALL_SECONDS", 1.0)
    pid = _sidecar.call(_pid)[0]
    assert _sidecar.call(_slow_io, tmp_path, 3.0) == pid
    assert _sidecar.active()


@pytest.mark.usefixtures("helper")
def test_an_interrupt_while_an_answer_is_read_never_mixes_up_answers(monkeypatch) -> None:
    first, second = _sidecar.submit(_pid, 1), _sidecar.submit(_pid, 2)
    real = _sidecar._Known.load

    def interrupted(self):  # Ctrl-C while the first answer is unpickled
        monkeypatch.setattr(_sidecar._Known, "load", real)
        raise KeyboardInterrupt

    monkeypatch.setattr(_sidecar._Known, "load", interrupted)
    with pytest.raises(KeyboardInterrupt):
        first.result()
    # the helper is ended; the other call is run here, with its own arguments
    assert second.result() == (os.getpid(), 2)
    assert not _sidecar.active()


@pytest.mark.usefixtures("helper")
def test_an_interrupt_while_a_request_is_written_is_not_swallowed(monkeypatch) -> None:
    assert _sidecar.call(_pid)[0] != os.getpid()

    def interrupted(self, proc, data):  # Ctrl-C half-way through a request
        raise KeyboardInterrupt

    monkeypatch.setattr(_sidecar.Helper, "_put", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _sidecar.submit(_pid, 3)
    monkeypatch.undo()
    assert _sidecar.call(_pid, 4) == (os.getpid(), 4)  # the helper was ended: run here


@pytest.mark.usefixtures("helper")
def test_kqis_own_errors_come_back_whole() -> None:
    from kqi.errors import InputError

    with pytest.raises(InputError) as caught:
        _sidecar.call(_input_error, 7)
    exc = caught.value
    assert exc.path != f"pid-{os.getpid()}.csv"  # raised in the helper, not run again here
    assert (exc.problem, exc.line, exc.column) == ("bad value", 7, "rsrp")
    assert str(exc) == f"{exc.path}, line 7, column 'rsrp': bad value"


def test_what_the_helper_prints_before_its_first_answer_goes_to_stderr(
        tmp_path: Path, monkeypatch, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sitecustomize.py").write_text(
        'print("hello from sitecustomize")\n', encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")  # printed at once, before _BOOT moves fd 1
    _sidecar.start()
    try:
        pid = _sidecar.call(_pid, 1)
        assert pid[0] != os.getpid()  # the helper answered: the stream was found
        assert _sidecar.call(_pid, 2) == (pid[0], 2)
    finally:
        _sidecar.stop()
    assert "hello from sitecustomize" in capfd.readouterr().err


def test_the_helper_imports_in_one_thread_only(monkeypatch) -> None:
    # imports in two threads of packages that import each other fail now and then ("cannot
    # import name 'DataFrame' from partially initialized module 'polars.dataframe'": a request's
    # table unpickled while a thread imported the map's modules); the helper then died and the
    # run drew its map itself
    import polars as pl

    monkeypatch.setattr(_sidecar, "_BOOT", _AUDIT + _sidecar._BOOT)
    _sidecar.start()
    try:
        # the first request comes at once, with a table: unpickling it imports polars
        pid, threads, later = _sidecar.call(_import_threads, pl.DataFrame({"cell_id": ["a"]}))
        deadline = time.monotonic() + 120.0
        while not later and time.monotonic() < deadline:  # idle time for the later imports
            time.sleep(0.1)
            pid, threads, later = _sidecar.call(_import_threads, None)
    finally:
        _sidecar.stop()
    assert pid != os.getpid()
    assert later
    assert threads == 1


def test_a_request_that_does_not_unpickle_in_the_helper_is_run_here(tmp_path: Path,
                                                                     monkeypatch) -> None:
    # a module the helper cannot import (not on its path) in the request: answered "run it here"
    (tmp_path / "only_here.py").write_text("class Thing:\n    pass\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    only_here = importlib.import_module("only_here")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    _sidecar.start()
    try:
        assert _sidecar.call(_pid, only_here.Thing())[0] == os.getpid()
        assert _sidecar.call(_pid, 3)[0] != os.getpid()  # the helper is still there
        assert _sidecar.active()
    finally:
        _sidecar.stop()


_ORPHAN = r"""
import os, sys, time
from kqi import _sidecar
from test_sidecar import _pid, _pid_later
_sidecar.start()
helper = _sidecar._helper[0]
assert _sidecar.call(_pid)[0] != os.getpid()
_sidecar.submit(_pid_later, os.getpid(), 1)  # busy for 30 s in the helper
print(helper._proc.pid, flush=True)
time.sleep(0.5)
os._exit(0)  # dies without stopping the helper (no atexit): as if killed
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_helper_does_not_outlive_the_run() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    # stderr not captured: the helper shares it, and a pipe would be held open by it
    proc = subprocess.run([sys.executable, "-c", _ORPHAN], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, timeout=120, check=True, env=env)
    pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 15.0  # the helper's call would take 30 s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the helper outlived the process that started it")


@pytest.mark.usefixtures("helper")
def test_warnings_and_log_records_are_given_here(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with pytest.warns(UserWarning, match="careful 2"):
        assert _sidecar.call(_noisy, 2) == 2
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name == log.name]
    assert records == [(log.name, logging.WARNING, "logged 2")]


@pytest.mark.usefixtures("helper")
def test_a_result_that_does_not_pickle_is_computed_here() -> None:
    pid, fn = _sidecar.call(_unpicklable)
    assert pid == os.getpid()
    assert callable(fn)
    assert _sidecar.active()


@pytest.mark.usefixtures("helper")
def test_the_helper_runs_only_functions_marked_remote() -> None:
    with pytest.raises(TypeError, match="not run by kqi's helper"):
        _sidecar.call(_not_marked)


@pytest.mark.usefixtures("helper")
def test_a_dead_helper_leaves_the_work_to_this_process() -> None:
    assert _sidecar.call(_pid)[0] != os.getpid()
    # sent before the helper dies, unanswered: run here on collection
    sent = _sidecar.submit(_pid_later, os.getpid(), 9)
    helper = _sidecar._helper[0]
    assert helper._proc is not None
    helper._proc.kill()
    helper._proc.wait()
    assert sent.result() == (os.getpid(), 9)
    assert not _sidecar.active()
    assert _sidecar.call(_pid, 10) == (os.getpid(), 10)


def _blobs(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, size=(5, 6))
    x = np.vstack([c + rng.normal(0.0, 0.6, size=(int(rng.integers(3, 40)), 6)) for c in centres])
    x = np.vstack([x, np.repeat(x[:3], 4, axis=0)])  # identical rows: zero core distances
    return x[rng.permutation(x.shape[0])]


def test_the_helper_gives_the_same_clusters() -> None:
    cases = [_blobs(seed) for seed in range(6)]
    points = []
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        lat = np.concatenate([rng.normal(c, 0.004, 25) for c in (51.50, 51.53, 51.56)])
        lon = np.concatenate([rng.normal(c, 0.006, 25) for c in (-0.12, -0.10, -0.15)])
        points.append((lat, lon))
    here_sig = [signature_clusters(x, min_cluster_size=5, min_samples=2) for x in cases]
    here_geo = [spatial_clusters(lat, lon, min_cluster_size=4, max_km=1.5) for lat, lon in points]
    _sidecar.start()
    try:
        assert _sidecar.call(_pid)[0] != os.getpid()
        there_sig = [signature_clusters(x, min_cluster_size=5, min_samples=2) for x in cases]
        there_geo = [spatial_clusters(lat, lon, min_cluster_size=4, max_km=1.5)
                     for lat, lon in points]
    finally:
        _sidecar.stop()
    assert any(int(labels.max()) >= 1 for labels in here_sig)  # clusters were found
    assert any(int(labels.max()) >= 1 for labels in here_geo)
    for a, b in zip(here_sig + here_geo, there_sig + there_geo, strict=True):
        assert a.dtype == b.dtype
        assert np.array_equal(a, b)


_CLI = r"""
import json, sys
from kqi.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
from kqi import _sidecar
print(json.dumps({"helper_after": _sidecar.active(),
                  "imported": sorted(m for m in ("hdbscan", "sklearn", "folium", "pandas")
                                     if m in sys.modules)}))
"""


def test_a_command_line_run_with_the_helper_writes_what_a_library_run_writes(
        tmp_path: Path) -> None:
    import kqi

    city = make_city(tmp_path / "city", seed=5, n_cells=200, days=3, tests_per_cell_day=25)
    feeds = {"cells": city.cells, "tests": city.tests, "kpis": city.kpis,
             "complaints": city.complaints}
    kqi.run(**feeds, out=tmp_path / "library")
    args = [a for feed, path in feeds.items() for a in (f"--{feed}", str(path))]
    proc = subprocess.run([sys.executable, "-c", _CLI, "-q", "run", *args, "--out",
                           str(tmp_path / "cli")], capture_output=True, text=True, timeout=600,
                          check=True, env={**os.environ, "PYTHONWARNINGS": "error"})
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    # the run's own process imported neither (the helper did), and ended the helper
    assert seen == {"helper_after": False, "imported": []}
    lib = sorted(p.relative_to(tmp_path / "library") for p in (tmp_path / "library").rglob("*")
                 if p.is_file())
    cli = sorted(p.relative_to(tmp_path / "cli") for p in (tmp_path / "cli").rglob("*")
                 if p.is_file())
    assert lib == cli
    assert Path("map.html") in lib
    assert Path("sectors.kmz") in lib
    clusters = (tmp_path / "library" / "clusters.csv").read_text(encoding="utf-8")
    assert len(clusters.splitlines()) > 1  # the signature clusters were found
    for rel in lib:
        if rel.name == "run_info.json":  # start time and stage timings
            continue
        assert (tmp_path / "cli" / rel).read_bytes() == (tmp_path / "library" / rel).read_bytes(), rel


def test_only_the_commands_that_cluster_start_the_helper(monkeypatch, tmp_path: Path) -> None:
    from cli_helpers import exit_code

    from kqi import cli

    assert cli._command(["-q", "run", "--cells", "c.csv"]) == "run"
    assert cli._command(["-v", "demo"]) == "demo"
    assert cli._command(["--version"]) is None
    started: list[bool] = []
    monkeypatch.setattr(_sidecar, "start", lambda: started.append(True))
    assert exit_code(["-q", "city", "--out", str(tmp_path / "c"), "--cells", "30",
                      "--days", "1"]) == 0
    assert started == []
    assert exit_code(["-q", "run", "--cells", str(tmp_path / "missing.csv"), "--tests", "t.csv",
                      "--kpis", "k.csv", "--out", str(tmp_path / "o")]) == 2
    assert started == [True]
    assert not _sidecar.active()  # stopped at the command line's end
