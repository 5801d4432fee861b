"""The numpy activity path (one sort per side) equals the SQL formulation, row for row.

Random stores mix IPv4 and IPv6 addresses, several sensors, protocols with and without
ports (ICMP type as port, -1 for others), packets above one, days with gaps, and slices
cut small so that several slices, single-day slices and the SQL fallback all run.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portradar.events.schema import make_batch
from portradar.store import activity_aggregate
from portradar.store.duckdb_store import Store

DAY_US = 86_400_000_000
T0 = 1_717_200_000_000_000  # 2024-06-01 00:00 UTC


def _batch(rng: np.random.Generator, n: int, *, sensors: int, v6_share: float,
           days: list[int], packets_max: int) -> object:
    day = rng.choice(days, n)
    ts = T0 + day * DAY_US + rng.integers(0, DAY_US, n)
    v6 = rng.random(n) < v6_share
    src_hi = np.where(v6, rng.integers(1, 4, n).astype(np.uint64) << np.uint64(48),
                      0).astype(np.uint64)
    src_lo = np.where(v6, rng.integers(0, 50, n),
                      (0xFFFF << 32) | rng.integers(0, 300, n)).astype(np.uint64)
    dst_lo = ((0xFFFF << 32) | (0xC0000200 + rng.integers(0, 40, n))).astype(np.uint64)
    proto = rng.choice(np.array([6, 17, 1, 58, 47], np.uint8), n, p=[.6, .2, .1, .05, .05])
    dport = rng.choice(np.array([22, 23, 445, 3389, 0], np.uint16), n)
    icmp = rng.integers(0, 4, n).astype(np.uint8)
    names = [f"s{i}" for i in range(sensors)]
    return make_batch({
        "ts": ts, "sensor": [names[i] for i in rng.integers(0, sensors, n)],
        "src_hi": src_hi, "src_lo": src_lo, "dst_lo": dst_lo, "proto": proto,
        "dport": dport, "icmp_type": icmp, "packets": rng.integers(1, packets_max + 1, n),
    }, n=n)


def _tables(store: Store) -> tuple[list[tuple], list[tuple]]:
    con = store.con
    return (con.execute("SELECT * FROM port_activity_hourly ORDER BY ALL").fetchall(),
            con.execute("SELECT * FROM port_activity_daily ORDER BY ALL").fetchall())


def _both_ways(batch: object) -> tuple[tuple, tuple]:
    with Store.open(":memory:") as store:
        with store.transaction():
            store.append_events(batch, input_id=1)  # type: ignore[arg-type]
        store.con.execute("CREATE TEMP TABLE _keep AS SELECT * FROM activity_dirty")
        store.refresh_activity()
        fast = _tables(store)
        store.con.execute("INSERT INTO activity_dirty SELECT * FROM _keep")
        store._aggregate_dirty = store._aggregate_dirty_sql  # type: ignore[method-assign]
        store.refresh_activity()
        return fast, _tables(store)


@pytest.mark.parametrize("slice_events", [10, 700, 1_000_000])
def test_numpy_activity_equals_sql(monkeypatch: pytest.MonkeyPatch, slice_events: int) -> None:
    monkeypatch.setattr(activity_aggregate, "SLICE_EVENTS", slice_events)
    rng = np.random.default_rng(slice_events)
    fast, sql = _both_ways(_batch(rng, 3000, sensors=5, v6_share=0.2, days=[0, 1, 2, 5],
                                  packets_max=3))
    assert fast[0] == sql[0] and fast[1] == sql[1]
    assert len(fast[0]) > 100 and len(fast[1]) > 50
    sensors = {row[1] for row in fast[1]}
    assert sensors == {"*", "s0", "s1", "s2", "s3", "s4"}


def test_big_days_and_wide_keys_fall_back_to_sql(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    batch = _batch(rng, 2000, sensors=3, v6_share=0.1, days=[0, 1], packets_max=1)
    monkeypatch.setattr(activity_aggregate, "MAX_DAY_EVENTS", 10)
    fast, sql = _both_ways(batch)
    assert fast == sql
    monkeypatch.undo()

    def too_wide(self: object, k: object) -> object:
        raise activity_aggregate.TooWide

    monkeypatch.setattr(activity_aggregate._Slice, "side_keys", too_wide)
    fast, sql = _both_ways(batch)
    assert fast == sql and len(fast[0]) > 0


def test_activity_counts_by_hand() -> None:
    """Two sensors see one source each hour; '*' counts it once, per sensor once each."""
    h = 3_600_000_000
    batch = make_batch({
        "ts": [T0, T0 + 1, T0 + h, T0 + 25 * h], "sensor": ["a", "b", "a", "a"],
        "src_lo": [(0xFFFF << 32) | 1] * 4, "dst_lo": [(0xFFFF << 32) | 2,
                                                    (0xFFFF << 32) | 3,
                                                    (0xFFFF << 32) | 2,
                                                    (0xFFFF << 32) | 2],
        "proto": [6] * 4, "dport": [445] * 4, "packets": [1, 2, 1, 1]}, n=4)
    with Store.open(":memory:") as store:
        with store.transaction():
            store.append_events(batch, input_id=1)
        store.refresh_activity()
        daily = store.con.execute(
            "SELECT bucket::VARCHAR, sensor, records, packets, sources, targets "
            "FROM port_activity_daily ORDER BY ALL").fetchall()
    assert daily == [
        ("2024-06-01", "*", 3, 4, 1, 2), ("2024-06-01", "a", 2, 2, 1, 1),
        ("2024-06-01", "b", 1, 2, 1, 1),
        ("2024-06-02", "*", 1, 1, 1, 1), ("2024-06-02", "a", 1, 1, 1, 1),
    ]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), sensors=st.integers(1, 4),
       v6=st.sampled_from([0.0, 0.5, 1.0]))
def test_numpy_activity_equals_sql_property(seed: int, n: int, sensors: int, v6: float) -> None:
    rng = np.random.default_rng(seed)
    fast, sql = _both_ways(_batch(rng, n, sensors=sensors, v6_share=v6, days=[0, 3],
                                  packets_max=2))
    assert fast == sql
