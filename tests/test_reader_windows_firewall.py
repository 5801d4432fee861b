"""The Windows Defender Firewall log reader (pfirewall.log, W3C extended format).

The sample logs are written here (Apache-2.0, ours) from Microsoft's documented layout:
the four ``#`` header lines, then one space-separated line per packet with ``-`` for
values that do not apply.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from header_reader_fuzz import fuzz_tests

from portradar.cli.app import cli
from portradar.events.addresses import key_to_text
from portradar.ingest.pipeline import ingest_input
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.sniff import sniff_format
from portradar.ingest.windows_firewall import WindowsFirewallReader
from portradar.store import Store

HEADER = """\
#Version: 1.5
#Software: Microsoft Windows Firewall
#Time Format: Local
#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path

"""  # noqa: E501 - the #Fields line is one line in the file

PFIREWALL = HEADER + """\
2024-03-31 01:59:58 DROP TCP 198.51.100.7 192.0.2.10 51515 445 52 S 3841223591 0 64240 - - - RECEIVE
2024-03-31 03:00:01 DROP TCP 198.51.100.7 192.0.2.10 51516 3389 52 S 3841223592 0 64240 - - - RECEIVE
2024-03-31 03:00:02 ALLOW TCP 192.0.2.10 203.0.113.5 50000 443 0 - - - - - - - SEND
2024-03-31 03:00:03 ALLOW UDP 192.0.2.10 192.0.2.1 61000 53 0 - - - - - - - SEND
2024-03-31 03:00:04 DROP UDP 198.51.100.9 192.0.2.10 5353 1900 161 - - - - - - - RECEIVE
2024-03-31 03:00:05 DROP ICMP 198.51.100.7 192.0.2.10 - - 60 - - - - 8 0 - RECEIVE
2024-03-31 03:00:06 DROP TCP 2001:db8::7 2001:db8::10 41000 22 72 S 17 0 65535 - - - RECEIVE
2024-03-31 03:00:07 DROP TCP 198.51.100.7 192.0.2.10 51517 23 40 AR 0 1 0 - - - RECEIVE
2024-03-31 03:00:08 INFO-EVENTS-LOST - - - - - - - - - - - - 57 - -
2024-03-31 03:00:09 ALLOW ICMPv6 fe80::1 ff02::1 - - 72 - - - - 135 0 - RECEIVE
2024-03-31 03:00:10 DROP 2 192.0.2.1 224.0.0.1 - - 32 - - - - - - - RECEIVE
"""  # noqa: E501 - log lines as Windows writes them


def parse(data: str, options: ReadOptions | None = None,
          stats: ReadStats | None = None) -> list[dict]:
    rows = WindowsFirewallReader().parse_bytes(
        data.encode(), options or ReadOptions(tz="Europe/Berlin"), stats).to_pylist()
    for row in rows:
        row["src"] = key_to_text(row["src_hi"], row["src_lo"])
        row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    return rows


def test_pfirewall_log():
    stats = ReadStats()
    rows = parse(PFIREWALL, stats=stats)
    assert len(rows) == 10
    assert dict(stats.skipped) == {"INFO-EVENTS-LOST: the firewall dropped log records": 1}
    got = [(r["src"], r["sport"], r["dst"], r["dport"], r["proto"], r["outcome"], r["rule"],
            r["tcp_flags"], r["icmp_type"], r["icmp_code"], r["bytes"]) for r in rows]
    assert got == [
        ("198.51.100.7", 51515, "192.0.2.10", 445, 6, "blocked", "RECEIVE", 0x02, None, None,
         52),
        ("198.51.100.7", 51516, "192.0.2.10", 3389, 6, "blocked", "RECEIVE", 0x02, None, None,
         52),
        ("192.0.2.10", 50000, "203.0.113.5", 443, 6, "accepted", "SEND", None, None, None, 0),
        ("192.0.2.10", 61000, "192.0.2.1", 53, 17, "accepted", "SEND", None, None, None, 0),
        ("198.51.100.9", 5353, "192.0.2.10", 1900, 17, "blocked", "RECEIVE", None, None, None,
         161),
        ("198.51.100.7", None, "192.0.2.10", None, 1, "blocked", "RECEIVE", None, 8, 0, 60),
        ("2001:db8::7", 41000, "2001:db8::10", 22, 6, "blocked", "RECEIVE", 0x02, None, None,
         72),
        ("198.51.100.7", 51517, "192.0.2.10", 23, 6, "blocked", "RECEIVE", 0x14, None, None,
         40),
        ("fe80::1", None, "ff02::1", None, 58, "accepted", "RECEIVE", None, 135, 0, 72),
        ("192.0.2.1", None, "224.0.0.1", None, 2, "blocked", "RECEIVE", None, None, None, 32),
    ]
    first = rows[0]
    assert (first["tcp_seq"], first["tcp_window"], first["sensor"], first["packets"]) == (
        3841223591, 64240, "windows", 1)


def test_local_time_across_the_daylight_saving_change():
    a, b = parse(PFIREWALL)[:2]
    # 01:59:58 CET (UTC+1), then 03:00:01 CEST (UTC+2): three seconds apart in UTC
    assert a["ts"] == datetime(2024, 3, 31, 0, 59, 58, tzinfo=UTC)
    assert b["ts"] == datetime(2024, 3, 31, 1, 0, 1, tzinfo=UTC)
    (utc,) = parse(PFIREWALL.splitlines(keepends=True)[5], ReadOptions(tz="UTC"))
    assert utc["ts"] == datetime(2024, 3, 31, 1, 59, 58, tzinfo=UTC)


def test_other_field_order_extra_columns_and_utc():
    text = ("#Software: Microsoft Windows Firewall\n"
            "#Fields: action time date src-ip src-port dst-ip dst-port protocol path pid\n"
            "DROP 10:00:00 2024-01-15 198.51.100.7 4444 192.0.2.10 445 TCP RECEIVE 4\n"
            "#Time Format: UTC\n"
            "DROP 10:00:00 2024-01-15 198.51.100.7 4444 192.0.2.10 139 TCP RECEIVE 4\n")
    local, utc = parse(text)
    assert (local["dport"], local["ts"]) == (445, datetime(2024, 1, 15, 9, tzinfo=UTC))
    assert (utc["dport"], utc["ts"]) == (139, datetime(2024, 1, 15, 10, tzinfo=UTC))
    assert local["bytes"] is None and local["tcp_flags"] is None


def test_resuming_a_grown_log_replays_its_header(tmp_path, store):
    head = ("#Software: Microsoft Windows Firewall\n"
            "#Fields: action time date src-ip src-port dst-ip dst-port protocol path pid\n")
    line = "DROP 10:00:00 2024-01-15 198.51.100.7 4444 192.0.2.10 {p} TCP RECEIVE 4\n"
    log = tmp_path / "pfirewall.log"
    log.write_text(head + "".join(line.format(p=p) for p in range(10)))
    options = ReadOptions(tz="UTC")
    first = ingest_input(store, log, options=options)
    with log.open("a") as fh:
        fh.write("".join(line.format(p=p) for p in range(10, 15)))
    grown = ingest_input(store, log, options=options)
    assert (first.events, grown.events, grown.skipped) == (10, 5, {})
    ports = store.con.execute("select min(dport), max(dport), count(*) from events").fetchone()
    assert ports == (0, 14, 15)


def test_bad_lines_are_counted_by_reason():
    lines = [
        "2024-13-01 10:00:00 DROP TCP 1.2.3.4 5.6.7.8 1 2 40 S 1 0 1 - - - RECEIVE",
        "2024-01-01 10:00:00 DROP TCP 1.2.3.4 5.6.7.888 1 2 40 S 1 0 1 - - - RECEIVE",
        "2024-01-01 10:00:00 DROP TCP 1.2.3.4 5.6.7.8 1 70000 40 S 1 0 1 - - - RECEIVE",
        "2024-01-01 10:00:00 DENY TCP 1.2.3.4 5.6.7.8 1 2 40 S 1 0 1 - - - RECEIVE",
        "2024-01-01 10:00:00 DROP TCP 1.2.3.4 5.6.7.8 1 2 40 SQ 1 0 1 - - - RECEIVE",
        "2024-01-01 10:00:00 DROP TCP 1.2.3.4",
    ]
    stats = ReadStats()
    assert parse(HEADER + "\n".join(lines), stats=stats) == []
    assert dict(stats.skipped) == {
        "date or time missing or not YYYY-MM-DD HH:MM:SS": 1,
        "dst-ip is not an IPv4 or IPv6 address": 1,
        "src-port or dst-port is not a number 0-65535": 1,
        "action is not DROP, ALLOW or INFO-EVENTS-LOST": 1,
        "size, tcpflags, tcpsyn, tcpwin, icmptype or icmpcode out of range": 1,
        "fewer fields than #Fields names": 1,
    }


def test_sniffing_picks_windows_firewall():
    assert sniff_format(PFIREWALL.encode()) == "windows_firewall"
    body = "".join(PFIREWALL.splitlines(keepends=True)[5:])
    assert sniff_format(body.encode()) == "windows_firewall"  # header-less excerpt


def test_cli_ingests_pfirewall_log(tmp_path):
    log = tmp_path / "pfirewall.log"
    log.write_text(PFIREWALL)
    db = tmp_path / "win.duckdb"
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", "--tz", "Europe/Berlin",
                                      "--json", str(log)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)[0]
    assert (summary["format"], summary["events"], summary["skipped"]) == (
        "windows_firewall", 10, 1)
    with Store.open(db) as store:
        count = store.con.execute(
            "select count(*) from events where format = 'windows_firewall'").fetchone()[0]
        assert count == 10


@pytest.mark.parametrize("line", PFIREWALL.splitlines()[5:])
def test_each_line_alone_without_header_uses_the_default_fields(line):
    stats = ReadStats()
    rows = parse(line + "\n", stats=stats)
    assert len(rows) + stats.skipped_total == 1


VALID = [line.encode() for line in PFIREWALL.splitlines()]
test_fuzz_tolerant, test_fuzz_strict, test_fuzz_sniff = fuzz_tests(
    WindowsFirewallReader, VALID, header=HEADER.encode(),
    options=ReadOptions(tz="Europe/Berlin"))
