"""``portradar intel / assets / exposure / assess / rules``: outputs and clear errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import DATA, need
from intel_june2005 import june_2005

from portradar.cli.app import cli
from portradar.ingest.pipeline import store_batches
from portradar.store import Store

KEV = DATA / "intel" / "cisa-kev" / "known_exploited_vulnerabilities.json"


@pytest.fixture
def env(tmp_path):
    runner = CliRunner()
    db = str(tmp_path / "cli.duckdb")
    with Store.open(db) as store:
        store_batches(store, june_2005(last=__import__("datetime").date(2005, 6, 17),
                                       accepted_host=0xC000020A),
                      name="june", identity=b"june-cli")

    def run(*args: str, code: int = 0):
        result = runner.invoke(cli, ["--db", db, *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return run, tmp_path


def test_intel_import_twice_and_port(env):
    run, _ = env
    need(KEV)
    first = json.loads(run("intel", "import", str(KEV), "--json").output)
    again = json.loads(run("intel", "import", str(KEV), "--json").output)
    assert (first[0]["status"], again[0]["status"]) == ("imported", "unchanged")
    rows = json.loads(run("intel", "port", "445", "--as-of", "2005-06-20", "--days", "30",
                          "--json").output)
    assert [r["bulletins"] for r in rows] == ["MS05-027"]
    table = run("intel", "port", "445").output
    assert "microsoft-ds" in table and "CVE-2017-0144" in table


def test_assess_names_ms05_027(env):
    run, _ = env
    out = json.loads(run("assess", "445", "--json").output)[0]  # as of the newest event
    assert (out["as_of"], out["level"], out["criterion"]) == ("2005-06-17", "yellow", "Y1")
    assert out["vulnerabilities"][0]["bulletins"] == "MS05-027"
    assert out["exposure"]["exposed"][0]["host"] == "192.0.2.10"  # accepted from outside
    text = run("assess", "445").output
    assert "YELLOW" in text and "MS05-027" in text and "block tcp/445" in text
    listing = run("assess", "--csv").output
    assert "445,microsoft-ds,yellow,Y1" in listing.replace("tcp,", "")


def test_assets_exposure_and_patch_list(env):
    run, tmp = env
    f = tmp / "assets.csv"
    f.write_text("host,open_ports,os,installed_patches\n192.0.2.10,445,Windows 2000,KB1234567\n"
                 "192.0.2.11,445,Windows XP,MS05-027\n")
    run("assets", "import", str(f))
    rows = json.loads(run("exposure", "445", "--json").output)
    by = {r["host"]: r for r in rows}
    assert by["192.0.2.10"]["evidence"] == "observed+declared"
    assert by["192.0.2.10"]["missing"] == "CVE-2005-1206" and by["192.0.2.11"]["missing"] is None
    out = run("rules", "445", "--for", "patch-list").output
    assert "192.0.2.10" in out and "missing" in out and "192.0.2.11" not in out


@pytest.mark.parametrize("fmt, needle", [
    ("nftables", "tcp dport 445 counter drop"), ("iptables", "--dport 445"),
    ("pf", "block drop in quick proto tcp from any to any port 445"),
    ("windows-powershell", "-LocalPort 445"), ("windows-netsh", "localport=445"),
    ("cisco-ios", "deny tcp any any eq 445"), ("suricata", "sid:1000445"),
    ("snort", "$HOME_NET 445"),
])
def test_rules_formats(env, fmt, needle):
    run, _ = env
    assert needle in run("rules", "445", "--for", fmt).output


def test_rules_with_scanners(env):
    run, _ = env
    out = run("rules", "445", "--for", "cisco-ios", "--scanners").output
    assert "time-range PORTRADAR-SCANNERS" in out and "absolute end 00:00 25 June 2005" in out
    # the spike (still open on its first day) began 06-17: its sources blocked a week
    # after the last day seen
    assert out.count("deny ip host 198.") >= 800


def test_bad_input_is_a_clear_error(env, tmp_path):
    run, _ = env
    assert "65536" in run("rules", "65536", "--for", "pf", code=2).output
    assert "interface" in run("rules", "445", "--for", "pf", "--interface", "em0;x",
                              code=1).output
    bad = tmp_path / "bad.json"
    bad.write_text('{"catalogVersion": "1", "vulnerabilities": [')
    out = run("intel", "import", str(bad), "--kind", "cisa-kev", code=1).output
    assert "bad.json" in out and "not valid JSON" in out
