"""Small helpers shared by the ingest tests."""

from __future__ import annotations

from pathlib import Path

from kqi.config import Config, IngestConfig


def cfg(**ingest: object) -> Config:
    """A default config with these ``[ingest]`` settings."""
    return Config(ingest=IngestConfig(**ingest))  # type: ignore[arg-type]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` in ``encoding`` (bytes exactly as given: no newline translation)."""
    path.write_bytes(text.encode(encoding))
    return path
