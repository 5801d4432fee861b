"""``line_bounds`` (word-at-a-time newline search) against a plain Python split."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from portradar.ingest.lines import line_bounds


def _reference(data: bytes) -> tuple[list[int], list[int]]:
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts = parts[:-1]
    starts, ends, pos = [], [], 0
    for part in parts:
        starts.append(pos)
        ends.append(pos + len(part.rstrip(b"\r")))
        pos += len(part) + 1
    return starts, ends


# bytes that trip word-at-a-time tricks: newline, CR, the neighbours of 0x0A, 0x8A
# (0x0A with the high bit), 0x00 and 0xFF, plus ordinary letters
_TRICKY = st.sampled_from(b"\n\r\x0b\x09\x8a\x00\xffab")


@settings(max_examples=500, deadline=None)
@given(st.lists(_TRICKY, max_size=80).map(bytes))
def test_line_bounds_equal_a_plain_split(data: bytes) -> None:
    starts, ends = line_bounds(np.frombuffer(data, np.uint8))
    assert (starts.tolist(), ends.tolist()) == _reference(data)


def test_line_bounds_on_an_unaligned_view_and_long_lines() -> None:
    data = b"x" + (b"y" * 300 + b"\r\n") * 50 + b"tail"
    view = np.frombuffer(data, np.uint8)[1:]  # starts at an odd address
    starts, ends = line_bounds(view)
    assert (starts.tolist(), ends.tolist()) == _reference(data[1:])
    assert len(starts) == 51
