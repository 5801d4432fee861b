"""The watch service in process: file + syslog inputs, a campaign, one alert's lifecycle,
e-mail to a real local SMTP server (aiosmtpd), webhook to a local HTTP server, a failing
webhook that delays nothing and is recorded as failed."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from portradar.store import Store
from portradar.watch.config import WatchConfig
from portradar.watch.service import WatchService

START = datetime(2026, 1, 5, tzinfo=UTC)


def _line(ts: datetime, src: int, port: int) -> str:
    a = f"198.{(src >> 16) & 255}.{(src >> 8) & 255}.{src & 255}"
    return (f"{ts.strftime('%Y-%m-%dT%H:%M:%SZ')} fw kernel: DROP IN=eth0 OUT= SRC={a} "
            f"DST=192.0.2.{src % 200 + 1} LEN=40 TTL=50 ID=1 PROTO=TCP SPT=40000 DPT={port} "
            "WINDOW=1024 RES=0x00 SYN URGP=0\n")


def _day(day: int, sources: int, rng: np.random.Generator, base: int = 0) -> list[str]:
    out = []
    for i in range(sources):
        ts = START + timedelta(days=day, seconds=int(rng.integers(0, 86400)))
        out.append(_line(ts, base + i, 445))
    return sorted(out)


class _Hook(BaseHTTPRequestHandler):
    got: ClassVar[list[Any]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _server(status: int) -> tuple[HTTPServer, type[_Hook]]:
    handler = type("Hook", (_Hook,), {"got": [], "status": status})
    srv = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, handler


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_until(service: WatchService, cond: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        service.step()
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_campaign_opens_escalates_resolves_one_alert(tmp_path: Path) -> None:
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.handlers import Sink as _Unused  # noqa: F401

    mails: list[Any] = []

    class Collect:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            mails.append(envelope.content.decode())
            return "250 OK"

    smtp = aiosmtpd.Controller(Collect(), hostname="127.0.0.1", port=_free_port())
    smtp.start()
    hook, hook_cls = _server(200)
    bad, _ = _server(500)
    log = tmp_path / "fw.log"
    rng = np.random.default_rng(3)
    background = [ln for d in range(21) for ln in _day(d, int(rng.poisson(20)), rng)]
    log.write_text("".join(background))
    tcp_port = _free_port()
    cfg = WatchConfig.from_text(f"""
[watch]
period = "day"
detect_seconds = 0
scanners = false
[[input]]
type = "file"
path = "{log}"
[[input]]
type = "syslog"
tcp = {tcp_port}
[[sink]]
type = "webhook"
url = "http://127.0.0.1:{hook.server_address[1]}/"
[[sink]]
type = "webhook"
name = "broken"
url = "http://127.0.0.1:{bad.server_address[1]}/"
retries = 2
backoff = 0.05
[[sink]]
type = "email"
port = {smtp.port}
from = "portradar@test"
to = ["soc@test"]
[[sink]]
type = "jsonl"
path = "{tmp_path / 'alerts.jsonl'}"
""")
    try:
        with Store.open(tmp_path / "w.duckdb") as store:
            svc = WatchService(store, cfg)
            _run_until(svc, lambda: svc.inputs[0].events == len(background))
            # day 21: the campaign starts, through the file
            with open(log, "a") as fh:
                fh.writelines(_day(21, 80, rng, base=10_000))
            _run_until(svc, lambda: len(svc.book.alerts()) == 1)
            # day 22: it grows tenfold, through syslog over TCP
            with socket.create_connection(("127.0.0.1", tcp_port)) as conn:
                conn.sendall("".join("<4>" + ln for ln in _day(22, 600, rng, base=20_000))
                             .encode())
            _run_until(svc, lambda: svc.book.alerts()[0].severity >= 2)
            # days 23-26: back to normal, through the file
            with open(log, "a") as fh:
                for d in range(23, 27):
                    fh.writelines(_day(d, 20, rng))
            _run_until(svc, lambda: svc.book.alerts()[0].status == "resolved")
            _run_until(svc, lambda: len(svc.book.deliveries()) >= 12, seconds=30)
            alerts = svc.book.alerts()
            deliveries = svc.book.deliveries()
            svc.close()
        assert len(alerts) == 1 and alerts[0].port == 445
        transitions = [json.loads(line)["transition"]
                       for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
        assert transitions[0] == "open" and "escalate" in transitions
        assert transitions[-1] == "resolve"
        assert mails and "445" in mails[0]
        assert hook_cls.got and hook_cls.got[0]["notifications"][0]["transition"] == "open"
        broken = [d for d in deliveries if d[1] == "broken"]
        assert broken and all(d[2] == "failed" and d[3] == 3 for d in broken)
        good = [d for d in deliveries if d[1] != "broken"]
        assert good and all(d[2] == "delivered" for d in good)
    finally:
        smtp.stop()
        hook.shutdown()
        bad.shutdown()


def test_netflow_input_counts_records_and_reply_flows(tmp_path: Path) -> None:
    """A NetFlow input's records are the flow records received, not the events stored: a
    reply flow that decided its probe's outcome is counted as skipped (with its reason),
    and stays so across a restart."""
    from test_netflow_decoder import REVERSE_FLOWS, v5_flows

    from portradar.ingest.netflow_decoder import REPLY_REASON

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = WatchConfig.from_text(f"""
[watch]
detect_seconds = 0
scanners = false
[[input]]
type = "netflow"
name = "flows"
port = {port}
""")
    datagram = v5_flows(REVERSE_FLOWS)
    with Store.open(tmp_path / "w.duckdb") as store:
        for run in (1, 2):
            svc = WatchService(store, cfg)
            try:
                flows = svc.inputs[0]
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
                    out.sendto(datagram, ("127.0.0.1", port))
                _run_until(svc, lambda flows=flows, run=run: flows.events == 5 * run)
                assert (flows.records, flows.events, flows.skipped) == (7 * run, 5 * run,
                                                                        2 * run)
                assert flows.stats.skipped == {REPLY_REASON: 2}  # this run's listener
            finally:
                svc.close()
            row = store.con.execute("SELECT records, events, skipped FROM watch_positions "
                                    "WHERE input = 'flows'").fetchone()
            assert row == (7 * run, 5 * run, 2 * run)
            stored = store.con.execute("SELECT count(*) FROM event_rows").fetchone()
            assert stored == (5 * run,)  # the same flows again: another export, stored again
