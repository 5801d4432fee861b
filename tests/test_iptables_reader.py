"""The iptables / ip6tables / nftables LOG reader on real and hand-written lines."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from conftest import CROWDSEC, PSAD, need
from crowdsec_asserts import parse_assert_file

from portradar.errors import FormatError
from portradar.events.addresses import address_key, key_to_text
from portradar.ingest.iptables import IptablesReader, outcome_for_prefix
from portradar.ingest.reader import ReadOptions, ReadStats

UTC_2026 = ReadOptions(tz="UTC", reference_time=datetime(2026, 12, 1, tzinfo=UTC))


def parse(text: str | bytes, options: ReadOptions = UTC_2026, stats: ReadStats | None = None):
    data = text.encode() if isinstance(text, str) else text
    batch = IptablesReader().parse_bytes(data, options, stats)
    return batch.to_pylist()


def one(text: str, options: ReadOptions = UTC_2026) -> dict:
    rows = parse(text + "\n", options)
    assert len(rows) == 1, rows
    row = rows[0]
    row["src"] = key_to_text(row["src_hi"], row["src_lo"])
    row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
    return row


# --- psad's corpus of real nmap scans -------------------------------------------------

_FIELD = re.compile(r"\b(SRC|DST|DPT|PROTO)=(\S+)")


def _oracle(path):
    """Independent expectations from a plain regex over the file."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    srcs, dsts, ports = set(), set(), set()
    for ln in lines:
        body = ln[ln.index(" IN=") if " IN=" in ln else ln.index("IN="):]
        body = re.sub(r"\[[^\]]*\]", "", body)  # quoted packets in ICMP errors
        fields = {}
        for key, value in _FIELD.findall(body):
            fields.setdefault(key, value)
        srcs.add(address_key(fields["SRC"]))
        dsts.add(address_key(fields["DST"]))
        if "DPT" in fields:
            ports.add((fields["PROTO"].upper(), int(fields["DPT"])))
    return len(lines), srcs, dsts, ports


@pytest.mark.parametrize("name", sorted(p.name for p in PSAD.glob("*")) if PSAD.exists() else [])
def test_psad_scan_files_parse_completely(name):
    path = need(PSAD / name)
    stats = ReadStats(source=name)
    rows = parse(path.read_bytes(), stats=stats)
    n, srcs, dsts, ports = _oracle(path)
    assert stats.skipped_total == 0, stats.examples
    assert len(rows) == n == stats.records
    assert {(r["src_hi"], r["src_lo"]) for r in rows} == srcs
    assert {(r["dst_hi"], r["dst_lo"]) for r in rows} == dsts
    names = {6: "TCP", 17: "UDP", 136: "UDPLITE"}
    got_ports = {(names[r["proto"]], r["dport"]) for r in rows if r["dport"] is not None}
    assert got_ports == ports


def test_psad_scan_types_are_visible_in_flags():
    expected = {"syn_scan_1000_1500": 0x02, "fin_scan_1000_1150": 0x01,
                "xmas_scan_1000_1150": 0x29, "null_scan_1000_1150": 0x00,
                "ack_scan_1000_1150": 0x10}
    for name, flags in expected.items():
        rows = parse(need(PSAD / name).read_bytes())
        assert {r["tcp_flags"] for r in rows if r["proto"] == 6} == {flags}, name


def test_psad_icmp_ipv6_and_protocol_scan():
    ping = parse(need(PSAD / "ipv4_valid_ping").read_bytes())
    assert {(r["proto"], r["icmp_type"], r["icmp_code"]) for r in ping} == {(1, 8, 0)}
    v6 = parse(need(PSAD / "ipv6_ping_scan").read_bytes())
    assert {(r["proto"], r["icmp_type"]) for r in v6} == {(58, 135)}
    assert key_to_text(v6[0]["src_hi"], v6[0]["src_lo"]) == "2001:db8:0:f101::2"
    protos = {r["proto"] for r in parse(need(PSAD / "proto_scan").read_bytes())}
    assert len(protos) > 200
    igmp = parse(need(PSAD / "ipv4_igmp").read_bytes())
    assert {r["rule"] for r in igmp} == {"Shorewall:wlan0_mac:DROP:"}
    assert {r["outcome"] for r in igmp} == {"blocked"}


def test_grep_prefixed_line_is_read():
    row = one("ipv6_tcp_connect_nmap_default_scan:Mar 17 13:39:13 linux kernel: [956932.522957]"
              " DROP IN=eth0 OUT= SRC=2001:db8::2 DST=2001:db8::1 LEN=80 TC=0 HOPLIMIT=64 "
              "FLOWLBL=0 PROTO=TCP SPT=51397 DPT=1433 WINDOW=5760 RES=0x00 SYN URGP=0")
    assert row["sensor"] == "linux" and row["dport"] == 1433


# --- CrowdSec's parser assertions -----------------------------------------------------

_CROWDSEC_FIELDS = {
    "src_ip": lambda r: r["src"],
    "dst_ip": lambda r: r["dst"],
    "src_port": lambda r: str(r["sport"]),
    "dst_port": lambda r: str(r["dport"]),
    "proto": lambda r: {6: "TCP", 17: "UDP", 1: "ICMP"}.get(r["proto"]),
    "int_eth": lambda r: r["in_iface"],
}


@pytest.mark.parametrize("case,log,parser", [
    ("iptables-logs", "iptables-logs.log", "crowdsecurity/iptables-logs"),
    ("iptables-scan-multi-port", "iptables-scan-multi-port.log", "crowdsecurity/iptables-logs"),
    ("proxmox-iptables-logs", "proxmox-iptables.log", "aderumier/proxmox-iptables-logs"),
])
def test_crowdsec_parser_asserts(case, log, parser):
    folder = need(CROWDSEC / case)
    asserts = parse_assert_file(folder / "parser.assert").get(parser, {})
    lines = (folder / log).read_text().splitlines()
    for idx, expect in asserts.items():
        stats = ReadStats()
        rows = parse(lines[idx] + "\n", stats=stats)
        if expect.get("Success") is False:
            # CrowdSec rejects this line.  We reject it too unless it is a valid packet
            # its parser does not cover (Proxmox ACCEPT / OUT-only lines are events).
            if case != "proxmox-iptables-logs":
                assert rows == [], (idx, lines[idx])
            continue
        assert len(rows) == 1, (idx, stats.examples)
        row = rows[0]
        row["src"] = key_to_text(row["src_hi"], row["src_lo"])
        row["dst"] = key_to_text(row["dst_hi"], row["dst_lo"])
        checked = 0
        for key, value in expect.items():
            field = key.split(".", 1)[-1]
            if case == "proxmox-iptables-logs" and field == "int_eth":
                continue  # CrowdSec stores the Proxmox chain name there, not the interface
            if key.startswith("Parsed.") and field in _CROWDSEC_FIELDS:
                assert _CROWDSEC_FIELDS[field](row) == value, (idx, field)
                checked += 1
            if key == "Parsed.length":
                # CrowdSec takes the last LEN= (UDP length for UDP); we keep the IP length
                ip_len = int(re.search(r"LEN=(\d+)", lines[idx])[1])
                assert row["bytes"] == ip_len
            if key == "Parsed.action":
                assert row["outcome"] == outcome_for_prefix(value).label
                checked += 1
            if key == "Parsed.timestamp":
                assert row["ts"].strftime("%b %e %H:%M:%S").replace("  ", "  ") == \
                    datetime.strptime(value, "%b %d %H:%M:%S").strftime("%b %e %H:%M:%S")
        assert checked, f"nothing comparable asserted for line {idx}"


def test_crowdsec_multiport_scan_sources():
    rows = parse((need(CROWDSEC / "iptables-scan-multi-port") /
                  "iptables-scan-multi-port.log").read_bytes())
    ports: dict[str, set[int]] = {}
    for r in rows:
        ports.setdefault(key_to_text(r["src_hi"], r["src_lo"]), set()).add(r["dport"])
    assert len(ports["62.34.17.168"]) >= 15
    assert len(ports["127.0.0.2"]) >= 15


# --- every framing users have ---------------------------------------------------------

BODY = ("IN=eth0 OUT= MAC=00:16:3e:1a:2b:3c:00:25:90:aa:bb:cc:08:00 SRC=198.51.100.7 "
        "DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=240 ID=54321 PROTO=TCP SPT=4444 "
        "DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0")


@pytest.mark.parametrize("line,ts,sensor,rule", [
    (f"Nov 26 10:00:00 fw kernel: [123.456789] DROP {BODY}", "2026-11-26T10:00:00", "fw", "DROP"),
    (f"Nov  6 10:00:00 fw kernel: [UFW BLOCK] {BODY}", "2026-11-06T10:00:00", "fw", "[UFW BLOCK]"),
    (f"2026-11-26T10:00:00.123456+01:00 fw kernel: [ 5.1] DROP {BODY}",
     "2026-11-26T09:00:00.123456", "fw", "DROP"),
    (f"2026-11-26T10:00:00+0100 fw kernel: DROP {BODY}", "2026-11-26T09:00:00", "fw", "DROP"),
    (f"Nov 26 10:00:00.654321 fw kernel: DROP {BODY}", "2026-11-26T10:00:00.654321", "fw",
     "DROP"),
    (f"<4>1 2026-11-26T10:00:00.5Z fw kernel - - - DROP {BODY}", "2026-11-26T10:00:00.500000",
     "fw", "DROP"),
    (f'<4>1 2026-11-26T10:00:00Z fw kernel - - [meta sequenceId="1"] DROP {BODY}',
     "2026-11-26T10:00:00", "fw", "DROP"),
    (f"<4>Nov 26 10:00:00 fw kernel: DROP {BODY}", "2026-11-26T10:00:00", "fw", "DROP"),
    (f"Nov 26 10:00:00 fw DROP: {BODY}", "2026-11-26T10:00:00", "fw", "DROP:"),  # ulogd LOGEMU
    (f"Nov 26 10:00:00 fw ulogd[812]: fw-drop {BODY}", "2026-11-26T10:00:00", "fw", "fw-drop"),
    (f"[Thu Nov 26 10:00:00 2026] DROP {BODY}", "2026-11-26T10:00:00", "default", "DROP"),
    (f"Nov 26 10:00:00 fw kernel: {BODY}", "2026-11-26T10:00:00", "fw", None),
])
def test_framings(line, ts, sensor, rule):
    row = one(line)
    assert row["ts"].replace(tzinfo=None).isoformat() == ts
    assert (row["sensor"], row["rule"]) == (sensor, rule)
    assert (row["src"], row["dst"], row["sport"], row["dport"]) == (
        "198.51.100.7", "192.0.2.10", 4444, 445)
    assert (row["ttl"], row["ip_id"], row["tcp_window"], row["bytes"]) == (240, 54321, 1024, 44)


def test_raw_dmesg_uses_boot_time():
    boot = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    row = one(f"[ 3600.250000] DROP {BODY}", ReadOptions(tz="UTC", boot_time=boot))
    assert row["ts"] == datetime(2026, 11, 26, 9, 0, 0, 250000, tzinfo=UTC)


def test_without_mac_and_outcomes_from_prefixes():
    body = BODY.replace(" MAC=00:16:3e:1a:2b:3c:00:25:90:aa:bb:cc:08:00", "")
    cases = {"[UFW ALLOW]": "accepted", "[UFW BLOCK]": "blocked", "REJECT": "rejected",
             "[UFW AUDIT]": "unknown", "policy DROP:": "blocked", "PVEFW-reject:": "rejected"}
    for prefix, outcome in cases.items():
        assert one(f"Nov 26 10:00:00 fw kernel: {prefix} {body}")["outcome"] == outcome


def test_user_actions_override_prefixes():
    opts = ReadOptions(tz="UTC", year=2026, actions={"fw-in": "rejected", "*": "blocked"})
    assert one(f"Nov 26 10:00:00 fw kernel: fw-in {BODY}", opts)["outcome"] == "rejected"
    assert one(f"Nov 26 10:00:00 fw kernel: LOGGED {BODY}", opts)["outcome"] == "blocked"


def test_every_tcp_flag():
    body = BODY.replace("SYN URGP", "CWR ECE URG ACK PSH RST SYN FIN URGP")
    assert one(f"Nov 26 10:00:00 fw kernel: X {body}")["tcp_flags"] == 0xFF


def test_icmp_error_with_quoted_packet_keeps_outer_fields():
    line = ("Nov 26 10:00:00 fw kernel: DROP IN=eth0 OUT= SRC=203.0.113.9 DST=192.0.2.10 LEN=56 "
            "TOS=0x00 PREC=0x00 TTL=60 ID=1 PROTO=ICMP TYPE=3 CODE=3 [SRC=192.0.2.10 "
            "DST=203.0.113.9 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=2 PROTO=UDP SPT=53 DPT=33434 "
            "LEN=8 ] MTU=0")
    row = one(line)
    assert (row["src"], row["dst"], row["proto"]) == ("203.0.113.9", "192.0.2.10", 1)
    assert (row["icmp_type"], row["icmp_code"], row["dport"], row["bytes"]) == (3, 3, None, 56)


def test_icmpv6_and_compressed_ipv6():
    line = ("Nov 26 10:00:00 fw kernel: DROP IN=eth0 OUT= SRC=fe80::1%eth0 DST=ff02::1 LEN=72 "
            "TC=0 HOPLIMIT=255 FLOWLBL=0 PROTO=ICMPv6 TYPE=135 CODE=0")
    row = one(line)
    assert (row["src"], row["dst"], row["proto"], row["icmp_type"], row["ttl"]) == (
        "fe80::1", "ff02::1", 58, 135, 255)
    v4_in_v6 = one(BODY.join(["Nov 26 10:00:00 fw kernel: X ", ""]).replace(
        "SRC=198.51.100.7", "SRC=::ffff:198.51.100.7"))
    assert v4_in_v6["src"] == "198.51.100.7"


def test_nftables_log_line():
    row = one("Nov 26 10:00:00 fw kernel: nft-drop-in: IN=ens3 OUT= MAC=52:54:00:12:34:56:52:"
              "54:00:65:43:21:08:00 SRC=198.51.100.7 DST=192.0.2.10 LEN=40 TOS=0x00 PREC=0x00 "
              "TTL=247 ID=5 PROTO=UDP SPT=5060 DPT=5060 LEN=20")
    assert (row["rule"], row["outcome"], row["proto"], row["dport"]) == (
        "nft-drop-in:", "blocked", 17, 5060)


# --- time ----------------------------------------------------------------------------

def test_year_rollover_by_reference_time():
    ref = ReadOptions(tz="UTC", reference_time=datetime(2027, 1, 2, tzinfo=UTC))
    rows = parse(f"Dec 31 23:59:59 fw kernel: X {BODY}\nJan  1 00:00:01 fw kernel: X {BODY}\n",
                 ref)
    assert [r["ts"].year for r in rows] == [2026, 2027]


def test_year_rollover_with_explicit_year_across_chunks():
    reader = IptablesReader()
    opts = ReadOptions(tz="UTC", year=2025)
    first = reader.parse_bytes(f"Dec 31 23:59:59 fw kernel: X {BODY}\n".encode(), opts)
    second = reader.parse_bytes(f"Jan  1 00:00:01 fw kernel: X {BODY}\n".encode(), opts)
    assert first.to_pylist()[0]["ts"].year == 2025
    assert second.to_pylist()[0]["ts"].year == 2026


def test_time_zone_conversion_with_dst():
    opts = ReadOptions(tz="Europe/Berlin", year=2026)
    summer = one(f"Jul  1 12:00:00 fw kernel: X {BODY}", opts)["ts"]
    winter = one(f"Nov 26 12:00:00 fw kernel: X {BODY}", opts)["ts"]
    assert (summer.hour, winter.hour) == (10, 11)


def test_impossible_dates_are_skipped():
    stats = ReadStats()
    rows = parse(f"Feb 30 10:00:00 fw kernel: X {BODY}\n"
                 f"Nov 26 25:00:00 fw kernel: X {BODY}\n", stats=stats)
    assert rows == [] and stats.skipped_total == 2


# --- bad input ------------------------------------------------------------------------

def test_bad_lines_are_counted_with_line_numbers():
    good = f"Nov 26 10:00:00 fw kernel: X {BODY}"
    text = "\n".join([good, "hello world", good.replace("SRC=198.51.100.7", "SRC=999.1.1.1"),
                      "", good.replace(" PROTO=TCP", ""), good]) + "\n"
    stats = ReadStats(source="fw.log")
    rows = parse(text, stats=stats)
    assert len(rows) == 2
    assert stats.records == 6  # the blank line is read, neither an event nor an error
    assert dict(stats.skipped) == {
        "not a netfilter LOG line (no IN= or OUT= field)": 1,
        "SRC= is not an IPv4 or IPv6 address": 1,
        "no PROTO= field": 1,
    }
    assert stats.examples[0].startswith("fw.log:2: not a netfilter LOG line")
    assert stats.examples[1].startswith("fw.log:3: SRC= is not")


def test_strict_mode_names_the_first_bad_line():
    text = f"Nov 26 10:00:00 fw kernel: X {BODY}\nNov 26 10:00:00 fw kernel: X IN=eth0 OUT=\n"
    with pytest.raises(FormatError) as info:
        parse(text, ReadOptions(tz="UTC", year=2026, strict=True),
              ReadStats(source="fw.log", strict=True))
    assert info.value.line == 2 and str(info.value).startswith("fw.log:2: no SRC= field")


def test_sniff():
    assert IptablesReader.sniff(f"Nov 26 10:00:00 fw kernel: X {BODY}\n".encode()) == 1.0
    assert IptablesReader.sniff(b"hello\nworld\n") == 0.0
    assert IptablesReader.sniff(b"") == 0.0
