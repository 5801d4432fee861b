"""A real exporter: softflowd exports NetFlow v9 and IPFIX to portradar's listener.

The test builds its own little network and sends traffic only inside it: two network
namespaces joined by a bridge (``A`` -- bridge -- ``B``, private addresses 10.211.0.0/24
and fd00:211::/64).  softflowd runs in the root namespace capturing on A's bridge port
and exports to :class:`~portradar.ingest.netflow_listener.NetflowListener` on
127.0.0.1.  Client programs in A open TCP connections to a server in B (port 8080),
connect to a closed port (8081) and send UDP datagrams over IPv4 and IPv6 to a closed
port (9999); the decoded flows must match what was sent.

Four exporters watch the same traffic: v9 (``-v 9``), IPFIX with times relative to
the exporter's start (``-v 10``: flowStartSysUpTime + systemInitTimeMilliseconds),
IPFIX with absolute times (``-v 10 -A milli``: flowStartMilliseconds), and v9 again
into a listener with ``keep_replies=True``.  By default the target's RST flow that
refused a connection is its probe's outcome (``rejected``), counted and not an event;
the kept one is an event of its own, as before.

softflowd opens its capture with no read timeout; on kernels where the TPACKET_V3 ring
then only hands over *full* blocks (seen on Linux 6.18), the test pushes bursts of
filler datagrams (to the discard port, from port 47999; excluded from the checks) until
softflowd reports it has processed the test's packets.  Every wait is bounded; every
process is stopped by its PID; the namespaces and links are deleted at the end.

Needs root, ``ip`` (iproute2) and softflowd (Debian package ``softflowd``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pytest

from portradar.events.addresses import format_addresses
from portradar.events.schema import validate_batch
from portradar.ingest.netflow_decoder import REPLY_REASON
from portradar.ingest.netflow_listener import NetflowListener

pytestmark = pytest.mark.netns

NET4 = ("10.211.0.1", "10.211.0.2")
NET6 = ("fd00:211::1", "fd00:211::2")
OPEN_PORT, CLOSED_PORT, UDP_PORT = 8080, 8081, 9999
UDP4_SPORT, UDP6_SPORT, FILLER_SPORT = 47000, 47001, 47999
TCP_CONNECTIONS, REFUSED, UDP4_PACKETS, UDP6_PACKETS = 3, 2, 4, 2
#: Filler datagrams per burst: one TPACKET_V3 block of softflowd's ring holds ~1,900.
FILLER_BURST = 2000
MAX_FILLER_BURSTS = 10

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
s.settimeout(20)
print("ready", flush=True)
for _ in range(int(sys.argv[3])):
    c, _ = s.accept()
    c.settimeout(5)
    c.recv(100)
    c.sendall(b"hello")
    c.close()
"""

CLIENT = """
import json, socket, sys, time
server, server6 = sys.argv[1], sys.argv[2]
open_port, closed_port, udp_port = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
n_tcp, n_refused, n_udp4, n_udp6 = (int(x) for x in sys.argv[6:10])
udp4_sport, udp6_sport = int(sys.argv[10]), int(sys.argv[11])
out = {"open": [], "refused": []}
for _ in range(n_tcp):
    c = socket.create_connection((server, open_port), timeout=5)
    out["open"].append(c.getsockname()[1])
    c.sendall(b"hi")
    c.recv(100)
    c.close()
for _ in range(n_refused):
    c = socket.socket()
    c.settimeout(5)
    c.bind(("", 0))
    out["refused"].append(c.getsockname()[1])
    try:
        c.connect((server, closed_port))
    except OSError:
        pass
    c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("", udp4_sport))
for _ in range(n_udp4):
    u.sendto(b"x" * 20, (server, udp_port))
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u6.bind(("", udp6_sport))
for _ in range(n_udp6):
    u6.sendto(b"y" * 20, (server6, udp_port))
time.sleep(0.2)
print(json.dumps(out), flush=True)
"""

FILLER = """
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("", int(sys.argv[3])))
for _ in range(int(sys.argv[2])):
    u.sendto(b"f", (sys.argv[1], 9))
"""


def run(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=True, timeout=timeout, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)


@dataclass
class Lab:
    ns_a: str
    ns_b: str
    capture_if: str  # A's bridge port, in the root namespace
    links: list[str] = field(default_factory=list)

    def exec_python(self, ns: str, code: str, *args: str, timeout: float = 30) -> str:
        return run("ip", "netns", "exec", ns, sys.executable, "-c", code, *args,
                   timeout=timeout).stdout


@pytest.fixture
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    for tool in ("ip", "softflowd", "softflowctl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian packages iproute2, softflowd)")
    tag = secrets.token_hex(3)
    lab = Lab(ns_a=f"prnf-a-{tag}", ns_b=f"prnf-b-{tag}", capture_if=f"pnf{tag}a")
    bridge, host_b = f"pnf{tag}br", f"pnf{tag}b"
    try:
        run("ip", "netns", "add", lab.ns_a)
        run("ip", "netns", "add", lab.ns_b)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        for ns in (lab.ns_a, lab.ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        pytest.skip(f"cannot create network namespaces: {exc}")
    try:
        run("ip", "link", "add", bridge, "type", "bridge")
        lab.links.append(bridge)
        for host_if, ns, addr4, addr6 in ((lab.capture_if, lab.ns_a, NET4[0], NET6[0]),
                                          (host_b, lab.ns_b, NET4[1], NET6[1])):
            run("ip", "link", "add", host_if, "type", "veth", "peer", "name", "lab0",
                "netns", ns)
            lab.links.append(host_if)
            run("ip", "link", "set", host_if, "master", bridge, "up")
            run("ip", "-n", ns, "addr", "add", f"{addr4}/24", "dev", "lab0")
            run("ip", "-n", ns, "addr", "add", f"{addr6}/64", "dev", "lab0", "nodad")
            run("ip", "-n", ns, "link", "set", "lab0", "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "set", bridge, "up")
        yield lab
    finally:
        for link in reversed(lab.links):
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=10)
        for ns in (lab.ns_a, lab.ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@dataclass
class Exporter:
    name: str
    args: list[str]
    batches: list[pa.RecordBatch] = field(default_factory=list)
    listener: NetflowListener | None = None
    proc: subprocess.Popen[bytes] | None = None
    ctl: str = ""
    keep: bool = False  # the listener's keep_replies


def softflowctl(ctl: str, command: str) -> str:
    return run("softflowctl", "-c", ctl, command, timeout=10).stdout


def processed(ctl: str) -> tuple[int, int]:
    """softflowd's counts of packets processed and received from libpcap."""
    text = softflowctl(ctl, "statistics")
    got = re.search(r"Packets processed: (\d+)", text)
    received = re.search(r"Packets received by libpcap: (\d+)", text)
    return int(got.group(1)) if got else 0, int(received.group(1)) if received else 0


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_softflowd_v9_and_ipfix_flows_match_the_traffic(lab: Lab, tmp_path: Path):
    exporters = [Exporter("v9", ["-v", "9"]), Exporter("ipfix", ["-v", "10"]),
                 Exporter("ipfix-milli", ["-v", "10", "-A", "milli"]),
                 Exporter("v9-keep", ["-v", "9"], keep=True)]
    server = None
    try:
        for e in exporters:
            # one batch per exporter (handed over at stop), so every probe meets its reply
            e.listener = NetflowListener(e.batches.append, port=0, batch_records=1_000_000,
                                         batch_seconds=3600, keep_replies=e.keep).start()
            e.ctl = str(tmp_path / f"{e.name}.ctl")
            log = open(tmp_path / f"{e.name}.log", "wb")  # noqa: SIM115 - closed with the process
            e.proc = subprocess.Popen(
                ["softflowd", "-d", "-i", lab.capture_if,
                 "-n", f"127.0.0.1:{e.listener.address[1]}", *e.args,
                 "-c", e.ctl, "-p", str(tmp_path / f"{e.name}.pid")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
        for e in exporters:
            assert wait_until(lambda e=e: os.path.exists(e.ctl), 10), f"{e.name} did not start"
        server = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns_b, sys.executable, "-c", SERVER, NET4[1],
             str(OPEN_PORT), str(TCP_CONNECTIONS)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert server.stdout is not None
        assert server.stdout.readline().strip() == b"ready"  # bounded by the server's 20 s

        started = time.time()
        sent = json.loads(lab.exec_python(
            lab.ns_a, CLIENT, NET4[1], NET6[1], str(OPEN_PORT), str(CLOSED_PORT),
            str(UDP_PORT), str(TCP_CONNECTIONS), str(REFUSED), str(UDP4_PACKETS),
            str(UDP6_PACKETS), str(UDP4_SPORT), str(UDP6_SPORT)))
        finished = time.time()
        server.wait(timeout=20)

        # make sure each softflowd has processed the traffic (see the module doc)
        time.sleep(0.5)
        targets = {e.name: processed(e.ctl)[1] for e in exporters}
        for _ in range(MAX_FILLER_BURSTS):
            if all(processed(e.ctl)[0] >= targets[e.name] for e in exporters):
                break
            lab.exec_python(lab.ns_a, FILLER, NET4[1], str(FILLER_BURST), str(FILLER_SPORT))
            time.sleep(0.3)
        for e in exporters:
            assert processed(e.ctl)[0] >= targets[e.name], f"{e.name} never processed"
            softflowctl(e.ctl, "expire-all")

        def exported(e: Exporter) -> bool:
            assert e.listener is not None
            return e.listener.counters()["records"] >= 2 * TCP_CONNECTIONS + 2 * REFUSED + 2

        for e in exporters:
            assert wait_until(lambda e=e: exported(e), 10), f"{e.name}: no flows arrived"
    finally:
        for e in exporters:
            if e.proc is not None:
                e.proc.terminate()
                try:
                    e.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    e.proc.kill()
                    e.proc.wait(timeout=5)
            if e.listener is not None:
                e.listener.stop()
        if server is not None and server.poll() is None:
            server.kill()
            server.wait(timeout=5)

    for e in exporters:
        check_flows(e, sent, started, finished)


def check_flows(e: Exporter, sent: dict[str, list[int]], started: float,
                finished: float) -> None:
    assert e.listener is not None
    for batch in e.batches:
        validate_batch(batch)
    table = pa.Table.from_batches(e.batches)
    rows = table.to_pylist()
    srcs = format_addresses(table.column("src_hi").to_numpy(), table.column("src_lo").to_numpy())
    dsts = format_addresses(table.column("dst_hi").to_numpy(), table.column("dst_lo").to_numpy())
    for row, s, d in zip(rows, srcs, dsts, strict=True):
        row["src"], row["dst"] = s, d
    ours = [r for r in rows if r["src"] in NET4 + NET6 and r["sport"] != FILLER_SPORT
            and r["dport"] != 9]
    where = f"{e.name}: {e.listener.stats.examples}"
    # the answering side's flows are counted (their probes' outcome), never an error: the
    # refused connections' RSTs, the servers' halves of the connections, the ICMP and
    # ICMPv6 port unreachables that answered the UDP datagrams
    answers = REFUSED + TCP_CONNECTIONS + 2
    replies = {} if e.keep else {REPLY_REASON: answers}
    assert dict(e.listener.stats.skipped) == replies and not e.listener.stats.examples, where
    assert not e.listener.malformed, where
    assert e.listener.counters()["records"] == len(rows) + answers * (not e.keep), where
    notes = e.listener.decoder.notes
    assert not [k for k in notes if "export time" in k], (e.name, notes)  # real flow times
    assert notes["templates learnt"] >= 1, (e.name, notes)
    assert {r["sensor"] for r in rows} == {"127.0.0.1"} and {r["format"] for r in rows} == {
        "netflow"}

    def one(**match: object) -> dict:
        found = [r for r in ours if all(r[k] == v for k, v in match.items())]
        assert len(found) == 1, (e.name, match, found)
        return found[0]

    a, b = NET4
    for port in sent["open"]:
        probe = one(src=a, dst=b, proto=6, sport=port, dport=OPEN_PORT)
        assert 4 <= probe["packets"] <= 10, (e.name, probe)
        assert probe["tcp_flags"] & 0x12 == 0x12 and probe["outcome"] == "established"
        server = [r for r in ours if r["src"] == b and r["sport"] == OPEN_PORT
                  and r["dport"] == port]
        if e.keep:
            (reply,) = server
            assert 3 <= reply["packets"] <= 10, (e.name, reply)
        else:  # the server's half is the conversation's reply, not a probe of `port`
            assert server == [], (e.name, server)
    for port in sent["refused"]:
        probe = one(src=a, dst=b, proto=6, sport=port, dport=CLOSED_PORT)
        assert probe["tcp_flags"] == 0x02
        assert probe["outcome"] == "rejected" and probe["packets"] == 1
        # the target's RST is not a probe of the client's ephemeral port
        replies_to = [r for r in ours if r["src"] == b and r["dport"] == port]
        if e.keep:
            (reply,) = replies_to
            assert reply["tcp_flags"] & 0x04 and reply["outcome"] == "unknown", (e.name, reply)
        else:
            assert replies_to == [], (e.name, replies_to)
    # the closed UDP port answered each datagram with a port unreachable: rejected
    udp4 = one(src=a, dst=b, proto=17, sport=UDP4_SPORT, dport=UDP_PORT)
    assert udp4["packets"] == UDP4_PACKETS and udp4["tcp_flags"] is None
    assert udp4["outcome"] == "rejected", (e.name, udp4)
    udp6 = one(src=NET6[0], dst=NET6[1], proto=17, sport=UDP6_SPORT, dport=UDP_PORT)
    assert udp6["packets"] == UDP6_PACKETS and udp6["outcome"] == "rejected", (e.name, udp6)
    unreachable = [r for r in rows if r["src"] == b and r["proto"] == 1]
    unreachable6 = [r for r in rows if r["src"] == NET6[1] and r["proto"] == 58
                    and r["icmp_type"] == 1]
    if e.keep:
        assert unreachable and (unreachable[0]["icmp_type"],
                                unreachable[0]["icmp_code"]) == (3, 3)
        assert unreachable[0]["sport"] is None
        assert unreachable6 and unreachable6[0]["icmp_code"] == 4  # ICMPv6 port unreachable
    else:  # the errors are the datagrams' outcome, not ICMP "probes" from the target
        assert unreachable == [] and unreachable6 == [], (e.name, unreachable, unreachable6)
    for r in ours:  # flow start times are the traffic's, to the second
        assert started - 2 <= r["ts"].timestamp() <= finished + 2, (e.name, r)
