"""Fuzzing the nfdump reader's parsing of nfdump's text output: it never crashes.

The nfcapd decoding itself is nfdump's; what portradar parses is nfdump's delimited
output, so that is what gets mutated here (cut, flipped, duplicated and random lines).
"""

from __future__ import annotations

import contextlib
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_nfdump_reader import CANNED, REPLIES

from portradar.errors import FormatError
from portradar.events.schema import validate_batch
from portradar.ingest.netflow_decoder import REPLY_REASON
from portradar.ingest.nfdump import NfdumpReader
from portradar.ingest.reader import ReadOptions, ReadStats

LINES = [ln.encode() for ln in (CANNED + REPLIES).splitlines() if ln.strip()]


@st.composite
def output(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        line = bytearray(draw(st.sampled_from(LINES)))
        for _ in range(draw(st.integers(0, 4))):
            if not line:
                break
            i = draw(st.integers(0, len(line) - 1))
            op = draw(st.sampled_from(["flip", "cut", "insert"]))
            if op == "flip":
                line[i] = draw(st.integers(1, 255))
            elif op == "cut":
                del line[i:draw(st.integers(i, len(line)))]
            else:
                line[i:i] = draw(st.binary(max_size=8))
        lines.append(bytes(line).replace(b"\n", b" "))
    lines += draw(st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")),
                           max_size=2))
    return b"\n".join(lines) + b"\n"


def _parse(text: bytes, strict: bool) -> None:
    stats = ReadStats(source="fuzz.nfcapd", strict=strict)
    for chunk in NfdumpReader()._parse(io.BytesIO(text), ReadOptions(strict=strict), stats, 0):
        validate_batch(chunk.batch)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(output())
def test_tolerant_parse_never_raises(text: bytes):
    _parse(text, strict=False)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(output())
def test_strict_parse_raises_only_format_error(text: bytes):
    with contextlib.suppress(FormatError):  # the one error strict mode may raise
        _parse(text, strict=True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(output())
def test_dropped_reply_flows_are_the_only_difference(text: bytes):
    """keep_replies=True stores exactly the flows the default counts as replies."""
    def read(keep: bool) -> tuple[int, ReadStats]:
        stats = ReadStats(source="fuzz.nfcapd")
        reader = NfdumpReader(keep_replies=keep)
        rows = sum(c.batch.num_rows
                   for c in reader._parse(io.BytesIO(text), ReadOptions(), stats, 0))
        return rows, stats

    (kept, kept_stats), (plain, plain_stats) = read(True), read(False)
    assert REPLY_REASON not in kept_stats.skipped
    assert kept == plain + plain_stats.skipped[REPLY_REASON] == kept_stats.events
    assert kept_stats.records == plain_stats.records and plain == plain_stats.events
