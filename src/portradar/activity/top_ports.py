"""The Storm Center's Top 10: the busiest ports of a period and their change.

For the chosen bucket (the latest one with data unless ``at`` is given) the ports are
ranked by records, distinct sources or distinct targets, each with the same figures
of the previous bucket and the relative change, as DShield's port reports show them.
Counts come from the per-port activity tables, so they are exact for one bucket.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from portradar.activity.periods import proto_name, proto_number, table_for
from portradar.errors import PortradarError
from portradar.store.duckdb_store import Store, first_row

RANK_BY = ("records", "sources", "targets")


def latest_bucket(store: Store, period: str, sensor: str = "*") -> Any:
    table = table_for(period)
    return first_row(store.con.execute(
        f"SELECT max(bucket) FROM {table} WHERE sensor = ?", [sensor]
    ))[0]


def top_ports(
    store: Store,
    *,
    period: str = "day",
    at: date | datetime | None = None,
    by: str = "records",
    proto: str | None = None,
    sensor: str = "*",
    limit: int = 10,
) -> list[dict[str, Any]]:
    """Top ports of one bucket with the previous bucket's figures and the change."""
    if by not in RANK_BY:
        raise PortradarError(f"cannot rank by {by!r} (use {', '.join(RANK_BY)})")
    store.refresh_activity()
    table = table_for(period)
    bucket = at if at is not None else latest_bucket(store, period, sensor)
    if bucket is None:
        return []
    step = "INTERVAL 1 HOUR" if period == "hour" else "INTERVAL 1 DAY"
    cast = "TIMESTAMP" if period == "hour" else "DATE"
    params: list[Any] = [bucket, sensor]
    where = ""
    if proto:
        where = "AND proto = ?"
        params.append(proto_number(proto))
    params += [bucket, sensor, limit]
    rows = store.con.execute(
        f"""WITH cur AS (
                SELECT proto, port, records, sources, targets FROM {table}
                WHERE bucket = CAST(? AS {cast}) AND sensor = ? {where}),
            prev AS (
                SELECT proto, port, records, sources, targets FROM {table}
                WHERE bucket = CAST(CAST(? AS {cast}) - {step} AS {cast}) AND sensor = ?)
            SELECT c.proto, c.port, c.records, c.sources, c.targets,
                   p.records, p.sources, p.targets
            FROM cur c LEFT JOIN prev p USING (proto, port)
            ORDER BY c.{by} DESC, c.records DESC, c.proto, c.port
            LIMIT ?""",
        params,
    ).fetchall()
    out = []
    for rank, r in enumerate(rows, 1):
        item: dict[str, Any] = {
            "rank": rank, "bucket": str(bucket), "proto": proto_name(r[0]), "port": r[1],
            "records": r[2], "sources": r[3], "targets": r[4],
        }
        for i, name in enumerate(RANK_BY):
            before = r[5 + i]
            item[f"prev_{name}"] = before
            item[f"change_{name}"] = None if not before else round((r[2 + i] - before) / before, 4)
        out.append(item)
    return out
