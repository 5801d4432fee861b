"""The watch service's detection thread: micro-batches go on while a round runs, on its own
DuckDB connection; every line stored once; the scanner detection stays incremental."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from portradar.store import Store
from portradar.watch.config import WatchConfig
from portradar.watch.service import WatchService

START = datetime(2026, 1, 5, tzinfo=UTC)


def _lines(rng: np.random.Generator, n: int, t0: datetime) -> str:
    out = []
    for i in range(n):
        src = int(rng.integers(0, 5000))
        a = f"198.51.{src >> 8}.{src & 255}"
        ts = t0 + timedelta(seconds=i * 30)
        port = int(rng.choice([22, 23, 445, 3389]))
        out.append(f"{ts.strftime('%Y-%m-%dT%H:%M:%SZ')} fw kernel: DROP IN=eth0 OUT= "
                   f"SRC={a} DST=192.0.2.{src % 200 + 1} LEN=40 TTL=50 ID=1 PROTO=TCP "
                   f"SPT=40000 DPT={port} WINDOW=1024 RES=0x00 SYN URGP=0\n")
    return "".join(out)


def test_micro_batches_go_on_while_a_detection_round_runs(tmp_path: Path) -> None:
    log = tmp_path / "fw.log"
    rng = np.random.default_rng(5)
    log.write_text(_lines(rng, 3000, START))
    cfg = WatchConfig.from_text(f"""
[watch]
batch_seconds = 0.1
detect_seconds = 0
scan_seconds = 0
[[input]]
type = "file"
path = "{log}"
""")
    written = 3000
    with Store.open(tmp_path / "s.duckdb") as store:
        svc = WatchService(store, cfg, sinks=[])
        rounds: list[tuple[float, float]] = []
        commits: list[float] = []
        real_detect, real_ingest = svc.detect, svc.ingest

        def detect() -> Any:
            t = time.monotonic()
            try:
                time.sleep(0.3)  # a slow round: the micro-batches must not wait for it
                return real_detect()
            finally:
                rounds.append((t, time.monotonic()))

        def ingest() -> int:
            n = real_ingest()
            if n:
                commits.append(time.monotonic())
            return n

        svc.detect = detect  # type: ignore[method-assign]
        svc.ingest = ingest  # type: ignore[method-assign]
        stop = threading.Event()

        def writer() -> None:
            nonlocal written
            t0 = START + timedelta(days=1)
            for i in range(30):
                if stop.is_set():
                    return
                with log.open("a") as fh:
                    fh.write(_lines(rng, 100, t0 + timedelta(hours=i)))
                written += 100
                time.sleep(0.1)

        w = threading.Thread(target=writer)
        w.start()
        runner = threading.Thread(target=svc.run, kwargs={"max_seconds": 5.0})
        runner.start()
        w.join()
        runner.join(timeout=120)
        stop.set()
        assert not runner.is_alive()
        assert svc._detector_error is None
        (stored,) = store.con.execute("SELECT count(*) FROM event_rows").fetchone() or (0,)
        assert stored == written
        assert len(rounds) >= 2
        during = [c for c in commits if any(a < c < b for a, b in rounds)]
        assert during, "no micro-batch committed while a detection round ran"
        # the ledger follows the events: after the first (full) run, scanner detection
        # reads only the new events' networks
        assert svc.scan_summary is not None
        assert svc.scan_summary.mode in ("incremental", "unchanged")
        (ledger,) = store.con.execute(
            "SELECT sum(events) FROM inputs").fetchone() or (0,)
        assert ledger == written
