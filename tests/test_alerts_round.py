"""One round of the alert lifecycle: one notification per port, one query for the round.

A round's sightings of one port (a spike and the campaign that makes it, a level) are
applied together: the port gets at most one of open / escalate / update, carrying all
of the round's evidence, then its resolve if that evidence is over.
"""

from __future__ import annotations

from typing import Any

from portradar.alerts.lifecycle import AlertBook, Sighting
from portradar.store import Store


def sight(kind: str, at: str, *, port: int = 445, onset: str = "2026-01-05T00:00:00",
          end: str | None = None, peak: float = 0.0, base: float = 0.0,
          level: str = "") -> Sighting:
    return Sighting(kind=kind, proto=6, port=port, onset=onset, at=at, end=end, score=5.0,
                    peak_sources=peak, baseline_sources=base, level=level,
                    detail=f"{kind} evidence", reasons=["why"] if level else None,
                    actions=["act"] if level else None)


def told(notes: list[Any]) -> list[tuple[int, int, str]]:
    return [(n.alert.port, n.alert.alert_id, n.transition) for n in notes]


def test_spike_and_campaign_in_one_round_open_one_alert_told_once(store: Store) -> None:
    book = AlertBook(store)
    at = "2026-01-05T03:00:00"
    notes = book.observe([sight("spike", at, peak=40, base=5),
                          sight("campaign", at, peak=30),
                          sight("spike", at, port=23, peak=25, base=1),
                          sight("level", at, level="yellow")])
    assert told(notes) == [(445, 1, "open"), (23, 2, "open")]
    assert set(notes[0].alert.evidence) == {"spike", "campaign", "level"}
    assert notes[0].alert.level == "yellow"
    (n,) = store.con.execute("SELECT count(*) FROM alert_outbox").fetchone()
    assert n == 2


def test_escalation_and_new_evidence_in_one_round_are_one_escalate(store: Store) -> None:
    book = AlertBook(store)
    t = [f"2026-01-05T{h:02d}:00:00" for h in range(10)]
    assert told(book.observe([sight("spike", t[1], peak=40, base=5)])) == [(445, 1, "open")]
    # new campaign evidence (an update) and a spike grown to severity 2 (an escalation)
    notes = book.observe([sight("campaign", t[2], peak=12),
                          sight("spike", t[2], peak=400, base=5)])
    assert told(notes) == [(445, 1, "escalate")]
    assert set(notes[0].alert.evidence) == {"spike", "campaign"} and notes[0].alert.updates == 1
    # nothing new: nothing told, nothing stored twice
    assert book.observe([sight("campaign", t[2], peak=12),
                         sight("spike", t[2], peak=400, base=5)]) == []


def test_a_round_that_opens_and_ends_a_rise_tells_open_then_resolve(store: Store) -> None:
    book = AlertBook(store)
    t = [f"2026-01-05T{h:02d}:00:00" for h in range(10)]
    notes = book.observe([sight("spike", t[3], onset=t[1], end=t[3], peak=40, base=5),
                          sight("campaign", t[3], onset=t[1], end=t[2], peak=30)])
    assert told(notes) == [(445, 1, "open"), (445, 1, "resolve")]
    assert notes[1].alert.resolved_at == t[3]
    # the same rises again: known, nothing told
    assert book.observe([sight("spike", t[4], onset=t[1], end=t[3], peak=40, base=5)]) == []


def test_many_quiet_ports_in_a_round(store: Store) -> None:
    book = AlertBook(store)
    at = "2026-01-05T03:00:00"
    small = [sight("spike", at, port=1000 + i, peak=5, base=2) for i in range(300)]
    assert book.observe(small) == []  # below severity 1: nothing opened
    big = [sight("spike", at, port=1000 + i, peak=50, base=2) for i in range(300)]
    assert len(book.observe(big)) == 300
    assert book.observe(big) == []
