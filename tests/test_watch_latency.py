"""The watch's prompt detection rounds: the live spike matrix is exact, rounds start at once.

Rounds no longer rebuild the spike matrix from the store: each micro-batch is merged into
the open buckets' distinct sets (:mod:`portradar.watch.open_buckets`) and the round
writes the changed cells into a :class:`~portradar.spikes.activity_matrix.LiveMatrix`.
These tests hold it to a full rebuild (:func:`~portradar.spikes.activity_matrix.from_store`)
over random rounds: several days, hourly and daily buckets, IPv6, late lines for days
no longer in memory, a restart in the middle of a day.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from portradar.spikes.activity_matrix import from_store
from portradar.spikes.spike_detector import SpikeParams
from portradar.store import Store
from portradar.watch.config import WatchConfig
from portradar.watch.service import WatchService

START = datetime(2026, 3, 1, tzinfo=UTC)


def _line(when: datetime, src: str, port: int, dst: int, proto: str = "TCP") -> str:
    tail = (f"SPT=40000 DPT={port} WINDOW=1024 RES=0x00 SYN URGP=0" if proto == "TCP"
            else f"SPT=40000 DPT={port} LEN=20")
    if ":" in src:
        return (f"{when:%Y-%m-%dT%H:%M:%S}Z fw kernel: DROP IN=eth0 OUT= SRC={src} "
                f"DST=2001:db8::{dst:x} LEN=60 TC=0 HOPLIMIT=50 FLOWLBL=0 PROTO={proto} {tail}\n")
    return (f"{when:%Y-%m-%dT%H:%M:%S}Z fw kernel: DROP IN=eth0 OUT= SRC={src} "
            f"DST=198.51.100.{dst} LEN=40 TTL=50 ID=1 PROTO={proto} {tail}\n")


def _lines(rng: np.random.Generator, lo: datetime, hours: float, n: int) -> list[str]:
    out = []
    secs = np.sort(rng.uniform(0, hours * 3600, n))
    for s in secs.tolist():
        port = int(rng.choice([22, 23, 445, 3389, 5900, 8080, int(rng.integers(1, 65535))]))
        k = int(rng.integers(0, 400))
        src = f"2001:db8:{k % 7:x}::{k:x}" if k % 17 == 0 else f"192.0.2.{k % 250 + 1}"
        if port == 5900 and rng.random() < 0.5:  # a busy port: many sources
            src = f"203.0.{k % 50}.{int(rng.integers(1, 250))}"
        proto = "UDP" if port == 8080 else "TCP"
        out.append(_line(lo + timedelta(seconds=s), src, port, int(rng.integers(1, 30)),
                         proto))
    return out


def _config(log: Path, period: str) -> WatchConfig:
    return WatchConfig.from_text(f"""
[watch]
period = "{period}"
detect_seconds = 0
scanners = false
[[input]]
type = "file"
path = "{log}"
""")


def _same(svc: WatchService, *, with_new: bool) -> None:
    """The live matrix equals a rebuild from the store (rows that can alarm)."""
    sp = SpikeParams.for_period(svc.config.period)
    want = from_store(svc.rstore, period=svc.config.period, scope="all",
                      busy=(sp.min_excess_sources, sp.min_excess_records))
    got = svc.live.matrix
    assert got.start == want.start and got.n_buckets == want.n_buckets
    order = np.lexsort((want.port, want.proto))
    assert got.proto.tolist() == want.proto[order].tolist()
    assert got.port.tolist() == want.port[order].tolist()
    fields = ["records", "sources", "targets"] + (["new_sources"] if with_new else [])
    for f in fields:
        assert np.array_equal(getattr(got, f), getattr(want, f)[order]), f


def _feed(svc: WatchService, log: Path, lines: list[str]) -> None:
    with open(log, "a") as fh:
        fh.writelines(lines)
    for _ in range(20):  # bounded
        if svc.ingest() == 0:
            break
    assert svc.inputs[0].skipped == 0  # IPv6 lines included


@pytest.mark.parametrize("period", ["hour", "day"])
def test_live_matrix_equals_a_rebuild_over_random_rounds(tmp_path: Path, period: str) -> None:
    rng = np.random.default_rng(7 if period == "hour" else 11)
    log = tmp_path / "fw.log"
    log.write_text("")
    db = tmp_path / "w.duckdb"
    now = START
    with Store.open(db) as store:
        svc = WatchService(store, _config(log, period), sinks=[])
        svc._refresher = object()  # type: ignore[assignment]  # as in run(): no refresh in rounds
        for rnd in range(14):
            hours = float(rng.choice([0.3, 2.0, 9.0, 30.0]))
            batch = _lines(rng, now, hours, int(rng.integers(50, 400)))
            if rnd in (6, 11):  # late lines for a day no longer in memory
                batch += _lines(rng, now - timedelta(days=4), 1.0, 40)
            _feed(svc, log, batch)
            now += timedelta(hours=hours)
            svc.detect()
            if rnd % 4 == 3:  # the refresh thread's turn: new sources and late days too
                svc._refresh_store(svc.rstore)
                svc.detect()
                _same(svc, with_new=True)
            else:  # between refreshes: the open buckets' counts are already exact
                days = {d for d in svc.open.days}
                assert days
                _same_activity_of_days(svc, days)
        svc._refresher = None
        svc.close()
    # a restart in the middle of a day: the day is seeded from the store
    with Store.open(db) as store:
        svc = WatchService(store, _config(log, period), sinks=[])
        _feed(svc, log, _lines(rng, now, 3.0, 200))
        svc.detect()
        _same(svc, with_new=True)
        svc.close()


def _same_activity_of_days(svc: WatchService, days: set[int]) -> None:
    """The live matrix's cells of the days in memory equal exact counts of the raw events."""
    unit = 3600 if svc.config.period == "hour" else 86400
    rows = svc.rstore.con.execute(
        f"""SELECT epoch(ts)::BIGINT // {unit} * {unit} AS t, proto,
                   activity_port(proto, dport, icmp_type) AS port, count(*),
                   count(DISTINCT (src_hi, src_lo)), count(DISTINCT (dst_hi, dst_lo))
            FROM event_rows WHERE list_contains(?, epoch(ts)::BIGINT // 86400)
            GROUP BY ALL""", [sorted(days)]).fetchall()
    m = svc.live.matrix
    lo = int(m.start.timestamp())
    held = {(int(p), int(q)): i for i, (p, q) in enumerate(zip(m.proto, m.port, strict=True))}
    for t, proto, port, records, sources, targets in rows:
        i = held.get((proto, port))
        if i is None:
            assert sources < 10 and records < 3000  # not a row that can alarm
            continue
        col = (t - lo) // m.bucket_seconds
        assert (m.records[i, col], m.sources[i, col], m.targets[i, col]) == (
            records, sources, targets), (t, proto, port)


def test_a_round_starts_right_after_a_micro_batch_commits(tmp_path: Path) -> None:
    log = tmp_path / "fw.log"
    log.write_text("")
    cfg = _config(log, "hour")
    cfg.batch_seconds = 0.1
    with Store.open(tmp_path / "r.duckdb") as store:
        svc = WatchService(store, cfg, sinks=[])
        svc.start_detector()
        try:
            rng = np.random.default_rng(3)
            for k in range(3):
                before = svc.counters["detections"]
                with open(log, "a") as fh:
                    fh.writelines(_lines(rng, START + timedelta(hours=k), 1.0, 100))
                stored = 0
                for _ in range(50):  # bounded
                    stored = svc.ingest()
                    if stored:
                        break
                    time.sleep(0.02)
                committed = time.monotonic()
                while svc.counters["detections"] == before and time.monotonic() - committed < 5:
                    time.sleep(0.005)
                assert svc.counters["detections"] > before
                # woken by the commit, not by a timer: well under the 0.2 s poll
                assert time.monotonic() - committed < 2.0
        finally:
            svc.stop_detector()
            svc.close()
