"""Format sniffing stays unambiguous with the vendor readers registered.

Every sample file of the shared data sniffs to its reader (netfilter files stay
``iptables``), no vendor reader claims a file of another format, and each vendor
format's lines are claimed by its own reader only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import DATA

from portradar.ingest.opener import open_input
from portradar.ingest.registry import get_reader
from portradar.ingest.sniff import MIN_CONFIDENCE, sniff_format

VENDOR_READERS = ("cisco_asa", "juniper_srx", "netscreen", "mikrotik", "palo_alto", "fortigate",
                  "cef")

#: Sample directory (CrowdSec hub test name, or the psad scans) → the reader it is for.
EXPECTED = {
    "iptables-scan-multi-port": "iptables", "iptables-logs": "iptables",
    "proxmox-iptables-logs": "iptables", "unifi-logs": "iptables", "psad-iptables": "iptables",
    "mikrotik-logs": "mikrotik", "mikrotik-scan-multi_ports": "mikrotik",
    "palo-alto-threat": "palo_alto", "cef-logs": "cef", "unifi-cef": "cef",
}

SKIP_SUFFIXES = (".yaml", ".assert", ".txt", ".md", ".rb", ".py", ".pl", ".json", ".csv")


def sample_files() -> list[Path]:
    files = []
    for base in ("formats", "scans"):
        root = DATA / base
        if not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            if (not path.is_file() or path.name == "LICENSE" or path.suffix in SKIP_SUFFIXES
                    or {"parsers", "scenarios", "patterns"} & set(path.parts)):
                continue
            files.append(path)
    return files


def head_of(path: Path) -> bytes:
    opened = open_input(path)
    try:
        return opened.head
    finally:
        opened.close()


def expected_reader(path: Path) -> str | None:
    for part in reversed(path.parts):
        if part in EXPECTED:
            return EXPECTED[part]
    return None


FILES = sample_files()


@pytest.mark.skipif(not FILES, reason="shared sample data not found")
@pytest.mark.parametrize("path", FILES, ids=lambda p: "/".join(p.parts[-2:]))
def test_sample_file_sniffs_to_its_reader(path):
    head = head_of(path)
    want = expected_reader(path)
    if want is not None:
        assert sniff_format(head, name=str(path)) == want
    for name in VENDOR_READERS:
        if name != want:
            assert get_reader(name).sniff(head) < MIN_CONFIDENCE, name


LINES = {
    "cisco_asa": 'Jun 21 2023 10:00:00 fw1 : %ASA-4-106023: Deny tcp src outside:1.2.3.4/5555 '
                 'dst inside:10.0.0.1/445 by access-group "outside_in" [0x0, 0x0]',
    "juniper_srx": "Sep 29 23:49:20 SRX-1 RT_FLOW: RT_FLOW_SESSION_DENY: session denied "
                   "10.0.0.1/54924->192.168.1.1/53 junos-dns-udp 17(0) default-deny(global) "
                   "trust trust UNKNOWN UNKNOWN N/A(N/A) ge-0/0/0.0 UNKNOWN policy deny",
    "netscreen": 'Jun  2 14:53:31 fire00 aka1: NetScreen device_id=aka1  [Root]system-'
                 'notification-00257(traffic): start_time="2006-06-02 14:53:30" duration=0 '
                 "policy_id=120 service=udp/port:17210 proto=17 src zone=Trust dst zone=DMZ "
                 "action=Deny sent=0 rcvd=0 src=192.168.2.2 dst=1.2.3.4 src_port=53 "
                 "dst_port=17210",
    "mikrotik": "Mar 18 20:35:05 gw firewall,info drop-in input: in:ether1 out:(unknown 0), "
                "proto TCP (SYN), 36.97.161.219:59388->81.82.202.145:23, len 40",
    "palo_alto": "<14>Jun 21 10:00:00 PA-VM 1,2023/06/21 10:00:00,0128,TRAFFIC,drop,2560,"
                 "2023/06/21 10:00:00,198.51.100.7,192.0.2.10,0.0.0.0,0.0.0.0,deny-all,,,"
                 "not-applicable,vsys1,untrust,trust,ethernet1/1,,fwd,2023/06/21 10:00:00,0,1,"
                 "4444,445,0,0,0x0,tcp,deny,60,60,0,1",
    "fortigate": 'date=2023-06-21 time=10:00:00 devname="FGT60E" logid="0000000013" '
                 'type="traffic" subtype="forward" srcip=198.51.100.7 srcport=4444 '
                 'dstip=192.0.2.10 dstport=445 proto=6 action="deny" policyid=0',
    "cef": "Jun 21 10:00:00 fw CEF:0|Ubiquiti|UniFi Network|9.4.19|201|Threat Detected and "
           "Blocked|7|proto=TCP src=198.51.100.7 spt=4444 dst=192.0.2.10 dpt=445",
    "iptables": "Nov 26 10:00:00 fw kernel: [UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.7 "
                "DST=192.0.2.10 LEN=44 TTL=240 ID=1 PROTO=TCP SPT=4444 DPT=445 SYN URGP=0",
}


@pytest.mark.parametrize("fmt", sorted(LINES))
def test_each_format_is_claimed_by_its_reader_only(fmt):
    head = (LINES[fmt] + "\n") * 3
    assert sniff_format(head.encode()) == fmt
    for name in VENDOR_READERS:
        if name != fmt:
            assert get_reader(name).sniff(head.encode()) < MIN_CONFIDENCE, name
