"""Alert sinks, one module each, registered under their module name.

A sink is a class with ``name`` and ``send(notes)``, built from its TOML table by
``from_config(table)``.  A third-party sink registers itself the same way
(:func:`register_sink`).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Built-in sink modules (module name = registry name).
DEFAULT_SINKS: tuple[str, ...] = ("console", "jsonl", "syslog_sink", "webhook", "email")
#: Config ``type`` names that differ from the module name.
ALIASES = {"syslog": "syslog_sink", "cef": "syslog_sink"}

SINKS: dict[str, Any] = {}


def register_sink(cls: Any) -> Any:
    SINKS[cls.name] = cls
    return cls


def build_sink(table: dict[str, Any]) -> Any:
    """A sink from its config table (``type`` names it)."""
    from portradar.errors import PortradarError

    kind = str(table.get("type", ""))
    module = ALIASES.get(kind, kind)
    if module not in SINKS and module in DEFAULT_SINKS:
        importlib.import_module(f"portradar.alerts.sinks.{module}")
    if module not in SINKS:
        raise PortradarError(f"unknown sink type {kind!r} (known: "
                             f"{', '.join(sorted(set(DEFAULT_SINKS) | set(SINKS)))})")
    return SINKS[module].from_config(table)
