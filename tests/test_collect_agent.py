"""The agent: a crash between spooling and saving positions stores nothing twice, a full
spool pauses reading without losing lines, target addresses are anonymised before they
leave, and the syslog and NetFlow inputs of ``watch`` (configured by the same TOML)
reach the collector named with the agent's sensor."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import threading
import time

import pytest

from portradar.collect.agent import Agent, FileInput, NetflowInput, SyslogInput
from portradar.collect.anonymise import mask_targets
from portradar.collect.collector import Collector, CollectorServer
from portradar.store.duckdb_store import Store
from portradar.watch.config import WatchConfig

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


@pytest.mark.parametrize("saved_before", [True, False])
def test_crash_between_spooling_and_saving_positions_stores_nothing_twice(
        served, tmp_path, saved_before):
    collector, url, key = served
    log = str(tmp_path / "fw.log")
    spool = str(tmp_path / "spool")
    state = os.path.join(spool, "positions.json")
    first = Agent(url, "fw1", key, [(log, "iptables")], spool)
    write(log, 0, 4)
    first.step()  # 4 stored, position saved
    if saved_before:
        shutil.copy(state, state + ".old")
    write(log, 4, 5)
    first.collect()  # 5 spooled, position saved ...
    first.close()
    if saved_before:  # ... but the crash came before the save: the old file is back
        os.replace(state + ".old", state)
    else:  # ... or before any save at all
        os.unlink(state)
    write(log, 9, 3)  # the log grew while the agent was down
    second = Agent(url, "fw1", key, [(log, "iptables")], spool)
    second.collect()
    assert second.spool.count() == 2  # the spooled 5, and the 3 new lines: not 5 again
    second.flush()
    assert second.spool.count() == 0
    assert count(collector) == 12
    second.close()


def test_a_resent_batch_is_stored_once(served, tmp_path):
    collector, url, key = served
    log = str(tmp_path / "fw.log")
    write(log, 0, 5)
    agent = Agent(url, "fw1", key, [(log, "iptables")], str(tmp_path / "spool"))
    agent.collect()
    ((batch_id, body),) = agent.spool.pending()
    agent.flush()
    assert agent.spool.put(batch_id, body)  # as if the answer to the first send was lost
    agent.flush()
    assert (count(collector), agent.stats.duplicates, agent.spool.count()) == (5, 1, 0)


def test_full_spool_pauses_reading_and_loses_nothing(served, tmp_path):
    collector, url, key = served
    log = str(tmp_path / "fw.log")
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    agent = Agent(dead, "fw1", key, [(log, "iptables")], str(tmp_path / "spool"),
                  spool_bytes=6000, base_backoff=0.0, max_backoff=0.0)
    (follow,) = agent.inputs
    assert isinstance(follow, FileInput)
    for i in range(6):
        write(log, 10 * i, 10)
        agent.step()
    assert agent.spool.refused > 0 and follow.follower.lag_bytes() > 0
    agent.url = url
    for _ in range(20):
        agent.step()
        if not agent.spool.count() and not follow.follower.lag_bytes():
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


def v5_datagram(n: int, first: int = 0) -> bytes:
    """A NetFlow v5 export of ``n`` TCP SYN flows from 203.0.113.x to 192.0.2.10."""
    header = struct.pack(">HHIIIIBBH", 5, n, 100, 1_780_000_000, 0, first, 0, 0, 0)
    records = b"".join(
        struct.pack(">IIIHHIIIIHHBBBBHHBBH", 0xCB007100 + 1 + (first + i) % 250,
                    0xC000020A, 0, 1, 2, 1, 44, 50, 50, 40000 + i, 22 + i % 3, 0, 0x02, 6,
                    0, 0, 0, 24, 24, 0)
        for i in range(n))
    return header + records


def wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_syslog_and_netflow_inputs_configured_as_for_watch(served, tmp_path):
    collector, url, key = served
    log = str(tmp_path / "fw.log")
    write(log, 0, 3)
    config = WatchConfig.from_text(f"""
[[input]]
type = "file"
path = "{log}"
[[input]]
type = "syslog"
udp = 0
tcp = 0
[[input]]
type = "netflow"
port = 0
batch_seconds = 0.05
""")
    agent = Agent(url, "fw1", key, config.inputs, str(tmp_path / "spool"))
    try:
        _, syslog_input, netflow_input = agent.inputs
        assert isinstance(syslog_input, SyslogInput)
        assert isinstance(netflow_input, NetflowInput)
        syslog, netflow = syslog_input.listener, netflow_input.listener
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for i in range(3, 7):
                udp.sendto(LINE.format(s=i, n=i).encode(), syslog.udp_address)
        with socket.create_connection(syslog.tcp_address) as tcp:
            tcp.sendall("".join(LINE.format(s=i, n=i) for i in range(7, 12)).encode())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(v5_datagram(6), netflow.address)
            udp.sendto(v5_datagram(4, first=6), netflow.address)
        # 60 s, not 10: once in four full runs (a fresh clone, 2026-11-27) the 22 events
        # had not all reached the collector within 10 s; alone it takes about 2.5 s and a
        # cold numba cache costs 0.5 s, so the cause is not known (a bounded wait either way)
        assert wait_for(lambda: agent.step() >= 0 and count(collector) >= 3 + 9 + 10,
                        seconds=60)
    finally:
        stats = agent.run(max_seconds=0)  # the listeners' last words, then close
    with collector.lock:
        rows = collector.store.con.execute(
            "SELECT sport >= 40000 AS flow, count(*), min(sensor), max(sensor) FROM events "
            "GROUP BY flow ORDER BY flow").fetchall()
    assert rows == [(False, 12, "fw1", "fw1"), (True, 10, "fw1", "fw1")]  # lines, flows
    assert stats.events == 22 and agent.spool.count() == 0


def test_syslog_input_waits_while_the_spool_is_full(served, tmp_path):
    collector, url, key = served
    config = WatchConfig.from_text("[[input]]\ntype = \"syslog\"\ntcp = 0\n")
    agent = Agent("http://127.0.0.1:9", "fw1", key, config.inputs, str(tmp_path / "spool"),
                  spool_bytes=4000, base_backoff=0.0, max_backoff=0.0)
    (syslog_input,) = agent.inputs
    assert isinstance(syslog_input, SyslogInput)
    try:
        address = syslog_input.listener.tcp_address
        for r in range(6):
            with socket.create_connection(address) as tcp:
                tcp.sendall("".join(LINE.format(s=i % 60, n=1 + i) for i in
                                    range(20 * r, 20 * r + 20)).encode())
            wait_for(lambda: syslog_input.listener.pending_bytes() > 0, 2)
            agent.step()
        assert agent.spool.refused > 0  # full: the last batch is held, nothing dropped
        agent.url = url
        assert wait_for(lambda: agent.step() >= 0 and agent.pending() == 0)
    finally:
        agent.run(max_seconds=0)
    assert count(collector) == 120 == agent.stats.events
