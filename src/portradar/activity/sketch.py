"""Distinct-source sketches: exact where small, HyperLogLog where large, always mergeable.

Distinct counts do not add: the sources of Monday plus those of Tuesday overcount the
sources of both days, and so do two sensors.  A sketch per (day, sensor, protocol,
port) answers "how many distinct sources" for any union of days and sensors, after the
raw events are gone (retention), and across shards or collectors.

* Up to :data:`EXACT_LIMIT` (1,024) distinct sources the sketch is the sorted set of
  their 64-bit hashes: exact (collisions of a 64-bit hash are negligible below
  billions), 8 bytes a source.
* Above, a HyperLogLog (Flajolet et al. 2007) with ``2**15`` registers (32 KiB)
  and Ertl's improved estimator ("New cardinality estimation algorithms for
  HyperLogLog sketches", 2017), which has no bias anywhere in the range, so no
  empirical bias tables: standard error ``1.04/sqrt(2**15)`` = 0.57 %, so the 2 %
  bound of the issue is 3.5 standard errors (``tests/test_sketch.py`` checks it).
* Merging is a union of sets, or a register-wise maximum; a set that grows past the
  limit becomes a HyperLogLog.  Merging is associative and commutative, and merging
  the sketches of two halves of a stream gives exactly the sketch of the whole.

Sketches are stored per day and sensor in ``port_source_sketches``, computed on demand
by :func:`sync` for the days whose activity changed (not during ingest, which they
would slow several times over).

>>> import numpy as np
>>> a = SourceSketch.of(np.arange(600, dtype=np.uint64), np.arange(600, dtype=np.uint64))
>>> b = SourceSketch.of(np.arange(400, 1000, dtype=np.uint64),
...                     np.arange(400, 1000, dtype=np.uint64))
>>> a.merge(b).count(), a.merge(b).exact
(1000, True)
>>> big = SourceSketch.of(np.zeros(50_000, np.uint64), np.arange(50_000, dtype=np.uint64))
>>> big.exact, abs(big.count() - 50_000) / 50_000 < 0.02
(False, True)
>>> SourceSketch.from_bytes(big.to_bytes()) == big
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from portradar.store.duckdb_store import Store

#: Exact sets up to this many distinct sources (8 KiB), HyperLogLog above.
EXACT_LIMIT = 1024
#: HyperLogLog precision: 2**15 registers, standard error 0.57 %.
PRECISION = 15
_M = 1 << PRECISION
_Q = 64 - PRECISION
_EXACT, _HLL = 0, 1

TABLE = "port_source_sketches"
_BOOK = "port_source_sketch_days"


def hash_sources(hi: Any, lo: Any) -> np.ndarray:
    """64-bit hashes of addresses given as (hi, lo) pairs (splitmix64 finaliser).

    >>> int(hash_sources([0], [1])[0]) != int(hash_sources([0], [2])[0])
    True
    """
    h = np.asarray(hi, np.uint64).copy()
    lo = np.asarray(lo, np.uint64)
    with np.errstate(over="ignore"):
        h = _mix(h * np.uint64(0x9E3779B97F4A7C15) ^ lo)
        h = _mix(h ^ np.uint64(0xD6E8FEB86659FD93))
    return h


def _mix(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _registers(hashes: np.ndarray) -> np.ndarray:
    regs = np.zeros(_M, np.uint8)
    if len(hashes):
        idx = (hashes >> np.uint64(_Q)).astype(np.int64)
        rest = hashes & np.uint64((1 << _Q) - 1)
        # rank = position of the first 1 bit in the remaining q bits (q + 1 if none)
        with np.errstate(divide="ignore"):
            bits = np.where(rest > 0, np.floor(np.log2(rest.astype(np.float64))), -1.0)
        rank = (_Q - bits).astype(np.uint8)
        # float rounding near powers of two: fix with an exact check
        top = np.left_shift(np.uint64(1), np.minimum(bits, 63).astype(np.uint64))
        low = (rest > 0) & (top > rest)
        rank[low] += 1
        high = (rest > 0) & (bits < 63) & ((top << np.uint64(1)) <= rest)
        rank[high] -= 1
        np.maximum.at(regs, idx, rank)
    return regs


def _ertl_estimate(regs: np.ndarray) -> float:
    """Ertl's (2017) improved raw estimator."""
    counts = np.bincount(regs, minlength=_Q + 2).astype(np.float64)
    m = float(_M)

    def sigma(x: float) -> float:
        if x == 1.0:
            return math.inf
        y, z = 1.0, x
        while True:
            x *= x
            z_old = z
            z += x * y
            y += y
            if z == z_old:
                return z

    def tau(x: float) -> float:
        if x == 0.0 or x == 1.0:
            return 0.0
        y, z = 1.0, 1.0 - x
        while True:
            x = math.sqrt(x)
            z_old = z
            y *= 0.5
            z -= (1.0 - x) ** 2 * y
            if z == z_old:
                return z / 3.0

    z = m * tau(1.0 - counts[_Q + 1] / m)
    for k in range(_Q, 0, -1):
        z = 0.5 * (z + counts[k])
    z += m * sigma(counts[0] / m)
    return m / (2.0 * math.log(2.0)) * m / z


class SourceSketch:
    """A mergeable distinct count of sources (see the module doc)."""

    __slots__ = ("hashes", "registers")

    def __init__(self, hashes: np.ndarray | None = None,
                 registers: np.ndarray | None = None) -> None:
        self.hashes = hashes if registers is None else None
        self.registers = registers
        if self.hashes is not None and registers is None:
            self.hashes = np.unique(np.asarray(self.hashes, np.uint64))
            if len(self.hashes) > EXACT_LIMIT:
                self.registers = _registers(self.hashes)
                self.hashes = None

    @classmethod
    def of(cls, hi: Any, lo: Any) -> SourceSketch:
        return cls(hash_sources(hi, lo))

    @classmethod
    def from_hashes(cls, hashes: np.ndarray) -> SourceSketch:
        return cls(hashes)

    @property
    def exact(self) -> bool:
        return self.registers is None

    def count(self) -> int:
        if self.registers is None:
            assert self.hashes is not None
            return len(self.hashes)
        return round(_ertl_estimate(self.registers))

    def merge(self, other: SourceSketch) -> SourceSketch:
        if self.registers is None and other.registers is None:
            assert self.hashes is not None and other.hashes is not None
            return SourceSketch(np.union1d(self.hashes, other.hashes))
        mine = self.registers if self.registers is not None else _registers(self.hashes)  # type: ignore[arg-type]
        theirs = other.registers if other.registers is not None else _registers(other.hashes)  # type: ignore[arg-type]
        return SourceSketch(registers=np.maximum(mine, theirs))

    def to_bytes(self) -> bytes:
        if self.registers is None:
            assert self.hashes is not None
            return bytes([_EXACT]) + self.hashes.astype("<u8").tobytes()
        return bytes([_HLL, PRECISION]) + self.registers.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> SourceSketch:
        if not data:
            return cls(np.zeros(0, np.uint64))
        if data[0] == _EXACT:
            return cls(np.frombuffer(data, "<u8", offset=1).astype(np.uint64))
        if data[0] == _HLL and data[1] == PRECISION:
            return cls(registers=np.frombuffer(data, np.uint8, offset=2).copy())
        raise ValueError("not a portradar source sketch (unknown header)")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SourceSketch):
            return NotImplemented
        if self.exact != other.exact:
            return False
        if self.registers is not None and other.registers is not None:
            return bool(np.array_equal(self.registers, other.registers))
        return bool(np.array_equal(self.hashes, other.hashes))  # type: ignore[arg-type]

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        mode = "exact" if self.exact else "hll"
        return f"SourceSketch({mode}, ~{self.count()} sources)"


def merge_all(sketches: Iterable[SourceSketch]) -> SourceSketch:
    out = SourceSketch(np.zeros(0, np.uint64))
    for s in sketches:
        out = out.merge(s)
    return out


def build_sketches(groups: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, list[bytes],
                                                                     np.ndarray]:
    """One serialised sketch per group id: (group ids, blobs, exact distinct counts)."""
    order = np.lexsort((hashes, groups))
    g, h = groups[order], hashes[order]
    keep = np.ones(len(g), bool)
    keep[1:] = (g[1:] != g[:-1]) | (h[1:] != h[:-1])
    g, h = g[keep], h[keep]
    ids, starts, counts = np.unique(g, return_index=True, return_counts=True)
    blobs = []
    for start, n in zip(starts, counts, strict=True):  # one per distinct group
        blobs.append(SourceSketch(h[start:start + n]).to_bytes())
    return ids, blobs, counts


# --- the store ------------------------------------------------------------------------


def ensure_table(store: Store) -> None:
    store.con.execute(
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                bucket DATE NOT NULL, sensor VARCHAR NOT NULL, proto UTINYINT NOT NULL,
                port INTEGER NOT NULL, sources UBIGINT NOT NULL, sketch BLOB NOT NULL)""")
    store.con.execute(f"CREATE TABLE IF NOT EXISTS {_BOOK} (day DATE PRIMARY KEY, "
                      "records UBIGINT, rows UBIGINT)")


def _compute(store: Store, days: list[Any]) -> None:
    if not days:
        return
    con = store.con
    ensure_table(store)
    con.execute("CREATE OR REPLACE TEMP TABLE _sk_days AS SELECT unnest(?::DATE[]) AS day",
                [days])
    con.execute(f"DELETE FROM {TABLE} WHERE bucket IN (SELECT day FROM _sk_days)")
    tbl = con.sql(
        """WITH d AS (
               SELECT DISTINCT CAST(ts AS DATE) AS day, sensor_id, proto,
                      activity_port(proto, dport, icmp_type) AS port, src_hi, src_lo
               FROM event_rows
               WHERE ts >= CAST(? AS TIMESTAMP)
                 AND ts < CAST(? AS TIMESTAMP) + INTERVAL 1 DAY
                 AND CAST(ts AS DATE) IN (SELECT day FROM _sk_days))
           SELECT dense_rank() OVER (ORDER BY day, nm.text, proto, port) - 1 AS g,
                  day, nm.text AS sensor, proto, port, src_hi, src_lo
           FROM d JOIN names nm ON nm.kind = 'sensor' AND nm.id = d.sensor_id""",
        params=[min(days), max(days)]).to_arrow_table()
    if tbl.num_rows:
        group = tbl.column("g").to_numpy().astype(np.int64)
        hashes = hash_sources(tbl.column("src_hi").to_numpy(), tbl.column("src_lo").to_numpy())
        _ids, blobs, counts = build_sketches(group, hashes)
        _, first = np.unique(group, return_index=True)
        out = tbl.select(["day", "sensor", "proto", "port"]).take(first)
        out = out.append_column("sources", pa.array(counts.astype(np.uint64)))
        out = out.append_column("sketch", pa.array(blobs, pa.binary()))
        con.register("_sk_new", out)
        try:
            con.execute(f"INSERT INTO {TABLE} SELECT * FROM _sk_new")
        finally:
            con.unregister("_sk_new")
    _book(store, days)


def _book(store: Store, days: list[Any]) -> None:
    store.con.execute(f"DELETE FROM {_BOOK} WHERE day IN (SELECT day FROM _sk_days)")
    store.con.execute(
        f"""INSERT INTO {_BOOK}
            SELECT bucket, sum(records), count(*) FROM port_activity_daily
            WHERE sensor = '*' AND bucket IN (SELECT day FROM _sk_days) GROUP BY bucket""")


def refresh(store: Store, first_day: Any, last_day: Any) -> None:
    """ACTIVITY_REFRESHERS hook: rebuild the sketches of the dirty days."""
    days = [r[0] for r in store.con.execute("SELECT DISTINCT day FROM _dirty").fetchall()]
    _compute(store, days)


def sync(store: Store) -> int:
    """Build sketches for days whose activity changed while this module was not loaded."""
    if store.read_only:
        return 0
    ensure_table(store)
    stale = [r[0] for r in store.con.execute(
        f"""SELECT a.bucket FROM (SELECT bucket, sum(records) AS records, count(*) AS rows
                                  FROM port_activity_daily WHERE sensor = '*' GROUP BY bucket) a
            LEFT JOIN {_BOOK} b ON a.bucket = b.day
            WHERE b.day IS NULL OR b.records <> a.records OR b.rows <> a.rows
            ORDER BY 1""").fetchall()]
    with_events = [d for d in stale if store.con.execute(
        "SELECT count(*) > 0 FROM event_rows WHERE ts >= CAST(? AS TIMESTAMP) "
        "AND ts < CAST(? AS TIMESTAMP) + INTERVAL 1 DAY", [d, d]).fetchall()[0][0]]
    if with_events:
        with store.transaction():
            _compute(store, with_events)
    return len(with_events)


def distinct_sources(store: Store, *, proto: int, port: int, first_day: Any, last_day: Any,
                     sensors: Iterable[str] | None = None) -> int:
    """Distinct sources of a port over days and sensors (all sensors by default)."""
    sync(store)
    params: list[Any] = [proto, port, first_day, last_day]
    where = ""
    if sensors is not None:
        names = list(sensors)
        where = f" AND sensor IN ({', '.join('?' for _ in names)})"
        params += names
    rows = store.con.execute(
        f"""SELECT sketch FROM {TABLE} WHERE proto = ? AND port = ?
            AND bucket BETWEEN ? AND ?{where}""", params).fetchall()
    return merge_all(SourceSketch.from_bytes(r[0]) for r in rows).count()


# Not registered in ACTIVITY_REFRESHERS on purpose: computing the sketches on every ingest
# made ingest several times slower (measured: about 3 to 4 CPU-seconds per million
# events each).  Readers call sync() first, which computes exactly the stale days.
