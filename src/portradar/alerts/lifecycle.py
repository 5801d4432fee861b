"""Alert lifecycle: open, update, escalate, resolve; de-duplicated, rate-limited, stored.

The detectors are re-run on every micro-batch and report the same spike again and
again; the lifecycle turns that stream of sightings into a few notifications:

* **open**: the first sighting of a rise on a (kind, proto, port) with no open alert;
* **escalate**: the severity rose (always told);
* **update**: the same alert with new numbers, told at most once per
  ``update_interval`` of *event time* per port (the per-port rate limit);
* **resolve**: the detector says the activity returned to normal (the spike's end).

Sightings that change nothing are de-duplicated (no notification).  Every decision
uses event time (the spike's buckets, the newest event), never the wall clock, so a
replay of last month gives the same alerts as living through it.

Severity is in decades of excess distinct sources over the baseline:
:data:`SEVERITY_SOURCES` = 10 / 100 / 1,000 / 10,000 → 1 to 4.  Ten is the spike
detector's own minimum (DShield ignores ports with fewer sources); decades follow
psad's danger levels, which also grow tenfold (15 / 150 / 1,500 / 10,000 packets).

Alerts and their notifications are stored in the store (tables ``alerts`` and
``alert_outbox``) in one transaction; delivery (:mod:`portradar.alerts.delivery`)
records each sink's result in ``alert_deliveries``, so a notification is either
delivered, recorded as failed, or still pending after a crash and sent on restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from portradar.alerts.alert import Alert, Notification
from portradar.store.duckdb_store import Store

#: Excess distinct sources for severity 1, 2, 3, 4 (see the module doc).
SEVERITY_SOURCES: tuple[float, ...] = (10.0, 100.0, 1_000.0, 10_000.0)

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS alert_ids START 1;
CREATE SEQUENCE IF NOT EXISTS alert_outbox_ids START 1;
CREATE TABLE IF NOT EXISTS alerts (
    alert_id INTEGER PRIMARY KEY, key VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    proto INTEGER NOT NULL, port INTEGER NOT NULL, status VARCHAR NOT NULL,
    severity INTEGER NOT NULL, opened_at VARCHAR NOT NULL, updated_at VARCHAR NOT NULL,
    resolved_at VARCHAR, onset VARCHAR, score DOUBLE, peak_sources DOUBLE,
    baseline_sources DOUBLE, spike_kind VARCHAR, level VARCHAR, reasons VARCHAR,
    actions VARCHAR, updates INTEGER, last_told VARCHAR
);
CREATE TABLE IF NOT EXISTS alert_outbox (
    outbox_id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL, transition VARCHAR NOT NULL,
    at_time VARCHAR NOT NULL, payload VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_deliveries (
    outbox_id INTEGER NOT NULL, sink VARCHAR NOT NULL, status VARCHAR NOT NULL,
    attempts INTEGER NOT NULL, error VARCHAR, recorded_at TIMESTAMP,
    PRIMARY KEY (outbox_id, sink)
);
"""


@dataclass(frozen=True)
class LifecycleParams:
    """The lifecycle's numbers (event-time seconds)."""

    #: At most one ``update`` per port per hour of event time: an hour is the hourly
    #: detector's bucket, so each update carries one new bucket's evidence at most.
    update_interval: float = 3600.0


def severity_of(excess_sources: float) -> int:
    """Severity 0-4 from the excess distinct sources (decades, see the module doc).

    >>> [severity_of(x) for x in (3, 10, 250, 5e4)]
    [0, 1, 2, 4]
    """
    return sum(1 for t in SEVERITY_SOURCES if excess_sources >= t)


@dataclass
class Sighting:
    """What a detector saw this round, in event time."""

    kind: str
    proto: int
    port: int
    onset: str
    at: str  # the newest bucket that shows it (event time)
    end: str | None  # the bucket it returned to normal, None while open
    score: float
    peak_sources: float
    baseline_sources: float
    spike_kind: str = ""

    @property
    def excess(self) -> float:
        return max(0.0, self.peak_sources - self.baseline_sources)

    def severity_excess(self) -> int:
        return severity_of(self.excess)


def _seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


_COLUMNS = [f.name for f in fields(Alert)]


class AlertBook:
    """The stored alerts and what to tell about them (see the module doc)."""

    def __init__(self, store: Store, params: LifecycleParams | None = None,
                 assess: Any = None) -> None:
        self.store = store
        self.params = params or LifecycleParams()
        #: ``assess(alert) -> (level, reasons, actions)``; optional enrichment.
        self.assess = assess
        store.con.execute(SCHEMA)

    # -- reading ----------------------------------------------------------------------
    def _row_to_alert(self, row: tuple[Any, ...]) -> Alert:
        data = dict(zip([*_COLUMNS], row, strict=False))
        data["reasons"] = json.loads(data["reasons"] or "[]")
        data["actions"] = json.loads(data["actions"] or "[]")
        return Alert(**data)

    def alerts(self, status: str | None = None) -> list[Alert]:
        where = "WHERE status = ?" if status else ""
        rows = self.store.con.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM alerts {where} ORDER BY alert_id",
            [status] if status else []).fetchall()
        return [self._row_to_alert(r) for r in rows]

    def _open_alert(self, key: str) -> tuple[Alert, str | None] | None:
        row = self.store.con.execute(
            f"SELECT {', '.join(_COLUMNS)}, last_told FROM alerts "
            "WHERE key = ? AND status = 'open'", [key]).fetchone()
        return None if row is None else (self._row_to_alert(row[:-1]), row[-1])

    def _known(self, key: str, onset: str) -> bool:
        return bool(self.store.con.execute(
            "SELECT count(*) FROM alerts WHERE key = ? AND onset = ?", [key, onset]
        ).fetchone()[0])  # type: ignore[index]

    # -- deciding ---------------------------------------------------------------------
    def observe(self, sightings: Iterable[Sighting], *, since: str | None = None,
                ) -> list[Notification]:
        """Apply this round's sightings; returns the notifications (stored in the outbox).

        ``since``: spikes that had already ended before this event time when first seen
        are history, not news (the watch started on a store with past data).
        Call inside the micro-batch's transaction.
        """
        out: list[Notification] = []
        for s in sightings:
            key = f"{s.kind}:{s.proto}/{s.port}"
            found = self._open_alert(key)
            if found is None:
                if self._known(key, s.onset) or s.severity_excess() < 1:
                    continue  # already told (and resolved), or too small to tell
                if s.end is not None and since is not None and s.end < since:
                    continue
                alert = self._create(key, s)
                out.append(self._tell(alert, "open", s.at))
                if s.end is not None:
                    out.append(self._resolve(alert, s))
                continue
            alert, last_told = found
            sev = severity_of(s.excess)
            changed = (abs(s.peak_sources - alert.peak_sources) >= 1
                       or s.score > alert.score + 0.05)
            self._refresh(alert, s)
            if sev > alert.severity:
                alert.severity = sev
                self._enrich(alert)
                out.append(self._tell(alert, "escalate", s.at))
            elif changed and (last_told is None
                              or _seconds(last_told, s.at) >= self.params.update_interval):
                out.append(self._tell(alert, "update", s.at))
            else:
                self._save(alert)
            if s.end is not None:
                out.append(self._resolve(alert, s))
        return out

    def _create(self, key: str, s: Sighting) -> Alert:
        (alert_id,) = self.store.con.execute("SELECT nextval('alert_ids')").fetchone()  # type: ignore[misc]
        alert = Alert(alert_id=int(alert_id), key=key, kind=s.kind, proto=s.proto,
                      port=s.port, status="open", severity=max(1, severity_of(s.excess)),
                      opened_at=s.at, updated_at=s.at, onset=s.onset)
        self._refresh(alert, s)
        self._enrich(alert)
        self.store.con.execute(
            f"INSERT INTO alerts ({', '.join(_COLUMNS)}, last_told) VALUES "
            f"({', '.join('?' * (len(_COLUMNS) + 1))})", [*self._values(alert), None])
        return alert

    @staticmethod
    def _refresh(alert: Alert, s: Sighting) -> None:
        alert.score = max(alert.score, s.score)
        alert.peak_sources = max(alert.peak_sources, s.peak_sources)
        alert.baseline_sources = s.baseline_sources
        alert.spike_kind = s.spike_kind
        alert.updated_at = max(alert.updated_at, s.at)

    def _enrich(self, alert: Alert) -> None:
        if self.assess is None:
            return
        try:
            alert.level, alert.reasons, alert.actions = self.assess(alert)
        except Exception as exc:  # an assessment problem must not stop alerting
            alert.reasons = [f"assessment unavailable: {exc}"]

    def _resolve(self, alert: Alert, s: Sighting) -> Notification:
        alert.status = "resolved"
        alert.resolved_at = s.end
        return self._tell(alert, "resolve", s.end or s.at)

    def _values(self, alert: Alert) -> list[Any]:
        values = [getattr(alert, c) for c in _COLUMNS]
        values[_COLUMNS.index("reasons")] = json.dumps(alert.reasons)
        values[_COLUMNS.index("actions")] = json.dumps(alert.actions)
        return values

    def _save(self, alert: Alert, told: str | None = None) -> None:
        sets = ", ".join(f"{c} = ?" for c in _COLUMNS[1:])
        extra = ", last_told = ?" if told else ""
        params = self._values(alert)[1:] + ([told] if told else []) + [alert.alert_id]
        self.store.con.execute(f"UPDATE alerts SET {sets}{extra} WHERE alert_id = ?", params)

    def _tell(self, alert: Alert, transition: str, at: str) -> Notification:
        if transition != "open":
            alert.updates += 1
        self._save(alert, told=at)
        note = Notification(Alert(**{c: getattr(alert, c) for c in _COLUMNS}), transition, at)
        (note.outbox_id,) = self.store.con.execute(  # type: ignore[misc]
            "SELECT nextval('alert_outbox_ids')").fetchone()
        self.store.con.execute("INSERT INTO alert_outbox VALUES (?, ?, ?, ?, ?)",
                               [note.outbox_id, alert.alert_id, transition, at,
                                json.dumps(note.as_dict())])
        return note

    # -- delivery bookkeeping -----------------------------------------------------------
    def pending(self, sinks: list[str], exclude: set[tuple[int, str]] | None = None,
                ) -> list[tuple[str, Notification]]:
        """Notifications a sink has no final result for (sent after a crash, too)."""
        if not sinks:
            return []
        rows = self.store.con.execute(
            """SELECT s.sink, o.payload FROM alert_outbox o
               CROSS JOIN (SELECT unnest(?::VARCHAR[]) AS sink) s
               WHERE NOT EXISTS (SELECT 1 FROM alert_deliveries d
                                 WHERE d.outbox_id = o.outbox_id AND d.sink = s.sink)
               ORDER BY o.outbox_id""", [sinks]).fetchall()
        out = []
        for sink, payload in rows:
            note = Notification.from_dict(json.loads(payload))
            if exclude and (note.outbox_id, sink) in exclude:
                continue
            out.append((sink, note))
        return out

    def record_delivery(self, outbox_id: int, sink: str, status: str, attempts: int,
                        error: str | None, when: datetime) -> None:
        self.store.con.execute(
            "INSERT OR REPLACE INTO alert_deliveries VALUES (?, ?, ?, ?, ?, ?)",
            [outbox_id, sink, status, attempts, error, when])

    def deliveries(self) -> list[tuple[int, str, str, int, str | None]]:
        return self.store.con.execute(
            "SELECT outbox_id, sink, status, attempts, error FROM alert_deliveries "
            "ORDER BY outbox_id, sink").fetchall()

