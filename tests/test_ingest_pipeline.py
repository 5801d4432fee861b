"""Exactly-once ingest: repeats, growth, rotation, compression, stdin, crashes, activity."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import zstandard
from conftest import PSAD, need

from portradar.ingest import pipeline
from portradar.ingest.iptables import IptablesReader
from portradar.ingest.pipeline import ingest_input, ingest_inputs
from portradar.ingest.reader import ReadOptions
from portradar.store import Store

OPTS = ReadOptions(tz="UTC", reference_time=datetime(2026, 12, 1, tzinfo=UTC))


def log_lines(n: int, seed: int = 1, start: datetime = datetime(2026, 11, 20, tzinfo=UTC)):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        t = start + timedelta(seconds=i * 37)
        src = f"198.51.{rnd.randint(0, 3)}.{rnd.randint(1, 40)}"
        dst = f"192.0.2.{rnd.randint(1, 20)}"
        port = rnd.choice([22, 23, 445, 3389, 80, rnd.randint(1, 65535)])
        out.append(f"{t:%b} {t.day:2d} {t:%H:%M:%S} fw{i % 2} kernel: [UFW BLOCK] IN=eth0 OUT= "
                   f"SRC={src} DST={dst} LEN=44 TOS=0x00 PREC=0x00 TTL=50 ID={i % 65536} "
                   f"PROTO=TCP SPT={1024 + i % 60000} DPT={port} WINDOW=1024 RES=0x00 SYN URGP=0\n")
    return out


def count(store, table="events"):
    return store.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_same_file_twice_is_stored_once(store, tmp_path):
    path = tmp_path / "fw.log"
    path.write_text("".join(log_lines(500)))
    first = ingest_input(store, path, options=OPTS)
    second = ingest_input(store, path, options=OPTS)
    assert (first.status, first.events) == ("ingested", 500)
    assert (second.status, second.events, second.resumed_at) == ("unchanged", 0, 500)
    assert count(store) == 500


def test_grown_log_stores_only_new_lines(store, tmp_path):
    lines = log_lines(900)
    path = tmp_path / "fw.log"
    path.write_text("".join(lines[:300]))
    ingest_input(store, path, options=OPTS)
    with path.open("a") as f:
        f.write("".join(lines[300:]))
    grown = ingest_input(store, path, options=OPTS)
    assert (grown.events, grown.resumed_at) == (600, 300)
    assert count(store) == 900


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress,
                                      lambda b: zstandard.ZstdCompressor().compress(b)])
def test_rotated_compressed_copy_is_not_stored_twice(store, tmp_path, compress):
    lines = log_lines(800)
    live = tmp_path / "kern.log"
    live.write_text("".join(lines[:500]))
    ingest_input(store, live, options=OPTS)
    # the log grows, is rotated and compressed; a new log starts
    rotated = tmp_path / "kern.log.1.z"
    rotated.write_bytes(compress("".join(lines).encode()))
    live.write_text("".join(log_lines(50, seed=9, start=datetime(2026, 11, 25, tzinfo=UTC))))
    results = ingest_inputs(store, [rotated, live], options=OPTS)
    assert [r.events for r in results] == [300, 50]
    assert results[0].resumed_at == 500
    assert count(store) == 850


def test_standard_input(store, tmp_path, monkeypatch):
    data = "".join(log_lines(100)).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    first = ingest_input(store, "-", options=OPTS)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    second = ingest_input(store, "-", options=OPTS)
    assert (first.name, first.events, second.events) == ("<stdin>", 100, 0)
    assert count(store) == 100


def test_crash_mid_ingest_keeps_committed_chunks_and_resumes(store, tmp_path, monkeypatch):
    lines = log_lines(3000)
    path = tmp_path / "fw.log"
    path.write_text("".join(lines))
    opts = ReadOptions(tz="UTC", reference_time=OPTS.reference_time, chunk_bytes=1 << 16)
    monkeypatch.setattr(pipeline, "COMMIT_EVENTS", 1)  # commit at every chunk
    real = IptablesReader.parse_lines
    calls = {"n": 0}

    def dying(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the third chunk
        return real(self, *args, **kwargs)

    monkeypatch.setattr(IptablesReader, "parse_lines", dying)
    with pytest.raises(KeyboardInterrupt):
        ingest_input(store, path, options=opts)
    stored = count(store)
    assert 0 < stored < 3000
    ledger = store.con.execute("SELECT records, events FROM inputs").fetchall()
    assert ledger == [(stored, stored)]  # the ledger matches what is stored, exactly
    monkeypatch.setattr(IptablesReader, "parse_lines", real)
    again = ingest_input(store, path, options=opts)
    assert again.resumed_at == stored
    assert count(store) == 3000


def test_ledger_counts_every_safe_point_before_a_commit(store, tmp_path):
    """Many read chunks (each a safe point) go into one commit: the ledger's records and
    events are the whole file's, not the last chunk's (it held 1,190,720 of 5,000,000)."""
    lines = log_lines(3000)
    lines[1000] = "Nov 20 10:00:00 fw0 kernel: [UFW BLOCK] IN=eth0 SRC=bogus\n"
    path = tmp_path / "fw.log"
    path.write_text("".join(lines))
    opts = ReadOptions(tz="UTC", reference_time=OPTS.reference_time, chunk_bytes=1 << 14)
    result = ingest_input(store, path, options=opts)
    assert (result.records, result.events, result.skipped_total) == (3000, 2999, 1)
    ledger = store.con.execute("SELECT records, events, skipped FROM inputs").fetchall()
    assert ledger == [(3000, 2999, 1)]
    with path.open("a") as f:
        f.write("".join(log_lines(700, seed=2)))
    assert ingest_input(store, path, options=opts).events == 700
    ledger = store.con.execute("SELECT records, events, skipped FROM inputs").fetchall()
    assert ledger == [(3700, 3699, 1)]
    assert count(store) == 3699


def test_crash_before_the_first_commit_leaves_nothing(store, tmp_path, monkeypatch):
    """With the default commit size, small chunks are committed together: all or none."""
    path = tmp_path / "fw.log"
    path.write_text("".join(log_lines(3000)))
    opts = ReadOptions(tz="UTC", reference_time=OPTS.reference_time, chunk_bytes=1 << 16)
    real = IptablesReader.parse_lines
    calls = {"n": 0}

    def dying(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(IptablesReader, "parse_lines", dying)
    with pytest.raises(KeyboardInterrupt):
        ingest_input(store, path, options=opts)
    assert count(store) == 0
    assert store.con.execute("SELECT count(*) FROM inputs").fetchall() == [(0,)]
    monkeypatch.setattr(IptablesReader, "parse_lines", real)
    assert ingest_input(store, path, options=opts).events == 3000
    assert count(store) == 3000


def test_strict_error_leaves_store_unchanged(store, tmp_path):
    lines = log_lines(2000)
    lines[1500] = "garbage line\n"
    path = tmp_path / "fw.log"
    path.write_text("".join(lines))
    opts = ReadOptions(tz="UTC", strict=True, chunk_bytes=1 << 16)
    result = ingest_input(store, path, options=opts)
    assert result.status == "failed"
    assert result.message.startswith(f"{path}:1501: not a netfilter LOG line")
    assert count(store) == 0 and count(store, "inputs") == 0


def test_port_activity_matches_an_independent_count(store, tmp_path):
    lines = log_lines(2000)
    path = tmp_path / "fw.log"
    path.write_text("".join(lines))
    ingest_inputs(store, [path], options=OPTS)
    # independent: parse with plain string operations
    expect: dict[tuple, list] = defaultdict(lambda: [0, set(), set()])
    for ln in lines:
        f = dict(tok.split("=", 1) for tok in ln.split() if "=" in tok)
        stamp = datetime.strptime("2026 " + ln[:15], "%Y %b %d %H:%M:%S")
        for key in ((stamp.strftime("%Y-%m-%d"), ln.split()[3]),
                    (stamp.strftime("%Y-%m-%d"), "*")):
            e = expect[(*key, int(f["DPT"]))]
            e[0] += 1
            e[1].add(f["SRC"])
            e[2].add(f["DST"])
    rows = store.con.execute(
        "SELECT strftime(bucket, '%Y-%m-%d'), sensor, port, records, sources, targets "
        "FROM port_activity_daily").fetchall()
    got = {(d, s, p): (r, src, dst) for d, s, p, r, src, dst in rows}
    assert got == {k: (v[0], len(v[1]), len(v[2])) for k, v in expect.items()}
    hourly = store.con.execute(
        "SELECT sum(records) FROM port_activity_hourly WHERE sensor = '*'").fetchone()[0]
    assert hourly == 2000


def test_activity_is_refreshed_after_more_data(store, tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("".join(log_lines(100, seed=1)))
    b.write_text("".join(log_lines(100, seed=2)))
    ingest_inputs(store, [a], options=OPTS)
    ingest_inputs(store, [b], options=OPTS)
    total = store.con.execute(
        "SELECT sum(records) FROM port_activity_daily WHERE sensor = '*'").fetchone()[0]
    assert total == 200


def test_retention_uses_event_time_and_keeps_aggregates(store, tmp_path):
    old = log_lines(100, seed=1, start=datetime(2026, 1, 1, tzinfo=UTC))
    new = log_lines(100, seed=2, start=datetime(2026, 11, 20, tzinfo=UTC))
    path = tmp_path / "fw.log"
    path.write_text("".join(old + new))
    store.set_setting("retention_days", "30")
    ingest_inputs(store, [path], options=OPTS)
    assert count(store) == 100
    assert store.con.execute(
        "SELECT sum(records) FROM port_activity_daily WHERE sensor = '*'").fetchone()[0] == 200


def test_psad_corpus_into_one_store(store):
    paths = sorted(need(PSAD).glob("*"))
    results = ingest_inputs(store, paths, options=OPTS)
    assert all(r.status in ("ingested", "unchanged") for r in results)
    assert sum(r.skipped_total for r in results) == 0
    # syn_scan_1000_1500_multi_dst begins with the 1,002 lines of syn_scan_1000_1500:
    # the same packets, recognised as one growing log and stored once
    multi = next(r for r in results if r.name.endswith("syn_scan_1000_1500_multi_dst"))
    assert (multi.resumed_at, multi.events) == (1002, 3006)
    assert count(store) == sum(r.events for r in results)


def test_one_sensor_all_sensor_rows_equal_its_own(store, tmp_path):
    lines = [ln.replace(" fw1 ", " fw0 ") for ln in log_lines(1500)]
    path = tmp_path / "fw.log"
    path.write_text("".join(lines))
    ingest_inputs(store, [path], options=OPTS)
    for table in ("port_activity_hourly", "port_activity_daily"):
        rows = store.con.execute(
            f"SELECT sensor, bucket, proto, port, records, packets, sources, targets "
            f"FROM {table}").fetchall()
        mine = sorted(r[1:] for r in rows if r[0] == "fw0")
        every = sorted(r[1:] for r in rows if r[0] == "*")
        assert mine == every and len(mine) > 10


def test_activity_counted_during_ingest_equals_counting_at_the_end(tmp_path, monkeypatch):
    """Finished days are refreshed on a second connection while reading; late lines for
    an already refreshed day mark it dirty again, so the end result is the same."""
    lines = log_lines(6000)  # about 2.6 days
    lines += log_lines(50, seed=5)  # late lines for the first day, after the rest
    path = tmp_path / "fw.log"
    path.write_text("".join(lines))
    opts = ReadOptions(tz="UTC", reference_time=OPTS.reference_time, chunk_bytes=1 << 16)
    monkeypatch.setattr(pipeline, "COMMIT_EVENTS", 300)
    calls = []
    real = Store.refresh_activity

    def recording(self, before=None):
        calls.append(before)
        return real(self, before)

    monkeypatch.setattr(Store, "refresh_activity", recording)

    def tables(db):
        with Store.open(db) as s:
            assert ingest_inputs(s, [path], options=opts)[0].events == 6050
            return [s.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                    for t in ("port_activity_hourly", "port_activity_daily")]

    during = tables(tmp_path / "during.duckdb")
    assert any(before is not None for before in calls)  # the second thread did work
    monkeypatch.setattr(pipeline, "ACTIVITY_DURING_INGEST", False)
    calls.clear()
    at_end = tables(tmp_path / "end.duckdb")
    assert calls == [None]
    assert during == at_end and len(during[1]) > 10
