"""The shape of a scan: vertical, horizontal, block or random, from hosts × ports tried.

The taxonomy is the usual one (Barnett and Irwin, "Towards a Taxonomy of Network
Scanning Techniques", 2008; Staniford, Hoagland and McAlerney 2002): a *vertical* scan
tries many ports of one host, a *horizontal* scan (sweep) one port on many hosts, a
*block* scan many ports on many hosts systematically, and a *random* scan scattered
(host, port) pairs.  The cut-offs follow Zeek ``simple-scan``'s ``analyze_unique_hostports``
(ncsa/bro-simple-scan): one port, or at most 5, is an address scan (horizontal); one
host, or at most 5, a port scan (vertical); more of both is Zeek's "random scan", which
portradar splits in two: *block* when the pairs cover at least half of the hosts ×
ports rectangle (the same port list walked on every host), *random* otherwise.
A source with a single (host, port) pair is ``single``.

Ports here are port keys (:mod:`portradar.scan.probes`): an IP protocol scan of one
host is vertical over protocols, an ICMP echo sweep horizontal over hosts.

>>> import numpy as np
>>> shape_names(np.array([1, 11, 4, 50, 50, 1]), np.array([501, 1, 501, 100, 100, 1]),
...             np.array([501, 11, 2004, 5000, 300, 1]))
['vertical', 'horizontal', 'vertical', 'block', 'random', 'single']
"""

from __future__ import annotations

import numpy as np

SHAPES = ("single", "vertical", "horizontal", "block", "random")
SINGLE, VERTICAL, HORIZONTAL, BLOCK, RANDOM = range(5)
#: Zeek simple-scan: at most this many ports is still an address scan, hosts a port scan.
FEW = 5
#: Share of the hosts × ports rectangle a block scan covers.
BLOCK_COVERAGE = 0.5


def scan_shape(hosts: np.ndarray, ports: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Shape code (index in :data:`SHAPES`) per source."""
    hosts = np.asarray(hosts, np.int64)
    ports = np.asarray(ports, np.int64)
    pairs = np.asarray(pairs, np.int64)
    out = np.full(hosts.shape, RANDOM, np.int64)
    dense = pairs >= BLOCK_COVERAGE * hosts.astype(np.float64) * ports
    out[dense] = BLOCK
    out[hosts <= FEW] = VERTICAL
    out[ports <= FEW] = HORIZONTAL
    out[(hosts <= FEW) & (ports > FEW)] = VERTICAL
    out[hosts == 1] = VERTICAL
    out[(ports == 1) & (hosts > 1)] = HORIZONTAL
    out[(hosts <= 1) & (ports <= 1)] = SINGLE
    return out


def shape_names(hosts: np.ndarray, ports: np.ndarray, pairs: np.ndarray) -> list[str]:
    return [SHAPES[c] for c in scan_shape(hosts, ports, pairs)]
