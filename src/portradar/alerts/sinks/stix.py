"""STIX 2.1 export: the detected scanners as ``indicator`` objects in one ``bundle``.

Written by hand (the JSON is small; no ``stix2`` dependency).  Each scanner becomes an
indicator with the pattern ``[ipv4-addr:value = 'a.b.c.d']`` (``ipv6-addr`` for IPv6),
``indicator_types: ["malicious-activity"]``, ``valid_from`` its first probe (event time)
and its evidence as the description.  Ids are UUIDv5 of the address, so the same scanner
keeps its id across exports and a SIEM updates instead of duplicating.

>>> b = bundle([{"source": "198.51.100.7", "first_seen": "2026-11-26T10:00:00",
...              "last_seen": "2026-11-26T11:00:00", "evidence": "TRW", "confidence": 0.9}])
>>> b["type"], b["objects"][0]["pattern"]
('bundle', "[ipv4-addr:value = '198.51.100.7']")
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

_NS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # the URL namespace of RFC 4122


def _stamp(value: Any) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    text = str(value).replace(" ", "T").split("+")[0]
    return (text if "." in text else text + ".000") + "Z"


def bundle(scanners: list[dict[str, Any]]) -> dict[str, Any]:
    objects = []
    created = _stamp(datetime.now(tz=UTC).replace(tzinfo=None))
    for s in scanners:
        addr = str(s["source"])
        kind = "ipv6-addr" if ":" in addr else "ipv4-addr"
        objects.append({
            "type": "indicator", "spec_version": "2.1",
            "id": f"indicator--{uuid.uuid5(_NS, 'portradar-scanner:' + addr)}",
            "created": created, "modified": created,
            "name": f"port scanner {addr}", "description": str(s.get("evidence", "")),
            "indicator_types": ["malicious-activity"],
            "pattern": f"[{kind}:value = '{addr}']", "pattern_type": "stix",
            "valid_from": _stamp(s["first_seen"]),
            "confidence": round(100 * float(s.get("confidence", 0.5))),
            "labels": ["scanner"],
        })
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}


def write_bundle(store: Any, path: str) -> int:
    """Write the store's scanners as a bundle to ``path`` (atomically); returns the count."""
    rows = store.con.execute(
        "SELECT source, first_seen, last_seen, evidence, confidence FROM scanners "
        "WHERE status = 'scanner' ORDER BY first_seen").fetchall()
    data = bundle([dict(zip(("source", "first_seen", "last_seen", "evidence", "confidence"),
                            r, strict=True)) for r in rows])
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)
    return len(rows)
