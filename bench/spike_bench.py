"""How fast is spike detection over every port: 65,536 TCP + 65,536 UDP ports × 90 days of
hourly buckets (a 131,072 × 2,160 matrix of sources, records and new sources).

Two cases:

* ``realistic``: per-port hourly counts from the simulator's popularity model (long
  tail: most ports see a source now and then, a few hundred see many every hour),
  with day/night and weekday rhythms, over-dispersed, and three injected rises.  The
  detector skips the series that never reach its minimum excess (part of the detector:
  they cannot alarm), then runs the compiled baseline + CUSUM over the rest.
* ``busy``: the worst case, every one of the series busy (Poisson(20) sources an
  hour), so every series is processed; measured on ``--busy-rows`` series and
  scaled to 131,072 (the work is the same for every series).

Usage::

    python bench/spike_bench.py                 # both cases
    python bench/spike_bench.py --case realistic --days 90

Prints seconds, series processed, nanoseconds per (series, bucket) cell and the spikes
found.  Results are in ``docs/spikes.md``.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

import numpy as np

from portradar.sim.background import PortPopularity
from portradar.sim.sightings import N_ROWS, PROTOS, row_of
from portradar.spikes.activity_matrix import ActivityMatrix
from portradar.spikes.spike_detector import SpikeDetector

START = datetime(2025, 1, 6, tzinfo=UTC)


def realistic_matrix(days: int, seed: int = 1) -> ActivityMatrix:
    """Hourly activity of every port, long-tailed (see the module doc)."""
    rng = np.random.default_rng(seed)
    hours = days * 24
    pop = PortPopularity.default(rng)
    lam = pop.lam * 0.95  # share of a port's scanners that 20 sensors see
    t = np.arange(hours)
    rhythm = (1.0 + 0.25 * np.sin(2 * np.pi * (t % 24) / 24)) * (
        1.0 - 0.06 * ((t // 24 + START.weekday()) % 7 >= 5))
    sources = np.zeros((N_ROWS, hours), np.int16)
    new = np.zeros((N_ROWS, hours), np.int16)
    records = np.zeros((N_ROWS, hours), np.int32)
    busy = np.flatnonzero(lam >= 2.0)
    mu = (lam[busy, None] / 24.0) * rhythm[None, :]
    day_noise = np.repeat(rng.gamma(40.0, 1 / 40.0, (len(busy), days)), 24, axis=1)
    sources[busy] = rng.poisson(mu * day_noise).astype(np.int16)
    records[busy] = sources[busy] * (1 + rng.poisson(2.0, (len(busy), hours)))
    new[busy] = rng.binomial(sources[busy], 0.3).astype(np.int16)
    quiet = np.flatnonzero(lam < 2.0)
    n_events = rng.poisson(lam[quiet] * days)
    rows = np.repeat(quiet, n_events)
    cols = rng.integers(0, hours, len(rows))
    np.add.at(sources, (rows, cols), 1)
    np.add.at(new, (rows, cols), 1)
    np.add.at(records, (rows, cols), 1 + rng.poisson(2.0, len(rows)))
    # three rises: a day-long sweep of 445, a worm on 8080, a loud scanner on udp/161
    r445, r8080, r161 = row_of(6, 445), row_of(6, 8080), row_of(17, 161)
    d = 24 * (days - 20)
    sources[r445, d:d + 24] += (lam[r445] / 24).astype(np.int16)
    worm = (2.0 ** (np.arange(24 * 5) / 20.0)).astype(np.int16)  # doubling every 20 h
    sources[r8080, d:d + len(worm)] += np.minimum(worm, 2000)
    records[r161, d + 100:d + 112] += 5000
    return ActivityMatrix(period="hour", start=START,
                          proto=np.asarray(PROTOS, np.uint8)[np.arange(N_ROWS) // 65536],
                          port=(np.arange(N_ROWS) % 65536).astype(np.int32),
                          sensor=np.full(N_ROWS, -1, np.int32), sources=sources,
                          records=records, new_sources=new)


def busy_matrix(rows: int, days: int, seed: int = 2) -> ActivityMatrix:
    rng = np.random.default_rng(seed)
    hours = days * 24
    m = ActivityMatrix.empty("hour", START, hours, proto=[6] * rows,
                             port=np.arange(rows) % 65536, dtype=np.int32)
    m.sources[:] = rng.poisson(20.0, (rows, hours))
    m.records[:] = m.sources * 3
    m.new_sources[:] = m.sources // 3
    return m


def run(det: SpikeDetector, m: ActivityMatrix) -> tuple[float, int, list]:
    det.run(m, rows=np.arange(3))  # compile outside the timing
    started = time.perf_counter()
    spikes = det.detect(m)
    seconds = time.perf_counter() - started
    processed = len(det.candidate_rows(m, det.params))
    return seconds, processed, spikes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=["realistic", "busy", "both"], default="both")
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--busy-rows", type=int, default=8192)
    args = ap.parse_args()
    det = SpikeDetector.for_period("hour")
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f}")
    hours = args.days * 24
    if args.case in ("realistic", "both"):
        t0 = time.perf_counter()
        m = realistic_matrix(args.days)
        built = time.perf_counter() - t0
        seconds, processed, spikes = run(det, m)
        print(f"realistic: {N_ROWS:,} series × {hours:,} hours built in {built:.1f} s; "
              f"detection {seconds:.2f} s ({processed:,} series could alarm and were run; "
              f"{seconds / (N_ROWS * hours) * 1e9:.1f} ns per cell overall)")
        for s in spikes:
            print("  ", s.as_row(m))
        del m
    if args.case in ("busy", "both"):
        m = busy_matrix(args.busy_rows, args.days)
        seconds, processed, spikes = run(det, m)
        per_cell = seconds / (processed * hours)
        print(f"busy: {processed:,} busy series × {hours:,} hours in {seconds:.2f} s "
              f"({per_cell * 1e9:.0f} ns per cell); all {N_ROWS:,} series busy would take "
              f"{per_cell * N_ROWS * hours:.1f} s; {len(spikes)} false alarms on pure noise")


if __name__ == "__main__":
    main()
