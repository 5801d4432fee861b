"""The spike detector: a real rise on a port, told from that port's own background noise.

For every series (protocol, port; all sensors together and each sensor alone) and every
bucket, in event time:

1. **Baseline.**  An over-dispersed negative-binomial baseline of distinct sources and
   one of records (:mod:`portradar.spikes.baseline`), with weekday (and hour-of-day)
   seasonality, frozen while a spike is open so a campaign is never its own norm.
2. **Score.**  The tail probability of the bucket under its baseline, as
   ``s = -log10 P(X >= x)`` (6 = one bucket in a million), taken from sources or
   records, whichever is more surprising.  Buckets whose excess over the mean is below
   ``min_excess_sources`` / ``min_excess_records`` score 0: ten extra sources on a port
   that usually sees none is rare but is nobody's campaign.
3. **Confirmation.**  A one-sided CUSUM on the score (Page 1954):
   ``S = max(0, S + s - reference)``, a spike when ``S >= threshold``.  With the
   defaults (reference 0.75, threshold 3) one bucket at p <= 1.8e-4, two at p <= 5.6e-3
   or three at p <= 0.018 confirm; scores under the reference count as 0 and the null
   score's mean is below it, so S drifts back to 0.  **Onset** is the first bucket of
   the unbroken run of significant buckets (p <= 0.05) that ends at the alarm, never
   before S last stood at 0 (the CUSUM change-point estimate, which one noisy bucket
   days before would otherwise drag back).
4. **End.**  The spike is over ("activity returned to normal") at the first of
   ``quiet_buckets`` consecutive buckets back inside the baseline's band (scores
   below ``onset_score``, p > 0.05).  A rise that
   lasts ``max_spike_buckets`` becomes the new normal: the spike is closed and the
   baseline restarted from the latest buckets.
5. **Kind** (see :data:`KINDS`): ``one-source`` when records rose but sources never
   did (one loud scanner); ``growth`` when the excess sources grew log-linearly from
   onset to peak (R² >= 0.6, at least ``growth_min_factor`` overall) for at least
   ``growth_min_buckets`` buckets, with the **doubling time** ``ln 2 / slope``
   (worm-like); ``new-sources`` when a short rise (<= ``burst_buckets``) was mostly
   sources not seen on the port before; ``rise`` otherwise (a multi-day rise).
6. **Across sensors.**  For a spike on all sensors together, the share of sensors
   whose own baseline shows the rise (a bucket with p <= 0.01 inside the spike);
   Symantec DeepSight alerted when 3 sensors were anomalous for 2 hours.  A rise that
   only one sensor sees is reported too, with a stricter threshold
   (``threshold + log10(number of sensors)``: a Bonferroni correction, as each sensor
   is one more chance of a false alarm).

The inner loop is compiled (numba) and runs over a (series × buckets) matrix, series
in parallel; series that never exceed the minimum excess are skipped.

>>> import numpy as np
>>> from datetime import datetime, UTC
>>> from portradar.spikes.activity_matrix import ActivityMatrix
>>> rng = np.random.default_rng(1)
>>> m = ActivityMatrix.empty("day", datetime(2005, 5, 1, tzinfo=UTC), 60, proto=[6],
...                          port=[445])
>>> m.sources[0] = rng.negative_binomial(50, 50 / (50 + 400), 60)
>>> m.records[0] = m.sources[0] * 3
>>> m.sources[0, 47] += 900; m.records[0, 47] += 2700; m.new_sources[0, 47] = 900
>>> [(s.kind, m.bucket_label(s.onset), m.bucket_label(s.end)) for s in detect_spikes(m)]
[('new-sources', '2005-06-17', '2005-06-18')]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numba
import numpy as np

from portradar.spikes.activity_matrix import ActivityMatrix
from portradar.spikes.alarms import Alarm
from portradar.spikes.baseline import (
    BaselineParams,
    baseline_init,
    baseline_mean,
    baseline_update,
    nb_neglog10_sf,
    predictive_dispersion,
)

__all__ = ["KINDS", "Spike", "SpikeDetector", "SpikeParams", "detect_spikes"]

#: Kinds of rise, by code.
KINDS: tuple[str, ...] = ("new-sources", "one-source", "growth", "rise")
NEW_SOURCES, ONE_SOURCE, GROWTH, RISE = range(4)

#: How a spike ended: still open at the last bucket, returned to normal, or lasted so
#: long that it became the new baseline.
ENDINGS: tuple[str, ...] = ("open", "normal", "new-normal")


@dataclass(frozen=True)
class SpikeParams:
    """Every number that tunes the detector; defaults for daily buckets.

    The defaults were set on simulator seed 7 and are scored on seed 2024 in
    ``docs/spikes.md`` (never tuned on the scored run).
    """

    #: CUSUM reference value, in -log10 p: buckets with p > 0.18 are no evidence.
    reference: float = 0.75
    #: CUSUM decision threshold, in -log10 p (one bucket at p <= 1.8e-4, two at 5.6e-3
    #: each, three at 0.018 each).  Reference and threshold were chosen on simulator
    #: seeds 7 and 11 from the grid {0.5, 0.75, 1} × {3, 4, 5}.
    threshold: float = 3.0
    #: Buckets scoring at least this (p <= 0.05) are significant: the onset is the first
    #: of the run of them that ends at the alarm, and a spike ends when buckets are back
    #: under it.
    onset_score: float = 1.3
    #: Scores are capped here so one absurd bucket cannot hold a spike open.
    score_cap: float = 30.0
    #: Buckets under mean + z_prefilter * sd are not scored (p is above ~0.15 there;
    #: hourly, 2 sd: p above ~0.03, which the hourly reference ignores anyway).
    z_prefilter: float = 1.0
    #: Excess sources below this never count (ten: DShield's reports ignore ports with
    #: fewer distinct sources; a handful of scanners is no campaign).
    min_excess_sources: float = 10.0
    #: Excess records below this never count.  Routine loud scanners send up to about
    #: 2,000 probes a day to one port in the simulator's calibration run (seed 7), as
    #: password guessers do on real sensors; psad calls 1,500 packets danger level 4.
    min_excess_records: float = 3000.0
    #: Records are heavier-tailed than sources (one source can send any number):
    #: their score is discounted by this many decades.
    records_penalty: float = 2.0
    #: Consecutive normal buckets that end a spike.
    quiet_buckets: int = 2
    #: A spike this long becomes the new baseline (three weeks).
    max_spike_buckets: int = 21
    #: Spikes this short made of new sources are "new-sources".
    burst_buckets: int = 2
    #: Growth needs at least this many buckets from onset to peak...
    growth_min_buckets: int = 3
    #: ... an overall rise of this factor along the fitted line ...
    growth_min_factor: float = 4.0
    #: ... and this much of the log-excess explained by the line.
    growth_min_r2: float = 0.6
    #: Sources never scoring above this during a spike: "one-source" (p > 0.01).
    one_source_max_score: float = 2.0
    #: Share of the excess sources that must be new for "new-sources".
    new_share_min: float = 0.5
    #: A sensor shows a spike when its own score reaches this (p <= 0.01).
    sensor_score: float = 2.0
    #: Episodes kept per series (more are counted, not described).
    max_episodes: int = 32

    @classmethod
    def for_period(cls, period: str, **overrides: Any) -> SpikeParams:
        """Defaults for ``day`` or ``hour`` buckets."""
        if period == "hour":
            # hours of one day share that day's ups and downs, which a CUSUM that assumes
            # independent buckets would add up: demand more per hour (p <= 0.03) and more
            # in total (set on the demo simulation, seed 1)
            base = cls(reference=1.5, threshold=5.0, z_prefilter=2.0, min_excess_sources=4.0,
                       min_excess_records=500.0, quiet_buckets=12,
                       max_spike_buckets=21 * 24, burst_buckets=36, growth_min_buckets=36)
        else:
            base = cls()
        return cls(**{**asdict(base), **overrides})

    def as_array(self) -> np.ndarray:
        return np.array([float(getattr(self, f.name)) for f in fields(self)], np.float64)


(_REF, _THR, _ONSET, _CAP, _ZPRE, _MINS, _MINR, _RPEN, _QUIET, _MAXLEN, _BURST, _GMIN, _GFAC,
 _GR2, _ONESRC, _NEWSH, _SENS, _MAXEP) = range(18)

# episode integer fields
_I_ONSET, _I_ALARM, _I_END, _I_PEAK, _I_KIND, _I_ENDING = range(6)
_NI = 6
# episode float fields
(_F_SCORE, _F_DOUBLE, _F_EXS, _F_EXR, _F_EXN, _F_PEAKX, _F_PEAKMU, _F_NEWSH, _F_MAXS,
 _F_MAXR, _F_R2) = range(11)
_NF = 11


@numba.njit(cache=True, inline="always")
def _score(x: float, mu: float, disp: float, min_excess: float, zpre: float,
           cap: float, bp: np.ndarray) -> float:
    e = x - mu
    if e < min_excess:
        return 0.0
    disp = predictive_dispersion(mu, disp, bp)
    if e < zpre * math.sqrt(mu + disp * mu * mu):
        return 0.0
    return min(cap, nb_neglog10_sf(x, mu, disp))


@numba.njit(cache=True)
def _close(xs: np.ndarray, xr: np.ndarray, xn: np.ndarray, has_new: bool,
           st_s: np.ndarray, st_r: np.ndarray, lvl_n: float, onset: int, end: int,
           wd0: int, bpd: int, bp: np.ndarray, sp: np.ndarray, epi: np.ndarray,
           epf: np.ndarray) -> None:
    """Describe an episode [onset, end) against the frozen baselines."""
    n = end - onset
    ex_s = np.zeros(n)
    tot_s = 0.0
    tot_r = 0.0
    tot_n = 0.0
    peak = 0
    for j in range(n):
        t = onset + j
        wd = (wd0 + t // bpd) % 7
        h = t % bpd
        mu_s = baseline_mean(st_s, wd, h, bp)
        mu_r = baseline_mean(st_r, wd, h, bp)
        ex_s[j] = xs[t] - mu_s
        tot_s += ex_s[j]
        tot_r += xr[t] - mu_r
        if has_new:
            tot_n += xn[t] - lvl_n
        if ex_s[j] > ex_s[peak]:
            peak = j
    t_peak = onset + peak
    # growth is fitted up to the first bucket at 90 % of the peak, not into a plateau
    t_grow = t_peak
    for j in range(peak + 1):
        if ex_s[peak] > 0 and ex_s[j] >= 0.9 * ex_s[peak]:
            t_grow = onset + j
            break
    wd = (wd0 + t_peak // bpd) % 7
    epi[_I_PEAK] = t_peak
    epf[_F_EXS] = tot_s
    epf[_F_EXR] = tot_r
    epf[_F_EXN] = tot_n
    epf[_F_PEAKX] = xs[t_peak]
    epf[_F_PEAKMU] = baseline_mean(st_s, wd, t_peak % bpd, bp)
    share = np.nan
    if has_new and tot_s > 0:
        share = min(1.0, max(0.0, tot_n / tot_s))
    epf[_F_NEWSH] = share
    # growth: log excess against time, from the first bucket of the rise to the peak;
    # a worm's first buckets are below the detection minimum, so look back before the
    # onset while the excess stays above half a standard deviation
    first = onset
    lookback = int(sp[_GMIN]) * 2
    while first - 1 >= 0 and first - 1 >= onset - lookback:
        t = first - 1
        wd = (wd0 + t // bpd) % 7
        mu_s = baseline_mean(st_s, wd, t % bpd, bp)
        if xs[t] - mu_s <= max(1.0, 0.5 * math.sqrt(mu_s + st_s[1] * mu_s * mu_s)):
            break
        first -= 1
    m = t_grow - first + 1
    ys = np.zeros(m)
    for j in range(m):
        t = first + j
        if t >= onset:
            e = ex_s[t - onset]
        else:
            wd = (wd0 + t // bpd) % 7
            e = xs[t] - baseline_mean(st_s, wd, t % bpd, bp)
        ys[j] = math.log(max(e, 0.0) + 1.0)
    slope = 0.0
    r2 = 0.0
    if m >= sp[_GMIN]:
        st = 0.0
        sy = 0.0
        for j in range(m):
            st += j
            sy += ys[j]
        mt = st / m
        my = sy / m
        sxx = 0.0
        sxy = 0.0
        syy = 0.0
        for j in range(m):
            dt = j - mt
            dy = ys[j] - my
            sxx += dt * dt
            sxy += dt * dy
            syy += dy * dy
        if sxx > 0 and syy > 0:
            slope = sxy / sxx
            r2 = sxy * sxy / (sxx * syy)
    epf[_F_R2] = r2
    epf[_F_DOUBLE] = np.nan
    duration = n
    # a jump is not growth: the bucket before the top must already hold a quarter of it
    # (a doubling time under half a bucket is a jump at this resolution)
    gradual = m >= 2 and ys[m - 2] >= ys[m - 1] + math.log(0.25)
    # one loud source: the sources never left their band, or the records were far more
    # surprising than the sources (ten thousand times less likely)
    if epf[_F_MAXS] < sp[_ONESRC] or epf[_F_MAXR] >= epf[_F_MAXS] + 4.0:
        epi[_I_KIND] = ONE_SOURCE
    elif (t_grow - onset + 1 >= sp[_GMIN] and gradual and slope > 0 and r2 >= sp[_GR2]
          and slope * (m - 1) >= math.log(sp[_GFAC])):
        epi[_I_KIND] = GROWTH
        epf[_F_DOUBLE] = math.log(2.0) / slope
    elif duration <= sp[_BURST] and (not has_new or share >= sp[_NEWSH]):
        epi[_I_KIND] = NEW_SOURCES
    else:
        epi[_I_KIND] = RISE


@numba.njit(cache=True)
def _run_row(xs: np.ndarray, xr: np.ndarray, xn: np.ndarray, has_new: bool, wd0: int,
             bpd: int, bp: np.ndarray, sp: np.ndarray, epi: np.ndarray, epf: np.ndarray,
             dense: bool, d_mu: np.ndarray, d_disp: np.ndarray, d_score: np.ndarray,
             d_ep: np.ndarray) -> int:
    t_len = len(xs)
    warm = int(bp[6])
    st_s = np.ones(33)
    st_r = np.ones(33)
    baseline_init(xs, wd0, bpd, bp, st_s)
    # the records channel is modelled only where records can reach the minimum excess
    use_r = False
    for t in range(t_len):
        if xr[t] >= sp[_MINR]:
            use_r = True
            break
    if use_r:
        baseline_init(xr, wd0, bpd, bp, st_r)
    lvl_n = 0.0
    if has_new:
        k = min(t_len, max(1, warm))
        for t in range(k):
            lvl_n += xn[t]
        lvl_n /= k
    a_n = bp[0]
    ref = sp[_REF]
    thr = sp[_THR]
    cap = sp[_CAP]
    zpre = sp[_ZPRE]
    max_ep = int(sp[_MAXEP])
    cusum = 0.0
    last_zero = -1
    hist = np.zeros(t_len)
    pend_s = 0.0
    pend_r = 0.0
    pend_peak = 0.0
    in_spike = False
    onset = 0
    quiet = 0
    n_ep = 0
    cur = 0
    wd = wd0 % 7
    h = -1
    for t in range(t_len):
        # weekday and hour by counting, not dividing (this loop runs once per cell)
        h += 1
        if h == bpd:
            h = 0
            wd = wd + 1 if wd < 6 else 0
        mu_s = baseline_mean(st_s, wd, h, bp)
        s_s = 0.0
        s_r = 0.0
        if t >= warm:
            s_s = _score(float(xs[t]), mu_s, st_s[1], sp[_MINS], zpre, cap, bp)
            if use_r:
                mu_r = baseline_mean(st_r, wd, h, bp)
                s_r = _score(float(xr[t]), mu_r, st_r[1], sp[_MINR], zpre, cap, bp)
                s_r = max(0.0, s_r - sp[_RPEN])
        score = max(s_s, s_r)
        hist[t] = score
        if dense:
            d_mu[t] = mu_s
            d_disp[t] = st_s[1]
            d_score[t] = score
        if not in_spike:
            cusum = max(0.0, cusum + score - ref)
            if cusum <= 0.0:
                last_zero = t
                pend_s = 0.0
                pend_r = 0.0
                pend_peak = 0.0
            else:
                pend_s = max(pend_s, s_s)
                pend_r = max(pend_r, s_r)
                pend_peak = max(pend_peak, score)
            if cusum >= thr:
                in_spike = True
                # onset: back from the alarm over the unbroken run of significant buckets
                # (the CUSUM's last zero can be days earlier, after one noisy bucket)
                onset = t
                while onset - 1 > last_zero and hist[onset - 1] >= sp[_ONSET]:
                    onset -= 1
                quiet = 0
                cur = n_ep
                if cur < max_ep:
                    epi[cur, _I_ONSET] = onset
                    epi[cur, _I_ALARM] = t
                    epf[cur, _F_SCORE] = pend_peak
                    epf[cur, _F_MAXS] = pend_s
                    epf[cur, _F_MAXR] = pend_r
                    if dense:
                        for u in range(onset, t + 1):
                            d_ep[u] = cur + 1
                n_ep += 1
        else:
            if cur < max_ep:
                epf[cur, _F_SCORE] = max(epf[cur, _F_SCORE], score)
                epf[cur, _F_MAXS] = max(epf[cur, _F_MAXS], s_s)
                epf[cur, _F_MAXR] = max(epf[cur, _F_MAXR], s_r)
                if dense:
                    d_ep[t] = cur + 1
            if score < sp[_ONSET]:  # inside the band again (p > 0.05)
                quiet += 1
            else:
                quiet = 0
            ended = -1
            ending = 0
            if quiet >= sp[_QUIET]:
                ended = t - quiet + 1
                ending = 1
            elif t - onset + 1 >= sp[_MAXLEN]:
                ended = t + 1
                ending = 2
            if ended >= 0:
                if cur < max_ep:
                    epi[cur, _I_END] = ended
                    epi[cur, _I_ENDING] = ending
                    _close(xs, xr, xn, has_new, st_s, st_r, lvl_n, onset, ended, wd0, bpd,
                           bp, sp, epi[cur], epf[cur])
                    if dense:
                        for u in range(ended, t + 1):
                            d_ep[u] = 0
                in_spike = False
                cusum = 0.0
                last_zero = t
                if ending == 2:
                    # the new normal: restart the baselines from the latest buckets
                    lo = max(0, t + 1 - warm)
                    lo -= lo % bpd  # whole days, so hour factors line up
                    baseline_init(xs[lo:t + 1], (wd0 + lo // bpd) % 7, bpd, bp, st_s)
                    if use_r:
                        baseline_init(xr[lo:t + 1], (wd0 + lo // bpd) % 7, bpd, bp, st_r)
        if not in_spike:
            # half-way to an alarm, a bucket no longer teaches the dispersion
            calm = cusum < 0.5 * thr
            baseline_update(st_s, float(xs[t]), wd, h, bpd, bp, calm)
            if use_r:
                baseline_update(st_r, float(xr[t]), wd, h, bpd, bp, calm)
            if has_new:
                xn_t = min(float(xn[t]), lvl_n + 3.0 * math.sqrt(lvl_n + 1.0))
                lvl_n += a_n * (xn_t - lvl_n)
    if in_spike and cur < max_ep:
        epi[cur, _I_END] = -1
        epi[cur, _I_ENDING] = 0
        _close(xs, xr, xn, has_new, st_s, st_r, lvl_n, onset, t_len, wd0, bpd, bp, sp,
               epi[cur], epf[cur])
    return n_ep


@numba.njit(parallel=True, cache=True)
def _detect_kernel(rows: np.ndarray, src: np.ndarray, rec: np.ndarray, new: np.ndarray,
                   has_new: bool, wd0: int, bpd: int, bp: np.ndarray, sp: np.ndarray,
                   ep_n: np.ndarray, epi: np.ndarray, epf: np.ndarray, dense: bool,
                   d_mu: np.ndarray, d_disp: np.ndarray, d_score: np.ndarray,
                   d_ep: np.ndarray) -> None:
    for j in numba.prange(len(rows)):
        i = rows[j]
        xn = new[i] if has_new else new[0]
        if dense:
            ep_n[j] = _run_row(src[i], rec[i], xn, has_new, wd0, bpd, bp, sp, epi[j],
                               epf[j], True, d_mu[j], d_disp[j], d_score[j], d_ep[j])
        else:
            ep_n[j] = _run_row(src[i], rec[i], xn, has_new, wd0, bpd, bp, sp, epi[j],
                               epf[j], False, d_mu[0], d_disp[0], d_score[0], d_ep[0])


@dataclass
class Spike:
    """One spike: where, when, how strong, what kind, seen by which sensors.

    Times are bucket indices of the matrix it was found in (``end`` None: still open).
    """

    proto: int
    port: int
    onset: int
    alarm: int
    end: int | None
    kind: str
    score: float
    ending: str
    doubling_buckets: float | None
    excess_sources: float
    excess_records: float
    peak_sources: float
    baseline_sources: float
    new_share: float | None
    sensors: tuple[str, ...] = ()
    sensor_share: float | None = None
    scope: str = "all"
    n_sensors: int = 0

    def as_row(self, matrix: ActivityMatrix) -> dict[str, Any]:
        """A listing row with readable times (what ``portradar spikes`` prints)."""
        from portradar.activity.periods import proto_name

        hours = matrix.bucket_seconds / 3600
        doubling = None
        if self.doubling_buckets is not None:
            doubling = round(self.doubling_buckets * hours, 1)
        n_sensors = self.n_sensors or len(matrix.sensors)
        return {
            "proto": proto_name(self.proto), "port": self.port,
            "score": round(self.score, 1), "kind": self.kind,
            "onset": matrix.bucket_label(self.onset),
            "alarm": matrix.bucket_label(self.alarm),
            "end": matrix.bucket_label(self.end) if self.end is not None else None,
            "status": "current" if self.end is None else "past",
            "ending": self.ending,
            "doubling_hours": doubling,
            "peak_sources": round(self.peak_sources),
            "baseline_sources": round(self.baseline_sources, 1),
            "excess_sources": round(self.excess_sources),
            "new_share": None if self.new_share is None else round(self.new_share, 2),
            "sensors": (f"{len(self.sensors)}/{n_sensors}" if n_sensors else "-"),
            "sensor_share": (None if self.sensor_share is None
                             else round(self.sensor_share, 2)),
            "sensor_names": ",".join(self.sensors),
            "scope": self.scope,
        }


@dataclass
class DetectorRun:
    """Raw output of one pass over a matrix: episodes per processed row, dense arrays."""

    rows: np.ndarray
    n_episodes: np.ndarray
    ints: np.ndarray
    floats: np.ndarray
    mean: np.ndarray | None = None
    dispersion: np.ndarray | None = None
    score: np.ndarray | None = None
    episode: np.ndarray | None = None

    def spikes(self, matrix: ActivityMatrix) -> list[Spike]:
        out = []
        for j in np.flatnonzero(self.n_episodes):
            i = int(self.rows[j])
            for k in range(min(int(self.n_episodes[j]), self.ints.shape[1])):
                ei = self.ints[j, k]
                ef = self.floats[j, k]
                out.append(Spike(
                    proto=int(matrix.proto[i]), port=int(matrix.port[i]),
                    onset=int(ei[_I_ONSET]), alarm=int(ei[_I_ALARM]),
                    end=None if ei[_I_END] < 0 else int(ei[_I_END]),
                    kind=KINDS[int(ei[_I_KIND])], score=float(ef[_F_SCORE]),
                    ending=ENDINGS[int(ei[_I_ENDING])],
                    doubling_buckets=None if np.isnan(ef[_F_DOUBLE]) else float(ef[_F_DOUBLE]),
                    excess_sources=float(ef[_F_EXS]), excess_records=float(ef[_F_EXR]),
                    peak_sources=float(ef[_F_PEAKX]), baseline_sources=float(ef[_F_PEAKMU]),
                    new_share=None if np.isnan(ef[_F_NEWSH]) else float(ef[_F_NEWSH]),
                    sensors=(matrix.sensor_name(i),) if matrix.sensor[i] >= 0 else (),
                    scope="all" if matrix.sensor[i] < 0 else "sensor",
                ))
        return out


@dataclass
class SpikeDetector:
    """Negative-binomial baseline + tail-probability score + CUSUM (see the module doc)."""

    name: ClassVar[str] = "spike_detector"
    params: SpikeParams = field(default_factory=SpikeParams)
    baseline: BaselineParams = field(default_factory=BaselineParams)

    @classmethod
    def for_period(cls, period: str, **overrides: Any) -> SpikeDetector:
        return cls(SpikeParams.for_period(period, **overrides),
                   BaselineParams.for_period(period))

    def run(self, matrix: ActivityMatrix, *, rows: np.ndarray | None = None,
            dense: bool = False, params: SpikeParams | None = None) -> DetectorRun:
        """One compiled pass over ``rows`` (default: every row that could alarm)."""
        sp = params or self.params
        src = _as_counts(matrix.sources)
        rec = _as_counts(matrix.records)
        if rows is None:
            rows = self.candidate_rows(matrix, sp)
        rows = np.asarray(rows, np.int64)
        has_new = matrix.new_sources is not None
        new = (_as_counts(matrix.new_sources) if matrix.new_sources is not None
               else np.zeros((1, 1), src.dtype))
        k = sp.max_episodes
        n = len(rows)
        ep_n = np.zeros(n, np.int64)
        epi = np.full((n, k, _NI), -1, np.int64)
        epf = np.full((n, k, _NF), np.nan)
        t_len = matrix.n_buckets
        shape = (n, t_len) if dense else (1, 1)
        d_mu = np.zeros(shape)
        d_disp = np.zeros(shape)
        d_score = np.zeros(shape)
        d_ep = np.zeros(shape, np.int32)
        if n and t_len:
            _detect_kernel(rows, src, rec, new, has_new, matrix.first_weekday,
                           matrix.buckets_per_day, self.baseline.as_array(), sp.as_array(),
                           ep_n, epi, epf, dense, d_mu, d_disp, d_score, d_ep)
        run = DetectorRun(rows, ep_n, epi, epf)
        if dense:
            run.mean, run.dispersion, run.score, run.episode = d_mu, d_disp, d_score, d_ep
        return run

    @staticmethod
    def candidate_rows(matrix: ActivityMatrix, sp: SpikeParams) -> np.ndarray:
        """Rows whose counts ever reach the minimum excess (the rest cannot alarm)."""
        if matrix.n_buckets == 0:
            return np.zeros(0, np.int64)
        busy = matrix.sources.max(axis=1) >= sp.min_excess_sources
        busy |= matrix.records.max(axis=1) >= sp.min_excess_records
        return np.flatnonzero(busy)

    def alarms(self, total: ActivityMatrix, by_sensor: ActivityMatrix | None = None,
               ) -> list[Alarm]:
        """The spikes as alarms, for :mod:`portradar.spikes.evaluation`."""
        return [Alarm(row=-1, alarm=s.alarm, end=s.end, onset=s.onset, kind=s.kind,
                      doubling_buckets=s.doubling_buckets, proto=s.proto, port=s.port)
                for s in self.detect(total, by_sensor)]

    def detect(self, total: ActivityMatrix, by_sensor: ActivityMatrix | None = None,
               ) -> list[Spike]:
        """Spikes on all sensors together, each with the sensors that show it, plus
        the rises only single sensors see."""
        spikes = self.run(total).spikes(total)
        if by_sensor is None or by_sensor.n_rows == 0 or not by_sensor.sensors:
            return spikes
        n_sensors = len(by_sensor.sensors)
        for s in spikes:
            s.n_sensors = n_sensors
        sp = self.params
        keys = by_sensor.row_keys()
        # sensors' share of each spike: their own baselines, over the spike's buckets
        spike_keys = np.array([s.proto * 65536 + s.port for s in spikes], np.int64)
        rows = np.flatnonzero(np.isin(keys, spike_keys))
        if len(rows):
            dense = self.run(by_sensor, rows=rows, dense=True)
            assert dense.score is not None
            by_key: dict[int, list[int]] = {}
            for j, i in enumerate(rows):
                by_key.setdefault(int(keys[i]), []).append(j)
            for s in spikes:
                hi = s.end if s.end is not None else total.n_buckets
                names = []
                for j in by_key.get(s.proto * 65536 + s.port, []):
                    if dense.score[j, s.onset:max(hi, s.onset + 1)].max(initial=0.0) >= (
                            sp.sensor_score):
                        names.append(by_sensor.sensor_name(int(rows[j])))
                s.sensors = tuple(sorted(names))
                s.sensor_share = len(names) / n_sensors
        # rises seen by single sensors only, at a Bonferroni-corrected threshold
        local_sp = SpikeParams(**{**asdict(sp),
                                  "threshold": sp.threshold + math.log10(max(1, n_sensors))})
        local = self.run(by_sensor, params=local_sp).spikes(by_sensor)
        spans: dict[int, list[tuple[int, int]]] = {}
        for s in spikes:
            spans.setdefault(s.proto * 65536 + s.port, []).append(
                (s.onset, s.end if s.end is not None else total.n_buckets))
        merged: list[Spike] = []
        for s in sorted(local, key=lambda s: (s.proto, s.port, s.onset)):
            hi = s.end if s.end is not None else by_sensor.n_buckets
            if any(lo < hi and s.onset < end for lo, end in spans.get(s.proto * 65536 + s.port,
                                                                       [])):
                continue
            prev = merged[-1] if merged else None
            if (prev is not None and (prev.proto, prev.port) == (s.proto, s.port)
                    and s.onset < (prev.end if prev.end is not None else by_sensor.n_buckets)):
                prev.sensors = tuple(sorted(set(prev.sensors) | set(s.sensors)))
                prev.alarm = min(prev.alarm, s.alarm)
                prev.score = max(prev.score, s.score)
                prev.sensor_share = len(prev.sensors) / n_sensors
                continue
            s.sensor_share = len(s.sensors) / n_sensors
            s.n_sensors = n_sensors
            merged.append(s)
        return sorted(spikes + merged, key=lambda s: (s.alarm, s.proto, s.port))


def _as_counts(a: np.ndarray) -> np.ndarray:
    """Counts as a C-contiguous integer or float matrix numba can read."""
    a = np.asarray(a)
    if a.dtype.kind not in "iuf":
        a = a.astype(np.int64)
    if a.dtype == np.uint64:
        a = a.astype(np.int64)
    return np.ascontiguousarray(a)


def detect_spikes(total: ActivityMatrix, by_sensor: ActivityMatrix | None = None, *,
                  detector: SpikeDetector | None = None) -> list[Spike]:
    """Spikes of a matrix with the default detector for its period."""
    detector = detector or SpikeDetector.for_period(total.period)
    return detector.detect(total, by_sensor)
