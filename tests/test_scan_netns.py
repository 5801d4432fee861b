"""Real scanners against a namespace: every one found, with its type and tool; no client flagged.

The test builds its own world: a scanner namespace and a target namespace joined by a
veth pair, with addresses from 198.18.0.0/15 (RFC 2544's benchmarking range) that exist
only there.  The target runs an HTTP server (tcp/8080) and a UDP echo service
(udp/5353) and a firewall that logs every new or invalid inbound packet with iptables
``LOG`` (prefix ``...-ACCEPT`` for the two services, ``...-REJECT`` for the rest, which
is rejected with a TCP reset or an ICMP port unreachable) and ``--log-tcp-sequence``.
tcpdump captures the target's interface meanwhile.

From distinct source addresses: nmap -sS, -sT, -sF, -sN, -sX, -sU, -sA (30 to 40 ports
each, ``--max-retries 0``), a slow ``nmap -T1`` over one port of four hosts (about a
minute: one probe every 15 s), masscan (40 ports, 200 packets/s) and hping3 (40 SYNs
to incrementing ports); and two benign clients: three HTTP requests, three UDP
request / answer exchanges.

Both the capture and the log are then ingested, each into its own store, and every
scanner must be flagged with its scan type (and, from the capture, its tool), and
neither client may be.  ``LOG`` inside a namespace needs the host's
``net.netfilter.nf_log_all_netns = 1``; the test sets it and restores the old value.
Skipped cleanly without root, ``ip netns``, the tools, or kernel logging.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from portradar.ingest.pipeline import ingest_input
from portradar.ingest.reader import ReadOptions
from portradar.scan.detect import detect
from portradar.store import Store

pytestmark = pytest.mark.netns

NET = "198.18.3"
STEP_TIMEOUT = 90
TOOLS = ("ip", "nmap", "masscan", "hping3", "tcpdump", "iptables", "dmesg", "sysctl")

#: source -> (what runs, expected type, expected tools from the capture, from the log)
SCANS = {
    f"{NET}.21": ("nmap -sS", "syn", {"nmap"}, {"nmap"}),
    f"{NET}.22": ("nmap -sT", "connect", {""}, {""}),
    f"{NET}.23": ("nmap -sF", "fin", {"nmap"}, {"nmap"}),
    f"{NET}.24": ("nmap -sN", "null", {"nmap"}, {"nmap"}),
    f"{NET}.25": ("nmap -sX", "xmas", {"nmap"}, {"nmap"}),
    f"{NET}.26": ("nmap -sU", "udp", {"nmap"}, {"nmap"}),
    f"{NET}.27": ("nmap -sA", "ack", {"nmap"}, {"nmap"}),
    f"{NET}.28": ("masscan", "syn", {"masscan"}, {"masscan"}),
    f"{NET}.29": ("hping3", "syn", {"hping3"}, {"hping3"}),
    # four probes only: nmap's per-packet TTL may repeat, so the tool may stay unknown
    f"{NET}.30": ("nmap -T1", "syn", {"nmap", ""}, {"nmap", ""}),
}
BENIGN = (f"{NET}.41", f"{NET}.42")

UDP_ECHO = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.3.1", 5353)); s.settimeout(0.5)
print("ready", flush=True)
deadline = time.monotonic() + 300
while time.monotonic() < deadline:
    try:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)
    except OSError:
        pass
"""

CLIENTS = """
import http.client, socket, time
for _ in range(3):
    c = http.client.HTTPConnection("198.18.3.1", 8080, timeout=5,
                                   source_address=("198.18.3.41", 0))
    c.request("GET", "/"); c.getresponse().read(); c.close()
    time.sleep(0.2)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.3.42", 0)); s.settimeout(3)
for i in range(3):
    s.sendto(b"query %d" % i, ("198.18.3.1", 5353)); s.recvfrom(2048)
    time.sleep(0.2)
print("clients done", flush=True)
"""


def _run(*args: str, check: bool = True, timeout: float = STEP_TIMEOUT):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=check)


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Stop a process this test started (by its own handle, never by name)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class World:
    """The two namespaces, their processes and the sysctl, undone by :meth:`close`."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.scan_ns, self.target_ns = f"prss{tag}", f"prst{tag}"
        self.scan_if, self.target_if = f"vss{tag}", f"vst{tag}"
        self.prefix = f"PRS{tag}"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.old_nf_log: str | None = None

    def ns(self, which: str, *args: str, **kw):
        return _run("ip", "netns", "exec", which, *args, **kw)

    def popen(self, which: str, *args: str, **kw) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", which, *args], text=True, **kw)
        self.procs.append(proc)
        return proc

    def build(self) -> None:
        for name in (self.scan_ns, self.target_ns):
            if _run("ip", "netns", "add", name, check=False).returncode:
                pytest.skip("cannot create a network namespace")
            self.namespaces.append(name)
        _run("ip", "link", "add", self.scan_if, "netns", self.scan_ns, "type", "veth", "peer",
             "name", self.target_if, "netns", self.target_ns)
        for host in range(1, 6):
            self.ns(self.target_ns, "ip", "addr", "add", f"{NET}.{host}/24", "dev",
                    self.target_if)
        for source in (*SCANS, *BENIGN):
            self.ns(self.scan_ns, "ip", "addr", "add", f"{source}/24", "dev", self.scan_if)
        for which, dev in ((self.scan_ns, self.scan_if), (self.target_ns, self.target_if)):
            self.ns(which, "ip", "link", "set", "lo", "up")
            self.ns(which, "ip", "link", "set", dev, "up")
        self.old_nf_log = _run("sysctl", "-n", "net.netfilter.nf_log_all_netns",
                               check=False).stdout.strip() or None
        if self.old_nf_log is None:
            pytest.skip("no net.netfilter.nf_log_all_netns: LOG cannot work in a namespace")
        _run("sysctl", "-w", "net.netfilter.nf_log_all_netns=1")
        ipt = ("iptables", "-A", "INPUT", "-i", self.target_if)
        log = ("-j", "LOG", "--log-tcp-sequence", "--log-prefix")
        rules = [
            (*ipt, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"),
            (*ipt, "-p", "tcp", "--dport", "8080", *log, f"{self.prefix}-ACCEPT "),
            (*ipt, "-p", "tcp", "--dport", "8080", "-j", "ACCEPT"),
            (*ipt, "-p", "udp", "--dport", "5353", *log, f"{self.prefix}-ACCEPT "),
            (*ipt, "-p", "udp", "--dport", "5353", "-j", "ACCEPT"),
            (*ipt, *log, f"{self.prefix}-REJECT "),
            (*ipt, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"),
            (*ipt, "-j", "REJECT"),
        ]
        for rule in rules:
            if self.ns(self.target_ns, *rule, check=False).returncode:
                pytest.skip("iptables LOG/REJECT not available in a namespace")

    def close(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)
        if self.old_nf_log is not None:
            _run("sysctl", "-w", f"net.netfilter.nf_log_all_netns={self.old_nf_log}",
                 check=False)
        for name in self.namespaces:
            _run("ip", "netns", "del", name, check=False)


def _target_mac(world: World) -> str:
    return world.ns(world.target_ns, "cat", f"/sys/class/net/{world.target_if}/address"
                    ).stdout.strip()


def _scan_commands(world: World) -> list[list[str]]:
    nmap = ["nmap", "-n", "-Pn", "--max-retries", "0", "--host-timeout", "60s", "-e",
            world.scan_if]
    return [
        [*nmap, "-sS", "-S", f"{NET}.21", "-p", "1-40", f"{NET}.2"],
        [*nmap, "-sT", "-S", f"{NET}.22", "-p", "8060-8099", f"{NET}.1"],
        [*nmap, "-sF", "-S", f"{NET}.23", "-p", "1-30", f"{NET}.3"],
        [*nmap, "-sN", "-S", f"{NET}.24", "-p", "1-30", f"{NET}.3"],
        [*nmap, "-sX", "-S", f"{NET}.25", "-p", "1-30", f"{NET}.3"],
        [*nmap, "-sU", "-S", f"{NET}.26", "-p", "1-30", "--min-rate", "100", f"{NET}.4"],
        [*nmap, "-sA", "-S", f"{NET}.27", "-p", "1-30", f"{NET}.4"],
        ["masscan", f"{NET}.5", "-p1-40", "--rate", "200", "--wait", "1", "--source-ip",
         f"{NET}.28", "--adapter", world.scan_if, "--router-mac", _target_mac(world)],
        ["hping3", "-S", "-p", "++1", "-c", "40", "-i", "u20000", "-a", f"{NET}.29",
         f"{NET}.5"],
    ]


def _kernel_log(world: World, path) -> datetime:
    """Our LOG lines from the kernel ring buffer into ``path``; returns the boot time."""
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    boot = datetime.fromtimestamp(time.time() - uptime, tz=UTC)
    out = _run("dmesg").stdout
    lines = [ln for ln in out.splitlines() if f"{world.prefix}-" in ln]
    path.write_text("".join(ln + "\n" for ln in lines))
    return boot


def _verdicts(path, options: ReadOptions | None = None) -> dict[str, dict]:
    with Store.open(path.with_suffix(".duckdb")) as store:
        result = ingest_input(store, path, options=options)
        assert result.status == "ingested", result.message
        detect(store)
        cur = store.con.execute("SELECT * FROM scanners WHERE prefix = 128")
        names = [d[0] for d in cur.description]
        return {r[names.index("source")]: dict(zip(names, r, strict=True))
                for r in cur.fetchall()}


def _check(found: dict[str, dict], which: int, label: str) -> None:
    problems = []
    for source, (what, kind, *tools) in SCANS.items():
        row = found.get(source)
        if row is None:
            problems.append(f"{what} ({source}) not flagged")
            continue
        if row["status"] != "scanner":
            problems.append(f"{what}: status {row['status']}")
        if row["type"] != kind:
            problems.append(f"{what}: type {row['type']!r}, expected {kind!r}")
        if row["tool"] not in tools[which]:
            problems.append(f"{what}: tool {row['tool']!r}, expected {tools[which]}")
    for source in BENIGN:
        if source in found:
            problems.append(f"benign client {source} flagged: {found[source]['evidence']}")
    assert not problems, f"{label}: " + "; ".join(problems)


def test_real_scanners_are_found_with_type_and_tool(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install nmap masscan hping3 tcpdump "
                    "iptables)")
    world = World(f"{os.getpid() % 100000}")
    pcap = tmp_path / "target.pcap"
    log = tmp_path / "target.log"
    try:
        world.build()
        capture = world.popen(world.target_ns, "tcpdump", "-i", world.target_if, "-U", "-n",
                              "-w", str(pcap), "ip", stderr=subprocess.PIPE)
        assert capture.stderr is not None
        line = capture.stderr.readline()  # "listening on ...": capture is running
        if "listening" not in line:
            pytest.skip(f"tcpdump cannot capture in a namespace: {line.strip()}")
        http = world.popen(world.target_ns, sys.executable, "-m", "http.server", "8080",
                           "--bind", f"{NET}.1", stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        echo = world.popen(world.target_ns, sys.executable, "-c", UDP_ECHO,
                           stdout=subprocess.PIPE)
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        ready = ("import socket; socket.create_connection(('198.18.3.1', 8080), 1, "
                 "source_address=('198.18.3.41', 0))")  # as the benign HTTP client
        while world.ns(world.scan_ns, sys.executable, "-c", ready, check=False).returncode \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert http.poll() is None
        slow = world.popen(world.scan_ns, "nmap", "-n", "-Pn", "-T1", "--max-retries", "0",
                           "--host-timeout", "150s", "-e", world.scan_if, "-S", f"{NET}.30",
                           "-p", "81", f"{NET}.2", f"{NET}.3", f"{NET}.4", f"{NET}.5",
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for command in _scan_commands(world):
            world.ns(world.scan_ns, *command, check=False)
        out = world.ns(world.scan_ns, sys.executable, "-c", CLIENTS).stdout
        assert "clients done" in out
        slow.wait(timeout=200)
        time.sleep(1)
        _stop(capture, signal.SIGINT)
        boot = _kernel_log(world, log)
    finally:
        world.close()
    assert pcap.stat().st_size > 0
    assert log.stat().st_size > 0, "no LOG lines reached the kernel log"
    from_capture = _verdicts(pcap)
    _check(from_capture, 0, "pcap")
    from_log = _verdicts(log, ReadOptions(boot_time=boot, tz="UTC"))
    _check(from_log, 1, "iptables log")
    # what only a capture shows: answers (the connect scan reached the open port), and
    # the target's own answers (resets, port unreachables) are replies, not backscatter
    assert from_capture[f"{NET}.22"]["answered"] >= 1
    assert [s for s, r in from_capture.items() if r["status"] == "backscatter"] == []
