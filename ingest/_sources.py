"""Opening an input file (CSV or Parquet) and mapping its headers to canonical columns."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol, TypeAlias

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from kqi.errors import InputError
from kqi.schema import FeedSchema

from ._text import Coded, CsvSource, RawChunk, _prefetched
from .settings import ReadOptions

_PARQUET_MAGIC = b"PAR1"


def _texty(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


#: Parquet (Arrow) types each canonical kind accepts; anything else (list, struct, map, binary,
#: bool where a number or a name is meant, durations ...) is refused when the file is opened
_ACCEPTS = {
    "string": lambda t: _texty(t) or pa.types.is_integer(t) or pa.types.is_floating(t)
    or pa.types.is_null(t),
    "service": lambda t: _texty(t) or pa.types.is_integer(t) or pa.types.is_null(t),
    "float": lambda t: _numeric(t) or _texty(t) or pa.types.is_null(t),
    "int": lambda t: _numeric(t) or _texty(t) or pa.types.is_null(t),
    "flag": lambda t: _numeric(t) or _texty(t) or pa.types.is_boolean(t) or pa.types.is_null(t),
    "timestamp": lambda t: pa.types.is_timestamp(t) or pa.types.is_date(t) or _numeric(t)
    or _texty(t) or pa.types.is_null(t),
}
_SEP = re.compile(r"[\s_\-]+")


def norm_header(name: str) -> str:
    """Header key for matching: lower case, BOM and quotes dropped, space/_/- runs as one ``_``."""
    s = name.replace("\ufeff", "").strip().strip('"').strip().lower()
    return _SEP.sub("_", s).strip("_")


def resolve_columns(feed: FeedSchema, columns: list[str], column_map: Mapping[str, str]
                    ) -> tuple[dict[str, str], list[str]]:
    """Map canonical column -> source column.

    Precedence: an explicit ``column_map`` entry, then the canonical name, then an alias (the first
    source column in file order). A second source column for the same canonical column is ignored
    with a note. Source columns that match nothing are ignored.

    Returns
    -------
    (mapping, notes)
    """
    by_key: dict[str, list[str]] = {}
    for c in columns:
        by_key.setdefault(norm_header(c), []).append(c)
    explicit = {norm_header(k): v for k, v in column_map.items()}
    mapping: dict[str, str] = {}
    notes: list[str] = []
    used: set[str] = set()
    for c in columns:
        target = explicit.get(norm_header(c))
        if target is not None and target not in mapping:
            mapping[target] = c
            used.add(c)
    for col in feed.columns:
        if col.name in mapping:
            continue
        keys = [norm_header(col.name), *(norm_header(a) for a in col.aliases)]
        found = [s for k in keys for s in by_key.get(k, []) if s not in used]
        if found:
            mapping[col.name] = found[0]
            used.add(found[0])
            for other in found[1:]:
                if other not in used:
                    notes.append(f"column '{other}' ignored: '{found[0]}' already gives {col.name}")
                    used.add(other)
    return mapping, notes


class Source(Protocol):
    path: Path
    columns: list[str]
    encoding: str
    delimiter: str

    def chunks(self) -> Iterator[RawChunk]: ...
    @property
    def sha256(self) -> str: ...
    def finish_hash(self) -> None: ...
    def close(self) -> None: ...


class ParquetSource:
    """A Parquet file read in record batches; ``line`` numbers are 1-based row numbers."""

    encoding = "parquet"
    delimiter = ","
    decimal = "."

    @property
    def detected(self) -> dict[str, object]:
        return {"format": "parquet"}
    #: whether :attr:`sha256` is computed (see :attr:`CsvSource.checksum`)
    checksum = True

    def __init__(self, path: Path, batch_rows: int) -> None:
        self.path = path
        self._batch_rows = batch_rows
        try:
            with pq.ParquetFile(path) as pf:
                self.columns = list(pf.schema_arrow.names)
                self._num_rows = pf.metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise InputError(path, f"not a readable Parquet file ({_one_line(exc)})") from None
        self._sha: str | None = None
        self._hasher: threading.Thread | None = None
        self._wanted: list[str] | None = None
        self._dictionary: list[str] = []
        #: first row of each row group, and the last row group read by :meth:`column_text`
        self._groups: np.ndarray | None = None
        self._group_text: tuple[tuple[str, int], pl.Series] | None = None

    def check_types(self, mapping: Mapping[str, str], feed: FeedSchema) -> None:
        """Refuse a mapped column whose Parquet type cannot hold its canonical kind (a list or
        struct ``cell_id``, a bool ``lat`` ...): one line naming the file and the column.

        Raises
        ------
        kqi.errors.InputError
        """
        with pq.ParquetFile(self.path) as pf:
            _check_arrow_types(self.path, pf.schema_arrow, mapping, feed, "Parquet")

    def select(self, columns: list[str]) -> None:
        """Read only these columns (the mapped ones); the others are never decoded."""
        self._wanted = columns

    def set_dictionary(self, columns: list[str]) -> None:
        """Read these text columns dictionary-encoded (:attr:`RawChunk.coded`): Parquet stores them
        so, and the distinct values are a few thousand per million rows."""
        self._dictionary = list(columns)

    def _hash(self) -> None:
        with self.path.open("rb") as fh:
            self._sha = hashlib.file_digest(fh, "sha256").hexdigest()

    def _hash_quietly(self) -> None:
        with contextlib.suppress(OSError):  # raised again, in the caller, by sha256
            self._hash()

    @property
    def sha256(self) -> str:
        if not self.checksum:
            return ""
        if self._hasher is not None:
            self._hasher.join()
            self._hasher = None
        if self._sha is None:
            self._hash()
        assert self._sha is not None
        return self._sha

    def finish_hash(self) -> None:
        _ = self.sha256

    def has_data(self) -> bool:
        return self._num_rows > 0

    def null_free(self, column: str) -> bool:
        """Whether the file's statistics prove ``column`` holds no null (every row group has a
        null count, and it is 0); False when any statistic is missing."""
        with pq.ParquetFile(self.path) as pf:
            md = pf.metadata
            if md.num_row_groups == 0:
                return True
            first = md.row_group(0)
            idx = next((i for i in range(first.num_columns)
                        if first.column(i).path_in_schema == column), None)
            if idx is None:
                return False
            for g in range(md.num_row_groups):
                st = md.row_group(g).column(idx).statistics
                if st is None or not st.has_null_count or st.null_count != 0:
                    return False
        return True

    def arrow_type(self, column: str) -> pa.DataType:
        """The file's Arrow type of ``column``."""
        with pq.ParquetFile(self.path) as pf:
            return pf.schema_arrow.field(column).type

    def column_text(self, column: str, lines: np.ndarray) -> pl.Series:
        """``column`` at rows ``lines`` (1-based, as :attr:`RawChunk.lines`) as text, the way a
        chunk that read it shows it: for a column not read (:meth:`select` left it out) whose
        rows are rejected. Only the row groups holding those rows are decoded (the last one is
        kept: the rejects of consecutive chunks often share it)."""
        try:
            return self._column_text(column, lines)
        except (pa.ArrowException, pl.exceptions.PolarsError, OSError) as exc:
            first = int(np.min(lines)) if len(lines) else None
            raise InputError(self.path, f"cannot read Parquet data ({_one_line(exc)})",
                             line=first, column=column) from None

    def _column_text(self, column: str, lines: np.ndarray) -> pl.Series:
        if self._groups is None:
            with pq.ParquetFile(self.path) as pf:
                md = pf.metadata
                self._groups = np.cumsum([0, *(md.row_group(g).num_rows
                                               for g in range(md.num_row_groups))])
        rows = np.asarray(lines, dtype=np.int64) - 1
        group_of = np.searchsorted(self._groups, rows, side="right") - 1
        out = np.empty(len(rows), dtype=object)
        for g in np.unique(group_of):
            key = (column, int(g))
            if self._group_text is None or self._group_text[0] != key:
                lo, hi = int(self._groups[g]), int(self._groups[g + 1])
                values = (pl.scan_parquet(self.path).select(column).slice(lo, hi - lo).collect()
                          .get_column(column).cast(pl.String))
                self._group_text = (key, values)
            here = group_of == g
            out[here] = self._group_text[1].gather(rows[here] - int(self._groups[g])).to_numpy()
        return pl.Series(column, out, dtype=pl.String)

    def close(self) -> None:
        """Nothing to release: files are open only while read."""

    def _coded_columns(self, wanted: list[str]) -> list[str]:
        """The dictionary columns that are text in the file (and leave others to decode)."""
        if not self._dictionary:
            return []
        with pq.ParquetFile(self.path) as pf:
            schema = pf.schema_arrow
        text = [c for c in wanted if c in self._dictionary and c in schema.names
                and (pa.types.is_string(t := schema.field(c).type) or pa.types.is_large_string(t)
                     or pa.types.is_string_view(t))]
        return text if len(text) < len(wanted) else []

    def chunks(self) -> Iterator[RawChunk]:
        if self._sha is None and self._hasher is None and self.checksum:
            # the checksum reads the file beside the decode (hashlib releases the GIL)
            self._hasher = threading.Thread(target=self._hash_quietly, name="kqi-sha256", daemon=True)
            self._hasher.start()
        # decoded two batches ahead of the caller's validation (bounded memory)
        yield from _prefetched(self._chunks(), 2)

    def _chunks(self) -> Iterator[RawChunk]:
        start = 1
        wanted = self._wanted if self._wanted is not None else self.columns
        try:
            coded = self._coded_columns(wanted)
            # polars decodes Parquet 2-5x faster than pyarrow's iter_batches on these files;
            # text columns read as dictionaries come from pyarrow (polars would expand them)
            frames = _group_frames(self.path, [c for c in wanted if c not in coded], self._batch_rows)
            if not coded:
                for frame in frames:
                    n = frame.height
                    if n:
                        yield RawChunk(frame, np.arange(start, start + n, dtype=np.int64))
                    start += n
                return
            # pre_buffer off: with it, the reader keeps every row group's pre-read column
            # chunks until it is closed (1.4 MiB per million rows of cell_id and service, so
            # +140 MiB by the end of a 100 M-row file)
            with pq.ParquetFile(self.path, read_dictionary=coded, pre_buffer=False) as pf:
                batches = pf.iter_batches(batch_size=self._batch_rows, columns=coded)
                for frame, rb in _aligned(frames, batches):
                    n = frame.height
                    yield RawChunk(frame, np.arange(start, start + n, dtype=np.int64),
                                   coded={c: Coded.from_arrow(rb.column(c)) for c in coded})
                    start += n
        except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as exc:
            raise InputError(self.path, f"cannot read Parquet data ({_one_line(exc)})", line=start) from None


#: rows decoded at once by :func:`_group_frames` (a larger row group is read in slices of this)
_GROUP_ROWS = 1_000_000


def _group_frames(path: Path, columns: list[str], batch_rows: int) -> Iterator[pl.DataFrame]:
    """The file's ``columns`` in frames of at most ``batch_rows`` rows, in order, decoded a row
    group (at most :data:`_GROUP_ROWS` rows) at a time when the caller asks for it: memory stays
    that of a row group. (polars' ``collect_batches`` decodes ahead of a slower caller without
    bound: ``kqi run``'s peak grew with the rows, +900 MiB at 20 M.)"""
    with pq.ParquetFile(path) as pf:
        sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)]
    lf = pl.scan_parquet(path).select(columns)
    lo = 0
    for size in sizes:
        for a in range(lo, lo + size, _GROUP_ROWS):
            frame = lf.slice(a, min(_GROUP_ROWS, lo + size - a)).collect()
            for k in range(0, frame.height, batch_rows):
                yield frame.slice(k, batch_rows)
        lo += size


def _aligned(frames: Iterator[pl.DataFrame], batches: Iterator[pa.RecordBatch]
             ) -> Iterator[tuple[pl.DataFrame, pa.RecordBatch]]:
    """Two streams of the same rows cut into batches differently, cut at every boundary of
    either (zero-copy slices); the rows must run out together."""
    frame: pl.DataFrame | None = None
    rb: pa.RecordBatch | None = None
    while True:
        while frame is None or frame.height == 0:
            frame = next(frames, None)
            if frame is None:
                break
        while rb is None or rb.num_rows == 0:
            rb = next(batches, None)
            if rb is None:
                break
        if frame is None or rb is None:
            if frame is not None or rb is not None:
                raise pa.ArrowInvalid("columns of different lengths")
            return
        n = min(frame.height, rb.num_rows)
        yield frame.slice(0, n), rb.slice(0, n)
        frame, rb = frame.slice(n), rb.slice(n)


def _check_arrow_types(path: Path, schema: pa.Schema, mapping: Mapping[str, str],
                       feed: FeedSchema, what: str) -> None:
    """Refuse a mapped column whose type cannot hold its canonical kind (one line naming the
    source and the column)."""
    for canon, src in mapping.items():
        kind = feed.column(canon).kind
        t = schema.field(src).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if not _ACCEPTS[kind](t):
            raise InputError(path, f"{what} type {t} cannot hold {canon} ({kind})", column=src)


#: what the readers take besides a path: a table already in memory
InMemory: TypeAlias = pl.DataFrame | pl.LazyFrame | pa.Table


class FrameSource:
    """A table already in memory (polars DataFrame or LazyFrame, Arrow table) read in batches,
    exactly as a Parquet file of the same columns would be: same type checks, same rejects;
    ``line`` numbers are 1-based row numbers.

    ``sha256`` is the digest of the table's Arrow IPC stream (the selected columns), so the
    manifest can still tell two inputs apart.
    """

    encoding = "memory"
    delimiter = ","
    decimal = "."

    @property
    def detected(self) -> dict[str, object]:
        return {"format": "table in memory"}
    #: whether :attr:`sha256` is computed (see :attr:`CsvSource.checksum`)
    checksum = True

    def __init__(self, table: InMemory, name: str, batch_rows: int) -> None:
        self.path = Path(name)
        if isinstance(table, pl.LazyFrame):
            self._lf = table
        elif isinstance(table, pl.DataFrame):
            self._lf = table.lazy()
        else:
            try:
                self._lf = pl.DataFrame(pl.from_arrow(table)).lazy()
            except (pl.exceptions.PolarsError, pa.ArrowException, TypeError) as exc:
                raise InputError(name, f"cannot read the Arrow table ({_one_line(exc)})") from None
        try:
            self.columns: list[str] = self._lf.collect_schema().names()
        except pl.exceptions.PolarsError as exc:
            raise InputError(name, f"cannot read the table ({_one_line(exc)})") from None
        self._batch_rows = batch_rows
        self._wanted: list[str] | None = None
        self._hash = hashlib.sha256()
        self._sha: str | None = None

    def check_types(self, mapping: Mapping[str, str], feed: FeedSchema) -> None:
        """As :meth:`ParquetSource.check_types`, for the table's column types."""
        schema = pl.DataFrame(schema=self._lf.collect_schema()).to_arrow().schema
        _check_arrow_types(self.path, schema, mapping, feed, "column")

    def select(self, columns: list[str]) -> None:
        """Read only these columns (the mapped ones)."""
        self._wanted = columns

    def set_dictionary(self, columns: list[str]) -> None:
        """Text columns stay as they are: a table in memory has no dictionary pages to reuse."""

    def has_data(self) -> bool:
        return self._lf.head(1).collect().height > 0

    @property
    def sha256(self) -> str:
        if not self.checksum:
            return ""
        if self._sha is None:
            self._sha = self._hash.hexdigest()
        return self._sha

    def finish_hash(self) -> None:
        _ = self.sha256

    def close(self) -> None:
        """Nothing to release."""

    def chunks(self) -> Iterator[RawChunk]:
        wanted = self._wanted if self._wanted is not None else self.columns
        start = 1
        try:
            for frame in self._lf.select(wanted).collect_batches(
                    chunk_size=self._batch_rows, maintain_order=True):
                n = frame.height
                if n and self.checksum:
                    sink = io.BytesIO()
                    frame.write_ipc_stream(sink, compression="uncompressed")
                    self._hash.update(sink.getbuffer())
                if n:
                    yield RawChunk(frame, np.arange(start, start + n, dtype=np.int64))
                start += n
        except pl.exceptions.PolarsError as exc:
            raise InputError(self.path, f"cannot read the table ({_one_line(exc)})", line=start) from None


def source_name(source: str | Path | InMemory, feed: str) -> str:
    """How messages and the manifest name an input: its path, or ``<feed table>`` in memory."""
    if isinstance(source, str | Path):
        return str(source)
    return f"<{feed} {type(source).__name__}>"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def open_source(path: str | Path | InMemory, encoding: str, batch_rows: int, *, feed: str = "input",
                options: ReadOptions | None = None) -> CsvSource | ParquetSource | FrameSource:
    """Open ``path`` as Parquet or a spreadsheet (by its bytes) or delimited text; a table in
    memory as a :class:`FrameSource`. ``options``: the feed's ``[ingest.read.<feed>]``."""
    opts = options or ReadOptions()
    if isinstance(path, InMemory):
        return FrameSource(path, source_name(path, feed), batch_rows)
    if not isinstance(path, str | Path):
        raise TypeError(f"{feed}: expected a path, a polars DataFrame or LazyFrame or an Arrow "
                        f"table, not {type(path).__name__}")
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    if not p.is_file():
        raise InputError(p, "not a file")
    try:
        with p.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise InputError(p, f"cannot read file ({exc.strerror or exc})") from None
    if head[:4] == _PARQUET_MAGIC:
        return ParquetSource(p, batch_rows)
    from ._excel import ExcelSource, spreadsheet_kind

    kind = spreadsheet_kind(p, head)
    if kind is not None:
        return ExcelSource(p, kind, batch_rows, sheet=opts.sheet, header_row=opts.header_row)
    return CsvSource(p, opts.encoding or encoding, batch_rows, delimiter=opts.delimiter,
                     decimal=opts.decimal, header_row=opts.header_row, feed=feed)
