"""A reusable hash table for numba kernels that count distinct values source by source.

The per-source kernels (profile, TRW first contacts, port lists) need "have I seen
this value for this source yet?" for every row.  Sorting each source's values answers
it, but numba's sorts are 7 to 50 times slower than numpy's (measured while writing
this: 1 M uint64 in 0.18 s with ``np.sort`` inside numba and 1.3 s with
``argsort(kind="mergesort")``, against 0.015 s for numpy's ``np.sort``), and a heavy
scanner is one source with a million rows.  An open-addressing table with linear
probing does it in one pass (1 M rows with 800 distinct values: 2 to 14 ms).

The table is allocated once for the largest source (a power of two at least twice its
rows); the caller remembers the slots it filled and clears only those, so a source
with one row costs a few instructions whatever the table's size.  Keys must not be 0
(the empty mark): :func:`nonzero` maps 0 to a stand-in.

The helpers are tiny and inlined; measured, a helper that also did the bookkeeping
(insert, count) behind a boolean return ran 50 times slower than this split, so the
caller writes ``keys[slot] = v`` itself::

    slot = probe(keys, mask, v)
    if keys[slot] == 0:      # new value
        keys[slot] = v
        used[n] = slot
        n += 1
    ...
    clear(keys, used, n)

>>> keys, mask = table(4)
>>> used = np.empty(keys.size, np.int64)
>>> count_distinct(np.array([7, 9, 7, 3], np.uint64), keys, mask, used)
3
>>> int(keys.sum())  # cleared again
0
"""

from __future__ import annotations

import numba
import numpy as np

#: Stored in place of the value 0, which marks an empty slot.
ZERO_STANDIN = np.uint64(0x9E3779B97F4A7C15)


def table(capacity: int) -> tuple[np.ndarray, np.uint64]:
    """Empty keys for at least ``capacity`` distinct values, and the index mask."""
    size = 16
    while size < 2 * capacity:
        size *= 2
    return np.zeros(size, np.uint64), np.uint64(size - 1)


@numba.njit(cache=True, nogil=True, inline="always")
def nonzero(v):  # pragma: no cover - jit
    v = np.uint64(v)
    return ZERO_STANDIN if v == np.uint64(0) else v


@numba.njit(cache=True, nogil=True, inline="always")
def probe(keys, mask, v):  # pragma: no cover - jit
    """Slot holding ``v``, or the empty slot where it belongs."""
    h = v * np.uint64(0x9E3779B97F4A7C15)
    i = (h ^ (h >> np.uint64(29))) & mask
    while keys[i] != 0 and keys[i] != v:
        i = (i + np.uint64(1)) & mask
    return i


@numba.njit(cache=True, nogil=True, inline="always")
def clear(keys, used, n):  # pragma: no cover - jit
    for q in range(n):
        keys[used[q]] = 0


@numba.njit(cache=True, nogil=True)
def count_distinct(values, keys, mask, used):  # pragma: no cover - jit
    """Distinct values of ``values`` (the table is left empty)."""
    n = 0
    for x in range(values.shape[0]):
        v = nonzero(values[x])
        slot = probe(keys, mask, v)
        if keys[slot] == 0:
            keys[slot] = v
            used[n] = np.int64(slot)
            n += 1
    clear(keys, used, n)
    return n


@numba.njit(cache=True, nogil=True)
def count_per_row(values, keys, mask, used):  # pragma: no cover - jit
    """For each row, how many rows share its value (a group-by count without sorting).

    ``keys`` must hold twice as many slots as there are distinct values (:func:`table`
    for ``values.shape[0]``); it is left empty.
    """
    n = 0
    slot_of = np.empty(values.shape[0], np.int64)
    counts = np.zeros(keys.shape[0], np.int64)
    for x in range(values.shape[0]):
        v = nonzero(values[x])
        slot = probe(keys, mask, v)
        if keys[slot] == 0:
            keys[slot] = v
            used[n] = np.int64(slot)
            n += 1
        slot_of[x] = np.int64(slot)
        counts[slot] += 1
    out = np.empty(values.shape[0], np.int64)
    for x in range(values.shape[0]):
        out[x] = counts[slot_of[x]]
    clear(keys, used, n)
    return out


def is_member(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Whether each of ``values`` is one of ``members`` (uint64): ``np.isin`` by a hash
    table of the members, one probe per value (for a few members among a million
    values, 40 times faster than a ``searchsorted``).

    >>> is_member(np.array([3, 0, 5], np.uint64), np.array([0, 5], np.uint64)).tolist()
    [False, True, True]
    """
    values = np.ascontiguousarray(values, np.uint64)
    members = np.ascontiguousarray(members, np.uint64)
    keys, mask = table(members.size)
    out = np.empty(values.size, np.bool_)
    _is_member(values, members, keys, mask, out)
    return out


@numba.njit(cache=True, nogil=True)
def _is_member(values, members, keys, mask, out):  # pragma: no cover - jit
    for x in range(members.shape[0]):
        v = nonzero(members[x])
        keys[probe(keys, mask, v)] = v
    for x in range(values.shape[0]):
        v = nonzero(values[x])
        out[x] = keys[probe(keys, mask, v)] == v
