"""The SparkSession the jobs run in, configured for portradar's data.

Defaults and why:

* ``spark.sql.session.timeZone = UTC``: event time is UTC everywhere in portradar; any
  other session zone would shift hour and day buckets.
* ``spark.sql.sources.partitionColumnTypeInference.enabled = false``: the archive's
  ``day`` and ``sensor`` directories stay strings (a sensor named ``123`` would
  otherwise become an integer and a mixed archive fail to read).
* ``spark.sql.execution.arrow.maxRecordsPerBatch = 1,000,000``: the Arrow batch handed to
  a detector; the embedded runner analyses partitions of 1 M events
  (``portradar.scan.detect.PARTITION_EVENTS``, measured fastest there).
* ``spark.sql.shuffle.partitions``: ``shuffle_partitions`` (default 8, plenty for
  ``local[2]``; a cluster sets 2 to 4 per executor core).
* In local mode the driver binds to 127.0.0.1 and the web UI is off: tests and the
  benchmark open no port on a real interface.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

#: Shuffle partitions when none is given (2 to 4 per core of a ``local[2]`` run).
DEFAULT_SHUFFLE_PARTITIONS = 8
#: Records per Arrow batch handed to the detectors (see the module doc).
ARROW_BATCH_RECORDS = 1_000_000


def spark_available() -> str | None:
    """None when PySpark and a Java runtime are there, else what is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install pyspark)"
    try:
        import pandas  # noqa: F401  (pyspark's applyInArrow requires it)
    except ImportError:
        return "pandas is not installed (pyspark's Arrow UDFs need it: pip install pandas)"
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and os.path.exists(os.path.join(java_home, "bin", "java"))) and \
            shutil.which("java") is None:
        return "no Java runtime (install default-jre-headless or set JAVA_HOME)"
    return None


def build_session(master: str = "local[2]", *, app_name: str = "portradar",
                  shuffle_partitions: int = DEFAULT_SHUFFLE_PARTITIONS,
                  conf: dict[str, str] | None = None) -> Any:
    """A SparkSession (reused if one is running) with the settings above."""
    from pyspark.sql import SparkSession

    from portradar.errors import PortradarError

    missing = spark_available()
    if missing:
        raise PortradarError(f"cannot run Spark: {missing}")
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch",
                       str(ARROW_BATCH_RECORDS))
               .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false"))
    if master.startswith("local"):
        builder = (builder.config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1"))
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
