"""``portradar agent``: read local inputs, batch, sign and submit to a collector.

The inputs are those of ``watch``, configured the same way (``[[input]]`` tables of
:mod:`portradar.watch.config`): followed files
(:class:`portradar.watch.file_follower.FileFollower`, rotation-safe), the syslog
listener (:class:`portradar.watch.syslog_listener.SyslogListener`, UDP/TCP) and the
NetFlow/IPFIX listener (:class:`portradar.ingest.netflow_listener.NetflowListener`).

One step (every ``batch_seconds``): each input gives what arrived (new whole lines,
syslog messages, flow batches), lines are parsed by the registered reader into one
event batch (every event named with this sensor), target addresses are anonymised if
asked (:mod:`portradar.collect.anonymise`), and the batch is written to the spool
(:mod:`portradar.collect.spool`) *before* a file's position is saved; then the spool is
flushed to the collector, oldest first, each attempt signed with a fresh nonce.  A batch
leaves the spool only when the collector answers 200 (stored or duplicate); a refusal
that no resend can fix (400, 401, 403, 413) moves it to ``rejected/`` and counts it.
When the collector is unreachable the spool grows and sends are retried with
exponential backoff.

A file batch's id is a hash of the sensor, the file position after the lines and the
lines themselves; its spool entry also records that position, so after a crash between
spooling and saving the positions the agent resumes after the spooled lines (never
reading them again).  A network batch gets a random id when it is spooled; resends
keep it, so the collector stores every batch once.  (As in ``watch``, messages a
listener holds when the agent is killed are lost unless the sender retransmits.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from portradar.collect import signing
from portradar.collect.batch_codec import BatchHeader, encode, encode_body
from portradar.collect.spool import BASE_BACKOFF, MAX_BACKOFF, MAX_BYTES, Spool
from portradar.errors import PortradarError
from portradar.events.schema import EVENT_SCHEMA
from portradar.ingest.lines import line_bounds
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.registry import get_reader
from portradar.watch.config import InputConfig
from portradar.watch.file_follower import FileFollower, FilePosition
from portradar.watch.syslog_listener import SyslogListener

log = logging.getLogger("portradar.collect.agent")

#: One batch a second: the latency of a live view, and ~1 request/s per sensor.
BATCH_SECONDS = 1.0
#: HTTP timeout of one submission; a stuck collector costs one backoff step.
SEND_TIMEOUT = 10.0
#: Statuses that a resend cannot fix: the batch goes to ``rejected/``.
_PERMANENT = {400, 401, 403, 413}
#: Flow events a NetFlow input holds in memory while the spool is full: ~100 MB at the
#: ~100 bytes an event takes decompressed (the collector's ``MAX_EVENTS`` estimate);
#: beyond it flow batches are dropped and counted, as the listener drops datagrams.
HOLD_EVENTS = 1_000_000

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
    dropped: int = 0  # flow events dropped while the spool was full (HOLD_EVENTS)
    last_error: str | None = None
    per_status: dict[int, int] = field(default_factory=dict)


class FileInput:
    """A followed log file (rotation-safe), parsed by a registered line reader."""

    kind = "file"

    def __init__(self, name: str, path: str, fmt: str, position: FilePosition | None) -> None:
        self.name, self.path = name, path
        self.reader: Any = get_reader(fmt)()  # a LineReader: parse_lines on followed bytes
        self.follower = FileFollower(path, position)
        self.stats = ReadStats(source=path)

    def pending_bytes(self) -> int:
        return self.follower.lag_bytes()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.follower.close()


class SyslogInput:
    """The ``watch`` syslog listener (UDP and/or TCP), parsed by a registered line reader.

    When the spool is full the parsed batch is held and the listener is not drained, so
    its bounded buffer fills and TCP senders are slowed down (UDP beyond it is dropped
    and counted by the listener, as in ``watch``).
    """

    kind = "syslog"

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        if options.get("udp") is None and options.get("tcp") is None:
            raise PortradarError(f"input {name!r}: a syslog input needs udp = PORT and/or "
                                 "tcp = PORT")
        self.name, self.path = name, name
        self.reader: Any = get_reader(str(options.get("format", "iptables")))()
        self.stats = ReadStats(source=name)
        self.held: pa.RecordBatch | None = None
        self.listener = SyslogListener(
            host=str(options.get("host", "127.0.0.1")), udp_port=options.get("udp"),
            tcp_port=options.get("tcp")).start()

    def pending_bytes(self) -> int:
        return self.listener.pending_bytes()

    def close(self) -> None:
        self.listener.stop()


class NetflowInput:
    """The ``watch`` NetFlow/IPFIX listener; its batches name this agent's sensor."""

    kind = "netflow"

    def __init__(self, name: str, options: dict[str, Any], sensor: str) -> None:
        from portradar.ingest.netflow_listener import DEFAULT_PORT, NetflowListener

        self.name, self.path = name, name
        self.stats = ReadStats(source=name)
        self.lock = threading.Lock()
        self.flows: list[pa.RecordBatch] = []
        self.held_events = 0
        self.dropped = 0
        self.listener = NetflowListener(
            self._keep, host=str(options.get("host", "127.0.0.1")),
            port=int(options.get("port", DEFAULT_PORT)), sensor=sensor,
            batch_seconds=float(options.get("batch_seconds", BATCH_SECONDS))).start()

    def _keep(self, batch: pa.RecordBatch) -> None:  # on the listener's worker thread
        with self.lock:
            if self.held_events + batch.num_rows > HOLD_EVENTS:
                self.dropped += batch.num_rows
                log.warning("spool full: %d flow events dropped (%d so far)", batch.num_rows,
                            self.dropped)
                return
            self.flows.append(batch)
            self.held_events += batch.num_rows

    def take(self) -> pa.RecordBatch | None:
        with self.lock:
            flows, self.flows = self.flows, []
        if not flows:
            return None
        return pa.Table.from_batches(flows, schema=EVENT_SCHEMA).combine_chunks().to_batches()[0]

    def give_back(self, batch: pa.RecordBatch) -> None:
        with self.lock:
            self.flows.insert(0, batch)

    def spooled(self, events: int) -> None:
        with self.lock:
            self.held_events -= events

    def pending_bytes(self) -> int:
        with self.lock:
            return self.held_events

    def close(self) -> None:
        self.listener.stop()


AgentInput = FileInput | SyslogInput | NetflowInput
InputSpec = tuple[str, str] | InputConfig


class Agent:
    """Reads ``inputs`` and submits their events to ``url``.

    ``inputs`` are ``(path, format)`` pairs of files to follow, or the ``[[input]]``
    tables of a ``watch`` configuration (:class:`portradar.watch.config.InputConfig`:
    ``file``, ``syslog`` or ``netflow``), configured exactly as for ``watch``.
    """

    def __init__(self, url: str, sensor: str, key: bytes, inputs: Sequence[InputSpec],
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
        saved, self._saved_seq = self._recover()
        self.spool.advance_seq(self._saved_seq + 1)
        self.inputs: list[AgentInput] = []
        try:
            for spec in inputs:
                self.inputs.append(self._input(spec, saved))
        except BaseException:
            self.close()
            raise
        self._stop = False

    def _input(self, spec: InputSpec, saved: dict[str, FilePosition]) -> AgentInput:
        if not isinstance(spec, InputConfig):
            path, fmt = spec
            return FileInput(f"file:{path}", path, fmt, saved.get(path))
        opts = spec.options
        if spec.type == "file":
            path = str(opts["path"])
            return FileInput(spec.name, path, str(opts.get("format", "iptables")),
                              saved.get(path))
        if spec.type == "syslog":
            return SyslogInput(spec.name, opts)
        if spec.type == "netflow":
            return NetflowInput(spec.name, opts, self.sensor)
        raise PortradarError(f"input {spec.name!r}: unknown type {spec.type!r}")

    # -- positions ---------------------------------------------------------------------
    def _recover(self) -> tuple[dict[str, FilePosition], int]:
        """Saved file positions, moved past batches spooled after the last save.

        A crash between spooling a batch and saving the positions leaves a batch in the
        spool (sequence number above the saved one) whose lines the saved position does
        not cover: resume after them (their meta has the position), or the log, grown
        meanwhile, would be read again as a different batch and stored twice.
        """
        try:
            with open(self._state_path) as fh:
                raw = json.load(fh)
        except (OSError, ValueError):
            raw = {}
        if "positions" not in raw:  # the first format: {path: position}
            raw = {"positions": raw, "spool_seq": -1}
        positions = {p: FilePosition(*t) for p, t in raw["positions"].items()}
        seq = int(raw.get("spool_seq", -1))
        for entry_seq, _, meta in self.spool.entries():
            if entry_seq > seq and "position" in meta and "path" in meta:
                positions[str(meta["path"])] = FilePosition(*meta["position"])
            seq = max(seq, entry_seq)
        return positions, seq

    def _save_positions(self, positions: dict[str, FilePosition]) -> None:
        raw = {}
        for inp in self.inputs:
            if isinstance(inp, FileInput):
                pos = positions.get(inp.path, inp.follower.position)
                if pos is not None:
                    raw[inp.path] = list(pos.as_tuple())
        self._saved_seq = max(self._saved_seq, self.spool.last_seq)
        tmp = self._state_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"positions": raw, "spool_seq": self._saved_seq}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._state_path)

    # -- reading -----------------------------------------------------------------------
    def _parse(self, inp: FileInput | SyslogInput, data: bytes | bytearray) -> pa.RecordBatch:
        buf = np.frombuffer(data, dtype=np.uint8)
        starts, ends = line_bounds(buf)
        before = inp.stats.skipped_total
        batch = inp.reader.parse_lines(buf, starts, ends, inp.stats.records + 1, self.options,
                                       inp.stats)
        inp.stats.records += len(starts)
        self.stats.records += len(starts)
        self.stats.skipped += inp.stats.skipped_total - before
        if self.anonymiser is not None and batch.num_rows:
            batch = self.anonymiser(batch)
        return batch

    def _put(self, inp: AgentInput, batch: pa.RecordBatch, batch_id: str,
             position: FilePosition | None = None) -> bool:
        meta: dict[str, Any] = {"input": inp.name}
        if position is not None:
            meta.update(path=inp.path, position=list(position.as_tuple()))
        if not self.spool.put(batch_id, encode_body(batch), meta):
            return False
        self.stats.events += batch.num_rows
        return True

    def collect(self) -> int:
        """Read every input once, spool what was read; returns the events spooled.

        Stops at the first input the full spool refuses (it keeps what it has).
        """
        spooled = 0
        for inp in self.inputs:
            if isinstance(inp, FileInput):
                n = self._collect_file(inp)
            elif isinstance(inp, SyslogInput):
                n = self._collect_syslog(inp)
            else:
                n = self._collect_netflow(inp)
            if n is None:
                break
            spooled += n
        return spooled

    def _collect_file(self, inp: FileInput) -> int | None:
        data, pos = inp.follower.read()
        if not data or pos is None:
            return 0
        records_before = inp.stats.records
        batch = self._parse(inp, data)
        if batch.num_rows:
            digest = hashlib.sha256()
            digest.update(f"{self.sensor}\0{inp.path}\0{pos.as_tuple()}\0".encode())
            digest.update(data)
            if not self._put(inp, batch, digest.hexdigest()[:32], pos):
                # full: forget the parse, keep the lines in the log for later
                self.stats.records -= inp.stats.records - records_before
                inp.stats.records = records_before
                return None
        self._save_positions({inp.path: pos})
        inp.follower.commit(pos)
        return batch.num_rows

    def _collect_syslog(self, inp: SyslogInput) -> int | None:
        if inp.held is None:
            data = inp.listener.drain()
            if not data:
                return 0
            batch = self._parse(inp, data)
            if not batch.num_rows:
                return 0
            inp.held = batch
        # a network message has no position to re-read from: a fresh random id, kept by
        # the spool across resends, so the collector still stores it once
        if not self._put(inp, inp.held, secrets.token_hex(16)):
            return None
        n, inp.held = inp.held.num_rows, None
        return n

    def _collect_netflow(self, inp: NetflowInput) -> int | None:
        batch = inp.take()
        if batch is None:
            return 0
        if self.anonymiser is not None and batch.num_rows:
            batch = self.anonymiser(batch)
        if not self._put(inp, batch, secrets.token_hex(16)):
            inp.give_back(batch)
            return None
        inp.stats.records += batch.num_rows
        self.stats.records += batch.num_rows
        inp.spooled(batch.num_rows)
        self.stats.dropped = sum(i.dropped for i in self.inputs if isinstance(i, NetflowInput))
        return batch.num_rows

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
    def step(self) -> int:
        """One collect and one flush; returns the batches sent."""
        self.collect()
        return self.flush()

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
        for inp in self.inputs:  # the listeners hand over what they still hold
            if not isinstance(inp, FileInput):
                inp.close()
        self.collect()
        self.flush()
        self.close()
        return self.stats

    def pending(self) -> int:
        """Batches spooled plus bytes (or flow events) read by no step yet: 0 when idle."""
        return self.spool.count() + sum(inp.pending_bytes() for inp in self.inputs)

    def close(self) -> None:
        for inp in self.inputs:
            inp.close()
