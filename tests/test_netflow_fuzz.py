"""Fuzzing the NetFlow / IPFIX decoder and the netflow reader: bad bytes never crash them.

Random datagrams and real export packets with bytes flipped, cut, duplicated or inserted
(templates first, so mutated data sets meet real templates) go through the decoder in
tolerant mode, which must never raise and must keep producing schema-valid batches; in
strict mode the only error allowed is :class:`~portradar.errors.FormatError`.
"""

from __future__ import annotations

import ast
import contextlib
import io
import struct

import pytest
from conftest import DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_netflow_decoder import ELSEWHERE, REVERSE_FLOWS, TARGET, v5_flows

from portradar.errors import FormatError, InputError
from portradar.events.schema import validate_batch
from portradar.ingest.netflow import NetflowReader
from portradar.ingest.netflow_decoder import REPLY_REASON, NetflowDecoder, decode_packets
from portradar.ingest.reader import ReadOptions, ReadStats

LIB = DATA / "formats" / "netflow-packets" / "tests" / "lib.py"


def _packets() -> list[bytes]:
    if not LIB.exists():
        return [bytes.fromhex("0005000100000000000000000000000000000000000000000000")]
    out: list[bytes] = []
    for node in ast.parse(LIB.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id.startswith("PACKET"):
            value = ast.literal_eval(node.value)
            out.extend(bytes.fromhex(v) for v in (value if isinstance(value, list) else [value]))
    return out[:40]


REAL = _packets()


@st.composite
def mutated(draw: st.DrawFn, pool: list[bytes] | None = None) -> bytes:
    data = bytearray(draw(st.sampled_from(pool or REAL)))
    for _ in range(draw(st.integers(1, 5))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        if op == "flip":
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:draw(st.integers(i, len(data)))]
        elif op == "insert":
            data[i:i] = draw(st.binary(max_size=16))
        else:
            data[i:i] = data[i:min(len(data), i + 24)]
    return bytes(data)


datagrams = st.lists(st.one_of(mutated(), st.binary(max_size=200), st.sampled_from(REAL)),
                     min_size=1, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datagrams)
def test_decoder_tolerant_mode_never_raises(packets: list[bytes]):
    decoder = NetflowDecoder()
    for template in REAL[:8]:  # real templates first
        decoder.feed(template, "198.51.100.1", learn_only=True)
    batch = decode_packets(packets, "198.51.100.1", decoder=decoder, stats=ReadStats())
    validate_batch(batch)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datagrams)
def test_decoder_strict_mode_raises_only_format_error(packets: list[bytes]):
    with contextlib.suppress(FormatError):  # the one error strict mode may raise
        decode_packets(packets, "198.51.100.1", stats=ReadStats(strict=True))


def _pcap_of(datagrams: list[bytes]) -> bytes:
    """A pcap (raw IPv4 link type) of UDP datagrams to port 2055."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)]
    for i, payload in enumerate(datagrams):
        udp = struct.pack("!HHHH", 40000, 2055, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                         bytes([198, 51, 100, 1]), bytes([192, 0, 2, 9])) + udp
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 0, len(ip), len(ip)) + ip)
    return b"".join(out)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datagrams)
def test_reader_over_captured_garbage_never_raises(packets: list[bytes]):
    stream = io.BytesIO(_pcap_of(REAL[:4] + packets))
    stats = ReadStats(source="fuzz.pcap")
    try:
        for chunk in NetflowReader().read(stream, start_offset=0, options=ReadOptions(),
                                          stats=stats):
            validate_batch(chunk.batch)
    except InputError as exc:  # a capture whose framing is broken is an input error
        pytest.fail(f"well-framed capture refused: {exc}")


#: Probes and their replies (and a backscatter SYN-ACK) in one v5 packet, to mutate too.
PAIRS = v5_flows([*REVERSE_FLOWS, (ELSEWHERE, TARGET, 80, 51000, 0x12, 50_000)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(mutated(), mutated([PAIRS]), st.just(PAIRS)), min_size=1,
                max_size=6))
def test_dropped_reply_flows_are_the_only_difference(packets: list[bytes]):
    """keep_replies=True returns exactly the flows the default counts as replies."""
    def decode(keep: bool) -> tuple[int, ReadStats]:
        stats = ReadStats()
        decoder = NetflowDecoder(keep_replies=keep)
        for template in REAL[:8]:
            decoder.feed(template, "198.51.100.1", learn_only=True)
        batch = decode_packets(packets, "198.51.100.1", decoder=decoder, stats=stats)
        validate_batch(batch)
        return batch.num_rows, stats

    (kept, kept_stats), (plain, plain_stats) = decode(True), decode(False)
    assert REPLY_REASON not in kept_stats.skipped
    assert kept == plain + plain_stats.skipped[REPLY_REASON]
    assert kept_stats.records == plain_stats.records
    if PAIRS in packets:  # each unmutated copy's two replies, at least
        assert plain_stats.skipped[REPLY_REASON] >= 2
