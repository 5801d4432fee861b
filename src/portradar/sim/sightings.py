"""Sightings: the simulator's unit of truth, one scanner seen by one sensor on one port
on one day, with how many probes it sent.

Everything the simulator outputs is derived from this table: per-port activity matrices
(:func:`to_matrices`, what ``portradar evaluate spikes`` scores), event batches and
firewall log lines (:mod:`portradar.sim.events`).  Keeping scanners' identities is what
makes distinct-source counts, the all-sensors union and *new* sources (not seen on the
port in the previous N days) exact rather than approximated.

Rows are ``proto_index * 65536 + port`` with protocol index 0 = TCP, 1 = UDP.

>>> s = Sightings.concat([Sightings.from_arrays(scanner=[1, 1, 2], row=[445, 445, 445],
...                                            day=[0, 1, 1], sensor=[0, 0, 1],
...                                            records=[3, 1, 2])])
>>> total, by_sensor = to_matrices(s, days=2, sensors=("a", "b"), start=_EPOCH, sensor_min=1)
>>> total.sources[total.rows_of(6, 445)[0]].tolist(), by_sensor.sources.tolist()
([1, 2], [[1, 1], [0, 1]])
>>> total.new_sources[445].tolist(), total.records[445].tolist()
([1, 1], [3, 3])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from portradar.spikes.activity_matrix import ActivityMatrix

#: Protocols of the simulated rows, by protocol index.
PROTOS: tuple[int, ...] = (6, 17)
N_ROWS = 65536 * len(PROTOS)

#: New sources: not seen on the port in this many previous days (DShield's 30-day window).
NEW_SOURCE_DAYS = 30

_EPOCH = datetime(2005, 6, 6, tzinfo=UTC)


def row_of(proto: int, port: int) -> int:
    """The simulator row of a protocol and port.

    >>> row_of(6, 445), row_of(17, 53)
    (445, 65589)
    """
    return PROTOS.index(proto) * 65536 + port


@dataclass
class Sightings:
    """Columns of sightings; ``hour0``/``hours`` bound the time of day of the probes."""

    scanner: np.ndarray  # int64 identity (source address is derived from it)
    row: np.ndarray  # int32
    day: np.ndarray  # int32
    sensor: np.ndarray  # int32
    records: np.ndarray  # int64
    hour0: np.ndarray  # float32: first hour of the day the scanner may probe
    hours: np.ndarray  # float32: hours it probes for
    prior: np.ndarray  # bool: seen on this port shortly before day 0 (not new then)

    @classmethod
    def from_arrays(cls, *, scanner: Any, row: Any, day: Any, sensor: Any, records: Any,
                    hour0: Any = None, hours: Any = None, prior: Any = None) -> Sightings:
        n = len(scanner)
        return cls(
            scanner=np.asarray(scanner, np.int64), row=np.asarray(row, np.int32),
            day=np.asarray(day, np.int32), sensor=np.asarray(sensor, np.int32),
            records=np.asarray(records, np.int64),
            hour0=np.zeros(n, np.float32) if hour0 is None else np.asarray(hour0, np.float32),
            hours=np.full(n, 24.0, np.float32) if hours is None else np.asarray(hours,
                                                                             np.float32),
            prior=np.zeros(n, bool) if prior is None else np.asarray(prior, bool),
        )

    @classmethod
    def concat(cls, parts: Sequence[Sightings]) -> Sightings:
        if not parts:
            return cls.from_arrays(scanner=[], row=[], day=[], sensor=[], records=[])
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in (
            "scanner", "row", "day", "sensor", "records", "hour0", "hours", "prior")))

    def __len__(self) -> int:
        return len(self.scanner)

    def take(self, mask: np.ndarray) -> Sightings:
        return Sightings(*(getattr(self, f)[mask] for f in (
            "scanner", "row", "day", "sensor", "records", "hour0", "hours", "prior")))


def _new_flags(group: np.ndarray, scanner: np.ndarray, day: np.ndarray,
               prior: np.ndarray, lookback: int) -> np.ndarray:
    """True where (group, scanner) was not seen in the ``lookback`` days before ``day``.

    Input must be unique per (group, scanner, day).
    """
    order = np.lexsort((day, scanner, group))
    g, s, d, p = group[order], scanner[order], day[order], prior[order]
    same = np.zeros(len(g), bool)
    same[1:] = (g[1:] == g[:-1]) & (s[1:] == s[:-1])
    gap = np.empty(len(g), np.int64)
    gap[0] = 0
    gap[1:] = d[1:] - d[:-1]
    new_sorted = ~(same & (gap <= lookback))
    # the first sighting of a scanner alive just before day 0 is not new
    first = ~same
    new_sorted &= ~(first & p & (d < lookback))
    out = np.empty(len(g), bool)
    out[order] = new_sorted
    return out


def to_matrices(s: Sightings, *, days: int, sensors: Sequence[str], start: datetime,
                block_size: int = 32, sensor_min: int = 3,
                lookback: int = NEW_SOURCE_DAYS) -> tuple[ActivityMatrix, ActivityMatrix]:
    """Daily activity for all sensors together (every protocol and port) and per sensor.

    The per-sensor matrix keeps only (sensor, port) rows whose daily distinct sources
    reach ``sensor_min`` some day (the rest could not show a rise; dropping them keeps
    20 sensors × 131,072 ports in memory).  Distinct targets are the expected number
    of the sensor's ``block_size`` addresses hit by that many probes.
    """
    n_sensors = len(sensors)
    # -- all sensors: one entry per (row, scanner, day) --------------------------------
    if len(s) and (int(s.scanner.max()) >= 1 << 36 or days > 1024):
        raise ValueError("at most 2**36 scanners and 1024 days")
    key = (s.row.astype(np.int64) << 46) | (s.scanner << 10) | s.day
    uniq, first_idx, inverse = np.unique(key, return_index=True, return_inverse=True)
    rec_total = np.bincount(inverse, weights=s.records, minlength=len(uniq))
    u_row = s.row[first_idx].astype(np.int64)
    u_day = s.day[first_idx].astype(np.int64)
    u_scn = s.scanner[first_idx]
    u_new = _new_flags(u_row, u_scn, u_day, s.prior[first_idx], lookback)
    cell = u_row * days + u_day
    size = N_ROWS * days
    total_sources = np.bincount(cell, minlength=size).reshape(N_ROWS, days)
    total_new = np.bincount(cell, weights=u_new, minlength=size).reshape(N_ROWS, days)
    total_records = np.bincount(cell, weights=rec_total, minlength=size).reshape(N_ROWS,
                                                                                  days)
    # -- per sensor ----------------------------------------------------------------
    s_key = (s.sensor.astype(np.int64) * N_ROWS + s.row) * days + s.day
    s_new = _new_flags(s.sensor.astype(np.int64) * N_ROWS + s.row, s.scanner,
                       s.day.astype(np.int64), s.prior, lookback)
    cells, c_inv = np.unique(s_key, return_inverse=True)
    c_sources = np.bincount(c_inv, minlength=len(cells))
    c_new = np.bincount(c_inv, weights=s_new, minlength=len(cells))
    c_records = np.bincount(c_inv, weights=s.records, minlength=len(cells))
    c_series = cells // days
    c_day = cells % days
    c_targets = block_size * (1.0 - np.exp(-c_records / block_size))
    # '*' targets: the sensors' blocks are disjoint, so targets add up
    total_targets = np.bincount((c_series % N_ROWS) * days + c_day, weights=c_targets,
                                minlength=size).reshape(N_ROWS, days)
    series, s_inv = np.unique(c_series, return_inverse=True)
    peak = np.zeros(len(series), np.int64)
    np.maximum.at(peak, s_inv, c_sources)
    keep = peak >= sensor_min
    new_index = np.cumsum(keep) - 1
    sel = keep[s_inv]
    rows_kept = series[keep]
    shape = (len(rows_kept), days)

    def dense(values: np.ndarray, dtype: Any) -> np.ndarray:
        out = np.zeros(shape, dtype)
        out[new_index[s_inv[sel]], c_day[sel]] = values[sel]
        return out

    by_sensor = ActivityMatrix(
        period="day", start=start,
        proto=np.asarray(PROTOS, np.uint8)[(rows_kept % N_ROWS) // 65536],
        port=((rows_kept % N_ROWS) % 65536).astype(np.int32),
        sensor=(rows_kept // N_ROWS).astype(np.int32),
        sources=dense(c_sources, np.int32), records=dense(c_records, np.int64),
        new_sources=dense(c_new, np.int32),
        targets=np.rint(dense(c_targets, np.float64)).astype(np.int32),
        sensors=tuple(sensors),
    )
    all_rows = np.arange(N_ROWS)
    total = ActivityMatrix(
        period="day", start=start,
        proto=np.asarray(PROTOS, np.uint8)[all_rows // 65536],
        port=(all_rows % 65536).astype(np.int32),
        sensor=np.full(N_ROWS, -1, np.int32),
        sources=total_sources.astype(np.int32), records=total_records.astype(np.int64),
        new_sources=total_new.astype(np.int32),
        targets=np.rint(total_targets).astype(np.int32), sensors=tuple(sensors),
    )
    del n_sensors
    return total, by_sensor
