"""Scenarios: background + campaigns + sensors + days + seed → activity and truth.

A :class:`Scenario` is everything that decides a simulation; the same scenario always
gives the same sightings, matrices and truth.  Presets:

* :func:`benchmark` - the documented evaluation: 20 sensors, 90 days, every TCP and
  UDP port, 50 campaigns of varied kind and size (``docs/spikes.md``);
* :func:`demo` - the README's example: a few sensors, a month, a campaign on the
  ports asked for;
* :func:`ms05` - port 445 in the summer of 2005: the one-day spike three days after
  MS05-027 (2005-06-14 patch, spike 2005-06-17, no worm) and the Zotob-like worm four
  days after MS05-039 (2005-08-09 patch, worm from 2005-08-13), dates as in the
  port-event calendar of the shared data.

The truth (:attr:`Simulation.truth`) has per campaign its window, its size, the port's
baseline (mean all-sensor distinct sources over the 28 days before it) and its peak
(most campaign sources on one day), and ``doubles``: whether the campaign at least
doubles the port's daily distinct sources, the class the issue's 95 % target is about.

>>> sim = simulate(demo(days=21, sensors=2, seed=3, campaigns=("sweep:445@16",),
...                     focus=True))
>>> t = sim.truth[0]
>>> (t["kind"], t["port"], t["start"], t["doubles"])
('sweep', 445, '2025-01-22', True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from portradar.errors import PortradarError
from portradar.sim.background import NOISY_TCP, PortPopularity, background
from portradar.sim.campaigns import (
    CAMPAIGN_KINDS,
    EXPECTED_KIND,
    Campaign,
    campaign_sightings,
    parse_campaign,
    worm_days,
)
from portradar.sim.sightings import N_ROWS, PROTOS, Sightings, row_of, to_matrices
from portradar.spikes.activity_matrix import ActivityMatrix

#: Days before a campaign over which the port's baseline is measured for the truth.
BASELINE_DAYS = 28
#: Default first day: a Monday.
DEFAULT_START = date(2025, 1, 6)


@dataclass(frozen=True)
class Scenario:
    """What decides a simulation."""

    name: str = "custom"
    days: int = 30
    sensors: int = 5
    seed: int = 1
    start: date = DEFAULT_START
    scale: float = 1.0
    campaigns: tuple[Campaign, ...] = ()
    #: Campaigns to draw at random (sizes relative to the ports' own baselines).
    random_campaigns: int = 0
    #: Random campaigns start no earlier than this day (baselines need history).
    first_campaign_day: int = 35
    #: Only these (proto, port) have background traffic (None: every port).
    focus: tuple[tuple[int, int], ...] | None = None

    @property
    def sensor_names(self) -> tuple[str, ...]:
        width = max(2, len(str(self.sensors)))
        return tuple(f"sensor-{i + 1:0{width}d}" for i in range(self.sensors))

    @property
    def start_time(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)


@dataclass
class Simulation:
    """The outcome: activity for all sensors and per sensor, truth, and sightings."""

    scenario: Scenario
    total: ActivityMatrix
    by_sensor: ActivityMatrix
    truth: list[dict[str, Any]]
    sightings: Sightings | None = None
    campaigns: list[Campaign] = field(default_factory=list)


def simulate(sc: Scenario, *, keep_sightings: bool = False) -> Simulation:
    """Run a scenario (vectorised; 20 sensors × 90 days × all ports in seconds)."""
    if sc.days < 1 or sc.days > 1024:
        raise PortradarError("days must be between 1 and 1024")
    if sc.sensors < 1 or sc.sensors > 64:
        raise PortradarError("sensors must be between 1 and 64")
    rng = np.random.default_rng(sc.seed)
    pop = PortPopularity.default(rng, scale=sc.scale)
    if sc.focus is not None:
        pop = pop.only(np.array([row_of(p, q) for p, q in sc.focus], np.int64))
    visibility = rng.uniform(0.7, 1.3, sc.sensors)
    bg, next_id = background(rng, pop, days=sc.days, visibility=visibility,
                             first_weekday=sc.start.weekday())
    names = sc.sensor_names
    bg_total, bg_sensor = to_matrices(bg, days=sc.days, sensors=names, start=sc.start_time)
    campaigns = list(sc.campaigns)
    if sc.random_campaigns:
        campaigns += plan_campaigns(np.random.default_rng([sc.seed, 1]), bg_total, bg_sensor,
                                    n=sc.random_campaigns, days=sc.days,
                                    first_day=sc.first_campaign_day,
                                    taken={(c.proto, c.port) for c in campaigns})
    parts = []
    for c in campaigns:
        s, next_id = campaign_sightings(c, rng, first_id=next_id, n_sensors=sc.sensors,
                                        n_days=sc.days)
        parts.append(s)
    camp = Sightings.concat(parts)
    everything = Sightings.concat([bg, camp])
    total, by_sensor = to_matrices(everything, days=sc.days, sensors=names,
                                   start=sc.start_time)
    truth = [_truth(i, c, camp, bg_total, bg_sensor, sc) for i, c in enumerate(campaigns)]
    return Simulation(sc, total, by_sensor, truth,
                      everything if keep_sightings else None, campaigns)


def _truth(i: int, c: Campaign, camp: Sightings, bg_total: ActivityMatrix,
           bg_sensor: ActivityMatrix, sc: Scenario) -> dict[str, Any]:
    row = row_of(c.proto, c.port)
    lo = max(0, c.start - BASELINE_DAYS)
    base = float(bg_total.sources[row, lo:c.start].mean()) if c.start > lo else 0.0
    base_records = float(bg_total.records[row, lo:c.start].mean()) if c.start > lo else 0.0
    mine = camp.row == row
    mine &= (camp.day >= c.start) & (camp.day < c.end)
    peak = 0
    if mine.any():
        days = camp.day[mine]
        scanners = camp.scanner[mine]
        pairs = np.unique(days.astype(np.int64) * (1 << 40) + scanners)
        peak = int(np.bincount(pairs >> 40).max())
    start = sc.start + timedelta(days=c.start)
    sensors = ("all" if c.sensors is None
               else ",".join(sc.sensor_names[s] for s in c.sensors))
    if c.kind == "loud":
        doubles = False
    elif c.sensors is not None:
        doubles = peak >= base
    else:
        doubles = peak >= base
    return {
        "id": i + 1, "kind": c.kind, "expected_kind": EXPECTED_KIND[c.kind],
        "proto": "tcp" if c.proto == 6 else "udp", "port": c.port,
        "start": start.isoformat(),
        "end": (start + timedelta(days=c.days)).isoformat(),
        "start_day": c.start, "end_day": c.end, "sensors": sensors,
        "size": round(c.size, 1), "doubling_days": c.doubling_days,
        "baseline_sources": round(base, 1), "baseline_records": round(base_records, 1),
        "peak_sources": peak, "doubles": bool(doubles and peak > 0),
        "label": c.label,
    }


def plan_campaigns(rng: np.random.Generator, total: ActivityMatrix, by_sensor: ActivityMatrix,
                   *, n: int, days: int, first_day: int,
                   taken: set[tuple[int, int]] | None = None) -> list[Campaign]:
    """Draw ``n`` campaigns of every kind on busy, middling and quiet ports.

    Kinds in the proportions sweep 28 %, rise 24 %, worm 20 %, loud 14 %, local 14 %;
    ports 40 % from the 100 busiest, 30 % from ranks 100-1,500 and 30 % from ranks
    1,500-20,000 by mean all-sensor sources; sizes ``m`` times the port's baseline with ``m``
    log-uniform in [0.5, 8] and at least a floor drawn log-uniform in [15, 60] sources
    (half that at one sensor), so some campaigns do not double their port, some are
    barely above the detectors' minimum and some are easy.
    """
    taken = set(taken or ())
    shares = {"sweep": 0.28, "rise": 0.24, "worm": 0.20, "loud": 0.14, "local": 0.14}
    counts = {k: math.floor(v * n) for k, v in shares.items()}
    for k in list(shares)[: n - sum(counts.values())]:
        counts[k] += 1
    kinds = [k for k in CAMPAIGN_KINDS for _ in range(counts[k])]
    rng.shuffle(kinds)
    mean_src = total.sources.mean(axis=1)
    order = np.argsort(-mean_src, kind="stable")
    strata = [order[:100], order[100:1500], order[1500:20000]]
    stratum_p = np.array([0.4, 0.3, 0.3])
    out: list[Campaign] = []
    for kind in kinds:
        for _attempt in range(100):
            stratum = strata[int(rng.choice(3, p=stratum_p))]
            row = int(stratum[int(rng.integers(0, len(stratum)))])
            proto, port = int(PROTOS[row // 65536]), int(row % 65536)
            if (proto, port) not in taken:
                break
        taken.add((proto, port))
        m = float(np.exp(rng.uniform(np.log(0.5), np.log(8.0))))
        floor = float(np.exp(rng.uniform(np.log(15.0), np.log(60.0))))
        label = f"x{m:.1f}"
        if kind == "worm":
            td = float(rng.uniform(0.7, 2.0))
            base = _base(total.sources[row], days // 2)
            size = max(floor, m * base)
            length = worm_days(size, td, plateau=int(rng.integers(2, 5)))
            start = int(rng.integers(first_day, max(first_day + 1, days - length - 1)))
            out.append(Campaign("worm", proto, port, start, length, size,
                                doubling_days=round(td, 2), label=label))
        elif kind == "loud":
            base = _base(total.records[row], days // 2)
            size = max(5000.0, m * 2.0 * base)
            length = int(rng.integers(1, 4))
            start = int(rng.integers(first_day, days - length - 1))
            out.append(Campaign("loud", proto, port, start, length, size, label=label))
        elif kind == "local":
            sensor = int(rng.integers(0, len(total.sensors)))
            rows = np.flatnonzero((by_sensor.sensor == sensor) & (by_sensor.proto == proto)
                                  & (by_sensor.port == port))
            base = _base(by_sensor.sources[rows[0]], days // 2) if len(rows) else 0.0
            size = max(floor / 2, m * base)
            shape = "sweep" if rng.random() < 0.5 else "rise"
            length = 1 if shape == "sweep" else int(rng.integers(3, 8))
            start = int(rng.integers(first_day, days - length - 1))
            out.append(Campaign("local", proto, port, start, length, size,
                                sensors=(sensor,), shape=shape, label=label))
        else:
            base = _base(total.sources[row], days // 2)
            size = max(floor, m * base)
            length = 1 if kind == "sweep" else int(rng.integers(3, 8))
            start = int(rng.integers(first_day, days - length - 1))
            out.append(Campaign(kind, proto, port, start, length, size, label=label))
    return out


def _base(series: np.ndarray, upto: int) -> float:
    return float(np.asarray(series[:max(1, upto)], float).mean())


# --- presets ------------------------------------------------------------------------


def benchmark(seed: int = 2024, *, sensors: int = 20, days: int = 90,
              campaigns: int = 50) -> Scenario:
    """The documented benchmark: 20 sensors, 90 days, every port, 50 campaigns."""
    return Scenario(name="benchmark", days=days, sensors=sensors, seed=seed,
                    random_campaigns=campaigns, first_campaign_day=min(35, days // 3))


def demo(*, days: int = 30, sensors: int = 5, seed: int = 1,
         campaigns: Sequence[str] = ("445",), scale: float = 0.25, focus: bool = False,
         start: date = DEFAULT_START) -> Scenario:
    """A small deployment with the campaigns asked for (``[KIND:][PROTO/]PORT[@DAY]``).

    A campaign without a day starts at 60 % of the period; its size is a few times
    the port's usual sources (a worm doubles every day up to 4 times them).
    """
    specs = [parse_campaign(c) for c in campaigns]
    pop = PortPopularity.default(np.random.default_rng(seed), scale=scale)
    out = []
    for k, spec in enumerate(specs):
        day = spec.day if spec.day is not None else max(15, int(days * 0.6)) + 2 * k
        if day >= days:
            raise PortradarError(f"campaign day {day} is beyond the {days} simulated days")
        lam = float(pop.lam[row_of(spec.proto, spec.port)])
        seen = 1.0 - (1.0 - 0.35) ** sensors  # share of a port's scanners any sensor sees
        base = max(5.0, lam * seen)
        if spec.kind == "worm":
            size = max(40.0, 4.0 * base)
            length = min(days - day, worm_days(size, 1.0))
            out.append(Campaign("worm", spec.proto, spec.port, day, length, size,
                                doubling_days=1.0, label="demo"))
        elif spec.kind == "loud":
            out.append(Campaign("loud", spec.proto, spec.port, day, min(2, days - day),
                                max(5000.0, 20 * base), label="demo"))
        elif spec.kind == "local":
            out.append(Campaign("local", spec.proto, spec.port, day, 1, max(20.0, 3 * base),
                                sensors=(0,), label="demo"))
        else:
            length = 1 if spec.kind == "sweep" else min(days - day, 5)
            out.append(Campaign(spec.kind, spec.proto, spec.port, day, length,
                                max(40.0, 3.0 * base), label="demo"))
    focus_ports = tuple(sorted({(s.proto, s.port) for s in specs}
                               | {(6, p) for p in NOISY_TCP})) if focus else None
    return Scenario(name="demo", days=days, sensors=sensors, seed=seed, start=start,
                    scale=scale, campaigns=tuple(out), focus=focus_ports)


#: MS05-027 (SMB) patched 2005-06-14; DeepSight's 445 spike on 2005-06-17; no worm.
MS05_027_SPIKE = date(2005, 6, 17)
#: MS05-039 (Plug and Play) patched 2005-08-09; Zotob from 2005-08-13.
ZOTOB_START = date(2005, 8, 13)


def ms05(seed: int = 5, *, sensors: int = 10, focus: bool = True) -> Scenario:
    """445/tcp from 2005-05-02 to 2005-08-28 with the two 2005 rises.

    The June spike is a one-day sweep of twice the port's usual sources ("significant",
    said DeepSight) that returns to normal the next day; the August rise is a worm
    doubling every 18 hours up to five times the usual sources, then staying there.
    """
    start = date(2005, 5, 2)
    days = (date(2005, 8, 29) - start).days
    probe = simulate(Scenario(days=28, sensors=sensors, seed=seed, start=start,
                              focus=((6, 445),)))
    base = float(probe.total.sources[row_of(6, 445)].mean())
    spike = Campaign("sweep", 6, 445, (MS05_027_SPIKE - start).days, 1, 2.0 * base,
                     label="MS05-027-like spike (no worm)")
    size = 5.0 * base
    zotob = Campaign("worm", 6, 445, (ZOTOB_START - start).days,
                     min(days - (ZOTOB_START - start).days,
                         worm_days(size, 0.75, plateau=6)),
                     size, doubling_days=0.75, label="Zotob-like worm (MS05-039)")
    return Scenario(name="ms05", days=days, sensors=sensors, seed=seed, start=start,
                    campaigns=(spike, zotob), focus=((6, 445),) if focus else None)


def with_seed(sc: Scenario, seed: int) -> Scenario:
    return replace(sc, seed=seed)


__all__ = ["N_ROWS", "Scenario", "Simulation", "benchmark", "demo", "ms05",
           "plan_campaigns", "simulate", "with_seed"]
