"""Tests of the pcap/pcapng reader: containers, link types, decoding, outcomes, bad input.

Captures are built in memory by the small writers below (no fixture files), except the
real captures of ``../shared/data/pcaps/mmt-security`` whose expected outcomes were
read off ``tcpdump -nr`` and are written out explicitly in :data:`MMT_EXPECTED`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import dpkt
import numpy as np
import pyarrow as pa
import pytest
from conftest import DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portradar.errors import FormatError, InputError
from portradar.events import format_addresses, validate_batch
from portradar.ingest.opener import open_stream
from portradar.ingest.pcap import ANSWER_REASON, MAX_CAPLEN, MIN_PACKETS_PER_THREAD, PcapReader
from portradar.ingest.pipeline import ingest_inputs
from portradar.ingest.reader import ReadChunk, ReadOptions, ReadStats
from portradar.ingest.registry import get_reader
from portradar.ingest.sniff import sniff_format
from portradar.store.duckdb_store import Store

MMT = DATA / "pcaps" / "mmt-security"
SYN, RST, ACK, FIN, PSH, URG = 0x02, 0x04, 0x10, 0x01, 0x08, 0x20

# --------------------------------------------------------------------------------------
# frame builders
# --------------------------------------------------------------------------------------


def a4(text: str) -> bytes:
    return socket.inet_aton(text)


def a6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def tcp(sport: int, dport: int, flags: int, *, seq: int = 1000, ack: int = 0,
        win: int = 1024, options: bytes = b"") -> bytes:  # fmt: skip
    offset = (20 + len(options)) // 4
    head = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset << 4, flags, win, 0, 0)
    return head + options


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(kind: int, code: int, rest: bytes = b"\0\0\0\0", payload: bytes = b"") -> bytes:
    return struct.pack("!BBH", kind, code, 0) + rest + payload


def echo(kind: int, ident: int, seq: int) -> bytes:
    return icmp(kind, 0, struct.pack("!HH", ident, seq), b"ping")


def ipv4(proto: int, src: str, dst: str, payload: bytes, *, ttl: int = 64, ident: int = 1,
         frag: int = 0, total: int | None = None, options: bytes = b"") -> bytes:  # fmt: skip
    ihl = (20 + len(options)) // 4
    length = 20 + len(options) + len(payload) if total is None else total
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, ident, frag, ttl, proto, 0,
                       a4(src), a4(dst)) + options + payload  # fmt: skip


def ipv6(nh: int, src: str, dst: str, payload: bytes, *, hlim: int = 64,
         ext: bytes = b"") -> bytes:  # fmt: skip
    body = ext + payload
    return struct.pack("!IHBB16s16s", 6 << 28, len(body), nh, hlim, a6(src), a6(dst)) + body


def eth(payload: bytes, ethertype: int = 0x0800, vlans: tuple[tuple[int, int], ...] = ()) -> bytes:
    head = b"\x02\0\0\0\0\x01" + b"\x02\0\0\0\0\x02"
    for tpid, vid in vlans:
        head += struct.pack("!HH", tpid, vid)
    return head + struct.pack("!H", ethertype) + payload


def sll(payload: bytes, proto: int = 0x0800) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02\0\0\0\0\x01\0\0", proto) + payload


def sll2(payload: bytes, proto: int = 0x0800) -> bytes:
    return struct.pack("!HHIHBB8s", proto, 0, 3, 1, 0, 6, b"\x02\0\0\0\0\x01\0\0") + payload


def null(payload: bytes, af: int, big: bool = False) -> bytes:
    return struct.pack(">I" if big else "<I", af) + payload


def pflog(payload: bytes, *, af: int = 2, action: int = 1, ifname: bytes = b"em0",
          rulenr: int = 7, subrule: int = 0xFFFFFFFF, ruleset: bytes = b"",
          direction: int = 1) -> bytes:  # fmt: skip
    head = struct.pack("!BBBB16s16sIIiiiiB3x", 61, af, action, 0, ifname, ruleset, rulenr,
                       subrule, 0, 0, 0, 0, direction)  # fmt: skip
    assert len(head) == 64
    return head + payload


SYN_FRAME = eth(ipv4(6, "192.0.2.1", "198.51.100.7", tcp(40000, 22, SYN)))

# --------------------------------------------------------------------------------------
# container writers
# --------------------------------------------------------------------------------------

Record = tuple  # (ts_us, frame) or (ts_us, frame, origlen)


def pcap(records: list[Record], *, linktype: int = 1, big: bool = False, nano: bool = False,
         snaplen: int = 65535) -> bytes:  # fmt: skip
    o = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for rec in records:
        ts, frame = rec[0], rec[1]
        orig = rec[2] if len(rec) > 2 else len(frame)
        frac = (ts % 1_000_000) * (1000 if nano else 1)
        out.append(struct.pack(o + "IIII", ts // 1_000_000, frac, len(frame), orig) + frame)
    return b"".join(out)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _block(o: str, btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack(o + "II", btype, total) + body + struct.pack(o + "I", total)


@dataclass
class Iface:
    linktype: int
    tsresol: int | None = None  # the if_tsresol byte
    tsoffset: int | None = None  # seconds
    snaplen: int = 0


def pcapng_section(ifaces: list[Iface], blocks: list[tuple], *, big: bool = False) -> bytes:
    """One section: SHB, IDBs, then blocks ``("epb", iface, ticks, frame)``,
    ``("pb", iface, ticks, frame)``, ``("spb", frame)`` or ``("raw", type, body)``."""
    o = ">" if big else "<"
    out = [_block(o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for iface in ifaces:
        opts = b""
        if iface.tsresol is not None:
            opts += struct.pack(o + "HH", 9, 1) + _pad(bytes([iface.tsresol]))
        if iface.tsoffset is not None:
            opts += struct.pack(o + "HHq", 14, 8, iface.tsoffset)
        if opts:
            opts += struct.pack(o + "HH", 0, 0)
        out.append(_block(o, 1, struct.pack(o + "HHI", iface.linktype, 0, iface.snaplen) + opts))
    for blk in blocks:
        if blk[0] in ("epb", "pb"):
            _, iface, ticks, frame = blk
            head = (struct.pack(o + "I", iface) if blk[0] == "epb"
                    else struct.pack(o + "HH", iface, 0))  # fmt: skip
            body = head + struct.pack(o + "IIII", ticks >> 32, ticks & 0xFFFFFFFF, len(frame),
                                      len(frame)) + _pad(frame)  # fmt: skip
            out.append(_block(o, 6 if blk[0] == "epb" else 2, body))
        elif blk[0] == "spb":
            frame = blk[1]
            out.append(_block(o, 3, struct.pack(o + "I", len(frame)) + _pad(frame)))
        else:
            out.append(_block(o, blk[1], _pad(blk[2])))
    return b"".join(out)


# --------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------


@dataclass
class Read:
    table: pa.Table
    stats: ReadStats
    chunks: list[ReadChunk]

    def rows(self) -> list[dict]:
        d = self.table.to_pydict()
        src = format_addresses(d["src_hi"], d["src_lo"])
        dst = format_addresses(d["dst_hi"], d["dst_lo"])
        rows = self.table.to_pylist()
        for row, s, t in zip(rows, src, dst, strict=True):
            row["src"], row["dst"] = s, t
        return rows

    def outcomes(self) -> list[str]:
        return self.table.column("outcome").to_pylist()


def read(data: bytes | BinaryIO | io.IOBase, *, strict: bool = False, probe_timeout: float = 3.0,
         start_offset: int = 0, chunk_bytes: int = 32 << 20, sensor: str | None = None,
         reader: PcapReader | None = None) -> Read:  # fmt: skip
    stream = cast(BinaryIO, io.BytesIO(data) if isinstance(data, bytes) else data)
    stats = ReadStats(source="test.pcap", strict=strict)
    options = ReadOptions(strict=strict, probe_timeout=probe_timeout, chunk_bytes=chunk_bytes,
                          sensor=sensor)  # fmt: skip
    chunks = list((reader or PcapReader(keep_answers=True)).read(stream, start_offset=start_offset,
                                                options=options, stats=stats))  # fmt: skip
    for chunk in chunks:
        validate_batch(chunk.batch)
    assert chunks and chunks[-1].offset is not None
    assert all(c.offset is None for c in chunks[:-1])
    table = pa.Table.from_batches([c.batch for c in chunks])
    return Read(table, stats, chunks)


# --------------------------------------------------------------------------------------
# registry and sniffing
# --------------------------------------------------------------------------------------


def test_registered_under_its_module_name() -> None:
    assert get_reader("pcap") is PcapReader
    assert PcapReader.unit == "packets"


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_sniff_pcap_magics(big: bool, nano: bool) -> None:
    head = pcap([], big=big, nano=nano)
    assert PcapReader.sniff(head) == 1.0
    assert sniff_format(head) == "pcap"


@pytest.mark.parametrize("big", [False, True])
def test_sniff_pcapng(big: bool) -> None:
    head = pcapng_section([Iface(1)], [], big=big)
    assert PcapReader.sniff(head) == 1.0
    assert sniff_format(head) == "pcap"


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\0\0\0\0",
        b"Nov 26 10:00:00 fw kernel: IN=eth0",
        b"\x0a\x0d\x0d\x0a\x1c\0\0\0garbage!",
        b"\x89PNG\r\n\x1a\n",
    ],
)
def test_sniff_rejects_everything_else(head: bytes) -> None:
    assert PcapReader.sniff(head) == 0.0


# --------------------------------------------------------------------------------------
# classic pcap
# --------------------------------------------------------------------------------------

TS = 1_700_000_000_123_456  # µs


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(big: bool, nano: bool) -> None:
    frames = [SYN_FRAME, eth(ipv4(17, "192.0.2.1", "198.51.100.7", udp(5353, 53, b"q")))]
    got = read(pcap([(TS, frames[0]), (TS + 7, frames[1])], big=big, nano=nano))
    rows = got.rows()
    assert [r["ts"].timestamp() * 1e6 for r in rows] == pytest.approx([TS, TS + 7], abs=0.5)
    assert [(r["proto"], r["sport"], r["dport"]) for r in rows] == [(6, 40000, 22), (17, 5353, 53)]
    assert rows[0]["src"] == "192.0.2.1" and rows[0]["dst"] == "198.51.100.7"
    assert got.stats.records == 2 and got.stats.events == 2


def test_nanosecond_timestamps_are_truncated_to_microseconds() -> None:
    data = bytearray(pcap([(TS, SYN_FRAME)], nano=True))
    struct.pack_into("<I", data, 24 + 4, 123_456_789)  # 0.123456789 s
    (row,) = read(bytes(data)).rows()
    assert row["ts"].microsecond == 123_456


def test_every_event_field() -> None:
    frame = eth(ipv4(6, "203.0.113.9", "192.0.2.80", tcp(51515, 443, SYN | 0x40 | 0x80,
                                                          seq=0xDEADBEEF, win=29200),
                     ttl=47, ident=0x1C46))  # fmt: skip
    (row,) = read(pcap([(TS, frame)]), sensor="edge-1").rows()
    assert row["sensor"] == "edge-1" and row["format"] == "pcap"
    assert (row["src"], row["dst"], row["proto"], row["sport"], row["dport"]) == (
        "203.0.113.9",
        "192.0.2.80",
        6,
        51515,
        443,
    )
    assert (row["tcp_flags"], row["tcp_seq"], row["tcp_window"]) == (0xC2, 0xDEADBEEF, 29200)
    assert (row["ttl"], row["ip_id"], row["bytes"], row["packets"]) == (47, 0x1C46, 40, 1)
    assert row["icmp_type"] is None and row["rule"] is None and row["in_iface"] is None
    assert row["outcome"] == "unanswered"


def test_default_sensor() -> None:
    (row,) = read(pcap([(TS, SYN_FRAME)])).rows()
    assert row["sensor"] == "default"


def test_icmp_and_unknown_protocols_have_no_ports() -> None:
    frames = [
        eth(ipv4(1, "192.0.2.1", "192.0.2.2", icmp(13, 0))),  # timestamp request
        eth(ipv4(47, "192.0.2.1", "192.0.2.2", b"\0" * 8)),
    ]  # GRE
    rows = read(pcap([(TS, f) for f in frames])).rows()
    assert (rows[0]["icmp_type"], rows[0]["icmp_code"], rows[0]["sport"]) == (13, 0, None)
    assert (rows[1]["proto"], rows[1]["sport"], rows[1]["icmp_type"]) == (47, None, None)
    assert rows[1]["tcp_flags"] is None


def test_later_ipv4_fragment_has_no_ports() -> None:
    frames = [
        eth(ipv4(17, "192.0.2.1", "192.0.2.2", udp(1, 2, b"x" * 16), frag=0x2000)),
        eth(ipv4(17, "192.0.2.1", "192.0.2.2", b"y" * 16, frag=3)),
    ]
    rows = read(pcap([(TS, f) for f in frames])).rows()
    assert (rows[0]["sport"], rows[1]["sport"], rows[1]["proto"]) == (1, None, 17)


def test_ipv4_options_and_tso_zero_length() -> None:
    opts = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    big = eth(ipv4(6, "192.0.2.1", "192.0.2.2", tcp(1, 2, ACK) + b"z" * 3000, total=0))
    rows = read(pcap([(TS, eth(ipv4(6, "192.0.2.1", "192.0.2.2", tcp(7, 8, SYN),
                                    options=opts))), (TS, big)])).rows()  # fmt: skip
    assert (rows[0]["sport"], rows[0]["dport"], rows[0]["bytes"]) == (7, 8, 44)
    assert rows[1]["bytes"] == len(big) - 14  # wire length minus the Ethernet header


# --------------------------------------------------------------------------------------
# link types
# --------------------------------------------------------------------------------------

IP_PACKET = ipv4(6, "192.0.2.1", "198.51.100.7", tcp(40000, 22, SYN))
IP6_PACKET = ipv6(6, "2001:db8::1", "2001:db8::7", tcp(40000, 22, SYN))


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (1, eth(IP_PACKET)),
        (1, eth(IP_PACKET, 0x0800, ((0x8100, 42),))),  # 802.1Q
        (1, eth(IP_PACKET, 0x0800, ((0x88A8, 100), (0x8100, 42)))),  # QinQ
        (1, eth(IP_PACKET, 0x0800, ((0x9100, 100), (0x8100, 42)))),  # old QinQ TPID
        (113, sll(IP_PACKET)),
        (113, sll(IP_PACKET[:0] + struct.pack("!HH", 42, 0x0800) + IP_PACKET, 0x8100)),
        (276, sll2(IP_PACKET)),
        (101, IP_PACKET),
        (12, IP_PACKET),
        (14, IP_PACKET),
        (228, IP_PACKET),
        (0, null(IP_PACKET, 2)),
        (0, null(IP_PACKET, 2, big=True)),  # written on a big-endian host
        (108, null(IP_PACKET, 2, big=True)),
        (117, pflog(IP_PACKET, action=0)),
    ],
)
def test_link_types_ipv4(linktype: int, frame: bytes) -> None:
    for big in (False, True):
        (row,) = read(pcap([(TS, frame)], linktype=linktype, big=big)).rows()
        assert (row["src"], row["dst"], row["sport"], row["dport"], row["tcp_flags"]) == (
            "192.0.2.1",
            "198.51.100.7",
            40000,
            22,
            SYN,
        )


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (1, eth(IP6_PACKET, 0x86DD)),
        (1, eth(IP6_PACKET, 0x86DD, ((0x8100, 7),))),
        (113, sll(IP6_PACKET, 0x86DD)),
        (276, sll2(IP6_PACKET, 0x86DD)),
        (101, IP6_PACKET),
        (229, IP6_PACKET),
        (0, null(IP6_PACKET, 10)),  # Linux
        (0, null(IP6_PACKET, 24)),  # OpenBSD/NetBSD
        (0, null(IP6_PACKET, 28)),  # FreeBSD
        (0, null(IP6_PACKET, 30)),  # macOS
        (108, null(IP6_PACKET, 24, big=True)),
        (117, pflog(IP6_PACKET, af=24, action=0)),
    ],
)
def test_link_types_ipv6(linktype: int, frame: bytes) -> None:
    (row,) = read(pcap([(TS, frame)], linktype=linktype)).rows()
    assert (row["src"], row["dst"], row["proto"], row["dport"]) == (
        "2001:db8::1",
        "2001:db8::7",
        6,
        22,
    )
    assert row["ip_id"] is None and row["ttl"] == 64 and row["bytes"] == 60


def test_pflog_verdict_interface_and_rule() -> None:
    frames = [
        pflog(IP_PACKET, action=1, ifname=b"em0", rulenr=12, direction=1),  # block in
        pflog(IP_PACKET, action=0, ifname=b"vio1", rulenr=3, direction=2),  # pass out
        pflog(IP_PACKET, action=1, ifname=b"em0", rulenr=5, subrule=2, ruleset=b"ssh"),
        pflog(IP_PACKET, action=4),  # nat: no verdict on the probe
    ]
    rows = read(pcap([(TS + i, f) for i, f in enumerate(frames)], linktype=117)).rows()
    assert [r["outcome"] for r in rows] == ["blocked", "accepted", "blocked", "unanswered"]
    assert [r["in_iface"] for r in rows] == ["em0", None, "em0", "em0"]
    assert [r["out_iface"] for r in rows] == [None, "vio1", None, None]
    assert [r["rule"] for r in rows] == ["12", "3", "5.ssh.2", "7"]


def test_ipv6_extension_headers() -> None:
    hop = bytes([60, 0]) + b"\x01\x04\0\0\0\0"  # hop-by-hop -> destination options
    dest = bytes([43, 0]) + b"\x01\x04\0\0\0\0"  # destination options -> routing
    routing = bytes([44, 0, 0, 0]) + b"\0" * 4  # routing -> fragment
    frag_first = bytes([6, 0]) + struct.pack("!HI", 0x0001, 99)  # offset 0, more fragments
    frag_later = bytes([6, 0]) + struct.pack("!HI", 0x0010, 99)  # offset 2
    auth = bytes([17, 1]) + b"\0" * 10  # AH (length 1 = 12 bytes) -> UDP
    frames = [
        eth(ipv6(0, "2001:db8::1", "2001:db8::2", tcp(1234, 443, SYN),
                 ext=hop + dest + routing + frag_first), 0x86DD),
        eth(ipv6(44, "2001:db8::1", "2001:db8::2", b"\0" * 20, ext=frag_later), 0x86DD),
        eth(ipv6(51, "2001:db8::1", "2001:db8::2", udp(53, 5353), ext=auth), 0x86DD),
        eth(ipv6(50, "2001:db8::1", "2001:db8::2", b"\0" * 16), 0x86DD),  # ESP
        eth(ipv6(58, "2001:db8::1", "ff02::1", echo(128, 7, 1)), 0x86DD),
    ]  # fmt: skip
    rows = read(pcap([(TS + i, f) for i, f in enumerate(frames)])).rows()
    assert [(r["proto"], r["sport"], r["dport"]) for r in rows[:4]] == [
        (6, 1234, 443),
        (6, None, None),
        (17, 53, 5353),
        (50, None, None),
    ]
    assert (rows[4]["proto"], rows[4]["icmp_type"], rows[4]["outcome"]) == (58, 128, "unknown")


def test_non_ip_frames_are_counted_by_reason_not_spammed() -> None:
    arp = eth(b"\0\x01\x08\0\x06\x04\0\x01" + b"\0" * 20, 0x0806)
    stp = b"\x01\x80\xc2\0\0\0" + b"\x02\0\0\0\0\x01" + struct.pack("!H", 38) + b"\0" * 38
    records = [(TS, arp)] * 50 + [(TS, SYN_FRAME)] + [(TS, stp)] * 3
    got = read(pcap(records))
    assert got.table.num_rows == 1
    assert dict(got.stats.skipped) == {
        "not IP (ethertype 0x0806)": 50,
        "not IP (802.3/LLC frame)": 3,
    }
    assert got.stats.records == 54 and len(got.stats.examples) <= 5
    strict = read(pcap(records), strict=True)  # not IP is not malformed: strict reads it too
    assert strict.table.num_rows == 1 and strict.stats.skipped_total == 53


def test_malformed_frames_are_skipped_with_reasons() -> None:
    frames = [
        eth(b"\x45\0"),  # IP header cut short
        eth(ipv4(6, "192.0.2.1", "192.0.2.2", tcp(1, 2, SYN))[:0] + b"\x43" + b"\0" * 19),
        eth(IP6_PACKET),  # ethertype says IPv4, version says 6
        b"\x02\0\0",  # shorter than an Ethernet header
        eth(IP_PACKET, 0x0800, tuple((0x8100, 1) for _ in range(6))),
        SYN_FRAME,
    ]
    got = read(pcap([(TS, f) for f in frames]))
    assert got.table.num_rows == 1
    assert dict(got.stats.skipped) == {
        "truncated IP header": 1,
        "IPv4 header length 12 below 20 bytes": 1,
        "IP header with version 6 where the link layer says otherwise": 1,
        "truncated link-layer header (link type 1)": 1,
        "more than 4 VLAN tags": 1,
    }
    assert got.stats.examples[0].startswith("test.pcap:1: truncated IP header: frame at byte 40")
    with pytest.raises(FormatError, match=r"test\.pcap:1: truncated IP header"):
        read(pcap([(TS, f) for f in frames]), strict=True)


def test_transport_header_cut_by_snaplen_keeps_the_event() -> None:
    frame = SYN_FRAME[: 14 + 20 + 6]  # ports, no flags
    (row,) = read(pcap([(TS, frame, len(SYN_FRAME))], snaplen=40)).rows()
    assert (row["sport"], row["dport"], row["tcp_flags"], row["bytes"]) == (40000, 22, None, 40)


def test_unsupported_link_type_of_a_pcap_is_an_error() -> None:
    with pytest.raises(InputError, match=r"test.pcap: link type 105 is not supported"):
        read(pcap([(TS, b"\0" * 30)], linktype=105))


# --------------------------------------------------------------------------------------
# pcapng
# --------------------------------------------------------------------------------------


def test_pcapng_interfaces_resolutions_and_block_kinds() -> None:
    sec = 1_700_000_000
    blocks = [
        ("epb", 0, sec * 1_000_000 + 5, SYN_FRAME),  # µs (default resolution)
        ("epb", 1, sec * 10**9 + 123_456_789, IP6_PACKET),  # raw IPv6, ns
        ("raw", 4, b"\0\0\0\0"),  # name resolution block: stepped over
        ("raw", 5, struct.pack("<III", 0, 0, 0)),  # interface statistics: stepped over
        ("epb", 2, (sec << 20) | (1 << 19), sll(IP_PACKET)),  # 2^-20 s ticks, half a second
        ("spb", SYN_FRAME),  # no timestamp: the previous packet's
        ("pb", 3, 7, IP_PACKET),  # obsolete packet block, 10^-3 s ticks + if_tsoffset
        ("raw", 0x40000BAD, b"custom block"),
    ]
    ifaces = [Iface(1), Iface(101, tsresol=9), Iface(113, tsresol=0x80 | 20),
              Iface(228, tsresol=3, tsoffset=sec)]  # fmt: skip
    got = read(pcapng_section(ifaces, blocks))
    rows = got.rows()
    assert [r["ts"].timestamp() for r in rows] == pytest.approx(
        [sec + 5e-6, sec + 0.123456, sec + 0.5, sec + 0.5, sec + 0.007], abs=1e-6
    )
    assert [(r["src"], r["dport"]) for r in rows] == [
        ("192.0.2.1", 22),
        ("2001:db8::1", 22),
        ("192.0.2.1", 22),
        ("192.0.2.1", 22),
        ("192.0.2.1", 22),
    ]
    assert got.stats.records == 5 and not got.stats.skipped


@pytest.mark.parametrize("first_big", [False, True])
def test_pcapng_several_sections_each_with_its_byte_order(first_big: bool) -> None:
    one = pcapng_section([Iface(1)], [("epb", 0, 1_000_000, SYN_FRAME)], big=first_big)
    two = pcapng_section([Iface(101, tsresol=9), Iface(1)],
                         [("epb", 0, 2 * 10**9, IP6_PACKET), ("epb", 1, 3_000_000, SYN_FRAME)],
                         big=not first_big)  # fmt: skip
    rows = read(one + two).rows()
    assert [r["ts"].timestamp() for r in rows] == [1.0, 2.0, 3.0]
    assert [r["src"] for r in rows] == ["192.0.2.1", "2001:db8::1", "192.0.2.1"]


def test_pcapng_undeclared_interface_and_unsupported_link_type_are_skipped() -> None:
    blocks = [("epb", 1, 0, b"\0" * 40), ("epb", 5, 0, SYN_FRAME), ("epb", 0, 0, SYN_FRAME)]
    got = read(pcapng_section([Iface(1), Iface(147)], blocks))
    assert got.table.num_rows == 1
    assert dict(got.stats.skipped) == {
        "unsupported link type 147": 1,
        "pcapng packet on an undeclared interface": 1,
    }
    with pytest.raises(FormatError, match="undeclared interface"):
        read(pcapng_section([Iface(1), Iface(147)], blocks), strict=True)


def test_pcapng_with_tiny_read_blocks_grows_its_buffer() -> None:
    jumbo = struct.pack("!HHHH", 1, 2, 0, 0) + b"x" * 150_000  # a GRO/TSO-sized datagram
    big_frame = eth(ipv4(17, "192.0.2.1", "192.0.2.2", jumbo, total=0))
    blocks = [("epb", 0, i, SYN_FRAME if i % 3 else big_frame) for i in range(30)]
    data = pcapng_section([Iface(1)], blocks)
    got = read(data, chunk_bytes=1)  # the smallest block, 64 KiB, is grown as needed
    assert got.table.num_rows == 30 and got.chunks[-1].offset == len(data)
    assert got.table.column("bytes").to_pylist()[0] == len(big_frame) - 14


# --------------------------------------------------------------------------------------
# chunks, offsets, resuming
# --------------------------------------------------------------------------------------


def test_only_the_last_chunk_carries_the_offset() -> None:
    records = [(TS + i, SYN_FRAME) for i in range(10)] + [(TS, eth(b"\0" * 28, 0x0806))]
    data = pcap(records)
    got = read(data, reader=PcapReader(batch_rows=3, keep_answers=True))
    assert [c.batch.num_rows for c in got.chunks] == [3, 3, 3, 1]
    assert [c.offset for c in got.chunks] == [None, None, None, len(data)]
    assert sum(c.records for c in got.chunks) == 11 == got.stats.records
    assert got.chunks[-1].tail == data[-256:]


def test_header_only_capture_has_no_events() -> None:
    got = read(pcap([]))
    assert got.table.num_rows == 0 and got.chunks[-1].offset == 24


def test_truncated_last_record_is_skipped_and_resumed_later() -> None:
    records = [(TS + i * 1000, SYN_FRAME) for i in range(5)]
    full = pcap(records)
    cut = full[:-10]
    got = read(cut)
    assert got.table.num_rows == 4
    assert dict(got.stats.skipped) == {"truncated record at end of capture": 1}
    assert got.stats.examples == [
        f"test.pcap:5: truncated record at end of capture: byte {len(full) - 16 - len(SYN_FRAME)}"
    ]
    offset = got.chunks[-1].offset
    assert offset is not None
    assert offset == len(full) - 16 - len(SYN_FRAME)
    assert got.chunks[-1].tail == full[offset - 256 : offset]
    resumed = read(full, start_offset=offset)  # the capture grew: only the new record
    assert resumed.table.num_rows == 1 and resumed.chunks[-1].offset == len(full)
    with pytest.raises(FormatError, match="truncated record at end of capture"):
        read(cut, strict=True)


def test_truncated_pcapng_block_and_resume() -> None:
    data = pcapng_section([Iface(1)], [("epb", 0, i, SYN_FRAME) for i in range(4)])
    got = read(data[:-5])
    assert got.table.num_rows == 3
    assert got.stats.skipped["truncated record at end of capture"] == 1
    resumed = read(data, start_offset=got.chunks[-1].offset or 0)
    assert resumed.table.num_rows == 1 and resumed.chunks[-1].offset == len(data)


@pytest.mark.parametrize("linktype", [1, 117])
def test_threaded_decode_equals_single_threaded(linktype: int) -> None:
    """Parts decoded side by side: skipped frames in the first part leave a gap that is
    closed, and the side tables (ICMP quotes, pflog headers) of later parts follow."""
    n = 3 * MIN_PACKETS_PER_THREAD
    records = []
    for i in range(n):
        probe = ipv4(17, S, f"198.51.100.{i % 250}", udp(40000 + i % 1000, 161))
        if linktype == 117:
            frame = pflog(probe, action=i % 2, rulenr=i % 7, ifname=b"em%d" % (i % 3),
                          direction=1 + i % 2)  # fmt: skip
            if i < n // 3 and i % 5 == 0:
                frame = b"\x10" + frame[1:]  # a header length below 45: skipped
        elif i < n // 3 and i % 5 == 0:
            frame = eth(b"\0" * 28, 0x0806)
        elif i > n // 2 and i % 3 == 0:  # the target refuses the probe sent just before
            frame = _unreachable(f"198.51.100.{(i - 1) % 250}", S, 3,
                                 ipv4(17, S, f"198.51.100.{(i - 1) % 250}",
                                      udp(40000 + (i - 1) % 1000, 161)))  # fmt: skip
        else:
            frame = eth(probe)
        records.append((TS + i * 10, frame))
    data = pcap(records, linktype=linktype)
    one = read(data, reader=PcapReader(decode_threads=1, keep_answers=True))
    two = read(data, reader=PcapReader(decode_threads=2, keep_answers=True))
    assert one.table.equals(two.table)
    assert one.stats.skipped == two.stats.skipped
    assert one.stats.skipped_total == len(range(0, n // 3, 5))
    if linktype == 1:
        assert one.outcomes().count("rejected") > 10_000
    else:
        assert set(one.table.column("in_iface").to_pylist()) == {"em0", "em1", "em2", None}


class _NotSeekable(io.RawIOBase):
    """A pipe: read only, no seek."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        chunk = self._inner.read(min(len(b), 1000))  # short reads, like a pipe
        b[: len(chunk)] = chunk
        return len(chunk)


def test_non_seekable_and_compressed_streams() -> None:
    data = pcap([(TS + i, SYN_FRAME) for i in range(20)])
    assert read(_NotSeekable(data)).table.num_rows == 20
    fifth = 24 + 5 * (16 + len(SYN_FRAME))
    assert read(_NotSeekable(data), start_offset=fifth).table.num_rows == 15
    opened = open_stream(io.BytesIO(gzip.compress(data)), name="x.pcap.gz")
    assert opened.compression == "gzip"
    assert read(opened.stream).table.num_rows == 20


# --------------------------------------------------------------------------------------
# bad input: errors, never tracebacks
# --------------------------------------------------------------------------------------


def test_empty_and_garbage_inputs_are_input_errors() -> None:
    with pytest.raises(InputError, match="empty file"):
        read(b"")
    with pytest.raises(InputError, match="not a pcap or pcapng capture"):
        read(b"this is not a capture at all\n" * 10)
    with pytest.raises(InputError, match="pcap file header truncated"):
        read(pcap([])[:20])
    with pytest.raises(InputError, match="pcapng section header with an unknown byte-order"):
        read(b"\x0a\x0d\x0d\x0a\x1c\0\0\0" + b"\xff" * 20)


def test_absurd_record_length_names_file_and_byte_offset() -> None:
    data = bytearray(pcap([(TS, SYN_FRAME), (TS, SYN_FRAME)]))
    second = 24 + 16 + len(SYN_FRAME)
    struct.pack_into("<I", data, second + 8, 10_000_000)
    for strict in (False, True):
        with pytest.raises(InputError, match=rf"test.pcap: byte {second} \(record 2\): "
                                             rf"captured length 10000000 is larger than "
                                             rf"{MAX_CAPLEN}"):  # fmt: skip
            read(bytes(data), strict=strict)


def test_record_longer_than_snaplen() -> None:
    data = pcap([(TS, SYN_FRAME)], snaplen=40)  # 54-byte frame in a file that says 40
    assert read(data).table.num_rows == 1  # libpcap reads it too
    with pytest.raises(
        InputError,
        match=r"byte 24 \(record 1\): captured length 54 is larger "
        r"than the file's snaplen 40 \(strict mode\)",
    ):
        read(data, strict=True)


@pytest.mark.parametrize("corrupt", ["short", "unaligned", "huge", "trailer", "overrun"])
def test_corrupt_pcapng_blocks(corrupt: str) -> None:
    data = bytearray(pcapng_section([Iface(1)], [("epb", 0, 0, SYN_FRAME)] * 2))
    epb = 28 + 20  # after the SHB (28) and the IDB (20)
    total = struct.unpack_from("<I", data, epb + 4)[0]
    if corrupt == "short":
        struct.pack_into("<I", data, epb + 4, 8)
    elif corrupt == "unaligned":
        struct.pack_into("<I", data, epb + 4, total + 2)
    elif corrupt == "huge":
        struct.pack_into("<I", data, epb + 4, 1 << 30)
    elif corrupt == "trailer":
        struct.pack_into("<I", data, epb + total - 4, total + 4)
    else:
        struct.pack_into("<I", data, epb + 20, 4000)
    with pytest.raises(InputError, match=rf"test.pcap: byte {epb}: .*corrupt"):
        read(bytes(data))


def _valid_captures() -> list[bytes]:
    frames = [SYN_FRAME, eth(IP6_PACKET, 0x86DD),
              eth(ipv4(1, "192.0.2.2", "192.0.2.1", icmp(3, 3, b"\0" * 4,
                                                         IP_PACKET[:28]))),
              eth(b"\0" * 28, 0x0806)]  # fmt: skip
    return [
        pcap([(TS + i, f) for i, f in enumerate(frames)]),
        pcap([(TS + i, f) for i, f in enumerate(frames)], big=True, nano=True),
        pcapng_section([Iface(1), Iface(101, tsresol=9)],
                       [("epb", i % 2, i, f if i % 2 == 0 else IP_PACKET)
                        for i, f in enumerate(frames)] + [("spb", SYN_FRAME)]),
    ]  # fmt: skip


def _read_or_input_error(data: bytes, **kwargs: object) -> None:
    """Read ``data``: anything but success or an InputError fails the test."""
    with contextlib.suppress(InputError):
        read(data, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_every_truncation_and_bit_flip_is_handled(which: int) -> None:
    data = _valid_captures()[which]
    for end in range(len(data) + 1):
        _read_or_input_error(data[:end])
    rng = np.random.default_rng(which)
    for _ in range(300):
        mutated = bytearray(data)
        for pos in rng.integers(0, len(data), rng.integers(1, 6)):
            mutated[pos] = rng.integers(0, 256)
        _read_or_input_error(bytes(mutated))
        _read_or_input_error(bytes(mutated), strict=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    magic=st.sampled_from(
        [b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\x0a\x0d\x0d\x0a"]
    ),
    body=st.binary(max_size=600),
)
def test_garbage_after_a_magic_never_crashes(magic: bytes, body: bytes) -> None:
    _read_or_input_error(magic + body)


# --------------------------------------------------------------------------------------
# probe outcomes
# --------------------------------------------------------------------------------------

S, T = "192.0.2.1", "198.51.100.7"  # scanner, target


def out_tcp(src: str, dst: str, sport: int, dport: int, flags: int) -> bytes:
    return eth(ipv4(6, src, dst, tcp(sport, dport, flags)))


def outcomes_of(records: list[tuple[int, bytes]], **kwargs: float) -> list[str]:
    return read(pcap(records), **kwargs).outcomes()  # type: ignore[arg-type]


def test_syn_outcomes_from_replies() -> None:
    ms = 1000
    records = [
        (0, out_tcp(S, T, 40000, 22, SYN)),  # open, the scanner resets (nmap -sS)
        (0, out_tcp(S, T, 40000, 23, SYN)),  # closed
        (0, out_tcp(S, T, 40000, 25, SYN)),  # filtered
        (0, out_tcp(S, T, 40001, 80, SYN)),  # open, handshake completed (connect scan)
        (5 * ms, out_tcp(T, S, 22, 40000, SYN | ACK)),
        (6 * ms, out_tcp(T, S, 23, 40000, RST | ACK)),
        (7 * ms, out_tcp(T, S, 80, 40001, SYN | ACK)),
        (8 * ms, out_tcp(S, T, 40000, 22, RST)),
        (9 * ms, out_tcp(S, T, 40001, 80, ACK)),
    ]
    assert outcomes_of(records) == [
        "accepted",
        "rejected",
        "unanswered",
        "established",
        "unknown",
        "unknown",
        "unknown",
        "unknown",
        "unknown",
    ]


def test_reply_after_the_timeout_does_not_count() -> None:
    records = [(0, out_tcp(S, T, 40000, 22, SYN)), (3_500_000, out_tcp(T, S, 22, 40000, SYN | ACK))]
    assert outcomes_of(records) == ["unanswered", "unknown"]
    assert outcomes_of(records, probe_timeout=5.0) == ["accepted", "unknown"]


def test_reply_before_the_probe_or_to_another_port_does_not_count() -> None:
    records = [
        (0, out_tcp(T, S, 22, 40000, SYN | ACK)),  # backscatter-like, unsolicited
        (10, out_tcp(S, T, 40000, 22, SYN)),
        (20, out_tcp(T, S, 22, 40001, SYN | ACK)),  # other client port
        (30, out_tcp(T, "192.0.2.99", 22, 40000, RST)),
    ]  # other client
    assert outcomes_of(records) == ["unknown", "unanswered", "unknown", "unknown"]


def test_retransmitted_probe_and_duplicated_capture() -> None:
    records = [
        (0, out_tcp(S, T, 40000, 22, SYN)),
        (0, out_tcp(S, T, 40000, 22, SYN)),
        (1_000_000, out_tcp(S, T, 40000, 22, SYN)),
        (1_000_100, out_tcp(T, S, 22, 40000, RST | ACK)),
    ]
    assert outcomes_of(records) == ["rejected", "rejected", "rejected", "unknown"]


def test_stealth_scans_rejected_by_rst() -> None:
    records = [
        (0, out_tcp(S, T, 50000, 25, FIN | PSH | URG)),  # Xmas
        (0, out_tcp(S, T, 50000, 26, 0)),  # NULL
        (0, out_tcp(S, T, 50000, 27, FIN)),
        (0, out_tcp(S, T, 50000, 28, ACK)),  # ACK scan / ordinary traffic: no probe
        (50, out_tcp(T, S, 25, 50000, RST | ACK)),
        (60, out_tcp(T, S, 28, 50000, RST)),
    ]
    assert outcomes_of(records) == [
        "rejected",
        "unanswered",
        "unanswered",
        "unknown",
        "unknown",
        "unknown",
    ]


def _unreachable(src: str, dst: str, code: int, quoted: bytes) -> bytes:
    return eth(ipv4(1, src, dst, icmp(3, code, b"\0" * 4, quoted[:28]), ttl=255))


def test_udp_outcomes() -> None:
    q = {port: ipv4(17, S, T, udp(33000, port, b"probe")) for port in (53, 161, 69, 500)}
    records = [
        (0, eth(q[53])),
        (0, eth(q[161])),
        (0, eth(q[69])),
        (0, eth(q[500])),
        (100, eth(ipv4(17, T, S, udp(53, 33000, b"answer")))),
        (200, _unreachable(T, S, 3, q[161])),  # port unreachable
        (300, _unreachable("203.0.113.1", S, 13, q[69])),  # a router: administratively prohibited
    ]
    assert outcomes_of(records) == [
        "accepted",
        "rejected",
        "rejected",
        "unanswered",
        "unknown",
        "unknown",
        "unknown",
    ]


def test_udp_conversations_and_broadcasts() -> None:
    records = [
        (0, eth(ipv4(17, S, T, udp(5353, 53, b"q1")))),
        (10, eth(ipv4(17, T, S, udp(53, 5353, b"a1")))),  # reply, not a probe
        (20, eth(ipv4(17, S, T, udp(5353, 53, b"q2")))),  # the conversation goes on: no probe
        (30, eth(ipv4(17, T, S, udp(53, 5353, b"a2")))),
        (40, eth(ipv4(17, S, "255.255.255.255", udp(68, 67)))),  # no single target
        (50, eth(ipv4(17, S, "239.255.255.250", udp(1900, 1900)))),
        (60, eth(ipv6(17, "2001:db8::1", "ff02::fb", udp(5353, 5353)), 0x86DD)),
    ]
    assert outcomes_of(records) == [
        "accepted",
        "unknown",
        "unknown",
        "unknown",
        "unknown",
        "unknown",
        "unknown",
    ]


def test_icmp_unreachable_for_tcp_and_fragmentation_needed() -> None:
    probe = ipv4(6, S, T, tcp(40000, 3389, SYN))
    records = [
        (0, eth(probe)),
        (1, eth(ipv4(6, S, T, tcp(40000, 3390, SYN)))),
        (50, _unreachable(T, S, 13, probe)),
        (60, _unreachable(T, S, 4, ipv4(6, S, T, tcp(40000, 3390, SYN)))),
    ]
    assert outcomes_of(records) == ["rejected", "unanswered", "unknown", "unknown"]


def test_echo_and_protocol_probes() -> None:
    gre_probe = ipv4(47, S, T, b"")
    records = [
        (0, eth(ipv4(1, S, T, echo(8, 7, 1)))),
        (0, eth(ipv4(1, S, T, echo(8, 7, 2)))),
        (0, eth(gre_probe)),
        (0, eth(ipv4(250, S, T, b""))),
        (10, eth(ipv4(1, T, S, echo(0, 7, 1)))),
        (20, _unreachable(T, S, 2, gre_probe + b"\0" * 8)),  # protocol unreachable
    ]
    assert outcomes_of(records) == [
        "accepted",
        "unanswered",
        "rejected",
        "unknown",
        "unknown",
        "unknown",
    ]


def test_ipv6_udp_rejected_by_icmpv6() -> None:
    probe = ipv6(17, "2001:db8::1", "2001:db8::7", udp(40000, 161))
    unreach = ipv6(58, "2001:db8::7", "2001:db8::1", icmp(1, 4, b"\0" * 4, probe))
    syn = ipv6(6, "2001:db8::1", "2001:db8::7", tcp(40000, 22, SYN))
    synack = ipv6(6, "2001:db8::7", "2001:db8::1", tcp(22, 40000, SYN | ACK))
    records = [
        (0, eth(probe, 0x86DD)),
        (0, eth(syn, 0x86DD)),
        (5, eth(unreach, 0x86DD)),
        (6, eth(synack, 0x86DD)),
    ]
    assert outcomes_of(records) == ["rejected", "accepted", "unknown", "unknown"]


def test_pairing_follows_time_not_file_order() -> None:
    """pcapng interfaces are written in turn, so the file need not be in time order."""
    probe, reply = out_tcp(S, T, 40000, 22, SYN), out_tcp(T, S, 22, 40000, SYN | ACK)
    blocks = [("epb", 1, 2_000, reply), ("epb", 0, 1_000, probe)]
    got = read(pcapng_section([Iface(1), Iface(1)], blocks))
    assert got.outcomes() == ["unknown", "accepted"]


# --------------------------------------------------------------------------------------
# against dpkt on a realistic capture
# --------------------------------------------------------------------------------------


def _realistic_capture(n: int = 3000, seed: int = 5) -> bytes:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        kind = rng.integers(0, 7)
        src = f"10.{rng.integers(256)}.{rng.integers(256)}.{rng.integers(1, 255)}"
        dst = f"192.0.2.{rng.integers(1, 255)}"
        sport, dport = int(rng.integers(1, 65536)), int(rng.integers(1, 65536))
        ttl, ident = int(rng.integers(1, 256)), int(rng.integers(0, 65536))
        if kind == 0:
            frame = eth(
                ipv4(
                    6,
                    src,
                    dst,
                    tcp(
                        sport,
                        dport,
                        int(rng.integers(256)),
                        seq=int(rng.integers(1 << 32)),
                        win=int(rng.integers(65536)),
                    ),
                    ttl=ttl,
                    ident=ident,
                )
            )
        elif kind == 1:
            frame = eth(
                ipv4(
                    17,
                    src,
                    dst,
                    udp(sport, dport, b"x" * int(rng.integers(0, 40))),
                    ttl=ttl,
                    ident=ident,
                ),
                vlans=((0x8100, int(rng.integers(4096))),),
            )
        elif kind == 2:
            frame = eth(
                ipv4(
                    1,
                    src,
                    dst,
                    icmp(int(rng.integers(0, 20)), int(rng.integers(16))),
                    ttl=ttl,
                    ident=ident,
                )
            )
        elif kind == 3:
            frame = eth(
                ipv6(
                    6,
                    f"2001:db8::{sport:x}",
                    f"2001:db8:1::{dport:x}",
                    tcp(sport, dport, SYN, seq=int(rng.integers(1 << 32))),
                    hlim=ttl,
                ),
                0x86DD,
            )
        elif kind == 4:
            frame = eth(
                ipv6(17, f"2001:db8::{sport:x}", "2001:db8::1", udp(sport, dport), hlim=ttl),
                0x86DD,
                vlans=((0x88A8, 5), (0x8100, 6)),
            )
        elif kind == 5:
            frame = eth(
                ipv6(58, "2001:db8::2", f"2001:db8::{dport:x}", echo(128, sport, dport)), 0x86DD
            )
        else:
            frame = eth(ipv4(6, src, dst, tcp(sport, dport, SYN | ACK), ttl=ttl, ident=ident))
        records.append((TS + i * 997, frame))
    return pcap(records)


def _dpkt_rows(data: bytes) -> list[tuple]:
    rows = []
    for ts, frame in dpkt.pcap.Reader(io.BytesIO(data)):
        ip = dpkt.ethernet.Ethernet(frame).data
        if isinstance(ip, dpkt.ip.IP):
            src = socket.inet_ntop(socket.AF_INET, ip.src)
            dst = socket.inet_ntop(socket.AF_INET, ip.dst)
            proto, ttl, ident, length = ip.p, ip.ttl, ip.id, ip.len
        elif isinstance(ip, dpkt.ip6.IP6):
            src = socket.inet_ntop(socket.AF_INET6, ip.src)
            dst = socket.inet_ntop(socket.AF_INET6, ip.dst)
            proto, ttl, ident, length = ip.p, ip.hlim, None, ip.plen + 40
        else:
            continue
        l4 = ip.data
        sport = dport = flags = seq = win = itype = icode = None
        if isinstance(l4, dpkt.tcp.TCP):
            sport, dport, flags, seq, win = l4.sport, l4.dport, l4.flags, l4.seq, l4.win
        elif isinstance(l4, dpkt.udp.UDP):
            sport, dport = l4.sport, l4.dport
        elif isinstance(l4, dpkt.icmp.ICMP | dpkt.icmp6.ICMP6):
            itype, icode = l4.type, l4.code
        rows.append(
            (
                round(ts * 1e6),
                src,
                dst,
                proto,
                sport,
                dport,
                flags,
                seq,
                win,
                itype,
                icode,
                ttl,
                ident,
                length,
            )
        )
    return rows


def _our_rows(got: Read) -> list[tuple]:
    return [(round(r["ts"].timestamp() * 1e6), r["src"], r["dst"], r["proto"], r["sport"],
             r["dport"], r["tcp_flags"], r["tcp_seq"], r["tcp_window"], r["icmp_type"],
             r["icmp_code"], r["ttl"], r["ip_id"], r["bytes"]) for r in got.rows()]  # fmt: skip


@pytest.mark.parametrize("source", ["synthetic", "wannacry"])
def test_fields_equal_dpkt_decoding(source: str) -> None:
    if source == "wannacry":
        if not MMT.exists():
            pytest.skip("shared data not available")
        data = (MMT / "37.WannaCry.pcap").read_bytes()
    else:
        data = _realistic_capture()
    ours = _our_rows(read(data))
    theirs = _dpkt_rows(data)
    assert len(ours) == len(theirs) > 1000
    for mine, ref in zip(ours, theirs, strict=True):
        assert mine == ref


# --------------------------------------------------------------------------------------
# real captures (Montimage mmt-security test pcaps, Apache-2.0): outcomes read off tcpdump
# --------------------------------------------------------------------------------------

#: For every event, in capture order: (source, destination, protocol, dport or ICMP type,
#: outcome).  Each capture shows every packet twice (it was taken on a mirror port).
MMT_EXPECTED: dict[str, list[tuple[str, str, int, int | None, str]]] = {
    # nmap -sO: 246 and 250 get "protocol unreachable" (ICMP 3/2), 9 and 32 nothing
    # (Linux rate-limits ICMP errors); an IP protocol without a reply is not called
    # unanswered because tunnels look the same.
    "26.protocal_scan.pcap": [
        ("192.168.0.49", "192.168.0.194", 246, None, "rejected"),
        ("192.168.0.49", "192.168.0.194", 246, None, "rejected"),
        ("192.168.0.49", "192.168.0.194", 250, None, "rejected"),
        ("192.168.0.49", "192.168.0.194", 250, None, "rejected"),
        ("192.168.0.49", "192.168.0.194", 9, None, "unknown"),
        ("192.168.0.49", "192.168.0.194", 9, None, "unknown"),
        ("192.168.0.49", "192.168.0.194", 32, None, "unknown"),
        ("192.168.0.194", "192.168.0.49", 1, 3, "unknown"),
        ("192.168.0.194", "192.168.0.49", 1, 3, "unknown"),
        ("192.168.0.49", "192.168.0.194", 32, None, "unknown"),
    ],
    # nmap -sU of five ports: no reply at all (open|filtered for nmap)
    "27.udp_scan.pcap": [
        ("192.168.0.49", "192.168.0.194", 17, port, "unanswered")
        for port in (59846, 49172, 59846, 49172, 49262, 6050, 49262, 18485, 6050, 18485)
    ],
    # nmap -sX of port 25: the target resets (port closed)
    "28.xmas_can.pcap": [
        ("192.168.0.49", "192.168.0.194", 6, 25, "rejected"),
        ("192.168.0.49", "192.168.0.194", 6, 25, "rejected"),
        ("192.168.0.194", "192.168.0.49", 6, 48987, "unknown"),
    ],
    # five SYNs 445 -> 445 and nothing back
    "3.SYNwithoutACK.pcap": [("192.168.50.21", "192.168.0.101", 6, 445, "unanswered")] * 5,
}

#: 37.WannaCry.pcap, TCP SYN probes: (client, client port) -> outcome of both copies.
#: 23 SMB connections to 192.168.0.69:445 complete the handshake.  192.168.0.53:52224 has
#: no SYN-ACK in the capture (the client's ACK is there, the SYN-ACK was not captured), and
#: the SYN-ACK to 192.168.0.69:53458 (one copy, to port 80 of 144.217.254.90) is addressed
#: to 10.0.2.15 (NAT-rewritten), so both stay unanswered: pairing only sees what the
#: capture holds.
WANNACRY_SYNS = {
    **{("192.168.0.198", p): "established" for p in (60951, 61679, 62370, 63071, 63755)},
    **{("192.168.0.72", p): "established" for p in (56498, 56865, 57080, 57385, 57554)},
    **{("192.168.0.51", p): "established" for p in (50585, 50603, 50625, 50638, 50652)},
    **{("192.168.0.53", p): "established" for p in (51861, 51917, 52035, 52128)},
    ("192.168.0.53", 52224): "unanswered",
    **{("192.168.0.59", p): "established" for p in (64909, 64930, 64976, 64997)},
    ("192.168.0.69", 53458): "unanswered",
}
#: 37.WannaCry.pcap, ICMP echo requests: (requester, target) -> outcome of each request in
#: capture order ("A" accepted: an echo reply came back; "U" unanswered).  The capture
#: holds requests in both directions, all with identifier and sequence 32487.
WANNACRY_ECHOES = {
    ("192.168.0.1", "192.168.0.69"): "AU", ("192.168.0.105", "192.168.0.69"): "AU",
    ("192.168.0.16", "192.168.0.69"): "AA", ("192.168.0.17", "192.168.0.69"): "AA",
    ("192.168.0.194", "192.168.0.69"): "AU", ("192.168.0.198", "192.168.0.69"): "UU",
    ("192.168.0.199", "192.168.0.69"): "AA", ("192.168.0.20", "192.168.0.69"): "UU",
    ("192.168.0.26", "192.168.0.69"): "AU", ("192.168.0.27", "192.168.0.69"): "AU",
    ("192.168.0.28", "192.168.0.69"): "UU", ("192.168.0.29", "192.168.0.69"): "AA",
    ("192.168.0.31", "192.168.0.69"): "AU", ("192.168.0.33", "192.168.0.69"): "UU",
    ("192.168.0.34", "192.168.0.69"): "AA", ("192.168.0.37", "192.168.0.69"): "AU",
    ("192.168.0.42", "192.168.0.69"): "AU", ("192.168.0.43", "192.168.0.69"): "AA",
    ("192.168.0.48", "192.168.0.69"): "AA", ("192.168.0.51", "192.168.0.69"): "UU",
    ("192.168.0.52", "192.168.0.69"): "AU", ("192.168.0.53", "192.168.0.69"): "UU",
    ("192.168.0.59", "192.168.0.69"): "UU", ("192.168.0.61", "192.168.0.69"): "AU",
    ("192.168.0.69", "192.168.0.1"): "AA", ("192.168.0.69", "192.168.0.105"): "AA",
    ("192.168.0.69", "192.168.0.16"): "AA", ("192.168.0.69", "192.168.0.17"): "AA",
    ("192.168.0.69", "192.168.0.194"): "AA", ("192.168.0.69", "192.168.0.198"): "AA",
    ("192.168.0.69", "192.168.0.199"): "UU", ("192.168.0.69", "192.168.0.20"): "UU",
    ("192.168.0.69", "192.168.0.26"): "AA", ("192.168.0.69", "192.168.0.27"): "AA",
    ("192.168.0.69", "192.168.0.28"): "AA", ("192.168.0.69", "192.168.0.29"): "AA",
    ("192.168.0.69", "192.168.0.31"): "AA", ("192.168.0.69", "192.168.0.33"): "UU",
    ("192.168.0.69", "192.168.0.34"): "UU", ("192.168.0.69", "192.168.0.37"): "AA",
    ("192.168.0.69", "192.168.0.42"): "AA", ("192.168.0.69", "192.168.0.43"): "AA",
    ("192.168.0.69", "192.168.0.48"): "AA", ("192.168.0.69", "192.168.0.51"): "UU",
    ("192.168.0.69", "192.168.0.52"): "AU", ("192.168.0.69", "192.168.0.53"): "AA",
    ("192.168.0.69", "192.168.0.59"): "AA", ("192.168.0.69", "192.168.0.61"): "AA",
    ("192.168.0.69", "192.168.0.70"): "UU", ("192.168.0.69", "192.168.0.72"): "AA",
    ("192.168.0.69", "192.168.0.80"): "AA", ("192.168.0.70", "192.168.0.69"): "AA",
    ("192.168.0.72", "192.168.0.69"): "UU", ("192.168.0.80", "192.168.0.69"): "AU",
}  # fmt: skip

needs_mmt = pytest.mark.skipif(not MMT.exists(), reason="shared data not available")


@needs_mmt
@pytest.mark.parametrize("name", sorted(MMT_EXPECTED))
def test_mmt_small_captures(name: str) -> None:
    with open(MMT / name, "rb") as f:
        got = read(f.read())
    rows = [(r["src"], r["dst"], r["proto"],
             r["icmp_type"] if r["proto"] == 1 else r["dport"], r["outcome"])
            for r in got.rows()]  # fmt: skip
    assert rows == MMT_EXPECTED[name]
    assert not got.stats.skipped


@needs_mmt
def test_mmt_wannacry() -> None:
    got = read((MMT / "37.WannaCry.pcap").read_bytes())
    assert got.stats.records == 1627 and got.table.num_rows == 1086
    assert dict(got.stats.skipped) == {"not IP (ethertype 0x0806)": 541}
    rows = got.rows()
    syns = [r for r in rows if r["proto"] == 6 and r["tcp_flags"] & (SYN | ACK | RST) == SYN]
    assert len(syns) == 49
    for r in syns:
        assert r["outcome"] == WANNACRY_SYNS[(r["src"], r["sport"])], r
    assert {(r["src"], r["sport"]) for r in syns} == set(WANNACRY_SYNS)
    echoes: dict[tuple[str, str], str] = {}
    for r in rows:
        if r["proto"] == 1 and r["icmp_type"] == 8:
            echoes[(r["src"], r["dst"])] = (
                echoes.get((r["src"], r["dst"]), "")
                + {"accepted": "A", "unanswered": "U"}[r["outcome"]]
            )
    assert echoes == WANNACRY_ECHOES
    # UDP: NetBIOS name queries to .20/.28/.33 and datagrams to the subnet broadcast get
    # nothing back; the DNS query to 8.8.8.8 is answered to 10.0.2.15 (NAT-rewritten)
    udp = [r for r in rows if r["proto"] == 17]
    assert len(udp) == 34 and {r["outcome"] for r in udp} == {"unanswered"}
    # every other packet (replies, data, ICMP replies) is an event with outcome unknown
    probes = len(syns) + sum(len(v) for v in WANNACRY_ECHOES.values()) + len(udp)
    assert got.outcomes().count("unknown") == len(rows) - probes


# -- answers: the probes' outcomes, not events of their own (the default) ---------------


def test_answers_are_counted_not_stored_by_default(tmp_path: Path) -> None:
    """The target's SYN-ACK, RST and ICMP error become the probes' outcomes; stored as
    events they would make the target a source probing the scanner's ephemeral port
    and ICMP type 3 in the per-port activity.  Unsolicited ones (backscatter) stay."""
    q = ipv4(17, S, T, udp(33000, 161, b"probe"))
    records = [
        (0, out_tcp(S, T, 40000, 22, SYN)),
        (0, out_tcp(S, T, 40000, 23, SYN)),
        (0, eth(q)),
        (0, out_tcp(S, T, 40000, 25, SYN)),  # nothing answers
        (5_000, out_tcp(T, S, 22, 40000, SYN | ACK)),
        (6_000, out_tcp(T, S, 23, 40000, RST | ACK)),
        (7_000, _unreachable(T, S, 3, q)),
        (8_000, out_tcp("203.0.113.9", T, 80, 51000, SYN | ACK)),  # backscatter: no request
    ]
    data = pcap(records)
    kept = read(data)  # keep_answers=True: one event per packet
    plain = read(data, reader=PcapReader())
    assert kept.outcomes()[:4] == ["accepted", "rejected", "rejected", "unanswered"]
    assert plain.outcomes() == [*kept.outcomes()[:4], "unknown"]
    assert plain.stats.skipped[ANSWER_REASON] == 3 and plain.stats.events == 5
    assert plain.stats.records == kept.stats.records == 8
    assert plain.table.column("dport").to_pylist() == [22, 23, 161, 25, 51000]
    # strict mode: an answer is not an error
    assert read(data, reader=PcapReader(), strict=True).stats.skipped[ANSWER_REASON] == 3
    # the per-port activity sees the probes and the backscatter, not the answers
    capture = tmp_path / "scan.pcap"
    capture.write_bytes(data)
    with Store.open(tmp_path / "s.duckdb") as store:
        (result,) = ingest_inputs(store, [capture])
        assert result.events == 5 and result.skipped[ANSWER_REASON] == 3
        ports = store.con.execute(
            """SELECT proto, port, sources FROM port_activity_daily WHERE sensor = '*'
               ORDER BY proto, port""").fetchall()
    assert ports == [(6, 22, 1), (6, 23, 1), (6, 25, 1), (6, 51000, 1), (17, 161, 1)]


# -- return traffic: the other side of a conversation started in the capture ------------

CLIENT, SERVER, DNS, NTP = "10.1.0.5", "10.1.0.80", "10.1.0.53", "10.1.0.123"
SEC = 1_000_000


def _conversations() -> list[tuple[int, bytes]]:
    """A server capture: one of each kind of conversation, with what each packet must be
    (``E`` stored event, ``A`` answer to a probe, ``R`` return traffic, ``C`` the starter's
    later packet of an answered conversation) in the comment."""
    c, s = CLIENT, SERVER

    def tcp_pkt(src: str, dst: str, sp: int, dp: int, flags: int) -> bytes:
        return out_tcp(src, dst, sp, dp, flags)

    def udp_pkt(src: str, dst: str, sp: int, dp: int) -> bytes:
        return eth(ipv4(17, src, dst, udp(sp, dp, b"data")))

    def echo_pkt(src: str, dst: str, kind: int, seq: int) -> bytes:
        return eth(ipv4(1, src, dst, echo(kind, 7, seq)))

    return [
        # TCP: handshake, data both ways, both FINs
        (0, tcp_pkt(c, s, 51000, 80, SYN)),                    # E established
        (1_000, tcp_pkt(s, c, 80, 51000, SYN | ACK)),          # A
        (2_000, tcp_pkt(c, s, 51000, 80, ACK)),                # C
        (3_000, tcp_pkt(c, s, 51000, 80, PSH | ACK)),          # C
        (4_000, tcp_pkt(s, c, 80, 51000, ACK)),                # R
        (5_000, tcp_pkt(s, c, 80, 51000, PSH | ACK)),          # R
        (6_000, tcp_pkt(c, s, 51000, 80, ACK)),                # C
        (7_000, tcp_pkt(s, c, 80, 51000, FIN | ACK)),          # R
        (8_000, tcp_pkt(c, s, 51000, 80, FIN | ACK)),          # C
        (9_000, tcp_pkt(s, c, 80, 51000, ACK)),                # R (closing: 5 s more)
        # UDP: one query, three replies; a second query, its reply
        (10 * SEC, udp_pkt(c, DNS, 40000, 53)),                # E accepted
        (10 * SEC + 500, udp_pkt(DNS, c, 53, 40000)),          # A
        (10 * SEC + 600, udp_pkt(DNS, c, 53, 40000)),          # R
        (10 * SEC + 700, udp_pkt(DNS, c, 53, 40000)),          # R
        (11 * SEC, udp_pkt(c, DNS, 40000, 53)),                # C (the same conversation)
        (11 * SEC + 500, udp_pkt(DNS, c, 53, 40000)),          # R (it answers no probe)
        # ICMP echo: request, reply, a duplicate reply; request, reply
        (12 * SEC, echo_pkt(c, s, 8, 1)),                      # E accepted
        (12 * SEC + 300, echo_pkt(s, c, 0, 1)),                # A
        (12 * SEC + 400, echo_pkt(s, c, 0, 1)),                # R (DUP!)
        (13 * SEC, echo_pkt(c, s, 8, 2)),                      # C (the same identifier)
        (13 * SEC + 300, echo_pkt(s, c, 0, 2)),                # A
        # the server's late ACK, 6 s after both FINs: that conversation is over
        (15 * SEC, tcp_pkt(s, c, 80, 51000, ACK)),             # E
        # backscatter: a SYN-ACK and an RST nobody here asked for
        (16 * SEC, tcp_pkt("203.0.113.9", c, 80, 52000, SYN | ACK)),  # E
        (16 * SEC + 1, tcp_pkt("203.0.113.9", c, 80, 52001, RST | ACK)),  # E
        # mid-stream: the capture starts inside a conversation, both sides stay
        (17 * SEC, tcp_pkt(s, c, 443, 53000, PSH | ACK)),      # E
        (17 * SEC + 100, tcp_pkt(c, s, 53000, 443, ACK)),      # E
        # idle timeouts: NTP replies 30 s (alive) and 30 + 61 s (UDP's 60 s is over)
        (20 * SEC, udp_pkt(c, NTP, 41000, 123)),               # E accepted
        (20 * SEC + 800, udp_pkt(NTP, c, 123, 41000)),         # A
        (50 * SEC, udp_pkt(NTP, c, 123, 41000)),               # R
        (111 * SEC, udp_pkt(NTP, c, 123, 41000)),              # E (starts a conversation)
        (111 * SEC + 10, udp_pkt(c, NTP, 41000, 123)),         # A (the server's is a probe)
        # a TCP conversation idle for 301 s: the server's next packet is an event
        (200 * SEC, tcp_pkt(c, s, 51100, 22, SYN)),            # E established
        (200 * SEC + 1_000, tcp_pkt(s, c, 22, 51100, SYN | ACK)),  # A
        (200 * SEC + 2_000, tcp_pkt(c, s, 51100, 22, ACK)),    # C
        (400 * SEC, tcp_pkt(s, c, 22, 51100, PSH | ACK)),      # R (200 s idle: alive)
        (701 * SEC, tcp_pkt(s, c, 22, 51100, PSH | ACK)),      # E (301 s idle: over)
    ]  # fmt: skip


#: What each packet of :func:`_conversations` is, in order.
CONVERSATION_ROLES = "EACCRRCRCR" "EARRCR" "EARCA" "E" "EE" "EE" "EAREA" "EACRE"


def _key(row: dict) -> tuple:
    return (row["ts"], row["src"], row["dst"], row["sport"], row["dport"], row["tcp_flags"],
            row["icmp_type"])


def test_return_traffic_is_counted_not_stored(tmp_path: Path) -> None:
    """A server capture: the server's side of the conversations the client started is
    neither stored nor an error; probes, backscatter, mid-stream packets and packets
    after an idle timeout or a close stay; the outcomes do not change."""
    from portradar.ingest.pcap import CONTINUES_REASON, RETURN_REASON

    records = _conversations()
    assert len(records) == len(CONVERSATION_ROLES)
    data = pcap(records)
    everything = read(data)  # keep_answers=True: one event per packet
    assert everything.table.num_rows == len(records) and not everything.stats.skipped
    plain = read(data, reader=PcapReader())
    expected = [r for r, role in zip(everything.rows(), CONVERSATION_ROLES, strict=True)
                if role == "E"]  # fmt: skip
    assert [_key(r) for r in plain.rows()] == [_key(r) for r in expected]
    assert dict(plain.stats.skipped) == {ANSWER_REASON: CONVERSATION_ROLES.count("A"),
                                         RETURN_REASON: CONVERSATION_ROLES.count("R"),
                                         CONTINUES_REASON: CONVERSATION_ROLES.count("C")}
    assert plain.stats.events == CONVERSATION_ROLES.count("E") == 12
    assert plain.stats.skipped[RETURN_REASON] == 10
    assert plain.stats.skipped[CONTINUES_REASON] == 7
    # the outcomes are those of the same packets when everything is kept
    assert plain.outcomes() == [r["outcome"] for r in expected]
    assert plain.outcomes()[:3] == ["established", "accepted", "accepted"]
    # the server is a source only where the capture did not see the client start
    server_rows = [(r["sport"], r["dport"], r["tcp_flags"]) for r in plain.rows()
                   if r["src"] == SERVER]  # fmt: skip
    assert server_rows == [(80, 51000, ACK), (443, 53000, PSH | ACK), (22, 51100, PSH | ACK)]
    # keep_return_traffic: only the answers go (the behaviour before)
    old = read(data, reader=PcapReader(keep_return_traffic=True))
    assert dict(old.stats.skipped) == {ANSWER_REASON: CONVERSATION_ROLES.count("A")}
    assert old.table.num_rows == len(records) - CONVERSATION_ROLES.count("A")
    # strict mode: return traffic is not an error
    strict = read(data, reader=PcapReader(), strict=True)
    assert strict.stats.skipped[RETURN_REASON] == 10 and strict.table.num_rows == 12
    # the per-port activity no longer shows the client's ephemeral ports as probed
    capture = tmp_path / "server.pcap"
    capture.write_bytes(data)
    with Store.open(tmp_path / "s.duckdb") as store:
        (result,) = ingest_inputs(store, [capture])
        assert result.events == 12 and result.skipped[RETURN_REASON] == 10
        ports = store.con.execute(
            """SELECT proto, port, records FROM port_activity_daily WHERE sensor = '*'
               ORDER BY proto, port""").fetchall()
    # one record per conversation the client started, as a firewall logging new
    # connections has them
    assert ports == [(1, 8, 1), (6, 22, 1), (6, 80, 1), (6, 443, 1), (6, 51000, 1),
                     (6, 51100, 1), (6, 52000, 1), (6, 52001, 1), (6, 53000, 1),
                     (17, 53, 1), (17, 123, 1), (17, 41000, 1)]  # fmt: skip


def test_return_traffic_table_grows_and_forgets_expired_conversations() -> None:
    """3,000 conversations over 50 minutes, about 400 alive at once (300 s idle timeout
    after the last packet at +100 s): the table (512 entries at first) grows once and
    then makes room by dropping expired conversations; the live ones keep their state."""
    from portradar.ingest.pcap import CONTINUES_REASON, RETURN_REASON
    from portradar.ingest.probe_outcome import Conversations

    records = []
    for j in range(3000):
        t = j * SEC  # a new conversation every second
        client, port = f"10.3.{j // 250}.{j % 250 + 1}", 40000 + j % 20000
        records += [
            (t, out_tcp(client, SERVER, port, 443, SYN)),                    # E
            (t + 500, out_tcp(SERVER, client, 443, port, SYN | ACK)),        # A
            (t + 1_000, out_tcp(client, SERVER, port, 443, ACK)),            # C
            (t + 100 * SEC, out_tcp(SERVER, client, 443, port, PSH | ACK)),  # R: 100 s idle
            (t + 450 * SEC, out_tcp(SERVER, client, 443, port, PSH | ACK)),  # E: 350 s idle
        ]  # fmt: skip
    records.sort(key=lambda r: r[0])
    conversations = Conversations()
    got = read(pcap(records), reader=PcapReader(conversations=conversations))
    assert dict(got.stats.skipped) == {ANSWER_REASON: 3000, RETURN_REASON: 3000,
                                       CONTINUES_REASON: 3000}
    rows = got.rows()
    assert len(rows) == 6000
    assert sum(r["src"] == SERVER for r in rows) == 3000
    assert {r["tcp_flags"] for r in rows if r["src"] == SERVER} == {PSH | ACK}
    assert {r["outcome"] for r in rows if r["tcp_flags"] == SYN} == {"established"}
    # grown once past its first 512 entries; the expired conversations were dropped
    assert conversations.entries["h"].shape[0] == 1024
    assert 400 <= conversations.n_entries < 1024
