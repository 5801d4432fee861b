"""The stable sort by source key that groups every frame (``radix_sort``): both of its
ways (a packed sort when the varying bits and a row number fit in 64 bits, the radix
passes otherwise) against numpy's stable argsort."""

from __future__ import annotations

import numpy as np
import pytest

from portradar.scan.probes import radix_sort, source_rows, source_time_order

MASK64 = (1 << 64) - 1


def _keys(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """``n`` keys (a third of them repeated) that differ only in their low ``width``
    bits; the bits above are one random pattern shared by all."""
    low = (1 << width) - 1
    shared = np.uint64(int(rng.integers(0, 1 << 63)) & (MASK64 ^ low))
    keys = rng.integers(0, MASK64, n, dtype=np.uint64, endpoint=True) & np.uint64(low)
    keys |= shared
    return np.concatenate([keys, keys[: n // 3]])


@pytest.mark.parametrize("n", [2, 3, 17, 5_000])
@pytest.mark.parametrize("width", [0, 1, 11, 32, 45, 63, 64])
def test_radix_sort_is_numpys_stable_argsort(n: int, width: int) -> None:
    keys = _keys(np.random.default_rng(n * 100 + width), n, width)
    ordered, order = radix_sort(keys)
    expected = np.argsort(keys, kind="stable")
    assert order.tolist() == expected.tolist()
    assert ordered.tolist() == keys[expected].tolist()
    assert order.dtype == np.int64 and ordered.dtype == np.uint64


def test_ipv4_and_ipv6_keys_are_sorted_apart_and_both_stable() -> None:
    rng = np.random.default_rng(7)
    v4 = np.uint64(0xFFFF_0000_0000) | rng.integers(0, 1 << 32, 3_000, dtype=np.uint64)
    v6 = rng.integers(1 << 63, MASK64, 500, dtype=np.uint64, endpoint=True)
    keys = np.concatenate([v4, v6, v4[:1_000], v6[:100]])
    rng.shuffle(keys)
    ordered, order = radix_sort(keys)
    assert order.tolist() == np.argsort(keys, kind="stable").tolist()
    assert (np.diff(ordered.astype(object)) >= 0).all()


def test_source_time_order_keeps_each_sources_rows_in_time_order() -> None:
    skey = np.array([9, 4, 9, 4, 9], np.uint64)
    assert source_time_order(skey, np.array([1, 2, 3, 4, 5])).tolist() == [1, 3, 0, 2, 4]
    # rows out of time order: a lexsort by (source, time)
    assert source_time_order(skey, np.array([5, 4, 3, 2, 1])).tolist() == [3, 1, 4, 2, 0]


@pytest.mark.parametrize("width", [20, 32, 63])
def test_rows_given_come_back_as_the_argsort_of_those_rows(width: int) -> None:
    rng = np.random.default_rng(width)
    keys = _keys(rng, 3_000, width)
    rows = np.sort(rng.choice(1 << 21, keys.size, replace=False)).astype(np.int64)
    ordered, order = radix_sort(keys, rows)
    expected = np.argsort(keys, kind="stable")
    assert order.tolist() == rows[expected].tolist()
    assert ordered.tolist() == keys[expected].tolist()
    # rows out of order cannot ride in the packed sort; the radix passes carry them
    shuffled = rows[::-1].copy()
    assert radix_sort(keys, shuffled)[1].tolist() == shuffled[expected].tolist()


def test_source_rows_orders_the_given_rows_by_source_then_time() -> None:
    rng = np.random.default_rng(3)
    skey = np.uint64(0xFFFF_0000_0000) | rng.integers(0, 50, 10_000, dtype=np.uint64)
    skey[::97] |= np.uint64(1 << 63)  # a few IPv6 keys among them
    rows = np.flatnonzero(rng.random(skey.size) < 0.6)
    for ts in (np.arange(skey.size), rng.integers(0, 100, skey.size)):  # in and out of order
        keys, ordered = source_rows(skey, rows, ts)
        expected = rows[source_time_order(skey[rows], ts[rows])]
        assert ordered.tolist() == expected.tolist()
        assert keys.tolist() == skey[expected].tolist()
