"""Internet background radiation: the probes every Internet-facing sensor sees all day.

The model, per protocol and port (131,072 series), all vectorised (numpy):

* **Popularity with a long tail.**  A scanner population ``lam`` (scanners active on
  the port on an average day): named ports take the values of :data:`NAMED_TCP` /
  :data:`NAMED_UDP`, shaped after the order of DShield's top-ports lists, where 445,
  23, 22 and 3389 lead; every other port gets a Zipf share (exponent 0.85, the slope of
  darknet port-popularity plots such as Pang et al., "Characteristics of Internet
  Background Radiation", IMC 2004) of :data:`TAIL_TCP` / :data:`TAIL_UDP` scanners.
* **Over-dispersed daily counts with weekday effects.**  A day's activity is
  multiplied by a gamma factor (shape 25-100 per port: day-to-day CV 10-20 %, about
  what DShield's port graphs show for steady ports), a per-port weekday profile
  (up to 12 % lower at weekends) and a slow random walk of the port's popularity
  (1.5 % a day).
* **Chronically noisy ports.**  445, 23, 22, 3389, 1433 and 5555 have the largest
  populations and the noisiest days (shape 25); brute-forced services (22, 3389,
  1433, 23) send many more probes per scanner.
* **Scanner populations that come and go.**  Part of each port's scanners are
  persistent (born at random, alive for an exponential 20 days on average, active on
  70 % of their days); the rest are transient (one day, a quarter of them two).
  Each scanner reaches each sensor with its own probability (a fifth sweep the whole
  Internet and reach most sensors; the rest reach a few), so all-sensor counts are
  unions, not sums, and probes per scanner are log-normal (heavy-tailed).

Every number here shapes a simulation, not a detector; the detectors never see them.

>>> import numpy as np
>>> pop = PortPopularity.default(np.random.default_rng(1))
>>> bool(pop.lam[445] > pop.lam[80] > pop.lam[8291] > 1 > pop.lam[31337])
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from portradar.sim.sightings import N_ROWS, Sightings, row_of

#: Scanners active on a day, TCP; the chronically noisy ports first.
NAMED_TCP: dict[int, float] = {
    445: 1500, 23: 1250, 22: 750, 3389: 600, 1433: 300, 5555: 250,
    80: 450, 8080: 250, 443: 220, 2323: 200, 21: 150, 25: 150, 3306: 150, 139: 120,
    5900: 120, 135: 100, 8443: 100, 6379: 100, 81: 100, 7547: 80, 1723: 70, 8888: 70,
    2222: 60, 9200: 60, 110: 50, 143: 50, 5000: 50, 37215: 50, 8291: 50, 27017: 40,
    52869: 40, 5060: 40, 10000: 30, 6001: 30, 11211: 25,
}
#: Scanners active on a day, UDP.
NAMED_UDP: dict[int, float] = {
    5060: 200, 53: 150, 1900: 150, 123: 120, 161: 120, 137: 100, 500: 75, 1434: 60,
    11211: 50, 389: 50, 5353: 50, 19: 40, 111: 40, 69: 25, 520: 20,
}
#: The chronically noisy ports (largest populations, noisiest days).
NOISY_TCP: tuple[int, ...] = (445, 23, 22, 3389, 1433, 5555)
#: Ports whose scanners send many probes each (password guessing), and how many more.
BRUTE_FORCED_TCP: dict[int, float] = {22: 8.0, 3389: 8.0, 1433: 6.0, 23: 2.0}
#: Scanners per day spread over all other ports, TCP and UDP.
TAIL_TCP = 3000.0
TAIL_UDP = 1000.0
#: Zipf exponent of the tail.
TAIL_EXPONENT = 0.85
#: No port is never probed.
LAM_FLOOR = 0.01

#: Weekday shape (Monday first): busiest early in the week, quietest at weekends.
WEEKDAY_SHAPE = np.array([0.6, 0.5, 0.3, 0.2, 0.0, -0.8, -0.8])


@dataclass
class PortPopularity:
    """Per row: population, day-noise shape, weekday amplitude, persistence, loudness."""

    lam: np.ndarray
    shape: np.ndarray
    weekday_amp: np.ndarray
    persistent: np.ndarray
    loudness: np.ndarray

    @classmethod
    def default(cls, rng: np.random.Generator, scale: float = 1.0) -> PortPopularity:
        lam = np.zeros(N_ROWS)
        for proto, named, tail in ((6, NAMED_TCP, TAIL_TCP), (17, NAMED_UDP, TAIL_UDP)):
            base = row_of(proto, 0)
            others = np.setdiff1d(np.arange(65536), np.fromiter(named, int))
            ranks = rng.permutation(len(others)) + 1
            weights = ranks.astype(float) ** -TAIL_EXPONENT
            lam[base + others] = tail * weights / weights.sum()
            for port, value in named.items():
                lam[base + port] = value
        lam = np.maximum(lam * scale, LAM_FLOOR * scale)
        shape = np.exp(rng.uniform(np.log(25), np.log(100), N_ROWS))
        shape[[row_of(6, p) for p in NOISY_TCP]] = 25.0
        loud = np.ones(N_ROWS)
        for port, factor in BRUTE_FORCED_TCP.items():
            loud[row_of(6, port)] = factor
        return cls(lam=lam, shape=shape, weekday_amp=rng.uniform(0.0, 0.12, N_ROWS),
                   persistent=rng.uniform(0.3, 0.8, N_ROWS), loudness=loud)

    def only(self, rows: np.ndarray) -> PortPopularity:
        """The same popularity with every other row silent (fast focused scenarios)."""
        lam = np.zeros(N_ROWS)
        lam[rows] = self.lam[rows]
        return PortPopularity(lam, self.shape, self.weekday_amp, self.persistent,
                              self.loudness)

    def day_factors(self, rng: np.random.Generator, days: int, first_weekday: int,
                    rows: np.ndarray) -> np.ndarray:
        """Rows × days multiplier of activity: weekday × popularity walk × gamma noise."""
        n = len(rows)
        wd = (first_weekday + np.arange(days)) % 7
        shape = WEEKDAY_SHAPE / np.abs(WEEKDAY_SHAPE).max()
        amp = self.weekday_amp[rows, None].astype(np.float32)
        weekly = 1.0 + amp * shape[wd][None, :].astype(np.float32)
        walk = np.cumsum(rng.normal(0.0, 0.015, (n, days)).astype(np.float32), axis=1)
        walk -= walk.mean(axis=1, keepdims=True)
        k = self.shape[rows, None].astype(np.float32)
        noise = rng.gamma(k, 1.0, (n, days)).astype(np.float32) / k
        return (weekly * np.exp(walk) * noise).astype(np.float32)


#: Persistent scanners: mean lifetime (days) and share of their days they are active.
PERSISTENT_LIFETIME = 20.0
PERSISTENT_ACTIVITY = 0.7
#: Transient scanners coming back the next day.
TRANSIENT_SECOND_DAY = 0.25


def coverage(rng: np.random.Generator, n: int) -> np.ndarray:
    """Probability that a scanner reaches any one sensor: a fifth sweep the Internet."""
    wide = rng.random(n) < 0.2
    return np.where(wide, rng.uniform(0.6, 1.0, n), rng.beta(1.2, 4.0, n))


def expand_to_sensors(rng: np.random.Generator, scanner: np.ndarray, row: np.ndarray,
                      day: np.ndarray, cover: np.ndarray, loud: np.ndarray,
                      visibility: np.ndarray, hour0: np.ndarray | None = None,
                      hours: np.ndarray | None = None,
                      prior: np.ndarray | None = None) -> Sightings:
    """Active (scanner, port, day) triples → sightings at the sensors each one reaches.

    ``loud`` is the scanner's mean probes per sensor reached (log-normal around it).
    """
    parts = []
    n = len(scanner)
    for s, vis in enumerate(visibility):  # one pass per sensor, all scanners at once
        hit = rng.random(n) < np.minimum(1.0, cover * vis)
        k = int(hit.sum())
        if not k:
            continue
        records = 1 + rng.poisson(loud[hit] * rng.lognormal(0.0, 0.5, k))
        parts.append(Sightings.from_arrays(
            scanner=scanner[hit], row=row[hit], day=day[hit], sensor=np.full(k, s),
            records=records,
            hour0=None if hour0 is None else hour0[hit],
            hours=None if hours is None else hours[hit],
            prior=None if prior is None else prior[hit]))
    return Sightings.concat(parts)


def background(rng: np.random.Generator, pop: PortPopularity, *, days: int,
               visibility: np.ndarray, first_weekday: int = 0) -> tuple[Sightings, int]:
    """Background sightings; returns them and the next free scanner id."""
    active = np.flatnonzero(pop.lam > 0)
    factors = pop.day_factors(rng, days, first_weekday, active)
    lam = pop.lam[active]
    rho = pop.persistent[active]
    # persistent scanners: births over [-3L, days), exponential lifetimes
    pre = 3.0 * PERSISTENT_LIFETIME
    births_per_day = rho * lam / (PERSISTENT_ACTIVITY * PERSISTENT_LIFETIME)
    n_born = rng.poisson(births_per_day * (days + pre))
    p_pos = np.repeat(np.arange(len(active)), n_born)
    n_p = len(p_pos)
    born = rng.uniform(-pre, days, n_p)
    died = born + rng.exponential(PERSISTENT_LIFETIME, n_p)
    first = np.maximum(0, np.ceil(born)).astype(np.int64)
    last = np.minimum(days, np.ceil(died)).astype(np.int64)
    alive = np.maximum(0, last - first)
    p_id = np.arange(n_p, dtype=np.int64)
    idx = np.repeat(p_id, alive)
    offs = np.arange(len(idx)) - np.repeat(np.cumsum(alive) - alive, alive)
    p_day = first[idx] + offs
    prob = PERSISTENT_ACTIVITY * factors[p_pos[idx], p_day]
    on = rng.random(len(idx)) < np.minimum(1.0, prob)
    idx, p_day = idx[on], p_day[on]
    p_prior = born[idx] < 0  # alive before day 0: seen before the simulation began
    # transient scanners: Poisson per (row, day), one day, some two
    mean_t = ((1.0 - rho) * lam)[:, None] * factors
    counts = rng.poisson(mean_t).ravel()
    t_cell = np.repeat(np.arange(len(active) * days, dtype=np.int64), counts)
    n_t = len(t_cell)
    t_id = n_p + np.arange(n_t, dtype=np.int64)
    t_row = active[t_cell // days]
    t_day = t_cell % days
    again = (rng.random(n_t) < TRANSIENT_SECOND_DAY) & (t_day + 1 < days)
    scanner = np.concatenate([idx, t_id, t_id[again]])
    row = np.concatenate([active[p_pos[idx]], t_row, t_row[again]]).astype(np.int32)
    day = np.concatenate([p_day, t_day, t_day[again] + 1]).astype(np.int32)
    prior = np.concatenate([p_prior, np.zeros(n_t + int(again.sum()), bool)])
    n_ids = n_p + n_t
    cover = coverage(rng, n_ids)[scanner]
    loud = (rng.lognormal(0.0, 1.0, n_ids) * 1.5)[scanner] * pop.loudness[row]
    return expand_to_sensors(rng, scanner, row, day, cover, loud, visibility,
                             prior=prior), n_ids
