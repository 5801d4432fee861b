"""Injected campaigns: the rises with known truth that the detectors must find.

Five kinds (:data:`CAMPAIGN_KINDS`), each a set of scanners added on top of the
background, with the kind of spike a detector should report (:data:`EXPECTED_KIND`):

* ``sweep``: a one-day botnet sweep of a port: ``size`` new sources on one day,
  each reaching most sensors, a few probes each, within a few hours;
* ``rise``: a multi-day rise: a pool of sources active on most days for ``days`` days;
* ``worm``: sources grow exponentially (``doubling_days``) from a few to ``size``,
  every infected host keeps probing, then a plateau;
* ``loud``: one single scanner sending ``size`` probes a day (sources flat);
* ``local``: a sweep or rise that only one sensor sees.

``size`` is the campaign's added daily distinct sources at its peak (probes per day for
``loud``).

>>> import numpy as np
>>> c = Campaign("worm", 6, 445, start=3, days=6, size=64, doubling_days=1.0)
>>> s, _ = campaign_sightings(c, np.random.default_rng(1), first_id=0, n_sensors=4)
>>> daily = [len(np.unique(s.scanner[s.day == d])) for d in range(3, 9)]
>>> daily[0] < daily[2] < daily[-1] <= 64
True
>>> tuple(parse_campaign("sweep:udp/53@12")), parse_campaign("445").kind
(('sweep', 17, 53, 12), 'worm')
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from portradar.errors import PortradarError
from portradar.sim.background import coverage, expand_to_sensors
from portradar.sim.sightings import Sightings, row_of

CAMPAIGN_KINDS: tuple[str, ...] = ("sweep", "rise", "worm", "loud", "local")

#: The spike kind each campaign should be reported as (``local``: whatever its shape).
EXPECTED_KIND: dict[str, str | None] = {
    "sweep": "new-sources", "rise": "rise", "worm": "growth", "loud": "one-source",
    "local": None,
}


@dataclass(frozen=True)
class Campaign:
    """One injected campaign (days are indices from the simulation's first day)."""

    kind: str
    proto: int
    port: int
    start: int
    days: int
    size: float
    sensors: tuple[int, ...] | None = None
    doubling_days: float | None = None
    shape: str = "sweep"  # for "local": the shape it takes at its one sensor
    label: str = ""

    @property
    def end(self) -> int:
        return self.start + self.days

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def worm_days(size: float, doubling_days: float, plateau: int = 3) -> int:
    """Days a worm campaign lasts: growth from a few sources to ``size``, then plateau."""
    start = max(3.0, size / 64.0)
    return math.ceil(doubling_days * math.log2(max(size / start, 1.0))) + plateau


def campaign_sightings(c: Campaign, rng: np.random.Generator, *, first_id: int,
                       n_sensors: int, n_days: int | None = None,
                       ) -> tuple[Sightings, int]:
    """The sightings of one campaign; returns them and the next free scanner id."""
    if c.kind not in CAMPAIGN_KINDS:
        raise PortradarError(f"unknown campaign kind {c.kind!r} "
                             f"(use {', '.join(CAMPAIGN_KINDS)})")
    n_days = n_days if n_days is not None else c.end
    row = row_of(c.proto, c.port)
    visibility = np.ones(n_sensors)
    if c.sensors is not None:
        visibility = np.zeros(n_sensors)
        visibility[list(c.sensors)] = 1.0
    kind = c.shape if c.kind == "local" else c.kind
    size = max(1, round(c.size))
    if kind == "loud":
        days = np.arange(c.start, min(c.end, n_days))
        ids = np.full(len(days), first_id, np.int64)
        reached = max(1.0, float(visibility.sum()))
        cover = np.ones(len(days))
        loud = np.full(len(days), c.size / reached)
        s = expand_to_sensors(rng, ids, np.full(len(days), row), days, cover, loud,
                              visibility)
        return s, first_id + 1
    members = np.arange(size, dtype=np.int64)
    hour0 = hours = None
    if kind == "sweep":
        ids = first_id + members
        day = np.full(size, c.start)
        start_hour = rng.uniform(0, 14)
        span = rng.uniform(4, 10)
        hour0 = (start_hour + rng.uniform(0, span / 2, size)).astype(np.float32)
        hours = np.full(size, span / 2, np.float32)
        n_ids = size
        loud = rng.lognormal(0.0, 0.5, size) * 1.5
    elif kind == "rise":
        pool = round(size / 0.7)
        pid = np.repeat(np.arange(pool), c.days)
        day = np.tile(np.arange(c.start, c.end), pool)
        on = rng.random(len(pid)) < 0.7
        ids = first_id + pid[on]
        day = day[on]
        n_ids = pool
        loud = (rng.lognormal(0.0, 0.5, pool) * 1.5)[pid[on]]
    elif kind == "worm":
        td = c.doubling_days or 1.0
        start = max(3.0, size / 64.0)
        infected_at = td * np.log2(np.maximum(members + 1, start) / start)  # days
        span = c.days
        pid = np.repeat(members, span)
        rel = np.tile(np.arange(span), size)
        ok = (infected_at[pid] < rel + 1) & (rng.random(len(pid)) < 0.95)
        pid, rel = pid[ok], rel[ok]
        ids = first_id + pid
        day = c.start + rel
        frac = np.clip(infected_at[pid] - rel, 0.0, 1.0)
        hour0 = (frac * 24.0).astype(np.float32)
        hours = (24.0 - hour0).astype(np.float32)
        n_ids = size
        loud = (rng.lognormal(0.0, 0.5, size) * 2.0)[pid]
    else:
        raise PortradarError(f"unknown campaign shape {kind!r}")
    keep = day < n_days
    cover_by_id = (np.ones(n_ids) if c.sensors is not None
                   else np.maximum(coverage(rng, n_ids), 0.3))
    ids, day = ids[keep], day[keep]
    loud = np.asarray(loud)[keep]
    if hour0 is not None and hours is not None:
        hour0, hours = hour0[keep], hours[keep]
    s = expand_to_sensors(rng, ids, np.full(len(ids), row), day, cover_by_id[ids - first_id],
                          loud, visibility, hour0=hour0, hours=hours)
    return s, first_id + n_ids


class CampaignSpec(NamedTuple):
    kind: str
    proto: int
    port: int
    day: int | None


def parse_campaign(text: str) -> CampaignSpec:
    """``[KIND:][PROTO/]PORT[@DAY]`` as given to ``portradar simulate --campaign``."""
    kind = "worm"
    rest = text.strip()
    if ":" in rest:
        kind, rest = rest.split(":", 1)
        kind = kind.strip().lower()
        if kind not in CAMPAIGN_KINDS:
            raise PortradarError(f"campaign {text!r}: kind must be one of "
                                 f"{', '.join(CAMPAIGN_KINDS)}")
    day = None
    if "@" in rest:
        rest, day_text = rest.split("@", 1)
        if not day_text.strip().isdigit():
            raise PortradarError(f"campaign {text!r}: @DAY must be a day number")
        day = int(day_text)
    proto = 6
    if "/" in rest:
        proto_text, rest = rest.split("/", 1)
        names = {"tcp": 6, "udp": 17}
        if proto_text.strip().lower() not in names:
            raise PortradarError(f"campaign {text!r}: protocol must be tcp or udp")
        proto = names[proto_text.strip().lower()]
    if not rest.strip().isdigit() or not 0 <= int(rest) <= 65535:
        raise PortradarError(f"campaign {text!r}: expected [KIND:][PROTO/]PORT[@DAY], "
                             "e.g. 445 or sweep:udp/53@12")
    return CampaignSpec(kind, proto, int(rest), day)
