"""A small simulated store for the web API tests (built once per test session).

21 days of 3 simulated sensors at a low background (scale 0.02) with a worm on TCP 445
from day 14, so the spike is open at the newest event and inside the default 7-day
range; scan detection has run (scanners, a campaign), one alert is stored for 445 and
the server's start-up work is done (so each test's copy starts fast).
About 40,000 events: built in about 3 s.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from portradar.store.duckdb_store import Store

SEED = 3


def build(path: Path) -> Path:
    """The store at ``path`` (built there the first time)."""
    if path.exists():
        return path
    from portradar.alerts.lifecycle import AlertBook, Sighting
    from portradar.ingest.pipeline import store_batches
    from portradar.scan.detect import ensure_detection
    from portradar.sim import scenario as sc
    from portradar.sim.events import event_batches
    from portradar.web.store_access import StoreAccess

    chosen = sc.demo(days=21, sensors=3, seed=SEED, scale=0.02, campaigns=("445@14",))
    sim = sc.simulate(chosen, keep_sightings=True)
    assert sim.sightings is not None
    start_us = int(chosen.start_time.timestamp() * 1_000_000)
    batches = event_batches(sim.sightings, sensors=chosen.sensor_names, start_us=start_us,
                            seed=chosen.seed)
    tmp = path.with_suffix(".building")
    with Store.open(tmp) as store:
        store_batches(store, batches, name="simulate:web-tests", fmt="simulated",
                      identity=json.dumps({"web-tests": SEED}).encode())
        ensure_detection(store)
        book = AlertBook(store)
        with store.transaction():
            book.observe([Sighting(kind="spike", proto=6, port=445,
                                   onset="2025-01-20T00:00:00", at="2025-01-24T00:00:00",
                                   end=None, score=12.0, peak_sources=80.0,
                                   baseline_sources=12.0, spike_kind="growth")])
        StoreAccess.shared(store).prepare()  # new-source counts, knowledge base: once
    tmp.rename(path)
    return path


def fresh_copy(tmp_path_factory: Any, name: str) -> Path:
    """A private copy of the session's shared store (built once), for one test module."""
    import shutil

    base = build(tmp_path_factory.getbasetemp() / "web-base.duckdb")
    path = tmp_path_factory.mktemp(name) / "store.duckdb"
    shutil.copy(base, path)
    return path


def serve(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; yield its URL, then
    stop it (for a fixture: ``yield from serve(app)``)."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                        lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
