"""A plain EWMA z-score: the textbook control chart, for honest comparison.

Mean and variance are exponentially weighted (``lam`` = 0.1, within the 0.05-0.25
that Lucas & Saccucci 1990 recommend for EWMA charts); a bucket alarms when its
z-score against them is at least ``threshold`` (3, the three-sigma rule).  The
estimates learn from every bucket, spikes included, with no seasonality and no
over-dispersion model: the weaknesses the new detector is built to avoid.  The
sources must exceed the mean by ``min_excess`` (10), as for every detector in the
evaluation.

>>> import numpy as np
>>> x = np.array([[10.0, 12, 9, 11, 10, 13, 8] * 4 + [60]])
>>> z = ewma_z(x)
>>> bool(z[0, -1] > 3), bool(np.abs(z[0, 7:-1]).max() < 3)
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numba
import numpy as np

from portradar.spikes.activity_matrix import ActivityMatrix
from portradar.spikes.alarms import Alarm, alarms_from_mask, as_float

#: Buckets before a z-score is given (the variance needs a few).
WARMUP = 7


@numba.njit(parallel=True, cache=True)
def _ewma(x: np.ndarray, lam: float, warmup: int, z: np.ndarray, excess: np.ndarray) -> None:
    n, t_len = x.shape
    for i in numba.prange(n):
        m = x[i, 0]
        v = 0.0
        for t in range(1, t_len):
            d = x[i, t] - m
            if t >= warmup:
                z[i, t] = d / max(1.0, np.sqrt(v))
                excess[i, t] = d
            m += lam * d
            v = (1.0 - lam) * (v + lam * d * d)


def ewma_z(x: np.ndarray, lam: float = 0.1, warmup: int = WARMUP) -> np.ndarray:
    """z-score of every bucket against the EWMA mean and variance before it."""
    x = np.ascontiguousarray(as_float(x))
    z = np.zeros(x.shape)
    excess = np.zeros(x.shape)
    if x.size:
        _ewma(x, lam, warmup, z, excess)
    return z


@dataclass
class EwmaZ:
    """Alarm while the EWMA z-score is at or above ``threshold``."""

    name: ClassVar[str] = "ewma"
    lam: float = 0.1
    threshold: float = 3.0
    min_excess: float = 10.0

    def scores(self, total: ActivityMatrix) -> np.ndarray:
        x = np.ascontiguousarray(as_float(total.sources))
        z = np.zeros(x.shape)
        excess = np.zeros(x.shape)
        rows = np.flatnonzero(x.max(axis=1) >= self.min_excess)
        if len(rows):
            zz = np.zeros((len(rows), x.shape[1]))
            ee = np.zeros((len(rows), x.shape[1]))
            _ewma(np.ascontiguousarray(x[rows]), self.lam, WARMUP, zz, ee)
            z[rows] = zz
            excess[rows] = ee
        z[excess < self.min_excess] = 0.0
        return z

    def alarms(self, total: ActivityMatrix, by_sensor: ActivityMatrix | None = None,
               ) -> list[Alarm]:
        return alarms_from_mask(self.scores(total) >= self.threshold)
