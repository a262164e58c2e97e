"""The pipeline's Spark engine: what :func:`kqi.run` calls with ``[engine] name = "spark"``.

The app tests and the hourly KPIs (the feeds that grow with the network and the window) are
validated and aggregated on Spark; the per cell x service x day counts and the per-cell evidence
come back to the driver and go through the same local stages as a local run (flagging from the
counts, diagnosis, clustering, linking, work orders, history, maps). The cells, complaints and
subscribers tables are small and are read by the local ingest; given as URIs, Spark fetches them
first (their rejects then number rows, not lines).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from kqi.config import Config

from ._feeds import TestCounts, count_tests, kpi_evidence_job, to_polars
from ._read import is_uri, open_source
from ._session import get_session

log = logging.getLogger(__name__)


class _CountsFeed:
    """The tests feed as the pipeline's accumulator takes it: one batch of per cell x service x
    day counts (the pre-aggregated batch form), the feed's columns for the KQI-column check."""

    def __init__(self, tc: TestCounts) -> None:
        self.kind = tc.kind
        self.path = tc.path
        self.columns = tc.columns
        self.batches = iter([tc.counts])
        self.cell_ids = tc.cell_ids

    def count(self, acc: Any) -> None:
        """Count the batch into ``acc`` (as :meth:`kqi.ingest.TestsFeed.count`)."""
        for batch in self.batches:
            acc.add(batch)


class SparkEngine:
    """Runs the heavy aggregations of one run on Spark.

    Parameters
    ----------
    config : Config
        ``config.engine`` picks the session (master, settings); the rules come from the rest.
    ing : kqi.ingest.Ingest
        The run's ingest: the Spark feeds' reports and rejects go where the local ones go.
    """

    def __init__(self, config: Config, ing: Any) -> None:
        self.config = config
        self.ing = ing
        self.spark = get_session(config)
        self.evidence: pl.DataFrame | None = None

    def tests(self, source: Any, cells: pl.DataFrame) -> _CountsFeed:
        """Validated tests counted per cell x service x day on Spark (a feed of one batch)."""
        tc = count_tests(self.spark, source, self.config, cell_ids=cells["cell_id"],
                         ing=self.ing, rejects_dir=self.ing.rejects_dir)
        return _CountsFeed(tc)

    def kpis(self, source: Any, cells: pl.DataFrame) -> pl.DataFrame:
        """Validated KPIs reduced on Spark; sets :attr:`evidence` (per cell) and returns the
        per cell x day RRC maxima (what the complaint stage's subscriber estimate reads)."""
        res = kpi_evidence_job(self.spark, source, self.config, cell_ids=cells["cell_id"],
                               ing=self.ing, rejects_dir=self.ing.rejects_dir)
        self.evidence = res.evidence
        return res.daily_users

    def small(self, source: Any, feed: str) -> Any:
        """A small feed for the local ingest: a local file as it is, a URI fetched by Spark."""
        if source is None or not (isinstance(source, str) and is_uri(source)):
            return source
        src = open_source(self.spark, source, feed, self.config.ingest.encoding)
        frame = src.frame.drop("_file", "_line", "_malformed", "_fields")
        log.info("%s: fetched %s from Spark for the local ingest", feed, source)
        return to_polars(frame)


def check_source(source: Any, feed: str) -> None:
    """The Spark engine's early input check: local paths must exist (a file, a folder of parts
    or a glob); URIs are passed through."""
    from ._read import check_path

    if isinstance(source, str | Path):
        check_path(source, feed)
