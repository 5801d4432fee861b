"""Alert lifecycle: spikes, campaigns and level changes on one port make one alert.

The lifecycle unit (:class:`~portradar.alerts.lifecycle.AlertBook`) with hand-made
sightings, the producers of :mod:`portradar.alerts.sightings` on a real store (scan
detection's campaigns, the knowledge base's news), and the watch service turning a
campaign that makes a spike into one alert that carries both.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from scan_events import ev, put

from portradar.alerts import sightings as seen
from portradar.alerts.lifecycle import AlertBook, LifecycleParams, Sighting
from portradar.store import Store


def sight(kind: str, at: str, *, port: int = 445, onset: str = "2026-01-05T00:00:00",
          end: str | None = None, peak: float = 0.0, base: float = 0.0, level: str = "",
          score: float = 5.0) -> Sighting:
    return Sighting(kind=kind, proto=6, port=port, onset=onset, at=at, end=end, score=score,
                    peak_sources=peak, baseline_sources=base, level=level,
                    detail=f"{kind} evidence", reasons=[f"{level} because"] if level else None,
                    actions=["block it"] if level else None)


def told(notes: list[Any]) -> list[tuple[int, str]]:
    return [(n.alert.alert_id, n.transition) for n in notes]


def test_campaign_on_a_spiking_port_is_evidence_not_a_second_alert(store: Store) -> None:
    book = AlertBook(store)
    t = [f"2026-01-05T{h:02d}:00:00" for h in range(24)]
    assert told(book.observe([sight("spike", t[1], peak=40, base=5)])) == [(1, "open")]
    # a campaign of 12 sources on the same port: new evidence, told at once, same alert
    notes = book.observe([sight("spike", t[2], peak=40, base=5),
                          sight("campaign", t[2], onset=t[1], peak=12)])
    assert told(notes) == [(1, "update")]
    assert notes[0].alert.evidence["campaign"]["detail"] == "campaign evidence"
    # the campaign grows to 150 members: severity 2 > the spike's 1 -> escalate
    notes = book.observe([sight("campaign", t[3], onset=t[1], peak=150)])
    assert told(notes) == [(1, "escalate")] and notes[0].alert.severity == 2
    # the spike ends but the campaign goes on: still open
    assert told(book.observe([sight("spike", t[4], end=t[4], peak=40, base=5)])) == []
    assert book.alerts()[0].status == "open"
    # the campaign ends too: resolved at the later end
    notes = book.observe([sight("campaign", t[6], onset=t[1], end=t[5], peak=150)])
    assert told(notes) == [(1, "resolve")] and notes[0].alert.resolved_at == t[5]
    assert len(book.alerts()) == 1 and set(book.alerts()[0].evidence) == {"spike", "campaign"}
    # the same rises reported again are history: nothing new
    assert book.observe([sight("spike", t[7], end=t[4], peak=40, base=5),
                         sight("campaign", t[7], onset=t[1], end=t[5], peak=150)]) == []


def test_campaign_alone_opens_when_big_enough(store: Store) -> None:
    book = AlertBook(store)
    at = "2026-01-05T03:00:00"
    assert book.observe([sight("campaign", at, port=23, peak=5)]) == []  # 5 < 10 sources
    notes = book.observe([sight("campaign", at, port=23, peak=30)])
    assert told(notes) == [(1, "open")] and notes[0].alert.kind == "campaign"
    assert notes[0].alert.key == "campaign:6/23" and notes[0].alert.severity == 1
    # a spike on the port later joins the campaign's alert
    notes = book.observe([sight("spike", "2026-01-05T04:00:00", port=23, peak=300, base=3)])
    assert told(notes) == [(1, "escalate")] and notes[0].alert.severity == 2


def test_level_rise_escalates_and_a_level_alone_opens_and_resolves(store: Store) -> None:
    book = AlertBook(store)
    d = [f"2026-01-{day:02d}T00:00:00" for day in range(1, 20)]
    assert told(book.observe([sight("spike", d[5], peak=30, base=2)])) == [(1, "open")]
    # green is no evidence; yellow then orange are escalations; back to yellow is not
    assert told(book.observe([sight("level", d[5], level="green", end=d[5])])) == []
    notes = book.observe([sight("level", d[6], level="yellow")])
    assert told(notes) == [(1, "escalate")]
    assert notes[0].alert.level == "yellow" and notes[0].alert.reasons == ["yellow because"]
    assert told(book.observe([sight("level", d[7], level="orange")])) == [(1, "escalate")]
    assert told(book.observe([sight("level", d[7], level="yellow")])) == []
    # the level is not activity: the spike's end resolves the alert
    assert told(book.observe([sight("spike", d[8], end=d[8], peak=30, base=2)])) == [
        (1, "resolve")]
    # a level change alone on another port opens a level alert, severity = level
    notes = book.observe([sight("level", d[9], port=3389, onset=d[9], level="orange")])
    assert told(notes) == [(2, "open")] and notes[0].alert.kind == "level"
    assert notes[0].alert.severity == 2 and notes[0].alert.actions == ["block it"]
    assert told(book.observe([sight("level", d[10], port=3389, onset=d[10], level="red")])) == [
        (2, "escalate")]
    notes = book.observe([sight("level", d[12], port=3389, onset=d[12], level="green",
                                end=d[12])])
    assert told(notes) == [(2, "resolve")] and notes[0].alert.resolved_at == d[12]


def test_updates_are_rate_limited_per_port_in_event_time(store: Store) -> None:
    book = AlertBook(store, LifecycleParams(update_interval=3600))
    assert told(book.observe([sight("spike", "2026-01-05T01:00:00", peak=20, base=2)]))
    # new numbers 30 minutes later: stored, not told
    assert book.observe([sight("spike", "2026-01-05T01:30:00", peak=25, base=2)]) == []
    assert book.alerts()[0].peak_sources == 25
    # an hour after the last notification: told
    assert told(book.observe([sight("spike", "2026-01-05T02:00:00", peak=26, base=2)])) == [
        (1, "update")]
    # nothing changed: de-duplicated, whatever the time
    assert book.observe([sight("spike", "2026-01-05T09:00:00", peak=26, base=2)]) == []


def test_evidence_is_stored_and_told(store: Store) -> None:
    book = AlertBook(store)
    book.observe([sight("spike", "2026-01-05T01:00:00", peak=20, base=2),
                  sight("campaign", "2026-01-05T01:00:00", peak=11)])
    (payload,) = store.con.execute(
        "SELECT payload FROM alert_outbox ORDER BY outbox_id DESC LIMIT 1").fetchone()
    assert set(json.loads(payload)["alert"]["evidence"]) == {"spike", "campaign"}
    from portradar.alerts.alert import Notification

    summary = Notification(book.alerts()[0], "update", "2026-01-05T01:00:00").summary()
    assert "; campaign: campaign evidence" in summary


def _network_campaign(store: Store, port: int, members: int, day: int) -> None:
    """``members`` sources of 203.0.113.0/24 probing ``port`` on many targets, one day."""
    rows = [ev(f"203.0.113.{i + 1}", f"198.51.100.{j + 1}", port, t=day * 86400 + i * 60 + j)
            for i in range(members) for j in range(3)]
    put(store, rows)


def test_campaign_sightings_from_scan_detection(store: Store) -> None:
    from portradar.scan.detect import ensure_detection

    _network_campaign(store, 5900, 12, day=0)
    put(store, [ev("192.0.2.1", "198.51.100.1", 80, t=0.5 * 86400)])
    ensure_detection(store)
    got = seen.campaign_sightings(store, "2023-11-15T00:00:00")
    assert [(s.proto, s.port, s.peak_sources, s.end) for s in got] == [(6, 5900, 12.0, None)]
    assert got[0].severity_excess() == 1 and "12 sources" in got[0].detail
    # a day and more later with no member probing: the campaign is over
    put(store, [ev("192.0.2.1", "198.51.100.1", 80, t=2 * 86400)])
    ensure_detection(store)
    (over,) = seen.campaign_sightings(store, "2023-11-16T00:00:00")
    assert over.end is not None and over.end < "2023-11-15T00:00:00"


def test_level_candidates_are_ports_with_fresh_news(store: Store) -> None:
    from portradar.intel.vulnerabilities import KnowledgeBase

    KnowledgeBase.open(store)  # the bundled history: MS05-027 (445) patched 2005-06-14
    assert (6, 445) in seen.level_candidates(store, date(2005, 6, 17))
    assert (6, 445) not in seen.level_candidates(store, date(2005, 12, 31))
    calls: list[tuple[int, int, date]] = []

    def assess(proto: int, port: int, as_of: date) -> tuple[str, list[str], list[str]]:
        calls.append((proto, port, as_of))
        return ("yellow" if port == 445 else "green"), ["r"], ["a"]

    got = seen.level_sightings({(6, 445), (6, 80)}, date(2005, 6, 17), "2005-06-17T10:00:00",
                               assess)
    assert [(s.port, s.level, s.end) for s in got] == [
        (80, "green", "2005-06-17T10:00:00"), (445, "yellow", None)]
    assessor = seen.Assessor(store)
    first = assessor(6, 445, date(2005, 6, 17))
    assert assessor(6, 445, date(2005, 6, 17)) is first and len(assessor.memo) == 1
    assessor.forget()
    assert not assessor.memo
    # other candidates: once a day, a budget of new ones per round
    day = date(2005, 6, 17)
    assessor.memo[(6, 445, day)] = ("yellow", [], [])
    assessor.memo[(6, 445, date(2005, 6, 16))] = ("green", [], [])
    assert assessor.due({(6, 445), (6, 80), (6, 22), (6, 23)}, day, budget=2) == {
        (6, 445), (6, 22), (6, 23)}
    assert list(assessor.memo) == [(6, 445, day)]  # the day before is dropped
    assessor.forget({(6, 445)})
    assert not assessor.memo


def test_watch_tells_a_campaign_that_makes_a_spike_once(tmp_path: Path) -> None:
    from portradar.watch.config import WatchConfig
    from portradar.watch.service import WatchService

    log = tmp_path / "fw.log"
    lines = []
    for day in range(1, 22):  # three weeks of quiet background on 5900: 2 sources a day
        for k in range(2):
            lines.append(_iptables(f"2026-01-{day:02d}T{10 + k:02d}:00:00Z",
                                   f"192.0.2.{(day * 7 + k) % 250 + 1}", 5900))
    for i in range(40):  # day 22: 40 sources of one /24 probe 5900: a campaign and a spike
        for j in range(3):
            lines.append(_iptables(f"2026-01-22T{10 + i // 10:02d}:{i % 60:02d}:{j:02d}Z",
                                   f"203.0.113.{i + 1}", 5900, dst=j + 1))
    log.write_text("".join(lines))
    cfg = WatchConfig.from_text(f"""
[watch]
period = "day"
detect_seconds = 0
scanners = true
[[input]]
type = "file"
path = "{log}"
""")
    with Store.open(tmp_path / "w.duckdb") as store:
        svc = WatchService(store, cfg, sinks=[])
        for _ in range(20):
            svc.step()
            if svc.inputs[0].events == len(lines):
                break
        svc.detect()
        alerts = svc.book.alerts()
        svc.close()
    assert len(alerts) == 1, alerts
    (alert,) = alerts
    assert (alert.port, alert.status) == (5900, "open")
    assert set(alert.evidence) >= {"spike", "campaign"}
    assert alert.evidence["campaign"]["detail"].startswith("1 campaign, 40 sources")


def _iptables(ts: str, src: str, port: int, dst: int = 1) -> str:
    return (f"{ts} fw kernel: DROP IN=eth0 OUT= SRC={src} DST=198.51.100.{dst} LEN=40 TTL=50 "
            f"ID=1 PROTO=TCP SPT=40000 DPT={port} WINDOW=1024 RES=0x00 SYN URGP=0\n")


def test_watch_opens_escalates_resolves_a_level_alert_from_the_bundled_history(
        tmp_path: Path) -> None:
    """Replay of summer 2005 (no spike at all): MS05-039 is patched on 08-09 and exploited
    on 08-11 (yellow), Zotob is a mass attack on 08-14 (orange); 30 days later the news is
    old (green).  The bundled history alone makes the level change, and the watch tells it
    as one alert on tcp/445."""
    from datetime import timedelta

    from portradar.watch.config import WatchConfig
    from portradar.watch.service import WatchService

    log = tmp_path / "fw.log"
    log.write_text("")
    cfg = WatchConfig.from_text(f"""
[watch]
period = "day"
detect_seconds = 3600
scanners = false
[[input]]
type = "file"
path = "{log}"
""")
    first = date(2005, 7, 25)
    levels = {}
    with Store.open(tmp_path / "l.duckdb") as store:
        svc = WatchService(store, cfg, sinks=[])
        for k in range(60):  # one day at a time, two quiet probes on port 80 a day
            day = first + timedelta(days=k)
            with open(log, "a") as fh:
                fh.writelines(_iptables(f"{day}T1{j}:00:00Z", f"192.0.2.{k % 50 + j + 1}", 80)
                              for j in range(2))
            for _ in range(10):  # bounded
                if svc.step() == 0 and svc.inputs[0].events == 2 * (k + 1):
                    break
            svc.detect()
            levels[day] = [(a.kind, a.status, a.level, a.severity) for a in svc.book.alerts()]
        outbox = store.con.execute(
            "SELECT transition, at_time FROM alert_outbox ORDER BY outbox_id").fetchall()
        (escalated,) = store.con.execute(
            "SELECT payload FROM alert_outbox WHERE transition = 'escalate'").fetchone()
        (alert,) = svc.book.alerts()
        svc.close()
    assert levels[date(2005, 8, 9)] == []
    assert levels[date(2005, 8, 10)] == [("level", "open", "yellow", 1)]
    assert levels[date(2005, 8, 13)] == [("level", "open", "orange", 2)]
    assert levels[date(2005, 9, 9)] == [("level", "resolved", "green", 2)]
    assert [t for t, _ in outbox] == ["open", "escalate", "resolve"]
    assert [at[:10] for _, at in outbox] == ["2005-08-10", "2005-08-13", "2005-09-09"]
    assert (alert.proto, alert.port) == (6, 445)
    told = json.loads(escalated)["alert"]
    assert any("MS05-039" in r for r in told["reasons"]), told["reasons"]
    assert any(a.startswith("block tcp/445 inbound") for a in told["actions"]), told["actions"]
