"""Block rules loaded by the real tools in network namespaces the test creates, and golden files.

The netns tests build their own world: two namespaces (a firewall and a client) joined
by a veth pair, with addresses from 198.18.0.0/15 (RFC 2544's benchmarking range) that
exist only inside them.  In the firewall namespace a listener accepts on two ports; the
generated nftables or iptables rules for one port are checked (``nft -c -f``,
``iptables-restore --test``), then loaded, and a connection from the client to the
blocked port must time out while the other port still connects.  Every wait is bounded,
the listener is stopped by its PID and the namespaces are deleted in a ``finally``.

pf, Cisco IOS, Windows and IPS outputs have no tool here: they are compared with golden
files under ``tests/golden/`` that were reviewed by hand against each grammar
(regenerate with ``PORTRADAR_REGEN_GOLDEN=1`` and review the diff).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portradar.assess.block_rules import FORMATS, block_spec, render_block
from portradar.assess.ips_rules import ips_rules
from portradar.errors import PortradarError

GOLDEN = Path(__file__).parent / "golden"
FW_IP, CLIENT_IP = "198.18.93.1", "198.18.93.2"
BLOCKED, OPEN = 18445, 18080
STEP_TIMEOUT = 30
LISTENER_LIFETIME = 90

SPEC = dict(scanners=["198.51.100.7", "203.0.113.0/24", "2001:db8::7"],
            expires=datetime(2005, 6, 24, tzinfo=UTC), label="MS05-027")
NOW = datetime(2005, 6, 17, tzinfo=UTC)


# --- golden files ---------------------------------------------------------------------

CASES = [(fmt, None) for fmt in FORMATS] + [
    ("pf", "em0"), ("cisco-ios", "GigabitEthernet0/0"), ("nftables", "eth0"),
    ("windows-powershell", "Ethernet")]


@pytest.mark.parametrize("fmt, iface", CASES)
def test_block_rules_golden(fmt, iface):
    spec = block_spec(445, "tcp", interface=iface, **SPEC)
    text = render_block(spec, fmt, now=NOW)
    name = f"block-445-{fmt}{'-' + iface.replace('/', '_') if iface else ''}.txt"
    _golden(name, text)


@pytest.mark.parametrize("fmt", ["suricata", "snort"])
def test_ips_rules_golden(fmt):
    text = ips_rules(445, "tcp", fmt=fmt, scanners=SPEC["scanners"], context="MS05-027")
    text += ips_rules(1434, "udp", fmt=fmt, context="MS02-039 Slammer")
    _golden(f"ips-{fmt}.rules", text)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PORTRADAR_REGEN_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; regenerate with PORTRADAR_REGEN_GOLDEN=1"
    assert text == path.read_text()


@pytest.mark.parametrize("kwargs, message", [
    ({"port": 0}, "not 1-65535"), ({"port": 65536}, "not 1-65535"),
    ({"port": "445; drop"}, "not an integer"), ({"port": True}, "not an integer"),
    ({"proto": "icmp"}, "cannot be blocked"), ({"proto": "tcp; drop"}, "cannot be blocked"),
    ({"interface": "eth0 accept"}, "not an interface"),
    ({"scanners": ["198.51.100.7; drop"]}, "not an address"),
])
def test_unsafe_input_is_refused(kwargs, message):
    args = {"port": 445, "proto": "tcp", **kwargs}
    port, proto = args.pop("port"), args.pop("proto")
    with pytest.raises(PortradarError, match=message):
        block_spec(port, proto, **args)


def test_label_cannot_break_out_of_quotes():
    spec = block_spec(445, "tcp", label='x" accept; }\n$(reboot)')
    for fmt in FORMATS:
        text = render_block(spec, fmt, now=NOW)
        assert "(x accept reboot)" in text.splitlines()[1 if fmt == "nftables" else 0]
        assert "accept; }" not in text and "$(" not in text and "(reboot" not in text


# --- real tools in namespaces --------------------------------------------------------

LISTENER = f"""
import socket, time
socks = []
for port in ({BLOCKED}, {OPEN}):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("{FW_IP}", port))
    s.listen(16)
    s.setblocking(False)
    socks.append(s)
print("ready", flush=True)
deadline = time.monotonic() + {LISTENER_LIFETIME}
while time.monotonic() < deadline:
    for s in socks:
        try:
            conn, _ = s.accept()
            conn.close()
        except OSError:
            pass
    time.sleep(0.02)
"""

PROBE = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1.5)"


def _run(*args: str, check: bool = True, stdin: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=STEP_TIMEOUT,
                          check=check, input=stdin)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("needs the ip tool")
    tag = f"{os.getpid() % 100000}"
    fw, client = f"prfw{tag}", f"prcl{tag}"
    created: list[str] = []
    listener = None
    try:
        for ns in (fw, client):
            r = _run("ip", "netns", "add", ns, check=False)
            if r.returncode:
                pytest.skip(f"cannot create a network namespace: {r.stderr.strip()}")
            created.append(ns)
        _run("ip", "link", "add", f"vf{tag}", "netns", fw, "type", "veth", "peer", "name",
             f"vc{tag}", "netns", client)
        for ns, dev, ip in ((fw, f"vf{tag}", FW_IP), (client, f"vc{tag}", CLIENT_IP)):
            _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ip}/30", "dev", dev)
            _run("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
            _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        listener = subprocess.Popen(["ip", "netns", "exec", fw, sys.executable, "-c",
                                     LISTENER], stdout=subprocess.PIPE, text=True)
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"
        yield fw, client
    finally:
        if listener is not None and listener.poll() is None:
            listener.terminate()
            try:
                listener.wait(timeout=5)
            except subprocess.TimeoutExpired:
                listener.kill()
                listener.wait(timeout=5)
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=STEP_TIMEOUT)


def _connects(client: str, port: int) -> bool:
    r = subprocess.run(["ip", "netns", "exec", client, sys.executable, "-c", PROBE, FW_IP,
                        str(port)], capture_output=True, timeout=STEP_TIMEOUT)
    return r.returncode == 0


def _load(fw: str, path: Path, check: list[str], load: list[str]) -> None:
    r = _run("ip", "netns", "exec", fw, *check, str(path), check=False)
    assert r.returncode == 0, r.stderr
    r = _run("ip", "netns", "exec", fw, *load, stdin=path.read_text(), check=False)
    assert r.returncode == 0, r.stderr


@pytest.mark.netns
def test_nftables_rules_block_the_port(namespaces, tmp_path):
    if shutil.which("nft") is None:
        pytest.skip("needs nft")
    fw, client = namespaces
    assert _connects(client, BLOCKED) and _connects(client, OPEN)
    path = tmp_path / "block.nft"
    path.write_text(render_block(block_spec(BLOCKED, "tcp", interface=None), "nftables"))
    _load(fw, path, ["nft", "-c", "-f"], ["nft", "-f", "-"])
    assert not _connects(client, BLOCKED)
    assert _connects(client, OPEN)
    # loading again replaces the table (no duplicate rules)
    _load(fw, path, ["nft", "-c", "-f"], ["nft", "-f", "-"])
    listing = _run("ip", "netns", "exec", fw, "nft", "list", "table", "inet",
                   "portradar_block").stdout
    assert listing.count(f"tcp dport {BLOCKED}") == 2  # input and forward


@pytest.mark.netns
def test_nftables_scanner_blocklist_with_timeout(namespaces, tmp_path):
    if shutil.which("nft") is None:
        pytest.skip("needs nft")
    fw, client = namespaces
    now = datetime.now(tz=UTC)
    spec = block_spec(BLOCKED, "tcp", scanners=[CLIENT_IP], expires=now + timedelta(hours=1))
    path = tmp_path / "scanners.nft"
    path.write_text(render_block(spec, "nftables", now=now))
    _load(fw, path, ["nft", "-c", "-f"], ["nft", "-f", "-"])
    assert not _connects(client, OPEN)  # the scanner is blocked on every port
    listing = _run("ip", "netns", "exec", fw, "nft", "list", "set", "inet", "portradar_block",
                   "scanners_v4").stdout
    assert CLIENT_IP in listing and "expires" in listing


@pytest.mark.netns
def test_iptables_rules_block_the_port(namespaces, tmp_path):
    if shutil.which("iptables-restore") is None:
        pytest.skip("needs iptables-restore")
    fw, client = namespaces
    assert _connects(client, BLOCKED)
    path = tmp_path / "block.rules"
    spec = block_spec(BLOCKED, "tcp", scanners=["198.51.100.7"],
                      expires=datetime.now(tz=UTC) + timedelta(days=7))
    path.write_text(render_block(spec, "iptables"))
    _load(fw, path, ["iptables-restore", "--test"], ["iptables-restore", "--noflush"])
    assert not _connects(client, BLOCKED)
    assert _connects(client, OPEN)
    rules = _run("ip", "netns", "exec", fw, "iptables", "-S", "PORTRADAR-BLOCK").stdout
    assert f"--dport {BLOCKED}" in rules and "198.51.100.7" in rules


@pytest.mark.netns
def test_golden_nftables_and_iptables_files_pass_the_real_checkers(namespaces):
    fw, _ = namespaces
    checks = {"nftables": ["nft", "-c", "-f"], "iptables": ["iptables-restore", "--test"],
              "ip6tables": ["ip6tables-restore", "--test"]}
    for path in sorted(GOLDEN.glob("block-445-*tables*.txt")):
        tool = next(k for k in ("ip6tables", "iptables", "nftables") if k in path.name)
        if shutil.which(checks[tool][0]) is None:
            continue
        r = _run("ip", "netns", "exec", fw, *checks[tool], str(path), check=False)
        assert r.returncode == 0, (path.name, r.stderr)
