"""Per-port activity of dirty days, exact, in numpy: records, packets, sources, targets.

:meth:`portradar.store.duckdb_store.Store.refresh_activity` calls :func:`aggregate_dirty`
to fill ``port_activity_hourly`` and ``port_activity_daily`` for the days in the temp
table ``_dirty``, per sensor and for all sensors (sensor ``'*'``).

How: the dirty days are cut into *slices* of consecutive days (at most
:data:`SLICE_EVENTS` events each, so memory stays bounded: about 70 bytes per event of
the slice); for each slice DuckDB hands over six narrow columns, and
:mod:`portradar.store.activity_kernel` counts the distinct addresses of all four scopes
with one sort per side.  Every scope is inside one day, so slicing by day is exact.

Addresses are exact for IPv4 (and IPv4-mapped IPv6): the 32-bit address itself.  Other
IPv6 addresses are DuckDB's 64-bit ``hash(hi, lo)``, numbered densely per slice: two
distinct IPv6 addresses collide with probability about n²/2⁶⁵ (a few billion addresses
for an even chance), the same as the SQL formulation this replaced.

Measured on the 5 M line benchmark log (7 days, 8 sensors, 2-core machine): the SQL
formulation 8 to 13 CPU-seconds; this one, fetch included, see ``bench/README.md``.
A day with more than :data:`MAX_DAY_EVENTS` events, or keys too wide for 64 bits
(thousands of sensors *and* of ports in one slice), falls back to the SQL formulation,
which DuckDB can spill to disk.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from portradar.store.activity_kernel import walk_scopes

#: Events per slice (consecutive dirty days are grouped up to this many).  At about 70
#: bytes per event while a slice is counted, 4 M events keep it near 300 MB.  The rows
#: of all slices (a few per cent of the events' size) are inserted together at the end.
SLICE_EVENTS = 4_000_000

#: Above this many events in one day, that day is aggregated in SQL instead (DuckDB
#: spills to disk; the numpy path would hold the whole day in memory).
MAX_DAY_EVENTS = 20_000_000

_PORTS = 65_537  # activity ports -1 .. 65535
_V4_LIMIT = np.uint64(1 << 32)
_EPOCH = date(1970, 1, 1)

_FETCH = """
SELECT (epoch_us(ts) // 3600000000 - ?)::INTEGER AS hour, sensor_id, proto,
       activity_port(proto, dport, icmp_type) AS port, packets,
       CASE WHEN src_hi = 0 AND (src_lo >> 32) = 65535 THEN src_lo & 4294967295
            ELSE hash(src_hi, src_lo) | (1::UBIGINT << 63) END AS sk,
       CASE WHEN dst_hi = 0 AND (dst_lo >> 32) = 65535 THEN dst_lo & 4294967295
            ELSE hash(dst_hi, dst_lo) | (1::UBIGINT << 63) END AS dk
FROM event_rows
WHERE ts >= CAST(? AS TIMESTAMP) AND ts < CAST(? AS TIMESTAMP)
  AND CAST(ts AS DATE) IN (SELECT day FROM _dirty)
"""


class TooWide(Exception):
    """The slice's keys do not fit in 64 bits: aggregate it in SQL."""


def bits_for(n: int) -> int:
    """Bits needed for the values ``0 .. n - 1`` (at least 1).

    >>> bits_for(1), bits_for(2), bits_for(24), bits_for(25)
    (1, 1, 5, 5)
    """
    return max(1, int(n - 1).bit_length())


def _dense(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids of small non-negative integers: ``(ids, present values)``."""
    present = np.bincount(values, minlength=size) > 0
    ids = np.cumsum(present, dtype=np.int64) - 1
    return ids[values], np.flatnonzero(present)


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``keys``: the distinct keys and how often each occurs."""
    if keys.size == 0:
        return keys, np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    counts = np.diff(np.append(starts, keys.size))
    return keys[starts], counts


def _group_sum(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys (sorted) and the uint64 sum of ``values`` per key."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    uniq, counts = _runs(sorted_keys)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    sums = np.add.reduceat(values[order].astype(np.uint64), starts) if uniq.size else \
        np.zeros(0, np.uint64)
    return uniq, sums


class _Slice:
    """The columns of one slice of days, with the dense parts of its keys."""

    def __init__(self, table: pa.Table, n_days: int) -> None:
        col = {name: table.column(name).to_numpy() for name in table.column_names}
        self.n = table.num_rows
        self.hour = col["hour"].astype(np.int64)
        self.packets = col["packets"]
        proto_code, protos = _dense(col["proto"].astype(np.int64), 256)
        self.pp_ids, pp_present = _dense(
            proto_code * _PORTS + (col["port"].astype(np.int64) + 1), protos.size * _PORTS)
        self.group_proto = protos[pp_present // _PORTS].astype(np.uint8)
        self.group_port = (pp_present % _PORTS - 1).astype(np.int32)
        sensor_ids = col["sensor_id"].astype(np.int64)
        self.sensor, self.sensor_present = _dense(sensor_ids, int(sensor_ids.max()) + 1)
        self.sides = (col["sk"], col["dk"])
        self.bits_group = bits_for(pp_present.size)
        self.bits_sensor = bits_for(self.sensor_present.size)
        self.bits_hour = bits_for(24 * n_days)
        self.bits_day = bits_for(n_days)
        self.day_of_hour = np.arange(24 * n_days, dtype=np.int64) // 24

    def side_keys(self, k: np.ndarray) -> tuple[np.ndarray, int]:
        """The sort keys of one address side, and the address width used."""
        v6 = k >= _V4_LIMIT
        addr = k
        bits_addr = 32
        if v6.any():
            addr = k.copy()
            _, inverse = np.unique(k[v6], return_inverse=True)
            addr[v6] = _V4_LIMIT + inverse.astype(np.uint64)
            bits_addr = bits_for(int(_V4_LIMIT) + int(inverse.max()) + 1)
        rest = self.bits_group + self.bits_hour + self.bits_sensor
        if bits_addr + rest > 64:
            uniq, inverse = np.unique(k, return_inverse=True)
            addr, bits_addr = inverse.astype(np.uint64), bits_for(uniq.size)
            if bits_addr + rest > 64:
                raise TooWide
        bh, bs = np.uint64(self.bits_hour), np.uint64(self.bits_sensor)
        keys = self.pp_ids.astype(np.uint64) << np.uint64(bits_addr)
        keys |= addr
        keys <<= bh
        keys |= self.hour.astype(np.uint64)
        keys <<= bs
        keys |= self.sensor.astype(np.uint64)
        keys.sort()
        return keys, bits_addr


def _scopes(part: _Slice) -> dict[str, dict[str, np.ndarray]]:
    """Per scope: sorted group keys with records, packets, sources and targets."""
    bh, bs, bd = (np.uint64(part.bits_hour), np.uint64(part.bits_sensor),
                  np.uint64(part.bits_day))
    hs_keys = (((part.pp_ids.astype(np.uint64) << bh) | part.hour.astype(np.uint64)) << bs) \
        | part.sensor.astype(np.uint64)
    if part.packets.size and int(part.packets.min()) == 1 and int(part.packets.max()) == 1:
        hs_uniq, records = _runs(np.sort(hs_keys))
        packets = records.astype(np.uint64)
    else:
        hs_uniq, packets = _group_sum(hs_keys, part.packets)
        records = _runs(np.sort(hs_keys))[1]
    del hs_keys
    group = hs_uniq >> (bh + bs)
    hour = (hs_uniq >> bs) & ((np.uint64(1) << bh) - np.uint64(1))
    sensor = hs_uniq & ((np.uint64(1) << bs) - np.uint64(1))
    day = part.day_of_hour[hour.astype(np.int64)].astype(np.uint64)
    derived = {
        "hs": hs_uniq,
        "ha": (group << bh) | hour,
        "ds": (((group << bd) | day) << bs) | sensor,
        "da": (group << bd) | day,
    }
    out: dict[str, dict[str, np.ndarray]] = {}
    rec64 = records.astype(np.uint64)
    for scope, keys in derived.items():
        uniq, rec = (keys, rec64) if scope == "hs" else _group_sum(keys, rec64)
        _, pkt = (keys, packets) if scope == "hs" else _group_sum(keys, packets)
        out[scope] = {"keys": uniq, "records": rec, "packets": pkt}
    for side_name, k in zip(("sources", "targets"), part.sides, strict=True):
        keys, bits_addr = part.side_keys(k)
        arrays = walk_scopes(keys, bits_addr, part.bits_hour, part.bits_sensor,
                             part.bits_day, part.day_of_hour)
        del keys
        for scope, emitted, n in zip(("hs", "ha", "ds", "da"), arrays[:4], arrays[4],
                                     strict=True):
            uniq, counts = _runs(np.sort(emitted[:n]))
            if not np.array_equal(uniq, out[scope]["keys"]):  # pragma: no cover - invariant
                raise AssertionError(f"activity scope {scope}: groups differ ({side_name})")
            out[scope][side_name] = counts
    return out


def _rows(part: _Slice, scopes: dict[str, dict[str, np.ndarray]], first_day: date,
          names: dict[int, str]) -> tuple[pa.Table, pa.Table]:
    """Arrow tables in the column order of ``port_activity_hourly`` / ``_daily``."""
    bh, bs, bd = (np.uint64(part.bits_hour), np.uint64(part.bits_sensor),
                  np.uint64(part.bits_day))
    base_hour = (first_day - _EPOCH).days * 24
    base_day = (first_day - _EPOCH).days
    sensor_text = pa.array([names[int(s)] for s in part.sensor_present], pa.string())
    star = pa.array(["*"], pa.string())
    tables: dict[str, list[pa.Table]] = {"hourly": [], "daily": []}
    for scope, data in scopes.items():
        keys = data["keys"]
        per_sensor = scope[1] == "s"
        unit_bits = bh if scope[0] == "h" else bd
        low = bs if per_sensor else np.uint64(0)
        unit = ((keys >> low) & ((np.uint64(1) << unit_bits) - np.uint64(1))).astype(np.int64)
        group = (keys >> (low + unit_bits)).astype(np.int64)
        if per_sensor:
            sensor = sensor_text.take(
                pa.array((keys & ((np.uint64(1) << bs) - np.uint64(1))).astype(np.int64)))
        else:
            sensor = star.take(pa.array(np.zeros(keys.size, np.int64)))
        if scope[0] == "h":
            bucket = pa.array((unit + base_hour) * 3_600_000_000, pa.int64()).cast(
                pa.timestamp("us"))
        else:
            bucket = pa.array((unit + base_day).astype(np.int32), pa.int32()).cast(pa.date32())
        tables["hourly" if scope[0] == "h" else "daily"].append(pa.table({
            "bucket": bucket, "sensor": sensor,
            "proto": pa.array(part.group_proto[group], pa.uint8()),
            "port": pa.array(part.group_port[group], pa.int32()),
            "records": pa.array(data["records"], pa.uint64()),
            "packets": pa.array(data["packets"], pa.uint64()),
            "sources": pa.array(data["sources"], pa.uint64()),
            "targets": pa.array(data["targets"], pa.uint64()),
        }))
    return pa.concat_tables(tables["hourly"]), pa.concat_tables(tables["daily"])


def _slices(day_counts: list[tuple[date, int]]) -> list[tuple[date, int, int]]:
    """Group consecutive days into slices: ``(first day, number of days, events)``.

    >>> d = date(2024, 6, 1)
    >>> _slices([(d, 3), (d + timedelta(1), 2), (d + timedelta(5), 1)])
    [(datetime.date(2024, 6, 1), 2, 5), (datetime.date(2024, 6, 6), 1, 1)]
    """
    out: list[tuple[date, int, int]] = []
    for day, count in day_counts:
        if out:
            first, n_days, events = out[-1]
            if (first + timedelta(n_days) == day and events + count <= SLICE_EVENTS
                    and count <= MAX_DAY_EVENTS):
                out[-1] = (first, n_days + 1, events + count)
                continue
        out.append((day, 1, count))
    return out


def aggregate_dirty(con: Any, lo: date, hi: date) -> list[date]:
    """Insert the activity of the ``_dirty`` days between ``lo`` and ``hi``.

    Returns the days left for the SQL formulation (too big for memory, or too wide).
    """
    day_counts = con.execute(
        """SELECT CAST(ts AS DATE) AS day, count(*) FROM event_rows
           WHERE ts >= CAST(? AS TIMESTAMP) AND ts < CAST(? AS TIMESTAMP) + INTERVAL 1 DAY
             AND CAST(ts AS DATE) IN (SELECT day FROM _dirty)
           GROUP BY ALL ORDER BY day""", [lo, hi]).fetchall()
    names = dict(con.execute("SELECT id, text FROM names WHERE kind = 'sensor'").fetchall())
    left: list[date] = []
    hourly: list[pa.Table] = []
    daily: list[pa.Table] = []
    for first, n_days, events in _slices(day_counts):
        if events > MAX_DAY_EVENTS:
            left.extend(first + timedelta(i) for i in range(n_days))
            continue
        table = con.sql(_FETCH, params=[(first - _EPOCH).days * 24, first,
                                        first + timedelta(n_days)]).to_arrow_table()
        part = _Slice(table, n_days)
        del table
        try:
            h, d = _rows(part, _scopes(part), first, names)
        except TooWide:
            left.extend(first + timedelta(i) for i in range(n_days))
            continue
        hourly.append(h)
        daily.append(d)
    # one insert per table: whole row groups, nothing for the next checkpoint to rewrite
    for name, parts in (("port_activity_hourly", hourly), ("port_activity_daily", daily)):
        if not parts:
            continue
        con.register("_activity_rows", pa.concat_tables(parts).combine_chunks())
        try:
            con.execute(f"INSERT INTO {name} SELECT * FROM _activity_rows")
        finally:
            con.unregister("_activity_rows")
    return left
