"""Load test of ``portradar collect serve`` with wrk: a bounded number of signed batches.

The collector runs as its own process on 127.0.0.1 with a fresh store (rate limit off).
This driver makes ``--requests`` batches of ``--events`` random probes each, spread over
``--sensors`` sensors, and signs each one in advance with its own nonce and send time
(the collector refuses a repeated nonce, 409, so every request must differ: wrk's Lua
script cycles through the pre-signed bodies, each thread through its own share, and
stops its thread after its last answer, ``wrk.thread:stop()``; the batches/s are over
the span from the first request to the last answer, timed in the script).  Signatures carry the
send time, checked against a 300 s skew window (:data:`portradar.collect.signing
.SKEW_SECONDS`): the bodies are made just before the run and wrk's ``-d`` is capped so
the last request is sent inside the window.

It reports what wrk measured (batches/s and events/s over the run, p50/p99 latency of
the answers) and then checks the store: it must hold exactly the events of the batches
the collector answered "stored" (plus the warm-up batches), nothing more, nothing less.

    python bench/collector_load.py                      # 1,000- and 10,000-event batches
    python bench/collector_load.py --events 1000 --requests 2000 --connections 8

wrk 4.1 (Debian package ``wrk``) must be on the PATH.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass

import numpy as np

from portradar.collect import signing
from portradar.collect.batch_codec import BatchHeader, encode, encode_body
from portradar.collect.collector import Collector
from portradar.events.schema import make_batch
from portradar.store.duckdb_store import Store

#: Event times of the generated probes: 2026-05-28, inside the collector's sanity range.
TS0 = 1_780_000_000_000_000
#: Batches sent (by Python, before wrk) to warm the collector's imports and DuckDB's
#: caches; stored, checked, not measured.
WARMUP = 4
#: Seconds kept in hand below the skew window when capping wrk's run time.
SKEW_MARGIN = 20.0

LUA = r"""
-- portradar collector load: each thread sends its share of pre-signed batches once,
-- over its one connection, one at a time.
-- args: messages file, index file (sensor TAB signature TAB offset TAB length), threads,
-- a directory where each thread leaves a file when its last answer is in
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } portradar_timespec;
int clock_gettime(int clk_id, portradar_timespec *tp);
]]
local ts = ffi.new("portradar_timespec")
local function now_us()  -- CLOCK_MONOTONIC: one clock for every thread
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local threads, counter = {}, 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

items, answered, started_us, ended_us = {}, 0, 0, 0
stored, duplicate, other, extra = 0, 0, 0, 0
last_other = ""

function init(args)
  local fh = assert(io.open(args[1], "rb"))
  local data = fh:read("*a")
  fh:close()
  local nthreads, n = tonumber(args[3]), 0
  done_file = args[4] .. "/done-" .. id
  for line in io.lines(args[2]) do
    if n % nthreads == id then
      local sensor, sig, off, len = line:match("^(%S+)\t(%x+)\t(%d+)\t(%d+)$")
      off, len = tonumber(off), tonumber(len)
      items[#items + 1] = wrk.format("POST", "/api/v1/batches", {
        ["Content-Type"] = "application/vnd.portradar.batch",
        ["X-Portradar-Sensor"] = sensor, ["X-Portradar-Signature"] = sig,
      }, data:sub(off + 1, off + len))
    end
    n = n + 1
  end
  n_items = #items
end

calls = 0

function request()
  -- the next unanswered item: wrk calls this once more on thread 0 to inspect the
  -- script (before the other threads' init), and with one connection per thread the
  -- item in flight is always answered + 1
  calls = calls + 1
  if started_us == 0 and not (id == 0 and calls == 1) then started_us = now_us() end
  if answered >= #items then
    extra = extra + 1
    return wrk.format("GET", "/api/v1/health")
  end
  return items[answered + 1]
end

function response(status, headers, body)
  if answered >= #items then return end
  answered = answered + 1
  if status == 200 and body:find('"stored"', 1, true) then
    stored = stored + 1
  elseif status == 200 and body:find('"duplicate"', 1, true) then
    duplicate = duplicate + 1
  else
    other = other + 1
    last_other = status .. " " .. body:sub(1, 200)
  end
  if answered == #items then
    ended_us = now_us()
    local fh = io.open(done_file, "w")
    fh:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local t = {stored = 0, duplicate = 0, other = 0, extra = 0, items = 0}
  local first, last = math.huge, 0
  for _, thread in ipairs(threads) do
    local refused = thread:get("last_other")
    if refused ~= "" then io.write("REFUSED " .. refused .. "\n") end
    t.stored = t.stored + thread:get("stored")
    t.duplicate = t.duplicate + thread:get("duplicate")
    t.other = t.other + thread:get("other")
    t.extra = t.extra + thread:get("extra")
    t.items = t.items + thread:get("n_items")
    first = math.min(first, thread:get("started_us"))
    last = math.max(last, thread:get("ended_us"))
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "stored": %d, "duplicate": %d, "other": %d, "extra": %d, ' ..
    '"items": %d, "socket_errors": %d, "non_2xx": %d}\n',
    summary.requests, last - first, latency:percentile(50), latency:percentile(99),
    latency.max, t.stored, t.duplicate, t.other, t.extra, t.items,
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass
class Outcome:
    events: int
    requests: int
    kib_per_batch: float
    stored: int
    other: int
    seconds: float
    p50_ms: float
    p99_ms: float
    store_events: int
    store_batches: int
    expected_events: int

    @property
    def batches_per_s(self) -> float:
        return self.stored / self.seconds

    @property
    def events_per_s(self) -> float:
        return self.stored * self.events / self.seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signed_messages(keys: dict[str, bytes], count: int, events: int,
                    seed: int) -> list[tuple[str, bytes, str]]:
    """``count`` signed messages of ``events`` random probes, with fresh nonces."""
    rng = np.random.default_rng(seed)
    sensors = list(keys)
    out = []
    for i in range(count):
        sensor = sensors[i % len(sensors)]
        first = TS0 + seed * 86_400_000_000  # a day per seed, 1 ms between events
        batch = make_batch({
            "ts": first + np.arange(i * events, (i + 1) * events, dtype=np.int64) * 1000,
            "src_lo": 0xFFFF_0000_0000 + rng.integers(1, 1 << 32, events, dtype=np.uint64),
            "dst_lo": 0xFFFF_C000_0200 + rng.integers(0, 256, events, dtype=np.uint64),
            "proto": np.full(events, 6, np.uint8),
            "sport": rng.integers(1024, 65535, events, dtype=np.uint16),
            "dport": rng.choice(np.array([22, 23, 445, 3389, 80], np.uint16), events),
            "outcome": 1, "sensor": sensor, "format": "iptables"})
        header = BatchHeader(batch_id=f"{seed:08x}{i:024x}", sensor=sensor, ts=time.time(),
                             nonce=signing.new_nonce(), events=events)
        message = encode(header, encode_body(batch))
        out.append((sensor, message, signing.sign(keys[sensor], message)))
    return out


def post(port: int, item: tuple[str, bytes, str]) -> int:
    sensor, message, signature = item
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        con.request("POST", "/api/v1/batches", body=message,
                    headers={"X-Portradar-Sensor": sensor,
                             "X-Portradar-Signature": signature})
        response = con.getresponse()
        response.read()
        return response.status
    finally:
        con.close()


def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the collector exited; see collector.err in the work directory")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the collector did not come up within 60 s")


def run_one(workdir: str, events: int, requests: int, threads: int, sensors: int,
            wrk: str) -> Outcome:
    db = os.path.join(workdir, f"load-{events}.duckdb")
    with Store.open(db) as store:
        collector = Collector(store)
        keys = {f"sensor-{i}": collector.add_sensor(f"sensor-{i}") for i in range(sensors)}
    port = free_port()
    with open(os.path.join(workdir, "collector.err"), "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "portradar", "--db", db, "collect", "serve", "--port",
             str(port), "--rate", "1000000", "--max-seconds", "900"],
            stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_up(port, proc)
        warm = signed_messages(keys, WARMUP, events, seed=1)
        warm_stored = sum(post(port, item) == 200 for item in warm)
        made = time.time()
        items = signed_messages(keys, requests, events, seed=2)
        bodies = os.path.join(workdir, "messages.bin")
        index = os.path.join(workdir, "index.tsv")
        offset = 0
        with open(bodies, "wb") as data, open(index, "w") as idx:
            for sensor, message, signature in items:
                data.write(message)
                idx.write(f"{sensor}\t{signature}\t{offset}\t{len(message)}\n")
                offset += len(message)
        script = os.path.join(workdir, "collector_load.lua")
        with open(script, "w") as fh:
            fh.write(LUA)
        budget = int(signing.SKEW_SECONDS - SKEW_MARGIN - (time.time() - made))
        marks = os.path.join(workdir, f"done-{events}")
        os.makedirs(marks)
        cmd = [wrk, "-t", str(threads), "-c", str(threads), "-d", f"{budget}s",
               "--timeout", "60s", "-s", script, f"http://127.0.0.1:{port}", "--",
               bodies, index, str(threads), marks]
        # wrk's main thread sleeps for all of -d even when every thread has stopped:
        # interrupt it (its SIGINT ends the run and prints the summary) once all are done
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as bench:
            deadline = time.monotonic() + budget + 30
            while (bench.poll() is None and time.monotonic() < deadline
                   and len(os.listdir(marks)) < threads):
                time.sleep(0.05)
            if bench.poll() is None:
                bench.send_signal(signal.SIGINT)
            stdout, stderr = bench.communicate(timeout=60)
        line = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"wrk failed ({bench.returncode}):\n{stdout}\n{stderr}")
        result = json.loads(line[len("RESULT "):])
        for refused in (ln for ln in stdout.splitlines() if ln.startswith("REFUSED ")):
            print(f"  {refused.lower()}", file=sys.stderr)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    with Store.open(db, read_only=True) as store:
        (store_events,) = store.con.execute("SELECT count(*) FROM event_rows").fetchall()[0]
        (store_batches,) = store.con.execute(
            "SELECT count(*) FROM collector_batches").fetchall()[0]
    if result["items"] != requests or result["extra"] or result["socket_errors"]:
        print(f"  note: wrk sent {result['items']} of {requests} bodies, {result['extra']} "
              f"extra requests, {result['socket_errors']} socket errors", file=sys.stderr)
    return Outcome(
        events=events, requests=requests,
        kib_per_batch=sum(len(m) for _, m, _ in items) / len(items) / 1024,
        stored=result["stored"], other=result["other"],
        seconds=result["duration_us"] / 1e6, p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000, store_events=store_events,
        store_batches=store_batches,
        expected_events=(result["stored"] + warm_stored) * events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, action="append",
                        help="events per batch (repeatable; default 1000 and 10000)")
    parser.add_argument("--requests", type=int, action="append",
                        help="batches sent per size (default 1000 and 200)")
    parser.add_argument("--connections", type=int, default=4,
                        help="wrk threads, one connection each (default 4)")
    parser.add_argument("--sensors", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    sizes = args.events or [1000, 10_000]
    counts = args.requests or [1000, 200][: len(sizes)]
    if len(counts) != len(sizes):
        raise SystemExit("give one --requests per --events")
    workdir = tempfile.mkdtemp(prefix="collector-load-")
    ok = True
    try:
        print(f"wrk, {args.connections} connections, {args.sensors} sensors, collector on "
              f"127.0.0.1 ({os.cpu_count()} cores shared with the load generator)")
        print("| batch size | requests | stored | batches/s | events/s | p50 | p99 |")
        print("|---|---|---|---|---|---|---|")
        for events, requests in zip(sizes, counts, strict=True):
            out = run_one(workdir, events, requests, args.connections, args.sensors, wrk)
            print(f"| {events:,} events ({out.kib_per_batch:.1f} KiB) | {requests:,} | "
                  f"{out.stored:,} | {out.batches_per_s:,.0f} | {out.events_per_s:,.0f} | "
                  f"{out.p50_ms:.0f} ms | {out.p99_ms:.0f} ms |", flush=True)
            exact = (out.store_events == out.expected_events
                     and out.store_batches == out.expected_events // events)
            ok &= exact and out.other == 0
            print(f"  store: {out.store_events:,} events in {out.store_batches:,} batches, "
                  f"expected {out.expected_events:,} ({'exact' if exact else 'MISMATCH'}); "
                  f"{out.other} refused", file=sys.stderr, flush=True)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
