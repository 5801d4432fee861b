"""Run every scan detector over the store's events and keep the verdicts in the store.

What it does, for the sources that have new events since the last run (or all of them
the first time, or after the configuration changed):

1. load their events from DuckDB as numpy columns (in partitions of about
   :data:`PARTITION_EVENTS` events by a hash of the source, so memory stays bounded
   whatever the store's size); mark replies (:mod:`~portradar.scan.replies`);
2. split them into probes and unsolicited reply-like packets
   (:mod:`~portradar.scan.probes`), sort the probes once by (source, time), and feed the
   same frame to the Threshold Random Walk (:mod:`~portradar.scan.trw`), the fan-out
   (:mod:`~portradar.scan.fanout`), the slow-scan window (:mod:`~portradar.scan.slow_scan`)
   and the per-source profile (:mod:`~portradar.scan.source_profile`); the reply-like
   packets to the backscatter detector (:mod:`~portradar.scan.backscatter`);
3. do the same for IPv6 sources aggregated by /64 (a scanner rotating through the
   addresses of its /64 is one source there);
4. classify each flagged source (shape :mod:`~portradar.scan.scan_shape`, type
   :mod:`~portradar.scan.scan_type`, tool :mod:`~portradar.scan.fingerprint`), apply the
   loopback policy (:mod:`~portradar.scan.loopback`) and the benign list
   (:mod:`~portradar.scan.benign`), and write ``scanners`` and ``scan_profiles``;
5. regroup campaigns over all profiles (:mod:`~portradar.scan.campaigns`);
6. move the watermark.

**Watermark.**  Events are only ever appended, each with a DuckDB ``rowid`` larger than
any before.  The store keeps the largest ``rowid`` processed and the ledger's event
total at that moment (``meta`` keys ``scan.rowid`` and ``scan.ledger``).  A run then
reads the networks (/24, /48) of the sources of ``rowid > watermark`` and recomputes
every source of those networks from its whole history, so the result never depends on
how ingestion was split (whole networks, because campaign rule 1 groups a network's
sources).  If the count of new rows disagrees with the ledger (rows renumbered after
retention deleted old events), or the new events are more than :data:`FULL_SHARE` of a
store of :data:`FULL_MIN_EVENTS` or more, or the detector configuration changed, the run
recomputes every source present instead.  Verdicts on sources whose events were all
purged by retention are kept.

**Confidence** is a ranking aid: TRW's is the posterior probability of "scanner" at an
even prior, 1/(1 + e^-llr) (0.99 at its threshold); the fan-out's and slow scan's are
1 - 0.1 (T/n)² for n distinct pairs against threshold T (0.9 at the threshold, 0.975
at twice it); a campaign-only member gets 0.8; a verdict takes its detectors' maximum.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portradar.errors import StoreError
from portradar.events.addresses import key_to_text
from portradar.scan.arrow_arrays import strings, to_arrow, to_numpy
from portradar.scan.backscatter import Backscatter
from portradar.scan.benign import BenignList
from portradar.scan.campaigns import Campaigns
from portradar.scan.cidr_set import CidrSet
from portradar.scan.event_load import ChunkedLoad, may_answer
from portradar.scan.fanout import RULES as FANOUT_RULES
from portradar.scan.fanout import FanOut, psad_danger_level
from portradar.scan.fingerprint import TOOLS, tool_of
from portradar.scan.loopback import STATUS as SPECIAL_STATUS
from portradar.scan.loopback import special_source
from portradar.scan.probes import (
    CLASS_NAMES,
    OTHER_KIND,
    PROBE_CLASSES,
    PROBE_KIND,
    REPLY_CLASSES,
    REPLY_KIND,
    Probes,
    address_key,
    is_ipv4,
    is_multicast,
    mix64,
    packet_class,
    probe_kinds,
    small_isin,
    source_rows,
)
from portradar.scan.replies import DEFAULT_REPLY_WINDOW, reply_rowids
from portradar.scan.scan_shape import SHAPES, scan_shape
from portradar.scan.scan_type import TYPES, scan_type
from portradar.scan.segment_set import count_per_row, is_member, table
from portradar.scan.slow_scan import SlowScan
from portradar.scan.source_profile import (
    light_groups,
    light_profile,
    probes_until,
    profile,
)
from portradar.scan.trw import SCANNER, ThresholdRandomWalk
from portradar.scan.verdict_writer import Scope, VerdictWriter
from portradar.store.duckdb_store import Store

#: Bumped when a change of the detectors makes stored verdicts stale.
DETECTOR_VERSION = 2
#: Events processed at once (a partition, by a hash of the source).  Measured on the
#: 5-million-line benchmark: with one analysis thread 1 M per partition was the fastest
#: (8.8 s CPU, against 9.3 s for 1.5 M and 11.6 s for 3 M: the working set stays in
#: cache) and the leanest (peak RSS 2.0 GB against 2.3 GB for 3 M); with two threads
#: sharing the cache, 700,000 (8 parts) was faster still: 3.8-4.5 s wall against
#: 4.0-4.1 for 1 M (6 parts), 4.2-4.6 for 500,000 and 4.8-5.4 for 350,000 (busy
#: machine, load 1.8-2).  Loading all events with one query and partitioning in numpy
#: was tried: no faster, 0.8 GB more.
PARTITION_EVENTS = 700_000
#: Events loaded by one query (its parts are then found in numpy and each is gathered
#: by the thread that analyses it).  Every query scans the whole table: on the 5 M-event
#: benchmark, the columns as stored cost 0.4 CPU-s (0.2 s wall) in one query against
#: 1.0-1.4 CPU-s in 5 to 8 part queries, and the gather of a part's rows replaces the
#: copy that joins a query's chunks anyway.  The price is memory: the load is held
#: whole (about 60 bytes an event as stored: 0.36 GB for 6 M), so the load is bounded.
LOAD_EVENTS = 6_000_000
#: Parts analysed at once, by worker threads, while the main thread loads and inserts;
#: one more part is loaded ahead, so a worker that finishes starts the next part at
#: once instead of waiting for its query.
ANALYSIS_THREADS = max(1, min(2, os.cpu_count() or 1))
#: Above this share of new events, recompute everything (cheaper)...
FULL_SHARE = 0.3
#: ... once the store holds this many events (below it either way is quick).
FULL_MIN_EVENTS = 100_000
#: A source's network, the unit of partitions and of incremental runs: its /24 for
#: IPv4, its /48 (tagged) for IPv6.
NET_KEY_SQL = """(CASE WHEN {e}.src_hi = 0 THEN {e}.src_lo >> 8
                  ELSE ({e}.src_hi >> 16) | (1::UBIGINT << 62) END)"""

_META_ROWID = "scan.rowid"
_META_LEDGER = "scan.ledger"
_META_CONFIG = "scan.config"
_META_DARK = "scan.dark"
_META_BENIGN = "scan.benign"


@dataclass
class ScanConfig:
    """Every parameter of the detection; defaults and their sources are in each module."""

    trw: dict[str, Any] = field(default_factory=dict)
    fanout: dict[str, Any] = field(default_factory=dict)
    slow_scan: dict[str, Any] = field(default_factory=dict)
    backscatter: dict[str, Any] = field(default_factory=dict)
    campaigns: dict[str, Any] = field(default_factory=dict)
    reply_window: float = DEFAULT_REPLY_WINDOW
    dark: list[str] = field(default_factory=list)  # the user's dark address space
    benign: str = ""  # the user's benign list, as text (see portradar.scan.benign)

    @classmethod
    def from_store(cls, store: Store) -> ScanConfig:
        dark = store.setting(_META_DARK, "") or ""
        return cls(dark=[d for d in dark.split(",") if d.strip()],
                   benign=store.setting(_META_BENIGN, "") or "")

    def fingerprint(self) -> str:
        return json.dumps({"version": DETECTOR_VERSION, **asdict(self)}, sort_keys=True)


@dataclass
class DetectionSummary:
    """What a detection run did."""

    mode: str  # "unchanged", "incremental" or "full"
    events: int = 0  # events read
    sources: int = 0  # sources (re)computed
    flagged: int = 0  # verdicts written (scanners, benign, loopback, backscatter)
    campaigns: int = 0
    seconds: float = 0.0
    state_bytes: int = 0  # largest detector state held at once
    partitions: int = 0


def save_settings(store: Store, *, dark: list[str] | None = None,
                  benign: BenignList | None = None) -> None:
    """Remember the user's dark space and benign list in the store (next run uses them)."""
    if dark is not None:
        CidrSet.parse(dark)  # fail now on a bad network, not at detection time
        store.set_setting(_META_DARK, ",".join(d.strip() for d in dark))
    if benign is not None:
        store.set_setting(_META_BENIGN, benign.to_text())


def ensure_detection(store: Store, config: ScanConfig | None = None) -> DetectionSummary:
    """Bring the verdicts up to date with the events (a no-op when nothing is new)."""
    if store.read_only:
        return DetectionSummary(mode="unchanged")
    return detect(store, config)


def detect(store: Store, config: ScanConfig | None = None, *, full: bool = False,
           partition_events: int = PARTITION_EVENTS,
           load_events: int = LOAD_EVENTS) -> DetectionSummary:
    """Run the detectors over new events (or all, with ``full``) and store the verdicts."""
    started = time.perf_counter()
    config = config or ScanConfig.from_store(store)
    con = store.con
    _apply_schema(store)
    previous_bar = _progress_bar(con, False)
    try:
        summary = _detect(store, config, full, partition_events, load_events)
    except duckdb.Error as exc:
        raise StoreError(f"{store.path}: scan detection failed ({exc})") from exc
    finally:
        _progress_bar(con, previous_bar)
    summary.seconds = time.perf_counter() - started
    return summary


#: Layout of the scan tables; they hold derived data only, so a store with another
#: layout has them dropped and rebuilt by a full run.
SCAN_SCHEMA_VERSION = 4
_SCAN_TABLES = ("scanners", "scan_profiles", "campaigns", "campaign_members")


def _apply_schema(store: Store) -> None:
    from importlib.resources import files

    if store.read_only:
        return
    con = store.con
    if store.setting("scan.schema") != str(SCAN_SCHEMA_VERSION):
        for table in _SCAN_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        store.set_setting("scan.schema", str(SCAN_SCHEMA_VERSION))
        store.set_setting(_META_CONFIG, "")  # forces a full run
    con.execute(files("portradar.scan").joinpath("schema.sql").read_text())


def _progress_bar(con: duckdb.DuckDBPyConnection, on: bool | None) -> bool | None:
    try:
        row = _first(con.execute("SELECT current_setting('enable_progress_bar')"))
        before = bool(row[0]) if row else None
        if on is not None:
            con.execute(f"SET enable_progress_bar = {'true' if on else 'false'}")
        return before
    except duckdb.Error:
        return None


def _detect(store: Store, config: ScanConfig, full: bool, partition_events: int,
            load_events: int) -> DetectionSummary:
    con = store.con
    fingerprint = config.fingerprint()
    table, _ = event_table(con)
    row = _first(con.execute(f"SELECT max(rowid), count(*) FROM {table}"))
    max_rowid = -1 if not row or row[0] is None else int(row[0])
    ledger_row = _first(con.execute("SELECT coalesce(sum(events), 0) FROM inputs"))
    ledger = int(ledger_row[0]) if ledger_row else 0
    wm = int(store.setting(_META_ROWID, "-1") or -1)
    wm_ledger = int(store.setting(_META_LEDGER, "-1") or -1)
    same_config = store.setting(_META_CONFIG) == fingerprint
    if not full and same_config and max_rowid <= wm and ledger == wm_ledger:
        return DetectionSummary(mode="unchanged")
    mode = "full"
    if not full and same_config and wm >= 0:
        new = _first(con.execute(f"SELECT count(*) FROM {table} WHERE rowid > ?", [wm]))
        n_new = int(new[0]) if new else 0
        total = int(row[1]) if row else 0
        if n_new == ledger - wm_ledger and (n_new <= FULL_SHARE * total
                                            or total < FULL_MIN_EVENTS):
            # whole networks (/24, /48): campaign rule 1 sees a network's sources together
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _affected AS
                    SELECT DISTINCT {NET_KEY_SQL.format(e='r')} AS net
                    FROM {table} r WHERE r.rowid > ?""", [wm])
            mode = "incremental"
    # Three transactions (the verdicts are derived data; the watermark moves in the last
    # one, so a run cut short anywhere is redone whole by the next): profiles and
    # campaigns on this connection, while a second connection replaces the verdicts
    # (verdict_writer.py: large inserts, compressed as they go, partly while the last
    # parts are analysed and on the core the campaigns' SQL leaves idle), then the
    # campaigns' own verdicts and the watermark.  In one transaction the verdicts'
    # commit (0.4-0.5 s for the benchmark's 195,000) waited for the campaigns, on one
    # core.
    run: _RunOutput | None = None
    alone = not store.in_transaction  # else one connection: the caller's snapshot
    try:
        with store.transaction():
            summary, run = _run(store, config, mode, partition_events, load_events,
                                own=alone)
            run.writer.finish()
            groups = _regroup(store, config, run.scope, run.verdicts)
        summary.flagged = run.writer.wait()
        with store.transaction():
            summary.campaigns = _campaign_verdicts(store, config, run.dark, run.benign,
                                                   groups, lonely_events=run.lonely)
            store.set_setting(_META_ROWID, str(max_rowid))
            store.set_setting(_META_LEDGER, str(ledger))
            store.set_setting(_META_CONFIG, fingerprint)
    finally:
        if run is not None:  # never leave it writing behind an error
            run.writer.wait(check=False)
            if run.warm_up is not None:
                # long done, except when this run compiled the kernels (the first after
                # installing): their cache is then complete for the next run
                run.warm_up.join()
    con.execute("DROP TABLE IF EXISTS _affected")
    return summary


# --- the run ---------------------------------------------------------------------------


_LOAD_COLUMNS = """e.rowid AS rid, epoch_us(e.ts) AS ts, e.src_hi, e.src_lo, e.dst_hi, e.dst_lo,
    CAST(e.proto AS SMALLINT) AS proto, coalesce(CAST(e.sport AS INTEGER), -1) AS sport,
    coalesce(CAST(e.dport AS INTEGER), -1) AS dport,
    coalesce(CAST(e.tcp_flags AS SMALLINT), -1) AS tcp_flags,
    coalesce(CAST(e.icmp_type AS SMALLINT), -1) AS icmp_type,
    {outcome} AS outcome,
    CAST(e.packets AS BIGINT) AS packets, coalesce(CAST(e.ttl AS SMALLINT), -1) AS ttl,
    coalesce(CAST(e.ip_id AS INTEGER), -1) AS ip_id,
    coalesce(CAST(e.tcp_window AS INTEGER), -1) AS tcp_window,
    coalesce(CAST(e.tcp_seq AS BIGINT), -1) AS tcp_seq,
    {sensor} AS sensor"""

_OUTCOME_FROM_LABEL = """CAST(CASE e.outcome WHEN 'blocked' THEN 1 WHEN 'rejected' THEN 2
    WHEN 'accepted' THEN 3 WHEN 'unanswered' THEN 4 WHEN 'established' THEN 5 ELSE 0 END
    AS TINYINT)"""


def event_table(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """The table holding raw events and the columns to load from it.

    The store keeps events in ``event_rows`` (integer codes, read directly as the
    store's own hot queries do) behind an ``events`` view; an older store has an
    ``events`` table with text columns.
    """
    row = _first(con.execute(
        """SELECT count(*) FROM duckdb_tables()
           WHERE table_name = 'event_rows' AND NOT temporary"""
    ))
    if row and row[0]:
        return "event_rows", _LOAD_COLUMNS.format(outcome="CAST(e.outcome AS TINYINT)",
                                                  sensor="CAST(e.sensor_id AS INTEGER)")
    return "events", _LOAD_COLUMNS.format(outcome=_OUTCOME_FROM_LABEL,
                                          sensor="CAST(hash(e.sensor) >> 33 AS INTEGER)")


@dataclass
class _RunOutput:
    """What :func:`_run` leaves to write: the verdicts (one table per analysed part),
    the sources it recomputed (:class:`Scope`), and what the campaigns' own verdicts
    need."""

    verdicts: list[pa.Table]
    scope: Scope
    writer: VerdictWriter
    dark: CidrSet | None
    benign: BenignList | None
    lonely: Callable[[duckdb.DuckDBPyConnection],
                     tuple[dict[str, np.ndarray], np.ndarray]] | None = None
    warm_up: threading.Thread | None = None


def _run(store: Store, config: ScanConfig, mode: str, partition_events: int,
         load_events: int, *, own: bool) -> tuple[DetectionSummary, _RunOutput]:
    con = store.con
    summary = DetectionSummary(mode=mode)
    table, _ = event_table(con)
    if mode == "incremental":
        nets = "(SELECT net FROM _affected)"
        con.execute(f"DELETE FROM scan_profiles WHERE {NET_KEY_SQL.format(e='scan_profiles')} "
                    f"IN {nets}")
        affected = con.execute("SELECT net FROM _affected").fetchnumpy()["net"]
        recomputed = Scope(table, NET_KEY_SQL, np.asarray(affected, np.uint64))
    else:
        oldest = f"(SELECT min(ts) FROM {table})"
        con.execute(f"DELETE FROM scan_profiles WHERE last_seen >= {oldest}")
        recomputed = Scope(table, NET_KEY_SQL)
    verdicts: list[pa.Table] = []
    # the verdicts go to the writer as the parts are analysed (verdict_writer.py)
    writer = VerdictWriter(con, recomputed, lambda cur, rows: _insert_scanners(cur, rows, config),
                           own=own)
    try:
        return _analyse_all(store, config, mode, partition_events, load_events, summary,
                            _RunOutput(verdicts, recomputed, writer, None, None))
    except BaseException:
        writer.wait(check=False)  # told to roll back
        raise


def _analyse_all(store: Store, config: ScanConfig, mode: str, partition_events: int,
                 load_events: int, summary: DetectionSummary,
                 out: _RunOutput) -> tuple[DetectionSummary, _RunOutput]:
    con = store.con
    table, load = event_table(con)
    verdicts, writer = out.verdicts, out.writer
    scope = "TRUE" if out.scope.nets is None else \
        f"{NET_KEY_SQL.format(e='e')} IN (SELECT net FROM _affected)"
    if mode == "incremental":
        # the new events' networks: their own events only
        n_events = _count(con, f"SELECT count(*) FROM {table} e WHERE {scope}") \
            if _count(con, "SELECT count(*) FROM _affected") > 20_000 else 0
    else:
        n_events = _count(con, f"SELECT count(*) FROM {table}")
    parts = max(1, math.ceil(n_events / max(partition_events, 1)))
    if parts > 1:
        # a multiple of the analysis threads, so they run out of parts together
        # instead of one analysing the last part alone (5 M events: 8 parts of 625,000)
        parts = -(-parts // ANALYSIS_THREADS) * ANALYSIS_THREADS
    dark = CidrSet.parse(config.dark) if config.dark else None
    benign = BenignList.parse(config.benign) if config.benign else None
    per_load = max(1, load_events // max(partition_events, 1))
    # replies need a request from the address they go to: in a log of inbound traffic
    # no destination ever sends anything, and the per-partition reply search is skipped.
    # When one load holds every event, the loaded columns answer that (a hash set of the
    # destinations, 0.03-0.05 s for 5 M events against 0.1-0.2 s for the query, which
    # also delayed the warm-up); the query confirms a possible match (a capture).
    one_load = mode == "full" and table == "event_rows" and parts <= per_load
    answering = False if one_load else _answering(con, table)
    no_rid = load.replace("e.rowid AS rid", "0 AS rid")  # row ids only matter for replies
    # after the reply query when there is one, which it would slow down (0.08 -> 0.27 s)
    if parts > 1 and ANALYSIS_THREADS > 1 and table == "event_rows":
        sample = con.sql(f"SELECT {_NATIVE_COLUMNS} FROM {table} e LIMIT {WARM_UP_EVENTS}"
                         ).to_arrow_table()
        out.warm_up = threading.Thread(target=_warm_up, args=(sample, config, dark, benign),
                                       daemon=True, name="scan-warm-up")
        out.warm_up.start()
    # the main thread talks to DuckDB (load, insert) while worker threads analyse the
    # parts already loaded: the kernels release the GIL, so loading, inserting and the
    # analyses overlap on a multi-core machine (the detectors are per part, no sharing)
    pending: deque[Future[list[_Analysis]]] = deque()
    native = table == "event_rows" and not answering

    def collect(results: list[_Analysis]) -> None:
        for result in results:
            if not result.prefix64:  # the /64 aggregates: a second view of the same sources
                summary.state_bytes = max(summary.state_bytes, result.state_bytes)
                summary.sources += result.sources
                summary.partitions += 1
            _insert(con, "scan_profiles", result.profiles)
            if result.rows is not None and result.rows.num_rows:
                verdicts.append(result.rows)  # their tags, for the campaigns
                writer.add(result.rows)

    held_load: ChunkedLoad | None = None
    with ThreadPoolExecutor(max_workers=ANALYSIS_THREADS) as pool:
        for first_part in range(0, parts, per_load):
            # a query loads one part, or several split apart in numpy (LOAD_EVENTS)
            last_part = min(parts, first_part + per_load)
            net = NET_KEY_SQL.format(e="e")
            where = scope if (first_part, last_part) == (0, parts) else \
                f"{scope} AND {net} % {parts} >= {first_part} AND {net} % {parts} < {last_part}"
            if native:
                # the common case: the columns as stored, read in DuckDB's chunks (no
                # copy); the main thread only finds each part's rows, and a worker
                # gathers and widens them (_analyse_rows)
                loaded = ChunkedLoad(con.sql(
                    f"SELECT {_NATIVE_COLUMNS} FROM {table} e WHERE {where}").to_arrow_table())
                check = pool.submit(loaded.may_answer) if one_load else None
                part_rows = list(loaded.part_rows(parts, first_part, last_part))
                if check is not None and check.result() and _answering(con, table):
                    # a source is also a destination: replies to find, the general path
                    answering, native = True, False
                    del loaded, part_rows
                else:
                    summary.events += loaded.n
                    for rows in part_rows:
                        pending.append(pool.submit(_analyse_rows, loaded, rows, config, dark,
                                                   benign))
                        del rows
                        while len(pending) > ANALYSIS_THREADS or \
                                (pending and pending[0].done()):
                            collect(pending.popleft().result())
                    if one_load:  # campaign-only members' events are read from it
                        held_load = loaded
                    del loaded, part_rows
                    continue
            cols = _fetch(con, f"SELECT {load if answering else no_rid} FROM {table} e "
                               f"WHERE {where}")
            replies = _replies(con, table, where, cols, config) if answering else _NONE
            summary.events += len(cols["ts"])
            for part_cols in _split_parts(cols, parts, first_part, last_part):
                pending.append(pool.submit(_analyse_list, part_cols, replies, config, dark,
                                           benign, prefix64=False))
                del part_cols
                while len(pending) > ANALYSIS_THREADS or (pending and pending[0].done()):
                    collect(pending.popleft().result())
            # IPv6 sources by /64: a /64 lies in one network (/48), so in one load
            v6 = np.flatnonzero(cols["src_hi"] != 0)
            if v6.size:
                v6_cols = {name: values[v6] for name, values in cols.items()}
                pending.append(pool.submit(_analyse_list, v6_cols, replies, config, dark,
                                           benign, prefix64=True))
                del v6_cols
            del cols, v6
        while pending:
            collect(pending.popleft().result())
    lonely = None
    if held_load is not None:
        held = held_load

        def lonely(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, np.ndarray], np.ndarray]:
            return _lonely_from_load(con, held), _NONE  # no source answers: no replies

    out.dark, out.benign, out.lonely = dark, benign, lonely
    return summary, out


def _lonely_from_load(con: duckdb.DuckDBPyConnection, load: ChunkedLoad) -> dict[str, np.ndarray]:
    """The events of the sources in ``_lonely`` from a load of every event, in the load
    columns, instead of a query scanning the table again (0.04 s at the end of the run)."""
    members = con.execute("SELECT src_hi, src_lo FROM _lonely").fetchall()
    hi = np.array([m[0] for m in members], np.uint64)
    lo = np.array([m[1] for m in members], np.uint64)
    return load.take(load.sources_in(hi, lo), _LOAD_DTYPES)


#: The columns of ``event_rows`` as stored (no casts, nulls kept), for the parts of a
#: full or incremental run: the main thread only runs the query, and the analysis
#: thread turns them into the load's dtypes (:meth:`ChunkedLoad.take`, straight from
#: DuckDB's chunks).  Measured on the 5 M-event benchmark, 5 part queries: 0.87-1.08
#: CPU-s against 1.17-1.47 with the casts and ``coalesce`` in SQL.
_NATIVE_COLUMNS = """e.ts, e.src_hi, e.src_lo, e.dst_hi, e.dst_lo, e.proto, e.sport, e.dport,
    e.tcp_flags, e.icmp_type, e.outcome, e.packets, e.ttl, e.ip_id, e.tcp_window, e.tcp_seq,
    e.sensor_id AS sensor"""
#: The load's dtype of each native column (a null becomes -1, as ``coalesce`` does).
_LOAD_DTYPES: dict[str, Any] = {
    "proto": np.int16, "sport": np.int32, "dport": np.int32, "tcp_flags": np.int16,
    "icmp_type": np.int16, "outcome": np.int8, "packets": np.int64, "ttl": np.int16,
    "ip_id": np.int32, "tcp_window": np.int32, "tcp_seq": np.int64, "sensor": np.int32}


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, np.ndarray]:
    """Columns of a query as numpy arrays (through Arrow: measured faster than
    ``fetchnumpy``; the load query leaves no nulls, so most columns convert without
    a copy)."""
    table = con.sql(sql).to_arrow_table()
    return {name: to_numpy(table.column(name).combine_chunks())
            for name in table.column_names}


_NONE = np.empty(0, np.int64)


def _replies(con: duckdb.DuckDBPyConnection, table: str, where: str,
             cols: dict[str, np.ndarray], config: ScanConfig) -> np.ndarray:
    """Rowids of the loaded events that are replies (see :mod:`portradar.scan.replies`)."""
    cls = packet_class(cols["proto"], cols["tcp_flags"], cols["icmp_type"])
    reply_like = small_isin(cls, REPLY_CLASSES) | (cols["proto"] == 17) | (cols["proto"] == 136)
    reply_like &= ~is_multicast(cols["dst_hi"], cols["dst_lo"])
    if cols["proto"].size:
        tcp_acked = (cols["proto"] == 6) & (cols["tcp_flags"] >= 0) & \
            ((cols["tcp_flags"] & 0x14) != 0)
        reply_like |= tcp_acked
    return reply_rowids(con, where, config.reply_window, table=table,
                        hosts=(cols["dst_hi"][reply_like], cols["dst_lo"][reply_like]))


def _answering(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether some source of the store is also a destination (it may send replies)."""
    return _count(con, f"""SELECT count(*) FROM (SELECT 1 FROM {table} r SEMI JOIN
                           (SELECT DISTINCT dst_hi, dst_lo FROM {table}) d
                           ON r.src_hi = d.dst_hi AND r.src_lo = d.dst_lo LIMIT 1)""") > 0


def _may_answer(src_hi: np.ndarray, src_lo: np.ndarray, dst_hi: np.ndarray,
                dst_lo: np.ndarray) -> bool:
    """False when no (src_hi, src_lo) is any row's (dst_hi, dst_lo); True when one may
    be (a hash set of the destinations; equal hashes of different addresses give a True
    that :func:`_answering` then corrects).  0.04-0.05 s for the benchmark's 5 M rows."""
    return may_answer([(np.asarray(src_hi, np.uint64), np.asarray(src_lo, np.uint64))],
                      [(np.asarray(dst_hi, np.uint64), np.asarray(dst_lo, np.uint64))])


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = _first(con.execute(sql))
    return int(row[0]) if row and row[0] is not None else 0


@dataclass
class _Analysis:
    rows: pa.Table | None
    profiles: pa.Table | None
    state_bytes: int
    sources: int
    prefix64: bool = False


def _split_parts(cols: dict[str, np.ndarray], parts: int, first: int,
                 last: int) -> Iterator[dict[str, np.ndarray]]:
    """The rows of parts ``first`` to ``last - 1`` (by :data:`NET_KEY_SQL` modulo
    ``parts``), part by part, each in the load's row order."""
    if last - first == 1:
        yield cols
        return
    hi = np.asarray(cols["src_hi"], np.uint64)
    lo = np.asarray(cols["src_lo"], np.uint64)
    net = np.where(hi == 0, lo >> np.uint64(8), (hi >> np.uint64(16)) | np.uint64(1 << 62))
    part = (net % np.uint64(parts)).astype(np.int64) - first
    del hi, lo, net
    order = np.argsort(part.astype(np.uint8) if last - first <= 255 else part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(last - first + 1))
    del part
    for p in range(last - first):
        rows = order[bounds[p]:bounds[p + 1]]
        yield {name: values[rows] for name, values in cols.items()}


#: Events of the warm-up's sample (:func:`_warm_up`).
WARM_UP_EVENTS = 5_000


def _warm_up(sample: pa.Table, config: ScanConfig, dark: CidrSet | None,
             benign: BenignList | None) -> None:
    """Analyse a small sample, for its side effects only, while the main thread waits
    for DuckDB to load the events: pyarrow's first conversion imports pandas (0.28 s)
    and numba loads each compiled kernel from its cache on first call (about 0.5 s in
    all); both hold the GIL, the load query does not.  On the 5 M-event benchmark the
    first part's analysis started 1.15 s into the run without it."""
    try:
        load = ChunkedLoad(sample)
        list(load.part_rows(2, 0, 2))
        load.may_answer()
        results = _analyse_rows(load, np.arange(load.n), config, dark, benign)
        # what the run's tail calls only when the data asks for it (campaign-only
        # members, light sources with peers): loaded here, not on the critical path
        one = np.zeros(1, np.uint64)
        load.take(load.sources_in(one, one), _LOAD_DTYPES)
        light_profile(one, one, one, np.zeros(1, np.int64), one, one, presorted=True)
        del results
    except Exception:  # the real analysis meets and reports the same error
        pass


def _analyse_list(cols: dict[str, np.ndarray], replies: np.ndarray, config: ScanConfig,
                  dark: CidrSet | None, benign: BenignList | None, *,
                  prefix64: bool) -> list[_Analysis]:
    return [_analyse(cols, replies, config, dark, benign, prefix64=prefix64)]


def _analyse_rows(load: ChunkedLoad, rows: np.ndarray, config: ScanConfig,
                  dark: CidrSet | None, benign: BenignList | None) -> list[_Analysis]:
    """One part, the given rows of a :data:`_NATIVE_COLUMNS` load (no replies): its
    sources, then its IPv6 sources by /64 (a /64 lies in one network, so in one part)."""
    cols = load.take(rows, _LOAD_DTYPES)
    del load, rows
    results = [_analyse(cols, _NONE, config, dark, benign, prefix64=False)]
    v6 = np.flatnonzero(cols["src_hi"] != 0)
    if v6.size:
        v6_cols = {name: values[v6] for name, values in cols.items()}
        del cols
        results.append(_analyse(v6_cols, _NONE, config, dark, benign, prefix64=True))
    return results


def _analyse(cols: dict[str, np.ndarray], replies: np.ndarray, config: ScanConfig,
             dark: CidrSet | None, benign: BenignList | None, *, prefix64: bool,
             only_campaign: bool = False) -> _Analysis:
    """Every detector over one load of events (one partition)."""
    src_hi = np.asarray(cols["src_hi"], np.uint64)
    src_lo = np.asarray(cols["src_lo"], np.uint64)
    kind = probe_kinds(cols["proto"], cols["tcp_flags"], cols["icmp_type"], cols["dst_hi"],
                       cols["dst_lo"])
    if replies.size:  # the replies found are neither probes nor backscatter
        rid = np.asarray(cols["rid"], np.int64)
        pos = np.searchsorted(replies, rid)
        pos[pos >= replies.size] = 0
        kind[replies[pos] == rid] = OTHER_KIND
    if prefix64:
        kind[is_ipv4(src_hi, src_lo)] = OTHER_KIND
    probe_mask = kind == PROBE_KIND
    reply_like = kind == REPLY_KIND
    del kind
    key_lo = src_lo if not prefix64 else np.where(is_ipv4(src_hi, src_lo), src_lo,
                                                  np.uint64(0))
    skey = address_key(src_hi, key_lo)
    trw = ThresholdRandomWalk(**config.trw, keep_contacts=False)  # one batch
    fan = FanOut(**config.fanout, dark=dark, mergeable=False)  # one update, never merged
    slow = SlowScan(**config.slow_scan)
    # a source with fewer probes than any detector needs to fire (TRW's 4 failed first
    # contacts, by default) cannot be flagged on its own: the detectors never see it and
    # it only gets the light profile the campaigns need (most sources are like that)
    least = min(trw.min_probes, fan.min_probes, slow.min_probes)
    # one stable sort of the probes by source (rows come in time order, so each source's
    # rows stay in time order): it sizes the sources and orders both kinds for their pass
    okey, ordered = source_rows(skey, np.flatnonzero(probe_mask), np.asarray(cols["ts"]))
    cut = np.flatnonzero(okey[1:] != okey[:-1]) + 1
    sizes = np.diff(np.concatenate([[0], cut, [okey.size]])) if okey.size else cut
    del okey, cut
    row_big = np.repeat(sizes >= least, sizes) if not only_campaign else \
        np.ones(ordered.size, np.bool_)
    big_rows = ordered[row_big]
    small_rows = ordered[~row_big]
    del ordered, row_big, sizes
    probes = Probes.grouped_from_columns(cols, prefix64=prefix64, skey=skey, order=big_rows)
    for detector in (trw, fan, slow):
        detector.update(probes)
    prof = profile(probes)
    addresses = _addresses_per_prefix(prof["skey"], src_hi, src_lo, big_rows) if prefix64 else None
    state = trw.nbytes() + fan.nbytes() + slow.nbytes()
    det = _aligned_results(prof["skey"], np.ones(prof["skey"].size, np.bool_), trw, fan, slow)
    del trw, fan, slow
    rows = _verdicts(probes, prof, det, config, benign, addresses, prefix64=prefix64,
                     only_campaign=only_campaign)
    n_sources = len(prof["skey"])
    profiles = None
    if not prefix64 and not only_campaign:
        light = None
        if small_rows.size:
            light = _Light(cols, small_rows, skey, src_hi, key_lo)
            n_sources += light.first_ts.size
        profiles = _profile_table(prof, det, light, int(config.campaigns.get("min_members", 3)))
    if reply_like.any():
        # backscatter: reply-like packets, with the probes of the sources that sent them
        mine = is_member(skey, skey[reply_like])  # repeats are one entry of the set
        back_frame = Probes.grouped_from_columns(cols, reply_like | (probe_mask & mine),
                                                 prefix64=prefix64, skey=skey)
        back = Backscatter(**config.backscatter)
        back.update(back_frame)
        back_rows = _backscatter_rows(back, back_frame, prof, det)
        if back_rows is not None:
            rows = back_rows if rows is None else pa.concat_tables(
                [rows, back_rows], promote_options="default")
    return _Analysis(rows, profiles, state, n_sources, prefix64)


def _addresses_per_prefix(skey: np.ndarray, src_hi: np.ndarray, src_lo: np.ndarray,
                          rows: np.ndarray) -> np.ndarray:
    """Distinct source addresses behind each /64 key of ``skey`` (sorted), from the
    given rows."""
    hi, lo = src_hi[rows], src_lo[rows]
    keys = address_key(hi, np.zeros(hi.size, np.uint64))
    order = np.lexsort((lo, keys))
    k, lo = keys[order], lo[order]
    if not k.size:
        return np.ones(skey.size, np.int64)
    new_addr = np.r_[True, (k[1:] != k[:-1]) | (lo[1:] != lo[:-1])]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    uniq, counts = k[starts], np.add.reduceat(new_addr.astype(np.int64), starts)
    pos = np.searchsorted(uniq, skey)
    pos[pos >= uniq.size] = 0
    return np.where(uniq[pos] == skey, counts[pos], 1)


def _aligned_results(all_keys: np.ndarray, candidate: np.ndarray, trw: ThresholdRandomWalk,
                     fan: FanOut, slow: SlowScan) -> dict[str, np.ndarray]:
    """Each detector's result, one row per source of ``all_keys`` (sorted), as numpy;
    only ``candidate`` sources were given to the detectors (the others cannot be
    flagged and get "not found")."""
    if candidate.all():
        return _aligned_subset(all_keys, trw, fan, slow)
    idx = np.flatnonzero(candidate)
    sub = _aligned_subset(all_keys[idx], trw, fan, slow)
    out: dict[str, np.ndarray] = {}
    for name, values in sub.items():
        fill: Any = -1 if name.endswith("flagged_ts") else 0
        full = np.full(all_keys.size, fill, values.dtype)
        full[idx] = values
        out[name] = full
    return out


def _aligned_subset(skey: np.ndarray, trw: ThresholdRandomWalk, fan: FanOut,
                    slow: SlowScan) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for prefix, res, names in (
        ("trw_", trw.result_arrays(), ("decision", "llr", "failures", "successes", "contacts",
                                       "flagged_after", "flagged_ts", "flagged_probes")),
        ("fan_", fan.result_arrays(), ("flagged", "flagged_ts", "rule", "pairs", "ports",
                                       "episodes")),
        ("slow_", slow.result_arrays(), ("flagged", "flagged_ts", "flagged_probes", "peak")),
    ):
        keys = res["skey"]
        if keys.size == skey.size and np.array_equal(keys, skey):  # the usual case
            pos = np.arange(skey.size)
            found = np.ones(skey.size, np.bool_)
        elif keys.size:
            pos = np.searchsorted(keys, skey)
            pos[pos >= keys.size] = 0
            found = keys[pos] == skey
        else:
            pos = np.zeros(skey.size, np.int64)
            found = np.zeros(skey.size, np.bool_)
        out[prefix + "found"] = found
        every = keys.size == skey.size and bool(found.all())
        for name in names:
            fill = -1 if name == "flagged_ts" else 0
            values = res[name]
            if every:  # the detector's rows are these sources, in this order
                out[prefix + name] = values
                continue
            out[prefix + name] = np.where(found, values[pos], fill) if values.size else \
                np.full(skey.size, fill, values.dtype)
    out["trw_hit"] = out["trw_found"] & (out["trw_decision"] == SCANNER)
    out["fan_hit"] = out["fan_found"] & out["fan_flagged"].astype(bool)
    out["slow_any"] = out["slow_found"] & out["slow_flagged"].astype(bool)
    out["slow_hit"] = out["slow_any"] & ~out["fan_hit"]
    return out


def _fanout_rule_minimum(rule: np.ndarray, config: ScanConfig) -> np.ndarray:
    """Fewest probes that can make each fan-out rule fire (a floor for its probe count
    when log times are too coarse to tell the probes of one second apart)."""
    fan = config.fanout
    least = np.array([1, fan.get("threshold", 25), fan.get("port_threshold", 15) + 1,
                      fan.get("dark_threshold", 10)], np.int64)
    return least[np.asarray(rule, np.int64)]


def _confidence_breadth(n: np.ndarray, threshold: float) -> np.ndarray:
    n = np.maximum(n.astype(np.float64), threshold)
    return 1.0 - 0.1 * (threshold / n) ** 2


def _ts_array(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return to_arrow(np.asarray(values, np.int64), mask, pa.timestamp("us"))


def _verdicts(probes: Probes, prof: dict[str, np.ndarray], det: dict[str, np.ndarray],
              config: ScanConfig, benign: BenignList | None, addresses: np.ndarray | None,
              *, prefix64: bool, only_campaign: bool) -> pa.Table | None:
    skey = prof["skey"]
    if not skey.size:
        return None
    trw_hit, fan_hit, slow_hit = det["trw_hit"], det["fan_hit"], det["slow_hit"]
    hit = trw_hit | fan_hit | slow_hit
    if only_campaign:
        hit = ~hit
    n_addr = np.ones(skey.size, np.int64) if addresses is None else addresses
    if prefix64:
        hit &= n_addr >= 2  # a /64 with one address is that address's own verdict
    sel = np.flatnonzero(hit)
    if not sel.size:
        return None
    big = np.iinfo(np.int64).max
    t_at = np.where(trw_hit, det["trw_flagged_ts"], big)[sel]
    f_at = np.where(fan_hit, det["fan_flagged_ts"], big)[sel]
    s_at = np.where(slow_hit, det["slow_flagged_ts"], big)[sel]
    flagged_at = np.minimum(np.minimum(t_at, f_at), s_at)
    has_at = flagged_at < big
    # probes sent until the first detector fired: TRW and the slow window know the
    # probe; for the fan-out it is the first probe at its time (log times are often
    # whole seconds, and counting every probe of that second would overstate it)
    f_idx = np.maximum(probes_until(probes, sel, np.where(f_at < big, f_at - 1, 0)) + 1,
                       _fanout_rule_minimum(det["fan_rule"][sel], config))
    idx = np.stack([np.where(t_at == flagged_at, det["trw_flagged_probes"][sel], big),
                    np.where(f_at == flagged_at, f_idx, big),
                    np.where(s_at == flagged_at, det["slow_flagged_probes"][sel], big)])
    flagged_probes = np.where(has_at, idx.min(axis=0), 0)

    def g(name: str) -> np.ndarray:
        return prof[name][sel]

    tool, tool_share = tool_of(prof["marks"][sel], g("probes"), g("ttls"))
    kind = scan_shape(g("hosts"), g("port_keys"), g("pairs"))
    typ = scan_type(prof["classes"][sel], protocols=g("protocols"),
                    established=g("established"), syn_sports=g("syn_sports"),
                    syn_big_window=g("syn_big_window"), tool=tool,
                    syn_ephemeral=g("syn_ephemeral"))
    classes = prof["classes"][sel][:, list(PROBE_CLASSES)]
    dominant_share = classes.max(axis=1) / np.maximum(classes.sum(axis=1), 1)
    llr = det["trw_llr"][sel]
    fan_threshold = float(config.fanout.get("threshold", 25))
    slow_threshold = float(config.slow_scan.get("threshold", 25))
    th, fh, sh = trw_hit[sel], fan_hit[sel], slow_hit[sel]
    conf = np.where(th, 1 / (1 + np.exp(-llr)), 0.0)
    conf = np.where(fh, np.maximum(conf, _confidence_breadth(g("pairs"), fan_threshold)), conf)
    conf = np.where(sh, np.maximum(conf, _confidence_breadth(g("pairs"), slow_threshold)), conf)
    conf = np.where(th | fh | sh, conf, 0.8)
    names = np.array(["campaign", "trw", "fanout", "trw,fanout", "slow_scan", "trw,slow_scan",
                      "fanout,slow_scan", "trw,fanout,slow_scan"])
    detectors = th.astype(int) + 2 * fh.astype(int) + 4 * sh.astype(int)
    key_hi, key_lo = prof["key_hi"][sel], prof["key_lo"][sel]
    status, benign_name = _status(key_hi, key_lo, benign, prefix64)  # codes, names
    offsets, values = _port_csr(probes, sel)
    t_found, f_found, s_found = det["trw_found"][sel], det["fan_found"][sel], \
        det["slow_found"][sel]
    dominant = _named(CLASS_NAMES, np.array(PROBE_CLASSES)[classes.argmax(axis=1)])
    # most verdicts (the TRW alone, no tool mark, nothing answered) get their evidence
    # here, in this thread; the insert's SQL writes the others' (_insert_scanners)
    plain = (detectors == 1) & (status == 0) & (tool == 0) & (g("answered") == 0)
    evidence = _trw_evidence(plain, det["trw_failures"][sel], det["trw_successes"][sel],
                             det["trw_contacts"][sel], llr, g("probes"), dominant_share,
                             dominant)
    return _table({
        "src_hi": key_hi, "src_lo": key_lo,
        "prefix": np.full(sel.size, 64 if prefix64 else 128, np.uint8),
        "source": _source_texts(key_hi, key_lo, prefix64),
        "status": _named(_STATUS_NAMES, status),
        "first_seen": _ts_array(g("first_ts")), "last_seen": _ts_array(g("last_ts")),
        "probes": g("probes"), "packets": g("packets"), "ports": g("ports"),
        "port_keys": g("port_keys"), "targets": g("hosts"), "pairs": g("pairs"),
        "protocols": g("protocols"), "sensors": g("sensors"), "addresses": n_addr[sel],
        "port_list": _port_list(offsets, values),
        "kind": _named(SHAPES, kind), "type": _named(TYPES, typ),
        "tool": _named(TOOLS, tool), "tool_share": tool_share,
        "detector": _named(names, detectors), "confidence": conf,
        "answered": g("answered"), "established": g("established"), "rejected": g("rejected"),
        "flagged_at": _ts_array(np.where(has_at, flagged_at, 0), ~has_at),
        "flagged_probes": to_arrow(flagged_probes, ~has_at),
        "psad_level": psad_danger_level(g("packets")).astype(np.uint8),
        "benign_name": strings(benign_name) if benign_name is not None
        else pa.nulls(sel.size, pa.string()),
        "trw_llr": to_arrow(llr, ~t_found),
        "trw_failures": to_arrow(det["trw_failures"][sel], ~t_found),
        "trw_successes": to_arrow(det["trw_successes"][sel], ~t_found),
        "trw_contacts": to_arrow(det["trw_contacts"][sel], ~t_found),
        "trw_flagged_after": to_arrow(det["trw_flagged_after"][sel], ~th),
        "fanout_rule": _named(FANOUT_RULES, det["fan_rule"][sel], ~fh),
        "fanout_pairs": to_arrow(det["fan_pairs"][sel], ~f_found),
        "fanout_ports": to_arrow(det["fan_ports"][sel], ~f_found),
        "fanout_episodes": to_arrow(det["fan_episodes"][sel], ~f_found),
        "slow_peak": to_arrow(det["slow_peak"][sel], ~s_found),
        "backscatter_replies": pa.nulls(sel.size, pa.int64()),
        "syn_share": dominant_share,
        "dominant": dominant, "evidence": evidence,
    })


def _trw_evidence(rows: np.ndarray, failures: np.ndarray, successes: np.ndarray,
                  contacts: np.ndarray, llr: np.ndarray, probes: np.ndarray,
                  share: np.ndarray, dominant: pa.Array) -> pa.Array:
    """The evidence of a verdict of the TRW alone (null where ``rows`` is False), as the
    insert's ``printf`` writes it (:func:`_insert_scanners`): integers by Arrow's cast,
    the two decimals by Python's ``%`` on each distinct value (the same correctly
    rounded text as DuckDB's ``printf``, ties to even included), joined by Arrow.

    >>> _trw_evidence(np.array([True, False]), np.array([4, 1]), np.array([0, 0]),
    ...               np.array([4, 1]), np.array([5.545, 1.0]), np.array([9, 1]),
    ...               np.array([0.125, 1.0]), strings(["syn", "syn"])).to_pylist()
    ['TRW: 4 failed and 0 successful first contacts of 4, log-likelihood ratio 5.54; \
9 probes, 12% syn', None]
    """
    idx = np.flatnonzero(rows)
    if not idx.size:
        return pa.nulls(rows.size, pa.string())

    def ints(values: np.ndarray) -> pa.Array:
        return pc.cast(to_arrow(np.asarray(values, np.int64)[idx]), pa.string())

    def decimals(values: np.ndarray, fmt: str) -> pa.Array:
        uniq, inverse = np.unique(np.asarray(values, np.float64)[idx], return_inverse=True)
        return strings([fmt % v for v in uniq.tolist()]).take(
            to_arrow(inverse.astype(np.int64).reshape(-1)))

    text = pc.binary_join_element_wise(
        _text("TRW: "), ints(failures), _text(" failed and "), ints(successes),
        _text(" successful first contacts of "), ints(contacts),
        _text(", log-likelihood ratio "), decimals(llr, "%.2f"), _text("; "), ints(probes),
        _text(" probes, "), decimals(100 * np.asarray(share, np.float64), "%.0f"),
        _text("% "), dominant.take(to_arrow(idx.astype(np.int64))), _text(""))
    at = np.full(rows.size, -1, np.int64)
    at[idx] = np.arange(idx.size)
    return text.take(to_arrow(at, at < 0))


def _text(value: str) -> pa.Scalar:
    """A string scalar for Arrow's compute functions (given a ``str``, they would ask
    pyarrow's pandas shim about it, which imports pandas)."""
    return strings([value])[0]


def _table(columns: dict[str, Any]) -> pa.Table:
    """``pa.table`` of numpy and Arrow columns, the numpy ones converted by
    :mod:`~portradar.scan.arrow_arrays` (numpy text arrays as strings): the same table,
    without pandas."""
    return pa.table({name: value if isinstance(value, pa.Array) else
                     strings(value.tolist()) if value.dtype.kind == "U" else to_arrow(value)
                     for name, value in columns.items()})


def _port_list(offsets: np.ndarray, values: np.ndarray) -> pa.Array:
    return pa.ListArray.from_arrays(to_arrow(np.asarray(offsets, np.int32)),
                                    to_arrow(np.asarray(values, np.int32)))


def _named(names: Any, codes: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """``names[codes]`` as an Arrow string array (null where ``null``): a take from the
    few names, 5-15 times faster than converting a numpy array of strings.

    >>> _named(["a", "b"], np.array([1, 0, 1]), np.array([False, False, True])).to_pylist()
    ['b', 'a', None]
    """
    index = to_arrow(np.asarray(codes, np.int64), null)
    return strings([str(name) for name in names]).take(index)


#: A verdict's status by its code (:func:`_status`).
_STATUS_NAMES = (*SPECIAL_STATUS, "benign")


def _status(key_hi: np.ndarray, key_lo: np.ndarray, benign: BenignList | None,
            prefix64: bool) -> tuple[np.ndarray, list[str | None] | None]:
    """Each verdict's status, as its index in :data:`_STATUS_NAMES` (0: scanner), and
    its benign list name (``None`` if not listed; no list when none is)."""
    special = special_source(key_hi, key_lo) if not prefix64 else np.zeros(key_hi.size, int)
    status = np.asarray(special, np.int64).copy()
    names: list[str | None] | None = None
    if benign is not None and len(benign):
        listed = benign.contains(key_hi, key_lo) & (special == 0)
        if listed.any():
            idx = np.flatnonzero(listed)
            names = [None] * key_hi.size
            for i, name in zip(idx, benign.names(key_hi[idx], key_lo[idx]), strict=True):
                status[i] = len(SPECIAL_STATUS)
                names[i] = name
    return status, names


def _source_texts(key_hi: np.ndarray, key_lo: np.ndarray, prefix64: bool) -> pa.Array:
    """Text of each source: IPv4 dotted quads joined by Arrow from the octets (the text
    the insert's SQL wrote before, :data:`_IPV4_TEXT`, at a tenth of its cost), IPv6
    ones by :func:`_ipv6_texts`.

    >>> _source_texts(np.array([0, 0x20010DB8 << 32], np.uint64),
    ...               np.array([0xFFFF_C000_0207, 1], np.uint64), False).to_pylist()
    ['192.0.2.7', '2001:db8::1']
    """
    if prefix64:
        return strings([t + "/64" for t in _ipv6_texts(key_hi, np.zeros_like(key_hi))])
    v4 = is_ipv4(key_hi, key_lo)
    addr = np.asarray(key_lo, np.uint64)[v4] & np.uint64(0xFFFF_FFFF)
    quads = pc.binary_join_element_wise(
        *(pc.cast(to_arrow((addr >> np.uint64(shift)) & np.uint64(255)), pa.string())
          for shift in (24, 16, 8, 0)), _text("."))
    if v4.all():
        return quads
    v6 = np.flatnonzero(~v4)  # IPv6 sources only, usually few
    texts = pa.concat_arrays([quads, strings(_ipv6_texts(key_hi[v6], key_lo[v6]))])
    at = np.empty(key_hi.size, np.int64)
    at[np.flatnonzero(v4)] = np.arange(len(quads))
    at[v6] = len(quads) + np.arange(v6.size)
    return texts.take(to_arrow(at))


def _ipv6_texts(key_hi: np.ndarray, key_lo: np.ndarray) -> list[str]:
    """:func:`key_to_text` of each address; by ``inet_ntop`` where the top 64 bits are
    not all zero (the same RFC 5952 text as :mod:`ipaddress`, which only differs on
    embedded IPv4 forms; 4 to 5 times faster: 4,145 sources on the benchmark).

    >>> _ipv6_texts(np.array([0x20010DB8 << 32, 0], np.uint64), np.array([1, 1], np.uint64))
    ['2001:db8::1', '::1']
    """
    packed = np.empty((key_hi.size, 2), ">u8")
    packed[:, 0] = key_hi
    packed[:, 1] = key_lo
    raw = packed.tobytes()
    return [socket.inet_ntop(socket.AF_INET6, raw[16 * i:16 * i + 16]) if hi else
            key_to_text(hi, lo) for i, (hi, lo) in enumerate(zip(key_hi.tolist(),
                                                                key_lo.tolist(), strict=True))]


def _port_csr(probes: Probes, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct TCP/UDP/SCTP ports of the given sources, as offsets and values."""
    ordered, starts = probes.grouped()
    groups = np.asarray(groups, np.int64)
    offsets = np.zeros(groups.size + 1, np.int64)
    proto = np.asarray(ordered.proto, np.int16)
    port = np.asarray(ordered.port, np.int32)
    _port_lists(starts, port, proto, groups, offsets, np.empty(0, np.int32), False)
    np.cumsum(offsets, out=offsets)
    values = np.empty(int(offsets[-1]), np.int32)
    _port_lists(starts, port, proto, groups, offsets, values, True)
    return offsets, values


@numba.njit(cache=True, nogil=True)
def _port_lists(starts, port, proto, groups, offsets, values, fill):  # pragma: no cover
    """Count (into offsets[1:]) or write (at offsets, sorted) each group's distinct
    TCP/UDP/SCTP/UDP-Lite ports: a flag per port, cleared through the list of ports set
    (no sort of the rows); only the groups' own rows are read."""
    seen = np.zeros(0x10000, np.bool_)
    buf = np.empty(0x10000, np.int32)
    for q in range(groups.shape[0]):
        g = groups[q]
        k = 0
        for i in range(starts[g], starts[g + 1]):
            pr = proto[i]
            p = port[i]
            if (pr == 6 or pr == 17 or pr == 132 or pr == 136) and 0 <= p <= 0xFFFF \
                    and not seen[p]:
                seen[p] = True
                buf[k] = p
                k += 1
        for j in range(k):
            seen[buf[j]] = False
        if fill:
            w = offsets[q]
            if k <= 32:  # most sources: an insertion sort into place, no allocation
                for j in range(k):
                    v = buf[j]
                    m = w + j
                    while m > w and values[m - 1] > v:
                        values[m] = values[m - 1]
                        m -= 1
                    values[m] = v
            else:
                b = np.sort(buf[:k])
                for j in range(k):
                    values[w + j] = b[j]
        else:
            offsets[q + 1] = k


def _backscatter_rows(back: Backscatter, frame: Probes, prof: dict[str, np.ndarray],
                      det: dict[str, np.ndarray]) -> pa.Table | None:
    """Verdicts for backscatter sources (those flagged on their probes stay scanners)."""
    res = back.result_arrays()
    label = res["backscatter"].astype(bool)
    if not label.any():
        return None
    skey = res["skey"].astype(np.uint64)
    flagged_keys = prof["skey"][det["trw_hit"] | det["fan_hit"] | det["slow_hit"]]
    label &= ~np.isin(skey, flagged_keys)
    if not label.any():
        return None
    bprof = profile(frame)
    pos = np.searchsorted(bprof["skey"], skey)
    pos[pos >= bprof["skey"].size] = 0
    sel = np.flatnonzero(label)
    rows = pos[sel]

    def g(name: str) -> np.ndarray:
        return bprof[name][rows]

    replies = res["replies"][sel]
    classes = bprof["classes"][rows][:, list(REPLY_CLASSES)]
    dominant = np.array(CLASS_NAMES)[np.array(REPLY_CLASSES)[classes.argmax(axis=1)]]
    key_hi, key_lo = g("key_hi"), g("key_lo")
    n = sel.size
    offsets, values = _port_csr(frame, rows)
    share = replies / np.maximum(g("probes"), 1)
    return _table({
        "src_hi": key_hi, "src_lo": key_lo, "prefix": np.full(n, 128, np.uint8),
        "source": _source_texts(key_hi, key_lo, False),
        "status": np.full(n, "backscatter"),
        "first_seen": _ts_array(g("first_ts")), "last_seen": _ts_array(g("last_ts")),
        "probes": g("probes"), "packets": g("packets"), "ports": g("ports"),
        "port_keys": g("port_keys"), "targets": g("hosts"), "pairs": g("pairs"),
        "protocols": g("protocols"), "sensors": g("sensors"), "addresses": np.ones(n, np.int64),
        "port_list": _port_list(offsets, values),
        "kind": np.array(SHAPES)[scan_shape(g("hosts"), g("port_keys"), g("pairs"))],
        "type": dominant, "tool": np.full(n, ""), "tool_share": np.zeros(n),
        "detector": np.full(n, "backscatter"), "confidence": share,
        "answered": g("answered"), "established": g("established"), "rejected": g("rejected"),
        "flagged_at": pa.nulls(n, pa.timestamp("us")), "flagged_probes": pa.nulls(n, pa.int64()),
        "psad_level": psad_danger_level(g("packets")).astype(np.uint8),
        "benign_name": pa.nulls(n, pa.string()),
        "trw_llr": pa.nulls(n, pa.float64()), "trw_failures": pa.nulls(n, pa.int64()),
        "trw_successes": pa.nulls(n, pa.int64()), "trw_contacts": pa.nulls(n, pa.int64()),
        "trw_flagged_after": pa.nulls(n, pa.int64()), "fanout_rule": pa.nulls(n, pa.string()),
        "fanout_pairs": pa.nulls(n, pa.int64()), "fanout_ports": pa.nulls(n, pa.int64()),
        "fanout_episodes": pa.nulls(n, pa.int64()), "slow_peak": pa.nulls(n, pa.int64()),
        "backscatter_replies": replies,
        "syn_share": share, "dominant": dominant,
    })


class _Light:
    """The light sources of a part (too few probes for any detector): for each, what
    campaign rule 1 needs to count its peers (:func:`light_groups`); the rest of its
    profile (:func:`light_profile`) only for those with enough peers (6 of the 1.6 M on
    the benchmark), instead of for all (0.21 -> 0.1 CPU-s)."""

    def __init__(self, cols: dict[str, np.ndarray], small: np.ndarray, skey: np.ndarray,
                 src_hi: np.ndarray, key_lo: np.ndarray) -> None:
        self.cols, self.small, self.skey = cols, small, skey
        self.src_hi, self.key_lo = src_hi, key_lo
        g = light_groups(small, skey, cols["ts"], cols["proto"], cols["dport"],
                         cols["icmp_type"], cols["outcome"])
        self.starts, self.first_ts, self.port_sig = g["starts"], g["first_ts"], g["port_sig"]
        self.pkey, self.answered_only = g["pkey"], g["answered_only"]
        self.key_hi, self.key_lo_first = src_hi[g["first"]], key_lo[g["first"]]

    def profile(self, sources: np.ndarray) -> dict[str, np.ndarray]:
        """:func:`light_profile` of the given sources (indices, ascending)."""
        starts = self.starts
        sizes = starts[sources + 1] - starts[sources]
        at = np.repeat(starts[sources] - np.cumsum(sizes) + sizes, sizes) + \
            np.arange(int(sizes.sum()))  # their rows, in order
        rows = self.small[at]
        cols = self.cols
        dkey = address_key(cols["dst_hi"][rows], cols["dst_lo"][rows])
        return light_profile(self.skey[rows], self.src_hi[rows], self.key_lo[rows],
                             np.asarray(cols["ts"])[rows], self.pkey[at], dkey,
                             presorted=True)


def _profile_table(prof: dict[str, np.ndarray], det: dict[str, np.ndarray],
                   light: _Light | None, min_members: int) -> pa.Table:
    """Profiles a campaign may use: flagged sources (rules 2 and 3) and sources whose
    network group has enough members (rule 1).  A partition holds whole networks, so
    the group sizes counted here are exact; most background sources have no peer and
    are not written (1.8 M rows down to the 200,000 flagged on the benchmark)."""
    names = ("key_hi", "key_lo", "first_ts", "last_ts", "probes", "port_keys", "hosts",
             "port_sig", "target_sig")
    flagged = det["trw_hit"] | det["fan_hit"] | det["slow_hit"]
    group = net_group(prof["key_hi"], prof["key_lo"], prof["port_sig"], prof["first_ts"],
                      answered_only(det["trw_successes"], det["trw_failures"]))
    if light is not None:
        group = np.concatenate([group, net_group(light.key_hi, light.key_lo_first,
                                                 light.port_sig, light.first_ts,
                                                 light.answered_only)])
    keys, mask = table(group.size)
    peers = count_per_row(group, keys, mask, np.empty(keys.size, np.int64)) >= min_members
    n_big = flagged.size
    keep_big = flagged | peers[:n_big]
    cols = {n: prof[n][keep_big] for n in names}
    keep = keep_big
    if light is not None:
        kept = np.flatnonzero(peers[n_big:])
        if kept.size:
            extra = light.profile(kept)
            cols = {n: np.concatenate([cols[n], extra[n]]) for n in names}
        keep = np.concatenate([keep_big, peers[n_big:]])
        flagged = np.concatenate([flagged, np.zeros(peers.size - n_big, np.bool_)])
    return _table({
        "src_hi": cols["key_hi"], "src_lo": cols["key_lo"],
        "first_seen": _ts_array(cols["first_ts"]), "last_seen": _ts_array(cols["last_ts"]),
        "probes": cols["probes"], "port_keys": cols["port_keys"], "targets": cols["hosts"],
        "port_sig": cols["port_sig"], "target_sig": cols["target_sig"],
        "net_group": group[keep], "flagged": flagged[keep],
    })


def answered_only(successes: np.ndarray, failures: np.ndarray) -> np.ndarray:
    """Sources that got an answer to a first contact and never a refusal or silence: a
    capture's or flow export's clients talking to services (the TRW clears them).  They
    never join campaign rule 1: a /24 of office clients using the same services is not a
    distributed scan, and a log of dropped probes has no such source."""
    return (np.asarray(successes) > 0) & (np.asarray(failures) == 0)


def net_group(key_hi: np.ndarray, key_lo: np.ndarray, port_sig: np.ndarray,
              first_ts: np.ndarray, alone: np.ndarray | None = None) -> np.ndarray:
    """Campaign rule 1's group of each source: its /24 (IPv4) or /48 (IPv6), its port
    set and the UTC day it was first seen, hashed into one key.  Sources marked in
    ``alone`` (see :func:`answered_only`) get a group of their own (their address,
    hashed otherwise), so they never have peers."""
    v4 = is_ipv4(key_hi, key_lo)
    net = np.where(v4, key_lo >> np.uint64(8), (key_hi >> np.uint64(16)) | np.uint64(1 << 63))
    day = (np.asarray(first_ts, np.int64) // 86_400_000_000).astype(np.uint64)
    group = mix64(net ^ mix64(np.asarray(port_sig, np.uint64) ^ mix64(day)))
    if alone is not None and alone.any():
        own = mix64(np.asarray(key_lo, np.uint64) ^ mix64(np.asarray(key_hi, np.uint64)
                                                        ^ np.uint64(0x9E37_79B9_7F4A_7C15)))
        group = np.where(alone, own, group)
    return group


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table | None) -> int:
    if rows is None or not rows.num_rows:
        return 0
    con.register("_rows", rows)
    try:
        cols = ", ".join(rows.column_names)
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _rows")
    finally:
        con.unregister("_rows")
    return rows.num_rows


#: Dotted text of an IPv4-mapped source, for rows whose ``source`` is left null (none
#: of :func:`_verdicts`' rows since it writes them itself, the same text).
_IPV4_TEXT = """coalesce(source, concat_ws('.', CAST((src_lo >> 24) & 255 AS VARCHAR),
    CAST((src_lo >> 16) & 255 AS VARCHAR), CAST((src_lo >> 8) & 255 AS VARCHAR),
    CAST(src_lo & 255 AS VARCHAR)))"""


def _insert_scanners(con: duckdb.DuckDBPyConnection, rows: pa.Table | None,
                     config: ScanConfig) -> int:
    if rows is None or not rows.num_rows:
        return 0
    fan_t = int(config.fanout.get("threshold", 25))
    port_t = int(config.fanout.get("port_threshold", 15))
    slow_t = int(config.slow_scan.get("threshold", 25))
    slow_w = float(config.slow_scan.get("window", 86400)) / 3600
    idle = float(config.fanout.get("idle_timeout", 900)) / 60
    common = """printf('TRW: %d failed and %d successful first contacts of %d, '
        || 'log-likelihood ratio %.2f; %d probes, %.0f%% %s', trw_failures, trw_successes,
        trw_contacts, trw_llr, probes, 100 * syn_share, dominant)"""
    evidence = f"""CASE WHEN detector = 'trw' AND status = 'scanner' AND tool = ''
        AND answered = 0 THEN {common} ELSE concat_ws('; ',
        CASE WHEN detector LIKE '%trw%' THEN printf(
            'TRW: %d failed and %d successful first contacts of %d, log-likelihood ratio %.2f',
            trw_failures, trw_successes, trw_contacts, trw_llr) END,
        CASE WHEN detector LIKE '%fanout%' THEN CASE fanout_rule
            WHEN 'ports' THEN printf('fan-out: %d distinct ports in one burst (> {port_t})',
                                     fanout_ports)
            WHEN 'dark' THEN printf('fan-out: %d distinct host:port pairs with dark hosts hit',
                                    fanout_pairs)
            ELSE printf('fan-out: %d distinct host:port pairs without {idle:g} quiet minutes'
                        || ' (>= {fan_t})', fanout_pairs) END END,
        CASE WHEN detector LIKE '%slow_scan%' THEN printf(
            'slow scan: %d distinct host:port pairs within {slow_w:g} h (>= {slow_t})',
            slow_peak) END,
        CASE WHEN status = 'backscatter' THEN printf(
            'backscatter: %d unsolicited replies (%s) out of %d packets', backscatter_replies,
            dominant, probes) END,
        CASE WHEN detector = 'campaign' THEN 'member of a campaign' END,
        printf('%d probes, %.0f%% %s', probes, 100 * syn_share, dominant),
        CASE WHEN tool <> '' THEN printf('%s fingerprint on %.0f%% of probes', tool,
                                         100 * tool_share) END,
        CASE WHEN answered > 0 THEN printf('%d probes answered', answered) END,
        CASE WHEN status = 'loopback' THEN 'loopback source: the host itself or spoofed, '
                                           || 'never block' END,
        CASE WHEN status = 'unspecified' THEN 'unspecified source address: spoofed, '
                                              || 'never block' END,
        CASE WHEN status = 'benign' THEN 'listed benign: ' || benign_name END) END"""
    if "evidence" in rows.column_names:  # written where the analysis could (_verdicts)
        evidence = f"coalesce(evidence, {evidence})"
    con.register("_rows", rows)
    try:
        cols = [c for c in rows.column_names if c not in ("dominant", "evidence")]
        exprs = [_IPV4_TEXT if c == "source" else c for c in cols]
        con.execute(f"""INSERT INTO scanners ({', '.join(cols)}, evidence)
                        SELECT {', '.join(exprs)}, {evidence} FROM _rows""")
    finally:
        con.unregister("_rows")
    return rows.num_rows


def _campaigns(store: Store, config: ScanConfig, dark: CidrSet | None,
               benign: BenignList | None, *,
               lonely_events: Callable[[duckdb.DuckDBPyConnection],
                                       tuple[dict[str, np.ndarray], np.ndarray]] | None = None,
               ) -> int:
    """Regroup campaigns; give campaign-only members a verdict; fill texts.

    ``lonely_events(con)`` gives the load columns and reply row ids of the members in
    the temp table ``_lonely`` when the events are not in this store (the Spark job
    reads them from the archive); by default they are read from the store.
    """
    store.con.execute("DELETE FROM scanners WHERE detector = 'campaign'")
    n = Campaigns(**config.campaigns).run(store.con)
    return _campaign_verdicts(store, config, dark, benign, n, lonely_events=lonely_events)


def _regroup(store: Store, config: ScanConfig, scope: Scope,
             verdicts: list[pa.Table]) -> int:
    """:meth:`Campaigns.run` while the :class:`VerdictWriter` replaces the verdicts on its
    own connection: the campaigns read the verdicts' status and tool from the stored
    ones this run does not replace (this transaction still sees them as they were) and
    from the new ``verdicts``."""
    con = store.con
    tags = "src_hi, src_lo, prefix, status, tool"
    # a view, not a copy: the campaigns' two reads of it scan the rows where they are
    named = scope.register(con, "_scope_nets")
    new = pa.concat_tables([t.select(["src_hi", "src_lo", "prefix", "status", "tool"])
                            for t in verdicts]) if verdicts else \
        pa.table({"src_hi": pa.array([], pa.uint64()), "src_lo": pa.array([], pa.uint64()),
                  "prefix": pa.array([], pa.uint8()), "status": pa.array([], pa.string()),
                  "tool": pa.array([], pa.string())})
    con.register("_new_tags", new)
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW _verdict_tags AS
                SELECT {tags} FROM scanners
                WHERE detector <> 'campaign' AND NOT ({scope.verdicts_sql('_scope_nets')})
                UNION ALL SELECT {tags} FROM _new_tags""")
        return Campaigns(**config.campaigns).run(con, verdicts="_verdict_tags")
    finally:
        con.execute("DROP VIEW IF EXISTS _verdict_tags")
        con.unregister("_new_tags")
        if named:
            con.unregister("_scope_nets")


def _campaign_verdicts(store: Store, config: ScanConfig, dark: CidrSet | None,
                       benign: BenignList | None, n: int, *,
                       lonely_events: Callable[[duckdb.DuckDBPyConnection],
                                               tuple[dict[str, np.ndarray], np.ndarray]]
                       | None = None) -> int:
    """After :meth:`Campaigns.run`: give campaign-only members a verdict, link the
    verdicts to their campaign, fill the campaigns' texts."""
    con = store.con
    con.execute("UPDATE scanners SET campaign_id = NULL WHERE campaign_id IS NOT NULL")
    if not n:
        return 0
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _lonely AS
           SELECT m.src_hi, m.src_lo FROM campaign_members m
           WHERE NOT EXISTS (SELECT 1 FROM scanners s WHERE s.src_hi = m.src_hi
                             AND s.src_lo = m.src_lo AND s.prefix = 128)""")
    if _count(con, "SELECT count(*) FROM _lonely"):
        if lonely_events is not None:
            cols, replies = lonely_events(con)
        else:
            table, load = event_table(con)
            lonely = "(e.src_hi, e.src_lo) IN (SELECT src_hi, src_lo FROM _lonely)"
            cols = _fetch(con, f"SELECT {load} FROM {table} e WHERE {lonely}")
            replies = _replies(con, table, lonely, cols, config)
        rows = _analyse(cols, replies, config, dark, benign, prefix64=False,
                        only_campaign=True).rows
        if rows is not None:
            rows = rows.filter(pc.equal(rows.column("detector"), _text("campaign")))
            _insert_scanners(con, rows, config)
    con.execute("DROP TABLE IF EXISTS _lonely")
    con.execute(
        """UPDATE scanners s SET campaign_id = m.campaign_id FROM campaign_members m
           WHERE s.src_hi = m.src_hi AND s.src_lo = m.src_lo AND s.prefix = 128""")
    # texts: an example member, the shared network, and the evidence in words
    rows = con.execute(
        """SELECT c.campaign_id, c.rule, min(m.src_hi), min(m.src_lo)
           FROM campaigns c JOIN campaign_members m USING (campaign_id) GROUP BY ALL"""
    ).fetchall()
    ids, examples, networks = [], [], []
    for cid, rule, hi, lo in rows:  # one per campaign
        ids.append(cid)
        examples.append(key_to_text(int(hi), int(lo)))
        networks.append(None if rule != "network" else
                        key_to_text(0, (int(lo) >> 8) << 8) + "/24" if hi == 0
                        else key_to_text((int(hi) >> 16) << 16, 0) + "/48")
    texts = pa.table({"campaign_id": to_arrow(np.array(ids, np.int32)),
                      "example": strings(examples), "network": strings(networks)})
    con.register("_texts", texts)
    try:
        con.execute("""UPDATE campaigns SET example = t.example, network = t.network
                       FROM _texts t WHERE campaigns.campaign_id = t.campaign_id""")
    finally:
        con.unregister("_texts")
    Campaigns(**config.campaigns).describe(con)
    return n


def _first(cursor: Any) -> Any:
    """The first row of a result, fetching all of it (DuckDB 2 keeps an unfinished
    result open and refuses the next query)."""
    rows = cursor.fetchall()
    return rows[0] if rows else None
