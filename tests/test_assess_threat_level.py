"""The assessment of 445/tcp in a reconstructed June 2005, and the criteria one by one."""

from __future__ import annotations

from datetime import date

import pytest
from intel_june2005 import SPIKE_DAY, june_2005

from portradar.assess.patch_list import patch_list
from portradar.assess.spike_evidence import SpikeEvidence, port_spikes
from portradar.assess.threat_level import assess_port, decide
from portradar.ingest.pipeline import store_batches
from portradar.intel.assets import import_assets
from portradar.intel.exposure import PortExposure


@pytest.fixture
def june(store):
    store_batches(store, june_2005(), name="june-2005", identity=b"june-2005-445")
    return store


def test_spike_found_on_the_day(june):
    spikes = port_spikes(june, 445, 6, as_of=SPIKE_DAY)
    assert [(s.onset, s.kind) for s in spikes] == [(SPIKE_DAY, "new-sources")]
    assert port_spikes(june, 445, 6, as_of=date(2005, 6, 16)) == []  # no look-ahead


def test_ms05_027_named_and_level_follows_criteria(june):
    a = assess_port(june, 445, 6, as_of=SPIKE_DAY)
    assert [v["bulletins"] for v in a.vulnerabilities] == ["MS05-027"]
    v = a.vulnerabilities[0]
    assert v["patched"] == date(2005, 6, 14) and (SPIKE_DAY - v["patched"]).days == 3
    assert any("MS05-027" in r and "3 days before 2005-06-17" in r for r in a.reasons)
    # a spike + a fresh vulnerability, no public exploit, no worm, exposure unknown: Y1
    assert (a.level, a.criterion, a.stage) == ("yellow", "Y1", "scanning")
    assert any(x.startswith("block tcp/445 inbound at the perimeter") for x in a.actions)
    assert any("MS05-027" in x for x in a.actions)


def test_days_before_the_spike_are_green(june):
    before = assess_port(june, 445, 6, as_of=date(2005, 6, 15))
    assert (before.level, before.criterion, before.stage) == ("green", "G1", "patched")
    assert before.actions == ["patch in the normal cycle: MS05-027"]
    early = assess_port(june, 445, 6, as_of=date(2005, 6, 10))
    assert (early.level, early.stage) == ("green", "none")


def test_exposed_unpatched_host_in_the_patch_list(june, tmp_path):
    assets = tmp_path / "assets.csv"
    assets.write_text("host,open_ports,os,installed_patches\n"
                      "192.0.2.10,445;139,Windows 2000,KB890859\n"
                      "192.0.2.11,445,Windows XP,MS05-027\n"
                      "192.0.2.12,445,Linux,\n")
    import_assets(june, assets)
    a = assess_port(june, 445, 6, as_of=SPIKE_DAY)
    assert a.level == "yellow"  # no exploit published: not orange (O2 needs one)
    rows = patch_list(a)
    assert [(r["host"], r["bulletin"], r["state"]) for r in rows] == [
        ("192.0.2.10", "MS05-027", "missing")]


def _vuln(**kw):
    base = {"cve": "CVE-2005-1983", "bulletins": "MS05-039", "name": "PnP", "vendor": "Microsoft",
            "patched": date(2005, 8, 9), "exploit_published": None, "mass_attack": None,
            "scanning": None, "kev_added": None, "epss": None, "epss_date": None, "kbs": None}
    base.update(kw)
    return base


def _exposure(vulnerable: bool, known: bool = True) -> PortExposure:
    from portradar.intel.exposure import HostExposure

    hosts = []
    if vulnerable:
        h = HostExposure(host="192.0.2.10", observed=True)
        h.patch_state["CVE-2005-1983"] = "missing"
        hosts.append(h)
    return PortExposure(proto=6, port=445, hosts=hosts, known=known)


WORM = SpikeEvidence(6, 445, date(2005, 8, 13), None, "growth", 20.0, doubling_hours=18)
SWEEP = SpikeEvidence(6, 445, date(2005, 8, 12), date(2005, 8, 13), "new-sources", 8.0)


@pytest.mark.parametrize("day, vuln, spikes, exposure, expected", [
    (date(2005, 8, 9), _vuln(), [], None, ("green", "G1")),
    (date(2005, 8, 11), _vuln(exploit_published=date(2005, 8, 10)), [], None, ("yellow", "Y2")),
    (date(2005, 8, 12), _vuln(exploit_published=date(2005, 8, 10)), [SWEEP], None,
     ("yellow", "Y1")),
    (date(2005, 8, 12), _vuln(exploit_published=date(2005, 8, 10)), [SWEEP], _exposure(True),
     ("orange", "O2")),
    (date(2005, 8, 14), _vuln(exploit_published=date(2005, 8, 10)), [WORM], None,
     ("orange", "O1")),
    (date(2005, 8, 14), _vuln(mass_attack=date(2005, 8, 13)), [], _exposure(True), ("red", "R1")),
    (date(2005, 8, 14), _vuln(mass_attack=date(2005, 8, 13)), [], _exposure(False),
     ("yellow", "Y4")),
    (date(2005, 8, 14), _vuln(patched=date(2005, 1, 1)), [WORM], None, ("orange", "O1")),
    (date(2005, 8, 14), _vuln(patched=date(2005, 1, 1), exploit_published=date(2005, 8, 10)),
     [], _exposure(True), ("yellow", "Y3")),
    (date(2005, 10, 1), _vuln(), [], None, ("green", "G1")),
])
def test_criteria(day, vuln, spikes, exposure, expected):
    vulns = [vuln] if vuln["patched"] <= day else []
    a = decide(as_of=day, port=445, proto=6, vulns=vulns, spikes=spikes, exposure=exposure)
    assert (a.level, a.criterion) == expected
    assert a.actions  # every level says what to do


def test_one_loud_scanner_is_not_a_threat():
    loud = SpikeEvidence(6, 445, date(2005, 8, 12), None, "one-source", 9.0)
    a = decide(as_of=date(2005, 8, 12), port=445, proto=6, vulns=[_vuln()], spikes=[loud],
               exposure=None)
    assert (a.level, a.criterion) == ("green", "G1")


def test_worm_like_growth_without_known_vulnerability_is_a_mass_attack():
    mirai = [SpikeEvidence(6, 23, date(2016, 8, 1), None, "growth", 12.0)]
    a = decide(as_of=date(2016, 8, 5), port=23, proto=6, vulns=[], spikes=mirai,
               exposure=None)
    assert (a.level, a.criterion, a.stage) == ("orange", "O1", "mass-attack")
    b = decide(as_of=date(2016, 8, 5), port=23, proto=6, vulns=[], spikes=mirai,
               exposure=PortExposure(6, 23, [], known=True))
    assert (b.level, b.criterion) == ("yellow", "Y4")
