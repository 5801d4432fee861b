"""A set of IPv4 and IPv6 networks with vectorised membership for address pairs.

Dark space (``--dark``), the list of benign research scanners and the loopback policy all
ask the same question of millions of addresses: is this address inside one of these
networks?  Networks are kept as sorted, merged ``[first, last]`` ranges of the 128-bit
address (as ``(hi, lo)`` pairs, IPv4 mapped as everywhere in portradar), and a lookup is
one ``searchsorted`` per address array, so the cost does not depend on the number of
networks.

>>> nets = CidrSet.parse(["192.0.2.0/25", "192.0.2.128/25", "2001:db8::/32"])
>>> len(nets)  # networks given separately keep their own label
3
>>> from portradar.events.addresses import parse_addresses
>>> hi, lo = parse_addresses(["192.0.2.200", "198.51.100.1", "2001:db8::5"])
>>> nets.contains(hi, lo).tolist()
[True, False, True]
>>> nets.label_of(hi, lo).tolist()  # index of the network given, -1 outside
[1, -1, 2]
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

import numpy as np

from portradar.errors import PortradarError

_MASK64 = (1 << 64) - 1


class CidrError(PortradarError):
    """A network in a list cannot be parsed."""


def _bounds(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    if net.version == 4:
        base = 0xFFFF_0000_0000
        return base | int(net.network_address), base | int(net.broadcast_address)
    return int(net.network_address), int(net.broadcast_address)


class CidrSet:
    """Networks as sorted 128-bit ranges; ``labels`` keeps the index of each input network.

    Overlapping networks keep the label of the first one given (merged ranges would lose
    the names, so only identical-label neighbours are merged).
    """

    def __init__(self, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
                 labels: Sequence[int] | None = None) -> None:
        labels = list(range(len(networks))) if labels is None else list(labels)
        ranges = sorted(
            ((*_bounds(n), lab) for n, lab in zip(networks, labels, strict=True)),
            key=lambda r: (r[0], -r[1]),
        )
        merged: list[list[int]] = []
        for first, last, lab in ranges:
            if merged and first <= merged[-1][1] + 1:
                prev = merged[-1]
                if lab == prev[2] or last <= prev[1]:
                    prev[1] = max(prev[1], last)
                    continue
                first = prev[1] + 1  # overlap: the earlier network keeps its addresses
            merged.append([first, last, lab])
        self._first_hi = np.array([r[0] >> 64 for r in merged], np.uint64)
        self._first_lo = np.array([r[0] & _MASK64 for r in merged], np.uint64)
        self._last_hi = np.array([r[1] >> 64 for r in merged], np.uint64)
        self._last_lo = np.array([r[1] & _MASK64 for r in merged], np.uint64)
        self._labels = np.array([r[2] for r in merged], np.int64)
        self.networks = list(networks)

    @classmethod
    def parse(cls, texts: Iterable[str]) -> CidrSet:
        """Networks from text (``a.b.c.d/n``, ``x::/n`` or a bare address)."""
        nets = []
        for text in texts:
            try:
                nets.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError as exc:
                raise CidrError(f"{text.strip()!r} is not an IP network or address") from exc
        return cls(nets)

    def __len__(self) -> int:
        return int(self._labels.shape[0])

    def __bool__(self) -> bool:
        return len(self) > 0

    def label_of(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Index (in the list given) of the network holding each address, -1 when none."""
        hi = np.asarray(hi, np.uint64)
        lo = np.asarray(lo, np.uint64)
        out = np.full(hi.shape, -1, np.int64)
        if not len(self) or not hi.size:
            return out
        # last range whose first address is <= the address, compared as (hi, lo)
        idx = np.searchsorted(self._first_hi, hi, side="right") - 1
        # ranges sharing the same first_hi: refine on lo (rare; only for IPv6 ranges
        # starting inside one /64, or IPv4 where every first_hi is 0)
        same_hi = self._first_hi
        lo_idx = _refine(same_hi, self._first_lo, hi, lo, idx)
        ok = lo_idx >= 0
        j = np.where(ok, lo_idx, 0)
        inside = ok & (
            (hi < self._last_hi[j]) | ((hi == self._last_hi[j]) & (lo <= self._last_lo[j]))
        )
        out[inside] = self._labels[j[inside]]
        return out

    def contains(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Boolean mask: which addresses fall inside one of the networks."""
        return self.label_of(hi, lo) >= 0


def _refine(first_hi: np.ndarray, first_lo: np.ndarray, hi: np.ndarray, lo: np.ndarray,
            idx: np.ndarray) -> np.ndarray:
    """Index of the last range starting at or before each (hi, lo), -1 if none.

    ``idx`` is the answer on ``hi`` alone; where the range found starts in the same
    ``hi`` block, the lows decide among the ranges of that block.
    """
    out = idx.copy()
    valid = idx >= 0
    if not valid.any():
        return out
    j = np.where(valid, idx, 0)
    same = valid & (first_hi[j] == hi)
    if not same.any():
        return out
    # ranges are sorted by (hi, lo): within the block of equal hi, search on lo
    block_start = np.searchsorted(first_hi, hi[same], side="left")
    block_end = np.searchsorted(first_hi, hi[same], side="right")
    sub = np.empty(block_start.shape, np.int64)
    for value in np.unique(hi[same]):  # one loop per distinct high half, not per address
        rows = hi[same] == value
        a, b = int(block_start[rows][0]), int(block_end[rows][0])
        sub[rows] = a + np.searchsorted(first_lo[a:b], lo[same][rows], side="right") - 1
    # a low below the block's first range falls to the range before the block
    out[same] = np.where(sub >= block_start, sub, block_start - 1)
    return out
