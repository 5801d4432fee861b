"""The agent's outbox on disk: one file per unsent batch, bounded, resent with backoff.

Every batch goes through the spool (written, fsynced, renamed into place) before it is
sent, and its file is deleted only when the collector has acknowledged it; so neither a
crash of the agent nor an unreachable collector loses a batch.  The spool is bounded
(:data:`MAX_BYTES`): a warning is logged when it passes :data:`WARN_FRACTION`, and when
it is full :meth:`Spool.put` refuses the new batch (``False``, counted in
``refused``) instead of dropping an old one: the agent then stops reading its logs,
which keep the rest (the oldest data is kept, nothing is dropped silently).  An empty
spool accepts any one batch, however large, so reading can never stall for good.

Each file holds a little JSON *meta* before the body (``PRS1``, its length, the JSON):
the input the batch came from and, for a followed file, the position after its lines.
The agent uses it after a crash that fell between spooling a batch and saving its
file positions, to resume after the spooled lines instead of reading them again.

Backoff after a failed send: ``min(MAX_BACKOFF, BASE_BACKOFF * 2**failures)`` seconds
with ±20 % jitter (the AWS "exponential backoff and jitter" scheme).

>>> import tempfile
>>> s = Spool(tempfile.mkdtemp(), max_bytes=100)
>>> s.put("aa" * 16, b"x" * 60, {"input": "a"}), s.put("bb" * 16, b"y" * 60), s.refused
(True, False, 1)
>>> [bid for bid, _ in s.pending()] == ["aa" * 16]
True
>>> [(seq, meta) for seq, _, meta in s.entries()]
[(0, {'input': 'a'})]
>>> s.remove("aa" * 16); s.count()
0
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import struct
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("portradar.collect.spool")

#: 256 MiB: at ~10 bytes per compressed event, some 25 million events, a day of a busy
#: perimeter firewall's drops.
MAX_BYTES = 256 << 20
#: Warn when the spool is this full (Filebeat's and Vector's disk buffers warn at 80 %).
WARN_FRACTION = 0.8
#: First retry after 0.5 s, doubling up to 60 s (a collector restart takes seconds).
BASE_BACKOFF = 0.5
MAX_BACKOFF = 60.0

_SUFFIX = ".prb"
_MAGIC = b"PRS1"


class Spool:
    """Unsent batch bodies under ``directory``, named ``<seq>-<batch_id>.prb``."""

    def __init__(self, directory: str, *, max_bytes: int = MAX_BYTES,
                 base_backoff: float = BASE_BACKOFF, max_backoff: float = MAX_BACKOFF) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.base_backoff, self.max_backoff = base_backoff, max_backoff
        os.makedirs(directory, exist_ok=True)
        self.refused = 0
        self.failures = 0
        self.next_attempt = 0.0
        self._warned = False
        self._seq = 0
        #: Sequence number of the last batch put (-1: none yet); grows across restarts.
        self.last_seq = -1
        for name in self._names():
            with contextlib.suppress(ValueError):
                self._seq = max(self._seq, int(name.split("-", 1)[0]) + 1)
        for name in os.listdir(directory):  # leftovers of a crash mid-write
            if name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, name))

    def advance_seq(self, seq: int) -> None:
        """Number the next batch at least ``seq`` (numbers never go back, even when the
        spool was emptied and the agent restarted)."""
        self._seq = max(self._seq, seq)

    def _names(self) -> list[str]:
        return sorted(n for n in os.listdir(self.directory) if n.endswith(_SUFFIX))

    def size(self) -> int:
        total = 0
        for name in self._names():
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(self.directory, name))
        return total

    def count(self) -> int:
        return len(self._names())

    def put(self, batch_id: str, body: bytes, meta: dict[str, Any] | None = None) -> bool:
        """Keep ``body`` (and ``meta``) durably; False (counted) when the spool is full."""
        raw = json.dumps(meta or {}, separators=(",", ":")).encode()
        body = _MAGIC + struct.pack(">I", len(raw)) + raw + body
        used = self.size()
        # an empty spool takes any batch: one larger than the bound would stall the agent
        if used and used + len(body) > self.max_bytes:
            self.refused += 1
            log.warning("spool %s full (%d of %d bytes): batch %s refused, reading paused",
                        self.directory, used, self.max_bytes, batch_id)
            return False
        if used + len(body) > WARN_FRACTION * self.max_bytes and not self._warned:
            self._warned = True
            log.warning("spool %s is %.0f%% full; is the collector reachable?",
                        self.directory, 100 * (used + len(body)) / self.max_bytes)
        elif used + len(body) < WARN_FRACTION * self.max_bytes / 2:
            self._warned = False
        name = f"{self._seq:012d}-{batch_id}{_SUFFIX}"
        self.last_seq = self._seq
        self._seq += 1
        path = os.path.join(self.directory, name)
        with open(path + ".tmp", "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(path + ".tmp", path)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def pending(self) -> Iterator[tuple[str, bytes]]:
        """(batch id, body) of every spooled batch, oldest first."""
        for name in self._names():
            try:
                with open(os.path.join(self.directory, name), "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            yield name[: -len(_SUFFIX)].split("-", 1)[1], _split(data)[1]

    def entries(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """(sequence number, batch id, meta) of every spooled batch, oldest first."""
        for name in self._names():
            seq, batch_id = name[: -len(_SUFFIX)].split("-", 1)
            try:
                with open(os.path.join(self.directory, name), "rb") as fh:
                    head = fh.read(8)
                    length = struct.unpack(">I", head[4:8])[0] if len(head) == 8 else 0
                    meta = _split(head + fh.read(length))[0]
            except OSError:
                continue
            with contextlib.suppress(ValueError):
                yield int(seq), batch_id, meta

    def remove(self, batch_id: str) -> None:
        for name in self._names():
            if name[: -len(_SUFFIX)].endswith(batch_id):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.directory, name))

    # -- backoff -----------------------------------------------------------------------
    def failed(self, now: float) -> float:
        """Record a failed send; returns the delay before the next attempt."""
        delay = min(self.max_backoff, self.base_backoff * 2 ** min(self.failures, 16))
        delay *= random.uniform(0.8, 1.2)
        self.failures += 1
        self.next_attempt = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.next_attempt = 0.0


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    """(meta, body) of a spool file (a file without the meta header is all body)."""
    if len(data) < 8 or data[:4] != _MAGIC:
        return {}, data
    (length,) = struct.unpack(">I", data[4:8])
    try:
        meta = json.loads(data[8 : 8 + length])
    except ValueError:
        meta = {}
    return (meta if isinstance(meta, dict) else {}), data[8 + length :]
