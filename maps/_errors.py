"""The map stage's error type."""

from __future__ import annotations

from kqi.errors import KqiError


class MapError(KqiError):
    """The map cannot be drawn from these inputs or options (one-line message)."""
