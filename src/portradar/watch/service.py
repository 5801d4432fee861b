"""The ``portradar watch`` loop: inputs → micro-batches → store → detectors → alerts → sinks.

Every ``batch_seconds`` each input hands over what arrived (whole lines of a followed
file, messages of the syslog listener, flow batches of the NetFlow listener); the lines
are parsed with the iptables reader's byte parser (or the configured line format).
**One transaction per micro-batch** writes the events of every input *and* each input's
position (table ``watch_positions``: the file's inode, offset and head fingerprint), so
after a crash, ``kill -9`` included, the service resumes exactly after the last stored
line: nothing lost, nothing counted twice.  (Network inputs have no position to resume:
messages in flight at a crash are lost unless the sender retransmits, as RELP does;
what was stored is never stored twice.)

Every ``detect_seconds`` with new events the detectors run on the store in event time:
the spike detector (:mod:`portradar.spikes`) on the per-port activity, scanner
detection (:mod:`portradar.scan.detect`, incremental) with its campaigns, and the
threat level of the ports with an open alert or fresh vulnerability news.  Spikes,
campaigns and levels become sightings (:mod:`portradar.alerts.sightings`) for the
alert lifecycle (:mod:`portradar.alerts.lifecycle`), whose notifications are
stored in the same transaction and handed to the sink workers
(:mod:`portradar.alerts.delivery`); their results are recorded on the next round.

**Rounds cost milliseconds, not seconds.**  Issue #7 asks for an alert within 5 s at
100,000 lines/s; recounting the current day and rebuilding the spike matrix every round
took 2.5-4 s (bench/syslog_bench.py).  Now each committed micro-batch is merged into the
exact distinct sets of the newest days (:mod:`portradar.watch.open_buckets`), and a
round writes only the changed (port, bucket) cells into a spike matrix kept between
rounds (:class:`~portradar.spikes.activity_matrix.LiveMatrix`, the rows that can alarm);
the alert lifecycle reads the round's ports with one query.  The store's own
per-port activity and new-source counts are refreshed on a thread of their own every
:data:`REFRESH_SECONDS` (their rows then reach the matrix: new sources, late days).
The round's spikes equal those of a full rebuild (``tests/test_watch_latency.py``);
only the new-source counts of the newest buckets (the spike's *kind*) wait for the
refresh.

In :meth:`WatchService.run` the detection rounds (and deliveries) run on a thread of
their own, woken by each micro-batch's commit; scanner detection (every
``scan_seconds``) and the store refresh each on another, each with its own DuckDB
connection, so micro-batches go on meanwhile.  The writers' tables are disjoint
(micro-batches: events, dirty days, positions, ledger; refresh: activity, new sources;
rounds: alerts, outbox; scans: verdicts); a DuckDB write conflict is retried
(micro-batch) or redone next time (round, refresh, scan).
:meth:`WatchService.step` does it all in line (tests, shutdown), the refresh included
in every round.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib.resources import files
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from portradar.alerts.alert import Alert
from portradar.alerts.delivery import DeliveryResult, SinkWorker
from portradar.alerts.lifecycle import AlertBook, LifecycleParams
from portradar.alerts.sightings import Assessor
from portradar.ingest.lines import line_bounds
from portradar.ingest.reader import ReadOptions, ReadStats
from portradar.ingest.registry import get_reader
from portradar.store import ledger
from portradar.store.duckdb_store import Store
from portradar.watch.config import InputConfig, WatchConfig
from portradar.watch.file_follower import FileFollower, FilePosition
from portradar.watch.open_buckets import OpenBuckets, batch_columns, store_seed
from portradar.watch.syslog_listener import SyslogListener

log = logging.getLogger(__name__)

#: Attempts at a micro-batch's transaction when DuckDB reports a write conflict with the
#: detection thread (the tables they write are disjoint, so one retry is the most seen).
INGEST_ATTEMPTS = 5
#: Nice value of the scanner detection thread (Linux: per thread): its verdicts can wait,
#: micro-batches and spike rounds cannot.
SCAN_NICE = 10
#: Seconds between refreshes of the store's per-port activity and new-source counts on
#: their own thread while events flow.  Rounds read the open buckets from memory
#: (:mod:`portradar.watch.open_buckets`), so this only delays the new-source counts of
#: the newest buckets (the spike *kind*, never the alert) and bounds the days kept in
#: memory; a refresh costs about 2 s at 100,000 lines/s (bench/syslog_bench.py).
REFRESH_SECONDS = 10.0
#: Nice value of the refresh thread: it yields to micro-batches and rounds, less than
#: scanner detection does (the open days stay in memory until it has run).
REFRESH_NICE = 5

POSITIONS_SQL = """
CREATE TABLE IF NOT EXISTS watch_positions (
    input VARCHAR PRIMARY KEY, input_id INTEGER NOT NULL, position VARCHAR,
    records BIGINT NOT NULL, events BIGINT NOT NULL, skipped BIGINT NOT NULL,
    updated TIMESTAMP
);
"""


@dataclass
class InputState:
    """One configured input at run time, with its counters (for the metrics)."""

    config: InputConfig
    input_id: int
    records: int = 0
    events: int = 0
    skipped: int = 0
    stats: ReadStats = field(default_factory=ReadStats)
    follower: FileFollower | None = None
    listener: Any = None
    reader: Any = None
    flows: list[pa.RecordBatch] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_event_ts: float = 0.0
    last_arrival: float = 0.0
    seen: tuple[int, int] = (0, 0)  # a NetFlow listener's records and skipped so far


def _cursor_store(store: Store) -> Store:
    """A second connection to ``store``'s database (own transactions, temp tables, macros)."""
    con = store.con.cursor()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(files("portradar.store").joinpath("macros.sql").read_text())
    return Store(con, store.path, store.read_only)


class WatchService:
    """Run the configured inputs into ``store`` until :meth:`stop`; see the module doc."""

    def __init__(self, store: Store, config: WatchConfig, *,
                 sinks: list[tuple[Any, dict[str, Any]]] | None = None) -> None:
        from portradar.alerts.sinks import build_sink

        self.store = store
        self.config = config
        self.options = ReadOptions(tz=config.tz, year=config.year, sensor=config.sensor)
        store.con.execute(POSITIONS_SQL)
        #: The detectors' own DuckDB connection: in :meth:`run` they work on a thread of
        #: their own while the micro-batches go on (DuckDB's MVCC: one snapshot each).
        self.dstore = _cursor_store(store)
        #: Scanner detection's: in :meth:`run` it has a thread of its own too, so that a
        #: scan (seconds on a large store) never delays a spike round.
        self.sstore = _cursor_store(store)
        #: The activity refresh's (per-port activity and new sources of dirty days).
        self.rstore = _cursor_store(store)
        #: Exact activity of the newest days, merged per micro-batch; the rounds'
        #: spike matrix (:class:`LiveMatrix`) takes its changed cells.
        self.open = OpenBuckets(config.period)
        self.live: Any = None
        self._refreshed: queue.Queue[dict[str, np.ndarray]] = queue.Queue()
        self._batch_done = threading.Event()
        self._refresh_dirty = True
        self._last_refresh = -float("inf")
        self._refresher: threading.Thread | None = None
        self._assessor = Assessor(self.dstore)
        self.book = AlertBook(self.dstore,
                              LifecycleParams(update_interval=config.update_interval),
                              assess=self._assess)
        self.results: queue.Queue[DeliveryResult] = queue.Queue()
        built = sinks if sinks is not None else [(build_sink(t), t) for t in config.sinks]
        self.workers: dict[str, SinkWorker] = {}
        for sink, table in built:
            name = str(table.get("name", sink.name))
            sink.name = name
            self.workers[name] = SinkWorker(
                sink, self.results, retries=int(table.get("retries", 3)),
                backoff=float(table.get("backoff", 1.0)),
                min_interval=float(table.get("min_interval", 0.0)))
        self._in_flight: set[tuple[int, str]] = set()
        self._stop = threading.Event()
        self.inputs: list[InputState] = [self._input(c) for c in config.inputs]
        self._dirty = False
        self._last_detect = 0.0
        self._last_scan = -float("inf")
        self._last_level = -float("inf")
        self._scan_dirty = True  # once at start: the store may hold events not scanned
        self._scanner: threading.Thread | None = None
        self.scan_summary: Any = None
        self._detector: threading.Thread | None = None
        self._detector_stop = threading.Event()
        self._detector_error: BaseException | None = None
        self.started = time.monotonic()
        self.counters: dict[str, float] = {"batches": 0, "detections": 0, "alerts_sent": 0,
                                           "deliveries_failed": 0, "scanners": 0,
                                           "open_alerts": 0, "detect_seconds": 0.0,
                                           "scan_seconds": 0.0, "ingest_retries": 0,
                                           "detect_cpu_seconds": 0.0,
                                           "round_cells_seconds": 0.0,
                                           "round_spikes_seconds": 0.0,
                                           "round_others_seconds": 0.0,
                                           "round_alerts_seconds": 0.0,
                                           "refreshes": 0, "refresh_seconds": 0.0}
        self.metrics_server: Any = None
        if config.metrics:
            from portradar.alerts.sinks.prometheus import MetricsServer

            self.metrics_server = MetricsServer(
                self.metrics_text, host=str(config.metrics.get("host", "127.0.0.1")),
                port=int(config.metrics.get("port", 9464))).start()
        self.dashboard: Any = None
        if config.serve is not None:
            from portradar.web.embedded_server import DashboardServer

            self.dashboard = DashboardServer(
                store, host=str(config.serve.get("host", "127.0.0.1")),
                port=int(config.serve.get("port", 8080)), auth=config.serve.get("auth"))
            try:
                self.dashboard.start()
            except BaseException:
                if self.metrics_server is not None:
                    self.metrics_server.stop()
                raise
        row = store.con.execute("SELECT max(ts) FROM event_rows").fetchone()
        if store.setting("watch_since") is None:
            store.set_setting("watch_since", row[0].isoformat() if row and row[0] else "")

    # -- inputs -----------------------------------------------------------------------
    def _input(self, cfg: InputConfig) -> InputState:
        con = self.store.con
        row = con.execute("SELECT input_id, position, records, events, skipped FROM "
                          "watch_positions WHERE input = ?", [cfg.name]).fetchone()
        if row is None:
            with self.store.transaction():
                input_id = ledger.create(self.store, b"portradar-watch\0" + cfg.name.encode(),
                                         cfg.name, cfg.options.get("format", cfg.type))
                con.execute("INSERT INTO watch_positions VALUES (?, ?, NULL, 0, 0, 0, ?)",
                            [cfg.name, input_id, datetime.now(tz=UTC)])
            row = (input_id, None, 0, 0, 0)
        state = InputState(cfg, int(row[0]), records=row[2], events=row[3], skipped=row[4],
                           stats=ReadStats(source=cfg.name))
        opts = cfg.options
        if cfg.type in ("file", "syslog"):
            state.reader = get_reader(str(opts.get("format", "iptables")))()
        if cfg.type == "file":
            pos = FilePosition(*json.loads(row[1])) if row[1] else None
            state.follower = FileFollower(str(opts["path"]), pos)
        elif cfg.type == "syslog":
            state.listener = SyslogListener(
                host=str(opts.get("host", "127.0.0.1")), udp_port=opts.get("udp"),
                tcp_port=opts.get("tcp")).start()
        elif cfg.type == "capture":
            from portradar.watch.packet_capture import PacketCapture

            state.listener = PacketCapture(
                str(opts["interface"]), str(opts.get("filter", "")),
                snaplen=int(opts.get("snaplen", 256)),
                probe_timeout=float(opts.get("probe_timeout", 3.0)),
                sensor=opts.get("sensor", self.config.sensor),
                tcpdump=str(opts.get("tcpdump", "tcpdump"))).start()
            state.stats = state.listener.stats
        else:
            from portradar.ingest.netflow_listener import DEFAULT_PORT, NetflowListener

            def keep(batch: pa.RecordBatch, state: InputState = state) -> None:
                with state.lock:
                    state.flows.append(batch)

            state.listener = NetflowListener(
                keep, host=str(opts.get("host", "127.0.0.1")),
                port=int(opts.get("port", DEFAULT_PORT)),
                batch_seconds=min(1.0, self.config.batch_seconds)).start()
            state.stats = state.listener.stats  # skip reasons: reply flows, bad datagrams
        return state

    def _parse(self, state: InputState, data: bytes) -> pa.RecordBatch:
        buf = np.frombuffer(data, dtype=np.uint8)
        starts, ends = line_bounds(buf)
        before = state.stats.skipped_total
        state.stats.records += len(starts)
        batch = state.reader.parse_lines(buf, starts, ends, state.records + 1, self.options,
                                         state.stats)
        state.records += len(starts)
        state.skipped += state.stats.skipped_total - before
        return batch

    def _collect(self, state: InputState) -> tuple[list[pa.RecordBatch], Any]:
        """(batches, new position or None) of what the input has now."""
        if state.follower is not None:
            data, pos = state.follower.read()
            if not data:
                return [], None
            return [self._parse(state, data)], pos
        if state.config.type == "syslog":  # pieces: the UDP thread runs between them
            return [self._parse(state, d) for d in state.listener.drain_chunks()], None
        if state.config.type == "capture":
            before = state.listener.counts["packets"]
            batch = state.listener.drain()
            state.records += state.listener.counts["packets"] - before
            state.skipped = state.listener.stats.skipped_total
            return ([batch] if batch.num_rows else []), None
        with state.lock:
            flows, state.flows = state.flows, []
        # flow records read, not events: a reply flow that decided a probe's outcome,
        # or a record of a malformed datagram, is counted and skipped by the listener
        counts = state.listener.counters()
        records, skipped = counts["records"], counts["skipped"]
        state.records += records - state.seen[0]
        state.skipped += skipped - state.seen[1]
        state.seen = (records, skipped)
        return flows, None

    # -- one round --------------------------------------------------------------------
    def step(self) -> int:
        """One micro-batch of every input, then (without the detection thread) the
        detectors when due and the deliveries; returns the events stored."""
        stored = self.ingest()
        if self._detector is None:
            if self._detection_due():
                self.detect()
            self._deliver()
        return stored

    def ingest(self) -> int:
        """One micro-batch of every input in one transaction; returns the events stored."""
        collected = [(s, *self._collect(s)) for s in self.inputs]
        if not any(batches or pos is not None for _, batches, pos in collected):
            return 0
        for attempt in range(INGEST_ATTEMPTS):
            try:
                counts = self._store_batch(collected)
                break
            except duckdb.TransactionException:  # a conflict with the detection thread
                if attempt == INGEST_ATTEMPTS - 1:
                    raise
                self.counters["ingest_retries"] += 1
                log.warning("watch: micro-batch conflicted with detection; retrying")
                time.sleep(0.05 * (attempt + 1))
        stored = 0
        for (state, batches, pos), n in zip(collected, counts, strict=True):
            for b in batches:
                if b.num_rows:
                    self.open.add(**batch_columns(b))
            state.events += n
            stored += n
            if state.follower is not None and pos is not None:
                state.follower.commit(pos)
            if batches:
                state.last_arrival = time.monotonic()
        self.counters["batches"] += 1
        if stored:
            self._dirty = self._scan_dirty = self._refresh_dirty = True
            self._batch_done.set()
        return stored

    def _store_batch(self, collected: list[tuple[InputState, list[pa.RecordBatch], Any]],
                     ) -> list[int]:
        """Events and positions of one micro-batch; the events per input."""
        counts = []
        with self.store.transaction():
            # the open buckets start a day with what the store holds of it (a restart
            # mid-day), read before this micro-batch's own events are in
            ts = [b.column("ts").cast(pa.int64()).to_numpy() for _, batches, _ in collected
                  for b in batches if b.num_rows]
            if ts:
                seed = store_seed(self.store.con)
                for day in self.open.to_seed(np.concatenate(ts)):
                    self.open.seed(day, seed(day))
            for state, batches, pos in collected:
                n = sum(self.store.append_events(b, input_id=state.input_id)
                        for b in batches)
                counts.append(n)
                params: list[Any] = [state.records, state.events + n, state.skipped,
                                     datetime.now(tz=UTC)]
                if pos is not None:
                    self.store.con.execute(
                        "UPDATE watch_positions SET position = ?, records = ?, events = ?, "
                        "skipped = ?, updated = ? WHERE input = ?",
                        [json.dumps(pos.as_tuple()), *params, state.config.name])
                elif batches:
                    self.store.con.execute(
                        "UPDATE watch_positions SET records = ?, events = ?, skipped = ?, "
                        "updated = ? WHERE input = ?", [*params, state.config.name])
                if n:  # the ledger's event total: scanner detection's incremental check
                    self.store.con.execute(
                        "UPDATE inputs SET events = events + ?, last_seen = ? "
                        "WHERE input_id = ?", [n, params[3], state.input_id])
        return counts

    def _detection_due(self) -> bool:
        return self._dirty and time.monotonic() - self._last_detect >= self.config.detect_seconds

    # -- detection ----------------------------------------------------------------------
    def detect(self) -> list[Any]:
        """Run the detectors on the store and feed the alert lifecycle (event time)."""
        from portradar.alerts import sightings as seen

        self._dirty = False  # events stored from here on make the next round
        started = self._last_detect = time.monotonic()
        self.counters["detections"] += 1
        store = self.dstore
        cpu = time.thread_time()
        sightings, newest = self._spike_sightings()
        if newest is None:
            return []
        others = time.monotonic()
        if self.config.scanners:
            if self._scanner is None and self._scan_due():
                self._scanners()
            sightings += seen.campaign_sightings(store, newest)
        as_of = date.fromisoformat(newest[:10])
        ports = {(a.proto, a.port) for a in self.book.alerts("open")}
        if started - self._last_level >= self.config.level_seconds:
            self._last_level = started
            self._assessor.forget(ports)  # new events may change their level; others: daily
        ports |= self._assessor.due(seen.level_candidates(store, as_of) - ports, as_of,
                                    seen.LEVEL_BUDGET)
        sightings += seen.level_sightings(ports, as_of, newest, self._assessor)
        since = store.setting("watch_since") or None
        alerts = time.monotonic()
        with store.transaction():
            notes = self.book.observe(sightings, since=since)
        self.counters["open_alerts"] = len(self.book.alerts("open"))
        took = time.monotonic() - started
        self.counters["round_others_seconds"] += alerts - others
        self.counters["round_alerts_seconds"] += time.monotonic() - alerts
        self.counters["detect_seconds"] += took  # a counter: rate() is the busy share
        self.counters["detect_cpu_seconds"] += time.thread_time() - cpu
        log.debug("watch: detection round %.2f s, %d sightings, %d notifications",
                  took, len(sightings), len(notes))
        return notes

    # -- the spike matrix ---------------------------------------------------------------
    def _spike_sightings(self) -> tuple[list[Any], str | None]:
        """Spike sightings of the live matrix, brought up to date with the open buckets'
        changed cells and the store refreshes since the last round."""
        from portradar.alerts import sightings as seen
        from portradar.spikes.activity_matrix import LiveMatrix, from_store
        from portradar.spikes.spike_detector import SpikeParams

        store = self.dstore
        started = time.monotonic()
        if self._refresher is None:  # no refresh thread (step(), close()): in line
            self._refresh_store(store)
        if self.live is None:
            sp = SpikeParams.for_period(self.config.period)
            busy = (sp.min_excess_sources, sp.min_excess_records)
            self.live = LiveMatrix.from_matrix(
                from_store(store, period=self.config.period, scope="all", busy=busy), busy)
            while not self._refreshed.empty():  # older than what was just read
                self._refreshed.get_nowait()
            self._apply(self.open.cells())
        while not self._refreshed.empty():
            self._apply_refreshed(self._refreshed.get_nowait())
        cells, _stale = self.open.take_changed()  # stale days: the store refresh counts them
        self._apply(cells)
        spikes = time.monotonic()
        self.counters["round_cells_seconds"] += spikes - started
        out = seen.matrix_sightings(self.live.matrix)
        self.counters["round_spikes_seconds"] += time.monotonic() - spikes
        return out

    def _apply(self, cells: dict[str, np.ndarray]) -> None:
        """Write cells into the live matrix; rows they make busy come with their history
        (the store's rows, then the open buckets' fresher cells)."""
        from portradar.activity import new_sources as ns

        new = self.live.update(cells)
        if not new.size:
            return
        store = self.dstore
        sql, params = self.live.history_sql(new, ns.table_exists(store, self.config.period))
        hist = store.query(sql, params)
        self.live.add_rows({n: np.asarray(hist.column(n).to_numpy(), np.int64)
                            for n in hist.column_names})
        mem = self.open.cells()
        keep = np.isin(mem["proto"] * 131072 + mem["port"] + 1, new)
        self.live.add_rows({n: a[keep] for n, a in mem.items()})  # fresher, no new sources

    def _apply_refreshed(self, cells: dict[str, np.ndarray]) -> None:
        """Rows of a store refresh: the new-source counts everywhere, the activity of the
        days not in memory (late events; the open buckets' counts are fresher)."""
        tracked = np.isin(cells["t"] // 86400, np.fromiter(self.open.days, np.int64))
        self._apply({n: a[~tracked] for n, a in cells.items()})
        self._apply({n: cells[n][tracked] for n in ("t", "proto", "port", "new_sources")})

    def _refresh_store(self, store: Store) -> None:
        """The store's per-port activity and new sources of the dirty days; their rows
        go to the next round (:meth:`_apply_refreshed`), and the open buckets may let
        the days refreshed go."""
        from portradar.activity import new_sources as ns

        started = time.monotonic()
        self._refresh_dirty = False
        mark = self.open.mark()  # every micro-batch up to here is in the snapshot below
        with store.transaction():
            days = [r[0] for r in store.con.execute(
                "SELECT DISTINCT day FROM activity_dirty").fetchall()]
            store.refresh_activity()
        ns.sync(store)
        if days:
            table = ("port_activity_hourly" if self.config.period == "hour"
                     else "port_activity_daily")
            new_col = ("coalesce(n.new_sources, 0)" if ns.table_exists(store, self.config.period)
                       else "0")
            join = (f"LEFT JOIN {ns.table_name(self.config.period)} n "
                    "USING (bucket, sensor, proto, port)" if new_col != "0" else "")
            rows = store.query(
                f"""SELECT epoch(a.bucket)::BIGINT AS t, a.proto::BIGINT AS proto,
                           a.port::BIGINT AS port, a.records::BIGINT AS records,
                           a.sources::BIGINT AS sources, a.targets::BIGINT AS targets,
                           {new_col}::BIGINT AS new_sources
                    FROM {table} a {join}
                    WHERE a.sensor = '*' AND a.bucket >= CAST(? AS DATE)""",
                [min(days)])
            self._refreshed.put({n: np.asarray(rows.column(n).to_numpy(), np.int64)
                                 for n in rows.column_names})
        self.open.covered(mark)
        self._last_refresh = time.monotonic()
        self.counters["refreshes"] += 1
        self.counters["refresh_seconds"] += time.monotonic() - started
        log.debug("watch: activity refresh %.2f s, %d dirty days", time.monotonic() - started,
                  len(days))

    def _refresh_due(self) -> bool:
        return (self.live is not None and self._refresh_dirty
                and time.monotonic() - self._last_refresh >= REFRESH_SECONDS)

    def _refresh_loop(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), REFRESH_NICE)
        while not self._detector_stop.is_set():
            if self._refresh_due():
                try:
                    self._refresh_store(self.rstore)
                except duckdb.TransactionException:  # a conflict: the next run redoes it
                    self._refresh_dirty = True
                    log.warning("watch: activity refresh conflicted; retrying")
                except Exception:  # refresh problems must not stop the service
                    self._refresh_dirty = True
                    log.exception("watch: activity refresh failed")
            self._detector_stop.wait(0.5)

    def _scan_due(self) -> bool:
        return (self._scan_dirty
                and time.monotonic() - self._last_scan >= self.config.scan_seconds)

    def _scanners(self) -> None:
        from portradar.scan.detect import ensure_detection

        self._scan_dirty = False
        started = self._last_scan = time.monotonic()
        store = self.sstore
        try:
            # one snapshot: the watermark, the ledger and the rows it reads agree while
            # micro-batches commit meanwhile
            with store.transaction():
                self.scan_summary = ensure_detection(store)
            (n,) = store.con.execute(
                "SELECT count(*) FROM scanners WHERE status = 'scanner'").fetchone()  # type: ignore[misc]
            self.counters["scanners"] = n
            if self.config.stix_path:
                from portradar.alerts.sinks.stix import write_bundle

                write_bundle(store, self.config.stix_path)
        except Exception:  # scanner detection problems must not stop the service
            self._scan_dirty = True  # tried again at the next run
            log.exception("watch: scanner detection failed")
        self.counters["scan_seconds"] += time.monotonic() - started
        log.debug("watch: scanner detection %.2f s", time.monotonic() - started)

    def _assess(self, alert: Alert) -> tuple[str, list[str], list[str]]:
        if not 1 <= alert.port <= 65535:
            return "", [], []
        return self._assessor(alert.proto, alert.port, date.fromisoformat(alert.updated_at[:10]))

    # -- delivery -----------------------------------------------------------------------
    def _deliver(self) -> None:
        while True:
            try:
                res = self.results.get_nowait()
            except queue.Empty:
                break
            with self.dstore.transaction():
                for oid in res.outbox_ids:
                    self.book.record_delivery(oid, res.sink, res.status, res.attempts,
                                              res.error, datetime.now(tz=UTC))
                    self._in_flight.discard((oid, res.sink))
            self.counters["alerts_sent" if res.status == "delivered"
                          else "deliveries_failed"] += len(res.outbox_ids)
        for sink, note in self.book.pending(list(self.workers), self._in_flight):
            if self.workers[sink].offer(note):
                self._in_flight.add((note.outbox_id, sink))

    # -- running ------------------------------------------------------------------------
    def run(self, max_seconds: float | None = None) -> None:
        """Micro-batches every ``batch_seconds`` until :meth:`stop` (or ``max_seconds``),
        with the detectors and deliveries on a thread of their own meanwhile."""
        end = None if max_seconds is None else time.monotonic() + max_seconds
        self.start_detector()
        try:
            while not self._stop.is_set() and (end is None or time.monotonic() < end):
                started = time.monotonic()
                self.step()
                if self._detector_error is not None:
                    raise self._detector_error
                self._stop.wait(max(0.0, self.config.batch_seconds
                                    - (time.monotonic() - started)))
        finally:
            self.stop_detector()
        self.close()

    def stop(self) -> None:
        self._stop.set()

    def start_detector(self) -> None:
        """Run the detection rounds and deliveries on their own thread (and connection)."""
        if self._detector is None:
            self._detector_stop.clear()
            self._detector = threading.Thread(target=self._detect_loop,
                                              name="watch-detect", daemon=True)
            self._detector.start()
            self._refresher = threading.Thread(target=self._refresh_loop,
                                               name="watch-refresh", daemon=True)
            self._refresher.start()
            if self.config.scanners:
                self._scanner = threading.Thread(target=self._scan_loop,
                                                 name="watch-scan", daemon=True)
                self._scanner.start()

    def stop_detector(self) -> None:
        """Finish the current round and stop the detection thread (step() detects again)."""
        if self._detector is not None:
            self._detector_stop.set()
            self._detector.join()
            self._detector = None
        if self._refresher is not None:
            self._refresher.join()
            self._refresher = None
        if self._scanner is not None:
            self._scanner.join()
            self._scanner = None

    def _detect_loop(self) -> None:
        while not self._detector_stop.is_set():
            self._batch_done.clear()  # a commit from here on wakes the next wait
            try:
                if self._detection_due():
                    self.detect()
                self._deliver()
            except duckdb.TransactionException:  # a conflict: the next round redoes it
                log.warning("watch: detection round conflicted with ingest; retrying")
                self._dirty = True
            except BaseException as exc:  # handed to the main loop, which stops
                self._detector_error = exc
                return
            # the next micro-batch's commit starts the next round at once (deliveries'
            # results are looked at every 0.2 s meanwhile)
            self._batch_done.wait(min(0.2, self.config.batch_seconds))

    def _scan_loop(self) -> None:
        # background work: on Linux a thread has its own nice value (inherited by the
        # analysis threads it starts), so the scan yields the CPU to ingest and rounds
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SCAN_NICE)
        while not self._detector_stop.is_set():
            if self._scan_due():
                self._scanners()  # logs its own failures; a conflict: the next run redoes it
            self._detector_stop.wait(min(0.5, self.config.batch_seconds))

    def close(self, drain_seconds: float = 30.0) -> None:
        """Store what the listeners still hold, wait for the sinks, stop everything."""
        for state in self.inputs:
            if state.listener is not None:
                state.listener.stop()
        self.step()
        if self._dirty:
            self.detect()
        deadline = time.monotonic() + drain_seconds
        self._deliver()
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
            self._deliver()
        for worker in self.workers.values():
            worker.stop()
        for state in self.inputs:
            if state.follower is not None:
                state.follower.close()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.dashboard is not None:
            self.dashboard.stop()

    # -- metrics ------------------------------------------------------------------------
    def metrics_text(self) -> str:
        """Prometheus text exposition of the service's counters."""
        from portradar.alerts.sinks.prometheus import exposition

        uptime = max(1e-9, time.monotonic() - self.started)
        per_input = []
        for s in self.inputs:
            lag = 0.0
            if s.follower is not None:
                lag = float(s.follower.lag_bytes())
            elif s.config.type in ("syslog", "capture"):
                lag = float(s.listener.pending_bytes())
            dropped = 0.0
            if s.config.type == "syslog":
                dropped = float(s.listener.counts["udp_dropped"] + s.listener.kernel_drops())
            elif s.config.type == "netflow":
                dropped = float(s.listener.counters()["dropped"])
            elif s.config.type == "capture":
                s.listener.request_statistics()  # answered on stderr: one scrape late
                dropped = float(s.listener.dropped())
            per_input.append({"input": s.config.name, "events": s.events,
                              "records": s.records, "skipped": s.skipped,
                              "rate": s.events / uptime, "lag": lag, "dropped": dropped})
        return exposition(per_input, dict(self.counters))
