"""The user's assets: hosts, their open ports, operating system and installed patches.

Two inputs:

* **nmap XML** (``nmap -oX``): every host whose status is ``up``, its addresses and
  names, the best OS match when ``-O`` ran, and its ports in state ``open`` (or
  ``open|filtered``) with the service nmap named;
* **CSV** with a header, one host per row: ``host`` (address; also ``address``/``ip``),
  ``open_ports`` (``445;139;udp/137`` or ``tcp/3389``; bare numbers are TCP), ``os``,
  ``installed_patches`` (``KB896422;MS05-027;CVE-2005-1206``).  Column names are
  matched without case; ``hostname`` is optional.

Kept in the store in ``asset_hosts``, ``asset_services`` and ``asset_patches``, with the
file (name and SHA-256 prefix) on every row.  Importing a host again replaces what was
known about it (a new scan supersedes the old one), in one transaction.  Hosts are few
(hundreds to thousands), so they are handled per host; events never pass through here.

>>> data = (b"host,open_ports,os,installed_patches\\n"
...         b"192.0.2.10,445;udp/137,Windows 2000,KB 896422\\n")
>>> inv = parse_assets_csv(data, name="assets.csv", stats=ReadStats())
>>> inv.services
[('192.0.2.10', 6, 445, 'open', None), ('192.0.2.10', 17, 137, 'open', None)]
>>> inv.patches
[('192.0.2.10', 'KB896422')]
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from portradar.errors import FormatError, InputError
from portradar.events.addresses import address_key
from portradar.ingest.reader import ReadStats
from portradar.intel.vulnerabilities import run
from portradar.store.duckdb_store import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS asset_hosts (
    host VARCHAR NOT NULL, addr_hi UBIGINT NOT NULL, addr_lo UBIGINT NOT NULL,
    hostname VARCHAR, os VARCHAR, source VARCHAR NOT NULL, source_ref VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS asset_services (
    host VARCHAR NOT NULL, proto UTINYINT NOT NULL, port INTEGER NOT NULL,
    state VARCHAR NOT NULL, service VARCHAR, source VARCHAR NOT NULL,
    source_ref VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS asset_patches (
    host VARCHAR NOT NULL, patch VARCHAR NOT NULL, source VARCHAR NOT NULL,
    source_ref VARCHAR NOT NULL);
"""

_PROTO = {"tcp": 6, "udp": 17, "sctp": 132}
_KB = re.compile(r"^(?:KB)?\s*(\d{6,7})$", re.IGNORECASE)
_BULLETIN = re.compile(r"^MS\d\d-\d{3}$", re.IGNORECASE)
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$", re.IGNORECASE)


def normalise_patch(text: str) -> str | None:
    """A patch id as the knowledge base writes it (``KB896422``, ``MS05-027``, CVE id).

    >>> normalise_patch("kb 896422"), normalise_patch("ms05-027"), normalise_patch("x")
    ('KB896422', 'MS05-027', None)
    """
    t = text.strip()
    m = _KB.match(t)
    if m:
        return f"KB{m.group(1)}"
    if _BULLETIN.match(t) or _CVE.match(t):
        return t.upper()
    return None


@dataclass
class Inventory:
    """Hosts, services and patches read from one asset file."""

    hosts: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    services: list[tuple[str, int, int, str, str | None]] = field(default_factory=list)
    patches: list[tuple[str, str]] = field(default_factory=list)


def _address(text: str) -> str:
    return str(ipaddress.ip_address(text.strip()))


def parse_nmap_xml(data: bytes, *, name: str, stats: ReadStats) -> Inventory:
    """Hosts that are up and their open ports, from ``nmap -oX`` output."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise FormatError(f"not well-formed XML ({exc})", source=name, line=line) from exc
    if root.tag != "nmaprun":
        raise FormatError(f"not nmap XML output (root element <{root.tag}>)", source=name)
    inv = Inventory()
    for i, host in enumerate(root.iter("host")):
        status = host.find("status")
        if status is not None and status.get("state") != "up":
            continue
        addrs = [a.get("addr", "") for a in host.findall("address")
                 if a.get("addrtype") in ("ipv4", "ipv6")]
        if not addrs:
            stats.skip("host without an IP address", line=i)
            continue
        try:
            addr = _address(addrs[0])
        except ValueError:
            stats.skip("host address is not an IP address", line=i, detail=addrs[0])
            continue
        hostname = next((h.get("name") for h in host.iter("hostname")), None)
        osmatch = next((o.get("name") for o in host.iter("osmatch")), None)
        inv.hosts.append((addr, hostname, osmatch))
        for port in host.iter("port"):
            state = port.find("state")
            st = state.get("state", "") if state is not None else ""
            if st not in ("open", "open|filtered"):
                continue
            proto = _PROTO.get(port.get("protocol", ""))
            try:
                number = int(port.get("portid", ""))
            except ValueError:
                number = -1
            if proto is None or not 1 <= number <= 65535:
                stats.skip("port with an unknown protocol or number", line=i)
                continue
            svc = port.find("service")
            inv.services.append((addr, proto, number, st,
                                 svc.get("name") if svc is not None else None))
        stats.records += 1
    return inv


def _column(columns: list[str], *names: str) -> str | None:
    lower = {c.strip().lower(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


def parse_assets_csv(data: bytes, *, name: str, stats: ReadStats) -> Inventory:
    """One host per row: host, open ports, OS, installed patches."""
    try:
        d = pl.read_csv(io.BytesIO(data), infer_schema_length=0)
    except pl.exceptions.PolarsError as exc:
        raise FormatError(f"not a CSV file ({exc})", source=name) from exc
    host_col = _column(d.columns, "host", "address", "ip", "addr")
    if host_col is None:
        raise FormatError(f"asset CSV without a host column (columns: {d.columns}); "
                          f"expected host, open_ports, os, installed_patches", source=name,
                          line=1)
    cols = {k: _column(d.columns, *names) for k, names in (
        ("ports", ("open_ports", "open ports", "ports")), ("os", ("os", "operating_system")),
        ("patches", ("installed_patches", "installed patches", "patches")),
        ("hostname", ("hostname", "name")))}
    inv = Inventory()
    for i, row in enumerate(d.iter_rows(named=True), start=2):
        stats.records += 1
        try:
            addr = _address(row[host_col] or "")
        except ValueError:
            stats.skip("host is not an IP address", line=i, detail=str(row[host_col])[:40])
            continue
        inv.hosts.append((addr, row.get(cols["hostname"]) if cols["hostname"] else None,
                          row.get(cols["os"]) if cols["os"] else None))
        for item in re.split(r"[;\s]+", (row.get(cols["ports"]) or "") if cols["ports"] else ""):
            if not item:
                continue
            proto_text, _, number = item.rpartition("/")
            proto = _PROTO.get(proto_text.lower() or "tcp")
            if proto is None or not number.isdigit() or not 1 <= int(number) <= 65535:
                stats.skip("open port is not [tcp/|udp/]1-65535", line=i, detail=item)
                continue
            inv.services.append((addr, proto, int(number), "open", None))
        for item in re.split(r"[;,]+", (row.get(cols["patches"]) or "") if cols["patches"]
                             else ""):
            if not item.strip():
                continue
            patch = normalise_patch(item)
            if patch is None:
                stats.skip("patch is not a KB number, bulletin or CVE id", line=i,
                           detail=item.strip())
                continue
            inv.patches.append((addr, patch))
    return inv


def ensure_tables(store: Store) -> None:
    if not store.read_only:
        store.con.execute(_SCHEMA)


def import_assets(store: Store, path: str | Path, *, fmt: str | None = None,
                  strict: bool = False) -> dict[str, Any]:
    """Read an nmap XML or asset CSV file and store it (replacing those hosts)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    if not data.strip():
        raise InputError(f"{p}: empty file, no assets")
    fmt = fmt or ("nmap" if data.lstrip()[:1] == b"<" else "csv")
    stats = ReadStats(source=str(p), strict=strict)
    if fmt == "nmap":
        inv = parse_nmap_xml(data, name=str(p), stats=stats)
    elif fmt == "csv":
        inv = parse_assets_csv(data, name=str(p), stats=stats)
    else:
        raise InputError(f"unknown asset format {fmt!r} (use nmap or csv)")
    ref = f"{p.name} sha256:{hashlib.sha256(data).hexdigest()[:12]}"
    ensure_tables(store)
    hosts = sorted({h[0] for h in inv.hosts})
    with store.transaction():
        for table in ("asset_hosts", "asset_services", "asset_patches"):
            store.con.execute(f"DELETE FROM {table} WHERE list_contains(?, host)", [hosts])
        seen: set[str] = set()
        rows = []
        for addr, hostname, os_name in inv.hosts:
            if addr in seen:
                continue
            seen.add(addr)
            hi, lo = address_key(addr)
            rows.append((addr, hi, lo, hostname, os_name, fmt, ref))
        if rows:
            store.con.executemany("INSERT INTO asset_hosts VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        services = sorted(set(inv.services))
        if services:
            store.con.executemany("INSERT INTO asset_services VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  [(*s, fmt, ref) for s in services])
        patches = sorted(set(inv.patches))
        if patches:
            store.con.executemany("INSERT INTO asset_patches VALUES (?, ?, ?, ?)",
                                  [(*pt, fmt, ref) for pt in patches])
    return {"file": str(p), "format": fmt, "hosts": len(hosts), "open_ports": len(services),
            "patches": len(patches), "skipped": stats.skipped_total,
            "examples": list(stats.examples)}


def list_assets(store: Store) -> list[dict[str, Any]]:
    """Every host with its open ports and patches (what ``portradar assets`` lists)."""
    ensure_tables(store)
    return run(store,
        """SELECT h.host, h.hostname, h.os,
                  (SELECT string_agg(CASE s.proto WHEN 17 THEN 'udp/' WHEN 132 THEN 'sctp/'
                                      ELSE '' END || s.port, ' ' ORDER BY s.proto, s.port)
                   FROM asset_services s WHERE s.host = h.host) AS open_ports,
                  (SELECT string_agg(p.patch, ' ' ORDER BY p.patch)
                   FROM asset_patches p WHERE p.host = h.host) AS patches,
                  h.source_ref AS source
           FROM asset_hosts h ORDER BY h.addr_hi, h.addr_lo""").to_pylist()
