"""New sources: per port, protocol, sensor and bucket, the sources not seen on that port
in the previous :data:`LOOKBACK_DAYS` days.

A botnet sweep or a worm brings sources a port has never seen; a loud regular scanner
does not.  The spike detector uses the share of new sources among a rise's excess to
tell "many new sources at once" from a rise of known sources.

Computed exactly from the raw events, hourly and daily, for every sensor and for all
sensors together (``'*'``: new to the whole deployment), into
``port_new_sources_hourly`` / ``port_new_sources_daily`` (only non-zero rows), on
demand: :func:`sync`, called by every reader before it looks, computes the days whose
activity changed since (it keeps the daily totals it was computed from).  A day's new
sources depend on the days before it, so the dirty days and the :data:`LOOKBACK_DAYS`
days after them that have activity are recomputed.  Not done during ingest: it would
slow ingest several times over.  Days whose raw events were removed
by retention keep the counts they had.

**Incremental.**  Recounting rescanned :data:`LOOKBACK_DAYS` days of raw events every
time (``portradar watch`` measured 15.2 s a round at 6 million stored events).  Now
``port_new_sources_last`` keeps, for every (sensor, proto, port, source) seen in the
lookback, the last hour it was seen before the *first unfolded day* (``port_new_sources_mark``);
a computation reads the raw events from that day on only, with the state rows of the
keys they contain standing in for the older history (``lag()`` needs only the latest
earlier hour of a key; for ``'*'`` the latest over the sensors).  Days are folded into
the state once the newest event is :data:`FOLD_HOURS` into a later day, so in steady
state a round reads the current day.  A stale day before the first unfolded day (a
late event, a back-fill, a first run) rebuilds the state from the
:data:`LOOKBACK_DAYS` days of raw events before it, then proceeds as before: the
results are those of a full recount (``tests/test_activity_new_sources.py``).

>>> from portradar.store import Store
>>> from portradar.events.schema import make_batch
>>> DAY = 86_400_000_000
>>> with Store.open(":memory:") as store:
...     with store.transaction():
...         _ = store.append_events(make_batch({"ts": [0, DAY, DAY, 40 * DAY],
...             "src_lo": [1, 1, 2, 1], "dst_lo": [9] * 4, "proto": [6] * 4,
...             "dport": [445] * 4}), input_id=1)
...     _ = store.refresh_activity()
...     _ = sync(store)
...     store.con.execute("SELECT CAST(bucket AS VARCHAR), new_sources FROM "
...                       "port_new_sources_daily WHERE sensor = '*' ORDER BY 1").fetchall()
[('1970-01-01', 1), ('1970-01-02', 1), ('1970-02-10', 1)]
"""

from __future__ import annotations

from datetime import date
from typing import Any

from portradar.store.duckdb_store import Store

#: A source is new on a port if not seen there in this many days (DShield's 30-day window).
LOOKBACK_DAYS = 30

_TABLES = {"hour": "port_new_sources_hourly", "day": "port_new_sources_daily"}
_BOOK = "port_new_sources_days"
#: Per (sensor id, proto, port, source key): the last hour it was seen before the
#: first unfolded day (:data:`_MARK`); keys older than the lookback are pruned.
_LAST = "port_new_sources_last"
_MARK = "port_new_sources_mark"
#: A day is folded into :data:`_LAST` once the newest event is this many hours into a
#: later day: syslog senders' clocks and batching put a few late lines after midnight,
#: and a late line for a folded day costs a full rebuild (a 30-day raw scan).
FOLD_HOURS = 1
_EPOCH = date(1970, 1, 1)


def table_name(period: str) -> str:
    return _TABLES[period]


def table_exists(store: Store, period: str) -> bool:
    rows = store.con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [_TABLES[period]]
    ).fetchall()
    return bool(rows and rows[0][0])


def ensure_tables(store: Store) -> None:
    for period, name in _TABLES.items():
        kind = "TIMESTAMP" if period == "hour" else "DATE"
        store.con.execute(
            f"""CREATE TABLE IF NOT EXISTS {name} (
                    bucket {kind} NOT NULL, sensor VARCHAR NOT NULL, proto UTINYINT NOT NULL,
                    port INTEGER NOT NULL, new_sources UBIGINT NOT NULL)""")
    store.con.execute(f"CREATE TABLE IF NOT EXISTS {_BOOK} (day DATE PRIMARY KEY, "
                      "records UBIGINT, rows UBIGINT)")
    store.con.execute(f"CREATE TABLE IF NOT EXISTS {_LAST} (sensor INTEGER NOT NULL, "
                      "proto UTINYINT NOT NULL, port INTEGER NOT NULL, k UBIGINT NOT NULL, "
                      "h BIGINT NOT NULL)")
    store.con.execute(f"CREATE TABLE IF NOT EXISTS {_MARK} (day DATE)")


#: One UBIGINT per source address, as the store's activity refresh keys them.
_SOURCE_KEY = "CASE WHEN src_hi = 0 THEN src_lo ELSE hash(src_hi, src_lo) | (1::UBIGINT << 63) END"


def _day_number(day: Any) -> int:
    return (day - _EPOCH).days


def _state_day(store: Store) -> int | None:
    """First day not folded into :data:`_LAST` (None: no state yet)."""
    row = store.con.execute(f"SELECT day FROM {_MARK}").fetchone()
    return None if row is None or row[0] is None else _day_number(row[0])


def _set_state_day(store: Store, day: int) -> None:
    store.con.execute(f"DELETE FROM {_MARK}")
    store.con.execute(f"INSERT INTO {_MARK} VALUES (DATE '1970-01-01' + CAST(? AS INTEGER))",
                      [day])


def _rebuild_state(store: Store, day: int) -> None:
    """Last hour of every key in the :data:`LOOKBACK_DAYS` days before ``day``, from raw."""
    con = store.con
    con.execute(f"DELETE FROM {_LAST}")
    con.execute(
        f"""INSERT INTO {_LAST}
            SELECT sensor_id, proto, activity_port(proto, dport, icmp_type), {_SOURCE_KEY},
                   max(epoch_us(ts) // 3600000000)
            FROM event_rows
            WHERE ts >= make_timestamp(CAST(? AS BIGINT) * 86400000000)
                          - INTERVAL {LOOKBACK_DAYS} DAY
              AND ts < make_timestamp(CAST(? AS BIGINT) * 86400000000)
            GROUP BY ALL""", [day, day])
    _set_state_day(store, day)


def _fold(store: Store, first: int, upto: int) -> None:
    """Fold the raw keys of days ``first`` .. ``upto - 1`` (in ``_ns_raw``) into the state."""
    if upto <= first:
        return
    con = store.con
    keep = upto * 24 - 24 * LOOKBACK_DAYS  # older last hours cannot matter any more
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _ns_fold AS
            SELECT sensor, proto, port, k, max(h) AS h FROM (
                SELECT sensor, proto, port, k, h FROM {_LAST}
                UNION ALL
                SELECT sensor, proto, port, k, h FROM _ns_raw WHERE h < ? * 24)
            WHERE h >= ? GROUP BY ALL""", [upto, keep])
    con.execute(f"DELETE FROM {_LAST}")
    con.execute(f"INSERT INTO {_LAST} SELECT * FROM _ns_fold")
    con.execute("DROP TABLE _ns_fold")
    _set_state_day(store, upto)


def _compute(store: Store, days: list[Any]) -> None:
    """Recompute the given days (every sensor and '*').

    The keys seen before the first unfolded day come from :data:`_LAST` (one row per
    key, its last hour); only the raw events from that day on are read.  A day before
    it (a late event, or a first run) rebuilds the state from the raw events first.
    """
    if not days:
        return
    con = store.con
    ensure_tables(store)
    n = LOOKBACK_DAYS
    con.execute("CREATE OR REPLACE TEMP TABLE _ns_days AS "
                "SELECT CAST(unnest(?::DATE[]) - DATE '1970-01-01' AS BIGINT) AS d", [days])
    lo, hi = _day_number(min(days)), _day_number(max(days))
    first = _state_day(store)
    if first is None or lo < first:
        _rebuild_state(store, lo)
        first = lo
    # distinct (hour, sensor, port, source) from the first unfolded day on, and the
    # last hour before it of each of their keys (lag() only needs the latest one)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _ns_raw AS
            SELECT DISTINCT epoch_us(ts) // 3600000000 AS h, sensor_id AS sensor, proto,
                   activity_port(proto, dport, icmp_type) AS port, {_SOURCE_KEY} AS k
            FROM event_rows
            WHERE ts >= make_timestamp(CAST(? AS BIGINT) * 86400000000)
              AND ts < make_timestamp(CAST(? AS BIGINT) * 86400000000) + INTERVAL 1 DAY""",
        [first, hi])
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _ns_seen AS
            SELECT h, sensor, proto, port, k FROM _ns_raw
            UNION ALL
            SELECT s.h, s.sensor, s.proto, s.port, s.k FROM {_LAST} s
            SEMI JOIN (SELECT DISTINCT proto, port, k FROM _ns_raw) r USING (proto, port, k)
            WHERE s.h >= ? * 24 - {24 * n}""", [lo])
    con.execute(f"DELETE FROM {_TABLES['hour']} WHERE CAST(bucket AS DATE) IN "
                "(SELECT DATE '1970-01-01' + CAST(d AS INTEGER) FROM _ns_days)")
    con.execute(f"DELETE FROM {_TABLES['day']} WHERE bucket IN "
                "(SELECT DATE '1970-01-01' + CAST(d AS INTEGER) FROM _ns_days)")
    for per_sensor in (True, False):
        part = "sensor, " if per_sensor else ""
        source = "_ns_seen" if per_sensor else "(SELECT DISTINCT h, proto, port, k FROM _ns_seen)"
        name = "nm.text" if per_sensor else "'*'"
        named = ("JOIN names nm ON nm.kind = 'sensor' AND nm.id = c.sensor" if per_sensor
                 else "")
        # one lag() over the hours serves both tables: a key's first hour of a day has
        # as its previous hour the last one before that day
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _ns_new AS
                SELECT h, {part} proto, port,
                       prev IS NULL OR prev < h - {24 * n} AS new_hour,
                       prev IS NULL OR prev // 24 < h // 24 - {n} AS new_day
                FROM (SELECT h, {part} proto, port,
                             lag(h) OVER (PARTITION BY {part} proto, port, k
                                          ORDER BY h) AS prev
                      FROM {source})
                WHERE h // 24 IN (SELECT d FROM _ns_days)""")
        for table, flag, unit, bucket in (
            (_TABLES["hour"], "new_hour", "h", "make_timestamp(c.u * 3600000000)"),
            (_TABLES["day"], "new_day", "h // 24", "DATE '1970-01-01' + CAST(c.u AS INTEGER)"),
        ):
            con.execute(
                f"""INSERT INTO {table}
                    SELECT {bucket}, {name}, c.proto, c.port, c.new_sources FROM (
                        SELECT {unit} AS u, {part} proto, port, count(*) AS new_sources
                        FROM _ns_new WHERE {flag} GROUP BY ALL) c {named}""")
        con.execute("DROP TABLE _ns_new")
    con.execute(f"DELETE FROM {_BOOK} WHERE day IN "
                "(SELECT DATE '1970-01-01' + CAST(d AS INTEGER) FROM _ns_days)")
    con.execute(
        f"""INSERT INTO {_BOOK}
            SELECT bucket, sum(records), count(*) FROM port_activity_daily
            WHERE sensor = '*' AND bucket IN
                  (SELECT DATE '1970-01-01' + CAST(d AS INTEGER) FROM _ns_days)
            GROUP BY bucket""")
    (newest,) = con.execute("SELECT max(h) FROM _ns_raw").fetchone() or (None,)
    if newest is not None:  # fold the days before the newest (less FOLD_HOURS)
        _fold(store, first, min(hi + 1, (int(newest) - FOLD_HOURS) // 24))
    con.execute("DROP TABLE _ns_seen")
    con.execute("DROP TABLE _ns_raw")




def _with_followers(store: Store, days: list[Any]) -> list[Any]:
    """Days with raw events from the first given day to LOOKBACK_DAYS after the last."""
    if not days:
        return []
    rows = store.con.execute(
        f"""SELECT DISTINCT CAST(ts AS DATE) AS d FROM event_rows
            WHERE ts >= CAST(? AS TIMESTAMP)
              AND ts < CAST(? AS TIMESTAMP) + INTERVAL {LOOKBACK_DAYS + 1} DAY
            ORDER BY 1""", [min(days), max(days)]).fetchall()
    return sorted(r[0] for r in rows)  # days without raw events keep their counts


def refresh(store: Store, first_day: Any, last_day: Any) -> None:
    """ACTIVITY_REFRESHERS hook: recompute the dirty days and the days after them."""
    days = [r[0] for r in store.con.execute("SELECT DISTINCT day FROM _dirty").fetchall()]
    _compute(store, _with_followers(store, days))


def sync(store: Store) -> int:
    """Compute days whose activity changed since their new sources were computed."""
    if store.read_only:
        return 0
    ensure_tables(store)
    stale = [r[0] for r in store.con.execute(
        f"""SELECT a.bucket FROM (SELECT bucket, sum(records) AS records, count(*) AS rows
                                  FROM port_activity_daily WHERE sensor = '*' GROUP BY bucket) a
            LEFT JOIN {_BOOK} b ON a.bucket = b.day
            WHERE b.day IS NULL OR b.records <> a.records OR b.rows <> a.rows""").fetchall()]
    days = _with_followers(store, stale)
    if days:
        with store.transaction():
            _compute(store, days)
    return len(days)


# Not registered in ACTIVITY_REFRESHERS on purpose: computing the new-source counts on every ingest
# made ingest several times slower (measured: about 3 to 4 CPU-seconds per million
# events each).  Readers call sync() first, which computes exactly the stale days.
