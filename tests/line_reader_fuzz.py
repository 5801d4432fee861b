"""Property tests any line reader must pass, built for one reader and its valid lines.

Random bytes and mutated valid lines (bytes flipped, cut, inserted, duplicated): the
tolerant mode never raises and turns every non-blank line into an event or a counted
skip; the strict mode raises nothing but :class:`~portradar.errors.FormatError`;
``sniff`` always answers a number in [0, 1].  A test module uses it as::

    test_fuzz_tolerant, test_fuzz_strict, test_fuzz_sniff = fuzz_tests(Reader, VALID)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portradar.errors import FormatError
from portradar.ingest.polars_lines import BLANK
from portradar.ingest.reader import ReadOptions, ReadStats

#: Examples per property: enough to hit every mutation kind, short on a 2-core machine.
EXAMPLES = 60


def _mutated(valid: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        line = bytearray(draw(st.sampled_from(list(valid))))
        for _ in range(draw(st.integers(1, 6))):
            if not line:
                break
            op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
            i = draw(st.integers(0, len(line) - 1))
            if op == "flip":
                line[i] = draw(st.integers(0, 255))
            elif op == "cut":
                del line[i:draw(st.integers(i, len(line)))]
            elif op == "insert":
                line[i:i] = draw(st.binary(max_size=12))
            else:
                line[i:i] = line[i:draw(st.integers(i, min(len(line), i + 30)))]
        return bytes(line)

    return mutate()


def _nonblank(data: bytes) -> int:
    pieces = data.split(b"\n")
    if data.endswith(b"\n"):
        pieces = pieces[:-1]
    return sum(1 for p in pieces if p.strip(BLANK.encode()))


def fuzz_tests(reader_cls: type, valid: Sequence[bytes],
               options: ReadOptions | None = None) -> tuple[Callable[..., None], ...]:
    """The three property tests for ``reader_cls`` fed mutations of ``valid`` lines."""
    base = options or ReadOptions(tz="UTC", year=2024)
    blobs = st.lists(st.one_of(_mutated(valid), st.binary(max_size=300),
                               st.sampled_from(list(valid))), min_size=1, max_size=8)
    config = settings(max_examples=EXAMPLES, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])

    @config
    @given(blobs)
    def tolerant(parts: list[bytes]) -> None:
        data = b"\n".join(parts)
        stats = ReadStats(source="fuzz")
        batch = reader_cls().parse_bytes(data, base, stats)
        assert batch.num_rows + stats.skipped_total == _nonblank(data)

    @config
    @given(blobs)
    def strict(parts: list[bytes]) -> None:
        data = b"\n".join(parts)
        stats = ReadStats(source="fuzz", strict=True)
        opts = ReadOptions(tz=base.tz, year=base.year, strict=True)
        with contextlib.suppress(FormatError):
            reader_cls().parse_bytes(data, opts, stats)

    @config
    @given(st.one_of(blobs.map(b"\n".join), st.binary(max_size=2000)))
    def sniff(head: bytes) -> None:
        assert 0.0 <= reader_cls.sniff(head) <= 1.0

    return tolerant, strict, sniff
