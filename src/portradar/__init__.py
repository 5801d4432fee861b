"""portradar: early warning of attacks from the port probing you already log.

The public surface is small on purpose: the event schema, the exceptions, the
store and the ingest entry point.  Everything else is reached through the
``portradar`` command or the submodules named in ``docs/architecture.md``.
"""

from portradar.errors import (
    FormatError,
    InputError,
    PortradarError,
    StoreError,
    UnknownFormatError,
)
from portradar.events.schema import EVENT_SCHEMA, SCHEMA_VERSION, Outcome

__version__ = "0.1.0"

__all__ = [
    "EVENT_SCHEMA",
    "SCHEMA_VERSION",
    "FormatError",
    "InputError",
    "Outcome",
    "PortradarError",
    "StoreError",
    "UnknownFormatError",
    "__version__",
]
