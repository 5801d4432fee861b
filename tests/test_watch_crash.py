"""``portradar watch`` killed with SIGKILL again and again stores exactly what one clean run does.

A writer appends seeded iptables lines to a followed file for about 25 seconds and
rotates it on the way (create mode, the moved file gzipped later; create mode gzipped
at once; copytruncate, the copy gzipped), while the test kills the service with
SIGKILL at random moments (seeded: 5 to 8 kills, 0.3 to 4 s after each start, so some
land in start-up and recovery, some in a micro-batch's transaction) and starts it
again.  At the end the per-port counts of the store (``port_activity_daily``: records,
packets, distinct sources and targets per day, sensor, protocol and port) and the
number of stored events must equal those of a single clean run over the same lines.

Create-mode rotations happen whenever the writer gets there, so two of them may fall
in one downtime (the middle file is found among the rotated files by its unknown head
and read in full).  The copytruncate rotation is made once the service has stored all
that was written (as with a daily rotation, where the follower has read most of the
file long before): a copytruncate of a file of which nothing was read yet cannot be
recovered by any follower (documented in docs/watch.md).

Every wait has a deadline; the service also has ``--max-seconds``; every process is
stopped by its PID.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from portradar.store import Store
from portradar.watch.config import WatchConfig
from portradar.watch.service import WatchService

SEED = 20261126
LINES = 24_000
CHUNKS = 80  # writes, one every WRITE_PAUSE seconds
WRITE_PAUSE = 0.3
PORTS = (22, 23, 80, 445, 1433, 3389, 5900, 8080)
DEADLINE = 60.0


def _lines(rng: random.Random) -> list[str]:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    out = []
    for i in range(LINES):
        ts = start + timedelta(seconds=i * 30 + rng.randrange(30))  # ~8 days, in order
        src = rng.randrange(4000)
        port = PORTS[min(len(PORTS) - 1, int(rng.expovariate(0.5)))]
        out.append(f"{ts.strftime('%Y-%m-%dT%H:%M:%SZ')} fw kernel: DROP IN=eth0 OUT= "
                   f"SRC=203.{src >> 8}.{src & 255}.{1 + src % 7} "
                   f"DST=198.51.100.{rng.randrange(1, 255)} LEN=40 TTL=50 ID={i & 65535} "
                   f"PROTO=TCP SPT={1024 + rng.randrange(60000)} DPT={port} WINDOW=1024 "
                   "RES=0x00 SYN URGP=0\n")
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _events(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return None
    m = re.search(r'^portradar_input_events_total\{input="fw"\} (\S+)$', text, re.MULTILINE)
    return float(m.group(1)) if m else None


def _gzip(path: Path) -> None:
    with open(path, "rb") as src, gzip.open(str(path) + ".gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.unlink(path)


def _config(log: Path, metrics: int | None = None) -> str:
    text = f"""
[watch]
period = "day"
batch_seconds = 0.2
detect_seconds = 1.0
scanners = false
[[input]]
type = "file"
name = "fw"
path = "{log}"
"""
    return text + (f"[metrics]\nport = {metrics}\n" if metrics else "")


def _counts(store: Store) -> tuple[int, list[tuple[object, ...]]]:
    store.refresh_activity()
    (events,) = store.con.execute("SELECT count(*) FROM event_rows").fetchone()  # type: ignore[misc]
    rows = store.con.execute(
        """SELECT bucket, sensor, proto, port, records, packets, sources, targets
           FROM port_activity_daily ORDER BY ALL""").fetchall()
    return int(events), rows


def test_sigkill_at_random_moments_stores_what_a_clean_run_does(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    lines = _lines(rng)
    kills = rng.randint(5, 8)
    delays = [rng.uniform(0.3, 4.0) for _ in range(kills)]
    log = tmp_path / "live" / "fw.log"
    log.parent.mkdir()
    log.write_text("")
    metrics = _free_port()
    config = tmp_path / "watch.toml"
    config.write_text(_config(log, metrics))
    store_path = tmp_path / "killed.duckdb"
    procs: list[subprocess.Popen[bytes]] = []
    seen: list[float | None] = []  # events stored just before each kill

    def start() -> subprocess.Popen[bytes]:
        with open(tmp_path / f"watch-{len(procs)}.log", "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "portradar", "--db", str(store_path), "watch",
                 "--config", str(config), "--max-seconds", "200"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append(proc)
        return proc

    def logs() -> str:
        return f"events before each kill: {seen}\n" + "\n".join(
            f"--- run {i}\n" + (tmp_path / f"watch-{i}.log").read_text()[-1500:]
            for i in range(len(procs)))

    written = 0
    done = threading.Event()

    def writer() -> None:
        nonlocal written
        per = LINES // CHUNKS

        def caught_up() -> None:
            deadline = time.monotonic() + DEADLINE
            while _events(metrics) != written and time.monotonic() < deadline:
                time.sleep(0.1)

        for c in range(CHUNKS):
            if c == 65:  # copytruncate of a file partly read (see the module doc)
                caught_up()
            if c == 20:  # create: moved, compressed later
                os.rename(log, str(log) + ".1")
                log.write_text("")
            elif c == 35:
                _gzip(Path(str(log) + ".1"))
            elif c == 50:  # create, compressed at once
                os.rename(str(log) + ".1.gz", str(log) + ".2.gz")
                os.rename(log, str(log) + ".1")
                log.write_text("")
                _gzip(Path(str(log) + ".1"))
            elif c == 65:  # copytruncate
                with open(log, "a") as fh:  # a chunk the service has not read yet
                    fh.writelines(lines[written:written + per])
                written += per
                os.rename(str(log) + ".2.gz", str(log) + ".3.gz")
                os.rename(str(log) + ".1.gz", str(log) + ".2.gz")
                shutil.copy(log, str(log) + ".1")
                os.truncate(log, 0)
                _gzip(Path(str(log) + ".1"))
            chunk = lines[written:written + per] if c < CHUNKS - 1 else lines[written:]
            with open(log, "a") as fh:
                fh.writelines(chunk)
            written += len(chunk)
            time.sleep(WRITE_PAUSE)
        done.set()

    try:
        proc = start()
        # the first run records the file's position before anything is written: a
        # follower that starts on a path with rotated files reads only the current one
        deadline = time.monotonic() + DEADLINE
        while _events(metrics) is None and time.monotonic() < deadline:
            assert proc.poll() is None, logs()
            time.sleep(0.1)
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        for delay in delays:
            time.sleep(delay)
            seen.append(_events(metrics))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            assert proc.returncode == -signal.SIGKILL
            proc = start()
        thread.join(timeout=DEADLINE * 2)
        assert done.is_set() and written == LINES
        deadline = time.monotonic() + DEADLINE
        while _events(metrics) != LINES and time.monotonic() < deadline:
            assert proc.poll() is None, logs()
            time.sleep(0.2)
        assert _events(metrics) == LINES, logs()
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=DEADLINE)
        assert proc.returncode == 0
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
    assert len(procs) == kills + 1

    # one clean run over the same lines
    clean_log = tmp_path / "clean" / "fw.log"
    clean_log.parent.mkdir()
    clean_log.write_text("".join(lines))
    with Store.open(tmp_path / "clean.duckdb") as store:
        svc = WatchService(store, WatchConfig.from_text(_config(clean_log)), sinks=[])
        for _ in range(200):  # bounded: 8 MiB a round
            svc.step()
            if svc.inputs[0].events == LINES:
                break
        svc.close()
        clean = _counts(store)
    with Store.open(store_path) as store:
        killed = _counts(store)
    assert killed[0] == clean[0] == LINES
    assert len(clean[1]) > 50 and killed[1] == clean[1]
