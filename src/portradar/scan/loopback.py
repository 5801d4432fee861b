"""The loopback policy: what portradar does with probes from 127.0.0.1, ::1, 0.0.0.0 and ::.

Those four addresses never belong to a remote prober:

* ``127.0.0.1`` and ``::1`` are the host itself, the address every local process talks
  from.  Seen on the loopback interface, the host is probing itself (an admin's nmap,
  a monitoring agent, the DNS stub of ``[UFW AUDIT] ... SRC=127.0.0.1 DST=127.0.0.53``);
  seen arriving on any other interface, the packet is spoofed (a "martian" the kernel's
  reverse-path filter drops);
* ``0.0.0.0`` and ``::`` mean "no address yet" (DHCP, IGMP, duplicate address
  detection); as the source of a port scan they are spoofed.

**Policy.**  Sources with these addresses go through every detector like any other, so
nothing is hidden and a scan is still reported with its shape, type, tool and evidence.
When flagged, the verdict's status is ``loopback`` (127.0.0.1, ::1) or ``unspecified``
(0.0.0.0, ::) instead of ``scanner``: such a source is never a remote attacker, must
never be blocked (psad, which detects the same scans in its ``syn_scan_*_localhost``
and ``*_zeroip`` tests, likewise refuses to auto-block them: "Skipping IP from
auto-block"), and is left out of campaigns.  Evaluation counts it as flagged.

Every *other* address of 127.0.0.0/8 is an ordinary source.  Those addresses are only
used on purpose: test labs and containers give local processes distinct identities
with them (CrowdSec's hub test flags 127.0.0.2 for a multi-port scan, and so does
portradar), so marking them would hide exactly the scans a lab stages.

>>> from portradar.events.addresses import parse_addresses
>>> hi, lo = parse_addresses(["127.0.0.1", "127.0.0.2", "0.0.0.0", "::1", "::", "192.0.2.1"])
>>> [STATUS[c] for c in special_source(hi, lo)]
['loopback', 'scanner', 'unspecified', 'loopback', 'unspecified', 'scanner']
"""

from __future__ import annotations

import numpy as np

NORMAL, LOOPBACK, UNSPECIFIED = 0, 1, 2
#: Status given to a flagged source of each kind.
STATUS = ("scanner", "loopback", "unspecified")

_V4_LOOPBACK = np.uint64(0xFFFF_7F00_0001)
_V4_ZERO = np.uint64(0xFFFF_0000_0000)


def special_source(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Kind of each source address: NORMAL, LOOPBACK or UNSPECIFIED."""
    hi = np.asarray(hi, np.uint64)
    lo = np.asarray(lo, np.uint64)
    out = np.zeros(hi.shape, np.int64)
    zero_hi = hi == 0
    out[zero_hi & ((lo == _V4_LOOPBACK) | (lo == np.uint64(1)))] = LOOPBACK
    out[zero_hi & ((lo == _V4_ZERO) | (lo == np.uint64(0)))] = UNSPECIFIED
    return out
