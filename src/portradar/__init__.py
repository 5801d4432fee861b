"""portradar: early warning of attacks from the port probing you already log.

The public surface is small on purpose: the event schema, the exceptions, the
store and the ingest entry point.  Everything else is reached through the
``portradar`` command or the submodules named in ``docs/architecture.md``.
"""

import os

# numba's OpenMP worker threads would otherwise spin between parallel chunks and take
# the core that the store's inserts run on (the ingest pipeline overlaps the two).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
