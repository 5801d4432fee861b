"""Spike detection on Spark: the embedded detector, one port per task.

A spike's state (baseline, CUSUM, open episode) belongs to one series (protocol, port;
all sensors together and each sensor alone), and the per-sensor confirmation and the
single-sensor rises only ever compare series of the same port.  So the activity rows
are grouped by (protocol, port) (many ports per group, ``port key % shuffle
partitions``: one detector call per group, the detector handles any set of ports)
and each group, as one Arrow table, becomes the two matrices
:func:`portradar.spikes.activity_matrix.from_rows` builds for the embedded
``portradar spikes`` and goes through :meth:`SpikeDetector.detect` unchanged.  The time
axis (first and last bucket) and the sensor names are the whole store's, as
:func:`portradar.spikes.activity_matrix.from_store` has them, so every bucket index and
sensor share is the embedded one.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

#: One spike row: ``Spike.as_row`` (what ``portradar spikes`` prints) plus the period.
SPIKE_SCHEMA = pa.schema([
    ("period", pa.string()), ("proto", pa.string()), ("port", pa.int32()),
    ("score", pa.float64()), ("kind", pa.string()), ("onset", pa.string()),
    ("alarm", pa.string()), ("end", pa.string()), ("status", pa.string()),
    ("ending", pa.string()), ("doubling_hours", pa.float64()),
    ("peak_sources", pa.int64()), ("baseline_sources", pa.float64()),
    ("excess_sources", pa.int64()), ("new_share", pa.float64()), ("sensors", pa.string()),
    ("sensor_share", pa.float64()), ("sensor_names", pa.string()), ("scope", pa.string()),
])


def detect_port(table: pa.Table, *, period: str, lo: int, hi: int,
                sensors: tuple[str, ...], has_new: bool, with_sensors: bool = True,
                ) -> pa.Table:
    """Spikes of a group of (protocol, port) series: Arrow activity rows in, spike rows out."""
    from portradar.spikes.activity_matrix import from_rows
    from portradar.spikes.spike_detector import SpikeDetector

    star = pc.equal(table.column("sensor"), "*")
    total = from_rows(table.filter(star), period=period, lo=lo, hi=hi, has_new=has_new,
                      sensors=())
    by_sensor = None
    if with_sensors:
        by_sensor = from_rows(table.filter(pc.invert(star)), period=period, lo=lo, hi=hi,
                              has_new=has_new, sensors=sensors)
    found = SpikeDetector.for_period(period).detect(total, by_sensor)
    rows = [{"period": period, **s.as_row(total)} for s in found]
    return pa.Table.from_pylist(rows, schema=SPIKE_SCHEMA)


def spikes(activity: Any, new_sources: Any | None, period: str, *,
           with_sensors: bool = True) -> Any:
    """A DataFrame of spike rows from the job's activity (and new-source) DataFrames."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    rows = activity.withColumn("t", F.expr("CAST(unix_timestamp(CAST(bucket AS TIMESTAMP)) "
                                           "AS BIGINT)"))
    has_new = new_sources is not None
    if has_new:
        rows = rows.join(new_sources, ["bucket", "sensor", "proto", "port"], "left") \
            .withColumn("new_sources", F.coalesce("new_sources", F.lit(0)))
    else:
        rows = rows.withColumn("new_sources", F.lit(0))
    rows = rows.select("t", "sensor", "proto", "port", "records", "sources", "targets",
                       "new_sources").cache()
    bounds = rows.agg(F.min("t"), F.max("t")).collect()[0]
    names = tuple(sorted(r[0] for r in rows.select("sensor").distinct().collect()
                         if r[0] != "*"))
    if bounds[0] is None:
        return rows.sparkSession.createDataFrame([], from_arrow_schema(SPIKE_SCHEMA))
    lo, hi = int(bounds[0]), int(bounds[1])

    # pyspark tells the Arrow flavour from the function's type hints: a plain function
    def per_port(table: pa.Table) -> pa.Table:
        return detect_port(table, period=period, lo=lo, hi=hi, sensors=names,
                           has_new=has_new, with_sensors=with_sensors)

    k = int(rows.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    return rows.groupBy(F.expr(f"pmod(proto * 65536 + port, {k})")).applyInArrow(
        per_port, schema=from_arrow_schema(SPIKE_SCHEMA))


def run(activity_daily: Any, new_daily: Any | None, activity_hourly: Any | None,
        new_hourly: Any | None, out: str, *, mode: str = "overwrite") -> str:
    """Daily (and hourly, when given) spikes written as ``detected_spikes`` under ``out``."""
    found = spikes(activity_daily, new_daily, "day")
    if activity_hourly is not None:
        found = found.unionByName(spikes(activity_hourly, new_hourly, "hour"))
    path = os.path.join(out, "detected_spikes")
    found.write.mode(mode).parquet(path)
    return path

