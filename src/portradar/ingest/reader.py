"""The contract every input format implements.

A reader turns a byte stream into event batches (:data:`portradar.events.EVENT_SCHEMA`)
and counts what it skipped.  It never stores anything: the ingest pipeline
(:mod:`portradar.ingest.pipeline`) decides what is committed, using the offsets the
reader reports.

* ``name`` is the registry name (``iptables``, ``pcap``) and the module's name.
* ``sniff(head)`` says how sure the reader is (0 to 1) that a stream starting with
  ``head`` is its format; the format sniffer picks the most confident reader.
* ``read(stream, start_offset=..., start_line=...)`` yields :class:`ReadChunk` objects.
  A chunk whose ``offset`` is set is a *safe point*: every byte before ``offset`` has been turned
  into events in this or an earlier chunk, so the pipeline may commit and a later
  run may resume there.  A reader that must see the whole input to decide an event
  (the pcap reader pairs probes with replies) simply sets ``offset`` only on its last
  chunk.

Tolerance follows Zeek's input framework: a bad record is counted and skipped, the
first few reasons are kept as ``source:line: reason``; ``strict`` turns the first one
into a :class:`~portradar.errors.FormatError`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, ClassVar, Protocol, runtime_checkable

import pyarrow as pa

from portradar.errors import FormatError

#: How many skipped-record examples a run keeps (the rest are only counted).
MAX_EXAMPLES = 5


@dataclass
class ReadOptions:
    """Everything a user can tell a reader.  Readers ignore what does not apply."""

    sensor: str | None = None  # name every event with this sensor (default: from the data)
    strict: bool = False  # first malformed record is an error instead of a skip
    year: int | None = None  # year of the first line of a year-less syslog file
    tz: str | None = None  # IANA zone of year-less / zone-less timestamps; None: local zone
    reference_time: datetime | None = None  # "now" of the file (default: its mtime)
    boot_time: datetime | None = None  # for raw dmesg lines that only carry uptime
    actions: dict[str, str] = field(default_factory=dict)  # log prefix -> outcome label
    probe_timeout: float = 3.0  # seconds a pcap probe waits for its reply
    chunk_bytes: int = 32 << 20  # decompressed bytes parsed per batch


@dataclass
class ReadStats:
    """Counts of one read: records seen, events produced, skips by reason, examples."""

    source: str = "-"
    records: int = 0
    events: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    strict: bool = False

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def skip(self, reason: str, line: int | None = None, count: int = 1,
             detail: str | None = None) -> None:
        """Count ``count`` records skipped for ``reason``; raise instead when strict.

        ``detail`` (say, the start of the offending line) goes into the example and
        the error message only, so counts stay grouped by reason.
        """
        if count <= 0:
            return
        message = f"{reason}: {detail}" if detail else reason
        if self.strict:
            raise FormatError(message, source=self.source, line=line)
        self.skipped[reason] += count
        if len(self.examples) < MAX_EXAMPLES:
            where = f"{self.source}:{line}" if line is not None else self.source
            self.examples.append(f"{where}: {message}")


@dataclass
class ReadChunk:
    """Events from one slice of the input; ``offset`` set marks a safe point."""

    batch: pa.RecordBatch
    offset: int | None
    records: int
    tail: bytes | None = None  # the last bytes before ``offset``, to verify a resume
    skipped: int = 0  # records of this chunk counted as skipped


@runtime_checkable
class Reader(Protocol):
    """What the registry and the pipeline expect of a reader class."""

    name: ClassVar[str]
    unit: ClassVar[str]  # "lines" or "packets", for progress and summaries

    @classmethod
    def sniff(cls, head: bytes) -> float: ...

    def read(
        self,
        stream: BinaryIO,
        *,
        start_offset: int,
        options: ReadOptions,
        stats: ReadStats,
        start_line: int = 1,
    ) -> Iterator[ReadChunk]: ...
