"""The Juniper SRX (RT_FLOW) and NetScreen (ScreenOS) readers against logstash's samples.

Ground truth: every sample of ``spec/patterns/junos_spec.rb`` and
``spec/patterns/netscreen_spec.rb`` (logstash-plugins/logstash-patterns-core,
Apache-2.0; expected values transcribed from the specs, line numbers noted).  The
specs' zones are our ``in_iface``/``out_iface``; their ``source.bytes`` and
``destination.bytes`` are summed into ``bytes``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from conftest import DATA, need
from line_reader_fuzz import fuzz_tests
from logstash_spec import spec_messages

from portradar.events.addresses import key_to_text
from portradar.ingest.juniper_srx import JuniperSrxReader
from portradar.ingest.netscreen import NetscreenReader
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.sniff import sniff_format

SPECS = DATA / "formats" / "logstash-patterns" / "spec" / "patterns"
OPTS = ReadOptions(tz="UTC", year=2023)

# Transcribed from junos_spec.rb (logstash-patterns-core, Apache-2.0), by spec line.
SRX_EXPECTED: dict[int, dict[str, object]] = {
    9: {"src": "10.10.10.2", "sport": 53836, "dst": "10.10.10.1", "dport": 22, "proto": 6,
        "rule": "log-host-traffic", "in_iface": "untrust", "out_iface": "junos-host",
        "bytes": 6657 + 13305, "packets": 78 + 122, "outcome": "established",
        "ts": datetime(2023, 12, 17, 8, 5, 30, tzinfo=UTC)},
    44: {"src": "10.10.10.2", "sport": 53836, "dst": "10.10.10.1", "dport": 22, "proto": 6,
         "rule": "log-host-traffic", "in_iface": "untrust", "out_iface": "junos-host",
         "outcome": "accepted"},
    78: {"src": "10.0.0.1", "sport": 54924, "dst": "192.168.1.1", "dport": 53, "proto": 17,
         "rule": "default-deny(global)", "in_iface": "trust", "out_iface": "trust",
         "sensor": "SRX-1", "outcome": "blocked"},
}

# Transcribed from netscreen_spec.rb (logstash-patterns-core, Apache-2.0), by spec line.
NETSCREEN_EXPECTED: dict[int, dict[str, object]] = {
    9: {"src": "74.168.138.252", "sport": 1732, "dst": "72.72.72.72", "dport": 443,
        "proto": 6, "rule": "244", "in_iface": "Untrust", "out_iface": "Trust", "bytes": 0,
        "sensor": "isg1000-A2", "outcome": "accepted",
        "ts": datetime(2015, 11, 11, 10, 2, 10, tzinfo=UTC)},
    57: {"src": "21.10.90.125", "dst": "23.16.1.1", "sport": None, "dport": None, "proto": 6,
         "rule": "320001", "in_iface": "Null", "out_iface": "self", "bytes": 16384,
         "sensor": "lowly_lizard", "outcome": "blocked",
         "ts": datetime(2009, 3, 18, 16, 7, 6, tzinfo=UTC)},
    83: {"src": "192.168.2.2", "sport": 53, "dst": "1.2.3.4", "dport": 17210, "proto": 17,
         "rule": "120", "in_iface": "Trust", "out_iface": "DMZ", "sensor": "aka1",
         "outcome": "blocked"},
    100: {"src": "192.168.2.2", "dport": 17210, "in_iface": "Trust", "out_iface": "DMZ",
          "sensor": "aka1", "outcome": "blocked"},
}

SD = ('<14>1 2023-06-21T10:00:00.123+02:00 srx1 RT_FLOW - {tag} [junos@2636.1.1.1.2.26 '
      '{pairs}]')


def structured(tag: str, **pairs: str) -> str:
    return SD.format(tag=tag, pairs=" ".join(f'{k.replace("_", "-")}="{v}"'
                                             for k, v in pairs.items()))


SRX_MORE: list[tuple[str, dict[str, object]]] = [
    (structured("RT_FLOW_SESSION_DENY", source_address="198.51.100.7", source_port="4444",
                destination_address="192.0.2.10", destination_port="445",
                service_name="junos-smb", protocol_id="6", icmp_type="0",
                policy_name="deny-all", source_zone_name="untrust",
                destination_zone_name="trust", reason="Denied by policy"),
     {"src": "198.51.100.7", "dport": 445, "rule": "deny-all", "outcome": "blocked",
      "sensor": "srx1", "ts": datetime(2023, 6, 21, 8, 0, 0, 123000, tzinfo=UTC)}),
    (structured("RT_FLOW_SESSION_CLOSE", reason="idle Timeout", source_address="2001:db8::7",
                source_port="5555", destination_address="2001:db8::1",
                destination_port="22", protocol_id="6", policy_name="ssh-in",
                source_zone_name="untrust", destination_zone_name="trust",
                packets_from_client="3", bytes_from_client="180", packets_from_server="0",
                bytes_from_server="0", elapsed_time="60"),
     {"src": "2001:db8::7", "dst": "2001:db8::1", "dport": 22, "outcome": "unanswered",
      "packets": 3, "bytes": 180}),
    (structured("RT_FLOW_SESSION_CLOSE", reason="TCP SERVER RST", source_address="198.51.100.7",
                source_port="4445", destination_address="192.0.2.11", destination_port="23",
                protocol_id="6", policy_name="any", source_zone_name="untrust",
                destination_zone_name="trust", packets_from_client="1",
                bytes_from_client="60", packets_from_server="1", bytes_from_server="40"),
     {"dport": 23, "outcome": "rejected"}),
    ("Sep 29 23:49:20 SRX-1 RT_FLOW: RT_FLOW_SESSION_DENY: session denied "
     "203.0.113.9/1->192.0.2.1/2 icmp 1(8) default-deny(global) untrust trust UNKNOWN UNKNOWN "
     "N/A(N/A) ge-0/0/0.0 UNKNOWN policy deny",
     {"proto": 1, "icmp_type": 8, "sport": None, "dport": None, "outcome": "blocked"}),
    ("Jun 21 10:00:00 srx2 RT_FLOW: RT_FLOW_SESSION_CREATE: session created "
     "10.0.0.5/51000->93.184.216.34/443 0x0 junos-https 203.0.113.5/40000->93.184.216.34/443 "
     "0x0 source rule r1 N/A N/A 6 lan-out trust untrust 4242 N/A(N/A) ge-0/0/1.0 UNKNOWN "
     "UNKNOWN Web",
     {"src": "10.0.0.5", "dport": 443, "rule": "lan-out", "in_iface": "trust",
      "outcome": "accepted"}),
]


def rows_of(reader: type, text: str, options: ReadOptions = OPTS) -> tuple[list[dict], ReadStats]:
    stats = ReadStats(source="test")
    rows = reader().parse_bytes(text.encode(), options, stats).to_pylist()
    for row in rows:
        row["src"] = key_to_text(row["src_hi"], row["src_lo"])
        row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    return rows, stats


def check(row: dict, expected: dict[str, object]) -> None:
    for key, value in expected.items():
        assert row[key] == value, (key, row[key], value)


def samples(name: str) -> dict[int, str]:
    return dict(spec_messages(need(SPECS / name)))


def test_every_junos_sample_is_covered():
    assert set(samples("junos_spec.rb")) == set(SRX_EXPECTED)


def test_every_netscreen_sample_is_covered():
    assert set(samples("netscreen_spec.rb")) == set(NETSCREEN_EXPECTED)


@pytest.mark.parametrize("line", sorted(SRX_EXPECTED))
def test_junos_spec_sample(line):
    (row,), stats = rows_of(JuniperSrxReader, samples("junos_spec.rb")[line])
    assert stats.skipped_total == 0
    assert row["format"] == "juniper_srx"
    check(row, SRX_EXPECTED[line])


@pytest.mark.parametrize("line", sorted(NETSCREEN_EXPECTED))
def test_netscreen_spec_sample(line):
    (row,), stats = rows_of(NetscreenReader, samples("netscreen_spec.rb")[line])
    assert stats.skipped_total == 0
    assert row["format"] == "netscreen"
    check(row, NETSCREEN_EXPECTED[line])


@pytest.mark.parametrize(("line", "expected"), SRX_MORE, ids=lambda v: str(v)[:30])
def test_srx_structured_and_plain_variants(line, expected):
    (row,), stats = rows_of(JuniperSrxReader, line)
    assert stats.skipped_total == 0
    check(row, expected)


def test_srx_skips_other_messages_with_reasons():
    text = ("Sep 29 23:49:20 SRX-1 sshd[12]: Accepted password for root\n"
            "Sep 29 23:49:20 SRX-1 RT_FLOW: RT_FLOW_SESSION_DENY: session denied garbage\n")
    rows, stats = rows_of(JuniperSrxReader, text)
    assert rows == []
    assert dict(stats.skipped) == {"not a Juniper RT_FLOW session log": 1,
                                   "RT_FLOW_SESSION_DENY text not recognised": 1}


def test_netscreen_skips_non_traffic_messages():
    text = ("Jun  2 14:53:31 fire00 aka1: NetScreen device_id=aka1  [Root]system-warning-00515: "
            "Admin user netscreen has logged on via SSH from 10.0.0.1:22\n")
    rows, stats = rows_of(NetscreenReader, text)
    assert rows == [] and dict(stats.skipped) == {"NetScreen message is not a traffic log": 1}


def test_netscreen_closed_session_outcomes():
    base = ('Jun  2 14:53:31 fw ns1: NetScreen device_id=ns1  [Root]system-notification-00257'
            '(traffic): start_time="2023-06-02 14:53:30" duration=5 policy_id=3 service=ssh '
            'proto=6 src zone=Untrust dst zone=Trust action=Permit sent=120 rcvd={rcvd} '
            'src=198.51.100.7 dst=192.0.2.10 src_port=4444 dst_port=22 session_id=9 '
            'reason=Close - TCP FIN')
    rows, _ = rows_of(NetscreenReader, base.format(rcvd=0) + "\n" + base.format(rcvd=900))
    assert [r["outcome"] for r in rows] == ["unanswered", "established"]


def test_sniffing_tells_srx_and_netscreen_apart():
    srx = "\n".join(samples("junos_spec.rb").values()) + "\n"
    ns = "\n".join(samples("netscreen_spec.rb").values()) + "\n"
    assert sniff_format(srx.encode()) == "juniper_srx"
    assert sniff_format(ns.encode()) == "netscreen"
    assert sniff_format((SRX_MORE[0][0] + "\n").encode()) == "juniper_srx"
    assert JuniperSrxReader.sniff(ns.encode()) == 0.0
    assert NetscreenReader.sniff(srx.encode()) == 0.0


@pytest.mark.parametrize(("reader", "spec", "name"), [
    (JuniperSrxReader, "junos_spec.rb", "juniper_srx"),
    (NetscreenReader, "netscreen_spec.rb", "netscreen"),
])
def test_cli_ingests_spec_samples(tmp_path, reader, spec, name):
    from portradar.cli.app import cli
    from portradar.store import Store

    log = tmp_path / f"{name}.log"
    log.write_text("\n".join(samples(spec).values()) + "\n")
    db = tmp_path / "s.duckdb"
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", "--tz", "UTC", "--year",
                                      "2023", "-q", str(log)])
    assert result.exit_code == 0, result.output
    with Store.open(db) as store:
        count = store.con.execute("select count(*) from events where format = ?",
                                  [name]).fetchone()[0]
    assert count == len(samples(spec))


def _valid(spec: str) -> list[bytes]:
    path = SPECS / spec
    return [m.encode() for _, m in spec_messages(path)] if path.exists() else [b"x"]


test_srx_fuzz_tolerant, test_srx_fuzz_strict, test_srx_fuzz_sniff = fuzz_tests(
    JuniperSrxReader, _valid("junos_spec.rb") + [line.encode() for line, _ in SRX_MORE])
test_netscreen_fuzz_tolerant, test_netscreen_fuzz_strict, test_netscreen_fuzz_sniff = fuzz_tests(
    NetscreenReader, _valid("netscreen_spec.rb"))
