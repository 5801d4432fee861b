"""The threat level of a port: green, yellow, orange or red, with the reasons and the actions.

Like the Internet Storm Center's InfoCon, a level says how much a user should do now,
and it is raised only for **a new threat** against which **the user can take a specific
action** (ISC's definition of yellow: "we are currently tracking a significant new
threat ... users are advised to take immediate specific action").  InfoCon is about the
whole Internet; this level is about the user's own network, so their exposure enters.

Everything is decided as known at the end of one day (``as_of``, event time): facts
dated later (a KEV entry of 2022, a worm of August) are invisible to a replay of June.

**Signals** (each with its evidence in the reasons):

* *spike*: a spike on the port (from the spike detector, or given) that is going on on
  ``as_of`` or ended at most ``spike_memory_days`` before; ``one-source`` spikes (one
  loud scanner) are noise for this purpose (their action is a blocklist entry);
* *fresh vulnerabilities*: vulnerabilities of the services behind the port patched in
  the last ``window_days``;
* *fresh exploits*: vulnerabilities of those services whose exploit was published, that
  entered CISA KEV, or whose EPSS reached ``epss_threshold``, in the window (whatever the
  patch's age: an old hole with a new exploit is a new threat);
* *mass attack*: a ``growth`` spike (worm-like, whether or not a vulnerability is
  known: Mirai's telnet growth had none), or a mass attack (worm, bots) reported in the
  window for a vulnerability of the port;
* *exposure*: hosts reachable on the port from outside (observed or declared) and which
  of them miss a relevant patch; ``unknown`` when the store has neither accepted
  connections nor assets.

**Stage** in the usual sequence (Gartner, June 2005: patch → exploit published →
scanning → mass attack): the furthest step reached in the window.

**Criteria**, first match wins:

=====  ======  =============================================================
code   level   when
=====  ======  =============================================================
R1     red     mass attack, and exposed hosts miss the patch
O1     orange  mass attack, and exposure is unknown or some host is exposed
O2     orange  spike + a fresh exploit, and exposed hosts miss the patch
Y1     yellow  spike + fresh vulnerability or fresh exploit
Y2     yellow  a recently patched vulnerability now has a public exploit
Y3     yellow  fresh exploit, and exposed hosts miss the patch
Y4     yellow  mass attack, but nothing of yours is exposed on the port
G1     green   otherwise (a spike without a new vulnerability, a patch with
               no sign of exploitation, or nothing): patch in the normal cycle
=====  ======  =============================================================

Every level above green comes with actions (block the port at the perimeter, with the
rules; patch the exposed hosts; IPS alerting; a blocklist of the campaign's scanners),
so "a specific action" is always there; green lists the patching to do in the normal
cycle.  Defaults and where they come from are in :class:`AssessParams`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from portradar.assess.spike_evidence import SpikeEvidence, port_spikes
from portradar.intel.exposure import PortExposure, ports_exposure
from portradar.intel.vulnerabilities import KnowledgeBase
from portradar.store.duckdb_store import Store

LEVELS: tuple[str, ...] = ("green", "yellow", "orange", "red")
STAGES: tuple[str, ...] = ("none", "patched", "exploit-published", "scanning", "mass-attack")


@dataclass(frozen=True)
class AssessParams:
    """The numbers behind the criteria."""

    #: A vulnerability or exploit is "fresh" for 30 days: the gap from patch to mass
    #: attack was at most a month for 6 of the 8 worms and bot waves in the bundled
    #: history (Zotob 4 days, MS06-040 bots 4, Sasser 17, Code Red 25, Blaster 26,
    #: Conficker 29; WannaCry 59, Slammer 185), and it is Microsoft's patch cycle.
    window_days: int = 30
    #: A spike still counts for a week after it ended: the 2005-06-17 spike was
    #: followed by analysts' warnings on 06-21 (Gartner) and in the press until 06-24.
    spike_memory_days: int = 7
    #: EPSS is a calibrated probability of exploitation in the next 30 days (FIRST);
    #: one chance in ten is taken as "exploitation expected" (a choice, not a standard).
    epss_threshold: float = 0.1


@dataclass
class Assessment:
    """A port's level on one day, with what decided it."""

    proto: int
    port: int
    as_of: date
    level: str
    criterion: str
    stage: str
    reasons: list[str]
    actions: list[str]
    vulnerabilities: list[dict[str, Any]] = field(default_factory=list)
    spikes: list[SpikeEvidence] = field(default_factory=list)
    exposure: PortExposure | None = None
    service: str = ""

    def as_dict(self) -> dict[str, Any]:
        exp = self.exposure
        return {
            "proto": {6: "tcp", 17: "udp"}.get(self.proto, str(self.proto)),
            "port": self.port, "service": self.service, "as_of": self.as_of.isoformat(),
            "level": self.level, "criterion": self.criterion, "stage": self.stage,
            "reasons": self.reasons, "actions": self.actions,
            "vulnerabilities": [{k: (v.isoformat() if isinstance(v, date) else v)
                                 for k, v in r.items()} for r in self.vulnerabilities],
            "spikes": [s.as_dict() for s in self.spikes],
            "exposure": None if exp is None else {
                "known": exp.known, "exposed": [h.as_row() for h in exp.hosts],
                "vulnerable": [h.host for h in exp.vulnerable]},
        }


def _within(d: date | None, as_of: date, days: int) -> bool:
    return d is not None and as_of - timedelta(days=days) < d <= as_of


def _vuln_label(v: dict[str, Any]) -> str:
    name = v.get("bulletins") or v["cve"]
    if v.get("bulletins"):
        name += f" ({v['cve']})"
    if v.get("name"):
        name += f" {v['name']}"
    return name


def relevant_spikes(spikes: Sequence[SpikeEvidence], as_of: date,
                    params: AssessParams) -> list[SpikeEvidence]:
    """Spikes going on at ``as_of`` or ended within the memory, newest first."""
    out = []
    for s in spikes:
        if s.onset > as_of:
            continue
        since = s.days_since_end(as_of)
        if since is None or since <= params.spike_memory_days:
            out.append(s)
    return sorted(out, key=lambda s: s.onset, reverse=True)


def decide(*, as_of: date, port: int, proto: int, vulns: Sequence[dict[str, Any]],
           spikes: Sequence[SpikeEvidence], exposure: PortExposure | None,
           params: AssessParams | None = None, service: str = "") -> Assessment:
    """Apply the documented criteria to the signals (no store access: pure)."""
    params = params or AssessParams()
    w = params.window_days
    recent = relevant_spikes(spikes, as_of, params)
    scanning = [s for s in recent if s.kind != "one-source"]
    growth = [s for s in scanning if s.kind == "growth"]
    fresh = [v for v in vulns if _within(v.get("patched"), as_of, w)]

    def exploited(v: dict[str, Any]) -> bool:
        return (v.get("exploit_published") is not None or v.get("kev_added") is not None
                or (v.get("epss") or 0.0) >= params.epss_threshold)

    fresh_exploit = [v for v in vulns
                     if _within(v.get("exploit_published"), as_of, w)
                     or _within(v.get("kev_added"), as_of, w)
                     or (_within(v.get("epss_date"), as_of, w)
                         and (v.get("epss") or 0.0) >= params.epss_threshold)]
    threats = {v["cve"]: v for v in fresh + fresh_exploit}
    mass_reported = [v for v in threats.values() if _within(v.get("mass_attack"), as_of, w)]
    scan_reported = [v for v in threats.values() if _within(v.get("scanning"), as_of, w)]
    mass = bool(growth or mass_reported)
    unexposed = exposure is not None and exposure.known and not exposure.hosts
    vulnerable = exposure.vulnerable if exposure is not None else []
    name = f"{({6: 'tcp', 17: 'udp'}).get(proto, proto)}/{port}"

    # -- the stage ------------------------------------------------------------------
    if mass:
        stage = "mass-attack"
    elif scanning or scan_reported:
        stage = "scanning"
    elif fresh_exploit or any(exploited(v) for v in fresh):
        stage = "exploit-published"
    elif fresh:
        stage = "patched"
    else:
        stage = "none"

    # -- reasons --------------------------------------------------------------------
    reasons: list[str] = []
    for s in scanning or recent:
        state = "going on" if s.active_on(as_of) else f"ended {s.end}"
        reasons.append(f"spike: {s.describe()}, {state}")
    if not recent:
        reasons.append(f"no spike on {name} in the last {params.spike_memory_days} days")
    for v in sorted(threats.values(), key=lambda v: v.get("patched") or date.min,
                    reverse=True):
        facts = []
        if v.get("patched"):
            facts.append(f"patched {v['patched']} ({(as_of - v['patched']).days} days "
                         f"before {as_of})")
        if v.get("exploit_published"):
            facts.append(f"exploit published {v['exploit_published']}")
        if v.get("kev_added"):
            facts.append(f"in CISA KEV since {v['kev_added']}")
        if v.get("epss") is not None:
            facts.append(f"EPSS {v['epss']:.2f} on {v['epss_date']}")
        if v.get("scanning"):
            facts.append(f"scanning reported {v['scanning']}")
        if v.get("mass_attack"):
            facts.append(f"mass attack reported {v['mass_attack']}")
        if not exploited(v):
            facts.append("no public exploit known")
        reasons.append(f"vulnerability: {_vuln_label(v)}: " + "; ".join(facts))
    if not threats:
        older = [v for v in vulns if v.get("patched") and v["patched"] <= as_of]
        reasons.append(f"no vulnerability of the services behind {name} patched or newly "
                       f"exploited in the last {w} days ({len(older)} older known)")
    if exposure is None or not exposure.known:
        reasons.append("exposure unknown: no accepted inbound connections in the logs and "
                       "no assets imported")
    elif not exposure.hosts:
        reasons.append(f"exposure: no host of yours seen reachable on {name} from outside, "
                       f"none declared open")
    else:
        obs = len(exposure.observed)
        reasons.append(f"exposure: {len(exposure.hosts)} host(s) reachable on {name} "
                       f"({obs} seen accepting connections from outside), "
                       f"{len(vulnerable)} missing a relevant patch")
    reasons.append(f"stage: {stage} (patch → exploit published → scanning → mass attack)")

    # -- the criteria ---------------------------------------------------------------
    spike_exploit = bool(scanning) and bool(fresh_exploit)
    if mass and vulnerable:
        level, crit = "red", "R1"
    elif mass and not unexposed:
        level, crit = "orange", "O1"
    elif spike_exploit and vulnerable:
        level, crit = "orange", "O2"
    elif scanning and threats:
        level, crit = "yellow", "Y1"
    elif any(exploited(v) for v in fresh) and fresh_exploit:
        level, crit = "yellow", "Y2"
    elif fresh_exploit and vulnerable:
        level, crit = "yellow", "Y3"
    elif mass:
        level, crit = "yellow", "Y4"
    else:
        level, crit = "green", "G1"

    # -- actions --------------------------------------------------------------------
    actions: list[str] = []
    patches = sorted({v.get("bulletins") or v["cve"] for v in threats.values()})
    if level != "green":
        hosts = ""
        if exposure is not None and exposure.observed:
            hosts = (f"; {len(exposure.observed)} of your hosts accepted connections on it "
                     f"from outside: " + ", ".join(h.host for h in exposure.observed[:10]))
        actions.append(f"block {name} inbound at the perimeter{hosts} "
                       f"(portradar rules {port} --for nftables|iptables|pf|"
                       f"windows-powershell|windows-netsh|cisco-ios)")
        if patches:
            targets = (", ".join(h.host for h in vulnerable[:10]) if vulnerable
                       else "every Windows host" if any("microsoft" in (v.get("vendor") or "")
                                                       .lower() for v in threats.values())
                       else "every host running the service")
            actions.append(f"patch now: {', '.join(patches)} on {targets} "
                           f"(portradar exposure {port})")
        actions.append(f"alert on inbound {name} in the IPS "
                       f"(portradar rules {port} --for suricata|snort)")
        if scanning:
            actions.append(f"block the campaign's scanners with an expiry "
                           f"(portradar rules {port} --for nftables --scanners)")
    elif patches:
        actions.append(f"patch in the normal cycle: {', '.join(patches)}")
    else:
        actions.append("nothing to do now")
    return Assessment(proto=proto, port=port, as_of=as_of, level=level, criterion=crit,
                      stage=stage, reasons=reasons, actions=actions,
                      vulnerabilities=sorted(threats.values(),
                                             key=lambda v: v.get("patched") or date.min,
                                             reverse=True),
                      spikes=list(recent), exposure=exposure, service=service)


def latest_day(store: Store) -> date | None:
    """The day of the newest event in the store (the default ``as_of``: event time)."""
    rows = store.con.execute("SELECT max(ts) FROM event_rows").fetchall()
    return rows[0][0].date() if rows and rows[0][0] is not None else None


def candidate_ports(store: Store, day: date, limit: int = 20) -> list[tuple[int, int]]:
    """``(proto, port)`` worth assessing when none is named (``portradar assess`` and the
    dashboard's level): the day's ``limit`` busiest TCP/UDP ports by sources (a
    screenful), then the ports the asset inventory declares open."""
    from portradar.intel.assets import ensure_tables
    from portradar.intel.vulnerabilities import run

    ensure_tables(store)
    store.refresh_activity()
    busy = run(store, """SELECT proto, port FROM port_activity_daily
                         WHERE bucket = ? AND sensor = '*' AND proto IN (6, 17) AND port > 0
                         ORDER BY sources DESC LIMIT ?""", [day, limit]).to_pylist()
    declared = run(store, "SELECT DISTINCT proto, port FROM asset_services WHERE proto IN "
                          "(6, 17)").to_pylist()
    seen: dict[tuple[int, int], None] = {}
    for r in busy + declared:
        seen[(int(r["proto"]), int(r["port"]))] = None
    return list(seen)


def assess_port(store: Store, port: int, proto: int = 6, *, as_of: date,
                spikes: Sequence[SpikeEvidence] | None = None,
                params: AssessParams | None = None, internal: Sequence[str] = (),
                kb: KnowledgeBase | None = None) -> Assessment:
    """Assess one port on ``as_of`` from the store: activity, knowledge and exposure.

    Without ``spikes``, the port's spikes are found by running the spike detector over
    the stored daily activity up to ``as_of``.
    """
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not 1-65535")
    given = None if spikes is None else {(proto, port): spikes}
    return assess_ports(store, [(proto, port)], as_of=as_of, spikes=given, params=params,
                        internal=internal, kb=kb)[0]


def _ports_with_fresh_facts(store: Store, targets: Sequence[tuple[int, int]], as_of: date,
                            days: int) -> set[tuple[int, int]]:
    """The targets with a CVE (``intel_cve_ports``) that has a fact dated in the ``days``
    up to ``as_of``: patched or published (``intel_vulns``), exploit published or mass
    attack (``intel_history``), added to KEV (``intel_kev``).  Every row of
    :meth:`~portradar.intel.vulnerabilities.KnowledgeBase.port_vulnerabilities` with
    ``days`` has one of those dates in the window, so the other targets' answer is
    empty: one query for every target instead of one (20-30 ms) per target.
    """
    from portradar.intel.vulnerabilities import run

    if not targets:
        return set()
    lo = as_of - timedelta(days=days)
    keys = sorted({int(proto) * 65536 + int(port) for proto, port in targets})
    rows = run(store,
        """WITH fresh AS (
               SELECT cve FROM intel_vulns
               WHERE (patched > $lo AND patched <= $as_of)
                  OR (published > $lo AND published <= $as_of)
               UNION ALL
               SELECT cve FROM intel_history
               WHERE (exploit_published > $lo AND exploit_published <= $as_of)
                  OR (mass_attack > $lo AND mass_attack <= $as_of)
               UNION ALL
               SELECT cve FROM intel_kev WHERE date_added > $lo AND date_added <= $as_of)
           SELECT DISTINCT proto, port FROM intel_cve_ports
           WHERE list_contains($keys, proto::INTEGER * 65536 + port::INTEGER)
             AND cve IN (SELECT cve FROM fresh)""",
        {"lo": lo, "as_of": as_of, "keys": keys}).to_pylist()
    return {(int(r["proto"]), int(r["port"])) for r in rows}


def assess_ports(store: Store, targets: Sequence[tuple[int, int]], *, as_of: date,
                 spikes: Mapping[tuple[int, int], Sequence[SpikeEvidence]] | None = None,
                 params: AssessParams | None = None, internal: Sequence[str] = (),
                 kb: KnowledgeBase | None = None) -> list[Assessment]:
    """:func:`assess_port` of several ``(proto, port)``, in their order, from one pass.

    The exposure of every port comes from one scan of the events
    (:func:`~portradar.intel.exposure.ports_exposure`), the knowledge base is opened
    once, and a port none of whose CVEs has a fact dated in the window skips the
    vulnerability query, whose answer is empty for it (:func:`_ports_with_fresh_facts`).
    ``spikes`` gives the spikes of some ports (the others are detected as
    :func:`assess_port` does).
    """
    from portradar.intel.port_registry import PortRegistry

    params = params or AssessParams()
    for _, port in targets:
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is not 1-65535")
    kb = kb or KnowledgeBase.open(store)
    fresh = _ports_with_fresh_facts(store, targets, as_of, params.window_days)
    vulns = {t: (kb.port_vulnerabilities(t[1], t[0], as_of=as_of, days=params.window_days)
                 if t in fresh else []) for t in targets}
    given = spikes or {}
    found = {t: (given[t] if t in given else port_spikes(store, t[1], t[0], as_of=as_of))
             for t in targets}
    exposures = ports_exposure(store, targets, vulns=vulns, as_of=as_of, internal=internal)
    registry = PortRegistry.bundled()
    return [decide(as_of=as_of, port=port, proto=proto, vulns=vulns[(proto, port)],
                   spikes=found[(proto, port)], exposure=exposures[(proto, port)],
                   params=params,
                   service=registry.names(port, {6: "tcp", 17: "udp"}.get(proto, "tcp")))
            for proto, port in targets]
