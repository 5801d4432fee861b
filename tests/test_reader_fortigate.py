"""The FortiGate reader on lines written in FortiOS's documented traffic/UTM log format.

No FortiGate sample is in the shared data; the lines below follow the FortiOS *Log
Message Reference* (traffic log 0000000013 "forward", 0000000011 "local", anomaly log
0720018432), in the FortiOS 7 form (quoted strings, ``eventtime`` in nanoseconds, ``tz``)
and the FortiOS 5 form (bare values, no ``eventtime``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from line_reader_fuzz import fuzz_tests

from portradar.events.addresses import key_to_text
from portradar.ingest.fortigate import FortigateReader
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.sniff import sniff_format


def fos7(**over: str) -> str:
    """A FortiOS 7 forward-traffic deny line, with fields replaced or added by ``over``."""
    fields = {
        "date": "2023-06-21", "time": "10:00:00", "devname": '"FGT60E"',
        "devid": '"FGT60E4Q16000000"', "eventtime": "1687334400123456789", "tz": '"+0200"',
        "logid": '"0000000013"', "type": '"traffic"', "subtype": '"forward"',
        "level": '"notice"', "vd": '"root"', "srcip": "198.51.100.7", "srcport": "4444",
        "srcintf": '"wan1"', "srcintfrole": '"wan"', "dstip": "192.0.2.10", "dstport": "445",
        "dstintf": '"internal"', "dstintfrole": '"lan"', "srccountry": '"Netherlands"',
        "sessionid": "1234", "proto": "6", "action": '"deny"', "policyid": "0",
        "policytype": '"policy"', "service": '"SMB"', "trandisp": '"noop"', "duration": "0",
        "sentbyte": "0", "rcvdbyte": "0", "sentpkt": "0", "appcat": '"unscanned"',
        "crscore": "30", "craction": "131072", "crlevel": '"high"',
    }
    fields.update(over)
    return " ".join(f"{k}={v}" for k, v in fields.items() if v != "")


FOS5 = ("Jun 21 10:00:02 fgt date=2016-01-01 time=10:00:02 devname=FG100D devid=FG100D3G00000000 "
        "logid=0000000013 type=traffic subtype=forward level=notice vd=root srcip=203.0.113.9 "
        'srcport=0 srcintf="port1" dstip=192.0.2.1 dstport=0 dstintf="port2" sessionid=9 '
        "proto=1 action=deny policyid=0 icmpid=0x0001 icmptype=0x08 icmpcode=0x00")

ANOMALY = ('date=2023-06-21 time=10:00:03 devname="FGT60E" tz="+0200" logid="0720018432" '
           'type="utm" subtype="anomaly" eventtype="anomaly" level="alert" vd="root" '
           'severity="critical" srcip=198.51.100.66 srccountry="China" dstip=192.0.2.10 '
           'srcintf="wan1" sessionid=0 action="clear_session" proto=6 service="tcp/1433" '
           'count=1 attack="tcp_port_scan" srcport=43210 dstport=1433 attackid=100663402 '
           'policyid=1 policytype="DoS-policy"')

EVENT = ('date=2023-06-21 time=10:00:04 devname="FGT60E" tz="+0200" logid="0100032001" '
         'type="event" subtype="system" level="information" vd="root" '
         'logdesc="Admin login successful" user="admin"')


def parse(text: str, options: ReadOptions | None = None) -> tuple[list[dict], ReadStats]:
    stats = ReadStats(source="test")
    rows = FortigateReader().parse_bytes(text.encode(), options or ReadOptions(tz="UTC"),
                                         stats).to_pylist()
    for row in rows:
        row["src"] = key_to_text(row["src_hi"], row["src_lo"])
        row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    return rows, stats


@pytest.mark.parametrize(("line", "expected"), [
    (fos7(), {"src": "198.51.100.7", "sport": 4444, "dst": "192.0.2.10", "dport": 445,
              "proto": 6, "outcome": "blocked", "rule": "0", "sensor": "FGT60E",
              "in_iface": "wan1", "out_iface": "internal", "bytes": 0, "packets": 1,
              "ts": datetime(2023, 6, 21, 8, 0, 0, 123456, tzinfo=UTC)}),
    # without eventtime the date/time are read in the zone of tz=
    (fos7(eventtime=""), {"ts": datetime(2023, 6, 21, 8, 0, tzinfo=UTC)}),
    (fos7(eventtime="", tz='"-0430"'), {"ts": datetime(2023, 6, 21, 14, 30, tzinfo=UTC)}),
    (fos7(eventtime="1687334400"), {"ts": datetime(2023, 6, 21, 8, 0, tzinfo=UTC)}),
    (fos7(action='"accept"', policyid="7", policyname='"LAN out"'),
     {"outcome": "accepted", "rule": "LAN out"}),
    (fos7(action='"close"', sentbyte="1200", rcvdbyte="5400", sentpkt="10", rcvdpkt="9"),
     {"outcome": "established", "bytes": 6600, "packets": 19}),
    (fos7(action='"timeout"', sentbyte="60", rcvdbyte="0", sentpkt="1"),
     {"outcome": "unanswered", "bytes": 60}),
    (fos7(action='"server-rst"', sentpkt="1", rcvdpkt="1"), {"outcome": "rejected"}),
    (fos7(action='"server-rst"', sentpkt="9", rcvdpkt="8"), {"outcome": "established"}),
    (fos7(action='"ip-conn"'), {"outcome": "unanswered"}),
    (fos7(subtype='"local"', srcip="2001:db8::7", dstip="2001:db8::1", dstport="22"),
     {"src": "2001:db8::7", "dst": "2001:db8::1", "dport": 22}),
    ("<189>" + fos7(), {"sensor": "FGT60E", "dport": 445}),
    (FOS5, {"sensor": "FG100D", "proto": 1, "icmp_type": 8, "icmp_code": 0, "sport": None,
            "dport": None, "outcome": "blocked", "in_iface": "port1",
            "ts": datetime(2016, 1, 1, 10, 0, 2, tzinfo=UTC)}),
    (ANOMALY, {"rule": "tcp_port_scan", "outcome": "blocked", "dport": 1433,
               "src": "198.51.100.66"}),
    (ANOMALY.replace('"clear_session"', '"detected"'), {"outcome": "accepted"}),
])
def test_fortios_lines(line, expected):
    (row,), stats = parse(line)
    assert stats.skipped_total == 0, stats.examples
    assert row["format"] == "fortigate"
    for key, value in expected.items():
        assert row[key] == value, (key, row[key])


def test_event_logs_and_garbage_are_skipped():
    rows, stats = parse(EVENT + "\nhello world\n")
    assert rows == []
    assert dict(stats.skipped) == {"FortiGate event/system log is not read": 1,
                                   "not a FortiGate key=value log": 1}


def test_sniffing_picks_fortigate():
    text = "\n".join([fos7(), FOS5, ANOMALY, EVENT]) + "\n"
    assert sniff_format(text.encode()) == "fortigate"


def test_cli_ingests_fortigate_log(tmp_path):
    from portradar.cli.app import cli
    from portradar.store import Store

    log = tmp_path / "fgt.log"
    log.write_text("\n".join([fos7(), fos7(dstport="3389"), FOS5, ANOMALY, EVENT]) + "\n")
    db = tmp_path / "s.duckdb"
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", "--tz", "UTC", "-q", str(log)])
    assert result.exit_code == 0, result.output
    with Store.open(db) as store:
        count = store.con.execute("select count(*) from events where format = 'fortigate'")
        assert count.fetchone()[0] == 4


VALID = [fos7().encode(), FOS5.encode(), ANOMALY.encode(), EVENT.encode(),
         fos7(action='"close"', sentbyte="10", rcvdbyte="20").encode()]
test_fuzz_tolerant, test_fuzz_strict, test_fuzz_sniff = fuzz_tests(FortigateReader, VALID)
