"""Backscatter: answers to questions nobody here asked, the echo of a DoS elsewhere.

A denial-of-service attack with spoofed source addresses makes its victim answer
addresses at random: SYN-ACKs from an open port it was flooded on, RSTs from a closed
one, ICMP errors and echo replies.  Some of those answers land on our addresses.  A
source sending them is not scanning us; it is a victim (Moore, Voelker, Savage,
"Inferring Internet Denial-of-Service Activity", USENIX Security 2001, the method
behind every network telescope's DoS reports).  Counting it as a scanner would be
wrong twice: a false alarm here, and a missed signal that someone is under attack.

A packet is *backscatter* when it is reply-like (:data:`~portradar.scan.probes.REPLY_CLASSES`:
SYN-ACK, RST or RST-ACK, ICMP echo reply and ICMP errors) and no request it could
answer is stored (:mod:`portradar.scan.replies` looks for one: our packet in the other
direction within the reply window).  A firewall log usually holds inbound traffic
only, so there every reply-like packet is unsolicited; in a packet capture the
answers of our own servers and clients are paired with their requests and drop out.

A source is labelled ``backscatter`` when

* it sent at least ``min_packets`` unsolicited reply-like packets (default 5, psad's
  danger level 1: the smallest amount psad reports at all; a victim's replies reach
  one site only in a trickle, so Moore et al.'s telescope-sized thresholds do not fit),
* and they are at least ``share`` (default 0.5) of everything it sent us that was not a
  reply: mostly answers, hardly any questions.

The state is counts per source, so it merges by addition.

>>> import numpy as np
>>> from portradar.scan.probes import Probes
>>> n = 6
>>> p = Probes.from_columns({"ts": np.arange(n), "src_lo": np.full(n, 3),
...                          "dst_lo": np.arange(n), "proto": np.full(n, 6),
...                          "dport": np.full(n, 40000), "tcp_flags": np.full(n, 0x12)})
>>> b = Backscatter()
>>> b.update(p)
>>> row = b.result().to_pylist()[0]
>>> row["backscatter"], row["synack"], row["replies"]
(True, 6, 6)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from portradar.scan.probes import ICMP_REPLY, PROBE_CLASSES, RST, SYNACK, Probes, small_isin


class Backscatter:
    """Unsolicited replies per source, and which sources are DoS victims answering.

    Parameters (sources in the module docstring):
        min_packets: unsolicited replies needed to label a source (5, psad DL1).
        share: fraction of the source's non-reply packets they must make up (0.5).
    """

    def __init__(self, min_packets: int = 5, share: float = 0.5) -> None:
        self.min_packets = min_packets
        self.share = share
        self._skey = np.empty(0, np.uint64)
        self._hi = np.empty(0, np.uint64)
        self._lo = np.empty(0, np.uint64)
        self._counts = np.empty((0, 4), np.int64)  # synack, rst, icmp reply, probes
        self._first = np.empty(0, np.int64)
        self._last = np.empty(0, np.int64)

    def update(self, events: Probes) -> None:
        """Count a batch of unsolicited events (probes and unanswered reply-like packets)."""
        if not len(events):
            return
        ordered, starts = events.grouped()
        first = starts[:-1]
        counts = np.stack([
            np.add.reduceat((ordered.cls == SYNACK).astype(np.int64), first),
            np.add.reduceat((ordered.cls == RST).astype(np.int64), first),
            np.add.reduceat((ordered.cls == ICMP_REPLY).astype(np.int64), first),
            np.add.reduceat(small_isin(ordered.cls, PROBE_CLASSES).astype(np.int64), first),
        ], axis=1) if len(first) else np.empty((0, 4), np.int64)
        key_hi, key_lo, skey = events.source_keys()
        lo_ts = np.minimum.reduceat(ordered.ts, first) if len(first) else first
        hi_ts = np.maximum.reduceat(ordered.ts, first) if len(first) else first
        self._absorb(skey, key_hi, key_lo, counts, lo_ts, hi_ts)

    def merge(self, other: Backscatter) -> Backscatter:
        """A new detector with both states (counts add, spans widen)."""
        out = Backscatter(self.min_packets, self.share)
        out._absorb(self._skey, self._hi, self._lo, self._counts, self._first, self._last)
        out._absorb(other._skey, other._hi, other._lo, other._counts, other._first, other._last)
        return out

    def _absorb(self, skey, hi, lo, counts, first, last) -> None:
        skey = np.concatenate([self._skey, skey])
        hi = np.concatenate([self._hi, hi])
        lo = np.concatenate([self._lo, lo])
        counts = np.concatenate([self._counts, counts])
        first = np.concatenate([self._first, first])
        last = np.concatenate([self._last, last])
        order = np.argsort(skey, kind="stable")
        skey, hi, lo = skey[order], hi[order], lo[order]
        counts, first, last = counts[order], first[order], last[order]
        start = np.flatnonzero(np.r_[True, skey[1:] != skey[:-1]]) if skey.size else skey
        self._skey, self._hi, self._lo = skey[start], hi[start], lo[start]
        self._counts = np.add.reduceat(counts, start, axis=0) if skey.size else counts
        self._first = np.minimum.reduceat(first, start) if skey.size else first
        self._last = np.maximum.reduceat(last, start) if skey.size else last

    def result(self) -> pa.Table:
        """One row per source: reply-like counts, probes, and whether it is backscatter."""
        return pa.table(self.result_arrays())

    def result_arrays(self) -> dict[str, np.ndarray]:
        """:meth:`result` as numpy columns."""
        c = self._counts
        replies = c[:, 0] + c[:, 1] + c[:, 2]
        total = replies + c[:, 3]
        label = (replies >= self.min_packets) & (replies >= self.share * np.maximum(total, 1))
        return {
            "key_hi": self._hi, "key_lo": self._lo, "skey": self._skey,
            "backscatter": label, "replies": replies, "synack": c[:, 0], "rst": c[:, 1],
            "icmp_reply": c[:, 2], "probes": c[:, 3], "first_ts": self._first,
            "last_ts": self._last,
        }
