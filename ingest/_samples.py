"""The samples feed: drive-test / MR measurement samples from one file or a folder of files.

Every file of a folder is accounted for: read (its rows counted, accepted or rejected with a
reason), or listed as skipped with the reason (not a CSV/Parquet file, hidden, no data rows).
A file that cannot be used at all (undecodable, no RSRP column, neither a serving cell nor a
position column) stops the read with one line naming it, as for every feed. Rejected rows of
every file go to one ``rejects/samples.csv`` with the file, the line and the reason.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from kqi.errors import InputError
from kqi.io import write_csv
from kqi.schema import SAMPLES

from ._convert import NULL_TOKENS
from ._sources import InMemory, source_name
from ._times import SPECIAL
from ._verdict import Tally, feed_verdict
from .core import FeedReport, Ingest, _Run  # the machinery every feed uses

#: file name endings read in a folder (others are listed as skipped)
SAMPLE_SUFFIXES: tuple[str, ...] = (".csv", ".txt", ".tsv", ".parquet", ".pq")
#: columns of the accepted samples frame, after the canonical ones
SAMPLE_EXTRA = ("file_index", "line")

_TECH_REASON = ("tech: not an LTE/NR sample (2G/3G rows carry no RSRP, SINR or CQI; "
                "their RSRP column holds RSCP)")


@dataclass
class SamplesReport(FeedReport):
    """A :class:`FeedReport` with the accounting of every file of the feed (``files``)."""

    files: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SamplesFeed:
    """The accepted samples and the accounting of every file.

    Attributes
    ----------
    frame : polars.DataFrame
        :data:`kqi.schema.SAMPLES` columns in canonical types (positions cleared where they were
        0,0 or half given), ``file_index`` (Int32, into :attr:`files`) and ``line`` (Int64).
    files : list of dict
        Per file: ``file`` (relative to the folder), and ``rows_read``, ``rows_accepted``,
        ``rows_rejected``, ``sha256``, ``encoding`` when read, or ``skipped`` (the reason).
    report : FeedReport
        The feed's totals (also in ``Ingest.reports["samples"]``).
    """

    frame: pl.DataFrame
    files: list[dict[str, Any]]
    report: SamplesReport


def _schema() -> dict[str, pl.DataType]:
    out: dict[str, pl.DataType] = {c.name: c.polars_type for c in SAMPLES.columns}
    out["file_index"] = pl.Int32()
    out["line"] = pl.Int64()
    return out


def _list_files(root: Path) -> list[tuple[str, Path | None, str | None]]:
    """``(relative name, path or None, skip reason or None)`` of every file under ``root``, in
    name order; symlinked folders are not followed (no loops, nothing outside the folder)."""
    out: list[tuple[str, Path | None, str | None]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        for name in sorted(filenames):
            p = here / name
            rel = p.relative_to(root).as_posix()
            if any(part.startswith(".") for part in Path(rel).parts):
                out.append((rel, None, "hidden file"))
            elif not p.is_file():
                out.append((rel, None, "not a regular file"))
            elif not name.lower().endswith(SAMPLE_SUFFIXES):
                out.append((rel, None, "not a CSV or Parquet file"))
            else:
                out.append((rel, p, None))
    return sorted(out, key=lambda t: t[0])


def read_samples(ing: Ingest, source: str | Path | InMemory) -> SamplesFeed:
    """Read the samples feed (one file, a folder read recursively, or a table in memory).

    Rows are rejected, with the first failing check as the reason, when a value cannot be read
    or is out of range (e.g. RSRP -200 dBm, a logger's "no value"), when RSRP is missing, when the
    radio technology is not one of ``samples.techs`` (2G/3G rows), or when the sample has neither
    a serving cell nor a position. A position of exactly 0,0 (no GPS fix) or with only one of
    lat/lon is cleared and the sample kept for its cell's figures.

    Raises
    ------
    kqi.errors.InputError
        The path is missing, a folder holds no samples file, or a file is unusable.
    """
    t0 = time.perf_counter()
    name = source_name(source, "samples")
    if isinstance(source, str | Path) and Path(source).is_dir():
        root = Path(source)
        listing = _list_files(root)
        if not any(p is not None for _, p, _ in listing):
            raise InputError(root, "no samples file (CSV or Parquet) in the folder")
    elif isinstance(source, str | Path):
        p = Path(source)
        if not p.exists():
            raise InputError(p, "samples file not found")
        listing = [(p.name, p, None)]
    else:
        listing = [(name, None, None)]

    # rejects of each file kept, written once below; the feed's verdict is on all its files
    sub = Ingest(ing.config, rejects_dir=None, verdicts=False)
    tally = Tally()
    # drive-test logs' own time forms first (G-NetTrack's 2019.12.14_10.16.30 comes after some
    # thirty common forms otherwise, each tried on every value of the first file)
    forms: list[str] = list(SPECIAL)
    allowed = {t.strip().lower() for t in ing.config.samples.techs}
    frames: list[pl.DataFrame] = []
    rejects: list[pl.DataFrame] = []
    files: list[dict[str, Any]] = []
    notes: Counter[str] = Counter()
    counts = {"no_fix": 0, "half": 0}
    totals = {"read": 0, "accepted": 0, "rejected": 0}
    encodings: list[str] = []
    digest = hashlib.sha256()
    for rel, path, skip in listing:
        if skip is not None:
            files.append({"file": rel, "skipped": skip})
            continue
        target: str | Path | InMemory = path if path is not None else source
        try:
            run = _Run(sub, "samples", SAMPLES, target)
        except InputError as exc:
            if len(listing) > 1 and exc.problem.startswith("no data rows"):
                files.append({"file": rel, "skipped": "no data rows"})
                continue
            raise
        if forms:
            # the files of a folder come from one logger: try the time form the last file used
            # first (only the order changes; every form is still tried)
            run.parser._formats = [*(f for f in forms if f in run.parser._formats),
                                   *(f for f in run.parser._formats if f not in forms)]
        m = run.mapping
        if "cell_id" not in m and not {"lat", "lon"} <= m.keys():
            run.abort()
            raise InputError(run.path, "needs a serving cell column (cell_id, RAWCELLID, ECI ...) "
                             "or lat and lon columns (found: "
                             f"{', '.join(run.src.columns[:12])})", column="cell_id")
        index = len(files)

        def process(raw: Any, run: Any = run, index: int = index) -> pl.DataFrame:
            values, checks = run.convert(raw)
            frame = pl.DataFrame(values).with_columns(
                # loggers write "-" for "no value" in text columns too (a cell id, the mode)
                pl.when(pl.col(c).str.to_lowercase().is_in(list(NULL_TOKENS))).then(None)
                .otherwise(pl.col(c)).alias(c) for c in ("cell_id", "tech"))
            lat, lon = frame.get_column("lat"), frame.get_column("lon")
            no_fix = ((lat == 0.0) & (lon == 0.0)).fill_null(False)
            half = lat.is_not_null() ^ lon.is_not_null()
            clear = no_fix | half
            has_pos = lat.is_not_null() & lon.is_not_null() & ~clear
            tech = frame.get_column("tech")
            other = tech.is_not_null() & ~tech.str.to_lowercase().str.strip_chars().is_in(
                list(allowed))
            checks.add(other, _TECH_REASON, tech)
            checks.add(frame.get_column("cell_id").is_null() & ~has_pos,
                       "lat/lon: no position and no serving cell")
            ok = ~checks.failing()
            counts["no_fix"] += int((no_fix & ok).sum())
            counts["half"] += int((half & ok).sum())
            frame = frame.with_columns(
                pl.when(clear).then(None).otherwise(pl.col("lat")).alias("lat"),
                pl.when(clear).then(None).otherwise(pl.col("lon")).alias("lon"),
                pl.lit(index, pl.Int32).alias("file_index"),
                pl.Series("line", raw.lines, dtype=pl.Int64),
            )
            return run.split(raw, frame, checks)

        df = run.run_all(process, _schema())
        forms = list(run.parser._formats)
        for message, n in run.tally.counts.items():
            tally.add(message, n, run.tally.examples.get(message, []))
        rep = sub.reports.pop("samples")
        rej = sub.rejects.pop("samples", None)
        if rej is not None and rej.height:
            rejects.append(rej.select(pl.lit(rel).alias("file"), pl.all()))
        for note in rep.notes:
            notes[note] += 1
        files.append({"file": rel, "rows_read": rep.rows_read, "rows_accepted": rep.rows_accepted,
                      "rows_rejected": rep.rows_rejected, "sha256": rep.sha256,
                      "encoding": rep.encoding, "detected": rep.detected})
        digest.update(f"{rel}\0{rep.sha256}\n".encode())
        encodings.append(rep.encoding)
        totals["read"] += rep.rows_read
        totals["accepted"] += rep.rows_accepted
        totals["rejected"] += rep.rows_rejected
        if df.height:
            frames.append(df.select(list(_schema())))
    if totals["read"] == 0:
        raise InputError(name, "no data rows in any samples file")

    rejects_path = None
    rej_frame = (pl.concat(rejects, how="diagonal_relaxed") if rejects
                 else pl.DataFrame(schema={"file": pl.String, "line": pl.Int64, "reason": pl.String}))
    if ing.rejects_dir is not None:
        target_path = ing.rejects_dir / "samples.csv"
        if rej_frame.height:
            ing.rejects_dir.mkdir(parents=True, exist_ok=True)
            rejects_path = str(write_csv(target_path, rej_frame))
        elif target_path.exists():
            target_path.unlink()   # a stale file of an earlier run into the same staging folder
    else:
        ing.rejects["samples"] = rej_frame

    n_read = sum(1 for f in files if "skipped" not in f)
    n_skipped = len(files) - n_read
    out_notes = [f"{n_read} files read" + (f", {n_skipped} skipped (listed in files)"
                                           if n_skipped else "")]
    out_notes += [note if k == 1 else f"{note} ({k} files)" for note, k in sorted(notes.items())]
    if counts["no_fix"]:
        out_notes.append(f"lat/lon: {counts['no_fix']} samples at 0,0 (no GPS fix): position "
                         "cleared, kept for their cell's figures")
    if counts["half"]:
        out_notes.append(f"lat/lon: {counts['half']} samples with only one of lat/lon: position "
                         "cleared, kept for their cell's figures")
    report = SamplesReport(
        feed="samples", path=name,
        encoding=", ".join(sorted(set(encodings))),
        sha256=digest.hexdigest() if len(listing) > 1 or Path(name).is_dir()
        else files[0].get("sha256", ""),
        rows_read=totals["read"], rows_accepted=totals["accepted"],
        rows_rejected=totals["rejected"], seconds=round(time.perf_counter() - t0, 3),
        rejects_path=rejects_path, notes=out_notes, files=files,
        detected=_common([f["detected"] for f in files if "detected" in f]),
        reject_reasons=tally.top(),
    )
    if report.rows_read != report.rows_accepted + report.rows_rejected:  # pragma: no cover
        raise AssertionError(f"samples: row accounting does not close: {report}")
    ing.reports["samples"] = report
    if ing.verdicts:   # as for every feed: all rows rejected (or nearly) stops the run
        err = feed_verdict(Path(name), "samples", report.rows_read, report.rows_rejected, tally,
                           max_share=ing.config.ingest.max_reject_share)
        if err is not None:
            raise err
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=_schema())
    return SamplesFeed(frame=frame, files=files, report=report)


def _common(detected: list[dict[str, Any]]) -> dict[str, Any]:
    """How the files were read, when every file was read the same way; else where to look."""
    if not detected:
        return {}
    first = detected[0]
    if all(d == first for d in detected[1:]):
        return first
    return {"varies": "per file: see files[].detected"}
