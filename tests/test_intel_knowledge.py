"""The knowledge base: bundled history, importers, idempotence and transactions."""

from __future__ import annotations

import gzip
import json
from datetime import date

import pytest
from conftest import DATA, need

from portradar.errors import FormatError, InputError
from portradar.intel.port_registry import PortRegistry
from portradar.intel.vulnerabilities import KnowledgeBase

INTEL = DATA / "intel"
KEV = INTEL / "cisa-kev" / "known_exploited_vulnerabilities.json"


@pytest.fixture
def kb(store):
    return KnowledgeBase.open(store)


def test_bundled_history_has_ms05_027_on_445(kb):
    rows = kb.port_vulnerabilities(445, "tcp", as_of=date(2005, 6, 17), days=30)
    assert [(r["bulletins"], r["patched"], r["days_since_patch"]) for r in rows] == [
        ("MS05-027", date(2005, 6, 14), 3)]
    assert rows[0]["cve"] == "CVE-2005-1206"
    assert "history" in rows[0]["sources"] and rows[0]["refs"]  # provenance


def test_history_rows_all_have_sources_and_verification(kb, store):
    bad = store.con.execute("SELECT event FROM intel_history WHERE coalesce(sources, '') = '' "
                            "OR coalesce(verification, '') = '' OR source_ref IS NULL").fetchall()
    assert bad == []


def test_as_of_hides_later_facts(kb):
    june = kb.port_vulnerabilities(445, "tcp", as_of=date(2005, 6, 17), days=30)
    assert all(r["mass_attack"] is None for r in june)
    aug = kb.port_vulnerabilities(445, "tcp", as_of=date(2005, 8, 14), days=30)
    zotob = next(r for r in aug if r["bulletins"] == "MS05-039")
    assert zotob["exploit_published"] == date(2005, 8, 10)
    assert zotob["mass_attack"] == date(2005, 8, 13)
    assert not any(r["bulletins"] == "MS05-039"
                   for r in kb.port_vulnerabilities(445, "tcp", as_of=date(2005, 8, 8)))


def test_kev_import_twice_changes_nothing(kb):
    need(KEV)
    first = kb.import_file(KEV)
    assert first["status"] == "imported" and first["records"] > 1000
    snap = kb.snapshot()
    again = kb.import_file(KEV)
    assert again["status"] == "unchanged"
    assert kb.snapshot() == snap
    forced = kb.import_file(KEV, force=True)  # re-applied: identical rows
    assert forced["status"] == "imported"
    assert kb.snapshot() == snap
    eternal = kb.port_vulnerabilities(445, "tcp")
    kev = {r["cve"]: r["kev_added"] for r in eternal}
    assert kev["CVE-2017-0144"] == date(2022, 2, 10)
    # a replay of 2017 does not see the KEV entry of 2022
    past = {r["cve"]: r for r in kb.port_vulnerabilities(445, "tcp", as_of=date(2017, 5, 12))}
    assert past["CVE-2017-0144"]["kev_added"] is None


@pytest.mark.parametrize("payload, message", [
    (b'{"catalogVersion": "x", "vulnerabilities": [{"cveID": "CVE-2017-0144",', "not valid JSON"),
    (b'{"catalogVersion": "x", "vulns": []}', "no 'vulnerabilities' list"),
    (b'{"catalogVersion": "x", "vulnerabilities": [1, 2]}', "non-objects"),
])
def test_malformed_feed_is_a_clear_error_and_changes_nothing(kb, tmp_path, payload, message):
    good = tmp_path / "kev.json"
    good.write_text(json.dumps({"catalogVersion": "1", "vulnerabilities": [
        {"cveID": "CVE-2005-1206", "vendorProject": "Microsoft", "product": "Windows",
         "vulnerabilityName": "Microsoft Windows SMB Remote Code Execution",
         "dateAdded": "2022-01-01", "dueDate": "2022-02-01"}]}))
    kb.import_file(good)
    snap = kb.snapshot()
    bad = tmp_path / "bad.json"
    bad.write_bytes(payload)
    with pytest.raises(FormatError, match=message) as info:
        kb.import_file(bad, kind="cisa-kev")
    assert "bad.json" in str(info.value)
    assert kb.snapshot() == snap


def test_failure_while_writing_rolls_back(kb, tmp_path, monkeypatch):
    feed = tmp_path / "kev.json"
    feed.write_text(json.dumps({"catalogVersion": "1", "vulnerabilities": [
        {"cveID": "CVE-2099-0001", "vendorProject": "X", "product": "Y",
         "vulnerabilityName": "SMB thing", "dateAdded": "2099-01-01"}]}))
    snap = kb.snapshot()

    def broken(self):
        self.con.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(KnowledgeBase, "_refresh_rule_ports", broken)
    with pytest.raises(FormatError, match="knowledge base is unchanged"):
        kb.import_file(feed)
    assert kb.snapshot() == snap


def test_bad_records_are_counted_and_skipped(kb, tmp_path):
    feed = tmp_path / "kev.json"
    feed.write_text(json.dumps({"catalogVersion": "1", "vulnerabilities": [
        {"cveID": "CVE-2005-1206", "dateAdded": "2022-01-01"},
        {"cveID": "not-a-cve", "dateAdded": "2022-01-01"}]}))
    r = kb.import_file(feed)
    assert r["skipped"] == 1 and r["skip_reasons"] == {"not a CVE id": 1}
    with pytest.raises(FormatError, match="not a CVE id"):
        kb.import_file(feed, strict=True, force=True)


def test_unknown_file_is_refused(kb, tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("hello\n")
    with pytest.raises(InputError, match="not a knowledge feed"):
        kb.import_file(f)


def test_msrc_import_and_smb_rule(kb):
    path = need(INTEL / "msrc-patch-dates" / "cve_first_patch_summary.csv")
    r = kb.import_file(path)
    assert r["kind"] == "msrc" and r["records"] > 20000
    rows = {x["cve"]: x for x in kb.port_vulnerabilities(445, "tcp", as_of=date(2017, 3, 20),
                                                          days=30)}
    assert rows["CVE-2017-0144"]["patched"] == date(2017, 3, 14)
    assert "KB4012212" in rows["CVE-2017-0144"]["kbs"]
    assert "rule:smb" in rows["CVE-2017-0144"]["port_sources"]
    # RDP: BlueKeep through the rdp rule
    rdp = {x["cve"] for x in kb.port_vulnerabilities(3389, "tcp", as_of=date(2019, 5, 20),
                                                      days=30)}
    assert "CVE-2019-0708" in rdp


def test_cve_port_maps(kb):
    for name in ("nmap_nse_cve_ports.csv", "snort_legacy_rules_cve_ports.csv"):
        r = kb.import_file(need(INTEL / "cve-port-map" / name))
        assert r["kind"] == "cve-port-map" and r["rows"] > 100
    ports = kb.store.con.execute(
        "SELECT proto, port, source FROM intel_cve_ports WHERE cve = 'CVE-2002-0649' "
        "AND source = 'snort-rules'").fetchall()
    assert (17, 1434, "snort-rules") in ports


NVD_SAMPLE = {
    "resultsPerPage": 2, "startIndex": 0, "totalResults": 2, "format": "NVD_CVE",
    "version": "2.0", "timestamp": "2024-05-01T00:00:00.000",
    "vulnerabilities": [
        {"cve": {"id": "CVE-2005-1983", "sourceIdentifier": "secure@microsoft.com",
                 "published": "2005-08-10T04:00:00.000", "lastModified": "2018-10-12T21:37:00",
                 "vulnStatus": "Modified",
                 "descriptions": [{"lang": "en", "value": "Stack-based buffer overflow in the "
                                   "Plug and Play (PnP) service ... as exploited by Zotob."}],
                 "metrics": {"cvssMetricV2": [{"source": "nvd@nist.gov", "type": "Primary",
                             "cvssData": {"version": "2.0", "baseScore": 10.0,
                                          "accessVector": "NETWORK"}}]},
                 "configurations": [{"nodes": [{"operator": "OR", "negate": False, "cpeMatch": [
                     {"vulnerable": True,
                      "criteria": "cpe:2.3:o:microsoft:windows_2000:*:sp4:*:*:*:*:*:*"}]}]}],
                 "references": [{"url": "https://docs.microsoft.com/en-us/security-updates/"
                                        "securitybulletins/2005/ms05-039"}]}},
        {"cve": {"id": "CVE-2005-9999", "published": "2005-08-10T04:00:00.000",
                 "descriptions": [{"lang": "en", "value": "local only"}],
                 "metrics": {"cvssMetricV31": [{"cvssData": {"baseScore": 5.5,
                                                             "attackVector": "LOCAL"}}]}}},
    ]}


def test_nvd_import(kb, tmp_path):
    path = tmp_path / "nvdcve-2.0-2005.json.gz"
    path.write_bytes(gzip.compress(json.dumps(NVD_SAMPLE).encode()))
    r = kb.import_file(path)
    assert (r["kind"], r["records"], r["version"]) == ("nvd", 2, "2024-05-01T00:00:00.000")
    rows = kb.store.con.execute("SELECT cve, vendor, product, bulletin, cvss, remote, published "
                                "FROM intel_vulns WHERE source = 'nvd' ORDER BY cve").fetchall()
    assert rows[0] == ("CVE-2005-1983", "microsoft", "windows_2000", "MS05-039", 10.0, True,
                       date(2005, 8, 10))
    assert rows[1][5] is False
    # the NVD row joins the history's for the same CVE, with both sources named
    zotob = next(r for r in kb.port_vulnerabilities(445, "tcp") if r["cve"] == "CVE-2005-1983")
    assert zotob["sources"] == "history, nvd" and zotob["published"] == date(2005, 8, 10)


def test_epss_import_and_as_of(kb, tmp_path):
    f = tmp_path / "epss_scores-2023-03-20.csv"
    f.write_text("#model_version:v2023.03.01,score_date:2023-03-20T00:00:00+0000\n"
                 "cve,epss,percentile\nCVE-2017-0144,0.97565,0.99996\nCVE-2005-1206,0.5,0.9\n"
                 "CVE-BAD,2,1\n")
    r = kb.import_file(f)
    assert (r["kind"], r["rows"], r["skipped"]) == ("epss", 2, 1)
    row = next(x for x in kb.port_vulnerabilities(445, "tcp") if x["cve"] == "CVE-2005-1206")
    assert row["epss"] == 0.5 and row["epss_date"] == date(2023, 3, 20)
    old = next(x for x in kb.port_vulnerabilities(445, "tcp", as_of=date(2005, 6, 17))
           if x["cve"] == "CVE-2005-1206")
    assert old["epss"] is None


def test_port_registry():
    from portradar.intel.port_registry import NMAP_SERVICES

    reg = PortRegistry.bundled()
    if NMAP_SERVICES.exists():  # nmap installed: its open frequency is the prior
        assert 0 < reg.open_frequency(445, "tcp") < 1
        assert reg.open_frequency(80, "tcp") > reg.open_frequency(445, "tcp")
    assert reg.names(445) == "microsoft-ds"
    assert reg.names(1434, "udp") == "ms-sql-m"
    assert reg.lookup(65000, "tcp") == [] or all(s.port == 65000 for s in reg.lookup(65000))
