"""Generate realistic iptables ``LOG`` lines from a fixed seed, fast, for benchmarks and tests.

What it writes: kernel netfilter ``LOG`` lines exactly as ``nf_log_syslog.c`` prints them
(``IN= OUT= MAC=`` then the IPv4 or IPv6 header fields, then TCP / UDP / ICMP / ICMPv6,
each field followed by one space, so every line ends in a space), inside syslog framing
(``Nov 26 10:00:00 fw1 kernel: [12345.678901] [UFW BLOCK] IN=...``), for several firewalls
("sensors") interleaved in time order as a central syslog server would store them.

The traffic is what an Internet-facing firewall blocks all day:

* background radiation: Zipf-like port popularity (445, 23, 22, 3389, 80, ... then a long
  tail over all 65535 ports), a heavy-tailed source population (a few sources send many
  probes, most send one or two, each prefers one "home" port), the scanning tools' header
  fingerprints (masscan, ZMap's ``ID=54321``, Mirai, nmap, Linux and Windows stacks),
  UDP probes with per-service payload sizes, ICMP echo, SYN-ACK / RST backscatter, about
  2% IPv6, and a day/night rhythm;
* injected campaigns with known truth: vertical scanners (one source, hundreds of ports),
  horizontal sweeps (one port, every target) and surges (many new sources on one port,
  rising over the last days, the pattern that precedes a worm).

Destinations are documentation space only (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
2001:db8::/32).  IPv4 sources are random public-looking addresses: they name no real
scanner.  Times are UTC (BSD syslog has no zone; read the file with ``--tz UTC``).

Why this shape: per-event Python is what makes log tools slow, so the benchmark input must
be big (millions of lines) and must itself be produced fast.  Every field is a column;
text is assembled by gathering pre-formatted byte tokens into a fixed-width byte matrix
(one column window per field, NUL padding) and squeezing the NULs out, so 5 million lines
take seconds.  Same seed and parameters give byte-identical output (the line count is
part of the parameters: the traffic model scales with it).

Usage::

    python bench/gen_iptables_log.py --lines 5000000 --seed 7 -o bench/data/iptables-5M.log
    python bench/gen_iptables_log.py --preset example -o examples/firewall.log.gz \\
        --truth examples/firewall.truth.json

>>> text = generate_bytes(1000, seed=1)
>>> text.count(b"\\n"), text == generate_bytes(1000, seed=1)
(1000, True)
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "DEFAULT_SENSORS",
    "DEFAULT_START",
    "DEFAULT_TARGETS",
    "EXAMPLE",
    "FORMATS",
    "HorizontalSweep",
    "Surge",
    "VerticalScan",
    "generate",
    "generate_bytes",
    "generate_truth",
    "main",
]

#: Bumped whenever the same parameters would produce different bytes.
GENERATOR_VERSION = 1

DEFAULT_START = datetime(2024, 11, 18, tzinfo=UTC)
DEFAULT_SENSORS: tuple[str, ...] = ("fw1", "fw2", "edge-01", "dmz-gw")
DEFAULT_TARGETS: tuple[str, ...] = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")

#: Syslog framings: ``syslog`` is classic RFC 3164 with the kernel's uptime stamp (rsyslog
#: reading the kernel log itself), ``syslog-nouptime`` the same without it (kernel messages
#: forwarded by journald, which strips the stamp), ``rfc3339`` rsyslog's high-precision
#: file format, the Debian 12 / Ubuntu 24.04 default (year and zone included, no stamp).
FORMATS: tuple[str, ...] = ("syslog", "syslog-nouptime", "rfc3339")

#: Log prefixes of blocking rules, given to the sensors in turn.
BLOCK_PREFIXES: tuple[str, ...] = ("[UFW BLOCK] ", "DROP ", "IPTABLES-DROP: ")
ALLOW_PREFIX = "[UFW ALLOW] "
IFACES: tuple[str, ...] = ("eth0", "ens18", "enp3s0", "eth1")
#: Ports a UFW sensor's one server accepts (logged as ``[UFW ALLOW]``).
OPEN_PORTS: tuple[int, ...] = (22, 443)

#: Lines generated per time slice: bounds memory; part of the output's definition.
SLICE_LINES = 250_000
#: Rows rendered per text block (cache-sized byte matrix).
RENDER_ROWS = 32_768

# --- traffic model parameters -------------------------------------------------------------

#: TCP ports by popularity in background radiation, most probed first (DShield / ISC
#: port reports, GreyNoise tags, Mirai-family targets).
TCP_TOP: tuple[int, ...] = (
    445, 23, 22, 3389, 80, 443, 8080, 1433, 5555, 3306, 25, 8443, 2323, 81, 8888, 5900,
    6379, 9200, 21, 139, 135, 8000, 7547, 37215, 52869, 60001, 8081, 1723, 110, 143, 2375,
    5432, 27017, 11211, 3128, 9000, 5060, 88, 993, 995, 111, 8291, 10000, 49152, 1024,
    6001, 5000, 4444, 9001, 631,
)
#: UDP ports by popularity (amplification and discovery probes).
UDP_TOP: tuple[int, ...] = (
    53, 123, 161, 1900, 5060, 137, 500, 11211, 389, 19, 1194, 5353, 3702, 69, 111, 47808,
    10001, 623, 520, 17185, 27015, 3478, 5683, 1701, 4500,
)
#: UDP payload bytes of the usual probe per port (the UDP LEN is 8 more).
UDP_PAYLOAD: dict[int, int] = {
    53: 29, 123: 48, 161: 40, 1900: 94, 5060: 412, 137: 50, 500: 292, 11211: 15, 389: 52,
    19: 1, 1194: 14, 5353: 46, 3702: 586, 69: 20, 111: 40, 47808: 17, 10001: 4, 623: 23,
    520: 24, 17185: 20, 27015: 25, 3478: 20, 5683: 21, 1701: 38, 4500: 1,
}
#: Zipf exponent of port ranks within the head lists.
PORT_ZIPF = 0.9
#: Shares of background probes: TCP, UDP, ICMP echo, TCP backscatter.
PROTO_SHARES = (0.80, 0.13, 0.045, 0.025)
#: Share of TCP/UDP probes to a port outside the head list (uniform over 1..65535).
TAIL_SHARE = 0.15
#: Zipf exponent of the source population's activity (0.8: the busiest source sends
#: about 2% of the probes, the population's tail one or two each).
SOURCE_ZIPF = 0.8
#: Share of background probes from sources seen once (random, never reused).
ONE_SHOT_SHARE = 0.30
#: Probability that a population source probes its home port (busiest 100: lower).
HOME_PORT_P = 0.9
HEAVY_HITTER_HOME_P = 0.2
#: Day/night amplitude of the probe rate, peak hour (UTC) and day-to-day spread.
DIURNAL_AMPLITUDE = 0.35
DIURNAL_PEAK_HOUR = 14.0
DAILY_SPREAD = 0.10

# Scanning tools' header fingerprints, indexed by tool id.
TOOLS: tuple[str, ...] = ("masscan", "zmap", "mirai", "linux", "windows", "nmap")
_T_MASSCAN, _T_ZMAP, _T_MIRAI, _T_LINUX, _T_WINDOWS, _T_NMAP = range(6)
_TOOL_SHARE = np.array([0.22, 0.18, 0.20, 0.18, 0.15, 0.07])
_TOOL_DF = np.array([False, False, False, True, True, False])
_TOOL_TTL0 = np.array([255, 255, 64, 64, 128, 64], np.int64)
_TOOL_WINDOW = np.array([1024, 65535, -1, 64240, 64240, -2], np.int64)  # -1 random, -2 nmap
_TOOL_OPT = np.array([0, 1, 0, 3, 2, 1], np.int64)  # TCP option set, see _OPT_LEN
_OPT_LEN = np.array([0, 4, 12, 20], np.int64)  # none, MSS, Windows, Linux (with timestamp)
_TOOL_PING_LEN = np.array([28, 28, 28, 84, 60, 28], np.int64)
_TOOL_SPORT = np.array([[32768, 61000], [32768, 61000], [1024, 65536], [32768, 61000],
                        [49152, 65536], [32768, 61000]], np.int64)
#: Tools of hosts that probe a port as part of a worm-like surge.
_SURGE_TOOLS = {"windows": _T_WINDOWS, "mirai": _T_MIRAI, "linux": _T_LINUX,
                "masscan": _T_MASSCAN, "zmap": _T_ZMAP, "nmap": _T_NMAP}

_PROTO_TCP, _PROTO_UDP, _PROTO_ICMP, _PROTO_ICMP6 = 6, 17, 1, 58
_V4_MAPPED = np.uint64(0xFFFF_0000_0000)
_SYN, _ACK, _RST, _ECE, _CWR = 0x02, 0x10, 0x04, 0x40, 0x80

#: Address blocks no background source comes from (RFC 6890 special-purpose, multicast).
_RESERVED_V4: tuple[tuple[int, int], ...] = tuple(
    (int.from_bytes(socket.inet_aton(net), "big"), bits)
    for net, bits in (
        ("0.0.0.0", 8), ("10.0.0.0", 8), ("100.64.0.0", 10), ("127.0.0.0", 8),
        ("169.254.0.0", 16), ("172.16.0.0", 12), ("192.0.0.0", 24), ("192.0.2.0", 24),
        ("192.88.99.0", 24), ("192.168.0.0", 16), ("198.18.0.0", 15), ("198.51.100.0", 24),
        ("203.0.113.0", 24), ("224.0.0.0", 3),
    )
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --- campaign specifications --------------------------------------------------------------


@dataclass(frozen=True)
class VerticalScan:
    """One source probing many ports of one or a few targets (nmap-like SYN scan)."""

    ports: int = 1000
    targets: int = 1
    rate: float = 50.0  # probes per second
    at_day: float | None = None  # start, days after ``start``; random when None


@dataclass(frozen=True)
class HorizontalSweep:
    """One source probing one port on every target (ZMap-like)."""

    port: int = 6379
    proto: str = "tcp"
    rate: float = 200.0
    at_day: float | None = None


@dataclass(frozen=True)
class Surge:
    """Many new sources probing one port, rising linearly over a window (pre-worm pattern)."""

    proto: str = "tcp"
    port: int = 445
    start_day: float = 0.0  # days after ``start``
    days: float = 3.0
    sources: int | None = None  # None: lines // 500
    probes_per_source: float = 3.0  # mean of a geometric count
    tool: str = "windows"


#: The bundled example (examples/firewall.log.gz): one home/SMB firewall over 14 days,
#: a rise on TCP 445 over the last 3 days and one loud vertical scanner.
EXAMPLE: dict[str, Any] = {
    "lines": 100_000,
    "seed": 2024,
    "start": datetime(2024, 11, 11, tzinfo=UTC),
    "days": 14.0,
    "sensors": ("gw",),
    "formats": ("syslog-nouptime",),  # the uptime stamp's random microseconds cost 0.8 MB
    "targets": ("203.0.113.8/29",),
    "vertical": (VerticalScan(ports=2000, targets=2, rate=40.0, at_day=6.4),),
    "horizontal": (),
    "surges": (Surge("tcp", 445, start_day=11.0, days=3.0, sources=3000,
                     probes_per_source=3.0, tool="windows"),),
    "compresslevel": 9,
}


# --- byte-matrix text assembly ------------------------------------------------------------


def _table(tokens: Sequence[bytes]) -> np.ndarray:
    """Tokens as rows of a NUL-padded ``uint8`` matrix (NUL never occurs in log text)."""
    width = max(1, max((len(t) for t in tokens), default=1))
    return np.array(list(tokens), dtype=f"S{width}").view(np.uint8).reshape(len(tokens), width)


@cache
def _dec_table(n: int, suffix: bytes = b" ") -> np.ndarray:
    return _table([b"%d" % i + suffix for i in range(n)])


@cache
def _hex4_table(suffix: bytes) -> np.ndarray:
    return _table([b"%04x" % i + suffix for i in range(65536)])


@cache
def _hex4_upper_table() -> np.ndarray:
    return _table([b"%04X" % i for i in range(65536)])


@cache
def _hms_table() -> np.ndarray:
    return _table([b"%02d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60) for s in range(86400)])


@cache
def _tos_table() -> np.ndarray:
    # TOS and PREC are the kernel's masks of one byte: IPTOS_TOS_MASK 0x1E, IPTOS_PREC_MASK 0xE0.
    return _table([b"TOS=0x%02X PREC=0x%02X TTL=" % (t & 0x1E, t & 0xE0) for t in range(256)])


@cache
def _flags_table() -> np.ndarray:
    order = ((0x80, b"CWR "), (0x40, b"ECE "), (0x20, b"URG "), (0x10, b"ACK "),
             (0x08, b"PSH "), (0x04, b"RST "), (0x02, b"SYN "), (0x01, b"FIN "))
    return _table([b"".join(name for bit, name in order if f & bit) for f in range(256)])


@cache
def _opt_table() -> np.ndarray:
    # --log-tcp-options output for the option sets in _OPT_LEN (Linux: timestamp appended later).
    return _table([b"", b"OPT (020405B4) ", b"OPT (020405B40103030801010402) ",
                   b"OPT (020405B40402080A"])


@cache
def _udp_payload_table() -> np.ndarray:
    # Unlisted ports get a fixed pseudo-random payload size (0..60 bytes).
    return np.array([UDP_PAYLOAD.get(p, (p * 2654435761) % 61) for p in range(65536)], np.int64)


def _uint_text(values: np.ndarray, width: int, *, field_width: int = 1, zero_pad: bool = False
               ) -> np.ndarray:
    """Decimal digits of ``values`` as an ``(n, width)`` byte matrix.

    Leading zeros become NUL (dropped) or, within the last ``field_width`` columns, spaces
    (``printf("%5lu")``); with ``zero_pad`` they stay zeros (``%06lu``).
    """
    v = np.asarray(values, np.uint64).copy()
    out = np.empty((v.shape[0], width), np.uint8)
    for i in range(width - 1, -1, -1):
        out[:, i] = (v % np.uint64(10)).astype(np.uint8) + 48
        v //= np.uint64(10)
    if not zero_pad:
        original = np.asarray(values, np.uint64)
        for i in range(width - 1):
            lead = original < np.uint64(10 ** (width - 1 - i))
            out[lead, i] = 32 if i >= width - field_width else 0
    return out


@dataclass
class _Piece:
    """Bytes for some rows of one column window: ``table[index]`` or a ready matrix."""

    table: np.ndarray
    index: np.ndarray | None = None  # None: table is one row (broadcast) or already per row
    rows: np.ndarray | None = None  # None: every row


def _squeeze(n: int, slots: list[list[_Piece]]) -> bytes:
    """Lay the slots side by side in an ``n``-row byte matrix and drop the NUL padding."""
    widths = [max(p.table.shape[1] for p in slot) for slot in slots]
    buf = np.zeros((n, sum(widths)), np.uint8)
    offset = 0
    for slot, width in zip(slots, widths, strict=True):
        for piece in slot:
            w = piece.table.shape[1]
            values = (piece.table if piece.index is None
                      else piece.table[piece.index.astype(np.intp, copy=False)])
            if piece.rows is None:
                buf[:, offset:offset + w] = values
            elif piece.rows.size:
                buf[piece.rows, offset:offset + w] = values
        offset += width
    flat = buf.reshape(-1)
    return flat[flat != 0].tobytes()


def _const(text: bytes, rows: np.ndarray | None = None) -> _Piece:
    return _Piece(_table([text]), None, rows)


# --- sensors and address helpers ----------------------------------------------------------


@dataclass
class _Sensor:
    name: str
    framing: int  # index in FORMATS
    prefix: bytes
    ufw: bool
    tcp_options: bool
    iface: str
    head_v4: bytes  # "IN=eth0 OUT= MAC=...:08:00 "
    head_v6: bytes
    boot_us: int
    hosts_v4: np.ndarray  # uint32
    v6_hi: int
    hosts_v6: np.ndarray  # uint64 low halves
    server_v4: int
    server_v6: int


def _cidr_hosts(cidr: str) -> np.ndarray:
    net, _, bits_text = cidr.partition("/")
    bits = int(bits_text or 32)
    base = int.from_bytes(socket.inet_aton(net), "big") & ~((1 << (32 - bits)) - 1) & 0xFFFFFFFF
    return base + np.arange(1 << (32 - bits), dtype=np.uint64)


def _reserved_mask(addr: np.ndarray) -> np.ndarray:
    a = addr.astype(np.uint64)
    bad = np.zeros(a.shape, bool)
    for base, bits in _RESERVED_V4:
        bad |= (a >> np.uint64(32 - bits)) == np.uint64(base >> (32 - bits))
    return bad


def _public_v4(rng: np.random.Generator, n: int, exclude: np.ndarray) -> np.ndarray:
    """``n`` random unicast addresses outside special-purpose space and ``exclude`` (sorted)."""
    out = rng.integers(1 << 24, 0xE0000000, size=n, dtype=np.uint64)
    while True:
        bad = _reserved_mask(out)
        if exclude.size:
            bad |= np.isin(out, exclude)
        count = int(bad.sum())
        if not count:
            return out
        out[bad] = rng.integers(1 << 24, 0xE0000000, size=count, dtype=np.uint64)


def _mac(rng: np.random.Generator, oui: bytes) -> bytes:
    return oui + bytes(rng.integers(0, 256, 3, dtype=np.uint8).tolist())


def _build_sensors(names: Sequence[str], targets: Sequence[str], formats: Sequence[str],
                   start_us: int, rng: np.random.Generator) -> list[_Sensor]:
    for f in formats:
        if f not in FORMATS:
            raise ValueError(f"unknown format {f!r}; known: {', '.join(FORMATS)}")
    if not names:
        raise ValueError("at least one sensor is needed")
    hosts = np.concatenate([_cidr_hosts(c) for c in targets])
    if hosts.size < len(names):
        raise ValueError(f"{hosts.size} target addresses cannot be shared by {len(names)} sensors")
    parts = np.array_split(hosts, len(names))
    sensors = []
    for i, name in enumerate(names):
        iface = IFACES[i % len(IFACES)]
        own = _mac(rng, b"\x52\x54\x00")  # KVM virtio NIC
        gateway = b"\x00\x00\x5e\x00\x01" + bytes([int(rng.integers(1, 255))])  # VRRP router
        mac = ":".join(f"{b:02x}" for b in own + gateway)
        v6_hi = 0x20010DB8_0000_0000 | ((i + 1) << 16)
        iids = [1, 2, 0x10, 0x25, 0x53, 0x80, 0x443, int(rng.integers(1 << 62, 1 << 63))]
        prefix = BLOCK_PREFIXES[i % len(BLOCK_PREFIXES)]
        hosts_v4 = parts[i].astype(np.uint32)
        sensors.append(_Sensor(
            name=name,
            framing=FORMATS.index(formats[i % len(formats)]),
            prefix=prefix.encode(),
            ufw=prefix.startswith("[UFW"),
            tcp_options=prefix == "DROP ",  # psad-style setups log with --log-tcp-options
            iface=iface,
            head_v4=f"IN={iface} OUT= MAC={mac}:08:00 ".encode(),
            head_v6=f"IN={iface} OUT= MAC={mac}:86:dd ".encode(),
            boot_us=start_us - int(rng.integers(2 * 86400, 90 * 86400)) * 1_000_000
            - int(rng.integers(0, 1_000_000)),
            hosts_v4=hosts_v4,
            v6_hi=v6_hi,
            hosts_v6=np.array(iids, np.uint64),
            server_v4=int(hosts_v4[min(10, hosts_v4.size - 1)]),
            server_v6=0x443,
        ))
    return sensors


def _v4_text(a: int) -> str:
    return socket.inet_ntoa(int(a).to_bytes(4, "big"))


def _addr_text(hi: int, lo: int) -> str:
    if hi == 0 and (lo >> 32) == 0xFFFF:
        return _v4_text(lo & 0xFFFFFFFF)
    return socket.inet_ntop(socket.AF_INET6, ((hi << 64) | lo).to_bytes(16, "big"))


# --- rows -------------------------------------------------------------------------------

_COLUMNS: dict[str, type] = {
    "ts": np.int64, "sensor": np.uint8, "v6": np.bool_, "src_hi": np.uint64,
    "src_lo": np.uint64, "dst_hi": np.uint64, "dst_lo": np.uint64, "proto": np.uint8,
    "sport": np.uint16, "dport": np.uint16, "flags": np.uint8, "ttl": np.uint8,
    "ip_id": np.uint16, "flowlbl": np.uint32, "tos": np.uint8, "df": np.bool_,
    "ip_len": np.uint16, "window": np.uint16, "opt": np.uint8, "tsval": np.uint32,
    "udp_len": np.uint16, "icmp_type": np.uint8, "icmp_id": np.uint16, "icmp_seq": np.uint16,
    "allow": np.bool_,
}
Rows = dict[str, np.ndarray]


def _concat(parts: Sequence[Rows]) -> Rows:
    parts = [p for p in parts if p["ts"].size]
    if not parts:
        return {k: np.empty(0, t) for k, t in _COLUMNS.items()}
    return {k: np.concatenate([p[k] for p in parts]).astype(t, copy=False)
            for k, t in _COLUMNS.items()}


def _take(rows: Rows, index: np.ndarray | slice) -> Rows:
    return {k: v[index] for k, v in rows.items()}


def _packets(rng: np.random.Generator, *, ts: np.ndarray, sensor: np.ndarray,
             src_hi: np.ndarray, src_lo: np.ndarray, dst_hi: np.ndarray, dst_lo: np.ndarray,
             v6: np.ndarray, proto: np.ndarray, dport: np.ndarray, tool: np.ndarray,
             hops: np.ndarray, sensors: list[_Sensor], sport: np.ndarray | None = None
             ) -> Rows:
    """Fill the header fields a probe of ``tool`` carries: TTL, IP ID, window, lengths..."""
    n = ts.size
    tool = tool.astype(np.int64)
    tcp, udp = proto == _PROTO_TCP, proto == _PROTO_UDP
    icmp = (proto == _PROTO_ICMP) | (proto == _PROTO_ICMP6)
    ttl = _TOOL_TTL0[tool] - hops.astype(np.int64)
    nmap = tool == _T_NMAP
    ttl[nmap] = rng.integers(37, 60, int(nmap.sum()))  # nmap picks a TTL per probe
    ip_id = rng.integers(0, 65536, n)
    ip_id[tool == _T_ZMAP] = 54321
    window = _TOOL_WINDOW[tool].copy()
    rand_w = window == -1
    window[rand_w] = rng.integers(1024, 65536, int(rand_w.sum()))
    window[nmap] = rng.choice(np.array([1024, 2048, 3072, 4096]), int(nmap.sum()))
    old_stack = (tool == _T_WINDOWS) & (rng.random(n) < 0.3)
    window[old_stack] = 8192
    if sport is None:
        lo, hi = _TOOL_SPORT[tool, 0], _TOOL_SPORT[tool, 1]
        sport = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
    flags = np.where(tcp, _SYN, 0)
    ecn = tcp & (tool == _T_LINUX) & (rng.random(n) < 0.08)
    flags[ecn] |= _CWR | _ECE
    opt = np.where(tcp, _TOOL_OPT[tool], 0)
    ip_hdr = np.where(v6, 40, 20)
    payload = np.zeros(n, np.int64)
    if udp.any():
        payload[udp] = _udp_payload_table()[dport[udp]]
    udp_len = np.where(udp, 8 + payload, 0)
    ping_len = _TOOL_PING_LEN[tool] - 20
    ip_len = np.where(tcp, ip_hdr + 20 + _OPT_LEN[opt],
                      np.where(udp, ip_hdr + udp_len, ip_hdr + ping_len))
    tos = np.zeros(n, np.int64)
    marked = rng.random(n) < 0.06
    tos[marked] = rng.choice(np.array([0x08, 0x10, 0x20, 0x28, 0x48, 0x68, 0xB8, 0x04]),
                             int(marked.sum()))
    flowlbl = np.where(v6 & (tool == _T_LINUX), rng.integers(1, 1 << 20, n), 0)
    small_seq = (tool == _T_LINUX) | (tool == _T_WINDOWS)
    icmp_seq = np.where(small_seq, rng.integers(1, 5, n), rng.integers(0, 65536, n))
    allow = np.zeros(n, bool)
    ufw = np.array([s.ufw for s in sensors])[sensor]
    if ufw.any():
        server_v4 = np.array([s.server_v4 for s in sensors], np.uint64)[sensor] | _V4_MAPPED
        server = np.where(v6, np.uint64(0x443), server_v4)
        open_port = np.isin(dport, OPEN_PORTS)
        allow = ufw & tcp & open_port & (dst_lo == server) & (flags & _SYN > 0)
    return {
        "ts": ts, "sensor": sensor, "v6": v6, "src_hi": src_hi, "src_lo": src_lo,
        "dst_hi": dst_hi, "dst_lo": dst_lo, "proto": proto,
        "sport": np.where(icmp, 0, sport), "dport": np.where(icmp, 0, dport),
        "flags": flags, "ttl": np.clip(ttl, 1, 255), "ip_id": ip_id,
        "flowlbl": flowlbl, "tos": tos, "df": _TOOL_DF[tool], "ip_len": ip_len,
        "window": window, "opt": opt, "tsval": rng.integers(0, 1 << 32, n, dtype=np.uint64),
        "udp_len": udp_len,
        "icmp_type": np.where(proto == _PROTO_ICMP6, 128, np.where(icmp, 8, 0)),
        "icmp_id": rng.integers(0, 65536, n), "icmp_seq": icmp_seq, "allow": allow,
    }


# --- the plan: population, schedule, campaigns -----------------------------------------------


@dataclass
class _Plan:
    lines: int
    start_us: int
    days: float
    sensors: list[_Sensor]
    ipv6_share: float
    targets_v4: np.ndarray  # uint32, all sensors
    owner_v4: np.ndarray  # sensor index per target
    targets_v6_hi: np.ndarray
    targets_v6_lo: np.ndarray
    owner_v6: np.ndarray
    mix_proto: np.ndarray
    mix_port: np.ndarray  # -1: tail (random port)
    mix_cdf: np.ndarray
    v6_mix_cdf: np.ndarray
    pop_addr: np.ndarray
    pop_tool: np.ndarray
    pop_hops: np.ndarray
    pop_home: np.ndarray
    pop_home_p: np.ndarray
    pop_cdf: np.ndarray
    pop6_hi: np.ndarray
    pop6_lo: np.ndarray
    pop6_tool: np.ndarray
    pop6_cdf: np.ndarray
    victims: np.ndarray
    victims_cdf: np.ndarray
    exclude: np.ndarray  # sorted injected sources, never drawn for background
    grid_s: np.ndarray  # intensity grid (seconds since start) and its normalised CDF
    grid_cdf: np.ndarray
    injected: Rows = field(default_factory=dict)
    campaigns: list[dict[str, Any]] = field(default_factory=list)


def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    w = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(w)
    return cdf / cdf[-1]


def _port_mix() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tcp_w = np.arange(1, len(TCP_TOP) + 1, dtype=np.float64) ** -PORT_ZIPF
    udp_w = np.arange(1, len(UDP_TOP) + 1, dtype=np.float64) ** -PORT_ZIPF
    tcp_share, udp_share, icmp_share, back_share = PROTO_SHARES
    head = 1.0 - TAIL_SHARE
    proto = np.array([_PROTO_TCP] * len(TCP_TOP) + [_PROTO_TCP]
                     + [_PROTO_UDP] * len(UDP_TOP) + [_PROTO_UDP, _PROTO_ICMP, _PROTO_TCP])
    port = np.array([*TCP_TOP, -1, *UDP_TOP, -1, 0, -2])  # -2: backscatter
    weight = np.concatenate([tcp_w / tcp_w.sum() * tcp_share * head, [tcp_share * TAIL_SHARE],
                             udp_w / udp_w.sum() * udp_share * head, [udp_share * TAIL_SHARE],
                             [icmp_share, back_share]])
    cdf = np.cumsum(weight) / weight.sum()
    # IPv6: TCP only plus ICMPv6 echo (18%); no IPv6 UDP or backscatter.
    w6 = np.where(proto == _PROTO_TCP, weight, 0.0)
    w6[port == -2] = 0.0
    w6 = w6 / w6.sum() * 0.82
    w6[proto == _PROTO_ICMP] = 0.18
    return proto, port, cdf, np.cumsum(w6) / w6.sum()


def _intensity(days: float, rng: np.random.Generator, start_us: int) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """A per-minute probe rate with a day/night rhythm, as a CDF over seconds since start."""
    minutes = max(2, int(np.ceil(days * 1440)))
    grid = np.arange(minutes + 1, dtype=np.float64) * 60.0
    grid[-1] = days * 86400.0
    hour = ((start_us / 1e6 + grid[:-1]) % 86400) / 3600
    rate = 1 + DIURNAL_AMPLITUDE * np.cos(2 * np.pi * (hour - DIURNAL_PEAK_HOUR) / 24)
    day_factor = np.exp(rng.normal(0, DAILY_SPREAD, int(np.ceil(days)) + 1))
    rate *= day_factor[(grid[:-1] // 86400).astype(np.int64)]
    cdf = np.concatenate([[0.0], np.cumsum(rate * np.diff(grid))])
    return grid, cdf / cdf[-1]


def _make_plan(lines: int, seed: int, start: datetime, days: float, sensor_names: Sequence[str],
               formats: Sequence[str], targets: Sequence[str], ipv6_share: float,
               vertical: int | Sequence[VerticalScan], horizontal: int | Sequence[HorizontalSweep],
               surges: Sequence[Surge] | None) -> _Plan:
    if days <= 0:
        raise ValueError("days must be positive")
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    start_us = int(start.timestamp()) * 1_000_000 + start.microsecond
    root = np.random.SeedSequence(seed)
    r_sensors, r_pop, r_campaign, r_time = (np.random.default_rng(s) for s in root.spawn(4))
    sensors = _build_sensors(sensor_names, targets, formats, start_us, r_sensors)
    targets_v4 = np.concatenate([s.hosts_v4 for s in sensors])
    owner_v4 = np.concatenate([np.full(s.hosts_v4.size, i, np.uint8)
                               for i, s in enumerate(sensors)])
    t6_hi = np.concatenate([np.full(s.hosts_v6.size, s.v6_hi, np.uint64) for s in sensors])
    t6_lo = np.concatenate([s.hosts_v6 for s in sensors])
    owner_v6 = np.concatenate([np.full(s.hosts_v6.size, i, np.uint8)
                               for i, s in enumerate(sensors)])
    mix_proto, mix_port, mix_cdf, v6_cdf = _port_mix()
    grid, grid_cdf = _intensity(days, r_time, start_us)
    plan = _Plan(
        lines=lines, start_us=start_us, days=days, sensors=sensors, ipv6_share=ipv6_share,
        targets_v4=targets_v4, owner_v4=owner_v4, targets_v6_hi=t6_hi, targets_v6_lo=t6_lo,
        owner_v6=owner_v6, mix_proto=mix_proto, mix_port=mix_port, mix_cdf=mix_cdf,
        v6_mix_cdf=v6_cdf, pop_addr=np.empty(0, np.uint64), pop_tool=np.empty(0, np.int64),
        pop_hops=np.empty(0, np.int64), pop_home=np.empty(0, np.int64),
        pop_home_p=np.empty(0), pop_cdf=np.empty(0), pop6_hi=np.empty(0, np.uint64),
        pop6_lo=np.empty(0, np.uint64), pop6_tool=np.empty(0, np.int64), pop6_cdf=np.empty(0),
        victims=np.empty(0, np.uint64), victims_cdf=np.empty(0),
        exclude=np.empty(0, np.uint64), grid_s=grid, grid_cdf=grid_cdf,
    )
    _plan_campaigns(plan, r_campaign, days, vertical, horizontal, surges)
    _plan_population(plan, r_pop)
    return plan


def _plan_population(plan: _Plan, rng: np.random.Generator) -> None:
    size = int(np.clip(plan.lines // 15, 500, 2_000_000))
    plan.pop_addr = _public_v4(rng, size, plan.exclude)
    plan.pop_tool = rng.choice(len(TOOLS), size, p=_TOOL_SHARE)
    plan.pop_hops = rng.integers(5, 28, size)
    plan.pop_home = np.searchsorted(plan.mix_cdf, rng.random(size), side="right")
    # Telnet homes are mostly Mirai bots, SMB / MSSQL / RDP homes mostly Windows hosts.
    home_port = plan.mix_port[plan.pop_home]
    telnet = np.isin(home_port, (23, 2323)) & (rng.random(size) < 0.7)
    plan.pop_tool[telnet] = _T_MIRAI
    windows = np.isin(home_port, (445, 1433, 3389, 139, 135)) & (rng.random(size) < 0.5)
    plan.pop_tool[windows] = _T_WINDOWS
    plan.pop_home_p = np.full(size, HOME_PORT_P)
    plan.pop_home_p[:100] = HEAVY_HITTER_HOME_P
    plan.pop_cdf = _zipf_cdf(size, SOURCE_ZIPF)
    size6 = max(20, size // 40)
    plan.pop6_hi = np.uint64(0x20010DB8_8000_0000) | rng.integers(0, 1 << 31, size6,
                                                                 dtype=np.uint64)
    plan.pop6_lo = rng.integers(0, 1 << 63, size6, dtype=np.uint64)
    plan.pop6_tool = rng.choice(len(TOOLS), size6, p=_TOOL_SHARE)
    plan.pop6_cdf = _zipf_cdf(size6, SOURCE_ZIPF)
    plan.victims = _public_v4(rng, 300, plan.exclude)
    plan.victims_cdf = _zipf_cdf(300, 1.2)


def _times_in(plan: _Plan, rng: np.random.Generator, n: int, q0: float, q1: float
              ) -> np.ndarray:
    u = q0 + (q1 - q0) * rng.random(n)
    seconds = np.interp(u, plan.grid_cdf, plan.grid_s)
    return plan.start_us + (seconds * 1e6).astype(np.int64)


def _background(plan: _Plan, rng: np.random.Generator, n: int, q0: float, q1: float) -> Rows:
    """``n`` background probes with times in the intensity quantiles ``[q0, q1)``."""
    ts = _times_in(plan, rng, n, q0, q1)
    v6 = rng.random(n) < plan.ipv6_share
    one = rng.random(n) < ONE_SHOT_SHARE
    pidx = np.searchsorted(plan.pop_cdf, rng.random(n), side="right")
    p6 = np.searchsorted(plan.pop6_cdf, rng.random(n), side="right")
    mix = np.where(v6, np.searchsorted(plan.v6_mix_cdf, rng.random(n), side="right"),
                   np.searchsorted(plan.mix_cdf, rng.random(n), side="right"))
    home = (~one) & (~v6) & (rng.random(n) < plan.pop_home_p[pidx])
    mix = np.where(home, plan.pop_home[pidx], mix)
    proto = plan.mix_proto[mix].copy()
    port = plan.mix_port[mix].copy()
    back = (port == -2) & ~v6
    tail = port == -1
    port[tail] = rng.integers(1, 65536, int(tail.sum()))
    proto[v6 & (proto == _PROTO_ICMP)] = _PROTO_ICMP6
    tool = np.where(one, rng.choice(len(TOOLS), n, p=_TOOL_SHARE), plan.pop_tool[pidx])
    tool = np.where(v6, plan.pop6_tool[p6], tool)
    hops = np.where(one | v6, rng.integers(5, 28, n), plan.pop_hops[pidx])

    src4 = np.where(one, _public_v4(rng, n, plan.exclude), plan.pop_addr[pidx])
    vidx = np.searchsorted(plan.victims_cdf, rng.random(n), side="right")
    src4 = np.where(back, plan.victims[vidx], src4)
    one6 = one & v6
    src6_hi = np.where(one6, np.uint64(0x20010DB8_8000_0000)
                       | rng.integers(0, 1 << 31, n, dtype=np.uint64), plan.pop6_hi[p6])
    src6_lo = np.where(one6, rng.integers(0, 1 << 63, n, dtype=np.uint64), plan.pop6_lo[p6])
    t4 = rng.integers(0, plan.targets_v4.size, n)
    t6 = rng.integers(0, plan.targets_v6_lo.size, n)
    zero = np.uint64(0)
    rows = _packets(
        rng, ts=ts, sensor=np.where(v6, plan.owner_v6[t6], plan.owner_v4[t4]),
        src_hi=np.where(v6, src6_hi, zero), src_lo=np.where(v6, src6_lo, src4 | _V4_MAPPED),
        dst_hi=np.where(v6, plan.targets_v6_hi[t6], zero),
        dst_lo=np.where(v6, plan.targets_v6_lo[t6],
                        plan.targets_v4[t4].astype(np.uint64) | _V4_MAPPED),
        v6=v6, proto=proto, dport=port, tool=tool, hops=hops, sensors=plan.sensors)
    if back.any():
        _backscatter(rng, rows, back)
    return rows


def _backscatter(rng: np.random.Generator, rows: Rows, back: np.ndarray) -> None:
    """Replies of DDoS victims to spoofed sources: SYN-ACK / RST-ACK / RST to high ports."""
    k = int(back.sum())
    kind = rng.choice(3, k, p=[0.6, 0.25, 0.15])
    flags = np.array([_SYN | _ACK, _RST | _ACK, _RST])[kind]
    rows["flags"][back] = flags
    rows["sport"][back] = rng.choice(np.array([80, 443, 53, 22, 25, 3389, 8080, 6667]), k)
    rows["dport"][back] = rng.integers(1024, 65536, k)
    rows["df"][back] = True
    rows["ttl"][back] = np.where(rng.random(k) < 0.6, 64, 128) - rng.integers(5, 25, k)
    rows["window"][back] = np.where(kind == 0, rng.choice(np.array([64240, 65535, 29200]), k), 0)
    rows["opt"][back] = np.where(kind == 0, 1, 0)
    rows["ip_len"][back] = np.where(kind == 0, 44, 40)
    rows["allow"][back] = False


def _plan_campaigns(plan: _Plan, rng: np.random.Generator, days: float,
                    vertical: int | Sequence[VerticalScan],
                    horizontal: int | Sequence[HorizontalSweep],
                    surges: Sequence[Surge] | None) -> None:
    lines = plan.lines
    if isinstance(vertical, int):
        vertical = [VerticalScan(ports=int(rng.integers(200, 1500)),
                                 targets=int(rng.choice([1, 1, 1, 2, 4])),
                                 rate=float(np.exp(rng.uniform(np.log(0.5), np.log(300)))))
                    for _ in range(vertical)]
    if isinstance(horizontal, int):
        choices = np.array([6379, 9200, 2375, 5900, 8080, 3389, 8443, 10250, 9090, 5985])
        ports = rng.choice(choices, min(horizontal, choices.size), replace=False)
        horizontal = [HorizontalSweep(port=int(p), rate=float(rng.uniform(20, 500)))
                      for p in ports]
    if surges is None:
        surges = [Surge("tcp", 37215, start_day=days * 0.7, days=days * 0.3, tool="mirai")]
    surges = [replace(s, sources=s.sources if s.sources is not None else max(10, lines // 500))
              for s in surges]
    # Campaigns take at most half the lines; shrink them proportionally for tiny files.
    n_targets = plan.targets_v4.size
    wanted = (sum(v.ports * min(v.targets, n_targets) for v in vertical)
              + len(horizontal) * n_targets
              + sum((s.sources or 0) * s.probes_per_source for s in surges))
    scale = min(1.0, 0.5 * lines / wanted) if wanted else 1.0
    injected_sources = _public_v4(rng, len(vertical) + len(horizontal)
                                  + sum(max(1, int((s.sources or 0) * scale)) for s in surges),
                                  np.empty(0, np.uint64))
    injected_sources = np.unique(injected_sources)  # sorted; duplicates merely shrink a surge
    rng.shuffle(injected_sources)
    cursor = 0
    parts: list[Rows] = []
    campaigns: list[dict[str, Any]] = []
    span_us = int(days * 86400e6)

    def when(count: int, rate: float, at_day: float | None) -> np.ndarray:
        duration = int(count / rate * 1e6)
        if at_day is None:
            begin = int(rng.integers(0, max(1, span_us - duration)))
        else:
            begin = int(at_day * 86400e6)
        offsets = np.sort(rng.integers(0, max(1, duration), count))
        return np.minimum(plan.start_us + begin + offsets, plan.start_us + span_us - 1)

    for spec in vertical:
        n_ports = max(1, int(spec.ports * scale))
        k = min(spec.targets, n_targets)
        first = int(rng.integers(0, n_targets - k + 1))
        tgt = plan.targets_v4[first:first + k].astype(np.uint64)
        # nmap-like: the well-known ports first in its list, the rest random, probed shuffled.
        known = np.array(TCP_TOP[: min(len(TCP_TOP), n_ports // 3)])
        rest = np.setdiff1d(rng.choice(np.arange(1, 65536), n_ports * 2, replace=False), known)
        port_set = np.concatenate([known, rng.permutation(rest)[: n_ports - known.size]])
        port_set = rng.permutation(port_set)
        count = port_set.size * k
        src = injected_sources[cursor]
        cursor += 1
        dport = np.tile(port_set, k)
        dst = np.repeat(tgt, port_set.size)
        rows = _packets(
            rng, ts=when(count, spec.rate, spec.at_day),
            sensor=plan.owner_v4[first + np.repeat(np.arange(k), port_set.size)],
            src_hi=np.zeros(count, np.uint64), src_lo=np.full(count, src | _V4_MAPPED),
            dst_hi=np.zeros(count, np.uint64), dst_lo=dst | _V4_MAPPED,
            v6=np.zeros(count, bool), proto=np.full(count, _PROTO_TCP), dport=dport,
            tool=np.full(count, _T_NMAP), hops=np.zeros(count, np.int64),
            sensors=plan.sensors, sport=np.full(count, int(rng.integers(33000, 65000))))
        parts.append(rows)
        campaigns.append({"kind": "vertical", "src": int(src), "proto": "tcp",
                          "ports": sorted(int(p) for p in port_set),
                          "targets": [_v4_text(t) for t in tgt]})
    for sweep in horizontal:
        k = max(1, int(n_targets * scale))
        order = rng.permutation(n_targets)[:k]
        src = injected_sources[cursor]
        cursor += 1
        proto = _PROTO_TCP if sweep.proto == "tcp" else _PROTO_UDP
        rows = _packets(
            rng, ts=when(k, sweep.rate, sweep.at_day), sensor=plan.owner_v4[order],
            src_hi=np.zeros(k, np.uint64), src_lo=np.full(k, src | _V4_MAPPED),
            dst_hi=np.zeros(k, np.uint64),
            dst_lo=plan.targets_v4[order].astype(np.uint64) | _V4_MAPPED,
            v6=np.zeros(k, bool), proto=np.full(k, proto), dport=np.full(k, sweep.port),
            tool=np.full(k, _T_ZMAP), hops=np.full(k, int(rng.integers(8, 25))),
            sensors=plan.sensors)
        parts.append(rows)
        campaigns.append({"kind": "horizontal", "src": int(src), "proto": sweep.proto,
                          "ports": [sweep.port], "targets": int(k)})
    for surge in surges:
        m = max(1, int((surge.sources or 0) * scale))
        srcs = injected_sources[cursor:cursor + m]
        cursor += srcs.size
        m = srcs.size
        per = rng.geometric(1.0 / max(1.0, surge.probes_per_source), m)
        count = int(per.sum())
        who = np.repeat(np.arange(m), per)
        # Activity density rises linearly over the window: first sight at start + d*sqrt(u).
        first_seen = surge.start_day * 86400e6 + surge.days * 86400e6 * np.sqrt(rng.random(m))
        gap = rng.exponential(90e6, count)  # follow-up probes minutes apart
        cumulative = np.cumsum(gap)
        offset = cumulative - np.repeat(cumulative[np.cumsum(per) - per], per)
        # A burst that would run past the end starts earlier instead of piling up there.
        burst = np.maximum.reduceat(offset, np.cumsum(per) - per) if count else offset
        late = first_seen + burst > span_us - 1
        first_seen[late] -= burst[late]  # the burst now ends where it would have begun
        ts = plan.start_us + (first_seen[who] + offset).astype(np.int64)
        ts = np.clip(ts, plan.start_us, plan.start_us + span_us - 1)
        t4 = rng.integers(0, n_targets, count)
        proto = _PROTO_TCP if surge.proto == "tcp" else _PROTO_UDP
        rows = _packets(
            rng, ts=ts, sensor=plan.owner_v4[t4], src_hi=np.zeros(count, np.uint64),
            src_lo=srcs[who] | _V4_MAPPED, dst_hi=np.zeros(count, np.uint64),
            dst_lo=plan.targets_v4[t4].astype(np.uint64) | _V4_MAPPED,
            v6=np.zeros(count, bool), proto=np.full(count, proto),
            dport=np.full(count, surge.port), tool=np.full(count, _SURGE_TOOLS[surge.tool]),
            hops=rng.integers(5, 28, m)[who], sensors=plan.sensors)
        parts.append(rows)
        campaigns.append({"kind": "surge", "proto": surge.proto, "port": surge.port,
                          "sources": int(m), "window_start_day": surge.start_day,
                          "window_days": surge.days, "tool": surge.tool,
                          "src_set": srcs})
    injected = _concat(parts)
    # Label each row with its campaign so the truth is recomputed from what was emitted.
    label = np.concatenate([np.full(p["ts"].size, i, np.int32) for i, p in enumerate(parts)]
                           ) if parts else np.empty(0, np.int32)
    if injected["ts"].size > lines:  # only when rounding overshoots on tiny files
        keep = np.sort(rng.permutation(injected["ts"].size)[:lines])
        injected, label = _take(injected, keep), label[keep]
    order = np.argsort(injected["ts"], kind="stable")
    plan.injected = _take(injected, order)
    plan.injected["campaign"] = label[order]
    plan.campaigns = campaigns
    plan.exclude = np.sort(injected_sources)


# --- rendering ------------------------------------------------------------------------------


@dataclass
class _Calendar:
    day0_us: int
    tokens: np.ndarray  # per day: syslog "Nov 26 " then rfc3339 "2024-11-26T"

    @classmethod
    def build(cls, start_us: int, days: float) -> _Calendar:
        day0 = datetime.fromtimestamp(start_us // 1_000_000, UTC).replace(
            hour=0, minute=0, second=0)
        toks: list[bytes] = []
        for i in range(int(np.ceil(days)) + 2):
            d = day0 + timedelta(days=i)
            toks += [f"{_MONTHS[d.month - 1]} {d.day:>2} ".encode(),
                     f"{d.year:04d}-{d.month:02d}-{d.day:02d}T".encode()]
        return cls(int(day0.timestamp()) * 1_000_000, _table(toks))


def _v4_matrix(lo: np.ndarray) -> np.ndarray:
    a = (lo & np.uint64(0xFFFFFFFF)).astype(np.int64)
    dot, space = _dec_table(256, b"."), _dec_table(256, b" ")
    return np.concatenate([dot[a >> 24], dot[(a >> 16) & 255], dot[(a >> 8) & 255],
                           space[a & 255]], axis=1)


def _v6_matrix(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    colon, space = _hex4_table(b":"), _hex4_table(b" ")
    groups = [(hi >> np.uint64(s)) & np.uint64(0xFFFF) for s in (48, 32, 16, 0)]
    groups += [(lo >> np.uint64(s)) & np.uint64(0xFFFF) for s in (48, 32, 16, 0)]
    return np.concatenate([colon[g.astype(np.int64)] for g in groups[:-1]]
                          + [space[groups[-1].astype(np.int64)]], axis=1)


def _render(rows: Rows, sensors: list[_Sensor], cal: _Calendar) -> bytes:
    """The log text of ``rows`` (already in time order)."""
    n = rows["ts"].size
    if n == 0:
        return b""
    where = np.flatnonzero
    sensor = rows["sensor"].astype(np.int64)
    framing = np.array([s.framing for s in sensors])[sensor]
    rfc = framing == 2
    ts = rows["ts"]
    day = (ts - cal.day0_us) // 86_400_000_000
    sec = (ts - cal.day0_us) // 1_000_000 % 86400
    micro = ts % 1_000_000
    v6 = rows["v6"]
    v4r, v6r = where(~v6), where(v6)
    proto = rows["proto"]
    tcp, udp = proto == _PROTO_TCP, proto == _PROTO_UDP
    icmp = (proto == _PROTO_ICMP) | (proto == _PROTO_ICMP6)
    tcp_r, udp_r, ports_r, icmp_r = where(tcp), where(udp), where(tcp | udp), where(icmp)
    dec16, dec8 = _dec_table(65536), _dec_table(256)

    slots: list[list[_Piece]] = []
    slots.append([_Piece(cal.tokens, day * 2 + rfc)])
    slots.append([_Piece(_hms_table(), sec)])
    rfc_r = where(rfc)
    stamp = [_const(b" ", where(~rfc))]
    if rfc_r.size:
        stamp.append(_Piece(np.concatenate([
            np.broadcast_to(_table([b"."]), (rfc_r.size, 1)),
            _uint_text(micro[rfc_r], 6, zero_pad=True),
            np.broadcast_to(_table([b"+00:00 "]), (rfc_r.size, 7))], axis=1), rows=rfc_r))
    slots.append(stamp)
    slots.append([_Piece(_table([f"{s.name} kernel: ".encode() for s in sensors]), sensor)])
    up_r = where(framing == 0)
    if up_r.size:
        uptime = ts[up_r] - np.array([s.boot_us for s in sensors], np.int64)[sensor[up_r]]
        secs = uptime // 1_000_000
        width = max(5, len(str(int(secs.max()))))
        slots.append([_Piece(np.concatenate([
            np.broadcast_to(_table([b"["]), (up_r.size, 1)),
            _uint_text(secs, width, field_width=5),
            np.broadcast_to(_table([b"."]), (up_r.size, 1)),
            _uint_text(uptime % 1_000_000, 6, zero_pad=True),
            np.broadcast_to(_table([b"] "]), (up_r.size, 2))], axis=1), rows=up_r)])
    prefixes = _table([t for s in sensors for t in (s.prefix, ALLOW_PREFIX.encode())])
    slots.append([_Piece(prefixes, sensor * 2 + rows["allow"])])
    heads = _table([t for s in sensors for t in (s.head_v4, s.head_v6)])
    slots.append([_Piece(heads, sensor * 2 + v6)])
    for side in ("src", "dst"):
        slots.append([_const(b"SRC=" if side == "src" else b"DST=")])
        slots.append([_Piece(_v4_matrix(rows[f"{side}_lo"][v4r]), rows=v4r),
                      _Piece(_v6_matrix(rows[f"{side}_hi"][v6r], rows[f"{side}_lo"][v6r]),
                             rows=v6r)])
    slots.append([_const(b"LEN=")])
    slots.append([_Piece(dec16, rows["ip_len"])])
    slots.append([_Piece(_tos_table(), rows["tos"][v4r], v4r),
                  _Piece(_table([b"TC=%d HOPLIMIT=" % t for t in range(256)]), rows["tos"][v6r],
                         v6r)])
    slots.append([_Piece(dec8, rows["ttl"])])
    slots.append([_const(b"ID=", v4r), _const(b"FLOWLBL=", v6r)])
    slots.append([_Piece(dec16, rows["ip_id"][v4r], v4r),
                  _Piece(_uint_text(rows["flowlbl"][v6r], 7), rows=v6r),
                  ])
    slots.append([_const(b" ", v6r), _Piece(_table([b"", b"DF "]), rows["df"][v4r], v4r)])
    proto_code = np.select([tcp, udp, proto == _PROTO_ICMP], [0, 1, 2], 3)
    slots.append([_Piece(_table([b"PROTO=TCP ", b"PROTO=UDP ", b"PROTO=ICMP ",
                                 b"PROTO=ICMPv6 "]), proto_code)])
    icmp_tok = _table([b"TYPE=%d CODE=0 ID=" % t for t in (8, 128)])
    slots.append([_const(b"SPT=", ports_r),
                  _Piece(icmp_tok, (proto[icmp_r] == _PROTO_ICMP6).astype(np.int64), icmp_r)])
    slots.append([_Piece(dec16, rows["sport"][ports_r], ports_r),
                  _Piece(dec16, rows["icmp_id"][icmp_r], icmp_r)])
    slots.append([_const(b"DPT=", ports_r), _const(b"SEQ=", icmp_r)])
    slots.append([_Piece(dec16, rows["dport"][ports_r], ports_r),
                  _Piece(dec16, rows["icmp_seq"][icmp_r], icmp_r)])
    slots.append([_const(b"WINDOW=", tcp_r), _const(b"LEN=", udp_r)])
    slots.append([_Piece(dec16, rows["window"][tcp_r], tcp_r),
                  _Piece(dec16, rows["udp_len"][udp_r], udp_r)])
    slots.append([_const(b"RES=0x00 ", tcp_r)])
    slots.append([_Piece(_flags_table(), rows["flags"][tcp_r], tcp_r)])
    slots.append([_const(b"URGP=0 ", tcp_r)])
    with_opt = np.array([s.tcp_options for s in sensors])[sensor] & tcp & (rows["opt"] > 0)
    opt_r = where(with_opt)
    if opt_r.size:
        slots.append([_Piece(_opt_table(), rows["opt"][opt_r].astype(np.int64), opt_r)])
        ts_r = where(with_opt & (rows["opt"] == 3))
        if ts_r.size:
            tsval = rows["tsval"][ts_r].astype(np.int64)
            hexu = _hex4_upper_table()
            slots.append([_Piece(np.concatenate([
                hexu[tsval >> 16], hexu[tsval & 0xFFFF],
                np.broadcast_to(_table([b"0000000001030307) "]), (ts_r.size, 18))], axis=1),
                rows=ts_r)])
    slots.append([_const(b"\n")])
    return _squeeze(n, slots)


# --- truth ------------------------------------------------------------------------------


def _unique3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, ...]:
    if a.size == 0:
        return a, b, c
    order = np.lexsort((c, b, a))
    a, b, c = a[order], b[order], c[order]
    keep = np.ones(a.size, bool)
    keep[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1]) | (c[1:] != c[:-1])
    return a[keep], b[keep], c[keep]


class _Truth:
    """Counts recomputed from the emitted rows, so the truth file matches the log exactly."""

    def __init__(self, plan: _Plan, tracked_ports: Sequence[tuple[int, int]]) -> None:
        self.plan = plan
        self.records = np.zeros(2 * 65536, np.int64)  # (tcp, udp) x port
        self.allowed = np.zeros(2 * 65536, np.int64)
        self.src_parts: list[tuple[np.ndarray, ...]] = []
        self.dst_parts: list[tuple[np.ndarray, ...]] = []
        self.daily_parts: list[tuple[np.ndarray, ...]] = []
        self.daily_records: dict[int, int] = {}
        self.tracked = np.array([(0 if p == _PROTO_TCP else 1) * 65536 + port
                                 for p, port in tracked_ports], np.int64)
        self.totals = {"lines": 0, "ipv4": 0, "ipv6": 0, "tcp": 0, "udp": 0, "icmp": 0,
                       "icmpv6": 0, "allowed": 0, "blocked": 0, "tcp_backscatter": 0}
        self.per_sensor = np.zeros(len(plan.sensors), np.int64)
        self.campaign_rows: dict[int, list[int]] = {}
        self.campaign_span: dict[int, list[int]] = {}

    def update(self, rows: Rows, campaign: np.ndarray) -> None:
        proto = rows["proto"]
        n = proto.size
        t = self.totals
        t["lines"] += n
        t["ipv6"] += int(rows["v6"].sum())
        t["ipv4"] += n - int(rows["v6"].sum())
        t["tcp"] += int((proto == _PROTO_TCP).sum())
        t["udp"] += int((proto == _PROTO_UDP).sum())
        t["icmp"] += int((proto == _PROTO_ICMP).sum())
        t["icmpv6"] += int((proto == _PROTO_ICMP6).sum())
        t["allowed"] += int(rows["allow"].sum())
        t["blocked"] += n - int(rows["allow"].sum())
        t["tcp_backscatter"] += int(((proto == _PROTO_TCP) & (rows["flags"] & _ACK > 0)).sum()
                                    + ((proto == _PROTO_TCP) & (rows["flags"] == _RST)).sum())
        self.per_sensor += np.bincount(rows["sensor"], minlength=self.per_sensor.size)
        ported = (proto == _PROTO_TCP) | (proto == _PROTO_UDP)
        key = (np.where(proto == _PROTO_UDP, 65536, 0) + rows["dport"].astype(np.int64))[ported]
        self.records += np.bincount(key, minlength=self.records.size)
        self.allowed += np.bincount(key[rows["allow"][ported]], minlength=self.records.size)
        self.src_parts.append(_unique3(key, rows["src_hi"][ported], rows["src_lo"][ported]))
        self.dst_parts.append(_unique3(key, rows["dst_hi"][ported], rows["dst_lo"][ported]))
        tracked = np.isin(key, self.tracked)
        if tracked.any():
            day = (rows["ts"][ported][tracked] - self.plan.start_us) // 86_400_000_000
            dk = day * 131072 + key[tracked]
            for k, c in zip(*np.unique(dk, return_counts=True), strict=True):
                self.daily_records[int(k)] = self.daily_records.get(int(k), 0) + int(c)
            self.daily_parts.append(_unique3(dk, rows["src_hi"][ported][tracked],
                                             rows["src_lo"][ported][tracked]))
        for c in np.unique(campaign[campaign >= 0]):
            sel = campaign == c
            self.campaign_rows.setdefault(int(c), [0])[0] += int(sel.sum())
            span = self.campaign_span.setdefault(int(c), [2**63 - 1, -(2**63)])
            span[0] = min(span[0], int(rows["ts"][sel].min()))
            span[1] = max(span[1], int(rows["ts"][sel].max()))

    @staticmethod
    def _distinct_per_key(parts: list[tuple[np.ndarray, ...]], size: int) -> np.ndarray:
        if not parts:
            return np.zeros(size, np.int64)
        k, _, _ = _unique3(*(np.concatenate([p[i] for p in parts]) for i in range(3)))
        return np.bincount(k, minlength=size)

    def result(self, top: int, meta: dict[str, Any]) -> dict[str, Any]:
        plan = self.plan
        sources = self._distinct_per_key(self.src_parts, self.records.size)
        targets = self._distinct_per_key(self.dst_parts, self.records.size)
        order = np.argsort(-self.records, kind="stable")
        chosen = [int(k) for k in order[:top] if self.records[k] > 0]
        chosen += [int(k) for k in self.tracked if int(k) not in chosen]
        per_port = [{"proto": "udp" if k >= 65536 else "tcp", "port": k % 65536,
                     "records": int(self.records[k]), "sources": int(sources[k]),
                     "targets": int(targets[k]), "allowed": int(self.allowed[k])}
                    for k in chosen]
        daily_src = (self._distinct_per_key(self.daily_parts, 0) if self.daily_parts
                     else np.zeros(0, np.int64))
        campaigns = []
        for i, c in enumerate(plan.campaigns):
            entry = {k: v for k, v in c.items() if k != "src_set"}
            if "src" in entry:
                entry["src"] = _v4_text(entry["src"])
            entry["probes"] = self.campaign_rows.get(i, [0])[0]
            span = self.campaign_span.get(i)
            if span:
                entry["first"] = _iso(span[0])
                entry["last"] = _iso(span[1])
            if c["kind"] == "surge":
                proto_off = 0 if c["proto"] == "tcp" else 65536
                key = proto_off + c["port"]
                days = int(np.ceil(plan.days))
                entry["daily"] = [
                    {"day": _iso(plan.start_us + d * 86_400_000_000)[:10],
                     "records": self.daily_records.get(d * 131072 + key, 0),
                     "sources": int(daily_src[d * 131072 + key])
                     if d * 131072 + key < daily_src.size else 0}
                    for d in range(days)]
            campaigns.append(entry)
        return {
            **meta,
            "totals": self.totals,
            "sensors": [{"name": s.name, "format": FORMATS[s.framing],
                         "prefix": s.prefix.decode().strip(), "iface": s.iface,
                         "targets_v4": f"{_v4_text(s.hosts_v4[0])}-{_v4_text(s.hosts_v4[-1])}",
                         "lines": int(self.per_sensor[i])}
                        for i, s in enumerate(plan.sensors)],
            "campaigns": campaigns,
            "per_port": per_port,
        }


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- driver -----------------------------------------------------------------------------


def _slices(plan: _Plan, seed: int) -> Iterator[tuple[Rows, np.ndarray]]:
    """Time-ordered row batches: background for one intensity slice plus the campaigns in it."""
    injected = plan.injected
    n_bg = plan.lines - injected["ts"].size
    k = max(1, -(-n_bg // SLICE_LINES))
    q = np.linspace(0.0, 1.0, k + 1)
    bounds = plan.start_us + (np.interp(q, plan.grid_cdf, plan.grid_s) * 1e6).astype(np.int64)
    bounds[-1] = np.iinfo(np.int64).max
    counts = np.diff(np.round(q * n_bg).astype(np.int64))
    cut = np.searchsorted(injected["ts"], bounds[:-1], side="left")
    cut[0] = 0
    cut = np.append(cut, injected["ts"].size)
    for i in range(k):
        rng = np.random.default_rng([seed, 1000 + i])
        bg = _background(plan, rng, int(counts[i]), q[i], q[i + 1])
        inj = _take(injected, slice(int(cut[i]), int(cut[i + 1])))
        label = np.concatenate([np.full(bg["ts"].size, -1, np.int32), inj.pop("campaign")])
        rows = _concat([bg, inj])
        order = np.argsort(rows["ts"], kind="stable")
        yield _take(rows, order), label[order]


def _open_output(path: str | Path, compress: bool | None, level: int) -> tuple[Any, Any]:
    text = str(path)
    raw: BinaryIO = sys.stdout.buffer if text == "-" else open(text, "wb")  # noqa: SIM115
    if compress is None:
        compress = text.endswith(".gz")
    if compress:
        # mtime=0 and no file name: the same content always gives the same gzip bytes.
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=level,
                             mtime=0), raw
    return raw, None


def generate(
    path: str | Path,
    lines: int,
    *,
    seed: int = 7,
    start: datetime = DEFAULT_START,
    days: float = 7.0,
    sensors: Sequence[str] = DEFAULT_SENSORS,
    formats: Sequence[str] = ("syslog",),
    targets: Sequence[str] = DEFAULT_TARGETS,
    ipv6_share: float = 0.02,
    vertical: int | Sequence[VerticalScan] = 3,
    horizontal: int | Sequence[HorizontalSweep] = 3,
    surges: Sequence[Surge] | None = None,
    truth: str | Path | None = None,
    truth_ports: int = 100,
    compress: bool | None = None,
    compresslevel: int = 6,
) -> dict[str, Any]:
    """Write ``lines`` log lines to ``path`` (``-``: standard output) and describe them.

    ``formats`` are syslog framings (:data:`FORMATS`) given to the sensors in turn;
    ``vertical`` / ``horizontal`` are counts of random campaigns or explicit specs;
    ``surges=None`` adds one default surge (TCP 37215 over the last 30% of the period),
    ``()`` none.  Output is gzip when ``compress`` is true or, by default, when the path
    ends in ``.gz``.  With ``truth`` a JSON of what was generated is written there.
    Returns ``lines``, ``bytes`` (uncompressed), ``seconds`` and, with ``truth``, the truth.
    """
    t0 = time.perf_counter()
    out, raw = _open_output(path, compress, compresslevel)
    try:
        written, truth_doc = _emit(out, lines, seed=seed, start=start, days=days,
                                   sensors=sensors, formats=formats, targets=targets,
                                   ipv6_share=ipv6_share, vertical=vertical,
                                   horizontal=horizontal, surges=surges,
                                   truth_ports=truth_ports if truth is not None else None)
    finally:
        if raw is not None:
            out.close()
            if raw is not sys.stdout.buffer:
                raw.close()
        elif out is not sys.stdout.buffer:
            out.close()
        else:
            out.flush()
    result: dict[str, Any] = {"lines": lines, "bytes": written,
                              "seconds": time.perf_counter() - t0}
    if truth is not None and truth_doc is not None:
        result["truth"] = truth_doc
        Path(truth).write_text(json.dumps(truth_doc, indent=1) + "\n")
    return result


def generate_bytes(lines: int, **kwargs: Any) -> bytes:
    """The log text :func:`generate` writes for the same arguments, in memory."""
    buf = io.BytesIO()
    _emit(buf, lines, **kwargs)
    return buf.getvalue()


def generate_truth(lines: int, truth_ports: int = 100, **kwargs: Any) -> tuple[bytes, dict]:
    """The log text and its truth document, in memory (for tests)."""
    buf = io.BytesIO()
    _, doc = _emit(buf, lines, truth_ports=truth_ports, **kwargs)
    assert doc is not None
    return buf.getvalue(), doc


def _emit(out: BinaryIO, lines: int, *, seed: int = 7, start: datetime = DEFAULT_START,
          days: float = 7.0, sensors: Sequence[str] = DEFAULT_SENSORS,
          formats: Sequence[str] = ("syslog",), targets: Sequence[str] = DEFAULT_TARGETS,
          ipv6_share: float = 0.02, vertical: int | Sequence[VerticalScan] = 3,
          horizontal: int | Sequence[HorizontalSweep] = 3,
          surges: Sequence[Surge] | None = None, truth_ports: int | None = None,
          compresslevel: int = 6) -> tuple[int, dict[str, Any] | None]:
    del compresslevel  # accepted so presets can be passed whole
    if lines < 0:
        raise ValueError("lines must be >= 0")
    plan = _make_plan(lines, seed, start, days, sensors, formats, targets, ipv6_share,
                      vertical, horizontal, surges)
    cal = _Calendar.build(plan.start_us, days)
    tracked = [(_PROTO_TCP if c["proto"] == "tcp" else _PROTO_UDP, p)
               for c in plan.campaigns if c["kind"] in ("surge", "horizontal")
               for p in (c["ports"] if "ports" in c else [c["port"]])]
    tally = _Truth(plan, tracked) if truth_ports is not None else None
    written = 0
    for rows, label in _slices(plan, seed):
        if tally is not None:
            tally.update(rows, label)
        for i in range(0, rows["ts"].size, RENDER_ROWS):
            chunk = _render(_take(rows, slice(i, i + RENDER_ROWS)), plan.sensors, cal)
            out.write(chunk)
            written += len(chunk)
    if tally is None or truth_ports is None:
        return written, None
    meta = {"generator": "bench/gen_iptables_log.py", "generator_version": GENERATOR_VERSION,
            "seed": seed, "lines": lines, "start": _iso(plan.start_us), "days": days,
            "timezone": "UTC", "ipv6_share": ipv6_share}
    return written, tally.result(truth_ports, meta)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", required=True, help="output path (.gz: gzip; -: stdout)")
    parser.add_argument("--preset", choices=["example"],
                        help="the bundled example's parameters (examples/firewall.log.gz)")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", default=DEFAULT_START.strftime("%Y-%m-%dT%H:%M:%S"),
                        help="first timestamp, UTC (default %(default)s)")
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--sensors", default=",".join(DEFAULT_SENSORS),
                        help="comma-separated firewall host names")
    parser.add_argument("--formats", default="syslog",
                        help=f"comma-separated framings given to sensors in turn: {FORMATS}")
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                        help="comma-separated IPv4 CIDRs the sensors protect (split among them)")
    parser.add_argument("--ipv6-share", type=float, default=0.02)
    parser.add_argument("--vertical", type=int, default=3, help="random vertical scanners")
    parser.add_argument("--horizontal", type=int, default=3, help="random horizontal sweeps")
    parser.add_argument("--surge", action="append", metavar="PROTO/PORT:START_DAY:DAYS:SOURCES",
                        help="a surge of new sources on a port (repeatable; 'none': no surge); "
                             "default: one on tcp/37215 over the last 30%% of the period")
    parser.add_argument("--truth", help="write what was generated (JSON) to this path")
    parser.add_argument("--gzip", action="store_true", default=None,
                        help="gzip the output (default: when the path ends in .gz)")
    parser.add_argument("--compresslevel", type=int, default=6)
    args = parser.parse_args(argv)
    if args.preset == "example":
        kwargs = dict(EXAMPLE)
        lines = kwargs.pop("lines")
    else:
        lines = args.lines
        kwargs = {
            "seed": args.seed,
            "start": _utc(datetime.fromisoformat(args.start)),
            "days": args.days,
            "sensors": tuple(s for s in args.sensors.split(",") if s),
            "formats": tuple(f for f in args.formats.split(",") if f),
            "targets": tuple(t for t in args.targets.split(",") if t),
            "ipv6_share": args.ipv6_share,
            "vertical": args.vertical,
            "horizontal": args.horizontal,
            "surges": _parse_surges(args.surge),
            "compresslevel": args.compresslevel,
        }
    result = generate(args.output, lines, truth=args.truth, compress=args.gzip, **kwargs)
    rate = result["lines"] / result["seconds"] if result["seconds"] else 0.0
    print(f"wrote {result['lines']:,} lines ({result['bytes'] / 1e6:,.1f} MB uncompressed) to "
          f"{args.output} in {result['seconds']:.2f} s: {rate:,.0f} lines/s", file=sys.stderr)
    return 0


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse_surges(specs: Sequence[str] | None) -> tuple[Surge, ...] | None:
    if not specs:
        return None
    if specs == ["none"]:
        return ()
    out = []
    for spec in specs:
        try:
            head, start_day, days, sources = spec.split(":")
            proto, port = head.split("/")
            out.append(Surge(proto.lower(), int(port), float(start_day), float(days),
                             int(sources)))
        except ValueError as exc:
            raise SystemExit(f"--surge {spec!r}: expected PROTO/PORT:START_DAY:DAYS:SOURCES, "
                             f"e.g. tcp/445:11:3:3000") from exc
    return tuple(out)


if __name__ == "__main__":
    sys.exit(main())
