"""Scoring spike detectors against a simulation's truth.

Counting rules (the same for every detector):

* **Detected.**  A campaign is detected when the detector raises an alarm on its
  protocol and port from its first day up to ``grace`` buckets (2 days) after its
  last; the **delay** is the alarm's bucket minus the campaign's first bucket.
* **False alarm.**  Any other alarm raised after the warm-up (``eval_from``, 28 days:
  GreyNoise's and DShield's windows need that much history), including one on a
  campaign's port outside its window.  One alarm per episode, never one per bucket.
* **Port-years.**  Ports × evaluated days / 365; "all ports" is every TCP and UDP port
  of the matrix (131,072 in the benchmark), "busiest" the 100 ports with the most
  distinct sources per day that carry no campaign.
* **Doubling campaigns.**  Those whose peak daily sources at least equal the port's
  baseline (``doubles`` in the truth): the class the 95 % target is about; loud
  single scanners never double sources and are counted separately.

>>> from portradar.spikes.alarms import Alarm
>>> truth = [{"proto": "tcp", "port": 445, "start_day": 40, "end_day": 41, "doubles": True,
...           "kind": "sweep", "expected_kind": "new-sources"}]
>>> r = score_alarms("x", [Alarm(row=445, alarm=40, proto=6, port=445, kind="new-sources"),
...                        Alarm(row=80, alarm=50, proto=6, port=80)], truth,
...                  n_ports=1000, n_buckets=90, busiest=[6 * 65536 + 80])
>>> r.detection_rate, r.median_delay, r.false_alarms, round(r.fa_per_port_year_busiest, 1)
(1.0, 0.0, 1, 5.9)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from portradar.spikes.activity_matrix import ActivityMatrix
from portradar.spikes.alarms import Alarm

#: Alarms up to this many buckets after a campaign's last bucket still count as its.
GRACE_BUCKETS = 2
#: Alarms before this bucket are not counted (the detectors' history is filling).
EVAL_FROM = 28
#: Ports in the "busiest ports without campaigns" class.
BUSIEST = 100


@dataclass
class DetectorScore:
    """One detector's line in the results table."""

    detector: str
    detected: int = 0
    campaigns: int = 0
    detection_rate: float = 0.0
    detected_all: int = 0
    campaigns_all: int = 0
    median_delay: float | None = None
    false_alarms: int = 0
    false_alarms_busiest: int = 0
    fa_per_port_year: float = 0.0
    fa_per_100_port_years: float = 0.0
    fa_per_port_year_busiest: float = 0.0
    kind_accuracy: float | None = None
    per_kind: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def as_row(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "detection_rate": round(self.detection_rate, 3),
            "detected": f"{self.detected}/{self.campaigns}",
            "detected_all": f"{self.detected_all}/{self.campaigns_all}",
            "median_delay": self.median_delay,
            "false_alarms": self.false_alarms,
            "fa_per_port_year_busiest": round(self.fa_per_port_year_busiest, 2),
            "fa_per_100_port_years": round(self.fa_per_100_port_years, 3),
            "kind_accuracy": None if self.kind_accuracy is None else round(
                self.kind_accuracy, 2),
            "per_kind": " ".join(f"{k}:{v}" for k, v in self.per_kind.items()),
            "note": self.note,
        }


def _proto_number(p: Any) -> int:
    if isinstance(p, str):
        return {"tcp": 6, "udp": 17}.get(p.lower(), 0) or int(p)
    return int(p)


def busiest_ports(total: ActivityMatrix, truth: Sequence[dict[str, Any]], *,
                  n: int = BUSIEST) -> list[int]:
    """Keys (proto*65536+port) of the ``n`` busiest all-sensor rows without campaigns."""
    campaign_keys = {_proto_number(t["proto"]) * 65536 + int(t["port"]) for t in truth}
    keys = total.row_keys()
    mean = np.asarray(total.sources, float).mean(axis=1)
    out = []
    for i in np.argsort(-mean, kind="stable"):
        if int(keys[i]) not in campaign_keys and total.sensor[i] < 0:
            out.append(int(keys[i]))
            if len(out) == n:
                break
    return out


def score_alarms(name: str, alarms: Sequence[Alarm], truth: Sequence[dict[str, Any]], *,
                 n_ports: int, n_buckets: int, busiest: Sequence[int],
                 eval_from: int = EVAL_FROM, grace: int = GRACE_BUCKETS,
                 buckets_per_year: float = 365.0, note: str = "") -> DetectorScore:
    """Detection, delay and false alarms of ``alarms`` (with proto and port filled)."""
    by_key: dict[int, list[Alarm]] = {}
    for a in alarms:
        if a.alarm < eval_from:
            continue
        by_key.setdefault(int(a.proto or 0) * 65536 + int(a.port or 0), []).append(a)
    used: set[int] = set()
    delays = []
    detected = detected_all = 0
    kind_hits = kind_total = 0
    per_kind: dict[str, list[int]] = {}
    doubling = [t for t in truth if t.get("doubles")]
    for t in truth:
        key = _proto_number(t["proto"]) * 65536 + int(t["port"])
        lo, hi = int(t["start_day"]), int(t["end_day"]) + grace
        hits = [a for a in by_key.get(key, []) if lo <= a.alarm < hi]
        for a in hits:
            used.add(id(a))
        stats = per_kind.setdefault(t["kind"], [0, 0])
        stats[1] += 1
        if not hits:
            continue
        first = min(hits, key=lambda a: a.alarm)
        detected_all += 1
        stats[0] += 1
        if t.get("doubles"):
            detected += 1
            delays.append(first.alarm - lo)
        expected = t.get("expected_kind")
        if expected and first.kind is not None:
            kind_total += 1
            kind_hits += int(first.kind == expected)
    busy = set(busiest)
    false = [a for group in by_key.values() for a in group if id(a) not in used]
    false_busy = [a for a in false if int(a.proto or 0) * 65536 + int(a.port or 0) in busy]
    years = max(1, n_buckets - eval_from) / buckets_per_year
    port_years = n_ports * years
    busy_years = max(1, len(busy)) * years
    return DetectorScore(
        detector=name, detected=detected, campaigns=len(doubling),
        detection_rate=detected / len(doubling) if doubling else math.nan,
        detected_all=detected_all, campaigns_all=len(truth),
        median_delay=float(np.median(delays)) if delays else None,
        false_alarms=len(false), false_alarms_busiest=len(false_busy),
        fa_per_port_year=len(false) / port_years,
        fa_per_100_port_years=100.0 * len(false) / port_years,
        fa_per_port_year_busiest=len(false_busy) / busy_years,
        kind_accuracy=kind_hits / kind_total if kind_total else None,
        per_kind={k: f"{v[0]}/{v[1]}" for k, v in per_kind.items()},
        note=note,
    )


def with_ports(alarms: list[Alarm], total: ActivityMatrix) -> list[Alarm]:
    """Fill proto and port of alarms given by row of ``total``."""
    for a in alarms:
        if a.proto is None:
            a.proto = int(total.proto[a.row])
            a.port = int(total.port[a.row])
    return alarms


def matched_threshold(scores: np.ndarray, total: ActivityMatrix,
                      truth: Sequence[dict[str, Any]], target_rate: float, *,
                      eval_from: int = EVAL_FROM, grace: int = GRACE_BUCKETS,
                      ) -> float | None:
    """The highest threshold at which a score-based detector reaches ``target_rate``.

    Each doubling campaign is detected from the threshold at which its best in-window
    score alarms; the threshold is the matching order statistic.
    """
    doubling = [t for t in truth if t.get("doubles")]
    if not doubling:
        return None
    keys = total.row_keys()
    index = {int(k): i for i, k in enumerate(keys) if total.sensor[i] < 0}
    best = []
    for t in doubling:
        row = index.get(_proto_number(t["proto"]) * 65536 + int(t["port"]))
        if row is None:
            best.append(0.0)
            continue
        lo = max(int(t["start_day"]), eval_from)
        hi = min(int(t["end_day"]) + grace, scores.shape[1])
        # an alarm starts in the window only if the bucket before it was below threshold;
        # the best reachable is the window's max (a run begun earlier would not count, a
        # detail that only lowers the other detectors' rates)
        best.append(float(scores[row, lo:hi].max(initial=0.0)))
    need = math.ceil(target_rate * len(doubling))
    if need <= 0:
        return None
    ordered = sorted(best, reverse=True)
    value = ordered[need - 1]
    return value if value > 0 else None


def default_detectors(period: str = "day") -> list[Any]:
    """The new detector and the three baselines, with their default settings."""
    from portradar.spikes.dshield_trend import DShieldTrend
    from portradar.spikes.ewma import EwmaZ
    from portradar.spikes.greynoise_rule import GreyNoiseRule
    from portradar.spikes.spike_detector import SpikeDetector

    return [SpikeDetector.for_period(period), DShieldTrend(), GreyNoiseRule(), EwmaZ()]


def evaluate(total: ActivityMatrix, by_sensor: ActivityMatrix | None,
             truth: Sequence[dict[str, Any]], *, detectors: Sequence[Any] | None = None,
             matched: bool = True, eval_from: int = EVAL_FROM) -> list[DetectorScore]:
    """Score every detector; score-based baselines also at the threshold that matches
    the first detector's detection rate (``matched``)."""
    detectors = list(detectors) if detectors is not None else default_detectors(total.period)
    busiest = busiest_ports(total, truth)
    common: dict[str, Any] = {"n_ports": int((total.sensor < 0).sum()),
                              "n_buckets": total.n_buckets,
              "busiest": busiest, "eval_from": eval_from,
              "buckets_per_year": 365.0 * total.buckets_per_day}
    out: list[DetectorScore] = []
    for det in detectors:
        alarms = with_ports(det.alarms(total, by_sensor), total)
        out.append(score_alarms(det.name, alarms, truth, **common))
    if matched and out and hasattr(detectors[0], "alarms"):
        target = out[0].detection_rate
        for det in detectors[1:]:
            if not hasattr(det, "scores") or not hasattr(det, "threshold"):
                continue
            scores = det.scores(total)
            thr = matched_threshold(scores, total, truth, target, eval_from=eval_from)
            if thr is None:
                continue
            from dataclasses import replace as _replace

            tuned = _replace(det, threshold=thr)
            alarms = with_ports(tuned.alarms(total, by_sensor), total)
            out.append(score_alarms(f"{det.name}@{thr:.3g}", alarms, truth, **common,
                                    note="threshold matched to the first detector's "
                                         "detection rate"))
    return out
