"""Domain exceptions. The CLI catches :class:`KqiError` once and prints its message as one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class KqiError(Exception):
    """Base of every error kqi reports to a user (one line, no traceback)."""


class ConfigError(KqiError):
    """The configuration is invalid."""


class InputError(KqiError):
    """An input file cannot be used at all (missing, undecodable, no rows, missing column).

    The message names the file and, where known, the line and column.
    """

    def __init__(self, path: str | Path, problem: str, *, line: int | None = None,
                 column: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.line = line
        self.column = column
        where = self.path
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt from its parts (the default would call cls(message)): it crosses from kqi's
        # helper process to the run's (kqi/_sidecar.py)
        return _input_error, (type(self), self.path, self.problem, self.line, self.column), \
            self.__dict__


class OutputError(KqiError):
    """An output cannot be written (full disk, read-only folder, a path under a file, a folder
    another run holds). The message names the path."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.path, self.problem), self.__dict__


class MapError(KqiError):
    """The map cannot be drawn from these inputs or options (one-line message). Defined here
    rather than in kqi.maps, so that one raised in kqi's helper process unpickles in a run's
    process that has not imported the map's modules (and folium)."""


def _input_error(cls: type[InputError], path: str, problem: str, line: int | None,
                 column: str | None) -> InputError:
    return cls(path, problem, line=line, column=column)
