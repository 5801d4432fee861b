"""``[serve]`` in the watch configuration: the dashboard and API served by ``watch`` itself.

In process: events followed from a file show up in ``/api/v1/status`` as they are
stored, a campaign's alert is listed and acknowledged through the API while the
watch goes on storing, and closing the service stops the server.  As a subprocess:
``portradar watch`` prints the dashboard's address, serves the page and the API, and
stops on SIGTERM.  Configuration mistakes are errors before anything binds.
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_watch_service import _day, _free_port, _run_until

from portradar.errors import PortradarError
from portradar.store import Store
from portradar.watch.config import WatchConfig
from portradar.watch.service import WatchService
from portradar.web.embedded_server import DashboardServer


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as reply:
        body = reply.read()
        return json.loads(body) if "json" in reply.headers["Content-Type"] else body.decode()


def _post(url: str, payload: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.status, json.loads(reply.read())


def _refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_watch_serves_what_it_stores_and_acknowledges_alerts(tmp_path: Path) -> None:
    log = tmp_path / "fw.log"
    rng = np.random.default_rng(5)
    background = [ln for d in range(21) for ln in _day(d, int(rng.poisson(20)), rng)]
    log.write_text("".join(background))
    cfg = WatchConfig.from_text(f"""
[watch]
period = "day"
detect_seconds = 0
scanners = false
[[input]]
type = "file"
path = "{log}"
[serve]
host = "127.0.0.1"
port = 0
""")
    with Store.open(tmp_path / "w.duckdb") as store:
        svc = WatchService(store, cfg)
        try:
            base = svc.dashboard.url
            port = svc.dashboard.port
            assert port > 0 and base == f"http://127.0.0.1:{port}/"
            _run_until(svc, lambda: svc.inputs[0].events == len(background))
            # the server reads the store the watch writes: every committed event shows
            deadline = time.monotonic() + 10
            while _get(base + "api/v1/status")["events"] != len(background):
                assert time.monotonic() < deadline, _get(base + "api/v1/status")
                time.sleep(0.1)
            assert _get(base + "api/v1/status")["read_only"] is False
            with open(log, "a") as fh:
                fh.writelines(_day(21, 80, rng, base=10_000))
            _run_until(svc, lambda: len(svc.book.alerts()) == 1)
            listed = _get(base + "api/v1/alerts")["items"]
            assert [(a["port"], a["status"]) for a in listed] == [(445, "open")]
            alert_id = listed[0]["alert_id"]
            status, acked = _post(base + f"api/v1/alerts/{alert_id}/ack", {"note": "seen"})
            assert status == 200 and acked["alert_id"] == alert_id
            (row,) = store.con.execute(
                "SELECT alert_id, note FROM web_alert_acks").fetchall()
            assert row == (alert_id, "seen")
            # the watch goes on storing after the server wrote through its own connection
            with open(log, "a") as fh:
                fh.writelines(_day(22, 30, rng, base=30_000))
            total = len(background) + 80 + 30
            _run_until(svc, lambda: svc.inputs[0].events == total)
            assert store.con.execute("SELECT count(*) FROM event_rows").fetchone() == (total,)
            page = _get(base)
            assert "<html" in page.lower() and "portradar" in page
            ports = _get(base + "api/v1/ports?period=day")
            assert any(p["port"] == 445 for p in ports["items"])
        finally:
            svc.close()
        assert _refused(port)


def test_serve_mistakes_are_errors_before_binding(tmp_path: Path) -> None:
    with pytest.raises(PortradarError, match="unknown key"):
        WatchConfig.from_text('[[input]]\ntype = "syslog"\nudp = 5514\n[serve]\nprot = 1\n')
    with pytest.raises(PortradarError, match="port must be"):
        WatchConfig.from_text('[[input]]\ntype = "syslog"\nudp = 5514\n[serve]\nport = 70000\n')
    with pytest.raises(PortradarError, match="auth must be"):
        WatchConfig.from_text('[[input]]\ntype = "syslog"\nudp = 5514\n[serve]\nauth = "no"\n')
    with Store.open(tmp_path / "s.duckdb") as store:
        # beyond loopback: authentication cannot be turned off, and needs a credential
        with pytest.raises(PortradarError, match="only on loopback"):
            DashboardServer(store, host="0.0.0.0", port=0, auth=False)
        with pytest.raises(PortradarError, match="no token or user"):
            DashboardServer(store, host="0.0.0.0", port=0).start()
        # a port already taken: a clear error, not a thread that dies quietly
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            with pytest.raises(PortradarError, match="cannot serve"):
                DashboardServer(store, port=taken.getsockname()[1]).start()


def test_portradar_watch_command_serves_the_dashboard(tmp_path: Path) -> None:
    log = tmp_path / "fw.log"
    rng = np.random.default_rng(8)
    lines = [ln for d in range(3) for ln in _day(d, 15, rng)]
    log.write_text("".join(lines))
    port = _free_port()
    config = tmp_path / "watch.toml"
    config.write_text(f'[watch]\nscanners = false\n[[input]]\ntype = "file"\npath = "{log}"\n'
                      f'[serve]\nport = {port}\n')
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "portradar", "--db",
                             str(tmp_path / "w.duckdb"), "watch", "--config", str(config),
                             "--max-seconds", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        base = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        events = -1
        while events != len(lines):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the watch's dashboard never showed the events"
            with contextlib.suppress(urllib.error.URLError, ConnectionError):
                events = _get(base + "api/v1/status")["events"]
            time.sleep(0.2)
        assert "portradar" in _get(base)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert f"dashboard http://127.0.0.1:{port}/" in err.decode()
    assert _refused(port)
