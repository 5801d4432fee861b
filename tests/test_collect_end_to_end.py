"""Three agents follow growing logs into one collector on loopback; the collector is
killed with SIGKILL and restarted midway, one agent is cut off for a while; at the end
the collector holds exactly the events the agents read, none lost, none twice."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from portradar.collect.agent import Agent
from portradar.collect.collector import Collector
from portradar.store.duckdb_store import Store

SENSORS = ("fw-a", "fw-b", "fw-c")
ROUNDS = 24  # rounds of writes per log
LINES_PER_ROUND = 25
ROUND_SECONDS = 0.1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def line(sensor_no: int, i: int) -> str:
    src = f"198.51.{100 + sensor_no}.{1 + i % 250}"
    return (f"2026-11-26T10:{i // 600 % 60:02d}:{i // 10 % 60:02d}Z fw kernel: DROP IN=eth0 "
            f"OUT= SRC={src} DST=192.0.2.{1 + i % 200} LEN=40 TTL=50 ID={i} PROTO=TCP "
            f"SPT={1024 + i} DPT={22 + i % 7} WINDOW=1024 RES=0x00 SYN URGP=0\n")


class Collectd:
    """The collector as a subprocess (so it can be SIGKILLed)."""

    def __init__(self, db: str, port: int) -> None:
        self.db, self.port = db, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "portradar", "--db", self.db, "collect", "serve",
             "--port", str(self.port), "--rate", "1000", "--max-seconds", "120"],
            stdout=subprocess.DEVNULL, stderr=open(self.db + ".log", "ab"))  # noqa: SIM115
        if not wait:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/health",
                                            timeout=1):
                    return
            except OSError:
                assert self.proc.poll() is None, "collector exited, see its .log"
                time.sleep(0.1)
        raise AssertionError("collector did not come up")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def test_three_agents_collector_killed_and_agent_cut_off(tmp_path):
    db = str(tmp_path / "collector.duckdb")
    with Store.open(db) as store:
        c = Collector(store)
        keys = {s: c.add_sensor(s) for s in SENSORS}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    collectd = Collectd(db, port)
    collectd.start()
    logs = {s: str(tmp_path / f"{s}.log") for s in SENSORS}
    for path in logs.values():
        open(path, "w").close()
    agents = {s: Agent(url, s, keys[s], [(logs[s], "iptables")], str(tmp_path / f"spool-{s}"),
                       base_backoff=0.05, max_backoff=0.4, timeout=3)
              for s in SENSORS}
    threads = [threading.Thread(target=a.run, kwargs={"batch_seconds": 0.1, "max_seconds": 90},
                                daemon=True) for a in agents.values()]
    written = dict.fromkeys(SENSORS, 0)

    def write_round(r: int) -> None:
        for n, s in enumerate(SENSORS):
            with open(logs[s], "a") as fh:
                for i in range(LINES_PER_ROUND):
                    fh.write(line(n, r * LINES_PER_ROUND + i))
                written[s] += LINES_PER_ROUND

    try:
        for t in threads:
            t.start()
        for r in range(ROUNDS):
            write_round(r)
            time.sleep(ROUND_SECONDS)
            if r == ROUNDS // 4:
                collectd.kill()  # mid-stream: the logs keep growing while it is down
            if r == ROUNDS // 4 + 4:
                collectd.start(wait=False)
            if r == ROUNDS // 2:
                agents["fw-c"].url = f"http://127.0.0.1:{free_port()}"  # cut off
            if r == 3 * ROUNDS // 4:
                assert agents["fw-c"].spool.count() > 0  # it spooled while cut off
                agents["fw-c"].url = url
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
                a.spool.count() or a.inputs[0].follower.lag_bytes() for a in agents.values()):
            time.sleep(0.1)
    finally:
        for a in agents.values():
            a.stop()
        for t in threads:
            t.join(timeout=20)
        collectd.stop()
    assert all(a.spool.count() == 0 for a in agents.values())
    assert {s: a.stats.events for s, a in agents.items()} == written
    with Store.open(db, read_only=True) as store:
        per_sensor = dict(store.con.execute(
            "SELECT sensor, count(*) FROM events GROUP BY sensor").fetchall())
        distinct = store.con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT sensor, src_lo, sport, ip_id FROM events)"
        ).fetchall()[0][0]
    assert per_sensor == written
    assert distinct == sum(written.values())
    # the outage and the restart really happened: sends failed and were retried
    assert all(a.stats.send_failures > 0 for a in agents.values())
