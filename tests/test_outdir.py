"""Issue 12, class 4: the output folder's lock, staging swap, cleanup and error lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kqi.errors import OutputError
from kqi.io import write_text
from kqi.outdir import STAGING_PREFIX, OutputDir


def _run_into(out: Path, files: dict[str, str]) -> list[Path]:
    with OutputDir(out) as od:
        written = [write_text(od.staging / name, text) for name, text in files.items()]
        outputs = [*sorted(files), "manifest.json"]
        written.append(write_text(od.staging / "manifest.json", json.dumps({"outputs": outputs})))
        return od.commit(written)


def test_second_run_is_refused_with_pid_and_start(tmp_path: Path) -> None:
    with OutputDir(tmp_path) as od:
        with pytest.raises(OutputError) as err, OutputDir(tmp_path):
            pass
        assert f"pid {os.getpid()}" in str(err.value)
        assert "started 20" in str(err.value)
        assert od.staging.is_dir()
    with OutputDir(tmp_path):  # released on exit
        pass


def test_lock_is_held_across_processes(tmp_path: Path) -> None:
    with OutputDir(tmp_path):
        r = subprocess.run([sys.executable, "-c", "import sys; from kqi.outdir import OutputDir\n"
                            "from kqi.errors import OutputError\ntry:\n"
                            f"    OutputDir({str(tmp_path)!r}).__enter__()\n"
                            "except OutputError as e:\n    print(e); sys.exit(2)"],
                           capture_output=True, text=True, check=False)
    assert r.returncode == 2
    assert f"pid {os.getpid()}" in r.stdout


def test_only_files_of_the_previous_manifest_are_removed(tmp_path: Path) -> None:
    _run_into(tmp_path, {"a.csv": "1", "rejects/cells.csv": "r", "complaint_links.csv": "c"})
    (tmp_path / "mine.csv").write_text("user")
    (tmp_path / "rejects" / "mine.csv").write_text("user")
    _run_into(tmp_path, {"a.csv": "2"})
    assert (tmp_path / "a.csv").read_text() == "2"
    assert not (tmp_path / "complaint_links.csv").exists()
    assert not (tmp_path / "rejects" / "cells.csv").exists()
    assert (tmp_path / "mine.csv").read_text() == "user"
    assert (tmp_path / "rejects" / "mine.csv").read_text() == "user"


@pytest.mark.parametrize("listed", ["rejects/precious.csv", "../victim/precious.csv",
                                    "/tmp/precious.csv"])
def test_cleanup_never_leaves_the_folder(tmp_path: Path, listed: str) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.csv").write_text("keep")
    out.mkdir()
    (out / "rejects").symlink_to(victim)
    (out / "manifest.json").write_text(json.dumps({"outputs": [listed]}))
    _run_into(out, {"a.csv": "1"})
    assert (victim / "precious.csv").read_text() == "keep"


def test_writing_through_a_symlinked_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "rejects").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="symlink"):
        _run_into(out, {"rejects/cells.csv": "r"})
    assert not list((tmp_path / "elsewhere").iterdir())


@pytest.mark.parametrize("kind", ["under a file", "is a file"])
def test_unusable_out_is_one_line(tmp_path: Path, kind: str) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    out = f / "sub" if kind == "under a file" else f
    with pytest.raises(OutputError) as err, OutputDir(out):
        pass
    assert str(f) in str(err.value)
    assert "\n" not in str(err.value)


_KILL = """
import os, signal, sys
from pathlib import Path
from kqi.io import write_text
from kqi.outdir import OutputDir
out, when = Path(sys.argv[1]), sys.argv[2]
od = OutputDir(out).__enter__()
write_text(od.staging / "a.csv", "new")
if when == "staged":
    os.kill(os.getpid(), signal.SIGKILL)
(out / ".a.csv.x1.tmp").write_text("half")   # an interrupted atomic write
write_text(od.staging / "manifest.json", '{"outputs": ["a.csv", "manifest.json"]}')
if when == "swap":   # the commit mark written, one file moved: the next run rolls forward
    (od.staging / ".commit").write_text('["a.csv", "manifest.json"]')
    os.replace(od.staging / "a.csv", out / "a.csv")
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("when", ["staged", "written", "swap"])
def test_kill_9_leaves_a_complete_set(tmp_path: Path, when: str) -> None:
    _run_into(tmp_path, {"a.csv": "old"})
    r = subprocess.run([sys.executable, "-c", _KILL, str(tmp_path), when], check=False)
    assert r.returncode == -9
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["outputs"] == ["a.csv", "manifest.json"]
    if when != "swap":
        assert (tmp_path / "a.csv").read_text() == "old"  # the previous set, whole
    with OutputDir(tmp_path) as od:  # the next run cleans up (and completes an interrupted swap)
        left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")
                and p.name not in (".kqi.lock", od.staging.name)]
        assert not left
    assert (tmp_path / "a.csv").read_text() == ("new" if when == "swap" else "old")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_abort_keeps_the_previous_set(tmp_path: Path) -> None:
    _run_into(tmp_path, {"a.csv": "old"})
    def failing_run() -> None:
        with OutputDir(tmp_path) as od:
            write_text(od.staging / "a.csv", "new")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        failing_run()
    assert (tmp_path / "a.csv").read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_a_failed_run_leaves_no_folder_it_made(tmp_path: Path) -> None:
    """A run stopped before writing anything leaves no empty --out (or parents) behind, and
    never removes a folder that was there before or holds anything."""
    def failing_run(out: Path) -> None:
        with OutputDir(out) as od:
            write_text(od.staging / "a.csv", "x")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        failing_run(tmp_path / "new" / "out")
    assert not (tmp_path / "new").exists()

    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError):
        failing_run(kept / "out")
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]
