"""Slow scans (portradar.scan.slow_scan): long windows, bounded state."""

from __future__ import annotations

import numpy as np
from scan_events import ev, probes

from portradar.scan.fanout import FanOut
from portradar.scan.slow_scan import SlowScan

SRC = "198.51.100.77"


def test_a_scan_slower_than_the_idle_timeout_is_caught_by_the_slow_window_only():
    # one new port every 20 minutes for 12 hours: 36 ports
    rows = [ev(SRC, "192.0.2.50", 1000 + i, t=i * 1200) for i in range(36)]
    p = probes(rows)
    fan, slow = FanOut(), SlowScan()
    fan.update(p)
    slow.update(p)
    assert not fan.result().to_pylist()[0]["flagged"]
    row = slow.result().to_pylist()[0]
    assert row["flagged"] and row["flagged_probes"] == 25 and row["peak"] == 25


def test_pairs_older_than_the_window_do_not_count():
    # one new port every 2 hours: never 25 within 24 hours (at most 12)
    rows = [ev(SRC, "192.0.2.50", 1000 + i, t=i * 7200) for i in range(60)]
    slow = SlowScan()
    slow.update(probes(rows))
    row = slow.result().to_pylist()[0]
    assert not row["flagged"] and row["peak"] == 12


def test_state_is_bounded_per_source_and_freed_when_flagged():
    rng = np.random.default_rng(5)
    rows = [ev(f"198.51.100.{s}", "192.0.2.1", int(p), t=i)
            for i, (s, p) in enumerate(zip(rng.integers(1, 50, 3000), rng.integers(1, 65535, 3000),
                                           strict=True))]
    slow = SlowScan(threshold=25)
    for lo in range(0, 3000, 500):
        slow.update(probes(rows[lo:lo + 500]))
    counts = slow._state.columns["count"]
    assert counts.max() <= 25
    flagged = slow._state.columns["flagged_ts"] >= 0
    assert flagged.all() and (counts[flagged] == 0).all()


def test_pieces_equal_one_update():
    rows = [ev(f"198.51.100.{i % 3}", f"192.0.2.{i % 7}", 1000 + i % 40, t=i * 600)
            for i in range(400)]
    whole = SlowScan()
    whole.update(probes(rows))
    pieces = SlowScan()
    for lo in range(0, 400, 61):
        pieces.update(probes(rows[lo:lo + 61]))
    assert whole.result().to_pylist() == pieces.result().to_pylist()
