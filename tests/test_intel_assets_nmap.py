"""Assets: nmap XML from a real ``nmap -oX`` against a test namespace, and the asset CSV.

The nmap test builds its own world: a scanner namespace and a target namespace joined by
a veth pair, addresses from 198.18.0.0/15 (RFC 2544's benchmarking range) that exist only
there.  The target has two addresses with listeners on different ports; a third address
of the subnet has no host.  ``nmap -sT`` (bounded: three addresses, five ports, host
timeout) writes XML that must import as exactly the two live hosts with their open ports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from portradar.intel.assets import import_assets, list_assets
from portradar.intel.exposure import port_exposure

SCANNER_IP = "198.18.94.1"
TARGETS = {"198.18.94.2": (18001, 18002), "198.18.94.3": (18003,)}
ABSENT = "198.18.94.4"
PORTS = "18001-18005"
STEP_TIMEOUT = 60

LISTENER = """
import socket, sys, time
socks = []
for spec in sys.argv[1:]:
    ip, port = spec.split(":")
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, int(port))); s.listen(16); s.setblocking(False); socks.append(s)
print("ready", flush=True)
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    for s in socks:
        try:
            c, _ = s.accept(); c.close()
        except OSError:
            pass
    time.sleep(0.02)
"""


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=STEP_TIMEOUT,
                          check=check)


@pytest.mark.netns
def test_real_nmap_xml_imports_hosts_and_open_ports(store, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    if shutil.which("ip") is None or shutil.which("nmap") is None:
        pytest.skip("needs ip and nmap")
    tag = f"{os.getpid() % 100000}"
    scan_ns, target_ns = f"prns{tag}", f"prnt{tag}"
    created: list[str] = []
    listener = None
    xml = tmp_path / "scan.xml"
    try:
        for ns in (scan_ns, target_ns):
            if _run("ip", "netns", "add", ns, check=False).returncode:
                pytest.skip("cannot create a network namespace")
            created.append(ns)
        _run("ip", "link", "add", f"vs{tag}", "netns", scan_ns, "type", "veth", "peer", "name",
             f"vt{tag}", "netns", target_ns)
        _run("ip", "netns", "exec", scan_ns, "ip", "addr", "add", f"{SCANNER_IP}/29", "dev",
             f"vs{tag}")
        for ip in TARGETS:
            _run("ip", "netns", "exec", target_ns, "ip", "addr", "add", f"{ip}/29", "dev",
                 f"vt{tag}")
        for ns, dev in ((scan_ns, f"vs{tag}"), (target_ns, f"vt{tag}")):
            _run("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
            _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        specs = [f"{ip}:{p}" for ip, ports in TARGETS.items() for p in ports]
        listener = subprocess.Popen(["ip", "netns", "exec", target_ns, sys.executable, "-c",
                                     LISTENER, *specs], stdout=subprocess.PIPE, text=True)
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        _run("ip", "netns", "exec", scan_ns, "nmap", "-n", "-sT", "-p", PORTS,
             "--host-timeout", "30s", "--max-retries", "1", "-oX", str(xml), *TARGETS, ABSENT)
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
    summary = import_assets(store, xml)
    assert summary["format"] == "nmap"
    assert summary["hosts"] == 2
    hosts = {r["host"]: r["open_ports"] for r in list_assets(store)}
    assert hosts == {"198.18.94.2": "18001 18002", "198.18.94.3": "18003"}
    # the declared exposure of a port follows
    exp = port_exposure(store, 18003, 6)
    assert [h.host for h in exp.hosts] == ["198.18.94.3"] and exp.hosts[0].declared


def test_asset_csv_replaces_hosts_and_counts_bad_rows(store, tmp_path):
    f = tmp_path / "assets.csv"
    f.write_text("Host,Open_Ports,OS,Installed_Patches\n"
                 "192.0.2.10,445;139;udp/137,Windows 2000,KB896422;MS05-027\n"
                 "not-an-ip,445,,\n"
                 "192.0.2.11,tcp/3389;99999,Windows XP,\n")
    r = import_assets(store, f)
    assert (r["hosts"], r["open_ports"], r["patches"], r["skipped"]) == (2, 4, 2, 2)
    f.write_text("host,open_ports,os,installed_patches\n192.0.2.10,22,Linux,\n")
    import_assets(store, f)
    rows = {x["host"]: x for x in list_assets(store)}
    assert rows["192.0.2.10"]["open_ports"] == "22" and rows["192.0.2.10"]["patches"] is None
    assert rows["192.0.2.11"]["open_ports"] == "3389"


def test_not_nmap_xml_is_a_clear_error(store, tmp_path):
    from portradar.errors import FormatError

    f = tmp_path / "x.xml"
    f.write_text("<html><body>no</body></html>")
    with pytest.raises(FormatError, match="not nmap XML"):
        import_assets(store, f)
    f.write_text("<nmaprun><host>")
    with pytest.raises(FormatError, match="not well-formed"):
        import_assets(store, f)
