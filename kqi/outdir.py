"""The output folder of a run: a lock, a staging folder, and an all-or-nothing swap.

A run writes every output into ``<out>/.kqi-staging-<pid>/`` and only then moves the files into
``<out>``, ``manifest.json`` last. So ``<out>`` holds either the previous run's complete set or this
run's; a file from an older run that this run does not write (say ``complaint_links.csv``) is
removed only if the previous ``manifest.json`` lists it: kqi never deletes a file it did not write,
and never follows a symlink out of ``<out>``.

* **Lock.** ``<out>/.kqi.lock`` is held with ``flock`` for the whole run (and removed at its end);
  a second run into the same folder stops at once with one line naming the other run's pid and
  start time. The kernel drops the lock when a process dies, even by ``kill -9`` (the file then
  stays, unlocked, and the next run takes it).
* **Crash recovery.** A staging folder left by a killed run is removed by the next run (under the
  lock, no other run can own it), and so are hidden ``.*.tmp`` files of interrupted writes. A
  staging folder that holds ``.commit`` (the swap had begun) is rolled forward instead: its files
  are moved in, so the set completes.
* **Errors.** Every OS error (full disk, read-only folder, a path under a file) becomes an
  :class:`~kqi.errors.OutputError`: one line naming the path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from kqi.errors import OutputError

log = logging.getLogger(__name__)

LOCK_NAME = ".kqi.lock"
STAGING_PREFIX = ".kqi-staging-"
MANIFEST = "manifest.json"
#: written into the staging folder just before the swap: the run's file list, in swap order
COMMIT_MARK = ".commit"


@contextlib.contextmanager
def os_errors(path: Path | str, doing: str) -> Iterator[None]:
    """Turn an ``OSError`` into a one-line :class:`OutputError` naming ``path`` (or the error's)."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        where = exc.filename or path
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "") or str(exc)
        raise OutputError(where, f"cannot {doing} ({reason})") from None


class OutputDir:
    """The ``--out`` folder for one run (a context manager).

    Parameters
    ----------
    path
        The output folder (created with its parents).

    Examples
    --------
    >>> with OutputDir(out) as od:                                     # doctest: +SKIP
    ...     write_csv(od.staging / "cell_kqi.csv", df)
    ...     files = od.commit([od.staging / "cell_kqi.csv"])
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.staging = self.path / f"{STAGING_PREFIX}{os.getpid()}"
        self._lock_fd: int | None = None
        self._committed = False
        self._created: list[Path] = []  # folders this run made (deepest first), see __exit__

    # -- lock ---------------------------------------------------------------------------------

    def __enter__(self) -> OutputDir:
        with os_errors(self.path, "create the output folder"):
            if self.path.exists() and not self.path.is_dir():
                raise OutputError(self.path, "the output path exists and is not a folder")
            self._created = [p for p in (self.path, *self.path.parents) if not p.exists()]
            self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._recover()
            with os_errors(self.staging, "create the staging folder"):
                self.staging.mkdir()
        except BaseException:
            self._unlock()
            self._remove_created()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if not self._committed:
                self.abort()
        finally:
            self._unlock()
            if not self._committed:
                self._remove_created()

    def _remove_created(self) -> None:
        """A run that wrote nothing leaves no trace: the folders it made are removed again
        while they are empty (``rmdir`` never removes anything else)."""
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError:
                break

    def _lock(self) -> None:
        import fcntl

        lock = self.path / LOCK_NAME
        while True:
            with os_errors(lock, "open the lock file"):
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = ""
                with contextlib.suppress(OSError, ValueError):
                    info = json.loads(os.pread(fd, 4096, 0) or b"{}")
                    holder = f" (pid {info.get('pid')}, started {info.get('started_utc')})"
                os.close(fd)
                raise OutputError(self.path, f"another kqi run is writing here{holder}; wait for "
                                  "it or choose another --out") from None
            # the holder before us removes the file when it ends: make sure we locked the file
            # that is there now, not one just unlinked
            try:
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with os_errors(lock, "write the lock file"):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "started_utc": started}).encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                (self.path / LOCK_NAME).unlink()  # while still locked (see _lock)
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # -- recovery -----------------------------------------------------------------------------

    def _recover(self) -> None:
        """Finish or drop what a killed run left (we hold the lock: nobody else is writing)."""
        with os_errors(self.path, "list the output folder"):
            leftovers = sorted(p for p in self.path.iterdir()
                               if p.name.startswith(STAGING_PREFIX) and p.is_dir()
                               and not p.is_symlink())
        for stage in leftovers:
            mark = stage / COMMIT_MARK
            if mark.is_file():
                with contextlib.suppress(OSError, ValueError):
                    names = json.loads(mark.read_text(encoding="utf-8"))
                    log.warning("%s: completing the output swap of an interrupted run", self.path)
                    self._swap(stage, [n for n in names if isinstance(n, str)])
            log.info("removing %s, left by an interrupted run", stage)
            with os_errors(stage, "remove a stale staging folder"):
                shutil.rmtree(stage)
        for folder in (self.path, self.path / "rejects"):
            if folder.is_dir() and not folder.is_symlink():
                for tmp in folder.glob(".*.tmp"):
                    if tmp.is_file() or tmp.is_symlink():
                        log.info("removing %s, a temporary file of an interrupted write", tmp)
                        with os_errors(tmp, "remove a stale temporary file"):
                            tmp.unlink()

    # -- commit -------------------------------------------------------------------------------

    def commit(self, files: Iterable[Path]) -> list[Path]:
        """Move the staged ``files`` into the folder, ``manifest.json`` last; remove the files
        the previous manifest listed that this run did not write.

        Parameters
        ----------
        files
            Paths inside :attr:`staging`.

        Returns
        -------
        list of pathlib.Path
            The same files at their place in :attr:`path`.
        """
        names = sorted({self._relative(p) for p in files}, key=lambda n: (n == MANIFEST, n))
        with os_errors(self.staging / COMMIT_MARK, "write the commit mark"):
            (self.staging / COMMIT_MARK).write_text(json.dumps(names), encoding="utf-8")
        self._swap(self.staging, names)
        self._committed = True
        with os_errors(self.staging, "remove the staging folder"):
            shutil.rmtree(self.staging)
        return [self.path / n for n in names]

    def _swap(self, stage: Path, names: list[str]) -> None:
        previous = self._previous_outputs()
        for name in names:
            target = self._inside(name)
            if target is None:
                raise OutputError(self.path / name, "an output's folder is a symlink or not a "
                                  "folder; kqi does not write through it")
            if not (stage / name).is_file():
                continue  # moved before an interruption (a swap being completed)
            with os_errors(target, "move an output into place"):
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_dir() and not target.is_symlink():
                    raise OutputError(target, "an output's path is a folder")
                os.replace(stage / name, target)
        for name in sorted(previous - set(names)):
            target = self._inside(name)
            if target is not None and (target.is_file() or target.is_symlink()):
                log.info("removing %s: written by the previous run, not by this one", target)
                with os_errors(target, "remove a previous output"):
                    target.unlink()

    def abort(self) -> None:
        """Drop the staging folder: the folder keeps the previous complete set."""
        if self.staging.is_dir():
            with contextlib.suppress(OSError):
                shutil.rmtree(self.staging)

    # -- paths --------------------------------------------------------------------------------

    def _relative(self, p: Path) -> str:
        try:
            return p.relative_to(self.staging).as_posix()
        except ValueError:
            raise ValueError(f"{p} is not inside the staging folder {self.staging}") from None

    def _inside(self, name: str) -> Path | None:
        """``path / name`` when every part of it is a plain name and no folder on the way is a
        symlink or a file; else ``None``."""
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or any(p in ("", ".", "..") for p in parts):
            return None
        here = self.path
        for part in parts[:-1]:
            here = here / part
            if here.is_symlink() or (here.exists() and not here.is_dir()):
                return None
        return self.path / name

    def _previous_outputs(self) -> set[str]:
        """Files the previous run listed in its manifest (only kqi's own files are removed)."""
        manifest = self.path / MANIFEST
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        outputs = data.get("outputs") if isinstance(data, dict) else None
        if not isinstance(outputs, list):
            return set()
        return {o for o in outputs if isinstance(o, str)} | {MANIFEST, "run_info.json"}
