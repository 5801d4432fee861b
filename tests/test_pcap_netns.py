"""Real scanners against a real TCP stack, captured with tcpdump, read by the pcap reader.

The test builds its own world and touches nothing else: two network namespaces it
creates (a scanner and a target) joined by a veth pair, with addresses from
198.18.0.0/15 (RFC 2544's range for network benchmarks) that exist only inside those
namespaces.  Every packet it sends goes to the target namespace.  In the target: a TCP
listener on one port, nothing on two others, and a firewall DROP rule (iptables, or nft
when iptables is missing) on a fourth.  tcpdump captures on the scanner's side while
``nmap -sS`` and ``hping3 -S`` (bounded counts) probe the four ports; the reader must
find the open port accepted, the closed ones rejected and the filtered one unanswered.

Needs root and ``ip``, ``tcpdump``, ``nmap``, ``hping3`` and ``iptables`` or ``nft``; it
is skipped otherwise.  Every process it starts is stopped by its PID, every wait is
bounded, and the namespaces are deleted in a ``finally``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from portradar.events import format_addresses
from portradar.ingest.pcap import ANSWER_REASON, CONTINUES_REASON, RETURN_REASON, PcapReader
from portradar.ingest.reader import ReadOptions, ReadStats

pytestmark = pytest.mark.netns

SCANNER_IP, TARGET_IP = "198.18.91.1", "198.18.91.2"  # RFC 2544 benchmarking range
OPEN, CLOSED_A, CLOSED_B, FILTERED = 18081, 18082, 18083, 18084
HTTP = 18085  # a benign HTTP server: curl's conversation with it is no scan
HTTP_BODY = 20000  # bytes: a dozen data segments from the server
#: Longest any one step may take, in seconds.
STEP_TIMEOUT = 60
#: How long the listener stays up at most, whatever happens to the test.
LISTENER_LIFETIME = 120

LISTENER = f"""
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{TARGET_IP}", {OPEN}))
s.listen(64)
s.settimeout(0.5)
print("ready", flush=True)
deadline = time.monotonic() + {LISTENER_LIFETIME}
while time.monotonic() < deadline:
    try:
        conn, _ = s.accept()
        conn.close()
    except OSError:
        pass
"""


HTTP_SERVER = f"""
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{TARGET_IP}", {HTTP}))
s.listen(8)
s.settimeout(0.5)
print("ready", flush=True)
body = b"x" * {HTTP_BODY}
deadline = time.monotonic() + {LISTENER_LIFETIME}
while time.monotonic() < deadline:
    try:
        conn, _ = s.accept()
    except OSError:
        continue
    conn.settimeout(5)
    try:
        data = b""
        while b"\\r\\n\\r\\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\nConnection: close"
                     b"\\r\\n\\r\\n" % len(body) + body)
    except OSError:
        pass
    finally:
        conn.close()
"""


def _missing_tools() -> list[str]:
    missing = [t for t in ("ip", "tcpdump", "nmap", "hping3", "curl")
               if shutil.which(t) is None]
    if shutil.which("iptables") is None and shutil.which("nft") is None:
        missing.append("iptables or nft")
    return missing


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=STEP_TIMEOUT, check=True)


def _in(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


def _stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], sig: int) -> None:
    """Stop one process we started, by its PID: ``sig`` first, SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _wait_for(predicate: object, what: str, seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.1)):
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    missing = _missing_tools()
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)}")
    tag = f"{os.getpid() % 100000}"
    scan_ns, target_ns = f"prscan{tag}", f"prtarget{tag}"
    scan_if, target_if = f"prs{tag}", f"prt{tag}"
    created: list[str] = []
    try:
        for ns in (scan_ns, target_ns):
            try:
                _run("ip", "netns", "add", ns)
            except subprocess.CalledProcessError as exc:
                pytest.skip(f"cannot create a network namespace: {exc.stderr.strip()}")
            created.append(ns)
        _run("ip", "link", "add", scan_if, "netns", scan_ns, "type", "veth",
             "peer", "name", target_if, "netns", target_ns)  # fmt: skip
        for ns, iface, address in ((scan_ns, scan_if, SCANNER_IP),
                                   (target_ns, target_if, TARGET_IP)):  # fmt: skip
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", ns, "addr", "add", f"{address}/30", "dev", iface)
            _run("ip", "-n", ns, "link", "set", iface, "up")
        if shutil.which("iptables"):
            _run(*_in(target_ns, "iptables", "-A", "INPUT", "-p", "tcp", "--dport",
                      str(FILTERED), "-j", "DROP"))  # fmt: skip
        else:
            _run(*_in(target_ns, "nft", "add", "table", "inet", "portradar_test"))
            _run(*_in(target_ns, "nft", "add", "chain", "inet", "portradar_test", "input",
                      "{ type filter hook input priority 0 ; }"))  # fmt: skip
            _run(*_in(target_ns, "nft", "add", "rule", "inet", "portradar_test", "input",
                      "tcp", "dport", str(FILTERED), "drop"))  # fmt: skip
        yield scan_ns, target_ns
    finally:
        for ns in created:  # deleting a namespace deletes its end of the veth pair too
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=STEP_TIMEOUT)


def test_real_scan_outcomes(namespaces: tuple[str, str], tmp_path: Path) -> None:
    scan_ns, target_ns = namespaces
    capture = tmp_path / "scan.pcap"
    tcpdump_log = tmp_path / "tcpdump.log"
    scan_if = f"prs{os.getpid() % 100000}"
    listener = tcpdump = http_server = None
    try:
        listener = subprocess.Popen(_in(target_ns, sys.executable, "-c", LISTENER),
                                    stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"
        http_server = subprocess.Popen(_in(target_ns, sys.executable, "-c", HTTP_SERVER),
                                       stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert http_server.stdout is not None
        assert http_server.stdout.readline().strip() == "ready"
        with open(tcpdump_log, "w") as log:
            tcpdump = subprocess.Popen(
                # -Z root: keep the rights to write into the test's temporary directory;
                # --immediate-mode: no packet waits in a TPACKET_V3 block for its 1 s
                # timeout (curl's conversation, the last traffic, was lost at SIGINT)
                _in(scan_ns, "tcpdump", "-Z", "root", "-i", scan_if, "-n", "-U",
                    "--immediate-mode", "-s", "256", "-w", str(capture), "ip", "and", "host",
                    TARGET_IP),
                stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        _wait_for(lambda: "listening on" in tcpdump_log.read_text(), "tcpdump to start")

        ports = f"{OPEN},{CLOSED_A},{CLOSED_B},{FILTERED}"
        _run(*_in(scan_ns, "nmap", "-sS", "-Pn", "-n", "--max-retries", "1",
                  "--host-timeout", "30s", "-p", ports, TARGET_IP))  # fmt: skip
        for port, count in ((OPEN, 2), (CLOSED_A, 3), (FILTERED, 2)):
            # hping3 exits with 1 when nothing answers (the filtered port): not a failure
            subprocess.run(_in(scan_ns, "hping3", "-S", "-q", "-c", str(count), "-i", "u100000",
                               "-p", str(port), TARGET_IP),
                           capture_output=True, timeout=STEP_TIMEOUT, check=False)  # fmt: skip
        # a benign client: one HTTP conversation, the server's data, ACKs and FIN with it
        got = _run(*_in(scan_ns, "curl", "-s", "-o", "/dev/null", "-w", "%{size_download}",
                        "--max-time", "20", f"http://{TARGET_IP}:{HTTP}/"))  # fmt: skip
        assert got.stdout == str(HTTP_BODY)
        time.sleep(0.5)  # the last replies reach the capture
    finally:
        if tcpdump is not None:
            _stop(tcpdump, signal.SIGINT)  # SIGINT: tcpdump flushes and closes the file
        if listener is not None:
            _stop(listener, signal.SIGTERM)
        if http_server is not None:
            _stop(http_server, signal.SIGTERM)

    stats = ReadStats(source=str(capture))
    with open(capture, "rb") as f:
        # keep_answers: the target's replies are checked below as events too
        chunks = list(PcapReader(keep_answers=True).read(f, start_offset=0,
                                                         options=ReadOptions(), stats=stats))
    table = pa.Table.from_batches([c.batch for c in chunks])
    rows = table.to_pylist()
    src = format_addresses(table.column("src_hi").to_pylist(), table.column("src_lo").to_pylist())
    outcomes: dict[int, set[str]] = {}
    counts: dict[int, int] = {}
    for row, source in zip(rows, src, strict=True):
        if (source == SCANNER_IP and row["proto"] == 6 and row["tcp_flags"] & 0x16 == 0x02
                and row["dport"] != HTTP):
            outcomes.setdefault(row["dport"], set()).add(row["outcome"])
            counts[row["dport"]] = counts.get(row["dport"], 0) + 1
    assert outcomes == {
        OPEN: {"accepted"},
        CLOSED_A: {"rejected"},
        CLOSED_B: {"rejected"},
        FILTERED: {"unanswered"},
    }, (outcomes, tcpdump_log.read_text())
    # nmap's probe (plus at most one retry) and hping3's bounded counts
    assert counts[CLOSED_A] >= 4 and counts[OPEN] >= 3 and counts[FILTERED] >= 3
    replies = [r for r, s in zip(rows, src, strict=True)
               if s == TARGET_IP and r["sport"] != HTTP]  # fmt: skip
    assert replies and {r["outcome"] for r in replies} == {"unknown"}
    assert {r["tcp_flags"] & 0x16 for r in replies} == {0x12, 0x14}  # SYN-ACK and RST-ACK
    # curl's conversation: the server's SYN-ACK, then its data, ACKs and FIN
    http_client = [r for r, s in zip(rows, src, strict=True)
                   if s == SCANNER_IP and r["dport"] == HTTP]  # fmt: skip
    http_server = [r for r, s in zip(rows, src, strict=True)
                   if s == TARGET_IP and r["sport"] == HTTP]  # fmt: skip
    assert [r["tcp_flags"] & 0x17 for r in http_client][:1] == [0x02]
    assert http_client[0]["outcome"] == "established"
    assert [r["tcp_flags"] & 0x17 for r in http_server][:1] == [0x12]
    assert len(http_server) >= 5  # SYN-ACK, ACK of the request, data, FIN
    assert sum(r["bytes"] - 52 for r in http_server) >= HTTP_BODY  # 20 IP + 32 TCP
    assert any(r["tcp_flags"] & 0x01 for r in http_server)  # the server's FIN
    # by default the answers are the probes' outcomes and the server's side of curl's
    # conversation is return traffic: the target never shows as a source, and the same
    # probes (and curl's packets) have the same outcomes
    plain = ReadStats(source=str(capture))
    with open(capture, "rb") as f:
        kept = pa.Table.from_batches([c.batch for c in PcapReader().read(
            f, start_offset=0, options=ReadOptions(), stats=plain)])
    plain_src = format_addresses(kept.column("src_hi").to_pylist(),
                                 kept.column("src_lo").to_pylist())
    assert TARGET_IP not in plain_src
    assert plain.skipped[ANSWER_REASON] == len(replies) + 1  # + the HTTP SYN-ACK
    assert plain.skipped[RETURN_REASON] == len(http_server) - 1
    # and the scanner's own later packets of the answered conversations (its kernel's RST
    # after a SYN-ACK, curl's ACKs, request and FIN) are those conversations, not probes
    scanner_rows = [r for r, s in zip(rows, src, strict=True) if s == SCANNER_IP]
    later = [r for r in scanner_rows if r["tcp_flags"] & 0x16 != 0x02]
    assert later and len([r for r in later if r["dport"] == HTTP]) == len(http_client) - 1
    assert plain.skipped[CONTINUES_REASON] == len(later)
    assert kept.num_rows == table.num_rows - len(replies) - len(http_server) - len(later)
    assert sorted(set(kept.column("dport").to_pylist())) == sorted(
        {OPEN, CLOSED_A, CLOSED_B, FILTERED, HTTP})  # no ephemeral port of the scanner

    def scanner_events(events: list[dict], sources: list[str]) -> list[tuple]:
        return [(r["ts"], r["dport"], r["tcp_flags"], r["outcome"])
                for r, s in zip(events, sources, strict=True) if s == SCANNER_IP]

    syns = [(r, s) for r, s in zip(rows, src, strict=True) if r["tcp_flags"] & 0x16 == 0x02]
    assert scanner_events(kept.to_pylist(), plain_src) == scanner_events(
        [r for r, _ in syns], [s for _, s in syns])
