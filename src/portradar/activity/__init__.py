"""Per-port activity: DShield-style records, distinct sources and distinct targets."""

from portradar.activity.port_history import port_history
from portradar.activity.top_ports import top_ports
from portradar.activity.top_sources import top_sources

__all__ = ["port_history", "top_ports", "top_sources"]
