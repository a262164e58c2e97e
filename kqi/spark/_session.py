"""The Spark session kqi runs on: the caller's active session, or one built from ``[engine]``."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from kqi.config import Config, spark_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

#: settings kqi needs whatever the platform's defaults: the same time zone for parsing and days as
#: the local engine (set per run from ``config.ingest.timezone``), and the driver's Arrow transfer
#: for the collected per-cell results
_REQUIRED = {"spark.sql.execution.arrow.pyspark.enabled": "true",
             # a bad value is a rejected row with its reason, never a failed job: kqi's casts
             # and parses read invalid input as null and check for it (the local rules)
             "spark.sql.ansi.enabled": "false"}
#: defaults for a session kqi starts itself (a laptop or a CI machine); [engine.spark] overrides
_LOCAL_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "2g",
    # kqi's validation projections are wide: let the JIT compile the generated methods
    "spark.driver.extraJavaOptions": "-XX:-DontCompileHugeMethods",
}


def get_session(config: Config | None = None) -> SparkSession:
    """The active Spark session (a platform job's own), or a new one from ``config.engine``.

    ``engine.master`` picks the master (``--spark-master``); without it an active session is
    used as it is, else ``SPARK_MASTER`` or ``local[*]``. ``[engine.spark]`` settings go to the
    builder as they are. The session's time zone is set to ``config.ingest.timezone`` so that
    naive timestamps, hours and days read as the local engine reads them.
    """
    from pyspark.sql import SparkSession

    cfg = config or Config()
    settings = spark_settings(cfg.engine)
    active = SparkSession.getActiveSession()
    if active is not None and not cfg.engine.master:
        spark = active
        for key, value in settings.items():
            _set_runtime(spark, key, value)
    else:
        master = cfg.engine.master or os.environ.get("SPARK_MASTER", "") or "local[*]"
        builder = SparkSession.builder.master(master).appName("kqi")
        for key, value in {**_LOCAL_DEFAULTS, **settings}.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        log.info("Spark %s session on %s", spark.version, spark.sparkContext.master)
    for key, value in _REQUIRED.items():
        _set_runtime(spark, key, value)
    spark.conf.set("spark.sql.session.timeZone", cfg.ingest.timezone)
    return spark


def _set_runtime(spark: SparkSession, key: str, value: str) -> None:
    """Set a runtime SQL setting; static ones (memory, master) are left to the session's owner."""
    try:
        spark.conf.set(key, value)
    except Exception:  # a static setting of a running session: say so, do not fail the job
        log.warning("Spark setting %s cannot change in a running session; left as it is", key)
