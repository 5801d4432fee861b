"""Recognise an input's format from its first bytes.

Each registered reader scores the head of the (decompressed) stream from 0 to 1; the
most confident reader wins.  Nothing is guessed from file names.

>>> sniff_format(b"Nov 26 10:00:00 fw kernel: [UFW BLOCK] IN=eth0 OUT= SRC=192.0.2.1 "
...              b"DST=192.0.2.2 LEN=40 PROTO=TCP SPT=1 DPT=2 SYN URGP=0\\n")
'iptables'
>>> sniff_format(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
'pcap'
"""

from __future__ import annotations

from portradar.errors import InputError, UnknownFormatError
from portradar.ingest.registry import all_readers

#: A reader must be at least this sure before its format is taken.
MIN_CONFIDENCE = 0.5


def sniff_format(head: bytes, *, name: str = "input") -> str:
    """Name of the reader most confident about ``head``; raise when none is."""
    if not head:
        raise InputError(f"{name}: empty input, nothing to read")
    scores = sorted(((reader.sniff(head), reader.name) for reader in all_readers()), reverse=True)
    best_score, best = scores[0]
    if best_score < MIN_CONFIDENCE:
        if _looks_binary(head):
            raise UnknownFormatError(
                f"{name}: binary data of an unknown format; pass --format "
                f"(known: {', '.join(sorted(n for _, n in scores))})"
            )
        first = head.split(b"\n", 1)[0][:120].decode("utf-8", "replace")
        raise UnknownFormatError(
            f"{name}: unknown format (first line: {first!r}); pass --format "
            f"(known: {', '.join(sorted(n for _, n in scores))})"
        )
    return best


def _looks_binary(head: bytes) -> bool:
    sample = head[:4096]
    if b"\x00" in sample:
        return True
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in sample)
    return printable < 0.9 * len(sample)
