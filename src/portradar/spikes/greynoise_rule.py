"""GreyNoise's spike rule, the second baseline a new spike detector must beat.

A day is a spike when its unique sources exceed **both** the median + 2 × IQR of the
history (GreyNoise's "global elevation", here all days before it) **and** the 28-day
rolling mean + 2 standard deviations ("local elevation"), as defined in GreyNoise's
2025 report "Early Warning Signals: When Attacker Behavior Precedes New
Vulnerabilities".  As for every detector in the evaluation, the sources must also
exceed the 28-day mean by ``min_excess`` (10).

>>> import numpy as np
>>> x = np.array([[10, 12, 9, 11, 10, 13, 8] * 5 + [40]], float)
>>> bool(greynoise_mask(x, min_excess=0)[0, -1]), bool(greynoise_mask(x, min_excess=0)[0, 20])
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numba
import numpy as np

from portradar.spikes.activity_matrix import ActivityMatrix
from portradar.spikes.alarms import Alarm, alarms_from_mask, as_float

#: The rolling window of the local elevation (days).
LOCAL_DAYS = 28
#: Days of history before the rule may fire (a median of a week is not a baseline).
MIN_HISTORY = 7


@numba.njit(parallel=True, cache=True)
def _mask(x: np.ndarray, local: int, min_history: int, min_excess: float,
          out: np.ndarray) -> None:
    n, t_len = x.shape
    for i in numba.prange(n):
        row = x[i]
        if row.max() <= 0:
            continue
        for t in range(min_history, t_len):
            past = row[:t]
            q1, med, q3 = np.quantile(past, np.array([0.25, 0.5, 0.75]))
            lo = max(0, t - local)
            win = row[lo:t]
            mean = win.mean()
            sd = win.std()
            v = row[t]
            out[i, t] = (v > med + 2.0 * (q3 - q1)) and (v > mean + 2.0 * sd) and (
                v - mean >= min_excess)


def greynoise_mask(x: np.ndarray, *, local: int = LOCAL_DAYS, min_history: int = MIN_HISTORY,
                   min_excess: float = 10.0) -> np.ndarray:
    """Days that the rule flags (rows × buckets of daily unique sources)."""
    x = np.ascontiguousarray(as_float(x))
    out = np.zeros(x.shape, bool)
    if x.size:
        _mask(x, local, min_history, float(min_excess), out)
    return out


@dataclass
class GreyNoiseRule:
    """Alarm on the days the rule flags (runs of consecutive days are one alarm)."""

    name: ClassVar[str] = "greynoise_rule"
    local: int = LOCAL_DAYS
    min_excess: float = 10.0

    def alarms(self, total: ActivityMatrix, by_sensor: ActivityMatrix | None = None,
               ) -> list[Alarm]:
        rows = np.flatnonzero(total.sources.max(axis=1) >= self.min_excess)
        mask = greynoise_mask(total.sources[rows], local=self.local,
                              min_excess=self.min_excess)
        out = alarms_from_mask(mask)
        for a in out:
            a.row = int(rows[a.row])
        return out
