"""Fan-out (portradar.scan.fanout): thresholds, idle expiry, dark space, and merging.

The mergeable-state contract (ARCHITECTURE "Two kinds of state"): a state built per
shard and merged equals one pass over all the events, checked here with hypothesis on
random traffic split at random between shards.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scan_events import ev, probes

from portradar.scan.cidr_set import CidrSet
from portradar.scan.fanout import FanOut, psad_danger_level

SRC = "198.51.100.9"


def _one(f: FanOut) -> dict:
    rows = f.result().to_pylist()
    assert len(rows) == 1
    return rows[0]


def test_twenty_five_distinct_host_port_pairs_flag_a_source():
    # 5 hosts x 5 ports = 25 pairs (never more than 15 ports: the pairs rule fires)
    rows = [ev(SRC, f"192.0.2.{h}", 20 + p, t=h * 5 + p) for h in range(5) for p in range(5)]
    f = FanOut()
    f.update(probes(rows[:24]))
    assert not _one(f)["flagged"]
    f.update(probes(rows[24:]))
    row = _one(f)
    assert row["flagged"] and row["rule"] == "pairs" and row["pairs"] == 25


def test_more_than_fifteen_ports_flag_a_source_crowdsec_style():
    rows = [ev(SRC, "192.0.2.1", 1000 + p, t=p) for p in range(16)]
    f = FanOut()
    f.update(probes(rows[:15]))
    assert not _one(f)["flagged"]
    f.update(probes(rows[15:]))
    assert _one(f)["rule"] == "ports"


def test_idle_expiry_splits_episodes():
    # 24 pairs, a 20-minute pause, 24 more: never 25 within one episode
    rows = [ev(SRC, "192.0.2.1", 20 + p, t=p, proto=17) for p in range(12)]
    rows += [ev(SRC, "192.0.2.2", 20 + p, t=20 + p, proto=17) for p in range(12)]
    rows += [ev(SRC, "192.0.2.3", 20 + p, t=1300 + p, proto=17) for p in range(12)]
    f = FanOut()
    f.update(probes(rows))
    row = _one(f)
    assert not row["flagged"] and row["episodes"] == 2
    f2 = FanOut(idle_timeout=3600)
    f2.update(probes(rows))
    assert _one(f2)["flagged"]


def test_successful_attempts_do_not_count():
    rows = [ev(SRC, f"192.0.2.{h}", 443, t=h, outcome="established") for h in range(40)]
    f = FanOut()
    f.update(probes(rows))
    assert f.result().num_rows == 0


def test_dark_space_lowers_the_threshold():
    rows = [ev(SRC, f"203.0.113.{h}", 8080 + h % 2, t=h) for h in range(1, 11)]
    f = FanOut()
    f.update(probes(rows))
    assert not _one(f)["flagged"]
    f = FanOut(dark=CidrSet.parse(["203.0.113.0/24"]))
    f.update(probes(rows))
    row = _one(f)
    assert row["flagged"] and row["rule"] == "dark" and row["dark_hosts"] == 3


def test_psad_danger_levels():
    assert psad_danger_level(np.array([4, 5, 15, 150, 1500, 10000])).tolist() == [0, 1, 2, 3,
                                                                                   4, 5]


def _traffic(seed: int, n: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 7200, n))
    rows = []
    for i in range(n):
        rows.append(ev(f"198.51.100.{rng.integers(1, 4)}", f"192.0.2.{rng.integers(1, 12)}",
                       int(rng.integers(1, 30)), t=float(t[i]) + rng.random(),
                       outcome=str(rng.choice(["blocked", "blocked", "accepted"])),
                       sensor=f"fw{rng.integers(1, 3)}"))
    return rows


def _state(f: FanOut) -> list[dict]:
    return sorted(f.episodes().to_pylist(), key=lambda r: (r["skey"], r["start"]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 300), split=st.integers(0, 2 ** 31))
def test_merge_equals_one_pass(seed, n, split):
    rows = _traffic(seed, n)
    rng = np.random.default_rng(split)
    side = rng.integers(0, 2, n).astype(bool)
    dark = CidrSet.parse(["192.0.2.8/29"])
    whole = FanOut(dark=dark)
    whole.update(probes(rows))
    a, b = FanOut(dark=dark), FanOut(dark=dark)
    rows_a = [r for r, s in zip(rows, side, strict=True) if s]
    rows_b = [r for r, s in zip(rows, side, strict=True) if not s]
    if rows_a:
        a.update(probes(rows_a))
    if rows_b:
        b.update(probes(rows_b))
    merged = a.merge(b)
    assert _state(merged) == _state(whole)
    assert merged.result().to_pylist() == whole.result().to_pylist()
    assert b.merge(a).result().to_pylist() == whole.result().to_pylist()


def test_merge_refuses_different_parameters():
    with pytest.raises(ValueError):
        FanOut(threshold=25).merge(FanOut(threshold=10))


@pytest.mark.parametrize("params", [
    {}, {"threshold": 5, "port_threshold": 3}, {"dark_threshold": 2, "dark_hosts": 1},
    {"threshold": 3, "dark_threshold": 4, "dark_hosts": 2, "port_threshold": 2,
     "idle_timeout": 60.0}])
def test_the_scans_own_counts_equal_the_entries_counted_again(params):
    """One update keeps the counts and rule times the scan found (``_fast``); a merged
    state counts its entries again (``_rules``): both must give the same result."""
    rows = _traffic(5, 400)
    f = FanOut(dark=CidrSet.parse(["192.0.2.8/29"]), **params)
    f.update(probes(rows))
    assert f._fast is not None
    fast = f.result().to_pylist()
    f._fast = None
    assert f.result().to_pylist() == fast
    assert any(r["flagged"] for r in fast)  # rules fired: the comparison has content


def test_a_state_that_will_not_merge_gives_the_same_result_without_entries():
    rows = _traffic(9, 400)
    dark = CidrSet.parse(["192.0.2.8/29"])
    full, lean = FanOut(dark=dark, threshold=5), FanOut(dark=dark, threshold=5, mergeable=False)
    full.update(probes(rows))
    lean.update(probes(rows))
    assert lean.result().to_pylist() == full.result().to_pylist()
    assert lean.episodes().to_pylist() == full.episodes().to_pylist()
    assert lean.nbytes() < full.nbytes()
    with pytest.raises(ValueError):
        lean.merge(full)
    with pytest.raises(ValueError):
        lean.update(probes(rows))
