"""Scan type from the probes themselves: SYN, connect, FIN, NULL, XMAS, ACK, UDP, ...

Each probe has a packet class (:func:`portradar.scan.probes.packet_class`): the TCP
flag combinations nmap's scan types send (``-sS``/``-sT`` SYN, ``-sF`` FIN, ``-sN`` no
flags, ``-sX`` FIN+PSH+URG, ``-sA`` ACK; nmap(1) "Port scanning techniques"), UDP, ICMP
echo / timestamp / mask requests, SCTP, and any other IP protocol.  A source's type is
its dominant class:

* ``ip-proto`` when its probes use at least ``IP_PROTO_MIN`` (5) distinct IP protocols:
  ``nmap -sO`` walks all 256, while an ordinary host uses TCP, UDP, ICMP and perhaps one
  tunnel protocol;
* otherwise the class of the most probes if it holds at least ``DOMINANT`` (60 %) of
  them, else ``mixed`` (the evidence lists the classes);
* ``icmp-sweep`` is the name of the echo-request class, ``tcp-other`` of other flag
  combinations (``--scanflags``).

SYN probes are ``connect`` rather than ``syn`` when the handshake visibly completed
(some probe ``established``: only a full TCP connection does that) or, with nothing
but SYNs to go on, when they look like an operating system's: a fresh source port for
nearly every probe (``CONNECT_SPORTS`` = 80 % distinct; raw scanners such as nmap -sS
reuse one or two), taken from an operating system's ephemeral range (``EPHEMERAL_MIN``
= 32768 and up for 90 % of them: Linux uses 32768-60999, Windows, macOS and the BSDs
49152-65535 as RFC 6335 recommends; a raw tool drawing ports at random, like topera,
lands below half the time), and a window above 4096, the largest of nmap's raw
windows, with no raw-tool fingerprint.  Without either sign a SYN scan stays ``syn``.

>>> import numpy as np
>>> from portradar.scan.probes import N_CLASSES, SYN, UDP, FIN
>>> counts = np.zeros((3, N_CLASSES), np.int64)
>>> counts[0, SYN] = 100; counts[1, FIN] = 151; counts[2, UDP] = 10; counts[2, SYN] = 10
>>> type_names(counts, protocols=np.array([1, 1, 2]), established=np.array([0, 0, 0]),
...            syn_sports=np.array([2, 0, 10]), syn_big_window=np.array([0, 0, 10]),
...            tool=np.array([3, 3, 0]))
['syn', 'fin', 'mixed']
"""

from __future__ import annotations

import numpy as np

from portradar.scan.probes import (
    ACK,
    ECHO,
    FIN,
    IP_PROTO,
    NULL,
    PROBE_CLASSES,
    SCTP,
    SYN,
    TCP_OTHER,
    UDP,
    XMAS,
)

TYPES = ("", "syn", "connect", "fin", "null", "xmas", "ack", "tcp-other", "udp",
         "icmp-sweep", "sctp", "ip-proto", "mixed")
_CLASS_TYPE = {SYN: 1, FIN: 3, NULL: 4, XMAS: 5, ACK: 6, TCP_OTHER: 7, UDP: 8, ECHO: 9,
               SCTP: 10, IP_PROTO: 11}
CONNECT, IP_PROTO_TYPE, MIXED = 2, 11, 12
#: Distinct IP protocols that make an IP protocol scan.
IP_PROTO_MIN = 5
#: Share of probes the dominant class needs; below it the type is "mixed".
DOMINANT = 0.6
#: Share of SYN probes with distinct source ports that points to connect().
CONNECT_SPORTS = 0.8
#: Largest TCP window of nmap's raw probes; OS stacks open with more.
RAW_MAX_WINDOW = 4096
#: Lowest ephemeral port of the common operating systems (Linux: 32768).
EPHEMERAL_MIN = 32768
#: Share of SYN source ports in the ephemeral range that points to connect().
EPHEMERAL_SHARE = 0.9


def scan_type(counts: np.ndarray, protocols: np.ndarray, established: np.ndarray,
              syn_sports: np.ndarray, syn_big_window: np.ndarray,
              tool: np.ndarray, syn_ephemeral: np.ndarray | None = None) -> np.ndarray:
    """Type code (index in :data:`TYPES`) per source.

    ``counts``: probes per packet class (sources × classes); ``protocols``: distinct
    IP protocols; ``established``: probes whose handshake completed; ``syn_sports``:
    distinct source ports among SYN probes; ``syn_big_window``: SYN probes with a window
    above :data:`RAW_MAX_WINDOW`; ``tool``: fingerprint code (0: none);
    ``syn_ephemeral``: SYN probes from a port of :data:`EPHEMERAL_MIN` or more (None:
    not known, not required).
    """
    classes = np.array(PROBE_CLASSES)
    probe_counts = counts[:, classes]
    total = probe_counts.sum(axis=1)
    dominant = classes[np.argmax(probe_counts, axis=1)]
    share = probe_counts.max(axis=1) / np.maximum(total, 1)
    lookup = np.zeros(counts.shape[1], np.int64)
    for cls, code in _CLASS_TYPE.items():
        lookup[cls] = code
    out = lookup[dominant]
    out[share < DOMINANT] = MIXED
    syn = out == 1
    n_syn = counts[:, SYN]
    os_like = ((syn_sports >= CONNECT_SPORTS * n_syn) & (n_syn >= 3)
               & (syn_big_window >= 0.5 * n_syn) & (tool == 0))
    if syn_ephemeral is not None:
        os_like &= syn_ephemeral >= EPHEMERAL_SHARE * n_syn
    out[syn & ((established > 0) | os_like)] = CONNECT
    out[protocols >= IP_PROTO_MIN] = IP_PROTO_TYPE
    out[total == 0] = 0
    return out


def type_names(counts: np.ndarray, **kwargs: np.ndarray) -> list[str]:
    return [TYPES[c] for c in scan_type(counts, **kwargs)]
