"""The MikroTik RouterOS reader against CrowdSec's samples and their ``parser.assert``.

Ground truth: ``crowdsec-hub/tests/mikrotik-logs`` (every firewall line parses to the
``s01-parse`` fields CrowdSec asserts; the login failure is skipped) and
``mikrotik-scan-multi_ports`` (one source probes 17 distinct ports).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from conftest import CROWDSEC, need
from crowdsec_asserts import parse_assert_file
from line_reader_fuzz import fuzz_tests

from portradar.events.addresses import key_to_text
from portradar.ingest.mikrotik import MikrotikReader
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.sniff import sniff_format

LOGS = CROWDSEC / "mikrotik-logs"
SCAN = CROWDSEC / "mikrotik-scan-multi_ports"
PROTO = {"TCP": 6, "UDP": 17}


def parse(text: str, options: ReadOptions | None = None) -> tuple[list[dict], ReadStats]:
    stats = ReadStats(source="test")
    rows = MikrotikReader().parse_bytes(text.encode(), options or ReadOptions(tz="UTC"),
                                        stats).to_pylist()
    for row in rows:
        row["src"] = key_to_text(row["src_hi"], row["src_lo"])
        row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    return rows, stats


def test_mikrotik_logs_match_crowdsec_parser_assert():
    lines = need(LOGS / "mikrotik-logs.log").read_text().splitlines()
    asserted = parse_assert_file(LOGS / "parser.assert")["a1ad/mikrotik-logs"]
    rows, stats = parse("\n".join(lines))
    firewall = [i for i in range(len(lines)) if "chain" in _parsed(asserted[i])]
    assert len(rows) == len(firewall) == 6
    assert dict(stats.skipped) == {"not a MikroTik firewall log line": 1}
    for row, i in zip(rows, firewall, strict=True):
        want = _parsed(asserted[i])
        assert row["src"] == want["source_ip"]
        assert row["dst"] == want["dst_ip"]
        assert row["sport"] == int(want["src_port"])
        assert row["dport"] == int(want["dst_port"])
        assert row["proto"] == PROTO[want["proto"]]
        assert row["bytes"] == int(want["length"])
        assert row["in_iface"] == want["if_in"]
        assert row["out_iface"] == (None if want["if_out"].startswith("(unknown")
                                    else want["if_out"])
        assert row["rule"] == want.get("tag", want["chain"])
        stamp = datetime.fromisoformat(want["timestamp"]).astimezone(UTC)
        assert row["ts"] == stamp
        # the log prefix names the action: drop-* is blocked, no prefix says nothing
        assert row["outcome"] == ("blocked" if "tag" in want else "unknown")


def _parsed(entry: dict) -> dict[str, str]:
    return {k.split(".", 1)[1]: v for k, v in entry.items() if k.startswith("Parsed.")}


def test_scan_sample_shows_one_source_probing_many_ports():
    rows, stats = parse(need(SCAN / "mikrotik-scan-multi_ports.log").read_text())
    assert stats.skipped_total == 0 and len(rows) == 19
    ports = {r["dport"] for r in rows if r["src"] == "36.97.161.219"}
    assert len(ports) >= 15
    assert {r["outcome"] for r in rows} == {"blocked"} and {r["tcp_flags"] for r in rows} == {2}


VARIANTS = [
    ("Mar 18 20:35:05 MikroTik firewall,info input: in:ether1 out:(unknown 0), src-mac "
     "00:17:10:88:bc:02, proto ICMP (type 8, code 0), 198.51.100.9->81.82.202.145, len 84",
     {"proto": 1, "icmp_type": 8, "icmp_code": 0, "sport": None, "dport": None,
      "sensor": "MikroTik", "ts": datetime(2023, 3, 18, 20, 35, 5, tzinfo=UTC)}),
    ("<30>Mar 18 20:35:05 gw firewall,info forward: in:bridge out:ether1, "
     "connection-state:established,snat src-mac 00:17:10:88:bc:02, proto TCP (ACK,PSH), "
     "192.168.88.10:51234->8.8.8.8:443, NAT (192.168.88.10:51234->1.2.3.4:51234)->8.8.8.8:443, "
     "len 71",
     {"src": "192.168.88.10", "dst": "8.8.8.8", "dport": 443, "tcp_flags": 0x18,
      "in_iface": "bridge", "out_iface": "ether1", "rule": "forward"}),
    ("<134>1 2023-03-18T20:35:05.1Z gw firewall,info reject-ssh input: in:ether1 "
     "out:(unknown 0), proto TCP (SYN), [2001:db8::7]:5555->[2001:db8::1]:22, len 80",
     {"src": "2001:db8::7", "dport": 22, "outcome": "rejected", "rule": "reject-ssh",
      "ts": datetime(2023, 3, 18, 20, 35, 5, 100000, tzinfo=UTC)}),
    ("Mar 18 20:35:05 gw firewall,info input: in:ether1 out:(unknown 0), proto ICMPv6 "
     "(type 128, code 0), 2001:db8::7->2001:db8::1, len 64",
     {"src": "2001:db8::7", "proto": 58, "icmp_type": 128}),
]


@pytest.mark.parametrize(("line", "expected"), VARIANTS)
def test_routeros_variants(line, expected):
    (row,), stats = parse(line, ReadOptions(tz="UTC", year=2023))
    assert stats.skipped_total == 0
    for key, value in expected.items():
        assert row[key] == value, key


def test_action_option_sets_outcome_of_unprefixed_rules():
    line = ("Mar 18 20:35:05 gw firewall,info input: in:ether1 out:(unknown 0), proto TCP "
            "(SYN), 198.51.100.9:1->192.0.2.1:23, len 40")
    (row,), _ = parse(line, ReadOptions(tz="UTC", year=2023, actions={"input": "blocked"}))
    assert row["outcome"] == "blocked"


def test_samples_sniff_as_mikrotik():
    for path in (LOGS / "mikrotik-logs.log", SCAN / "mikrotik-scan-multi_ports.log"):
        assert sniff_format(need(path).read_bytes()) == "mikrotik"


def test_cli_ingests_scan_sample(tmp_path):
    from portradar.cli.app import cli
    from portradar.store import Store

    db = tmp_path / "s.duckdb"
    log = need(SCAN / "mikrotik-scan-multi_ports.log")
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", "-q", str(log)])
    assert result.exit_code == 0, result.output
    with Store.open(db) as store:
        got = store.con.execute("select count(*), count(distinct dport) from events "
                                "where format = 'mikrotik'").fetchone()
    assert got == (19, 17)


def test_fast_templates_agree_with_the_regex(monkeypatch):
    from portradar.ingest import mikrotik
    from portradar.ingest.text_fields import Templates

    lines = need(LOGS / "mikrotik-logs.log").read_text().splitlines()
    lines += [line for line, _ in VARIANTS]
    lines += [line.replace("in:", "in: ").replace(", len", ", NAT (1.2.3.4:5->6.7.8.9:10)"
                                                     "->6.7.8.9:10, len") for line in lines]
    text = "\n".join(lines) + "\n"
    fast = parse(text, ReadOptions(tz="UTC", year=2023))
    monkeypatch.setattr(mikrotik, "HEAD", Templates.compile([]))
    monkeypatch.setattr(mikrotik, "TAIL", Templates.compile([]))
    slow = parse(text, ReadOptions(tz="UTC", year=2023))
    assert fast[0] == slow[0]
    assert dict(fast[1].skipped) == dict(slow[1].skipped)


def _valid() -> list[bytes]:
    path = LOGS / "mikrotik-logs.log"
    return path.read_bytes().splitlines() if path.exists() else [b"x"]


test_fuzz_tolerant, test_fuzz_strict, test_fuzz_sniff = fuzz_tests(MikrotikReader, _valid())
