"""How the ``kqi`` console process ends (kqi/cli.py, ``_exit``): the exit handlers run, the streams
are flushed and the exit code is the command's, but the interpreter is not torn down; a thread
still working gets the ordinary exit, which waits for it. Called from Python (``main(argv)``),
the caller's process goes on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kqi.cli import main

#: the console script's own path: ``main()`` with the arguments in sys.argv
_CONSOLE = r"""
import atexit, sys, threading, time
from pathlib import Path
mark = Path(sys.argv[1])
atexit.register(lambda: mark.with_suffix(".atexit").write_text("ran"))
if sys.argv[2] == "thread":
    def late():
        time.sleep(0.3)
        mark.with_suffix(".thread").write_text("done")
    threading.Thread(target=late).start()  # not a daemon: the exit must wait for it
sys.argv = ["kqi", *sys.argv[3:]]
from kqi.cli import main
main()
print("not reached: main() ends the console process", file=sys.stderr)
"""


def _console(tmp_path: Path, *args: str, thread: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _CONSOLE, str(tmp_path / "mark"),
                           "thread" if thread else "-", *args],
                          capture_output=True, text=True, timeout=300, check=False)


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
    r = _console(tmp_path, "--version", thread=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "mark.thread").read_text() == "done"
    assert (tmp_path / "mark.atexit").read_text() == "ran"


def test_called_from_python_the_process_goes_on(tmp_path) -> None:
    main(["--version"])  # returns: the tests' own process is not ended
    with pytest.raises(SystemExit) as exc:
        main(["run", "--no-such-option"])
    assert exc.value.code == 2
