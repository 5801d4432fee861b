"""UDP listener for NetFlow/IPFIX exporters: datagrams in, event batches to a callback.

The live ``watch`` service runs one of these per collector port.  Two threads: the
*receiver* only reads datagrams into a bounded queue (so a slow consumer costs dropped
datagrams, counted, never unbounded memory), the *worker* decodes them with
:class:`~portradar.ingest.netflow_decoder.NetflowDecoder` (the same decoder as the file
reader) and calls ``on_batch`` with an Arrow batch in the event schema every
``batch_records`` flow records or ``batch_seconds`` seconds, whichever comes first.
The callback runs on the worker thread; an exception in it is counted and logged and
the listener goes on.

It binds ``127.0.0.1`` by default: listening on a routable address is a decision the
operator makes (``host="0.0.0.0"``), because anyone who can reach the port can inject
flows.

>>> import socket, time
>>> got = []
>>> with NetflowListener(got.append, port=0, batch_seconds=0.05) as listener:
...     sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
...     _ = sender.sendto(bytes.fromhex(
...         "0005000100000064" "6553f100" "00000000" "00000001" "00000000"
...         "c6336407" "c000020a" "00000000" "00010002" "00000001" "0000002c"
...         "00000032" "00000032" "d4310016" "00020600" "00000000" "18180000"),
...         listener.address)
...     _ = sender.sendto(b"garbage", listener.address)
...     sender.close()
...     deadline = time.monotonic() + 5
...     while not got and time.monotonic() < deadline:
...         time.sleep(0.01)
>>> [(r["dport"], r["sensor"]) for b in got for r in b.to_pylist()]
[(22, '127.0.0.1')]
>>> listener.counters()["packets"], dict(listener.malformed)
(2, {'127.0.0.1': 1})
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from types import TracebackType

import pyarrow as pa

from portradar.ingest.netflow_decoder import NO_TEMPLATE, REPLY_REASON, NetflowDecoder
from portradar.ingest.reader import ReadStats

log = logging.getLogger(__name__)

#: What the listener calls with each batch of events (on its worker thread).
BatchCallback = Callable[[pa.RecordBatch], None]

#: Default collector port: 2055, the port NetFlow exporters (Cisco, softflowd, nfcapd)
#: default to.  IPFIX's IANA port is 4739.
DEFAULT_PORT = 2055
#: Flow records per batch: 10,000 events is about 1 MB of Arrow, a DuckDB append of a
#: few milliseconds (the store's ingest measurements).
BATCH_RECORDS = 10_000
#: Seconds a record may wait before its batch is handed over, so a quiet exporter's flows
#: still reach the detectors promptly.
BATCH_SECONDS = 1.0
#: Datagrams the receiver may queue ahead of the decoder: a few seconds of a busy
#: exporter (~1,000 datagrams/s), bounded memory (≤ 10,000 × 64 KiB worst case, ~15 MB
#: at typical 1,500-byte datagrams).
QUEUE_PACKETS = 10_000
#: Kernel receive buffer asked for (SO_RCVBUF), to absorb export bursts between reads.
RECEIVE_BUFFER = 4 << 20
#: How often the threads look at the stop flag (seconds).
POLL_SECONDS = 0.2
MAX_DATAGRAM = 65_535


class NetflowListener:
    """Receive NetFlow v1/v5/v9/IPFIX on UDP and hand event batches to ``on_batch``.

    ``port=0`` binds an ephemeral port (see :attr:`address`).  ``sensor`` names every
    event; by default each is named for its exporter's address.  A reply flow that
    decided a probe flow's outcome within a batch is counted in :attr:`stats` (skip
    reason :data:`~portradar.ingest.netflow_decoder.REPLY_REASON`), not handed over;
    ``keep_replies=True`` hands it over too (ignored when ``decoder`` is given: that
    decoder's own setting applies).  Use as a context manager, or call :meth:`start`
    and :meth:`stop`.
    """

    def __init__(self, on_batch: BatchCallback, *, host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT, batch_records: int = BATCH_RECORDS,
                 batch_seconds: float = BATCH_SECONDS, queue_packets: int = QUEUE_PACKETS,
                 sensor: str | None = None, receive_buffer: int = RECEIVE_BUFFER,
                 decoder: NetflowDecoder | None = None, keep_replies: bool = False) -> None:
        if batch_records < 1 or batch_seconds <= 0 or queue_packets < 1:
            raise ValueError("batch_records, batch_seconds and queue_packets must be positive")
        self.on_batch = on_batch
        self.host = host
        self.port = port
        self.batch_records = batch_records
        self.batch_seconds = batch_seconds
        self.receive_buffer = receive_buffer
        self.decoder = decoder if decoder is not None else NetflowDecoder(
            sensor=sensor, keep_replies=keep_replies)
        #: Skip reasons and examples of everything received (never strict).
        self.stats = ReadStats(source=f"udp://{host}:{port}")
        #: Datagrams per exporter address that were malformed (a data set waiting for its
        #: template, or a reply flow counted as its probe's outcome, is not malformed;
        #: those are in ``decoder.skipped_by_exporter``).
        self.malformed: Counter[str] = Counter()
        #: Datagrams per exporter address dropped because the queue was full.
        self.dropped: Counter[str] = Counter()
        self.last_error: BaseException | None = None
        self._queue: queue.Queue[tuple[bytes, tuple[str, int]]] = queue.Queue(queue_packets)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    # --- life cycle ---------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)`` (the real port when constructed with ``port=0``)."""
        if self._sock is None:
            return self.host, self.port
        name = self._sock.getsockname()
        return name[0], name[1]

    def start(self) -> NetflowListener:
        """Bind the socket and start the receiver and worker threads."""
        if self._sock is not None:
            return self
        family, kind, proto, _, addr = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, kind, proto)
        with contextlib.suppress(OSError):  # capped by net.core.rmem_max; default works too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        sock.bind(addr)
        sock.settimeout(POLL_SECONDS)
        self._sock = sock
        self.stats.source = "udp://{}:{}".format(*self.address)
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._receive, name="netflow-receiver", daemon=True),
            threading.Thread(target=self._work, name="netflow-worker", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop receiving, decode what was queued, hand over the last batch, close."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> NetflowListener:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def counters(self) -> dict[str, int]:
        """Totals so far: packets, bytes, records, events, batches, dropped, callback errors."""
        with self._lock:
            counts = dict(self._counts)
        for key in ("packets", "bytes", "records", "events", "batches", "dropped",
                    "callback_errors"):
            counts.setdefault(key, 0)
        counts["skipped"] = self.stats.skipped_total
        counts["pending_sets"] = self.decoder.pending_sets
        return counts

    # --- threads -------------------------------------------------------------------------
    def _receive(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            try:
                self._queue.put_nowait((data, (addr[0], addr[1])))
            except queue.Full:
                with self._lock:
                    self._counts["dropped"] += 1
                    self.dropped[addr[0]] += 1

    def _work(self) -> None:
        deadline = time.monotonic() + self.batch_seconds
        while True:
            stopping = self._stop.is_set()
            try:
                data, (host, port) = self._queue.get(
                    timeout=max(0.0, min(POLL_SECONDS, deadline - time.monotonic())))
            except queue.Empty:
                if stopping and not any(t.is_alive() for t in self._threads[:1]):
                    break
            else:
                self._decode(data, host, port)
                if self.decoder.pending_records >= self.batch_records:
                    self._flush()
                    deadline = time.monotonic() + self.batch_seconds
                continue
            if time.monotonic() >= deadline:
                self._flush()
                deadline = time.monotonic() + self.batch_seconds
        self._flush()
        self.decoder.finish(self.stats)

    def _malformed_count(self, host: str) -> int:
        reasons = self.decoder.skipped_by_exporter.get(host)
        if not reasons:
            return 0
        return sum(n for reason, n in reasons.items()
                   if reason not in (NO_TEMPLATE, REPLY_REASON))

    def _decode(self, data: bytes, host: str, port: int) -> None:
        before = self._malformed_count(host)
        try:
            records = self.decoder.feed(data, host, port=port, stats=self.stats)
        except Exception as exc:  # one bad datagram must not stop the service
            log.exception("netflow listener: decoding a datagram from %s failed", host)
            self.last_error = exc
            records = 0
            self.stats.skip("datagram the decoder failed on", detail=f"exporter {host}: {exc}")
            before = -1
        with self._lock:
            self._counts["packets"] += 1
            self._counts["bytes"] += len(data)
            self._counts["records"] += records
            if self._malformed_count(host) != before:
                self.malformed[host] += 1

    def _flush(self) -> None:
        if not self.decoder.pending_records:
            return
        batch = self.decoder.take(self.stats)
        self.stats.events += batch.num_rows
        with self._lock:
            self._counts["events"] += batch.num_rows
            self._counts["batches"] += 1
        try:
            self.on_batch(batch)
        except Exception as exc:  # reported, not fatal
            log.exception("netflow listener: the batch callback failed")
            self.last_error = exc
            with self._lock:
                self._counts["callback_errors"] += 1
