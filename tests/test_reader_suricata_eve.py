"""The Suricata eve.json reader against CrowdSec's samples and its outcome rules.

Ground truth: ``crowdsec-hub/tests/suricata-logs-evelog`` (``parser.assert`` states
source IP, destination IP and port, protocol, time and signature id of every alert it
parses) and ``suricata-eve-detect`` (its ``scenario.assert`` names 1.2.3.4 as the
attacker; its lines are checked against their own JSON).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from conftest import CROWDSEC, need
from crowdsec_asserts import parse_assert_file
from header_reader_fuzz import fuzz_tests

from portradar.cli.app import cli
from portradar.errors import FormatError
from portradar.events.addresses import key_to_text
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.sniff import sniff_format
from portradar.ingest.suricata_eve import SuricataEveReader
from portradar.store import Store

EVELOG = CROWDSEC / "suricata-logs-evelog"
DETECT = CROWDSEC / "suricata-eve-detect"
PROTO = {"TCP": 6, "UDP": 17, "ICMP": 1}


def parse(data: bytes | str, options: ReadOptions | None = None,
          stats: ReadStats | None = None) -> list[dict]:
    if isinstance(data, str):
        data = data.encode()
    rows = SuricataEveReader().parse_bytes(data, options or ReadOptions(), stats).to_pylist()
    for row in rows:
        row["src"] = key_to_text(row["src_hi"], row["src_lo"])
        row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    return rows


def test_evelog_matches_crowdsec_parser_assert():
    lines = need(EVELOG / "suricata-logs-evelog.log").read_text().splitlines()
    asserted = parse_assert_file(EVELOG / "parser.assert")["crowdsecurity/suricata-evelogs"]
    assert len(asserted) == len(lines) == 8
    checked = 0
    for i, line in enumerate(lines):
        want = asserted[i]
        rows = parse(line + "\n")
        if not want["Success"]:  # flow and stats lines: CrowdSec parses alerts only
            continue
        assert len(rows) == 1, f"line {i + 1}"
        row = rows[0]
        assert row["src"] == want["Meta.source_ip"]
        assert row["dst"] == want["Parsed.dest_ip"]
        assert row["dport"] == int(want["Parsed.dest_port"])
        assert row["proto"] == PROTO[want["Parsed.proto"]]
        assert row["ts"] == datetime.fromisoformat(want["Parsed.time"]).replace(tzinfo=UTC)
        assert row["rule"].startswith(f"sid:{want['Meta.suricata_alert_signature_id']} ")
        assert row["rule"].endswith(want["Parsed.suricata_alert_signature"])
        assert row["outcome"] == "unknown"
        checked += 1
    assert checked == 4


def test_evelog_flows_and_stats():
    stats = ReadStats()
    rows = parse(need(EVELOG / "suricata-logs-evelog.log").read_bytes(), stats=stats)
    assert len(rows) == 6  # 4 alerts + 2 flows
    assert dict(stats.skipped) == {"event_type stats not a probe": 2}
    flows = [r for r in rows if r["rule"] is None]
    assert len(flows) == 2
    for flow in flows:
        # SYN from the client, RST-ACK from the server (tcp_flags_tc "14"): a closed port
        assert (flow["outcome"], flow["packets"], flow["bytes"], flow["tcp_flags"]) == (
            "rejected", 2, 108, 0x06)
        assert flow["ts"].time().isoformat() == "05:48:21.714860"  # flow.start


def test_eve_detect_lines_match_their_json():
    path = need(DETECT / "suricata-eve-detect.log")
    scenario = (DETECT / "scenario.assert").read_text()
    lines = path.read_text().splitlines()
    rows = parse(path.read_bytes())
    assert len(rows) == len(lines) == 4
    for row, line in zip(rows, lines, strict=True):
        event = json.loads(line)
        assert row["src"] == event["src_ip"] and row["dst"] == event["dest_ip"]
        assert (row["sport"], row["dport"]) == (event["src_port"], event["dest_port"])
        assert row["proto"] == PROTO[event["proto"]]
        assert row["in_iface"] == event["in_iface"]
        assert row["rule"] == (f"sid:{event['alert']['signature_id']} "
                               f"{event['alert']['signature']}")
        stamp = datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
        assert row["ts"] == stamp
    assert '"1.2.3.4" in results[0].Overflow.GetSources()' in scenario
    assert "1.2.3.4" in {r["src"] for r in rows}


def flow(state: str = "closed", to_client: int = 1, ts_flags: str | None = "02",
         tc_flags: str | None = "12", proto: str = "TCP", **extra: object) -> str:
    event: dict[str, object] = {
        "timestamp": "2024-01-01T00:00:10.000000+0000", "event_type": "flow",
        "src_ip": "198.51.100.7", "src_port": 4444, "dest_ip": "192.0.2.1", "dest_port": 22,
        "proto": proto,
        "flow": {"pkts_toserver": 1, "pkts_toclient": to_client, "bytes_toserver": 60,
                 "start": "2024-01-01T00:00:00.000000+0000", "state": state,
                 "reason": "timeout"}}
    tcp = {k: v for k, v in (("tcp_flags_ts", ts_flags), ("tcp_flags_tc", tc_flags)) if v}
    if tcp:
        event["tcp"] = tcp
    event.update(extra)
    return json.dumps(event)


@pytest.mark.parametrize(("line", "outcome"), [
    (flow("new", to_client=0, tc_flags=None), "unanswered"),
    (flow("closed", to_client=0, tc_flags=None), "unanswered"),
    (flow(tc_flags="14"), "rejected"),  # RST-ACK to the SYN
    (flow(ts_flags="06", tc_flags="12"), "accepted"),  # SYN-ACK, then the client's RST
    (flow(ts_flags="1b", tc_flags="1b"), "established"),  # handshake and data
    (flow("established", proto="UDP", ts_flags=None, tc_flags=None), "established"),
    (flow("closed", ts_flags=None, tc_flags=None), "established"),
    (flow("bypassed", to_client=1, ts_flags="02", tc_flags="10"), "unknown"),
])
def test_flow_outcomes(line, outcome):
    assert parse(line)[0]["outcome"] == outcome


def test_alert_blocked_drop_and_icmp():
    alert = json.dumps({
        "timestamp": "2024-01-01T00:00:00.5+0000", "event_type": "alert", "host": "ids1",
        "src_ip": "2001:db8::7", "src_port": 1, "dest_ip": "2001:db8::1", "dest_port": 445,
        "proto": "TCP", "alert": {"action": "blocked", "signature_id": 2024218,
                                  "signature": "ET EXPLOIT SMB"}})
    drop = json.dumps({
        "timestamp": "2024-01-01T00:00:01+0000", "event_type": "drop", "src_ip": "10.0.0.9",
        "src_port": 5555, "dest_ip": "10.0.0.1", "dest_port": 3389, "proto": "TCP",
        "drop": {"len": 44, "ttl": 240, "ipid": 54321, "tcpwin": 1024, "tcpseq": 7,
                 "syn": True, "ack": False}})
    icmp = json.dumps({
        "timestamp": "2024-01-01T00:00:02+0000", "event_type": "flow", "src_ip": "10.0.0.9",
        "dest_ip": "10.0.0.1", "proto": "ICMP", "icmp_type": 8, "icmp_code": 0,
        "flow": {"pkts_toserver": 1, "pkts_toclient": 0, "state": "new"}})
    a, d, i = parse("\n".join([alert, drop, icmp]))
    assert (a["outcome"], a["sensor"], a["rule"], a["packets"]) == (
        "blocked", "ids1", "sid:2024218 ET EXPLOIT SMB", 1)
    assert (d["outcome"], d["ttl"], d["ip_id"], d["tcp_window"], d["tcp_seq"],
            d["tcp_flags"], d["bytes"]) == ("blocked", 240, 54321, 1024, 7, 0x02, 44)
    assert (i["proto"], i["icmp_type"], i["icmp_code"], i["outcome"], i["sport"]) == (
        1, 8, 0, "unanswered", None)


def test_other_event_types_are_counted_never_errors():
    lines = [json.dumps({"timestamp": "2024-01-01T00:00:00+0000", "event_type": t})
             for t in ("dns", "http", "dns", "stats")]
    stats = ReadStats(strict=True)
    assert parse("\n".join(lines), ReadOptions(strict=True), stats) == []
    assert dict(stats.skipped) == {"event_type dns not a probe": 2,
                                   "event_type http not a probe": 1,
                                   "event_type stats not a probe": 1}
    with pytest.raises(FormatError, match="no event_type"):
        parse('{"timestamp": "2024-01-01T00:00:00+0000"}', ReadOptions(strict=True),
              ReadStats(strict=True))


def test_bad_records_are_counted_by_reason():
    stats = ReadStats()
    rows = parse("\n".join([flow(), "not json", "[1, 2]",
                            flow().replace('"192.0.2.1"', '"192.0.2.999"'),
                            flow().replace('"dest_port": 22', '"dest_port": 70000')]),
                 stats=stats)
    assert len(rows) == 1
    assert dict(stats.skipped) == {
        "line is not valid JSON": 1, "line is JSON but not an object": 1,
        "dest_ip missing or not an IP address": 1,
        "src_port or dest_port is not a port number 0-65535": 1}


def test_sniffing_picks_suricata():
    for path in (EVELOG / "suricata-logs-evelog.log", DETECT / "suricata-eve-detect.log"):
        assert sniff_format(need(path).read_bytes()) == "suricata_eve"


@pytest.mark.parametrize(("path", "events"), [
    (EVELOG / "suricata-logs-evelog.log", 6), (DETECT / "suricata-eve-detect.log", 4)])
def test_cli_ingests_eve_json(tmp_path, path, events):
    db = tmp_path / "eve.duckdb"
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", "--json", str(need(path))],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["events"] == events
    with Store.open(db) as store:
        count = store.con.execute("select count(*) from events where format = 'suricata_eve'")
        assert count.fetchone()[0] == events


VALID = [line.encode() for line in (
    flow(), flow("new", to_client=0),
    json.dumps({"timestamp": "2024-01-01T00:00:00+0000", "event_type": "alert",
                "src_ip": "1.2.3.4", "dest_ip": "5.6.7.8", "proto": "UDP",
                "alert": {"signature_id": 1, "signature": "x"}}),
    json.dumps({"timestamp": "2024-01-01T00:00:00+0000", "event_type": "dns"}),
)]
test_fuzz_tolerant, test_fuzz_strict, test_fuzz_sniff = fuzz_tests(SuricataEveReader, VALID)
