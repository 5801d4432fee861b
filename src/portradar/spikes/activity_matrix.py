"""Per-port activity as matrices: one row per (sensor, protocol, port), one column per bucket.

Every spike detector reads this shape, whether it comes from the store's
``port_activity_hourly`` / ``port_activity_daily`` tables (:func:`from_store`) or
straight from the simulator, so the code scored in ``portradar evaluate spikes`` is the
code that runs on real data.  Columns are zero-filled buckets (no row in the store means
nothing was seen), rows are whatever the store or simulator has.

Row ``sensor`` is an index into :attr:`ActivityMatrix.sensors`, or ``-1`` for all
sensors together (the store's ``'*'``: distinct counts over every sensor, which do not
add up from the per-sensor rows).

>>> m = ActivityMatrix.empty("day", datetime(2005, 6, 1, tzinfo=UTC), 3,
...                          proto=[6], port=[445])
>>> m.sources.shape, m.bucket_label(2), m.first_weekday
((1, 3), '2005-06-03', 2)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portradar.errors import PortradarError

#: Seconds per bucket of each period.
PERIOD_SECONDS = {"hour": 3600, "day": 86400}


@dataclass
class ActivityMatrix:
    """Counts per row and bucket; ``new_sources`` and ``targets`` may be absent."""

    period: str
    start: datetime
    proto: np.ndarray
    port: np.ndarray
    sensor: np.ndarray
    sources: np.ndarray
    records: np.ndarray
    new_sources: np.ndarray | None = None
    targets: np.ndarray | None = None
    sensors: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def empty(cls, period: str, start: datetime, buckets: int, *, proto: Any, port: Any,
              sensor: Any = None, sensors: tuple[str, ...] = (),
              dtype: Any = np.int32) -> ActivityMatrix:
        proto = np.asarray(proto, np.uint8)
        n = len(proto)
        sensor_arr = np.full(n, -1, np.int32) if sensor is None else np.asarray(sensor,
                                                                               np.int32)
        return cls(period=period, start=start, proto=proto, port=np.asarray(port, np.int32),
                   sensor=sensor_arr, sources=np.zeros((n, buckets), dtype),
                   records=np.zeros((n, buckets), dtype),
                   new_sources=np.zeros((n, buckets), dtype),
                   targets=np.zeros((n, buckets), dtype), sensors=sensors)

    # -- shape and time ------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return int(self.sources.shape[0])

    @property
    def n_buckets(self) -> int:
        return int(self.sources.shape[1])

    @property
    def bucket_seconds(self) -> int:
        return PERIOD_SECONDS[self.period]

    @property
    def buckets_per_day(self) -> int:
        return 86400 // self.bucket_seconds

    @property
    def first_weekday(self) -> int:
        """Weekday of bucket 0 (Monday = 0)."""
        return self.start.weekday()

    def bucket_time(self, index: int) -> datetime:
        return self.start + timedelta(seconds=self.bucket_seconds * int(index))

    def bucket_label(self, index: int | None) -> str | None:
        """ISO date (daily) or ``YYYY-MM-DD HH:00`` (hourly) of a bucket."""
        if index is None or index < 0:
            return None
        when = self.bucket_time(index)
        return when.date().isoformat() if self.period == "day" else when.strftime(
            "%Y-%m-%d %H:00")

    def bucket_index(self, when: datetime | date) -> int:
        if not isinstance(when, datetime):
            when = datetime(when.year, when.month, when.day, tzinfo=UTC)
        return int((when - self.start).total_seconds() // self.bucket_seconds)

    def sensor_name(self, row: int) -> str:
        code = int(self.sensor[row])
        return "*" if code < 0 else self.sensors[code]

    # -- selection -----------------------------------------------------------------
    def take(self, rows: np.ndarray) -> ActivityMatrix:
        """The given rows only (same buckets)."""
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]
        return replace(self, proto=self.proto[rows], port=self.port[rows],
                       sensor=self.sensor[rows], sources=self.sources[rows],
                       records=self.records[rows], new_sources=pick(self.new_sources),
                       targets=pick(self.targets))

    def rows_of(self, proto: int, port: int) -> np.ndarray:
        return np.flatnonzero((self.proto == proto) & (self.port == port))

    def row_keys(self) -> np.ndarray:
        """``proto * 65536 + port`` per row (-1 ports map below zero, never collide)."""
        return self.proto.astype(np.int64) * 65536 + self.port.astype(np.int64)


def from_store(store: Any, *, period: str = "day", scope: str = "all",
               proto: int | None = None, port: int | None = None,
               since: datetime | date | None = None,
               until: datetime | date | None = None,
               busy: tuple[float, float] | None = None,
               keep: Iterable[tuple[int, int]] = ()) -> ActivityMatrix:
    """Read per-port activity from the store into a matrix.

    ``scope`` is ``"all"`` (the ``'*'`` rows), ``"sensors"`` (one row per sensor and
    port) or a sensor name.  New sources come from
    :mod:`portradar.activity.new_sources` when it has them.

    ``busy`` (``(sources, records)``) keeps only the rows that reach either count in
    some bucket (what :meth:`~portradar.spikes.spike_detector.SpikeDetector.candidate_rows`
    would pick), plus every row of the ``keep`` ``(proto, port)``; the sensor names
    stay those of every row.  The per-sensor daily matrix of 30 days of 20 sensors has
    96,000 rows, of which 760 can alarm or belong to a spiking port.
    """
    from portradar.activity import new_sources as ns

    if period not in PERIOD_SECONDS:
        raise PortradarError(f"unknown period {period!r} (use day or hour)")
    store.refresh_activity()
    if not store.read_only:
        ns.sync(store)
    table = "port_activity_hourly" if period == "hour" else "port_activity_daily"
    where = []
    params: list[Any] = []
    if scope == "all":
        where.append("a.sensor = '*'")
    elif scope == "sensors":
        where.append("a.sensor <> '*'")
    else:
        where.append("a.sensor = ?")
        params.append(scope)
    if proto is not None:
        where.append("a.proto = ?")
        params.append(int(proto))
    if port is not None:
        where.append("a.port = ?")
        params.append(int(port))
    if since is not None:
        where.append("a.bucket >= ?")
        params.append(since)
    if until is not None:
        where.append("a.bucket < ?")
        params.append(until)
    has_new = ns.table_exists(store, period)
    new_col = "coalesce(n.new_sources, 0)" if has_new else "0"
    join = (f"LEFT JOIN {ns.table_name(period)} n USING (bucket, sensor, proto, port)"
            if has_new else "")
    names: tuple[str, ...] | None = None
    select_params = params
    if busy is not None:
        names = tuple(sorted(s for (s,) in store.con.execute(
            f"SELECT DISTINCT a.sensor FROM {table} a WHERE {' AND '.join(where)}",
            params).fetchall() if s != "*"))
        keys = sorted({int(pr) * 65536 + int(po) for pr, po in keep})
        where = [*where, f"""((a.sensor, a.proto, a.port) IN (
                    SELECT a.sensor, a.proto, a.port FROM {table} a
                    WHERE {' AND '.join(where)} AND (a.sources >= ? OR a.records >= ?))
                 OR list_contains(?, a.proto::INTEGER * 65536 + a.port::INTEGER))"""]
        select_params = [*params, *params, float(busy[0]), float(busy[1]), keys]
    sql = f"""SELECT epoch(a.bucket)::BIGINT AS t, a.sensor, a.proto, a.port, a.records,
                     a.sources, a.targets, {new_col} AS new_sources
              FROM {table} a {join}
              WHERE {' AND '.join(where)}"""
    tbl = store.query(sql, select_params)
    start_row = store.query(f"SELECT min(epoch(bucket))::BIGINT, max(epoch(bucket))::BIGINT "
                            f"FROM {table}").to_pylist()[0]
    step = PERIOD_SECONDS[period]
    values = list(start_row.values())
    lo, hi = values[0], values[1]
    if since is not None and lo is not None:
        lo = max(lo, int(_as_datetime(since).timestamp()))
    if until is not None and hi is not None:
        hi = min(hi, int(_as_datetime(until).timestamp()) - step)
    if lo is None or hi is None or hi < lo:
        start = _as_datetime(since) if since is not None else datetime(1970, 1, 1, tzinfo=UTC)
        return ActivityMatrix.empty(period, start, 0, proto=[], port=[])
    return from_rows(tbl, period=period, lo=lo, hi=hi, has_new=has_new, sensors=names)


def from_rows(tbl: Any, *, period: str, lo: int, hi: int, has_new: bool,
              sensors: tuple[str, ...] | None = None) -> ActivityMatrix:
    """A matrix from activity rows (``t`` epoch seconds of the bucket, ``sensor``,
    ``proto``, ``port``, ``records``, ``sources``, ``targets``, ``new_sources``: an
    Arrow table) over the buckets from ``lo`` to ``hi`` (epoch seconds, inclusive).

    ``sensors`` fixes the sensor names (default: those in the rows); the Spark job
    builds one port's matrix at a time and gives the names of the whole store.
    """
    step = PERIOD_SECONDS[period]
    start = datetime.fromtimestamp(lo, tz=UTC)
    n_buckets = (hi - lo) // step + 1
    t = tbl.column("t").to_numpy()
    # sensor codes by Arrow (no Python object per row): the distinct names sorted, '*'
    # at -1, each row's name looked up in them
    sensor_col = pa.chunked_array(tbl.column("sensor"))
    if sensors is None:
        distinct = pc.unique(sensor_col).to_pylist()
        names = sorted(s for s in distinct if s is not None and s != "*")
    else:
        names = list(sensors)
    index = pc.index_in(sensor_col, value_set=pa.array(["*", *names], pa.string()))
    if index.null_count:
        missing = pc.filter(sensor_col, pc.is_null(index)).unique().to_pylist()[:3]
        raise KeyError(f"sensor(s) not among the names given: {missing}")
    sensor_codes = index.to_numpy().astype(np.int64) - 1
    protos = tbl.column("proto").to_numpy().astype(np.int64)
    ports = tbl.column("port").to_numpy().astype(np.int64)
    key = (sensor_codes + 1) * (256 * 131072) + protos * 131072 + (ports + 1)
    keys, row = np.unique(key, return_inverse=True)
    col = (t - lo) // step
    n_rows = len(keys)
    shape = (n_rows, int(n_buckets))
    flat = row * int(n_buckets) + col

    def scatter(name: str) -> np.ndarray:
        out = np.zeros(shape, np.int64)
        out.ravel()[flat] = tbl.column(name).to_numpy()
        return out

    return ActivityMatrix(
        period=period, start=start,
        proto=((keys // 131072) % 256).astype(np.uint8),
        port=((keys % 131072) - 1).astype(np.int32),
        sensor=(keys // (256 * 131072) - 1).astype(np.int32),
        sources=scatter("sources"), records=scatter("records"),
        new_sources=scatter("new_sources") if has_new else None,
        targets=scatter("targets"), sensors=tuple(names),
    )


def _as_datetime(when: datetime | date) -> datetime:
    if isinstance(when, datetime):
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return datetime(when.year, when.month, when.day, tzinfo=UTC)


#: ``proto * ROW_KEY + port + 1``: the key of an all-sensors row (ports from -1).
ROW_KEY = 131072
#: The fields a :class:`LiveMatrix` cell update may carry.
CELL_FIELDS: tuple[str, ...] = ("records", "sources", "targets", "new_sources")


class LiveMatrix:
    """The all-sensors matrix of the rows that can alarm, kept between detection rounds.

    :func:`from_store` rebuilds the whole matrix (every port, every bucket) from the
    store: ``portradar watch`` measured 0.4 s a round for that alone at 21 days of
    hourly buckets.  This keeps the rows that reach ``busy`` (``(sources, records)``,
    the detector's own minimum excess: the only rows
    :meth:`~portradar.spikes.spike_detector.SpikeDetector.candidate_rows` can pick, so
    the spikes are the same) and lets the caller write changed cells only
    (:meth:`update`).  A row that turns busy is reported; its history is read from the
    store (:meth:`history_sql`) and added (:meth:`add_rows`).  The bucket range grows
    with the cells, as :func:`from_store`'s follows the store's oldest and newest bucket.

    >>> live = LiveMatrix("hour", busy=(10, 3000))
    >>> cells = {"t": np.array([0, 3600]), "proto": np.array([6, 6]),
    ...          "port": np.array([445, 23]), "sources": np.array([12, 3]),
    ...          "records": np.array([12, 3])}
    >>> live.update(cells).tolist()    # 445 is busy and new: the caller adds its history
    [786878]
    >>> live.add_rows({k: v[:1] for k, v in cells.items()})   # its history: that cell
    >>> m = live.matrix
    >>> m.port.tolist(), m.sources.tolist(), m.bucket_label(1)
    ([445], [[12, 0]], '1970-01-01 01:00')
    """

    def __init__(self, period: str, busy: tuple[float, float]) -> None:
        if period not in PERIOD_SECONDS:
            raise PortradarError(f"unknown period {period!r} (use day or hour)")
        self.period = period
        self.busy = busy
        self.step = PERIOD_SECONDS[period]
        self.lo: int | None = None  # epoch seconds of bucket 0
        self.keys = np.zeros(0, np.int64)  # sorted row keys
        self.data = {f: np.zeros((0, 0), np.int64) for f in CELL_FIELDS}

    @classmethod
    def from_matrix(cls, m: ActivityMatrix, busy: tuple[float, float]) -> LiveMatrix:
        """Start from a matrix read by :func:`from_store` (with ``busy``)."""
        live = cls(m.period, busy)
        if m.n_buckets:
            live.lo = int(m.start.timestamp())
            live.keys = m.proto.astype(np.int64) * ROW_KEY + m.port.astype(np.int64) + 1
            order = np.argsort(live.keys, kind="stable")
            live.keys = live.keys[order]
            for f in CELL_FIELDS:
                a = getattr(m, f)
                live.data[f] = (np.zeros(m.sources.shape, np.int64) if a is None
                                else np.asarray(a, np.int64)[order])
        return live

    @property
    def n_buckets(self) -> int:
        return int(self.data["sources"].shape[1])

    @property
    def matrix(self) -> ActivityMatrix:
        start = datetime.fromtimestamp(self.lo or 0, tz=UTC)
        return ActivityMatrix(
            period=self.period, start=start, proto=(self.keys // ROW_KEY).astype(np.uint8),
            port=(self.keys % ROW_KEY - 1).astype(np.int32),
            sensor=np.full(len(self.keys), -1, np.int32), sources=self.data["sources"],
            records=self.data["records"], new_sources=self.data["new_sources"],
            targets=self.data["targets"])

    def _span(self, t: np.ndarray) -> None:
        """Grow the bucket range to cover ``t`` (epoch seconds of buckets)."""
        lo = int(t.min()) - int(t.min()) % self.step
        hi = int(t.max()) - int(t.max()) % self.step
        old_lo = self.lo if self.lo is not None else lo
        new_lo = min(old_lo, lo)
        old_n = self.n_buckets
        new_n = max(old_n and (old_lo - new_lo) // self.step + old_n,
                    (hi - new_lo) // self.step + 1)
        if new_lo == old_lo and new_n == old_n and self.lo is not None:
            return
        shift = (old_lo - new_lo) // self.step
        for f, a in self.data.items():
            grown = np.zeros((len(self.keys), new_n), np.int64)
            grown[:, shift:shift + old_n] = a
            self.data[f] = grown
        self.lo = new_lo

    def update(self, cells: dict[str, np.ndarray]) -> np.ndarray:
        """Write cells (``t``, ``proto``, ``port`` and any of :data:`CELL_FIELDS`) of the
        rows held; returns the keys of rows not held that the cells make busy."""
        t = np.asarray(cells["t"], np.int64)
        if t.size == 0:
            return np.zeros(0, np.int64)
        self._span(t)
        key = (np.asarray(cells["proto"], np.int64) * ROW_KEY
               + np.asarray(cells["port"], np.int64) + 1)
        pos = np.searchsorted(self.keys, key)
        held = np.zeros(key.size, bool)
        inside = pos < self.keys.size
        held[inside] = self.keys[pos[inside]] == key[inside]
        assert self.lo is not None
        col = (t - self.lo) // self.step
        for f in CELL_FIELDS:
            if f in cells:
                self.data[f][pos[held], col[held]] = np.asarray(cells[f], np.int64)[held]
        busy = np.zeros(key.size, bool)
        if "sources" in cells:
            busy |= np.asarray(cells["sources"]) >= self.busy[0]
        if "records" in cells:
            busy |= np.asarray(cells["records"]) >= self.busy[1]
        return np.unique(key[busy & ~held])

    def add_rows(self, cells: dict[str, np.ndarray]) -> None:
        """Add the rows of ``cells`` not held yet (zero elsewhere), then write the cells."""
        key = (np.asarray(cells["proto"], np.int64) * ROW_KEY
               + np.asarray(cells["port"], np.int64) + 1)
        new = np.setdiff1d(np.unique(key), self.keys)
        if new.size:
            self._span(np.asarray(cells["t"], np.int64))
            pos = np.searchsorted(self.keys, new)
            self.keys = np.insert(self.keys, pos, new)
            for f, a in self.data.items():
                self.data[f] = np.insert(a, pos, 0, axis=0)
        self.update(cells)

    def history_sql(self, keys: np.ndarray, has_new: bool) -> tuple[str, list[Any]]:
        """The store's all-sensor rows of the given row keys, as cells (SQL, params)."""
        table = "port_activity_hourly" if self.period == "hour" else "port_activity_daily"
        from portradar.activity import new_sources as ns

        new_col = "coalesce(n.new_sources, 0)" if has_new else "0"
        join = (f"LEFT JOIN {ns.table_name(self.period)} n USING (bucket, sensor, proto, port)"
                if has_new else "")
        return (f"""SELECT epoch(a.bucket)::BIGINT AS t, a.proto::BIGINT AS proto,
                           a.port::BIGINT AS port, a.records::BIGINT AS records,
                           a.sources::BIGINT AS sources, a.targets::BIGINT AS targets,
                           {new_col}::BIGINT AS new_sources
                    FROM {table} a {join}
                    WHERE a.sensor = '*' AND list_contains(
                        ?, a.proto::BIGINT * {ROW_KEY} + a.port::BIGINT + 1)""",
                [keys.astype(np.int64).tolist()])
