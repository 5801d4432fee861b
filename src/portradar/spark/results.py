"""Spark results back where users look: Parquet under ``--out``, then the DuckDB store.

Each job writes its result sets as Parquet directories under ``--out`` (one per table:
``port_activity_hourly``, ``port_activity_daily``, ``port_new_sources_hourly``,
``port_new_sources_daily``, ``scanners``, ``scan_profiles``, ``detected_spikes``) and
:func:`load` puts them into a store, into the tables ``portradar ports``, ``port``,
``spikes`` and ``scanners`` read, so those commands work on it unchanged:

* activity and new sources replace the rows of the buckets they cover, and the new
  sources' bookkeeping (``port_new_sources_days``) is filled as
  :func:`portradar.activity.new_sources.sync` would, so it does not recompute them;
* scanners and profiles replace the store's, campaigns are regrouped from the profiles
  by the embedded code (:func:`portradar.scan.detect._campaigns`: a second, cross-source
  stage on the per-source results), and the detection watermark is set so that
  ``portradar scanners`` does not recompute them from the store's own events.

Use a fresh store (or the store the archive was exported from): the loaded verdicts
stand for the archive's events, not for whatever else a store holds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from portradar.spark.arrow_bridge import restore

ACTIVITY_TABLES = ("port_activity_hourly", "port_activity_daily")
NEW_SOURCE_TABLES = ("port_new_sources_hourly", "port_new_sources_daily")
#: Where the spike results go in the store (``portradar spikes`` itself recomputes from
#: the activity tables; this table keeps what the Spark job found, for the API).
SPIKES_TABLE = "detected_spikes"


def read_output(out: str | os.PathLike[str], name: str) -> pa.Table | None:
    """One result set written by a job (None when the job did not write it)."""
    path = Path(out) / name
    if not path.is_dir():
        return None
    return ds.dataset(path, format="parquet").to_table()


def _unsigned_columns(store: Any, table: str) -> dict[str, pa.DataType]:
    rows = store.con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND data_type = "
        "'UBIGINT'", [table]).fetchall()
    return {r[0]: pa.uint64() for r in rows}


def _replace_buckets(store: Any, table: str, rows: pa.Table) -> int:
    con = store.con
    con.register("_loaded", rows)
    try:
        con.execute(f"DELETE FROM {table} WHERE bucket IN (SELECT DISTINCT bucket FROM _loaded)")
        cols = ", ".join(rows.column_names)
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _loaded")
    finally:
        con.unregister("_loaded")
    return rows.num_rows


def load_activity(store: Any, out: str | os.PathLike[str]) -> dict[str, int]:
    """Load per-port activity and new sources; returns rows per table."""
    from portradar.activity import new_sources as ns

    loaded: dict[str, int] = {}
    with store.transaction():
        for table in ACTIVITY_TABLES:
            rows = read_output(out, table)
            if rows is not None:
                loaded[table] = _replace_buckets(store, table, rows)
        ns.ensure_tables(store)
        for table in NEW_SOURCE_TABLES:
            rows = read_output(out, table)
            if rows is not None:
                loaded[table] = _replace_buckets(store, table, rows)
        if NEW_SOURCE_TABLES[1] in loaded:
            # the bookkeeping sync() compares with: these days are up to date
            store.con.execute(
                """DELETE FROM port_new_sources_days WHERE day IN
                   (SELECT DISTINCT bucket FROM port_activity_daily)""")
            store.con.execute(
                """INSERT INTO port_new_sources_days
                   SELECT bucket, sum(records), count(*) FROM port_activity_daily
                   WHERE sensor = '*' GROUP BY bucket""")
    return loaded


def load_scanners(store: Any, out: str | os.PathLike[str], config: Any = None,
                  lonely_events: Any = None) -> dict[str, int]:
    """Load scanners and profiles, regroup campaigns; returns rows per table.

    ``lonely_events(con)`` returns the load columns and reply row ids of the campaign
    members without a verdict (see :func:`portradar.scan.detect._campaigns`); the Spark
    job reads them from the archive.
    """
    from portradar.scan import detect

    config = config or detect.ScanConfig.from_store(store)
    scanners = read_output(out, "scanners")
    profiles = read_output(out, "scan_profiles")
    loaded: dict[str, int] = {}
    detect._apply_schema(store)
    con = store.con
    dark = detect.CidrSet.parse(config.dark) if config.dark else None
    benign = detect.BenignList.parse(config.benign) if config.benign else None
    with store.transaction():
        con.execute("DELETE FROM scanners")
        con.execute("DELETE FROM scan_profiles")
        if profiles is not None:
            profiles = restore(profiles, _unsigned_columns(store, "scan_profiles"))
            loaded["scan_profiles"] = detect._insert(con, "scan_profiles", profiles)
        if scanners is not None:
            scanners = restore(scanners, _unsigned_columns(store, "scanners"))
            loaded["scanners"] = detect._insert_scanners(con, scanners, config)
        loaded["campaigns"] = detect._campaigns(store, config, dark, benign,
                                                lonely_events=lonely_events)
        # the watermark: the verdicts are current for the store's events as they are
        table, _ = detect.event_table(con)
        row = detect._first(con.execute(f"SELECT max(rowid) FROM {table}"))
        ledger = detect._first(con.execute("SELECT coalesce(sum(events), 0) FROM inputs"))
        store.set_setting(detect._META_ROWID, str(-1 if row[0] is None else int(row[0])))
        store.set_setting(detect._META_LEDGER, str(int(ledger[0])))
        store.set_setting(detect._META_CONFIG, config.fingerprint())
    return loaded


def load_spikes(store: Any, out: str | os.PathLike[str]) -> dict[str, int]:
    """Load the Spark spike results into :data:`SPIKES_TABLE` (replaced)."""
    rows = read_output(out, SPIKES_TABLE)
    if rows is None:
        return {}
    con = store.con
    with store.transaction():
        con.register("_loaded", rows)
        try:
            con.execute(f"CREATE OR REPLACE TABLE {SPIKES_TABLE} AS SELECT * FROM _loaded")
        finally:
            con.unregister("_loaded")
    return {SPIKES_TABLE: rows.num_rows}


def load(store: Any, out: str | os.PathLike[str], *, lonely_events: Any = None
         ) -> dict[str, int]:
    """Load every result set found under ``out``."""
    loaded = load_activity(store, out)
    if (Path(out) / "scanners").is_dir():
        loaded.update(load_scanners(store, out, lonely_events=lonely_events))
    loaded.update(load_spikes(store, out))
    return loaded
