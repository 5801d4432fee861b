"""Alert lifecycle: open, update, escalate, resolve; de-duplicated, rate-limited, stored.

The detectors are re-run on every micro-batch and report the same rise again and
again; the lifecycle turns that stream of *sightings* into a few notifications.  Three
kinds of sighting, each about one (protocol, port):

* ``spike``: the port's activity rose above its baseline (:mod:`portradar.spikes`);
* ``campaign``: a group of sources probing alike (:mod:`portradar.scan.campaigns`)
  probes the port (all the port's campaigns as one sighting, members summed);
* ``level``: the port's threat level (:mod:`portradar.assess.threat_level`) is above
  green.

**One open alert per port.**  The first sighting that is strong enough opens the alert
(its ``kind`` is the opener's); sightings of the other kinds on the same port are
*evidence* of that alert (``Alert.evidence``), not new alerts, so a campaign that
makes a spike is told once.  Then:

* **open**: the first sighting of a port with no open alert;
* **escalate**: the severity rose, or the threat level rose (always told);
* **update**: new numbers, or a new kind of evidence (a campaign joins a spike), told
  at most once per ``update_interval`` of *event time* per port (the per-port rate
  limit; new evidence is told at once);
* **resolve**: every piece of *activity* evidence (spike, campaign) returned to normal:
  the spike detector's end, a campaign silent for ``CAMPAIGN_QUIET``.  The level is not
  activity: an alert opened by a level change alone resolves when the level is back to
  green.

**One notification per port and round.**  A round's sightings of one port are applied
together: the port gets at most one of open, escalate, update (in that order of
precedence), carrying all of the round's evidence, then its resolve if all of it is
over.  The alerts of the round's ports are read with one query, and an alert is
written only when it changed.

Sightings that change nothing are de-duplicated (no notification).  Every decision
uses event time (the spike's buckets, the newest event, the assessment's day), never
the wall clock, so a replay of last month gives the same alerts as living through it.

Severity is in decades: of excess distinct sources over the baseline for a spike, of
member sources for a campaign (every member is a source the baseline did not have):
:data:`SEVERITY_SOURCES` = 10 / 100 / 1,000 / 10,000 → 1 to 4.  Ten is the spike
detector's own minimum (DShield ignores ports with fewer sources); decades follow
psad's danger levels, which also grow tenfold (15 / 150 / 1,500 / 10,000 packets).  A
level is severity :data:`LEVEL_SEVERITY` (yellow 1, orange 2, red 3): ISC's InfoCon
steps, one per level.  An alert's severity is the highest of its evidence.

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
#: Severity of a threat level (see the module doc).
LEVEL_SEVERITY: dict[str, int] = {"": 0, "green": 0, "yellow": 1, "orange": 2, "red": 3}
#: Kinds of sighting that are activity (their end resolves an alert).
ACTIVITY_KINDS: tuple[str, ...] = ("spike", "campaign")
#: Which of a round's transitions of one port is told (lower first): an open carries
#: the evidence of the same round, an escalation the updates.
_RANK: dict[str, int] = {"open": 0, "escalate": 1, "update": 2}

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS alert_ids START 1;
CREATE SEQUENCE IF NOT EXISTS alert_outbox_ids START 1;
CREATE TABLE IF NOT EXISTS alerts (
    alert_id INTEGER PRIMARY KEY, key VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    proto INTEGER NOT NULL, port INTEGER NOT NULL, status VARCHAR NOT NULL,
    severity INTEGER NOT NULL, opened_at VARCHAR NOT NULL, updated_at VARCHAR NOT NULL,
    resolved_at VARCHAR, onset VARCHAR, score DOUBLE, peak_sources DOUBLE,
    baseline_sources DOUBLE, spike_kind VARCHAR, level VARCHAR, reasons VARCHAR,
    actions VARCHAR, updates INTEGER, last_told VARCHAR, evidence VARCHAR
);
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS evidence VARCHAR;
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
    """What a detector saw this round about one port, in event time."""

    kind: str  # spike | campaign | level
    proto: int
    port: int
    onset: str
    at: str  # the newest bucket that shows it (event time)
    end: str | None  # when it returned to normal, None while going on
    score: float
    peak_sources: float
    baseline_sources: float
    spike_kind: str = ""
    level: str = ""  # level sightings: the threat level
    detail: str = ""  # one line of evidence, for the other kinds' alerts
    reasons: list[str] | None = None  # level sightings: the assessment's
    actions: list[str] | None = None

    @property
    def excess(self) -> float:
        return max(0.0, self.peak_sources - self.baseline_sources)

    def severity_excess(self) -> int:
        """Severity 0-4 of this sighting (see the module doc)."""
        if self.kind == "level":
            return LEVEL_SEVERITY.get(self.level, 0)
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
        if not store.read_only:  # a reader (portradar alerts, the web API) only reads
            store.con.execute(SCHEMA)

    # -- reading ----------------------------------------------------------------------
    def _row_to_alert(self, row: tuple[Any, ...]) -> Alert:
        data = dict(zip([*_COLUMNS], row, strict=False))
        data["reasons"] = json.loads(data["reasons"] or "[]")
        data["actions"] = json.loads(data["actions"] or "[]")
        data["evidence"] = json.loads(data.get("evidence") or "{}")
        return Alert(**data)

    def alerts(self, status: str | None = None) -> list[Alert]:
        where = "WHERE status = ?" if status else ""
        rows = self.store.con.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM alerts {where} ORDER BY alert_id",
            [status] if status else []).fetchall()
        return [self._row_to_alert(r) for r in rows]

    def _ports_state(self, ports: list[tuple[int, int]],
                     ) -> tuple[dict[tuple[int, int], tuple[Alert, str | None]],
                                dict[tuple[int, int], list[tuple[str, str | None, str | None]]]]:
        """The open alert (and its ``last_told``) and the (kind, onset, evidence) of every
        alert of each of ``ports``: one query for a whole round, however many sightings."""
        opened: dict[tuple[int, int], tuple[Alert, str | None]] = {}
        history: dict[tuple[int, int], list[tuple[str, str | None, str | None]]] = {}
        if not ports:
            return opened, history
        keys = [int(p) * 65536 + int(q) for p, q in ports]
        rows = self.store.con.execute(
            f"SELECT {', '.join(_COLUMNS)}, last_told FROM alerts "
            "WHERE list_contains(?, proto * 65536 + port) ORDER BY alert_id",
            [keys]).fetchall()
        status, kind, onset, evidence = (_COLUMNS.index(c) for c in
                                         ("status", "kind", "onset", "evidence"))
        proto, port = _COLUMNS.index("proto"), _COLUMNS.index("port")
        for row in rows:
            key = (int(row[proto]), int(row[port]))
            history.setdefault(key, []).append((row[kind], row[onset], row[evidence]))
            if row[status] == "open" and key not in opened:
                opened[key] = (self._row_to_alert(row[:-1]), row[-1])
        return opened, history

    @staticmethod
    def _known(s: Sighting, history: list[tuple[str, str | None, str | None]],
               current: Alert | None = None) -> bool:
        """Was this (kind, onset) already part of an alert of the port?  ``history`` as
        stored at the round's start, ``current`` the port's alert as this round left it."""
        rows = list(history)
        if current is not None:
            rows.append((current.kind, current.onset, json.dumps(current.evidence)))
        for kind, onset, evidence in rows:
            if kind == s.kind and onset == s.onset:
                return True
            if json.loads(evidence or "{}").get(s.kind, {}).get("onset") == s.onset:
                return True
        return False

    # -- deciding ---------------------------------------------------------------------
    def observe(self, sightings: Iterable[Sighting], *, since: str | None = None,
                ) -> list[Notification]:
        """Apply this round's sightings; returns the notifications (stored in the outbox).

        ``since``: rises that had already ended before this event time when first seen
        are history, not news (the watch started on a store with past data).
        Call inside the micro-batch's transaction.

        **One notification per port and round** (open, escalate or update, the first
        that applies in that order), however many sightings the port has (a spike and
        a campaign seen in the same round open one alert that carries both), plus its
        ``resolve`` if the evidence is over.  The alerts of all the round's ports are
        read with one query.
        """
        groups: dict[tuple[int, int], list[Sighting]] = {}
        for s in sightings:
            groups.setdefault((s.proto, s.port), []).append(s)
        opened, history = self._ports_state(list(groups))
        out: list[Notification] = []
        for key, group in groups.items():
            out += self._observe_port(group, opened.get(key), history.get(key, []), since)
        return out

    def _observe_port(self, group: list[Sighting], found: tuple[Alert, str | None] | None,
                      history: list[tuple[str, str | None, str | None]],
                      since: str | None) -> list[Notification]:
        """One port's sightings of a round, applied together: at most one of open,
        escalate, update (with all of them as evidence), then resolve if all is over."""
        out: list[Notification] = []
        alert, last_told = found if found is not None else (None, None)
        pending: str | None = None  # the transition to tell for this round
        at = ""
        stored = None if alert is None else self._values(alert)  # saved only if changed
        for s in group:
            if alert is None:
                if s.severity_excess() < 1 or self._known(s, history):
                    continue  # too small to tell, or already told (and resolved)
                if s.end is not None and since is not None and s.end < since:
                    continue
                alert, pending, at = self._create(s), "open", s.at
            else:
                told = self._evidence(alert, last_told, s, history)
                if told is not None:
                    if pending is None or _RANK[told] < _RANK[pending]:
                        pending = told
                    at = max(at, s.at)
                    last_told = s.at  # the rate limit counts this round's notification
        if alert is None:
            return out
        if pending is not None:
            out.append(self._tell(alert, pending, at))
        if self._over(alert):  # all the round's evidence of the port is over
            out.append(self._resolve(alert))
        elif pending is None and self._values(alert) != stored:
            self._save(alert)
        return out

    def _evidence(self, alert: Alert, last_told: str | None, s: Sighting,
                  history: list[tuple[str, str | None, str | None]]) -> str | None:
        """Apply a sighting to the port's open alert; the transition it calls for."""
        before = alert.evidence.get(s.kind)
        sev = s.severity_excess()
        if before is None and (sev < 1 or (s.end is not None
                                           and self._known(s, history, alert))):
            return None  # not evidence: too small, or a rise already told and over
        if (before is not None and before.get("end") is not None and s.end is None
                and before.get("onset") != s.onset):
            before = None  # a new rise of this kind while the alert is still open
        news = before is None
        changed = news
        if s.kind == alert.kind:
            changed = (abs(s.peak_sources - alert.peak_sources) >= 1
                       or s.score > alert.score + 0.05)
            self._refresh(alert, s)
        alert.updated_at = max(alert.updated_at, s.at)
        alert.evidence[s.kind] = self._entry(s, before)
        old_level = alert.level
        if s.kind == "level":
            alert.level = s.level
            alert.reasons, alert.actions = list(s.reasons or []), list(s.actions or [])
        level_up = LEVEL_SEVERITY.get(alert.level, 0) > LEVEL_SEVERITY.get(old_level, 0)
        if sev > alert.severity or level_up:
            alert.severity = max(alert.severity, sev)
            if s.kind != "level":
                self._enrich(alert)
            return "escalate"
        if (news and s.kind != "level") or (
                changed and (last_told is None
                             or _seconds(last_told, s.at) >= self.params.update_interval)):
            return "update"
        return None

    @staticmethod
    def _entry(s: Sighting, before: dict[str, Any] | None) -> dict[str, Any]:
        onset = s.onset if before is None else min(str(before["onset"]), s.onset)
        entry: dict[str, Any] = {"onset": onset, "end": s.end, "at": s.at,
                                 "severity": s.severity_excess(), "detail": s.detail}
        if s.kind == "level":
            entry["level"] = s.level
        return entry

    @staticmethod
    def _basis(alert: Alert) -> list[dict[str, Any]]:
        """The evidence whose end resolves the alert: its activity, else its level."""
        activity = [e for k, e in alert.evidence.items() if k in ACTIVITY_KINDS]
        return activity or list(alert.evidence.values())

    def _over(self, alert: Alert) -> bool:
        """Has what the alert rests on returned to normal (see the module doc)?"""
        basis = self._basis(alert)
        return bool(basis) and all(e.get("end") is not None for e in basis)

    def _create(self, s: Sighting) -> Alert:
        (alert_id,) = self.store.con.execute("SELECT nextval('alert_ids')").fetchone()  # type: ignore[misc]
        key = f"{s.kind}:{s.proto}/{s.port}"
        alert = Alert(alert_id=int(alert_id), key=key, kind=s.kind, proto=s.proto,
                      port=s.port, status="open", severity=max(1, s.severity_excess()),
                      opened_at=s.at, updated_at=s.at, onset=s.onset)
        alert.evidence[s.kind] = self._entry(s, None)
        self._refresh(alert, s)
        if s.kind == "level":
            alert.level = s.level
            alert.reasons, alert.actions = list(s.reasons or []), list(s.actions or [])
        else:
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

    def _resolve(self, alert: Alert) -> Notification:
        alert.status = "resolved"
        alert.resolved_at = max(str(e["end"]) for e in self._basis(alert))
        return self._tell(alert, "resolve", alert.resolved_at)

    def _values(self, alert: Alert) -> list[Any]:
        values = [getattr(alert, c) for c in _COLUMNS]
        values[_COLUMNS.index("reasons")] = json.dumps(alert.reasons)
        values[_COLUMNS.index("actions")] = json.dumps(alert.actions)
        values[_COLUMNS.index("evidence")] = json.dumps(alert.evidence, sort_keys=True)
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

