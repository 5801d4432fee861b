"""Registry of input readers, filled the way a third party would fill it.

Built-in readers are listed in :data:`DEFAULT_READERS` and loaded exactly like a
plug-in's reader (the ``portradar.readers`` entry-point group): importing the module
runs its ``@register_reader``.  Adding a format is writing one module, never
editing a central ``if`` chain (datasette's ``DEFAULT_PLUGINS`` is the model).

>>> {"iptables", "pcap"} <= set(reader_names())
True
>>> get_reader("iptables").unit
'lines'
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TypeVar

from portradar.errors import UnknownFormatError
from portradar.ingest.reader import Reader

#: Modules of the readers that ship with portradar.
DEFAULT_READERS = (
    "portradar.ingest.iptables",
    "portradar.ingest.pcap",
    "portradar.ingest.zeek_conn",
    "portradar.ingest.suricata_eve",
    "portradar.ingest.pf_filterlog",
    "portradar.ingest.windows_firewall",
    "portradar.ingest.dshield",
    "portradar.ingest.generic_table",
    "portradar.ingest.netflow",
    "portradar.ingest.nfdump",
    "portradar.ingest.cisco_asa",
    "portradar.ingest.juniper_srx",
    "portradar.ingest.netscreen",
    "portradar.ingest.mikrotik",
    "portradar.ingest.palo_alto",
    "portradar.ingest.fortigate",
    "portradar.ingest.cef",
)

_READERS: dict[str, type[Reader]] = {}
_loaded = False

R = TypeVar("R", bound=type)


def register_reader(cls: R) -> R:
    """Class decorator: make a reader available under its ``name``."""
    name = cls.name  # type: ignore[attr-defined]
    _READERS[name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in DEFAULT_READERS:
        importlib.import_module(module)
    for ep in entry_points(group="portradar.readers"):
        if ep.value.split(":")[0] in DEFAULT_READERS:
            continue
        register_reader(ep.load())


def reader_names() -> list[str]:
    """Names of every registered reader."""
    _load()
    return sorted(_READERS)


def get_reader(name: str) -> type[Reader]:
    """The reader class registered as ``name``."""
    _load()
    try:
        return _READERS[name]
    except KeyError:
        known = ", ".join(sorted(_READERS))
        raise UnknownFormatError(f"no reader named {name!r} (known: {known})") from None


def all_readers() -> list[type[Reader]]:
    _load()
    return [_READERS[n] for n in sorted(_READERS)]
