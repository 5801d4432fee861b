"""Property tests: the iptables reader never crashes, whatever the bytes.

Tolerant mode must never raise; strict mode may raise only the documented
:class:`~portradar.errors.FormatError`.  Every line is either an event or counted.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portradar.errors import FormatError
from portradar.ingest.iptables import IptablesReader
from portradar.ingest.reader import ReadOptions, ReadStats

VALID = [
    b"Nov 26 10:00:00 fw kernel: [123.4] [UFW BLOCK] IN=eth0 OUT= MAC=00:16:3e:1a:2b:3c:00:25:"
    b"90:aa:bb:cc:08:00 SRC=198.51.100.7 DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=240 "
    b"ID=54321 PROTO=TCP SPT=4444 DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0",
    b"<4>1 2026-11-26T10:00:00.5Z fw kernel - - - DROP IN=eth0 OUT= SRC=2001:db8::7 "
    b"DST=2001:db8::1 LEN=72 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0",
    b"[  12.5] DROP IN=eth0 OUT= SRC=203.0.113.9 DST=192.0.2.10 LEN=56 TTL=60 ID=1 PROTO=ICMP "
    b"TYPE=3 CODE=3 [SRC=192.0.2.10 DST=203.0.113.9 LEN=28 PROTO=UDP SPT=53 DPT=1 LEN=8 ]",
    b"0 3 PVEFW-HOST-IN 20/Jun/2022:13:09:14 +0200 policy DROP: IN=vmbr0 SRC=10.3.94.11 "
    b"DST=10.3.94.12 LEN=52 TTL=255 ID=1 DF PROTO=UDP SPT=49152 DPT=3784 LEN=32",
]

OPTS = ReadOptions(tz="UTC", year=2026)


def _count(data: bytes, strict: bool) -> tuple[int, ReadStats]:
    stats = ReadStats(source="fuzz", strict=strict)
    opts = ReadOptions(tz="UTC", year=2026, strict=strict)
    batch = IptablesReader().parse_bytes(data, opts, stats)
    return batch.num_rows, stats


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    line = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        if not line:
            break
        i = draw(st.integers(0, len(line) - 1))
        if op == "flip":
            line[i] = draw(st.integers(0, 255))
        elif op == "cut":
            j = draw(st.integers(i, len(line)))
            del line[i:j]
        elif op == "insert":
            line[i:i] = draw(st.binary(max_size=12))
        else:
            j = draw(st.integers(i, min(len(line), i + 20)))
            line[i:i] = line[i:j]
    return bytes(line)


lines = st.lists(st.one_of(mutated(), st.binary(max_size=300), st.sampled_from(VALID)),
                 min_size=1, max_size=8)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines)
def test_tolerant_mode_never_raises(chunk: list[bytes]):
    data = b"\n".join(chunk) + b"\n"
    events, stats = _count(data, strict=False)
    assert events + stats.skipped_total <= stats.records
    assert stats.records == data.count(b"\n")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines)
def test_strict_mode_raises_only_format_error(chunk: list[bytes]):
    data = b"\n".join(chunk) + b"\n"
    try:
        _count(data, strict=True)
    except FormatError as exc:
        assert exc.line is not None and 1 <= exc.line <= data.count(b"\n")


def test_valid_lines_are_all_events():
    events, stats = _count(b"\n".join(VALID) + b"\n", strict=True)
    assert events == len(VALID) and stats.skipped_total == 0
