"""Detection split into parts (portradar.scan.detect): any part size, and parts loaded
one per query or several per query and split in numpy, give the verdicts of one pass,
/64 aggregates included (a /64 lies in one /48, so in one part)."""

from __future__ import annotations

import pytest
from scan_events import ev, put

from portradar.scan.detect import detect
from portradar.store import Store


def _events() -> list:
    rows = []
    for net in range(12):  # many /24s, so the parts differ
        for s in range(1, 4):
            src = f"198.51.{net}.{s}"
            n = 2 + (net * 3 + s) % 30  # 2..31 probes: below and above every threshold
            rows += [ev(src, f"192.0.2.{1 + k % 7}", 20 + k, t=net * 100 + k) for k in range(n)]
    for i, host in enumerate(("2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:9::1")):
        rows += [ev(host, f"2001:db8:ff::{10 * i + k + 1}", 22, t=2000 + 10 * i + k)
                 for k in range(3)]
    return rows


def _verdicts(store: Store) -> list[tuple]:
    return store.con.execute(
        """SELECT source, prefix, status, kind, type, detector, probes, ports, targets,
                  flagged_at, flagged_probes, evidence, addresses
           FROM scanners ORDER BY source, prefix""").fetchall()


def _profiles(store: Store) -> list[tuple]:
    return store.con.execute("SELECT * FROM scan_profiles ORDER BY ALL").fetchall()


@pytest.mark.parametrize(("partition_events", "load_events"),
                         [(40, 40), (40, 160), (15, 10_000)])
def test_parts_and_loads_give_the_verdicts_of_one_pass(tmp_path, partition_events,
                                                       load_events):
    rows = _events()
    with Store.open(tmp_path / "one.duckdb") as store:
        put(store, rows)
        one = detect(store)
        expected, expected_profiles = _verdicts(store), _profiles(store)
    assert one.partitions == 1 and any(r[1] == 64 for r in expected)
    with Store.open(tmp_path / "parts.duckdb") as store:
        put(store, rows)
        split = detect(store, partition_events=partition_events, load_events=load_events)
        assert split.partitions > 1
        assert (split.events, split.sources, split.flagged) == \
            (one.events, one.sources, one.flagged)
        assert _verdicts(store) == expected
        assert _profiles(store) == expected_profiles
