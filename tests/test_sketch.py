"""Distinct-source sketches: exact below the limit, HyperLogLog above, mergeable."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portradar.activity.sketch import (
    EXACT_LIMIT,
    SourceSketch,
    build_sketches,
    distinct_sources,
    hash_sources,
    merge_all,
)


def _stream(seed: int, n: int, distinct: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pool_lo = rng.integers(0, 2**63, max(1, distinct), dtype=np.uint64)
    pool_hi = np.where(rng.random(max(1, distinct)) < 0.1,
                       rng.integers(1, 2**63, max(1, distinct), dtype=np.uint64), 0).astype(
                           np.uint64)
    pick = rng.integers(0, max(1, distinct), n)
    return pool_hi[pick], pool_lo[pick]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 6000),
       distinct=st.integers(1, 5000), cut=st.floats(0.0, 1.0))
def test_merging_two_halves_gives_the_whole(seed: int, n: int, distinct: int,
                                            cut: float) -> None:
    hi, lo = _stream(seed, n, distinct)
    k = int(cut * n)
    whole = SourceSketch.of(hi, lo)
    merged = SourceSketch.of(hi[:k], lo[:k]).merge(SourceSketch.of(hi[k:], lo[k:]))
    assert merged == whole
    assert merged.count() == whole.count()
    # and in the other order, through bytes (what the store keeps)
    again = SourceSketch.from_bytes(SourceSketch.of(hi[k:], lo[k:]).to_bytes()).merge(
        SourceSketch.from_bytes(SourceSketch.of(hi[:k], lo[:k]).to_bytes()))
    assert again == whole


@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
                max_size=EXACT_LIMIT))
def test_small_sets_are_exact(pairs: list[tuple[int, int]]) -> None:
    hi = np.array([p[0] for p in pairs], np.uint64)
    lo = np.array([p[1] for p in pairs], np.uint64)
    sketch = SourceSketch.of(hi, lo)
    assert sketch.exact
    assert sketch.count() == len(set(pairs))


@pytest.mark.parametrize("n", [1_500, 5_000, 30_000, 100_000, 400_000, 1_000_000])
def test_relative_error_is_at_most_two_percent(n: int) -> None:
    worst = 0.0
    for seed in range(4):
        rng = np.random.default_rng(1000 * seed + n)
        lo = rng.choice(2**62, n, replace=False).astype(np.uint64) if n <= 400_000 else (
            np.arange(n, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(seed))
        est = SourceSketch.of(np.zeros(n, np.uint64), lo).count()
        worst = max(worst, abs(est - n) / n)
    assert worst <= 0.02, worst


def test_merging_many_sketches_is_order_free() -> None:
    hi, lo = _stream(3, 50_000, 20_000)
    parts = [SourceSketch.of(hi[i::7], lo[i::7]) for i in range(7)]
    forward = merge_all(parts)
    backward = merge_all(reversed(parts))
    assert forward == backward == SourceSketch.of(hi, lo)
    assert abs(forward.count() - len(set(zip(hi.tolist(), lo.tolist(), strict=True)))) <= 400


def test_build_sketches_groups_and_dedups() -> None:
    groups = np.array([0, 0, 0, 1, 1, 2])
    hashes = hash_sources(np.zeros(6, np.uint64), np.array([1, 1, 2, 5, 6, 7], np.uint64))
    ids, blobs, counts = build_sketches(groups, hashes)
    assert ids.tolist() == [0, 1, 2] and counts.tolist() == [2, 2, 1]
    assert [SourceSketch.from_bytes(b).count() for b in blobs] == [2, 2, 1]


def test_unknown_bytes_are_refused() -> None:
    with pytest.raises(ValueError):
        SourceSketch.from_bytes(b"\x07junk")


def test_store_keeps_sketches_that_merge_across_days_and_sensors() -> None:
    from portradar.events.schema import make_batch
    from portradar.store import Store

    day = 86_400_000_000
    rng = np.random.default_rng(5)
    n = 30_000
    src = rng.integers(0, 3_000, n).astype(np.uint64) | np.uint64(0xFFFF_0A00_0000)
    ts = rng.integers(0, 3 * day, n)
    sensor = np.where(rng.random(n) < 0.5, "a", "b")
    with Store.open(":memory:") as store:
        with store.transaction():
            store.append_events(make_batch({"ts": ts, "sensor": sensor.tolist(),
                                            "src_lo": src, "dst_lo": [1] * n, "proto": [6] * n,
                                            "dport": [445] * n}), input_id=1)
        store.refresh_activity()
        days = [r[0] for r in store.con.execute(
            "SELECT DISTINCT bucket FROM port_activity_daily ORDER BY 1").fetchall()]
        got = distinct_sources(store, proto=6, port=445, first_day=days[0], last_day=days[-1])
        assert abs(got - len(np.unique(src))) <= 0.02 * len(np.unique(src))  # HLL by now
        only_a = distinct_sources(store, proto=6, port=445, first_day=days[1],
                                  last_day=days[1], sensors=["a"])
        day1 = (ts >= day) & (ts < 2 * day) & (sensor == "a")
        exact = len(np.unique(src[day1]))
        assert abs(only_a - exact) <= 0.02 * exact
