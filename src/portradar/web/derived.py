"""What the pages show, computed from the store by portradar's own detectors, and cached.

Nothing here detects anything itself: spikes and baselines come from
:class:`~portradar.spikes.spike_detector.SpikeDetector` over
:func:`~portradar.spikes.activity_matrix.from_store` (as ``portradar spikes`` and
``portradar port``), levels from :func:`~portradar.assess.threat_level.assess_port` over
the ports ``portradar assess`` picks, rules from :mod:`portradar.assess.block_rules` and
:mod:`portradar.assess.ips_rules`.

**Cache.**  The detector over every port of the store takes about 140 ms and the levels
of twenty ports about 60 ms (30 days of 20 sensors, measured with
``bench/web_bench.py``); both depend only on the data.  So results are cached per *data
version* (:meth:`~portradar.web.store_access.StoreAccess.version`: event and activity
counts, the last ingest run, the scan watermark) in a small LRU: any ingest makes them
stale, the next request recomputes.  Concurrent requests for the same result wait for
one computation instead of starting their own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

from portradar.activity.periods import proto_name
from portradar.spikes.activity_matrix import ActivityMatrix, from_store
from portradar.spikes.port_view import PortRun as PortModel
from portradar.spikes.spike_detector import DetectorRun, Spike, SpikeDetector
from portradar.store.duckdb_store import Store

#: Results kept (each is a few hundred kB at most: matrices of one port, or the
#: detector's output over the candidate ports of the store).
CACHE_ENTRIES = 128
#: Ports shown as movers on the overview (a screenful with sparklines).
MOVERS = 10


class ResultCache:
    """An LRU of results for one data version, one computation per key at a time.

    >>> cache = ResultCache(size=2)
    >>> cache.get(1, "a", lambda: 42), cache.get(1, "a", lambda: 0), cache.hits
    (42, 42, 1)
    >>> cache.get(2, "a", lambda: 43)  # new data: computed again
    43
    """

    def __init__(self, size: int = CACHE_ENTRIES) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._version: Any = None
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._stale: dict[Hashable, Any] = {}
        self.hits = 0
        self.misses = 0
        self.stale = 0

    def clear(self) -> None:
        """Forget everything (after the server itself changed the data)."""
        with self._lock:
            self._items.clear()
            self._stale.clear()
            self._key_locks.clear()
            self._version = None

    def _refresh(self, key: Hashable, key_lock: threading.Lock,
                 refresh: Callable[[], tuple[Any, Any]]) -> None:
        import logging

        try:
            version, value = refresh()
            with self._lock:
                if version == self._version:
                    self._items[key] = value
                    self._stale.pop(key, None)
        except Exception:
            logging.getLogger("portradar.web").exception("background refresh failed")
        finally:
            key_lock.release()

    def peek(self, version: Any, key: Hashable) -> Any:
        """The result if it is already there (never computes)."""
        with self._lock:
            return self._items.get(key) if version == self._version else None

    def get(self, version: Any, key: Hashable, compute: Callable[[], Any],
            refresh: Callable[[], tuple[Any, Any]] | None = None) -> Any:
        """The result for ``key`` at ``version``, computed once.

        With ``refresh`` (a computation that opens its own store and returns the data
        version it read and the result), a result of the previous data version is
        answered at once while ``refresh`` runs in a thread (stale while revalidating):
        nobody waits for a recomputation after an ingest.
        """
        with self._lock:
            if version != self._version:
                # keep older answers for keys the last version had not computed yet
                # (two ingests in a row must not leave a visitor waiting)
                self._stale.update(self._items)
                if len(self._stale) > 2 * self.size:
                    self._stale = dict(list(self._stale.items())[-self.size:])
                self._items.clear()
                self._key_locks.clear()
                self._version = version
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
            if refresh is not None and key in self._stale:
                self.stale += 1
                if key_lock.acquire(blocking=False):
                    threading.Thread(target=self._refresh, args=(key, key_lock, refresh),
                                     daemon=True, name="portradar-refresh").start()
                return self._stale[key]
        with key_lock:
            with self._lock:
                if self._version == version and key in self._items:
                    self.hits += 1
                    return self._items[key]
            self.misses += 1
            value = compute()
            with self._lock:
                if self._version == version:
                    self._items[key] = value
                    while len(self._items) > self.size:
                        self._items.popitem(last=False)
                if self._key_locks.get(key) is key_lock:
                    del self._key_locks[key]  # waiters hold it; later callers find the item
            return value


@lru_cache(maxsize=1)
def _registry() -> Any:
    from portradar.intel.port_registry import PortRegistry

    return PortRegistry.bundled()


@lru_cache(maxsize=8192)
def service(port: int, proto: int) -> str:
    """Service names registered for a port ('' when none or not TCP/UDP/SCTP)."""
    name = proto_name(proto)
    if name not in ("tcp", "udp", "sctp") or not 0 <= port <= 65535:
        return ""
    return str(_registry().names(port, name))


def bucket_iso(matrix: ActivityMatrix, index: int | None) -> str | None:
    if index is None or index < 0:
        return None
    when = matrix.bucket_time(index).astimezone(UTC).replace(tzinfo=None)
    return when.isoformat() + "Z"


def newest_event(store: Store) -> datetime | None:
    """Time of the newest event (event time anchors every default range)."""
    rows = store.con.execute("SELECT max(ts) FROM event_rows").fetchall()
    return rows[0][0] if rows and rows[0][0] is not None else None


# -- detection over every port ---------------------------------------------------------


@dataclass
class Detection:
    """The spike detector over all ports of one period, and its dense baselines."""

    period: str
    total: ActivityMatrix
    spikes: list[Spike]
    dense: DetectorRun  # rows = candidate rows of ``total``


def detect_all(store: Store, period: str) -> Detection:
    """Spikes of every port (per-sensor views too, for days), as ``portradar spikes``.

    The per-sensor matrix is read with only the rows the detector can use: those that
    could alarm on their own (its candidate rows) and every row of a port with a spike
    over all sensors (their share); the other rows change nothing in the answer.
    """
    total = from_store(store, period=period, scope="all")
    det = SpikeDetector.for_period(period)
    by_sensor = None
    if period == "day":
        spiking = {(int(s.proto), int(s.port)) for s in det.run(total).spikes(total)}
        sp = det.params
        by_sensor = from_store(store, period=period, scope="sensors",
                               busy=(sp.min_excess_sources, sp.min_excess_records),
                               keep=spiking)
    spikes = det.detect(total, by_sensor)
    dense = det.run(total, dense=True)
    return Detection(period, total, spikes, dense)


def bucket_span(matrix: ActivityMatrix, since: datetime, until: datetime) -> tuple[int, int]:
    """Indices ``[lo, hi)`` of the matrix's buckets that start inside ``[since, until)``."""
    if matrix.n_buckets == 0:
        return 0, 0
    start = matrix.start.astimezone(UTC).replace(tzinfo=None)
    step = matrix.bucket_seconds
    lo = int(np.ceil((since - start).total_seconds() / step))
    hi = int(np.ceil((until - start).total_seconds() / step))
    return max(0, min(lo, matrix.n_buckets)), max(0, min(hi, matrix.n_buckets))


def movers(d: Detection, since: datetime, until: datetime, limit: int = MOVERS,
           ) -> list[dict[str, Any]]:
    """Ports furthest above their baseline in the range (largest sources / baseline).

    Only buckets at least the detector's ``min_excess_sources`` above the baseline
    count (a port going from 1 to 5 sources is not moving); ``spike`` says whether the
    detector has a spike on the port in the range.
    """
    lo, hi = bucket_span(d.total, since, until)
    run = d.dense
    if hi <= lo or run.mean is None or len(run.rows) == 0:
        return []
    assert run.episode is not None
    rows = run.rows
    src = d.total.sources[rows, lo:hi].astype(np.float64)
    mean = run.mean[:, lo:hi]
    excess_ok = src - mean >= SpikeDetector.for_period(d.period).params.min_excess_sources
    ratio = np.where(excess_ok, src / np.maximum(mean, 1.0), 0.0)
    best = ratio.max(axis=1)
    order = [int(i) for i in np.argsort(-best, kind="stable") if best[i] > 0][:limit]
    out = []
    for j in order:
        i = int(rows[j])
        t = int(np.argmax(ratio[j]))
        port, proto = int(d.total.port[i]), int(d.total.proto[i])
        out.append({
            "port": port, "proto": proto_name(proto), "service": service(port, proto),
            "sources": int(src[j, t]), "baseline": round(float(mean[j, t]), 1),
            "ratio": round(float(ratio[j, t]), 2), "at": bucket_iso(d.total, lo + t),
            "spike": bool((run.episode[j, lo:hi] > 0).any()),
            "sparkline": [int(v) for v in d.total.sources[i, lo:hi]],
        })
    return out


def spike_row(s: Spike, matrix: ActivityMatrix, period: str, row: int | None = None,
              ) -> dict[str, Any]:
    """A spike as the API lists it (times ISO, the peak bucket found in the matrix:
    ``row``, or the port's all-sensors row)."""
    if row is None and s.scope == "all":
        rows = np.flatnonzero((matrix.proto == s.proto) & (matrix.port == s.port)
                              & (matrix.sensor < 0))
        row = int(rows[0]) if len(rows) else None
    end = s.end if s.end is not None else matrix.n_buckets
    peak = s.alarm
    if row is not None:
        window = matrix.sources[row, s.onset:max(end, s.onset + 1)]
        if window.size:
            peak = s.onset + int(np.argmax(window))
    hours = matrix.bucket_seconds / 3600
    proto = proto_name(s.proto)
    onset = bucket_iso(matrix, s.onset) or ""
    return {
        "id": f"{proto}-{s.port}-{period}-{onset[:13].replace(':', '')}",
        "proto": proto, "port": s.port, "period": period, "kind": s.kind,
        "onset": onset, "alarm": bucket_iso(matrix, s.alarm), "peak": bucket_iso(matrix, peak),
        "end": bucket_iso(matrix, s.end), "status": "open" if s.end is None else "ended",
        "ending": s.ending, "score": round(s.score, 1),
        "peak_sources": round(s.peak_sources), "baseline_sources": round(s.baseline_sources, 1),
        "doubling_hours": (None if s.doubling_buckets is None
                           else round(s.doubling_buckets * hours, 1)),
        "sensors": list(s.sensors), "scope": s.scope,
    }


# -- one port --------------------------------------------------------------------------


def port_model(store: Store, port: int, proto: int, period: str, sensor: str,
               ) -> PortModel | None:
    """The detector over a port's whole stored history (its warm-up), the same pass as
    :func:`portradar.spikes.port_view.port_band`: the band is the baseline mean ± 2
    standard deviations of its negative binomial."""
    from portradar.spikes.port_view import port_run

    return port_run(store, port, proto=proto, period=period, sensor=sensor)


def port_series(model: PortModel | None, period: str, since: datetime, until: datetime,
                ) -> dict[str, Any]:
    """A port's buckets in the range with the baseline band, and its spikes there."""
    if model is None:
        return {"series": [], "spikes": []}
    m, mean, sd = model.matrix, model.expected, model.sd
    lo, hi = bucket_span(m, since, until)
    targets = m.targets if m.targets is not None else np.zeros_like(m.sources)
    series = [{
        "ts": bucket_iso(m, t), "records": int(m.records[0, t]),
        "sources": int(m.sources[0, t]), "targets": int(targets[0, t]),
        "expected": round(float(mean[t]), 1),
        "band_low": round(max(0.0, float(mean[t] - 2 * sd[t])), 1),
        "band_high": round(float(mean[t] + 2 * sd[t]), 1),
    } for t in range(lo, hi)]
    spikes = [spike_row(s, m, period, 0) for s in model.spikes
              if (s.end is None or s.end > lo) and s.onset < hi]
    return {"series": series, "spikes": spikes}


def spikes_overlapping(model: PortModel | None, period: str, since: datetime,
                       until: datetime) -> list[dict[str, Any]]:
    """The spikes of a port's model that overlap ``[since, until)`` in time (the day
    detector's spikes over an hourly range: a worm doubling daily is a spike to the day
    detector but too smooth for the hour one)."""
    if model is None:
        return []
    m = model.matrix
    start = m.start.astimezone(UTC).replace(tzinfo=None)
    step = timedelta(seconds=m.bucket_seconds)
    return [spike_row(s, m, period, 0) for s in model.spikes
            if start + s.onset * step < until
            and (s.end is None or start + s.end * step > since)]


def top_scanners(store: Store, port: int, limit: int = 10) -> list[dict[str, Any]]:
    """The busiest flagged scanners that probed the port (``portradar scanners --port``)."""
    from portradar.web.api_scanners import SCANNER_COLUMNS, scanner_rows, scanners_ready

    if not scanners_ready(store):
        return []
    cur = store.con.execute(
        f"""SELECT {SCANNER_COLUMNS} FROM scanners
            WHERE status IN ('scanner', 'benign', 'loopback', 'unspecified')
              AND list_contains(port_list, ?)
            ORDER BY probes DESC, src_hi, src_lo LIMIT ?""", [port, limit])
    return scanner_rows(cur)


def vulnerabilities(store: Store, port: int, proto: int, as_of: date,
                    limit: int = 50) -> list[dict[str, Any]]:
    """Known vulnerabilities of the services behind the port, newest patch first."""
    from portradar.intel.vulnerabilities import KnowledgeBase

    kb = knowledge(store)
    if kb is None or proto not in (6, 17):
        return []
    rows = KnowledgeBase.port_vulnerabilities(kb, port, proto, as_of=as_of)[:limit]
    return [{"cve": r["cve"], "title": r.get("name") or r.get("bulletins") or r["cve"],
             "bulletins": r.get("bulletins"), "patched": _day(r.get("patched")),
             "kev": r.get("kev_added") is not None, "wormable": r.get("mass_attack") is not None,
             "exploit_published": _day(r.get("exploit_published")),
             "epss": r.get("epss"), "age_days": r.get("days_since_patch")} for r in rows]


def knowledge(store: Store) -> Any:
    """The knowledge base, or None when a read-only store has none yet."""
    from portradar.errors import StoreError
    from portradar.intel.vulnerabilities import KnowledgeBase

    try:
        return KnowledgeBase.open(store)
    except StoreError:
        return None


def _day(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, date) else None


# -- levels ----------------------------------------------------------------------------


def intel_ready(store: Store) -> bool:
    rows = store.con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name IN "
        "('intel_vulns', 'asset_services', 'asset_hosts', 'asset_patches')").fetchall()
    return bool(rows and rows[0][0] == 4)


def assess_one(store: Store, port: int, proto: int, as_of: date,
               day_detection: Detection | None = None) -> Any:
    """The level of one TCP/UDP port on ``as_of`` (None when it cannot be assessed)."""
    return assess_many(store, [(proto, port)], as_of, day_detection)[0]


def assess_many(store: Store, targets: list[tuple[int, int]], as_of: date,
                day_detection: Detection | None = None) -> list[Any]:
    """The levels of ``(proto, port)`` targets on ``as_of``, in their order, from one
    pass (:func:`~portradar.assess.threat_level.assess_ports`); None for a target
    that cannot be assessed (not TCP/UDP, no knowledge base).

    When ``as_of`` is the newest day, the spikes of the cached detection over every
    port are the ones :func:`~portradar.assess.spike_evidence.port_spikes` would find
    (same detector, same data), so they are passed in instead of re-detected.
    """
    from portradar.assess.spike_evidence import from_spike
    from portradar.assess.threat_level import assess_ports

    valid = [t for t in targets if t[0] in (6, 17) and 1 <= t[1] <= 65535]
    kb = knowledge(store) if valid and intel_ready(store) else None
    if kb is None:
        return [None] * len(targets)
    spikes: dict[tuple[int, int], list[Any]] | None = None
    if day_detection is not None and day_detection.total.n_buckets:
        total = day_detection.total
        if as_of == total.bucket_time(total.n_buckets - 1).date():
            spikes = {t: [] for t in valid}
            for s in day_detection.spikes:
                if (s.proto, s.port) in spikes:
                    spikes[(s.proto, s.port)].append(from_spike(s, total))
    found = dict(zip(valid, assess_ports(store, valid, as_of=as_of, spikes=spikes, kb=kb),
                     strict=True))
    return [found.get(t) for t in targets]


def candidate_ports(store: Store, as_of: date) -> list[tuple[int, int]]:
    """``(proto, port)`` that ``portradar assess`` looks at without a port: the day's
    busiest and the declared open ones (none without a knowledge base)."""
    from portradar.assess.threat_level import candidate_ports as candidates

    return candidates(store, as_of) if intel_ready(store) else []


def by_level(assessments: list[Any]) -> list[Any]:
    """Highest level first, then by port."""
    from portradar.assess.threat_level import LEVELS

    return sorted((a for a in assessments if a is not None),
                  key=lambda a: (-LEVELS.index(a.level), a.port))


def overall_level(assessments: list[Any], as_of: date) -> dict[str, Any]:
    """The highest level and why (the reasons of the ports at that level)."""
    if not assessments:
        return {"level": "green", "reasons": [f"no port assessed on {as_of}: no activity "
                                              "or no knowledge base yet"]}
    top = assessments[0].level
    if top == "green":
        return {"level": "green", "reasons": [f"every assessed port is green on {as_of} "
                                              f"({len(assessments)} ports)"]}
    reasons = []
    for a in assessments:
        if a.level != top:
            break
        name = f"{proto_name(a.proto)}/{a.port}"
        reasons.append(f"{name} {a.level} ({a.criterion}): " + "; ".join(a.reasons[:3]))
    return {"level": top, "reasons": reasons}


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day)
    return start, start + timedelta(days=1)
