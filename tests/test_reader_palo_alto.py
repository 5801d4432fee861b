"""The PAN-OS reader against CrowdSec's THREAT sample and the documented TRAFFIC field order.

Ground truth: ``crowdsec-hub/tests/palo-alto-threat`` (the ``s01-parse`` fields of its
``parser.assert`` that map onto the event schema).  TRAFFIC lines are written here in
the field order of the PAN-OS Administrator's Guide ("Traffic Log Fields").
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from conftest import CROWDSEC, need
from crowdsec_asserts import parse_assert_file
from line_reader_fuzz import fuzz_tests

from portradar.events.addresses import key_to_text
from portradar.ingest.palo_alto import PaloAltoReader
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.sniff import sniff_format

THREAT = CROWDSEC / "palo-alto-threat"


def traffic(subtype: str = "end", action: str = "allow", *, src: str = "198.51.100.7",
            dst: str = "192.0.2.10", sport: int = 4444, dport: int = 445, proto: str = "tcp",
            rule: str = "allow-smb", packets_received: int = 5,
            end_reason: str = "tcp-fin", header: str = "<14>Jun 21 10:00:00 PA-VM ") -> str:
    """A TRAFFIC record in the documented field order (PAN-OS 10: fields 0-46 and more)."""
    fields = [
        "1", "2023/06/21 10:00:00", "012801096514", "TRAFFIC", subtype, "2560",
        "2023/06/21 10:00:00", src, dst, "0.0.0.0", "0.0.0.0", rule, "", "", "ms-ds-smb",
        "vsys1", "untrust", "trust", "ethernet1/1", "ethernet1/2", "fwd-profile",
        "2023/06/21 10:00:00", "33333", "1", str(sport), str(dport), "0", "0", "0x19", proto,
        action, "1500", "600", "900", str(5 + packets_received), "2023/06/21 09:59:58", "2",
        "any", "", "7000", "0x0", "Netherlands", "10.0.0.0-10.255.255.255", "", "5",
        str(packets_received), end_reason, "0", "0", "0", "0", "", "PA-VM", "from-policy",
    ]
    return header + ",".join(fields)


def parse(text: str, options: ReadOptions | None = None) -> tuple[list[dict], ReadStats]:
    stats = ReadStats(source="test")
    rows = PaloAltoReader().parse_bytes(text.encode(), options or ReadOptions(tz="UTC"),
                                        stats).to_pylist()
    for row in rows:
        row["src"] = key_to_text(row["src_hi"], row["src_lo"])
        row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    return rows, stats


def test_threat_sample_matches_crowdsec_parser_assert():
    lines = need(THREAT / "palo-alto-threat.log").read_text().splitlines()
    asserted = parse_assert_file(THREAT / "parser.assert")["crowdsecurity/palo-alto-threat-log"]
    rows, stats = parse("\n".join(lines))
    assert stats.skipped_total == 0 and len(rows) == len(lines) == 2
    outcome = {"reset-both": "rejected", "alert": "accepted"}
    for i, row in enumerate(rows):
        want = {k.split(".", 1)[1]: v for k, v in asserted[i].items() if k.startswith("Parsed.")}
        assert row["src"] == want["src_ip"]
        assert row["dst"] == want["dst_ip"]
        assert row["sport"] == int(want["src_port"])
        assert row["dport"] == int(want["dst_port"])
        assert row["proto"] == {"tcp": 6}[want["ip_proto"]]
        assert row["rule"] == want["threat_id"]
        assert row["outcome"] == outcome[want["action"]]
        assert row["in_iface"] == want["ingress_int"]
        assert row["out_iface"] == want["egress_int"]
        assert row["sensor"] == want["syslog_hostname"]
        assert row["packets"] == int(want["repeat_count"])
        assert row["ts"] == datetime.fromisoformat(want["syslog_timestamp"]).astimezone(UTC)


@pytest.mark.parametrize(("line", "expected"), [
    (traffic("drop", "deny", packets_received=0),
     {"outcome": "blocked", "dport": 445, "rule": "allow-smb", "in_iface": "ethernet1/1",
      "out_iface": "ethernet1/2", "sensor": "PA-VM",
      "ts": datetime(2023, 6, 21, 10, 0, tzinfo=UTC)}),
    (traffic("start", "allow"), {"outcome": "accepted"}),
    (traffic("end", "allow"), {"outcome": "established", "bytes": 1500, "packets": 10}),
    (traffic("end", "allow", packets_received=0, end_reason="aged-out"),
     {"outcome": "unanswered"}),
    (traffic("end", "allow", packets_received=1, end_reason="tcp-rst-from-server"),
     {"outcome": "rejected"}),
    (traffic("end", "reset-both"), {"outcome": "rejected"}),
    (traffic("deny", "drop-icmp", proto="icmp", sport=0, dport=0),
     {"outcome": "blocked", "proto": 1, "sport": None, "dport": None}),
    (traffic("drop", "deny", src="2001:db8::7", dst="2001:db8::1", proto="udp", dport=161),
     {"src": "2001:db8::7", "dst": "2001:db8::1", "proto": 17, "dport": 161}),
    (traffic(header="2023-06-21T12:00:00+02:00 pa1 "),
     {"sensor": "pa1", "ts": datetime(2023, 6, 21, 10, 0, tzinfo=UTC)}),
    (traffic(header=""), {"sensor": "012801096514"}),
    (traffic(rule='"rule, with comma"'), {"rule": "rule, with comma"}),
])
def test_traffic_records(line, expected):
    (row,), stats = parse(line)
    assert stats.skipped_total == 0
    for key, value in expected.items():
        assert row[key] == value, key


def test_generated_time_is_local_time_of_tz():
    (row,), _ = parse(traffic(header=""), ReadOptions(tz="Europe/Berlin"))
    assert row["ts"] == datetime(2023, 6, 21, 8, 0, tzinfo=UTC)


def test_other_log_types_are_skipped_by_name():
    system = ("Jul 13 20:39:44 fw 1,2017/07/13 20:39:44,0009C101317,SYSTEM,general,0,"
              '2017/07/13 20:39:44,,general,,0,0,general,informational,"User admin logged in"'
              ",1,0x0")
    rows, stats = parse(system + "\nnot a pan log\n")
    assert rows == []
    assert dict(stats.skipped) == {"PAN-OS SYSTEM log is not read": 1,
                                   "not a PAN-OS log record": 1}


def test_short_record_is_skipped():
    rows, stats = parse(traffic().split(",tcp,")[0])
    assert rows == [] and dict(stats.skipped) == {"PAN-OS TRAFFIC record too short": 1}


def test_samples_sniff_as_palo_alto():
    assert sniff_format(need(THREAT / "palo-alto-threat.log").read_bytes()) == "palo_alto"
    assert sniff_format((traffic() + "\n" + traffic(header="") + "\n").encode()) == "palo_alto"


def test_cli_ingests_threat_and_traffic(tmp_path):
    from portradar.cli.app import cli
    from portradar.store import Store

    log = tmp_path / "pan.log"
    log.write_text(need(THREAT / "palo-alto-threat.log").read_text().rstrip("\n") + "\n"
                   + traffic() + "\n" + traffic("drop", "deny") + "\n")
    db = tmp_path / "s.duckdb"
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", "--tz", "UTC", "-q", str(log)])
    assert result.exit_code == 0, result.output
    with Store.open(db) as store:
        count = store.con.execute("select count(*) from events where format = 'palo_alto'")
        assert count.fetchone()[0] == 4


def _valid() -> list[bytes]:
    path = THREAT / "palo-alto-threat.log"
    sample = path.read_bytes().splitlines() if path.exists() else []
    return [*sample, traffic().encode(), traffic("drop", "deny", header="").encode()]


test_fuzz_tolerant, test_fuzz_strict, test_fuzz_sniff = fuzz_tests(PaloAltoReader, _valid())
