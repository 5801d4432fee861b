"""``portradar collect``: the HTTP server that merges many sensors' batches into one store.

``POST /api/v1/batches`` takes one message of :mod:`portradar.collect.batch_codec` with
``X-Portradar-Sensor`` (the key's owner) and ``X-Portradar-Signature`` (HMAC-SHA256 hex,
:mod:`portradar.collect.signing`).  Checks, in this order, each with its status and a
JSON body ``{"error": ..., "detail": ...}``:

====  =====================================================================
413   body larger than ``max_body`` (checked on Content-Length, before reading)
401   unknown sensor, bad signature, or send time outside the skew window
400   malformed header or body, schema, event count, address sanity
403   the header's sensor, or an event's sensor, is not the key's owner
429   the sensor is over its rate (token bucket; ``Retry-After`` says when)
409   the (sensor, nonce) pair was seen within the skew window (a replay)
====  =====================================================================

A batch that passes is stored in one transaction together with its id
(``collector_batches``) and its nonce, so a resend (same id, new nonce) is answered
``200 {"status": "duplicate"}`` and never stored twice, and a rejected batch leaves
events, ledger and ids unchanged.  Per-sensor health (last seen, events, skew, rejected
batches) is kept in ``collector_sensors``.

The store is one DuckDB connection, so storing is serialised by a lock; verification,
decompression and validation run in the request threads before it.

>>> from portradar.store.duckdb_store import Store
>>> with Store.open(":memory:") as store:
...     c = Collector(store)
...     key = c.add_sensor("fw1")
...     [s["sensor"] for s in c.sensors()]
['fw1']
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portradar.collect import signing
from portradar.collect.batch_codec import BatchFormatError, decode_body, decode_header
from portradar.errors import PortradarError, SchemaError, StoreError
from portradar.events.schema import EVENT_SCHEMA, validate_batch
from portradar.store import ledger
from portradar.store.duckdb_store import Store, first_row

#: Default listening address and port (loopback: expose it deliberately, behind TLS).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8471
#: Largest accepted message: 16 MiB is ~1.5 M compressed events, 20 agent batches' worth.
MAX_BODY = 16 << 20
#: Most events in one batch (decompressed, ~100 bytes each in memory: 200 MB).
MAX_EVENTS = 2_000_000
#: Per-sensor token bucket: 20 batches/s sustained, bursts of 100 (an agent sends one
#: batch a second, a backlog after an outage drains 20 times faster than it built).
RATE_PER_SECOND = 20.0
RATE_BURST = 100.0
#: Refresh per-port activity at most this often (seconds) while receiving.
REFRESH_SECONDS = 30.0
#: Event times accepted: not before 1990, not more than a day ahead of our clock.
MIN_TS_US = 631_152_000_000_000
FUTURE_SLACK_US = 86_400_000_000

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS collector_sensors (
    sensor VARCHAR PRIMARY KEY, key_hex VARCHAR NOT NULL, created TIMESTAMP,
    first_seen TIMESTAMP, last_seen TIMESTAMP, batches BIGINT DEFAULT 0,
    events BIGINT DEFAULT 0, rejected BIGINT DEFAULT 0, last_skew DOUBLE,
    input_id BIGINT);
CREATE TABLE IF NOT EXISTS collector_batches (
    batch_id VARCHAR PRIMARY KEY, sensor VARCHAR NOT NULL, events BIGINT NOT NULL,
    received TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS collector_nonces (
    sensor VARCHAR NOT NULL, nonce VARCHAR NOT NULL, ts DOUBLE NOT NULL,
    PRIMARY KEY (sensor, nonce));
"""


class Rejection(PortradarError):
    """A batch refused, with the HTTP status that says why."""

    def __init__(self, status: int, error: str, detail: str = "") -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail = status, error, detail


@dataclass
class _Bucket:
    tokens: float
    stamp: float


def _now() -> datetime:
    return datetime.now(tz=UTC).replace(tzinfo=None)


class Collector:
    """Verification, validation and exactly-once storage of sensor batches."""

    def __init__(self, store: Store, *, max_body: int = MAX_BODY, max_events: int = MAX_EVENTS,
                 rate: float = RATE_PER_SECOND, burst: float = RATE_BURST,
                 skew: float = signing.SKEW_SECONDS,
                 refresh_seconds: float = REFRESH_SECONDS,
                 archive: str | None = None) -> None:
        self.store = store
        # optional: every stored batch also goes to this Parquet archive (day/sensor
        # files named by the batch id, so a resent batch rewrites its own file);
        # the store stays the source of truth ('portradar export' rebuilds an archive)
        self.archive = archive
        self.max_body, self.max_events = max_body, max_events
        self.rate, self.burst, self.skew = rate, burst, skew
        self.refresh_seconds = refresh_seconds
        self.lock = threading.RLock()  # re-entrant: callers may hold it around sensors()
        self._buckets: dict[str, _Bucket] = {}
        self._keys: dict[str, bytes] = {}
        self._last_refresh = time.monotonic()
        if not store.read_only:
            store.con.execute(_SCHEMA_SQL)
        self._load_keys()

    # -- sensors -----------------------------------------------------------------------
    def _load_keys(self) -> None:
        try:
            rows = self.store.con.execute(
                "SELECT sensor, key_hex FROM collector_sensors").fetchall()
        except Exception:
            rows = []
        self._keys = {s: bytes.fromhex(k) for s, k in rows}

    def add_sensor(self, name: str) -> bytes:
        """Register ``name`` (or give it a new key); returns the key."""
        if not name or len(name) > 128:
            raise StoreError("a sensor name has 1 to 128 characters")
        key = signing.new_key()
        with self.lock, self.store.transaction():
            self.store.con.execute(
                """INSERT INTO collector_sensors (sensor, key_hex, created) VALUES (?, ?, ?)
                   ON CONFLICT (sensor) DO UPDATE SET key_hex = excluded.key_hex""",
                [name, key.hex(), _now()])
        self._keys[name] = key
        return key

    def sensors(self) -> list[dict[str, Any]]:
        """Per-sensor health; safe to call while batches are being stored."""
        with self.lock:
            rows = self.store.con.execute(
                """SELECT sensor, first_seen, last_seen, batches, events, rejected, last_skew
                   FROM collector_sensors ORDER BY sensor""").fetchall()
        out = []
        for sensor, first, last, batches, events, rejected, skew in rows:
            span = (last - first).total_seconds() if first and last else 0.0
            out.append({
                "sensor": sensor, "last_seen": last, "batches": batches, "events": events,
                "events_per_s": round(events / span, 1) if span > 0 else None,
                "skew_s": round(skew, 3) if skew is not None else None,
                "rejected": rejected,
            })
        return out

    # -- one batch ---------------------------------------------------------------------
    def submit(self, message: bytes, key_owner: str, signature: str,
               now: float | None = None) -> dict[str, Any]:
        """Check and store one message; raises :class:`Rejection`."""
        now = time.time() if now is None else now
        try:
            return self._submit(message, key_owner, signature, now)
        except Rejection as exc:
            if exc.status != 401 and key_owner in self._keys:
                self._count_rejected(key_owner)
            raise

    def _submit(self, message: bytes, owner: str, signature: str, now: float) -> dict[str, Any]:
        if len(message) > self.max_body:
            raise Rejection(413, "too large", f"{len(message)} bytes, at most {self.max_body}")
        key = self._keys.get(owner)
        if key is None:
            raise Rejection(401, "unknown sensor", f"{owner!r} is not registered here")
        if not signing.verify(key, message, signature):
            raise Rejection(401, "bad signature", "HMAC-SHA256 of the message does not match")
        try:
            header, start = decode_header(message)
        except BatchFormatError as exc:
            raise Rejection(400, "malformed", str(exc)) from exc
        if header.sensor != owner:
            raise Rejection(403, "sensor mismatch",
                            f"key of {owner!r} cannot submit as {header.sensor!r}")
        if not signing.within_skew(header.ts, now=now, window=self.skew):
            raise Rejection(401, "clock skew",
                            f"sent at {header.ts:.0f}, now {now:.0f}: over {self.skew:.0f} s")
        if header.events > self.max_events:
            raise Rejection(413, "too many events", f"{header.events} > {self.max_events}")
        try:
            table = decode_body(message[start:])
        except BatchFormatError as exc:
            raise Rejection(400, "malformed", str(exc)) from exc
        batch = self._validate(table, header.events, owner, now)
        self._take_token(owner, now)
        return self._store(batch, header.batch_id, owner, header.nonce, now - header.ts, now)

    def _validate(self, table: pa.Table, events: int, owner: str, now: float) -> pa.RecordBatch:
        if table.num_rows != events:
            raise Rejection(400, "malformed",
                            f"header says {events} events, body has {table.num_rows}")
        if table.num_rows > self.max_events:
            raise Rejection(413, "too many events", f"{table.num_rows} > {self.max_events}")
        try:
            batch = (table.combine_chunks().to_batches()[0] if table.num_rows
                     else pa.RecordBatch.from_pylist([], schema=EVENT_SCHEMA))
            if not batch.schema.equals(EVENT_SCHEMA):
                batch = pa.RecordBatch.from_arrays(batch.columns, schema=EVENT_SCHEMA) \
                    if batch.schema.names == EVENT_SCHEMA.names else batch
            validate_batch(batch)
        except (SchemaError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise Rejection(400, "schema", str(exc)) from exc
        if not batch.num_rows:
            return batch
        sensors = set(pc.unique(batch.column("sensor").dictionary.take(
            pc.unique(batch.column("sensor").indices))).to_pylist())
        if sensors - {owner}:
            raise Rejection(403, "sensor mismatch",
                            f"events name sensors {sorted(sensors - {owner})}, key is {owner!r}")
        ts = batch.column("ts").cast(pa.int64()).to_numpy()
        limit = int(now * 1e6) + FUTURE_SLACK_US
        if ts.min() < MIN_TS_US or ts.max() > limit:
            raise Rejection(400, "address sanity", "event times before 1990 or in the future")
        hi = batch.column("src_hi").to_numpy()
        lo = batch.column("src_lo").to_numpy()
        if np.any((hi == 0) & (lo == 0)):
            raise Rejection(400, "address sanity", "a source address is :: (unspecified)")
        dhi = batch.column("dst_hi").to_numpy()
        dlo = batch.column("dst_lo").to_numpy()
        # IPv4 lives only in the mapped range: a non-mapped address in ::/96 is garbage
        for h, lw in ((hi, lo), (dhi, dlo)):
            if np.any((h == 0) & (lw >> np.uint64(32) != np.uint64(0xFFFF))
                      & (lw > np.uint64(1))):
                raise Rejection(400, "address sanity", "an address in ::/96 outside "
                                "the IPv4-mapped range (::ffff:0:0/96)")
        return batch

    def _take_token(self, sensor: str, now: float) -> None:
        with self.lock:
            bucket = self._buckets.get(sensor) or _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if bucket.tokens < 1:
                self._buckets[sensor] = bucket
                wait = (1 - bucket.tokens) / self.rate
                raise Rejection(429, "rate limited", f"retry after {wait:.2f} s")
            bucket.tokens -= 1
            self._buckets[sensor] = bucket

    def _store(self, batch: pa.RecordBatch, batch_id: str, sensor: str, nonce: str,
               skew: float, now: float) -> dict[str, Any]:
        con = self.store.con
        with self.lock:
            seen = first_row(con.execute(
                "SELECT 1 FROM collector_nonces WHERE sensor = ? AND nonce = ?",
                [sensor, nonce]))
            if seen is not None:
                raise Rejection(409, "replayed", "this nonce was already used")
            duplicate = first_row(con.execute(
                "SELECT events FROM collector_batches WHERE batch_id = ?", [batch_id]))
            stamp = _now()
            with self.store.transaction():
                con.execute("DELETE FROM collector_nonces WHERE ts < ?", [now - 2 * self.skew])
                con.execute("INSERT INTO collector_nonces VALUES (?, ?, ?)", [sensor, nonce, now])
                if duplicate is None:
                    input_id = self._input_id(sensor)
                    self.store.append_events(batch, input_id=input_id)
                    con.execute("INSERT INTO collector_batches VALUES (?, ?, ?, ?)",
                                [batch_id, sensor, batch.num_rows, stamp])
                    (batches,) = first_row(con.execute(
                        "SELECT count(*) FROM collector_batches WHERE sensor = ?", [sensor]))
                    ledger.advance(self.store, input_id, name=f"collect:{sensor}",
                                   offset=int(batches), records=batch.num_rows,
                                   events=batch.num_rows, skipped=0, tail=None)
                con.execute(
                    """UPDATE collector_sensors SET first_seen = coalesce(first_seen, ?),
                       last_seen = ?, batches = batches + ?, events = events + ?,
                       last_skew = ? WHERE sensor = ?""",
                    [stamp, stamp, 0 if duplicate else 1, 0 if duplicate else batch.num_rows,
                     skew, sensor])
            if time.monotonic() - self._last_refresh > self.refresh_seconds:
                self._last_refresh = time.monotonic()
                self.store.refresh_activity()
        if duplicate is not None:
            return {"status": "duplicate", "batch_id": batch_id, "events": 0}
        if self.archive is not None:
            import hashlib

            from portradar.archive.parquet_archive import write_events

            write_events([batch], self.archive,
                         tag=hashlib.sha256(batch_id.encode()).hexdigest()[:24])
        return {"status": "stored", "batch_id": batch_id, "events": batch.num_rows}

    def _input_id(self, sensor: str) -> int:
        row = first_row(self.store.con.execute(
            "SELECT input_id FROM collector_sensors WHERE sensor = ?", [sensor]))
        if row is not None and row[0] is not None:
            return int(row[0])
        input_id = ledger.create(self.store, b"portradar-collect\0" + sensor.encode(),
                                 f"collect:{sensor}", "collect")
        self.store.con.execute("UPDATE collector_sensors SET input_id = ? WHERE sensor = ?",
                               [input_id, sensor])
        return input_id

    def _count_rejected(self, sensor: str) -> None:
        with self.lock:
            self.store.con.execute(
                "UPDATE collector_sensors SET rejected = rejected + 1 WHERE sensor = ?", [sensor])

    def close(self) -> None:
        with self.lock:
            self.store.refresh_activity()


class _Handler(BaseHTTPRequestHandler):
    server: CollectorServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: health is in the store
        return

    def _reply(self, status: int, payload: dict[str, Any],
               extra: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/api/v1/health":
            self._reply(200, {"status": "ok"})
        else:
            self._reply(404, {"error": "not found", "detail": self.path})

    def do_POST(self) -> None:
        collector = self.server.collector
        if self.path != "/api/v1/batches":
            self._reply(404, {"error": "not found", "detail": self.path})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._reply(411, {"error": "length required", "detail": "send Content-Length"})
            return
        if length > collector.max_body or length < 0:
            self.close_connection = True
            self._reply(413, {"error": "too large",
                              "detail": f"{length} bytes, at most {collector.max_body}"})
            return
        message = self.rfile.read(length)
        owner = self.headers.get("X-Portradar-Sensor", "")
        signature = self.headers.get("X-Portradar-Signature", "")
        try:
            result = collector.submit(message, owner, signature)
        except Rejection as exc:
            extra = {"Retry-After": "1"} if exc.status == 429 else None
            self._reply(exc.status, {"error": exc.error, "detail": exc.detail}, extra)
            return
        except Exception as exc:
            self._reply(500, {"error": "internal", "detail": str(exc)})
            return
        self._reply(200, result)


class CollectorServer(ThreadingHTTPServer):
    """The HTTP front of a :class:`Collector`; ``port=0`` picks a free port."""

    daemon_threads = True

    def __init__(self, collector: Collector, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT) -> None:
        self.collector = collector
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"
