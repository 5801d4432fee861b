"""Slow scans: the same breadth as a fan-out, over a long sliding window, in bounded memory.

A scanner that waits longer than the fan-out's idle timeout (Zeek's 15 minutes)
between probes starts a new episode every time and never reaches a threshold: nmap's
``-T0`` waits 5 minutes, patient botnets one probe per host per hour.  This detector
asks the fan-out's question over a long *sliding* window instead: has the source tried
``threshold`` distinct (host, port) pairs without success within any ``window``?

Defaults: ``threshold`` = 25, Zeek ``simple-scan``'s ``scan_threshold`` (a slow scanner
is held to the same standard as a fast one, only given more time); ``window`` = 24 hours,
the reporting day of DShield and of portradar's own daily activity, long enough to span
the slow timing templates (``-T0`` probes 288 ports a day) and short enough that a
benign client's occasional failures (a dead server retried, a wrong port) do not pile
up for ever.

**Bounded memory.**  Per source the detector keeps only the ``threshold`` distinct pairs
it saw most recently, each with the last time it was seen.  That is exact: if at least
``threshold`` distinct pairs fall inside the window, the ``threshold`` most recent ones
all do; if fewer do, every pair inside the window is among the most recent.  A source
costs at most ``threshold`` × 16 bytes (400 bytes at the default), almost always far
less (most sources try one or two pairs), and nothing once it is flagged.

The state is sequential (the window slides with each source's own events), so it is
routed by source rather than merged; ``update`` calls must bring each source's events
in time order.

>>> import numpy as np
>>> from portradar.scan.probes import Probes
>>> hour = 3_600_000_000
>>> n = 30  # one new port every 20 minutes: never two probes within Zeek's 15 minutes
>>> p = Probes.from_columns({"ts": np.arange(n) * hour // 3, "src_lo": np.full(n, 5),
...                          "dst_lo": np.full(n, 9), "proto": np.full(n, 6),
...                          "dport": np.arange(100, 100 + n), "outcome": np.full(n, 1)})
>>> slow = SlowScan()
>>> slow.update(p)
>>> row = slow.result().to_pylist()[0]
>>> row["flagged"], row["flagged_probes"], row["flagged_ts"] // hour
(True, 25, 8)
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from portradar.scan.keyed_state import KeyedState
from portradar.scan.probes import Probes


class SlowScan:
    """Distinct failed (host, port) pairs per source within a sliding window.

    Parameters (sources in the module docstring):
        threshold: distinct pairs within ``window`` that flag a source (25, Zeek).
        window: seconds the window spans (86400: one day).
    """

    def __init__(self, threshold: int = 25, window: float = 86400.0) -> None:
        if threshold < 1 or window <= 0:
            raise ValueError("threshold and window must be positive")
        self.threshold = threshold
        self.window = window
        self._state = KeyedState(
            {"flagged_ts": np.int64, "flagged_probes": np.int64, "probes": np.int64,
             "peak": np.int64, "offset": np.int64, "count": np.int64},
            defaults={"flagged_ts": -1},
        )
        self._hash = np.empty(0, np.uint64)
        self._seen = np.empty(0, np.int64)

    @property
    def min_probes(self) -> int:
        """Fewest probes that can flag a source."""
        return self.threshold

    def update(self, probes: Probes) -> None:
        """Slide every source's window over its new probes, in time order."""
        if not len(probes):
            return
        ordered, starts = probes.grouped()
        key_hi, key_lo, skey = probes.source_keys()
        rows = self._state.locate(skey, key_hi, key_lo)
        c = self._state.columns
        pair = ordered.port_pairs()
        counted = ordered.failed()
        base = len(self._hash)
        # each source keeps at most threshold entries, and no more than it had plus its rows
        total = int(np.minimum(self.threshold, c["count"][rows] + np.diff(starts)).sum())
        out_hash = np.empty(total, np.uint64)
        out_seen = np.empty(total, np.int64)
        used = _slide(starts, ordered.ts, pair, counted, rows, c["flagged_ts"],
                      c["flagged_probes"], c["probes"], c["peak"], c["offset"], c["count"],
                      self._hash, self._seen, out_hash, out_seen, base, self.threshold,
                      int(self.window * 1_000_000))
        if base:
            self._hash = np.concatenate([self._hash, out_hash[:used]])
            self._seen = np.concatenate([self._seen, out_seen[:used]])
        else:  # the first batch: its entries are the state, not copied
            self._hash, self._seen = out_hash[:used], out_seen[:used]
        live = int(c["count"].sum())
        if len(self._hash) > 2 * live + 1024:
            self._compact()

    def _compact(self) -> None:
        c = self._state.columns
        idx = np.repeat(c["offset"], c["count"]) + _ranges(c["count"])
        self._hash, self._seen = self._hash[idx], self._seen[idx]
        c["offset"] = np.concatenate([[0], np.cumsum(c["count"])[:-1]]).astype(np.int64)

    def result_arrays(self) -> dict[str, np.ndarray]:
        """:meth:`result` as numpy columns, sorted by ``skey`` (``flagged_ts`` -1 when not)."""
        s = self._state
        c = s.columns
        return {"key_hi": s.key_hi, "key_lo": s.key_lo, "skey": s.skey,
                "flagged": c["flagged_ts"] >= 0, "flagged_ts": c["flagged_ts"],
                "flagged_probes": c["flagged_probes"], "probes": c["probes"], "peak": c["peak"]}

    def result(self) -> pa.Table:
        """One row per source: flagged or not, when, after how many of its probes, and
        the most distinct pairs it had within one window (capped at ``threshold``)."""
        s = self._state
        c = s.columns
        flagged = c["flagged_ts"] >= 0
        return pa.table({
            "key_hi": s.key_hi, "key_lo": s.key_lo, "skey": s.skey, "flagged": flagged,
            "flagged_ts": pa.array(c["flagged_ts"], mask=~flagged),
            "flagged_probes": c["flagged_probes"], "probes": c["probes"], "peak": c["peak"],
        })

    def nbytes(self) -> int:
        """Bytes of state held."""
        return self._state.nbytes() + self._hash.nbytes + self._seen.nbytes


def _ranges(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count c, concatenated."""
    total = int(counts.sum())
    if not total:
        return np.empty(0, np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total) - starts


@numba.njit(cache=True, nogil=True)
def _slide(starts, ts, pair, counted, rows, flagged_ts, flagged_probes, probes, peak,
           offset, count, old_hash, old_seen, out_hash, out_seen, base, threshold,
           window):  # pragma: no cover - jit
    buf_h = np.empty(threshold, np.uint64)
    buf_t = np.empty(threshold, np.int64)
    used = 0
    for g in range(starts.shape[0] - 1):
        r = rows[g]
        s = starts[g]
        e = starts[g + 1]
        before = probes[r]
        probes[r] += e - s
        if flagged_ts[r] >= 0:
            continue
        n = count[r]
        o = offset[r]
        for q in range(n):
            buf_h[q] = old_hash[o + q]
            buf_t[q] = old_seen[o + q]
        for i in range(s, e):
            if not counted[i]:
                continue
            h = pair[i]
            t = ts[i]
            hit = -1
            for q in range(n):
                if buf_h[q] == h:
                    hit = q
                    break
            if hit >= 0:
                buf_t[hit] = t
            elif n < threshold:
                buf_h[n] = h
                buf_t[n] = t
                n += 1
            else:
                oldest = 0
                for q in range(1, n):
                    if buf_t[q] < buf_t[oldest]:
                        oldest = q
                buf_h[oldest] = h
                buf_t[oldest] = t
            inside = 0
            for q in range(n):
                if buf_t[q] > t - window:
                    inside += 1
            if inside > peak[r]:
                peak[r] = inside
            if inside >= threshold:
                flagged_ts[r] = t
                flagged_probes[r] = before + (i - s) + 1
                n = 0
                break
        offset[r] = base + used
        count[r] = n
        for q in range(n):
            out_hash[used] = buf_h[q]
            out_seen[used] = buf_t[q]
            used += 1
    return used
