"""Exact per-port activity of the newest days, kept in memory and updated per micro-batch.

The spike detector reads per-port activity (records, distinct sources, distinct targets
of all sensors, per hour or day).  The store recounts a day from its raw events
(:meth:`~portradar.store.duckdb_store.Store.refresh_activity`): at 100,000 lines/s that
is a recount of a growing day every detection round (issue #7's latency budget is 5 s).
Here each committed micro-batch is *merged* into the distinct sets of the buckets it
touches, so a round reads the counts of the changed buckets in milliseconds.

What is kept, per tracked day: the sorted distinct keys ``(group << 33) | address`` of
sources and of targets, where ``group`` is the (protocol, activity port, bucket of the
day) and ``address`` the IPv4 address (32 bits) or a dense id (2³² and up) of any other
address; and the records per group.  A bucket's distinct count is the length of its
group's run.  Counts are exact: IPv6 addresses are told apart by their full 128 bits
(the dense ids), not a hash.

A day starts being tracked with the events the store already holds of it (``seed``:
the first micro-batch of a day after a restart reads them once), so its counts equal
the store's recount.  Events of a day older than the tracked ones (a late line, a
back-fill) are not merged: the day is reported *stale* and the store's own refresh
counts it.  Days leave memory once newer than :attr:`OpenBuckets.keep_days` days
exist *and* the store has refreshed them since their last event (:meth:`covered`),
so the detector never reads a day from the store before the store has caught up.

Memory: 8 bytes per distinct (port, bucket, address) and side; a day with 10 million
distinct source and target keys per side holds 160 MB.

>>> import numpy as np
>>> ob = OpenBuckets("hour")
>>> us = np.array([0, 1, 3_600_000_000], np.int64)      # two events in hour 0, one in 1
>>> ob.add(us, np.full(3, 6), np.full(3, 445), np.zeros(3, np.uint64),
...        np.array([0xFFFF_0A000001, 0xFFFF_0A000001, 0xFFFF_0A000002], np.uint64),
...        np.zeros(3, np.uint64), np.full(3, 0xFFFF_C0000201, np.uint64))
>>> c = ob.take_changed()[0]
>>> c["t"].tolist(), c["records"].tolist(), c["sources"].tolist(), c["targets"].tolist()
([0, 3600], [2, 1], [1, 1], [1, 1])
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Address bits of a key: IPv4 below 2³², other addresses' dense ids above.
ADDR_BITS = 33
#: Days kept in memory besides the newest (yesterday: syslog senders' clocks and
#: batching put late lines after midnight, the same allowance as new-source folding's
#: ``FOLD_HOURS``).
KEEP_DAYS = 2
_V4 = np.uint64(0xFFFF_0000_0000)
_LOW32 = np.uint64(0xFFFF_FFFF)
_PORTS = 65_537  # activity ports -1 .. 65535
_US_DAY = 86_400_000_000

#: ``seed(day) -> columns`` of the events the store holds of an epoch day (the
#: :meth:`OpenBuckets.add` arguments as a dict), or None for none.
Seed = Callable[[int], dict[str, np.ndarray] | None]


def activity_port(proto: np.ndarray, dport: np.ndarray, icmp_type: np.ndarray) -> np.ndarray:
    """The store's ``activity_port`` macro in numpy (missing values are -1).

    >>> activity_port(np.array([6, 1, 47]), np.array([445, -1, 9]), np.array([-1, 8, -1]))
    array([445,   8,  -1])
    """
    proto = np.asarray(proto)
    return np.where(np.isin(proto, (6, 17, 132, 136)), dport,
                    np.where(np.isin(proto, (1, 58)), icmp_type, -1)).astype(np.int64)


def batch_columns(batch: pa.RecordBatch | pa.Table) -> dict[str, np.ndarray]:
    """The :meth:`OpenBuckets.add` arguments of an event batch (event schema)."""
    def col(name: str, fill: int = -1) -> np.ndarray:
        arr = batch.column(name)
        if not arr.null_count:
            return np.asarray(arr.to_numpy(zero_copy_only=False))
        valid = np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False))
        values = np.asarray(pc.fill_null(arr, 0).to_numpy(zero_copy_only=False), np.int64)
        return np.where(valid, values, fill)

    proto = col("proto").astype(np.int64)
    ts = batch.column("ts").cast(pa.int64())
    return {"ts_us": np.asarray(ts.to_numpy(zero_copy_only=False), np.int64),
            "proto": proto,
            "port": activity_port(proto, col("dport").astype(np.int64),
                                  col("icmp_type").astype(np.int64)),
            "src_hi": col("src_hi", 0).astype(np.uint64),
            "src_lo": col("src_lo", 0).astype(np.uint64),
            "dst_hi": col("dst_hi", 0).astype(np.uint64),
            "dst_lo": col("dst_lo", 0).astype(np.uint64)}


#: The store's events of one day, as :meth:`OpenBuckets.add` wants them (``seed``).
SEED_SQL = """
SELECT epoch_us(ts) AS ts_us, proto::BIGINT AS proto,
       activity_port(proto, dport, icmp_type)::BIGINT AS port,
       src_hi, src_lo, dst_hi, dst_lo
FROM event_rows
WHERE ts >= make_timestamp(CAST(? AS BIGINT) * 86400000000)
  AND ts < make_timestamp(CAST(? AS BIGINT) * 86400000000 + 86400000000)
"""


def store_seed(con: Any) -> Seed:
    """A ``seed`` reading the store on ``con`` (call it inside the micro-batch's
    transaction, before the batch's own events are inserted)."""
    def seed(day: int) -> dict[str, np.ndarray] | None:
        tbl = con.sql(SEED_SQL, params=[day, day]).to_arrow_table()
        if tbl.num_rows == 0:
            return None
        return {name: np.asarray(tbl.column(name).to_numpy()) for name in tbl.column_names}
    return seed


_PAIR = np.dtype([("hi", "<u8"), ("lo", "<u8")])  # sorts as the 128-bit address


class _AddressIds:
    """Dense ids (from 2³²) of addresses that are not IPv4-mapped, by their 128 bits."""

    def __init__(self) -> None:
        self.known = np.zeros(0, _PAIR)  # sorted
        self.ids = np.zeros(0, np.uint64)  # id of each known pair
        self.count = 0

    def __call__(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        pairs = np.empty(len(hi), _PAIR)
        pairs["hi"], pairs["lo"] = hi, lo
        distinct = np.unique(pairs)
        pos = np.searchsorted(self.known, distinct)
        found = np.zeros(len(distinct), bool)
        inside = pos < len(self.known)
        found[inside] = self.known[pos[inside]] == distinct[inside]
        new = distinct[~found]
        if len(new):
            ids = np.uint64(1 << 32) + np.arange(self.count, self.count + len(new),
                                                 dtype=np.uint64)
            self.count += len(new)
            at = pos[~found]
            self.known = np.insert(self.known, at, new)
            self.ids = np.insert(self.ids, at, ids)
        return self.ids[np.searchsorted(self.known, pairs)]


def _merge(keys: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Sorted distinct ``keys`` with the distinct ``new`` ones inserted."""
    new = np.unique(new)
    if keys.size == 0:
        return new
    pos = np.searchsorted(keys, new)
    present = np.zeros(new.size, bool)
    inside = pos < keys.size
    present[inside] = keys[pos[inside]] == new[inside]
    return np.insert(keys, pos[~present], new[~present])


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``values``: the distinct ones and how often each occurs."""
    if values.size == 0:
        return values, np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    return values[starts], np.diff(np.append(starts, values.size))


class _Day:
    def __init__(self) -> None:
        self.sources = np.zeros(0, np.uint64)
        self.targets = np.zeros(0, np.uint64)
        self.groups = np.zeros(0, np.uint64)
        self.records = np.zeros(0, np.int64)
        self.changed = 0  # the add() count at its last change

    def add(self, group: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
        shift = np.uint64(ADDR_BITS)
        self.sources = _merge(self.sources, (group << shift) | src)
        self.targets = _merge(self.targets, (group << shift) | dst)
        g, n = np.unique(np.concatenate([self.groups, group]), return_inverse=True)
        counts = np.bincount(n, weights=np.concatenate(
            [self.records, np.ones(len(group), np.int64)]), minlength=len(g))
        self.groups, self.records = g, counts.astype(np.int64)


class OpenBuckets:
    """Exact activity (all sensors) of the newest days, merged per micro-batch."""

    def __init__(self, period: str, keep_days: int = KEEP_DAYS) -> None:
        if period not in ("hour", "day"):
            raise ValueError(f"unknown period {period!r}")
        self.period = period
        self.per_day = 24 if period == "hour" else 1
        self.keep_days = keep_days
        self.days: dict[int, _Day] = {}
        self.stale: set[int] = set()
        self._ids = _AddressIds()
        self._changed: set[int] = set()
        self._adds = 0
        self._covered = 0
        self._lock = threading.Lock()

    # -- writing (the micro-batch thread) ----------------------------------------------
    def to_seed(self, ts_us: np.ndarray) -> list[int]:
        """Days of these events that start being tracked now (seed them first)."""
        days = np.unique(np.asarray(ts_us, np.int64) // _US_DAY).tolist()
        newest = max(self.days, default=None)
        return [d for d in days if d not in self.days
                and (newest is None or d > newest - self.keep_days)]

    def seed(self, day: int, columns: dict[str, np.ndarray] | None) -> None:
        """Start tracking ``day`` with the events the store holds of it."""
        with self._lock:
            self.days[day] = _Day()
            self.stale.discard(day)
        if columns is not None:
            self.add(**columns)

    def add(self, ts_us: np.ndarray, proto: np.ndarray, port: np.ndarray,
            src_hi: np.ndarray, src_lo: np.ndarray, dst_hi: np.ndarray,
            dst_lo: np.ndarray) -> None:
        """Merge committed events; untracked days are started (unseeded: call
        :meth:`to_seed` / :meth:`seed` first for days the store may hold) or, if older
        than the tracked ones, reported stale."""
        ts_us = np.asarray(ts_us, np.int64)
        if ts_us.size == 0:
            return
        day = ts_us // _US_DAY
        bucket = (ts_us % _US_DAY) // (3_600_000_000 if self.per_day == 24 else _US_DAY)
        pp = (np.asarray(proto, np.int64) * _PORTS + np.asarray(port, np.int64) + 1)
        group = (pp * self.per_day + bucket).astype(np.uint64)
        src = self._addresses(np.asarray(src_hi, np.uint64), np.asarray(src_lo, np.uint64))
        dst = self._addresses(np.asarray(dst_hi, np.uint64), np.asarray(dst_lo, np.uint64))
        order = np.argsort(day, kind="stable")
        days, starts = np.unique(day[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        with self._lock:
            self._adds += 1
            for d, a, b in zip(days.tolist(), starts.tolist(), ends.tolist(), strict=True):
                if d not in self.days:
                    newest = max(self.days, default=None)
                    if newest is not None and d <= newest - self.keep_days:
                        self.stale.add(d)  # the store's refresh counts it
                        continue
                    self.days[d] = _Day()
                sel = order[a:b]
                self.days[d].add(group[sel], src[sel], dst[sel])
                self.days[d].changed = self._adds
                self._changed.add(d)
            self._evict()

    def _addresses(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        v4 = (hi == 0) & ((lo & ~_LOW32) == _V4)
        out = lo & _LOW32
        if not v4.all():
            other = ~v4
            out[other] = self._ids(hi[other], lo[other])
        return out

    def _evict(self) -> None:
        newest = max(self.days, default=0)
        for d in [d for d, state in self.days.items()
                  if d <= newest - self.keep_days and state.changed <= self._covered]:
            del self.days[d]

    # -- reading (the detection thread) -------------------------------------------------
    def mark(self) -> int:
        """A position in the stream of micro-batches, for :meth:`covered`."""
        with self._lock:
            return self._adds

    def covered(self, mark: int) -> None:
        """The store has refreshed every day changed up to ``mark``: old days may go."""
        with self._lock:
            self._covered = max(self._covered, mark)
            self._evict()

    def take_changed(self) -> tuple[dict[str, np.ndarray], set[int]]:
        """Cells of the days changed since the last call, and the stale days seen."""
        with self._lock:
            days, self._changed = self._changed, set()
            stale, self.stale = self.stale, set()
            return self._cells(days), stale

    def cells(self, days: set[int] | None = None) -> dict[str, np.ndarray]:
        """Every cell of the given tracked days (default: all)."""
        with self._lock:
            return self._cells(set(self.days) if days is None else days)

    def _cells(self, days: set[int]) -> dict[str, np.ndarray]:
        shift = np.uint64(ADDR_BITS)
        parts = []
        step = 86400 // self.per_day
        for d in sorted(days):
            state = self.days.get(d)
            if state is None or state.groups.size == 0:
                continue
            groups = state.groups
            sources = _runs(state.sources >> shift)[1]
            targets = _runs(state.targets >> shift)[1]
            g = groups.astype(np.int64)
            pp = g // self.per_day
            parts.append({"t": d * 86400 + (g % self.per_day) * step,
                          "proto": pp // _PORTS, "port": pp % _PORTS - 1,
                          "records": state.records, "sources": sources,
                          "targets": targets})
        names = ("t", "proto", "port", "records", "sources", "targets")
        if not parts:
            return {n: np.zeros(0, np.int64) for n in names}
        return {n: np.concatenate([p[n] for p in parts]).astype(np.int64) for n in names}
