"""Synthetic events for the scan detector tests (helper, not a test module).

``ev(...)`` builds one event row as a dict; ``batch(rows)`` turns rows into an event
batch; ``put(store, rows)`` stores them as a generated input (through the ingest
pipeline's ``store_batches``, so the ledger and watermark see them like any input).
Addresses are documentation space (RFC 5737 / RFC 3849) unless a test says otherwise.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from portradar.events.addresses import address_key
from portradar.events.schema import Outcome, make_batch
from portradar.ingest.pipeline import store_batches
from portradar.scan.probes import Probes

SYN, SYNACK, RST, RSTACK, ACK = 0x02, 0x12, 0x04, 0x14, 0x10
SECOND = 1_000_000
T0 = 1_700_000_000 * SECOND  # 2023-11-14T22:13:20Z
_ids = itertools.count(1)


def ev(src: str, dst: str, dport: int | None = 80, *, t: float = 0.0, proto: int = 6,
       flags: int | None = SYN, outcome: str = "blocked", sport: int = 40000,
       ttl: int | None = 50, ip_id: int | None = None, window: int | None = None,
       seq: int | None = None, icmp_type: int | None = None,
       sensor: str = "fw") -> dict[str, Any]:
    shi, slo = address_key(src)
    dhi, dlo = address_key(dst)
    return {"ts": T0 + int(t * SECOND), "sensor": sensor, "src_hi": shi, "src_lo": slo,
            "dst_hi": dhi, "dst_lo": dlo, "proto": proto,
            "sport": sport if proto in (6, 17) else None,
            "dport": dport if proto in (6, 17) else None,
            "tcp_flags": flags if proto == 6 else None, "icmp_type": icmp_type,
            "outcome": int(Outcome[outcome.upper()]), "ttl": ttl, "ip_id": ip_id,
            "tcp_window": window, "tcp_seq": seq}


def batch(rows: list[dict[str, Any]]):
    columns: dict[str, Any] = {name: [r[name] for r in rows] for name in rows[0]}
    for name in ("src_hi", "src_lo", "dst_hi", "dst_lo"):
        columns[name] = np.array(columns[name], np.uint64)
    return make_batch(columns, n=len(rows))


def probes(rows: list[dict[str, Any]], **kwargs: Any) -> Probes:
    return Probes.from_events(batch(rows), **kwargs)


def put(store, rows: list[dict[str, Any]], name: str | None = None):
    n = next(_ids)
    return store_batches(store, [batch(rows)], name=name or f"test-{n}",
                         identity=f"scan-test-{n}-{len(rows)}".encode())
