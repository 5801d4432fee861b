"""The pf reader (pfSense/OPNsense filterlog, pf tcpdump lines) against CrowdSec's samples.

Ground truth: ``crowdsec-hub/tests/pf-logs`` (``parser.assert`` states, for every line,
addresses, ports, action, direction, interface, protocol, TTL, IP id, length, TCP
flags, window, sequence, rule and tracker), ``pfsense-rfc5424-filterlog`` (the syslog
header fields and the CSV message of each line) and ``pf-scan-multi-port`` (its
``scenario.assert``: 10.0.2.2 scans, tripping CrowdSec's 15-distinct-ports rule).  The
tcpdump lines are written here from OpenBSD's and FreeBSD's ``tcpdump -e`` output.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from conftest import CROWDSEC, PSAD, need
from crowdsec_asserts import parse_assert_file
from header_reader_fuzz import fuzz_tests

from portradar.cli.app import cli
from portradar.errors import FormatError
from portradar.events.addresses import key_to_text
from portradar.events.schema import TCP_FLAG_BITS
from portradar.ingest.pf_filterlog import PfFilterlogReader
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.sniff import sniff_format
from portradar.store import Store

PF_LOGS = CROWDSEC / "pf-logs"
RFC5424 = CROWDSEC / "pfsense-rfc5424-filterlog"
SCAN = CROWDSEC / "pf-scan-multi-port"
OPTIONS = ReadOptions(tz="UTC", year=2022)
LETTERS = {"F": "FIN", "S": "SYN", "R": "RST", "P": "PSH", "A": "ACK", "U": "URG", "E": "ECE",
           "W": "CWR"}


def parse(data: bytes | str, options: ReadOptions | None = None,
          stats: ReadStats | None = None) -> list[dict]:
    if isinstance(data, str):
        data = data.encode()
    rows = PfFilterlogReader().parse_bytes(data, options or OPTIONS, stats).to_pylist()
    for row in rows:
        row["src"] = key_to_text(row["src_hi"], row["src_lo"])
        row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    return rows


def flag_bits(letters: str) -> int:
    return sum(TCP_FLAG_BITS[LETTERS[c]] for c in letters)


def test_pf_logs_match_crowdsec_parser_assert():
    lines = need(PF_LOGS / "pf-logs.log").read_text().splitlines()
    asserted = parse_assert_file(PF_LOGS / "parser.assert")["firewallservices/pf-logs"]
    stats = ReadStats()
    rows = parse("\n".join(lines), stats=stats)
    assert len(rows) == len(lines) == len(asserted) == 9 and stats.skipped_total == 0
    for i, row in enumerate(rows):
        want = {k.split(".", 1)[1]: v for k, v in asserted[i].items() if "." in k}
        assert row["src"] == want["src_ip"] and row["dst"] == want["dst_ip"]
        assert (row["sport"], row["dport"]) == (int(want["src_port"]), int(want["dst_port"]))
        v4 = want["ip_ver"] == "4"
        assert row["proto"] == int(want["ip4_proto_id" if v4 else "ip6_proto_id"])
        assert row["ttl"] == int(want["ip4_ttl" if v4 else "ip6_hop_limit"])
        assert row["ip_id"] == (int(want["ip4_id"]) if v4 else None)
        assert row["bytes"] == int(want["length"])
        assert row["outcome"] == {"block": "blocked", "pass": "accepted"}[want["action"]]
        iface = "in_iface" if want["direction"] == "in" else "out_iface"
        assert row[iface] == want["iface"]
        assert row["out_iface" if iface == "in_iface" else "in_iface"] is None
        assert row["rule"] == f"rule {want['rule']} tracker {want['tracker']}"
        assert row["sensor"] == want["machine"]
        if "tcp_flags" in want:
            assert row["tcp_flags"] == flag_bits(want["tcp_flags"])
            assert row["tcp_window"] == int(want["tcp_window"])
        if "sequence_number" in want:
            assert row["tcp_seq"] == int(want["sequence_number"])
        if "timestamp8601" in want:
            assert row["ts"] == datetime.fromisoformat(want["timestamp8601"])
        else:
            stamp = datetime.strptime(f"2022 {want['timestamp']}", "%Y %b %d %H:%M:%S")
            assert row["ts"] == stamp.replace(tzinfo=UTC)


def test_rfc5424_filterlog_matches_crowdsec_parser_assert():
    lines = need(RFC5424 / "pfsense-rfc5424-filterlog.log").read_text().splitlines()
    raw = parse_assert_file(RFC5424 / "parser.assert", stage="s00-raw")
    asserted = raw["crowdsecurity/syslog-logs"]
    rows = parse("\n".join(lines))
    assert len(rows) == len(asserted) == 4
    for i, row in enumerate(rows):
        want = asserted[i]
        assert row["ts"] == datetime.fromisoformat(want["Parsed.timestamp8601"])
        assert row["sensor"] == want["Meta.machine"]
        csv = want["Parsed.message"].split(",")
        v4 = csv[8] == "4"
        src, dst, data = (18, 19, 20) if v4 else (15, 16, 17)
        assert (row["src"], row["dst"]) == (csv[src], csv[dst])
        assert (row["sport"], row["dport"]) == (int(csv[data]), int(csv[data + 1]))
        assert row["proto"] == int(csv[15] if v4 else csv[13])
        assert row["in_iface"] == csv[4] and row["outcome"] == "blocked"
        assert row["tcp_flags"] == flag_bits(csv[data + 3])


def test_pf_scan_multi_port_is_one_source_on_many_ports():
    stats = ReadStats()
    rows = parse(need(SCAN / "pf-scan-multi-port.log").read_bytes(), stats=stats)
    assert len(rows) == 16 and stats.skipped_total == 0
    scenario = (SCAN / "scenario.assert").read_text()
    assert '"10.0.2.2" in results[0].Overflow.GetSources()' in scenario
    scanner = [r for r in rows if r["src"] == "10.0.2.2"]
    assert len({r["dport"] for r in scanner}) >= 15  # CrowdSec's pf-scan-multi_ports threshold
    assert {(r["outcome"], r["tcp_flags"], r["dst"]) for r in scanner} == {
        ("blocked", TCP_FLAG_BITS["SYN"], "10.0.2.15")}


TCPDUMP = """\
Mar 16 15:23:09.532917 rule 46/(match) pass in on fxp0: 10.0.0.1.46523 > 10.0.0.2.22: S 4049875345:4049875345(0) win 16384 <mss 1460> (DF)
Mar 16 15:23:10.000001 rule 2/(match) block in on em0: 198.51.100.7 > 192.0.2.1: icmp: echo request
Mar 16 15:23:11 fw pf: 00:00:00.012345 rule 0/0(match): block in on em0: 2001:db8::1.5555 > 2001:db8::2.445: Flags [S], seq 1, win 1024, length 0
2022-03-16 15:23:12.500000 rule 3/(match) block out on em1: 192.0.2.1.53 > 198.51.100.7.1234: 2239 A? example.com. (29)
Mar 16 15:23:13 fw pf: rule 3/(match) block in on em0: 198.51.100.7 > 192.0.2.1: ICMP 192.0.2.9 udp port 53 unreachable, length 36
Mar 16 15:23:14 fw pf: rule 1.anchor.2/(match) [uid 0, pid 1] block in on vio0: 198.51.100.7.4444 > 192.0.2.1.80: Flags [S.], seq 1, ack 1, win 1024, length 0
Mar 16 15:23:15 fw pf: rule 9/(match) block in on em0: 198.51.100.7 > 192.0.2.1: ip-proto-47 24
"""  # noqa: E501 - tcpdump prints one long line per packet


def test_tcpdump_lines():
    stats = ReadStats()
    rows = parse(TCPDUMP, stats=stats)
    assert stats.skipped_total == 0
    got = [(r["src"], r["sport"], r["dst"], r["dport"], r["proto"], r["tcp_flags"],
            r["icmp_type"], r["icmp_code"], r["outcome"], r["rule"], r["in_iface"],
            r["out_iface"], r["sensor"]) for r in rows]
    assert got == [
        ("10.0.0.1", 46523, "10.0.0.2", 22, 6, 0x02, None, None, "accepted", "rule 46",
         "fxp0", None, "default"),
        ("198.51.100.7", None, "192.0.2.1", None, 1, None, 8, 0, "blocked", "rule 2", "em0",
         None, "default"),
        ("2001:db8::1", 5555, "2001:db8::2", 445, 6, 0x02, None, None, "blocked", "rule 0/0",
         "em0", None, "fw"),
        ("192.0.2.1", 53, "198.51.100.7", 1234, 17, None, None, None, "blocked", "rule 3",
         None, "em1", "default"),
        ("198.51.100.7", None, "192.0.2.1", None, 1, None, 3, 3, "blocked", "rule 3", "em0",
         None, "fw"),
        ("198.51.100.7", 4444, "192.0.2.1", 80, 6, 0x12, None, None, "blocked",
         "rule 1.anchor.2", "vio0", None, "fw"),
        ("198.51.100.7", None, "192.0.2.1", None, 47, None, None, None, "blocked", "rule 9",
         "em0", None, "fw"),
    ]
    assert rows[0]["ts"] == datetime(2022, 3, 16, 15, 23, 9, 532917, tzinfo=UTC)
    assert rows[3]["ts"] == datetime(2022, 3, 16, 15, 23, 12, 500000, tzinfo=UTC)


def test_filterlog_icmp_words():
    text = (
        "Dec  5 09:53:08 pfsense filterlog: 5,,,1000103483,vtnet1,match,block,in,4,0x0,,64,"
        "48961,0,DF,1,icmp,84,192.168.3.1,192.168.3.201,request,5113,6664\n"
        "Dec  5 09:53:09 pfsense filterlog: 5,,,1000103483,vtnet1,match,block,in,4,0x0,,64,"
        "48962,0,DF,1,icmp,56,192.168.3.1,192.168.3.201,unreachport,192.168.3.9,17,53\n"
        "<134>1 2022-12-05T09:53:10Z opn filterlog 1 - [meta sequenceId=\"5\"] 5,,,abc,vtnet1,"
        "match,pass,out,6,0x00,0x00000,255,ipv6-icmp,58,32,fe80::1,ff02::1,datalength=8,"
        "neighbrsol,0,,,\n"
        "<134>1 2022-12-05T09:53:11Z opn filterlog 1 - - 5,,,abc,vtnet1,match,block,in,4,0x0,,"
        "64,1,0,none,1,icmp,56,10.0.0.1,10.0.0.2,datalength=36,unreach,port-unr,,,\n")
    rows = parse(text)
    assert [(r["proto"], r["icmp_type"], r["icmp_code"], r["sport"]) for r in rows] == [
        (1, 8, 0, None), (1, 3, 3, None), (58, 135, 0, None), (1, 3, 3, None)]
    assert rows[2]["out_iface"] == "vtnet1" and rows[2]["outcome"] == "accepted"


def test_other_programs_are_counted_and_broken_filterlog_is_an_error():
    text = ("Sep 28 10:38:09 pfSense sshd[123]: Accepted publickey for admin\n"
            "Sep 28 10:38:10 pfSense filterlog: 53,,,1000000301,em0,match,block,in,4,0x0,,64,"
            "420,0,none,6,tcp,44,10.0.2.2,10.0.2.15,53742,22,0,S,1,,65535,,\n")
    stats = ReadStats(strict=True)
    assert len(parse(text, ReadOptions(tz="UTC", year=2022, strict=True), stats)) == 1
    assert dict(stats.skipped) == {"syslog line not from filterlog or pf": 1}
    broken = "Sep 28 10:38:11 pfSense filterlog: 53,,,1000000301,em0,match,block,in,7,0x0\n"
    with pytest.raises(FormatError, match=r"log:1: filterlog CSV with too few fields"):
        parse(broken, ReadOptions(tz="UTC", year=2022, strict=True),
              ReadStats(source="filter.log", strict=True))


def test_local_time_and_year_resolution():
    line = ("Jan  1 00:30:00 fw filterlog: 1,,,1,em0,match,block,in,4,0x0,,64,1,0,none,17,udp,"
            "40,198.51.100.7,192.0.2.1,1,53,12\n")
    (row,) = parse(line, ReadOptions(tz="Europe/Berlin", year=2024))
    assert row["ts"] == datetime(2023, 12, 31, 23, 30, tzinfo=UTC)


def test_sniffing_picks_pf_and_leaves_iptables_alone():
    for path in (PF_LOGS / "pf-logs.log", RFC5424 / "pfsense-rfc5424-filterlog.log",
                 SCAN / "pf-scan-multi-port.log"):
        assert sniff_format(need(path).read_bytes()) == "pf_filterlog"
    assert sniff_format(TCPDUMP.encode()) == "pf_filterlog"
    for path in sorted(need(PSAD).iterdir()):
        assert PfFilterlogReader.sniff(path.read_bytes()[:65536]) == 0.0, path.name


@pytest.mark.parametrize(("path", "events"), [
    (PF_LOGS / "pf-logs.log", 9), (SCAN / "pf-scan-multi-port.log", 16),
    (RFC5424 / "pfsense-rfc5424-filterlog.log", 4)])
def test_cli_ingests_pf_logs(tmp_path, path, events):
    db = tmp_path / "pf.duckdb"
    result = CliRunner().invoke(
        cli, ["--db", str(db), "ingest", "--tz", "UTC", "--year", "2022", "--json",
              str(need(path))], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["events"] == events
    with Store.open(db) as store:
        count = store.con.execute("select count(*) from events where format = 'pf_filterlog'")
        assert count.fetchone()[0] == events


VALID = [line.encode() for line in (
    *TCPDUMP.splitlines()[:4],
    "Sep 28 10:38:09 pfSense filterlog: 53,,,1000000301,em0,match,block,in,4,0x0,,64,420,0,"
    "none,6,tcp,460,10.0.2.2,10.0.2.15,53742,22,420,PA,29633380:29633800,3617062173,65535,,",
    "<134>1 2022-09-06T19:00:06+02:00 opnsense filterlog 57126 - [meta sequenceId=\"2\"] 98,,,"
    "64d253df,re0,match,block,in,6,0x00,0x0ea87,51,udp,17,73,2008:8a0::2f8a,2c02::1738,6881,"
    "51918,73",
)]
test_fuzz_tolerant, test_fuzz_strict, test_fuzz_sniff = fuzz_tests(PfFilterlogReader, VALID)
