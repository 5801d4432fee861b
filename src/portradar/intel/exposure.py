"""Exposure: which of my hosts can be reached on a port from outside, and which lack the patches.

Two kinds of evidence, each kept apart in the answer:

* **observed**: inbound connections to the port that the logs show were let through or
  answered (``outcome`` ``accepted`` or ``established``), from sources outside the
  networks called internal, grouped by destination host (one SQL pass over the events);
* **declared**: hosts the asset inventory (:mod:`.assets`) lists with the port open.

For each exposed host and each relevant vulnerability (by default those patched in the
assessment window on the services behind the port) the host is ``missing`` the patch when
none of the vulnerability's identifiers (CVE, bulletin, KB numbers) is among its installed
patches, ``patched`` when one is, ``unknown`` when the inventory says nothing about its
patches, and ``not-applicable`` when the vulnerability is Microsoft's and the host's OS is
known and not Windows.

"From outside" means from a source outside ``internal`` (CIDR list); with no internal
networks given, every source counts, which is right for the inbound chain of a perimeter
firewall, the usual sensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from portradar.events.addresses import cidr_range, format_addresses
from portradar.events.schema import Outcome
from portradar.intel.assets import ensure_tables
from portradar.intel.vulnerabilities import run
from portradar.store.duckdb_store import Store

#: Outcomes that show the port answered or let the connection through.
REACHED = (int(Outcome.ACCEPTED), int(Outcome.ESTABLISHED))


@dataclass
class HostExposure:
    """One host reachable on the port, with the evidence and its patch state."""

    host: str
    hostname: str | None = None
    os: str | None = None
    observed: bool = False
    declared: bool = False
    connections: int = 0
    sources: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    patch_state: dict[str, str] = field(default_factory=dict)  # cve -> state

    @property
    def missing(self) -> list[str]:
        return sorted(c for c, s in self.patch_state.items() if s == "missing")

    @property
    def unknown(self) -> list[str]:
        return sorted(c for c, s in self.patch_state.items() if s == "unknown")

    def as_row(self) -> dict[str, Any]:
        return {
            "host": self.host, "hostname": self.hostname, "os": self.os,
            "evidence": "+".join(x for x, on in (("observed", self.observed),
                                                 ("declared", self.declared)) if on),
            "connections": self.connections, "sources": self.sources,
            "first_seen": self.first_seen, "last_seen": self.last_seen,
            "missing": ", ".join(self.missing) or None,
            "unknown": ", ".join(self.unknown) or None,
        }


@dataclass
class PortExposure:
    """The exposure of one port: hosts, and whether anything is known at all."""

    proto: int
    port: int
    hosts: list[HostExposure]
    #: Whether the store has any accepted/established events or any assets: without
    #: either, "no exposed host" means "unknown", not "none".
    known: bool

    @property
    def exposed(self) -> list[HostExposure]:
        return self.hosts

    @property
    def vulnerable(self) -> list[HostExposure]:
        """Exposed hosts missing at least one relevant patch."""
        return [h for h in self.hosts if h.missing]

    @property
    def observed(self) -> list[HostExposure]:
        return [h for h in self.hosts if h.observed]


def _outside(internal: Sequence[str]) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for cidr in internal:
        (lo_hi, lo_lo), (hi_hi, hi_lo) = cidr_range(cidr)
        clauses.append("((src_hi, src_lo) BETWEEN (?, ?) AND (?, ?))")
        params += [lo_hi, lo_lo, hi_hi, hi_lo]
    return ("AND NOT (" + " OR ".join(clauses) + ")" if clauses else ""), params


def observed_hosts(store: Store, port: int, proto: int = 6, *, since: datetime | None = None,
                   until: datetime | None = None, internal: Sequence[str] = ()
                   ) -> list[dict[str, Any]]:
    """Destinations that accepted or answered inbound connections to the port."""
    return observed_by_port(store, [(proto, port)], since=since, until=until,
                            internal=internal).get((proto, port), [])


def observed_by_port(store: Store, targets: Sequence[tuple[int, int]], *,
                     since: datetime | None = None, until: datetime | None = None,
                     internal: Sequence[str] = ()
                     ) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """:func:`observed_hosts` of several ``(proto, port)`` in one pass over the events
    (a port with none is absent from the answer)."""
    if not targets:
        return {}
    where, params = _outside(internal)
    keys = sorted({int(proto) * 65536 + int(port) for proto, port in targets})
    rows = run(store,
        f"""SELECT proto::INTEGER AS proto, dport::INTEGER AS port, dst_hi, dst_lo,
                   count(*) AS connections,
                   count(DISTINCT (src_hi, src_lo)) AS sources,
                   min(ts) AS first_seen, max(ts) AS last_seen
            FROM event_rows
            WHERE list_contains(?, outcome)
              AND list_contains(?, proto::INTEGER * 65536 + dport::INTEGER)
              AND ts >= ? AND ts < ? {where}
            GROUP BY proto, dport, dst_hi, dst_lo ORDER BY connections DESC""",
        [list(REACHED), keys, since or datetime(1970, 1, 1), until or datetime(9999, 1, 1),
         *params])
    hosts = format_addresses(rows.column("dst_hi").to_numpy(zero_copy_only=False),
                             rows.column("dst_lo").to_numpy(zero_copy_only=False))
    out: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row, host in zip(rows.drop_columns(["dst_hi", "dst_lo"]).to_pylist(), hosts,
                         strict=True):  # one row per exposed host: few
        key = (int(row.pop("proto")), int(row.pop("port")))
        row["host"] = host
        out.setdefault(key, []).append(row)
    return out


def _patch_state(vuln: dict[str, Any], os_name: str | None, patches: set[str] | None) -> str:
    vendor = (vuln.get("vendor") or "").lower()
    if "microsoft" in vendor and os_name and "windows" not in os_name.lower():
        return "not-applicable"
    if not patches:
        return "unknown"
    ids = {vuln["cve"]}
    ids |= {b.strip().upper() for b in (vuln.get("bulletins") or "").split(",") if b.strip()}
    ids |= {k.strip().upper() for k in (vuln.get("kbs") or "").split(";") if k.strip()}
    return "patched" if ids & patches else "missing"


def _observed_window(as_of: date | None, window_days: int | None
                     ) -> tuple[datetime | None, datetime | None]:
    until = since = None
    if as_of is not None:
        until = datetime(as_of.year, as_of.month, as_of.day) + timedelta(days=1)
        if window_days is not None:
            since = until - timedelta(days=window_days)
    return since, until


def port_exposure(store: Store, port: int, proto: int = 6, *,
                  vulns: Sequence[dict[str, Any]] = (), as_of: date | None = None,
                  window_days: int | None = None, internal: Sequence[str] = ()
                  ) -> PortExposure:
    """Hosts reachable on ``proto/port`` (observed and declared) and their patch state.

    ``as_of`` and ``window_days`` bound the observed connections (default: all).
    """
    return ports_exposure(store, [(proto, port)], vulns={(proto, port): vulns}, as_of=as_of,
                          window_days=window_days, internal=internal)[(proto, port)]


def ports_exposure(store: Store, targets: Sequence[tuple[int, int]], *,
                   vulns: Mapping[tuple[int, int], Sequence[dict[str, Any]]] | None = None,
                   as_of: date | None = None, window_days: int | None = None,
                   internal: Sequence[str] = ()
                   ) -> dict[tuple[int, int], PortExposure]:
    """:func:`port_exposure` of several ``(proto, port)`` (``vulns`` per target) with one
    pass over the events and one read of the assets: what the overview of every
    assessed port costs once instead of once per port."""
    ensure_tables(store)
    since, until = _observed_window(as_of, window_days)
    seen_by = observed_by_port(store, targets, since=since, until=until, internal=internal)
    declared_by: dict[tuple[int, int], set[str]] = {}
    for r in run(store, "SELECT DISTINCT proto, port, host FROM asset_services").to_pylist():
        declared_by.setdefault((int(r["proto"]), int(r["port"])), set()).add(r["host"])
    info = {r["host"]: r for r in run(store,
        "SELECT host, hostname, os FROM asset_hosts").to_pylist()}
    patches: dict[str, set[str]] = {}
    for r in run(store, "SELECT host, patch FROM asset_patches").to_pylist():
        patches.setdefault(r["host"], set()).add(r["patch"].upper())
    any_known: bool | None = None
    out: dict[tuple[int, int], PortExposure] = {}
    for proto, port in targets:
        seen = {r["host"]: r for r in seen_by.get((proto, port), [])}
        declared = declared_by.get((proto, port), set())
        port_vulns = (vulns or {}).get((proto, port), ())
        hosts = []
        for host in sorted(set(seen) | declared):
            h = HostExposure(host=host, hostname=info.get(host, {}).get("hostname"),
                             os=info.get(host, {}).get("os"), observed=host in seen,
                             declared=host in declared)
            if host in seen:
                r = seen[host]
                h.connections, h.sources = int(r["connections"]), int(r["sources"])
                h.first_seen, h.last_seen = r["first_seen"], r["last_seen"]
            for v in port_vulns:
                h.patch_state[v["cve"]] = _patch_state(v, h.os, patches.get(host))
            hosts.append(h)
        hosts.sort(key=lambda h: (not h.missing, not h.observed, h.host))
        if not hosts and any_known is None:
            any_known = bool(run(store,
                "SELECT 1 FROM event_rows WHERE list_contains(?, outcome) LIMIT 1",
                [list(REACHED)]).num_rows) or bool(info)
        known = bool(hosts) or bool(any_known)
        out[(proto, port)] = PortExposure(proto=proto, port=port, hosts=hosts, known=known)
    return out
