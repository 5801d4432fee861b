"""Shape, type and tool of a scanner (scan_shape, scan_type, fingerprint) on synthetic probes.

Each tool's rule is the one its source code implies (masscan's IP ID, ZMap's 54321,
nmap's per-packet TTL and windows, Mirai's sequence number, hping3's window 64); the
probes here are built the way those tools build them.
"""

from __future__ import annotations

import numpy as np
import pytest
from scan_events import ACK, SYN, ev, probes

from portradar.events.addresses import address_key
from portradar.scan.fingerprint import TOOLS, probe_marks, tool_of
from portradar.scan.probes import Probes
from portradar.scan.scan_shape import shape_names
from portradar.scan.source_profile import profile

SRC = "198.51.100.30"
rng = np.random.default_rng(11)


def _v4(text: str) -> int:
    return address_key(text)[1] & 0xFFFF_FFFF


def _tool(rows) -> str:
    p = probes(rows)
    prof = profile(p)
    code, _ = tool_of(prof["marks"], prof["probes"], prof["ttls"])
    return TOOLS[code[0]]


def masscan_probe(dst: str, port: int, t: float) -> dict:
    seq = int(rng.integers(0, 2 ** 32))
    return ev(SRC, dst, port, t=t, ttl=243, window=1024, seq=seq,
              ip_id=(_v4(dst) ^ port ^ seq) & 0xFFFF)


def test_masscan_from_its_ip_id_formula():
    rows = [masscan_probe(f"192.0.2.{i}", 80 + i, i) for i in range(1, 20)]
    assert _tool(rows) == "masscan"
    # without sequence numbers (a firewall log): TTL 255 and window 1024
    for r in rows:
        r["tcp_seq"] = None
    assert _tool(rows) == "masscan"


def test_zmap_from_ip_id_54321():
    rows = [ev(SRC, f"192.0.2.{i}", 6379, t=i, ttl=240, window=65535, ip_id=54321,
               seq=int(rng.integers(0, 2 ** 32))) for i in range(1, 20)]
    assert _tool(rows) == "zmap"


def test_mirai_from_sequence_equal_to_target():
    rows = [ev(SRC, f"192.0.2.{i}", 23, t=i, ttl=52, window=int(rng.integers(0, 65536)),
               seq=_v4(f"192.0.2.{i}"), ip_id=int(rng.integers(0, 65536))) for i in range(1, 20)]
    assert _tool(rows) == "mirai"


def test_nmap_from_random_ttls_and_raw_windows():
    rows = [ev(SRC, "192.0.2.9", 1000 + i, t=i, ttl=int(rng.integers(37, 60)),
               window=int(rng.choice([1024, 2048, 3072, 4096])), ip_id=int(rng.integers(0, 65536)))
            for i in range(30)]
    assert _tool(rows) == "nmap"
    # an operating system keeps one TTL: not nmap
    for r in rows:
        r["ttl"] = 52
    assert _tool(rows) == ""


def test_hping3_from_its_default_window():
    rows = [ev(SRC, "192.0.2.9", 1 + i, t=i, ttl=64, window=512, sport=3000 + i)
            for i in range(30)]
    assert _tool(rows) == "hping3"


def test_marks_are_per_probe():
    p = probes([masscan_probe("192.0.2.1", 80, 0), ev(SRC, "192.0.2.1", 80, ip_id=54321)])
    marks = probe_marks(p)
    assert marks[0] & 2 and not marks[0] & 8 and marks[1] & 8


@pytest.mark.parametrize("flags,expected", [
    (SYN, "syn"), (0x01, "fin"), (0x00, "null"), (0x29, "xmas"), (ACK, "ack"), (0x03, "tcp-other"),
])
def test_scan_type_from_tcp_flags(flags, expected, tmp_path):
    from portradar.scan.scan_type import TYPES, scan_type

    rows = [ev(SRC, "192.0.2.9", 1000 + i, t=i, flags=flags, ttl=int(rng.integers(37, 60)),
               window=1024, sport=45000) for i in range(30)]
    prof = profile(probes(rows))
    tool, _ = tool_of(prof["marks"], prof["probes"], prof["ttls"])
    code = scan_type(prof["classes"], protocols=prof["protocols"],
                     established=prof["established"], syn_sports=prof["syn_sports"],
                     syn_big_window=prof["syn_big_window"], tool=tool,
                     syn_ephemeral=prof["syn_ephemeral"])
    assert TYPES[code[0]] == expected


def _type(rows) -> str:
    from portradar.scan.scan_type import TYPES, scan_type

    prof = profile(probes(rows))
    tool, _ = tool_of(prof["marks"], prof["probes"], prof["ttls"])
    return TYPES[scan_type(prof["classes"], protocols=prof["protocols"],
                           established=prof["established"], syn_sports=prof["syn_sports"],
                           syn_big_window=prof["syn_big_window"], tool=tool,
                           syn_ephemeral=prof["syn_ephemeral"])[0]]


def test_connect_scan_from_completed_handshakes_or_an_os_stack():
    # an open port answered and the handshake completed
    rows = [ev(SRC, "192.0.2.9", 20 + i, t=i, outcome="rejected", window=64240,
               sport=40000) for i in range(30)]
    rows[5]["outcome"] = 5  # established
    assert _type(rows) == "connect"
    # only SYNs, but a fresh ephemeral port and an OS window each time
    rows = [ev(SRC, "192.0.2.9", 20 + i, t=i, window=64240, sport=40000 + 7 * i, ttl=60)
            for i in range(30)]
    assert _type(rows) == "connect"
    # random ports below the ephemeral range (a raw tool, like topera): SYN
    for i, r in enumerate(rows):
        r["sport"] = 1000 + 997 * i
    assert _type(rows) == "syn"


def test_udp_icmp_and_protocol_scans():
    assert _type([ev(SRC, "192.0.2.9", 100 + i, t=i, proto=17) for i in range(30)]) == "udp"
    assert _type([ev(SRC, f"192.0.2.{i}", None, t=i, proto=1, icmp_type=8)
                  for i in range(1, 30)]) == "icmp-sweep"
    assert _type([ev(SRC, "192.0.2.9", None, t=i, proto=p) for i, p in
                  enumerate((2, 4, 41, 47, 50, 51, 89, 103, 132, 137))]) == "ip-proto"


def test_shapes():
    assert shape_names(np.array([1, 40, 3, 30, 30]), np.array([500, 1, 2, 30, 30]),
                       np.array([500, 40, 6, 900, 60])) == [
        "vertical", "horizontal", "horizontal", "block", "random"]


def test_probes_exclude_replies_housekeeping_and_multicast():
    rows = [ev(SRC, "192.0.2.9", 80, flags=0x12), ev(SRC, "ff02::1", None, proto=58,
                                                      icmp_type=135),
            ev(SRC, "224.0.0.1", None, proto=2), ev(SRC, "192.0.2.9", 80, flags=0x18),
            ev(SRC, "192.0.2.9", 80)]
    p = probes(rows).probes_only()
    assert len(p) == 1 and int(p.port[0]) == 80
    assert isinstance(p, Probes)
