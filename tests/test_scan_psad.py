"""Scanner verdicts on psad's recorded scans (../shared/data/scans/psad-iptables).

Each file is ingested into a fresh store with ``ingest_input`` and detection run on it.
Expected values come from the data README (summarised from psad's ``test/test-psad.pl``
and the lines themselves): the scan files yield their scanner with the right shape and
type, the single-event files yield none, and the localhost / zero-IP copies of the SYN
scan follow the loopback policy (portradar.scan.loopback).
"""

from __future__ import annotations

import pytest
from conftest import PSAD, need

from portradar.ingest.pipeline import ingest_input
from portradar.scan.detect import detect
from portradar.store import Store

NMAP_HOST = "192.168.10.55"
TOPERA = "2012:1234:1234::1"
V6_NMAP = "2001:db8:0:f101::2"

#: file -> (source, status, kind, type(s), tool, ports, targets)
SCANS = {
    "syn_scan_1000_1500": (NMAP_HOST, "scanner", "vertical", {"syn"}, "nmap", 501, 1),
    "syn_scan_1000_1500_multi_dst": (NMAP_HOST, "scanner", "vertical", {"syn"}, "nmap", 501, 4),
    "syn_sweep": (NMAP_HOST, "scanner", "horizontal", {"syn"}, None, 1, 11),
    "fin_scan_1000_1150": (NMAP_HOST, "scanner", "vertical", {"fin"}, "nmap", 151, 1),
    "xmas_scan_1000_1150": (NMAP_HOST, "scanner", "vertical", {"xmas"}, "nmap", 151, 1),
    "null_scan_1000_1150": (NMAP_HOST, "scanner", "vertical", {"null"}, "nmap", 151, 1),
    "ack_scan_1000_1150": (NMAP_HOST, "scanner", "vertical", {"ack"}, "nmap", 151, 1),
    "udp_scan_1000_1150": (NMAP_HOST, "scanner", "vertical", {"udp"}, "nmap", 151, 1),
    "proto_scan": (NMAP_HOST, "scanner", "vertical", {"ip-proto"}, "nmap", None, 1),
    "ipv6_tcp_connect_nmap_default_scan": (V6_NMAP, "scanner", "vertical", {"connect"}, "",
                                           1000, 1),
    "topera_ipv6_syn_scan_no_ip_opts": (TOPERA, "scanner", "vertical", {"syn"}, None, 1024, 1),
    "topera_ipv6_syn_scan_with_ip_opts": (TOPERA, "scanner", "vertical", {"syn"}, None, None,
                                          1),
    # the loopback policy: detected and explained, never a "scanner" to block
    "syn_scan_1000_1500_localhost": ("127.0.0.1", "loopback", "vertical", {"syn"}, "nmap", 501,
                                     1),
    "syn_scan_1000_1500_zeroip": ("0.0.0.0", "unspecified", "vertical", {"syn"}, "nmap", 501, 1),
}

#: one to a few packets from one source, or a handful of sources: not port scans
QUIET = ["ipv4_valid_ping", "ipv4_igmp", "ms_sql_server_sig_match", "fwknop_spa_pkt",
         "reputation_scan", "invalid_icmp_type_code", "ipv6_ping_scan",
         "ipv6_invalid_icmp6_type_code", "ipv6_ms_sql_server_sig_match",
         "mirai_default_credentials_scan", "syslog_time_fmt1.log"]


def _verdicts(tmp_path, name: str) -> list[dict]:
    path = need(PSAD / name)
    with Store.open(tmp_path / "s.duckdb") as store:
        result = ingest_input(store, path)
        assert result.status == "ingested", result.message
        detect(store)
        cur = store.con.execute("SELECT * FROM scanners ORDER BY probes DESC")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@pytest.mark.parametrize("name", sorted(SCANS))
def test_scan_file_yields_its_scanner(tmp_path, name):
    source, status, kind, types, tool, ports, targets = SCANS[name]
    rows = _verdicts(tmp_path, name)
    assert [r["source"] for r in rows] == [source]
    row = rows[0]
    assert row["status"] == status
    assert row["kind"] == kind
    assert row["type"] in types
    if tool is not None:
        assert row["tool"] == tool
    if ports is not None:
        assert row["ports"] == ports
    assert row["targets"] == targets
    assert row["flagged_at"] is not None and row["flagged_probes"] >= 1
    assert row["evidence"]
    assert 0.9 <= row["confidence"] <= 1.0


def test_syn_scan_ports_and_evidence(tmp_path):
    row = _verdicts(tmp_path, "syn_scan_1000_1500")[0]
    assert row["port_list"] == list(range(1000, 1501))
    assert row["detector"] == "fanout" and row["fanout_rule"] in ("ports", "pairs")
    assert "nmap fingerprint" in row["evidence"]
    assert row["answered"] == 0 and row["psad_level"] == 3


def test_sweep_is_caught_by_the_random_walk(tmp_path):
    row = _verdicts(tmp_path, "syn_sweep")[0]
    assert row["detector"] == "trw"
    assert row["trw_failures"] == 4 and row["trw_flagged_after"] == 4
    assert row["port_list"] == [1083]


@pytest.mark.parametrize("name", QUIET)
def test_single_events_yield_no_scanner(tmp_path, name):
    assert _verdicts(tmp_path, name) == []
