"""Scanner detection on Spark: the embedded detectors, run inside the executors.

Stage 1 (per source, sequential state): the events are grouped by the source's network
(its /24 for IPv4, /48 for IPv6: the embedded runner's partition unit,
``portradar.scan.detect.NET_KEY_SQL``, because campaign rule 1 counts a network's
sources together; many networks per group, ``network % groups``) and each group is
handed, as one Arrow table, to the very function
the embedded runner calls per partition (``portradar.scan.detect._analyse``: probes,
TRW, fan-out, slow scan, profile, classification, backscatter).  IPv6 sources are also
grouped by /64 (``prefix64``), as the embedded runner's second pass does.  Out come
Arrow tables of verdicts and profiles (``groupBy(...).applyInArrow``).

Stage 2 (across sources): campaigns regroup the profiles in the store
(:func:`portradar.spark.results.load_scanners` calls the embedded code); the members
that no detector flagged get a verdict from their own events, read back from the archive
for just those sources (:func:`lonely_loader`).

Within a group the rows are sorted by (time, target, ports) before the detectors see
them: Spark's shuffle does not keep the file order, and the detectors sort by (source,
time) with a stable sort, so without it two probes of one second could swap.

**Replies.**  The embedded runner drops reply packets (a packet answering a request the
other way, :mod:`portradar.scan.replies`), a join across sources it does in DuckDB.
This job checks whether any destination in the archive also sends (``answering``); a
log of inbound probes (firewalls, telescopes) never does and the results are the
embedded ones.  When it does, the job still runs but says so: replies are then counted
as probes (a documented gap, docs/scale.md).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import pyarrow as pa

from portradar.spark.arrow_bridge import conform, safe_schema, unsigned_numpy

#: Columns handed to the detectors, with the embedded load query's numpy dtypes.
LOAD_COLUMNS = ("ts_us", "src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "sport", "dport",
                "tcp_flags", "icmp_type", "outcome", "packets", "ttl", "ip_id", "tcp_window",
                "tcp_seq", "sensor_code")
_ADDRESSES = ("src_hi", "src_lo", "dst_hi", "dst_lo")


@functools.cache
def result_schema() -> pa.Schema:
    """Arrow schema of stage 1's output (Spark-safe): a verdict row or a profile row.

    The verdict columns are the ``scanners`` table's (without ``evidence``, written by
    the store from the others, plus ``dominant``), the profile-only columns are
    ``scan_profiles``'; ``record`` says which a row is.
    """
    from importlib.resources import files

    import duckdb

    con = duckdb.connect()
    con.execute(files("portradar.scan").joinpath("schema.sql").read_text())
    scanners = con.sql("SELECT * EXCLUDE (evidence) FROM scanners LIMIT 0").to_arrow_table()
    profiles = con.sql("SELECT port_sig, target_sig, net_group, flagged FROM scan_profiles "
                       "LIMIT 0").to_arrow_table()
    con.close()
    fields = [*scanners.schema, pa.field("dominant", pa.string()), *profiles.schema,
              pa.field("record", pa.string())]
    return safe_schema(pa.schema(fields))


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    """The group's rows as the embedded runner's numpy columns, in a fixed order."""
    raw = {name: table.column(name).to_numpy() for name in LOAD_COLUMNS
           if name not in _ADDRESSES}
    for name in _ADDRESSES:
        raw[name] = unsigned_numpy(table.column(name))
    order = np.lexsort((raw["sport"], raw["dport"], raw["proto"], raw["dst_lo"],
                        raw["dst_hi"], raw["ts_us"]))
    cols = {("ts" if k == "ts_us" else "sensor" if k == "sensor_code" else k): v[order]
            for k, v in raw.items()}
    cols["rid"] = np.zeros(len(order), np.int64)
    return cols


def analyse_group(table: pa.Table, *, config: Any, prefix64: bool) -> pa.Table:
    """Stage 1 for one group: Arrow in, Arrow out (runs in an executor)."""
    from portradar.scan import detect

    schema = result_schema()
    table = table.select(list(LOAD_COLUMNS))
    if table.num_rows == 0:
        return schema.empty_table()
    dark = detect.CidrSet.parse(config.dark) if config.dark else None
    benign = detect.BenignList.parse(config.benign) if config.benign else None
    result = detect._analyse(_columns(table), detect._NONE, config, dark, benign,
                             prefix64=prefix64)
    parts = []
    for kind, rows in (("scanner", result.rows), ("profile", result.profiles)):
        if rows is not None and rows.num_rows:
            parts.append(rows.append_column("record", pa.array([kind] * rows.num_rows)))
    if not parts:
        return schema.empty_table()
    merged = pa.concat_tables(parts, promote_options="permissive")
    return conform(merged, schema)


def with_sensor_codes(events: Any) -> Any:
    """Events with ``sensor_code``: the sensor's index among the archive's sorted names
    (the detectors count distinct sensors; any one-to-one code does)."""
    from pyspark.sql import functions as F

    names = sorted(r[0] for r in events.select("sensor").distinct().collect())
    mapping = F.create_map(*[x for i, n in enumerate(names) for x in (F.lit(n), F.lit(i))])
    return events.withColumn("sensor_code", mapping[F.col("sensor")].cast("int"))


def answering(events: Any) -> bool:
    """Whether some destination in the archive also sends (see the module doc)."""
    dst = events.selectExpr("dst_hi AS src_hi", "dst_lo AS src_lo").distinct()
    return bool(events.select("src_hi", "src_lo").join(dst, ["src_hi", "src_lo"], "left_semi")
                .limit(1).count())


def group_count(events: Any) -> int:
    """How many groups stage 1 makes: about :data:`~portradar.scan.detect.PARTITION_EVENTS`
    events each (the embedded runner's measured best part size), and at least two per
    shuffle partition so every core has work."""
    import math

    from portradar.scan.detect import PARTITION_EVENTS

    n = events.count()  # from the Parquet footers: no scan
    cores = int(events.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    return max(2 * cores, math.ceil(n / PARTITION_EVENTS))


def verdicts(events: Any, config: Any, groups: int | None = None) -> Any:
    """Stage 1: a DataFrame of verdict and profile rows (:func:`result_schema`).

    Whole networks go to one group (``network % groups``, as the embedded runner's
    parts), many networks per group: one detector call per group, not per network.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    spark_schema = from_arrow_schema(result_schema())
    k = groups or group_count(events)
    ev = with_sensor_codes(events).select(*LOAD_COLUMNS)
    net = F.expr(f"""pmod(CASE WHEN src_hi = 0 THEN shiftrightunsigned(src_lo, 8)
                    ELSE shiftrightunsigned(src_hi, 16) | (1L << 62) END, {k})""")
    def per_network(table: pa.Table) -> pa.Table:
        return analyse_group(table, config=config, prefix64=False)

    def per_prefix64(table: pa.Table) -> pa.Table:
        return analyse_group(table, config=config, prefix64=True)

    # pyspark tells the Arrow flavour from the function's type hints: plain functions
    per_source = ev.groupBy(net.alias("net")).applyInArrow(per_network, schema=spark_schema)
    by_64 = F.expr(f"pmod(src_hi, {k})").alias("net")
    per_64 = ev.where("src_hi <> 0").groupBy(by_64).applyInArrow(per_prefix64,
                                                                 schema=spark_schema)
    return per_source.unionByName(per_64)


def run(events: Any, out: str, config: Any, *, mode: str = "overwrite",
        groups: int | None = None) -> dict[str, Any]:
    """Stage 1 written as ``scanners`` and ``scan_profiles`` Parquet under ``out``."""
    rows = verdicts(events, config, groups).cache()
    scanner_cols = [f.name for f in result_schema()
                    if f.name not in ("port_sig", "target_sig", "net_group", "flagged",
                                      "record")]
    profile_cols = ["src_hi", "src_lo", "first_seen", "last_seen", "probes", "port_keys",
                    "targets", "port_sig", "target_sig", "net_group", "flagged"]
    paths = {"scanners": os.path.join(out, "scanners"),
             "scan_profiles": os.path.join(out, "scan_profiles")}
    rows.where("record = 'scanner'").select(*scanner_cols).write.mode(mode).parquet(
        paths["scanners"])
    rows.where("record = 'profile'").select(*profile_cols).write.mode(mode).parquet(
        paths["scan_profiles"])
    rows.unpersist()
    return {"paths": paths, "answering": answering(events)}


def lonely_loader(spark: Any, events: Any) -> Any:
    """Stage 2's reader: the archive's events of the sources in the store's ``_lonely``."""
    from portradar.scan import detect
    from portradar.spark.arrow_bridge import as_signed

    def load(con: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
        keys = con.sql("SELECT src_hi, src_lo FROM _lonely").to_arrow_table()
        signed = pa.table({"src_hi": as_signed(keys.column("src_hi")),
                           "src_lo": as_signed(keys.column("src_lo"))})
        wanted = spark.createDataFrame(signed)
        from pyspark.sql import functions as F

        picked = (with_sensor_codes(events).join(F.broadcast(wanted), ["src_hi", "src_lo"],
                                                 "left_semi").select(*LOAD_COLUMNS))
        table = picked.toArrow()
        return _columns(table), detect._NONE

    return load
