"""DShield's trend score, the first baseline a new spike detector must beat.

For a port and day: ``sqrt((S - s)^2 / s + (T - t)^2 / t)`` with ``S``, ``T`` the
distinct sources and targets of the last 24 hours and ``s``, ``t`` their averages over
the previous 30 days (DShield/ISC port reports).  It is a ranking, not a test: DShield
publishes no threshold, so :attr:`DShieldTrend.threshold` (default 10) is ours, and
``portradar evaluate spikes`` also reports the threshold that matches the new
detector's detection rate.  Only rises count (``S > s``), and, as for every detector in
the evaluation, the sources must exceed their average by ``min_excess`` (10) so that the
comparison is about telling noise from rises, not about counting tiny ports.

>>> import numpy as np
>>> x = np.array([[100.0] * 30 + [300.0]])
>>> round(float(trend_score(x, x)[0, -1]), 1)   # two hundred extra, twice: sqrt(2 * 400)
28.3
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from portradar.spikes.activity_matrix import ActivityMatrix
from portradar.spikes.alarms import Alarm, alarms_from_mask, as_float, trailing_mean

#: DShield's comparison window (days).
WINDOW_DAYS = 30


def trend_score(sources: np.ndarray, targets: np.ndarray, window: int = WINDOW_DAYS,
                ) -> np.ndarray:
    """The trend score of every bucket (0 where there is no history or no rise)."""
    s_now = as_float(sources)
    t_now = as_float(targets)
    s_avg, _ = trailing_mean(s_now, window)
    t_avg, _ = trailing_mean(t_now, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        part_s = np.where(s_avg > 0, (s_now - s_avg) ** 2 / s_avg, np.where(s_now > 0, s_now,
                                                                            0.0))
        part_t = np.where(t_avg > 0, (t_now - t_avg) ** 2 / t_avg, np.where(t_now > 0, t_now,
                                                                            0.0))
        score = np.sqrt(part_s + part_t)
    score[~(s_now > np.nan_to_num(s_avg))] = 0.0
    score[np.isnan(s_avg)] = 0.0
    return score


@dataclass
class DShieldTrend:
    """Alarm while the trend score is at or above ``threshold`` (see the module doc)."""

    name: ClassVar[str] = "dshield_trend"
    threshold: float = 10.0
    window: int = WINDOW_DAYS
    min_excess: float = 10.0

    def scores(self, total: ActivityMatrix) -> np.ndarray:
        """Scores of every row (rows that never reach ``min_excess`` score 0)."""
        out = np.zeros(total.sources.shape)
        rows = np.flatnonzero(total.sources.max(axis=1) >= self.min_excess)
        if not len(rows):
            return out
        sources = as_float(total.sources[rows])
        targets = as_float(total.targets[rows] if total.targets is not None else sources)
        score = trend_score(sources, targets, self.window)
        s_avg, _ = trailing_mean(sources, self.window)
        score[sources - np.nan_to_num(s_avg) < self.min_excess] = 0.0
        out[rows] = score
        return out

    def alarms(self, total: ActivityMatrix, by_sensor: ActivityMatrix | None = None,
               ) -> list[Alarm]:
        return alarms_from_mask(self.scores(total) >= self.threshold)
