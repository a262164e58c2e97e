"""The per-feed ingest settings of ``[ingest]`` (how a file is read, its time formats, units,
filled and missing values), checked once at config load and looked up by the readers.

Every setting is optional: what is not set is detected from the file, and what was detected is
reported (``FeedReport.detected``, ``manifest.json``, the ``-v`` log). See docs/input-formats.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kqi.errors import ConfigError

if TYPE_CHECKING:
    from kqi.config import IngestConfig

#: the feeds a per-feed setting may name
FEED_NAMES = ("cells", "app_tests", "app_tests_agg", "cell_kpis", "complaints", "subscribers")
#: delimiter spellings accepted in ``[ingest.read.<feed>] delimiter``
DELIMITER_NAMES = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "|": "|", "comma": ",",
                   "semicolon": ";", "pipe": "|"}
READ_KEYS = ("delimiter", "decimal", "sheet", "encoding", "header_row")
UNITS = ("percent", "fraction")
EPOCH_FORMATS = ("epoch_s", "epoch_ms")


@dataclass(frozen=True)
class ReadOptions:
    """How one feed's file is read; ``None`` = detect."""

    delimiter: str | None = None
    decimal: str | None = None
    sheet: str | int | None = None
    encoding: str | None = None
    header_row: int = 1


def read_options(cfg: IngestConfig, feed: str) -> ReadOptions:
    """The ``[ingest.read.<feed>]`` settings of ``feed`` (checked at load)."""
    raw = cfg.read.get(feed, {})
    delim = raw.get("delimiter")
    return ReadOptions(
        delimiter=None if delim is None else DELIMITER_NAMES[str(delim).lower() if len(str(delim)) > 1
                                                             else str(delim)],
        decimal=raw.get("decimal"),
        sheet=raw.get("sheet"),
        encoding=raw.get("encoding"),
        header_row=int(raw.get("header_row", 1)),
    )


def feed_setting(table: dict[str, dict[str, Any]], feed: str, schema_name: str) -> dict[str, Any]:
    """A per-feed table's entries for ``feed``, over those of its schema (``app_tests_agg``
    also reads ``app_tests``'s)."""
    return {**table.get(schema_name, {}), **table.get(feed, {})}


def _feeds(table: dict[str, Any], name: str) -> None:
    for feed, value in table.items():
        if feed not in FEED_NAMES:
            raise ConfigError(f"'ingest.{name}.{feed}': unknown feed (one of {', '.join(FEED_NAMES)})")
        if not isinstance(value, dict):
            raise ConfigError(f"'ingest.{name}.{feed}' must be a table")


def check_ingest(cfg: IngestConfig) -> None:
    """Reject ingest settings that cannot be used (one-line ConfigError)."""
    from kqi.schema import FEEDS

    if not 0.0 <= cfg.max_reject_share <= 1.0:
        raise ConfigError(f"'ingest.max_reject_share' must lie within 0 and 1, got {cfg.max_reject_share}")
    _feeds(cfg.read, "read")
    for feed, opts in cfg.read.items():
        for key, value in opts.items():
            where = f"'ingest.read.{feed}.{key}'"
            if key not in READ_KEYS:
                raise ConfigError(f"unknown setting {where} (one of {', '.join(READ_KEYS)})")
            if key == "delimiter" and (not isinstance(value, str) or (
                    value if len(value) == 1 else value.lower()) not in DELIMITER_NAMES):
                raise ConfigError(f"{where} must be one of ',' ';' '|' 'tab', got {value!r}")
            if key == "decimal" and value not in (".", ","):
                raise ConfigError(f"{where} must be '.' or ',', got {value!r}")
            if key == "sheet" and (isinstance(value, bool) or not isinstance(value, str | int)
                                   or (isinstance(value, int) and value < 1)):
                raise ConfigError(f"{where} must be a sheet name or a number from 1, got {value!r}")
            if key == "encoding" and not isinstance(value, str):
                raise ConfigError(f"{where} must be a string, got {value!r}")
            if key == "header_row" and (isinstance(value, bool) or not isinstance(value, int)
                                        or value < 1):
                raise ConfigError(f"{where} must be a line number from 1, got {value!r}")
        if "delimiter" in opts and "decimal" in opts and opts["decimal"] == "," and \
                DELIMITER_NAMES.get(opts["delimiter"] if len(opts["delimiter"]) == 1
                                    else opts["delimiter"].lower()) == ",":
            raise ConfigError(f"'ingest.read.{feed}': a ',' delimiter cannot have a ',' decimal")
    _feeds(cfg.formats, "formats")
    for feed, fmts in cfg.formats.items():
        if "ts" not in FEEDS[feed].names:
            raise ConfigError(f"'ingest.formats.{feed}': {feed} has no timestamp")
        for key, fmt in fmts.items():
            if key not in ("ts", "date", "time"):
                raise ConfigError(f"'ingest.formats.{feed}.{key}': one of ts, date, time")
            if not isinstance(fmt, str) or not fmt.strip():
                raise ConfigError(f"'ingest.formats.{feed}.{key}' must be a strftime format or "
                                  f"epoch_s / epoch_ms, got {fmt!r}")
            if key != "ts" and fmt in EPOCH_FORMATS:
                raise ConfigError(f"'ingest.formats.{feed}.{key}': {fmt} applies to ts only")
            if fmt not in EPOCH_FORMATS and "%" not in fmt:
                raise ConfigError(f"'ingest.formats.{feed}.{key}': {fmt!r} has no % directive "
                                  "(a strftime format such as '%d/%m/%Y %H:%M', or epoch_s / epoch_ms)")
    _feeds(cfg.units, "units")
    for feed, units in cfg.units.items():
        for col, unit in units.items():
            if col not in FEEDS[feed].names or FEEDS[feed].column(col).kind != "float" or \
                    not _is_ratio_or_percent(FEEDS[feed].column(col).unit):
                raise ConfigError(f"'ingest.units.{feed}.{col}': not a percent or ratio column of {feed}")
            if unit not in UNITS:
                raise ConfigError(f"'ingest.units.{feed}.{col}' must be 'percent' or 'fraction', got {unit!r}")
    _feeds(cfg.fill, "fill")
    for feed, fills in cfg.fill.items():
        for col, value in fills.items():
            if col not in FEEDS[feed].names:
                raise ConfigError(f"'ingest.fill.{feed}.{col}': not a column of {feed}")
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ConfigError(f"'ingest.fill.{feed}.{col}' must be a string or a number, got {value!r}")
    _feeds(cfg.missing, "missing")
    for feed, tokens in cfg.missing.items():
        for col, values in tokens.items():
            if col not in FEEDS[feed].names:
                raise ConfigError(f"'ingest.missing.{feed}.{col}': not a column of {feed}")
            if not isinstance(values, list) or any(isinstance(v, bool) or not isinstance(v, str | int | float)
                                                    for v in values):
                raise ConfigError(f"'ingest.missing.{feed}.{col}' must be a list of values, got {values!r}")


def _is_ratio_or_percent(unit: str) -> bool:
    return unit.startswith("percent") or unit == "0-1"
