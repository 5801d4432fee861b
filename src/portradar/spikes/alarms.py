"""Alarms: what every spike detector hands to the evaluation, and runs of alarmed buckets.

A detector that flags buckets (the GreyNoise rule, DShield's trend score over a
threshold, an EWMA z-score) raises one alarm per run of consecutive flagged buckets,
at the run's first bucket, so every detector is counted the same way: one alarm per
episode, never one per bucket.

>>> import numpy as np
>>> mask = np.array([[False, True, True, False, True], [False] * 5])
>>> [(a.row, a.alarm, a.end) for a in alarms_from_mask(mask)]
[(0, 1, 3), (0, 4, None)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from portradar.spikes.activity_matrix import ActivityMatrix


@dataclass
class Alarm:
    """One alarm: the row (series) of the all-sensors matrix, its first bucket, its end."""

    row: int
    alarm: int
    end: int | None = None
    onset: int | None = None
    kind: str | None = None
    doubling_buckets: float | None = None
    proto: int | None = None
    port: int | None = None


class SpikeDetectorLike(Protocol):
    """What ``portradar evaluate spikes`` needs of a detector."""

    name: str

    def alarms(self, total: ActivityMatrix, by_sensor: ActivityMatrix | None = None,
               ) -> list[Alarm]: ...


def alarms_from_mask(mask: np.ndarray) -> list[Alarm]:
    """One alarm per run of True along each row (vectorised)."""
    n, t_len = mask.shape
    padded = np.zeros((n, t_len + 2), np.int8)
    padded[:, 1:-1] = mask
    step = np.diff(padded, axis=1)
    rows, starts = np.nonzero(step == 1)
    _, ends = np.nonzero(step == -1)
    return [Alarm(row=int(r), alarm=int(s), end=None if e >= t_len else int(e), onset=int(s))
            for r, s, e in zip(rows, starts, ends, strict=True)]


def trailing_mean(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and count of the ``window`` buckets before each bucket (not including it)."""
    c = np.zeros((x.shape[0], x.shape[1] + 1))
    np.cumsum(x, axis=1, out=c[:, 1:])
    t = np.arange(x.shape[1])
    lo = np.maximum(0, t - window)
    total = c[:, t] - c[:, lo]
    count = (t - lo).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean, np.broadcast_to(count, x.shape)


def as_float(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)
