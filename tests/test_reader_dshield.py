"""The DShield submission format: reading it, and writing events back out in it.

The sample lines are written here from the layout DShield's client framework
(``framework.pl``) validates and psad submits: ``date time tz``, user id, count, source
IP and port, target IP and port, protocol, TCP flags, tab-separated.  The round trips
go through the psad iptables captures (GPL data, read in place, never copied).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from conftest import PSAD, need
from header_reader_fuzz import fuzz_tests

from portradar.cli.app import cli
from portradar.events.addresses import key_to_text
from portradar.ingest.dshield import DshieldReader, write_dshield
from portradar.ingest.iptables import IptablesReader
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.sniff import sniff_format
from portradar.store import Store

REPORT = "\n".join([
    "To: reports@dshield.org",
    "From: fw@example.org",
    "Subject: FORMAT DSHIELD USERID 12345 TZ -05:00 VERSION 2004-04-07",
    "",
    "2004-04-07 13:45:12 -05:00\t12345\t1\t198.51.100.7\t4444\t192.0.2.10\t445\tTCP\tS",
    "2004-04-07 13:45:13 -05:00\t12345\t3\t198.51.100.7\t4445\t192.0.2.10\t139\tTCP\tS",
    "2004-04-07 13:45:14 -05:00\t12345\t1\t198.51.100.8\t1026\t192.0.2.11\t1434\tUDP\t",
    "2004-04-07 13:45:15 -05:00\t12345\t1\t198.51.100.9\t8\t192.0.2.10\t0\tICMP",
    "2004-04-07 18:45:16 +00:00\t0\t1\t2001:0db8:0000:0000:0000:0000:0000:0007\t5000\t"
    "2001:0db8:0000:0000:0000:0000:0000:0001\t22\tTCP\t12SF",
    "2004-04-07 13:45:17 -0500\t12345\t1\t198.51.100.7\t???\t192.0.2.10\t???\t6\tSA",
    "2004-04-07 13:45:18 -05:00\t12345\t1\t198.51.100.7\t???\t192.0.2.10\t???\t???\t",
]) + "\n"


def parse(data: str | bytes, options: ReadOptions | None = None,
          stats: ReadStats | None = None) -> list[dict]:
    if isinstance(data, str):
        data = data.encode()
    rows = DshieldReader().parse_bytes(data, options or ReadOptions(tz="UTC"), stats).to_pylist()
    for row in rows:
        row["src"] = key_to_text(row["src_hi"], row["src_lo"])
        row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    return rows


def test_dshield_report():
    stats = ReadStats()
    rows = parse(REPORT, stats=stats)
    assert dict(stats.skipped) == {"protocol ??? (unknown): no probe to place": 1}
    got = [(r["src"], r["sport"], r["dst"], r["dport"], r["proto"], r["tcp_flags"],
            r["icmp_type"], r["icmp_code"], r["packets"], r["sensor"], r["outcome"])
           for r in rows]
    assert got == [
        ("198.51.100.7", 4444, "192.0.2.10", 445, 6, 0x02, None, None, 1, "dshield-12345",
         "blocked"),
        ("198.51.100.7", 4445, "192.0.2.10", 139, 6, 0x02, None, None, 3, "dshield-12345",
         "blocked"),
        ("198.51.100.8", 1026, "192.0.2.11", 1434, 17, None, None, None, 1, "dshield-12345",
         "blocked"),
        ("198.51.100.9", None, "192.0.2.10", None, 1, None, 8, 0, 1, "dshield-12345",
         "blocked"),
        ("2001:db8::7", 5000, "2001:db8::1", 22, 6, 0xC3, None, None, 1, "dshield", "blocked"),
        ("198.51.100.7", None, "192.0.2.10", None, 6, 0x12, None, None, 1, "dshield-12345",
         "blocked"),
    ]
    assert rows[0]["ts"] == datetime(2004, 4, 7, 18, 45, 12, tzinfo=UTC)
    assert rows[4]["ts"] == datetime(2004, 4, 7, 18, 45, 16, tzinfo=UTC)
    assert rows[5]["ts"] == datetime(2004, 4, 7, 18, 45, 17, tzinfo=UTC)


def test_time_without_offset_is_local():
    line = "2004-01-07 13:45:12\t1\t1\t198.51.100.7\t1\t192.0.2.10\t2\tTCP\tS\n"
    (row,) = parse(line, ReadOptions(tz="Europe/Berlin"))
    assert row["ts"] == datetime(2004, 1, 7, 12, 45, 12, tzinfo=UTC)


def test_bad_lines_are_counted_by_reason():
    lines = ["2004-04-07 13:45:12 -05:00\t1\t1\t198.51.100.7\t4444",
             "2004-04-77 13:45:12 -05:00\t1\t1\t198.51.100.7\t1\t192.0.2.10\t2\tTCP\tS",
             "2004-04-07 13:45:12 -05:00\t1\tx\t198.51.100.7\t1\t192.0.2.10\t2\tTCP\tS",
             "2004-04-07 13:45:12 -05:00\t1\t1\t198.51.100.7\t1\t192.0.2.10\t99999\tTCP\tS",
             "2004-04-07 13:45:12 -05:00\t1\t1\t198.51.100.7\t1\t192.0.2.10\t2\tXTP\tS",
             "2004-04-07 13:45:12 -05:00\t1\t1\t198.51.100.7\t1\t192.0.2.10\t2\tTCP\tSZ"]
    stats = ReadStats()
    assert parse("\n".join(lines), stats=stats) == []
    assert dict(stats.skipped) == {
        "fewer than 8 tab-separated fields": 1,
        "date/time not YYYY-MM-DD HH:MM:SS [+-HH:MM]": 1,
        "user id or count is not a number": 1,
        "port (or ICMP type/code) is not a number in range": 1,
        "protocol is not TCP, UDP, ICMP or a number 0-255": 1,
        "TCP flags are not letters of SFAPRU12": 1,
    }


COMPARED = ["src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "sport", "dport", "tcp_flags",
            "icmp_type", "icmp_code", "packets"]


def _seconds(table: pa.Table) -> list:
    return [t.replace(microsecond=0) for t in table.column("ts").to_pylist()]


def test_round_trip_of_a_report():
    first = DshieldReader().parse_bytes(REPORT.encode(), ReadOptions(tz="UTC"))
    out = io.BytesIO()
    assert write_dshield(pa.Table.from_batches([first]), out, userid=12345) == 6
    again = DshieldReader().parse_bytes(out.getvalue(), ReadOptions(tz="UTC"))
    assert again.select(COMPARED).equals(first.select(COMPARED))
    assert again.column("ts").equals(first.column("ts"))
    text = out.getvalue().decode()
    assert "2004-04-07 18:45:12 +00:00\t12345\t1\t198.51.100.7\t4444\t192.0.2.10\t445\tTCP\tS\n" \
        in text
    assert "\t2001:0db8:0000:0000:0000:0000:0000:0007\t5000\t" in text  # expanded IPv6
    assert "\t???\t192.0.2.10\t???\tTCP\tAS\n" in text  # flags CWR ECE URG ACK PSH RST SYN FIN


@pytest.mark.parametrize("name", ["syn_scan_1000_1500", "xmas_scan_1000_1150",
                                  "udp_scan_1000_1150", "ipv4_valid_ping", "ipv6_ping_scan",
                                  "topera_ipv6_syn_scan_no_ip_opts"])
def test_round_trip_of_iptables_events(name):
    data = need(PSAD / name).read_bytes()
    events = pa.Table.from_batches([IptablesReader().parse_bytes(
        data, ReadOptions(tz="UTC", year=2012))])
    assert events.num_rows > 0
    out = io.StringIO()
    assert write_dshield(events, out) == events.num_rows
    back = pa.Table.from_batches([DshieldReader().parse_bytes(out.getvalue().encode(),
                                                              ReadOptions(tz="UTC"))])
    assert back.num_rows == events.num_rows
    for column in COMPARED:
        assert back.column(column).to_pylist() == events.column(column).to_pylist(), column
    assert _seconds(back) == _seconds(events)
    assert set(back.column("outcome").to_pylist()) == {"blocked"}
    assert np.all(np.asarray(back.column("sensor").to_pylist()) == "dshield")


def test_sniffing_picks_dshield():
    assert sniff_format(REPORT.encode()) == "dshield"
    for path in sorted(need(PSAD).iterdir()):
        assert DshieldReader.sniff(path.read_bytes()[:65536]) == 0.0, path.name


def test_cli_ingests_dshield_report(tmp_path):
    log = tmp_path / "dshield.txt"
    log.write_text(REPORT)
    db = tmp_path / "dshield.duckdb"
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", "--json", str(log)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)[0]
    assert (summary["format"], summary["events"], summary["skipped"]) == ("dshield", 6, 1)
    with Store.open(db) as store:
        count = store.con.execute("select count(*) from events where format = 'dshield'")
        assert count.fetchone()[0] == 6


VALID = [line.encode() for line in REPORT.splitlines() if line]
test_fuzz_tolerant, test_fuzz_strict, test_fuzz_sniff = fuzz_tests(DshieldReader, VALID)
