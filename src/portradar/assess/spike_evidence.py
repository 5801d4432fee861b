"""Spike evidence: what the assessment needs to know about a rise on a port.

:class:`SpikeEvidence` is a plain description (port, protocol, onset, end, kind, score,
sensors, sizes) so the assessment works from any source: the spike detector of
:mod:`portradar.spikes` (:func:`from_spike`), a simulator's truth, a test, or another
tool.  :func:`port_spikes` finds the spikes of one port in the store *as known on a
day*: it reads the port's daily activity up to that day and runs the spike detector
(:class:`portradar.spikes.SpikeDetector`, causal: data after the day is never read), so
a replay of June 2005 sees only what was known each day.

>>> s = SpikeEvidence(proto=6, port=445, onset=date(2005, 6, 17), end=date(2005, 6, 18),
...                   kind="new-sources", score=8.2)
>>> s.active_on(date(2005, 6, 17)), s.active_on(date(2005, 6, 18))
(True, False)
>>> s.days_since_end(date(2005, 6, 21))
3
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from portradar.intel.vulnerabilities import run
from portradar.store.duckdb_store import Store


@dataclass(frozen=True)
class SpikeEvidence:
    """One spike on a port; days are UTC dates, ``end`` None while it is still going on.

    ``end`` is the first day back to normal (exclusive), as the spike detector reports.
    """

    proto: int
    port: int
    onset: date
    end: date | None
    kind: str  # new-sources, one-source, growth, rise (portradar.spikes.KINDS)
    score: float  # -log10 p of the most surprising bucket
    sensors: tuple[str, ...] = ()
    sensor_share: float | None = None
    peak_sources: float | None = None
    baseline_sources: float | None = None
    doubling_hours: float | None = None
    alarm: date | None = None
    source: str = "given"

    def active_on(self, day: date) -> bool:
        return self.onset <= day and (self.end is None or day < self.end)

    def days_since_end(self, day: date) -> int | None:
        """Days from the end to ``day`` (None while active; negative: not yet started)."""
        if self.active_on(day) or self.end is None:
            return None
        return (day - self.end).days

    @property
    def rise(self) -> float | None:
        """Peak sources over the baseline (2.0 = doubled)."""
        if self.peak_sources is None or not self.baseline_sources:
            return None
        return self.peak_sources / self.baseline_sources

    def describe(self) -> str:
        span = f"since {self.onset}" if self.end is None else f"{self.onset} to {self.end}"
        size = ""
        if self.peak_sources is not None and self.baseline_sources:
            size = (f", {self.peak_sources:,.0f} sources at the peak against "
                    f"{self.baseline_sources:,.0f} usual")
        growth = (f", doubling every {self.doubling_hours:.0f} h"
                  if self.doubling_hours else "")
        where = f", seen by {len(self.sensors)} sensors" if self.sensors else ""
        return (f"{self.kind} spike on {_proto(self.proto)}/{self.port} {span} "
                f"(score {self.score:.1f}{size}{growth}{where})")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sensors"] = ",".join(self.sensors)
        return d


def _proto(p: int) -> str:
    return {6: "tcp", 17: "udp", 132: "sctp"}.get(p, str(p))


def _day(matrix: Any, index: int | None) -> date | None:
    if index is None:
        return None
    return matrix.bucket_time(index).date()


def from_spike(spike: Any, matrix: Any) -> SpikeEvidence:
    """A :class:`portradar.spikes.Spike` (bucket indices of ``matrix``) as evidence."""
    hours = matrix.bucket_seconds / 3600
    return SpikeEvidence(
        proto=int(spike.proto), port=int(spike.port), onset=_day(matrix, spike.onset),  # type: ignore[arg-type]
        end=_day(matrix, spike.end), kind=str(spike.kind), score=float(spike.score),
        sensors=tuple(spike.sensors), sensor_share=spike.sensor_share,
        peak_sources=float(spike.peak_sources), baseline_sources=float(spike.baseline_sources),
        doubling_hours=(None if spike.doubling_buckets is None
                        else float(spike.doubling_buckets) * hours),
        alarm=_day(matrix, spike.alarm), source="spike_detector")


def daily_matrices(store: Store, port: int, proto: int, *, until: date) -> tuple[Any, Any]:
    """The port's daily activity up to ``until`` (inclusive): all sensors, and per sensor."""
    from portradar.spikes.activity_matrix import ActivityMatrix

    store.refresh_activity()
    # refresh_activity's fetchone() leaves a result open, which DuckDB 2 refuses to
    # run a relation (store.query) over; finishing a trivial statement clears it
    store.con.execute("SELECT 1").fetchall()
    end = datetime(until.year, until.month, until.day) + timedelta(days=1)
    tbl = run(store,
        """SELECT bucket, sensor, records, sources, targets FROM port_activity_daily
           WHERE port = ? AND proto = ? AND bucket < ? ORDER BY bucket""",
        [port, proto, end]).to_pylist()
    if not tbl:
        empty = ActivityMatrix.empty("day", datetime(until.year, until.month, until.day,
                                                     tzinfo=UTC), 0, proto=[], port=[])
        return empty, empty
    first = min(r["bucket"] for r in tbl)
    n = (until - first).days + 1
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    names = sorted({r["sensor"] for r in tbl if r["sensor"] != "*"})
    total = ActivityMatrix.empty("day", start, n, proto=[proto], port=[port],
                                 sensors=tuple(names), dtype=np.int64)
    total.new_sources = None
    by = ActivityMatrix.empty("day", start, n, proto=[proto] * len(names),
                              port=[port] * len(names), sensor=list(range(len(names))),
                              sensors=tuple(names), dtype=np.int64)
    by.new_sources = None
    index = {s: i for i, s in enumerate(names)}
    for r in tbl:  # one row per (day, sensor) of one port: a few thousand at most
        col = (r["bucket"] - first).days
        m, row = (total, 0) if r["sensor"] == "*" else (by, index[r["sensor"]])
        m.sources[row, col] = r["sources"]
        m.records[row, col] = r["records"]
        assert m.targets is not None
        m.targets[row, col] = r["targets"]
    return total, by


def port_spikes(store: Store, port: int, proto: int = 6, *, as_of: date) -> list[SpikeEvidence]:
    """The spikes of a port as known at the end of ``as_of`` (the detector run causally)."""
    from portradar.spikes import detect_spikes

    total, by = daily_matrices(store, port, proto, until=as_of)
    if total.n_buckets == 0:
        return []
    spikes = detect_spikes(total, by if by.n_rows else None)
    return [from_spike(s, total) for s in spikes if s.port == port and s.proto == proto]
