"""The ``portradar`` command: listings in three formats, and clear errors, never tracebacks."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
from click.testing import CliRunner
from conftest import PSAD, need

from portradar.cli.app import cli

LINE = ("Nov 26 10:{m:02d}:00 fw kernel: [UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.{s} "
        "DST=192.0.2.{d} LEN=44 TOS=0x00 PREC=0x00 TTL=50 ID=1 PROTO=TCP SPT=4444 DPT={p} "
        "WINDOW=1024 RES=0x00 SYN URGP=0\n")


@pytest.fixture
def env(tmp_path):
    runner = CliRunner()
    db = str(tmp_path / "cli.duckdb")
    log = tmp_path / "fw.log"
    log.write_text("".join(LINE.format(m=i % 60, s=i % 7 + 1, d=i % 3 + 1, p=445 if i % 2 else 23)
                           for i in range(120)))
    os.utime(log, (1_795_000_000, 1_795_000_000))  # 2026-11-18: year resolution reference

    def run(*args: str, code: int = 0):
        result = runner.invoke(cli, ["--db", db, *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return run, log, tmp_path


def test_ingest_then_views_in_every_format(env):
    run, log, _ = env
    out = run("ingest", "--tz", "UTC", "--year", "2026", str(log), "--json").output
    summary = json.loads(out)
    assert summary[0]["events"] == 120 and summary[0]["status"] == "ingested"
    assert "120" in run("ingest", "--tz", "UTC", str(log)).output  # table, "already stored"

    top = json.loads(run("ports", "--json").output)
    # 23 and 445 tie on records; the order between them is by protocol and port
    assert [(r["port"], r["records"], r["sources"], r["targets"]) for r in top] == [
        (23, 60, 7, 3), (445, 60, 7, 3)]
    rows = list(csv.DictReader(io.StringIO(run("ports", "--csv").output)))
    assert {r["port"] for r in rows} == {"23", "445"}
    assert "top ports by records" in run("ports").output

    hist = json.loads(run("port", "445", "--json", "--last", "3").output)
    assert hist[-1]["records"] == 60 and len(hist) == 3
    assert "▁" in run("port", "445").output or "█" in run("port", "445").output

    src = json.loads(run("sources", "--json", "-n", "3").output)
    assert src[0]["probes"] == max(r["probes"] for r in src)
    assert src[0]["source"].startswith("198.51.100.")
    assert json.loads(run("inputs", "--json").output)[0]["events"] == 120


def test_garbage_empty_and_unknown_inputs_fail_cleanly(env):
    run, _, tmp = env
    (tmp / "garbage.bin").write_bytes(bytes(range(256)) * 50)
    (tmp / "empty.log").write_bytes(b"")
    (tmp / "notes.txt").write_text("hello world\nnothing to see\n")
    for name, words in [("garbage.bin", "binary data of an unknown format"),
                        ("empty.log", "empty input"),
                        ("notes.txt", "unknown format"),
                        ("missing.log", "no such file")]:
        result = run("ingest", str(tmp / name), code=1)
        assert words in result.output and "Traceback" not in result.output, name


def test_truncated_pcap_is_a_clear_error_or_a_counted_skip(env):
    _, _, tmp = env
    pcap = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")
    record = bytes.fromhex("00000000000000003c0000003c000000")  # claims 60 bytes, has 10
    (tmp / "cut.pcap").write_bytes(pcap + record + b"\x00" * 10)
    result = CliRunner().invoke(cli, ["--db", str(tmp / "p.duckdb"), "ingest",
                                      str(tmp / "cut.pcap")])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "truncated" in result.output.lower()


def test_strict_mode_exit_status_and_location(env):
    run, log, _ = env
    with log.open("a") as f:
        f.write("not a firewall line\n")
    result = run("ingest", "--strict", "--format", "iptables", str(log), code=1)
    assert f"{log}:121: not a netfilter LOG line" in result.output


def test_bad_options_are_usage_errors(env):
    run, log, _ = env
    assert "unknown time zone" in run("ingest", "--tz", "Mars/Base", str(log), code=1).output
    assert "no reader named" in run("ingest", "--format", "nope", str(log), code=1).output
    assert "PREFIX=OUTCOME" in run("ingest", "--action", "x=maybe", str(log), code=2).output


def test_psad_file_through_the_command(env):
    run, _, _ = env
    out = json.loads(run("ingest", "--json", str(need(PSAD / "syn_scan_1000_1500"))).output)
    assert (out[0]["format"], out[0]["events"], out[0]["skipped"]) == ("iptables", 1002, 0)
    top = json.loads(run("sources", "--json").output)
    assert top[0]["source"] == "192.168.10.55" and top[0]["ports"] == 501


def test_formats_lists_the_readers(env):
    run, _, _ = env
    names = {r["format"] for r in json.loads(run("formats", "--json").output)}
    assert {"iptables", "pcap"} <= names


def test_generic_table_with_a_column_map(env):
    run, _, tmp = env
    table = tmp / "export.csv"
    table.write_text("time,source,dest,port,proto\n"
                     "2026-11-26T10:00:00Z,198.51.100.7,192.0.2.1,445,tcp\n"
                     "2026-11-26T10:00:05Z,198.51.100.8,192.0.2.1,445,tcp\n")
    out = json.loads(run("ingest", "--json", "--map",
                         "ts=time,src=source,dst=dest,dport=port,proto=proto",
                         str(table)).output)
    assert (out[0]["format"], out[0]["events"]) == ("generic", 2)
    assert "cannot map to" in run("ingest", "--map", "port=x", str(table), code=1).output
