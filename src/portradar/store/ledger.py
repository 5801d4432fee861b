"""The ingest ledger: which inputs have been read, and up to where.

An input is recognised by its content, not its name: the SHA-256 of its first
:data:`HEAD_BYTES` bytes (all of it when shorter).  So a log that has grown, the same
log under a rotated name (``kern.log`` → ``kern.log.1`` → ``kern.log.2.gz``) or piped on
standard input resumes where the last read stopped and is never stored twice.
For a plain file the 256 bytes before the stored position must also match, which
tells a grown log from a different one that happens to start the same way.

This follows the fingerprinting used by log shippers (Vector's ``checksum``
fingerprint, Filebeat's ``fingerprint`` file identity), with the read position
kept inside the same DuckDB transaction as the events it covers.

>>> fingerprint(b"abc")[0]
3
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from portradar.store.duckdb_store import Store, first_row

#: How much of an input's start identifies it.
HEAD_BYTES = 4096
#: How much before the read position must match for a plain file to resume.
TAIL_BYTES = 256


def fingerprint(head: bytes) -> tuple[int, str]:
    """``(length, sha256 hex)`` of the identifying start of an input."""
    part = head[:HEAD_BYTES]
    return len(part), hashlib.sha256(part).hexdigest()


def tail_hash(data: bytes) -> str:
    return hashlib.sha256(data[-TAIL_BYTES:]).hexdigest()


@dataclass
class LedgerEntry:
    input_id: int
    head_len: int
    head_sha: str
    offset: int
    records: int
    events: int
    skipped: int
    tail_sha: str | None
    first_name: str


def find(store: Store, head: bytes) -> list[LedgerEntry]:
    """Ledger entries whose identifying head matches the start of ``head``, longest first."""
    rows = store.con.execute(
        "SELECT DISTINCT head_len FROM inputs WHERE head_len <= ?", [len(head)]
    ).fetchall()
    matches: list[LedgerEntry] = []
    for (length,) in rows:
        sha = hashlib.sha256(head[:length]).hexdigest()
        for r in store.con.execute(
            """SELECT input_id, head_len, head_sha, offset_bytes, records, events, skipped,
                      tail_sha, first_name
               FROM inputs WHERE head_len = ? AND head_sha = ? ORDER BY offset_bytes DESC""",
            [length, sha],
        ).fetchall():
            matches.append(LedgerEntry(*r))
    matches.sort(key=lambda e: (e.head_len, e.offset), reverse=True)
    return matches


def create(store: Store, head: bytes, name: str, fmt: str) -> int:
    """Start a ledger entry for a new input; returns its id."""
    length, sha = fingerprint(head)
    now = datetime.now(tz=UTC)
    (input_id,) = first_row(store.con.execute("SELECT nextval('input_ids')"))
    store.con.execute(
        """INSERT INTO inputs VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 0, NULL, ?, ?)""",
        [input_id, length, sha, name, name, fmt, now, now],
    )
    return int(input_id)


def advance(store: Store, input_id: int, *, name: str, offset: int, records: int,
            events: int, skipped: int, tail: bytes | None) -> None:
    """Record that the input has been read up to ``offset`` (call inside the transaction)."""
    store.con.execute(
        """UPDATE inputs SET offset_bytes = ?, records = records + ?, events = events + ?,
                  skipped = skipped + ?, tail_sha = ?, last_name = ?, last_seen = ?
           WHERE input_id = ?""",
        [offset, records, events, skipped, tail_hash(tail) if tail else None, name,
         datetime.now(tz=UTC), input_id],
    )
