"""The map stage's error type (defined in kqi.errors, see there)."""

from __future__ import annotations

from kqi.errors import MapError

__all__ = ["MapError"]
