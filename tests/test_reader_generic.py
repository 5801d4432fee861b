"""The generic table reader: CSV and JSON lines with an explicit column mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from header_reader_fuzz import fuzz_tests

from portradar.cli.app import cli
from portradar.errors import InputError
from portradar.events.addresses import key_to_text
from portradar.ingest.generic_table import GenericTableReader
from portradar.ingest.pipeline import ingest_input
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.registry import get_reader
from portradar.store import Store

MAPPING = {"ts": "time", "src": "source", "dst": "destination", "sport": "spt",
           "dport": "dpt", "proto": "protocol", "outcome": "action", "packets": "count",
           "rule": "policy"}

CSV = """\
time,source,destination,spt,dpt,protocol,action,count,policy
2024-02-01T10:00:00Z,198.51.100.7,192.0.2.1,4444,445,tcp,deny,2,edge-in
2024-02-01T10:00:01+01:00,198.51.100.7,2001:db8::1,4445,22,TCP,allow,,
1706781602.25,198.51.100.8,192.0.2.1,,1434,17,blocked,1,"edge, udp"
2024-02-01 10:00:03,198.51.100.9,192.0.2.1,,,icmp,REJECT,1,
"""


def parse(data: str | bytes, reader: GenericTableReader | None = None,
          options: ReadOptions | None = None, stats: ReadStats | None = None) -> list[dict]:
    if isinstance(data, str):
        data = data.encode()
    reader = reader or GenericTableReader(mapping=MAPPING)
    rows = reader.parse_bytes(data, options or ReadOptions(tz="UTC"), stats).to_pylist()
    for row in rows:
        row["src"] = key_to_text(row["src_hi"], row["src_lo"])
        row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    return rows


def test_csv_with_mapping():
    stats = ReadStats()
    rows = parse(CSV, stats=stats)
    assert stats.skipped_total == 0
    got = [(r["ts"], r["src"], r["dst"], r["sport"], r["dport"], r["proto"], r["outcome"],
            r["packets"], r["rule"], r["sensor"]) for r in rows]
    assert got == [
        (datetime(2024, 2, 1, 10, tzinfo=UTC), "198.51.100.7", "192.0.2.1", 4444, 445, 6,
         "blocked", 2, "edge-in", "generic"),
        (datetime(2024, 2, 1, 9, 0, 1, tzinfo=UTC), "198.51.100.7", "2001:db8::1", 4445, 22, 6,
         "accepted", 1, None, "generic"),
        (datetime(2024, 2, 1, 10, 0, 2, 250000, tzinfo=UTC), "198.51.100.8", "192.0.2.1", None,
         1434, 17, "blocked", 1, "edge, udp", "generic"),
        (datetime(2024, 2, 1, 10, 0, 3, tzinfo=UTC), "198.51.100.9", "192.0.2.1", None, None,
         1, "rejected", 1, None, "generic"),
    ]


def test_delimiters_and_naive_times_in_the_given_zone():
    text = CSV.replace(",", ";").replace('"edge; udp"', "edge")
    rows = parse(text, options=ReadOptions(tz="Europe/Berlin"))
    assert rows[3]["ts"] == datetime(2024, 2, 1, 9, 0, 3, tzinfo=UTC)
    tabbed = "ts\tsrc\tdst\tproto\n2024-02-01T10:00:00Z\t1.2.3.4\t5.6.7.8\tudp\n"
    (row,) = parse(tabbed, GenericTableReader())
    assert (row["src"], row["proto"]) == ("1.2.3.4", 17)


@pytest.mark.parametrize(("fmt", "value", "expected"), [
    ("epoch", "1706781600.5", datetime(2024, 2, 1, 10, 0, 0, 500000, tzinfo=UTC)),
    ("epoch_ms", "1706781600500", datetime(2024, 2, 1, 10, 0, 0, 500000, tzinfo=UTC)),
    ("epoch_us", "1706781600000001", datetime(2024, 2, 1, 10, 0, 0, 1, tzinfo=UTC)),
    ("iso", "2024-02-01T11:00:00+01:00", datetime(2024, 2, 1, 10, tzinfo=UTC)),
    ("%d/%m/%Y %H:%M:%S", "01/02/2024 11:00:00", datetime(2024, 2, 1, 10, tzinfo=UTC)),
    ("%d/%b/%Y:%H:%M:%S %z", "01/Feb/2024:12:00:00 +0200", datetime(2024, 2, 1, 10,
                                                                      tzinfo=UTC)),
])
def test_time_formats(fmt, value, expected):
    text = f"ts,src,dst,proto\n{value},1.2.3.4,5.6.7.8,tcp\n"
    (row,) = parse(text, GenericTableReader(ts_format=fmt),
                   ReadOptions(tz="Europe/Berlin"))
    assert row["ts"] == expected


def test_json_lines_with_paths():
    lines = [
        {"@timestamp": "2024-02-01T10:00:00Z", "client": {"ip": "198.51.100.7", "port": 5000},
         "server": {"ip": "192.0.2.1", "port": 3389}, "network": {"transport": "tcp"},
         "event": {"action": "dropped"}, "tcp_flags": "S", "observer": "fw-2"},
        {"@timestamp": 1706781601, "client": {"ip": "198.51.100.7"},
         "server": {"ip": "192.0.2.1"}, "network": {"transport": "icmp"}, "icmp": [8, 0]},
    ]
    reader = GenericTableReader(mapping={
        "ts": "@timestamp", "src": "$.client.ip", "dst": "$.server.ip",
        "sport": "$.client.port", "dport": "$.server.port", "proto": "$.network.transport",
        "outcome": "$.event.action", "icmp_type": "$.icmp[0]", "icmp_code": "$.icmp[1]",
        "sensor": "observer"})
    stats = ReadStats()
    a, b = parse("\n".join(json.dumps(x) for x in lines) + "\nnot json\n", reader, stats=stats)
    assert (a["src"], a["sport"], a["dport"], a["proto"], a["tcp_flags"], a["sensor"]) == (
        "198.51.100.7", 5000, 3389, 6, 0x02, "fw-2")
    assert a["outcome"] == "blocked"  # "dropped" reads like an iptables DROP prefix
    assert (b["proto"], b["icmp_type"], b["icmp_code"], b["sensor"]) == (1, 8, 0, "generic")
    assert b["ts"] == datetime(2024, 2, 1, 10, 0, 1, tzinfo=UTC)
    assert dict(stats.skipped) == {"line is not valid JSON": 1}


def test_action_words_can_be_overridden():
    text = "ts,src,dst,proto,outcome\n1,1.2.3.4,5.6.7.8,tcp,noted\n"
    (row,) = parse(text, GenericTableReader())
    assert row["outcome"] == "unknown"
    (row,) = parse(text, GenericTableReader(), ReadOptions(actions={"noted": "rejected"}))
    assert row["outcome"] == "rejected"


def test_resuming_a_grown_table_reads_its_header_first(tmp_path, store):
    line = "{p},1.2.3.4,198.51.100.7,2024-02-01T10:00:00Z,udp\n"
    table = tmp_path / "probes.csv"
    table.write_text("dport,dst,src,ts,proto\n" + "".join(line.format(p=p) for p in range(20)))
    first = ingest_input(store, table, fmt="generic")
    with table.open("a") as fh:
        fh.write("".join(line.format(p=p) for p in range(20, 30)))
    grown = ingest_input(store, table, fmt="generic")
    assert (first.events, grown.events, grown.skipped, grown.status) == (20, 10, {}, "ingested")
    ports = store.con.execute("select min(dport), max(dport), count(*) from events").fetchone()
    assert ports == (0, 29, 30)


def test_bad_rows_are_counted_by_reason():
    text = (b"ts,src,dst,proto,dport\n"
            b"1,1.2.3.4,5.6.7.8,tcp,80,extra\n"
            b'1,"1.2.3.4,5.6.7.8,tcp,80\n'
            b"1,1.2.3.4,5.6.7.8,tcp,80\n"
            b"x,1.2.3.4,5.6.7.8,tcp,80\n"
            b"1,1.2.3.4,5.6.7.8,xtp,80\n"
            b"1,1.2.3.4,5.6.7.8,tcp,80000\n"
            b"1,1.2.3.4,,tcp,80\n") + b"1,\xff,5.6.7.8,tcp,80\n"
    stats = ReadStats()
    rows = parse(text, GenericTableReader(), stats=stats)
    assert len(rows) == 1
    assert dict(stats.skipped) == {
        "CSV row with a different number of columns than the header": 2,
        "time missing or not in the expected format": 1,
        "protocol missing or not a name or number 0-255": 1,
        "port is not a number 0-65535": 1,
        "destination address missing or not an IPv4 or IPv6 address": 1,
        "line is not valid UTF-8": 1,
    }


def test_configuration_errors_are_explained():
    with pytest.raises(InputError, match="no column for ts"):
        parse("time,a,b\n1,2,3\n", GenericTableReader(mapping={"src": "a", "dst": "b"}))
    with pytest.raises(InputError, match="cannot map"):
        GenericTableReader(mapping={"port": "x"})
    with pytest.raises(InputError, match="time format"):
        GenericTableReader(ts_format="julian")


def test_never_sniffed_but_available_by_name(tmp_path):
    assert GenericTableReader.sniff(CSV.encode()) == 0.0
    assert get_reader("generic") is GenericTableReader
    table = tmp_path / "probes.csv"
    table.write_text("ts,src,dst,proto,dport,outcome\n" + "".join(
        f"2024-02-01T10:00:{i:02d}Z,198.51.100.{i % 5 + 1},192.0.2.1,tcp,{1000 + i},blocked\n"
        for i in range(40)))
    db = tmp_path / "generic.duckdb"
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", str(db), "ingest", "--json", str(table)],
                           catch_exceptions=False)
    assert result.exit_code != 0  # not guessed
    result = runner.invoke(cli, ["--db", str(db), "ingest", "--format", "generic", "--json",
                                 str(table)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["events"] == 40
    with Store.open(db) as store:
        count = store.con.execute("select count(*) from events where format = 'generic'")
        assert count.fetchone()[0] == 40


HEADER = b"time,source,destination,spt,dpt,protocol,action,count,policy\n"
VALID = [line.encode() for line in CSV.splitlines()[1:]]
test_fuzz_tolerant, test_fuzz_strict, test_fuzz_sniff = fuzz_tests(
    lambda: GenericTableReader(mapping=MAPPING, fmt="csv"), VALID, header=HEADER)
test_fuzz_json_tolerant, test_fuzz_json_strict, _ = fuzz_tests(
    lambda: GenericTableReader(fmt="jsonl"),
    [b'{"ts": 1, "src": "1.2.3.4", "dst": "::1", "proto": "tcp", "dport": 22}',
     b'{"ts": "2024-01-01T00:00:00Z", "src": "1.2.3.4", "dst": "5.6.7.8", "proto": 17}'])
