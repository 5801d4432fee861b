"""One port's baseline band and spikes, bucket by bucket (what ``portradar port`` shows).

The band is the spike detector's own baseline (frozen during spikes) ± 2 standard
deviations of its negative binomial; a bucket inside a spike carries the spike's kind.
The whole stored history of the port is used, so the baseline has its warm-up even
when only the last buckets are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from portradar.spikes.activity_matrix import ActivityMatrix, from_store
from portradar.spikes.spike_detector import Spike, SpikeDetector


@dataclass
class PortRun:
    """The detector over one port's whole stored history: the matrix (one row), the
    baseline mean and its standard deviation per bucket, the episode each bucket is
    in (0 = none) and the spikes."""

    matrix: ActivityMatrix
    expected: np.ndarray
    sd: np.ndarray
    episode: np.ndarray
    spikes: list[Spike]


def port_run(store: Any, port: int, *, proto: int, period: str = "day",
             sensor: str = "*") -> PortRun | None:
    """One detector pass over a port (None when the store has no activity for it);
    what :func:`port_band` prints and the dashboard's port page draws."""
    scope = "all" if sensor == "*" else sensor
    m = from_store(store, period=period, scope=scope, proto=proto, port=port)
    if m.n_rows == 0 or m.n_buckets == 0:
        return None
    run = SpikeDetector.for_period(period).run(m, rows=np.array([0]), dense=True)
    assert run.mean is not None and run.dispersion is not None and run.episode is not None
    mean, disp = run.mean[0], run.dispersion[0]
    return PortRun(m, mean, np.sqrt(mean + disp * mean * mean), run.episode[0], run.spikes(m))


def port_band(store: Any, port: int, *, proto: int, period: str = "day",
              sensor: str = "*") -> dict[str, dict[str, Any]]:
    """Per bucket (``str`` of its date or UTC time, as :func:`port_history` prints it):
    ``baseline_low``, ``baseline_high`` and ``spike`` (the kind, or None)."""
    pr = port_run(store, port, proto=proto, period=period, sensor=sensor)
    if pr is None:
        return {}
    m, mean, sd, episode = pr.matrix, pr.expected, pr.sd, pr.episode
    kinds = {k + 1: s.kind for k, s in enumerate(pr.spikes)}
    out = {}
    for t in range(m.n_buckets):
        when = m.bucket_time(t).replace(tzinfo=None)
        label = str(when.date()) if period == "day" else str(when)
        out[label] = {
            "baseline_low": round(max(0.0, float(mean[t] - 2 * sd[t])), 1),
            "baseline_high": round(float(mean[t] + 2 * sd[t]), 1),
            "spike": kinds.get(int(episode[t])),
        }
    return out
