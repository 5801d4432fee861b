"""The nfdump reader: nfcapd files read through the ``nfdump`` program.

Without nfdump installed, the parsing and the subprocess plumbing are tested with a
stand-in ``nfdump`` script (a test double at the process boundary).  With nfdump and
nfpcapd installed (Debian package ``nfdump``), a capture the test writes is turned into
an nfcapd file by nfpcapd and must read back as the flows in it.
"""

from __future__ import annotations

import io
import shutil
import socket
import stat
import struct
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from portradar.errors import InputError
from portradar.events.addresses import format_addresses
from portradar.events.schema import EVENT_SCHEMA, validate_batch
from portradar.ingest.netflow_decoder import REPLY_REASON
from portradar.ingest.nfdump import COLUMNS, NfdumpReader, flag_bits
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.sniff import sniff_format

NFCAPD_HEAD = bytes.fromhex("0ca50200") + bytes(60)

CANNED = """\
1700000000.123,6    ,                               10.9.0.1,                               10.9.0.2, 40000,    22,     0,     0,......S.,       1,      40,     0,     0,                                0.0.0.0
1700000001.000,17   ,                               10.9.0.1,                               10.9.0.2,  5353,    53,     0,     0,........,       2,      76,     3,     4,                             192.0.2.9
1700000002.500,1    ,                               10.9.0.1,                               10.9.0.2,     0,   8.0,     8,     0,........,       1,      28,     0,     0,                                0.0.0.0
1700000003.000,6    ,     2001:db8:aaaa:bbbb:cccc:dddd:eeee:1,                            2001:db8::2,  1234,   443,     0,     0,...AP.SF,       9,     900,     0,     0,                                0.0.0.0
not a flow line
"""  # noqa: E501 - nfdump pads its columns


def rows_of(batches: list[pa.RecordBatch]) -> list[dict]:
    table = pa.Table.from_batches(batches, schema=EVENT_SCHEMA)
    rows = table.to_pylist()
    for row, s, d in zip(rows, format_addresses(table.column("src_hi").to_numpy(),
                                                table.column("src_lo").to_numpy()),
                         format_addresses(table.column("dst_hi").to_numpy(),
                                          table.column("dst_lo").to_numpy()), strict=True):
        row["src"], row["dst"] = s, d
    return rows


def test_sniff_recognises_nfcapd_files_only():
    assert NfdumpReader.sniff(NFCAPD_HEAD) == 1.0
    assert NfdumpReader.sniff(bytes.fromhex("0ca50100") + bytes(60)) == 1.0  # layout 1
    assert NfdumpReader.sniff(bytes.fromhex("0ca50900") + bytes(60)) == 0.0
    assert NfdumpReader.sniff(b"\xd4\xc3\xb2\xa1" + bytes(60)) == 0.0  # a pcap
    assert sniff_format(NFCAPD_HEAD) == "nfdump"


def test_flag_strings():
    assert flag_bits("CEUAPRSF") == 0xFF and flag_bits("...A...F") == 0x11
    assert flag_bits("ABC") is None


def test_missing_program_is_a_clear_input_error(monkeypatch):
    monkeypatch.setattr(NfdumpReader, "program", "nfdump-not-installed-here")
    with pytest.raises(InputError, match="apt-get install nfdump"):
        list(NfdumpReader().read(io.BytesIO(NFCAPD_HEAD), start_offset=0,
                                 options=ReadOptions(), stats=ReadStats(source="x.nfcapd")))


@pytest.fixture
def fake_nfdump(tmp_path, monkeypatch) -> Path:
    """A stand-in ``nfdump`` that checks its arguments and prints canned output."""
    out = tmp_path / "canned.txt"
    out.write_text(CANNED)
    script = tmp_path / "nfdump"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1 $2 $3 $4" = "-q -N -6 -r" ] || { echo "bad arguments: $*" >&2; exit 2; }\n'
        '[ -f "$5" ] || { echo "no file $5" >&2; exit 3; }\n'
        f'cat "{out}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(NfdumpReader, "program", str(script))
    return script


def read(data: bytes, start_line: int = 1, reader: NfdumpReader | None = None,
         strict: bool = False, **options) -> tuple[list[dict], ReadStats, list]:
    stats = ReadStats(source="test.nfcapd", strict=strict)
    chunks = list((reader or NfdumpReader()).read(io.BytesIO(data), start_offset=0,
                                                  options=ReadOptions(**options), stats=stats,
                                                  start_line=start_line))
    for chunk in chunks:
        validate_batch(chunk.batch)
    return rows_of([c.batch for c in chunks]), stats, chunks


def test_output_parsed_into_events(fake_nfdump):
    rows, stats, chunks = read(NFCAPD_HEAD)
    assert len(rows) == 4 and stats.records == 5
    assert stats.skipped == {"nfdump output line not understood": 1}
    syn, dns, ping, v6 = rows
    assert (syn["src"], syn["dst"], syn["sport"], syn["dport"], syn["proto"]) == (
        "10.9.0.1", "10.9.0.2", 40000, 22, 6)
    assert syn["ts"].isoformat() == "2023-11-14T22:13:20.123000+00:00"
    assert (syn["tcp_flags"], syn["outcome"], syn["sensor"]) == (2, "unanswered", "default")
    assert (dns["packets"], dns["bytes"], dns["tcp_flags"], dns["sensor"]) == (2, 76, None,
                                                                             "192.0.2.9")
    assert (dns["in_iface"], dns["out_iface"]) == ("3", "4")
    assert (ping["sport"], ping["dport"], ping["icmp_type"], ping["icmp_code"]) == (
        None, None, 8, 0)
    assert v6["src"] == "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1" and v6["outcome"] == "established"
    assert {r["format"] for r in rows} == {"nfdump"}
    assert chunks[-1].offset == len(NFCAPD_HEAD)


def test_resume_skips_the_records_already_stored(fake_nfdump):
    rows, _, _ = read(NFCAPD_HEAD, start_line=3, sensor="edge")
    assert [r["proto"] for r in rows] == [1, 6] and {r["sensor"] for r in rows} == {"edge"}


def test_resumed_read_names_the_right_line_of_a_bad_flow(fake_nfdump):
    lines = CANNED.splitlines(keepends=True)[:4]
    lines[3] = lines[3].replace("2001:db8::2", "not-an-address")
    (fake_nfdump.parent / "canned.txt").write_text("".join(lines))
    for start in (1, 3):  # whole, then resumed after the first two flows
        _, stats, _ = read(NFCAPD_HEAD, start_line=start)
        assert stats.skipped == {"nfdump output line not understood": 1}
        assert stats.examples[0].startswith("test.nfcapd:4: "), stats.examples


#: Probes from 10.9.0.1 and what 10.9.0.2 answered, as nfcapd stores both directions.
REPLIES = """\
1700000000.000,6,10.9.0.1,10.9.0.2,40000,23,0,0,......S.,1,40,0,0,0.0.0.0
1700000000.001,6,10.9.0.2,10.9.0.1,23,40000,0,0,...A.R..,1,40,0,0,0.0.0.0
1700000000.000,6,10.9.0.1,10.9.0.2,40001,22,0,0,.....RS.,2,80,0,0,0.0.0.0
1700000000.001,6,10.9.0.2,10.9.0.1,22,40001,0,0,...A..S.,3,132,0,0,0.0.0.0
1700000000.000,6,10.9.0.1,10.9.0.2,40002,25,0,0,......S.,1,40,0,0,0.0.0.0
1700000005.000,6,203.0.113.9,10.9.0.2,80,51000,0,0,...A..S.,1,40,0,0,0.0.0.0
1700000005.000,6,203.0.113.9,10.9.0.2,80,51001,0,0,...A.R..,1,40,0,0,0.0.0.0
"""


def test_reply_flows_are_counted_not_stored(fake_nfdump):
    (fake_nfdump.parent / "canned.txt").write_text(REPLIES)
    rows, stats, _ = read(NFCAPD_HEAD)
    got = [(r["src"], r["sport"], r["dport"], r["packets"], r["bytes"], r["outcome"])
           for r in rows]
    assert got == [
        ("10.9.0.1", 40000, 23, 1, 40, "rejected"),
        ("10.9.0.1", 40001, 22, 2, 80, "accepted"),  # the SYN-ACK's 3 packets not added
        ("10.9.0.1", 40002, 25, 1, 40, "unanswered"),
        ("203.0.113.9", 80, 51000, 1, 40, "unknown"),  # backscatter: answers no request here
        ("203.0.113.9", 80, 51001, 1, 40, "unknown"),
    ]
    assert (stats.records, stats.events) == (7, 5)
    assert stats.skipped == {REPLY_REASON: 2} and stats.examples == []
    # strict mode: not an error
    _, strict, _ = read(NFCAPD_HEAD, strict=True)
    assert strict.skipped == {REPLY_REASON: 2} and strict.events == 5
    # keep_replies=True: every flow record an event, the replies' outcome unknown
    kept, stats, _ = read(NFCAPD_HEAD, reader=NfdumpReader(keep_replies=True))
    assert [(r["src"], r["dport"], r["outcome"]) for r in kept] == [
        ("10.9.0.1", 23, "rejected"), ("10.9.0.2", 40000, "unknown"),
        ("10.9.0.1", 22, "accepted"), ("10.9.0.2", 40001, "unknown"),
        ("10.9.0.1", 25, "unanswered"), ("203.0.113.9", 51000, "unknown"),
        ("203.0.113.9", 51001, "unknown")]
    assert stats.skipped_total == 0 and stats.events == 7
    # a resumed read after the probe: its reply has nothing to pair with, and stays
    rows, stats, _ = read(NFCAPD_HEAD, start_line=2)
    assert [(r["src"], r["dport"], r["outcome"]) for r in rows][:2] == [
        ("10.9.0.2", 40000, "unknown"), ("10.9.0.1", 22, "accepted")]
    assert stats.skipped == {REPLY_REASON: 1}


def test_reply_flows_stay_out_of_the_port_activity(fake_nfdump, tmp_path):
    from portradar.ingest.pipeline import ingest_inputs
    from portradar.store import Store

    (fake_nfdump.parent / "canned.txt").write_text(REPLIES)
    path = tmp_path / "nfcapd.202311142210"
    path.write_bytes(NFCAPD_HEAD)
    with Store.open(tmp_path / "s.duckdb") as store:
        (result,) = ingest_inputs(store, [path])  # sniffed
        assert (result.format, result.records, result.events) == ("nfdump", 7, 5)
        assert result.skipped == {REPLY_REASON: 2}
        (again,) = ingest_inputs(store, [path])
        assert again.status == "unchanged"
        assert store.con.execute("SELECT count(*) FROM events").fetchone()[0] == 5
        ports = store.con.execute(
            """SELECT proto, port, sources FROM port_activity_daily WHERE sensor = '*'
               ORDER BY proto, port""").fetchall()
    assert ports == [(6, 22, 1), (6, 23, 1), (6, 25, 1), (6, 51000, 1), (6, 51001, 1)]


#: A DNS query and its answer, UDP probes of a closed port and the target's two port
#: unreachables (one flow of 2 packets), a ping and its echo reply.
UDP_ICMP = """\
1700000000.000,17,10.9.0.5,10.9.0.53,5353,53,0,0,........,1,60,0,0,0.0.0.0
1700000000.002,17,10.9.0.53,10.9.0.5,53,5353,0,0,........,1,120,0,0,0.0.0.0
1700000001.000,17,10.9.0.1,10.9.0.2,40000,161,0,0,........,1,40,0,0,0.0.0.0
1700000001.100,17,10.9.0.1,10.9.0.2,40000,1900,0,0,........,1,40,0,0,0.0.0.0
1700000001.001,1,10.9.0.2,10.9.0.1,0,3.3,3,3,........,2,112,0,0,0.0.0.0
1700000002.000,1,10.9.0.1,10.9.0.2,0,8.0,8,0,........,1,84,0,0,0.0.0.0
1700000002.001,1,10.9.0.2,10.9.0.1,0,0.0,0,0,........,1,84,0,0,0.0.0.0
"""


def test_udp_answers_port_unreachables_and_echo_replies_are_outcomes(fake_nfdump):
    (fake_nfdump.parent / "canned.txt").write_text(UDP_ICMP)
    rows, stats, _ = read(NFCAPD_HEAD)
    assert [(r["src"], r["proto"], r["dport"], r["icmp_type"], r["outcome"])
            for r in rows] == [
        ("10.9.0.5", 17, 53, None, "accepted"),
        ("10.9.0.1", 17, 161, None, "rejected"),
        ("10.9.0.1", 17, 1900, None, "rejected"),
        ("10.9.0.1", 1, None, 8, "accepted"),
    ]
    assert (stats.records, stats.events) == (7, 4)
    assert stats.skipped == {REPLY_REASON: 3}
    kept, stats, _ = read(NFCAPD_HEAD, reader=NfdumpReader(keep_replies=True))
    assert len(kept) == 7 and stats.skipped_total == 0
    assert [r["outcome"] for r in kept] == ["accepted", "unknown", "rejected", "rejected",
                                            "unknown", "accepted", "unknown"]


def test_nfdump_failure_is_an_input_error(fake_nfdump):
    fake_nfdump.write_text("#!/bin/sh\necho 'Open file: corrupt header' >&2\nexit 255\n")
    with pytest.raises(InputError, match=r"nfdump failed .*corrupt header"):
        read(NFCAPD_HEAD)


def test_columns_match_the_format():
    from portradar.ingest.nfdump import NFDUMP_FORMAT

    assert len(NFDUMP_FORMAT.removeprefix("fmt:").split(",")) == len(COLUMNS)


# --- the real nfdump ---------------------------------------------------------------------

def _frame(src: str, dst: str, proto: int, l4: bytes) -> bytes:
    if ":" in src:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(l4), proto, 64,
                         socket.inet_pton(socket.AF_INET6, src),
                         socket.inet_pton(socket.AF_INET6, dst)) + l4
        ethertype = 0x86DD
    else:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst)) + l4
        ethertype = 0x0800
    return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + struct.pack(
        "!H", ethertype) + ip


def _tcp(sport: int, dport: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 1024, 0, 0) + payload


def _pcap(frames: list[tuple[float, bytes]]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for ts, frame in frames:
        out += struct.pack("<IIII", int(ts), round(ts % 1 * 1e6), len(frame),
                           len(frame)) + frame
    return out


@pytest.mark.netns
def test_nfpcapd_file_reads_back_as_the_flows_written(tmp_path):
    from portradar.ingest.pipeline import ingest_input
    from portradar.store import Store

    if not (shutil.which("nfdump") and shutil.which("nfpcapd")):
        pytest.skip("nfdump/nfpcapd not installed (Debian package nfdump)")
    t0 = 1_700_000_000.25
    frames = [(t0 + i, _frame("10.9.0.1", "10.9.0.2", 6, _tcp(40000 + i, 22, 0x02)))
              for i in range(3)]  # three SYN probes
    conversation = [0x02, 0x10, 0x18, 0x11]  # SYN, ACK, PSH+ACK, FIN+ACK on one 5-tuple
    frames += [(t0 + 10 + i * 0.1, _frame("10.9.0.1", "10.9.0.3", 6,
                                          _tcp(41000, 80, f, b"x" * 10)))
               for i, f in enumerate(conversation)]
    frames.append((t0 + 20, _frame("10.9.0.1", "10.9.0.2", 17,
                                   struct.pack("!HHHH", 5353, 53, 18, 0) + b"q" * 10)))
    frames.append((t0 + 21, _frame("2001:db8::1", "2001:db8::2", 6, _tcp(1234, 443, 0x02))))
    # a probe of a closed port and its RST-ACK; a half-open probe, SYN-ACK, the prober's RST
    frames += [(t0 + 30, _frame("10.9.0.1", "10.9.0.2", 6, _tcp(40010, 23, 0x02))),
               (t0 + 30.001, _frame("10.9.0.2", "10.9.0.1", 6, _tcp(23, 40010, 0x14))),
               (t0 + 31, _frame("10.9.0.1", "10.9.0.2", 6, _tcp(40011, 22, 0x02))),
               (t0 + 31.001, _frame("10.9.0.2", "10.9.0.1", 6, _tcp(22, 40011, 0x12))),
               (t0 + 31.002, _frame("10.9.0.1", "10.9.0.2", 6, _tcp(40011, 22, 0x04)))]
    pcap = tmp_path / "t.pcap"
    pcap.write_bytes(_pcap(frames))
    out = tmp_path / "flows"
    out.mkdir()
    subprocess.run(["nfpcapd", "-r", str(pcap), "-w", str(out)], check=True, timeout=60,
                   stdin=subprocess.DEVNULL, capture_output=True)
    files = sorted(p for p in out.rglob("nfcapd.*") if p.is_file())
    assert len(files) == 1, files

    with Store.open(":memory:") as store:
        result = ingest_input(store, files[0])  # the format is sniffed
        assert (result.status, result.format) == ("ingested", "nfdump"), result.message
        # the two replies are their probes' outcomes, not events
        assert (result.records, result.events, result.skipped) == (10, 8, {REPLY_REASON: 2})
        table = store.query("SELECT * FROM events ORDER BY ts")
    rows = rows_of(table.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA).to_batches())
    got = [(r["src"], r["dst"], r["proto"], r["sport"], r["dport"], r["tcp_flags"],
            r["packets"], r["outcome"]) for r in rows]
    assert got == [
        ("10.9.0.1", "10.9.0.2", 6, 40000, 22, 0x02, 1, "unanswered"),
        ("10.9.0.1", "10.9.0.2", 6, 40001, 22, 0x02, 1, "unanswered"),
        ("10.9.0.1", "10.9.0.2", 6, 40002, 22, 0x02, 1, "unanswered"),
        ("10.9.0.1", "10.9.0.3", 6, 41000, 80, 0x1B, 4, "established"),
        ("10.9.0.1", "10.9.0.2", 17, 5353, 53, None, 1, "unknown"),
        ("2001:db8::1", "2001:db8::2", 6, 1234, 443, 0x02, 1, "unanswered"),
        ("10.9.0.1", "10.9.0.2", 6, 40010, 23, 0x02, 1, "rejected"),
        ("10.9.0.1", "10.9.0.2", 6, 40011, 22, 0x06, 2, "accepted"),
    ]
    assert int(rows[0]["ts"].timestamp() * 1000) == int(t0 * 1000)  # millisecond precision
