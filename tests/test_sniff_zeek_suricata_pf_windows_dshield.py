"""Format sniffing stays unambiguous with the Zeek, Suricata, pf, Windows and DShield readers.

Every sample file of the shared data sniffs to the reader it was written for (the psad
netfilter captures stay ``iptables``) and none of these five readers claims a file of
another format; samples of each of the five formats, in every variant the readers
accept, are claimed by their own reader only.  The generic table reader is never
chosen by sniffing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DATA, PSAD, need

from portradar.ingest.opener import open_input
from portradar.ingest.registry import all_readers, get_reader
from portradar.ingest.sniff import MIN_CONFIDENCE, sniff_format

READERS = ("zeek_conn", "suricata_eve", "pf_filterlog", "windows_firewall", "dshield",
           "generic")

#: Shared sample directories of these formats → their reader.
OWN = {"pf-logs": "pf_filterlog", "pf-scan-multi-port": "pf_filterlog",
       "pfsense-rfc5424-filterlog": "pf_filterlog", "suricata-logs-evelog": "suricata_eve",
       "suricata-eve-detect": "suricata_eve"}

ZEEK_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
               "service", "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig",
               "local_resp", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes",
               "resp_pkts", "resp_ip_bytes", "tunnel_parents"]
ZEEK_LINE = ("1602165198.216970\tC1\t192.168.122.59\t47340\t143.204.201.102\t443\ttcp\t-\t"
             "1.5\t0\t6238\tSF\tT\tF\t0\tShADadfF\t1\t52\t21\t5091\t-")

SAMPLES = {
    "zeek_conn": [
        "#separator \\x09\n#path\tconn\n#fields\t" + "\t".join(ZEEK_FIELDS) + "\n"
        + ZEEK_LINE + "\n",
        ZEEK_LINE + "\n" + ZEEK_LINE.replace("SF", "S0") + "\n",
        json.dumps({"ts": 1.5, "uid": "C1", "id.orig_h": "1.2.3.4", "id.orig_p": 1,
                    "id.resp_h": "5.6.7.8", "id.resp_p": 22, "proto": "tcp",
                    "conn_state": "S0"}) + "\n",
    ],
    "suricata_eve": [
        json.dumps({"timestamp": "2024-01-01T00:00:00+0000", "event_type": "flow",
                    "src_ip": "1.2.3.4", "dest_ip": "5.6.7.8", "proto": "TCP"}) + "\n",
    ],
    "pf_filterlog": [
        "Sep 28 10:38:24 filterlog: 53,,,1000102631,em0,match,block,in,4,0x0,,64,600,0,none,6,"
        "tcp,44,10.0.2.2,10.0.2.15,53792,22,0,S,31552001,,65535,,mss\n",
        "Mar 16 15:23:09.532917 rule 46/(match) pass in on fxp0: 10.0.0.1.46523 > "
        "10.0.0.2.22: S 4049875345:4049875345(0) win 16384\n",
    ],
    "windows_firewall": [
        "#Version: 1.5\n#Software: Microsoft Windows Firewall\n#Time Format: Local\n"
        "#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags "
        "tcpsyn tcpack tcpwin icmptype icmpcode info path\n\n"
        "2024-01-15 10:00:00 DROP TCP 198.51.100.7 192.0.2.10 4444 445 52 S 1 0 8192 - - - "
        "RECEIVE\n",
        "2024-01-15 10:00:00 DROP TCP 198.51.100.7 192.0.2.10 4444 445 52 S 1 0 8192 - - - "
        "RECEIVE\n",
    ],
    "dshield": [
        "2004-04-07 13:45:12 -05:00\t12345\t1\t198.51.100.7\t4444\t192.0.2.10\t445\tTCP\tS\n",
        "Subject: FORMAT DSHIELD USERID 0 TZ +00:00\n\n"
        "2004-04-07 13:45:12 +00:00\t0\t1\t198.51.100.7\t8\t192.0.2.10\t0\tICMP\n",
    ],
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


def test_readers_are_registered():
    names = {r.name for r in all_readers()}
    assert set(READERS) <= names
    for name in READERS:
        assert get_reader(name).name == name


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shared_samples_sniff_to_their_own_reader(path):
    head = head_of(path)
    if not head.strip():
        pytest.skip("empty sample")
    own = next((OWN[part] for part in reversed(path.parts) if part in OWN), None)
    for name in READERS:
        if name != own:
            assert get_reader(name).sniff(head) < MIN_CONFIDENCE, name
    if own is not None:
        assert sniff_format(head, name=str(path)) == own


def test_psad_captures_still_sniff_as_iptables():
    files = sorted(need(PSAD).iterdir())
    assert len(files) == 25
    for path in files:
        assert sniff_format(head_of(path), name=path.name) == "iptables", path.name


@pytest.mark.parametrize(("fmt", "text"), [(fmt, text) for fmt, texts in SAMPLES.items()
                                            for text in texts])
def test_each_variant_is_claimed_by_its_reader_only(fmt, text):
    head = text.encode()
    assert sniff_format(head) == fmt
    for reader in all_readers():
        if reader.name != fmt:
            assert reader.sniff(head) < MIN_CONFIDENCE, reader.name
