"""The archive as a Spark DataFrame, in the shape the jobs and detectors read.

One projection, applied once right after the Parquet scan:

* addresses (Parquet ``UINT_64``, which Spark reads as ``DECIMAL(20,0)``) become
  ``BIGINT`` with the same 64 bits (two's complement: ``x - 2^64`` when ``x >= 2^63``),
  measured cheaper than carrying decimals through every shuffle (see
  :mod:`portradar.archive.parquet_archive`);
* ``ts_us``: microseconds since the epoch, the integer time every detector uses;
* the nullable header fields take ``-1`` and the integer types the embedded runner's
  load query gives them (``portradar.scan.detect._LOAD_COLUMNS``), so a detector gets
  the same numpy dtypes in an executor as in the embedded store;
* ``outcome`` text becomes its :class:`~portradar.events.schema.Outcome` code.
"""

from __future__ import annotations

import os
from typing import Any

from portradar.events.schema import Outcome

#: Address columns (unsigned 64-bit in the archive, signed bits in Spark).
ADDRESS_COLUMNS = ("src_hi", "src_lo", "dst_hi", "dst_lo")
_TWO63 = "CAST(9223372036854775808 AS DECIMAL(20,0))"
_TWO64 = "CAST(18446744073709551616 AS DECIMAL(21,0))"


def signed_bits(column: str) -> str:
    """SQL: an unsigned 64-bit decimal column as the BIGINT with the same bits."""
    return (f"CAST(CASE WHEN {column} >= {_TWO63} THEN {column} - {_TWO64} "
            f"ELSE {column} END AS BIGINT)")


def read_archive(spark: Any, root: str | os.PathLike[str]) -> Any:
    """The archive's events with the columns above (lazily: nothing is read yet)."""
    from portradar.archive.parquet_archive import check_version

    check_version(root)
    raw = spark.read.option("basePath", os.fspath(root)).parquet(os.fspath(root))
    outcome = "CASE outcome " + " ".join(
        f"WHEN '{o.label}' THEN {int(o)}" for o in Outcome) + " ELSE 0 END"
    exprs = [
        "CAST(unix_micros(ts) AS BIGINT) AS ts_us", "day", "sensor",
        *(f"{signed_bits(c)} AS {c}" for c in ADDRESS_COLUMNS),
        "CAST(proto AS SMALLINT) AS proto",
        "CAST(coalesce(sport, -1) AS INT) AS sport",
        "CAST(coalesce(dport, -1) AS INT) AS dport",
        "CAST(coalesce(tcp_flags, -1) AS SMALLINT) AS tcp_flags",
        "CAST(coalesce(icmp_type, -1) AS SMALLINT) AS icmp_type",
        f"CAST({outcome} AS TINYINT) AS outcome",
        "CAST(packets AS BIGINT) AS packets",
        "CAST(coalesce(ttl, -1) AS SMALLINT) AS ttl",
        "CAST(coalesce(ip_id, -1) AS INT) AS ip_id",
        "CAST(coalesce(tcp_window, -1) AS INT) AS tcp_window",
        "CAST(coalesce(tcp_seq, -1) AS BIGINT) AS tcp_seq",
        # the store's activity_port macro: dport for port protocols, ICMP type for ICMP
        """CAST(CASE WHEN proto IN (6, 17, 132, 136) THEN coalesce(dport, -1)
                WHEN proto IN (1, 58) THEN coalesce(icmp_type, -1) ELSE -1 END AS INT)
           AS port""",
    ]
    return raw.selectExpr(*exprs)
