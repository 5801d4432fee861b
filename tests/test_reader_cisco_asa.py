"""The Cisco ASA / PIX / FWSM reader against logstash-patterns-core's samples and Cisco's formats.

Ground truth: every Cisco sample message of ``spec/patterns/firewalls_spec.rb``
(logstash-plugins/logstash-patterns-core, Apache-2.0; the expected values below are
transcribed from that spec, the line of each sample is noted) parses to the fields the
spec expects, where they map onto the event schema.  Deliberate differences, explained
in ``portradar.ingest.cisco_asa``: for ``Built outbound`` connections and inbound ICMP
the source is the initiator (the spec always takes the first address); "on interface X"
is the interface the packet arrived on, so ``in_iface`` (the spec files it as egress);
NAT translation records (305011) and messages without a connection are skipped with a
reason instead of becoming events.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from conftest import DATA, need
from line_reader_fuzz import fuzz_tests
from logstash_spec import spec_messages

from portradar.errors import FormatError
from portradar.events.addresses import key_to_text
from portradar.ingest.cisco_asa import CiscoAsaReader
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.sniff import sniff_format

SPEC = DATA / "formats" / "logstash-patterns" / "spec" / "patterns" / "firewalls_spec.rb"
OPTS = ReadOptions(tz="UTC", year=2023)
HEADER = "Jun 21 2023 10:00:00 fw1 : "

# spec message -> (message id when the sample has no tag, expected event or skip reason)
# Transcribed from firewalls_spec.rb (logstash-patterns-core, Apache-2.0).
SPEC_EXPECTED: dict[str, tuple[str | None, dict[str, object] | str]] = {
    # line 9, CISCOFW104001: failover, no connection
    "(Secondary) Switching to ACTIVE - Service card in other unit has failed":
        ("104001", "ASA message 104001 describes no connection"),
    # line 23, CISCOFW106001
    "ASA-2-106001: Inbound TCP connection denied from 192.168.2.2/43803 to 10.10.10.10/14322 "
    "flags SYN on interface out111":
        (None, {"src": "192.168.2.2", "sport": 43803, "dst": "10.10.10.10", "dport": 14322,
                "proto": 6, "tcp_flags": 2, "in_iface": "out111", "outcome": "blocked"}),
    # line 46, CISCOFW106006_106007_106010
    "ASA-2-106006: Deny inbound UDP from 192.168.2.2/65020 to 10.10.10.10/65021 on interface "
    "fw111":
        (None, {"src": "192.168.2.2", "sport": 65020, "dst": "10.10.10.10", "dport": 65021,
                "proto": 17, "in_iface": "fw111", "outcome": "blocked"}),
    # line 69, CISCOFW106014
    "ASA-3-106014: Deny inbound icmp src fw111:10.10.10.10 dst fw111:10.10.10.11(type 8, code 0)":
        (None, {"src": "10.10.10.10", "dst": "10.10.10.11", "proto": 1, "icmp_type": 8,
                "icmp_code": 0, "in_iface": "fw111", "out_iface": "fw111",
                "outcome": "blocked"}),
    # line 92, CISCOFW106015
    "Deny TCP (no connection) from 192.168.150.65/2278 to 64.101.128.83/80 flags RST on "
    "interface eth0":
        ("106015", {"src": "192.168.150.65", "sport": 2278, "dst": "64.101.128.83",
                    "dport": 80, "proto": 6, "tcp_flags": 4, "in_iface": "eth0",
                    "outcome": "blocked"}),
    # line 112, CISCOFW106021
    "ASA-4-106021: Deny TCP reverse path check from 192.168.2.2 to 10.10.10.10 on interface fw111":
        (None, {"src": "192.168.2.2", "dst": "10.10.10.10", "proto": 6, "sport": None,
                "in_iface": "fw111", "outcome": "blocked"}),
    # line 134, CISCOFW106100
    "access-list inside permitted tcp inside/10.10.123.45(51763) -> outside/192.168.67.89(80) "
    "hit-cnt 1 first hit [0x62c4905, 0x0]":
        ("106100", {"src": "10.10.123.45", "sport": 51763, "dst": "192.168.67.89", "dport": 80,
                    "rule": "inside", "in_iface": "inside", "out_iface": "outside",
                    "packets": 1, "outcome": "accepted"}),
    # line 154, CISCOFW106100
    "access-list outside-entry permitted tcp outside/10.11.12.13(54726) -> "
    "inside/192.168.17.18(80) hit-cnt 1 300-second interval [0x32b3835, 0x0]":
        ("106100", {"src": "10.11.12.13", "sport": 54726, "dst": "192.168.17.18", "dport": 80,
                    "rule": "outside-entry", "outcome": "accepted"}),
    # line 174, CISCOFW106023
    'Deny tcp src outside:192.168.1.1/50240 dst inside:192.168.1.2/23 by access-group '
    '"S_OUTSIDE_TO_INSIDE" [0x54c7fa80, 0x0]':
        ("106023", {"src": "192.168.1.1", "sport": 50240, "dst": "192.168.1.2", "dport": 23,
                    "proto": 6, "in_iface": "outside", "out_iface": "inside",
                    "rule": "S_OUTSIDE_TO_INSIDE", "outcome": "blocked"}),
    # line 196, CISCOFW106023 with a protocol number
    'Deny protocol 103 src outside:192.168.1.1/50240 dst inside:192.168.1.2/23 by access-group '
    '"S_OUTSIDE_TO_INSIDE" [0x54c7fa80, 0x0]':
        ("106023", {"src": "192.168.1.1", "dst": "192.168.1.2", "dport": 23, "proto": 103,
                    "in_iface": "outside", "out_iface": "inside",
                    "rule": "S_OUTSIDE_TO_INSIDE", "outcome": "blocked"}),
    # line 217, CISCOFW106023 with a host name: not an address, the event cannot be stored
    'Deny tcp src outside:192.168.1.1/50240 dst inside:www.example.com/23 by access-group '
    '"S_OUTSIDE_TO_INSIDE" [0x54c7fa80, 0x0]':
        ("106023", "destination address is not an IPv4 or IPv6 address"),
    # line 240, CISCOFW304001: URL logging, no connection event
    "10.20.30.40(DOMAIN\\login) Accessed URL 10.11.12.13:http://example.org/":
        ("304001", "ASA message 304001 describes no connection"),
    # line 260, CISCOFW110002: the sample's destination port 123412 is not a port
    "ASA-6-110002: Failed to locate egress interface for TCP from "
    "sourceInterfaceName:91.240.17.178/7777 to 192.168.2.2/123412":
        (None, "dport out of range (0-65535)"),
    # line 281, CISCOFW302013: outbound, so the initiator (second side) is the source
    "ASA-6-302013: Built outbound TCP connection 11757 for outside:100.66.205.104/80 "
    "(100.66.205.104/80) to inside:172.31.98.44/1772 (172.31.98.44/1772)":
        (None, {"src": "172.31.98.44", "sport": 1772, "dst": "100.66.205.104", "dport": 80,
                "proto": 6, "in_iface": "inside", "out_iface": "outside",
                "outcome": "accepted"}),
    # line 300, CISCOFW302020: inbound ICMP, the foreign address started it
    "302020: Built inbound ICMP connection for faddr 10.137.200.251/18425 gaddr 10.137.10.1/0 "
    "laddr 10.137.10.10/0":
        (None, {"src": "10.137.200.251", "dst": "10.137.10.10", "proto": 1, "icmp_type": 0,
                "sport": None, "outcome": "accepted"}),
    # line 318, CISCOFW302021, with the ASA's own "sev|timestamp|" framing
    "6|Nov 28 2014 12:59:03|302021: Teardown ICMP connection for faddr 10.137.200.251/18425 "
    "gaddr 10.137.10.1/0 laddr 10.137.10.10/0":
        (None, {"src": "10.137.200.251", "dst": "10.137.10.10", "proto": 1,
                "outcome": "established",
                "ts": datetime(2014, 11, 28, 12, 59, 3, tzinfo=UTC)}),
    # line 336, CISCOFW305011: NAT translation, skipped on purpose
    "Built dynamic TCP translation from inside:172.31.98.44/1772 to outside:100.66.98.44/8256":
        ("305011", "ASA message 305011 is a NAT translation, not a connection"),
    # line 357, CISCOFW313001: ICMP to the firewall itself, no destination address
    "ASA-3-313001: Denied ICMP type=3, code=3 from 10.2.3.5 on interface Outside":
        (None, {"src": "10.2.3.5", "dst": "0.0.0.0", "proto": 1, "icmp_type": 3,
                "icmp_code": 3, "in_iface": "Outside", "outcome": "blocked"}),
    # line 374, CISCOFW313005
    "No matching connection for ICMP error message: icmp src fw111:10.192.33.100 dst "
    "fw111:192.18.4.1 (type 3, code 3) on fw111 interface. Original IP payload: udp src "
    "192.18.4.1/53 dst 8.8.8.8/10872.":
        ("313005", {"src": "10.192.33.100", "dst": "192.18.4.1", "proto": 1, "icmp_type": 3,
                    "icmp_code": 3, "in_iface": "fw111", "out_iface": "fw111",
                    "outcome": "blocked"}),
    # line 404, CISCOFW402117
    "%ASA-4-402117: IPSEC: Received a non-IPSec packet (protocol= ICMP) from 10.5.1.127 to "
    "192.168.6.102.":
        (None, {"src": "10.5.1.127", "dst": "192.168.6.102", "proto": 1,
                "outcome": "blocked"}),
    # line 424, CISCOFW402119: ESP anti-replay failure of a VPN peer, no probe
    "%ASA-4-402119: IPSEC: Received an ESP packet (SPI= 0x1B86506B, sequence number= 0x28B) "
    "from 68.18.122.4 (user= Bangalo) to 10.10.1.1 that failed anti-replay checking.":
        (None, "ASA message 402119 describes no connection"),
    # line 450, CISCOFW419001
    "%ASA-4-419001: Dropping TCP packet from outside:65.55.184.155/80 to "
    "inside:192.168.10.11/49043, reason: MSS exceeded, MSS 1380, data 1460":
        (None, {"src": "65.55.184.155", "sport": 80, "dst": "192.168.10.11", "dport": 49043,
                "proto": 6, "in_iface": "outside", "out_iface": "inside",
                "outcome": "blocked"}),
    # line 480, CISCOFW419002
    "%ASA-4-419002: Duplicate TCP SYN from OUTSIDE:10.10.66.2/65087 to INSIDE:10.10.1.6/443 "
    "with different initial sequence number.":
        (None, {"src": "10.10.66.2", "sport": 65087, "dst": "10.10.1.6", "dport": 443,
                "tcp_flags": 2, "in_iface": "OUTSIDE", "out_iface": "INSIDE",
                "outcome": "unknown"}),
    # line 503, CISCOFW602303_602304: IPsec SA, no connection
    "%ASA-6-602303: IPSEC: An outbound LAN-to-LAN SA (SPI= 0xF81283) between 91.240.17.178 "
    "and 192.168.2.2 (user= admin) has been created.":
        (None, "ASA message 602303 describes no connection"),
    # line 528, CISCOFW710001_710002_710003_710005_710006
    "%PIX-7-710001: TCP access requested from 192.168.1.2/2354 to inside:192.168.1.1/443":
        (None, {"src": "192.168.1.2", "sport": 2354, "dst": "192.168.1.1", "dport": 443,
                "in_iface": "inside", "outcome": "unknown"}),
    # line 551, CISCOFW713172: NAT-T detection, no connection
    "%ASA-6-713172: Group = 212.9.5.245, IP = 212.9.5.245, Automatic NAT Detection Status:    "
    "Remote end is NOT behind a NAT device    This  end  IS  behind a NAT device":
        (None, "ASA message 713172 describes no connection"),
    # line 572, CISCOFW733100: threat-detection rate, no connection
    "%ASA-4-733100: [192.168.2.2] drop rate-1 exceeded. Current burst rate is 0 per second, "
    "max configured rate is -4; Current average rate is 7 per second, max configured rate is "
    "-5; Cumulative total count is 9063":
        (None, "ASA message 733100 describes no connection"),
    # line 600, CISCO_TAGGED_SYSLOG: an IOS message, not ASA
    "<191>Jan 24 11:28:30.407: %LINEPROTO-5-UPDOWN: Line protocol on Interface "
    "GigabitEthernet0/0, changed state to down":
        (None, "not a Cisco ASA/PIX/FWSM message"),
    # line 615, CISCO_TAGGED_SYSLOG with host
    "<191>Aug  1 14:01:20 abc-asa1: %ASA-6-302013: Built outbound TCP connection 906569140 for "
    "out-v1101:10.125.126.86/2010 (10.125.126.86/2010) to ent-v1124:100.100.100.111/51444 "
    "(10.125.1.11/37785)":
        (None, {"src": "100.100.100.111", "sport": 51444, "dst": "10.125.126.86",
                "dport": 2010, "sensor": "abc-asa1", "in_iface": "ent-v1124",
                "out_iface": "out-v1101", "outcome": "accepted",
                "ts": datetime(2023, 8, 1, 14, 1, 20, tzinfo=UTC)}),
}

# Message ids the spec has no sample of, in the formats of Cisco's syslog message guide.
CISCO_FORMATS: list[tuple[str, dict[str, object]]] = [
    ("%ASA-2-106007: Deny inbound UDP from 203.0.113.9/53 to 192.0.2.10/33333 due to DNS "
     "Response",
     {"src": "203.0.113.9", "sport": 53, "dst": "192.0.2.10", "dport": 33333, "proto": 17,
      "outcome": "blocked"}),
    ("%ASA-3-106010: Deny inbound tcp src outside:198.51.100.7/4444 dst inside:192.0.2.10/445",
     {"src": "198.51.100.7", "sport": 4444, "dport": 445, "in_iface": "outside",
      "out_iface": "inside", "outcome": "blocked"}),
    ('%ASA-4-106023: Deny tcp src outside:1.2.3.4/5555 dst inside:10.0.0.1/445 by '
     'access-group "outside_in" [0x0, 0x0]',
     {"src": "1.2.3.4", "sport": 5555, "dst": "10.0.0.1", "dport": 445, "rule": "outside_in",
      "outcome": "blocked"}),
    ('%ASA-4-106023: Deny icmp src outside:198.51.100.7 dst inside:192.0.2.10 (type 8, code 0) '
     'by access-group "outside_in" [0x0, 0x0]',
     {"proto": 1, "icmp_type": 8, "icmp_code": 0, "dport": None, "outcome": "blocked"}),
    ('%ASA-4-106023: Deny udp src outside:2001:db8::7/5353 dst inside:2001:db8::1/161 by '
     'access-group "v6_in" [0x0, 0x0]',
     {"src": "2001:db8::7", "dst": "2001:db8::1", "dport": 161, "proto": 17, "rule": "v6_in"}),
    ("%ASA-6-106100: access-list outside_in denied icmp outside/198.51.100.7(8) -> "
     "inside/192.0.2.10(0) hit-cnt 5 300-second interval [0x0, 0x0]",
     {"proto": 1, "icmp_type": 8, "icmp_code": 0, "sport": None, "packets": 5,
      "outcome": "blocked", "rule": "outside_in"}),
    ("%ASA-6-302013: Built inbound TCP connection 11 for outside:10.1.2.1/21647 "
     "(10.1.2.1/21647) to inside:10.1.1.2/22 (10.1.1.2/22)",
     {"src": "10.1.2.1", "sport": 21647, "dst": "10.1.1.2", "dport": 22,
      "in_iface": "outside", "out_iface": "inside", "outcome": "accepted"}),
    ("%ASA-6-302013: Built inbound TCP connection 8 for inside:10.1.1.2/12523 (10.1.1.2/12523) "
     "to NP Identity Ifc:10.1.1.1/22 (10.1.1.1/22)",
     {"src": "10.1.1.2", "dst": "10.1.1.1", "dport": 22, "out_iface": "NP Identity Ifc"}),
    ("%ASA-6-302014: Teardown TCP connection 9 for outside:10.1.2.1/22 to inside:10.1.1.2/53496 "
     "duration 0:00:30 bytes 0 SYN Timeout",
     {"src": "10.1.1.2", "sport": 53496, "dst": "10.1.2.1", "dport": 22, "bytes": 0,
      "outcome": "unanswered"}),
    ("%ASA-6-302014: Teardown TCP connection 11 for outside:10.1.2.1/21647 to "
     "inside:10.1.1.2/22 duration 0:00:00 bytes 0 TCP Reset",
     {"src": "10.1.2.1", "dport": 22, "outcome": "rejected"}),
    ("%ASA-6-302014: Teardown TCP connection 10 for outside:10.1.2.1/28218 to NP Identity "
     "Ifc:10.1.2.2/22 duration 0:00:33 bytes 968 TCP Reset-O",
     {"src": "10.1.2.1", "dst": "10.1.2.2", "dport": 22, "bytes": 968,
      "outcome": "established"}),
    ("%ASA-6-302015: Built outbound UDP connection 414128851 for outside:168.15.3.6/53 "
     "(168.15.3.6/53) to inside:192.168.10.5/53 (192.168.10.5/171)",
     {"src": "192.168.10.5", "dst": "168.15.3.6", "dport": 53, "proto": 17,
      "outcome": "accepted"}),
    ("%ASA-6-302016: Teardown UDP connection 414128851 for outside:168.15.3.6/53 to "
     "inside:192.168.10.5/40000 duration 0:02:01 bytes 312",
     {"src": "192.168.10.5", "dst": "168.15.3.6", "dport": 53, "bytes": 312,
      "outcome": "established"}),
    ("%ASA-4-313004: Denied ICMP type=0, from laddr 198.51.100.7 on interface outside to "
     "192.0.2.10: no matching session",
     {"src": "198.51.100.7", "dst": "192.0.2.10", "icmp_type": 0, "outcome": "blocked"}),
    ("%ASA-3-313008: Denied IPv6-ICMP type=128, code=0 from 2001:db8::7 on interface outside",
     {"src": "2001:db8::7", "dst": "::", "proto": 58, "icmp_type": 128,
      "outcome": "blocked"}),
    ("%ASA-3-710003: TCP access denied by ACL from 198.51.100.7/4444 to outside:192.0.2.1/22",
     {"src": "198.51.100.7", "dst": "192.0.2.1", "dport": 22, "in_iface": "outside",
      "outcome": "blocked"}),
    ("%ASA-7-710002: TCP access permitted from 10.0.0.5/51000 to inside:10.0.0.1/443",
     {"dport": 443, "outcome": "accepted"}),
    ("%FTD-4-106023: Deny tcp src outside:1.2.3.4/5555 dst inside:10.0.0.1/3389 by "
     'access-group "CSM_FW_ACL_" [0x0, 0x0]',
     {"dport": 3389, "outcome": "blocked"}),
]


def framed(message: str, msgid: str | None) -> str:
    """A full syslog line for a spec sample (the spec gives some as bare message bodies)."""
    if message.startswith(("<", "6|")):
        return message
    if msgid is not None:
        return f"{HEADER}%ASA-6-{msgid}: {message}"
    return HEADER + message


def parse(text: str, options: ReadOptions = OPTS) -> tuple[list[dict], ReadStats]:
    stats = ReadStats(source="test")
    batch = CiscoAsaReader().parse_bytes(text.encode(), options, stats)
    rows = batch.to_pylist()
    for row in rows:
        row["src"] = key_to_text(row["src_hi"], row["src_lo"])
        row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    return rows, stats


def check(row: dict, expected: dict[str, object]) -> None:
    for key, value in expected.items():
        assert row[key] == value, (key, row[key], value)


def test_every_cisco_sample_of_the_spec_is_covered():
    messages = {m for _, m in spec_messages(need(SPEC), stop_at="describe_pattern 'SFW2'")}
    assert messages == set(SPEC_EXPECTED)


@pytest.mark.parametrize("message", list(SPEC_EXPECTED), ids=lambda m: m[:40])
def test_spec_sample(message):
    msgid, expected = SPEC_EXPECTED[message]
    rows, stats = parse(framed(message, msgid))
    if isinstance(expected, str):
        assert rows == []
        assert dict(stats.skipped) == {expected: 1}
        return
    assert stats.skipped_total == 0, stats.examples
    (row,) = rows
    assert row["format"] == "cisco_asa"
    check(row, expected)
    if "sensor" not in expected and not message.startswith("6|"):
        assert row["sensor"] == "fw1"


@pytest.mark.parametrize(("message", "expected"), CISCO_FORMATS, ids=lambda m: str(m)[:30])
def test_message_formats_of_cisco_guide(message, expected):
    rows, stats = parse(HEADER + message)
    assert stats.skipped_total == 0, stats.examples
    check(rows[0], expected)


DENY = ('%ASA-4-106023: Deny tcp src outside:198.51.100.7/5555 dst inside:192.0.2.10/445 by '
        'access-group "outside_in" [0x0, 0x0]')


@pytest.mark.parametrize(("line", "sensor", "ts"), [
    (f"Jun 21 2023 10:00:00 fw1 : {DENY}", "fw1", datetime(2023, 6, 21, 10, 0, tzinfo=UTC)),
    (f"Jun 21 2023 10:00:00: {DENY}", "default", datetime(2023, 6, 21, 10, 0, tzinfo=UTC)),
    (f"<164>Jun 21 10:00:00 fw1 {DENY}", "fw1", datetime(2023, 6, 21, 10, 0, tzinfo=UTC)),
    (f"Jun 21 10:00:05 relay Jun 21 2023 10:00:00 fw1 : {DENY}", "fw1",
     datetime(2023, 6, 21, 10, 0, tzinfo=UTC)),
    (f"<164>1 2023-06-21T12:00:00+02:00 fw1 - - - - {DENY}", "fw1",
     datetime(2023, 6, 21, 10, 0, tzinfo=UTC)),
    (f"2023-06-21T10:00:00.250Z fw1 {DENY}", "fw1",
     datetime(2023, 6, 21, 10, 0, 0, 250000, tzinfo=UTC)),
    (f"<164>2023-06-21T10:00:00Z fw1 : {DENY}", "fw1", datetime(2023, 6, 21, 10, 0, tzinfo=UTC)),
])
def test_syslog_framings(line, sensor, ts):
    (row,), _ = parse(line)
    assert (row["sensor"], row["ts"], row["dport"], row["rule"]) == (sensor, ts, 445,
                                                                       "outside_in")


def test_timezone_applies_to_local_times():
    (row,), _ = parse(f"Jun 21 2023 12:00:00 fw1 : {DENY}", ReadOptions(tz="Europe/Berlin"))
    assert row["ts"] == datetime(2023, 6, 21, 10, 0, tzinfo=UTC)


def test_strict_mode_names_the_first_bad_line():
    text = f"{HEADER}{DENY}\n{HEADER}%ASA-6-302013: Built outbound TCP garbage\n"
    stats = ReadStats(source="asa.log", strict=True)
    with pytest.raises(FormatError, match=r"asa\.log:2: ASA message 302013: text not recognised"):
        CiscoAsaReader().parse_bytes(text.encode(), ReadOptions(tz="UTC", strict=True), stats)


def test_sniffing_picks_cisco_asa():
    head = "\n".join(framed(m, i) for m, (i, e) in SPEC_EXPECTED.items() if "%" in framed(m, i))
    assert sniff_format(head.encode()) == "cisco_asa"
    assert CiscoAsaReader.sniff(b"Nov 26 10:00:00 fw kernel: DROP IN=eth0 SRC=1.2.3.4") == 0.0


def test_cli_ingests_asa_log(tmp_path):
    from portradar.cli.app import cli

    lines = [HEADER + m for m, _ in CISCO_FORMATS] + [framed(m, i) for m, (i, e)
                                                      in SPEC_EXPECTED.items()]
    events = len(CISCO_FORMATS) + sum(isinstance(e, dict) for _, e in SPEC_EXPECTED.values())
    log = tmp_path / "asa.log"
    log.write_text("\n".join(lines) + "\n")
    db = tmp_path / "s.duckdb"
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", "--tz", "UTC", "--json",
                                      "-q", str(log)])
    assert result.exit_code == 0, result.output
    from portradar.store import Store

    with Store.open(db) as store:
        stored = store.con.execute("select count(*) from events where format = 'cisco_asa'")
        assert stored.fetchone()[0] == events


def test_fast_templates_agree_with_the_regexes(monkeypatch):
    from portradar.ingest import cisco_asa
    from portradar.ingest.text_fields import Templates

    variants = [HEADER + m for m, _ in CISCO_FORMATS] + [framed(m, i) for m, (i, _)
                                                         in SPEC_EXPECTED.items()]
    variants += [line.replace("outside:", "out side:").replace("/5555", "") for line in variants]
    text = "\n".join(variants) + "\n"
    fast, fast_stats = parse(text)
    assert cisco_asa.TEMPLATES.match is not None
    monkeypatch.setattr(cisco_asa, "TEMPLATES", Templates.compile([]))
    monkeypatch.setattr(cisco_asa, "TEMPLATE_FAMILY", [])
    slow, slow_stats = parse(text)
    assert fast == slow
    assert dict(fast_stats.skipped) == dict(slow_stats.skipped)


VALID = [(HEADER + m).encode() for m, _ in CISCO_FORMATS] + [
    framed(m, i).encode() for m, (i, _) in SPEC_EXPECTED.items()]
test_fuzz_tolerant, test_fuzz_strict, test_fuzz_sniff = fuzz_tests(CiscoAsaReader, VALID)
