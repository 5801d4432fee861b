"""Which stored events are replies: answers to a packet the other side sent first.

A packet capture or a flow log holds both directions: the target's SYN-ACK or RST, the
DNS server's answer, the ICMP port unreachable a UDP probe drew.  Those are not probes
of their sender, and counting them would make every server that answers a scanner look
like one (or like backscatter).  A firewall log of inbound traffic holds no requests
from us, so there every reply-like packet is unsolicited (backscatter).

An event is a reply when it is reply-like for its protocol and the store holds a
packet in the opposite direction, sent at most ``window`` seconds before it:

* TCP with ACK or RST set (SYN-ACK, RST, RST-ACK, and the ACKs and data of an open
  conversation): the reverse packet must have the ports swapped;
* UDP and UDP-Lite: the same (a DNS answer comes from port 53 to the query's port);
* ICMP / ICMPv6 echo reply: an echo request in the other direction;
* ICMP / ICMPv6 errors: any packet in the other direction, of any protocol (the UDP
  probe a port unreachable answers; the quoted header that would pin it down is not
  part of the event schema).

Default ``window``: 120 seconds, Linux conntrack's timeout for a UDP stream
(``nf_conntrack_udp_timeout_stream``), the longest a stateful firewall itself would
still take an answer as one; inside a live TCP conversation packets come much more
often.

The work is SQL on the store.  The set of addresses that were *sent* a reply-like
packet is tiny next to the events (the site's own hosts), so the store is first asked
whether any of them ever sent anything at all; in an inbound firewall log none did and
the join is skipped, which keeps this to one scan of the events table.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

#: Seconds a reply may follow the packet it answers (see the module docstring).
DEFAULT_REPLY_WINDOW = 120.0

#: Events that could be a reply, by protocol.  TCP flag bits: ACK 0x10 | RST 0x04 = 20.
REPLY_LIKE_SQL = """(
    (e.proto = 6 AND (coalesce(e.tcp_flags, 0) & 20) <> 0)
    OR e.proto IN (17, 136)
    OR (e.proto = 1 AND e.icmp_type IN (0, 3, 4, 5, 11, 12, 14, 16, 18))
    OR (e.proto = 58 AND e.icmp_type IN (1, 2, 3, 4, 129)))"""


def reply_rowids(con: duckdb.DuckDBPyConnection, scope_sql: str = "TRUE",
                 window: float = DEFAULT_REPLY_WINDOW, *, table: str = "events",
                 hosts: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Sorted ``rowid`` of the events (alias ``e``, within ``scope_sql``) that are replies.

    ``scope_sql`` is a condition on ``e`` (which sources to look at); it may refer to
    temporary tables of the connection.  ``table`` holds the events (the store's
    ``event_rows``, or an ``events`` table).  ``hosts`` are the destinations of the
    scope's reply-like events when the caller has them at hand (its loaded columns),
    which saves a scan.
    """
    if hosts is not None:
        hi, lo = (np.asarray(h, np.uint64) for h in hosts)
        if not hi.size:
            return np.empty(0, np.int64)
        # distinct addresses through one 64-bit key (a unique over row pairs is 10x slower)
        key = np.where(hi == 0, lo, lo ^ (hi * np.uint64(0x9E3779B97F4A7C15)))
        _, first = np.unique(key, return_index=True)
        con.register("_reply_hosts_in", pa.table({"h": hi[first], "l": lo[first]}))
        try:
            con.execute("CREATE OR REPLACE TEMP TABLE _reply_hosts AS "
                        "SELECT h, l FROM _reply_hosts_in")
        finally:
            con.unregister("_reply_hosts_in")
    else:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _reply_hosts AS
                SELECT DISTINCT e.dst_hi AS h, e.dst_lo AS l FROM {table} e
                WHERE {REPLY_LIKE_SQL} AND ({scope_sql})"""
        )
    row = _first(con.execute(
        f"""SELECT count(*) FROM (SELECT 1 FROM {table} r SEMI JOIN _reply_hosts
                                  ON r.src_hi = h AND r.src_lo = l LIMIT 1)"""
    ))
    if not row or not row[0]:
        con.execute("DROP TABLE IF EXISTS _reply_hosts")
        return np.empty(0, np.int64)
    result = con.sql(
        f"""WITH cand AS (
                SELECT e.rowid AS rid, e.ts, e.src_hi, e.src_lo, e.dst_hi, e.dst_lo, e.proto,
                       e.sport, e.dport, e.icmp_type
                FROM {table} e WHERE {REPLY_LIKE_SQL} AND ({scope_sql})),
            rev AS (
                SELECT r.src_hi, r.src_lo, r.dst_hi, r.dst_lo, r.proto, r.sport, r.dport,
                       r.icmp_type, r.ts
                FROM {table} r SEMI JOIN _reply_hosts ON r.src_hi = h AND r.src_lo = l)
            SELECT DISTINCT c.rid FROM cand c JOIN rev r
              ON r.src_hi = c.dst_hi AND r.src_lo = c.dst_lo AND r.dst_hi = c.src_hi
             AND r.dst_lo = c.src_lo
            WHERE r.ts <= c.ts AND epoch_us(c.ts) - epoch_us(r.ts) <= {int(window * 1e6)}
              AND (c.proto IN (1, 58)
                   OR (r.proto = c.proto AND r.sport = c.dport AND r.dport = c.sport))
              AND (c.proto NOT IN (1, 58) OR c.icmp_type NOT IN (0, 129)
                   OR (r.proto = c.proto AND r.icmp_type IN (8, 128)))
            ORDER BY 1"""
    ).fetchnumpy()
    con.execute("DROP TABLE IF EXISTS _reply_hosts")
    return np.asarray(result["rid"], np.int64)


def _first(cursor: Any) -> Any:
    """The first row of a result, fetching all of it (DuckDB 2 keeps an unfinished
    result open and refuses the next query)."""
    rows = cursor.fetchall()
    return rows[0] if rows else None
