"""Load test of ``portradar collect serve``: a bounded number of signed batches from a
local thread pool, reporting batches/s, events/s and p50/p99 latency.

The wrk-driven load test is ``bench/collector_load.py`` (pre-signed bodies, each with a
fresh nonce, sent once); this is its thread-pool twin over keep-alive-less
``http.client`` connections, with the same signed bodies.  The collector
runs as a separate process on loopback (as in production), with a fresh store.

    python bench/collector_bench.py --requests 300 --events 1000 --threads 4
"""

from __future__ import annotations

import argparse
import http.client
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# the signed request bodies and the free port come from the wrk load test's driver
from collector_load import free_port, signed_messages

from portradar.collect.collector import Collector
from portradar.store.duckdb_store import Store


def messages(keys: dict[str, bytes], requests: int, events: int) -> list[tuple[str, bytes, str]]:
    return signed_messages(keys, requests, events, seed=0)


def post(port: int, item: tuple[str, bytes, str]) -> tuple[int, float]:
    sensor, msg, sig = item
    started = time.perf_counter()
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    con.request("POST", "/api/v1/batches", body=msg,
                headers={"X-Portradar-Sensor": sensor, "X-Portradar-Signature": sig})
    response = con.getresponse()
    response.read()
    con.close()
    return response.status, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--events", type=int, default=1000, help="events per batch")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--sensors", type=int, default=4)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="collector-bench-")
    db = f"{workdir}/bench.duckdb"
    with Store.open(db) as store:
        c = Collector(store)
        keys = {f"sensor-{i}": c.add_sensor(f"sensor-{i}") for i in range(args.sensors)}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "portradar", "--db", db, "collect", "serve", "--port", str(port),
         "--rate", "100000", "--max-seconds", "600"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        items = messages(keys, args.requests, args.events)
        size = sum(len(m) for _, m, _ in items) / len(items)
        started = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            results = list(pool.map(lambda it: post(port, it), items))
        wall = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    ok = sum(1 for status, _ in results if status == 200)
    lat = np.array([t for _, t in results]) * 1000
    print(f"{args.requests} requests x {args.events} events, {args.threads} threads, "
          f"{args.sensors} sensors, {size / 1024:.1f} KiB per message")
    print(f"  stored {ok}/{len(results)} in {wall:.2f} s: {ok / wall:.0f} batches/s, "
          f"{ok * args.events / wall:,.0f} events/s")
    print(f"  latency p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms")
    with Store.open(db, read_only=True) as store:
        (n,) = store.con.execute("SELECT count(*) FROM event_rows").fetchall()[0]
    print(f"  events in the store: {n:,} (expected {ok * args.events:,})")


if __name__ == "__main__":
    main()
