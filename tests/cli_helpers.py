"""Small helpers shared by the tests that drive the command line."""

from __future__ import annotations

from kqi.cli import main


def exit_code(argv: list[str]) -> int:
    """Run ``kqi argv`` in this process; its exit code (0 when it returns)."""
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
