"""Observed and declared exposure of a port, and the patch state of each exposed host."""

from __future__ import annotations

from portradar.events.addresses import parse_addresses
from portradar.events.schema import Outcome, make_batch
from portradar.ingest.pipeline import store_batches
from portradar.intel.assets import import_assets
from portradar.intel.exposure import port_exposure

MS05_027 = {"cve": "CVE-2005-1206", "bulletins": "MS05-027", "kbs": "KB896422",
            "vendor": "Microsoft"}


def _events(store):
    rows = [  # source, destination, outcome
        ("198.51.100.7", "192.0.2.10", Outcome.ACCEPTED),
        ("198.51.100.8", "192.0.2.10", Outcome.ESTABLISHED),
        ("10.1.2.3", "192.0.2.20", Outcome.ACCEPTED),  # from inside
        ("198.51.100.9", "192.0.2.30", Outcome.BLOCKED),
        ("198.51.100.9", "192.0.2.40", Outcome.REJECTED),
    ]
    sh, sl = parse_addresses([r[0] for r in rows])
    dh, dl = parse_addresses([r[1] for r in rows])
    batch = make_batch({"ts": [1_118_966_400_000_000] * len(rows), "src_hi": sh, "src_lo": sl,
                        "dst_hi": dh, "dst_lo": dl, "proto": 6, "dport": 445,
                        "outcome": [int(r[2]) for r in rows]}, n=len(rows))
    store_batches(store, [batch], name="t", identity=b"exposure-test")


def test_observed_exposure_counts_only_accepted_from_outside(store):
    _events(store)
    exp = port_exposure(store, 445, 6, vulns=[MS05_027], internal=["10.0.0.0/8"])
    assert [(h.host, h.connections, h.sources) for h in exp.hosts] == [("192.0.2.10", 2, 2)]
    assert exp.known and exp.hosts[0].patch_state == {"CVE-2005-1206": "unknown"}
    everyone = port_exposure(store, 445, 6)
    assert {h.host for h in everyone.hosts} == {"192.0.2.10", "192.0.2.20"}


def test_declared_hosts_and_patch_states(store, tmp_path):
    _events(store)
    f = tmp_path / "assets.csv"
    f.write_text("host,open_ports,os,installed_patches\n"
                 "192.0.2.10,445,Windows 2000,KB123456\n"
                 "192.0.2.11,445,Windows XP,KB896422\n"
                 "192.0.2.12,445,Debian Linux,KB123456\n")
    import_assets(store, f)
    exp = port_exposure(store, 445, 6, vulns=[MS05_027], internal=["10.0.0.0/8"])
    states = {h.host: (h.as_row()["evidence"], h.patch_state["CVE-2005-1206"])
              for h in exp.hosts}
    assert states == {"192.0.2.10": ("observed+declared", "missing"),
                      "192.0.2.11": ("declared", "patched"),
                      "192.0.2.12": ("declared", "not-applicable")}
    assert [h.host for h in exp.vulnerable] == ["192.0.2.10"]


def test_exposure_unknown_without_evidence(store):
    exp = port_exposure(store, 445, 6)
    assert exp.hosts == [] and not exp.known
