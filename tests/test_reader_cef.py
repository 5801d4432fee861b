"""The CEF reader against CrowdSec's CEF and UniFi samples; UniFi's plain logs via iptables.

Ground truth: ``crowdsec-hub/tests/cef-logs`` (header fields of ``s00-raw``, extension
values of the asserted message) and ``crowdsec-hub/tests/unifi-cef`` (the ``s01-parse``
Meta fields that map onto the event schema).  ``crowdsec-hub/tests/unifi-logs`` is not
CEF but netfilter LOG lines from a UniFi gateway, read by the iptables reader.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from conftest import CROWDSEC, need
from crowdsec_asserts import parse_assert_file
from line_reader_fuzz import fuzz_tests

from portradar.events.addresses import key_to_text
from portradar.ingest.cef import CefReader
from portradar.ingest.iptables import IptablesReader
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.sniff import sniff_format

CEF_LOGS = CROWDSEC / "cef-logs"
UNIFI_CEF = CROWDSEC / "unifi-cef"
UNIFI_LOGS = CROWDSEC / "unifi-logs"


def parse(reader: type, text: str, options: ReadOptions | None = None
          ) -> tuple[list[dict], ReadStats]:
    stats = ReadStats(source="test")
    rows = reader().parse_bytes(text.encode(), options or ReadOptions(tz="UTC", year=2025),
                                stats).to_pylist()
    for row in rows:
        row["src"] = key_to_text(row["src_hi"], row["src_lo"])
        row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    return rows, stats


def meta(path, parser: str, stage: str = "s01-parse") -> dict[int, dict[str, object]]:
    return {i: {k.split(".", 1)[1]: v for k, v in d.items() if "." in k}
            for i, d in parse_assert_file(path, stage=stage)[parser].items()}


def test_unifi_cef_matches_crowdsec_parser_assert():
    text = need(UNIFI_CEF / "cef-logs.log").read_text()
    asserted = meta(UNIFI_CEF / "parser.assert", "crowdsecurity/unifi-cef")
    rows, stats = parse(CefReader, text)
    # record 0 is an admin login: a source, no destination, not a connection
    assert dict(stats.skipped) == {"no destination address": 1}
    assert len(rows) == 2
    for row, i in zip(rows, (1, 2), strict=True):
        want = asserted[i]
        assert row["src"] == want["source_ip"]
        assert row["sport"] == int(want["source_port"])
        assert row["dport"] == int(want["destination_port"])
        # record 2 names the target only by alias: the destination is unknown
        assert row["dst"] == want.get("destination_ip", "0.0.0.0")
        assert row["proto"] == {"TCP": 6}[want["protocol"]]
        assert row["outcome"] == want.get("action", "blocked")
        assert row["rule"] == want["ips_signature"]
        assert row["sensor"] == want["device_name"]
        assert row["in_iface"] == want.get("device_interface")
    assert rows[0]["ts"] == datetime(2025, 8, 30, 17, 53, 21, 915000, tzinfo=UTC)


def test_cef_logs_match_crowdsec_parser_assert():
    text = need(CEF_LOGS / "cef-logs.log").read_text()
    asserted = meta(CEF_LOGS / "parser.assert", "crowdsecurity/cef-logs", stage="s00-raw")
    rows, stats = parse(CefReader, text)
    # 0 and 1: admin logins (no destination); 2: a record with no time at all
    assert dict(stats.skipped) == {"no destination address": 2, "no timestamp recognised": 1}
    (row,) = rows
    want = asserted[3]
    line = text.splitlines()[3]
    ext = dict(re.findall(r"(\w+)=(\S+)", line.split("|", 7)[-1]))
    assert (row["src"], row["dst"]) == (ext["src"], ext["dst"])
    assert (row["sport"], row["dport"]) == (int(ext["spt"]), int(ext["dpt"]))
    assert row["sensor"] == want["hostname"]
    assert row["outcome"] == "blocked"  # from the event name "Threat Detected and Blocked"
    # UNIFIutcTime is the UTC instant of the local syslog stamp (Gent, CEST)
    local = datetime.strptime(f"2025 {want['timestamp']}", "%Y %b %d %H:%M:%S")
    assert abs(row["ts"] - local.replace(tzinfo=ZoneInfo("Europe/Brussels"))).total_seconds() < 1


@pytest.mark.parametrize(("line", "expected"), [
    ("<134>Jun 21 10:00:00 sensor1 CEF:0|Security|threatmanager|1.0|100|worm successfully "
     "stopped|10|src=10.0.0.1 dst=2.1.2.2 spt=1232 dpt=445 proto=TCP act=blocked "
     "rt=1687341600000 deviceInboundInterface=eth0 in=60 cnt=3 dvchost=fw-east",
     {"src": "10.0.0.1", "dst": "2.1.2.2", "dport": 445, "outcome": "blocked", "bytes": 60,
      "packets": 3, "sensor": "fw-east", "in_iface": "eth0",
      "rule": "worm successfully stopped", "ts": datetime(2023, 6, 21, 10, 0, tzinfo=UTC)}),
    ("CEF:0|Vendor|Product|1.0|x|pipe \\| in name|3|src=10.0.0.2 dst=10.0.0.3 dpt=22 "
     "proto=UDP act=allow rt=Jun 21 2023 10:00:00 msg=a\\=b",
     {"rule": "pipe | in name", "outcome": "accepted", "proto": 17, "sensor": "default",
      "ts": datetime(2023, 6, 21, 10, 0, tzinfo=UTC)}),
    ("Jun 21 10:00:00 fw CEF:0|V|P|1|2|Deny|5|sourceAddress=2001:db8::7 "
     "destinationAddress=2001:db8::1 sourcePort=5555 destinationPort=23 transportProtocol=TCP "
     "deviceAction=Deny",
     {"src": "2001:db8::7", "dst": "2001:db8::1", "dport": 23, "outcome": "blocked",
      "sensor": "fw", "ts": datetime(2025, 6, 21, 10, 0, tzinfo=UTC)}),
    ("CEF:0|V|P|1|2|Connection|5|src=198.51.100.7 dst=192.0.2.1 dpt=3389 proto=TCP "
     "act=reset start=1687341600",
     {"outcome": "rejected", "ts": datetime(2023, 6, 21, 10, 0, tzinfo=UTC)}),
])
def test_cef_variants(line, expected):
    (row,), stats = parse(CefReader, line)
    assert stats.skipped_total == 0, stats.examples
    for key, value in expected.items():
        assert row[key] == value, (key, row[key])


def test_unifi_plain_logs_are_netfilter_lines_for_the_iptables_reader():
    text = need(UNIFI_LOGS / "unifi-logs.log").read_text()
    assert sniff_format(text.encode()) == "iptables"
    asserted = meta(UNIFI_LOGS / "parser.assert", "crowdsecurity/iptables-logs")
    rows, stats = parse(IptablesReader, text, ReadOptions(tz="UTC", year=2023))
    assert dict(stats.skipped) == {"not a netfilter LOG line (no IN= or OUT= field)": 1}
    assert len(rows) == 3
    for row, i in zip(rows, range(3), strict=True):
        want = asserted[i]
        assert row["src"] == want["src_ip"] and row["dst"] == want["dst_ip"]
        assert (row["sport"], row["dport"]) == (int(want["src_port"]), int(want["dst_port"]))
        assert row["proto"] == 17 and row["in_iface"] == want["int_eth"]
    assert [r["outcome"] for r in rows[:2]] == ["blocked", "blocked"]


def test_unifi_accept_tag_gives_accepted():
    text = need(UNIFI_LOGS / "unifi-logs.log").read_text()
    rows, _ = parse(IptablesReader, text, ReadOptions(tz="UTC", year=2023))
    assert rows[2]["outcome"] == "accepted"  # CrowdSec: Meta action "accept"


def test_samples_sniff_as_cef():
    for path in (CEF_LOGS / "cef-logs.log", UNIFI_CEF / "cef-logs.log"):
        assert sniff_format(need(path).read_bytes()) == "cef"


def test_cli_ingests_unifi_cef(tmp_path):
    from portradar.cli.app import cli
    from portradar.store import Store

    db = tmp_path / "s.duckdb"
    log = need(UNIFI_CEF / "cef-logs.log")
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", "-q", str(log)])
    assert result.exit_code == 0, result.output
    with Store.open(db) as store:
        count = store.con.execute("select count(*) from events where format = 'cef'")
        assert count.fetchone()[0] == 2


def _valid() -> list[bytes]:
    out: list[bytes] = []
    for path in (CEF_LOGS / "cef-logs.log", UNIFI_CEF / "cef-logs.log"):
        if path.exists():
            out += path.read_bytes().splitlines()
    return out or [b"CEF:0|a|b|c|d|e|f|src=1.2.3.4 dst=5.6.7.8 dpt=1 proto=TCP"]


test_fuzz_tolerant, test_fuzz_strict, test_fuzz_sniff = fuzz_tests(CefReader, _valid())
