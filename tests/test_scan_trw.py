"""Threshold Random Walk (portradar.scan.trw) on synthetic first contacts.

The issue's checks: a scanner whose probes are answered by RST or not at all is flagged
within 5 first-contact probes, and a benign client is cleared within 5 successful ones
(Jung et al. 2004: ±ln 4 per step against thresholds ±ln 99, so 4 of each).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scan_events import ev, probes

from portradar.scan.trw import ThresholdRandomWalk

SCANNER, CLIENT = "198.51.100.66", "203.0.113.5"


def _row(walk: ThresholdRandomWalk, source_lo: int | None = None) -> dict:
    rows = walk.result().to_pylist()
    if source_lo is not None:
        rows = [r for r in rows if r["key_lo"] == source_lo]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize("outcome", ["rejected", "unanswered", "blocked"])
def test_scanner_flagged_within_five_failed_first_contacts(outcome):
    rows = [ev(SCANNER, f"192.0.2.{i}", 445, t=i, outcome=outcome) for i in range(1, 9)]
    walk = ThresholdRandomWalk()
    walk.update(probes(rows))
    row = _row(walk)
    assert row["decision"] == "scanner"
    assert row["flagged_after"] <= 5
    assert row["flagged_after"] == 4  # exactly the paper's arithmetic
    assert row["flagged_probes"] == 4
    assert row["llr"] == pytest.approx(4 * math.log(4))


def test_benign_client_cleared_within_five_successful_first_contacts():
    rows = [ev(CLIENT, f"192.0.2.{i}", 443, t=i, outcome="established") for i in range(1, 9)]
    walk = ThresholdRandomWalk()
    walk.update(probes(rows))
    row = _row(walk)
    assert row["decision"] == "benign"
    assert row["cleared_after"] <= 5 and row["cleared_after"] == 4
    assert row["flagged_ts"] is None


def test_only_first_contacts_count_and_repeats_do_not():
    # 20 failed probes to the same host: one first contact, no decision
    rows = [ev(SCANNER, "192.0.2.1", 1000 + i, t=i, outcome="rejected") for i in range(20)]
    walk = ThresholdRandomWalk()
    walk.update(probes(rows))
    row = _row(walk)
    assert (row["decision"], row["contacts"], row["failures"]) == ("pending", 1, 1)


def test_unknown_outcomes_do_not_move_the_walk():
    rows = [ev(SCANNER, f"192.0.2.{i}", 80, t=i, outcome="unknown") for i in range(1, 10)]
    walk = ThresholdRandomWalk()
    walk.update(probes(rows))
    row = _row(walk)
    assert (row["decision"], row["llr"], row["contacts"]) == ("pending", 0, 9)
    # a contact's outcome is its first event's: a later answer does not rewrite history
    rows = [ev(SCANNER, "192.0.2.1", 80, t=0, outcome="unknown"),
            ev(SCANNER, "192.0.2.1", 80, t=1, outcome="rejected")]
    walk = ThresholdRandomWalk()
    walk.update(probes(rows))
    assert (_row(walk)["failures"], _row(walk)["contacts"]) == (0, 1)


def test_mixed_walk_and_restart_after_clearing():
    # a client clears (4 successes), then scans: it is still caught
    rows = [ev(CLIENT, f"192.0.2.{i}", 443, t=i, outcome="established") for i in range(1, 5)]
    rows += [ev(CLIENT, f"198.51.100.{i}", 23, t=10 + i, outcome="blocked") for i in range(1, 6)]
    walk = ThresholdRandomWalk()
    walk.update(probes(rows))
    row = _row(walk)
    assert row["clearings"] == 1 and row["decision"] == "scanner"
    assert row["flagged_probes"] == 8


def test_updates_in_pieces_equal_one_update():
    rng = np.random.default_rng(3)
    rows = []
    for i in range(200):
        src = f"198.51.100.{rng.integers(1, 6)}"
        rows.append(ev(src, f"192.0.2.{rng.integers(1, 30)}", 80, t=i,
                       outcome=str(rng.choice(["blocked", "established", "unknown"]))))
    whole = ThresholdRandomWalk()
    whole.update(probes(rows))
    pieces = ThresholdRandomWalk()
    for lo in range(0, 200, 37):
        pieces.update(probes(rows[lo:lo + 37]))
    assert whole.result().to_pylist() == pieces.result().to_pylist()


def test_parameters_are_checked_and_thresholds_follow_the_paper():
    walk = ThresholdRandomWalk()
    assert walk.eta1 == pytest.approx(math.log(99))
    assert walk.eta0 == pytest.approx(-math.log(99))
    assert walk.step_failure == pytest.approx(math.log(4))
    with pytest.raises(ValueError):
        ThresholdRandomWalk(theta0=0.2, theta1=0.8)
    with pytest.raises(ValueError):
        ThresholdRandomWalk(alpha=0.5, beta=0.4)


def test_one_batch_without_the_contact_set_gives_the_same_walk():
    rng = np.random.default_rng(4)
    rows = [ev(f"198.51.100.{rng.integers(1, 6)}", f"192.0.2.{rng.integers(1, 20)}",
               int(rng.integers(1, 4)), t=float(i),
               outcome=str(rng.choice(["blocked", "accepted", "rejected", "unanswered"])))
            for i in range(300)]
    full, lean = ThresholdRandomWalk(), ThresholdRandomWalk(keep_contacts=False)
    full.update(probes(rows))
    lean.update(probes(rows))
    result = lean.result().to_pylist()
    assert result == full.result().to_pylist()
    assert {r["decision"] for r in result} >= {"scanner"}  # the walk decided something
    assert lean.nbytes() < full.nbytes()
    with pytest.raises(ValueError):  # a later batch would need the contacts seen
        lean.update(probes(rows))
