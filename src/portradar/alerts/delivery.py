"""Delivery: each sink on its own worker thread, with a bounded queue, retries and digests.

A slow or failing channel must delay nothing else (the detectors, the other sinks), and
lose nothing: every notification ends either *delivered* or *failed* (after
``retries`` attempts with exponential backoff), and the result is recorded in the store
by the service (``alert_deliveries``).  A notification that does not fit in a full
queue is simply left pending in the outbox and offered again on the next round.

**Digests and the per-channel rate limit.**  A channel sends at most one message per
``min_interval`` seconds; everything that arrives meanwhile goes out as *one* digest
message (psad's most common complaint is one e-mail per packet burst).  This is
delivery pacing, so it is measured on the monotonic clock; what an alert *is* was
decided in event time by :mod:`portradar.alerts.lifecycle`.

Defaults: 3 retries with a 1 s, 2 s, 4 s backoff (about the schedule of Alertmanager's
webhook retries, which start at a few seconds and double); 1,000 queued notifications
per sink, far more than a burst of alerts and a few MB at most.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from portradar.alerts.alert import Notification

log = logging.getLogger(__name__)

#: Attempts after the first one.
RETRIES = 3
#: First backoff in seconds, doubled per retry.
BACKOFF = 1.0
#: Notifications a sink's queue holds.
QUEUE_SIZE = 1000


class Sink(Protocol):
    """What a sink implements: ``send`` one message for one or several notifications."""

    name: str

    def send(self, notes: list[Notification]) -> None: ...


@dataclass
class DeliveryResult:
    outbox_ids: list[int]
    sink: str
    status: str  # delivered | failed
    attempts: int
    error: str | None


class SinkWorker:
    """One sink's thread: queue → (digest) → send with retries → result queue."""

    def __init__(self, sink: Sink, results: queue.Queue[DeliveryResult], *,
                 retries: int = RETRIES, backoff: float = BACKOFF,
                 min_interval: float = 0.0, queue_size: int = QUEUE_SIZE) -> None:
        self.sink = sink
        self.results = results
        self.retries = retries
        self.backoff = backoff
        self.min_interval = min_interval
        self.queue: queue.Queue[Notification] = queue.Queue(queue_size)
        self._stop = threading.Event()
        self._last_sent = -1e18
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}",
                                        daemon=True)
        self._thread.start()

    def offer(self, note: Notification) -> bool:
        """Queue a notification; False when the queue is full (it stays pending)."""
        try:
            self.queue.put_nowait(note)
            return True
        except queue.Full:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                first = self.queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            wait = self._last_sent + self.min_interval - time.monotonic()
            if wait > 0 and not self._stop.is_set():
                self._stop.wait(wait)
            notes = [first]
            while True:  # everything waiting goes out as one digest
                try:
                    notes.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._deliver(notes)

    def _deliver(self, notes: list[Notification]) -> None:
        error: str | None = None
        attempts = 0
        for attempt in range(self.retries + 1):
            attempts = attempt + 1
            try:
                self.sink.send(notes)
                error = None
                break
            except Exception as exc:  # any failure of a channel is retried, then recorded
                error = f"{type(exc).__name__}: {exc}"
                log.warning("sink %s: attempt %d failed: %s", self.sink.name, attempts, error)
                if attempt < self.retries:
                    time.sleep(self.backoff * (2 ** attempt))
        self._last_sent = time.monotonic()
        self.results.put(DeliveryResult([n.outbox_id for n in notes], self.sink.name,
                                        "failed" if error else "delivered", attempts, error))
