"""``portradar collect serve --dashboard``: the collector serves the dashboard and API.

In process: sensors' signed batches stored by the collector show up in the API as they
are committed, and scanners in them are listed within the update interval, the
second one after the first round already ran (the verdicts are kept current, not
computed once).  As a subprocess: the option binds, prints the address, serves, stops
on SIGTERM.  Loopback only.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow as pa
from test_collect_cli import free_port

from portradar.collect import signing
from portradar.collect.batch_codec import BatchHeader, encode, encode_body
from portradar.collect.collector import Collector
from portradar.ingest.iptables import IptablesReader
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.store.duckdb_store import Store
from portradar.web.embedded_server import DashboardServer


def _lines(scanner: str, start_minute: int) -> str:
    out = []
    for k in range(40):  # background: one probe each from 40 sources
        out.append(_line(f"198.51.100.{k + 1}", 445, start_minute, k))
    for port in range(1, 61):  # a vertical scan of 60 ports of one host
        out.append(_line(scanner, port, start_minute + 1, port % 60))
    return "".join(out)


def _line(src: str, port: int, minute: int, second: int) -> str:
    return (f"2026-11-26T10:{minute:02d}:{second:02d}Z fw kernel: DROP IN=eth0 OUT= SRC={src} "
            f"DST=192.0.2.10 LEN=40 TTL=50 ID=1 PROTO=TCP SPT=40000 DPT={port} WINDOW=1024 "
            "RES=0x00 SYN URGP=0\n")


def _batch(text: str, sensor: str) -> pa.RecordBatch:
    chunks = IptablesReader().read(io.BytesIO(text.encode()), start_offset=0,
                                   options=ReadOptions(sensor=sensor, tz="UTC"),
                                   stats=ReadStats(source="t"))
    return pa.Table.from_batches([c.batch for c in chunks]).combine_chunks().to_batches()[0]


def _submit(collector: Collector, key: bytes, sensor: str, batch: pa.RecordBatch) -> None:
    header = BatchHeader(batch_id=signing.new_nonce(), sensor=sensor, ts=time.time(),
                         nonce=signing.new_nonce(), events=batch.num_rows)
    message = encode(header, encode_body(batch))
    collector.submit(message, sensor, signing.sign(key, message))


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())


def _wait(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_collector_dashboard_shows_stored_batches_and_current_verdicts(tmp_path: Path) -> None:
    with Store.open(tmp_path / "c.duckdb") as store:
        collector = Collector(store, rate=1e9, burst=1e9)
        key = collector.add_sensor("fw-a")
        dashboard = DashboardServer(store, port=0, keep_current=0.3).start()
        try:
            base = dashboard.url
            first = _batch(_lines("203.0.113.7", 0), "fw-a")
            _submit(collector, key, "fw-a", first)
            _wait(lambda: _get(base + "api/v1/status")["events"] == first.num_rows, 20,
                  "the first batch never showed in the API")

            def scanners() -> set[str]:
                items = _get(base + "api/v1/scanners?limit=100")["items"]
                return {s["source"] for s in items if s["status"] == "scanner"}

            _wait(lambda: "203.0.113.7" in scanners(), 30, "the first scanner never listed")
            runs = dashboard.derived_runs
            second = _batch(_lines("203.0.113.99", 5), "fw-a")
            _submit(collector, key, "fw-a", second)
            _wait(lambda: "203.0.113.99" in scanners(), 30, "the second scanner never listed")
            assert dashboard.derived_runs > runs
            assert _get(base + "api/v1/status")["events"] == first.num_rows + second.num_rows
            items = _get(base + "api/v1/scanners?limit=100")["items"]
            scan = next(s for s in items if s["source"] == "203.0.113.99")
            assert scan["kind"] == "vertical" and scan["ports"] == 60
        finally:
            dashboard.stop()
            collector.close()


def test_collect_serve_dashboard_option(tmp_path: Path) -> None:
    port, dash = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "portradar", "--db", str(tmp_path / "c.duckdb"),
                             "collect", "serve", "--port", str(port), "--dashboard",
                             f"127.0.0.1:{dash}", "--max-seconds", "120"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        status: dict[str, Any] = {}

        def up() -> bool:
            assert proc.poll() is None, proc.communicate()
            with contextlib.suppress(urllib.error.URLError, ConnectionError):
                status.update(_get(f"http://127.0.0.1:{dash}/api/v1/status"))
            return bool(status)

        _wait(up, 60, "the collector's dashboard never answered")
        assert status["events"] == 0 and status["read_only"] is False
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert f"dashboard http://127.0.0.1:{dash}/" in err.decode()
    bad = subprocess.run([sys.executable, "-m", "portradar", "--db", str(tmp_path / "d.duckdb"),
                          "collect", "serve", "--dashboard", "localhost:x"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "[HOST:]PORT" in bad.stderr
