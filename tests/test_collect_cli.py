"""``portradar collect`` and ``portradar agent`` as the operator runs them.

The whole chain as real processes on loopback: ``collect serve`` and three ``agent``
processes, each following its own growing log; midway the collector is SIGKILLed and
restarted, and one agent is SIGKILLed and restarted cut off from the collector (it
spools), then restarted once more connected.  At the end the collector's store holds
exactly the events a local ``portradar ingest`` of the same logs gives, per sensor,
row for row (none lost, none twice), and ``collect sensors`` reports each sensor's
health.  Then the multi-sensor views: ``ports`` and ``port`` with ``--sensor`` apart
and together, and ``spikes`` telling a rise one sensor sees from one all sensors see.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from portradar.cli.app import cli
from portradar.collect import signing
from portradar.collect.batch_codec import BatchHeader, encode, encode_body
from portradar.collect.collector import Collector, CollectorServer
from portradar.sim.events import event_batches
from portradar.sim.scenario import demo, simulate
from portradar.store.duckdb_store import Store

SENSORS = ("fw-a", "fw-b", "fw-c")
CUT_OFF = "fw-c"
ROUNDS = 28
LINES_PER_ROUND = 30
ROUND_SECONDS = 0.15
#: The event columns compared between the collector's store and a local ingest (not
#: ``format`` and ``input_id``: they name the input, which differs by design).
CONTENT = ("ts, sensor, src_hi, src_lo, dst_hi, dst_lo, proto, sport, dport, tcp_flags, "
           "icmp_type, icmp_code, outcome, rule, in_iface, out_iface, packets, bytes, ttl, "
           "ip_id, tcp_window, tcp_seq")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_lines(sensor_no: int, r: int) -> str:
    """One round of a sensor's log: probes on a few ports, and one malformed line."""
    out = []
    for k in range(LINES_PER_ROUND):
        i = r * LINES_PER_ROUND + k
        src = f"198.51.{100 + sensor_no}.{1 + i % 97}" if k % 5 else f"203.0.113.{1 + i % 13}"
        out.append(f"2026-11-26T{10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z fw "
                   f"kernel: DROP IN=eth0 OUT= SRC={src} DST=192.0.2.{1 + i % 200} LEN=40 "
                   f"TTL=50 ID={i} PROTO=TCP SPT={1024 + i} DPT={(22, 445, 3389)[i % 3]} "
                   f"WINDOW=1024 RES=0x00 SYN URGP=0\n")
    out.append(f"2026-11-26T10:00:00Z fw kernel: garbled round {r}\n")
    return "".join(out)


def portradar(*args: str, **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "portradar", *args],
                            stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Processes:
    """The collector and agents this test started (stopped by PID, never by name)."""

    def __init__(self, tmp: Path, db: str, port: int) -> None:
        self.tmp, self.db, self.port = tmp, db, port
        self.collector: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}

    def start_collector(self) -> None:
        with open(self.tmp / "collector.err", "ab") as err:
            self.collector = portradar("--db", self.db, "collect", "serve", "--port",
                                       str(self.port), "--rate", "1000", "--max-seconds", "300",
                                       stderr=err)

    def collector_up(self) -> bool:
        assert self.collector is not None and self.collector.poll() is None, \
            (self.tmp / "collector.err").read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/health",
                                        timeout=1):
                return True
        except OSError:
            return False

    def start_agent(self, sensor: str, port: int) -> None:
        with open(self.tmp / f"{sensor}.err", "ab") as err:
            self.agents[sensor] = portradar(
                "agent", "--collector", f"http://127.0.0.1:{port}", "--sensor", sensor,
                "--key-file", str(self.tmp / f"{sensor}.key"),
                "--input", str(self.tmp / f"{sensor}.log"),
                "--spool", str(self.tmp / f"spool-{sensor}"), "--batch-seconds", "0.1",
                "--max-backoff", "0.5", "--max-seconds", "300", stderr=err)

    def signal(self, proc: subprocess.Popen[bytes] | None, sig: int) -> int:
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(sig)
        return proc.wait(timeout=60)

    def stop_all(self) -> None:
        for proc in [*self.agents.values(), self.collector]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)


def caught_up(tmp: Path, sensor: str) -> bool:
    """The agent has read its whole log and the collector acknowledged every batch."""
    spool = tmp / f"spool-{sensor}"
    try:
        state = json.loads((spool / "positions.json").read_text())
    except (OSError, ValueError):
        return False
    (position,) = state["positions"].values()
    return (position[1] == os.path.getsize(tmp / f"{sensor}.log")
            and not list(spool.glob("*.prb")))


def test_collector_and_three_agents_as_processes(tmp_path):
    db, local = str(tmp_path / "collector.duckdb"), str(tmp_path / "local.duckdb")
    runner = CliRunner()
    for s in SENSORS:
        res = runner.invoke(cli, ["--db", db, "collect", "add-sensor", s])
        assert res.exit_code == 0, res.output
        key = tmp_path / f"{s}.key"
        key.write_text(res.output.strip() + "\n")
        key.chmod(0o600)
        (tmp_path / f"{s}.log").write_text("")
    port = free_port()
    procs = Processes(tmp_path, db, port)
    errors, seen = tmp_path / f"{CUT_OFF}.err", 0

    def write_round(r: int) -> None:
        for n, s in enumerate(SENSORS):
            with open(tmp_path / f"{s}.log", "a") as fh:
                fh.write(log_lines(n, r))

    try:
        procs.start_collector()
        wait_for(procs.collector_up, 60, "the collector")
        for s in SENSORS:
            procs.start_agent(s, port)
        write_round(0)
        wait_for(lambda: all(caught_up(tmp_path, s) for s in SENSORS), 60, "the agents")
        for r in range(1, ROUNDS):
            write_round(r)
            time.sleep(ROUND_SECONDS)
            if r == 4:  # mid-stream: the logs keep growing while it is down
                assert procs.signal(procs.collector, signal.SIGKILL) == -signal.SIGKILL
            if r == 10:
                procs.start_collector()
            if r == 12:  # crash the agent, bring it back cut off: it spools
                procs.signal(procs.agents[CUT_OFF], signal.SIGKILL)
                seen = len(errors.read_text())
                procs.start_agent(CUT_OFF, free_port())
            if r == ROUNDS - 6:
                wait_for(lambda seen=seen: "unreachable" in errors.read_text()[seen:]
                         and list((tmp_path / f"spool-{CUT_OFF}").glob("*.prb")), 30,
                         "the cut-off agent to spool")
                assert procs.signal(procs.agents[CUT_OFF], signal.SIGTERM) == 0
                procs.start_agent(CUT_OFF, port)
        wait_for(procs.collector_up, 60, "the restarted collector")
        wait_for(lambda: all(caught_up(tmp_path, s) for s in SENSORS), 90,
                 "every log stored")
        for s in SENSORS:
            assert procs.signal(procs.agents[s], signal.SIGTERM) == 0
        assert procs.signal(procs.collector, signal.SIGTERM) == 0
    finally:
        procs.stop_all()

    # the collector outage really happened: the agents that stayed up had to wait
    for s in SENSORS:
        assert "unreachable" in (tmp_path / f"{s}.err").read_text(), s
    for s in SENSORS:
        res = runner.invoke(cli, ["--db", local, "ingest", "--quiet", "--format", "iptables",
                                  "--sensor", s, str(tmp_path / f"{s}.log")])
        assert res.exit_code == 0, res.output
    expected = LINES_PER_ROUND * ROUNDS
    checksum = (f"SELECT sensor, count(*), sum(hash({CONTENT})) FROM {{}}events "
                "GROUP BY sensor ORDER BY sensor")
    with Store.open(db) as store:
        con = store.con
        got = con.execute(checksum.format("")).fetchall()
        con.execute(f"ATTACH '{local}' AS local (READ_ONLY)")
        want = con.execute(checksum.format("local.")).fetchall()
        missing = con.execute(f"SELECT count(*) FROM (SELECT {CONTENT} FROM local.events "
                              f"EXCEPT ALL SELECT {CONTENT} FROM events)").fetchall()[0][0]
        extra = con.execute(f"SELECT count(*) FROM (SELECT {CONTENT} FROM events "
                            f"EXCEPT ALL SELECT {CONTENT} FROM local.events)").fetchall()[0][0]
    assert [(s, n) for s, n, _ in want] == [(s, expected) for s in SENSORS]
    assert got == want
    assert (missing, extra) == (0, 0)

    res = runner.invoke(cli, ["--db", db, "collect", "sensors", "--json"])
    assert res.exit_code == 0, res.output
    health = {row["sensor"]: row for row in json.loads(res.output)}
    assert sorted(health) == list(SENSORS)
    for row in health.values():
        assert row["events"] == expected and row["rejected"] == 0 and row["batches"] > 1
        assert row["last_seen"] and row["events_per_s"] and abs(row["skew_s"]) < 5
    table = runner.invoke(cli, ["--db", db, "collect", "sensors"])
    assert table.exit_code == 0 and all(s in table.output for s in SENSORS)

    # the per-port views, sensors apart and together
    def ports(*extra: str) -> dict[int, dict]:
        res = runner.invoke(cli, ["--db", db, "ports", "--period", "hour", "--json", *extra])
        assert res.exit_code == 0, res.output
        return {row["port"]: row for row in json.loads(res.output)}

    together = ports()
    apart = {s: ports("--sensor", s) for s in SENSORS}
    assert sorted(together) == [22, 445, 3389]
    for p, row in together.items():
        assert row["records"] == sum(apart[s][p]["records"] for s in SENSORS)
        # 203.0.113.x probes every sensor: the union has fewer sources than the sum
        assert max(apart[s][p]["sources"] for s in SENSORS) < row["sources"] \
            < sum(apart[s][p]["sources"] for s in SENSORS)
    history = runner.invoke(cli, ["--db", db, "port", "445", "--period", "hour", "--json",
                                  "--sensor", "fw-b"])
    assert history.exit_code == 0, history.output
    assert sum(r["records"] for r in json.loads(history.output)) == apart["fw-b"][445]["records"]


def test_agent_without_inputs_or_key_says_what_to_do(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["agent", "--collector", "http://127.0.0.1:9", "--sensor", "s",
                              "--key", "00"])
    assert res.exit_code == 2 and "--input" in res.output
    config = tmp_path / "agent.toml"
    config.write_text('[[input]]\ntype = "syslog"\n')
    res = runner.invoke(cli, ["agent", "--collector", "http://127.0.0.1:9", "--sensor", "s",
                              "--key", "00", "--config", str(config),
                              "--spool", str(tmp_path / "spool")])
    assert res.exit_code != 0 and "udp = PORT" in res.output


def test_spikes_on_merged_sensors_tell_one_sensor_from_many(tmp_path):
    """A sweep every sensor sees and a rise only one sees, each sensor's events sent as
    its own signed batches: ``spikes`` counts the sensors that saw each, ``port
    --sensor`` shows the one-sensor rise apart."""
    sc = demo(days=35, sensors=3, seed=4, campaigns=("sweep:445@25", "local:23@22"),
              focus=True)
    sim = simulate(sc, keep_sightings=True)
    assert sim.sightings is not None
    db = str(tmp_path / "merged.duckdb")
    with Store.open(db) as store:
        collector = Collector(store, rate=1e9, burst=1e9)
        keys = {s: collector.add_sensor(s) for s in sc.sensor_names}
        for batch in event_batches(sim.sightings, sensors=sc.sensor_names, seed=sc.seed,
                                   start_us=int(sc.start_time.timestamp() * 1e6)):
            for s in sc.sensor_names:  # a loop over the sensors, not the events
                part = batch.filter(pc.equal(batch.column("sensor").cast("string"), s))
                if part.num_rows:
                    header = BatchHeader(batch_id=signing.new_nonce(), sensor=s,
                                         ts=time.time(), nonce=signing.new_nonce(),
                                         events=part.num_rows)
                    message = encode(header, encode_body(part))
                    collector.submit(message, s, signing.sign(keys[s], message))
        collector.close()
    runner = CliRunner()
    res = runner.invoke(cli, ["--db", db, "spikes", "--json"])
    assert res.exit_code == 0, res.output
    by_port = {(r["port"], r["scope"]): r for r in json.loads(res.output)}
    sweep, rise = by_port[(445, "all")], by_port[(23, "all")]
    assert sweep["sensors"] == "3/3"
    assert rise["sensors"] == "1/3" and "," not in rise["sensor_names"]

    def sources_on(sensor: str, day: str) -> int:
        res = runner.invoke(cli, ["--db", db, "port", "23", "--json", "--sensor", sensor])
        assert res.exit_code == 0, res.output
        return next(r["sources"] for r in json.loads(res.output) if r["bucket"] == day)

    onset = rise["onset"]
    seen = {s: sources_on(s, onset) for s in sc.sensor_names}
    assert max(seen, key=seen.__getitem__) == rise["sensor_names"]
    assert seen[rise["sensor_names"]] > 3 * max(v for s, v in seen.items()
                                                if s != rise["sensor_names"])

    def spikes_on(sensor: str) -> list[dict]:
        res = runner.invoke(cli, ["--db", db, "spikes", "--json", "--port", "23",
                                  "--sensor", sensor])
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    # alone against its own baseline, the sensor that saw the rise shows it; the others,
    # each against its own, show nothing on port 23 that day
    (own,) = spikes_on(rise["sensor_names"])
    assert own["sensors"] == "1/1" and own["scope"] == "sensor"
    assert own["onset"] == onset and own["peak_sources"] == seen[rise["sensor_names"]]
    for other in sc.sensor_names:
        if other != rise["sensor_names"]:
            assert not [r for r in spikes_on(other) if r["onset"] <= onset <= (r["end"] or onset)]
    bad = runner.invoke(cli, ["--db", db, "spikes", "--sensor", "nope"])
    assert bad.exit_code == 2 and "no sensor named 'nope'" in bad.output
    assert all(s in bad.output for s in sc.sensor_names)


def test_agent_config_follows_a_file_and_listens_for_syslog(tmp_path):
    """``portradar agent --config`` with watch's [[input]] tables: a file and a TCP
    syslog listener, both stored at the collector under the agent's sensor."""
    with Store.open(":memory:") as store:
        collector = Collector(store)
        key = collector.add_sensor("fw-cfg")
        server = CollectorServer(collector, port=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            (tmp_path / "fw.key").write_text(key.hex())
            (tmp_path / "fw.log").write_text(log_lines(0, 0))
            syslog_port = free_port()
            (tmp_path / "agent.toml").write_text(
                f'[watch]\ntz = "UTC"\n\n[[input]]\ntype = "file"\npath = "{tmp_path}/fw.log"'
                f'\n\n[[input]]\ntype = "syslog"\ntcp = {syslog_port}\n')
            with open(tmp_path / "agent.err", "wb") as err:
                agent = portradar("agent", "--collector", server.url, "--sensor", "fw-cfg",
                                  "--key-file", str(tmp_path / "fw.key"), "--config",
                                  str(tmp_path / "agent.toml"), "--spool",
                                  str(tmp_path / "spool"), "--batch-seconds", "0.1",
                                  "--max-seconds", "60", stderr=err)
            try:
                deadline = time.monotonic() + 60
                while True:  # the listener is up once the agent has started
                    try:
                        conn = socket.create_connection(("127.0.0.1", syslog_port), timeout=2)
                        break
                    except OSError:
                        assert time.monotonic() < deadline and agent.poll() is None, \
                            (tmp_path / "agent.err").read_text()
                        time.sleep(0.1)
                with conn:
                    conn.sendall(log_lines(1, 7).encode())
                def stored() -> int:
                    with collector.lock:  # the server's threads share the connection
                        return int(collector.sensors()[0]["events"])

                wait_for(lambda: stored() == 2 * LINES_PER_ROUND, 30, "both inputs stored")
            finally:
                agent.send_signal(signal.SIGTERM)
                assert agent.wait(timeout=60) == 0
            with collector.lock:
                rows = store.con.execute(
                    "SELECT sensor, count(*) FROM events GROUP BY sensor").fetchall()
        finally:
            server.shutdown()
            server.server_close()
    assert rows == [("fw-cfg", 2 * LINES_PER_ROUND)]


def test_load_driver_stores_exactly_what_wrk_sent(tmp_path):
    """``bench/collector_load.py`` on a few small batches: wrk's bodies all stored once."""
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (Debian package wrk)")
    bench = Path(__file__).resolve().parent.parent / "bench" / "collector_load.py"
    done = subprocess.run([sys.executable, str(bench), "--events", "200", "--requests", "16",
                           "--connections", "2", "--sensors", "2"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| 200 events" in done.stdout and "| 16 | 16 |" in done.stdout
    assert "(exact); 0 refused" in done.stderr
