"""One port's baseline band and spikes, bucket by bucket (what ``portradar port`` shows).

The band is the spike detector's own baseline (frozen during spikes) ± 2 standard
deviations of its negative binomial; a bucket inside a spike carries the spike's kind.
The whole stored history of the port is used, so the baseline has its warm-up even
when only the last buckets are shown.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from portradar.spikes.activity_matrix import from_store
from portradar.spikes.spike_detector import SpikeDetector


def port_band(store: Any, port: int, *, proto: int, period: str = "day",
              sensor: str = "*") -> dict[str, dict[str, Any]]:
    """Per bucket (``str`` of its date or UTC time, as :func:`port_history` prints it):
    ``baseline_low``, ``baseline_high`` and ``spike`` (the kind, or None)."""
    scope = "all" if sensor == "*" else sensor
    m = from_store(store, period=period, scope=scope, proto=proto, port=port)
    if m.n_rows == 0 or m.n_buckets == 0:
        return {}
    det = SpikeDetector.for_period(period)
    run = det.run(m, rows=np.array([0]), dense=True)
    spikes = run.spikes(m)
    assert run.mean is not None and run.dispersion is not None and run.episode is not None
    mean, disp, episode = run.mean[0], run.dispersion[0], run.episode[0]
    sd = np.sqrt(mean + disp * mean * mean)
    kinds = {k + 1: s.kind for k, s in enumerate(spikes)}
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
