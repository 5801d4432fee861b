"""``portradar scanners``, ``portradar scanner ADDRESS`` and ``portradar evaluate scanners``."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from conftest import PSAD, need

from portradar.cli.app import cli
from portradar.scan.evaluation import parse_labels, port_text


@pytest.fixture
def env(tmp_path):
    runner = CliRunner()
    db = str(tmp_path / "cli.duckdb")

    def run(*args: str, code: int = 0):
        result = runner.invoke(cli, ["--db", db, *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    for name in ("syn_scan_1000_1500", "syn_sweep", "udp_scan_1000_1150"):
        run("ingest", "-q", str(need(PSAD / name)))
    return run, tmp_path


def test_scanners_lists_detects_and_renders_three_ways(env):
    run, _ = env
    table = run("scanners").output
    assert "192.168.10.55" in table and "scanner" in table
    rows = json.loads(run("scanners", "--json").stdout)
    assert len(rows) == 1
    row = rows[0]
    assert row["source"] == "192.168.10.55" and row["status"] == "scanner"
    assert {"first_seen", "last_seen", "port_list", "kind", "type", "tool", "detector",
            "confidence", "answered", "evidence", "probes", "targets"} <= set(row)
    out = list(csv.DictReader(io.StringIO(run("scanners", "--csv").stdout)))
    assert out[0]["source"] == "192.168.10.55" and "1000-1500" in out[0]["ports"]


def test_scanners_filters(env):
    run, _ = env
    assert json.loads(run("scanners", "--json", "--port", "1083").stdout)
    assert json.loads(run("scanners", "--json", "--port", "22").stdout) == []
    assert json.loads(run("scanners", "--json", "--since", "2099-01-01").stdout) == []
    assert json.loads(run("scanners", "--json", "--tool", "nmap").stdout)
    assert json.loads(run("scanners", "--json", "--status", "backscatter").stdout) == []
    run("scanners", "--json", "--json", "--csv", code=2)


def test_scanner_shows_one_source_in_full(env):
    run, _ = env
    text = run("scanner", "192.168.10.55").output
    for word in ("evidence", "busiest", "nmap", "1000-1500", "flagged"):
        assert word in text
    row = json.loads(run("scanner", "192.168.10.55", "--json").stdout)[0]
    assert row["top_ports"][0]["probes"] >= 1 and row["status"] == "scanner"
    assert "never seen" in run("scanner", "192.0.2.99", code=1).output
    assert "not an IP address" in run("scanner", "nonsense", code=2).output


def test_settings_are_kept_and_recompute(env):
    run, tmp_path = env
    blist = tmp_path / "benign.txt"
    blist.write_text("# lab\n192.168.10.0/24 lab scanner\n")
    out = run("scanners", "--json", "--benign-list", str(blist))
    assert json.loads(out.stdout)[0]["status"] == "benign"
    assert json.loads(run("scanners", "--json").stdout)[0]["benign_name"] == "lab scanner"
    run("scanners", "--benign-list", "none", "--recompute")
    assert json.loads(run("scanners", "--json").stdout)[0]["status"] == "scanner"
    assert "not an IP network" in run("scanners", "--dark", "x/99", code=1).output


def test_evaluate_scanners_with_labels(env):
    run, tmp_path = env
    labels = tmp_path / "labels.csv"
    labels.write_text("source,ports,start,end\n"
                      "192.168.10.55,1000-1500,,\n"
                      "198.51.100.1,445,,\n")
    result = json.loads(run("evaluate", "scanners", "--labels", str(labels), "--json").stdout)
    s = result["summary"]
    assert (s["labels"], s["detected"], s["precision"], s["recall"]) == (2, 1, 1.0, 0.5)
    first = result["labels"][0]
    assert first["detected"] and first["probes_to_flag"] >= 1
    assert first["seconds_to_flag"] is not None
    text = run("evaluate", "scanners", "--labels", str(labels)).output
    assert "precision 100.0%" in text and "recall 50.0%" in text
    bad = tmp_path / "bad.csv"
    bad.write_text("who,what\n1,2\n")
    assert "header" in run("evaluate", "scanners", "--labels", str(bad), code=1).output


def test_label_parsing_and_port_text():
    labels = parse_labels("source,ports,start,end\n2001:db8::/64,*,2024-01-01,\n")
    assert labels[0].ports is None and labels[0].start is not None and labels[0].end is None
    assert port_text([1, 2, 3, 7, 9, 10]) == "1-3,7,9-10"
    from portradar.errors import InputError

    with pytest.raises(InputError, match="not an address"):
        parse_labels("source,ports,start,end\nnope,,,\n")
    with pytest.raises(InputError, match="port"):
        parse_labels("source,ports,start,end\n192.0.2.1,70000,,\n")
