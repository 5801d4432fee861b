"""``portradar agent``: follow local logs, batch, sign and submit to a collector.

One step (every ``batch_seconds``): each followed file gives its new whole lines
(:class:`portradar.watch.file_follower.FileFollower`), the registered reader parses them
into one event batch (every event named with this sensor), target addresses are
anonymised if asked (:mod:`portradar.collect.anonymise`), and the batch is written to
the spool (:mod:`portradar.collect.spool`) *before* the file position is saved; then the
spool is flushed to the collector, oldest first, each attempt signed with a fresh
nonce.  A batch leaves the spool only when the collector answers 200 (stored or
duplicate); a refusal that no resend can fix (400, 401, 403, 413) moves it to
``rejected/`` and counts it.  When the collector is unreachable the spool grows and
sends are retried with exponential backoff.

The batch id is a hash of the sensor, the file position after the lines and the lines
themselves, so lines re-read after a crash of the agent (spooled, position not yet
saved) make the same id, and the collector stores them once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from portradar.collect import signing
from portradar.collect.batch_codec import BatchHeader, encode, encode_body
from portradar.collect.spool import BASE_BACKOFF, MAX_BACKOFF, MAX_BYTES, Spool
from portradar.ingest.lines import line_bounds
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.registry import get_reader
from portradar.watch.file_follower import FileFollower, FilePosition

log = logging.getLogger("portradar.collect.agent")

#: One batch a second: the latency of a live view, and ~1 request/s per sensor.
BATCH_SECONDS = 1.0
#: HTTP timeout of one submission; a stuck collector costs one backoff step.
SEND_TIMEOUT = 10.0
#: Statuses that a resend cannot fix: the batch goes to ``rejected/``.
_PERMANENT = {400, 401, 403, 413}

Anonymiser = Callable[[pa.RecordBatch], pa.RecordBatch]


@dataclass
class AgentStats:
    """What the agent has done (events read are what the collector must end up with)."""

    records: int = 0
    events: int = 0
    skipped: int = 0
    batches_sent: int = 0
    duplicates: int = 0
    rejected: int = 0
    send_failures: int = 0
    last_error: str | None = None
    per_status: dict[int, int] = field(default_factory=dict)


class _Input:
    def __init__(self, path: str, fmt: str, position: FilePosition | None) -> None:
        self.path = path
        self.reader: Any = get_reader(fmt)()  # a LineReader: parse_lines on followed bytes
        self.follower = FileFollower(path, position)
        self.stats = ReadStats(source=path)


class Agent:
    """Follows ``inputs`` ((path, format) pairs) and submits their events to ``url``."""

    def __init__(self, url: str, sensor: str, key: bytes, inputs: list[tuple[str, str]],
                 spool_dir: str, *, anonymiser: Anonymiser | None = None,
                 spool_bytes: int = MAX_BYTES, options: ReadOptions | None = None,
                 timeout: float = SEND_TIMEOUT, base_backoff: float = BASE_BACKOFF,
                 max_backoff: float = MAX_BACKOFF) -> None:
        self.url = url.rstrip("/")
        self.sensor, self.key = sensor, key
        self.spool = Spool(spool_dir, max_bytes=spool_bytes, base_backoff=base_backoff,
                           max_backoff=max_backoff)
        self.anonymiser = anonymiser
        self.timeout = timeout
        self.options = options or ReadOptions()
        self.options.sensor = sensor
        self.stats = AgentStats()
        self._state_path = os.path.join(spool_dir, "positions.json")
        self._rejected_dir = os.path.join(spool_dir, "rejected")
        saved = self._load_positions()
        self.inputs = [_Input(p, f, saved.get(p)) for p, f in inputs]
        self._stop = False

    # -- positions ---------------------------------------------------------------------
    def _load_positions(self) -> dict[str, FilePosition]:
        try:
            with open(self._state_path) as fh:
                raw = json.load(fh)
        except (OSError, ValueError):
            return {}
        return {p: FilePosition(*t) for p, t in raw.items()}

    def _save_positions(self, positions: dict[str, FilePosition]) -> None:
        raw = {}
        for inp in self.inputs:
            pos = positions.get(inp.path, inp.follower.position)
            if pos is not None:
                raw[inp.path] = list(pos.as_tuple())
        tmp = self._state_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(raw, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._state_path)

    # -- reading -----------------------------------------------------------------------
    def _parse(self, inp: _Input, data: bytes) -> pa.RecordBatch:
        buf = np.frombuffer(data, dtype=np.uint8)
        starts, ends = line_bounds(buf)
        before = inp.stats.skipped_total
        batch = inp.reader.parse_lines(buf, starts, ends, inp.stats.records + 1, self.options,
                                       inp.stats)
        inp.stats.records += len(starts)
        self.stats.records += len(starts)
        self.stats.skipped += inp.stats.skipped_total - before
        return batch

    def collect(self) -> int:
        """Read every input once, spool what was read; returns the events spooled."""
        spooled = 0
        for inp in self.inputs:
            data, pos = inp.follower.read()
            if not data or pos is None:
                continue
            records_before = inp.stats.records
            batch = self._parse(inp, data)
            if self.anonymiser is not None and batch.num_rows:
                batch = self.anonymiser(batch)
            if batch.num_rows:
                digest = hashlib.sha256()
                digest.update(f"{self.sensor}\0{inp.path}\0{pos.as_tuple()}\0".encode())
                digest.update(data)
                batch_id = digest.hexdigest()[:32]
                if not self.spool.put(batch_id, encode_body(batch)):
                    # full: forget the parse, keep the lines in the log for later
                    self.stats.records -= inp.stats.records - records_before
                    inp.stats.records = records_before
                    break
                self.stats.events += batch.num_rows
                spooled += batch.num_rows
            self._save_positions({inp.path: pos})
            inp.follower.commit(pos)
        return spooled

    # -- sending -----------------------------------------------------------------------
    def _send(self, batch_id: str, body: bytes) -> tuple[int, str]:
        events = pa.ipc.open_stream(pa.py_buffer(body)).read_all().num_rows
        header = BatchHeader(batch_id=batch_id, sensor=self.sensor, ts=time.time(),
                             nonce=signing.new_nonce(), events=events)
        message = encode(header, body)
        request = urllib.request.Request(
            self.url + "/api/v1/batches", data=message, method="POST",
            headers={"Content-Type": "application/vnd.portradar.batch",
                     "X-Portradar-Sensor": self.sensor,
                     "X-Portradar-Signature": signing.sign(self.key, message)})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def flush(self, now: float | None = None) -> int:
        """Send spooled batches (oldest first) unless backing off; returns batches sent."""
        now = time.monotonic() if now is None else now
        if now < self.spool.next_attempt:
            return 0
        sent = 0
        for batch_id, body in self.spool.pending():
            if self._stop:
                break
            try:
                status, text = self._send(batch_id, body)
            except (OSError, urllib.error.URLError) as exc:
                self.stats.send_failures += 1
                self.stats.last_error = str(exc)
                delay = self.spool.failed(time.monotonic())
                log.warning("collector %s unreachable (%s); %d batches spooled, retry in "
                            "%.1f s", self.url, exc, self.spool.count(), delay)
                return sent
            self.stats.per_status[status] = self.stats.per_status.get(status, 0) + 1
            if status == 200:
                if '"duplicate"' in text:
                    self.stats.duplicates += 1
                self.spool.remove(batch_id)
                self.spool.succeeded()
                self.stats.batches_sent += 1
                sent += 1
            elif status in _PERMANENT:
                self._reject(batch_id, body, status, text)
            else:  # 409 (a nonce clash), 429, 5xx: try again later with a fresh nonce
                self.stats.send_failures += 1
                self.stats.last_error = f"{status} {text}"
                self.spool.failed(time.monotonic())
                return sent
        return sent

    def _reject(self, batch_id: str, body: bytes, status: int, text: str) -> None:
        os.makedirs(self._rejected_dir, exist_ok=True)
        with open(os.path.join(self._rejected_dir, f"{batch_id}.prb"), "wb") as fh:
            fh.write(body)
        self.spool.remove(batch_id)
        self.stats.rejected += 1
        self.stats.last_error = f"{status} {text}"
        log.error("collector refused batch %s (%d %s); kept in %s", batch_id, status, text,
                  self._rejected_dir)

    # -- running -----------------------------------------------------------------------
    def step(self) -> None:
        self.collect()
        self.flush()

    def stop(self) -> None:
        self._stop = True

    def run(self, *, batch_seconds: float = BATCH_SECONDS,
            max_seconds: float | None = None) -> AgentStats:
        """Step until :meth:`stop` (or ``max_seconds``), then a last collect and flush."""
        started = time.monotonic()
        while not self._stop:
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                break
            began = time.monotonic()
            self.step()
            time.sleep(max(0.0, batch_seconds - (time.monotonic() - began)))
        self._stop = False
        self.collect()
        self.flush()
        self.close()
        return self.stats

    def close(self) -> None:
        for inp in self.inputs:
            with contextlib.suppress(OSError):
                inp.follower.close()
