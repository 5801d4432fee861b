"""IPv4 and IPv6 addresses as pairs of unsigned 64-bit integers.

An address is its 128 bits in network order split into ``hi`` and ``lo``; IPv4 is
IPv4-mapped (``::ffff:a.b.c.d``).  Conversions work on arrays and touch each
*distinct* value once, so they stay cheap on millions of rows where addresses
repeat.

>>> hi, lo = parse_addresses(["192.0.2.1", "2001:db8::1", "192.0.2.1"])
>>> [hex(x) for x in lo]
['0xffffc0000201', '0x1', '0xffffc0000201']
>>> format_addresses(hi, lo)
['192.0.2.1', '2001:db8::1', '192.0.2.1']
>>> address_key("10.0.0.1")
(0, 281470849515521)
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence

import numpy as np

V4_MAPPED = 0xFFFF_0000_0000
_MASK64 = (1 << 64) - 1


def address_key(text: str) -> tuple[int, int]:
    """Parse one address into ``(hi, lo)``; raise ``ValueError`` when it is not one."""
    ip = ipaddress.ip_address(text.strip())
    if ip.version == 4:
        return 0, V4_MAPPED | int(ip)
    value = int(ip)
    return value >> 64, value & _MASK64


def key_to_text(hi: int, lo: int) -> str:
    """The usual text form of one address pair (IPv4 dotted, IPv6 compressed)."""
    if hi == 0 and (lo >> 32) == 0xFFFF:
        return socket.inet_ntop(socket.AF_INET, int(lo & 0xFFFF_FFFF).to_bytes(4, "big"))
    return str(ipaddress.IPv6Address((int(hi) << 64) | int(lo)))


def parse_addresses(texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Parse many addresses; each distinct text is parsed once."""
    values = list(texts)
    uniq, inverse = np.unique(np.asarray(values, dtype=object), return_inverse=True)
    pairs = [address_key(str(t)) for t in uniq]
    his = np.array([p[0] for p in pairs], dtype=np.uint64)
    los = np.array([p[1] for p in pairs], dtype=np.uint64)
    return his[inverse], los[inverse]


def format_addresses(hi: Sequence[int] | np.ndarray, lo: Sequence[int] | np.ndarray) -> list[str]:
    """Format many address pairs; each distinct pair is formatted once."""
    h = np.asarray(hi, dtype=np.uint64)
    lo_arr = np.asarray(lo, dtype=np.uint64)
    if h.size == 0:
        return []
    pairs = np.stack([h, lo_arr], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    texts = [key_to_text(int(a), int(b)) for a, b in uniq]
    return [texts[i] for i in np.asarray(inverse).reshape(-1)]


def cidr_range(cidr: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """First and last address pair of a network, for range filters.

    >>> cidr_range("192.0.2.0/24")
    ((0, 281473902969344), (0, 281473902969599))
    """
    net = ipaddress.ip_network(cidr.strip(), strict=False)
    if net.version == 4:
        first = V4_MAPPED | int(net.network_address)
        last = V4_MAPPED | int(net.broadcast_address)
        return (0, first), (0, last)
    a, b = int(net.network_address), int(net.broadcast_address)
    return (a >> 64, a & _MASK64), (b >> 64, b & _MASK64)
