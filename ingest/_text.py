"""Reading delimited text: encoding detection, header parsing and a chunked CSV reader.

The reader hands out chunks of raw string columns with the physical line number of every record
(header = line 1). A chunk is parsed by pyarrow (multi-threaded C++); when the chunk is not one
record per line (blank lines, quoted newlines, rows with the wrong number of fields, bytes that are
not text) it is parsed again by Python's :mod:`csv`, which tracks line numbers exactly. That slow
path only runs on chunks that have such an anomaly.

A UTF-8 file past its first MiB is mapped, and its chunks are views of the mapping (the same
chunks a buffered read gives, without copying the file into buffers first).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import logging
import mmap
import os
import re
import stat
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from kqi._numba import read_only as _read_only
from kqi.errors import InputError
from kqi.schema import TIMESTAMP_FORMATS

from ._detect import SAMPLE_ROWS, detect_decimal, line_endings, sniff_delimiter
from ._kernels import _count_byte, _spread

log = logging.getLogger(__name__)
T = TypeVar("T")
#: a chunk's bytes: read into a buffer, or a view of the mapped file
Buf = bytes | bytearray | memoryview

#: bytes read to decide the encoding and the delimiter
SAMPLE_BYTES = 1 << 20
#: chunk size bounds; a chunk is about ``batch_rows`` lines of the sample's average length, and
#: at most 32 MiB: larger chunks cost more than they save (each chunk's columns are fresh memory
#: the kernel has to map and zero, 2-5x the system time at 64-100 MiB; a 20 M-row app-test CSV
#: read 10-15 % faster with 32 MiB chunks than with ~100 MiB ones, docs/benchmarks.md), while
#: the per-chunk work (the dictionary's distinct ids, a batch's fixed costs) stays small
_MIN_CHUNK_BYTES = 1 << 20
_MAX_CHUNK_BYTES = 32 << 20
_UTF8_BOM = codecs.BOM_UTF8
_NEWLINE = np.uint8(10)
#: pieces of a chunk this small or smaller are parsed by Python's csv module when pyarrow balks
_SLOW_PIECE_BYTES = 64 << 10
#: a field longer than this (characters) rejects its row, and only its row
MAX_FIELD_CHARS = 1 << 20
#: what a rejected row keeps of an over-long field
_KEPT_CHARS = 200
#: Python's csv module refuses fields over 128 KiB by default, and stops there: lift it, and
#: apply :data:`MAX_FIELD_CHARS` per row instead
_CSV_FIELD_LIMIT = (1 << 31) - 1
#: chunks that may fail typed conversion before a file is read as text only
_TYPED_TRIES = 3
#: values pyarrow reads as null in typed columns (text columns keep them as written)
_ARROW_NULLS = ["", "NA", "N/A", "n/a", "na", "NaN", "nan", "null", "NULL", "Null", "None", "none",
                "-", "--", "#N/A", "\\N"]


#: a byte that is not ASCII whitespace (``bytes.isspace``'s set), searched in a mapped range
_NOT_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")
_QUOTE = re.compile(rb'"')


def _has_quote(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` holds a double quote (a memoryview of the mapped file too)."""
    return _QUOTE.search(data) is not None if isinstance(data, memoryview) else b'"' in data


def _block_size(n: int) -> int:
    """pyarrow's parse block for a chunk of ``n`` bytes: a few blocks per core (they are parsed
    in parallel), not pyarrow's 1 MiB default: each block of a dictionary-encoded column brings
    its own dictionary, nearly all of a block's distinct ids, which the per-value work
    (:class:`Coded`) would then repeat block by block."""
    return max(_MIN_CHUNK_BYTES, min(n // (4 * (os.cpu_count() or 1)) + 1, 64 << 20))


def _decodes(sample: bytes, encoding: str) -> bool:
    """Whether ``sample`` decodes, a multi-byte character cut at its end being allowed."""
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True


def detect_encoding(path: str | Path) -> str:
    """Guess the text encoding of ``path``.

    A UTF-8 byte-order mark gives ``"utf-8-sig"``; else the first MiB decoding as UTF-8 gives
    ``"utf-8"``; else decoding as GB18030 (a superset of GBK) gives ``"gb18030"``.

    Parameters
    ----------
    path
        The file to inspect.

    Returns
    -------
    str
        A Python codec name: ``"utf-8-sig"``, ``"utf-8"`` or ``"gb18030"``.

    Raises
    ------
    kqi.errors.InputError
        The file is missing or is neither UTF-8 nor GB18030 text.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            sample = fh.read(SAMPLE_BYTES)
    except OSError as exc:
        raise InputError(p, f"cannot read file ({exc.strerror or exc})") from None
    return _encoding_of_sample(p, sample)


def _encoding_of_sample(path: Path, sample: bytes) -> str:
    if sample.startswith(_UTF8_BOM):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError(path, "UTF-16 text is not supported; save the file as UTF-8 or GBK CSV")
    if _decodes(sample, "utf-8"):
        return "utf-8"
    if _decodes(sample, "gb18030"):
        return "gb18030"
    raise InputError(path, "cannot decode the file as UTF-8 or GBK/GB18030 text")


def _resolve_encoding(path: Path, sample: bytes, setting: str) -> str:
    """The codec to use: detected when ``setting`` is ``auto``, else the configured one."""
    s = setting.strip().lower().replace("_", "-")
    if s == "auto":
        return _encoding_of_sample(path, sample)
    if s in ("gbk", "gb2312", "gb18030", "cp936"):
        # GB18030 decodes every GBK byte sequence and more; no reason to be stricter
        return "gb18030"
    if s in ("utf-8", "utf8"):
        return "utf-8-sig" if sample.startswith(_UTF8_BOM) else "utf-8"
    try:
        return codecs.lookup(s).name
    except LookupError:
        raise InputError(path, f"unknown encoding '{setting}' (ingest.encoding)") from None


_DELIMITER_WORDS = {",": ",", "\t": "tab", ";": ";", "|": "|"}


def _sample_lines(rest: bytes, codec: str) -> list[str]:
    """The first data lines of the sample (the last, maybe cut, line dropped), as text."""
    cut = rest[: rest.rfind(b"\n") + 1] if b"\n" in rest else rest
    text = cut.decode(codec, errors="replace")
    return text.splitlines()[: SAMPLE_ROWS]


def _record_end(buf: bytes | bytearray, quoted: bool) -> int:
    """Index just past the last record boundary (a newline outside quotes) in ``buf``; -1 if none."""
    if not quoted:
        return buf.rfind(b"\n") + 1 or -1
    return _quoted_record_end(buf)


def _quoted_record_end(buf: Buf) -> int:
    """:func:`_record_end` of a buffer that holds a quote (a view of the mapped file too)."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    if newlines.size == 0:
        return -1
    quotes = np.flatnonzero(arr == 34)
    # a newline ends a record when an even number of quotes precede it ("" escapes keep parity)
    even = np.searchsorted(quotes, newlines) % 2 == 0
    ends = newlines[even]
    return int(ends[-1]) + 1 if ends.size else -1


def _first_record_end(buf: bytes) -> int:
    """Index just past the first record boundary in ``buf``; -1 if none."""
    pos = buf.find(b"\n")
    while pos >= 0 and buf.count(b'"', 0, pos) % 2:
        pos = buf.find(b"\n", pos + 1)
    return pos + 1 if pos >= 0 else -1


def _too_long(table: pa.Table) -> bool:
    """Whether a text column of ``table`` has a value over :data:`MAX_FIELD_CHARS` (bytes bound
    characters from above: a value under the limit in bytes is under it in characters)."""
    for col in table.columns:
        t = col.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            longest = pc.max(pc.binary_length(col)).as_py()
            if longest is not None and longest > MAX_FIELD_CHARS:
                return True
    return False


def _nth_line_start(text: str, n: int) -> int:
    """Offset in ``text`` just after its ``n``-th line break (0 for ``n == 0``)."""
    pos = 0
    for _ in range(n):
        pos = text.index("\n", pos) + 1
    return pos


def _dedupe(names: list[str]) -> list[str]:
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(names):
        name = raw.strip() or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        seen.setdefault(name, 1)
        out.append(name)
    return out


@dataclass
class Malformed:
    """A record that could not be split into the header's columns."""

    line: int
    fields: list[str]
    reason: str


@dataclass
class Coded:
    """A text column as read from a dictionary encoding: its distinct values (a few thousand for
    a million rows of ``cell_id``) and each row's index into them.

    Work that depends only on the value (cleaning, code lookup) is done once per value and spread
    to the rows by the index, instead of once per row.
    """

    values: pl.Series            # String; may hold duplicates and nulls
    index: np.ndarray            # int32 per row into ``values``; -1 for a null

    @classmethod
    def from_arrow(cls, arr: pa.Array | pa.ChunkedArray) -> Coded:
        """From a dictionary-encoded Arrow array (chunks with their own dictionaries too)."""
        if isinstance(arr, pa.ChunkedArray) and arr.num_chunks > 1:
            # one dictionary for the lot (pyarrow's CSV reader gives one per block): unified,
            # every chunk's indices then point into the same dictionary. (combine_chunks does the
            # same, but remaps the indices about 50x slower: 0.4 s per million rows.)
            arr = arr.unify_dictionaries()
            first = arr.chunk(0).dictionary
            if all(ch.dictionary is first or ch.dictionary.equals(first) for ch in arr.chunks[1:]):
                return cls(_dictionary(first), np.concatenate([_indices(ch) for ch in arr.chunks]))
        chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
        values: list[pl.Series] = []
        index: list[np.ndarray] = []
        offset = 0
        for ch in chunks:
            ix = _indices(ch)
            if offset:
                ix = np.where(ix >= 0, ix + offset, ix).astype(np.int32, copy=False)
            dct = _dictionary(ch.dictionary)
            values.append(dct)
            index.append(ix)
            offset += len(dct)
        if not chunks:
            return cls(pl.Series([], dtype=pl.String), np.empty(0, dtype=np.int32))
        return cls(pl.concat(values) if len(values) > 1 else values[0],
                   np.concatenate(index) if len(index) > 1 else index[0])

    def __len__(self) -> int:
        return len(self.index)

    def spread(self, per_value: np.ndarray, null: object) -> np.ndarray:
        """``per_value[index]``, with ``null`` for rows whose index is -1."""
        out = np.empty(len(self.index), dtype=per_value.dtype)
        # one compiled kernel per element size, not per dtype and read-only flag: bool and int8
        # share the int8 one, and every input is a read-only view (numba compiles a kernel per
        # read-only flag of each array; each compile costs a first run ~0.15 CPU-s)
        pv, dst = per_value, out
        if per_value.dtype.itemsize == 1:
            pv, dst = per_value.view(np.int8), out.view(np.int8)
        _spread(_read_only(pv), _read_only(self.index), pv.dtype.type(null), dst)
        return out

    def decode(self, idx: np.ndarray | None = None) -> pl.Series:
        """The rows' text (all rows, or rows ``idx``)."""
        ix = self.index if idx is None else self.index[idx]
        s = pl.Series(ix, dtype=pl.Int32)
        return self.values.gather(s.set(s < 0, None) if (ix < 0).any() else s)

    def slice(self, start: int, n: int) -> Coded:
        return Coded(self.values, self.index[start:start + n])


def _indices(arr: pa.DictionaryArray) -> np.ndarray:
    """A dictionary array's indices as int32, -1 for a null."""
    ix = arr.indices
    if ix.null_count:
        ix = pc.fill_null(ix, -1)
    # the buffer itself: pyarrow's to_numpy imports pandas, half a second the first time
    data = ix.buffers()[1]
    width = ix.type.byte_width
    out = np.frombuffer(data, dtype=f"<i{width}", count=ix.offset + len(ix))[ix.offset:] if data is not None \
        else np.zeros(0, dtype=np.int32)
    return out.astype(np.int32, copy=False)


def _dictionary(values: pa.Array) -> pl.Series:
    return pl.Series(values.cast(pa.large_string()), dtype=pl.String) if len(values) \
        else pl.Series([], dtype=pl.String)


@dataclass
class RawChunk:
    """Consecutive records: their columns (text, or typed where the source types them), line
    numbers, and a way back to every source column as text for the rows that get rejected."""

    frame: pl.DataFrame          # source column names; String, or typed (Parquet, typed CSV)
    lines: np.ndarray            # int64, physical line (Parquet: 1-based row) of each record
    malformed: list[Malformed] = field(default_factory=list)
    text: Callable[[np.ndarray], pl.DataFrame] | None = None
    #: text columns read dictionary-encoded (not in :attr:`frame`)
    coded: dict[str, Coded] = field(default_factory=dict)

    def column(self, name: str) -> pl.Series:
        """A source column as a series (a dictionary-encoded one decoded)."""
        if name in self.coded:
            return self.coded[name].decode().alias(name)
        return self.frame.get_column(name)

    def text_rows(self, idx: np.ndarray) -> pl.DataFrame:
        """Rows ``idx`` (positions in :attr:`frame`) with their source columns as text."""
        if self.text is not None:
            return self.text(idx)
        sub = self.frame[idx]
        if self.coded:
            sub = sub.with_columns(c.decode(idx).alias(name) for name, c in self.coded.items())
        return sub.with_columns(pl.all().cast(pl.String))


def _prefetched(items: Iterator[T], depth: int, *, last: object = None,
                name: str = "kqi-read") -> Iterator[T]:
    """The items of ``items``, made up to ``depth`` ahead in a worker thread while the caller
    works (pyarrow, polars and the kernels release the GIL). Memory stays bounded by ``depth``
    items; errors surface at the item they belong to; closing this closes ``items``.

    ``last``: an item ``items`` yields after its last real one (not passed on); what ``items``
    does after it (finishing a feed: its report, its rejects file) then runs in the caller's
    thread, as it would without the worker. Needs ``depth`` 1, so nothing is read past it.
    """
    if last is not None and depth != 1:
        raise ValueError("a 'last' marker needs depth 1")
    with ThreadPoolExecutor(1, thread_name_prefix=name) as pool:
        ahead: deque[Future[T | None]] = deque()
        try:
            ahead.extend(pool.submit(next, items, None) for _ in range(depth))
            while (item := ahead.popleft().result()) is not None:
                if last is not None and item is last:
                    next(items, None)
                    return
                ahead.append(pool.submit(next, items, None))
                yield item
        finally:
            for f in ahead:
                f.cancel()
            for f in ahead:
                if not f.cancelled():
                    with contextlib.suppress(BaseException):
                        f.result()
            if hasattr(items, "close"):
                items.close()


class CsvSource:
    """A delimited text file read in chunks of whole records.

    Parameters
    ----------
    path
        The file.
    encoding
        ``"auto"`` or a codec name (``ingest.encoding``).
    batch_rows
        About this many records per chunk.
    """

    #: whether :attr:`sha256` is computed (off where no manifest is written: hashing costs
    #: about a tenth of a clean read's CPU); set before :meth:`chunks`
    checksum = True

    def __init__(self, path: Path, encoding: str, batch_rows: int, *, delimiter: str | None = None,
                 decimal: str | None = None, header_row: int = 1, feed: str = "<feed>") -> None:
        self.path = path
        self._feed = feed
        self._header_row = header_row
        self._delimiter_setting = delimiter
        self._decimal_setting = decimal
        self._hash = hashlib.sha256()
        #: stretches of a mapped file handed to the hashing worker and not yet known hashed
        self._hash_jobs: list[Future[None]] = []
        self._offset = 0
        # the file is open only while reading: a source opened and never read holds no handle
        try:
            with path.open("rb") as fh:
                self._fh: BinaryIO | None = fh
                self._start(encoding, batch_rows)
        except OSError as exc:
            raise InputError(path, f"cannot read file ({exc.strerror or exc})") from None
        finally:
            self._fh = None

    def _start(self, encoding_setting: str, batch_rows: int) -> None:
        path = self.path
        self._encoding_setting = encoding_setting.strip().lower()
        sample = self._read(SAMPLE_BYTES)
        if not sample.strip():
            raise InputError(path, "the file is empty")
        self.encoding = _resolve_encoding(path, sample, encoding_setting)
        self._codec = "utf-8" if self.encoding == "utf-8-sig" else self.encoding
        self.line_endings = line_endings(sample)
        # old Mac exports end lines with CR alone: read as LF (same length, so offsets hold)
        self._cr_only = self.line_endings == "CR"
        if self._cr_only:
            sample = sample.replace(b"\r", b"\n")
        body = sample[len(_UTF8_BOM):] if sample.startswith(_UTF8_BOM) else sample
        for _ in range(self._header_row - 1):  # title lines above the header
            skip = _first_record_end(body)
            if skip < 0:
                raise InputError(path, f"no header at line {self._header_row} "
                                 "([ingest.read.<feed>] header_row)")
            body = body[skip:]
        end = _first_record_end(body)
        if end < 0:
            if len(sample) >= SAMPLE_BYTES:
                raise InputError(path, "no line break in the first MiB: not a CSV file", line=1)
            end = len(body)
        try:
            header_text = body[:end].decode(self._codec)
        except UnicodeDecodeError:
            raise InputError(path, f"cannot decode the header as {self.encoding}", line=1) from None
        header_text = header_text.lstrip("\ufeff").rstrip("\r\n")
        if not header_text.strip():
            raise InputError(path, "the first line (header) is empty", line=1)
        rest = body[end:]
        sample_lines = _sample_lines(rest, self._codec)
        self.delimiter = self._delimiter_setting or sniff_delimiter(header_text, sample_lines)
        try:
            header = next(csv.reader([header_text], delimiter=self.delimiter, strict=False))
        except (csv.Error, StopIteration):
            raise InputError(path, "cannot parse the header", line=1) from None
        self.columns = _dedupe(header)
        # csv's default limit (131,072 characters) would fail detection on one long field in
        # the sample; the typed reader bounds fields itself (MAX_FIELD_CHARS, rejected rows)
        if csv.field_size_limit() < _CSV_FIELD_LIMIT:
            csv.field_size_limit(_CSV_FIELD_LIMIT)
        #: the first data records of the sample (to name what the typed reader parsed)
        self._head_rows = list(csv.reader(sample_lines[:5], delimiter=self.delimiter, strict=False))
        if self._decimal_setting is not None:
            self.decimal = self._decimal_setting
        elif self.delimiter == "," and b'"' not in rest:
            self.decimal = "."  # no field can hold a comma: nothing to detect
        else:
            rows = list(csv.reader(sample_lines[:SAMPLE_ROWS], delimiter=self.delimiter, strict=False))
            try:
                self.decimal = detect_decimal(path, self.columns, rows, self._feed)
            except InputError:
                if self.delimiter != ",":
                    raise
                self.decimal = "."  # a ',' file: '1,234' in quotes is a thousands separator
        self._pending = rest
        self._next_line = self._header_row + 1
        lines_in_sample = max(1, sample.count(b"\n"))
        avg = len(sample) / lines_in_sample
        self._chunk_bytes = int(min(max(avg * batch_rows, _MIN_CHUNK_BYTES), _MAX_CHUNK_BYTES))
        self._eof = len(sample) < SAMPLE_BYTES
        self._string_types = {c: pa.string() for c in self.columns}
        self._types: dict[str, pa.DataType] = {}
        self._typed_failures = 0

    @property
    def detected(self) -> dict[str, Any]:
        """How the file was read (for the report): format, encoding, delimiter, decimal, line
        endings, and which of them the config set (the others were detected)."""
        configured = [k for k, v in (("encoding", self._encoding_setting != "auto"),
                                     ("delimiter", self._delimiter_setting is not None),
                                     ("decimal", self._decimal_setting is not None)) if v]
        return {"format": "csv", "encoding": self.encoding,
                "delimiter": _DELIMITER_WORDS.get(self.delimiter, self.delimiter),
                "decimal": self.decimal, "line_endings": self.line_endings,
                "configured": configured}

    def first_value(self, column: str) -> str | None:
        """The first non-empty value of ``column`` in the file's first records, as written."""
        j = self.columns.index(column) if column in self.columns else -1
        for row in self._head_rows:
            if 0 <= j < len(row) and row[j].strip():
                return row[j].strip()
        return None

    def has_data(self) -> bool:
        """Whether anything but blank lines may follow the header (cheap, from the first MiB)."""
        return bool(self._pending.strip()) or not self._eof

    def _read(self, n: int) -> bytes:
        assert self._fh is not None
        data = self._fh.read(n)
        if self.checksum:
            self._hash.update(data)
        self._offset += len(data)
        return data

    def _read_into(self, buf: bytearray, n: int) -> int:
        """Append up to ``n`` bytes of the file to ``buf`` (read in place: no copy of the chunk)."""
        assert self._fh is not None
        n = min(n, self._left())
        old = len(buf)
        buf.extend(bytes(n))
        with memoryview(buf) as mv:
            got = self._fh.readinto(mv[old:])  # type: ignore[attr-defined]  # a raw/buffered file
        del buf[old + got:]
        if self.checksum:
            self._hash.update(memoryview(buf)[old:])
        if self._cr_only and got:
            buf[old:] = buf[old:].replace(b"\r", b"\n")
        self._offset += got
        return got

    def _left(self) -> int:
        """Bytes left in the file (and one more, to see its end), at most a chunk: a buffer of a
        million rows' bytes, zeroed, for a file of two thousand rows is most of the cost of
        reading it (a folder of small drive-test logs)."""
        assert self._fh is not None
        try:
            size = os.fstat(self._fh.fileno()).st_size
        except (OSError, AttributeError, ValueError):
            return self._chunk_bytes
        return min(max(size - self._offset, 0) + 1, self._chunk_bytes)

    def _first_read(self, pending: bytes) -> bytearray:
        """``pending`` and up to a chunk of the file after it, read in place into one buffer."""
        assert self._fh is not None
        k = len(pending)
        want = min(self._chunk_bytes, self._left())
        buf = bytearray(k + want)
        buf[:k] = pending
        with memoryview(buf) as mv:
            got = self._fh.readinto(mv[k:])  # type: ignore[attr-defined]  # a raw/buffered file
        if got < want:
            del buf[k + got:]
        if self.checksum:
            self._hash.update(memoryview(buf)[k:])
        if self._cr_only and got:
            buf[k:] = buf[k:].replace(b"\r", b"\n")
        self._offset += got
        if not got:
            self._eof = True
        return buf

    @property
    def sha256(self) -> str:
        """Hex digest of the bytes read so far (the whole file once :meth:`chunks` is exhausted);
        empty without :attr:`checksum`."""
        if not self.checksum:
            return ""
        self._wait_hashed()
        return self._hash.hexdigest()

    def _wait_hashed(self) -> None:
        """Wait until the stretches handed to the hashing worker are hashed."""
        for job in self._hash_jobs:
            job.result()
        self._hash_jobs.clear()

    def close(self) -> None:
        """Nothing to release: the file is open only inside :meth:`chunks`."""

    def chunks(self) -> Iterator[RawChunk]:
        """Yield the data records in chunks, in file order."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                self._fh = fh
                # parsed a chunk ahead of the caller's validation, in a worker thread
                yield from _prefetched(self._chunks(), 1)
        except OSError as exc:
            raise InputError(self.path, f"cannot read file ({exc.strerror or exc})") from None
        finally:
            self._fh = None

    def _chunks(self) -> Iterator[RawChunk]:
        mapped = self._mapped()
        if mapped is not None:
            yield from self._mapped_chunks(*mapped)
            return
        while True:
            buf = self._first_read(self._pending)
            while not self._eof and len(buf) < self._chunk_bytes:
                if not self._read_into(buf, self._chunk_bytes):
                    self._eof = True
                    break
            if not buf:
                return
            if self._eof:
                end = len(buf)
            else:
                end = _record_end(buf, b'"' in buf)
                while end < 0 and not self._eof:
                    # a record longer than a chunk (or an unterminated quote): read on
                    if not self._read_into(buf, self._chunk_bytes):
                        self._eof = True
                        end = len(buf)
                        break
                    end = _record_end(buf, b'"' in buf)
            # the chunk is the buffer itself, cut at the record boundary (no copy)
            self._pending = bytes(buf[end:])
            del buf[end:]
            chunk = buf
            newlines = int(_count_byte(_read_only(np.frombuffer(chunk, dtype=np.uint8)), _NEWLINE))
            if chunk and not chunk.isspace():
                yield self._parse(chunk, newlines)
            self._next_line += newlines
            if self._eof and not self._pending:
                return

    def _mapped(self) -> tuple[mmap.mmap, int] | None:
        """The file mapped (read-only) when its chunks can be views of it: UTF-8 text read from a
        regular file, lines not ended by CR alone, more than the sample to read. ``None``
        otherwise (the chunks are read into buffers)."""
        if self._codec != "utf-8" or self._cr_only or self._eof or self._fh is None:
            return None
        try:
            fd = self._fh.fileno()
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size <= self._offset:
                return None
            self._mapped_as = (fd, st.st_size, st.st_mtime_ns)
            return mmap.mmap(fd, 0, access=mmap.ACCESS_READ), st.st_size
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return None

    def _check_unchanged(self) -> None:
        """Stop with the reason when the mapped file was changed since it was mapped: a page past
        a shortened file's end would kill the process (SIGBUS) instead of giving an error. Checked
        before each chunk is cut; a change in the moment between a check and the chunk's parse is
        not caught (docs/input-formats.md)."""
        fd, size, mtime = self._mapped_as
        st = os.fstat(fd)
        if st.st_size != size or st.st_mtime_ns != mtime:
            raise InputError(self.path, f"the file changed while it was read ({size:,} bytes when "
                             f"reading started, {st.st_size:,} now): read it again once it is "
                             "written")

    def _mapped_chunks(self, mm: mmap.mmap, size: int) -> Iterator[RawChunk]:
        """:meth:`_chunks` over the mapped file: the same chunks (each ends where the buffered
        reader's would: ``_chunk_bytes`` read at a time after the bytes left over, cut at the last
        record boundary), as views of the mapping instead of copies read into buffers. The pages of
        a parsed chunk are dropped from the process (``MADV_DONTNEED``: a later look, at a rejected
        row's text, reads them again from the page cache), so memory stays one chunk or two. A file
        changed while it is read stops the read with the reason (:meth:`_check_unchanged`)."""
        size = min(size, len(mm))
        view = memoryview(mm)
        page = mmap.PAGESIZE
        # the virtual buffer [pos, end_read): the bytes left over, and those read after them
        pos = self._offset - len(self._pending)
        end_read = self._offset
        self._pending = b""

        # the checksum: each stretch of the mapping as it is taken into a chunk, hashed in order
        # by one worker beside the parse (hashlib releases the GIL), from the pages the parse
        # reads anyway (a second read of the file for it cost 2-3x the system time)
        hasher = ThreadPoolExecutor(1, thread_name_prefix="kqi-sha256") if self.checksum else None

        def read(n: int) -> int:
            nonlocal end_read
            got = max(0, min(n, size - end_read))
            if hasher is not None and got:
                self._hash_jobs.append(hasher.submit(self._hash.update, view[end_read:end_read + got]))
            end_read += got
            # where the file was read to (and hashed, once the jobs are done), also when the
            # caller stops early
            self._offset = end_read
            return got

        def record_end() -> int:
            if mm.find(b'"', pos, end_read) >= 0:
                rel = _quoted_record_end(view[pos:end_read])
                return -1 if rel < 0 else pos + rel
            nl = mm.rfind(b"\n", pos, end_read)
            return -1 if nl < 0 else nl + 1

        dropped = pos - pos % page
        try:
            while True:
                self._check_unchanged()
                if not read(min(self._chunk_bytes, size - end_read + 1)):
                    self._eof = True
                while not self._eof and end_read - pos < self._chunk_bytes:
                    if not read(self._chunk_bytes):
                        self._eof = True
                        break
                if end_read == pos:
                    break
                if self._eof:
                    end = end_read
                else:
                    end = record_end()
                    while end < 0 and not self._eof:
                        if not read(self._chunk_bytes):
                            self._eof = True
                            end = end_read
                            break
                        end = record_end()
                chunk = view[pos:end]
                newlines = int(_count_byte(np.frombuffer(chunk, dtype=np.uint8), _NEWLINE))
                if end > pos and _NOT_SPACE.search(mm, pos, end) is not None:
                    # the mapping's own search (memchr) tells whether the chunk holds a quote:
                    # a regex over the view took ~0.3 CPU-s of a 1.3 GB file
                    yield self._parse(chunk, newlines, quoted=mm.find(b'"', pos, end) >= 0)
                self._next_line += newlines
                pos = end
                self._wait_hashed()  # hashed before its pages are dropped
                if hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
                    upto = pos - pos % page
                    if upto > dropped:
                        with contextlib.suppress(OSError, ValueError):
                            mm.madvise(mmap.MADV_DONTNEED, dropped, upto - dropped)
                        dropped = upto
                if self._eof and pos == end_read:
                    break
        finally:
            if hasher is not None:
                hasher.shutdown(wait=True)

    def finish_hash(self) -> None:
        """Hash the rest of the file (when reading stopped early) so ``sha256`` covers it all;
        once :meth:`chunks` is closed (while it is open its worker may be reading ahead)."""
        if self._eof or not self.checksum:
            return
        self._wait_hashed()
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            self._fh = fh
            try:
                while self._read(1 << 24):
                    pass
            finally:
                self._fh = None
        self._eof = True

    # -- parsing ----------------------------------------------------------------------------

    def _to_utf8(self, chunk: Buf) -> Buf:
        if self._codec == "utf-8":
            return chunk
        assert not isinstance(chunk, memoryview), "only UTF-8 files are mapped"
        try:
            return chunk.decode(self._codec).encode("utf-8")
        except UnicodeDecodeError as exc:
            line = self._next_line + chunk.count(b"\n", 0, exc.start)
            raise InputError(self.path, f"cannot decode bytes as {self.encoding}", line=line) from None

    def set_types(self, types: dict[str, pa.DataType]) -> None:
        """Let pyarrow convert these source columns itself (others are read as text when needed).

        A chunk that does not convert cleanly is read again as text; after a few such chunks the
        typed attempt is dropped for the rest of the file.
        """
        self._types = dict(types)

    @property
    def typed(self) -> bool:
        """Whether chunks are read typed (:meth:`set_types`; a file whose chunks kept failing
        typed conversion is read as text)."""
        return bool(self._types) and self._typed_failures < _TYPED_TRIES

    def set_dictionary(self, columns: list[str]) -> None:
        """Read these text columns dictionary-encoded (:attr:`RawChunk.coded`) on the typed path."""
        if set(self._types) <= set(columns):
            return  # nothing left to give the chunk its height
        for c in columns:
            if self._types.get(c) == pa.string():
                self._types[c] = pa.dictionary(pa.int32(), pa.string())

    def _parse(self, chunk: Buf, newlines: int, *, quoted: bool | None = None) -> RawChunk:
        """One chunk parsed (``quoted``: whether it holds a double quote, when the caller knows)."""
        data = self._to_utf8(chunk)
        # transcoding keeps every line break, so the raw chunk's count holds for ``data`` too
        n_lines = newlines + (0 if len(data) and data[-1] == 10 else 1)
        if self._types and self._typed_failures < _TYPED_TRIES:
            table = self._read_arrow(data, self._types, list(self._types), quoted=quoted)
            if table is not None and table.num_rows == n_lines and not _too_long(table):
                coded = {name: Coded.from_arrow(table.column(name)) for name in table.column_names
                         if pa.types.is_dictionary(table.schema.field(name).type)}
                frame = pl.from_arrow(table.drop_columns(list(coded)) if coded else table)
                assert isinstance(frame, pl.DataFrame)
                lines = np.arange(self._next_line, self._next_line + n_lines, dtype=np.int64)
                return RawChunk(frame, lines, text=lambda idx: self._lines_as_text(data, idx), coded=coded)
            self._typed_failures += 1
        return self._parse_text(bytes(data) if isinstance(data, memoryview) else data, self._next_line, n_lines)

    def _parse_text(self, data: bytes | bytearray, first_line: int, n_lines: int) -> RawChunk:
        """All columns as text; a piece with an anomaly is split so Python parses only small ones."""
        table = self._read_arrow(data, self._string_types, None)
        if table is not None and table.num_rows == n_lines and not _too_long(table):
            frame = pl.from_arrow(table)
            assert isinstance(frame, pl.DataFrame)
            return RawChunk(frame, np.arange(first_line, first_line + n_lines, dtype=np.int64))
        if len(data) <= _SLOW_PIECE_BYTES:
            return self._parse_slow(data, first_line)
        quoted = b'"' in data
        size = max(len(data) // 16, _SLOW_PIECE_BYTES)
        parts: list[RawChunk] = []
        pos, line = 0, first_line
        while pos < len(data):
            end = len(data) if pos + size >= len(data) else pos + _record_end(data[pos:pos + size], quoted)
            if end < pos or (pos == 0 and end == len(data)):
                # no record boundary ahead (an unterminated quote): the rest is one piece
                if pos == 0:
                    return self._parse_slow(data, first_line)
                end = len(data)
            piece = data[pos:end]
            newlines = piece.count(b"\n")
            if not piece.isspace():
                parts.append(self._parse_text(piece, line, newlines + (0 if piece.endswith(b"\n") else 1)))
            line += newlines
            pos = end
        frames = [p.frame for p in parts if p.frame.height]
        return RawChunk(
            pl.concat(frames) if frames else parts[0].frame,
            np.concatenate([p.lines for p in parts]),
            [m for p in parts for m in p.malformed],
        )

    def _read_arrow(self, data: Buf, types: dict[str, pa.DataType], include: list[str] | None,
                    *, quoted: bool | None = None) -> pa.Table | None:
        """Parse with pyarrow; ``None`` when any row is malformed or a value does not convert."""
        # no invalid_row_handler: a malformed row raises, and the chunk goes to the exact parser
        # (a Python callback from pyarrow's threads also aborted the interpreter at exit)
        try:
            return pacsv.read_csv(
                pa.py_buffer(data),
                read_options=pacsv.ReadOptions(column_names=self.columns, use_threads=True,
                                               block_size=_block_size(len(data))),
                # without a quote in the chunk no value can hold a newline: the faster parser
                parse_options=pacsv.ParseOptions(delimiter=self.delimiter,
                                                 newlines_in_values=_has_quote(data)
                                                 if quoted is None else quoted),
                convert_options=pacsv.ConvertOptions(
                    column_types=types, include_columns=include, strings_can_be_null=False,
                    decimal_point=self.decimal,
                    quoted_strings_can_be_null=False, null_values=_ARROW_NULLS,
                    timestamp_parsers=[pacsv.ISO8601, *TIMESTAMP_FORMATS]),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return None

    def _lines_as_text(self, data: Buf, idx: np.ndarray) -> pl.DataFrame:
        """Source columns as text for records ``idx`` of a one-record-per-line chunk."""
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        if ends.size == 0 or ends[-1] != len(data) - 1:
            ends = np.append(ends, len(data))
        starts = np.concatenate(([0], ends[:-1] + 1))
        text = [bytes(data[starts[i]:ends[i]]).decode("utf-8").rstrip("\r") for i in idx]
        cols: list[list[str | None]] = [[] for _ in self.columns]
        for rec in csv.reader(text, delimiter=self.delimiter, strict=False):
            padded: list[str | None] = [*rec, *([None] * (len(self.columns) - len(rec)))]
            for dst, v in zip(cols, padded, strict=False):
                dst.append(v)
        return pl.DataFrame({c: pl.Series(c, v, dtype=pl.String) for c, v in zip(self.columns, cols, strict=True)})

    def _parse_slow(self, data: bytes | bytearray, first_line: int) -> RawChunk:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = first_line + data.count(b"\n", 0, exc.start)
            raise InputError(self.path, f"cannot decode bytes as {self.encoding}", line=line) from None
        ncol = len(self.columns)
        cols: list[list[str]] = [[] for _ in range(ncol)]
        lines: list[int] = []
        malformed: list[Malformed] = []
        if csv.field_size_limit() < _CSV_FIELD_LIMIT:
            csv.field_size_limit(_CSV_FIELD_LIMIT)
        # where the reader started in ``text``, and the line it started at
        offset: int | None = 0
        base = first_line
        while offset is not None:
            reader = csv.reader(io.StringIO(text[offset:], newline=""), delimiter=self.delimiter,
                                strict=False)
            prev, restart = 0, None
            while True:
                try:
                    rec = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    # an unterminated quote runs to the end of the data: that line is one bad
                    # record, and reading goes on with the next line (no row is swallowed)
                    line = base + prev
                    malformed.append(Malformed(line, [], f"row: {exc}"))
                    start = offset + _nth_line_start(text[offset:], prev)
                    nl = text.find("\n", start)
                    restart = (nl + 1, line + 1) if nl >= 0 and nl + 1 < len(text) else None
                    break
                line = base + prev
                prev = reader.line_num
                if not rec or (len(rec) == 1 and not rec[0].strip() and ncol > 1):
                    continue  # a blank line is not a record
                longest = max(len(v) for v in rec)
                if longest > MAX_FIELD_CHARS:
                    at = next(i for i, v in enumerate(rec) if len(v) == longest)
                    name = self.columns[at] if at < ncol else f"field {at + 1}"
                    kept = [v if len(v) <= _KEPT_CHARS else v[:_KEPT_CHARS] + "..." for v in rec]
                    malformed.append(Malformed(
                        line, kept, f"{name}: field of {longest} characters, over the limit of "
                        f"{MAX_FIELD_CHARS} (kept its first {_KEPT_CHARS})"))
                    continue
                if len(rec) != ncol and reader.line_num - (line - base) > 1:
                    # a record over several lines with the wrong field count: a stray quote that
                    # swallowed the lines after it. Its first line is the bad record; the lines
                    # after are read again as records of their own
                    malformed.append(Malformed(line, rec[:1], "row: unbalanced quote (a quoted "
                                               "field not closed on this line)"))
                    start = offset + _nth_line_start(text[offset:], line - base)
                    nl = text.find("\n", start)
                    restart = (nl + 1, line + 1) if nl >= 0 and nl + 1 < len(text) else None
                    break
                if len(rec) != ncol:
                    malformed.append(Malformed(line, rec, f"row: has {len(rec)} fields, the header has {ncol}"))
                    continue
                for dst, value in zip(cols, rec, strict=True):
                    dst.append(value)
                lines.append(line)
            offset, base = restart if restart is not None else (None, base)
        frame = pl.DataFrame({c: pl.Series(c, v, dtype=pl.String) for c, v in zip(self.columns, cols, strict=True)})
        return RawChunk(frame, np.asarray(lines, dtype=np.int64), malformed)
