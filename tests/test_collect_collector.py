"""The collector refuses forged, replayed, oversized, malformed and misattributed batches
with the right status, leaves the store unchanged when it does, and stores a resend once."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pyarrow as pa
import pytest

from portradar.collect import signing
from portradar.collect.batch_codec import BatchHeader, encode, encode_body
from portradar.collect.collector import Collector, CollectorServer, Rejection
from portradar.events.schema import make_batch
from portradar.store.duckdb_store import Store

TS0 = 1_780_000_000_000_000  # 2026-05-28, microseconds


def events(sensor: str, n: int = 5, start: int = 0) -> pa.RecordBatch:
    return make_batch({"ts": [TS0 + i for i in range(start, start + n)],
                       "src_lo": [0xFFFF_C633_6400 + i for i in range(n)],
                       "dst_lo": [0xFFFF_C000_0201] * n, "proto": [6] * n,
                       "dport": [445] * n, "sensor": sensor})


def message(sensor: str, batch: pa.RecordBatch, *, batch_id: str = "ab" * 16,
            nonce: str | None = None, ts: float | None = None,
            events_n: int | None = None) -> bytes:
    header = BatchHeader(batch_id=batch_id, sensor=sensor, ts=time.time() if ts is None else ts,
                         nonce=nonce or signing.new_nonce(),
                         events=batch.num_rows if events_n is None else events_n)
    return encode(header, encode_body(batch))


def snapshot(store: Store) -> tuple:
    con = store.con
    return (con.execute("SELECT count(*) FROM event_rows").fetchall(),
            con.execute("SELECT input_id, offset_bytes, records, events FROM inputs "
                        "ORDER BY input_id").fetchall(),
            con.execute("SELECT batch_id FROM collector_batches ORDER BY 1").fetchall())


@pytest.fixture
def collector():
    with Store.open(":memory:") as store:
        c = Collector(store)
        c.keys = {name: c.add_sensor(name) for name in ("fw1", "fw2")}
        yield c


def submit(c: Collector, owner: str, msg: bytes, key: bytes | None = None) -> dict:
    return c.submit(msg, owner, signing.sign(key or c.keys[owner], msg))


def test_good_batch_is_stored_and_resend_stored_once(collector):
    msg = message("fw1", events("fw1"))
    assert submit(collector, "fw1", msg)["status"] == "stored"
    before = snapshot(collector.store)
    again = message("fw1", events("fw1"))  # same batch id, fresh nonce: a resend
    assert submit(collector, "fw1", again)["status"] == "duplicate"
    assert snapshot(collector.store) == before
    assert before[0] == [(5,)]
    health = {s["sensor"]: s for s in collector.sensors()}
    assert health["fw1"]["events"] == 5 and health["fw1"]["batches"] == 1


def refused(collector, owner, msg, status, key=None, signature=None):
    before = snapshot(collector.store)
    with pytest.raises(Rejection) as info:
        if signature is not None:
            collector.submit(msg, owner, signature)
        else:
            submit(collector, owner, msg, key)
    assert info.value.status == status, info.value
    assert snapshot(collector.store) == before
    return info.value


def test_forged_signature_is_401(collector):
    msg = message("fw1", events("fw1"))
    refused(collector, "fw1", msg, 401, key=signing.new_key())
    refused(collector, "fw1", msg, 401, signature="00" * 32)
    refused(collector, "nobody", msg, 401, signature=signing.sign(signing.new_key(), msg))
    tampered = msg[:-1] + bytes([msg[-1] ^ 1])
    refused(collector, "fw1", tampered, 401, signature=signing.sign(collector.keys["fw1"], msg))


def test_stale_message_is_401(collector):
    refused(collector, "fw1", message("fw1", events("fw1"), ts=time.time() - 3600), 401)


def test_replayed_nonce_is_409(collector):
    msg = message("fw1", events("fw1"), nonce="cafe")
    submit(collector, "fw1", msg)
    refused(collector, "fw1", msg, 409)
    other = message("fw1", events("fw1", start=100), batch_id="cd" * 16, nonce="cafe")
    refused(collector, "fw1", other, 409)


def test_key_cannot_submit_as_another_sensor_403(collector):
    # fw1's key, header naming fw2
    refused(collector, "fw1", message("fw2", events("fw2")), 403)
    # fw1's key and header, events naming fw2
    refused(collector, "fw1", message("fw1", events("fw2")), 403)
    assert {s["sensor"]: s["rejected"] for s in collector.sensors()}["fw1"] == 2


def test_oversized_is_413(collector):
    small = Collector(collector.store, max_body=1000)
    big = make_batch({"ts": [TS0] * 5000, "src_lo": list(range(1 << 40, (1 << 40) + 5000)),
                      "dst_lo": [0xFFFF_C000_0201] * 5000, "proto": [6] * 5000,
                      "sensor": "fw1"})
    refused(small, "fw1", message("fw1", big), 413, key=collector.keys["fw1"])
    few = Collector(collector.store, max_events=3)
    refused(few, "fw1", message("fw1", events("fw1")), 413, key=collector.keys["fw1"])


def test_malformed_is_400(collector):
    refused(collector, "fw1", b"garbage", 400)
    head = BatchHeader(batch_id="ab" * 16, sensor="fw1", ts=time.time(), nonce="01", events=1)
    refused(collector, "fw1", encode(head, b"not arrow"), 400)
    refused(collector, "fw1", message("fw1", events("fw1"), events_n=9), 400)
    # wrong schema: an Arrow stream of something else
    sink = pa.BufferOutputStream()
    table = pa.table({"x": [1, 2]})
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    head = BatchHeader(batch_id="ab" * 16, sensor="fw1", ts=time.time(), nonce="02", events=2)
    refused(collector, "fw1", encode(head, sink.getvalue().to_pybytes()), 400)
    # address sanity: unspecified source
    bad = make_batch({"ts": [TS0], "src_lo": [0], "dst_lo": [0xFFFF_C000_0201], "proto": [6],
                      "sensor": "fw1"})
    refused(collector, "fw1", message("fw1", bad), 400)


def test_rate_limit_is_429(collector):
    slow = Collector(collector.store, rate=0.001, burst=2)
    key = collector.keys["fw1"]
    for i in range(2):
        slow.submit(m := message("fw1", events("fw1", start=10 * i), batch_id=f"{i:032x}"),
                    "fw1", signing.sign(key, m))
    refused(slow, "fw1", message("fw1", events("fw1", start=50), batch_id="ee" * 16), 429,
            key=key)


def test_http_statuses_and_json_errors(collector):
    server = CollectorServer(collector, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        def post(msg: bytes, owner: str, sig: str) -> tuple[int, dict]:
            req = urllib.request.Request(server.url + "/api/v1/batches", data=msg, method="POST",
                                         headers={"X-Portradar-Sensor": owner,
                                                  "X-Portradar-Signature": sig})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        msg = message("fw1", events("fw1"))
        key = collector.keys["fw1"]
        assert post(msg, "fw1", signing.sign(key, msg)) == (
            200, {"status": "stored", "batch_id": "ab" * 16, "events": 5})
        status, body = post(msg, "fw1", signing.sign(key, msg))
        assert status == 409 and body["error"] == "replayed"
        status, body = post(msg, "fw1", "00")
        assert status == 401 and body["error"] == "bad signature"
        status, body = post(b"x" * 100, "fw1", signing.sign(key, b"x" * 100))
        assert status == 400
    finally:
        server.shutdown()
        server.server_close()
