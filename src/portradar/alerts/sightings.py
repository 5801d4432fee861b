"""What the detectors see in the store, as sightings for the alert lifecycle.

Three producers, one per kind of :class:`~portradar.alerts.lifecycle.Sighting`, all in
event time and all reading only the store:

* :func:`spike_sightings`: the spike detector (:mod:`portradar.spikes`) over the
  per-port activity of all sensors, hourly or daily buckets;
* :func:`campaign_sightings`: the campaigns of scan detection
  (:mod:`portradar.scan.campaigns`), grouped by the port their members probe most; a
  port's campaigns are one sighting (members summed), ended once no member has probed
  for :data:`CAMPAIGN_QUIET`;
* :func:`level_sightings`: the threat level of given ports
  (:mod:`portradar.assess.threat_level`), for the ports with an open alert (a level
  change escalates it) and the ports whose services have fresh vulnerability news
  (:func:`level_candidates`: a level change alone opens an alert).

Only the few rows of a round's result are looped over in Python (spikes, campaigns,
candidate ports), never events.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from portradar.alerts.lifecycle import Sighting
from portradar.store.duckdb_store import Store

if TYPE_CHECKING:
    from portradar.spikes.activity_matrix import ActivityMatrix

#: Seconds of event time without a probe from any member after which a campaign is
#: over: the campaign grouping's own ``gap`` (:class:`~portradar.scan.campaigns.Campaigns`,
#: 24 h: members active within a day of each other belong together).
CAMPAIGN_QUIET = 86400.0
#: New candidate ports assessed per round at most (see :class:`Assessor`): 8 × 55 ms
#: keeps a round under half a second.
LEVEL_BUDGET = 8
#: Days of vulnerability news that make a port a level candidate: the assessment's
#: ``window_days`` (:class:`~portradar.assess.threat_level.AssessParams`, 30).
NEWS_DAYS = 30

#: An assessment: ``(level, reasons, actions)`` of (proto, port) on a day.
Assess = Callable[[int, int, date], tuple[str, list[str], list[str]]]


def _iso(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat()


def spike_sightings(store: Store, period: str) -> tuple[list[Sighting], str | None]:
    """Sightings of every spike the detector finds, and the newest bucket (ISO)."""
    from portradar.spikes.activity_matrix import from_store

    return matrix_sightings(from_store(store, period=period, scope="all"))


def matrix_sightings(total: ActivityMatrix) -> tuple[list[Sighting], str | None]:
    """:func:`spike_sightings` of an all-sensors matrix (the watch keeps its own,
    :class:`~portradar.spikes.activity_matrix.LiveMatrix`)."""
    from portradar.spikes.spike_detector import SpikeDetector

    if total.n_buckets == 0:
        return [], None
    spikes = SpikeDetector.for_period(total.period).detect(total)
    newest = _iso(total.bucket_time(total.n_buckets - 1))
    out = []
    for s in spikes:
        end = None if s.end is None else _iso(total.bucket_time(s.end))
        out.append(Sighting(
            kind="spike", proto=s.proto, port=s.port, onset=_iso(total.bucket_time(s.onset)),
            at=end or newest, end=end, score=s.score, peak_sources=s.peak_sources,
            baseline_sources=s.baseline_sources, spike_kind=s.kind,
            detail=f"{s.kind} spike since {_iso(total.bucket_time(s.onset))}, "
                   f"{s.peak_sources:.0f} sources vs baseline {s.baseline_sources:.1f}"))
    return out, newest


def campaign_sightings(store: Store, at: str, *, quiet: float = CAMPAIGN_QUIET,
                       ) -> list[Sighting]:
    """One sighting per (proto, port) probed by campaigns (see the module doc).

    ``at`` is the newest bucket (the sightings' time); a campaign is over when the
    newest event is ``quiet`` seconds after its last probe.
    """
    tables = {r[0] for r in store.con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name IN "
        "('campaigns', 'campaign_members', 'scanners')").fetchall()}
    if len(tables) < 3:
        return []
    (newest,) = store.con.execute("SELECT max(ts) FROM event_rows").fetchone() or (None,)
    if newest is None:
        return []
    rows = store.con.execute(
        """WITH probed AS (
               SELECT m.campaign_id, CASE WHEN s.type = 'udp' THEN 17 ELSE 6 END AS proto,
                      unnest(s.port_list) AS port
               FROM campaign_members m JOIN scanners s
                 ON s.src_hi = m.src_hi AND s.src_lo = m.src_lo AND s.prefix = 128),
           main AS (
               SELECT campaign_id, mode(proto) AS proto, mode(port) AS port
               FROM probed GROUP BY campaign_id)
           SELECT m.proto, m.port, sum(c.members) AS members, count(*) AS campaigns,
                  min(c.first_seen), max(c.last_seen), arg_max(c.evidence, c.members)
           FROM campaigns c JOIN main m USING (campaign_id)
           GROUP BY ALL ORDER BY m.proto, m.port""").fetchall()
    newest_naive = newest.replace(tzinfo=None)
    out = []
    for proto, port, members, n, first, last, evidence in rows:
        first, last = first.replace(tzinfo=None), last.replace(tzinfo=None)
        over = newest_naive - last >= timedelta(seconds=quiet)
        what = f"{n} campaign{'s' if n > 1 else ''}, {members} sources" + (
            f" ({evidence})" if evidence else "")
        out.append(Sighting(
            kind="campaign", proto=int(proto), port=int(port), onset=first.isoformat(),
            at=last.isoformat() if over else at, end=last.isoformat() if over else None,
            score=float(members), peak_sources=float(members), baseline_sources=0.0,
            spike_kind=f"{n} campaigns" if n > 1 else "campaign", detail=what))
    return out


def level_candidates(store: Store, as_of: date, days: int = NEWS_DAYS) -> set[tuple[int, int]]:
    """Ports whose services had vulnerability news (patch, exploit, KEV, mass attack)
    in the ``days`` up to ``as_of``: the only ones whose level can rise without a spike.

    Creates the knowledge base (with its bundled history) in a store that has none.
    """
    tables = {r[0] for r in store.con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'intel_%'").fetchall()}
    if not {"intel_cve_ports", "intel_vulns", "intel_history", "intel_kev"} <= tables:
        if store.read_only:
            return set()
        from portradar.intel.vulnerabilities import KnowledgeBase

        KnowledgeBase.open(store)  # the bundled history, once (0.2 s)
    lo = as_of - timedelta(days=days)
    rows = store.con.execute(
        """WITH news AS (
               SELECT cve FROM intel_vulns WHERE patched > $lo AND patched <= $as_of
               UNION SELECT cve FROM intel_history
                     WHERE (exploit_published > $lo AND exploit_published <= $as_of)
                        OR (mass_attack > $lo AND mass_attack <= $as_of)
               UNION SELECT cve FROM intel_kev WHERE date_added > $lo AND date_added <= $as_of)
           SELECT DISTINCT proto, port FROM intel_cve_ports SEMI JOIN news USING (cve)
           WHERE port BETWEEN 1 AND 65535""", {"lo": lo, "as_of": as_of}).fetchall()
    return {(int(p), int(q)) for p, q in rows}


def level_sightings(ports: set[tuple[int, int]], as_of: date, at: str,
                    assess: Assess) -> list[Sighting]:
    """The level of each port on ``as_of`` as a sighting (green ones end a level)."""
    out = []
    day = datetime(as_of.year, as_of.month, as_of.day).isoformat()
    for proto, port in sorted(ports):
        if not 1 <= port <= 65535:
            continue
        level, reasons, actions = assess(proto, port, as_of)
        green = level in ("", "green")
        out.append(Sighting(
            kind="level", proto=proto, port=port, onset=day, at=at,
            end=at if green else None, score=0.0, peak_sources=0.0, baseline_sources=0.0,
            level=level or "green", reasons=reasons, actions=actions,
            detail=f"threat level {level or 'green'} on {as_of}"))
    return out


class Assessor:
    """An :data:`Assess` over the store that remembers each (proto, port, day) it answered.

    One assessment takes about 55 ms (measured on a store of 24,000 events; the first
    one also opens the knowledge base, about 2 s), so the service re-assesses the ports
    of open alerts every round (:meth:`forget` them: new events may change their level)
    and the other candidate ports once per event-time day, at most
    :data:`LEVEL_BUDGET` new ones per round (:meth:`due`), so a day with many
    vulnerability announcements never stalls the micro-batches.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.memo: dict[tuple[int, int, date], tuple[str, list[str], list[str]]] = {}

    def __call__(self, proto: int, port: int, as_of: date) -> tuple[str, list[str], list[str]]:
        from portradar.assess.threat_level import assess_port

        key = (proto, port, as_of)
        if key not in self.memo:
            result = assess_port(self.store, port, proto, as_of=as_of)
            self.memo[key] = (result.level, list(result.reasons), list(result.actions))
        return self.memo[key]

    def forget(self, ports: set[tuple[int, int]] | None = None) -> None:
        """Drop what was remembered about ``ports`` (all of it without)."""
        if ports is None:
            self.memo.clear()
            return
        for key in [k for k in self.memo if (k[0], k[1]) in ports]:
            del self.memo[key]

    def due(self, ports: set[tuple[int, int]], as_of: date,
            budget: int = 0) -> set[tuple[int, int]]:
        """The ``ports`` already assessed on ``as_of``, and at most ``budget`` more."""
        for key in [k for k in self.memo if k[2] < as_of]:  # an earlier day's levels
            del self.memo[key]
        done = {p for p in ports if (p[0], p[1], as_of) in self.memo}
        return done | set(sorted(ports - done)[:budget])
