"""Property tests for line readers whose input may carry header lines (test support).

Zeek's ``#fields``, the Windows firewall's ``#Fields``, a CSV header and DShield's mail
header are lines that are neither events nor skipped records, so the invariant of
``line_reader_fuzz`` (every non-blank line is an event or a counted skip) does not hold
for these readers.  The properties here are: random bytes and mutated valid lines
(bytes flipped, cut, inserted, duplicated, lines shuffled), with an optional fixed
header in front, never make the tolerant mode raise and give a batch in the event
schema with at most one event or skip per non-blank line; the strict mode raises
nothing but :class:`~portradar.errors.FormatError`; ``sniff`` answers a number in
[0, 1].  A test module uses it as::

    test_fuzz_tolerant, test_fuzz_strict, test_fuzz_sniff = fuzz_tests(make_reader, VALID)
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portradar.errors import FormatError
from portradar.events.schema import validate_batch
from portradar.ingest.reader import ReadOptions, ReadStats

#: Examples per property: enough to hit every mutation kind, short on a 2-core machine.
EXAMPLES = 60
#: Bytes that split records or fields in these formats, inserted more often than chance.
SEPARATORS = [b"\t", b",", b" ", b'"', b"{", b"}", b"#", b":", b"\n", b"-", b"."]


def _mutated(valid: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        line = bytearray(draw(st.sampled_from(list(valid))))
        for _ in range(draw(st.integers(1, 6))):
            if not line:
                break
            op = draw(st.sampled_from(["flip", "cut", "insert", "dup", "separator"]))
            i = draw(st.integers(0, len(line) - 1))
            if op == "flip":
                line[i] = draw(st.integers(0, 255))
            elif op == "cut":
                del line[i:draw(st.integers(i, len(line)))]
            elif op == "insert":
                line[i:i] = draw(st.binary(max_size=12))
            elif op == "separator":
                line[i:i] = draw(st.sampled_from(SEPARATORS))
            else:
                line[i:i] = line[i:draw(st.integers(i, min(len(line), i + 30)))]
        return bytes(line)

    return mutate()


def _nonblank(data: bytes) -> int:
    pieces = data.split(b"\n")
    if data.endswith(b"\n"):
        pieces = pieces[:-1]
    return sum(1 for p in pieces if p.rstrip(b"\r"))


def fuzz_tests(make_reader: Callable[[], object], valid: Sequence[bytes], *,
               header: bytes = b"", options: ReadOptions | None = None,
               ) -> tuple[Callable[..., None], ...]:
    """The three property tests for readers made by ``make_reader``, fed mutated ``valid``."""
    base = options or ReadOptions(tz="UTC", year=2024)
    blobs = st.lists(st.one_of(_mutated(valid), st.binary(max_size=300),
                               st.sampled_from(list(valid))), min_size=1, max_size=8)
    config = settings(max_examples=EXAMPLES, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])

    @config
    @given(blobs)
    def tolerant(parts: list[bytes]) -> None:
        data = header + b"\n".join(parts)
        stats = ReadStats(source="fuzz")
        batch = make_reader().parse_bytes(data, base, stats)  # type: ignore[attr-defined]
        validate_batch(batch)
        assert batch.num_rows + stats.skipped_total <= _nonblank(data)

    @config
    @given(blobs)
    def strict(parts: list[bytes]) -> None:
        data = header + b"\n".join(parts)
        stats = ReadStats(source="fuzz", strict=True)
        opts = dataclasses.replace(base, strict=True)
        with contextlib.suppress(FormatError):
            make_reader().parse_bytes(data, opts, stats)  # type: ignore[attr-defined]

    @config
    @given(st.one_of(blobs.map(b"\n".join), st.binary(max_size=2000)))
    def sniff(head: bytes) -> None:
        score = type(make_reader()).sniff(head)  # type: ignore[attr-defined]
        assert 0.0 <= score <= 1.0

    return tolerant, strict, sniff
