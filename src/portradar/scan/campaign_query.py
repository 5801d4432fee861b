"""The stored campaigns as rows, shared by ``portradar campaigns`` / ``campaign ID`` and the API.

A campaign (:mod:`portradar.scan.campaigns`) keeps its rule, its member count, its span,
probes, targets, commonest tool / shape / type and a hash of its port set; the ports
themselves are read back from the members' events during the campaign
(:func:`campaign_ports`, one query for a page of campaigns).

>>> from portradar.store.duckdb_store import Store
>>> campaign_rows(Store.open(":memory:"), [], [], limit=10)
[]
"""

from __future__ import annotations

from typing import Any

from portradar.activity.periods import proto_name
from portradar.events.addresses import key_to_text

#: Ports named per campaign (its members' busiest; a port-set campaign has 3 or more).
CAMPAIGN_PORTS = 10

_CAMPAIGN_SQL = """SELECT campaign_id AS id, rule, members, first_seen, last_seen, probes,
                          port_keys, targets, tool, kind, type, network, example, evidence
                   FROM campaigns WHERE {where}
                   ORDER BY probes DESC, campaign_id LIMIT ? OFFSET ?"""


def has_campaigns(store: Any) -> bool:
    """Whether scan detection has made the campaign tables in this store yet."""
    (n,) = store.con.execute(
        """SELECT count(*) FROM duckdb_tables()
           WHERE table_name IN ('campaigns', 'campaign_members') AND NOT temporary""",
    ).fetchone()
    return int(n) == 2


def campaign_filter(port: int | None, since: Any = None,
                    until: Any = None) -> tuple[list[str], list[Any]]:
    """Conditions: a port some flagged member probed, a span overlapping since/until.

    >>> where, params = campaign_filter(445, "2025-01-01", None)
    >>> len(where), params
    (2, [445, '2025-01-01'])
    """
    where: list[str] = []
    params: list[Any] = []
    if port is not None:
        where.append("campaign_id IN (SELECT campaign_id FROM scanners WHERE campaign_id IS "
                     "NOT NULL AND list_contains(port_list, ?))")
        params.append(port)
    if since is not None:
        where.append("last_seen >= CAST(? AS TIMESTAMP)")
        params.append(since)
    if until is not None:
        where.append("first_seen <= CAST(? AS TIMESTAMP)")
        params.append(until)
    return where, params


def campaign_count(store: Any, where: list[str], params: list[Any]) -> int:
    """How many campaigns match (0 when detection has not run yet)."""
    if not has_campaigns(store):
        return 0
    (n,) = store.con.execute(
        f"SELECT count(*) FROM campaigns WHERE {' AND '.join(where) or 'TRUE'}",
        params).fetchone()
    return int(n)


def campaign_rows(store: Any, where: list[str], params: list[Any], *, limit: int,
                  offset: int = 0) -> list[dict[str, Any]]:
    """Campaigns, most probes first, each with its busiest ``ports``; times as stored."""
    if not has_campaigns(store):
        return []
    cur = store.con.execute(_CAMPAIGN_SQL.format(where=" AND ".join(where) or "TRUE"),
                            [*params, limit, offset])
    names = [d[0] for d in cur.description]
    out = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    ports = campaign_ports(store, [row["id"] for row in out])
    for row in out:
        row["ports"] = ports.get(row["id"], [])
    return out


def campaign_ports(store: Any, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The ports each campaign's members probed during the campaign, most members
    first: ``{"proto", "port", "members"}`` (the campaign record keeps only a hash of
    its port set, so they are read from the members' events, one query for the page)."""
    if not ids or not has_campaigns(store):
        return {}
    rows = store.con.execute(
        """SELECT campaign_id, proto, dport, members FROM (
               SELECT m.campaign_id, e.proto, e.dport,
                      count(DISTINCT (e.src_hi, e.src_lo)) AS members
               FROM event_rows e
               JOIN campaign_members m ON e.src_hi = m.src_hi AND e.src_lo = m.src_lo
               JOIN campaigns c ON c.campaign_id = m.campaign_id
               WHERE list_contains(?, m.campaign_id) AND e.dport IS NOT NULL
                 AND e.ts >= c.first_seen AND e.ts <= c.last_seen
               GROUP BY m.campaign_id, e.proto, e.dport)
           QUALIFY row_number() OVER (PARTITION BY campaign_id
                                      ORDER BY members DESC, proto, dport) <= ?
           ORDER BY campaign_id, members DESC, proto, dport""",
        [ids, CAMPAIGN_PORTS]).fetchall()
    out: dict[int, list[dict[str, Any]]] = {}
    for campaign, proto, port, members in rows:
        out.setdefault(int(campaign), []).append(
            {"proto": proto_name(int(proto)), "port": int(port), "members": int(members)})
    return out


def campaign_members(store: Any, campaign_id: int, limit: int = 1000) -> list[str]:
    """The first ``limit`` member addresses of a campaign, in address order."""
    rows = store.con.execute(
        "SELECT src_hi, src_lo FROM campaign_members WHERE campaign_id = ? "
        "ORDER BY src_hi, src_lo LIMIT ?", [campaign_id, limit]).fetchall()
    return [key_to_text(hi, lo) for hi, lo in rows]
