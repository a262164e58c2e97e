"""How the ``kqi`` console process ends (kqi/cli.py, ``console`` and ``_exit``): the exit handlers
run, the streams are flushed and the exit code is the command's, but the interpreter is not torn
down; a thread still working gets the ordinary exit, which waits for it. Called from Python
(``main``, with or without arguments), the caller's process goes on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kqi.cli import main

#: the console script's own call (pyproject.toml: kqi = "kqi.cli:console"), the arguments in
#: sys.argv; "exit=CODE" makes the command end with SystemExit(CODE) (CODE read as Python)
_CONSOLE = r"""
import ast, atexit, sys, threading, time
from pathlib import Path
import kqi.cli
mark, mode = Path(sys.argv[1]), sys.argv[2]
atexit.register(lambda: mark.with_suffix(".atexit").write_text("ran"))
if mode == "thread":
    def late():
        time.sleep(0.3)
        mark.with_suffix(".thread").write_text("done")
    threading.Thread(target=late).start()  # not a daemon: the exit must wait for it
if mode.startswith("exit="):
    def ends(argv, verbose):
        raise SystemExit(ast.literal_eval(mode[5:]))
    kqi.cli._main = ends
sys.argv = ["kqi", *sys.argv[3:]]
kqi.cli.console()
print("not reached: console() ends the process", file=sys.stderr)
"""


def _console(tmp_path: Path, *args: str, mode: str = "-", **kw: object
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _CONSOLE, str(tmp_path / "mark"), mode, *args],
                          text=True, timeout=300, check=False,
                          **({"capture_output": True} | kw))  # type: ignore[call-overload]


def test_the_console_process_ends_with_its_handlers_run_and_its_output_flushed(tmp_path) -> None:
    r = _console(tmp_path, "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("kqi")  # written to a pipe (buffered) and flushed before the end
    assert "not reached" not in r.stderr
    assert (tmp_path / "mark.atexit").read_text() == "ran"


def test_a_failed_command_keeps_its_exit_code_and_one_line(tmp_path) -> None:
    r = _console(tmp_path, "run", "--cells", str(tmp_path / "missing.csv"), "--tests", "t.csv",
                 "--kpis", "k.csv", "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    assert "missing.csv" in r.stderr
    assert "Traceback" not in r.stderr
    assert (tmp_path / "mark.atexit").read_text() == "ran"


def test_a_usage_error_keeps_its_exit_code(tmp_path) -> None:
    r = _console(tmp_path, "run", "--no-such-option")
    assert r.returncode == 2
    assert "no-such-option" in r.stderr


def test_a_thread_still_working_is_waited_for(tmp_path) -> None:
    r = _console(tmp_path, "--version", mode="thread")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "mark.thread").read_text() == "done"
    assert (tmp_path / "mark.atexit").read_text() == "ran"


@pytest.mark.parametrize(("code", "status", "printed"), [
    ("None", 0, ""), ("3", 3, ""), ("'stopped: a reason'", 1, "stopped: a reason"),
    ("2.5", 1, "2.5"), ("263", 7, ""),
])
def test_every_kind_of_exit_code_ends_as_pythons_own_exit(tmp_path, code: str, status: int,
                                                          printed: str) -> None:
    r = _console(tmp_path, "--version", mode=f"exit={code}")
    assert r.returncode == status, r.stderr
    assert printed in r.stderr
    assert "Traceback" not in r.stderr


def test_closed_output_descriptors_do_not_fail_a_command(tmp_path) -> None:
    # a job started with its output closed (cron: kqi ... >&- 2>&-): sys.stdout is None
    r = _console(tmp_path, "city", "--out", str(tmp_path / "city"), "--cells", "30", "--days", "1",
                 capture_output=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                 preexec_fn=_close_stdio)
    assert r.returncode == 0
    assert (tmp_path / "city" / "cells.csv").is_file()
    assert (tmp_path / "mark.atexit").read_text() == "ran"


def _close_stdio() -> None:
    os.close(1)
    os.close(2)


def test_called_from_python_the_process_goes_on(tmp_path, monkeypatch) -> None:
    main(["--version"])  # returns: the tests' own process is not ended
    with pytest.raises(SystemExit) as exc:
        main(["run", "--no-such-option"])
    assert exc.value.code == 2
    # without arguments (sys.argv's): still an exception, not the end of the caller's process
    monkeypatch.setattr(sys, "argv", ["kqi", "run", "--no-such-option"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
