"""Buckets and protocol names shared by the activity views.

>>> proto_number("tcp"), proto_number("17"), proto_name(58)
(6, 17, 'icmpv6')
"""

from __future__ import annotations

from portradar.errors import PortradarError

PERIODS = ("hour", "day")

_NAMES = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah",
          58: "icmpv6", 132: "sctp", 136: "udplite"}
_NUMBERS = {v: k for k, v in _NAMES.items()}


def proto_number(text: str | int) -> int:
    """A protocol given by name or number, as its number."""
    if isinstance(text, int):
        return text
    t = text.strip().lower()
    if t.isdigit() and int(t) < 256:
        return int(t)
    if t in _NUMBERS:
        return _NUMBERS[t]
    raise PortradarError(f"unknown protocol {text!r} (use tcp, udp, icmp, icmpv6 or a number)")


def proto_name(number: int) -> str:
    return _NAMES.get(int(number), str(number))


def table_for(period: str) -> str:
    if period not in PERIODS:
        raise PortradarError(f"unknown period {period!r} (use {' or '.join(PERIODS)})")
    return "port_activity_hourly" if period == "hour" else "port_activity_daily"
