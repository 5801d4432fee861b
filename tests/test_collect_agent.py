"""The agent: lines re-read after a crash are stored once, a full spool pauses reading
without losing lines, target addresses are anonymised before they leave."""

from __future__ import annotations

import os
import threading

import pytest

from portradar.collect.agent import Agent
from portradar.collect.anonymise import mask_targets
from portradar.collect.collector import Collector, CollectorServer
from portradar.store.duckdb_store import Store

LINE = ("2026-11-26T10:00:{s:02d}Z fw kernel: DROP IN=eth0 OUT= SRC=198.51.100.{n} "
        "DST=192.0.2.{n} LEN=40 TTL=50 ID={n} PROTO=TCP SPT={n} DPT=445 WINDOW=1 RES=0x00 "
        "SYN URGP=0\n")


@pytest.fixture
def served():
    with Store.open(":memory:") as store:
        collector = Collector(store)
        key = collector.add_sensor("fw1")
        server = CollectorServer(collector, port=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield collector, server.url, key
        finally:
            server.shutdown()
            server.server_close()


def write(path: str, first: int, n: int) -> None:
    with open(path, "a") as fh:
        for i in range(first, first + n):
            fh.write(LINE.format(s=i % 60, n=1 + i % 250))


def count(collector: Collector) -> int:
    with collector.lock:
        return collector.store.con.execute("SELECT count(*) FROM event_rows").fetchall()[0][0]


def test_lines_reread_after_crash_are_stored_once(served, tmp_path):
    collector, url, key = served
    log = str(tmp_path / "fw.log")
    write(log, 0, 5)
    spool = str(tmp_path / "spool")
    first = Agent(url, "fw1", key, [(log, "iptables")], spool)
    first.collect()
    os.unlink(os.path.join(spool, "positions.json"))  # crash before the position was saved
    first.close()
    second = Agent(url, "fw1", key, [(log, "iptables")], spool)
    second.collect()
    assert second.spool.count() == 2  # the same batch twice, same id
    second.flush()
    assert second.spool.count() == 0
    assert count(collector) == 5


def test_full_spool_pauses_reading_and_loses_nothing(served, tmp_path):
    collector, url, key = served
    log = str(tmp_path / "fw.log")
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    agent = Agent(dead, "fw1", key, [(log, "iptables")], str(tmp_path / "spool"),
                  spool_bytes=6000, base_backoff=0.0, max_backoff=0.0)
    for i in range(6):
        write(log, 10 * i, 10)
        agent.step()
    assert agent.spool.refused > 0 and agent.inputs[0].follower.lag_bytes() > 0
    agent.url = url
    for _ in range(20):
        agent.step()
        if not agent.spool.count() and not agent.inputs[0].follower.lag_bytes():
            break
    assert count(collector) == 60 == agent.stats.events


def test_targets_masked_before_they_leave(served, tmp_path):
    collector, url, key = served
    log = str(tmp_path / "fw.log")
    write(log, 0, 5)
    agent = Agent(url, "fw1", key, [(log, "iptables")], str(tmp_path / "spool"),
                  anonymiser=mask_targets)
    agent.step()
    with collector.lock:
        dst = collector.store.con.execute("SELECT DISTINCT dst_lo FROM event_rows").fetchall()
    assert dst == [(0xFFFF_C000_0200,)]
