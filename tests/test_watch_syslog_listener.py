"""The syslog listener: RFC 6587 framing (newline and octet-counted, frames cut anywhere by
the reads, oversized frames, bad octet counts), RFC 3164 / 5424 messages through the
iptables parser, UDP drop accounting and TCP back-pressure, over loopback only."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from portradar.ingest.iptables import IptablesReader
from portradar.ingest.reader import ReadOptions
from portradar.watch.syslog_listener import MAX_FRAME, TCP_READ, SyslogListener, TcpFramer

BODY = (b"DROP IN=eth0 OUT= SRC=198.51.100.7 DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 "
        b"TTL=240 ID=54321 PROTO=TCP SPT=4444 DPT={port} WINDOW=1024 RES=0x00 SYN URGP=0 ")
RFC3164 = b"<4>Nov 26 10:00:00 fw1 kernel: [12.5] " + BODY
RFC5424 = b"<4>1 2026-11-26T10:00:01.250000+00:00 fw2 kernel - - - " + BODY


def _msg(template: bytes, port: int) -> bytes:
    return template.replace(b"{port}", str(port).encode())


def _octet(msg: bytes) -> bytes:
    return str(len(msg)).encode() + b" " + msg


def _feed_pieces(data: bytes, cuts: list[int]) -> tuple[bytes, TcpFramer]:
    framer = TcpFramer()
    out = b""
    prev = 0
    for cut in [*cuts, len(data)]:
        out += framer.feed(data[prev:cut])
        prev = cut
    return out + framer.finish(), framer


def _until(cond: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


# -- framing ---------------------------------------------------------------------------------
def test_newline_framing_passes_lines_and_drops_blank_ones() -> None:
    framer = TcpFramer()
    assert framer.feed(b"<4>a\r\n\n<4>b\n<4>c") == b"<4>a\n<4>b\n"
    assert framer.pending == 4
    assert framer.finish() == b"<4>c\n"
    assert framer.counts["messages"] == 3


def test_octet_counted_frames_with_lf_inside_and_trailing_lf() -> None:
    framer = TcpFramer()
    out = framer.feed(_octet(b"<4>one\ntwo") + _octet(b"<4>three\n") + b"<4>plain\n")
    assert out == b"<4>one two\n<4>three\n<4>plain\n"
    assert dict(framer.counts) == {"messages": 3}


def test_frames_cut_anywhere_by_the_reads_give_the_same_messages() -> None:
    msgs = [_msg(RFC3164, p) for p in range(20, 40)] + [_msg(RFC5424, p) for p in range(40, 60)]
    rng = np.random.default_rng(5)
    stream = b"".join(_octet(m) if rng.random() < 0.5 else m + b"\n" for m in msgs)
    whole, _ = _feed_pieces(stream, [])
    assert whole == b"".join(m + b"\n" for m in msgs)
    for _ in range(30):
        cuts = sorted(rng.choice(len(stream), size=int(rng.integers(1, 40)), replace=False))
        assert _feed_pieces(stream, [int(c) for c in cuts])[0] == whole
    one_by_one, framer = _feed_pieces(stream, list(range(1, len(stream))))
    assert one_by_one == whole and framer.counts["messages"] == len(msgs)


def test_digits_not_followed_by_a_space_start_a_newline_framed_message() -> None:
    framer = TcpFramer()
    assert framer.feed(b"2026-11-26T10:00:00Z fw kernel: x\n12") == \
        b"2026-11-26T10:00:00Z fw kernel: x\n"
    assert framer.feed(b"34 <4>") == b""  # "1234 " is a count: wait for 1,234 bytes
    assert framer.finish() == b""
    assert framer.counts["truncated_frames"] == 1


def test_oversized_octet_frame_is_skipped_by_its_count_even_across_reads() -> None:
    big = b"<4>" + b"x" * (MAX_FRAME + 10)
    stream = _octet(b"<4>before") + _octet(big) + _octet(b"<4>after")
    for cuts in ([], [100], [7, 5000, 9000], list(range(1, len(stream), 997))):
        out, framer = _feed_pieces(stream, cuts)
        assert out == b"<4>before\n<4>after\n"
        assert framer.counts["oversized_frames"] == 1
        assert framer.pending == 0


def test_oversized_newline_framed_line_is_skipped_up_to_its_lf() -> None:
    stream = b"<4>ok1\n<4>" + b"y" * (3 * MAX_FRAME) + b"\n<4>ok2\n"
    out, framer = _feed_pieces(stream, [10, MAX_FRAME, 2 * MAX_FRAME + 3])
    assert out == b"<4>ok1\n<4>ok2\n"
    assert framer.counts["oversized_frames"] == 1
    # memory stays bounded while such a line arrives
    framer = TcpFramer()
    framer.feed(b"<4>" + b"z" * (2 * MAX_FRAME))
    assert framer.pending == 0


@pytest.mark.parametrize("bad", [b"0 ", b"007 ", b"12345678901 ", b"123456789012345"])
def test_bad_octet_counts_are_counted_and_skipped_to_the_next_lf(bad: bytes) -> None:
    stream = _octet(b"<4>first") + bad + b"<4>garbage\n" + _octet(b"<4>next")
    out, framer = _feed_pieces(stream, [])
    assert out == b"<4>first\n<4>next\n"
    assert framer.counts["bad_octet_counts"] == 1
    assert _feed_pieces(stream, list(range(1, len(stream))))[0] == out


def test_messages_parse_as_rfc3164_and_rfc5424_with_the_iptables_reader() -> None:
    stream = _octet(_msg(RFC3164, 445)) + _msg(RFC5424, 23) + b"\n"
    out, _ = _feed_pieces(stream, [31])
    batch = IptablesReader().parse_bytes(out, ReadOptions(tz="UTC", year=2026))
    rows = batch.to_pylist()
    assert [(r["sensor"], r["dport"], r["rule"]) for r in rows] == \
        [("fw1", 445, "DROP"), ("fw2", 23, "DROP")]
    assert rows[0]["ts"].isoformat() == "2026-11-26T10:00:00+00:00"
    assert rows[1]["ts"].isoformat() == "2026-11-26T10:00:01.250000+00:00"


# -- sockets ---------------------------------------------------------------------------------
def test_udp_datagrams_are_lines_and_oversized_ones_counted() -> None:
    with SyslogListener(udp_port=0) as lis:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(_msg(RFC3164, 22) + b"\n", lis.udp_address)
            u.sendto(b"<4>two\nlines", lis.udp_address)
            u.sendto(b"<4>" + b"q" * MAX_FRAME, lis.udp_address)
            u.sendto(b"", lis.udp_address)
        got = b""

        def arrived() -> bool:
            nonlocal got
            got += lis.drain()
            return lis.counts["udp_messages"] + lis.counts["oversized_frames"] >= 3

        _until(arrived)
        got += lis.drain()
    assert sorted(got.splitlines()) == sorted([_msg(RFC3164, 22), b"<4>two lines"])
    assert lis.counts["oversized_frames"] == 1


def test_udp_datagrams_are_dropped_and_counted_while_the_buffer_is_full() -> None:
    msg = _msg(RFC3164, 3389)
    with SyslogListener(udp_port=0, buffer_bytes=len(msg) + 1) as lis:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(msg, lis.udp_address)
            _until(lambda: lis.counts["udp_messages"] == 1)  # the buffer is now full
            for _ in range(5):
                u.sendto(msg, lis.udp_address)
            _until(lambda: lis.dropped() >= 5)
        assert lis.counts["udp_dropped"] == 5 and lis.kernel_drops() == 0
        assert lis.drain() == msg + b"\n"


def test_udp_flood_sent_equals_kept_plus_dropped() -> None:
    n = 3000
    msg = _msg(RFC3164, 3389)
    # room for 100 messages, a small kernel buffer, nobody draining: most are dropped,
    # by the listener or by the kernel, and every one of them is counted
    lis = SyslogListener(udp_port=0, buffer_bytes=100 * (len(msg) + 1),
                         receive_buffer=64 << 10).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            for _ in range(n):  # bounded
                u.sendto(msg, lis.udp_address)
        _until(lambda: lis.counts["udp_messages"] + lis.dropped() >= n)
        kept = lis.drain().count(b"\n")
        assert kept == lis.counts["udp_messages"]
        assert lis.dropped() > 0
        assert kept + lis.dropped() == n
    finally:
        lis.stop()


def test_tcp_back_pressure_loses_nothing_when_the_buffer_is_small() -> None:
    n = 8_000
    lines = b"".join(_msg(RFC5424, 1000 + i % 5000) + b"\n" for i in range(n))
    lis = SyslogListener(tcp_port=0, buffer_bytes=64 << 10).start()
    got = bytearray()

    def send() -> None:
        with socket.create_connection(lis.tcp_address) as conn:
            conn.sendall(lines)

    sender = threading.Thread(target=send, daemon=True)
    try:
        sender.start()
        deadline = time.monotonic() + 60
        while got.count(b"\n") < n and time.monotonic() < deadline:
            assert lis.pending_bytes() <= (64 << 10) + TCP_READ + MAX_FRAME
            got += lis.drain()
            time.sleep(0.002)  # a slow consumer: the sender is held back, not dropped
        sender.join(10)
    finally:
        lis.stop()
    got += lis.drain()
    assert bytes(got) == lines
    assert lis.counts["tcp_messages"] == n


def test_stop_keeps_what_the_sockets_already_hold() -> None:
    lis = SyslogListener(tcp_port=0, udp_port=0).start()
    with socket.create_connection(lis.tcp_address) as conn:
        conn.sendall(b"<4>tcp one\n4 <4>x")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(b"<4>udp one", lis.udp_address)
        time.sleep(0.3)
        lis.stop()
    got = lis.drain()
    assert sorted(got.splitlines()) == [b"<4>tcp one", b"<4>udp one", b"<4>x"]
