"""One port's history, bucket by bucket: records, distinct sources, distinct targets."""

from __future__ import annotations

from typing import Any

from portradar.activity.periods import proto_number, table_for
from portradar.store.duckdb_store import Store, first_row


def port_history(
    store: Store,
    port: int,
    *,
    proto: str = "tcp",
    period: str = "day",
    last: int = 30,
    sensor: str = "*",
) -> list[dict[str, Any]]:
    """The last ``last`` buckets of data for one port (zero-filled between its buckets)."""
    store.refresh_activity()
    table = table_for(period)
    step = "INTERVAL 1 HOUR" if period == "hour" else "INTERVAL 1 DAY"
    cast = "TIMESTAMP" if period == "hour" else "DATE"
    end = first_row(store.con.execute(
        f"SELECT max(bucket) FROM {table} WHERE sensor = ?", [sensor]
    ))[0]
    if end is None:
        return []
    rows = store.con.execute(
        f"""WITH span AS (
                SELECT CAST(unnest(generate_series(CAST(? AS {cast}) - ({last} - 1) * {step},
                                                   CAST(? AS {cast}), {step})) AS {cast})
                       AS bucket),
            data AS (
                SELECT bucket, records, sources, targets FROM {table}
                WHERE sensor = ? AND proto = ? AND port = ?)
            SELECT s.bucket, coalesce(d.records, 0), coalesce(d.sources, 0),
                   coalesce(d.targets, 0)
            FROM span s LEFT JOIN data d USING (bucket) ORDER BY s.bucket""",
        [end, end, sensor, proto_number(proto), port],
    ).fetchall()
    return [
        {"bucket": str(b), "records": r, "sources": s, "targets": t} for b, r, s, t in rows
    ]
