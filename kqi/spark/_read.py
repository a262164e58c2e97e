"""Opening a feed on Spark: a CSV or Parquet file, a folder of parts, a URI, or a DataFrame.

Every record keeps where it came from: ``_file`` (the file's URI) and ``_line``, the physical
line for CSV (header = line 1, as the local reader numbers them) and the 1-based row within the
file for Parquet (``_metadata.row_index``); a DataFrame handed in by a caller has no lines
(``_line`` null). CSV is read as text lines and split with the CSV rules of the header's
delimiter, so a record that does not split into the header's fields is a malformed row with its
line, as locally. What the Spark reader does not do: quoted fields that span lines (each line is
a record of its own) and encodings other than UTF-8 (a GBK file is refused with one line).
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kqi.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

#: a path with a scheme (hdfs://, s3a://, abfs://, gs://, file:// ...) is passed to Spark as it is
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_CSV_SUFFIXES = (".csv", ".txt", ".tsv")
_DELIMITERS = (",", ";", "\t", "|")
#: a double-quoted CSV field ("" is an escaped quote inside it)
_QUOTED = r'"(?:[^"]|"")*"'
#: read-only record fields split out of a CSV line (wider than any header: extra fields show)
_SPLIT_MARGIN = 4


def is_uri(path: str | Path) -> bool:
    """Whether ``path`` names a file system by its scheme (then nothing is checked locally)."""
    return isinstance(path, str) and bool(_URI.match(path))


@dataclass
class SparkSource:
    """One feed as Spark reads it.

    Attributes
    ----------
    name : str
        The path or URI as given (for messages and the manifest).
    kind : {"csv", "parquet", "frame"}
    frame : DataFrame
        The source columns (text for CSV, as typed for Parquet), ``_file``, ``_line`` and, for
        CSV, ``_malformed`` (the reason when the line does not split into the header's fields).
    columns : list of str
        Source column names, in file order.
    multi_file : bool
        A folder, a glob or a URI: rejects then name the file of each row.
    sha256 : str
        Checksum of a single local file ("" otherwise, with a note).
    """

    name: str
    kind: str
    frame: DataFrame
    columns: list[str]
    multi_file: bool
    encoding: str = "utf-8"
    notes: list[str] = field(default_factory=list)
    _hasher: threading.Thread | None = None
    _sha: str = ""

    @property
    def sha256(self) -> str:
        if self._hasher is not None:
            self._hasher.join()
            self._hasher = None
        return self._sha

    def start_hash(self, path: Path) -> None:
        """Hash a local file in a thread while Spark reads it (as the local reader does)."""

        def run() -> None:
            with path.open("rb") as fh:
                self._sha = hashlib.file_digest(fh, "sha256").hexdigest()

        self._hasher = threading.Thread(target=run, name="kqi-hash", daemon=True)
        self._hasher.start()


def check_path(path: str | Path, feed: str) -> None:
    """Fail early on a local path that does not exist (a file, a folder of parts or a glob);
    URIs are Spark's to resolve."""
    if is_uri(path):
        return
    p = Path(path)
    if any(ch in str(p) for ch in "*?[") and list(p.parent.glob(p.name)):
        return
    if not p.exists():
        raise InputError(p, f"{feed} file or folder not found")


def _data_files(p: Path) -> list[Path]:
    """Files Spark reads in a folder (recursively), without the hidden and _-prefixed ones."""
    return sorted(f for f in p.rglob("*") if f.is_file()
                  and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts))


def _format_of(path: str | Path) -> str:
    name = str(path).lower().rstrip("/")
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    if is_uri(path):
        return "parquet"  # a data lake's folder of parts without a suffix
    p = Path(path)
    files = [p] if p.is_file() else _data_files(p) if p.is_dir() else sorted(p.parent.glob(p.name))
    files = [f for f in files if f.is_file()]
    if not files:
        raise InputError(p, "no data files in the folder")
    with files[0].open("rb") as fh:
        head = fh.read(4)
    return "parquet" if head == b"PAR1" else "csv"


def open_source(spark: SparkSession, path: Any, feed: str, encoding: str = "auto") -> SparkSource:
    """Open a feed for Spark: a local path (file, folder, glob), a URI, or a Spark DataFrame."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    if isinstance(path, DataFrame):
        cols = [c for c in path.columns if not c.startswith("_")]
        frame = path.select(*[F.col(f"`{c}`") for c in cols],
                            F.lit("<dataframe>").alias("_file"),
                            F.lit(None).cast("long").alias("_line"))
        return SparkSource(f"<{feed} DataFrame>", "frame", frame, cols, multi_file=False)
    if not isinstance(path, str | Path):
        raise TypeError(f"{feed}: the Spark engine reads a path, a URI or a Spark DataFrame, "
                        f"not {type(path).__name__}")
    check_path(path, feed)
    name = str(path)
    local = None if is_uri(path) else Path(path)
    multi = local is None or not local.is_file()
    fmt = _format_of(path)
    reader = spark.read.option("recursiveFileLookup", "true")
    if fmt == "parquet":
        frame = reader.parquet(name)
        cols = [c for c in frame.columns if not c.startswith("_")]
        frame = frame.select(*[F.col(f"`{c}`") for c in cols],
                             F.col("_metadata.file_path").alias("_file"),
                             (F.col("_metadata.row_index") + 1).alias("_line"))
        src = SparkSource(name, "parquet", frame, cols, multi, encoding="parquet")
    else:
        if encoding.lower() not in ("auto", "utf-8", "utf8", "utf-8-sig"):
            raise InputError(name, f"the Spark engine reads CSV in UTF-8 only (ingest.encoding is "
                                   f"'{encoding}'): convert the file, or write it as Parquet")
        src = _open_csv(spark, name, multi)
    if local is not None and local.is_file():
        src.start_hash(local)
    else:
        src.notes.append("sha256: not computed for a folder, glob or URI (Spark reads it in parts)")
    return src


def _open_csv(spark: SparkSession, name: str, multi: bool) -> SparkSource:
    """Text lines numbered per file from the file's splits: lines before each split (one small
    aggregation over the splits) plus the position in the split."""
    from pyspark.sql import functions as F

    lines = (spark.read.option("recursiveFileLookup", "true").text(name)
             .select("value", F.col("_metadata.file_path").alias("_file"),
                     F.col("_metadata.file_block_start").alias("_block"),
                     F.monotonically_increasing_id().alias("_id")))
    blocks = lines.groupBy("_file", "_block").agg(
        F.count(F.lit(1)).alias("n"), F.min("_id").alias("id0"),
        F.min_by("value", "_id").alias("first")).collect()
    if not blocks:
        raise InputError(name, "no data rows (the file is empty)")
    base: list[tuple[str, int, int, int]] = []
    headers: dict[str, str] = {}
    by_file: dict[str, list[Any]] = {}
    for b in blocks:
        by_file.setdefault(b["_file"], []).append(b)
    for f, bs in sorted(by_file.items()):
        before = 0
        for b in sorted(bs, key=lambda r: r["_block"]):
            base.append((f, int(b["_block"]), int(b["id0"]), before))
            if b["_block"] == 0:
                headers[f] = b["first"]
            before += int(b["n"])
    first_file = sorted(headers)[0]
    header_line = headers[first_file].lstrip("\ufeff")
    for f, h in sorted(headers.items()):
        if h.lstrip("\ufeff") != header_line:
            raise InputError(f, "its header differs from the other files' "
                                f"(first file: {first_file})", line=1)
    if not header_line.strip():
        raise InputError(first_file, "the first line (header) is empty", line=1)
    delim = max(_DELIMITERS, key=lambda d: (header_line.count(d), -_DELIMITERS.index(d)))
    if header_line.count(delim) == 0:
        delim = ","
    import csv

    columns = [c.strip() for c in next(csv.reader([header_line], delimiter=delim))]
    offsets = spark.createDataFrame(base, "_file string, _block long, _id0 long, _before long")
    numbered = lines.join(F.broadcast(offsets), ["_file", "_block"]).select(
        "value", "_file", (F.col("_before") + F.col("_id") - F.col("_id0") + 1).alias("_line"))
    # a blank line is not a record (nor is the header)
    data = numbered.filter((F.col("_line") > 1) & (F.trim(F.col("value")) != ""))
    ncol = len(columns)
    width = ncol + _SPLIT_MARGIN
    schema = ", ".join(f"`f{i}` string" for i in range(width))
    parsed = F.from_csv(F.col("value"), schema, {"sep": delim, "quote": '"', "escape": '"',
                                                 "mode": "PERMISSIVE"})
    rec = data.select("_file", "_line", parsed.alias("_rec"),
                      _field_count(F.col("value"), delim).alias("_n"))
    n = F.col("_n")
    malformed = F.when(n != ncol, F.concat(F.lit("row: has "), n.cast("string"),
                                           F.lit(f" fields, the header has {ncol}")))
    fields = [F.col(f"_rec.f{i}") for i in range(width)]
    # a malformed row's fields placed in order, the extra ones joined into the last (as locally)
    last = F.when(n > ncol, F.concat_ws(delim, *fields[ncol - 1:])).otherwise(fields[ncol - 1])
    frame = rec.select(*[f.alias(c) for f, c in zip(fields[:ncol - 1], columns[:-1], strict=True)],
                       last.alias(columns[-1]), "_file", "_line", malformed.alias("_malformed"),
                       n.alias("_fields"))
    return SparkSource(name, "csv", frame, columns, multi)


def _field_count(value: Column, delim: str) -> Column:
    """Fields of a CSV line: its delimiters outside quoted fields, plus one."""
    from pyspark.sql import functions as F

    bare = F.regexp_replace(value, _QUOTED, "")
    return (F.length(bare) - F.length(F.replace(bare, F.lit(delim), F.lit("")))) + 1
