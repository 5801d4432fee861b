"""A slow or failing channel delays nothing else and loses no alert.

Real local servers on 127.0.0.1: a webhook that answers in time, a webhook that hangs
longer than the sink's timeout, an SMTP server (aiosmtpd) that rejects every message and
a TCP server that accepts and never speaks SMTP.  The watch service's micro-batches must
keep their pace and the good channels must deliver at once while the bad ones are
retried; in the end every notification has a final result for every sink: delivered,
or failed after ``retries + 1`` attempts.  Notifications stored but not delivered when
the service dies are sent by the next one (at least once).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from portradar.alerts.lifecycle import Sighting
from portradar.store import Store
from portradar.watch.config import WatchConfig
from portradar.watch.service import WatchService

HANG_SECONDS = 3.0
TIMEOUT = 0.5  # the bad sinks' timeout
RETRIES = 2


class _Hook(BaseHTTPRequestHandler):
    got: ClassVar[list[tuple[float, dict[str, Any]]]] = []
    delay: ClassVar[float] = 0.0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(type(self).delay)
        type(self).got.append((time.monotonic(), json.loads(body)))
        try:
            self.send_response(200)
            self.end_headers()
        except OSError:
            pass  # the client gave up

    def log_message(self, *args: Any) -> None:
        pass


def _hook(delay: float) -> tuple[ThreadingHTTPServer, type[_Hook]]:
    handler = type("Hook", (_Hook,), {"got": [], "delay": delay})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


def _mute_server() -> tuple[socket.socket, list[socket.socket]]:
    """Accepts connections and never says a word (an SMTP server that hangs)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return sock, held


def _sighting(port: int, at: str) -> Sighting:
    return Sighting(kind="spike", proto=6, port=port, onset=at, at=at, end=None, score=9.0,
                    peak_sources=60.0, baseline_sources=3.0)


def test_slow_and_failing_channels_delay_nothing_and_lose_nothing(tmp_path: Path) -> None:
    controller_mod = pytest.importorskip("aiosmtpd.controller")

    class Reject:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "554 5.7.1 rejected by policy"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        smtp_port = s.getsockname()[1]
    rejecting = controller_mod.Controller(Reject(), hostname="127.0.0.1", port=smtp_port)
    rejecting.start()
    mute, held = _mute_server()
    good, good_cls = _hook(0.0)
    slow, _ = _hook(HANG_SECONDS)
    log = tmp_path / "fw.log"
    log.write_text("")
    bad = f"retries = {RETRIES}\nbackoff = 0.05\ntimeout = {TIMEOUT}"
    cfg = WatchConfig.from_text(f"""
[watch]
batch_seconds = 0.05
scanners = false
[[input]]
type = "file"
path = "{log}"
[[sink]]
type = "webhook"
name = "good"
url = "http://127.0.0.1:{good.server_address[1]}/"
[[sink]]
type = "jsonl"
path = "{tmp_path / 'alerts.jsonl'}"
[[sink]]
type = "webhook"
name = "slow"
url = "http://127.0.0.1:{slow.server_address[1]}/"
{bad}
[[sink]]
type = "email"
name = "rejecting"
port = {smtp_port}
from = "portradar@test"
to = ["soc@test"]
{bad}
[[sink]]
type = "email"
name = "mute"
port = {mute.getsockname()[1]}
from = "portradar@test"
to = ["soc@test"]
{bad}
""")
    try:
        with Store.open(tmp_path / "d.duckdb") as store:
            svc = WatchService(store, cfg)
            with store.transaction():
                notes = svc.book.observe([_sighting(445, "2026-01-05T10:00:00"),
                                          _sighting(23, "2026-01-05T10:00:00")])
            told = time.monotonic()
            steps = []
            # the good channels deliver at once while the bad ones hang and retry
            deadline = told + 30
            while time.monotonic() < deadline:
                t = time.monotonic()
                svc.step()
                steps.append(time.monotonic() - t)
                done = {(o, s) for o, s, *_ in svc.book.deliveries()}
                if len(done) == 2 * len(svc.workers):
                    break
                time.sleep(0.02)
            deliveries = svc.book.deliveries()
            svc.close(drain_seconds=5)
    finally:
        rejecting.stop()
        mute.close()
        for conn in held:
            conn.close()
        good.shutdown()
        slow.shutdown()
    assert len(notes) == 2
    first_good = good_cls.got[0][0] - told
    assert first_good < 1.0, first_good  # not held up by the hanging channels
    # the slowest bad channel needs (retries + 1) timeouts: the service kept stepping
    assert max(steps) < 0.5 and len(steps) > (RETRIES + 1) * TIMEOUT / 0.1, steps
    by_sink: dict[str, set[tuple[str, int]]] = {}
    for outbox_id, sink, status, attempts, error in deliveries:
        by_sink.setdefault(sink, set()).add((status, attempts))
        if status == "failed":
            assert error, (outbox_id, sink)
    assert {o for o, *_ in deliveries} == {n.outbox_id for n in notes}
    assert by_sink["good"] == by_sink["jsonl"] == {("delivered", 1)}
    for sink in ("slow", "rejecting", "mute"):
        assert by_sink[sink] == {("failed", RETRIES + 1)}, (sink, deliveries)
    errors = {sink: error for _, sink, _, _, error in deliveries}
    assert "554" in str(errors["rejecting"]) and "timed out" in str(errors["mute"]).lower()
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 2


def test_notifications_pending_at_a_crash_are_sent_by_the_next_run(tmp_path: Path) -> None:
    hook, hook_cls = _hook(0.0)
    log = tmp_path / "fw.log"
    log.write_text("")
    cfg = WatchConfig.from_text(f"""
[watch]
scanners = false
[[input]]
type = "file"
path = "{log}"
[[sink]]
type = "webhook"
url = "http://127.0.0.1:{hook.server_address[1]}/"
""")
    try:
        with Store.open(tmp_path / "c.duckdb") as store:
            dead = WatchService(store, cfg)
            with store.transaction():  # stored with the micro-batch, then the process dies
                (note,) = dead.book.observe([_sighting(445, "2026-01-05T10:00:00")])
            for worker in dead.workers.values():
                worker.stop()
            assert dead.book.deliveries() == [] and not hook_cls.got
            svc = WatchService(store, cfg)  # the restart
            deadline = time.monotonic() + 10
            while not svc.book.deliveries() and time.monotonic() < deadline:
                svc.step()
                time.sleep(0.02)
            deliveries = svc.book.deliveries()
            svc.close(drain_seconds=5)
    finally:
        hook.shutdown()
    assert deliveries == [(note.outbox_id, "webhook", "delivered", 1, None)]
    (payload,) = [p for _, p in hook_cls.got]
    assert payload["notifications"][0]["outbox_id"] == note.outbox_id
