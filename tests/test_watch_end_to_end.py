"""``portradar watch`` end to end, as a user runs it: a subprocess, real senders, real servers.

The service runs as ``portradar --db STORE watch --config watch.toml`` with three inputs
and four sinks, everything on 127.0.0.1 (free ports picked by the test):

* a **file** input on ``fw.log``, into which the test writes iptables lines and which
  it rotates with the real **logrotate**: once in ``create`` mode and once in
  ``copytruncate`` mode, both with ``compress`` (the rotated file is moved, then
  gzipped);
* a **syslog** input (UDP and TCP), fed by **logger** (util-linux): RFC 3164 over UDP,
  RFC 5424 over TCP with octet counting, RFC 5424 over TCP with newline framing;
* a **NetFlow** input fed by **softflowd** reading a capture the test writes
  (``softflowd -r file.pcap -n 127.0.0.1:PORT``: a real exporter, no namespace needed);
* sinks: a JSON-lines file, a webhook to a local ``http.server``, e-mail to a real
  **aiosmtpd** server that requires STARTTLS and authentication (a self-signed
  certificate the sink trusts through ``cafile``), and Prometheus metrics, which the
  test polls to know how far the service got.

The story, hourly buckets (``period = "hour"``): fifteen days of flat background on
port 445 (3 sources an hour, imported beforehand with ``portradar ingest``, as a user
would import an archive), then a campaign on 445 from new sources, each in its own
/24: 80 sources in the current hour (60 by syslog, 20 in the file), 500 the next hour
(file, then rotation), then 16 hours of background (file, rotation, file).  Before the
copytruncate rotation the service has read part of the new file, as it has in real life
(a file rotated daily): see docs/watch.md for the one case copytruncate cannot recover.  Exactly one
alert must open, escalate and resolve; an e-mail and a webhook must arrive; every line
must be stored exactly once, whatever the rotations; the flows must be stored.

Every wait polls with a deadline; the service also has ``--max-seconds`` as a last
resort; every process is stopped by its PID.  Needs logger, logrotate, softflowd and
the Python package aiosmtpd; skipped without them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

pytestmark = pytest.mark.netns  # real binaries (logger, logrotate, softflowd)

PORT = 445
HISTORY_HOURS = 15 * 24
BACKGROUND = 3  # sources an hour
CAMPAIGN = (80, 500)  # sources in the campaign's first and second hour
AFTER_HOURS = 16  # background hours after the campaign (12 quiet hours end an hourly spike)
FLOWS = 3  # TCP connections in the capture softflowd exports (2 flows each)
DEADLINE = 60.0  # seconds any one stage may take


def _src_background(k: int) -> str:
    return f"100.64.{k % 200}.9"


def _src_campaign(i: int) -> str:  # each source in its own /24: no "network" campaign
    return f"{20 + i // 65536}.{(i // 256) % 256}.{i % 256}.7"


def _body(src: str, i: int) -> str:
    return (f"DROP IN=eth0 OUT= SRC={src} DST=198.51.100.{i % 200 + 1} LEN=40 TTL=50 ID=1 "
            f"PROTO=TCP SPT={40000 + i % 20000} DPT={PORT} WINDOW=1024 RES=0x00 SYN URGP=0")


def _line(ts: datetime, src: str, i: int) -> str:
    return f"{ts.strftime('%Y-%m-%dT%H:%M:%SZ')} fw kernel: {_body(src, i)}\n"


def _background(hour: datetime) -> list[str]:
    n = int(hour.timestamp() // 3600)
    return [_line(hour + timedelta(minutes=10 + 15 * j), _src_background(n * BACKGROUND + j), j)
            for j in range(BACKGROUND)]


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_both() -> int:
    """A port free for both UDP and TCP (the syslog input listens on both)."""
    for _ in range(50):
        port = _free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no port free for both UDP and TCP")


def _wait(what: str, condition: Callable[[], bool], proc: subprocess.Popen[bytes],
          log: Path, seconds: float = DEADLINE) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"portradar watch exited ({proc.returncode}) waiting for "
                                 f"{what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}:\n{log.read_text()[-3000:]}")


class _Hook(BaseHTTPRequestHandler):
    got: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _certificate(tmp: Path) -> tuple[Path, Path]:
    key, cert = tmp / "smtp.key", tmp / "smtp.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return key, cert


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[int, Path, list[dict[str, Any]]]]:
    controller_mod = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.smtp import AuthResult, LoginPassword

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    key, cert = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    mails: list[dict[str, Any]] = []

    class Collect:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            mails.append({"content": envelope.content.decode(), "tls": session.ssl is not None,
                          "user": session.auth_data.login.decode()
                          if session.authenticated else None})
            return "250 OK"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"portradar"
              and auth_data.password == b"s3cret")
        return AuthResult(success=ok, auth_data=auth_data if ok else None)

    port = _free_port()
    controller = controller_mod.Controller(
        Collect(), hostname="127.0.0.1", port=port, tls_context=context,
        require_starttls=True, authenticator=authenticate, auth_required=True)
    controller.start()
    try:
        yield port, cert, mails
    finally:
        controller.stop()


def _pcap(path: Path, start: datetime) -> None:
    """FLOWS TCP handshakes to 192.0.2.80:8080 (softflowd makes 2 flows of each)."""
    def frame(src: bytes, dst: bytes, sport: int, dport: int, flags: int) -> bytes:
        ip = bytes.fromhex("4500002c000140004006" "0000") + src + dst
        tcp = struct.pack(">HHIIBBHHH", sport, dport, 100, 0, 0x60, flags, 1024, 0, 0)
        return (bytes.fromhex("ffffffffffff0200000000010800") + ip + tcp
                + bytes.fromhex("020405b4"))

    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    server = bytes([192, 0, 2, 80])
    for i in range(FLOWS):
        client = bytes([10, 9, 0, i + 1])
        for k, (s, d, sp, dp, f) in enumerate([(client, server, 41000 + i, 8080, 0x02),
                                                (server, client, 8080, 41000 + i, 0x12),
                                                (client, server, 41000 + i, 8080, 0x10)]):
            fr = frame(s, d, sp, dp, f)
            t = int(start.timestamp()) + 60 * i + k
            out += struct.pack("<IIII", t, 0, len(fr), len(fr)) + fr
    path.write_bytes(out)


def _metrics(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for m in re.finditer(r'^portradar_input_events_total\{input="([^"]+)"\} (\S+)$', text,
                         re.MULTILINE):
        out[m.group(1)] = float(m.group(2))
    return out


def _transitions(path: Path) -> list[tuple[int, str, int]]:
    if not path.exists():
        return []
    notes = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(n["alert"]["alert_id"], n["transition"], n["alert"]["severity"]) for n in notes]


def _logrotate(tmp: Path, log: Path, mode: str) -> None:
    conf = tmp / f"logrotate-{mode}.conf"
    conf.write_text(f"{log} {{\n  {mode}\n  rotate 5\n  compress\n  missingok\n}}\n")
    subprocess.run(["logrotate", "-f", "-s", str(tmp / "logrotate.state"), str(conf)],
                   check=True, capture_output=True, timeout=30)


def _logger(port: int, lines: list[str], *args: str) -> None:
    subprocess.run(["logger", "--server", "127.0.0.1", "--port", str(port), "-t", "kernel",
                    *args], input="".join(lines).encode(), check=True, timeout=30,
                   capture_output=True)


def test_watch_end_to_end(tmp_path: Path, smtp: tuple[int, Path, list[dict[str, Any]]]
                          ) -> None:
    for tool in ("logger", "logrotate", "softflowd"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian packages bsdutils, logrotate, "
                        "softflowd)")
    smtp_port, cert, mails = smtp
    now = datetime.now(tz=UTC)
    if now.minute == 59 and now.second >= 30:  # keep the syslog lines in this hour
        time.sleep(61 - now.second)
        now = datetime.now(tz=UTC)
    h0 = now.replace(minute=0, second=0, microsecond=0)
    store = tmp_path / "watch.duckdb"
    fw_log = tmp_path / "fw.log"
    alerts_jsonl = tmp_path / "alerts.jsonl"
    history = tmp_path / "history.log"
    history.write_text("".join(ln for h in range(HISTORY_HOURS, 0, -1)
                               for ln in _background(h0 - timedelta(hours=h))))
    subprocess.run([sys.executable, "-m", "portradar", "--db", str(store), "ingest",
                    "--format", "iptables", str(history)],
                   check=True, capture_output=True, timeout=120)
    fw_log.write_text("")

    hook_cls = type("Hook", (_Hook,), {"got": []})
    hook = ThreadingHTTPServer(("127.0.0.1", 0), hook_cls)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    syslog_port, netflow_port, metrics_port = _free_both(), _free_port(socket.SOCK_DGRAM), \
        _free_port()
    config = tmp_path / "watch.toml"
    config.write_text(f"""
[watch]
period = "hour"
batch_seconds = 0.2
detect_seconds = 0.5
tz = "UTC"
scanners = true

[[input]]
type = "file"
name = "fw"
path = "{fw_log}"

[[input]]
type = "syslog"
udp = {syslog_port}
tcp = {syslog_port}

[[input]]
type = "netflow"
port = {netflow_port}

[[sink]]
type = "jsonl"
path = "{alerts_jsonl}"

[[sink]]
type = "webhook"
url = "http://127.0.0.1:{hook.server_address[1]}/hook"
style = "json"

[[sink]]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
starttls = true
cafile = "{cert}"
username = "portradar"
password = "s3cret"
from = "portradar@example.org"
to = ["soc@example.org"]

[metrics]
port = {metrics_port}
""")
    out_log = tmp_path / "watch.log"
    written = 0
    with open(out_log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "portradar", "--db", str(store), "watch", "--config",
             str(config), "--max-seconds", "240"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait("the service's metrics", lambda: "fw" in _metrics(metrics_port), proc, out_log)

        # hour 0: the campaign starts, 60 sources by syslog (3 framings), 20 in the file
        sources = [_src_campaign(i) for i in range(CAMPAIGN[0] + CAMPAIGN[1])]
        bodies = [_body(s, i) + "\n" for i, s in enumerate(sources[:60])]
        _logger(syslog_port, bodies[:20], "--udp", "--rfc3164")
        _logger(syslog_port, bodies[20:40], "--tcp", "--rfc5424", "--octet-count")
        _logger(syslog_port, bodies[40:60], "--tcp", "--rfc5424")
        with open(fw_log, "a") as fh:
            lines = [_line(h0 + timedelta(minutes=30, seconds=i), s, i)
                     for i, s in enumerate(sources[60:80])]
            fh.writelines(lines)
            written += len(lines)
        # flows from a real exporter, two hours ago, on another port
        _pcap(tmp_path / "flows.pcap", h0 - timedelta(hours=2))
        subprocess.run(["softflowd", "-r", str(tmp_path / "flows.pcap"), "-n",
                        f"127.0.0.1:{netflow_port}", "-v", "9"],
                       check=True, capture_output=True, timeout=30)
        _wait("the alert to open",
              lambda: any(t == "open" for _, t, _ in _transitions(alerts_jsonl)), proc, out_log)

        # hour 1: tenfold, in the file, rotated at once (create + compress)
        with open(fw_log, "a") as fh:
            lines = [_line(h0 + timedelta(hours=1, seconds=i), s, i)
                     for i, s in enumerate(sources[80:])]
            fh.writelines(lines)
            written += len(lines)
        _logrotate(tmp_path, fw_log, "create")
        _wait("the alert to escalate",
              lambda: any(t == "escalate" for _, t, _ in _transitions(alerts_jsonl)), proc,
              out_log)

        # back to normal: a quarter read, a quarter written just before a copytruncate
        # rotation (found in the compressed copy), the rest after it
        after = [ln for h in range(2, 2 + AFTER_HOURS)
                 for ln in _background(h0 + timedelta(hours=h))]
        quarter, half = len(after) // 4, len(after) // 2
        with open(fw_log, "a") as fh:
            fh.writelines(after[:quarter])
        _wait("the first background lines after the rotation",
              lambda: _metrics(metrics_port).get("fw") == written + quarter, proc, out_log)
        with open(fw_log, "a") as fh:
            fh.writelines(after[quarter:half])
        _logrotate(tmp_path, fw_log, "copytruncate")
        with open(fw_log, "a") as fh:
            fh.writelines(after[half:])
        written += len(after)
        _wait("the alert to resolve",
              lambda: any(t == "resolve" for _, t, _ in _transitions(alerts_jsonl)), proc,
              out_log)
        _wait("the e-mail and the webhook of the resolution",
              lambda: any("[resolve]" in m["content"] for m in mails)
              and any(n["transition"] == "resolve" for p in hook_cls.got
                      for n in p["notifications"]), proc, out_log)
        _wait(f"every event stored ({written} lines in the file, 60 by syslog, "
              f"{FLOWS} client flows of {2 * FLOWS}): {_metrics(metrics_port)}",
              lambda: _metrics(metrics_port).get("fw") == written
              and _metrics(metrics_port).get("syslog") == 60
              and _metrics(metrics_port).get("netflow", 0) >= FLOWS, proc, out_log)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        hook.shutdown()
    assert proc.returncode == 0, out_log.read_text()[-3000:]
    assert any(p.startswith("fw.log.") and p.endswith(".gz") for p in os.listdir(tmp_path))

    # exactly one alert: open, then escalate, ..., resolve
    transitions = _transitions(alerts_jsonl)
    assert {a for a, _, _ in transitions} == {1}, transitions
    kinds = [t for _, t, _ in transitions]
    assert kinds[0] == "open" and kinds[-1] == "resolve" and kinds.count("resolve") == 1
    assert kinds.count("open") == 1 and "escalate" in kinds
    assert transitions[0][2] == 1 and max(s for _, _, s in transitions) == 2

    from portradar.store import Store

    with Store.open(store, read_only=True) as st:
        alerts = st.con.execute("SELECT kind, proto, port, status, severity, onset FROM alerts"
                                ).fetchall()
        per_input = dict(st.con.execute(
            "SELECT input, events FROM watch_positions").fetchall())
        netflow_counts = st.con.execute("SELECT records, events, skipped FROM "
                                        "watch_positions WHERE input = 'netflow'").fetchone()
        stored = dict(st.con.execute(
            """SELECT w.input, count(*) FROM event_rows e JOIN watch_positions w
               ON e.input_id = w.input_id GROUP BY ALL""").fetchall())
        flows = st.con.execute(
            "SELECT count(*) FROM event_rows WHERE dport = 8080 AND proto = 6").fetchone()
        deliveries = st.con.execute(
            "SELECT sink, status, count(*) FROM alert_deliveries GROUP BY ALL").fetchall()
        outbox = st.con.execute("SELECT count(*) FROM alert_outbox").fetchone()
    assert alerts == [("spike", 6, PORT, "resolved", 2, h0.replace(tzinfo=None).isoformat())]
    assert stored == {"fw": written, "syslog": 60, "netflow": per_input["netflow"]}
    assert per_input["fw"] == written and per_input["syslog"] == 60
    assert flows is not None and flows[0] == FLOWS  # the client→server flows
    # the servers' halves are the connections' replies: records, counted as skipped
    assert netflow_counts == (2 * FLOWS, FLOWS, FLOWS)
    assert outbox is not None
    assert sorted(deliveries) == [(sink, "delivered", outbox[0])
                                  for sink in ("email", "jsonl", "webhook")]
    assert mails and all(m["tls"] and m["user"] == "portradar" for m in mails)
    assert any(f"tcp/{PORT}" in m["content"] for m in mails)
    told = [n["transition"] for p in hook_cls.got for n in p["notifications"]]
    assert told == kinds  # the webhook got every notification, in order
