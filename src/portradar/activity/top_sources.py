"""Top talkers: the sources that sent the most probes, with their breadth."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from portradar.activity.periods import proto_number
from portradar.events.addresses import format_addresses
from portradar.store.duckdb_store import Store


def top_sources(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    port: int | None = None,
    proto: str | None = None,
    sensor: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Sources ranked by probes, with distinct ports and targets and first/last seen."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts < ?")
        params.append(until)
    if port is not None:
        where.append("activity_port(proto, dport, icmp_type) = ?")
        params.append(port)
    if proto is not None:
        where.append("proto = ?")
        params.append(proto_number(proto))
    if sensor is not None:
        where.append("sensor_id = (SELECT id FROM names WHERE kind = 'sensor' AND text = ?)")
        params.append(sensor)
    params.append(limit)
    rows = store.con.execute(
        f"""SELECT src_hi, src_lo, count(*) AS probes,
                   count(DISTINCT (proto, activity_port(proto, dport, icmp_type))) AS ports,
                   count(DISTINCT (dst_hi, dst_lo)) AS targets,
                   count(DISTINCT sensor_id) AS sensors, min(ts), max(ts)
            FROM event_rows WHERE {' AND '.join(where)}
            GROUP BY src_hi, src_lo
            ORDER BY probes DESC, ports DESC, src_hi, src_lo LIMIT ?""",
        params,
    ).fetchall()
    texts = format_addresses([r[0] for r in rows], [r[1] for r in rows])
    return [
        {"source": t, "probes": r[2], "ports": r[3], "targets": r[4], "sensors": r[5],
         "first_seen": _utc(r[6]), "last_seen": _utc(r[7])}
        for t, r in zip(texts, rows, strict=True)
    ]


def _utc(value: datetime | None) -> str | None:
    return value.replace(tzinfo=UTC).isoformat() if value is not None else None
