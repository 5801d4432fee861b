"""The baselines the spike detector is scored against, and the scoring itself."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from portradar.spikes.activity_matrix import ActivityMatrix
from portradar.spikes.alarms import Alarm, alarms_from_mask, trailing_mean
from portradar.spikes.dshield_trend import DShieldTrend, trend_score
from portradar.spikes.evaluation import busiest_ports, matched_threshold, score_alarms
from portradar.spikes.ewma import EwmaZ, ewma_z
from portradar.spikes.greynoise_rule import GreyNoiseRule, greynoise_mask

START = datetime(2025, 1, 6, tzinfo=UTC)


def test_dshield_trend_is_the_published_formula() -> None:
    s = np.array([[100.0] * 30 + [150.0]])
    t = np.array([[50.0] * 30 + [80.0]])
    expected = np.sqrt((150 - 100) ** 2 / 100 + (80 - 50) ** 2 / 50)
    assert trend_score(s, t)[0, -1] == pytest.approx(expected)
    # only rises count; no history, no score
    assert trend_score(np.array([[100.0] * 30 + [50.0]]), t)[0, -1] == 0.0
    assert trend_score(s, t)[0, 0] == 0.0


def test_trailing_mean_excludes_the_bucket_itself() -> None:
    mean, count = trailing_mean(np.array([[1.0, 2.0, 3.0, 10.0]]), 2)
    assert np.isnan(mean[0, 0]) and mean[0, 3] == 2.5 and count[0, 3] == 2


def test_greynoise_needs_both_elevations() -> None:
    x = np.array([[10, 12, 9, 11, 10, 13, 8] * 5 + [30]], float)
    assert greynoise_mask(x, min_excess=0)[0, -1]
    # a day above the 28-day band but not above the whole history's median + 2 IQR
    hist = np.concatenate([np.tile([10.0, 60.0], 20), np.full(28, 10.0), [45.0]])[None, :]
    assert not greynoise_mask(hist, min_excess=0)[0, -1]


def test_ewma_learns_from_spikes_too() -> None:
    x = np.array([[10.0] * 20 + [60.0] * 10])
    z = ewma_z(x)
    assert z[0, 20] > 3 and z[0, 29] < z[0, 20]  # the spike becomes the norm


def test_runs_of_flagged_buckets_are_one_alarm() -> None:
    mask = np.zeros((2, 10), bool)
    mask[0, 2:5] = True
    mask[0, 7] = True
    mask[1, 9] = True
    got = [(a.row, a.alarm, a.end) for a in alarms_from_mask(mask)]
    assert got == [(0, 2, 5), (0, 7, 8), (1, 9, None)]


def _matrix(rows: int, days: int, seed: int) -> ActivityMatrix:
    rng = np.random.default_rng(seed)
    m = ActivityMatrix.empty("day", START, days, proto=[6] * rows, port=list(range(rows)))
    m.sources[:] = rng.negative_binomial(20, 20 / (20 + 300.0), (rows, days))
    m.targets[:] = 256
    return m


@pytest.mark.parametrize("detector", [DShieldTrend(), GreyNoiseRule(), EwmaZ()])
def test_baselines_find_a_big_jump(detector: object) -> None:
    m = _matrix(3, 60, seed=1)
    m.sources[1, 45] += 2000
    alarms = detector.alarms(m)  # type: ignore[attr-defined]
    assert any(a.row == 1 and a.alarm == 45 for a in alarms)


def test_scoring_counts_detection_delay_and_false_alarms() -> None:
    truth = [
        {"proto": "tcp", "port": 1, "start_day": 40, "end_day": 43, "doubles": True,
         "kind": "rise", "expected_kind": "rise"},
        {"proto": "tcp", "port": 2, "start_day": 50, "end_day": 51, "doubles": True,
         "kind": "sweep", "expected_kind": "new-sources"},
        {"proto": "tcp", "port": 3, "start_day": 50, "end_day": 51, "doubles": False,
         "kind": "loud", "expected_kind": "one-source"},
    ]
    alarms = [Alarm(row=0, alarm=42, proto=6, port=1, kind="rise"),      # delay 2
              Alarm(row=0, alarm=70, proto=6, port=1),                   # after: false
              Alarm(row=0, alarm=10, proto=6, port=9),                   # warm-up: ignored
              Alarm(row=0, alarm=60, proto=6, port=9),                   # false, busy port
              Alarm(row=0, alarm=50, proto=6, port=3, kind="one-source")]
    r = score_alarms("x", alarms, truth, n_ports=100, n_buckets=90,
                     busiest=[6 * 65536 + 9])
    assert (r.detected, r.campaigns, r.detected_all) == (1, 2, 2)
    assert r.median_delay == 2.0 and r.kind_accuracy == 1.0
    assert (r.false_alarms, r.false_alarms_busiest) == (2, 1)
    assert r.fa_per_100_port_years == pytest.approx(100 * 2 / (100 * 62 / 365))


def test_busiest_ports_skip_campaign_ports() -> None:
    m = _matrix(5, 10, seed=2)
    m.sources[3] += 10_000
    m.sources[4] += 5_000
    truth = [{"proto": "tcp", "port": 3}]
    assert busiest_ports(m, truth, n=1) == [6 * 65536 + 4]


def test_matched_threshold_reaches_the_rate() -> None:
    m = _matrix(4, 60, seed=3)
    scores = np.zeros(m.sources.shape)
    scores[0, 40] = 9.0
    scores[1, 41] = 4.0
    truth = [{"proto": "tcp", "port": p, "start_day": 40, "end_day": 41, "doubles": True}
             for p in (0, 1)]
    assert matched_threshold(scores, m, truth, 1.0) == 4.0
    assert matched_threshold(scores, m, truth, 0.5) == 9.0
