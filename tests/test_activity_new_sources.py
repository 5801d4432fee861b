"""New-source counts kept incrementally (state of each key's last hour) equal a full recount."""

from __future__ import annotations

import numpy as np
import pytest

from portradar.activity import new_sources
from portradar.events.schema import make_batch
from portradar.store import Store

HOUR = 3_600_000_000
DAY = 24 * HOUR


def _events(rng: np.random.Generator, lo_us: int, hi_us: int, n: int) -> dict:
    ts = np.sort(rng.integers(lo_us, hi_us, n))
    v6 = rng.random(n) < 0.1
    return {"ts": ts.tolist(),
            "src_hi": np.where(v6, 0x20010DB8 << 32, 0).astype(np.uint64).tolist(),
            "src_lo": rng.integers(1, 60, n).astype(np.uint64).tolist(),
            "dst_lo": rng.integers(1, 5, n).astype(np.uint64).tolist(),
            "proto": rng.choice([6, 17], n).tolist(),
            "dport": rng.choice([22, 445, 8080], n).tolist(),
            "sensor": rng.choice(["fw1", "fw2", "fw3"], n).tolist()}


def _store(store: Store, cols: dict) -> None:
    with store.transaction():
        store.append_events(make_batch(cols, n=len(cols["ts"])), input_id=1)
    store.refresh_activity()


def _tables(store: Store) -> list[list[tuple]]:
    return [store.con.execute(
        f"SELECT CAST(bucket AS VARCHAR), sensor, proto, port, new_sources FROM {t} "
        "ORDER BY ALL").fetchall()
        for t in ("port_new_sources_hourly", "port_new_sources_daily")]


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_rounds_equal_a_full_recount(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rounds = []
    t = 0
    while t < 75 * DAY:  # rounds of 2 to 40 hours: mid-hour, mid-day and multi-day steps
        step = int(rng.integers(2, 40)) * HOUR + int(rng.integers(0, HOUR))
        rounds.append(_events(rng, t, t + step, int(rng.integers(20, 200))))
        t += step
    # late events: into folded days (a day back, and 20 days back) and the current hour
    for back in (DAY, 20 * DAY, 3 * HOUR):
        rounds.insert(len(rounds) - 2, _events(rng, t - back - HOUR, t - back, 30))
    with Store.open(":memory:") as inc, Store.open(":memory:") as full:
        for cols in rounds:
            _store(inc, cols)
            new_sources.sync(inc)
            _store(full, cols)
        new_sources.sync(full)
        assert _tables(inc) == _tables(full)
        assert any(r[4] for r in _tables(inc)[1])
        # the state is in use: days before the newest are folded
        assert (new_sources._state_day(inc) or 0) >= 70


def test_a_round_reads_only_the_unfolded_days() -> None:
    """After the fold, a round's raw scan starts at the first unfolded day."""
    rng = np.random.default_rng(3)
    with Store.open(":memory:") as store:
        _store(store, _events(rng, 0, 40 * DAY, 2000))
        new_sources.sync(store)
        assert new_sources._state_day(store) == 39
        _store(store, _events(rng, 40 * DAY + 2 * HOUR, 40 * DAY + 3 * HOUR, 50))
        statements: list[str] = []
        con = store.con

        class Spy:
            def __getattr__(self, name: str):
                return getattr(con, name)

            def execute(self, sql: str, *args):
                statements.append(sql)
                return con.execute(sql, *args)

        store.con = Spy()  # type: ignore[assignment]
        try:
            assert new_sources.sync(store) == 1
        finally:
            store.con = con
        assert not any("DELETE FROM port_new_sources_last" in s for s in statements[:8])
        assert new_sources._state_day(store) == 40
