"""Per-port activity on Spark: the store's ``port_activity_hourly``/``_daily`` and new sources.

The same figures as :meth:`portradar.store.duckdb_store.Store._aggregate_dirty` and
:mod:`portradar.activity.new_sources`, for every bucket (hour, day) and scope (each
sensor, and ``'*'`` for all sensors together): records, packets, and the exact number
of distinct sources and targets, counted with ``countDistinct`` on the address pair
(exact; the store keys non-/64 IPv6 by a 63-bit hash, equal unless two such addresses
collide, a chance that needs billions of them).

State is partitioned by the group key (bucket, sensor, protocol, port): Spark's shuffle
puts each group in one task, and distinct counts never have to be merged across tasks
(docs/scale.md).  New sources (not seen on the port in the previous
:data:`~portradar.activity.new_sources.LOOKBACK_DAYS` days) are a window ``lag`` over
(scope, protocol, port, source) ordered by bucket, the store's query in Spark SQL.
"""

from __future__ import annotations

from typing import Any

from portradar.activity.new_sources import LOOKBACK_DAYS

#: Microseconds per hour.
HOUR_US = 3_600_000_000

_BUCKET = {
    "hour": "CAST(timestamp_micros(u * 3600000000) AS TIMESTAMP_NTZ)",
    "day": "date_from_unix_date(CAST(u AS INT))",
}


def _units(events: Any) -> Any:
    """Events with ``h`` (hours since the epoch) and ``d`` (days)."""
    from pyspark.sql import functions as F

    h = F.expr(f"div(ts_us, {HOUR_US})")
    return events.withColumn("h", h).withColumn("d", F.expr("div(h, 24)"))


def activity(events: Any, period: str) -> Any:
    """Rows of ``port_activity_hourly`` (``period='hour'``) or ``_daily``, both scopes."""
    from pyspark.sql import functions as F

    unit = "h" if period == "hour" else "d"
    ev = _units(events).withColumnRenamed(unit, "u")
    out = None
    for per_sensor in (True, False):
        keys = ["u", "sensor", "proto", "port"] if per_sensor else ["u", "proto", "port"]
        agg = ev.groupBy(*keys).agg(
            F.count(F.lit(1)).alias("records"), F.sum("packets").alias("packets"),
            F.countDistinct("src_hi", "src_lo").alias("sources"),
            F.countDistinct("dst_hi", "dst_lo").alias("targets"))
        if not per_sensor:
            agg = agg.withColumn("sensor", F.lit("*"))
        agg = agg.selectExpr(f"{_BUCKET[period]} AS bucket", "sensor",
                             "CAST(proto AS SMALLINT) AS proto", "port",
                             "CAST(records AS BIGINT) AS records",
                             "CAST(packets AS BIGINT) AS packets",
                             "CAST(sources AS BIGINT) AS sources",
                             "CAST(targets AS BIGINT) AS targets")
        out = agg if out is None else out.unionByName(agg)
    return out


def new_sources(events: Any, period: str, lookback_days: int = LOOKBACK_DAYS) -> Any:
    """Rows of ``port_new_sources_hourly``/``_daily``: non-zero counts only."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    unit = "h" if period == "hour" else "d"
    span = lookback_days * (24 if period == "hour" else 1)
    ev = _units(events).withColumnRenamed(unit, "u")
    out = None
    for per_sensor in (True, False):
        part = ["sensor"] if per_sensor else []
        seen = ev.select("u", *part, "proto", "port", "src_hi", "src_lo").distinct()
        w = Window.partitionBy(*part, "proto", "port", "src_hi", "src_lo").orderBy("u")
        fresh = (seen.withColumn("prev", F.lag("u").over(w))
                 .where(F.col("prev").isNull() | (F.col("prev") < F.col("u") - span))
                 .groupBy("u", *part, "proto", "port").agg(F.count(F.lit(1)).alias("n")))
        if not per_sensor:
            fresh = fresh.withColumn("sensor", F.lit("*"))
        fresh = fresh.selectExpr(f"{_BUCKET[period]} AS bucket", "sensor",
                                 "CAST(proto AS SMALLINT) AS proto", "port",
                                 "CAST(n AS BIGINT) AS new_sources")
        out = fresh if out is None else out.unionByName(fresh)
    return out


#: The result sets this job writes, by name (a directory under ``--out`` and a table).
OUTPUTS = {
    "port_activity_hourly": lambda ev: activity(ev, "hour"),
    "port_activity_daily": lambda ev: activity(ev, "day"),
    "port_new_sources_hourly": lambda ev: new_sources(ev, "hour"),
    "port_new_sources_daily": lambda ev: new_sources(ev, "day"),
}


def run(events: Any, out: str, *, mode: str = "overwrite") -> dict[str, str]:
    """Compute and write every output as Parquet under ``out``; returns name -> path."""
    import os

    paths = {}
    for name, build in OUTPUTS.items():
        path = os.path.join(out, name)
        build(events).write.mode(mode).parquet(path)
        paths[name] = path
    return paths
