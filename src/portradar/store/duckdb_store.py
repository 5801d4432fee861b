"""The embedded store: one DuckDB file holding events, the ingest ledger and activity.

Guarantees the rest of portradar relies on:

* **Atomic chunks.**  Events, the ledger position and the "activity is dirty" marks
  are written in one transaction; Ctrl-C or a crash mid-chunk leaves the store as it
  was before that chunk (DuckDB's write-ahead log does the rest).
* **Activity never silently stale.**  Per-port aggregates are recomputed from raw
  events for the days marked dirty, at the end of an ingest and before any view
  reads them (:meth:`Store.refresh_activity`).
* **Event time only.**  Retention and every aggregate use the events' own time,
  never the wall clock, so a replay gives the same answers.

>>> from portradar.events.schema import make_batch
>>> with Store.open(":memory:") as store:
...     with store.transaction():
...         _ = store.append_events(make_batch({"ts": [3_600_000_000], "src_lo": [1],
...                                         "dst_lo": [2], "proto": [6], "dport": [445]}),
...                             input_id=1)
...     _ = store.refresh_activity()
...     store.con.execute("select sensor, port, records, sources from port_activity_hourly "
...                       "order by sensor").fetchall()
[('*', 445, 1, 1), ('default', 445, 1, 1)]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from portradar.errors import StoreError
from portradar.events.schema import SCHEMA_VERSION, Outcome
from portradar.store.activity_aggregate import aggregate_dirty

#: Default store file, in the working directory.
DEFAULT_DB = "portradar.duckdb"

#: Event-schema columns stored as they are; the dictionary columns become ids.
_PLAIN_COLUMNS = (
    "ts", "src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "sport", "dport", "tcp_flags",
    "icmp_type", "icmp_code", "packets", "bytes", "ttl", "ip_id", "tcp_window", "tcp_seq",
)
_NAMED_COLUMNS = (("sensor", "sensor"), ("rule", "rule"), ("in_iface", "iface"),
                  ("out_iface", "iface"))


#: Extra per-day computations run inside :meth:`Store.refresh_activity`'s transaction,
#: after the port activity tables: ``refresher(store, first_day, last_day)`` with the
#: temp table ``_dirty(day DATE)`` in scope (every sensor of a dirty day is recomputed).
#: Features that keep their own per-bucket state (sketches, new-source counts) add
#: themselves here at import time.
ACTIVITY_REFRESHERS: list[Callable[[Store, Any, Any], None]] = []


def first_row(cursor: duckdb.DuckDBPyConnection) -> Any:
    """The first row of a query (None when there is none), with the result consumed.

    DuckDB 2 refuses a new query while a result is still open, so never ``fetchone``.
    """
    rows = cursor.fetchall()
    return rows[0] if rows else None


def _sql(name: str) -> str:
    return files("portradar.store").joinpath(name).read_text()


class Store:
    """A DuckDB connection with portradar's schema and write discipline."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only
        self._in_transaction = False

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path = DEFAULT_DB, *, read_only: bool = False) -> Store:
        """Open (creating when writable) the store at ``path`` (``:memory:`` for tests)."""
        text = str(path)
        if read_only and text != ":memory:" and not Path(text).exists():
            raise StoreError(f"{text}: no store here yet; run 'portradar ingest' first")
        try:
            con = duckdb.connect(text, read_only=read_only and text != ":memory:")
        except duckdb.IOException as exc:
            raise StoreError(f"{text}: cannot open the store ({_first_line(exc)})") from exc
        except duckdb.Error as exc:
            raise StoreError(f"{text}: not a portradar store ({_first_line(exc)})") from exc
        store = cls(con, text, read_only)
        try:
            con.execute("SET TimeZone = 'UTC'")
            if not store.read_only:
                store._migrate()
            con.execute(_sql("macros.sql"))
        except duckdb.Error as exc:
            con.close()
            raise StoreError(f"{text}: cannot prepare the store ({_first_line(exc)})") from exc
        return store

    def _migrate(self) -> None:
        self.con.execute(_sql("schema.sql"))
        if not first_row(self.con.execute("SELECT count(*) FROM outcomes"))[0]:
            self.con.executemany("INSERT INTO outcomes VALUES (?, ?)",
                                 [(int(o), o.label) for o in Outcome])
        row = first_row(self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'"))
        if row is None:
            self.con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        elif int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer portradar (schema {row[0]}, "
                f"this one knows {SCHEMA_VERSION}); upgrade portradar"
            )

    def second_connection(self) -> Store:
        """The same store on a new connection, for work on another thread.

        DuckDB connections are not shared between threads; transactions on the two see
        each other's committed data (MVCC).  Close it before this one.
        """
        con = self.con.cursor()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(_sql("macros.sql"))
        return type(self)(con, self.path, self.read_only)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """Whether a :meth:`transaction` is open (a nested one joins it)."""
        return self._in_transaction

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing, including on KeyboardInterrupt."""
        if self._in_transaction:
            yield
            return
        self.con.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._in_transaction = False
            with contextlib.suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
            raise
        self._in_transaction = False
        self.con.execute("COMMIT")

    def name_ids(self, kind: str, texts: list[str | None]) -> list[int | None]:
        """Ids of names of one kind (sensor, rule, iface), creating the missing ones."""
        wanted = sorted({t for t in texts if t is not None})
        known: dict[str, int] = {}
        if wanted:
            known = dict(self.con.execute(
                "SELECT text, id FROM names WHERE kind = ? AND list_contains(?, text)",
                [kind, wanted]).fetchall())
            missing = [t for t in wanted if t not in known]
            if missing:
                (top,) = first_row(self.con.execute(
                    "SELECT coalesce(max(id), 0) FROM names WHERE kind = ?", [kind]))
                new = {t: top + 1 + i for i, t in enumerate(missing)}
                self.con.executemany("INSERT INTO names VALUES (?, ?, ?)",
                                     [(kind, i, t) for t, i in new.items()])
                known.update(new)
        return [known[t] if t is not None else None for t in texts]

    def sensor_names(self) -> list[str]:
        """The names of the sensors the store has events of, sorted."""
        return [text for (text,) in self.con.execute(
            "SELECT text FROM names WHERE kind = 'sensor' ORDER BY text").fetchall()]

    def _stored_columns(self, batch: pa.RecordBatch) -> pa.Table:
        """One event batch with names and outcomes as the integer ids ``event_rows`` holds."""
        columns = {name: batch.column(name) for name in _PLAIN_COLUMNS}
        for name, kind in _NAMED_COLUMNS:
            arr = batch.column(name)
            ids = self.name_ids(kind, arr.dictionary.to_pylist())
            columns[f"{name}_id"] = pc.take(pa.array(ids, pa.int32()), arr.indices)
        outcome = batch.column("outcome")
        codes = [int(Outcome[label.upper()]) for label in outcome.dictionary.to_pylist()]
        columns["outcome"] = pc.take(pa.array(codes, pa.uint8()), outcome.indices)
        return pa.table(columns)

    def append_events(self, batch: pa.RecordBatch | pa.Table | Sequence[pa.RecordBatch], *,
                      input_id: int) -> int:
        """Insert events and mark their days dirty; returns the number of rows.

        Several batches are inserted with one statement: DuckDB fills whole row groups
        then, instead of one partly filled row group per batch (which the next
        checkpoint rewrites).
        """
        if isinstance(batch, pa.Table):
            batches = batch.combine_chunks().to_batches()
        elif isinstance(batch, pa.RecordBatch):
            batches = [batch]
        else:
            batches = list(batch)
        batches = [b for b in batches if b.num_rows]
        if not batches:
            return 0
        # one contiguous table: DuckDB's parallel Arrow scan would otherwise leave a
        # partly filled row group per chunk (merged, at a cost, by the next checkpoint)
        incoming = pa.concat_tables([self._stored_columns(b) for b in batches])
        incoming = incoming.combine_chunks()
        self.con.register("_incoming", incoming)
        try:
            self.con.execute(
                """INSERT INTO event_rows
                   SELECT ts, sensor_id, src_hi, src_lo, dst_hi, dst_lo, proto, sport, dport,
                          tcp_flags, icmp_type, icmp_code, outcome, rule_id, in_iface_id,
                          out_iface_id, packets, bytes, ttl, ip_id, tcp_window, tcp_seq, ?
                   FROM _incoming""",
                [input_id],
            )
            self.con.execute(
                "INSERT INTO activity_dirty SELECT DISTINCT CAST(ts AS DATE) FROM _incoming"
            )
        finally:
            self.con.unregister("_incoming")
        return incoming.num_rows

    def refresh_activity(self, before: Any = None) -> int:
        """Recompute hourly and daily port activity for dirty days; returns days refreshed.

        ``before`` (a date) limits the work to the dirty days before it: the ingest
        pipeline refreshes the days a time-ordered log has finished with on a second
        connection while it goes on reading (see :meth:`second_connection`).
        """
        if self.read_only:
            return 0
        only = "" if before is None else "WHERE day < CAST(? AS DATE)"
        args = [] if before is None else [before]
        n = first_row(self.con.execute(f"SELECT count(*) FROM activity_dirty {only}", args))[0]
        if not n:
            return 0
        with self.transaction():
            # A dirty day is recomputed for every sensor: '*' (all sensors) needs them all.
            self.con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _dirty AS
                    SELECT DISTINCT day FROM activity_dirty {only}""", args
            )
            lo, hi = first_row(self.con.execute("SELECT min(day), max(day) FROM _dirty"))
            self.con.execute(
                """DELETE FROM port_activity_hourly WHERE CAST(bucket AS DATE) IN
                   (SELECT day FROM _dirty)"""
            )
            self.con.execute(
                "DELETE FROM port_activity_daily WHERE bucket IN (SELECT day FROM _dirty)"
            )
            self._aggregate_dirty(lo, hi)
            for refresher in ACTIVITY_REFRESHERS:
                refresher(self, lo, hi)
            # only the marks this refresh saw: days marked since stay dirty
            self.con.execute("DELETE FROM activity_dirty WHERE day IN (SELECT day FROM _dirty)")
            self.con.execute("DROP TABLE _dirty")
        return int(n)

    def _aggregate_dirty(self, lo: Any, hi: Any) -> None:
        """Exact per-port activity of the dirty days: numpy first, SQL for what is left.

        :func:`portradar.store.activity_aggregate.aggregate_dirty` counts with one sort per
        address side; days too big for memory (or keys too wide) come back and are
        counted by :meth:`_aggregate_dirty_sql`, which DuckDB can spill to disk.
        """
        left = aggregate_dirty(self.con, lo, hi)
        if not left:
            return
        con = self.con
        con.execute("CREATE OR REPLACE TEMP TABLE _dirty_all AS SELECT * FROM _dirty")
        con.execute("DELETE FROM _dirty")
        con.executemany("INSERT INTO _dirty VALUES (?)", [[day] for day in left])
        try:
            self._aggregate_dirty_sql(min(left), max(left))
        finally:
            con.execute("DELETE FROM _dirty")
            con.execute("INSERT INTO _dirty SELECT * FROM _dirty_all")
            con.execute("DROP TABLE _dirty_all")

    def _aggregate_dirty_sql(self, lo: Any, hi: Any) -> None:
        """Exact per-port records, sources and targets for the dirty days, four ways.

        Distinct counts do not add up across hours or sensors, so each scope (hour or
        day, per sensor or all sensors) counts its own distinct addresses.  The work is
        one pass over the events per side into the set of distinct (hour, sensor, port,
        address), then each scope counts from the next finer set.  An address is one
        UBIGINT key here: ``lo`` for IPv4-mapped and ``::/64`` addresses (exact), a
        63-bit hash with the top bit set for other IPv6 (a collision needs billions of
        distinct IPv6 sources).  Measured while writing this: several times faster than
        ``count(DISTINCT (hi, lo))`` per group.
        """
        con = self.con
        where = """ts >= CAST(? AS TIMESTAMP) AND ts < CAST(? AS TIMESTAMP) + INTERVAL 1 DAY
                   AND CAST(ts AS DATE) IN (SELECT day FROM _dirty)"""
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _n AS
                SELECT epoch_us(ts) // 3600000000 AS h, sensor_id AS sensor, proto,
                       activity_port(proto, dport, icmp_type) AS port, count(*) AS records,
                       sum(packets) AS packets
                FROM event_rows WHERE {where} GROUP BY ALL""",
            [lo, hi],
        )
        counts: dict[tuple[str, bool, str], str] = {}
        one_sensor = first_row(con.execute("SELECT count(DISTINCT sensor) <= 1 FROM _n"))[0]
        for side in ("src", "dst"):
            key = (f"CASE WHEN {side}_hi = 0 THEN {side}_lo "
                   f"ELSE hash({side}_hi, {side}_lo) | (1::UBIGINT << 63) END")
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _{side}_hs AS
                    SELECT DISTINCT epoch_us(ts) // 3600000000 AS h, sensor_id AS sensor, proto,
                           activity_port(proto, dport, icmp_type) AS port, {key} AS k
                    FROM event_rows WHERE {where}""",
                [lo, hi],
            )
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _{side}_ds AS
                    SELECT DISTINCT h // 24 AS d, sensor, proto, port, k FROM _{side}_hs"""
            )
            for unit, per_sensor, source in (("h", True, f"_{side}_hs"),
                                             ("d", True, f"_{side}_ds"),
                                             ("h", False, f"_{side}_hs"),
                                             ("d", False, f"_{side}_ds")):
                keys = f"{unit}, sensor, proto, port" if per_sensor else f"{unit}, proto, port"
                name = f"_{side}_count_{unit}{'s' if per_sensor else 'a'}"
                if not per_sensor and one_sensor:
                    # one sensor in these days: all sensors together are that sensor
                    con.execute(f"""CREATE OR REPLACE TEMP TABLE {name} AS
                                    SELECT {keys}, n FROM {counts[(side, True, unit)]}""")
                else:
                    rows = source if per_sensor else f"(SELECT DISTINCT {keys}, k FROM {source})"
                    con.execute(f"""CREATE OR REPLACE TEMP TABLE {name} AS
                                    SELECT {keys}, count(*) AS n FROM {rows} GROUP BY ALL""")
                counts[(side, per_sensor, unit)] = name
        bucket = {"h": "make_timestamp(h * 3600000000)",
                  "d": "CAST(make_timestamp(d * 86400000000) AS DATE)"}
        for table, unit in (("port_activity_hourly", "h"), ("port_activity_daily", "d")):
            for per_sensor in (True, False):
                keys = f"{unit}, sensor, proto, port" if per_sensor else f"{unit}, proto, port"
                grain = "h" if unit == "h" else "h // 24"
                group = (f"{grain} AS {unit}, sensor, proto, port" if per_sensor
                         else f"{grain} AS {unit}, proto, port")
                name = "nm.text" if per_sensor else "'*'"
                named = ("JOIN names nm ON nm.kind = 'sensor' AND nm.id = c.sensor"
                         if per_sensor else "")
                con.execute(
                    f"""INSERT INTO {table}
                        SELECT {bucket[unit]}, {name}, c.proto, c.port,
                               c.records, c.packets, s.n, t.n
                        FROM (SELECT {group}, sum(records) AS records, sum(packets) AS packets
                              FROM _n GROUP BY ALL) c
                        JOIN {counts[("src", per_sensor, unit)]} s USING ({keys})
                        JOIN {counts[("dst", per_sensor, unit)]} t USING ({keys})
                        {named}"""
                )
        temps = ["_n"] + [f"_{side}_{x}" for side in ("src", "dst") for x in ("hs", "ds")]
        for temp in temps + list(counts.values()):
            con.execute(f"DROP TABLE IF EXISTS {temp}")

    # -- settings --------------------------------------------------------------------
    def setting(self, key: str, default: str | None = None) -> str | None:
        row = first_row(self.con.execute("SELECT value FROM meta WHERE key = ?", [key]))
        return row[0] if row else default

    def set_setting(self, key: str, value: str) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value]
        )

    def apply_retention(self) -> int:
        """Delete raw events older than ``retention_days`` before the newest event.

        Aggregates of those days are kept.  Returns the number of events deleted.
        """
        days = int(self.setting("retention_days", "0") or 0)
        if days <= 0 or self.read_only:
            return 0
        newest = first_row(self.con.execute("SELECT max(ts) FROM event_rows"))[0]
        if newest is None:
            return 0
        self.refresh_activity()
        with self.transaction():
            n = first_row(self.con.execute(
                "SELECT count(*) FROM event_rows WHERE ts < CAST(? AS TIMESTAMP) - to_days(?)",
                [newest, days],
            ))[0]
            if n:
                self.con.execute(
                    "DELETE FROM event_rows WHERE ts < CAST(? AS TIMESTAMP) - to_days(?)",
                    [newest, days],
                )
                self.set_setting("events_purged_before", str(newest))
        return int(n)

    # -- reading ---------------------------------------------------------------------
    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run a read query and return an Arrow table."""
        try:
            return self.con.sql(sql, params=params or None).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"{self.path}: query failed ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
