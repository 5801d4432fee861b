"""A reconstructed June 2005 on 445/tcp as event batches, for the assessment tests.

Background: about 300 distinct sources a day probing one firewall (blocked), seeded;
on 2005-06-17 three times as many, the one-day spike Symantec DeepSight reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa

from portradar.events.schema import Outcome, make_batch

SPIKE_DAY = date(2005, 6, 17)


def june_2005(seed: int = 1, *, first: date = date(2005, 5, 1), last: date = date(2005, 6, 24),
              spike_sources: int = 900,
              accepted_host: int | None = None) -> Iterator[pa.RecordBatch]:
    rng = np.random.default_rng(seed)
    day = first
    while day <= last:
        n = int(rng.normal(300, 20)) if day != SPIKE_DAY else spike_sources
        src = rng.integers(0, 1 << 24, n) | (198 << 24)
        start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1e6)
        outcome = np.full(n, int(Outcome.BLOCKED))
        dst = np.full(n, 0xFFFF_C000_020A, np.uint64)  # 192.0.2.10
        if accepted_host is not None:
            outcome[:3] = int(Outcome.ACCEPTED)
            dst[:3] = np.uint64(0xFFFF_0000_0000 | accepted_host)
        yield make_batch({"ts": start + rng.integers(0, 86_400_000_000, n),
                          "src_lo": (0xFFFF_0000_0000 | src).astype(np.uint64),
                          "dst_lo": dst, "proto": 6, "dport": 445, "outcome": outcome,
                          "sensor": "fw1"}, n=n)
        day += timedelta(days=1)
