"""Per-port baseline: an over-dispersed (negative-binomial) model of a count per bucket.

Background radiation is never Poisson: the number of distinct sources probing 445 in a
day varies far more than its mean (scanner populations come and go, botnets wake up
together).  A Poisson test would call every busy port anomalous every day; this is why
the baseline is a **negative binomial** with mean ``mu`` and variance
``mu + dispersion * mu**2`` (quasi-Poisson would scale the variance by a constant,
which under-states the spread of the busy ports, whose day-to-day changes are
multiplicative).

The baseline of one series (one port, one protocol, one sensor or ``*``) is learned on
line, bucket by bucket, so the same state can be kept per key on any engine:

* **level**: exponentially weighted mean of the de-seasonalised count, weight
  :attr:`BaselineParams.alpha_level` (0.07 = 2/(28+1): the 28-day memory of DShield's
  and GreyNoise's windows);
* **seasonality**: multiplicative weekday factors (and hour-of-day factors for hourly
  buckets), weight :attr:`BaselineParams.alpha_season`, shrunk towards 1 where counts
  are small so a quiet port's noise is not taken for a weekly rhythm;
* **dispersion**: exponentially weighted moment estimate of ``((x-mu)^2 - mu)/mu^2``,
  floored at :attr:`BaselineParams.dispersion_min` (0.01: a coefficient of variation
  of at least 10 % for large counts; no real port is steadier than that from day to
  day, and a lower floor turns model error on the busiest ports into false alarms);
* **robustness to its own spikes**: every update uses the count clipped to
  ``mu ± huber_c * sd`` (Huber's 1964 M-estimator idea, ``c`` = 2.5), and the detector
  freezes the baseline while a spike is open, so a campaign never becomes the norm it
  is judged against (unless it lasts longer than ``max_spike_buckets``).

The score of a bucket is the tail probability ``P(X >= x)`` under the baseline,
reported as ``-log10 p`` (see :func:`nb_neglog10_sf`), computed exactly from the
regularised incomplete beta function (Lentz's continued fraction, as in *Numerical
Recipes* 6.4), so a score of 6 means "one in a million buckets".

>>> round(nb_neglog10_sf(10.0, 2.0, 0.0001), 2)   # Poisson(2): P(X >= 10) = 4.7e-5
4.33
>>> round(nb_neglog10_sf(10.0, 2.0, 1.0), 2)      # same mean, over-dispersed: much likelier
1.76
>>> import numpy as np
>>> band = baseline_band(np.array([[10, 12, 9, 11, 10, 13, 8] * 6]), buckets_per_day=1)
>>> bool(band.mean[0, -1] > 8), bool(band.high[0, -1] > band.mean[0, -1] > band.low[0, -1])
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numba
import numpy as np

__all__ = [
    "BaselineBand",
    "BaselineParams",
    "baseline_band",
    "nb_neglog10_sf",
    "nb_sf",
    "predictive_dispersion",
]

_LN10 = math.log(10.0)


@dataclass(frozen=True)
class BaselineParams:
    """The numbers that shape a baseline; defaults are for daily buckets.

    Use :meth:`for_period` for hourly buckets, where the warm-up and memories are
    given in hours.
    """

    #: Weight of a new bucket in the level (2/(28+1): a 28-day memory, DShield's and
    #: GreyNoise's comparison windows).
    alpha_level: float = 0.07
    #: Weight of a new observation in its weekday (or hour) factor: each factor sees one
    #: bucket a week (a day), so 0.15 is a memory of about six weeks (days).
    alpha_season: float = 0.15
    #: Weight of a new bucket in the dispersion estimate (memory about 30 buckets).
    alpha_dispersion: float = 0.07
    #: Floor of the dispersion (1/size of the negative binomial): CV >= 10 % when large.
    dispersion_min: float = 0.01
    #: Ceiling of the dispersion: beyond it the tail would hide everything.
    dispersion_max: float = 4.0
    #: Updates use the count clipped to mu +- huber_c * sd (Huber 1964, c = 2.5).
    huber_c: float = 2.5
    #: Buckets used to start the baseline (14 days: two of each weekday).
    warmup: int = 14
    #: Seasonal factors are shrunk towards 1 with this many pseudo-counts.
    season_prior: float = 10.0
    #: Smallest expected count (keeps the tail finite on a port never seen).
    mu_min: float = 0.05

    @classmethod
    def for_period(cls, period: str, **overrides: Any) -> BaselineParams:
        """Defaults for ``day`` or ``hour`` buckets (memories kept in days)."""
        if period == "hour":
            base = cls(alpha_level=2 / (28 * 24 + 1), alpha_season=0.15,
                       alpha_dispersion=2 / (7 * 24 + 1), warmup=14 * 24)
        else:
            base = cls()
        return cls(**{**asdict(base), **overrides})

    def as_array(self) -> np.ndarray:
        return np.array([float(getattr(self, f.name)) for f in fields(self)], np.float64)


# indices into BaselineParams.as_array()
_A_LEVEL, _A_SEASON, _A_DISP, _DISP_MIN, _DISP_MAX, _HUBER, _WARMUP, _PRIOR, _MU_MIN = range(9)


# --- the negative binomial tail --------------------------------------------------------


@numba.njit(cache=True)
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    fpmin = 1e-300
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < fpmin:
        d = fpmin
    d = 1.0 / d
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < fpmin:
            d = fpmin
        c = 1.0 + aa / c
        if abs(c) < fpmin:
            c = fpmin
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < fpmin:
            d = fpmin
        c = 1.0 + aa / c
        if abs(c) < fpmin:
            c = fpmin
        d = 1.0 / d
        de = d * c
        h *= de
        if abs(de - 1.0) < 1e-11:
            break
    return h


@numba.njit(cache=True)
def _log_betainc(a: float, b: float, x: float) -> float:
    """log of the regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return -np.inf
    if x >= 1.0:
        return 0.0
    front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
             + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front + math.log(_betacf(a, b, x)) - math.log(a)
    v = math.exp(front) * _betacf(b, a, 1.0 - x) / b
    if v >= 1.0:
        return -745.0
    return math.log1p(-v)


@numba.njit(cache=True)
def nb_neglog10_sf(x: float, mu: float, dispersion: float) -> float:
    """``-log10 P(X >= x)`` for X negative binomial with mean ``mu`` and the dispersion.

    ``P(X >= x) = I_q(x, r)`` with size ``r = 1/dispersion`` and ``q = mu/(r + mu)``.
    """
    if x <= 0.0:
        return 0.0
    r = 1.0 / dispersion
    q = mu / (r + mu)
    return max(0.0, -_log_betainc(x, r, q) / _LN10)


def nb_sf(x: float, mu: float, dispersion: float) -> float:
    """``P(X >= x)`` (a convenience for tests and reports).

    >>> round(nb_sf(1, 1.0, 1e-6), 4)   # Poisson(1): 1 - e^-1
    0.6321
    """
    return float(10.0 ** -nb_neglog10_sf(float(x), float(mu), float(dispersion)))


# --- the on-line baseline state ------------------------------------------------------


@numba.njit(cache=True)
def baseline_init(x: np.ndarray, wd0: int, bpd: int, bp: np.ndarray,
                  state: np.ndarray) -> None:
    """Start a baseline from the first ``warmup`` buckets of ``x``.

    ``state`` layout: [level, dispersion, weekday factors (7), hour factors (24)].
    The level is the mean of the warm-up counts winsorised at their 90th percentile
    (so a campaign in the warm-up does not set the norm).
    """
    n = min(len(x), max(1, int(bp[_WARMUP])))
    vals = np.sort(x[:n].astype(np.float64))
    cap = vals[min(n - 1, int(0.9 * n))]
    total = 0.0
    sq = 0.0
    for i in range(n):
        v = min(vals[i], cap)
        total += v
        sq += v * v
    m = total / n
    var = sq / n - m * m
    state[0] = m
    disp = bp[_DISP_MIN]
    if m > 0.5:
        disp = (var - m) / (m * m)
    state[1] = min(bp[_DISP_MAX], max(bp[_DISP_MIN], disp))
    for k in range(2, 33):
        state[k] = 1.0
    if m <= 0.0:
        return
    prior = bp[_PRIOR]
    # weekday and hour-of-day factors from the warm-up, shrunk towards 1
    wsum = np.zeros(7)
    wcnt = np.zeros(7)
    hsum = np.zeros(24)
    hcnt = np.zeros(24)
    for t in range(n):
        v = min(float(x[t]), cap)
        wd = (wd0 + t // bpd) % 7
        h = t % bpd
        wsum[wd] += v
        wcnt[wd] += 1.0
        if bpd > 1:
            hsum[h] += v
            hcnt[h] += 1.0
    for k in range(7):
        if wcnt[k] > 0:
            state[2 + k] = (wsum[k] + prior) / (wcnt[k] * m + prior)
    if bpd > 1:
        for k in range(bpd):
            if hcnt[k] > 0:
                state[9 + k] = (hsum[k] + prior) / (hcnt[k] * m + prior)


@numba.njit(cache=True, inline="always")
def baseline_mean(state: np.ndarray, wd: int, h: int, bp: np.ndarray) -> float:
    """Expected count of a bucket on weekday ``wd`` at hour ``h`` (0 for daily)."""
    return max(bp[_MU_MIN], state[0] * state[2 + wd] * state[9 + h])


@numba.njit(cache=True, inline="always")
def predictive_dispersion(mu: float, dispersion: float, bp: np.ndarray) -> float:
    """The dispersion of the next bucket's count, counting what the baseline does not know.

    The level and the dispersion are estimates from about ``(2 - alpha)/alpha``
    buckets (28 with the defaults); scoring as if they were exact makes the far tail
    too thin (measured: 2.4 times too many p <= 0.001 buckets on negative-binomial
    noise).  The level's variance adds ``alpha/(2 - alpha)`` of the count's variance,
    and the dispersion is taken one standard error high (relative error
    ``sqrt(2 alpha_d / (2 - alpha_d))`` of a variance estimated from that many buckets).
    """
    a_l = bp[_A_LEVEL]
    a_d = bp[_A_DISP]
    level_share = a_l / (2.0 - a_l)
    return (dispersion * (1.0 + math.sqrt(2.0 * a_d / (2.0 - a_d)))
            + level_share * (1.0 / max(mu, 1e-9) + dispersion))


@numba.njit(cache=True)
def baseline_update(state: np.ndarray, x: float, wd: int, h: int, bpd: int,
                    bp: np.ndarray, learn_dispersion: bool = True) -> None:
    """Learn one bucket (robustly: the count is clipped to mu +- huber_c * sd).

    ``learn_dispersion`` False keeps the dispersion as it is (the detector passes it
    while a rise is building up, so the rise does not widen its own band).
    """
    f_w = state[2 + wd]
    f_h = state[9 + h]
    mu = max(bp[_MU_MIN], state[0] * f_w * f_h)
    disp = state[1]
    sd = math.sqrt(mu + disp * mu * mu)
    c = bp[_HUBER]
    xc = min(max(x, mu - c * sd), mu + c * sd)
    if xc < 0.0:
        xc = 0.0
    # level, on the de-seasonalised count
    a = bp[_A_LEVEL]
    state[0] += a * (xc / (f_w * f_h) - state[0])
    if state[0] < 0.0:
        state[0] = 0.0
    # seasonal factors, with weight shrunk where counts are small
    shrink = mu / (mu + bp[_PRIOR])
    a_s = bp[_A_SEASON] * shrink
    lvl = max(state[0], 1e-9)
    if a_s > 0.0:
        # a weekday factor learns once a day, an hour factor once a day too: hourly
        # buckets must not let a day-long rise become "this weekday's level" in hours
        target_w = min(5.0, max(0.2, xc / (lvl * f_h)))
        state[2 + wd] += a_s / bpd * (target_w - f_w)
        if bpd > 1:
            target_h = min(5.0, max(0.2, xc / (lvl * state[2 + wd])))
            state[9 + h] += a_s * (target_h - f_h)
    # factors keep a mean of 1 (renormalised once a day: cheap, and drift within a day
    # is a fraction of a percent)
    if h == bpd - 1:
        norm = 0.0
        for k in range(7):
            norm += state[2 + k]
        norm /= 7.0
        for k in range(7):
            state[2 + k] /= norm
        if bpd > 1:
            norm = 0.0
            for k in range(bpd):
                norm += state[9 + k]
            norm /= bpd
            for k in range(bpd):
                state[9 + k] /= norm
    # dispersion: moment estimate, weighted by how much a bucket can tell
    if mu >= 1.0 and learn_dispersion:
        # the winsorised residual (as for the level) keeps a slow rise from widening the
        # band; 1.06 undoes the winsorising's shrinkage (E[min(z^2, 2.5^2)] = 0.94)
        est = ((xc - mu) * (xc - mu) * 1.06 - mu) / (mu * mu)
        est = min(bp[_DISP_MAX], max(0.0, est))
        w = bp[_A_DISP] * mu / (mu + 5.0)
        state[1] += w * (est - state[1])
    if state[1] < bp[_DISP_MIN]:
        state[1] = bp[_DISP_MIN]


@numba.njit(parallel=True, cache=True)
def _band_kernel(x: np.ndarray, wd0: int, bpd: int, bp: np.ndarray,
                 mean: np.ndarray, disp: np.ndarray) -> None:
    n, t_len = x.shape
    for i in numba.prange(n):
        state = np.ones(33)
        baseline_init(x[i], wd0, bpd, bp, state)
        for t in range(t_len):
            wd = (wd0 + t // bpd) % 7
            h = t % bpd
            mean[i, t] = baseline_mean(state, wd, h, bp)
            disp[i, t] = state[1]
            baseline_update(state, float(x[i, t]), wd, h, bpd, bp)


@dataclass
class BaselineBand:
    """Per bucket: the expected count, the dispersion, and the band mean ± 2 sd."""

    mean: np.ndarray
    dispersion: np.ndarray

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(self.mean + self.dispersion * self.mean**2)

    @property
    def low(self) -> np.ndarray:
        return np.maximum(0.0, self.mean - 2.0 * self.sd)

    @property
    def high(self) -> np.ndarray:
        return self.mean + 2.0 * self.sd


def baseline_band(x: np.ndarray, *, buckets_per_day: int = 1, first_weekday: int = 0,
                  params: BaselineParams | None = None) -> BaselineBand:
    """The one-step-ahead baseline of every row of ``x`` (rows × buckets), unfrozen.

    The spike detector freezes the baseline during spikes; this plain version is for
    the baselines beside it and for plots.
    """
    params = params or BaselineParams.for_period("hour" if buckets_per_day > 1 else "day")
    x = np.atleast_2d(np.asarray(x))
    mean = np.zeros(x.shape, np.float64)
    disp = np.zeros(x.shape, np.float64)
    if x.size:
        _band_kernel(x, int(first_weekday), int(buckets_per_day), params.as_array(), mean,
                     disp)
    return BaselineBand(mean, disp)
