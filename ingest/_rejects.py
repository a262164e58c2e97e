"""Rejected rows: written incrementally to ``rejects/<feed>.csv`` (atomic) or kept in memory."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl

from kqi.io import atomic_path, inert_header, make_inert
from kqi.privacy import is_phone_header, mask_msisdn, scrub_series, scrub_text

from ._text import Malformed

log = logging.getLogger(__name__)

class RejectSink:
    """Collects rejected rows of one feed: line, reason and every source column as text.

    Parameters
    ----------
    feed
        Feed name; the file is ``<directory>/<feed>.csv``.
    directory
        Where to write; ``None`` keeps the rows in memory (:attr:`frame`).
    columns
        Source column names, in file order.
    private
        Source columns holding personal data (masked whole); columns whose header names a phone
        number (``phone``, ``contact``, 联系电话, 手机号 ...) are added to them.
    scrub
        Every other column's text, and the reason (which quotes the failing value), has phone
        numbers and the row's own number masked (:mod:`kqi.privacy`). This also covers a phone
        column under an unrecognised header, and fields shifted in a malformed row. On by default
        for every feed: a rejected row is the raw input, whatever the feed.
    """

    def __init__(self, feed: str, directory: Path | None, columns: list[str], private: list[str],
                 *, scrub: bool = True) -> None:
        self.feed = feed
        self._scrub = scrub
        self.directory = directory
        self.count = 0
        self._private = set(private) | {c for c in columns if is_phone_header(c)}
        self._src = list(columns)
        taken = {"line", "reason"}
        self._out_names = []
        for c in self._src:
            # a header is written as a CSV field too: formula-like or control text made inert
            name = inert_header(scrub_text(c) or c)
            while name in taken:
                name = f"{name} (source)"
            taken.add(name)
            self._out_names.append(name)
        self._frames: list[pl.DataFrame] = []
        self._pending: list[pl.DataFrame] = []
        self._stack = contextlib.ExitStack()
        self._fh: BinaryIO | None = None
        self.path: Path | None = None if directory is None else directory / f"{feed}.csv"

    def add(self, lines: np.ndarray, reasons: pl.Series, raw: pl.DataFrame) -> None:
        """Add rows: their line numbers, reasons and raw source columns (any dtype).

        Rows wait in a buffer until :meth:`flush`, which writes them in line order.
        """
        if len(lines) == 0:
            return
        own = next((raw.get_column(p).cast(pl.String) for p in sorted(self._private)
                    if p in raw.columns), None)
        reasons = reasons.alias("reason").cast(pl.String)
        if self._scrub:
            reasons = scrub_series(reasons, own)
        cols = [pl.Series("line", lines, dtype=pl.Int64), reasons]
        for src, out in zip(self._src, self._out_names, strict=True):
            s = raw.get_column(src).cast(pl.String) if src in raw.columns else pl.Series(
                src, [None] * len(lines), dtype=pl.String)
            if src in self._private:
                s = mask_msisdn(s)
            elif self._scrub:
                s = scrub_series(s, own)
            cols.append(s.alias(out))
        self._pending.append(pl.DataFrame(cols))

    def flush(self) -> None:
        """Write the buffered rows, sorted by line."""
        if self._pending:
            df = pl.concat(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending = []
            self._emit(df.sort("line", maintain_order=True))

    def add_malformed(self, rows: list[Malformed], delimiter: str) -> None:
        """Add records that did not split into the header's columns (fields placed in order)."""
        if not rows:
            return
        n = len(self._src)
        data: list[list[str | None]] = [[] for _ in range(n)]
        for r in rows:
            fields: list[str | None] = list(r.fields[:n])
            if len(r.fields) > n and n:
                fields[-1] = delimiter.join(r.fields[n - 1:])
            fields += [None] * (n - len(fields))
            for dst, v in zip(data, fields, strict=True):
                dst.append(v)
        raw = pl.DataFrame({c: pl.Series(c, v, dtype=pl.String) for c, v in zip(self._src, data, strict=True)})
        self.add(np.asarray([r.line for r in rows], dtype=np.int64),
                 pl.Series("reason", [r.reason for r in rows], dtype=pl.String), raw)

    def _emit(self, df: pl.DataFrame) -> None:
        self.count += df.height
        if self.directory is None:
            self._frames.append(df)
            return
        if self._fh is None:
            assert self.path is not None  # a directory was given (checked above)
            tmp = self._stack.enter_context(atomic_path(self.path))
            self._fh = self._stack.enter_context(tmp.open("wb"))
            make_inert(df).write_csv(self._fh, include_header=True)
        else:
            make_inert(df).write_csv(self._fh, include_header=False)

    @property
    def frame(self) -> pl.DataFrame:
        """Rejected rows kept in memory (empty when written to a file)."""
        schema = {"line": pl.Int64, "reason": pl.String} | dict.fromkeys(self._out_names, pl.String)
        if not self._frames:
            return pl.DataFrame(schema=schema)
        return pl.concat(self._frames)

    def close(self) -> Path | None:
        """Finish: rename the file into place; remove a stale one when nothing was rejected."""
        self.flush()
        if self.directory is None:
            return None
        if self._fh is None:
            assert self.path is not None
            if self.path.exists():
                log.info("removing stale %s (no rejects this run)", self.path)
                self.path.unlink()
            return None
        self._stack.close()
        self._fh = None
        log.info("%s: %d rejected rows written to %s", self.feed, self.count, self.path)
        return self.path

    def abort(self) -> None:
        """Drop a partly written file (the read failed)."""
        with contextlib.suppress(BaseException):
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
        self._fh = None
