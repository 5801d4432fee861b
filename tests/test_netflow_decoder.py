"""NetFlow v1/v5/v9 and IPFIX decoding, the pcap-of-exports reader and the UDP listener.

Ground truth: the export packets (hex, captured from real softflowd exports) and the
values asserted on them by the ``netflow`` package's own tests, read at test time from
``shared/data/formats/netflow-packets/tests/`` (MIT, © 2016-2020 Dominik Pataky,
github.com/bitkeks/python-netflow-v9-softflowd).  Nothing is copied: ``lib.py`` is
parsed with ``ast`` (importing it would need the ``netflow`` package and open sockets).
Where that package's tests count an options record as a flow, portradar has one event
fewer: options records describe the exporter, not traffic.
"""

from __future__ import annotations

import ast
import io
import ipaddress
import os
import socket
import struct
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from portradar.errors import FormatError
from portradar.events.addresses import format_addresses
from portradar.events.schema import EVENT_SCHEMA, validate_batch
from portradar.ingest.netflow import NetflowReader
from portradar.ingest.netflow_decoder import (
    IPFIX,
    NO_TEMPLATE,
    REPLY_REASON,
    NetflowDecoder,
    Session,
    TemplateCache,
    decode_packets,
    outcome_for_flags,
)
from portradar.ingest.netflow_listener import NetflowListener
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.registry import get_reader

SHARED = Path(os.environ.get("PORTRADAR_SHARED_DATA",
                             Path(__file__).resolve().parents[2] / "shared" / "data"))
LIB = SHARED / "formats" / "netflow-packets" / "tests" / "lib.py"


def _load_packets() -> dict[str, bytes | list[bytes]]:
    if not LIB.exists():
        pytest.skip(f"ground-truth packets not found at {LIB}")
    packets: dict[str, bytes | list[bytes]] = {}
    for node in ast.parse(LIB.read_text()).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        if not name.startswith("PACKET"):
            continue
        value = ast.literal_eval(node.value)
        packets[name] = ([bytes.fromhex(v) for v in value] if isinstance(value, list)
                         else bytes.fromhex(value))
    return packets


@pytest.fixture(scope="module")
def pk() -> dict[str, bytes | list[bytes]]:
    return _load_packets()


def _flat(*items: bytes | list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for item in items:
        out.extend(item if isinstance(item, list) else [item])
    return out


def _decode(*items: bytes | list[bytes], decoder: NetflowDecoder | None = None,
            stats: ReadStats | None = None) -> tuple[pa.RecordBatch, NetflowDecoder, ReadStats]:
    # every record decoded: these tests check the decoding; the pairing of replies
    # (dropped by default) has its own tests below
    decoder = decoder or NetflowDecoder(keep_replies=True)
    stats = stats or ReadStats()
    batch = decode_packets(_flat(*items), decoder=decoder, stats=stats)
    validate_batch(batch)
    return batch, decoder, stats


def _rows(batch: pa.RecordBatch) -> list[dict]:
    rows = batch.to_pylist()
    srcs = format_addresses(batch.column("src_hi"), batch.column("src_lo"))
    dsts = format_addresses(batch.column("dst_hi"), batch.column("dst_lo"))
    for row, s, d in zip(rows, srcs, dsts, strict=True):
        row["src"], row["dst"] = s, d
    return rows


# --- NetFlow v1 and v5 (test_netflow.py: test_recv_v1_packet, test_recv_v5_packet) ------

def test_v1_packet(pk):
    batch, _, stats = _decode(pk["PACKET_V1"])
    rows = _rows(batch)
    assert len(rows) == 2 and stats.skipped_total == 0  # ping request and reply
    assert rows[0]["src"] in ("172.17.0.1", "172.17.0.2")
    assert {r["proto"] for r in rows} == {1}
    assert [(r["icmp_type"], r["icmp_code"]) for r in rows] == [(8, 0), (0, 0)]
    assert rows[0]["sport"] is None and rows[0]["dport"] is None
    assert rows[0]["packets"] == 10 and rows[0]["bytes"] == 840
    assert rows[0]["format"] == "netflow" and rows[0]["sensor"] == "127.0.0.1"


def test_v5_packet(pk):
    rows = _rows(_decode(pk["PACKET_V5"])[0])
    assert len(rows) == 3  # ping request and reply, one multicast
    assert rows[0]["src"] in ("172.17.0.1", "172.17.0.2") and rows[0]["proto"] == 1
    assert (rows[2]["dst"], rows[2]["proto"], rows[2]["sport"], rows[2]["dport"]) == (
        "224.0.0.251", 17, 5353, 5353)
    # flow start = export time - (sysUptime - first): header 0x000379a3 ms up,
    # 0x5e80c586 s + 0x22a55ab0 ns; record first = 0x00002f4c ms
    export_ms = 0x5E80C586 * 1000 + 0x22A55AB0 // 1_000_000
    expected_us = (export_ms - (0x000379A3 - 0x2F4C)) * 1000
    assert batch_ts_us(_decode(pk["PACKET_V5"])[0])[0] == expected_us


def batch_ts_us(batch: pa.RecordBatch) -> list[int]:
    return batch.column("ts").cast(pa.int64()).to_pylist()


def test_truncated_v5_is_counted_and_strict_raises(pk):
    cut = pk["PACKET_V5"][:-10]
    batch, decoder, stats = _decode(cut)
    assert batch.num_rows == 0
    assert stats.skipped["truncated export packet"] == 1
    assert decoder.skipped_by_exporter["127.0.0.1"]["truncated export packet"] == 1
    with pytest.raises(FormatError, match="truncated export packet"):
        decode_packets([cut], stats=ReadStats(strict=True))


def test_invalid_packet_is_counted_per_exporter(pk):
    decoder = NetflowDecoder()
    stats = ReadStats()
    decoder.feed(pk["PACKET_INVALID"], "192.0.2.7", stats=stats)
    decoder.feed(b"\x00", "192.0.2.8", stats=stats)
    assert decoder.take(stats).num_rows == 0
    assert dict(decoder.skipped_by_exporter["192.0.2.7"]) == {
        "not a NetFlow v1/v5/v9 or IPFIX packet": 1}
    assert sum(decoder.skipped_by_exporter["192.0.2.8"].values()) == 1


# --- NetFlow v9 (test_netflow.py: test_recv_v9_packet) ------------------------------------

def test_v9_data_before_template_waits_then_is_counted(pk):
    batch, decoder, stats = _decode(pk["PACKETS_V9"][0])
    assert batch.num_rows == 0  # no template yet: the set waits
    assert decoder.pending_sets == 1 and stats.skipped_total == 0
    decoder.finish(stats)
    assert stats.skipped[NO_TEMPLATE] == 1


def test_v9_packet_with_zero_padding(pk):
    batch, decoder, stats = _decode(pk["PACKET_V9_WITH_ZEROS"])
    assert batch.num_rows == 0  # template 260 was never sent
    assert stats.skipped_total == 0 and decoder.pending_sets == 5  # the zeros are padding


def test_v9_template_packet(pk):
    batch, decoder, _ = _decode(pk["PACKET_V9_TEMPLATE"])
    rows = _rows(batch)
    assert len(rows) == 8 and decoder.notes["templates learnt"] == 2
    assert (rows[0]["proto"], rows[0]["sport"], rows[0]["src"]) == (6, 80, "127.0.0.1")
    assert (rows[-1]["proto"], rows[-1]["dport"]) == (17, 53)
    assert rows[0]["tcp_flags"] == 0x1B and rows[0]["outcome"] == "established"
    # the DNS query: its answer is in the export, so something listens
    assert rows[-1]["tcp_flags"] is None and rows[-1]["outcome"] == "accepted"


def test_v9_templates_after_data_in_one_packet(pk):
    mixed, decoder, _ = _decode(pk["PACKET_V9_TEMPLATE_MIXED"])
    plain = _decode(pk["PACKET_V9_TEMPLATE"])[0]
    assert decoder.notes["templates learnt"] == 2
    assert mixed.equals(plain)  # same flows, same (wire) order


@pytest.mark.parametrize("template_first", [True, False])
def test_v9_template_and_exports(pk, template_first):
    order = ([pk["PACKET_V9_TEMPLATE"], pk["PACKETS_V9"]] if template_first
             else [pk["PACKETS_V9"], pk["PACKET_V9_TEMPLATE"]])
    batch, decoder, stats = _decode(*order)
    assert batch.num_rows == 8 + 12 + 12 + 12
    assert decoder.pending_sets == 0 and stats.skipped_total == 0


@pytest.mark.parametrize("template_at", [0, 500, 999])
def test_v9_stream_of_a_thousand_packets(pk, template_at):
    """test_netflow.py's test_recv_all_packets: the template first, in the middle, last."""
    rng = np.random.default_rng(template_at)
    stream = [pk["PACKET_V9_TEMPLATE"] if i == template_at
              else pk["PACKETS_V9"][int(rng.integers(3))] for i in range(1000)]
    batch, decoder, stats = _decode(stream)
    assert batch.num_rows == 999 * 12 + 8  # 12 flows per export, 8 in the template packet
    assert decoder.pending_sets == 0 and stats.skipped_total == 0


def test_invalid_packets_are_skipped_between_good_ones(pk):
    """test_netflow.py's test_ignore_invalid_packets."""
    batch, _, stats = _decode(pk["PACKET_INVALID"], pk["PACKET_V9_TEMPLATE"],
                              pk["PACKETS_V9"][0], pk["PACKET_INVALID"], pk["PACKETS_V9"][2],
                              pk["PACKET_INVALID"])
    assert batch.num_rows == 8 + 12 + 12
    assert stats.skipped == {"not a NetFlow v1/v5/v9 or IPFIX packet": 3}


def test_v9_flow_start_is_relative_to_sysuptime(pk):
    batch = _decode(pk["PACKET_V9_TEMPLATE"])[0]
    packet = pk["PACKET_V9_TEMPLATE"]
    uptime, secs = struct.unpack_from("!II", packet, 4)
    # first record of template 1024: first_switched follows src, dst and last_switched
    first = int.from_bytes(bytes.fromhex("fb3c18fd"), "big")
    assert batch_ts_us(batch)[0] == (secs * 1000 - ((uptime - first) % (1 << 32))) * 1000


# --- IPFIX (test_ipfix.py) -----------------------------------------------------------------

def test_ipfix_data_before_template(pk):
    batch, decoder, _ = _decode(pk["PACKET_IPFIX"])
    assert batch.num_rows == 0 and decoder.pending_sets == 2


def test_ipfix_template_packet(pk):
    batch, decoder, stats = _decode(pk["PACKET_IPFIX_TEMPLATE"])
    # upstream: 1 + 2 + 2 + 9 + 1 + 2 + 1 + 2 = 20 flows, the first an options record
    assert batch.num_rows == 19 and decoder.notes["options records"] == 1
    assert decoder.notes["templates learnt"] + decoder.notes["options templates learnt"] == 5
    assert stats.skipped_total == 0


def test_ipfix_sequence(pk):
    batch, decoder, _ = _decode(pk["PACKET_IPFIX"], pk["PACKET_IPFIX_TEMPLATE"],
                                pk["PACKET_IPFIX"])
    assert batch.num_rows == 2 + 1 + 19 + 2 + 1
    assert decoder.pending_sets == 0


def test_ipfix_contents(pk):
    batch, decoder, _ = _decode(pk["PACKET_IPFIX_TEMPLATE"])
    rows = _rows(batch)
    session = Session("127.0.0.1", 0, IPFIX, 0)
    assert decoder.cache.system_init_ms[session] == 1585735165729  # systemInitTimeMilliseconds
    https = rows[0]  # upstream flows[1]: HTTPS flow from web server to client
    assert https["dst"] == "172.17.0.2" and https["proto"] == 6
    assert (https["sport"], https["dport"], https["tcp_flags"]) == (443, 57766, 0x1B)
    # flowStartSysUpTime (IE 22) is relative to the exporter's init time
    assert batch_ts_us(batch)[0] == (1585735165729 + 0xFF7ED688) * 1000
    v6 = rows[16]  # upstream flows[17]
    assert v6["proto"] == 17 and v6["src"] == "fde6:6f14:e0f1:9609:0:affe:affe:affe"
    icmp6 = [r for r in rows if r["proto"] == 58]  # template 2049: icmpTypeCodeIPv6, no IE 4
    assert len(icmp6) == 9 and icmp6[0]["icmp_type"] == 135 and icmp6[0]["sport"] is None
    icmp4 = [r for r in rows if r["proto"] == 1]  # template 1025: icmpTypeCodeIPv4
    assert [r["icmp_type"] for r in icmp4] == [8, 0]


def test_ipfix_ether_template(pk):
    batch, decoder, _ = _decode(pk["PACKET_IPFIX_TEMPLATE_ETHER"], pk["PACKET_IPFIX_ETHER"])
    rows = _rows(batch)
    assert decoder.cache.system_init_ms[Session("127.0.0.1", 0, IPFIX, 0)] == 759538800000
    assert rows[0]["dst"] == "172.17.0.2"  # MAC and VLAN fields stepped over
    assert (rows[0]["sport"], rows[0]["dport"]) == (443, 57766)


def test_ipfix_padding(pk):
    packet = pk["PACKET_IPFIX_PADDING"]
    assert struct.unpack_from("!H", packet, 2)[0] == len(packet) == 448
    batch, decoder, stats = _decode(packet)
    assert batch.num_rows == 2 and stats.skipped_total == 0
    # the options set after the padding is decoded: its systemInitTimeMilliseconds
    assert decoder.cache.system_init_ms[Session("127.0.0.1", 0, IPFIX, 0)] == 0x18A0DB59D2E


def _reference_text(value: object) -> str:
    return str(ipaddress.ip_address(value))  # ints (v5, IPFIX) and strings (v9) alike


def test_against_the_netflow_package(pk):
    """Every flow agrees with the reference decoder (pip package ``netflow``) field by field."""
    netflow = pytest.importorskip("netflow")
    for packets in ([pk["PACKET_V1"]], [pk["PACKET_V5"]],
                    [pk["PACKET_V9_TEMPLATE"], *pk["PACKETS_V9"]],
                    [pk["PACKET_IPFIX_TEMPLATE"], pk["PACKET_IPFIX"]],
                    [pk["PACKET_IPFIX_TEMPLATE_ETHER"], pk["PACKET_IPFIX_ETHER"]],
                    [pk["PACKET_IPFIX_PADDING"]]):
        templates: dict = {"netflow": {}, "ipfix": {}}
        expected = []
        for p in packets:
            for flow in netflow.parse_packet(p.hex(), templates).flows:
                d = flow.data

                def first(*keys: str, d: dict = d) -> object:
                    return next((d[k] for k in keys if k in d), None)

                src = first("IPV4_SRC_ADDR", "IPV6_SRC_ADDR", "sourceIPv4Address",
                            "sourceIPv6Address")
                if src is None:
                    continue  # an options record
                expected.append((
                    _reference_text(src),
                    _reference_text(first("IPV4_DST_ADDR", "IPV6_DST_ADDR",
                                          "destinationIPv4Address", "destinationIPv6Address")),
                    first("PROTO", "PROTOCOL", "protocolIdentifier"),
                    first("IN_PACKETS", "IN_PKTS", "packetDeltaCount"),
                    first("IN_OCTETS", "IN_BYTES", "octetDeltaCount"),
                ))
        rows = _rows(_decode(*packets)[0])
        assert len(rows) == len(expected)
        for row, (src, dst, proto, packets_n, bytes_n) in zip(rows, expected, strict=True):
            assert (row["src"], row["dst"]) == (src, dst)
            if proto is not None:  # softflowd's ICMP templates carry no protocol element
                assert row["proto"] == proto
            assert (row["packets"], row["bytes"]) == (packets_n, bytes_n)


# --- synthetic packets: what the real ones do not exercise ---------------------------------

def ipfix_packet(*sets: bytes, domain: int = 0, export_time: int = 1_700_000_000) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), export_time, 1, domain) + body


def a_set(set_id: int, body: bytes, pad: int = 0) -> bytes:
    body += b"\x00" * pad
    return struct.pack("!HH", set_id, 4 + len(body)) + body


def template_record(template_id: int, fields: list[tuple[int, int] | tuple[int, int, int]]
                    ) -> bytes:
    out = struct.pack("!HH", template_id, len(fields))
    for f in fields:
        if len(f) == 3:
            out += struct.pack("!HHI", f[0] | 0x8000, f[1], f[2])
        else:
            out += struct.pack("!HH", *f)
    return out


def v6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def test_ipfix_variable_length_enterprise_ipv6_milliseconds():
    fields = [(27, 16), (28, 16), (152, 8), (153, 8), (7, 2), (11, 2), (4, 1),
              (6, 2),  # tcpControlBits is 2 bytes in RFC 7125
              (1, 4),  # octetDeltaCount in reduced-size encoding
              (2, 3),  # packetDeltaCount in an odd width
              (96, 65535),  # applicationName, variable length
              (1, 4, 29305),  # reverse octetDeltaCount (enterprise 29305): must be skipped
              (82, 65535)]  # interfaceName, variable length
    template = a_set(2, template_record(300, fields))

    def record(src: str, dst: str, start_ms: int, flags: int, name: bytes, long: bool) -> bytes:
        out = v6(src) + v6(dst) + struct.pack("!QQHHBH", start_ms, start_ms + 5, 40000, 22, 6,
                                              flags)
        out += struct.pack("!I", 1234) + (7).to_bytes(3, "big")
        out += (b"\xff" + struct.pack("!H", len(name)) if long else bytes([len(name)])) + name
        out += struct.pack("!I", 999) + b"\x04eth0"
        return out

    data = a_set(300, record("2001:db8::1", "2001:db8::2", 1_700_000_000_123, 0x02, b"ssh",
                             False)
                 + record("2001:db8::3", "2001:db8::2", 1_700_000_000_456, 0x1B, b"x" * 300,
                          True), pad=3)
    batch, _, stats = _decode(ipfix_packet(template, data))
    assert stats.skipped_total == 0
    rows = _rows(batch)
    assert [(r["src"], r["dst"], r["sport"], r["dport"], r["proto"]) for r in rows] == [
        ("2001:db8::1", "2001:db8::2", 40000, 22, 6), ("2001:db8::3", "2001:db8::2", 40000, 22, 6)]
    assert batch_ts_us(batch) == [1_700_000_000_123_000, 1_700_000_000_456_000]
    assert [r["tcp_flags"] for r in rows] == [0x02, 0x1B]
    assert [r["outcome"] for r in rows] == ["unanswered", "established"]
    assert [(r["bytes"], r["packets"]) for r in rows] == [(1234, 7), (1234, 7)]


def test_ipfix_record_overrunning_its_set_is_counted():
    template = a_set(2, template_record(301, [(8, 4), (12, 4), (96, 65535)]))
    good = bytes([192, 0, 2, 1, 192, 0, 2, 2, 1]) + b"a"
    bad = bytes([192, 0, 2, 3, 192, 0, 2, 4, 200]) + b"short"
    batch, _, stats = _decode(ipfix_packet(template, a_set(301, good + bad)))
    assert batch.num_rows == 1 and stats.skipped["flow record overruns its set"] == 1


def test_ipfix_template_withdrawal_and_icmp_type_code():
    template = a_set(2, template_record(302, [(8, 4), (12, 4), (150, 4), (32, 2), (4, 1)]))
    rec = bytes([198, 51, 100, 7, 192, 0, 2, 1]) + struct.pack("!IHB", 1_700_000_000,
                                                                 0x0303, 1)
    decoder = NetflowDecoder()
    batch, _, _ = _decode(ipfix_packet(template, a_set(302, rec)), decoder=decoder)
    row = batch.to_pylist()[0]
    assert (row["icmp_type"], row["icmp_code"], row["sport"]) == (3, 3, None)
    assert batch_ts_us(batch) == [1_700_000_000_000_000]
    withdraw = a_set(2, struct.pack("!HH", 302, 0))
    batch, _, _ = _decode(ipfix_packet(withdraw, a_set(302, rec)), decoder=decoder)
    assert batch.num_rows == 0 and decoder.pending_sets == 1
    assert decoder.notes["templates withdrawn"] == 1


def test_v9_options_template_is_learnt_not_an_event():
    opts = struct.pack("!HHH", 400, 4, 8) + struct.pack("!HHHHHH", 1, 4, 34, 4, 36, 2)
    opts += b"\x00\x00"  # padding
    data = a_set(400, struct.pack("!IIH", 1, 100, 60), pad=2)
    packet = struct.pack("!HHIIII", 9, 2, 1000, 1_700_000_000, 1, 7) + a_set(1, opts) + data
    batch, decoder, stats = _decode(packet)
    assert batch.num_rows == 0 and stats.skipped_total == 0
    assert decoder.notes["options templates learnt"] == 1 and decoder.notes["options records"] == 1


def test_sessions_keep_templates_apart():
    """Same template id from two exporters (and two ports of one) never mix."""
    t_a = a_set(2, template_record(256, [(8, 4), (12, 4), (4, 1), (11, 2)]))
    t_b = a_set(2, template_record(256, [(12, 4), (8, 4), (11, 2), (4, 1)]))
    rec_a = bytes([10, 0, 0, 1, 10, 0, 0, 2, 6]) + struct.pack("!H", 22)
    rec_b = bytes([10, 0, 0, 2, 10, 0, 0, 1]) + struct.pack("!HB", 23, 6)
    decoder, stats = NetflowDecoder(), ReadStats()
    decoder.feed(ipfix_packet(t_a), "192.0.2.1", port=1000, stats=stats)
    decoder.feed(ipfix_packet(t_b), "192.0.2.1", port=2000, stats=stats)
    decoder.feed(ipfix_packet(a_set(256, rec_a)), "192.0.2.1", port=1000, stats=stats)
    decoder.feed(ipfix_packet(a_set(256, rec_b)), "192.0.2.1", port=2000, stats=stats)
    rows = _rows(decoder.take(stats))
    assert [(r["src"], r["dst"], r["dport"]) for r in rows] == [
        ("10.0.0.1", "10.0.0.2", 22), ("10.0.0.1", "10.0.0.2", 23)]


def test_pending_data_sets_are_bounded():
    decoder = NetflowDecoder(cache=TemplateCache(max_pending_sets=2))
    stats = ReadStats()
    for i in range(5):
        decoder.feed(ipfix_packet(a_set(256 + i, b"\x00" * 8)), "192.0.2.1", stats=stats)
    assert decoder.pending_sets == 2 and stats.skipped[NO_TEMPLATE] == 3


def test_outcome_rule():
    proto = np.array([6, 6, 6, 6, 6, 6, 17, 1])
    flags = np.array([0x02, 0x06, 0x12, 0x1A, 0x11, 0x14, 0x02, 0x02])
    got = outcome_for_flags(proto, flags).tolist()
    # SYN → unanswered; SYN+RST, SYN+ACK alone, no SYN, RST+ACK, non-TCP → unknown;
    # SYN+ACK+PSH → established
    assert got == [4, 0, 0, 5, 0, 0, 0, 0]


def v5_flows(flows: list[tuple[str, str, int, int, int, int]] | list[tuple[Any, ...]],
             uptime: int = 100_000, seconds: int = 1_700_000_000) -> bytes:
    """One v5 packet of TCP flows ``(src, dst, sport, dport, flags, first_ms[, packets])``
    (40 bytes a packet; one packet unless said)."""
    out = struct.pack("!HHIIIIBBH", 5, len(flows), uptime, seconds, 0, 0, 0, 0, 0)
    for src, dst, sport, dport, flags, first, *rest in flows:
        packets = rest[0] if rest else 1
        out += socket.inet_aton(src) + socket.inet_aton(dst) + bytes(8)
        out += struct.pack("!IIIIHHBBBBHHBBH", packets, 40 * packets, first, first, sport,
                           dport, 0, flags, 6, 0, 0, 0, 0, 0, 0)
    return out


SCANNER, TARGET, ELSEWHERE = "198.51.100.7", "192.0.2.10", "203.0.113.9"
#: Probes from SCANNER and what TARGET answered, as one exporter seeing both ways sends.
REVERSE_FLOWS = [
    (SCANNER, TARGET, 40000, 23, 0x02, 50_000), (TARGET, SCANNER, 23, 40000, 0x14, 50_001),
    (SCANNER, TARGET, 40001, 22, 0x06, 50_000), (TARGET, SCANNER, 22, 40001, 0x12, 50_001),
    (SCANNER, TARGET, 40002, 25, 0x02, 50_000),  # no reply at all
    (SCANNER, TARGET, 40003, 80, 0x02, 10_000),
    (TARGET, SCANNER, 80, 40003, 0x14, 90_000),  # a reply 80 s late: not paired
]


def test_reverse_flows_tell_rejected_and_accepted_probes_apart():
    # keep_replies=True: one event per flow record, the replies' own outcome unknown
    batch, decoder, stats = _decode(v5_flows(REVERSE_FLOWS),
                                    decoder=NetflowDecoder(keep_replies=True))
    rows = batch.to_pylist()
    assert [r["outcome"] for r in rows] == [
        "rejected", "unknown", "accepted", "unknown", "unanswered", "unanswered", "unknown"]
    assert stats.skipped_total == 0 and stats.events == 7 and not decoder.skipped_by_exporter


def test_reply_flows_are_counted_not_stored_by_default():
    """The target's RST and SYN-ACK flows are the probes' outcomes: stored, they would
    make the target a source probing the scanner's ephemeral ports."""
    batch, decoder, stats = _decode(v5_flows(REVERSE_FLOWS), decoder=NetflowDecoder())
    got = [(r["src"], r["dst"], r["sport"], r["dport"], r["outcome"]) for r in _rows(batch)]
    assert got == [
        (SCANNER, TARGET, 40000, 23, "rejected"),
        (SCANNER, TARGET, 40001, 22, "accepted"),
        (SCANNER, TARGET, 40002, 25, "unanswered"),
        (SCANNER, TARGET, 40003, 80, "unanswered"),
        (TARGET, SCANNER, 80, 40003, "unknown"),  # too late to be the reply: kept
    ]
    assert (stats.records, stats.events) == (7, 5)
    assert stats.skipped == {REPLY_REASON: 2} and stats.examples == []
    assert decoder.skipped_by_exporter == {"127.0.0.1": Counter({REPLY_REASON: 2})}
    # strict mode: a reply flow is not an error
    strict = ReadStats(strict=True)
    assert _decode(v5_flows(REVERSE_FLOWS), stats=strict,
                   decoder=NetflowDecoder())[0].num_rows == 5
    assert strict.skipped == {REPLY_REASON: 2}


def test_probe_keeps_its_own_counters_and_replies_to_nothing_stay():
    flows = [
        (SCANNER, TARGET, 40000, 23, 0x02, 50_000, 2),  # SYN and its retry ...
        (TARGET, SCANNER, 23, 40000, 0x14, 50_001, 3),  # ... RST-ACKs (not added to the probe)
        # backscatter: SYN-ACK and RST-ACK flows that answer no request of the export
        (ELSEWHERE, TARGET, 80, 51000, 0x12, 50_000), (ELSEWHERE, TARGET, 80, 51001, 0x14, 50_000),
        (TARGET, SCANNER, 22, 40099, 0x12, 50_001),  # another port than any probe's
        # a whole connection: the client's flow has ACK, so it is no probe; the server's
        # flow is the conversation's reply (the client started it): counted, not stored
        (SCANNER, TARGET, 40010, 443, 0x1B, 50_000, 5),
        (TARGET, SCANNER, 443, 40010, 0x1B, 50_001, 4),
    ]
    batch, _, stats = _decode(v5_flows(flows), decoder=NetflowDecoder())
    rows = _rows(batch)
    got = [(r["src"], r["sport"], r["dport"], r["packets"], r["bytes"], r["outcome"])
           for r in rows]
    assert got == [
        (SCANNER, 40000, 23, 2, 80, "rejected"),
        (ELSEWHERE, 80, 51000, 1, 40, "unknown"),
        (ELSEWHERE, 80, 51001, 1, 40, "unknown"),
        (TARGET, 22, 40099, 1, 40, "unknown"),
        (SCANNER, 40010, 443, 5, 200, "established"),
    ]
    assert stats.skipped == {REPLY_REASON: 2}


def v5_any(flows: list[tuple[Any, ...]], uptime: int = 100_000,
           seconds: int = 1_700_000_000) -> bytes:
    """One v5 packet of flows ``(src, dst, proto, sport, dport, first_ms, packets[,
    tcp_flags])``; an ICMP flow's ``dport`` is ``type * 256 + code``, as v5 exports it."""
    out = struct.pack("!HHIIIIBBH", 5, len(flows), uptime, seconds, 0, 0, 0, 0, 0)
    for src, dst, proto, sport, dport, first, packets, *flags in flows:
        out += socket.inet_aton(src) + socket.inet_aton(dst) + bytes(8)
        out += struct.pack("!IIIIHHBBBBHHBBH", packets, 40 * packets, first, first, sport,
                           dport, 0, flags[0] if flags else 0, proto, 0, 0, 0, 0, 0, 0)
    return out


CLIENT, RESOLVER, ROUTER = "192.0.2.20", "198.51.100.53", "192.0.2.1"


def _outcomes(flows: list[tuple[Any, ...]]) -> tuple[list[tuple], ReadStats]:
    batch, _, stats = _decode(v5_any(flows), decoder=NetflowDecoder())
    return [(r["src"], r["proto"], r["sport"], r["dport"], r["icmp_type"], r["outcome"])
            for r in _rows(batch)], stats


def test_udp_conversation_answer_is_the_starters_outcome():
    got, stats = _outcomes([
        (RESOLVER, CLIENT, 17, 53, 5353, 50_000, 1),  # the answer, listed first, same ms
        (CLIENT, RESOLVER, 17, 5353, 53, 50_000, 1),  # the query: sent to the service port
        (CLIENT, RESOLVER, 17, 5354, 53, 50_000, 1),  # a query nobody answered
        (CLIENT, RESOLVER, 17, 5355, 53, 10_000, 1),
        (RESOLVER, CLIENT, 17, 53, 5355, 80_000, 1),  # 70 s later: not its answer
        (SCANNER, TARGET, 17, 40000, 161, 50_000, 1),  # one way only
    ])
    assert got == [
        (CLIENT, 17, 5353, 53, None, "accepted"),
        (CLIENT, 17, 5354, 53, None, "unknown"),
        (CLIENT, 17, 5355, 53, None, "unknown"),
        (RESOLVER, 17, 53, 5355, None, "unknown"),
        (SCANNER, 17, 40000, 161, None, "unknown"),
    ]
    assert stats.skipped == {REPLY_REASON: 1}


def test_port_unreachables_reject_the_udp_probes_they_answer():
    probes = [(SCANNER, TARGET, 17, 40000, 161, 50_000, 1),
              (SCANNER, TARGET, 17, 40000, 1900, 50_100, 1),
              (SCANNER, ELSEWHERE, 17, 40000, 161, 50_000, 1)]
    # the target's two port unreachables, aggregated into one flow of 2 packets
    got, stats = _outcomes([*probes, (TARGET, SCANNER, 1, 0, 3 * 256 + 3, 50_001, 2)])
    assert got == [
        (SCANNER, 17, 40000, 161, None, "rejected"),
        (SCANNER, 17, 40000, 1900, None, "rejected"),
        (SCANNER, 17, 40000, 161, None, "unknown"),  # ELSEWHERE sent nothing back
    ]
    assert stats.skipped == {REPLY_REASON: 1}
    # one error for two probes: which one got it cannot be told; the error is still a reply
    got, stats = _outcomes([*probes, (TARGET, SCANNER, 1, 0, 3 * 256 + 3, 50_001, 1)])
    assert [g[-1] for g in got] == ["unknown", "unknown", "unknown"]
    assert stats.skipped == {REPLY_REASON: 1}
    # from a router on the path, or "fragmentation needed": not an answer, stays an event
    got, stats = _outcomes([*probes, (ROUTER, SCANNER, 1, 0, 3 * 256 + 1, 50_001, 2),
                            (TARGET, SCANNER, 1, 0, 3 * 256 + 4, 50_001, 2)])
    assert [(g[0], g[4], g[5]) for g in got[3:]] == [(ROUTER, 3, "unknown"),
                                                     (TARGET, 3, "unknown")]
    assert [g[-1] for g in got[:3]] == ["unknown", "unknown", "unknown"]
    assert stats.skipped == {}


def test_port_unreachable_rejects_an_unanswered_syn():
    """A firewall's REJECT with icmp-port-unreachable (iptables' default) answers a SYN."""
    got, stats = _outcomes([(SCANNER, TARGET, 6, 40000, 23, 50_000, 1, 0x02),
                            (TARGET, SCANNER, 1, 0, 3 * 256 + 3, 50_001, 1)])
    assert got == [(SCANNER, 6, 40000, 23, None, "rejected")]
    assert stats.skipped == {REPLY_REASON: 1}


def test_echo_reply_is_the_requests_outcome():
    got, stats = _outcomes([
        (SCANNER, TARGET, 1, 0, 8 * 256, 50_000, 3),
        (TARGET, SCANNER, 1, 0, 0, 50_001, 3),
        (SCANNER, ELSEWHERE, 1, 0, 8 * 256, 50_000, 1),  # no reply
        (ELSEWHERE, CLIENT, 1, 0, 0, 50_000, 1),  # a reply to nothing here: kept
    ])
    assert got == [
        (SCANNER, 1, None, None, 8, "accepted"),
        (SCANNER, 1, None, None, 8, "unknown"),
        (ELSEWHERE, 1, None, None, 0, "unknown"),
    ]
    assert stats.skipped == {REPLY_REASON: 1}


# --- generated traffic: vectorised decoding at volume -------------------------------------

def v5_packets(n_packets: int, seed: int = 7) -> tuple[list[bytes], np.ndarray]:
    rng = np.random.default_rng(seed)
    packets, dports = [], []
    for i in range(n_packets):
        count = 30
        header = struct.pack("!HHIIIIBBH", 5, count, 100_000, 1_700_000_000 + i, 0, i * 30,
                             0, 0, 0)
        rec = np.zeros(count, dtype=np.dtype([("src", ">u4"), ("dst", ">u4"),
                                              ("rest", "V8"), ("pkts", ">u4"),
                                              ("octets", ">u4"), ("first", ">u4"),
                                              ("last", ">u4"), ("sport", ">u2"),
                                              ("dport", ">u2"), ("pad", "u1"),
                                              ("flags", "u1"), ("proto", "u1"),
                                              ("tail", "V9")]))
        assert rec.dtype.itemsize == 48
        rec["src"] = rng.integers(1, 2**32 - 1, count)
        rec["dst"] = rng.integers(1, 2**32 - 1, count)
        rec["pkts"], rec["octets"] = 1, 40
        rec["first"] = rec["last"] = 99_000
        rec["sport"] = rng.integers(1024, 65535, count)
        rec["dport"] = rng.integers(1, 1024, count)
        rec["flags"], rec["proto"] = 0x02, 6
        dports.append(rec["dport"].astype(np.int64))
        packets.append(header + rec.tobytes())
    return packets, np.concatenate(dports)


def test_many_v5_packets_decode_in_order():
    packets, dports = v5_packets(200)
    batch, _, stats = _decode(packets)
    assert batch.num_rows == 6000 and stats.records == 6000
    assert np.array_equal(batch.column("dport").to_numpy(), dports)
    ts = np.array(batch_ts_us(batch))
    assert ts[0] == (1_700_000_000 * 1000 - 1000) * 1000 and (np.diff(ts) >= 0).all()
    assert set(batch.column("outcome").to_pylist()) == {"unanswered"}


# --- the pcap-of-exports reader -------------------------------------------------------------

def udp_frame(payload: bytes, src: str = "192.0.2.250", dport: int = 2055,
              sport: int = 50000) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton("192.0.2.1")) + udp
    return b"\x00\x11\x22\x33\x44\x55" + b"\x66\x77\x88\x99\xaa\xbb" + b"\x08\x00" + ip


def pcap_file(frames: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, frame in enumerate(frames):
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame
    return out


def pcapng_file(frames: list[bytes]) -> bytes:
    def block(btype: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 65535))
    for frame in frames:
        out += block(6, struct.pack("<IIIII", 0, 0, 0, len(frame), len(frame)) + frame)
    return out


def read_all(data: bytes, start_offset: int = 0, keep_replies: bool = True,
             **options) -> tuple[pa.Table, ReadStats, list]:
    """Every flow record as an event by default: the reader's walk is what is tested."""
    stats = ReadStats()
    chunks = list(NetflowReader(keep_replies=keep_replies).read(
        io.BytesIO(data), start_offset=start_offset, options=ReadOptions(**options),
        stats=stats))
    table = pa.Table.from_batches([c.batch for c in chunks], schema=EVENT_SCHEMA)
    return table, stats, chunks


@pytest.mark.parametrize("container", [pcap_file, pcapng_file])
def test_reader_walks_captures_of_exports(pk, container):
    frames = [udp_frame(p) for p in _flat(pk["PACKETS_V9"][0], pk["PACKET_V9_TEMPLATE"],
                                          pk["PACKETS_V9"][1:], pk["PACKET_V5"])]
    frames.append(udp_frame(b"\x12\x34" * 20, dport=53))  # DNS: not an export
    frames.append(udp_frame(pk["PACKET_IPFIX_TEMPLATE"], src="198.51.100.9", dport=4739))
    table, stats, chunks = read_all(container(frames), chunk_bytes=1 << 16)
    assert table.num_rows == 44 + 3 + 19
    assert stats.skipped == {"frame is not a UDP datagram to a flow collector port": 1}
    assert set(table.column("sensor").to_pylist()) == {"192.0.2.250", "198.51.100.9"}
    assert chunks[-1].offset == len(container(frames))
    assert get_reader("netflow") is NetflowReader and NetflowReader.sniff(
        container(frames)[:64]) == 0.0


def test_reader_sensor_option_and_ports(pk):
    data = pcap_file([udp_frame(pk["PACKET_V5"], dport=9999)])
    table, stats, _ = read_all(data)
    assert table.num_rows == 0 and stats.skipped_total == 1
    table, _, _ = read_all(pcap_file([udp_frame(pk["PACKET_V5"])]), sensor="edge-1")
    assert set(table.column("sensor").to_pylist()) == {"edge-1"}


def test_reader_resume_learns_templates_from_the_start(pk):
    frames = [udp_frame(p) for p in _flat(pk["PACKET_V9_TEMPLATE"], pk["PACKETS_V9"])]
    data = pcap_file(frames)
    full, _, _ = read_all(data)
    # resume after the template packet and the first export: only the last two remain
    offset = 24 + sum(16 + len(f) for f in frames[:2])
    rest, stats, _ = read_all(data, start_offset=offset)
    assert rest.num_rows == 24 and stats.skipped_total == 0
    assert rest.equals(full.slice(full.num_rows - 24))


def test_reader_ingests_into_the_store(pk, tmp_path):
    from portradar.ingest.pipeline import ingest_input
    from portradar.store import Store

    path = tmp_path / "exports.pcap"
    path.write_bytes(pcap_file([udp_frame(p) for p in _flat(pk["PACKET_V9_TEMPLATE"],
                                                             pk["PACKETS_V9"])]))
    with Store.open(":memory:") as store:
        first = ingest_input(store, path, fmt="netflow")
        again = ingest_input(store, path, fmt="netflow")
        stored = store.con.execute("SELECT count(*) FROM events").fetchone()[0]
    # half the 44 flows are the answering side of the exports' conversations (the DNS
    # answers, the web server's halves): counted, not stored
    assert (first.status, first.records, first.events, first.unit) == (
        "ingested", 44, 22, "flows")
    assert first.skipped == {REPLY_REASON: 22}
    assert (again.status, stored) == ("unchanged", 22)


def _port_sources(store) -> list[tuple]:
    return store.con.execute(
        """SELECT proto, port, records, sources FROM port_activity_daily WHERE sensor = '*'
           ORDER BY proto, port""").fetchall()


def test_reply_flows_stay_out_of_the_store_and_the_port_activity(tmp_path):
    """Per-port activity: the probed ports with the scanner as their one source, the
    backscatter's port; not the scanner's ephemeral ports with the target as source.
    Stored once when ingested again, and a grown capture adds only its new probes."""
    from portradar.ingest.pipeline import ingest_inputs
    from portradar.store import Store

    first = v5_flows([*REVERSE_FLOWS[:5], (ELSEWHERE, TARGET, 80, 51000, 0x12, 50_000)])
    later = v5_flows([(SCANNER, TARGET, 40004, 21, 0x02, 60_000),
                      (TARGET, SCANNER, 21, 40004, 0x14, 60_001)], seconds=1_700_000_010)
    path = tmp_path / "exports.pcap"
    path.write_bytes(pcap_file([udp_frame(first)]))
    with Store.open(tmp_path / "s.duckdb") as store:
        (result,) = ingest_inputs(store, [path], fmt="netflow")
        assert (result.status, result.records, result.events) == ("ingested", 6, 4)
        assert result.skipped == {REPLY_REASON: 2}
        assert _port_sources(store) == [(6, 22, 1, 1), (6, 23, 1, 1), (6, 25, 1, 1),
                                        (6, 51000, 1, 1)]
        sources = store.con.execute(
            "SELECT DISTINCT ip_text(src_hi, src_lo) FROM events ORDER BY 1").fetchall()
        assert sources == [(SCANNER,), (ELSEWHERE,)]
        (again,) = ingest_inputs(store, [path], fmt="netflow")
        assert again.status == "unchanged"
        assert store.con.execute("SELECT count(*) FROM events").fetchone()[0] == 4
        # the capture grows: only the new datagram is read, its reply counted again
        path.write_bytes(pcap_file([udp_frame(first), udp_frame(later)]))
        (grown,) = ingest_inputs(store, [path], fmt="netflow")
        assert (grown.status, grown.records, grown.events) == ("ingested", 2, 1)
        assert grown.skipped == {REPLY_REASON: 1}
        outcomes = store.con.execute(
            "SELECT dport, outcome FROM events ORDER BY dport").fetchall()
        assert outcomes == [(21, "rejected"), (22, "accepted"), (23, "rejected"),
                            (25, "unanswered"), (51000, "unknown")]
        assert store.con.execute("SELECT offset_bytes FROM inputs").fetchall() == [
            (path.stat().st_size,)]
    # keep_replies=True: the old rows, the ephemeral ports with the target as source
    with Store.open(tmp_path / "k.duckdb") as store:
        (kept,) = ingest_inputs(store, [path], fmt="netflow",
                                reader_factory=lambda: NetflowReader(keep_replies=True))
        assert (kept.records, kept.events, kept.skipped) == (8, 8, {})
        assert _port_sources(store) == [
            (6, 21, 1, 1), (6, 22, 1, 1), (6, 23, 1, 1), (6, 25, 1, 1), (6, 40000, 1, 1),
            (6, 40001, 1, 1), (6, 40004, 1, 1), (6, 51000, 1, 1)]


def test_strict_ingest_does_not_fail_on_reply_flows(tmp_path):
    from portradar.ingest.pipeline import ingest_input
    from portradar.store import Store

    path = tmp_path / "exports.pcap"
    path.write_bytes(pcap_file([udp_frame(v5_flows(REVERSE_FLOWS))]))
    with Store.open(":memory:") as store:
        result = ingest_input(store, path, fmt="netflow", options=ReadOptions(strict=True))
        assert (result.status, result.events, result.skipped) == (
            "ingested", 5, {REPLY_REASON: 2}), result.message


# --- the UDP listener --------------------------------------------------------------------

def wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_listener_batches_by_count_and_time(pk):
    batches: list[pa.RecordBatch] = []
    with NetflowListener(batches.append, port=0, batch_records=20,  # every record
                         batch_seconds=0.3, keep_replies=True) as listener:
        host, port = listener.address
        assert host == "127.0.0.1" and port > 0
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for p in _flat(pk["PACKETS_V9"][0], pk["PACKET_V9_TEMPLATE"], pk["PACKETS_V9"][1:],
                       pk["PACKET_INVALID"], pk["PACKET_V5"]):
            sender.sendto(p, (host, port))
            time.sleep(0.005)
        sender.close()
        # 8 + 12 = 20 flushes by count, then 24; the last 3 (v5) wait for the timer
        assert wait_for(lambda: sum(b.num_rows for b in batches) == 47)
    counters = listener.counters()
    assert counters["packets"] == 6 and counters["events"] == 47
    assert counters["batches"] >= 3 and max(b.num_rows for b in batches) <= 24
    assert dict(listener.malformed) == {"127.0.0.1": 1}
    for b in batches:
        validate_batch(b)


def test_listener_survives_callback_errors_and_bounds_its_queue(pk):
    release = threading.Event()
    seen: list[int] = []

    def slow(batch: pa.RecordBatch) -> None:
        seen.append(batch.num_rows)
        release.wait(5)
        raise RuntimeError("consumer failed")

    with NetflowListener(slow, port=0, batch_records=1, batch_seconds=0.05,
                         queue_packets=2) as listener:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(12):
            sender.sendto(pk["PACKET_V5"], listener.address)
        sender.close()
        assert wait_for(lambda: listener.counters()["dropped"] > 0)
        release.set()
        assert wait_for(lambda: listener.counters()["packets"]
                        + listener.counters()["dropped"] == 12)
    counters = listener.counters()
    assert counters["callback_errors"] == counters["batches"] >= 1
    assert isinstance(listener.last_error, RuntimeError)
    assert sum(listener.dropped.values()) == counters["dropped"]


@pytest.mark.parametrize("keep", [False, True])
def test_listener_counts_reply_flows_as_skipped_not_malformed(keep):
    batches: list[pa.RecordBatch] = []
    with NetflowListener(batches.append, port=0, batch_seconds=0.1,
                         keep_replies=keep) as listener:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.sendto(v5_flows(REVERSE_FLOWS), listener.address)
        sender.close()
        assert wait_for(lambda: listener.counters()["records"] == 7
                        and listener.decoder.pending_records == 0)
    counters = listener.counters()
    rows = _rows(pa.Table.from_batches(batches).combine_chunks().to_batches()[0])
    assert not listener.malformed and listener.stats.examples == []
    if keep:
        assert (counters["events"], counters["skipped"]) == (7, 0)
        assert [r["dport"] for r in rows] == [23, 40000, 22, 40001, 25, 80, 40003]
    else:
        assert (counters["events"], counters["skipped"]) == (5, 2)
        assert listener.stats.skipped == {REPLY_REASON: 2}
        assert [(r["dport"], r["outcome"]) for r in rows] == [
            (23, "rejected"), (22, "accepted"), (25, "unanswered"), (80, "unanswered"),
            (40003, "unknown")]
