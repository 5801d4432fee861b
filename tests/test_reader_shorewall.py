"""Shorewall logs are netfilter LOG lines: the iptables reader parses logstash's samples.

Ground truth: every sample of ``spec/patterns/shorewall_spec.rb``
(logstash-plugins/logstash-patterns-core, Apache-2.0; expected values transcribed from
the spec, line numbers noted).  Shorewall's prefix ``Shorewall:<chain>:<action>:`` is
the rule, and its action gives the outcome.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from conftest import DATA, need
from logstash_spec import spec_messages

from portradar.events.addresses import key_to_text
from portradar.ingest.iptables import IptablesReader
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.sniff import sniff_format

SPEC = DATA / "formats" / "logstash-patterns" / "spec" / "patterns" / "shorewall_spec.rb"

# Transcribed from shorewall_spec.rb (logstash-patterns-core, Apache-2.0), by spec line.
EXPECTED: dict[int, dict[str, object]] = {
    9: {"sensor": "myHost", "ts": datetime(2023, 5, 28, 17, 23, 25, tzinfo=UTC),
        "rule": "Shorewall:FORWARD:REJECT:", "outcome": "rejected", "in_iface": "eth2",
        "out_iface": "eth2", "src": "1.2.3.4", "dst": "192.168.0.10", "proto": 17,
        "sport": 5353, "dport": 5335, "bytes": 141, "ttl": 63, "ip_id": 55251},
    54: {"sensor": "server", "ts": datetime(2023, 5, 28, 17, 31, 7, tzinfo=UTC),
         "rule": "Shorewall:net2fw:DROP:", "outcome": "blocked", "in_iface": "eth1",
         "out_iface": None, "src": "127.0.0.1", "dst": "1.2.3.4", "proto": 6, "sport": 59088,
         "dport": 8080, "bytes": 60, "ttl": 49, "ip_id": 6480, "tcp_window": 2920,
         "tcp_flags": 2},
}


def samples() -> dict[int, str]:
    return dict(spec_messages(need(SPEC)))


def test_every_shorewall_sample_is_covered():
    assert set(samples()) == set(EXPECTED)


@pytest.mark.parametrize("line", sorted(EXPECTED))
def test_iptables_reader_parses_shorewall_sample(line):
    stats = ReadStats(source="shorewall")
    batch = IptablesReader().parse_bytes(samples()[line].encode(),
                                         ReadOptions(tz="UTC", year=2023), stats)
    assert stats.skipped_total == 0, stats.examples
    (row,) = batch.to_pylist()
    row["src"] = key_to_text(row["src_hi"], row["src_lo"])
    row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    for key, value in EXPECTED[line].items():
        assert row[key] == value, (key, row[key], value)


def test_shorewall_samples_sniff_as_iptables():
    assert sniff_format(("\n".join(samples().values()) + "\n").encode()) == "iptables"


def test_cli_ingests_shorewall_log(tmp_path):
    from portradar.cli.app import cli
    from portradar.store import Store

    log = tmp_path / "shorewall.log"
    log.write_text("\n".join(samples().values()) + "\n")
    db = tmp_path / "s.duckdb"
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", "--tz", "UTC", "--year",
                                      "2023", "-q", str(log)])
    assert result.exit_code == 0, result.output
    with Store.open(db) as store:
        got = store.con.execute("select count(*), min(format) from events").fetchone()
    assert got == (2, "iptables")
