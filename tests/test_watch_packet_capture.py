"""Live capture input of ``portradar watch`` (:mod:`portradar.watch.packet_capture`).

Two parts:

* the micro-batch logic without tcpdump: a probe whose reply arrives in the next read
  is held back until its reply window is over, then stored once with its outcome;
* real traffic in network namespaces the test creates (``@pytest.mark.netns``): a
  scanner namespace and a target namespace joined by a bridge in the root namespace
  (private 198.18.93.0/24, RFC 2544's benchmark range, only inside them).  The watch
  service captures on the scanner's bridge port with two inputs, the SYN-only filter
  of the docs and ``tcp``, while ``nmap -sS`` and ``hping3 -S`` (bounded counts) probe
  an open, a closed and a filtered port.  The stored events must carry the outcomes
  each filter can see, every captured packet stored exactly once.

Needs root, ``ip``, ``tcpdump``, ``nmap``, ``hping3`` and ``iptables`` for the netns
part.  Every process is stopped by its PID; links and namespaces go in a ``finally``.
"""

from __future__ import annotations

import io
import ipaddress
import os
import secrets
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from portradar.events.schema import Outcome
from portradar.ingest.pcap import ANSWER_REASON, CONTINUES_REASON, RETURN_REASON, PcapReader
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.store import Store
from portradar.watch.config import WatchConfig
from portradar.watch.packet_capture import PacketCapture
from portradar.watch.service import WatchService

SCANNER_IP, TARGET_IP = "198.18.93.1", "198.18.93.2"
OPEN, CLOSED, FILTERED = 18091, 18092, 18093
STEP_TIMEOUT = 60

LISTENER = f"""
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{TARGET_IP}", {OPEN}))
s.listen(64)
s.settimeout(0.5)
print("ready", flush=True)
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    try:
        c, _ = s.accept()
        c.close()
    except OSError:
        pass
"""


def _frame(src: tuple[int, ...], dst: tuple[int, ...], sport: int, dport: int,
           flags: int) -> bytes:
    ip = bytes.fromhex("4500002c000140004006" "0000") + bytes(src) + bytes(dst)
    tcp = struct.pack(">HHIIBBHHH", sport, dport, 100, 0, 0x60, flags, 1024, 0, 0)
    return bytes.fromhex("ffffffffffff0200000000010800") + ip + tcp + bytes.fromhex("020405b4")


def _record(t: float, frame: bytes) -> bytes:
    sec, usec = int(t), round((t - int(t)) * 1e6)
    return struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame


def test_probe_held_back_until_its_reply_window_is_over() -> None:
    a, b = (10, 0, 0, 1), (10, 0, 0, 2)
    now = [1000.0]
    cap = PacketCapture("test0", probe_timeout=1.0, clock=lambda: now[0])
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    second = _record(1000.5, _frame(a, b, 40001, 23, 0x02))
    cap._chunks = [header + _record(1000.0, _frame(a, b, 40000, 22, 0x02)) + second[:30]]
    assert cap.drain().num_rows == 0  # within the reply window: held back
    now[0] = 1002.2  # cut-off 1000.2: the SYN of 1000.0 and its SYN-ACK are final
    cap._chunks = [second[30:] + _record(1000.1, _frame(b, a, 22, 40000, 0x12))]
    got = cap.drain().to_pydict()
    # the SYN-ACK is the SYN's outcome: counted, not stored as an event of its own
    assert got["dport"] == [22] and got["outcome"] == ["accepted"]
    assert cap.stats.skipped[ANSWER_REASON] == 1
    now[0] = 1003.0
    got = cap.drain().to_pydict()
    assert got["dport"] == [23] and got["outcome"] == ["unanswered"]
    now[0] = 1010.0
    assert cap.drain().num_rows == 0  # context is never stored twice
    cap._chunks = [_record(1009.0, b"\x00" * 20)]  # not Ethernet/IP: counted, skipped
    cap.stop()
    assert cap.drain().num_rows == 0
    assert cap.counts["packets"] == 4 and cap.stats.skipped_total == 2
    assert cap.stats.skipped[ANSWER_REASON] == 1  # not counted again from the context


_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


def test_return_traffic_across_rounds() -> None:
    """The server's side of a conversation the client started is return traffic in every
    later round, long after its start left the re-read context: the conversations are
    kept between rounds.  After the idle timeout the server's next packet is an event."""
    c, s = (10, 0, 0, 1), (10, 0, 0, 2)
    now = [1000.0]
    cap = PacketCapture("test0", probe_timeout=1.0, clock=lambda: now[0])
    cap._chunks = [_HEADER
                   + _record(1000.00, _frame(c, s, 40000, 80, SYN))
                   + _record(1000.01, _frame(s, c, 80, 40000, SYN | ACK))
                   + _record(1000.02, _frame(c, s, 40000, 80, ACK))
                   + _record(1000.03, _frame(s, c, 80, 40000, PSH | ACK))]  # fmt: skip
    now[0] = 1003.0  # cut-off 1001.0: all four are final
    got = cap.drain().to_pydict()
    assert got["dport"] == [80] and got["outcome"] == ["established"]  # the conversation
    assert cap.stats.skipped == {ANSWER_REASON: 1, RETURN_REASON: 1, CONTINUES_REASON: 1}
    # 90 s later (the context is 1 s): the server's data is still return traffic, the
    # client's ACK still the conversation's
    cap._chunks = [_record(1090.0, _frame(s, c, 80, 40000, PSH | ACK))
                   + _record(1090.5, _frame(c, s, 40000, 80, ACK))]  # fmt: skip
    now[0] = 1100.0
    assert cap.drain().num_rows == 0
    assert cap.stats.skipped == {ANSWER_REASON: 1, RETURN_REASON: 2, CONTINUES_REASON: 2}
    # 309.5 s idle, beyond TCP's 300 s: the conversation is over, the packet is an event
    cap._chunks = [_record(1400.0, _frame(s, c, 80, 40000, PSH | ACK))]
    now[0] = 1500.0
    got = cap.drain().to_pydict()
    assert got["sport"] == [80] and got["dport"] == [40000]
    assert cap.stats.skipped[RETURN_REASON] == 2
    assert cap.counts["packets"] == 7 and cap.stats.events == 2
    assert cap.stats.skipped_total == 5


def test_live_rounds_judge_return_traffic_like_the_file_reader() -> None:
    """The server capture of the pcap reader's tests, fed to the live capture a few
    packets per round: the same events, answers and return traffic as one file read."""
    from test_pcap_reader import _conversations, pcap

    records = _conversations()
    data = pcap(records)
    stats = ReadStats(source="x.pcap")
    whole = [c.batch for c in PcapReader().read(io.BytesIO(data), start_offset=0,
                                                 options=ReadOptions(), stats=stats)]
    now = [0.0]
    cap = PacketCapture("test0", probe_timeout=3.0, clock=lambda: now[0])
    batches = []
    pos = 24
    cap._chunks = [data[:24]]
    for k, (ts, frame) in enumerate(records):
        size = 16 + len(frame)
        cap._chunks.append(data[pos : pos + size])
        pos += size
        if k % 3 == 2:
            now[0] = ts / 1e6
            batches.append(cap.drain())
    cap._eof.set()  # no tcpdump to wait for
    cap.stop()
    batches.append(cap.drain())
    keys = ("ts", "src_lo", "dst_lo", "sport", "dport", "tcp_flags", "icmp_type", "outcome")
    live = pa.Table.from_batches([b for b in batches if b.num_rows]).select(keys).to_pylist()
    assert live == pa.Table.from_batches(whole).select(keys).to_pylist()
    assert len(live) == 12
    assert dict(cap.stats.skipped) == dict(stats.skipped) == {
        ANSWER_REASON: 7, RETURN_REASON: 10, CONTINUES_REASON: 7}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=STEP_TIMEOUT, check=True)


@pytest.fixture
def lab() -> Iterator[tuple[str, str, str]]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    missing = [t for t in ("ip", "tcpdump", "nmap", "hping3", "iptables")
               if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)}")
    tag = secrets.token_hex(3)
    scan_ns, target_ns = f"prcap-s-{tag}", f"prcap-t-{tag}"
    bridge, scan_port, target_port = f"pcb{tag}", f"pcs{tag}", f"pct{tag}"
    namespaces: list[str] = []
    links: list[str] = []
    try:
        for ns in (scan_ns, target_ns):
            try:
                _run("ip", "netns", "add", ns)
            except subprocess.CalledProcessError as exc:
                pytest.skip(f"cannot create a network namespace: {exc.stderr.strip()}")
            namespaces.append(ns)
        _run("ip", "link", "add", bridge, "type", "bridge")
        links.append(bridge)
        for host_if, ns, addr in ((scan_port, scan_ns, SCANNER_IP),
                                  (target_port, target_ns, TARGET_IP)):
            _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", "lab0",
                 "netns", ns)
            links.append(host_if)
            _run("ip", "link", "set", host_if, "master", bridge, "up")
            _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "lab0")
            _run("ip", "-n", ns, "link", "set", "lab0", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "link", "set", bridge, "up")
        _run("ip", "netns", "exec", target_ns, "iptables", "-A", "INPUT", "-p", "tcp",
             "--dport", str(FILTERED), "-j", "DROP")
        yield scan_ns, target_ns, scan_port
    finally:
        for link in reversed(links):
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=10)
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@pytest.mark.netns
def test_capture_input_stores_real_scan_outcomes(lab: tuple[str, str, str],
                                                 tmp_path: Path) -> None:
    scan_ns, target_ns, port_if = lab
    cfg = WatchConfig.from_text(f"""
[watch]
batch_seconds = 0.2
scanners = false
[[input]]
type = "capture"
name = "syn"
interface = "{port_if}"
filter = "tcp[tcpflags] & tcp-syn != 0"
probe_timeout = 1.0
[[input]]
type = "capture"
name = "tcp"
interface = "{port_if}"
filter = "tcp"
probe_timeout = 1.0
""")
    listener = None
    with Store.open(tmp_path / "cap.duckdb") as store:
        svc = WatchService(store, cfg)
        try:
            listener = subprocess.Popen(
                ["ip", "netns", "exec", target_ns, sys.executable, "-c", LISTENER],
                stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
            assert listener.stdout is not None
            assert listener.stdout.readline().strip() == "ready"
            _run("ip", "netns", "exec", scan_ns, "nmap", "-sS", "-Pn", "-n", "--max-retries",
                 "1", "--host-timeout", "30s", "-p", f"{OPEN},{CLOSED},{FILTERED}", TARGET_IP)
            for port, count in ((OPEN, 2), (CLOSED, 3), (FILTERED, 2)):
                subprocess.run(["ip", "netns", "exec", scan_ns, "hping3", "-S", "-q", "-c",
                                str(count), "-i", "u100000", "-p", str(port), TARGET_IP],
                               capture_output=True, timeout=STEP_TIMEOUT, check=False)
            deadline = time.monotonic() + 20  # the held-back window (2 s) runs out
            while time.monotonic() < deadline:
                svc.step()
                if all(s.events and not s.listener.pending_bytes() > 4096 for s in svc.inputs):
                    break
                time.sleep(0.2)
            mid = {s.config.name: s.events for s in svc.inputs}
            # the metrics ask tcpdump for its counts (SIGUSR1), read back from its stderr
            svc.metrics_text()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not all(
                    "received_by_filter" in s.listener.counts for s in svc.inputs):
                time.sleep(0.1)
            assert all(s.listener.counts["received_by_filter"] > 0 for s in svc.inputs)
            assert 'portradar_input_dropped_total{input="tcp"} 0' in svc.metrics_text()
        finally:
            svc.close()
            if listener is not None and listener.poll() is None:
                listener.kill()
                listener.wait(timeout=10)
        rows = store.con.execute(
            """SELECT w.input, e.dport, e.tcp_flags, e.outcome, count(*)
               FROM event_rows e JOIN watch_positions w ON e.input_id = w.input_id
               WHERE e.src_hi = 0 AND e.src_lo = ? GROUP BY ALL""",
            [0xFFFF_0000_0000 | int(ipaddress.IPv4Address(SCANNER_IP))]).fetchall()
        totals = dict(store.con.execute(
            """SELECT w.input, count(*) FROM event_rows e JOIN watch_positions w
               ON e.input_id = w.input_id GROUP BY ALL""").fetchall())
        syn_flagged = store.con.execute(
            """SELECT count(*) FROM event_rows e JOIN watch_positions w
               ON e.input_id = w.input_id WHERE w.input = 'tcp' AND e.tcp_flags & 2 = 2"""
        ).fetchone()
    names = {int(o): o.name.lower() for o in Outcome}
    outcomes: dict[tuple[str, int], set[str]] = {}
    counts: dict[tuple[str, int], int] = {}
    for name, dport, flags, outcome, n in rows:
        if flags & 0x16 == 0x02:  # the scanner's SYN probes
            outcomes.setdefault((name, dport), set()).add(names[outcome])
            counts[(name, dport)] = counts.get((name, dport), 0) + n
    assert outcomes == {
        ("tcp", OPEN): {"accepted"}, ("tcp", CLOSED): {"rejected"},
        ("tcp", FILTERED): {"unanswered"},
        # the SYN-only filter drops the RST: a closed port looks silent
        ("syn", OPEN): {"accepted"}, ("syn", CLOSED): {"unanswered"},
        ("syn", FILTERED): {"unanswered"},
    }, rows
    assert counts[("tcp", CLOSED)] >= 4 and counts[("tcp", FILTERED)] >= 3
    for port in (OPEN, CLOSED, FILTERED):
        assert counts[("syn", port)] == counts[("tcp", port)]
    # every packet the SYN filter passed is stored once, as the same packet seen by "tcp"
    assert syn_flagged is not None and totals["syn"] == syn_flagged[0]
    by_name = {s.config.name: s for s in svc.inputs}
    # every packet captured is an event, the answer that is a probe's outcome, or the
    # return traffic of a conversation (the listener's FIN after accepting), or the
    # starter's own later packet of it
    for name in ("tcp", "syn"):
        answered = by_name[name].listener.stats.skipped[ANSWER_REASON]
        returned = by_name[name].listener.stats.skipped[RETURN_REASON]
        continued = by_name[name].listener.stats.skipped[CONTINUES_REASON]
        assert by_name[name].records == totals[name] + answered + returned + continued
    assert by_name["tcp"].listener.stats.skipped[ANSWER_REASON] > 0
    assert mid["tcp"] > 0  # stored while running, not only at shutdown
