"""The Zeek conn.log reader: TSV (with and without header), JSON lines, outcome mapping.

Ground truth: the Bro/Zeek conn sample lines of logstash-patterns-core's
``bro_spec.rb`` (Apache-2.0) and the source/destination values the spec expects of
them; the rest are conn.log records written here from Zeek's documented format.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from conftest import DATA, need
from header_reader_fuzz import fuzz_tests
from logstash_spec import spec_messages

from portradar.cli.app import cli
from portradar.errors import FormatError
from portradar.events.addresses import key_to_text
from portradar.ingest.pipeline import ingest_input
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.sniff import sniff_format
from portradar.ingest.zeek_conn import CONN_FIELDS, CONN_FIELDS_OLD, ZeekConnReader
from portradar.store import Store

SPEC = DATA / "formats" / "logstash-patterns" / "spec" / "patterns" / "bro_spec.rb"
PROTO = {"tcp": 6, "udp": 17, "icmp": 1}


def header(fields: list[str], sep: str = "\t") -> str:
    return (
        "#separator \\x09\n" + sep.join(["#set_separator", ","]) + "\n"
        + sep.join(["#empty_field", "(empty)"]) + "\n" + sep.join(["#unset_field", "-"]) + "\n"
        + sep.join(["#path", "conn"]) + "\n" + sep.join(["#open", "2019-01-01-00-00-00"]) + "\n"
        + sep.join(["#fields", *fields]) + "\n"
        + sep.join(["#types", *(["string"] * len(fields))]) + "\n"
    )


def conn(**values: str) -> str:
    """One TSV record in the current field layout, ``-`` for what is not given."""
    base = {"ts": "1700000000.000000", "uid": "Cx", "id.orig_h": "198.51.100.7",
            "id.orig_p": "40000", "id.resp_h": "192.0.2.1", "id.resp_p": "23", "proto": "tcp",
            "conn_state": "S0", "history": "S", "orig_pkts": "1", "orig_ip_bytes": "44"}
    base.update({k.replace("__", "."): v for k, v in values.items()})
    return "\t".join(base.get(name, "-") for name in CONN_FIELDS)


def parse(data: bytes | str, options: ReadOptions | None = None,
          stats: ReadStats | None = None) -> list[dict]:
    if isinstance(data, str):
        data = data.encode()
    rows = ZeekConnReader().parse_bytes(data, options or ReadOptions(), stats).to_pylist()
    for row in rows:
        row["src"] = key_to_text(row["src_hi"], row["src_lo"])
        row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    return rows


def _hash(text: str, key: str, pos: int) -> dict[str, object]:
    body = re.compile(rf'"{key}"\s*=>\s*\{{(.*?)\}}', re.S).search(text, pos)
    assert body is not None
    pairs = re.findall(r'"(\w+)"\s*=>\s*(?:"([^"]*)"|(\d+))', body[1])
    return {k: (s if s else int(n)) for k, s, n in pairs}


def spec_conn_samples() -> list[tuple[int, str, dict, dict, str]]:
    """(spec line, message, expected source, expected destination, transport)."""
    text = need(SPEC).read_text()
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    out = []
    for line_no, message in spec_messages(SPEC):
        if not ZeekConnReader.sniff(message.encode()):
            continue
        pos = starts[line_no - 1]
        transport = re.compile(r'"transport"\s*=>\s*"(\w+)"').search(text, pos)
        assert transport is not None
        out.append((line_no, message, _hash(text, "source", pos),
                    _hash(text, "destination", pos), transport[1]))
    return out


def _check_spec_row(row: dict, message: str, src: dict, dst: dict, transport: str) -> None:
    assert row["src"] == src["ip"] and row["sport"] == src["port"]
    assert row["dst"] == dst["ip"] and row["dport"] == dst["port"]
    assert row["packets"] == src["packets"] and row["bytes"] == src["bytes"]
    assert row["proto"] == PROTO[transport]
    seconds, micros = message.split("\t")[0].split(".")
    assert row["ts"] == datetime.fromtimestamp(int(seconds), UTC).replace(
        microsecond=int(micros))


def test_bro_spec_conn_lines_without_header():
    samples = spec_conn_samples()
    assert len(samples) == 4  # BRO_CONN (old and "updated" layout), ZEEK_CONN (plain, MACs)
    for line_no, message, src, dst, transport in samples:
        rows = parse(message + "\n")
        assert len(rows) == 1, f"bro_spec.rb:{line_no}"
        _check_spec_row(rows[0], message, src, dst, transport)


def test_bro_spec_conn_lines_under_their_headers_concatenated():
    layouts = {20: CONN_FIELDS_OLD, 21: CONN_FIELDS,
               23: [*CONN_FIELDS, "orig_l2_addr", "resp_l2_addr"]}
    samples = spec_conn_samples()
    text = "".join(header(layouts[len(m.split("\t"))]) + m + "\n#close\t2019\n"
                   for _, m, *_ in samples)
    stats = ReadStats()
    rows = parse(text, stats=stats)
    assert len(rows) == len(samples) and stats.skipped_total == 0
    for row, (_, message, src, dst, transport) in zip(rows, samples, strict=True):
        _check_spec_row(row, message, src, dst, transport)
    assert [r["outcome"] for r in rows] == ["established", "established", "unknown",
                                             "established"]  # SF, SF, SHR, SF


@pytest.mark.parametrize(("state", "history", "outcome"), [
    ("S0", "S", "unanswered"),
    ("S0", "D", "unanswered"),  # UDP, no reply
    ("REJ", "Sr", "rejected"),
    ("RSTOS0", "SR", "unanswered"),
    ("RSTO", "ShR", "accepted"),  # half-open scan of an open port
    ("RSTO", "ShADdR", "established"),
    ("RSTR", "ShAr", "rejected"),  # reset by the responder before any payload
    ("RSTR", "ShADdr", "established"),
    ("RSTRH", "Hr", "rejected"),
    ("SF", "ShADadfF", "established"),
    ("S1", "ShA", "established"),
    ("S2", "ShAF", "established"),
    ("S3", "ShAf", "established"),
    ("SH", "SF", "unknown"),
    ("SHR", "Hf", "unknown"),
    ("OTH", "-", "unknown"),
])
def test_conn_state_outcomes(state, history, outcome):
    rows = parse(header(CONN_FIELDS) + conn(conn_state=state, history=history) + "\n")
    assert rows[0]["outcome"] == outcome


def test_icmp_type_code_and_ipv6():
    text = header(CONN_FIELDS) + "\n".join([
        conn(proto="icmp", id__orig_p="8", id__resp_p="0", conn_state="OTH"),
        conn(proto="icmp", **{"id.orig_h": "2001:db8::1", "id.resp_h": "2001:db8::2"},
             id__orig_p="128", id__resp_p="0"),
        conn(proto="udp", id__resp_p="53", orig_pkts="3", orig_ip_bytes="-"),
    ]) + "\n"
    icmp4, icmp6, udp = parse(text)
    assert (icmp4["proto"], icmp4["icmp_type"], icmp4["icmp_code"]) == (1, 8, 0)
    assert icmp4["sport"] is None and icmp4["dport"] is None
    assert (icmp6["proto"], icmp6["icmp_type"], icmp6["src"]) == (58, 128, "2001:db8::1")
    assert (udp["proto"], udp["dport"], udp["packets"], udp["bytes"]) == (17, 53, 3, None)


def test_separator_and_null_tokens_from_the_header():
    fields = ["ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
              "conn_state", "orig_pkts", "orig_ip_bytes"]
    text = ("#separator \\x2c\n#set_separator,|\n#empty_field,EMPTY\n#unset_field,NA\n"
            "#path,conn\n#fields," + ",".join(fields) + "\n"
            "1700000000.25,198.51.100.7,1234,192.0.2.1,22,tcp,S0,NA,EMPTY\n")
    (row,) = parse(text)
    assert (row["sport"], row["dport"], row["outcome"]) == (1234, 22, "unanswered")
    assert row["packets"] == 1 and row["bytes"] is None  # unset / empty: missing


def test_header_state_carries_across_chunks_and_rotation():
    fields = ["id.resp_p", "id.resp_h", "proto", "ts", "id.orig_p", "id.orig_h", "conn_state"]
    line = "{p}\t192.0.2.1\ttcp\t17000000{i:02d}.5\t4444\t198.51.100.{s}\tS0\n"
    first = "".join(line.format(p=i % 1000, i=i % 100, s=i % 200 + 1) for i in range(3000))
    text = header(fields) + first + header(CONN_FIELDS) + conn(id__resp_p="3389") + "\n"
    stats = ReadStats()
    reader = ZeekConnReader()
    chunks = list(reader.read(io.BytesIO(text.encode()), start_offset=0,
                              options=ReadOptions(chunk_bytes=1 << 16), stats=stats))
    assert len(chunks) > 1
    ports = [p for c in chunks for p in c.batch.column("dport").to_pylist()]
    assert len(ports) == 3001 and stats.skipped_total == 0
    assert ports[:3] == [0, 1, 2] and ports[-1] == 3389


class OneWay:
    """A stream that cannot seek (standard input, a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._io = io.BytesIO(data)

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        return self._io.read(size)

    def readinto(self, view: memoryview) -> int:
        return self._io.readinto(view)


def test_resuming_a_grown_log_replays_its_header(tmp_path, store):
    fields = ["id.resp_p", "id.resp_h", "proto", "ts", "id.orig_p", "id.orig_h", "conn_state"]
    line = "{p}\t192.0.2.1\ttcp\t1700000000.5\t4444\t198.51.100.7\tS0\n"
    log = tmp_path / "conn.log"
    log.write_text(header(fields) + "".join(line.format(p=p) for p in range(100)))
    first = ingest_input(store, log)
    with log.open("a") as fh:
        fh.write("".join(line.format(p=p) for p in range(100, 150)))
    grown = ingest_input(store, log)
    assert (first.events, grown.events, grown.resumed_at, grown.skipped) == (100, 50, 108, {})
    ports = store.con.execute("select min(dport), max(dport), count(*) from events").fetchone()
    assert ports == (0, 149, 150)
    # the same from a stream that cannot seek: the header is read through, not sought
    data = log.read_bytes()
    offset = data.index(line.format(p=100).encode())
    chunks = list(ZeekConnReader().read(OneWay(data), start_offset=offset,
                                        options=ReadOptions(), stats=ReadStats()))
    assert [c.batch.column("dport").to_pylist() for c in chunks] == [list(range(100, 150))]
    assert chunks[-1].offset == len(data)


def test_json_lines():
    lines = [
        {"ts": 1541350796.901974, "uid": "C1", "id.orig_h": "192.168.0.26", "id.orig_p": 54855,
         "id.resp_h": "54.85.115.89", "id.resp_p": 443, "proto": "tcp", "conn_state": "SF",
         "history": "ShADadfF", "orig_pkts": 7, "orig_ip_bytes": 1439},
        {"ts": "2020-10-08T13:53:18.216970Z", "id.orig_h": "2001:db8::7", "id.orig_p": 5353,
         "id.resp_h": "2001:db8::1", "id.resp_p": 53, "proto": "udp", "conn_state": "S0"},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n{broken\n"
    stats = ReadStats()
    a, b = parse(text, stats=stats)
    assert (a["src"], a["dport"], a["packets"], a["bytes"], a["outcome"]) == (
        "192.168.0.26", 443, 7, 1439, "established")
    assert a["ts"] == datetime(2018, 11, 4, 16, 59, 56, 901974, tzinfo=UTC)
    assert (b["dst"], b["proto"], b["outcome"]) == ("2001:db8::1", 17, "unanswered")
    assert b["ts"] == datetime(2020, 10, 8, 13, 53, 18, 216970, tzinfo=UTC)
    assert dict(stats.skipped) == {"line is not valid JSON": 1}


def test_other_zeek_logs_are_skipped_and_strict_stops():
    dns = (header(["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "query"])
           .replace("#path\tconn", "#path\tdns").replace("id.orig_h", "orig")
           + "1700000000.1\tC1\t10.0.0.1\t5353\t10.0.0.2\t53\texample.com\n")
    stats = ReadStats()
    assert parse(dns, stats=stats) == []
    assert stats.skipped_total == 1
    with pytest.raises(FormatError, match=r"dns\.log:9: not a conn\.log record"):
        parse(dns, ReadOptions(strict=True), ReadStats(source="dns.log", strict=True))
    assert ZeekConnReader.sniff(dns.encode()) < 0.5


def test_unknown_transport_is_counted_not_an_error():
    text = header(CONN_FIELDS) + conn(proto="unknown_transport", conn_state="OTH") + "\n"
    stats = ReadStats(strict=True)
    assert parse(text, ReadOptions(strict=True), stats) == []
    assert list(stats.skipped.values()) == [1]


def test_sniffing_picks_zeek_conn():
    tsv = header(CONN_FIELDS) + conn() + "\n"
    js = json.dumps({"ts": 1.5, "id.orig_h": "1.2.3.4", "id.orig_p": 1, "id.resp_h": "1.2.3.5",
                     "id.resp_p": 2, "proto": "tcp", "conn_state": "S0"}) + "\n"
    assert sniff_format(tsv.encode()) == "zeek_conn"
    assert sniff_format(js.encode()) == "zeek_conn"
    assert sniff_format((conn() + "\n").encode()) == "zeek_conn"


def test_cli_ingests_conn_log(tmp_path):
    samples = spec_conn_samples()
    log = tmp_path / "conn.log"
    log.write_text(header(CONN_FIELDS) + "\n".join(
        conn(id__resp_p=str(p), conn_state="S0") for p in range(50)) + "\n"
        + "".join(m + "\n" for _, m, *_ in samples if len(m.split("\t")) >= 21))
    db = tmp_path / "zeek.duckdb"
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", "--json", str(log)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)[0]
    assert (summary["format"], summary["events"], summary["skipped"]) == ("zeek_conn", 53, 0)
    with Store.open(db) as store:
        count = store.con.execute("select count(*) from events where format = 'zeek_conn'")
        assert count.fetchone()[0] == 53


VALID = [line.encode() for line in (
    conn(), conn(proto="udp", conn_state="SF"), conn(proto="icmp", id__orig_p="3"),
    "#separator \\x09", "#fields\t" + "\t".join(CONN_FIELDS),
    json.dumps({"ts": 1.5, "id.orig_h": "1.2.3.4", "id.resp_h": "::1", "proto": "tcp"}),
)]
test_fuzz_tolerant, test_fuzz_strict, test_fuzz_sniff = fuzz_tests(
    ZeekConnReader, VALID, header=header(CONN_FIELDS).encode())
